"""A seeded one-worker study reproduces trial for trial, whatever else runs on the machine
(issue #21, "Reproducibility")."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.helpers import invoke

HOG = "import time\nend = time.time() + 600\nwhile time.time() < end:\n    pass\n"


def _trial_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if re.match(r"#\d+\s", line)]


@pytest.mark.slow
def test_seeded_tiny_study_prints_the_same_trial_lines_with_a_cpu_hog_beside_it(
    tiny_config, real_data_dir, tmp_path
):
    args = ["run", "--config", tiny_config, "--data-dir", real_data_dir, "--trials", "6",
            "--no-export"]  # fmt: skip
    quiet = invoke(*args, "--storage", f"sqlite:///{tmp_path / 'a.db'}")
    assert quiet.exit_code == 0, quiet.output
    # Busy loops on every core: the study's threads are preempted at other moments.
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(2)]
    try:
        loaded = invoke(*args, "--storage", f"sqlite:///{tmp_path / 'b.db'}")
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert loaded.exit_code == 0, loaded.output
    lines = _trial_lines(quiet.output)
    assert len(lines) == 6
    assert _trial_lines(loaded.output) == lines
