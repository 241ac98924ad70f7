"""How a command is stopped: a third Ctrl-C or SIGTERM quits at once."""
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.children import line_of, output_of

REPO = Path(__file__).resolve().parents[2]

# a command whose main thread is held in C code where no Python signal handler runs, as DuckDB
# 1.5.5 holds it now and then in the statement after one a signal interrupted (2 runs in 24
# under load): the signals blocked in the main thread, so that another thread takes them (the
# first signal's handler may still run in the main thread before it is held: its stop ignored)
HELD_IN_C = """
import ctypes, signal
from harvester.stopping import stop_on_signals
stop_on_signals()
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
said = False
while True:
    try:
        if not said:
            said = print("held", flush=True) or True
        ctypes.CDLL(None).sleep(600)
    except KeyboardInterrupt:
        pass
"""


def pending(pid: int, sig: int) -> bool:
    """Whether `sig`, sent to process `pid`, waits for one of its threads to take it (/proc)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            waiting = next(line for line in status if line.startswith("ShdPnd:")).split()[1]
    except (FileNotFoundError, ProcessLookupError):   # (ended)
        return False
    return bool(int(waiting, 16) >> (sig - 1) & 1)


def sent_once_taken(process: subprocess.Popen, sig: int) -> None:
    """`sig` sent to `process`, then waited for until one of its threads has taken it: a signal
    sent while one of its kind waits is merged with it (a pause of 0.2 s was not enough on a loaded
    machine, where the thread that takes them may wait longer for a core: two signals counted, no quit)."""
    process.send_signal(sig)
    deadline = time.monotonic() + 30
    while pending(process.pid, sig) and time.monotonic() < deadline:
        time.sleep(0.005)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_third_signal_quits_while_the_main_thread_is_held_in_c_code(sig):
    """The third signal's quit ran in the main thread's Python handler: with the main thread held
    in DuckDB, no handler ran, and no number of Ctrl-C or SIGTERM ended the process (kill -9
    did). A thread of their own counts the signals and quits after the third."""
    held = subprocess.Popen([sys.executable, "-c", HELD_IN_C], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert line_of(held) == b"held\n"
        for _ in range(3):
            sent_once_taken(held, sig)
        _, err = held.communicate(timeout=30)
    finally:
        held.kill()
        held.wait()
    said = "SIGTERM" if sig == signal.SIGTERM else "Ctrl-C"
    assert held.returncode == 128 + sig, err.decode()[-2000:]
    assert f"{said} a third time: quitting at once" in err.decode()


# a command whose requests run in other threads and whose main thread is held in C code where no
# Python signal handler runs (a long C call under load: the main thread's handler runs only when
# it returns): signals blocked in the main thread, as above, which waits in C for a lock (argv[1])
# taken for good; "held" once its wait shows in /proc/locks (a thread's look at the main thread's
# frame, 0.2 s before, found it late on a loaded machine: in Python still, where the handler ran)
CANCEL_WHILE_HELD = """
import ctypes, fcntl, os, signal, sys, threading, time
from harvester.stopping import cancelled_on_stop, stop_on_signals, stop_requested, stopped_by
stop_on_signals()
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
cancelled, flock = threading.Event(), ctypes.CDLL(None).flock
taken = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(taken, fcntl.LOCK_EX)
inode = os.fstat(taken).st_ino

def main_thread_waits_for_the_lock():   # (a request waiting: "N: -> FLOCK ADVISORY WRITE pid dev:inode ...")
    with open("/proc/locks") as locks:
        return any(f[1] == "->" and f[5] == str(os.getpid()) and f[6].endswith(f":{inode}")
                   for f in (line.split() for line in locks) if len(f) > 6)

def watch():
    deadline = time.monotonic() + 60
    while not main_thread_waits_for_the_lock() and time.monotonic() < deadline:
        time.sleep(0.01)
    print("held" if main_thread_waits_for_the_lock() else "not held", flush=True)
    deadline = time.monotonic() + 30
    while not cancelled.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
    print("cancelled" if cancelled.is_set() else "not cancelled", stop_requested(), stopped_by(), flush=True)

