"""DuckDB statements that a Ctrl-C or SIGTERM never drops half-way.

Python runs a signal's handler in the main thread, between two steps of Python or when C code
asks for it; DuckDB's Python client asks between the tasks of a statement, and when the handler
raises (KeyboardInterrupt: harvester.stopping) it drops the statement where it stands ("Query
interrupted"), its tasks left for the connection's next statement to cancel. DuckDB 1.5.5 now
and then hangs in that next statement, which is the stop's own bookkeeping (the runs recorded
Interrupted): the runs stayed `running` until the next harvest.

A connection opened through `Connection` is never dropped so: while the main thread is in one
of its calls, the stop handler `hold`s its KeyboardInterrupt, which the call raises as it
returns. A catalogue's statement runs to its end (the longest take a second or two at 100,000
datasets), so DuckDB has nothing to cancel; an `interruptible` connection (a records pull's
scans, which may take minutes) is interrupted by DuckDB itself (`interrupt()`: the statement
ends with its own error, cleaned up before the call returns). Other threads need neither:
Python runs no signal handler there.
"""
from __future__ import annotations

import threading

_MAIN = threading.main_thread().ident
_running: list[Connection] = []    # the main thread's calls in progress, innermost last
_held: list[BaseException] = []    # the stop that came during one of them


def in_statement() -> bool:
    """Whether the main thread is in a call of a Connection (asked by the stop's handler)."""
    return bool(_running)


def hold(stop: BaseException) -> None:
    """Raise `stop` as the main thread's call of a Connection returns instead of inside it
    (DuckDB would drop its statement); an interruptible connection is interrupted first."""
    _held.append(stop)
    if _running[-1].interruptible:
        _running[-1].interrupt()


class Connection:
    """A DuckDB connection whose calls from the main thread are never cut short by a stop (see
    the module); what it returns is as DuckDB's, a cursor one of these too. A Python object is
    named to it with `register` (as civicat does everywhere): DuckDB's replacement scan looks
    for a name in the frame that called it, which is now this class's."""

    __slots__ = ("_con", "interruptible")

    def __init__(self, con, *, interruptible: bool = False):
        self._con, self.interruptible = con, interruptible

    def __getattr__(self, name: str):
        attribute = getattr(self._con, name)
        if not callable(attribute):   # (description, rowcount)
            return attribute
        return lambda *args, **kwargs: self._call(attribute, args, kwargs)

    def _call(self, method, args, kwargs):
        if threading.get_ident() != _MAIN:
            result = method(*args, **kwargs)
        else:
            _running.append(self)
            try:
                result = method(*args, **kwargs)
            except BaseException as exc:
                _running.pop()
                if _held and not _running:
                    raise _held.pop() from exc   # (an interrupted statement's error is the stop)
                raise
            _running.pop()
            if _held and not _running:
                raise _held.pop()
        if result is self._con:   # (execute: for its fetchall)
            return self
        if isinstance(result, type(self._con)):   # (a cursor)
            return Connection(result, interruptible=self.interruptible)
        return result

    def interrupt(self) -> None:
        self._con.interrupt()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
