"""The catalogue's writer lock: who holds it, as readers' messages name it."""
import os
import time
from pathlib import Path

import pytest

from catalog.lock import WriterLock, lock_path, pulls_records, writer_holding


class LockClock:
    """catalog.lock's clock (`monkeypatch.setattr(lock, "time", clock)`), moved by the test: by a
    holder's steps (`passes`), and by the waiter's own sleeps if `sleeps_pass_time`; otherwise those
    sleep 5 ms of real time, for the holder's thread to go on. What the lock decides from how long a
    holder showed no progress is then what the test's steps say, however late a loaded machine runs
    either thread (a step 0.1 s apart against a bound of 0.5 s: a holder's thread late by 0.5 s
    would be taken for hung)."""

    def __init__(self, *, sleeps_pass_time: bool):
        self.now, self.sleeps_pass_time = 0.0, sleeps_pass_time

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if self.sleeps_pass_time:
            self.now += seconds
        else:
            time.sleep(min(seconds, 0.005))

    def passes(self, seconds: float) -> None:
        self.now += seconds


def a_step(holder: WriterLock, clock: LockClock, seconds: float) -> None:
    """A brief holder's step, `seconds` of the lock's clock after the one before: the lock file's
    time set anew (20 ms of real time first: two steps in one tick of the file system's clock,
    4-10 ms, would leave it as it was)."""
    time.sleep(0.02)
    clock.passes(seconds)
    holder.progressed()


def test_the_writer_is_named_where_stat_gives_another_device_than_the_kernel_s_lock_list(tmp_path, monkeypatch):
    """/proc/locks names a lock's file by the device of its file system's superblock; stat()
    gives another on overlayfs over two file systems (a container's layers: 00:2a in
    /proc/locks, 00:2b from stat) and on btrfs subvolumes. Matched on the device too, the
    writer holding the lock went unnamed there (DuckDB's wording instead); its PID and the
    file's inode number name it."""
    if not Path("/proc/locks").is_file():
        pytest.skip("no /proc/locks on this system: the holder record's PID alone names the writer")
    db = tmp_path / "c.duckdb"
    real_stat = os.stat

    def stat_on_overlay(path, *args, **kwargs):
        result = real_stat(path, *args, **kwargs)
        if Path(path) != lock_path(db):
            return result
        fields = list(result)
        fields[2] = result.st_dev + 1   # (st_dev; the inode number as it is)
        return os.stat_result(fields)

    with WriterLock(db):
        assert writer_holding(db, os.getpid())["pid"] == os.getpid()   # (as stat reports it here)
        monkeypatch.setattr(os, "stat", stat_on_overlay)
        holder = writer_holding(db, os.getpid())
    assert holder is not None and holder["pid"] == os.getpid() and holder["command"]
    monkeypatch.undo()
    assert writer_holding(db, os.getpid()) is None   # (released: the record no lock backs)


@pytest.mark.parametrize("command, pulls", [
    ("civicat records sea:3k2p-39jp", True),
    ("civicat --log-format json harvest --records --wait", True),
    ("civicat harvest --portal records --db /data/records/civicat.duckdb", True),   # (a portal so named: taken for one)
    ("civicat harvest --db /data/records.duckdb", False),
    ("civicat retire sea", False),
    ("civicat overlap", False),
    (None, True),   # (a record that names no command: taken for one)
])
def test_a_records_pull_is_told_from_the_other_writers_by_its_command(command, pulls):
    """A records pull replaces records folders as it runs, the one writer that does: an export
    beside it is refused (catalog.export.open_for_export); beside any other, it is of the copy."""
    assert pulls_records({"pid": 4242, "command": command}) is pulls


@pytest.mark.parametrize("command, pulls", [
    ("civicat harvest --portal records", False),
    ("civicat harvest --config /etc/civicat/records.toml", False),
    ("civicat --log-format json harvest --records", True),
    ("civicat records sea:3k2p-39jp", True),
    ("python -m pytest tests/", True),   # (a host process: its words say nothing)
])
def test_a_writer_that_says_whether_it_pulls_records_is_taken_at_its_word(command, pulls):
    """Judged by its command's words, `civicat harvest --portal records` (or `--config
    records.toml`) was a records pull, and an export waited for it (or refused). A writer's
    record says what it is."""
    assert pulls_records({"pid": 4242, "command": command, "pulls_records": pulls}) is pulls


