"""`fsearch proxy`: Optuna's gRPC storage proxy in front of the study database, and the client
that workers use for `--storage grpc://HOST:PORT`.

Why: every worker talking to PostgreSQL directly holds its own connections (two while a trial
runs: the trial's and its heartbeat thread's), and PostgreSQL allows 100 by default; the proxy
holds at most one per server thread (10) and keeps a cache of finished trials for all its
clients (BENCHMARKS.md, `scale`, measures both ways).

What a plain Optuna proxy would lose, and how it is kept: fsearch's guarantees live in
storage.ResilientStorage (the trial budget checked with the insert, stale trials failed and
re-queued in one transaction, the kept-model list updated under a lock), and Optuna's proxy
protocol has no call for any of them, nor for heartbeats. So the server here runs a
ResilientStorage (with Optuna's cache in front, as `optuna.storages.get_storage` does) and the
client sends the few extra requests as study or trial *system attributes* with reserved keys
that the server acts on instead of storing:

- `fsearch:trial_budget` (stored): the worker's --trials; the server checks every new trial
  against it in the locked transaction, and answers RESOURCE_EXHAUSTED when it is reached
  (the client raises storage.TrialBudgetReached, as the direct path does);
- `fsearch:heartbeat` (a trial attr, not stored): records the trial's heartbeat;
- `fsearch:sweep` (not stored): fails and re-queues the study's stale trials (what Optuna runs
  before every trial);
- `fsearch:cas` (not stored): compare-and-set of a study user attribute under the study lock
  (ABORTED on a conflict; the client reads again and retries): how the kept-model list stays
  exact with many workers.

The server adds `fsearch:proxy` to every study's system attributes, so a worker pointed at a
plain Optuna proxy (which would silently store these keys and enforce nothing) refuses to run.
The gRPC port has no authentication or TLS: keep it on a private network (Kubernetes: a
ClusterIP Service), as the database itself.
"""

from __future__ import annotations

import logging
import os
import random
import time
import warnings
from collections.abc import Callable
from typing import Any

import optuna
from optuna.storages import GrpcStorageProxy
from optuna.storages._heartbeat import BaseHeartbeat

from search import storage as st
from search.errors import StorageError

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 13000
# Optuna's default server pool: one database connection per busy thread, within SQLAlchemy's
# default pool (5 + 10 overflow) of the server's one engine.
SERVER_THREADS = 10

BUDGET_ATTR = "fsearch:trial_budget"
HEARTBEAT_ATTR = "fsearch:heartbeat"
SWEEP_ATTR = "fsearch:sweep"
CAS_ATTR = "fsearch:cas"
PROXY_ATTR = "fsearch:proxy"


def is_proxy_url(url: str) -> bool:
    return url.startswith("grpc://")


def parse_proxy_url(url: str) -> tuple[str, int]:
    """(host, port) of grpc://HOST[:PORT]."""
    rest = url.removeprefix("grpc://").rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not sep:
        host, port = rest, str(DEFAULT_PORT)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in host:
        raise StorageError(
            f"storage URL {url!r} is malformed; expected grpc://HOST:PORT (an `fsearch proxy`)"
        )
    return host, int(port)


# ---------------------------------------------------------------------------- server


class _CasConflict(Exception):
    """The attribute changed since the client read it."""


