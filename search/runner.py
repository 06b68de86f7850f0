"""The search loop: sampler and pruner from settings, stop rules, progress and per-trial lines.

`--trials N` is the study's total of finished (complete + pruned) trials, so re-running the
same command resumes and stops at N, and workers sharing a storage share the same N.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from search.config import Config, StudySettings
from search.constraints import (  # noqa: F401  (OVER_*: where benchmarks and tests find them)
    OVER_LATENCY,
    OVER_PARAMS,
    budget_constraints,
    native_constraints,
)
from search.errors import ConfigError, FsearchError, TooManyFailures
from search.metrics import ACCURACY, Metric
from search.outcomes import (
    DIVERGED,
    count_finished,
    count_outcomes,
    finished,
    finished_states,
    outcome,
)

if TYPE_CHECKING:
    import optuna


def check_sampler(s: StudySettings) -> None:
    """ConfigError if the sampler cannot be made here (checked before any database is touched;
    the sampler itself needs the per-process seed, known only once the study is read)."""
    if s.sampler == "gp":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise ConfigError(
                "the gp sampler needs PyTorch: pip install torch (or use --sampler tpe)"
            ) from None


def make_sampler(
    s: StudySettings,
    *,
    seed: int,
    grid: dict[str, list] | None = None,
    constant_liar: bool = True,
):
    """The study's sampler; `grid` is the grid sampler's space (space.grid_search_space).

    `constant_liar` is TPE's and always on in a study; the off switch is for the benchmarks
    that measure what it does (benchmarks/liar.py, benchmarks/tpe_cost.py), so they build the
    very sampler a study gets rather than a copy of its options."""
    import optuna

    if s.sampler == "grid":
        # The study seed, never the per-process one: GridSampler gives trial n the n-th point
        # of its seeded shuffle, so every worker and every resume must shuffle alike.
        return optuna.samplers.GridSampler(grid or {}, seed=s.seed)

    budget = s.max_params or s.max_latency_ms
    constraints = budget_constraints if budget and not native_constraints() else None
    if s.sampler == "tpe":
        # Multivariate + group: models parameters jointly and copes with the conditional space
        # (momentum only for SGD, width_k only for k <= layers). constant_liar keeps parallel
        # workers from sampling the same point while trials run.
        options = dict(
            seed=seed,
            n_startup_trials=s.startup_trials,
            multivariate=True,
            group=True,
            constant_liar=constant_liar,
            constraints_func=constraints,
        )
        if s.tpe_window:
            from search.tpe_window import windowed_tpe

            return windowed_tpe(s.tpe_window, **options)
        return optuna.samplers.TPESampler(**options)
    if s.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if s.sampler == "cmaes":
        # CMA-ES handles the numeric parameters; categorical ones fall back to random sampling.
        return optuna.samplers.CmaEsSampler(
            seed=seed, n_startup_trials=s.startup_trials, warn_independent_sampling=False
        )
    if s.sampler == "gp":
        check_sampler(s)
        return optuna.samplers.GPSampler(
            seed=seed, n_startup_trials=s.startup_trials, constraints_func=constraints
        )
    raise ConfigError(f"unknown sampler {s.sampler!r}")


# Trial user attributes holding how far a trial is over each budget (<= 0: within it).
def make_pruner(s: StudySettings, *, max_epochs: int):
    import optuna

    late: dict = {}
    hyperband, halving = optuna.pruners.HyperbandPruner, optuna.pruners.SuccessiveHalvingPruner
    if s.late_rung:
        if not s.min_epochs < s.late_rung < max_epochs:
            raise ConfigError(
                f"study: late_rung {s.late_rung} must lie between min_epochs ({s.min_epochs}) "
                f"and the trials' epochs ({max_epochs}), both excluded; or 0 for none"
            )
        from search.late_rung import HyperbandLateRung, SuccessiveHalvingLateRung

        hyperband, halving = HyperbandLateRung, SuccessiveHalvingLateRung
        late = {"late_rung": s.late_rung, "late_rung_keep": s.late_rung_keep}
    if s.pruner == "hyperband":
        return hyperband(
            min_resource=s.min_epochs,
            max_resource=max_epochs,
            reduction_factor=s.reduction_factor,
            bootstrap_count=s.bootstrap_count,
            **late,
        )
    if s.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=s.min_epochs)
    if s.pruner == "successive-halving":
        return halving(
            min_resource=s.min_epochs,
            reduction_factor=s.reduction_factor,
            bootstrap_count=s.bootstrap_count,
            **late,
        )
    if s.pruner == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"unknown pruner {s.pruner!r}")


def process_seed(settings: StudySettings, *, n_existing: int, worker: int = 0) -> int:
    """Sampler seed for this process: differs on resume and per worker, so no process replays
    another's random start-up points, yet a fresh single run is reproducible."""
    return (settings.seed + 7919 * n_existing + 104729 * worker) % (2**32)


class ConsecutiveFailures:
    """Stop the worker after `limit` failed trials in a row (a bug, not bad luck)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self.last_error = ""

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        from optuna.trial import TrialState

        if trial.state == TrialState.FAIL:
            self.count += 1
            self.last_error = str(trial.user_attrs.get("error", "")).strip().splitlines()[-1:]
            if self.count >= self.limit:
                study.stop()
        else:
            self.count = 0

    @property
    def tripped(self) -> bool:
        return self.count >= self.limit


@dataclass
class LoopResult:
    """What one process's search loop did (api.RunResult describes the whole study)."""

    finished: int  # finished trials of the study (all workers)
    seconds: float
    ran: int  # trials this process ran
    recycle: bool = False  # stopped after max_trials_here trials, the study not yet done