@pytest.mark.parametrize("pulls", [True, False])
def test_the_writer_lock_records_whether_its_holder_pulls_records(tmp_path, pulls):
    db = tmp_path / "c.duckdb"
    with WriterLock(db, pulls_records=pulls):
        holder = writer_holding(db, os.getpid())
        assert holder["pulls_records"] is pulls and pulls_records(holder) is pulls


def test_an_export_holding_the_lock_briefly_is_no_records_pull_whatever_its_folder_is_named():
    assert pulls_records({"pid": 4242, "command": "civicat export --out records", "brief": True}) is False


@pytest.mark.parametrize("brief", [True, False])
def test_a_writer_waits_unasked_for_a_brief_holder_only(tmp_path, brief):
    """An export whose read copy is stale makes it current under the writer lock (seconds):
    a harvest started then exited 2 at once, naming the export. A holder that took the lock
    `brief` is waited for (up to BRIEF_HOLD_SECONDS) by a writer that asked no wait; any other
    holder is not."""
    import threading

    from catalog.lock import CatalogueBeingWritten

    db = tmp_path / "c.duckdb"
    holder = WriterLock(db, brief=brief, poll_seconds=0.01)
    holder.acquire()
    assert writer_holding(db, os.getpid()).get("brief", False) is brief   # (its record says so)
    if not brief:   # (held throughout: a release on a timer could come before a late main thread asked)
        try:
            with pytest.raises(CatalogueBeingWritten, match="is being written by process"):
                WriterLock(db).acquire()
        finally:
            holder.release()
        return
    releasing = threading.Timer(1.0, holder.release)
    releasing.start()
    try:   # (held when asked: taken only by waiting for it)
        with WriterLock(db, poll_seconds=0.05):
            assert writer_holding(db, os.getpid()).get("brief") is None
    finally:
        releasing.join()


def test_a_writer_waits_for_a_brief_holder_as_long_as_it_shows_progress(tmp_path, monkeypatch):
    """An export making a read copy of many GB current held the lock longer than the writer's
    unasked wait (BRIEF_HOLD_SECONDS): the nightly harvest exited 2 behind a copy that was getting
    on. The wait follows the holder's progress: here for 4 times the bound, a step every fifth
    (of the lock's clock, which the steps move: LockClock)."""
    import threading

    from catalog import lock

    monkeypatch.setattr(lock, "BRIEF_HOLD_SECONDS", 0.5)
    clock = LockClock(sleeps_pass_time=False)
    monkeypatch.setattr(lock, "time", clock)
    db = tmp_path / "c.duckdb"
    holder = WriterLock(db, brief=True)
    holder.acquire()

    def copying():   # (a step every 0.1 s, then done)
        for _ in range(20):
            a_step(holder, clock, 0.1)
        holder.release()
    copy = threading.Thread(target=copying)
    copy.start()
    try:
        with WriterLock(db, poll_seconds=0.02):
            assert clock.now == pytest.approx(2.0)   # (taken once the holder let go, not before)
            assert writer_holding(db, os.getpid()).get("brief") is None
    finally:
        copy.join(60)


def test_a_brief_holder_that_shows_no_progress_is_waited_for_a_bounded_time_and_named(tmp_path, monkeypatch):
    """A hung export (its disk gone, a stopped process) holding the lock briefly: the writer waits
    BRIEF_HOLD_SECONDS past its last sign of progress, then exits naming it and why (the lock's
    clock moved by the writer's own waits: LockClock)."""
    from catalog import lock
    from catalog.lock import CatalogueBeingWritten

    monkeypatch.setattr(lock, "BRIEF_HOLD_SECONDS", 0.5)
    clock = LockClock(sleeps_pass_time=True)
    monkeypatch.setattr(lock, "time", clock)
    db = tmp_path / "c.duckdb"
    with WriterLock(db, brief=True) as holder:
        a_step(holder, clock, 0.3)   # (its last step)
        started = clock.now
        with pytest.raises(CatalogueBeingWritten) as refused:
            WriterLock(db, poll_seconds=0.02).acquire()
        waited = clock.now - started
    assert waited == pytest.approx(0.5), waited   # (from its last step as the writer first saw it: the bound, no more)
    assert f"is held by process {os.getpid()} (" in str(refused.value)
    assert "which has shown no progress for 0.5 s (hung?)" in str(refused.value)


