"""TPE over a window of a big study's history (`[study] tpe_window`, issue #24).

Optuna's TPE reads every finished trial for every suggestion, in Python loops (splitting the
trials into good and bad ones, turning their parameters into arrays): its cost per trial grows
with the study, which BENCHMARKS.md `tpe-cost` measures. With a window of W, TPE sees the
W most recent finished trials plus the 25 best complete ones of the whole study (and the
running ones, for constant_liar). The 25 best are TPE's own "good" group whenever the study
has 250 or more finished trials (Optuna's default_gamma: 10% of the trials, at most 25), so
the good group TPE models is the one it models without a window; only the "bad" group is
cut to the recent trials, which Optuna's default weights already favour. Below W finished
trials nothing changes. Optuna has no such option, hence this subclass; the private
members it touches are listed in search/_optuna.py and checked by a test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

# TPE's largest good group (optuna.samplers._tpe.sampler.default_gamma caps it at 25).
GOOD_GROUP = 25


def window(trials: list, size: int, *, maximize: bool) -> list:
    """The trials TPE sees: every unfinished one, the `size` most recent finished ones and
    the GOOD_GROUP best complete ones, in the order given (Optuna's weights use it); all of
    them while `size` or fewer are finished."""
    from optuna.trial import TrialState

    finished = [t for t in trials if t.state.is_finished()]
    if len(finished) <= size:
        return trials
    complete = [t for t in finished if t.state == TrialState.COMPLETE]
    best = sorted(complete, key=lambda t: t.value, reverse=maximize)[:GOOD_GROUP]
    recent = sorted(finished, key=lambda t: t.number)[-size:]
    keep = {t.number for t in best} | {t.number for t in recent}
    return [t for t in trials if not t.state.is_finished() or t.number in keep]


class _WindowedStudy:
    """The study as TPE's _sample reads it: everything delegated, its trials windowed."""

    def __init__(self, study: optuna.Study, size: int) -> None:
        self._study, self._size = study, size

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states=None, use_cache: bool = False) -> list:
        from optuna.study import StudyDirection

        trials = self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
        maximize = self._study.direction == StudyDirection.MAXIMIZE
        return window(trials, self._size, maximize=maximize)


def windowed_tpe(size: int, **kwargs: Any) -> optuna.samplers.TPESampler:
    """A TPESampler (kwargs as Optuna's) whose suggestions see a window of `size` trials."""
    import optuna

    class WindowedTPESampler(optuna.samplers.TPESampler):
        def _sample(self, study, trial, search_space):
            return super()._sample(_WindowedStudy(study, size), trial, search_space)

    return WindowedTPESampler(**kwargs)
