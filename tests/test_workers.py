"""Fault tests: real `fsearch run` worker processes sharing one study.

Tiny data, a few trials, bounded waits: each test takes under a minute or two on two cores.
What they prove: a study ends with exactly --trials finished trials whatever happens to the
workers (SIGKILL mid-trial, every database connection cut mid-study), nothing is left
RUNNING, a dead worker's parameters are run again, and no password leaks.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid

import optuna
import pytest

from search import storage as st
from search import studies, workers
from search.config import parse_config
from tests.helpers import (
    FSEARCH,
    n_finished,
    pg_terminate,
    raw_config,
    study_states,
    trial_states,
)

pytestmark = pytest.mark.slow

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def load(url: str, name: str) -> optuna.Study:
    # Through open_storage: its schema lock keeps us from racing the workers' CREATE TABLE.
    return optuna.load_study(study_name=name, storage=st.open_storage(url))


def poll(url: str, name: str) -> dict[str, int]:
    """Trial states now, closing the connection after (polling must not pile up
    connections: PostgreSQL refuses clients past max_connections, workers included).
    TRAINING counts the RUNNING trials past sampling: the objective stores "architecture"
    once every parameter is suggested (a trial with some parameters may still be sampling)."""
    storage = st.open_storage(url)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
        out = study_states(study)
        out["TRAINING"] = sum(
            1
            for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            if "architecture" in t.user_attrs
        )
        return out
    finally:
        storage.engine.dispose()


def training_trials(url: str, name: str) -> tuple[int, set[int]]:
    """(finished trials, numbers of the RUNNING trials past sampling) now; poll's rules."""
    storage = st.open_storage(url)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        finished = sum(1 for t in trials if t.state in FINISHED)
        training = {
            t.number
            for t in trials
            if t.state == optuna.trial.TrialState.RUNNING and "architecture" in t.user_attrs
        }
        return finished, training
    finally:
        storage.engine.dispose()


