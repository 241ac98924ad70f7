"""DuckDB statements that a Ctrl-C or SIGTERM never drops half-way.

Python runs a signal's handler in the main thread, between two steps of Python or when C code
asks for it; DuckDB's Python client asks between the tasks of a statement, and when the handler
raises (KeyboardInterrupt: harvester.stopping) it drops the statement where it stands ("Query
interrupted") without interrupting it, its tasks left for the connection's next statement to
cancel. DuckDB 1.5.5 was seen hanging now and then in that next statement (session 21), which is
the stop's own bookkeeping (the runs recorded Interrupted): the runs stayed `running` until the
next harvest.

A connection opened through `Connection` is never dropped so: while the main thread is in one
of its calls, the stop handler `hold`s its KeyboardInterrupt, which the call raises as it
returns. A held statement runs to its end, so DuckDB has nothing to cancel; an `interruptible`
connection's (or cursor's: the attribute may be set for a few statements) is interrupted by
DuckDB itself (`interrupt()`: the statement ends with its own error, cleaned up before the call
returns). Other threads need neither: Python runs no signal handler there.

The stop handler is the command's (harvester.stopping) or, in a program that uses civicat as a
library and left Python's own SIGINT handler in place, `keyboard_interrupt`, which stands in
for it during the main thread's calls (and only then: the caller's process keeps the handler it
set): Python's raised a Ctrl-C's KeyboardInterrupt inside the statement, which DuckDB dropped
("Query interrupted": logged by the search build, the harvest then returning as if never
stopped; let through by `Store.close()`), and a `SELECT 42` after a recursive query so dropped
hung past 100 s (session 32's review). (A harvest of 2,000 or 20,000 datasets makes ~200 calls
in the main thread: the two swaps, ~7 us, cost it a millisecond.)

Every DuckDB connection civicat opens is one (`connect`, the one place that opens them). Held:
a writer's statements (seconds at most), its COMMITs and ROLLBACKs among them. Interruptible: what a
stop may throw away, which may take minutes: a reader's statements (catalog.lock.
connect_read_only: `civicat sql`'s query, an export's COPY), a records pull's scans and merge
COPY (staging only), a harvest's merge inside its transaction, rolled back after (every dataset of
a large portal written again when all changed: docs/benchmarks.md), the search index's build
(tables of its own until one short transaction swaps them in: catalog.search). A reader's statement
dropped hung for good in its close (`civicat sql` stopped in a long query: no exit until a
third signal).
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_MAIN = threading.main_thread().ident
INTERRUPT_EVERY = 0.02   # seconds


def connect(database: str = ":memory:", *, interruptible: bool = False, **options) -> Connection:
    """`duckdb.connect(database, **options)` as a Connection: held, or `interruptible`."""
    import duckdb   # (here: the mapping workers import this module, and not DuckDB)

    con = duckdb.connect(database, **options)
    # DuckDB prints a progress bar on stdout for a statement past 2 s, terminal or not (into
    # `--json` reports); its cursors start without it, a connection with it
    con.execute("SET enable_progress_bar = false")
    return Connection(con, interruptible=interruptible)


def keyboard_interrupt(signum, frame) -> None:
    """Python's own SIGINT handler (`signal.default_int_handler`), but that a Ctrl-C coming
    during a Connection's call is held until the call returns (see the module)."""
    raise_or_hold(KeyboardInterrupt())


def pythons_own(handler) -> bool:
    """Whether `handler` is Python's own SIGINT handler, or `keyboard_interrupt` in its place."""
    return handler is signal.default_int_handler or handler is keyboard_interrupt


def raise_or_hold(stop: BaseException) -> None:
    """A stop handler's last step: `stop` raised, or held while the main thread is in a
    Connection's call or sets DuckDB's threads for `one_thread` (raised as its setting is done)."""
    if in_statement() or _setting_threads(sys._getframe(1)):
        hold(stop)
        return
    raise stop


