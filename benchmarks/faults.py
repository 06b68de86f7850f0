"""Fault battery: real `fsearch run` processes on real PostgreSQL (and SQLite on a tiny disk),
one fault each, then the same command again; what each did goes to BENCHMARKS.md `faults`.

    sudo? no: run as the machine's root, alone (it restarts the local PostgreSQL server and
    mounts a small tmpfs):
    .venv/bin/python -m benchmarks.faults          # takes minutes; its duration is not recorded

Each scenario runs the tiny study below to N finished trials, injects its fault mid-trial,
waits for the command to end, runs the same command again to resume (with export), and
checks what must hold whatever happened: exactly N finished trials, none RUNNING or WAITING,
trial numbers without duplicates or gaps, no model file in the artifact store that the study
does not list (orphans), an export whose model loads and whose card has the test accuracy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.common import markdown_table, write_section  # noqa: E402

COMMAND = ".venv/bin/python -m benchmarks.faults"
SERVER_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
N = 8
FAULT_TOML = """
[study]
name = "faults"
seed = 5
startup_trials = 2
keep_models = 2
[data]
validation_size = 500
train_size = 3000
test_size = 1000
[train]
steps_per_execution = 8
validation_batch_size = 500
[space]
layers = { low = 1, high = 2 }
width = { low = 16, high = 64, log = true }
activation = "relu"
optimizer = ["sgd", "adam"]
learning_rate = { low = 1e-3, high = 0.05, log = true }
momentum = { low = 0.0, high = 0.9 }
regularizer = "none"
reg_strength = 0.0
dropout = { low = 0.0, high = 0.3 }
batch_size = [64, 128]
epochs = 6
"""
# Short heartbeats so a killed worker's trial is re-run within seconds, yet long enough that
# busy workers on 2 cores are never taken for dead ones.
ENV = {"FSEARCH_HEARTBEAT_S": "2", "FSEARCH_GRACE_S": "10", "FSEARCH_DB_RETRY_S": "90"}


@dataclass
class Run:
    """One scenario's environment: storage URL, artifact folder, config, data."""

    url: str
    work: Path
    config: Path
    data_dir: str | None

    def cmd(self, *more: object) -> list[str]:
        cmd = [str(Path(sys.executable).parent / "fsearch"), "run", "--config", str(self.config)]
        cmd += ["--trials", str(N), "--artifacts", str(self.work / "artifacts")]
        if self.data_dir:
            cmd += ["--data-dir", self.data_dir]
        if "--jobs" not in more:  # one worker unless the scenario says: whatever the default
            cmd += ["--jobs", "1"]
        return cmd + [str(m) for m in more]

    def start(self, *more: object) -> subprocess.Popen:
        return subprocess.Popen(
            self.cmd("--no-export", *more),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **ENV, "FSEARCH_STORAGE": self.url},
            cwd=self.work,
        )


def _study(url: str):
    import optuna

    from search import storage as st

    storage = st.open_storage(url)
    try:
        return optuna.load_study(study_name="faults", storage=storage)
    except KeyError:
        return None


def training(url: str, at_least: int = 1) -> bool:
    """At least `at_least` trials are past sampling (training) and one has finished."""
    with contextlib.suppress(Exception):
        study = _study(url)
        if study is None:
            return False
        trials = study.get_trials(deepcopy=False)
        running = [t for t in trials if t.state.name == "RUNNING" and t.params]
        done = any(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
        return len(running) >= at_least and done
    return False


def wait_until(check: Callable[[], bool], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise SystemExit("faults: the study never got to a trial in training")


def last_line(out: str) -> str:
    lines = [ln for ln in out.strip().splitlines() if ln.strip()]
    return lines[-1][:140] if lines else ""


def check(run: Run) -> dict:
    """The invariants after the resume."""
    from search.artifacts import kept_models

    study = _study(run.url)
    trials = study.get_trials(deepcopy=False)
    states = [t.state.name for t in trials]
    numbers = sorted(t.number for t in trials)
    kept = {e["artifact_id"] for e in kept_models(study)}
    files = {p.name for p in (run.work / "artifacts").iterdir()}
    card = run.work / "studies" / "faults" / "best" / "model-card.json"
    card_ok = card.is_file() and "test_accuracy" in json.loads(card.read_text())
    return {
        "finished": sum(s in ("COMPLETE", "PRUNED") for s in states),
        "live": sum(s in ("RUNNING", "WAITING") for s in states),
        "numbers_ok": numbers == list(range(len(numbers))),
        "orphans": len(files - kept),
        "export_ok": card_ok and (card.parent / "model.keras").is_file(),
    }


def resume(run: Run) -> tuple[int, str]:
    """The same command again, with export; (exit code, the line that says why it failed)."""
    proc = subprocess.run(
        run.cmd(),
        capture_output=True,
        text=True,
        env={**os.environ, **ENV, "FSEARCH_STORAGE": run.url},
        cwd=run.work,
        timeout=600,
    )
    output = proc.stdout + proc.stderr
    if proc.returncode:
        print(f"the rerun failed:\n{output[-4000:]}", flush=True)
    return proc.returncode, last_line(output)


# ---------------------------------------------------------------------------- the faults


def kill_a_worker(run: Run) -> tuple[int, str]:
    """Two workers (separate machines, as it were); one is SIGKILLed mid-trial."""
    a, b = run.start("--worker", 1), run.start("--worker", 2)
    wait_until(lambda: training(run.url, at_least=2))  # both inside a trial
    a.send_signal(signal.SIGKILL)
    out, _ = b.communicate(timeout=600)
    a.wait()
    return b.returncode, last_line(out)


def signal_the_parent(sig: int) -> Callable[[Run], tuple[int, str]]:
    def fault(run: Run) -> tuple[int, str]:
        proc = run.start("--jobs", 2)
        wait_until(lambda: training(run.url))
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=300)
        return proc.returncode, last_line(out)

    fault.__doc__ = f"{signal.Signals(sig).name} to `fsearch run --jobs 2`."
    return fault


def restart_postgres(run: Run) -> tuple[int, str]:
    """The PostgreSQL server restarts under `fsearch run --jobs 2`."""
    proc = run.start("--jobs", 2)
    wait_until(lambda: training(run.url))
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True
    )
    out, _ = proc.communicate(timeout=600)
    return proc.returncode, last_line(out)