def wait_training(url: str, name: str, workers_training: int, *, timeout: float) -> None:
    """Until `workers_training` trials are past sampling (training) and one has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.3)
        try:
            c = poll(url, name)
        except KeyError:  # study not created yet
            continue
        if c["TRAINING"] >= workers_training and n_finished(c) >= 1:
            return
    pytest.fail(f"{workers_training} workers never trained at once: {poll(url, name)}")


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [str(FSEARCH), "run", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env},
    )


def finish(procs: list[subprocess.Popen], timeout: float) -> list[str]:
    """Wait for every process (killing all of them at the deadline); their outputs."""
    deadline = time.monotonic() + timeout
    outs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            outs.append(out)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return outs


def assert_exactly(study: optuna.Study, n: int) -> None:
    trials = study.get_trials(deepcopy=False)
    states = study_states(study)
    assert n_finished(states) == n, states
    assert "RUNNING" not in states and "WAITING" not in states, states
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials))), numbers  # no duplicates, no gaps


@pytest.mark.postgres
def test_killed_worker_trial_is_rerun_and_study_ends_at_n(pg_url, tiny_config, real_data_dir):
    """3 workers; one is SIGKILLed in the middle of a trial."""
    # Eight-epoch trials: with four, the 7 trials once all ended before the 0.3 s poll saw
    # three training at the same time (a CI run, 2026-12-03), and the test never killed one.
    tiny_config.write_text(tiny_config.read_text().replace("epochs = 2", "epochs = 8"))
    name, n = f"kill-{uuid.uuid4().hex[:6]}", 7
    # Beats every 2 s, dead after 10 s without one: three TF workers on 2 cores can starve a
    # heartbeat thread for a few seconds, which must not make a live trial look dead.
    env = {"FSEARCH_HEARTBEAT_S": "2", "FSEARCH_GRACE_S": "10", "FSEARCH_STORAGE": pg_url}
    args = ["--config", tiny_config, "--data-dir", real_data_dir, "--study", name]
    procs = [start([*args, "--trials", n, "--no-export", "--worker", i], env) for i in range(3)]
    try:
        # Every worker training (a trial still sampling has no parameters to re-run); generous:
        # a loaded CI machine is slow to start TF.
        wait_training(pg_url, name, 3, timeout=300)
        procs[0].send_signal(signal.SIGKILL)
        outs = finish(procs[1:], timeout=300)
    finally:
        for p in procs:
            p.kill()
    for p, out in zip(procs[1:], outs, strict=True):
        assert p.returncode == 0, out
        assert "Traceback" not in out
    study = load(pg_url, name)
    assert_exactly(study, n)
    trials = study.get_trials(deepcopy=False)
    lost = [t for t in trials if t.user_attrs.get("end_reason") == "lost"]
    assert len(lost) == 1 and lost[0].state.name == "FAIL"
    rerun = [t for t in trials if t.system_attrs.get("failed_trial") == lost[0].number]
    assert len(rerun) == 1 and rerun[0].state in FINISHED
    assert rerun[0].params == lost[0].params and rerun[0].params
    print(f"\nkill: {study_states(study)}; trial #{lost[0].number} re-run as #{rerun[0].number}")


@pytest.mark.postgres
def test_jobs_survive_terminated_connections(pg_url, tiny_config, real_data_dir, tmp_path):
    """--jobs 2 on PostgreSQL while every connection to the database is cut, repeatedly.

    The URL carries a password (trust auth accepts any) that must appear nowhere.
    """
    secret = "pw-" + uuid.uuid4().hex[:8]
    url = pg_url.replace("postgres@", f"postgres:{secret}@", 1)
    assert secret in url
    # Four-epoch trials: each one trains long enough for the poll below to see it.
    tiny_config.write_text(tiny_config.read_text().replace("epochs = 2", "epochs = 4"))
    name, n = f"cut-{uuid.uuid4().hex[:6]}", 8
    out_dir = tmp_path / "best"
    proc = start(
        [
            "--config", tiny_config, "--data-dir", real_data_dir, "--study", name,
            "--trials", n, "--jobs", 2, "--export-dir", out_dir,
        ],
        {"FSEARCH_STORAGE": url},
    )  # fmt: skip
    # Cut on events, not on a clock: once for each trial seen training, while the study is
    # short of n, so the cuts land inside trials however fast or slow the machine is.
    cut_in: list[int] = []  # trial numbers training when their cut landed
    try:
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                finished, training = training_trials(pg_url, name)
            except KeyError:
                continue
            new = sorted(training - set(cut_in))
            if new and finished < n and pg_terminate(pg_url) > 0:
                cut_in.extend(new)
        out = finish([proc], timeout=max(1.0, deadline - time.monotonic()))[0]
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert len(cut_in) >= 3, f"connections were cut while only {cut_in} trained"
    assert "Traceback" not in out and secret not in out
    study = load(pg_url, name)
    assert_exactly(study, n)
    assert "FAIL" not in study_states(study), [t.user_attrs.get("error") for t in study.trials]
    for t in study.trials:
        assert secret not in json.dumps(t.user_attrs) + json.dumps(t.system_attrs)
    assert secret not in json.dumps(study.user_attrs)
    card = (out_dir / "model-card.json").read_text() + (out_dir / "model-card.md").read_text()
    assert secret not in card and "postgresql+psycopg://postgres:***@" in card
    # Every trial whose connections were cut under it still finished (none lost or failed).
    by_number = {t.number: t for t in study.trials}
    assert all(by_number[k].state in FINISHED for k in cut_in), study_states(study)
    retries = out.count("retrying in")
    print(f"\ncuts in trials {cut_in}, {retries} retried calls; {study_states(study)}")


def test_four_local_workers_on_sqlite_keep_exactly_the_best_model(tiny_config, real_data_dir):
    """--jobs 4 on the default SQLite file (WAL, busy timeout, retry): never 'locked'; and with
    keep_models = 1 the workers' concurrent updates of the kept list lose nothing: one entry,
    the best trial's, and one model file, no orphans."""
    from pathlib import Path

    from search.artifacts import kept_models

    tiny_config.write_text(tiny_config.read_text().replace("keep_models = 2", "keep_models = 1"))
    n = 8
    proc = start(
        ["--config", tiny_config, "--data-dir", real_data_dir, "--trials", n, "--jobs", 4,
         "--no-export"],
        {},
    )  # fmt: skip
    out = finish([proc], timeout=400)[0]
    assert proc.returncode == 0, out
    assert "locked" not in out and "Traceback" not in out
    study = load("sqlite:///studies/fsearch.db", "tiny")
    assert_exactly(study, n)
    assert "FAIL" not in study_states(study)
    # The work was shared: several workers finished trials (start-up lines do not count).
    assert len(set(re.findall(r"^w(\d) \| #\d+ ", out, re.M))) >= 2, out
    # One progress bar, the parent's, counting every worker's trials; none from the workers.
    assert "trials ━" in out and f" {n}/{n} best " in out
    assert "| trials" not in out
    (entry,) = kept_models(study)
    assert entry["value"] == study.best_value
    assert [p.name for p in Path("studies/artifacts").iterdir()] == [entry["artifact_id"]]


