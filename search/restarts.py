"""What a run carries across its self-restarts: one frozen RestartState, read from and written
to the environment (an exec keeps the environment and nothing else).

TensorFlow keeps memory from every model a process builds, clear_session() or not: RSS grows
trial after trial in one process (BENCHMARKS.md, `memory`: with and without restarts, side
by side). So a worker restarts itself (exec, same PID, same arguments) every RECYCLE_TRIALS
trials; the study lives in the storage, so the new process simply resumes it. It costs one TF
import and data load per restart. FSEARCH_RECYCLE_TRIALS=0 turns it off. Only a real
`fsearch` process restarts itself (cli.main calls workers.allow_restarts), never a notebook or
a test; workers.py holds that one fact and the functions the run calls.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from search.errors import ConfigError

RECYCLE_TRIALS = 20
ENV_RECYCLE = "FSEARCH_RECYCLE_TRIALS"
ENV_DEADLINE = "FSEARCH_RUN_DEADLINE"  # --timeout as an absolute time, kept across restarts
ENV_STARTED = "FSEARCH_RUN_STARTED"  # "time,finished" at the first start: progress across restarts
# The study TOML's text as the run first read it: a restarted worker and every --jobs worker
# use it, so editing the file while a study runs cannot change the study mid-way.
ENV_CONFIG = "FSEARCH_RUN_CONFIG"


@dataclass(frozen=True)
class RestartState:
    """The run as its first start left it, for this process and the ones that replace it.

    restartable: this process is the `fsearch` command and may replace itself (not carried by
    the environment: every `fsearch` process says so itself). The other fields are None until
    the first start sets them (or, for recycle, unless the user did)."""

    restartable: bool = False
    recycle: str | None = None  # FSEARCH_RECYCLE_TRIALS as given
    deadline: float | None = None  # --timeout as an absolute time.time()
    started: tuple[float, int] | None = None  # (time, finished trials) at the first start
    config_text: str | None = None  # the config at the first start: TOML text or Config JSON

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, restartable: bool = False
    ) -> RestartState:
        env = os.environ if environ is None else environ
        started = None
        with contextlib.suppress(KeyError, ValueError):
            t, n = env[ENV_STARTED].split(",")
            started = (float(t), int(n))
        return cls(
            restartable=restartable,
            recycle=env.get(ENV_RECYCLE),
            deadline=float(env[ENV_DEADLINE]) if env.get(ENV_DEADLINE) else None,
            started=started,
            config_text=env.get(ENV_CONFIG),
        )

    def to_env(self) -> dict[str, str]:
        """The environment variables of the fields that are set."""
        env = {}
        if self.recycle is not None:
            env[ENV_RECYCLE] = self.recycle
        if self.deadline is not None:
            env[ENV_DEADLINE] = str(self.deadline)
        if self.started is not None:
            env[ENV_STARTED] = f"{self.started[0]},{self.started[1]}"
        if self.config_text is not None:
            env[ENV_CONFIG] = self.config_text
        return env

    def restart_every(self) -> int | None:
        """Trials between self-restarts; None when this process does not restart itself."""
        if not self.restartable:
            return None
        raw = str(RECYCLE_TRIALS) if self.recycle is None else self.recycle
        try:
            n = int(raw)
        except ValueError:
            raise ConfigError(f"{ENV_RECYCLE} must be a whole number, got {raw!r}") from None
        return n if n > 0 else None

    def timeout(self, timeout: float | None, now: float) -> tuple[float | None, RestartState]:
        """--timeout counts from the first start, not from a restart of this worker."""
        if self.deadline is not None:
            # 0 once the deadline has passed: the search loop then starts no trial at all (a
            # tiny positive timeout would still start one, and a restart after it another,
            # forever).
            return max(self.deadline - now, 0.0), self
        if timeout is not None and self.restartable:
            return timeout, dataclasses.replace(self, deadline=now + timeout)
        return timeout, self

    def run_started(self, already: int, now: float) -> tuple[tuple[float, int], RestartState]:
        """(time, finished trials) when this run first started, kept across restarts."""
        if self.started is not None:
            return self.started, self
        started = (now, already)
        return started, (dataclasses.replace(self, started=started) if self.restartable else self)

    def with_config(self, text: str) -> RestartState:
        """A restart reads the config text it started with (kept when this process restarts)."""
        return dataclasses.replace(self, config_text=text) if self.restartable else self


def restart_process() -> None:
    """Replace this process with a fresh run of the same command (it resumes the study)."""
    from search.signals import cancel_exit_watchdog

    cancel_exit_watchdog()
    sys.stdout.flush()
    sys.stderr.flush()
    # sys.orig_argv: the command line as given, `-m search.cli` included (a --jobs worker's);
    # sys.argv would name the module's file, a path that a reinstall may have moved.
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
