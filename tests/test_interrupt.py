"""Ctrl-C (SIGINT) and SIGTERM on a real `fsearch run` process: nothing is left RUNNING."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import fsearch_run_cmd

pytestmark = pytest.mark.slow


def _states(db: Path) -> dict[str, int]:
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return dict(conn.execute("SELECT state, COUNT(*) FROM trials GROUP BY state"))
    except sqlite3.OperationalError:  # tables not created yet
        return {}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_closes_the_running_trial_and_resume_reaches_n(tiny_config, real_data_dir, sig):
    tiny_config.write_text(tiny_config.read_text().replace("epochs = 2", "epochs = 6"))
    cmd = fsearch_run_cmd(tiny_config, real_data_dir)
    db = Path("studies/fsearch.db")
    proc = subprocess.Popen(
        [*cmd, "--trials", "50"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            s = _states(db)
            if s.get("RUNNING") and (s.get("COMPLETE", 0) + s.get("PRUNED", 0)) >= 1:
                break
            time.sleep(0.2)
        else:
            pytest.fail("no trial finished in 120 s")
        time.sleep(0.5)  # inside the next trial's training
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Run the same command again to resume" in err and "Traceback" not in err
    states = _states(db)
    assert "RUNNING" not in states
    finished = states.get("COMPLETE", 0) + states.get("PRUNED", 0)
    target = finished + 1
    done = subprocess.run(
        [*cmd, "--trials", str(target)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    states = _states(db)
    assert states.get("COMPLETE", 0) + states.get("PRUNED", 0) == target
    assert "RUNNING" not in states
