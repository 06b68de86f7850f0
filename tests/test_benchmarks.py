"""The benchmarks' bookkeeping: time to target from a study database, BENCHMARKS.md sections."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os

import optuna
import pytest

from benchmarks import common
from benchmarks.time_to_accuracy import time_to_target

T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


def _trial(state, start_s, end_s, curve, value=None):
    return optuna.trial.FrozenTrial(
        number=0,
        state=state,
        value=value,
        datetime_start=T0 + dt.timedelta(seconds=start_s),
        datetime_complete=T0 + dt.timedelta(seconds=end_s),
        params={},
        distributions={},
        user_attrs={},
        system_attrs={},
        intermediate_values=dict(enumerate(curve)),
        trial_id=0,
    )


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "tta.db"
    study = optuna.create_study(study_name="tta", storage=f"sqlite:///{path}", direction="maximize")
    P, C = optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.COMPLETE
    study.add_trial(_trial(C, 0, 100, [0.80, 0.85], value=0.85))
    # Reaches the target at its second epoch, then is pruned: still counts, at its end.
    study.add_trial(_trial(P, 100, 250, [0.86, 0.893, 0.88]))
    study.add_trial(_trial(C, 250, 400, [0.88, 0.895], value=0.895))
    return path


def test_time_to_target_is_the_end_of_the_first_trial_that_reached_it(db):
    seconds, finished, best = time_to_target(db, 0.89)
    assert seconds == 250.0
    assert finished == 3
    assert best == pytest.approx(0.895)


def test_time_to_target_none_when_never_reached(db):
    seconds, finished, best = time_to_target(db, 0.90)
    assert seconds is None
    assert finished == 3
    assert best == pytest.approx(0.895)


def test_write_section_replaces_only_its_own_block(tmp_path, monkeypatch):
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\n<!-- a:start -->\nold a\n<!-- a:end -->\n\nkept text\n")
    monkeypatch.setattr(common, "BENCHMARKS_MD", md)
    monkeypatch.setattr(common, "machine_line", lambda: "test CPU, 2 cores")
    common.write_section("a", "new a", "python -m benchmarks.a")
    common.write_section("b", "new b", "python -m benchmarks.b")
    text = md.read_text()
    assert "old a" not in text and "new a" in text and "kept text" in text
    assert text.index("<!-- a:end -->") < text.index("<!-- b:start -->")
    assert "Reproduce: `python -m benchmarks.b`" in text
    assert text.count("<!-- a:start -->") == 1


def test_markdown_table():
    assert common.markdown_table(["x", "y"], [[1, "a"]]).splitlines() == [
        "| x | y |",
        "|---|---|",
        "| 1 | a |",
    ]


def test_running_time_leaves_out_a_pause_between_runs():
    from benchmarks.study import running_time

    C = optuna.trial.TrialState.COMPLETE
    trials = [
        _trial(C, 0, 100, [0.5]),
        _trial(C, 101, 200, [0.5]),  # 1 s between trials: the study's own time
        _trial(C, 3800, 3900, [0.5]),  # stopped at 200 s, resumed an hour later
    ]
    assert running_time(trials) == (300.0, 3600.0)
    assert running_time(trials[:2]) == (200.0, 0.0)


def _sleeper(code_on_sigint: int = 130, run_for: float = 60.0, exit_code: int = 0):
    import subprocess
    import sys

    # The stand-in says "ready" once its handler is installed; a SIGINT that arrives while the
    # interpreter is still starting exits 1 (CI caught that race), which is not what is tested.
    prog = (
        "import signal, sys, time\n"
        f"signal.signal(signal.SIGINT, lambda *a: sys.exit({code_on_sigint}))\n"
        "print('ready', flush=True)\n"
        f"time.sleep({run_for})\n"
        f"sys.exit({exit_code})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", prog], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    return proc


def test_wait_for_target_interrupts_an_arm_once_its_study_reached_the_target(db, tmp_path):
    from benchmarks.time_to_accuracy import wait_for_target

    reached, never = _sleeper(), _sleeper(run_for=0.5)
    wait_for_target(
        {"a": reached, "b": never}, {"a": db, "b": tmp_path / "missing.db"}, 0.89, poll=0.2
    )
    # Interrupted: left alone, it would have slept its 60 s and exited 0.
    assert reached.returncode == 130
    assert never.returncode == 0


def test_wait_for_target_fails_on_an_arm_that_crashed(db, tmp_path):
    from benchmarks.time_to_accuracy import wait_for_target

    crashed = _sleeper(run_for=0.1, exit_code=3)
    with pytest.raises(SystemExit, match="exited 3"):
        wait_for_target({"a": crashed}, {"a": tmp_path / "none.db"}, 0.89, poll=0.1)


def test_a_variant_arm_changes_one_study_key_of_the_default(tmp_path):
    import dataclasses

    from benchmarks.time_to_accuracy import variant_config
    from search.config import load_config

    name, path = variant_config("bootstrap_count=5", tmp_path / "v.toml")
    assert name == "fsearch, bootstrap_count = 5"
    changed, default = load_config(path), load_config()
    assert changed.study.bootstrap_count == 5
    assert dataclasses.replace(changed.study, bootstrap_count=default.study.bootstrap_count) == (
        default.study
    )
    assert changed.space == default.space
    with pytest.raises(SystemExit, match="no \\[study\\] key 'bootstrap_cont'"):
        variant_config("bootstrap_cont=5", tmp_path / "w.toml")
    with pytest.raises(SystemExit, match="bootstrap_count"):
        variant_config("bootstrap_count=-1", tmp_path / "x.toml")
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        variant_config("bootstrap_count", tmp_path / "y.toml")


def test_median_time_is_a_bound_only_when_it_falls_on_a_missed_target():
    from benchmarks.time_to_accuracy import median_time, ratio_text

    # The missed seed took longer than 900 s, so it lies above the median: still exact.
    assert median_time([(60.0, 3, 0.9), (None, 9, 0.88), (120.0, 4, 0.9)], 900) == (120.0, True)
    assert median_time([(60.0, 3, 0.9), (None, 9, 0.88), (None, 4, 0.9)], 900) == (900.0, False)
    assert median_time([(60.0, 3, 0.9), (None, 9, 0.88)], 900) == (480.0, False)
    assert median_time([(60.0, 3, 0.9), (30.0, 1, 0.9)], 900) == (45.0, True)
    assert ratio_text(60, True, 120, True) == "0.50"
    assert ratio_text(60, True, 900, False) == "< 0.07"  # random did not reach it: a bound
    assert ratio_text(900, False, 120, True).startswith("n/a")


def test_summary_gives_each_arm_its_median_and_ratio_to_random():
    import argparse

    from benchmarks.time_to_accuracy import DEFAULT_ARM, RANDOM_ARM, summarize

    args = argparse.Namespace(
        budget=600.0, seeds=2, target=0.89, side_by_side=False, full_budget=False
    )
    results = {
        DEFAULT_ARM: [(60.0, 5, 0.895), (180.0, 9, 0.891)],
        RANDOM_ARM: [(240.0, 4, 0.892), (None, 30, 0.885)],
        "fsearch, bootstrap_count = 3": [(300.0, 20, 0.9), (420.0, 25, 0.893)],
    }
    text = summarize(results, args, share=2)
    assert "ratio fsearch / random **< 0.29**" in text  # 120 s vs at least (240 + 600) / 2
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if "|" in line}
    assert "| 1.0 min, 3.0 min | 2.0 min | < 0.29 |" in rows[DEFAULT_ARM]
    assert "| 4.0 min, > 10 min | > 7.0 min | 1 |" in rows[RANDOM_ARM]
    assert "| 6.0 min | < 0.86 |" in rows["fsearch, bootstrap_count = 3"]


FAKE_NVIDIA_SMI = """#!/bin/sh
# A stand-in for nvidia-smi: one GPU; with -l, three samples (util 20, 40, 60 %).
case "$*" in
  *"-l"*) for u in 20 40 60; do echo "0, $u, 1000$u"; done ;;
  *) echo "0, NVIDIA H200, GPU-aaa, 143771" ;;
