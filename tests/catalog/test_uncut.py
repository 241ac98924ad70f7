"""catalog.uncut: a stop never drops a DuckDB statement half-way."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from tests.children import run

import duckdb
import pytest

from catalog import uncut
from catalog.uncut import Connection

REPO = Path(__file__).resolve().parents[2]

# a process with civicat's stop handler (argv[3] "command"), or Python's own (a library caller's, which
# catalog.uncut.connect replaces with one that holds), whose main thread runs a statement of a second or
# more on a Connection (argv[1]: "interruptible" or not; argv[2] rows: one that DuckDB interrupts takes minutes);
# a thread sends SIGINT 0.2 s after the main thread is in it, if it still is; prints what was raised
# and whether it was held to the statement's end, then the rows of the table the statement wrote and
# of a query after. The thread is joined inside the `try`: a stop sent as the statement ended is
# raised there, said "not held" (a statement that ended before the stop proves nothing: one larger)
STOPPED_IN_A_STATEMENT = """
import os, signal, sys, threading, time
import duckdb
from catalog import uncut
from harvester.stopping import stop_on_signals
if sys.argv[3] == "command":
    stop_on_signals()
con = uncut.connect(interruptible=sys.argv[1] == "interruptible")
ended = threading.Event()

def stop_once_in_it():
    while not uncut.in_statement():
        if ended.wait(0.001):   # (it ended before this thread looked)
            return
    time.sleep(0.2)   # (into DuckDB's work, past the call's first steps of Python)
    if uncut.in_statement():
        os.kill(os.getpid(), signal.SIGINT)

stopping = threading.Thread(target=stop_once_in_it)
stopping.start()
try:
    try:
        con.execute(f"CREATE TABLE counted AS SELECT count(*) AS n FROM range({int(sys.argv[2])}) r(i) WHERE i % 7 = 3")
    finally:
        ended.set()
        stopping.join()
    print("not stopped", "-")
except BaseException as exc:   # (what it was raised in: its cause, held; its context, the handler run after)
    print(type(exc).__name__, type(exc.__cause__ or exc.__context__).__name__,
          "held" if uncut.held_to_its_end(exc) else "not-held")
print(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'counted'").fetchone()[0],
      con.execute("SELECT 42").fetchone()[0])
