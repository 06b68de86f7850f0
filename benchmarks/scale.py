"""How a shared study scales: workers 1 -> 64 and study size 1k -> 50k, on the local PostgreSQL,
directly and through `fsearch proxy` (issue #24). Results go to BENCHMARKS.md, section `scale`.

    nice -n 19 .venv/bin/python -m benchmarks.scale    # ~15 min alone on 2 cores (2026-12-03)

Workers are real fsearch workers with training replaced: each is a process that opens the
storage (storage.open_storage, heartbeats on), makes the default study's sampler and pruner
(runner.make_sampler / make_pruner), joins the study (studies.create_or_load_study) and runs
runner.run_study (the trial budget, waits, stale-trial sweeps) with an objective that suggests
the default study's space (space.suggest), writes the user attributes the real objective
writes, reports a synthetic learning curve per epoch (a function of the hyperparameters plus
noise) so Hyperband prunes, and keeps top-k "models" (artifacts.keep_if_top with a 4 KiB file).
No sleep stands for training: this is the storage's and the sampler's cost per trial, the
most a study can ask of them. Timed per call: ask (trial created + TPE's joint sampling),
budget (the locked count + insert: create_new_trial), suggest (space.suggest: the remaining
parameters sampled and written), report (one epoch's value), prune (should_prune), tell (the
trial's end state), TPE (the sampler's own time), heartbeat.

Each point runs in a fresh database (dropped after) owned by a role with CONNECTION LIMIT
--conn-limit, so that 64 workers exhaust that role's connections, not the shared server's.
The database's own time is pg_stat_database.active_time (pg_stat_statements needs
shared_preload_libraries and a server restart; it is reported when loaded).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import multiprocessing as mp
import os
import random
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.common import markdown_table, write_section

COMMAND = "nice -n 19 .venv/bin/python -m benchmarks.scale"
SERVER_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
ROLE = "fsearch_scale"
CATEGORIES = ("ask", "budget", "suggest", "report", "prune", "tell", "tpe", "heartbeat", "keep")


# ---------------------------------------------------------------------------- PostgreSQL


def _pg(url: str):
    import psycopg

    return psycopg.connect(url.replace("+psycopg", ""), autocommit=True, connect_timeout=10)


def _url(server: str, db: str, user: str = ROLE) -> str:
    from sqlalchemy.engine import make_url

    return make_url(server).set(username=user, database=db).render_as_string(hide_password=False)


@contextlib.contextmanager
def fresh_database(server: str, conn_limit: int):
    """A new database owned by the benchmark's role (CONNECTION LIMIT conn_limit); dropped."""
    name = f"fsearch_scale_{uuid.uuid4().hex[:8]}"
    with _pg(server) as admin:
        exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        admin.execute(f"{verb} ROLE {ROLE} LOGIN NOSUPERUSER CONNECTION LIMIT {conn_limit}")
        admin.execute(f'CREATE DATABASE "{name}" OWNER {ROLE}')
    try:
        yield name
    finally:
        with _pg(server) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def db_stats(server: str, db: str) -> dict[str, Any]:
    with _pg(server) as admin:
        row = admin.execute(
            "SELECT active_time, xact_commit + xact_rollback, pg_database_size(datname) "
            "FROM pg_stat_database WHERE datname = %s",
            (db,),
        ).fetchone()
        pss = admin.execute(
            "SELECT 1 FROM pg_settings WHERE name = 'shared_preload_libraries' "
            "AND setting LIKE '%%pg_stat_statements%%'"
        ).fetchone()
    return {"active_ms": row[0], "xacts": row[1], "bytes": row[2], "pg_stat_statements": bool(pss)}


class ConnectionWatch(threading.Thread):
    """The most connections to the database at once (pg_stat_activity, every 0.2 s)."""

    def __init__(self, server: str, db: str) -> None:
        super().__init__(daemon=True)
        self.server, self.db, self.most = server, db, 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            # Other sessions' tests restart this shared server now and then: connect again.
            with contextlib.suppress(Exception), _pg(self.server) as conn:
                while not self.stop.is_set():
                    (n,) = conn.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (self.db,)
                    ).fetchone()
                    self.most = max(self.most, n)
                    self.stop.wait(0.2)
            self.stop.wait(0.5)


