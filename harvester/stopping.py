"""How a command is stopped before its end: Ctrl-C (SIGINT), or SIGTERM, which cron's
`timeout`, systemd and `kill` send. Both stop it the same way, as KeyboardInterrupt in the
main thread: a harvest stops every portal at its next request and records them Interrupted,
nothing half-written is published, and the exit code says which signal it was (128 + its
number: 130, 143). Left to Python's default, SIGTERM ended the process on the spot: no report
printed, its runs `running` until the next harvest, its staging files left behind.

A signal that comes while the main thread is in a DuckDB statement of the catalogue is raised
as the statement returns, never inside it (catalog.uncut: DuckDB would drop the statement, and
1.5.5 now and then hung in the next one, the stop's bookkeeping). A connection opened without
catalog.uncut (a reader's) still turns it into DuckDB's own error ("Query interrupted", a
RuntimeError), the KeyboardInterrupt lost: `stop_requested()` tells that error from a failure.

The stop then cleans up for a few seconds: the runs it stopped recorded Interrupted, staging
removed, the report printed. A second signal (Ctrl-C pressed again, a second `kill`) raised in
that cleanup and cut it short, its runs left `running` until the next harvest: now it only
says in the log that the stop is finishing and that a third quits at once. The third ends
the process on the spot (`os._exit`, 130 or 143), as kill -9 would: nothing half-written is
published either way, and the next harvest closes what it left. Python runs a signal's handler
only in the main thread, between two steps of Python, and DuckDB (1.5.5) now and then holds the
main thread for good in the statement after one a signal interrupted: there a thread of its own
counts the signals (from the bytes their C handler writes to a pipe, `signal.set_wakeup_fd`)
and, a second after the third, quits in the handler's place.
"""
from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from catalog import uncut

_received: list[int] = []
_cancellers: list[Callable[[], None]] = []
_counted_stop = threading.Event()   # the counting thread saw a stop signal (the handler may not have run yet)
_counted: list[int] = []   # the stop signals the counting thread saw, in order (read before the handler has run)
# the first stop's interrupt, by the main thread's handler or the counting thread, whichever takes it
# first: the counting thread, late under load, once interrupted the statement the main thread ran after
# the handler had already stopped it (the stop's own bookkeeping). Held for that decision only, never
# across a cancel, which may wait for a lock the main thread holds (the resolver's): its handler waits here.
# finished() decides under it too, so that a signal is a stop or comes after the finish for both threads
# alike (re-entrant: the main thread's handler may run inside finished()'s hold)
_first_stop = threading.RLock()
_handled: list[int] = []   # the main thread's handler has run (the stop is raised or held there)


log = logging.getLogger("civicat")


def _stop(signum, frame):
    said = _signal_name(signum)
    if _finished.is_set():   # (not counted: the counting thread's third still quits at once)
        log.warning("%s after the command had finished: nothing left to stop, its report and exit code stand", said)
        return
    _received.append(signum)
    if len(_received) == 1:
        with _first_stop:   # (held by the counting thread only for its cancels: never by this thread)
            _handled.append(signum)
        for cancel in list(_cancellers):
            cancel()
        uncut.raise_or_hold(KeyboardInterrupt())   # (in a DuckDB call: as it returns, see catalog.uncut)
        return
    if len(_received) == 2:   # (the cleanup the first started goes on: no exception to cut it short)
        log.warning("%s again: the stop is finishing its bookkeeping (the runs it stopped recorded Interrupted, "
                    "what they staged removed), which takes seconds; a third Ctrl-C or SIGTERM quits at once, "
                    "leaving that to the next harvest", said)
        return
    _quit(said, stopped_exit_code())


def _quit(said: str, code: int) -> None:
    try:   # (straight to fd 2: no lock of the logging's, which the interrupted code may hold, is needed)
        os.write(2, f"{said} a third time: quitting at once; runs left `running` are closed by the next "
                    f"harvest, a publish cut short is repaired by the next pull or export\n".encode())
    except OSError:
        pass
    os._exit(code)


HANDLER_GRACE_SECONDS = 1.0   # the main thread's handler quits first where it can run at all