def test_a_lock_file_taken_away_as_another_writer_waited_for_it_leaves_one_writer(tmp_path):
    """release(remove=True) (a file refused as no catalogue: no lock file left beside it) as
    another writer waits for the lock: that writer got the lock of a file no longer at the path,
    and the next one made a new file there and held it too: two writers at once. Now the one
    that waited takes the file at the path."""
    import threading

    from catalog.lock import CatalogueBeingWritten

    db = tmp_path / "c.duckdb"
    refusing = WriterLock(db)
    refusing.acquire()
    waiting = WriterLock(db, wait_until=time.monotonic() + 30, poll_seconds=0.01)
    waited = threading.Thread(target=waiting.acquire)
    waited.start()
    deadline = time.monotonic() + 10
    while not lock_path(db).read_bytes().count(b'"pid"') and time.monotonic() < deadline:
        time.sleep(0.01)   # (the refusing holder's record written: the waiter is at its flock loop)
    time.sleep(0.2)
    refusing.release(remove=True)
    waited.join(timeout=30)
    assert waiting._fd is not None and lock_path(db).exists()
    try:
        with pytest.raises(CatalogueBeingWritten, match="is being written by process"):
            WriterLock(db).acquire()
    finally:
        waiting.release()


def test_a_look_puts_back_the_record_it_found_and_its_waiter_still_takes_the_lock(tmp_path):
    """held_for_a_look (the upgrade's look at the folder's other catalogue, a brief holder) wrote its
    own record over the catalogue's last writer's, and left it there: the lock file named the look
    as the catalogue's last holder. It puts back what it found (bytes and time) before it lets go;
    a writer that waited for it meanwhile, reading the record put back a moment before the lock is
    free, still waits for the lock, not refused as behind a writer."""
    import json
    import threading

    from catalog.lock import held_for_a_look

    db = tmp_path / "c.duckdb"
    with WriterLock(db):
        pass
    crash = {"pid": 1, "since": "2026-12-05T01:00:02+00:00", "at": "2026-12-05T01:40:00+00:00", "error": "boom"}
    record = json.dumps({"pid": 4242, "since": "2026-12-05T01:00:02+00:00", "command": "civicat harvest",
                         "pulls_records": False, "crashed": crash}).encode() + b"\n"
    lock_path(db).write_bytes(record)
    os.utime(lock_path(db), ns=(1_000_000_000, 2_000_000_000))
    taken = []
    with held_for_a_look(db) as alone:
        assert alone is True
        waiter = threading.Thread(target=lambda: taken.append(WriterLock(db, poll_seconds=0.01).acquire() or True))
        waiter.start()
        time.sleep(0.3)   # (the waiter at its flock, past its first moment)
        fd = os.open(lock_path(db), os.O_RDWR)   # (the look's last step as a slow disk makes it: the record put back, then a pause)
        try:
            os.pwrite(fd, record, 0)
            os.ftruncate(fd, len(record))
        finally:
            os.close(fd)
        time.sleep(0.05)
        assert lock_path(db).read_bytes() == record
    waiter.join(30)
    assert taken == [True], "the writer waiting for the look was refused"
    assert json.loads(lock_path(db).read_bytes())["pid"] == os.getpid()   # (the writer's own record now)


def test_a_look_leaves_the_lock_file_as_it_found_it(tmp_path):
    from catalog.lock import held_for_a_look

    db = tmp_path / "c.duckdb"
    with WriterLock(db, pulls_records=True) as writer:
        writer.note_crash(RuntimeError("the catalogue's disk full"))
    found, stamped = lock_path(db).read_bytes(), lock_path(db).stat().st_mtime_ns
    with held_for_a_look(db) as alone:
        assert alone is True and b'"brief": true' in lock_path(db).read_bytes()   # (its writer waits for it)
    assert lock_path(db).read_bytes() == found and lock_path(db).stat().st_mtime_ns == stamped