"""


def stopped_in_a_statement(mode: str, rows: int, handler: str = "command") -> tuple[str, str]:
    """STOPPED_IN_A_STATEMENT's two lines: what was raised, the rows after."""
    done = subprocess.run([sys.executable, "-c", STOPPED_IN_A_STATEMENT, mode, str(rows), handler], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    raised, after = done.stdout.splitlines()
    return raised, after


@pytest.mark.parametrize("handler", ["command", "python's own"])
@pytest.mark.parametrize("interruptible", [False, True])
def test_a_stop_during_a_statement_is_raised_as_it_returns_never_inside_it(interruptible, handler):
    """The stop's KeyboardInterrupt raised inside a DuckDB statement made DuckDB drop it
    ('Query interrupted', a RuntimeError) and leave its tasks to the connection's next
    statement, where DuckDB 1.5.5 now and then hung. Now the statement runs to its end (the
    table is written) and the stop is raised as it returns; an interruptible connection's
    statement is ended by DuckDB itself (its InterruptException, nothing written). Either way
    the connection answers the next statement. The whole statement (150,000,000 rows: ~0.5 s
    here) could end before its stop on a machine three times faster, or before a stopping thread
    late under load: it is made four times larger until the stop comes inside it. So too with
    Python's own SIGINT handler (a library caller's, no stop_on_signals()), whose KeyboardInterrupt
    DuckDB dropped the statement for: `connect` puts one that holds it in its place."""
    if interruptible:
        raised, after = stopped_in_a_statement("interruptible", 20_000_000_000, handler)
        assert (raised, after) == ("KeyboardInterrupt InterruptException not-held", "0 42")
        return
    outcomes = []
    for rows in (150_000_000, 600_000_000, 2_400_000_000):
        raised, after = stopped_in_a_statement("whole", rows, handler)
        outcomes.append((rows, raised, after))
        if raised.endswith(" held"):
            break
    assert (raised, after) == ("KeyboardInterrupt NoneType held", "1 42"), outcomes
# civicat's stop handler installed, then SIGTERM's handler in Python replaced by one that does
# nothing: as when DuckDB does not ask Python to run it during a long task of its own (a merge's
# UPDATE of 100,000 datasets ran 30 s so); a thread sends SIGTERM once the main thread is in a
# statement of minutes on an interruptible Connection; prints what the statement raised
HANDLER_NOT_RUN = """
import os, signal, threading, time
import duckdb
from catalog import uncut
from harvester.stopping import stop_on_signals
stop_on_signals()
signal.signal(signal.SIGTERM, lambda signum, frame: None)
con = uncut.Connection(duckdb.connect(), interruptible=True)

def stop_once_in_it():
    while not uncut.in_statement():
        time.sleep(0.001)
    time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=stop_once_in_it).start()
try:
    con.execute("SELECT count(*) FROM range(20000000000) r(i) WHERE i % 7 = 3")
    print("not stopped")
except duckdb.InterruptException:
    print("interrupted")
print(con.execute("SELECT 42").fetchone()[0])
"""


def test_a_stop_interrupts_a_statement_even_where_duckdb_runs_no_python_handler_during_it():
    """The stop's handler interrupted an interruptible statement, but Python runs the handler in
    the main thread only when DuckDB asks between its tasks: a merge's UPDATE of 100,000 datasets
    asked after 30 s, and the stop waited for it. The thread that counts the stop signals, to
    which their C handler writes whatever the main thread does, interrupts it as the first comes."""
    try:
        done = subprocess.run([sys.executable, "-c", HANDLER_NOT_RUN], capture_output=True, text=True, timeout=30,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    except subprocess.TimeoutExpired:
        pytest.fail("the statement was not interrupted: it ran on")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["interrupted", "42"]


def test_calls_answer_as_duckdb_s_and_other_threads_pass_through():
    """What a Connection returns is DuckDB's (the connection itself as this Connection, a cursor
    as one); a call from another thread is not counted (no handler runs there)."""
    con = Connection(duckdb.connect())
    assert con.execute("SELECT 1 AS one").fetchall() == [(1,)] and con.description[0][0] == "one"
    cursor = con.cursor()
    assert isinstance(cursor, Connection) and cursor.execute("SELECT 2").fetchone() == (2,)
    seen = []
    other = threading.Thread(target=lambda: seen.append(con.cursor().execute("SELECT 3").fetchone()))
    other.start()
    other.join()
    assert seen == [(3,)]
    with con:
        pass
    with pytest.raises(duckdb.ConnectionException):
        con.execute("SELECT 1")



class _LateInterrupts:
    """A DuckDB connection whose interrupt comes LATE seconds after it is asked for: the thread
    that interrupts held up between its look at the running call and its interrupt (as the
    scheduler may hold it, under load)."""
    LATE = 0.1

    def __init__(self, con):
        self._con = con

    def interrupt(self) -> None:
        time.sleep(self.LATE)
        self._con.interrupt()

    def __getattr__(self, name: str):
        return getattr(self._con, name)


def test_an_interrupt_meant_for_a_statement_never_lands_on_the_statements_after_it():
    """A stop interrupts the main thread's interruptible statement until it returns; an interrupt
    sent as the statement ended (its look at the call made before, its interrupt after) landed
    on the next statement, a held ROLLBACK or what followed it: DuckDB failed it ("Interrupted!")
    and left the transaction open now and then (4 ROLLBACKs in 20), on a connection used on (the
    search index build's), the stop's KeyboardInterrupt replaced by that error. Now no interrupt
    is sent once its call has returned. Rounds of a statement that ends of itself while its
    interrupt is late."""
    con = Connection(_LateInterrupts(duckdb.connect()), interruptible=True)
    con.execute("SET enable_progress_bar = false")
    con.execute("CREATE TABLE t AS SELECT range AS i, repeat('x', 40) AS s FROM range(200000)")

    looking, statements_run = threading.Event(), threading.Event()

    def stop_once_in_a_statement():
        looking.set()
        while not uncut.in_statement():
            if statements_run.wait(0.0005):   # (late under load: it missed them, and is not waited for without end)
                return
        uncut.interrupt_running()   # (as the thread that counts the stop signals does)

    failed = []
    for _ in range(10):
        con.interruptible = True
        con.execute("BEGIN TRANSACTION")
        looking.clear()
        statements_run.clear()
        stopping = threading.Thread(target=stop_once_in_a_statement)
        stopping.start()
        assert looking.wait(60)
        try:
            con.execute("UPDATE t SET s = s || 'y' WHERE i % 2 = 0")   # (tens of ms: it ends before the late interrupt)
        except duckdb.InterruptException:
            pass
        con.interruptible = False   # what follows is held: never interrupted
        try:
            con.execute("ROLLBACK")
            con.execute("SELECT count(*) FROM t a JOIN t b USING (i) JOIN t c USING (i)").fetchone()
        except duckdb.Error as exc:
            failed.append(str(exc))
        statements_run.set()
        stopping.join(60)
        for thread in threading.enumerate():
            if thread.name == "civicat-stop-interrupt":
                thread.join()
        try:
            con.execute("ROLLBACK")   # (a transaction left open by a ROLLBACK interrupted)
            failed.append("a transaction left open")
        except duckdb.TransactionException:
            pass
    assert failed == []
    assert con.execute("SELECT count(*) FROM t WHERE s LIKE '%y'").fetchone()[0] == 0


def test_every_duckdb_connection_civicat_opens_is_opened_through_uncut():
    """A connection opened with duckdb.connect itself has its statements dropped by a stop: a
    reader's (`civicat sql`, the exports) then hung for good in its close."""
    opened = [f"{path.relative_to(REPO)}:{number}" for package in ("catalog", "harvester")
              for path in sorted((REPO / package).rglob("*.py")) if path.name != "uncut.py"
              for number, line in enumerate(path.read_text().splitlines(), 1) if "duckdb.connect(" in line]
    assert opened == []


SETTINGS_SHOWN = """
from catalog import uncut
con = uncut.connect()
opened = [con, con.cursor(), uncut.interruptible_cursor(con), con.cursor().cursor()]
print([c.execute("SELECT current_setting('enable_progress_bar')").fetchone()[0] for c in opened])
"""


def test_no_connection_nor_cursor_prints_duckdbs_progress_bar():
    """DuckDB prints a progress bar on stdout for a statement past 2 s, a terminal or not: a
    300-portal night's checkpoint under load wrote one into `civicat harvest --json`'s report
    (its reader could not parse it). Every connection civicat opens, and each cursor, has it off.
    (In a process of its own: under pytest's captured output DuckDB starts with it off.)"""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    shown = run([sys.executable, "-c", SETTINGS_SHOWN], cwd=root, capture_output=True, text=True,
                check=True, env={**os.environ, "PYTHONPATH": str(root)}).stdout.strip()
    assert shown == "[False, False, False, False]"


def _stopped_at_step(con, step: int | None) -> tuple[int, list]:
    """`one_thread`'s block (a statement) run with the profile of Python's steps on, a SIGINT sent at
    its `step`-th step where Python runs a signal's handler (a Python function's start, a C call's
    return: sys.setprofile's `call`, `c_return`), taken by a handler that stops as the command's does
    (`raise_or_hold`). Returns the steps seen and what was raised out of the `with`, each with
    DuckDB's threads read while the stop is alive."""
    seen, raised = [0], []

    def profiled(frame, event, arg):
        if event in ("call", "c_return"):
            seen[0] += 1
            if seen[0] == step:
                signal.raise_signal(signal.SIGINT)   # (the handler runs as this returns: raised there)

    previous = signal.signal(signal.SIGINT, lambda signum, frame: uncut.raise_or_hold(KeyboardInterrupt()))
    try:
        sys.setprofile(profiled)
        try:
            with uncut.one_thread(con):
                con.execute("SELECT 42").fetchall()
        except KeyboardInterrupt as stop:
            sys.setprofile(None)
            raised.append((type(stop).__name__, con.execute("SELECT current_setting('threads')").fetchone()[0]))
        sys.setprofile(None)
        try:   # (a stop still held would land on the next call)
            con.execute("SELECT 1").fetchall()
        except KeyboardInterrupt:
            raised.append(("held past the block", None))
    finally:
        sys.setprofile(None)
        signal.signal(signal.SIGINT, previous)
    return seen[0], raised


def test_a_stop_at_any_step_of_one_thread_leaves_the_database_its_threads():
    """A stop raised in Python between `one_thread`'s steps and its block (contextlib's `__enter__`
    once the threads were set, its `__exit__` before the generator resumed to put them back) skipped
    the putting back: the database stayed on one thread while the stop lived (its traceback holds the
    suspended generator), for good in a process that kept it (main: 3 steps of this sweep). Now a stop
    that comes in one_thread's own steps is held until its setting is done, then raised: at every
    step, one KeyboardInterrupt out of the `with`, the threads put back as it is raised."""
    con = uncut.connect()
    try:
        con.execute("SET threads = 3")
        steps, raised = _stopped_at_step(con, None)
        assert raised == [] and steps > 20
        left = {}
        for step in range(1, steps + 1):
            seen, raised = _stopped_at_step(con, step)
            if raised != [("KeyboardInterrupt", 3)]:
                left[step] = raised
            con.execute("SET threads = 3")   # (for the next step, whatever this one left)
        assert left == {}
    finally:
        con.close()
