"""A worker restarts itself every FSEARCH_RECYCLE_TRIALS trials (TensorFlow's memory) and the
study goes on to exactly N, with --timeout counted from the first start."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import sqlite3
import subprocess

import pytest

from tests.helpers import DEFAULT_DB, fsearch_run_cmd, n_finished, trial_states

pytestmark = pytest.mark.slow


def _fsearch_run(tiny_config, data_dir, *more: object, trials: int, recycle: str):
    """`fsearch run` of the tiny study in a real process, restarting every `recycle` trials."""
    cmd = fsearch_run_cmd(tiny_config, data_dir, "--trials", trials, *more)
    env = {**os.environ, "FSEARCH_RECYCLE_TRIALS": recycle}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


def test_worker_restarts_reach_exactly_n_and_the_time_said_covers_every_trial(
    tiny_config, real_data_dir
):
    proc = _fsearch_run(tiny_config, real_data_dir, trials=5, recycle="2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("restarting this worker after 2 trials") == 2
    assert "done: 5/5 finished" in proc.stdout
    states = trial_states()
    with contextlib.closing(sqlite3.connect(DEFAULT_DB)) as conn:
        numbers = [n for (n,) in conn.execute("SELECT number FROM trials ORDER BY number")]
        first_start, last_end = conn.execute(
            "SELECT MIN(datetime_start), MAX(datetime_complete) FROM trials"
        ).fetchone()
    assert n_finished(states) == 5
    assert "RUNNING" not in states and numbers == list(range(len(numbers)))
    # The time since the first start, not since the last restart: the run began before trial
    # #0 and ended after trial #4, so the time it says spans all five trials and both restarts
    # (timed from the last restart, it would cover trial #4 and one start-up only). Compared
    # with the study's own timestamps, not with the test's clock: a busy machine slows both.
    said = float(re.search(r"in (\d+) s this run", proc.stdout).group(1))
    span = dt.datetime.fromisoformat(last_end) - dt.datetime.fromisoformat(first_start)
    assert said + 0.5 >= span.total_seconds(), (said, span)  # printed rounded to 1 s


def test_bad_recycle_setting_is_one_line(tiny_config, real_data_dir):
    proc = _fsearch_run(tiny_config, real_data_dir, trials=1, recycle="often")
    assert proc.returncode == 2
    assert "FSEARCH_RECYCLE_TRIALS must be a whole number" in proc.stderr
    assert not DEFAULT_DB.exists()  # refused before touching the database


def test_timeout_counts_from_the_first_start_across_restarts(tiny_config, real_data_dir):
    """Restarting after every trial, a 10 s --timeout still ends the run long before 40
    trials: each restart keeps the first start's deadline instead of starting a new one."""
    proc = _fsearch_run(tiny_config, real_data_dir, "--timeout", 10, trials=40, recycle="1")
    assert proc.returncode == 0, proc.stderr
    assert "restarting this worker after 1 trials" in proc.stdout
    assert "stopped early (timeout); run the same command again to reach 40" in proc.stdout
    states = trial_states()
    assert 1 <= n_finished(states) < 40 and "RUNNING" not in states


def test_jobs_workers_started_with_python_m_restart_themselves_and_reach_exactly_n(
    tiny_config, real_data_dir
):
    # --jobs workers run `python -m search.cli`: a restart must run that module again, not
    # the file sys.argv names (search/cli.py became a package once, and a restart then
    # failed with "can't open file .../search/cli.py").
    proc = _fsearch_run(tiny_config, real_data_dir, "--jobs", 2, trials=4, recycle="1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("restarting this worker after 1 trials") >= 2
    assert "done: 4/4 finished" in proc.stdout
    assert n_finished(trial_states()) == 4 and "RUNNING" not in trial_states()


def test_a_data_run_with_jobs_and_restarts_keeps_the_config_it_made(workdir):
    # --data without a config builds its Config directly; --jobs workers and every restart
    # read it back from the run's pinned JSON, not from a TOML text or a re-read of the file.
    from search.config import Config
    from search.data.init_toml import study_config
    from tests import datafiles
    from tests.helpers import FSEARCH

    path = datafiles.write_table(datafiles.wine_columns(), workdir / "wine.csv")
    cmd = [str(FSEARCH), "run", "--data", str(path), "--target", "cultivar", "--trials", "4",
           "--jobs", "2", "--no-export"]  # fmt: skip
    env = {**os.environ, "FSEARCH_RECYCLE_TRIALS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "restarting this worker after 1 trials" in proc.stdout
    assert "done: 4/4 finished" in proc.stdout
    from search.api import load_study

    stored = load_study("wine-mlp").user_attrs["fsearch:config"]
    made, _, _ = study_config(str(path), "cultivar")
    assert Config.from_json(stored).fingerprint() == made.fingerprint()