class ProxyBackend:
    """What the gRPC servicer calls: Optuna's cached storage over our ResilientStorage, with
    the reserved attribute keys (module docstring) acted on."""

    def __init__(self, rdb: st.ResilientStorage) -> None:
        self._rdb = rdb
        # Optuna's in-process cache of finished trials (what get_storage wraps RDBStorage in):
        # the servicer answers every client's poll with get_all_trials.
        self._cached = optuna.storages.get_storage(rdb)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cached, name)

    def create_new_trial(self, study_id: int, template_trial=None) -> int:
        if template_trial is None:
            # Read per trial (one small query): a resumed run may have raised --trials, and
            # several proxies may serve one database.
            budget = self._rdb.get_study_system_attrs(study_id).get(BUDGET_ATTR)
            if isinstance(budget, int) and budget > 0:
                self._rdb.limit_trials(study_id, budget)
        return self._cached.create_new_trial(study_id, template_trial)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        if key == HEARTBEAT_ATTR:
            self._rdb.record_heartbeat(trial_id)
            return
        self._cached.set_trial_system_attr(trial_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        if key == SWEEP_ATTR:
            self._rdb._get_stale_trial_ids(study_id)  # sweeps in one transaction, returns []
            return
        if key == CAS_ATTR:
            self._compare_and_set(study_id, value)
            return
        self._cached.set_study_system_attr(study_id, key, value)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        from search import __version__

        return {**self._cached.get_study_system_attrs(study_id), PROXY_ATTR: __version__}

    def _compare_and_set(self, study_id: int, spec: dict[str, Any]) -> None:
        def update(current: Any) -> Any:
            if current != spec["expect"]:
                raise _CasConflict  # rolls the transaction back
            return spec["value"]

        self._rdb.update_study_user_attr(study_id, spec["key"], update)


def _servicer(backend: ProxyBackend):
    """Optuna's servicer, with our two answers: the budget reached and a lost compare-and-set
    (Optuna's would send both as UNKNOWN)."""
    import grpc
    from optuna.storages._grpc.servicer import OptunaStorageProxyService

    class Service(OptunaStorageProxyService):
        def CreateNewTrial(self, request, context):  # noqa: N802 - gRPC's method name
            try:
                return super().CreateNewTrial(request, context)
            except st.TrialBudgetReached as e:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e))

        def SetStudySystemAttribute(self, request, context):  # noqa: N802
            try:
                return super().SetStudySystemAttribute(request, context)
            except _CasConflict:
                context.abort(grpc.StatusCode.ABORTED, "changed since read")

    return Service(backend)  # type: ignore[arg-type]