def full_disk(run: Run) -> tuple[int, str]:
    """An SQLite study on a 1 MiB file system that fills up mid-study; then the database is
    copied to a disk with room and the same command resumes it."""
    mount = run.work / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        run.url = f"sqlite:///{mount}/fsearch.db"
        proc = run.start()
        out, _ = proc.communicate(timeout=600)
        code, line = proc.returncode, last_line(out)
        roomy = run.work / "fsearch.db"
        src, dst = sqlite3.connect(mount / "fsearch.db"), sqlite3.connect(roomy)
        with contextlib.closing(src), contextlib.closing(dst):
            src.backup(dst)
        run.url = f"sqlite:///{roomy}"
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)
    return code, line


SCENARIOS: list[tuple[str, Callable[[Run], tuple[int, str]], bool]] = [
    # (name, fault, on PostgreSQL)
    ("SIGKILL one of two workers", kill_a_worker, True),
    ("SIGINT to --jobs 2", signal_the_parent(signal.SIGINT), True),
    ("SIGHUP to --jobs 2", signal_the_parent(signal.SIGHUP), True),
    ("PostgreSQL restart under --jobs 2", restart_postgres, True),
    ("SQLite on a full disk", full_disk, False),
]


def _pg(url: str):
    import psycopg

    return psycopg.connect(url.replace("+psycopg", ""), autocommit=True, connect_timeout=5)


def corrupt_database(work: Path, config: Path, data_dir: str | None) -> list:
    """An SQLite study whose file is overwritten mid-study: one clear line, no traceback."""
    db = work / "fsearch.db"
    run = Run(f"sqlite:///{db}", work, config, data_dir)
    proc = run.start()
    wait_until(lambda: training(run.url))
    with open(db, "r+b") as f:
        f.write(b"\0" * 4096)  # the header page: the file is no database any more
    out, _ = proc.communicate(timeout=300)
    return [
        "SQLite file overwritten mid-study",
        proc.returncode,
        last_line(out),
        "-",
        "-",
        "-",
        "-",
        "-",
        "yes" if "Traceback" in out else "no",
    ]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default=os.environ.get("FSEARCH_DATA_DIR"))
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md")
    args = ap.parse_args(argv)
    server = os.environ.get("FSEARCH_TEST_PG", SERVER_DEFAULT)
    rows = []
    with tempfile.TemporaryDirectory(prefix="fsearch-faults-") as tmp:
        config = Path(tmp) / "faults.toml"
        config.write_text(FAULT_TOML)
        for name, fault, on_pg in SCENARIOS:
            work = Path(tmp) / uuid.uuid4().hex[:6]
            work.mkdir()
            db = f"fsearch_faults_{work.name}"
            url = f"sqlite:///{work}/fsearch.db"
            if on_pg:
                with _pg(server) as admin:
                    admin.execute(f'CREATE DATABASE "{db}"')
                url = f"{server.rsplit('/', 1)[0]}/{db}"
            run = Run(url, work, config, args.data_dir)
            try:
                t0 = time.perf_counter()
                code, line = fault(run)
                again, again_line = resume(run)
                got = check(run)
                rows.append(
                    [name, code, line, again if again == 0 else f"{again}: {again_line}",
                     got["finished"], got["live"], "yes" if got["numbers_ok"] else "NO",
                     got["orphans"], "yes" if got["export_ok"] else "NO"]
                )  # fmt: skip
                print(f"{name}: {time.perf_counter() - t0:.0f} s; {rows[-1]}", flush=True)
            finally:
                if on_pg:
                    with _pg(server) as admin:
                        admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
                shutil.rmtree(work, ignore_errors=True)
        work = Path(tmp) / "corrupt"
        work.mkdir()
        rows.append(corrupt_database(work, config, args.data_dir))
    body = (
        f"Each fault hits a tiny study (3,000 images, up to 6 epochs) on its way to N = {N} "
        "finished trials; then the same command runs again (with export). Columns: the "
        "faulted command's exit code and last line; the rerun's exit code; then, after the "
        "rerun, finished trials (must be N), trials RUNNING or WAITING (must be 0), trial "
        "numbers without duplicates or gaps, model files the study does not list (orphans, "
        "must be 0), and whether the export's model and card are whole. The corrupt-database "
        "row checks only that the failure is one line without a traceback.\n\n"
        + markdown_table(
            [
                "fault",
                "exit",
                "its last line",
                "rerun exit",
                "finished",
                "live",
                "numbers ok",
                "orphans",
                "export ok / traceback",
            ],
            rows,
        )  # fmt: skip
    )
    print(body)
    if not args.no_write:
        write_section("faults", body, COMMAND)


if __name__ == "__main__":
    main()