esac
"""


def test_gpu_benchmark_samples_nvidia_smi_and_averages_the_samples_within_the_trials(
    tmp_path, monkeypatch
):
    from benchmarks import gpu

    smi = tmp_path / "nvidia-smi"
    smi.write_text(FAKE_NVIDIA_SMI)
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    with gpu.GpuSampler(tmp_path / "smi.csv") as sampler:
        sampler.thread.join(timeout=10)  # the fake ends after three samples
    assert [r[1:] for r in sampler.rows] == [(0, 20.0, 100020.0), (0, 40.0, 100040.0),
                                             (0, 60.0, 100060.0)]  # fmt: skip
    assert len((tmp_path / "smi.csv").read_text().splitlines()) == 4

    # The samples' times on a fake clock, one second apart (the real ones may all fall in
    # the same millisecond): trials ran from the second sample to the third, so the mean is
    # over those two.
    t = [1_700_000_000.0 + i for i in range(len(sampler.rows))]
    rows = [(at, *row[1:]) for at, row in zip(t, sampler.rows, strict=True)]
    storage = f"sqlite:///{tmp_path}/b.db"
    study = optuna.create_study(study_name=gpu.STUDY, storage=storage, direction="maximize")
    for value, curve, state in [(0.9, [0.85, 0.9], optuna.trial.TrialState.COMPLETE),
                                (None, [0.8], optuna.trial.TrialState.PRUNED)]:  # fmt: skip
        study.add_trial(
            optuna.trial.FrozenTrial(
                number=0,
                state=state,
                value=value,
                datetime_start=dt.datetime.fromtimestamp(t[1] - 0.01),
                datetime_complete=dt.datetime.fromtimestamp(t[2] + 0.01),
                params={},
                distributions={},
                user_attrs={"device": "gpu:0 NVIDIA H200"},
                system_attrs={},
                intermediate_values=dict(enumerate(curve)),
                trial_id=0,
            )
        )
    s = gpu.summarize(storage, rows, t[0], t[2] + 60)
    assert (s["trials_finished"], s["complete"], s["pruned"], s["failed"]) == (2, 1, 1, 0)
    assert s["best_val_accuracy"] == 0.9 and s["devices"] == ["gpu:0 NVIDIA H200"]
    assert s["gpu_samples"] == 2 and s["mean_gpu_util_pct"] == 50.0
    assert s["peak_gpu_memory_mib"] == 100060.0 and s["minutes_to_0.89"] is not None
    assert s["wall_minutes"] == round(62 / 60, 2)  # first sample to 60 s after the last


def test_export_modes_keeps_rows_of_studies_not_redone_and_drops_a_redone_studys_rows(
    tmp_path, monkeypatch
):
    from benchmarks import export_modes

    md = tmp_path / "BENCHMARKS.md"
    md.write_text(
        "<!-- export-modes:start -->\nMeasured 2026-11-28 23:36 UTC on a machine.\n\n"
        "| study | export | trials | validation | test accuracy | export s | parameters | MiB |\n"
        "|---|---|---|---|---|---|---|---|\n"
        "| seed 1 | selected | #92 | 0.9022 | 0.8968 | 3 | 1,487,695 | 17.1 |\n"
        "| seed 2 | selected | #7 | 0.9000 | 0.8950 | 3 | 1,000 | 1.0 |\n"
        "| fashion-mnist-mlp (142 trials) | selected | #132 | 0.9047 | 0.8972 | 3 | 9 | 7.2 |\n"
        "\n| export | median | min | max | studies |\n|---|---|---|---|---|\n"
        "| selected | 0.8968 | 0.8968 | 0.8968 | 1 |\n<!-- export-modes:end -->\n"
    )
    monkeypatch.setattr(export_modes, "BENCHMARKS_MD", md)
    rows = export_modes.kept_rows({"seed 2", "fashion-mnist-mlp (200 trials)"})
    assert rows == [
        ["seed 1", "selected", "#92", "0.9022", "0.8968", "3", "1,487,695", "17.1",
         "2026-11-28 23:36"],
    ]  # fmt: skip


def test_export_modes_names_a_card_by_members_and_refit():
    from benchmarks.export_modes import mode_of

    def card(n: int, refit: bool) -> dict:
        return {"export": {"members": list(range(n)), **({"refit": []} if refit else {})}}

    assert mode_of(card(1, False), 3) == "selected" and mode_of(card(1, True), 3) == "refit"
    assert mode_of(card(3, False), 3) == "ensemble 3"
    assert mode_of(card(3, True), 3) == "ensemble 3 + refit" and mode_of(card(2, True), 3) is None


def test_jobs_arm_result_measures_from_the_launch_and_counts_trials_by_the_minute(tmp_path):
    from benchmarks.jobs import arm_result

    path = tmp_path / "jobs.db"
    study = optuna.create_study(
        study_name="jobs", storage=f"sqlite:///{path}", direction="maximize"
    )
    P, C = optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.COMPLETE
    study.add_trial(_trial(C, 0, 100, [0.80, 0.885], value=0.885))
    study.add_trial(_trial(P, 100, 700, [0.893, 0.88]))  # 0.89 at its end: 700 s + 60 s
    study.add_trial(_trial(C, 700, 1900, [0.88, 0.901], value=0.901))
    got = arm_result(path, T0 - dt.timedelta(seconds=60))
    assert got[0.89] == 760 and got[0.9] == 1960
    assert (got["10 min"], got["30 min"], got["finished"], got["complete"]) == (1, 2, 3, 2)
    assert got["best"] == 0.901


def test_jobs_log_joins_a_kept_studys_export_to_its_arm_and_seed_and_shows_it_by_seed(tmp_path):
    import argparse

    from benchmarks import jobs

    args = argparse.Namespace(log=str(tmp_path / "j.jsonl"), trials=200, budget=600.0)
    res = {"finished": 9, "complete": 2, "0.89": 60.0, "0.9": None, "10 min": 9}
    res |= {"30 min": 9, "best": 0.9, "wall": 620.0}
    for arm, seed in [("auto", 1), ("auto", 2), ("1", 1)]:
        jobs._log(args, arm, seed, "result", res)
    jobs._log(args, "auto", 2, "export", {"test_accuracy": 0.9011, "seconds": 150.0})
    jobs._log(args, "auto", 3, "export", {"test_accuracy": 0.5, "seconds": 1.0})  # no run
    jobs._log(args, "1", 1, "export", {"test_accuracy": 0.5, "seconds": 1.0})
    jobs._log(args, "1", 1, "result", res)  # run again after that export: not its model
    got = jobs.logged(args, ["auto", "1"])
    assert [r.get("test") for r in got["auto"]] == [None, 0.9011] and "test" not in got["1"][0]
    assert got["auto"][1]["export s"] == 150.0 and len(got["auto"]) == 2
    table = jobs.summarize(got, args)
    assert "| exported test acc | export min |" in table
    assert "| -, 0.9011 | -, 2.5 |" in table and "| 0.9000 | - | - |" in table
    assert "| --jobs auto | 1, 2 | 1.0, 1.0 (median 1.0) |" in table
    assert "| --jobs 1 | 1 | 1.0 |" in table  # the seeds column says which seed a value is


def test_jobs_export_kept_refuses_a_study_with_no_run_logged_under_its_budget_and_trials(
    tmp_path,
):
    # Once an export ran with the default --budget 900 on a 3600-second study: it was logged
    # where no run could claim it and the section lost it. Now it stops before exporting.
    import argparse

    from benchmarks import jobs

    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "jobs-auto-2.db").write_bytes(b"")
    args = argparse.Namespace(
        log=str(tmp_path / "j.jsonl"), trials=200, budget=3600.0, export_kept=str(kept)
    )
    res = {"finished": 9, "complete": 2, "0.89": 60.0, "0.9": None, "10 min": 9}
    res |= {"30 min": 9, "best": 0.9, "wall": 620.0}
    jobs._log(args, "auto", 2, "result", res)
    args.budget = 900.0
    with pytest.raises(SystemExit, match="no run of --jobs auto seed 2 with --budget 900"):
        jobs.export_kept(args, ["auto"], tmp_path)
    assert len((tmp_path / "j.jsonl").read_text().splitlines()) == 1  # nothing exported


def test_jobs_table_gives_the_median_when_more_than_half_the_seeds_reached_the_target():
    import argparse

    from benchmarks import jobs

    args = argparse.Namespace(trials=200, budget=3600.0)
    runs = []
    for seed, t in [(0, 672.0), (1, 360.0), (2, None)]:
        r = {"finished": 9, "complete": 2, 0.89: 60.0, 0.9: t, "10 min": 9, "30 min": 9}
        runs.append(r | {"best": 0.9, "wall": 620.0, "seed": seed})
    table = jobs.summarize({"1": runs, "auto": runs[1:]}, args)
    assert "| 11.2, 6.0, > 60 (median 11.2) |" in table  # the one left out sorts last
    assert "| 6.0, > 60 |" in table  # two seeds, one short: no median


def test_epochs_spent_splits_epochs_and_seconds_by_outcome_and_stop_epoch():
    from benchmarks.epochs_spent import analyse

    P, C = optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.COMPLETE
    trials = []
    for state, start, end, epochs, width, batch, spe in [
        (C, 0, 100, 12, 64, 256, 2.0),
        (P, 100, 110, 1, 512, 256, 6.0),
        (P, 110, 130, 3, 512, 512, 4.0),
        (P, 130, 140, 1, 32, 512, 1.0),
    ]:
        t = _trial(state, start, end, [0.5] * epochs, value=0.9 if state == C else None)
        t.user_attrs.update(
            {
                "epochs_run": epochs,
                "sec_per_epoch": spe,
                "hyperparams": {"widths": [width], "batch_size": batch},
            }
        )
        trials.append(t)
    a = analyse(trials)
    assert a["by_state"]["PRUNED"]["epochs"] == 5 and a["by_state"]["COMPLETE"]["epochs"] == 12
    assert a["by_state"]["PRUNED"]["seconds"] == 40
    assert a["stops"] == {1: 2, 3: 1}
    assert a["per_epoch"][(">256", 256)] == [6.0] and a["per_epoch"][("<=64", 512)] == [1.0]


def test_epochs_spent_counts_trials_by_end_reason_over_budget_apart_from_pruned():
    from benchmarks.epochs_spent import analyse, summarize

    P, C = optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.COMPLETE
    trials = []
    for state, reason, epochs in [
        (C, "completed", 12),
        (P, "pruned", 1),
        (P, "over budget", 0),
        (P, "over budget", 0),
        (P, None, 4),  # a trial from before fsearch set end_reason: its state
    ]:
        t = _trial(state, 0, 10, [0.5] * epochs, value=0.9 if state == C else None)
        t.user_attrs["epochs_run"] = epochs
        if reason:
            t.user_attrs["end_reason"] = reason
        trials.append(t)
    a = analyse(trials)
    assert a["reasons"] == {"completed": 1, "pruned": 2, "over budget": 2}
    assert "Trials by end reason: over budget: 2, pruned: 2, completed: 1" in summarize(a, "s")


def test_one_worker_benchmarks_pass_jobs_1_and_a_faults_scenario_can_ask_for_2(tmp_path):
    # Their figures are one worker's (RSS per trial, trial lines in order, the lab's timings),
    # so they must not follow a change of `fsearch run`'s default --jobs.
    from pathlib import Path

    from benchmarks.faults import Run

    run = Run("sqlite:///x.db", tmp_path, tmp_path / "c.toml", None)
    assert run.cmd()[-2:] == ["--jobs", "1"]
    two = run.cmd("--jobs", 2)
    assert two.count("--jobs") == 1 and two[-2:] == ["--jobs", "2"]
    root = Path(__file__).resolve().parent.parent
    for path in ("benchmarks/study.py", "benchmarks/same_trials.py", "scripts/seed-lab.sh"):
        text = (root / path).read_text()
        assert '"--jobs", "1"' in text or "--jobs 1" in text, path


def test_epochs_spent_best_by_minutes_counts_complete_trials_ended_by_each_time_both_directions():
    from benchmarks.epochs_spent import best_by_minutes

    P, C = optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.COMPLETE
    trials = [
        _trial(C, 0, 200, [0.8], value=0.80),
        _trial(P, 0, 100, [0.99]),  # pruned: never the best, whatever its epochs scored
        _trial(C, 200, 700, [0.9], value=0.90),  # ends after 10 min (600 s), before 15
    ]
    best = best_by_minutes(trials, minutes=(1, 5, 10, 15))
    assert best == {"1 min": None, "5 min": 0.80, "10 min": 0.80, "15 min": 0.90, "end": 0.90}
    low = best_by_minutes(trials, minutes=(5, 15), maximize=False)  # an RMSE study's best
    assert low == {"5 min": 0.80, "15 min": 0.80, "end": 0.80}


def test_epochs_spent_finished_by_minutes_counts_complete_and_pruned_not_failed_and_the_span():
    from benchmarks.epochs_spent import finished_by_minutes

    P, C, R = (
        optuna.trial.TrialState.PRUNED,
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.RUNNING,
    )
    trials = [
        _trial(C, 0, 200, [0.8], value=0.80),
        _trial(P, 30, 100, [0.5]),  # pruned trials count: they are finished
        _trial(C, 200, 700, [0.9], value=0.90),  # ends after 10 min (600 s), before 15
    ]
    running = _trial(R, 700, 900, [0.9])
    running.datetime_complete = None  # still running: not finished, not in the span
    failed = _trial(optuna.trial.TrialState.FAIL, 40, 800, [])  # as benchmarks.jobs: not counted
    done = finished_by_minutes([*trials, running, failed], minutes=(1, 5, 10, 15))
    assert done == {
        "1 min": 0,
        "5 min": 2,
        "10 min": 2,
        "15 min": 3,
        "end": 3,
        "span min": 700 / 60,
    }


def test_epochs_spent_first_trials_pace_lists_only_marked_trials_that_logged_a_pace_by_number():
    from benchmarks.epochs_spent import first_trials_pace

    C = optuna.trial.TrialState.COMPLETE
    trials = []
    for number, attrs in [
        (1, {"first_trial": "quick", "sec_per_epoch": 2.0}),
        (0, {"first_trial": "best", "sec_per_epoch": 7.5}),
        (2, {"sec_per_epoch": 1.0}),  # TPE's: not a first trial
        (3, {"first_trial": "failed before an epoch"}),  # no pace logged
    ]:
        t = _trial(C, 0, 10, [0.9], value=0.9)
        t.number = number
        t.user_attrs.update(attrs)
        trials.append(t)
    assert first_trials_pace(trials) == [(0, 7.5), (1, 2.0)]


def test_make_sampler_constant_liar_off_changes_the_suggestion_only_while_a_trial_runs():
    # benchmarks.liar and benchmarks.tpe_cost switch the liar through make_sampler itself.
    from search.config import default_config_path, load_config
    from search.runner import make_sampler
    from search.space import suggest

    config = load_config(default_config_path())
    src = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for i in range(config.study.startup_trials + 5):
        t = src.ask()
        suggest(t, config)
        src.tell(t, i / 20)
    suggest(src.ask(), config)  # left RUNNING

    def next_params(liar: bool, with_running: bool) -> dict:
        sampler = make_sampler(config.study, seed=3, constant_liar=liar)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        running = optuna.trial.TrialState.RUNNING
        study.add_trials([t for t in src.trials if with_running or t.state != running])
        t = study.ask()
        suggest(t, config)
        return t.params

    assert next_params(True, with_running=False) == next_params(False, with_running=False)
    assert next_params(True, with_running=True) != next_params(False, with_running=True)


def test_liar_simulation_runs_two_workers_at_once_on_its_clock():
    from benchmarks.liar import simulate
    from search.config import default_config_path, load_config

    class Flat:  # every trial: value 0.5, 10 simulated seconds
        def value(self, p):
            return 0.5

        def seconds(self, p):
            return 10.0

    config = load_config(default_config_path())
    one = simulate(Flat(), config, workers=1, liar=True, seed=0, trials=4)
    two = simulate(Flat(), config, workers=2, liar=True, seed=0, trials=4)
    assert [end for end, *_ in one] == [10.0, 20.0, 30.0, 40.0]
    assert [end for end, *_ in two] == [10.0, 10.0, 20.0, 20.0]


def _same_trial(number, value, params=None, state="PRUNED", epochs=1, seconds=10.0):
    return {"number": number, "state": state, "params": params or {"lr": 0.01},
            "value": value, "epochs": epochs, "seconds": seconds}  # fmt: skip


def test_same_trials_differing_flags_a_changed_value_state_or_missing_trial_not_seconds():
    from benchmarks.same_trials import differing

    a = [_same_trial(0, 0.85), _same_trial(1, 0.86), _same_trial(2, 0.87), _same_trial(3, 0.8)]
    b = [
        _same_trial(0, 0.85, seconds=99.0),  # only slower: the same trial
        _same_trial(1, 0.861),  # another value
        _same_trial(2, 0.87, state="COMPLETE"),  # another state
    ]  # trial 3 missing here
    assert [ta["number"] for ta, _ in differing(a, b)] == [1, 2, 3]
    assert differing(a, a) == []


def test_same_trials_study_trials_reads_params_state_value_and_epochs_from_the_database(tmp_path):
    from benchmarks.same_trials import study_trials

    path = tmp_path / "s.db"
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{path}", direction="maximize")
    P, C = optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.COMPLETE
    study.add_trial(_trial(C, 0, 100, [0.80, 0.85], value=0.85))
    study.add_trial(_trial(P, 100, 130, [0.70]))  # pruned: its last epoch is its value
    got = study_trials(path)
    assert [(t["number"], t["state"], t["value"], t["epochs"]) for t in got] == [
        (0, "COMPLETE", 0.85, 2),
        (1, "PRUNED", 0.7, 1),
    ]
    assert [t["seconds"] for t in got] == [100.0, 30.0]


def test_same_trials_section_gives_each_logged_run_its_ratios_here_over_base():
    from benchmarks.same_trials import section_body

    rec = {"date": "2026-12-06 21:40 UTC", "cpu": "AMD EPYC", "cores": 2, "data": "fashion-mnist",
           "base": "d201444", "here": "a50de48", "trials": 200, "differ": 0,
           "base_trials": 200, "here_trials": 200, "base_wall_s": 3000.0, "here_wall_s": 3300.0,
           "base_trial_s": 2400.0, "here_trial_s": 2400.0}  # fmt: skip
    row = section_body([rec]).splitlines()[-1]
    assert "| 200 | base | 0 of 200 |" in row and "| 50.0 | 55.0 | 1.100 |" in row
    assert row.endswith("| 40.0 | 40.0 | 1.000 |")


def test_epochs_spent_time_split_parts_timed_trials_and_counts_gaps_only_for_one_worker():
    from benchmarks.epochs_spent import time_split

    C = optuna.trial.TrialState.COMPLETE
    a = _trial(C, 0, 40, [0.8, 0.8, 0.8], value=0.8)
    a.user_attrs = {"epochs_run": 3, "build_seconds": 2.0, "first_epoch_seconds": 14.0,
                    "sec_per_epoch": 10.0, "val_seconds": 3.0}  # fmt: skip
    b = _trial(C, 45, 60, [0.8], value=0.8)
    b.user_attrs = {"epochs_run": 1, "build_seconds": 1.0, "first_epoch_seconds": 12.0,
                    "sec_per_epoch": 12.0, "val_seconds": 1.0}  # fmt: skip
    got = time_split([a, b])
    # a: epochs 14 + 2 x 10 = 34 s, of which 4 s tracing (first beyond a later epoch), 3 s
    # validation; rest of trial 40 - 2 - 34 = 4 s. b: one epoch, no tracing measurable.
    assert got == {"build": 3.0, "tracing": 4.0, "training": 27.0 + 11.0, "validation": 4.0,
                   "rest of trial": 4.0 + 2.0, "between trials": 5.0}  # fmt: skip
    c = _trial(C, 30, 50, [0.8], value=0.8)  # overlaps a: two workers
    c.user_attrs = dict(b.user_attrs)
    assert time_split([a, c])["between trials"] != time_split([a, c])["between trials"]  # NaN
    del c.user_attrs["build_seconds"]  # a failed trial: in the gaps, not in the parts
    assert time_split([c]) is None
    assert time_split([b, c])["build"] == 1.0


def test_epochs_seconds_is_the_first_epoch_plus_the_steady_rate_for_each_later_one():
    from benchmarks.common import epochs_seconds

    assert (
        epochs_seconds({"first_epoch_seconds": 5.0, "sec_per_epoch": 2.0, "epochs_run": 4}) == 11.0
    )
    assert (
        epochs_seconds({"first_epoch_seconds": 5.0, "sec_per_epoch": 2.0, "epochs_run": 1}) == 5.0
    )
    # A trial with no epochs (failed before its first) spent nothing in them.
    assert epochs_seconds({"sec_per_epoch": None}) == 0.0


def test_steady_is_the_median_of_the_epochs_after_the_first_or_the_only_epoch():
    from benchmarks import epoch, precision
    from benchmarks.common import steady

    # The first epoch traces the graph: it never counts when a later one exists.
    assert steady([9.0, 2.0, 4.0, 3.0]) == 3.0
    assert steady([9.0, 2.0]) == 2.0
    assert steady([7.5]) == 7.5
    # One definition for both benchmarks that print it.
    assert epoch.steady is steady
    assert "steady" not in vars(precision)  # its workers import it from common


def test_jobs_late_arm_runs_the_default_study_with_its_late_rung_keys_set(tmp_path):
    from benchmarks import jobs
    from search.config import load_config

    flags = jobs.arm_config(["first", "late"], tmp_path)
    assert flags[0] == "--config"
    study = load_config(flags[1]).study
    assert (study.late_rung, study.late_rung_keep) == (8, 2)
    assert study.name == load_config().study.name  # otherwise the default study
    assert jobs.arm_config(["first"], tmp_path) == []
    assert jobs.arm_label("auto+late") == "--jobs auto late_rung = 8, late_rung_keep = 2"


def test_rungs_replay_stops_complete_trials_below_the_best_half_and_counts_what_it_saves():
    import copy
    import datetime as dt

    import optuna

    from benchmarks.rungs import replay

    attrs = {"first_epoch_seconds": 3.0, "sec_per_epoch": 2.0, "epochs_run": 12}
    trials = []
    t0 = dt.datetime(2026, 12, 7)
    # Trial 0 starts first but reaches epoch 8 last (a minute after the others): in start
    # order it would be the first at the rung and go on; in reaching order it is stopped.
    for k, (at_8, final, late) in enumerate(
        [(0.85, 0.91, 60), (0.9, 0.93, 0), (0.8, 0.92, 0), (0.7, 0.86, 0), (0.95, 0.96, 0)]
    ):
        t = optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE,
            value=final,
            intermediate_values={e: at_8 if e == 8 else 0.5 for e in range(1, 13)},
            user_attrs={**attrs, "build_seconds": late},
        )
        t.number, t.datetime_start = k, t0 + dt.timedelta(seconds=k)
        t.datetime_complete = t.datetime_start + dt.timedelta(seconds=30)
        trials.append(t)
    pruned = optuna.trial.create_trial(
        state=optuna.trial.TrialState.PRUNED,
        intermediate_values={1: 0.3},
        user_attrs={**attrs, "epochs_run": 1},
    )
    pruned.number, pruned.datetime_start = 5, t0
    pruned.datetime_complete = t0 + dt.timedelta(seconds=5)
    # Reaching order 1 (0.9), 2 (0.8), 3 (0.7), 4 (0.95), 0 (0.85); kept: the best
    # len // 2 of the values so far (at least the best): 0.8 is below 0.9 of 2, 0.7 below
    # 0.9 of 3, 0.85 below the 2nd best (0.9) of 5.
    got = replay([*trials, pruned], 8, 2)
    assert got["stopped"] == 3 and got["complete"] == 5
    assert got["epochs saved"] == 12 / 61  # 4 epochs each, of 5 x 12 + 1
    assert got["time saved"] == 24 / 128  # 2 s per epoch; 5 x (3 + 11 x 2) + 3
    # Ranked 4, 1, 2 (0.96, 0.93, 0.92): the 3rd best (trial 2) is stopped.
    assert got["best kept"] and got["top kept"] == 2 and got["best drop"] == 0
    trials[2].user_attrs["first_trial"] = "known"  # never pruned, so never stopped
    got = replay([*trials, pruned], 8, 2)
    assert got["stopped"] == 2 and got["top kept"] == 3
    # Minimizing the negated values stops the same trials.
    flipped = []
    for t in [*trials, pruned]:
        f = copy.deepcopy(t)
        f.intermediate_values = {e: -v for e, v in t.intermediate_values.items()}
        if t.value is not None:
            f.value = -t.value
        flipped.append(f)
    assert replay(flipped, 8, 2, maximize=False) == got


def test_caps_replay_counts_the_time_over_a_cap_and_the_best_complete_trial_within_it():
    import datetime as dt

    import optuna

    from benchmarks.caps import replay, summarize

    t0 = dt.datetime(2026, 12, 7)
    C, P = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED

    def trial(k, state, n_params, epochs, value=None, per_epoch=2.0):
        t = optuna.trial.create_trial(
            state=state,
            value=value,
            intermediate_values={e: 0.5 for e in range(1, epochs + 1)},
            user_attrs={
                "first_epoch_seconds": per_epoch + 1,
                "sec_per_epoch": per_epoch,
                "epochs_run": epochs,
                "n_params": n_params,
            },
        )
        t.number, t.datetime_start = k, t0 + dt.timedelta(seconds=k)
        t.datetime_complete = t.datetime_start + dt.timedelta(seconds=30)
        return t

    trials = [
        trial(0, C, 2_500_000, 12, 0.91, per_epoch=10.0),  # the best, over 2M: 11 + 11 x 10 s
        trial(1, C, 1_400_000, 12, 0.905),  # 3 + 11 x 2 = 25 s
        trial(2, C, 300_000, 12, 0.90),  # 25 s
        trial(3, P, 3_000_000, 1, per_epoch=10.0),  # pruned at epoch 1: 11 s
        trial(4, P, 100_000, 4),  # 3 + 3 x 2 = 9 s
    ]
    failed = optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL)  # no n_params
    failed.datetime_start = failed.datetime_complete = t0
    got = replay([*trials, failed], 2_000_000)
    assert (got["finished"], got["over"]) == (5, 2)
    assert got["time saved"] == (121 + 11) / (121 + 25 + 25 + 11 + 9)
    assert not got["best within"] and got["top within"] == 2
    assert got["best drop"] == pytest.approx(0.005)
    # A cap at the best net's size keeps it: nothing lost, only the 3M trial's time saved.
    got = replay(trials, 2_500_000)
    assert got["best within"] and got["top within"] == 3 and got["best drop"] == 0
    assert got["time saved"] == 11 / 191
    # A cap under every complete trial leaves none to select.
    assert replay(trials, 200_000)["best drop"] == float("inf")
    table = summarize({2_000_000: [replay(trials, 2_000_000)]}, ["s"], [trials[0]])
    assert "| 2M | 40% | 69% | 0 of 1 | 2 (min 2) | 0.0050 | 0.0050 |" in table


def test_caps_command_line_reads_each_kept_study_file_and_prints_its_section_with_no_write(
    tmp_path, monkeypatch, capsys
):
    import optuna

    from benchmarks import caps, common

    C = optuna.trial.TrialState.COMPLETE
    dbs = []
    for name, best_params in (("a", 2_500_000), ("b", 1_000_000)):
        db = tmp_path / name / "jobs-x-1.db"
        db.parent.mkdir()
        study = optuna.create_study(storage=f"sqlite:///{db}", direction="maximize")
        for n_params, value in ((best_params, 0.91), (500_000, 0.90)):
            study.add_trial(
                optuna.trial.create_trial(
                    state=C,
                    value=value,
                    intermediate_values={1: value},
                    user_attrs={"first_epoch_seconds": 3.0, "epochs_run": 1, "n_params": n_params},
                )
            )
        dbs.append(str(db))
    monkeypatch.setattr(common, "write_section", lambda *a: pytest.fail("--no-write wrote"))
    monkeypatch.setattr("sys.argv", ["caps", *dbs, "--caps", "2000000", "--no-write"])
    caps.main()
    out = capsys.readouterr().out
    assert "2 finished studies (a/jobs-x-1, b/jobs-x-1)" in out
    # a: its best (2.5M) over the cap, half its trials and time; b: all within.
    assert "| 2M | 25% | 25% | 1 of 2 | 1.5 (min 1) | 0.0050 | 0.0100 |" in out


def test_jobs_refuses_an_unknown_arm_part_before_running_any_arm(monkeypatch, capsys):
    from benchmarks import jobs

    def no_run(*a, **k):
        raise AssertionError("an arm ran")

    monkeypatch.setattr(jobs, "run_arm", no_run)
    monkeypatch.setattr("sys.argv", ["jobs", "--arms", "auto,auto+lat", "--no-write"])
    with pytest.raises(SystemExit) as e:
        jobs.main()
    assert e.value.code == 2
    assert "arm 'auto+lat': unknown part 'lat'" in capsys.readouterr().err


def test_known_good_fastest_orders_trials_by_their_seconds_to_the_target_value(tmp_path):
    import optuna

    from benchmarks.known_good import known_entries

    storage = f"sqlite:///{tmp_path / 'k.db'}"
    study = optuna.create_study(study_name="k", storage=storage, direction="maximize")
    timing = {"build_seconds": 1.0, "first_epoch_seconds": 3.0, "sec_per_epoch": 2.0}
    for width, curve, spe in (
        (100, [0.85, 0.88, 0.89, 0.90], 2.0),  # 0.89 at epoch 3: 1 + 3 + 2 x 2 = 8 s
        (200, [0.89, 0.91, 0.92, 0.93], 9.0),  # the best, 0.89 at epoch 1: 1 + 3 = 4 s
        (300, [0.80, 0.85, 0.86, 0.87], 1.0),  # never reaches 0.89
        (400, [0.86, 0.895, 0.90, 0.90], 1.0),  # 0.89 at epoch 2: 1 + 3 + 1 = 5 s
    ):
        study.add_trial(
            optuna.trial.create_trial(
                params={"width": width},
                distributions={"width": optuna.distributions.IntDistribution(16, 1024)},
                value=max(curve),
                intermediate_values=dict(enumerate(curve, start=1)),
                user_attrs={**timing, "sec_per_epoch": spe, "epochs_run": len(curve)},
            )
        )
    fast = known_entries(storage, "k", 3, fastest=0.89)
    assert [p["width"] for _, p in fast] == [200, 400, 100]
    assert "val_accuracy >= 0.8900 after 4.0 s of its own, 0.9300 at the end" in fast[0][0]
    (best,) = known_entries(storage, "k", 1)
    assert best[1]["width"] == 200 and "val_accuracy 0.9300" in best[0]


def test_jobs_arm_without_first_runs_with_no_first_trials_and_with_first_with_first_trials(
    tmp_path, monkeypatch
):
    import argparse
    import subprocess

    from benchmarks import jobs

    commands = []

    def fake_run(cmd, **kwargs):
        commands.append(cmd)
        return subprocess.CompletedProcess(cmd, 1)

    monkeypatch.setattr(jobs.subprocess, "run", fake_run)
    args = argparse.Namespace(trials=2, budget=10.0, keep=None, log=None)
    for arm in ("auto", "auto+first", "auto+first@two-known"):
        with pytest.raises(SystemExit):  # the fake run fails, so the arm stops there
            jobs.run_arm(arm, 0, args, tmp_path)
    assert "--no-first-trials" in commands[0] and "--first-trials" not in commands[0]
    for tagged in commands[1:]:
        assert "--first-trials" in tagged and "--no-first-trials" not in tagged


def test_jobs_arms_tagged_with_the_code_they_ran_are_logged_and_shown_apart(tmp_path):
    import argparse

    from benchmarks import jobs

    args = argparse.Namespace(log=str(tmp_path / "j.jsonl"), trials=200, budget=600.0)
    res = {"finished": 9, "complete": 2, "0.89": 60.0, "0.9": None, "10 min": 9}
    res |= {"30 min": 9, "best": 0.9, "wall": 620.0}
    jobs._log(args, "auto+first@one-known", 1, "result", res)
    jobs._log(args, "auto+first@two-known", 1, "result", res | {"0.89": 30.0})
    got = jobs.logged(args, ["auto+first@one-known", "auto+first@two-known"])
    assert [r[0.89] for rs in got.values() for r in rs] == [60.0, 30.0]
    table = jobs.summarize(got, args)
    assert "| --jobs auto --first-trials (one-known) | 1 | 1.0 |" in table
    assert "| --jobs auto --first-trials (two-known) | 1 | 0.5 |" in table
    assert jobs.arm_parts("auto+first+late@x-2") == ("auto", ["first", "late"], "x-2")


def test_jobs_refuses_an_arm_tag_that_cannot_name_a_file(monkeypatch, capsys):
    from benchmarks import jobs

    monkeypatch.setattr(jobs, "run_arm", lambda *a, **k: pytest.fail("an arm ran"))
    monkeypatch.setattr("sys.argv", ["jobs", "--arms", "auto+first@a/b", "--no-write"])
    with pytest.raises(SystemExit) as e:
        jobs.main()
    assert e.value.code == 2 and "a tag is letters, digits and '-'" in capsys.readouterr().err


def test_known_good_quickest_orders_trials_at_the_value_by_their_seconds_in_all_across_studies(
    tmp_path,
):
    import optuna

    from benchmarks.known_good import quickest_entries

    storages = []
    timing = {"build_seconds": 1.0, "first_epoch_seconds": 3.0}
    for name, trials in (
        ("a", [(100, 0.90, 2.0, 4), (200, 0.88, 0.1, 4)]),  # 1 + 3 + 3 x 2 = 10 s; too low
        ("b", [(300, 0.91, 1.0, 4), (400, 0.895, 1.0, 9)]),  # 7 s; 12 s
    ):
        storage = f"sqlite:///{tmp_path / name}.db"
        study = optuna.create_study(study_name="k", storage=storage, direction="maximize")
        for width, value, spe, epochs in trials:
            study.add_trial(
                optuna.trial.create_trial(
                    params={"width": width},
                    distributions={"width": optuna.distributions.IntDistribution(16, 1024)},
                    value=value,
                    user_attrs={**timing, "sec_per_epoch": spe, "epochs_run": epochs},
                )
            )
        storages.append(storage)
    got = quickest_entries(storages, "k", 5, 0.895)
    assert [p["width"] for _, p in got] == [300, 100, 400]  # 7, 10, 12 s; 0.88 left out
    assert "(k, seed None, " in got[0][0] and "/b.db), val_accuracy 0.9100 after 7.0 s" in got[0][0]


def test_precision_summary_pairs_each_configs_two_precisions_and_divides_float32_by_bf16():
    import argparse

    from benchmarks.precision import pair, summarize

    def rec(kind, index, seed, precision, spe, val=0.9, seconds=10.0):
        return {
            "kind": kind,
            "index": index,
            "seed": seed,
            "precision": precision,
            "net": f"net{index}",
            "sec_per_epoch": spe,
            "first_epoch": 2 * spe,
            "epochs_seconds": 4 * spe,
            "seconds": seconds,
            "best_val": val,
            "epochs": 3,
        }

    records = [
        rec("speed", 1, 0, "mixed_bfloat16", 1.0),
        rec("speed", 0, 0, "float32", 4.0),
        rec("speed", 1, 0, "float32", 1.0),
        rec("speed", 0, 0, "mixed_bfloat16", 2.0),
        rec("accuracy", 0, 0, "float32", 3.0, val=0.90),
        rec("accuracy", 0, 0, "mixed_bfloat16", 2.0, val=0.91),
    ]
    assert [(f["index"], b["index"]) for f, b in pair(records, "speed")] == [(0, 0), (1, 1)]
    assert all(f["precision"] == "float32" for f, _ in pair(records, "speed"))
    args = argparse.Namespace(procs=2, speed_epochs=3, known=1)
    text = summarize(records, args)
    # Speed-ups 2.0x and 1.0x: median 1.50x; summed s/epoch 5.0 against 3.0.
    assert "speed-up median **1.50x**, lowest 1.00x, highest 2.00x" in text
    assert "5.0 against 3.0 (**1.67x**)" in text
    assert "| 0.9000 | 0.9100 | +0.0100 | 10 / 10 | 6.0 / 4.0 | 3.00 / 2.00 | 12 / 8 |" in text
    assert "| net0 | 4.00 | 2.00 | 2.00x | 8.00 / 4.00 |" in text


def test_epochs_spent_pace_by_parameters_buckets_each_net_by_its_parameter_count_and_batch():
    from benchmarks.epochs_spent import analyse, params_bucket, summarize

    # 784-64-10: 50,890 parameters; 784-512-10: 407,050; 784-1024x2-10: 1,863,690; x3: 2.9M.
    assert params_bucket({"widths": [64], "batch_size": 256}) == "<0.3M"
    assert params_bucket({"widths": [512], "batch_size": 256}) == "0.3-1M"
    assert params_bucket({"widths": [1024, 1024], "batch_size": 256}) == "1-2M"
    assert params_bucket({"widths": [1024] * 3, "batch_size": 256}) == ">=2M"
    P = optuna.trial.TrialState.PRUNED
    trials = []
    for start, widths, batch, spe in [
        (0, [512], 256, 6.0),
        (10, [512], 512, 5.0),
        (20, [1024] * 3, 512, 9.0),
        (30, [512], 256, 4.0),
    ]:
        t = _trial(P, start, start + 10, [0.5])
        t.user_attrs.update(
            {
                "epochs_run": 1,
                "sec_per_epoch": spe,
                "hyperparams": {"widths": widths, "batch_size": batch},
            }
        )
        trials.append(t)
    a = analyse(trials)
    assert dict(a["per_params"]) == {
        ("0.3-1M", 256): [6.0, 4.0],
        ("0.3-1M", 512): [5.0],
        (">=2M", 512): [9.0],
    }
    text = summarize(a, "s")
    assert (
        "| 0.3-1M | 256 | 2 | 5.00 |\n| 0.3-1M | 512 | 1 | 5.00 |\n| >=2M | 512 | 1 | 9.00 |"
        in text
    )


def test_jobs_bf16_arm_runs_the_default_study_with_mixed_bfloat16_hidden_layers_only(tmp_path):
    from benchmarks import jobs
    from search.config import Fixed, load_config

    default = load_config()
    cfg = load_config(jobs.arm_config(["first", "bf16"], tmp_path)[1])
    assert cfg.space["precision"] == Fixed("mixed_bfloat16")
    assert cfg.space | {"precision": Fixed("float32")} == default.space
    assert cfg.study == default.study
    both = load_config(jobs.arm_config(["late", "bf16"], tmp_path)[1])
    assert (both.study.late_rung, both.space["precision"]) == (8, Fixed("mixed_bfloat16"))
    label = jobs.arm_label("auto+first+bf16")
    assert label == "--jobs auto --first-trials precision = mixed_bfloat16"


def test_jobs_precauto_arm_runs_the_default_study_with_precision_auto_only(tmp_path):
    from benchmarks import jobs
    from search.config import Fixed, load_config

    default = load_config()
    cfg = load_config(jobs.arm_config(["first", "precauto"], tmp_path)[1])
    assert cfg.space["precision"] == Fixed("auto")
    assert {k: v for k, v in cfg.space.items() if k != "precision"} == {
        k: v for k, v in default.space.items() if k != "precision"
    }
    assert cfg.study == default.study
    assert jobs.arm_label("auto+first+precauto@precision-hour") == (
        "--jobs auto --first-trials precision = auto (precision-hour)"
    )


def test_jobs_cap2m_arm_runs_the_default_study_with_max_params_2m_only(tmp_path):
    from benchmarks import jobs
    from search.config import load_config

    default = load_config()
    cfg = load_config(jobs.arm_config(["first", "cap2m"], tmp_path)[1])
    assert cfg.study.max_params == 2_000_000
    assert dataclasses.replace(cfg.study, max_params=default.study.max_params) == default.study
    assert cfg.space == default.space
    assert jobs.arm_label("auto+first+cap2m@caps-pair") == (
        "--jobs auto --first-trials max_params = 2000000 (caps-pair)"
    )