def held():
    flock(os.open(sys.argv[1], os.O_RDWR), fcntl.LOCK_EX)

with cancelled_on_stop(cancelled.set):
    threading.Thread(target=watch, daemon=True).start()
    held()
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_the_first_signal_cancels_the_requests_while_the_main_thread_is_held_in_c_code(sig, tmp_path):
    """The run's requests were cancelled by the main thread's Python handler only: while the main
    thread was held in a C call (a harvest at load 11), the listing's page threads went on asking
    for every page (17 after Ctrl-C where at most the 4 in flight were allowed). The thread that
    counts the signals cancels them at the first, and the stop is requested from then on. A portal
    thread so stopped names the signal before the handler has run: SIGTERM was said "Ctrl-C" (its
    run's message, in CI)."""
    lock = tmp_path / "held.lock"
    lock.touch()
    held = subprocess.Popen([sys.executable, "-c", CANCEL_WHILE_HELD, str(lock)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert line_of(held) == b"held\n"
        held.send_signal(sig)
        said = line_of(held)
    finally:
        held.kill()
        _, err = output_of(held, 30)
    name = "SIGTERM" if sig == signal.SIGTERM else "Ctrl-C"
    assert said == f"cancelled True {name}\n".encode(), (held.returncode, err.decode()[-2000:])


# a command whose main thread is stopped in an interruptible DuckDB statement and then runs the
# stop's bookkeeping statements, with the thread that counts the signals late by half a second (as
# under load: it waits for the GIL): prints how many bookkeeping statements were interrupted
LATE_COUNTING_THREAD = """
import os, signal, threading, time
import duckdb
from catalog import uncut
from harvester import stopping

class LateReads:
    def __getattr__(self, name):
        return getattr(os, name)

    @staticmethod
    def read(fd, n):
        data = os.read(fd, n)
        time.sleep(0.5)
        return data

stopping.os = LateReads()
stopping.stop_on_signals()
con = uncut.Connection(duckdb.connect(), interruptible=True)

def stop_once_in_it():
    while not uncut.in_statement():
        time.sleep(0.001)
    time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=stop_once_in_it).start()
try:
    con.execute("SELECT count(*) FROM range(20000000000) r(i) WHERE i % 7 = 3")
    print("not stopped")
except KeyboardInterrupt:
    print("stopped")
interrupted, ran, until = 0, 0, None
while until is None or time.monotonic() < until:   # until a second after the counting thread took the signal
    if until is None and stopping._counted_stop.is_set():
        until = time.monotonic() + 1.0
    try:
        con.execute("SELECT count(*) FROM range(1000000)").fetchone()
        ran += 1
    except duckdb.InterruptException:
        interrupted += 1
print(interrupted, ran > 0)
"""


def test_a_late_counting_thread_leaves_the_statements_after_the_stop_alone():
    """The handler in the main thread stopped its statement; the counting thread, which took the same
    signal later (under load it waits for the GIL), then interrupted whatever statement ran at that
    moment: the stop's own bookkeeping (2 runs in 24 of a test in tests/catalog/test_uncut.py failed
    with 'INTERRUPT Error' on the statement after the one stopped). The first of the two to take the
    stop cancels and interrupts; the other leaves it."""
    done = subprocess.run([sys.executable, "-c", LATE_COUNTING_THREAD], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["stopped", "0 True"], done.stdout


# a command whose main thread holds a lock that a canceller takes (as the run's http.cancel takes
# the resolver's, held by the main thread across a lookup thread's start) while it waits in C, and
# the first stop taken by the counting thread (signals blocked in the main thread)
CANCEL_NEEDS_A_LOCK_THE_MAIN_THREAD_HOLDS = """
import ctypes, os, signal, threading, time
from harvester import stopping
stopping.stop_on_signals()
held, inside = threading.RLock(), threading.Event()
stopping._cancellers.append(lambda: (held.acquire(), held.release()))
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})

def stop_once_inside():
    inside.wait()
    time.sleep(0.3)
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=stop_once_inside, daemon=True).start()
try:
    with held:
        inside.set()
        ctypes.CDLL(None).usleep(1_500_000)
    print("not stopped", flush=True)
except KeyboardInterrupt:
    print("stopped", stopping.stopped_by(), flush=True)
"""


def test_a_stop_whose_cancel_waits_for_a_lock_the_main_thread_holds_ends_the_command():
    """The counting thread made the first stop's cancels holding the lock that decides which of it
    and the main thread's handler does them: a cancel waiting for a lock the main thread held (the
    resolver's, across a lookup thread's start) then kept the counting thread, and the handler waited
    for the counting thread: one SIGTERM (systemd, `timeout`) and the command never ended. The
    cancels are made outside that lock."""
    done = subprocess.run([sys.executable, "-c", CANCEL_NEEDS_A_LOCK_THE_MAIN_THREAD_HOLDS], capture_output=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert (done.returncode, done.stdout) == (0, b"stopped SIGTERM\n"), done.stderr.decode()[-2000:]


# -- civicat used as a library: Python's own SIGINT handler, no stop_on_signals() -------------

# a program that harvests with harvester.pipeline's harvest, Python's SIGINT handler left in place,
# and sends itself SIGINT from a thread argv[2] seconds after the function argv[1] (module:Class.method,
# or "none") is first entered; then argv[3] (the config), argv[4] (the catalogue). Prints how the
# harvest ended, then a statement's answer after it, then that the store closed
LIBRARY_CTRL_C_DURING = """
import importlib, json, logging, os, signal, sys, threading
if __name__ == "__main__":   # (not in the mapping workers, which import this script as __mp_main__)
    target, delay, config, db = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
    logging.basicConfig(level=logging.WARNING)
    if target != "none":
        module, _, qualname = target.partition(":")
        owner, _, function = qualname.rpartition(".")
        owner = getattr(importlib.import_module(module), owner)
        original = getattr(owner, function)
        def signalled(*args, **kwargs):
            threading.Timer(delay, os.kill, [os.getpid(), signal.SIGINT]).start()
            setattr(owner, function, original)
            return original(*args, **kwargs)
        setattr(owner, function, signalled)
    from catalog.store import Store
    from harvester.config import load_config
    from harvester.http import HttpClient
    from harvester.pipeline import HarvestInterrupted, harvest
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    store = Store(db)
    try:
        try:
            report = harvest(load_config(config).portals, store, HttpClient(backoff_initial=0.01))
            print("returned", json.dumps([p.status for p in report.portals]), flush=True)
        except HarvestInterrupted as stopped:
            print("interrupted", json.dumps([p.status for p in stopped.run.portals]), flush=True)
        print(store.con.execute("SELECT 42").fetchone()[0], flush=True)
    finally:
        store.close()
    print("closed", flush=True)
"""


def library_harvest(target: str, delay: float, config: Path, db: Path) -> tuple[list[str], str]:
    """LIBRARY_CTRL_C_DURING's lines and stderr; it must end within 120 s (a hang fails)."""
    child = subprocess.Popen([sys.executable, "-c", LIBRARY_CTRL_C_DURING, target, str(delay), str(config), str(db)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    out, err = output_of(child)
    assert child.returncode == 0, err[-2000:]
    return out.splitlines(), err


def test_a_library_caller_s_ctrl_c_during_duckdb_statements_stops_the_harvest_cleanly(tmp_path):
    """A program that harvests with harvester.pipeline.harvest and keeps Python's own SIGINT handler
    (no stop_on_signals()): a Ctrl-C during a DuckDB statement in the main thread was DuckDB's ("Query
    interrupted", the statement dropped): in the search index's build it was logged and the harvest
    returned as if never stopped, and a statement after one dropped could hang (session 32's review).
    Now it is held as the command's is (catalog.uncut): the harvest raises HarvestInterrupted, its run
    recorded Interrupted (or ok, stored before the stop), none left `running`, and the catalogue
    answers and closes."""
    from catalog.lock import connect_read_only
    from tests.portals.dcat import DataJsonPortal
    from tests.portals.synth import make_data_json

    config, db = tmp_path / "portals.toml", tmp_path / "catalog.duckdb"
    with DataJsonPortal(make_data_json(2_000)) as portal:
        config.write_text(f'[[portals]]\nid = "city"\ncity = "City"\nkind = "dcat-us"\nurl = "{portal.url}/data.json"\n')
        assert library_harvest("none", 0, config, db)[0] == ["returned [\"ok\"]", "42", "closed"]
        for version, (target, delay) in enumerate([("Store._load_raw", 0.0), ("Store._merge", 0.05),
                                                    ("Store.refresh_search", 0.0), ("Store.refresh_search", 0.05)]):
            for dataset in portal.document["dataset"]:   # (every dataset changed: a merge of them all)
                dataset["title"] = dataset["title"].split(" (v")[0] + f" (v{version})"
            portal.document = dict(portal.document)
            lines, err = library_harvest(f"catalog.store:{target}", delay, config, db)
            assert "Query interrupted" not in err, (target, err[-2000:])
            assert lines[0].startswith("interrupted ") and lines[1:] == ["42", "closed"], (target, lines, err[-2000:])
            with connect_read_only(db) as con:
                run = con.execute("SELECT status, error_type FROM harvest_runs ORDER BY started_at DESC LIMIT 1").fetchone()
                assert con.execute("SELECT count(*) FROM harvest_runs WHERE status = 'running'").fetchone() == (0,)
            assert run in {("failed", "Interrupted"), ("ok", None)}, (target, run)
            assert run == ("ok", None) or target != "Store.refresh_search", (target, run)
            assert lines[0] == f"interrupted [\"{run[0]}\"]", (target, lines, run)


# -- a signal after the command finished ------------------------------------------------------

@contextlib.contextmanager
def one_portal_harvested(tmp_path, start: list[str], datasets: int = 20) -> Iterator[subprocess.Popen]:
    """`civicat harvest --json` of one portal of `datasets` datasets (served meanwhile), started as
    `start` (["-m", "harvester"], ["-c", SCRIPT]): the process; its one run then stored, `ok`."""
    from catalog.lock import connect_read_only
    from tests.portals.dcat import DataJsonPortal
    from tests.portals.synth import make_data_json

    config, db = tmp_path / "portals.toml", tmp_path / "catalog.duckdb"
    with DataJsonPortal(make_data_json(datasets)) as portal:
        config.write_text(f'[[portals]]\nid = "city"\ncity = "City"\nkind = "dcat-us"\nurl = "{portal.url}/data.json"\n')
        yield subprocess.Popen([sys.executable, *start, "harvest", "--json", "--config", str(config), "--db", str(db)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
    with connect_read_only(db) as con:
        assert con.execute("SELECT status FROM harvest_runs").fetchall() == [("ok",)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("after", [0.0, 0.1])
def test_a_signal_after_the_harvest_printed_its_report_leaves_its_exit_code(tmp_path, sig, after):
    """A SIGTERM (cron's `timeout`, systemd) or Ctrl-C that came after `civicat harvest` had stored
    everything and printed its report made it exit 143 / 130 saying "Interrupted (…): stopped before
    its end" (in the report's print or the exit's unwinding), or, in the interpreter's last steps,
    past its handlers, killed it (-15 / -2): a night's harvest done and stored, mailed as failed. The
    command's own exit code stands (0 here); nothing says it was interrupted."""
    with one_portal_harvested(tmp_path, ["-m", "harvester"], datasets=200) as harvest:
        assert line_of(harvest) == b"{\n"   # (the report's first line: the command has done its work)
        time.sleep(after)
        harvest.send_signal(sig)
        _, err = output_of(harvest)
    assert harvest.returncode == 0, (harvest.returncode, err.decode()[-2000:])
    assert b"Interrupted" not in err, err.decode()[-2000:]


# the harvest of `sys.argv[1:]`, its report's print failing (not as stdout refusing it: ReportLost)
# once a signal sent after the command finished has been seen by the thread that counts them
REPORT_FAILS_AFTER_A_SIGNAL = """
import sys, time
import harvester.cli, harvester.stopping
from harvester.command import main

def report_fails(value):
    print("finished", flush=True)
    deadline = time.monotonic() + 60
    while not harvester.stopping._counted and time.monotonic() < deadline:
        time.sleep(0.01)
    harvester.stopping._counted_stop.wait(1)   # (set just after, where it is set at all)
    raise RuntimeError("the report could not be made")

harvester.cli.echo_json = report_fails
sys.argv = ["civicat", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_report_failing_after_a_late_signal_exits_as_it_would_without_it(tmp_path, sig):
    """A signal after the harvest had finished (stored, published) made a report that then failed on
    an error of its own (a bug, stderr gone: not stdout refusing it) exit 143 / 130, "Interrupted …:
    stopped before its end": the thread that counts the signals took it for a stop. The signal changes
    nothing: the exit is the error's own, 1 with its traceback, as without it; the harvest stored."""
    with one_portal_harvested(tmp_path, ["-c", REPORT_FAILS_AFTER_A_SIGNAL]) as harvest:
        assert line_of(harvest) == b"finished\n"
        harvest.send_signal(sig)
        _, err = output_of(harvest)
    assert harvest.returncode == 1, (harvest.returncode, err.decode()[-2000:])
    assert b"RuntimeError: the report could not be made" in err, err.decode()[-2000:]
    assert b"Interrupted" not in err, err.decode()[-2000:]


# the harvest of `sys.argv[1:]`, logging's exit function held, as by a thread stuck writing a log line
# to a full stderr: a thread holds every handler's lock from the command's finish on
EXIT_FUNCTION_HELD = """
import atexit, logging, os, sys, threading
import harvester.cli
from harvester.command import main

held = threading.Event()

def hold_the_handlers():
    for handler in logging.getLogger().handlers:
        handler.acquire()
    held.set()
    threading.Event().wait()

finish = harvester.cli.finished

def finished():
    finish()
    threading.Thread(target=hold_the_handlers, daemon=True).start()

shutdown = logging.shutdown

def logging_shutdown():   # (logging's own, saying first that the exit functions have come to it)
    held.wait(60)
    os.write(1, b"logging's exit function\\n")
    shutdown()

atexit.unregister(logging.shutdown)
logging.shutdown = logging_shutdown
atexit.register(logging_shutdown)
harvester.cli.finished = finished
sys.argv = ["civicat", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_third_signal_quits_an_exit_function_that_hangs(tmp_path, sig):
    """Once the command had finished, Ctrl-C and SIGTERM were ignored from its first exit function
    on, before logging's (registered earlier): logging's waits for each handler's lock, which a thread
    stuck writing to a full stderr holds for good, and no number of signals ended it (kill -9 did).
    They are ignored from the last exit function on, after logging's: a third quits at once."""
    with one_portal_harvested(tmp_path, ["-c", EXIT_FUNCTION_HELD]) as harvest:
        while (line := line_of(harvest)) not in (b"logging's exit function\n", b""):
            pass   # (the report)
        assert line, "the harvest ended before logging's exit function"
        for _ in range(3):
            sent_once_taken(harvest, sig)
        _, err = output_of(harvest, 60)
    assert harvest.returncode == 128 + sig, (harvest.returncode, err.decode()[-2000:])
    assert b"a third time: quitting at once" in err, err.decode()[-2000:]