def last_written_by_a_process_gone(db):
    """The catalogue's lock file as its last writer left it: a record naming a process that has ended."""
    import subprocess
    import sys

    ran = subprocess.run([sys.executable, "-c", "import sys\nfrom catalog.lock import WriterLock\n"
                          "with WriterLock(sys.argv[1]): pass\n", str(db)], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert ran.returncode == 0, ran.stderr
    return json_record(db)["pid"]


def written_in_another_pid_namespace(db):
    """The lock file's record as a writer in another PID namespace (a container's) leaves it: its
    `pid_namespace` not this one's (a reader here cannot tell its PID from one of its own otherwise)."""
    import json

    record = json_record(db)
    lock_path(db).write_text(json.dumps({**record, "pid_namespace": "pid:[4026530000]"}) + "\n")


def json_record(db):
    import json

    return json.loads(lock_path(db).read_bytes())


# a process of its own, with catalog.lock's flock seen through a shim (a hook at the step the test needs)
IN_A_PROCESS = """import fcntl, json, sys
from catalog import lock
real = fcntl.flock


class Flock:
    def __getattr__(self, name):
        return getattr(fcntl, name)

    @staticmethod
    def flock(fd, operation):
        if operation == fcntl.LOCK_UN and sys.argv[1] == "look":   # (the record put back: held until told)
            print("put back", flush=True)
            sys.stdin.readline()
        try:
            return real(fd, operation)
        except BlockingIOError:
            if sys.argv[1] == "writer" and not Flock.said:
                Flock.said = True
                print("blocked", flush=True)
            raise

    said = False


lock.fcntl = Flock()
if sys.argv[1] == "look":
    with lock.held_for_a_look(sys.argv[2]) as alone:
        assert alone is True
else:
    # (the wait for a record put back, 1 s, made long here: the test's own steps may run late on a loaded
    # machine; on main it never began, the writer refused 0.1 s after it first found the lock held)
    lock.LETTING_GO_SECONDS = 120
    try:
        lock.WriterLock(sys.argv[2]).acquire()
        print("taken", flush=True)
    except lock.CatalogueBeingWritten as exc:
        print("refused:", exc, flush=True)
"""


def in_a_process(role, db):
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-c", IN_A_PROCESS, role, str(db)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})


def test_a_writer_that_comes_as_a_look_lets_go_waits_for_it_not_refused_naming_a_process_gone(tmp_path):
    """held_for_a_look puts back the record it found (naming the catalogue's last writer, long ended),
    then lets go. On main a writer that came in between (a loaded machine can hold the look there for
    longer than a writer's first 0.1 s) read that record as its holder's and was refused, exit 2,
    "being written by process N" — a process gone. A record naming no process that holds the lock is
    read again now, as a look's waiter does: the writer takes the lock once the look has let go."""
    import subprocess

    db = tmp_path / "c.duckdb"
    gone = last_written_by_a_process_gone(db)
    look = in_a_process("look", db)
    writer = None
    try:
        assert look.stdout.readline() == "put back\n"
        assert json_record(db)["pid"] == gone   # (the record put back; the look holds the lock still)
        writer = in_a_process("writer", db)
        assert writer.stdout.readline() == "blocked\n"
        try:   # (on main: refused meanwhile)
            writer.wait(timeout=3)
        except subprocess.TimeoutExpired:
            pass
        look.communicate("\n", timeout=60)
        said = writer.communicate(timeout=120)[0]
    finally:
        for process in (look, writer):
            if process is not None and process.poll() is None:
                process.kill()
    assert look.returncode == 0
    assert said == "taken\n", said
    assert json_record(db)["pid"] == writer.pid


def test_a_lock_held_without_its_holder_s_record_is_refused_naming_the_process_that_holds_it(tmp_path):
    """Another program holding the lock file's flock (or a civicat writer stopped between taking it and
    writing its record) leaves the record of the catalogue's last writer there, a process gone: on
    main the refusal named that process as the writer. Read again for a moment, then refused naming
    the process that holds the lock."""
    import subprocess
    import sys

    from catalog.lock import CatalogueBeingWritten

    db = tmp_path / "c.duckdb"
    gone = last_written_by_a_process_gone(db)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys\n"
                               "f = open(sys.argv[1], 'rb')\nfcntl.flock(f, fcntl.LOCK_EX)\n"
                               "print('held', flush=True)\nsys.stdin.read()\n", str(lock_path(db))],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(CatalogueBeingWritten) as refused:
            WriterLock(db).acquire()
    finally:
        holder.communicate("", timeout=60)
    assert f"being written by process {holder.pid} (its record in" in str(refused.value), refused.value
    assert f"process {gone}" not in str(refused.value)