# ---------------------------------------------------------------------------- the study


def config(name: str):
    from search.config import load_config

    return load_config().replace_study(name=name)


OPTIMUM_LR = {"adam": 1e-3, "rmsprop": 5e-4, "sgd": 0.05}


def curve(hp, rng: random.Random) -> list[float]:
    """Validation accuracy per epoch: a smooth function of the hyperparameters (best near the
    optimizer's learning rate, wider and moderately regularized nets better) plus noise."""
    final = 0.905
    final -= 0.03 * math.log10(hp.learning_rate / OPTIMUM_LR[hp.optimizer]) ** 2
    final -= 0.02 * max(0.0, 1 - math.log2(max(hp.widths)) / 9)
    final -= 0.01 * abs(hp.dropout - 0.2) + 0.004 * abs(len(hp.widths) - 2)
    final -= 0.02 * (hp.reg_strength / 1e-3 if hp.regularizer == "l1" else 0.0)
    final = min(0.92, max(0.1, final))
    tau = 1.0 + 3.0 * abs(math.log10(hp.learning_rate / OPTIMUM_LR[hp.optimizer]))
    return [
        0.1 + (final - 0.1) * (1 - math.exp(-e / tau)) + rng.gauss(0, 0.004)
        for e in range(1, hp.epochs + 1)
    ]


class FakeModel:
    """What keep_if_top saves: a 4 KiB file stands for the .keras model."""

    def save(self, path: str) -> None:
        Path(path).write_bytes(os.urandom(4096))


class SyntheticObjective:
    """The real objective's storage traffic, with a synthetic curve instead of training."""

    def __init__(self, cfg, store, times: dict[str, list[float]], epoch_s: float) -> None:
        self.cfg, self.store, self.times, self.epoch_s = cfg, store, times, epoch_s

    def timed(self, category: str, fn, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.times[category].append((time.perf_counter() - t0) * 1000)

    def __call__(self, trial) -> float:
        import optuna

        from search.artifacts import keep_if_top
        from search.outcomes import END_REASON
        from search.space import suggest

        hp = self.timed("suggest", suggest, trial, self.cfg)
        trial.set_user_attr("architecture", hp.architecture)
        trial.set_user_attr(
            "n_params", sum(a * b for a, b in zip((784, *hp.widths), hp.widths, strict=False))
        )
        trial.set_user_attr("device", "cpu (synthetic)")
        rng = random.Random(trial.number)
        values, reason = [], "completed"
        for epoch, value in enumerate(curve(hp, rng), start=1):
            time.sleep(self.epoch_s)
            values.append(value)
            self.timed("report", trial.report, value, epoch)
            if self.timed("prune", trial.should_prune):
                reason = "pruned"
                break
        best = max(values)
        attrs = {
            "hyperparams": hp.to_dict(),
            "epochs_run": len(values),
            "best_epoch": values.index(best) + 1,
            "build_seconds": 0.0,
            "first_epoch_seconds": self.epoch_s,
            "sec_per_epoch": self.epoch_s,
            "val_seconds": 0.0,
            END_REASON: reason,
            "rss_mb": 0.0,
            "val_loss": round(1 - best, 5),
        }
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        if reason == "pruned":
            raise optuna.TrialPruned(f"pruned after epoch {len(values)}")
        k = self.cfg.study.keep_models
        self.timed("keep", keep_if_top, trial, best, FakeModel(), self.store, k=k)
        return best


def _timed_method(obj: Any, name: str, category: str, times: dict[str, list[float]]) -> None:
    fn = getattr(obj, name)

    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            times[category].append((time.perf_counter() - t0) * 1000)

    setattr(obj, name, wrapper)


class _Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage()[:160])