def raise_held() -> None:
    """The main thread's stop held outside a call (see `_setting_threads`), raised now."""
    if threading.get_ident() == _MAIN and _held and not _running:
        raise _held.pop()


@contextmanager
def interruptible(con) -> Iterator[None]:
    """`con`'s statements, in the block, interrupted by a stop: what they write is thrown away
    after one (a Connection; DuckDB's own as it is)."""
    if not isinstance(con, Connection):
        yield
        return
    was, con.interruptible = con.interruptible, True
    try:
        yield
    finally:
        con.interruptible = was


def interruptible_cursor(con) -> Connection:
    """A cursor of `con` (a Connection, or DuckDB's own) whose statements a stop interrupts."""
    return Connection((con._con if isinstance(con, Connection) else con).cursor(), interruptible=True)


class _Call:
    __slots__ = ("connection",)

    def __init__(self, connection: Connection):
        self.connection = connection


_running: list[_Call] = []         # the main thread's calls in progress, innermost last
_held: list[BaseException] = []    # the stop that came during one of them
# held to interrupt a call, and by the main thread to end one: no interrupt is sent once its call
# has returned. (One sent as the statement ended - the look at `_running` before, the interrupt
# after - landed on the next statement, a held ROLLBACK or what followed: DuckDB failed it and now
# and then left its transaction open, on a connection used on.) One sent before the call returned
# but after DuckDB's statement ended waits in DuckDB, which clears it as its next statement begins.
_interrupting = threading.Lock()


def in_statement() -> bool:
    """Whether the main thread is in a call of a Connection (asked by the stop's handler)."""
    return bool(_running)


def _held_to_its_end(stop: BaseException) -> BaseException:
    stop.held_to_its_end = True
    return stop


def held_to_its_end(stop: BaseException) -> bool:
    """Whether `stop` came during a call of a Connection and was held until the call returned: that
    call's statement ran to its end (a COMMIT committed, a CHECKPOINT wrote the log). Not so for a
    stop raised in Python before the call, or as an interrupted or failed statement returned."""
    return getattr(stop, "held_to_its_end", False)


def hold(stop: BaseException) -> None:
    """Raise `stop` as the main thread's call of a Connection returns instead of inside it
    (DuckDB would drop its statement); an interruptible connection is interrupted first."""
    _held.append(stop)
    interrupt_running()


def interrupt_running() -> None:
    """Interrupt the main thread's call of a Connection until it returns, if its connection is
    interruptible. Called by the stop's handler, and from the thread that counts the stop
    signals as one comes (harvester.stopping): Python runs the handler in the main thread only
    when DuckDB asks between its tasks, and one task of a merge's UPDATE of 100,000 datasets
    ran 30 s without asking. The stop's KeyboardInterrupt is raised once the call has returned
    (the handler runs at the first step of Python after it, in `_call`)."""
    try:
        call = _running[-1]
    except IndexError:   # (the call returned meanwhile)
        return
    if call.connection.interruptible:
        threading.Thread(target=_interrupt_while_running, args=(call,), name="civicat-stop-interrupt",
                         daemon=True).start()


def _interrupt_while_running(call: _Call) -> None:
    """Interrupt `call`'s connection until the call returns: DuckDB clears an interrupt as a
    statement begins, so one alone, come before it began, would let a scan of minutes run on."""
    while True:
        with _interrupting:
            if not any(running is call for running in _running):
                return
            try:
                call.connection.interrupt()
            except Exception:   # (closed meanwhile)
                return
        time.sleep(INTERRUPT_EVERY)


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
        elif not _running and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            # (a library caller's: a signal that comes between a swap and the statement finds one or the
            # other handler, each raising outside a statement)
            try:
                signal.signal(signal.SIGINT, keyboard_interrupt)
                return self._call(method, args, kwargs)
            finally:
                signal.signal(signal.SIGINT, signal.default_int_handler)
        else:
            _running.append(_Call(self))
            if _held:   # (held outside a call, `_setting_threads`: this call is the first it may interrupt)
                interrupt_running()
            try:
                result = method(*args, **kwargs)
            except BaseException as exc:
                with _interrupting:
                    _running.pop()
                if _held and not _running:
                    raise _held.pop() from exc   # (an interrupted statement's error is the stop)
                raise
            with _interrupting:
                _running.pop()
            if _held and not _running:
                raise _held_to_its_end(_held.pop())
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