def make_server(url: str | None, *, host: str, port: int, threads: int = SERVER_THREADS):
    """A started gRPC server proxying the storage at `url` (what Optuna's
    run_grpc_proxy_server builds, with our backend and servicer). Returns (server, port)."""
    from concurrent.futures import ThreadPoolExecutor

    import grpc
    from optuna.storages._grpc.auto_generated import api_pb2_grpc

    info = st.parse_url(st.resolve_url(url))
    if is_proxy_url(info.url):
        raise StorageError("`fsearch proxy --storage` needs the database's URL, not a grpc:// one")
    backend = ProxyBackend(st.open_storage(info.url, heartbeat=True, connections=threads))
    server = grpc.server(ThreadPoolExecutor(max_workers=threads))
    api_pb2_grpc.add_StorageServiceServicer_to_server(_servicer(backend), server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:
        bound = 0
    if not bound:
        raise StorageError(f"cannot listen on {host}:{port} (in use, or not an address here)")
    server.start()
    return server, bound


def serve(
    url: str | None,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    on_start: Callable[[str], None] | None = None,
    stop_requested: Callable[[], bool] | None = None,
) -> None:
    """Run the proxy until stop_requested() (or KeyboardInterrupt); in-flight calls get 5 s."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    server, bound = make_server(url, host=host, port=port)
    if on_start is not None:
        on_start(f"grpc://{host}:{bound}")
    try:
        while stop_requested is None or not stop_requested():
            server.wait_for_termination(timeout=0.5)  # True on timeout, as gRPC words it
    finally:
        server.stop(grace=5).wait()


# ---------------------------------------------------------------------------- client


class _RetryingStub:
    """The gRPC stub, each call retried while the proxy is unreachable (restarting) for up to
    FSEARCH_DB_RETRY_S, as the direct path retries a database restart; the proxy's own errors
    turned into ours."""

    def __init__(self, stub: Any, where: str) -> None:
        self._stub, self._where = stub, where

    def __getattr__(self, name: str) -> Callable:
        call = getattr(self._stub, name)

        def retried(request: Any) -> Any:
            import grpc

            deadline = time.monotonic() + st._env_seconds("FSEARCH_DB_RETRY_S", 60.0)
            delay = st.RETRY_FIRST_DELAY_S
            while True:
                try:
                    return call(request)
                except grpc.RpcError as e:
                    code = e.code()
                    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                        raise st.TrialBudgetReached(e.details()) from None
                    if code == grpc.StatusCode.ABORTED:
                        raise _CasConflict from None
                    if code == grpc.StatusCode.UNKNOWN:  # the server's own error, one line
                        detail = (e.details() or "").removeprefix("Exception calling application: ")
                        raise StorageError(f"storage proxy {self._where}: {detail}") from None
                    if code != grpc.StatusCode.UNAVAILABLE:
                        raise
                    if time.monotonic() + delay > deadline:
                        raise StorageError(
                            f"lost the storage proxy {self._where} and could not get it back: "
                            f"{e.details()}; check `fsearch proxy`, then run the same command "
                            "again to resume"
                        ) from None
                    log.warning("storage proxy: %s; retrying in %.1f s", e.details(), delay)
                    time.sleep(delay * random.uniform(0.5, 1.0))
                    delay = min(delay * 2, st.RETRY_MAX_DELAY_S)

        return retried


class ProxyClient(GrpcStorageProxy, BaseHeartbeat):
    """Optuna's GrpcStorageProxy with fsearch's additions (module docstring): the budget,
    heartbeats, the stale-trial sweep and compare-and-set, each one request to the proxy."""

    def __init__(self, url: str, *, heartbeat: bool = False) -> None:
        host, port = parse_proxy_url(url)
        self.url = url
        self._interval = st.heartbeat_settings()[0] if heartbeat else None
        super().__init__(host=host, port=port)

    def _setup(self) -> None:
        super()._setup()
        self._stub = _RetryingStub(self._stub, self.url)
        self._cache.grpc_client = self._stub

    # -- budget ----------------------------------------------------------------------------

    def limit_trials(self, study_id: int, n: int) -> None:
        self.set_study_system_attr(study_id, BUDGET_ATTR, n)
        if PROXY_ATTR not in self.get_study_system_attrs(study_id):
            raise StorageError(
                f"{self.url} is not an `fsearch proxy` (a plain Optuna proxy): it cannot keep "
                "--trials exact nor re-run dead workers' trials; start `fsearch proxy --storage "
                "URL` instead"
            )

    # -- heartbeats (Optuna's BaseHeartbeat) -----------------------------------------------

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, True)
        except Exception as e:  # in Optuna's heartbeat thread: warn, the next beat retries
            log.warning("storage proxy: heartbeat not recorded: %s", e)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        self.set_study_system_attr(study_id, SWEEP_ATTR, True)
        return []  # the proxy failed and re-queued them in one transaction

    def get_heartbeat_interval(self) -> int | None:
        return self._interval

    def get_heartbeat_stale_trial_callback(self):
        return None  # the proxy's storage runs it, inside the sweep

    # -- read-modify-write of a study attribute ---------------------------------------------

    def update_study_user_attr(self, study_id: int, key: str, update: Callable[[Any], Any]):
        """update(old) stored atomically, as ResilientStorage.update_study_user_attr: read,
        compute here, compare-and-set on the proxy, again on a conflict. Returns (old, new)."""
        for _ in range(1000):
            old = self.get_study_user_attrs(study_id).get(key)
            new = update(old)
            if new == old:
                return old, new
            try:
                self.set_study_system_attr(
                    study_id, CAS_ATTR, {"key": key, "expect": old, "value": new}
                )
                return old, new
            except _CasConflict:
                time.sleep(random.uniform(0, 0.05))
        raise StorageError(f"study attribute {key!r}: too many concurrent updates")


def open_client(url: str, *, heartbeat: bool = False, timeout: float = 10.0) -> ProxyClient:
    """The client for grpc://HOST:PORT, after checking the proxy answers."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    client = ProxyClient(url, heartbeat=heartbeat)
    try:
        client.wait_server_ready(timeout=float(os.environ.get("FSEARCH_PROXY_WAIT_S", timeout)))
    except ConnectionError:
        client.close()
        raise StorageError(
            f"cannot reach the storage proxy {url}; start it (`fsearch proxy --storage URL "
            "--host HOST --port PORT`) or check the host and port"
        ) from None
    return client
