"""The run's progress bar: elapsed time and ETA count from the run's first start."""

from __future__ import annotations

import io

from rich.console import Console

from search.progress import RunProgress, _clock, _ElapsedColumn, _EtaColumn


def _bar(**kw) -> RunProgress:
    console = Console(file=io.StringIO(), width=120, force_terminal=False)
    return RunProgress(console, best=None, **kw)


def test_eta_from_the_rate_since_the_first_start():
    bar = _bar(target=20, already=12, started=(1000.0, 10))
    # 5 trials in 100 s since the start -> 20 s each, 5 to go -> 100 s from now.
    assert bar.eta_at(15, now=1100.0) == 1200.0
    assert bar.eta_at(10, now=1100.0) is None  # nothing finished since the start: no rate
    assert bar.eta_at(20, now=1100.0) == 1100.0


def test_eta_is_never_later_than_the_timeout_deadline():
    bar = _bar(target=100_000, already=0, started=(1000.0, 0), deadline=1500.0)
    assert bar.eta_at(20, now=1100.0) == 1500.0  # at the rate: days; the timeout: 400 s
    assert bar.eta_at(0, now=1100.0) == 1500.0  # no rate yet: the deadline
    assert (
        _bar(target=20, already=0, started=(1000.0, 0), deadline=5000.0).eta_at(10, now=1100.0)
        == 1200.0
    )


def test_columns_keep_counting_across_a_restart(monkeypatch):
    # A worker that restarted itself 3725 s after the run began, 30 trials done since. The
    # clock is fixed: a slow machine between the lines below must not change the readings.
    from search import progress

    now = 1_000_000.0
    monkeypatch.setattr(progress.time, "time", lambda: now)
    bar = _bar(target=200, already=30, started=(now - 3725, 0))
    task = bar.progress.tasks[0]
    assert str(_ElapsedColumn().render(task)) == "1:02:05"
    # 30 trials in 3725 s -> 170 more take 21,108.3 s = 5:51:48.
    assert str(_EtaColumn().render(task)) == "eta 5:51:48"


def test_no_eta_before_the_first_trial():
    bar = _bar(target=5, already=0)
    assert str(_EtaColumn().render(bar.progress.tasks[0])) == "eta -:--:--"
    assert _clock(59.9) == "0:00:59"


def test_following_a_study_counts_the_trials_other_processes_finish():
    import optuna

    study = optuna.create_study(direction="maximize")
    bar = _bar(target=4, already=0)
    with bar.following(study, every=0.05):
        study.add_trial(optuna.trial.create_trial(value=0.5))
        study.add_trial(optuna.trial.create_trial(value=0.8))
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED))
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    # Read once more when the workers have ended: finished = complete + pruned, failed not.
    task = bar.progress.tasks[0]
    assert task.completed == 3
    assert task.fields["best"] == "0.8000"


def test_a_worker_without_a_bar_still_prints_its_trial_lines():
    import optuna

    out = io.StringIO()
    bar = RunProgress(Console(file=out, width=120), target=2, already=0, best=None, show=False)
    with bar:
        bar.on_trial(optuna.trial.create_trial(value=0.7, params={}, distributions={}), 1)
    text = out.getvalue()
    assert "COMPLETE" in text and "0.7000" in text
    assert "trials" not in text and "━" not in text