def test_a_jobs_parent_killed_by_sigkill_takes_its_workers_along(tiny_config, real_data_dir):
    """No worker outlives `fsearch run --jobs`: each gets SIGTERM when the parent dies and
    closes its trial; a trial caught between creation and its first step (a window Optuna
    leaves) is failed by the next run's sweep, so the same command resumes to exactly N."""
    tiny_config.write_text(tiny_config.read_text().replace("epochs = 2", "epochs = 6"))
    proc = start(
        ["--config", tiny_config, "--data-dir", real_data_dir, "--trials", 50, "--jobs", 2,
         "--no-export"],
        {},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not trial_states().get("RUNNING"):
            time.sleep(0.3)
        children = [
            int(pid)
            for pid in subprocess.run(
                ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
            ).stdout.split()
        ]
        assert len(children) == 2, children
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        # A worker closes its trial before it exits, and a storage call may retry for up to
        # 60 s (search/storage/_retry.py) when the database is busy: give it that and more.
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and any(_alive(pid) for pid in children):
            time.sleep(0.3)
        left = {pid: _proc_state(pid) for pid in children if _alive(pid)}
        assert not left, left
    finally:
        proc.kill()
    target = n_finished(trial_states()) + 1
    again = start(
        ["--config", tiny_config, "--data-dir", real_data_dir, "--trials", target, "--no-export"],
        {"FSEARCH_HEARTBEAT_S": "1", "FSEARCH_GRACE_S": "3"},
    )
    out = finish([again], timeout=300)[0]
    assert again.returncode == 0, out
    states = trial_states()
    assert n_finished(states) == target and "RUNNING" not in states, states


def _proc_state(pid: int) -> str:
    """A live process's state and command line, for a failure message."""
    try:
        with open(f"/proc/{pid}/status") as f:
            state = next((line.strip() for line in f if line.startswith("State:")), "?")
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return state + " " + f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError as e:
        return str(e)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (dead, not yet reaped by init) counts as gone.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ")[1][0] != "Z"


def test_a_killed_worker_is_reported_by_name_and_the_exit_is_non_zero():
    from search.errors import WorkerFailed

    e = WorkerFailed([0, -9])
    assert "worker w1 was killed by SIGKILL" in str(e) and e.exit_code == 1
    assert WorkerFailed([0, 3]).exit_code == 3


def test_a_restarted_worker_keeps_the_config_it_started_with(tiny_config, monkeypatch):
    """An edited TOML cannot change a running study: restarts and --jobs workers read the
    text pinned at the first start (FSEARCH_RUN_CONFIG), not the file."""
    monkeypatch.setattr(workers, "_restartable", True)
    # setenv first: monkeypatch then removes what pinned_config sets when the test ends (a
    # bare delenv of an absent name restores nothing, and the pinned config leaked into the
    # next test's `fsearch run --data` workers).
    monkeypatch.setenv(workers.ENV_CONFIG, "")
    monkeypatch.delenv(workers.ENV_CONFIG)
    first, text = workers.pinned_config(tiny_config)
    assert os.environ[workers.ENV_CONFIG] == text
    tiny_config.write_text(text.replace("dropout = { low = 0.0, high = 0.3 }", "dropout = 0.5"))
    again, _ = workers.pinned_config(tiny_config)  # what the restarted process reads
    assert again == first and again.fingerprint() == first.fingerprint()


def test_cores_are_split_between_workers(monkeypatch):
    assert workers.threads_per_worker(2, 2) == 1
    assert workers.threads_per_worker(3, 16) == 5
    assert workers.threads_per_worker(8, 2) == 1
    env = workers.child_env(3, 4, {"FSEARCH_STORAGE": "x"})
    assert env["FSEARCH_WORKER"] == "3" and env["TF_NUM_INTRAOP_THREADS"] == "4"
    assert env["FSEARCH_STORAGE"] == "x"


def test_worker_identity():
    from search.errors import ConfigError

    assert workers.parse_worker(None) == 0 and workers.parse_worker("7") == 7
    assert workers.parse_worker("auto") > 0
    with pytest.raises(ConfigError, match="--worker must be"):
        workers.parse_worker("-1")


def test_interrupts_caught_turns_signals_into_keyboard_interrupt_marks_the_stop_and_restores():
    signals = (signal.SIGINT, signal.SIGTERM)
    before = {sig: signal.getsignal(sig) for sig in signals}
    with pytest.raises(KeyboardInterrupt), workers.interrupts_caught() as interrupted:
        assert all(signal.getsignal(sig) is not before[sig] for sig in signals)
        assert not interrupted.is_set()
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # the handler raises at once; this line is never finished
    assert interrupted.is_set()
    assert {sig: signal.getsignal(sig) for sig in signals} == before


def test_a_second_stop_signal_only_marks_the_request_and_never_raises_again():
    """While the first interrupt is being handled (Optuna closing the trial), another signal
    (a second Ctrl-C, SIGTERM from a dying parent) must not interrupt that work."""
    with workers.interrupts_caught() as stop:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises at once; this line is never finished
        os.kill(os.getpid(), signal.SIGTERM)  # the trial is being closed now
        time.sleep(0.2)  # the handler runs here, and must only mark the request
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        assert stop.is_set() and stop.signum == signal.SIGINT


_HANGS_AFTER_A_STOP = """
import signal, sys, threading
from search.signals import interrupts_caught
grace = None if sys.argv[1] == "none" else float(sys.argv[1])
try:
    with interrupts_caught(grace):
        print("ready", flush=True)
        threading.Event().wait(60)
except KeyboardInterrupt:
    # A hang on the way out: a non-daemon thread that never ends (joined at exit).
    threading.Thread(target=threading.Event().wait).start()
    print("stopping", flush=True)
"""


def _stopped_hanging_process(grace: str) -> tuple[int | None, str, float]:
    """A process that hangs after its stop signal: (exit status or None if still alive
    15 s after SIGTERM, its stderr, seconds from the signal to its end)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HANGS_AFTER_A_STOP, grace],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            return None, "", time.monotonic() - t0
        return proc.returncode, proc.stderr.read(), time.monotonic() - t0
    finally:
        proc.kill()
        proc.wait()


def test_a_stopped_process_that_hangs_on_its_way_out_ends_at_its_exit_grace_with_stacks():
    """interrupts_caught(exit_within): the worker hang seen in CI (alive 17 minutes after its
    parent's SIGKILL) ends after the grace, with every thread's stack on stderr."""
    code, err, seconds = _stopped_hanging_process("1")
    assert code == 1, err
    assert "most recent call first" in err, err
    assert 0.5 <= seconds < 15


@pytest.mark.slow
def test_without_an_exit_grace_a_stopped_process_that_hangs_is_not_ended():
    """The control: without exit_within the same process is still alive after 15 s."""
    code, _, _ = _stopped_hanging_process("none")
    assert code is None


@pytest.mark.parametrize(
    ("calls", "ends_with"),
    [("exit_watchdog(1); exit_watchdog(60)", 1),  # armed again: the earlier deadline holds
     ("exit_watchdog(1); cancel_exit_watchdog()", 0)],  # cancelled (before an exec)
    ids=["rearmed", "cancelled"],
)  # fmt: skip
def test_exit_watchdog_keeps_its_earliest_deadline_and_cancel_disarms_it(calls, ends_with):
    code = f"import time\nfrom search.signals import *\n{calls}\ntime.sleep(4)\n"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == ends_with, r.stderr


def test_only_a_jobs_worker_has_a_stop_grace(monkeypatch):
    monkeypatch.delenv(workers.ENV_PARENT, raising=False)
    assert not workers.is_worker() and workers.stop_grace() is None
    monkeypatch.setenv(workers.ENV_PARENT, "1")
    assert workers.is_worker() and workers.stop_grace() == workers.EXIT_GRACE_S
    monkeypatch.setenv("FSEARCH_DB_RETRY_S", "300")  # time to close a trial through retries
    assert workers.stop_grace() == 600


@pytest.mark.parametrize("grace", [None, 7.0], ids=["not-a-worker", "a-worker"])
def test_cli_main_arms_the_exit_watchdog_with_the_stop_grace_after_a_worker_command(
    monkeypatch, grace
):
    import search.cli as cli

    armed, ran = [], []
    monkeypatch.setattr(workers, "allow_restarts", lambda: None)
    monkeypatch.setattr(workers, "follow_parent", lambda: None)
    monkeypatch.setattr(workers, "stop_grace", lambda: grace)
    monkeypatch.setattr(workers, "exit_watchdog", armed.append)

    def app():
        ran.append(armed[:])  # not armed while the command runs
        raise SystemExit(0)

    monkeypatch.setattr(cli, "app", app)
    with pytest.raises(SystemExit):
        cli.main()
    assert ran == [[]] and armed == ([] if grace is None else [grace])


def test_a_run_catches_stop_signals_with_the_workers_stop_grace(
    monkeypatch, tiny_config, real_data_dir
):
    from tests.helpers import invoke

    real, seen = workers.interrupts_caught, []

    def spy(exit_within=None):
        seen.append(exit_within)
        return real(exit_within)

    monkeypatch.setattr(workers, "interrupts_caught", spy)
    monkeypatch.setattr(workers, "stop_grace", lambda: 123.0)
    r = invoke("run", "--config", tiny_config, "--data-dir", real_data_dir, "--trials", "1",
               "--no-export")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert seen == [123.0]


@pytest.mark.postgres
def test_sigint_to_jobs_closes_every_trial_and_resume_reaches_n(pg_url, tiny_config, real_data_dir):
    """Ctrl-C to `fsearch run --jobs 2`: forwarded once to each worker; nothing RUNNING."""
    tiny_config.write_text(tiny_config.read_text().replace("epochs = 2", "epochs = 6"))
    name = f"int-{uuid.uuid4().hex[:6]}"
    args = ["--config", tiny_config, "--data-dir", real_data_dir, "--study", name, "--no-export"]
    proc = start([*args, "--trials", 40, "--jobs", 2], {"FSEARCH_STORAGE": pg_url})
    try:
        wait_training(pg_url, name, 2, timeout=180)  # both past sampling, training
        proc.send_signal(signal.SIGINT)
        out = finish([proc], timeout=120)[0]
    finally:
        proc.kill()
    assert proc.returncode == 130, out
    assert "Run the same command again to resume" in out and "Traceback" not in out
    study = load(pg_url, name)
    # Each worker closes its trial as FAIL, or (an interrupt Python dropped, see
    # workers.interrupts_caught) finishes it and stops right after: at least one FAIL.
    states = study_states(study)
    assert "RUNNING" not in states and 1 <= states.get("FAIL", 0) <= 2, states
    target = n_finished(states) + 1
    again = start([*args, "--trials", target], {"FSEARCH_STORAGE": pg_url})
    out = finish([again], timeout=180)[0]
    assert again.returncode == 0, out
    assert_exactly(load(pg_url, name), target)


def test_run_study_stops_after_a_trial_when_an_interrupt_was_dropped(tmp_path):
    """The safety net of workers.interrupts_caught: the flag alone stops the worker."""
    from search import runner

    cfg = parse_config(raw_config())
    storage = st.open_storage(f"sqlite:///{tmp_path}/s.db", heartbeat=True)
    study, _ = studies.create_or_load_study(storage, cfg)
    ran = []

    def objective(trial):
        ran.append(trial.number)
        return trial.suggest_float("x", 0, 1)

    with pytest.raises(KeyboardInterrupt):
        runner.run_study(study, objective, cfg, n_trials=5, stop_requested=lambda: bool(ran))
    assert ran == [0] and study_states(study) == {"COMPLETE": 1}


def test_run_study_ends_at_exactly_n_with_a_slot_taken_elsewhere(tmp_path, monkeypatch):
    """A worker whose last slot is held by another worker's running trial waits; when that
    trial fails, it runs the replacement and the study ends at exactly N."""
    from search import runner

    monkeypatch.setattr(runner, "IDLE_POLL_S", 0.05)
    cfg = parse_config(raw_config())
    url = f"sqlite:///{tmp_path}/s.db"
    study, _ = studies.create_or_load_study(st.open_storage(url, heartbeat=True), cfg)
    other = optuna.load_study(study_name=study.study_name, storage=st.open_storage(url))
    held = other.ask()  # another worker's trial, running
    waits = []

    def on_wait(finished, running):
        waits.append((finished, running))
        if len(waits) == 3:
            other.tell(held, state=optuna.trial.TrialState.FAIL)  # ...which then fails

    result = runner.run_study(
        study, lambda t: t.suggest_float("x", 0, 1), cfg, n_trials=3, on_wait=on_wait
    )
    assert waits[0] == (2, 1) and result.finished == 3
    assert study_states(study) == {"COMPLETE": 3, "FAIL": 1}


@pytest.mark.postgres
def test_a_postgres_restart_under_three_workers_ends_at_exactly_n(
    pg_url, tiny_config, real_data_dir
):
    """The database server restarts (connections cut, a few seconds unreachable) while three
    workers train: each retries, and the study ends at exactly N with nothing RUNNING."""
    import shutil

    if not shutil.which("pg_ctlcluster") or "127.0.0.1" not in pg_url:
        msg = "restarting PostgreSQL needs the local Debian cluster (pg_ctlcluster)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    tiny_config.write_text(tiny_config.read_text().replace("epochs = 2", "epochs = 4"))
    name, n = f"restart-{uuid.uuid4().hex[:6]}", 9
    args = ["--config", tiny_config, "--data-dir", real_data_dir, "--study", name]
    proc = start([*args, "--trials", n, "--no-export", "--jobs", 3], {"FSEARCH_STORAGE": pg_url})
    try:
        wait_training(pg_url, name, 2, timeout=300)
        version = sorted(os.listdir("/etc/postgresql"))[-1]
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
            check=True,
            timeout=120,
        )
        out = finish([proc], timeout=400)[0]
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    assert_exactly(load(pg_url, name), n)


def test_a_jobs_worker_killed_by_a_signal_is_named_and_the_run_fails(tiny_config, real_data_dir):
    """One of two --jobs workers is SIGKILLed mid-trial: the other finishes the study (re-running
    the lost trial once its heartbeat is stale), and the parent exits non-zero naming the dead
    worker; a signal's negative exit code used to read as success."""
    tiny_config.write_text(tiny_config.read_text().replace("epochs = 2", "epochs = 4"))
    n = 6
    proc = start(
        ["--config", tiny_config, "--data-dir", real_data_dir, "--trials", n, "--jobs", 2,
         "--no-export"],
        {"FSEARCH_HEARTBEAT_S": "1", "FSEARCH_GRACE_S": "5"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and trial_states().get("RUNNING", 0) < 2:
            time.sleep(0.2)
        victim = int(
            subprocess.run(
                ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
            ).stdout.split()[0]
        )
        os.kill(victim, signal.SIGKILL)
        out = finish([proc], timeout=300)[0]
    finally:
        proc.kill()
    assert proc.returncode == 1, out
    assert re.search(r"error: worker w\d was killed by SIGKILL", out), out
    assert n_finished(trial_states()) == n and "RUNNING" not in trial_states()


def test_a_storage_failure_while_a_trial_closes_surfaces_as_our_one_line_error(
    tmp_path, monkeypatch
):
    """Optuna's _run_trial hides an error raised while it stores a trial's end behind an
    UnboundLocalError of its own; run_study must raise our StorageError instead."""
    from search import runner
    from search.errors import StorageError

    cfg = parse_config(raw_config())
    study, _ = studies.create_or_load_study(st.open_storage(f"sqlite:///{tmp_path}/s.db"), cfg)

    def corrupt(self, *args, **kwargs):
        raise StorageError("storage cannot be written or read: file is not a database")

    monkeypatch.setattr(st.ResilientStorage, "set_trial_state_values", corrupt)
    with pytest.raises(StorageError, match="file is not a database"):
        runner.run_study(study, lambda t: t.suggest_float("x", 0, 1), cfg, n_trials=2)