# a civicat writer's lock held in a process of its own until its stdin closes
HOLDS_THE_LOCK = """import sys
from catalog.lock import WriterLock
with WriterLock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""
# a writer's try, its refusal printed
TRIES_THE_LOCK = """import sys
from catalog.lock import CatalogueBeingWritten, WriterLock
try:
    WriterLock(sys.argv[1]).acquire()
    print("taken")
except CatalogueBeingWritten as exc:
    print("refused:", exc)
"""


def test_a_writer_in_another_pid_namespace_than_the_holder_s_says_the_holder_s_pid_is_unknown_there(tmp_path):
    """A writer in a container (a PID namespace of its own, with its own /proc) and one outside it
    share a catalogue: /proc/locks in the container lists no lock held outside it (Linux 4.9 on; before,
    it listed it as pid 0). The refusal said "another process" (main), or, with pid 0, "process 0"
    (below): now that a process holds it whose PID is not known here, and the record the holder
    wrote, its PID as numbered outside. (A real user and PID namespace, as `unshare -Urpf` makes one.)"""
    import subprocess
    import sys

    from tests.conftest import pid_namespace_or_skip

    unshare = pid_namespace_or_skip("the pid-0 line is tested from a recorded /proc/locks below")
    db = tmp_path / "c.duckdb"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    holder = subprocess.Popen([sys.executable, "-c", HOLDS_THE_LOCK, str(db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline() == "held\n"
        tried = subprocess.run([unshare, "-Urpf", "--mount-proc", sys.executable, "-c", TRIES_THE_LOCK, str(db)],
                               capture_output=True, text=True, timeout=120, env=env)
    finally:
        holder.communicate("", timeout=60)
    said = " ".join(tried.stdout.split())
    assert tried.returncode == 0 and said.startswith("refused:"), (tried.stdout, tried.stderr)
    assert "is being written by a process whose PID is not known here" in said, said
    assert f"names process {holder.pid} (" in said and "a PID of the namespace it was written in" in said


def test_a_holder_proc_locks_gives_as_pid_0_is_no_process_0(tmp_path, monkeypatch):
    """Before Linux 4.9, /proc/locks in a PID namespace gave a lock held outside it as pid 0 (as
    recorded below, the inode this lock file's): main named "process 0" as the catalogue's writer. (The
    lock is really held, by another open of its file.)"""
    import fcntl

    from catalog import lock as lock_module
    from catalog.lock import CatalogueBeingWritten

    db = tmp_path / "c.duckdb"
    gone = last_written_by_a_process_gone(db)
    written_in_another_pid_namespace(db)
    recorded = tmp_path / "locks"
    recorded.write_text(f"1: POSIX  ADVISORY  WRITE 4242 00:2b:99 0 EOF\n"
                        f"2: FLOCK  ADVISORY  WRITE 0 00:2b:{os.stat(lock_path(db)).st_ino} 0 EOF\n")
    monkeypatch.setattr(lock_module, "PROC_LOCKS", recorded, raising=False)
    with open(lock_path(db), "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(CatalogueBeingWritten) as refused:
            WriterLock(db).acquire()
    said = str(refused.value)
    assert "being written by a process whose PID is not known here" in said, said
    assert "process 0" not in said and f"names process {gone} (" in said


def test_the_holder_duckdb_names_by_pid_alone_or_as_pid_0_is_said_as_it_is():
    """DuckDB 1.5's lock error names the holder "held in PID 0" where it runs in another PID namespace
    (recorded so, the file held outside an `unshare -Urpf` namespace), and "held in PID N" where it
    cannot read the program's path: main matched only "held in PROGRAM (PID N)" and said "another
    process" for both, its PID dropped. Now: a process whose PID is not known here; process N."""
    import duckdb

    from catalog.lock import file_holder, file_writer

    def refused(held_in):
        return duckdb.IOException(f'IO Error: Could not set lock on file "/data/c.duckdb": Conflicting lock is held '
                                  f"in {held_in}. See also https://duckdb.org/docs/stable/connect/concurrency")

    in_another_namespace = refused("PID 0")
    assert file_holder(in_another_namespace) == ("a process whose PID is not known here (one in another PID "
                                                 "namespace, such as a container's)")
    assert file_writer(in_another_namespace, "/data/c.duckdb").startswith("a process whose PID is not known here")
    assert file_holder(refused("PID 4242")) == "process 4242"
    assert file_holder(refused("/usr/bin/python3 (PID 4242)")) == "process 4242 (/usr/bin/python3)"


@pytest.mark.parametrize("listed", ["left out", "as pid 0"])
def test_a_writer_in_another_pid_namespace_is_a_writer_for_current_writer_and_writer_holding(
        tmp_path, monkeypatch, listed):
    """A writer in another PID namespace holds the lock: /proc/locks here leaves its lock out (Linux
    4.9 on; before, pid 0), and its record names a PID of its own namespace. current_writer and
    writer_holding gave None (main): an export took it for no writer (a records pull's folders read as
    they were replaced, or the catalogue met held). Now the record, said as a writer whose PID is not
    known here; and none once the lock is let go (a record alone is no writer)."""
    import fcntl

    from catalog import lock as lock_module
    from catalog.lock import current_writer, describe_holder, file_writer, writer_holding

    db = tmp_path / "c.duckdb"
    gone = last_written_by_a_process_gone(db)
    written_in_another_pid_namespace(db)
    recorded = tmp_path / "locks"
    recorded.write_text("1: POSIX  ADVISORY  WRITE 4242 00:2b:99 0 EOF\n"
                        + (f"2: FLOCK  ADVISORY  WRITE 0 00:2b:{os.stat(lock_path(db)).st_ino} 0 EOF\n"
                           if listed == "as pid 0" else ""))
    monkeypatch.setattr(lock_module, "PROC_LOCKS", recorded, raising=False)
    with open(lock_path(db), "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        writer = current_writer(db)
        assert writer is not None and writer["pid"] == gone
        assert writer_holding(db, gone) == writer
        said = describe_holder(writer)
        assert said.startswith("a process whose PID is not known here (not listed in /proc/locks: one in another "
                               "PID namespace"), said
        assert f"the record in {lock_path(db)} names process {gone} (" in said
        assert "a PID of the namespace it was written in" in said
        duckdb_refused = Exception(f'IO Error: Could not set lock on file "{db}": Conflicting lock is held in PID 0.')
        assert file_writer(duckdb_refused, db) == said
    recorded.write_text("1: POSIX  ADVISORY  WRITE 4242 00:2b:99 0 EOF\n")   # (the lock let go: no longer listed)
    assert current_writer(db) is None and writer_holding(db, gone) is None
    if listed == "left out":   # (a record whose process is gone, the lock free: no writer, before as now)
        assert file_writer(duckdb_refused, db).startswith("a process whose PID is not known here (one in another")


# in a PID namespace of its own (a container): a civicat writer of that namespace takes the lock and ends
# (a records pull, say), then, once a line comes on stdin, the lock read again: current_writer, and a writer's try
WRITER_GONE_THEN_LOOKS = """import json, subprocess, sys
from catalog.lock import CatalogueBeingWritten, WriterLock, current_writer
db = sys.argv[1]
ran = subprocess.run([sys.executable, "-c", "import sys\\nfrom catalog.lock import WriterLock\\n"
                      "with WriterLock(sys.argv[1], pulls_records=True): pass\\n", db])
assert ran.returncode == 0
print("recorded", flush=True)
sys.stdin.readline()
print(json.dumps(current_writer(db)), flush=True)
try:
    WriterLock(db).acquire()
    print("taken")
except CatalogueBeingWritten as exc:
    print("refused:", exc)
"""


def test_another_program_s_lock_held_outside_a_namespace_is_no_civicat_writer_whose_record_was_written_inside(
        tmp_path):
    """In a container (a PID namespace of its own, as `unshare -Urpf` makes one) a records pull ends; then
    a program outside it that is not civicat (a backup script's flock, say) holds the lock file. /proc/locks
    in the container leaves that lock out, and main's brief shared flock, refused, took the holder for the
    writer the record names: current_writer gave the long-gone pull (an export was refused as during a records
    pull), and a writer's refusal named it as the holder. The record now says the namespace it was written in:
    written in the reader's own, whose list names every holder there, its process is not the holder: no
    civicat writer, and the refusal says what is known. (Real processes; skips where no namespace can be made.)"""
    import json
    import subprocess
    import sys

    from tests.conftest import pid_namespace_or_skip

    unshare = pid_namespace_or_skip("a record of another namespace is read from a recorded /proc/locks above")
    db = tmp_path / "c.duckdb"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    inside = subprocess.Popen([unshare, "-Urpf", "--mount-proc", sys.executable, "-c", WRITER_GONE_THEN_LOOKS,
                               str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env)
    holder = None
    try:
        assert inside.stdout.readline() == "recorded\n", inside.stderr.read()
        recorded = json_record(db)
        holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys\nf = open(sys.argv[1], 'rb')\n"
                                   "fcntl.flock(f, fcntl.LOCK_EX)\nprint('held', flush=True)\nsys.stdin.read()\n",
                                   str(lock_path(db))], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline() == "held\n"
        said, errors = inside.communicate("look\n", timeout=120)
    finally:
        if inside.poll() is None:
            inside.kill()
        if holder is not None:
            holder.communicate("", timeout=60)
    writer, _, refused = said.partition("\n")
    assert inside.returncode == 0, errors
    assert json.loads(writer) is None, writer   # (main: the gone pull's record, a writer whose PID is not known here)
    refused = " ".join(refused.split())
    assert refused.startswith(f"refused: {db} is being written by a process whose PID is not known here"), refused
    assert (f"not the civicat writer the record in {lock_path(db)} names (process {recorded['pid']} (") in refused
    assert "a PID of this namespace, which does not hold it): another program's lock" in refused


def written_on_another_machine(db, *, pulls=True):
    """The lock file's record as a records pull on another machine sharing the folder (NFS) writes it: in that
    machine's own host PID namespace, whose id (`pid:[4026531836]`) is the same on every Linux machine, and with
    that machine's boot id and host name."""
    import json

    record = json_record(db)
    lock_path(db).write_text(json.dumps({**record, "pulls_records": pulls, "hostname": "nightly-2.city.example",
                                         "boot_id": "0b5e6c1d-7f00-4a2b-9c3d-5e6f7a8b9c0d"}) + "\n")
    return record


def test_a_writer_on_another_machine_sharing_the_folder_is_a_writer_not_one_of_this_namespace(
        tmp_path, monkeypatch, caplog):
    """A records pull on another machine holds the lock of a catalogue on a file system both mount (NFS, whose
    locks hold across machines): this machine's /proc/locks leaves that lock out, and a shared flock of the file
    is refused. Its record names the host PID namespace, whose id is the same on every Linux machine: main read
    it as written in this namespace, so its process, not listed, was "not that writer" (current_writer None: an
    export read the read copy beside the folders the pull was replacing). Now the record names its machine (boot
    id, host name): the pull is the writer, said as on that machine, with why a shared folder is no place for a
    catalogue; a writer taking the lock after it warns the same. (The lock held by a real process; this machine's
    list of locks as an NFS client's shows it: without that lock.)"""
    import subprocess
    import sys

    from catalog import lock as lock_module
    from catalog.lock import CatalogueBeingWritten, current_writer, describe_holder

    db = tmp_path / "c.duckdb"
    gone = last_written_by_a_process_gone(db)
    assert json_record(db).get("pid_namespace"), "no PID namespace here to share with another machine"
    written_on_another_machine(db)
    recorded = tmp_path / "locks"
    recorded.write_text("1: POSIX  ADVISORY  WRITE 4242 00:2b:99 0 EOF\n")   # (the other machine's lock not in it)
    monkeypatch.setattr(lock_module, "PROC_LOCKS", recorded, raising=False)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys\nf = open(sys.argv[1], 'rb')\n"
                               "fcntl.flock(f, fcntl.LOCK_EX)\nprint('held', flush=True)\nsys.stdin.read()\n",
                               str(lock_path(db))], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        writer = current_writer(db)
        assert writer is not None and writer["pid"] == gone, writer   # (main: None, "not that writer")
        assert pulls_records(writer)   # (an export is refused during it, as during any records pull)
        said = describe_holder(writer)
        assert said.startswith(f"a process on another machine, nightly-2.city.example (the record in {lock_path(db)} "
                               f"names process {gone} ("), said
        assert "keep the catalogue on a local disk of the machine that writes it" in said
        with pytest.raises(CatalogueBeingWritten) as refused:
            WriterLock(db).acquire()
        assert f"{db} is being written by a process on another machine, nightly-2.city.example" in str(refused.value)
    finally:
        holder.communicate("", timeout=60)
    caplog.set_level("WARNING", logger="civicat.lock")
    with WriterLock(db) as taken:   # (the other machine's writer ended: taken, and said)
        assert {k: taken.holder.get(k) for k in ("hostname", "boot_id")} == lock_module.this_host()
    assert (f"{db} was last written from another machine, nightly-2.city.example (its lock file's record process "
            f"{gone} (") in caplog.text
    assert "keep the catalogue on a local disk" in caplog.text
    # a record written on this machine (its boot id this one's) and in this namespace is read as before: its
    # process, not listed, does not hold the lock (another program's lock)
    record = json_record(db)
    assert record["boot_id"] == lock_module.this_host().get("boot_id")
    with open(lock_path(db), "rb") as held:
        import fcntl

        fcntl.flock(held, fcntl.LOCK_EX)
        assert current_writer(db) is None


def test_a_reader_s_recovery_writes_no_file_put_at_the_path_after_its_open_found_the_log(tmp_path, monkeypatch):
    """A reader whose read-only open cannot replay the catalogue's log takes the writer lock and replays it
    with a writable open (connect_read_only), by the path. Here a writer was killed after a commit and the user
    put back last night's backup, which refuses the log (another checkpoint's); as the reader takes the lock
    the user puts the crashed catalogue back (a real process). On main the recovery opened that file, which the
    reader never looked at, replayed the log into it and wrote it there. Now the recovery writes only the file
    whose open found the log: the file put there since is read afresh (its log replayed in memory, as a
    read-only open does), its bytes and its log left for its next writer."""
    import hashlib
    import shutil
    import subprocess
    import sys
    from datetime import UTC, datetime

    from catalog.lock import connect_read_only
    from catalog.store import Store
    from tests.catalog.test_store import PUTS_ITS_FILE_IN_ITS_PLACE
    from tests.harvester.test_cli_one_catalogue_a_folder import KILLED_AFTER_ITS_COMMIT, MOVES_IT_ASIDE_AND_PUTS_BACK

    db = tmp_path / "c.duckdb"
    store = Store(db)
    store.start_run("last-night", "sea", datetime.now(UTC))
    store.close()
    backup = tmp_path / "backup.duckdb"
    shutil.copyfile(db, backup)
    store = Store(db)   # (a checkpoint after the backup)
    store.start_run("tonight", "sea", datetime.now(UTC))
    store.close()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    killed = subprocess.run([sys.executable, "-c", KILLED_AFTER_ITS_COMMIT, str(db)], capture_output=True, text=True,
                            timeout=120, env=env)
    assert (killed.returncode, killed.stdout) == (-9, "committed\n"), killed.stderr
    put_back = subprocess.run([sys.executable, "-c", MOVES_IT_ASIDE_AND_PUTS_BACK, str(db), str(backup)],
                              capture_output=True, text=True, timeout=120)
    assert put_back.returncode == 0, put_back.stderr
    crashed = db.with_name("c.duckdb.crashed")
    crashed_bytes = hashlib.sha256(crashed.read_bytes()).hexdigest()
    acquire, ran = WriterLock.acquire, []

    def taken_as_the_crashed_one_is_put_back(self):
        acquire(self)
        if not ran:
            done = subprocess.run([sys.executable, "-c", PUTS_ITS_FILE_IN_ITS_PLACE, str(db), str(crashed)],
                                  capture_output=True, text=True, timeout=120)
            ran.append((done.returncode, done.stdout.strip()))

    monkeypatch.setattr(WriterLock, "acquire", taken_as_the_crashed_one_is_put_back)
    with connect_read_only(db) as con:
        runs = {r[0] for r in con.execute("SELECT run_id FROM harvest_runs").fetchall()}
    assert ran == [(0, "replaced")]
    assert runs == {"last-night", "tonight", "the-killed-run"}   # (the file put back, its log read in memory)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == crashed_bytes   # (main: the log written into it)
    assert db.with_name("c.duckdb.wal").stat().st_size > 0   # (main: gone, checkpointed by the reader)