def _count_stop_signals(pipe: int) -> None:
    """The counting thread: each byte of `pipe` is a signal's number, written by its C handler
    whatever the main thread is doing; at the first stop signal it cancels the run's requests
    (cancelled_on_stop) and interrupts the main thread's interruptible DuckDB statement, at the third, the main thread's handler not having quit in
    HANDLER_GRACE_SECONDS, it quits."""
    counted = _counted
    while len(counted) < 3:
        came = [signum for signum in os.read(pipe, 64) if signum in (signal.SIGINT, signal.SIGTERM)]
        first = came and not counted
        counted += came   # (before the cancels: a portal thread they stop names the signal from it)
        if first:
            # the main thread's handler runs only once its C call returns (DuckDB's task, a parse
            # under load): meanwhile the run's requests are cancelled and its statement interrupted
            # from here, or page threads read ahead went on asking (17 pages where 4 were in flight).
            # Not once the command has finished: no stop then (a report that failed after such a
            # signal exited 143), only counted, for the third's quit
            with _first_stop:
                stop = not _finished.is_set()
                if stop:
                    _counted_stop.set()
                mine = stop and not _handled
            if mine:   # (outside the lock: a cancel may wait for a lock the main thread holds, whose
                # handler would wait for this one; cancelled twice is no harm)
                for cancel in list(_cancellers):
                    cancel()
                with _first_stop:
                    if not _handled:   # (else the main thread is past the statement it was in: leave its next alone)
                        uncut.interrupt_running()
    time.sleep(HANDLER_GRACE_SECONDS)
    _quit(_signal_name(counted[2]), stopped_exit_code(counted))


_counting = threading.Event()


def _signal_name(signum: int) -> str:
    return "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"


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
    if uncut.pythons_own(signal.getsignal(signal.SIGINT)):
        signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    if not _counting.is_set():
        _counting.set()
        pipe, wakeup = os.pipe()
        os.set_blocking(wakeup, False)
        signal.set_wakeup_fd(wakeup, warn_on_full_buffer=False)
        threading.Thread(target=_count_stop_signals, args=(pipe,), name="stop-signals", daemon=True).start()
        # the interpreter's exit functions run last registered first: the signals are ignored at the
        # last of them, before logging's (registered as this module imported logging: here again after
        # it), so that one blocked (logging's, waiting for a handler's lock that a thread stuck writing
        # to a full stderr holds) is ended by a third signal; they were ignored through all of them
        atexit.unregister(logging.shutdown)
        atexit.register(_ignored_from_here)
        atexit.register(logging.shutdown)


_finished = threading.Event()


def finished() -> None:
    """The command has done its work (a harvest: stored, published, its lock released), what is left
    is its report and exit: a Ctrl-C or SIGTERM from now on changes neither, said in the log (one
    as a harvest printed its report made it exit 143, "Interrupted …: stopped before its end", and
    one as the interpreter ended, past its handlers, killed it: a cron job done, mailed as failed);
    nor is it a stop to the thread that counts them (a report failing after it exited 143, not 1).
    A report held by a stdout nobody reads, or an exit function of the interpreter's that hangs
    (logging's, waiting for a handler held by a thread stuck writing to a full stderr), is ended by
    a third (quit at once, 130 / 143). After the last exit function (_ignored_from_here) both are
    ignored: a Python handler no longer runs in the interpreter's last steps, and there Python's
    default for SIGTERM killed it (-15). Not after a stop: its cleanup goes on as after one (a
    second signal logged, a third quits)."""
    with _first_stop:
        if stop_requested() or _finished.is_set():
            return
        _finished.set()


def _ignored_from_here() -> None:
    """The last exit function (stop_on_signals): the command finished, Ctrl-C and SIGTERM ignored
    for the interpreter's last steps, where no handler of Python's runs and no thread counts them."""
    if not _finished.is_set():
        return
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is _stop:
            signal.signal(signum, signal.SIG_IGN)


def stop_requested() -> bool:
    return bool(_received) or _counted_stop.is_set()


def stopped_by() -> str:
    """What stopped the command, for its messages."""
    # (the counting thread's too: a portal thread stopped by its cancel records its message
    # while the main thread, in a C call, has not run the handler yet: SIGTERM was said Ctrl-C)
    return _signal_name(signal.SIGTERM if signal.SIGTERM in _received + _counted else signal.SIGINT)


def stop_message() -> str:
    """What a command stopped says, wherever the stop found it."""
    return f"Interrupted ({stopped_by()}): stopped before its end; nothing half-written was published"


def stopped_exit_code(received: list[int] | None = None) -> int:
    received = _received + _counted if received is None else received
    return 128 + (signal.SIGTERM if signal.SIGTERM in received else signal.SIGINT)
