"""How a command is stopped before its end: Ctrl-C (SIGINT), or SIGTERM, which cron's
`timeout`, systemd and `kill` send. Both stop it the same way, as KeyboardInterrupt in the
main thread: a harvest stops every portal at its next request and records them Interrupted,
nothing half-written is published, and the exit code says which signal it was (128 + its
number: 130, 143). Left to Python's default, SIGTERM ended the process on the spot: no report
printed, its runs `running` until the next harvest, its staging files left behind.

DuckDB turns a signal that comes during a query into its own error ("Query interrupted", a
RuntimeError), the KeyboardInterrupt lost: `stop_requested()` tells that error from a failure.
"""
from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_received: list[int] = []
_cancellers: list[Callable[[], None]] = []


def _stop(signum, frame):
    _received.append(signum)
    for cancel in list(_cancellers):
        cancel()
    raise KeyboardInterrupt


@contextmanager
def cancelled_on_stop(cancel: Callable[[], None]) -> Iterator[None]:
    """`cancel` (a run's requests) is called by the stop before KeyboardInterrupt unwinds the
    main thread, whichever the signal: SIGTERM with SIGINT ignored (a shell script's background
    job) never goes through a SIGINT handler that would cancel."""
    _cancellers.append(cancel)
    try:
        yield
    finally:
        _cancellers.remove(cancel)


def stop_on_signals() -> None:
    """Ctrl-C and SIGTERM stop the command (the console command's main thread), the work
    registered with cancelled_on_stop cancelled first. SIGINT ignored (a shell script's
    background job) stays ignored: SIGTERM still stops the command."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)


def stop_requested() -> bool:
    return bool(_received)


def stopped_by() -> str:
    """What stopped the command, for its messages."""
    return "SIGTERM" if signal.SIGTERM in _received else "Ctrl-C"


def stopped_exit_code() -> int:
    return 128 + (signal.SIGTERM if signal.SIGTERM in _received else signal.SIGINT)
