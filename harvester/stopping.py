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

_received: list[int] = []


def _stop(signum, frame):
    _received.append(signum)
    raise KeyboardInterrupt


def stop_on_signals() -> None:
    """Ctrl-C and SIGTERM stop the command (the console command's main thread). SIGTERM goes
    through the SIGINT handler in place: the harvest's cancels its requests first."""

    def on_sigterm(signum, frame):
        handler = signal.getsignal(signal.SIGINT)
        # (SIGINT ignored, as in a shell script's background job: SIGTERM must still stop it)
        (handler if callable(handler) and handler is not signal.default_int_handler else _stop)(signum, frame)

    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, on_sigterm)


def is_stop_handler(handler) -> bool:
    """Whether `handler` only stops the command (Python's own, or this module's): one that
    wraps it may cancel work first and then call it."""
    return handler is signal.default_int_handler or handler is _stop


def stop_requested() -> bool:
    return bool(_received)


def stopped_by() -> str:
    """What stopped the command, for its messages."""
    return "SIGTERM" if signal.SIGTERM in _received else "Ctrl-C"


def stopped_exit_code() -> int:
    return 128 + (signal.SIGTERM if signal.SIGTERM in _received else signal.SIGINT)