class one_thread:
    """DuckDB on one thread while the block runs, its statements on `con` (a Connection, a store's
    cursor, DuckDB's own), nothing else heavy run meanwhile (the store's write lock held: see
    catalog.store's Store._one_thread and _write_datasets, catalog.search's update; the records
    pulls' few rows of bookkeeping may run beside). The setting is the database's, not the
    connection's, so the one it had is put back: the merge and the search build run alone and use
    every core. Put back whatever ends the block, a stop included: one missed left the database on
    one thread for good (each later block read 1 as the setting to put back), the merges, the
    search build and the close's checkpoint with it. So it is put back on a cursor a stop never
    interrupts (a merge's cursor is interruptible, and so are its cursors), and again should a stop
    be raised in Python as the call begins (the stop's handler raises outside a statement), the
    stop raised after. A stop whose handler is civicat's (`raise_or_hold`) that comes in the
    manager's own steps (`__enter__`, `__exit__`: setting the threads, putting them back) is held
    until that is done (see `_setting_threads`); Python's own handler, outside a call, raises at
    any step of Python: raised in `__enter__` once the threads are set, it puts them back first.

    A class of its own, not a `contextmanager` generator: `_setting_threads` knows its steps by
    their code objects, which for a generator were contextlib's private `_GeneratorContextManager`'s."""

    __slots__ = ("_con", "_side", "_threads", "_ended")

    def __init__(self, con):
        self._con, self._ended = con, False

    def __enter__(self) -> None:
        side = self._side = self._con.cursor()   # (outside `con`'s transaction: the setting put back after
        if isinstance(side, Connection):          # a statement that failed in it)
            side.interruptible = False
        try:
            self._threads = int(side.execute("SELECT current_setting('threads')").fetchone()[0])
        except BaseException:
            self._ended = True
            try:
                side.close()
            finally:
                raise_held()
            raise
        try:
            side.execute("SET threads = 1")
        except BaseException:
            self.__exit__(None, None, None)   # (a stop as the setting returned: the threads put back, a held one raised)
            raise

    def __exit__(self, *exc) -> None:
        side, stop = self._side, None
        try:
            while True:
                try:
                    side.execute(f"SET threads = {self._threads}")
                    break
                except KeyboardInterrupt as exc:
                    stop = exc
            if stop is not None:
                raise stop
        finally:
            try:
                side.close()
            finally:
                self._ended = True   # (a stop from here on is raised as ever: the threads are put back)
                raise_held()


_ONE_THREAD = {one_thread.__enter__.__code__, one_thread.__exit__.__code__}


def _setting_threads(frame) -> bool:
    """Whether the main thread, stopped in `frame`, is in `one_thread`'s own steps: setting DuckDB's
    threads (`__enter__`, from its start to its return), putting them back (`__exit__`, until the
    setting is back and its cursor closed). A stop raised there, at any step of Python, skipped the
    putting back (the database on one thread while the stop lived), or with contextlib's generator
    left it suspended until it was collected. Its block is none of these: a stop there is raised as
    ever."""
    while frame is not None:
        if frame.f_code in _ONE_THREAD:
            manager = frame.f_locals.get("self")
            if not getattr(manager, "_ended", True):
                return True   # (not once it has ended: its `raise_held` is behind or running)
        frame = frame.f_back
    return False
