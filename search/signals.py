"""Stop signals: Ctrl-C, `kill` / `docker stop` and a closed terminal all stop a run the same
way, as a KeyboardInterrupt inside the block of interrupts_caught."""

from __future__ import annotations

import contextlib
import faulthandler
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator

# Ctrl-C, `kill` / `docker stop`, and a closed terminal all stop a run the same way: the running
# trial is closed as FAIL (not left RUNNING for the grace period) and the study can resume.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopRequest:
    """Set by a stop signal; read by the search loop. A plain attribute, not a threading.Event:
    a signal handler runs between any two bytecodes of the main thread, even inside another
    run of itself, and Event.set takes a non-reentrant lock. A second signal landing while the
    first handler held it blocked the worker forever (seen under SIGTERM redelivery)."""

    def __init__(self) -> None:
        self.requested = False
        self.armed = True  # the next signal raises KeyboardInterrupt
        self.signum = signal.SIGINT
        self.redelivered = 0

    def is_set(self) -> bool:
        return self.requested


_exit_deadline: float | None = None  # monotonic time by which exit_watchdog ends the process
_ALARM_MARGIN_S = 10  # the kernel's backstop comes this long after faulthandler's


def exit_watchdog(seconds: float) -> None:
    """A process still alive `seconds` from now (or from an earlier call, whichever ends
    first) prints every thread's stack to stderr and exits with status 1: faulthandler's
    watchdog thread, which needs neither the GIL nor a lock of ours. Python cancels that
    thread early in its own exit, before TensorFlow's C++ teardown runs, so SIGALRM (whose
    default action ends the process whatever it is doing) follows _ALARM_MARGIN_S later as a
    backstop; restarts.restart_process cancels it (an alarm survives exec).
    For a process that must end: a --jobs worker told to stop or done, which once hung on its
    way out after its parent's SIGKILL with both threads in futex waits (CI, 2026-12-05),
    holding its share of the cores for good."""
    global _exit_deadline
    now = time.monotonic()
    if _exit_deadline is not None:
        seconds = min(seconds, max(_exit_deadline - now, 0.1))
    _exit_deadline = now + seconds
    try:
        faulthandler.dump_traceback_later(seconds, exit=True, file=sys.__stderr__)
    except (AttributeError, ValueError, RuntimeError, OSError):
        pass  # no stderr with a file descriptor (an embedded interpreter): the alarm remains
    if hasattr(signal, "alarm"):
        signal.alarm(math.ceil(seconds) + _ALARM_MARGIN_S)


def cancel_exit_watchdog() -> None:
    """Before this process replaces itself (exec): the alarm would outlive the image."""
    global _exit_deadline
    _exit_deadline = None
    faulthandler.cancel_dump_traceback_later()
    if hasattr(signal, "alarm"):
        signal.alarm(0)


@contextlib.contextmanager
def interrupts_caught(exit_within: float | None = None) -> Iterator[StopRequest]:
    """Within the block, STOP_SIGNALS raise KeyboardInterrupt (the running trial is closed as
    FAIL, not left RUNNING) and mark the yielded StopRequest; the previous handlers (a
    notebook's, say) are back after it.

    One KeyboardInterrupt at a time: further signals only mark the request, so a second one
    cannot interrupt Optuna while it closes the trial the first one stopped. Python drops an
    exception raised while a weakref callback or __del__ runs (SQLAlchemy and TensorFlow run
    some when objects die), printing "Exception ignored in ... KeyboardInterrupt": the
    interrupt would vanish mid-trial. So such a dropped interrupt is not printed but delivered
    again 50 ms later, when the main thread is elsewhere; and the search loop stops after the
    trial should every attempt land badly (StopRequest.is_set).

    exit_within: after the first stop signal the process ends within this many seconds,
    whatever it is doing then (exit_watchdog): for --jobs workers, which nobody is left to
    kill when their parent died.
    """
    stop = StopRequest()

    def handler(signum: int, frame: object) -> None:
        stop.requested, stop.signum = True, signum
        if exit_within is not None and not stop.redelivered and stop.armed:
            exit_watchdog(exit_within)
        if stop.armed:
            stop.armed = False
            raise KeyboardInterrupt

    default_hook = sys.unraisablehook

    def unraisable(info) -> None:
        if issubclass(info.exc_type, KeyboardInterrupt) and stop.requested:
            if stop.redelivered < 20:  # the interrupt was lost: raise it again, once
                stop.redelivered += 1
                stop.armed = True
                threading.Timer(0.05, os.kill, (os.getpid(), stop.signum)).start()
            return
        default_hook(info)

    previous = {}
    for sig in STOP_SIGNALS:
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not in the main thread (tests): Python delivers no signal there
            break
    if previous:
        sys.unraisablehook = unraisable
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        if previous:
            sys.unraisablehook = default_hook
