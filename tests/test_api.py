"""The Python API as a notebook user drives it, and its agreement with the CLI."""

from __future__ import annotations

import dataclasses
import inspect
import os
import signal
from pathlib import Path

import pytest
from rich.console import Console

import search
from search import api, cli
from tests.helpers import invoke, n_finished, trial_states


def test_every_run_flag_is_a_run_option():
    """cli.run hands its parameters to RunOptions by name: the two lists must agree."""
    flags = set(inspect.signature(cli.run).parameters) - {"config"}
    assert flags == {f.name for f in dataclasses.fields(api.RunOptions)}


def test_worker_args_forward_the_options_but_never_the_storage_url():
    opts = api.RunOptions.of(
        storage="postgresql+psycopg://bob:s3cret@db/x",
        study="s",
        timeout=60.0,
        sampler="random",
        allow_space_change=True,
        jobs=2,
        worker=3,
        export_dir="out",
    )
    args = opts.worker_args(config=Path("c.toml"), trials=7)
    assert args == [
        "run",
        "--no-export",
        "--jobs",
        "1",
        "--trials",
        "7",
        "--config",
        "c.toml",
        "--timeout",
        "60.0",
        "--study",
        "s",
        "--sampler",
        "random",
        "--allow-space-change",
    ]
    assert not any("s3cret" in a for a in args)


def test_an_unknown_option_is_a_config_error_that_suggests_the_name():
    with pytest.raises(
        search.ConfigError, match="unknown run option 'trails'; did you mean 'trials'"
    ):
        search.run(None, trails=5)


def test_bad_option_values_raise_the_cli_error_classes(workdir):
    with pytest.raises(search.ConfigError, match="--trials must be at least 1"):
        search.run(trials=0)
    with pytest.raises(search.StorageError, match="is malformed"):
        search.run(trials=1, storage="not a url")
    assert not Path("studies").exists()  # refused before anything was written


def test_jobs_with_an_edited_config_object_asks_for_the_file(tiny_config):
    cfg = search.load_config(tiny_config)
    edited = dataclasses.replace(cfg, source="<edited>")
    with pytest.raises(search.ConfigError, match="pass the file's path"):
        search.run(edited, trials=2, jobs=2)


def _interrupt_during_training(monkeypatch, *, at_call: int) -> None:
    """Press Ctrl-C (SIGINT to this process) inside the at_call-th training from now on."""
    from search import objective

    real_train = objective.train
    calls = []

    def train(*args, **kwargs):
        calls.append(1)
        if len(calls) == at_call:
            os.kill(os.getpid(), signal.SIGINT)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(objective, "train", train)


@pytest.mark.slow
def test_notebook_session_runs_interrupts_resumes_to_n_exports_and_reports(
    tiny_config, real_data_dir, monkeypatch
):
    quiet = Console(quiet=True)
    data = str(real_data_dir)
    result = search.run(tiny_config, trials=3, data_dir=data, export=False, console=quiet)
    assert result.finished == 3 and result.created and result.trials == 3
    assert sum(result.counts.values()) == 3 and result.best_trial is not None

    handler = signal.getsignal(signal.SIGINT)
    _interrupt_during_training(monkeypatch, at_call=2)
    with pytest.raises(search.StudyInterrupted) as stopped:
        search.run(tiny_config, trials=8, data_dir=data, export=False, console=quiet)
    assert isinstance(stopped.value, KeyboardInterrupt)
    assert stopped.value.target == 8 and 4 <= stopped.value.finished < 8
    assert signal.getsignal(signal.SIGINT) is handler  # the notebook's handler is back
    states = trial_states()
    assert "RUNNING" not in states and states["FAIL"] == 1  # the trial was closed
    _interrupt_during_training(monkeypatch, at_call=0)  # no more interrupts

    resumed = search.run(tiny_config, trials=8, data_dir=data, console=quiet)
    assert not resumed.created and resumed.finished == 8
    assert resumed.counts["failed"] == 1
    assert n_finished(trial_states()) == 8

    best = search.best("tiny")
    assert best["trial"] == resumed.best_trial.number and best["value"] == resumed.best_value
    assert resumed.card["trial"] == best["trial"]  # run exported the best kept model
    assert (resumed.export_dir / "model.keras").is_file()
    card = search.export("tiny", out="again", data_dir=data)
    assert card["trial"] == best["trial"] and 0 < card["test_accuracy"] <= 1
    assert len(search.trials("tiny")) == 9
    rep = search.report("tiny")
    assert (rep.out / "index.html").is_file() and rep.studies == ["tiny"]


@pytest.mark.slow
def test_the_api_and_the_cli_make_the_same_study(tiny_config, real_data_dir):
    common = ["--config", tiny_config, "--data-dir", real_data_dir, "--no-export"]
    r = invoke("run", *common, "--trials", 4, "--storage", "sqlite:///cli.db")
    assert r.exit_code == 0, r.output
    by_api = search.run(
        tiny_config,
        trials=4,
        storage="sqlite:///api.db",
        data_dir=str(real_data_dir),
        export=False,
        console=Console(quiet=True),
    ).study
    by_cli = search.load_study("tiny", storage="sqlite:///cli.db")
    assert by_cli.user_attrs == {
        k: v for k, v in by_api.user_attrs.items() if k != "fsearch:kept_models"
    } | {"fsearch:kept_models": by_cli.user_attrs["fsearch:kept_models"]}
    # The same seeds draw the same start-up trials (startup_trials = 2: random sampling).
    assert [t.params for t in by_cli.trials[:2]] == [t.params for t in by_api.trials[:2]]
    assert len(by_cli.trials) == len(by_api.trials) == 4


def test_jobs_starts_no_more_workers_than_trials_left(tiny_config, real_data_dir, monkeypatch):
    # The default --jobs auto with --trials 1 must give the one trial the whole machine
    # (one worker of all the threads), not start a second worker to exit at once.
    from search import cpus, workers

    started = []

    def fake_workers(args, *, jobs, **_):
        started.append((jobs, cpus.threads_per_worker(jobs)))
        return [0] * jobs

    monkeypatch.setattr(workers, "run_local_workers", fake_workers)
    monkeypatch.setattr(cpus, "cores", lambda: 2)
    for trials in (1, 3):
        search.run(
            tiny_config,
            trials=trials,
            jobs=2,
            storage=f"sqlite:///{tiny_config.parent / 'cap.db'}",
            data_dir=str(real_data_dir),
            export=False,
        )
    assert started == [(1, 2), (2, 1)]
