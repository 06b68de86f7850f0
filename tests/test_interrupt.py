"""Ctrl-C (SIGINT), SIGTERM and SIGHUP on a real `fsearch run` process: the trial it was
training is closed as FAIL, nothing is left RUNNING, and the study resumes."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import time

import pytest

from tests.helpers import fsearch_run_cmd, n_finished, trial_states

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_interrupt_closes_the_running_trial_and_resume_reaches_n(tiny_config, real_data_dir, sig):
    tiny_config.write_text(tiny_config.read_text().replace("epochs = 2", "epochs = 6"))
    cmd = fsearch_run_cmd(tiny_config, real_data_dir)
    proc = subprocess.Popen(
        [*cmd, "--trials", "50"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if n_finished(trial_states()) >= 1 and _training():
                break
            time.sleep(0.05)
        else:
            pytest.fail("no trial finished in 120 s")
        proc.send_signal(sig)  # a trial is training: it takes a second or more
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Run the same command again to resume" in err and "Traceback" not in err
    states = trial_states()
    assert "RUNNING" not in states and states.get("FAIL") == 1, states
    target = n_finished(states) + 1
    done = subprocess.run(
        [*cmd, "--trials", str(target)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    states = trial_states()
    assert n_finished(states) == target
    assert "RUNNING" not in states


def _training() -> bool:
    """A RUNNING trial past sampling (its parameters stored): its model is being trained."""
    with contextlib.suppress(sqlite3.OperationalError):
        with contextlib.closing(sqlite3.connect("studies/fsearch.db", timeout=5)) as conn:
            return bool(
                conn.execute(
                    "SELECT COUNT(*) FROM trials t WHERE t.state = 'RUNNING' AND EXISTS "
                    "(SELECT 1 FROM trial_params p WHERE p.trial_id = t.trial_id)"
                ).fetchone()[0]
            )
    return False