def trial_line(trial: optuna.trial.FrozenTrial, metric: Metric = ACCURACY) -> str:
    """One line per finished trial: number, state, value, epochs, key params."""
    from search.space import Hyperparams, short

    ua = trial.user_attrs
    state = "DIVERGED" if outcome(trial) == DIVERGED else trial.state.name
    value = (
        trial.value if trial.value is not None else metric.best(trial.intermediate_values.values())
    )
    val = f"{value:.4f}" if value is not None and math.isfinite(value) else "  -   "
    epochs = ua.get("epochs_run", "?")
    hp = ua.get("hyperparams")
    params = short(Hyperparams.from_dict(hp)) if hp else ua.get("architecture", "")
    line = f"#{trial.number:<4} {state:<8} {metric.short} {val}  {epochs:>3} ep  {params}"
    error = str(ua.get("error", "")).strip().splitlines()
    return f"{line}  error: {error[-1]}" if error else line


def count_states(study: optuna.Study) -> tuple[int, int, int]:
    """(finished, running, waiting) trials of the study."""
    counts = count_outcomes(study.get_trials(deepcopy=False))
    return finished(counts), counts["running"], counts["waiting"]


class _AfterTrial:
    """run_study's callback after each trial: progress line, interrupt check, restart budget."""

    def __init__(self, on_trial, stop_requested, max_trials_here: int | None) -> None:
        self.on_trial, self.stop_requested = on_trial, stop_requested
        self.max_trials_here = max_trials_here
        self.ran = 0
        self.recycle = False

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.ran += 1
        if self.on_trial is not None:
            self.on_trial(trial, count_finished(study))
        if self.stop_requested is not None and self.stop_requested():
            raise KeyboardInterrupt  # out of study.optimize: this trial is already closed
        if self.max_trials_here is not None and self.ran >= self.max_trials_here:
            self.recycle = True
            study.stop()


def _our_error_in(e: BaseException) -> FsearchError | None:
    """The first of our errors (a StorageError, say) in e's chain of causes and contexts."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, FsearchError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


# How often a worker with nothing to run looks again (other workers' trials may fail or die).
IDLE_POLL_S = 2.0


def run_study(
    study: optuna.Study,
    objective: Callable,
    config: Config,
    *,
    n_trials: int,
    timeout: float | None = None,
    on_trial: Callable[[optuna.trial.FrozenTrial, int], None] | None = None,
    on_wait: Callable[[int, int], None] | None = None,
    stop_requested: Callable[[], bool] | None = None,
    max_trials_here: int | None = None,
) -> LoopResult:
    """Optimize until the study holds n_trials finished trials (or timeout / too many fails).

    Exactly n_trials, however many workers share the study: the storage refuses a new trial
    once finished + running + waiting trials reach n_trials (storage.ResilientStorage, count
    and insert in one locked transaction). A worker refused a trial does not stop: a running
    trial of another worker may still fail (its slot is free again) or its worker may die (the
    trial is re-queued as WAITING once its heartbeat is stale). So it waits, failing stale
    trials itself, until the study holds n_trials finished trials. MaxTrialsCallback alone
    overshoots: every worker checks only after its own trial ends.

    stop_requested (an interrupt that Python may have swallowed, workers.interrupts_caught)
    is checked after every trial and while waiting: KeyboardInterrupt, as for Ctrl-C.

    max_trials_here stops this process after that many trials (LoopResult.recycle is then
    True) so the caller can restart it: see workers.restart_process for why.
    """
    # Long for its docstring: the budget and waiting rules are explained where they are kept.
    from optuna.study import MaxTrialsCallback

    from search import storage as st

    start = time.perf_counter()
    failures = ConsecutiveFailures(config.study.max_consecutive_failures)
    after_trial = _AfterTrial(on_trial, stop_requested, max_trials_here)
    budgeted = st.limit_trials(study, n_trials)

    while not failures.tripped and not after_trial.recycle:
        if stop_requested is not None and stop_requested():
            raise KeyboardInterrupt
        left = None if timeout is None else timeout - (time.perf_counter() - start)
        if left is not None and left <= 0:
            break
        done, running, waiting = count_states(study)
        if done >= n_trials:
            break
        if budgeted and not waiting and done + running >= n_trials:
            if on_wait is not None:
                on_wait(done, running)
            time.sleep(IDLE_POLL_S if left is None else min(IDLE_POLL_S, left))
            st.fail_stale_trials(study)
            continue
        try:
            study.optimize(
                objective,
                timeout=left,
                # Trials that raise are recorded FAIL and the search goes on;
                # ConsecutiveFailures stops a worker whose every trial fails.
                catch=(Exception,),
                callbacks=[
                    MaxTrialsCallback(n_trials, states=finished_states()),
                    failures,
                    after_trial,
                ],
                gc_after_trial=True,
            )
        except st.TrialBudgetReached:
            continue  # the last slots went to other workers' trials: wait for them
        except Exception as e:
            # A storage failure while Optuna closes a trial trips a bug in its _run_trial
            # (an UnboundLocalError in its `finally`) that hides our one-line error: show ours.
            raise _our_error_in(e) or e  # noqa: B904 - re-raising the chain's own error
        # optimize returned by itself: n_trials reached (MaxTrialsCallback), too many
        # failures, timeout, or a sampler that ran out of points (grid) stopped the study.
        break
    if failures.tripped:
        raise TooManyFailures(
            f"{failures.limit} trials in a row failed "
            f"(last error: {' '.join(failures.last_error)}); "
            "see `error` in the trials' user attributes, fix the cause, then re-run to resume"
        )
    done = count_finished(study)
    return LoopResult(
        finished=done,
        seconds=time.perf_counter() - start,
        ran=after_trial.ran,
        recycle=after_trial.recycle and done < n_trials,
    )