def worker_main(
    url: str, name: str, n: int, worker: int, art: str, out: str, ready, go, epoch_s: float
) -> None:
    """One fsearch worker: the real storage, sampler, pruner, budget and search loop."""
    import optuna

    from search import runner, studies
    from search import storage as st
    from search.artifacts import open_artifact_store

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings_seen = _Count()
    logging.getLogger("search").addHandler(warnings_seen)
    times: dict[str, list[float]] = defaultdict(list)
    result: dict[str, Any] = {"worker": worker, "error": None}
    try:
        cfg = config(name)
        t0 = time.perf_counter()
        # As planning.plan opens a worker's storage (its pool: st.WORKER_CONNECTIONS).
        storage = st.open_storage(url, heartbeat=True, connections=st.WORKER_CONNECTIONS)
        existing = len(studies.load_study(storage, name).get_trials(deepcopy=False))
        seed = runner.process_seed(cfg.study, n_existing=existing, worker=worker)
        sampler = runner.make_sampler(cfg.study, seed=seed)
        study, _ = studies.create_or_load_study(
            storage,
            cfg,
            sampler=sampler,
            pruner=runner.make_pruner(cfg.study, max_epochs=cfg.max_epochs),
        )
        st.fail_stale_trials(study)
        result["open_s"] = time.perf_counter() - t0
        _timed_method(study, "ask", "ask", times)
        _timed_method(study._storage, "create_new_trial", "budget", times)
        _timed_method(study._storage, "set_trial_state_values", "tell", times)
        _timed_method(study._storage, "record_heartbeat", "heartbeat", times)
        _timed_method(sampler, "sample_relative", "tpe", times)
        _timed_method(sampler, "sample_independent", "tpe", times)
        objective = SyntheticObjective(cfg, open_artifact_store(art), times, epoch_s)
        ready.put(worker)
        go.wait()
        t0 = time.perf_counter()
        loop = runner.run_study(study, objective, cfg, n_trials=n)
        result.update(ran=loop.ran, seconds=time.perf_counter() - t0)
    except BaseException as e:  # noqa: BLE001 - reported in the table
        result["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    result["times"] = times
    result["warnings"] = warnings_seen.messages
    Path(out).write_text(json.dumps(result))


# ---------------------------------------------------------------------------- a point


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def proxy_process(db_url: str):
    """`fsearch proxy` in front of db_url; yields the workers' grpc:// URL."""
    port = _free_port()
    fsearch = Path(sys.executable).parent / "fsearch"
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [str(fsearch), "proxy", "--port", str(port)],
        env={**os.environ, "FSEARCH_STORAGE": db_url},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while "storage proxy for" not in Path(log.name).read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    f"scale: fsearch proxy did not start: {Path(log.name).read_text()}"
                )
            time.sleep(0.2)
        yield f"grpc://127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        os.unlink(log.name)


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def invariants(db_url: str, name: str, n: int) -> dict[str, Any]:
    """Exactly n finished, nothing RUNNING or WAITING, no duplicate trial numbers."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(db_url, poolclass=sqlalchemy.pool.NullPool)
    with engine.connect() as conn:
        rows = conn.execute(
            sqlalchemy.text(
                "SELECT t.state, t.number FROM trials t JOIN studies s USING (study_id) "
                "WHERE s.study_name = :n"
            ),
            {"n": name},
        ).all()
    engine.dispose()
    states: dict[str, int] = defaultdict(int)
    for state, _ in rows:
        states[str(state).split(".")[-1]] += 1
    numbers = [number for _, number in rows]
    finished = states["COMPLETE"] + states["PRUNED"]
    return {
        "finished": finished,
        "failed": states["FAIL"],
        "live": states["RUNNING"] + states["WAITING"],
        "dupes": len(numbers) - len(set(numbers)),
        "ok": finished == n
        and not states["RUNNING"] + states["WAITING"]
        and len(numbers) == len(set(numbers)),
    }


def create_study(db_url: str, name: str) -> None:
    from search import storage as st
    from search import studies

    storage = st.open_storage(db_url)
    studies.create_or_load_study(storage, config(name))
    storage.engine.dispose()


def run_point(
    db_url: str, name: str, *, workers: int, n: int, url: str, epoch_s: float, work: Path
) -> dict[str, Any]:
    """`workers` processes run the study to n finished trials through `url`."""
    ctx = mp.get_context("fork")
    go, ready = ctx.Event(), ctx.Queue()
    art = work / "artifacts"
    procs, outs = [], []
    for i in range(workers):
        out = work / f"w{i}.json"
        outs.append(out)
        p = ctx.Process(
            target=worker_main, args=(url, name, n, i, str(art), str(out), ready, go, epoch_s)
        )
        p.start()
        procs.append(p)
    server, db = db_url.rsplit("/", 1)
    watch = ConnectionWatch(SERVER, db)
    watch.start()
    # Every worker has opened the storage and loaded the study (or failed) before the clock.
    started, deadline = 0, time.monotonic() + 600
    while started < workers and time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            ready.get(timeout=0.5)
            started += 1
        if started + sum(o.exists() for o in outs) >= workers:
            break
    t0 = time.perf_counter()
    go.set()
    for p in procs:
        p.join(timeout=1800)
    wall = time.perf_counter() - t0
    watch.stop.set()
    watch.join()
    results = [json.loads(o.read_text()) for o in outs if o.exists()]
    times: dict[str, list[float]] = defaultdict(list)
    for r in results:
        for k, v in r["times"].items():
            times[k] += v
    return {
        "workers": workers,
        "wall": wall,
        "times": times,
        "errors": [r["error"] for r in results if r["error"]]
        + [f"exit {p.exitcode}" for p in procs if p.exitcode],
        "warnings": sum(len(r["warnings"]) for r in results),
        "warning_example": next((r["warnings"][0] for r in results if r["warnings"]), ""),
        "connections": watch.most,
        "open_s": max((r.get("open_s", 0) for r in results), default=0),
    }


def measure(
    server: str, *, workers: int, n: int, via: str, conn_limit: int, epoch_s: float, base: int = 0
) -> dict[str, Any]:
    with fresh_database(server, conn_limit) as db, tempfile.TemporaryDirectory() as tmp:
        db_url = _url(server, db)
        name = "scale"
        create_study(db_url, name)
        if base:
            add_history(db_url, name, base)
        with contextlib.ExitStack() as stack:
            url = db_url
            if via == "proxy":
                url, _ = stack.enter_context(proxy_process(db_url))
            point = run_point(
                db_url, name, workers=workers, n=base + n, url=url, epoch_s=epoch_s, work=Path(tmp)
            )
        point.update(invariants(db_url, name, base + n), via=via, n=n)
        point["db"] = db_stats(server, db)
    return point


# ---------------------------------------------------------------------------- study size


def synthetic_trials(cfg, count: int, start: int):
    """`count` finished trials of the default space, as the search leaves them: ~80% pruned
    after 1 or 4 epochs (Hyperband's rungs), the rest complete after 12, user attributes as
    the objective writes them."""
    import optuna

    from search.outcomes import END_REASON
    from search.space import suggest

    sampler_study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=start))
    out = []
    for i in range(count):
        trial = sampler_study.ask()
        hp = suggest(trial, cfg)
        rng = random.Random(start + i)
        values = curve(hp, rng)
        stop = rng.choices([1, 4, len(values)], weights=[60, 20, 20])[0]
        pruned = stop < len(values)
        values = values[:stop]
        attrs = {
            "architecture": hp.architecture,
            "n_params": 0,
            "device": "cpu (synthetic)",
            "hyperparams": hp.to_dict(),
            "epochs_run": stop,
            "best_epoch": values.index(max(values)) + 1,
            "sec_per_epoch": 1.5,
            END_REASON: "pruned" if pruned else "completed",
        }
        out.append(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.PRUNED
                if pruned
                else optuna.trial.TrialState.COMPLETE,
                value=None if pruned else max(values),
                params=trial.params,
                distributions=trial.distributions,
                user_attrs=attrs,
                intermediate_values=dict(enumerate(values, start=1)),
            )
        )
        sampler_study.tell(trial, 0.0)
    return out


# Trials made through the storage API before the rest are copies of them (in SQL): Optuna's
# add_trials writes one trial per transaction, ~60 ms each here, 50 min for 50,000.
API_TRIALS = 1000


def add_history(db_url: str, name: str, count: int) -> float:
    """Add `count` finished trials; seconds. The first API_TRIALS of the study go through
    Optuna's storage API (Study.add_trials); more are copies of those rows made in SQL, each
    with a new trial id and number (same parameters, values, curves and attributes)."""
    import optuna

    from search import storage as st

    storage = st.open_storage(db_url)
    study = optuna.load_study(study_name=name, storage=storage)
    have = len(study.get_trials(deepcopy=False))
    t0 = time.perf_counter()
    through_api = max(0, min(count, API_TRIALS - have))
    for start in range(0, through_api, 500):
        study.add_trials(
            synthetic_trials(config(name), min(500, through_api - start), have + start)
        )
    left = count - through_api
    while left > 0:
        left -= copy_trials(storage.engine, name, left)
    storage.engine.dispose()
    return time.perf_counter() - t0


def copy_trials(engine, name: str, most: int) -> int:
    """Copy up to `most` finished trials of the study (every row of every trial table) in one
    transaction; returns how many."""
    import sqlalchemy as sa

    with engine.begin() as conn:
        study_id, top = conn.execute(
            sa.text(
                "SELECT s.study_id, coalesce(max(t.number), -1) FROM studies s "
                "LEFT JOIN trials t USING (study_id) WHERE s.study_name = :n GROUP BY s.study_id"
            ),
            {"n": name},
        ).one()
        conn.execute(
            sa.text(
                "CREATE TEMP TABLE m ON COMMIT DROP AS SELECT trial_id AS old, "
                "nextval(pg_get_serial_sequence('trials', 'trial_id')) AS new, "
                ":top + row_number() OVER (ORDER BY trial_id) AS number FROM trials "
                "WHERE study_id = :s AND state IN ('COMPLETE', 'PRUNED') "
                "ORDER BY trial_id LIMIT :k"
            ),
            {"top": top, "s": study_id, "k": most},
        )
        conn.execute(
            sa.text(
                "INSERT INTO trials (trial_id, number, study_id, state, datetime_start, "
                "datetime_complete) SELECT m.new, m.number, t.study_id, t.state, "
                "t.datetime_start, t.datetime_complete FROM trials t JOIN m ON t.trial_id = m.old"
            )
        )
        tables = conn.execute(
            sa.text(
                "SELECT table_name, string_agg(column_name, ',') FILTER (WHERE column_name <> "
                "'trial_id' AND coalesce(column_default, '') NOT LIKE 'nextval%') "
                "FROM information_schema.columns WHERE table_schema = 'public' AND table_name "
                "IN (SELECT table_name FROM information_schema.columns WHERE column_name = "
                "'trial_id') AND table_name <> 'trials' GROUP BY table_name"
            )
        ).all()
        for table, cols in tables:
            if not cols or table == "trial_heartbeats":
                continue
            picked = ", ".join(f"x.{c}" for c in cols.split(","))
            conn.execute(
                sa.text(
                    f"INSERT INTO {table} (trial_id, {cols}) SELECT m.new, {picked} "
                    f"FROM {table} x JOIN m ON x.trial_id = m.old"
                )
            )
        return conn.execute(sa.text("SELECT count(*) FROM m")).scalar()


# fsearch's per-trial queries (storage.ResilientStorage) and Optuna's trial-number query, as
# the database runs them: EXPLAIN ANALYZE's execution time, median of 5.
QUERIES = {
    # _create_within_budget, under the study lock: finished + live trials
    "budget": "SELECT count(trial_id) FROM trials WHERE study_id = :s "
    "AND state IN ('COMPLETE', 'PRUNED', 'RUNNING', 'WAITING')",
    # the same count as trials made minus failed ones (trial numbers are dense: made one at a
    # time under the study lock)
    "budget, rewritten": "SELECT (SELECT coalesce(max(number), -1) + 1 FROM trials WHERE "
    "study_id = :s) - (SELECT count(*) FROM trials WHERE study_id = :s AND state = 'FAIL')",
    # _sweep_stale's look before every trial and every 2 s while waiting
    "sweep": "SELECT trial_id FROM trials WHERE state = 'RUNNING' AND study_id = :s",
    # Optuna's count_past_trials, once per new trial (not ours to change)
    "optuna number": "SELECT count(trial_id) FROM trials WHERE study_id = :s "
    "AND trial_id < (SELECT max(trial_id) FROM trials)",
}
INDEXES = (
    "CREATE INDEX ix_fsearch_trials_study_state ON trials (study_id, state)",
    "CREATE INDEX ix_fsearch_trials_study_number ON trials (study_id, number)",
)


def query_ms(db_url: str, name: str) -> dict[str, dict[str, float]]:
    """{query: {"as is": ms, "indexed": ms}}: each query of QUERIES without and with INDEXES
    (dropped again after)."""
    import statistics

    import sqlalchemy as sa

    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    out: dict[str, dict[str, float]] = defaultdict(dict)
    with engine.connect() as conn:
        conn.execute(sa.text("ANALYZE trials"))
        sid = conn.execute(
            sa.text("SELECT study_id FROM studies WHERE study_name = :n"), {"n": name}
        ).scalar()
        for label in ("as is", "indexed"):
            if label == "indexed":
                for ddl in INDEXES:
                    conn.execute(sa.text(ddl))
                conn.execute(sa.text("ANALYZE trials"))
            for key, sql in QUERIES.items():
                runs = []
                for _ in range(5):
                    plan = conn.execute(
                        sa.text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}"), {"s": sid}
                    ).scalar()
                    runs.append(plan[0]["Execution Time"])
                out[key][label] = statistics.median(runs)
        for ddl in INDEXES:
            conn.execute(sa.text("DROP INDEX " + ddl.split()[2]))
        conn.commit()
    engine.dispose()
    return out


def cli_cost(args: list[str], db_url: str, timeout: float) -> tuple[float, float, str]:
    """(seconds, peak RSS MiB, error) of `fsearch ARGS` as a real process."""
    fsearch = Path(sys.executable).parent / "fsearch"
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [str(fsearch), *args],
            env={**os.environ, "FSEARCH_STORAGE": db_url},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=tmp,
        )
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        timer.cancel()
        seconds = time.perf_counter() - t0
        err = proc.stderr.read().decode(errors="replace").strip().splitlines()
        proc.returncode = os.waitstatus_to_exitcode(status)
    problem = (
        ""
        if proc.returncode == 0
        else (
            f"killed at {timeout:.0f} s"
            if proc.returncode == -9
            else (err[-1] if err else f"exit {proc.returncode}")
        )
    )
    return seconds, usage.ru_maxrss / 1024, problem


def size_curve(
    server: str,
    sizes: list[int],
    *,
    n: int,
    workers: int,
    conn_limit: int,
    cli_timeout: float,
    via: str = "direct",
) -> list[dict[str, Any]]:
    """One database grown to each size in turn; at each, workers add n trials, then the CLI.
    via "proxy": a fresh `fsearch proxy` per size (the history is added behind its back, by
    SQL), and the workers and the CLI commands go through it."""
    rows = []
    with fresh_database(server, conn_limit) as db, tempfile.TemporaryDirectory() as tmp:
        db_url = _url(server, db)
        name = "scale"
        create_study(db_url, name)
        empty = db_stats(server, db)["bytes"]
        have = 0
        for size in sizes:
            add_s = add_history(db_url, name, size - have)
            before = db_stats(server, db)
            work = Path(tmp) / str(size)
            work.mkdir()
            with contextlib.ExitStack() as stack:
                url = db_url
                if via == "proxy":
                    url, _ = stack.enter_context(proxy_process(db_url))
                point = run_point(
                    db_url, name, workers=workers, n=size + n, url=url, epoch_s=0.0, work=work
                )
                have = size + n
                point.update(invariants(db_url, name, have), via=via, n=n, size=size)
                after = db_stats(server, db)
                point["db"] = {
                    **after,
                    "active_ms": after["active_ms"] - before["active_ms"],
                    "xacts": after["xacts"] - before["xacts"],
                    "empty_bytes": empty,
                }
                point["add_s"] = add_s
                if via == "direct":  # the database's own query times: once, not per route
                    point["queries"] = query_ms(db_url, name)
                point["cli"] = {
                    "trials": cli_cost(
                        ["trials", "--study", name, "--format", "csv"], url, cli_timeout
                    ),
                    "best": cli_cost(["best", "--study", name], url, cli_timeout),
                    "report": cli_cost(
                        ["report", "--study", name, "--out", "rep"], url, cli_timeout
                    ),
                }
            rows.append(point)
            print(summary_line(point), flush=True)
    return rows


# ---------------------------------------------------------------------------- tables


def ms(point: dict[str, Any], category: str) -> str:
    xs = point["times"].get(category, [])
    if not xs:
        return "-"
    return f"{pct(xs, 0.5):.1f} / {pct(xs, 0.95):.1f}"


def summary_line(p: dict[str, Any]) -> str:
    size = f" size {p['size']}" if "size" in p else ""
    return (
        f"scale: {p['via']}{size} {p['workers']} workers: {p['n'] / p['wall']:.1f} trials/s, "
        f"finished {p['finished']}, live {p['live']}, dupes {p['dupes']}, ok {p['ok']}, "
        f"connections {p['connections']}, errors {len(p['errors'])}, warnings {p['warnings']}"
    )


def workers_table(points: list[dict[str, Any]]) -> str:
    header = [
        "via",
        "workers",
        "trials",
        "trials/s",
        "ask ms p50/p95",
        "budget",
        "suggest",
        "report",
        "prune",
        "tell",
        "TPE",
        "DB active ms/trial",
        "max conns",
        "failed / worker errors / retry warnings",
        "invariants",
    ]
    rows = []
    for p in points:
        rows.append(
            [
                p["via"],
                p["workers"],
                p["n"],
                f"{p['n'] / p['wall']:.1f}",
                ms(p, "ask"),
                ms(p, "budget"),
                ms(p, "suggest"),
                ms(p, "report"),
                ms(p, "prune"),
                ms(p, "tell"),
                ms(p, "tpe"),
                f"{p['db']['active_ms'] / max(p['finished'], 1):.1f}",
                p["connections"],
                f"{p['failed']} / {len(p['errors'])} / {p['warnings']}",
                "ok"
                if p["ok"]
                else f"FAILED: {p['finished']} finished, {p['live']} live, {p['dupes']} dupes",
            ]
        )
    return markdown_table(header, rows)


def size_table(points: list[dict[str, Any]]) -> str:
    header = [
        "via",
        "trials in study",
        "ask ms p50/p95",
        "budget",
        "suggest",
        "report",
        "prune",
        "tell",
        "TPE",
        "DB active ms/trial",
        "`trials` s / MiB",
        "`best` s / MiB",
        "`report` s / MiB",
        "DB MiB",
        "invariants",
    ]
    rows = []
    for p in points:
        cli = {
            k: f"{s:.1f} / {m:.0f}" + (f" ({e})" if e else "") for k, (s, m, e) in p["cli"].items()
        }
        rows.append(
            [
                p["via"],
                f"{p['size']:,}",
                ms(p, "ask"),
                ms(p, "budget"),
                ms(p, "suggest"),
                ms(p, "report"),
                ms(p, "prune"),
                ms(p, "tell"),
                ms(p, "tpe"),
                f"{p['db']['active_ms'] / max(p['n'], 1):.1f}",
                cli["trials"],
                cli["best"],
                cli["report"],
                f"{p['db']['bytes'] / 2**20:.0f}",
                "ok" if p["ok"] else f"FAILED: {p['finished']} finished, {p['live']} live",
            ]
        )
    return markdown_table(header, rows)


def main(argv: list[str] | None = None) -> None:
    global SERVER
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", default=os.environ.get("FSEARCH_TEST_PG", SERVER_DEFAULT))
    ap.add_argument("--workers", default="1,4,16,64")
    ap.add_argument("--proxy-workers", default="16,64")
    ap.add_argument("--trials", type=int, default=192, help="trials per worker-curve point")
    ap.add_argument("--sizes", default="1000,10000,50000")
    ap.add_argument("--size-trials", type=int, default=20, help="trials added at each size")
    ap.add_argument("--size-workers", type=int, default=2)
    ap.add_argument(
        "--size-via", default="direct,proxy", help="the study-size curve: direct, proxy or both"
    )
    ap.add_argument("--conn-limit", type=int, default=80)
    ap.add_argument("--epoch-ms", type=float, default=0.0)
    ap.add_argument("--cli-timeout", type=float, default=300.0)
    ap.add_argument("--section", default="scale")
    ap.add_argument("--json", default="/tmp/fsearch-scale.json")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args(argv)
    vias = [v.strip() for v in a.size_via.split(",") if v.strip()]
    if bad := sorted(set(vias) - {"direct", "proxy"}):
        ap.error(f"--size-via: unknown {', '.join(bad)}; use direct, proxy or direct,proxy")
    SERVER = a.server
    a.load = os.getloadavg()
    logging.basicConfig(level=logging.ERROR)
    points = []
    plan = [("direct", int(w)) for w in a.workers.split(",") if w]
    plan += [("proxy", int(w)) for w in a.proxy_workers.split(",") if w]
    for via, w in plan:
        p = measure(
            a.server,
            workers=w,
            n=a.trials,
            via=via,
            conn_limit=a.conn_limit,
            epoch_s=a.epoch_ms / 1000,
        )
        print(summary_line(p), flush=True)
        if p["errors"] or p["warnings"]:
            print(f"  e.g. {(p['errors'] or [p['warning_example']])[0]}", flush=True)
        points.append(p)
    sizes = [int(s) for s in a.sizes.split(",") if s]
    size_points = [
        p
        for via in (vias if sizes else [])
        for p in size_curve(
            a.server,
            sizes,
            n=a.size_trials,
            workers=a.size_workers,
            conn_limit=a.conn_limit,
            cli_timeout=a.cli_timeout,
            via=via,
        )
    ]
    Path(a.json).write_text(json.dumps({"workers": points, "sizes": size_points}, default=str))
    body = render(points, size_points, a)
    print(body)
    if not a.no_write:
        argv_text = " ".join(shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:]))
        write_section(a.section, body, f"{COMMAND} {argv_text}".strip())


def render(points, size_points, a) -> str:
    parts = []
    stats = (points or size_points)[0]["db"] if (points or size_points) else {}
    if points:
        parts.append(
            f"**Workers** ({a.trials} trials per point, default study's sampler/pruner/space, "
            f"synthetic curve, {a.epoch_ms:g} ms per epoch; per-call ms p50 / p95 over all "
            f"workers; role CONNECTION LIMIT {a.conn_limit}):\n\n" + workers_table(points)
        )
        for p in points:
            if p["errors"] or p["warnings"]:
                example = (p["errors"] or [p["warning_example"]])[0]
                parts.append(f"- {p['via']} x{p['workers']}: e.g. `{example}`")
    direct = [p for p in size_points if p["via"] == "direct"]
    if size_points:
        per10k = ""
        grown = direct or size_points
        if len(grown) >= 2:
            a0, b0 = grown[0], grown[-1]
            grow = (b0["db"]["bytes"] - a0["db"]["bytes"]) / (b0["finished"] - a0["finished"])
            per10k = f" Database size: **{grow * 10_000 / 2**20:.0f} MiB per 10k trials**."
        parts.append(
            f"**Study size** ({a.size_workers} workers adding {a.size_trials} trials at each "
            f"size; the first {API_TRIALS:,} trials of history added through "
            "`Study.add_trials`, the rest SQL copies of them; CLI commands as real "
            "processes, peak RSS; via proxy: a fresh `fsearch proxy` per size, workers and "
            f"CLI through it):{per10k}\n\n" + size_table(size_points)
        )
    if direct:
        keys = list(direct[0]["queries"])
        header = ["trials in study"] + [f"{k} ms (as is / indexed)" for k in keys]
        rows = [
            [f"{p['finished']:,}"]
            + [f"{p['queries'][k]['as is']:.2f} / {p['queries'][k]['indexed']:.2f}" for k in keys]
            for p in direct
        ]
        parts.append(
            "**The database's own time per query** (EXPLAIN ANALYZE, median of 5; indexed: "
            "with `trials (study_id, state)` and `trials (study_id, number)`, which Optuna's "
            "schema lacks):\n\n" + markdown_table(header, rows)
        )
    parts.append(
        f"Load average (1 min) at start / end: {a.load[0]:.1f} / {os.getloadavg()[0]:.1f} "
        "(2 cores, shared with other sessions' tests)."
    )
    parts.append(
        "DB active ms/trial: pg_stat_database.active_time over the trials finished (workers "
        "table) or added (study-size table, where it includes each worker's first read of the "
        "whole study, spread over the few trials added)"
        + (
            ""
            if stats.get("pg_stat_statements")
            else "; pg_stat_statements is not loaded "
            "on this server (shared_preload_libraries is empty), so no per-statement times"
        )
        + "."
    )
    return "\n\n".join(parts)


SERVER = SERVER_DEFAULT

if __name__ == "__main__":
    main()
