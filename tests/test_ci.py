"""CI itself: .ci/run lints and then runs the README's test command; under CI a test whose
optional package (JAX, Jupyter, moto/boto3) is missing fails instead of skipping."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.helpers import ROOT


def _commands(text: str) -> list[str]:
    """The shell lines of a script or an indented README block, continuations joined and
    comments and trailing `# ...` notes dropped."""
    text = text.replace("\\\n", " ")
    lines = (re.sub(r"\s+#\s.*$", "", line).strip() for line in text.splitlines())
    return [re.sub(r"\s+", " ", line) for line in lines if line and not line.startswith("#")]


def test_ci_lints_with_the_readmes_ruff_commands_then_runs_the_readmes_test_command():
    readme = _commands((ROOT / "README.md").read_text())
    test_cmd = "./scripts/setup.sh && .venv/bin/python -m pytest"
    assert test_cmd in readme  # quick start and Development
    (lint,) = [line for line in readme if line.startswith(".venv/bin/ruff check ")]
    assert "ruff format --check" in lint
    ci = _commands((ROOT / ".ci" / "run").read_text())
    assert lint in ci and test_cmd in ci, ci
    assert ci.index("./scripts/setup.sh") < ci.index(lint) < ci.index(test_cmd), ci


NEEDS_TESTS = {
    # The marker, a pytest.importorskip inside a test and one at module level.
    "test_marker.py": """
        import pytest

        @pytest.mark.needs("fsearch_no_such_module", install="nothing to install")
        def test_marked():
            pass
    """,
    "test_inside.py": """
        import pytest

        def test_imports_inside():
            pytest.importorskip("nbformat.fsearch_no_such_module")
    """,
    "test_module.py": """
        import pytest

        pytest.importorskip("boto3.fsearch_no_such_module")

        def test_module_level():
            pass
    """,
}


def _run_pytest(tmp_path: Path, ci: str | None, *files: str) -> subprocess.CompletedProcess:
    """pytest on tests of missing optional packages (all three, or the files named), with
    this suite's conftest."""
    tests = tmp_path / "tests"
    if not tests.exists():
        tests.mkdir()
        for name in ("conftest.py", "helpers.py", "tiny_study.py"):
            shutil.copy(ROOT / "tests" / name, tests / name)
        for name, code in NEEDS_TESTS.items():
            (tests / name).write_text(textwrap.dedent(code))
        (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rfs",
            "-p",
            "no:cacheprovider",
            *([f"tests/{f}" for f in files] or ["tests"]),
        ],  # fmt: skip
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_missing_optional_package_skips_a_test_but_fails_it_under_ci(tmp_path):
    here = _run_pytest(tmp_path, ci=None)
    assert here.returncode == 0 and "3 skipped" in here.stdout, here.stdout[-3000:]
    ci = _run_pytest(tmp_path, "true", "test_marker.py", "test_inside.py")
    # The marker fails the test's setup (an error), importorskip the test itself.
    assert ci.returncode == 1 and "1 failed, 1 error" in ci.stdout, ci.stdout[-3000:]
    assert "fsearch_no_such_module not installed: nothing to install" in ci.stdout
    # At module level the skip happens while collecting: under CI a collection error, which
    # stops the run (exit 2) before any test.
    ci = _run_pytest(tmp_path, "true", "test_module.py")
    assert ci.returncode == 2 and "1 error" in ci.stdout, ci.stdout[-3000:]
    assert "could not import 'boto3.fsearch_no_such_module'" in ci.stdout
