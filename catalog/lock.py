"""One writer per catalogue: an advisory lock on a file beside the database.

DuckDB refuses a second writer too, but with an error about the file; cron jobs that
overlap need a message that says which process holds the catalogue, and an option to wait.
The lock is a `flock` on `<db>.lock`: the kernel releases it when its holder exits in any
way, SIGKILL included, so a crashed run never leaves the catalogue locked. The file itself
stays (it only says who held the lock last), but where its holder made it for a file refused as
no catalogue (release(remove=True)): a writer that was waiting for it then takes the file at the
path instead, never the lock of one taken away.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import re
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

# the catalogue file's format, written by every writable open (catalog.store.connect and the
# recovery below): DuckDB 1.5's, whose compression the catalogue uses (DuckDB is pinned to 1.5)
STORAGE_VERSION = "v1.5.0"
# civicat's own SQL writes a lambda as `lambda x: ...`: DuckDB 1.3 deprecated `x -> ...`, to
# be removed in a later release, so a connection that runs only civicat's SQL (the store's,
# the search's, and each cursor of theirs: the setting is the connection's) refuses it and
# every test catches one that comes back. `civicat sql` keeps
# DuckDB's default: an analyst's query may still use the old arrow while DuckDB takes it.
NO_ARROW_LAMBDAS = "SET lambda_syntax = 'DISABLE_SINGLE_ARROW'"


class CatalogueBeingWritten(Exception):
    """Another process is writing the catalogue (it holds the writer lock, WriterLock), so this
    one may not, or may not yet read it (a log to replay first: connect_read_only); the message
    names that process. (Not catalog.store.OtherCursorsKeptTheCatalogue: within one writer.)"""


class CatalogueReplaced(Exception):
    """The file at the catalogue's path, as a writer opened it, is not the one its check read (another
    program put its own there between the two, or took it away): left unwritten. (Here, not in
    catalog.store, which readers do not import: connect_read_only catches it.)"""


def lock_path(db_path: str | Path) -> Path:
    db_path = Path(db_path)
    return db_path.with_name(db_path.name + ".lock")


def _holder_record(data: bytes) -> dict:
    try:
        holder = json.loads(data or b"{}")
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def kept_by_a_writer(db_path: str | Path) -> bool:
    """Whether a civicat writer has held the file at `db_path`: its lock file beside it, which every
    writer leaves (it says who held the lock last), holds a holder record. Another program's DuckDB file
    has none. An empty lock file is not one (until session 43 it was): Python's filelock, the common way
    to lock a file from Python, makes `<file>.lock` empty (O_TRUNC) and for most of its versions leaves
    it after its release: a look under it opened that program's database and took its lock, or, that
    lock held, took the file for a catalogue and refused the folder. A civicat writer leaves an empty
    one only when killed between making it and writing its record (catalog.folder finds such a
    catalogue by its read copy, where a writer of it ever ended)."""
    try:
        with open(lock_path(db_path), "rb") as f:
            data = f.read(4096)
    except OSError:
        return False
    return isinstance(_holder_record(data).get("pid"), int)


def describe_holder(holder: dict) -> str:
    """The writer a holder record names, for messages: `process 4242 (civicat harvest --records,
    since 2026-12-04T01:00:02+00:00)`; one whose PID is not known here (`NOT_KNOWN_HERE`, see
    writer_holding) said so, with the record's PID as numbered where it was written."""
    if not holder.get("pid"):
        return "another process"
    said = f"process {holder['pid']} ({holder.get('command') or 'civicat'}, since {holder.get('since')})"
    if holder.get(NOT_KNOWN_HERE):
        return _not_known_here(holder[NOT_KNOWN_HERE], said, on=_other_machine(holder))
    return said


def _not_known_here(path: str | Path, recorded: str | None, *, not_it: bool = False, on: str | None = None) -> str:
    """The holder of the lock at `path` that the kernel's list of locks cannot name, and `recorded`, the
    process its holder record names (as described), if any; `not_it`: that record was written in this PID
    namespace (_written_here), so its process, not listed, is not the holder; `on`: the other machine the
    record was written on (_other_machine)."""
    if recorded and on:
        return (f"a process on another machine, {on} (the record in {path} names {recorded}, written there; its lock "
                f"is not listed in this machine's /proc/locks): {SHARED_FOLDER}")
    said = ("a process whose PID is not known here (not listed in /proc/locks: one in another PID namespace, "
            "such as a container's, is not)")
    if recorded and not_it:
        return (f"{said}, not the civicat writer the record in {path} names ({recorded}, a PID of this namespace, "
                "which does not hold it): another program's lock, or a writer's that has not yet written its record")
    return said + (f"; the record in {path} names {recorded}, a PID of the namespace it was written in"
                   if recorded else "")


def pid_namespace() -> str | None:
    """The PID namespace this process's PIDs, and /proc's, are numbered in, as /proc/self/ns/pid reads
    (`pid:[4026531836]`); None where /proc is not this namespace's (/proc/self is not this process's PID)
    or cannot be read. A writer says it in its record: a reader in the same namespace, whose list of
    locks names every holder there, then knows a holder the list leaves out is not that writer."""
    try:
        if os.readlink("/proc/self") != str(os.getpid()):
            return None
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def this_host() -> dict:
    """This machine, for a holder record: its kernel's boot id (`/proc/sys/kernel/random/boot_id`, new at each
    boot, the same in every container of it) and its host name. A PID namespace's id alone is no machine's: the
    host's own namespace has the same id (`pid:[4026531836]`) on every Linux machine, so a writer on another
    machine sharing the folder (NFS, whose locks hold across machines) read as one of this namespace."""
    import socket

    here = {"hostname": socket.gethostname()}
    try:
        here["boot_id"] = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        pass
    return here


def _other_machine(holder: dict) -> str | None:
    """The host name of the other machine the holder record was written on, or None: written on this one (its
    boot id this kernel's; or its host name this one's, this machine before a reboot, whose writer let go of
    its lock as it went down), or it does not say (a record from before session 46)."""
    written = holder.get("boot_id")
    if not isinstance(written, str):
        return None
    here = this_host()
    if written == here.get("boot_id") or holder.get("hostname") == here["hostname"]:
        return None
    return str(holder.get("hostname") or "a host whose name it does not give")


def _written_here(holder: dict) -> bool:
    """Whether the holder record was written in this PID namespace (its `pid_namespace`, this one's) on this
    machine (_other_machine: the host's namespace has the same id on every machine)."""
    written = holder.get("pid_namespace")
    return isinstance(written, str) and written == pid_namespace() and _other_machine(holder) is None


# the key of a holder record writer_holding gives for a lock held by a process the kernel's list of locks
# cannot name (one in another PID namespace): the lock file's path; not in the file, only in what is returned
NOT_KNOWN_HERE = "pid_not_known_here"
# what is said of a catalogue written from two machines (its folder on a file system they share: NFS)
SHARED_FOLDER = ("a catalogue written from more than one machine: civicat takes such a lock for a writer's, as it "
                 "cannot tell one of that machine's writers from another program there; keep the catalogue on a "
                 "local disk of the machine that writes it (docs/harvesting.md, Locks in full)")


def writer_holding(db_path: str | Path, pid: int) -> dict | None:
    """The holder record of `<db>.lock` when process `pid` holds that lock now (a civicat
    writer: its command and since when), else None. The record outlives its writer (a run
    killed outright), and its PID may have been given to another process since: where Linux
    lists its locks (/proc/locks) the lock must be held by `pid`; elsewhere the PID alone, while
    a process has it. A lock held by a process the list cannot name (a writer in another PID
    namespace, a container's, or this one in a container and the writer outside: its record's PID
    is of the namespace it was written in) is a writer's all the same: the record, its
    `NOT_KNOWN_HERE` set (until session 44 None: an export took it for no writer, then met the
    catalogue held, or read a records pull's folders as they were replaced). Not where the record was
    written in this PID namespace (_written_here): its process would be listed if it held the lock, so the
    holder is another (until session 45 taken for that writer: a program's lock in a container, its
    record a writer's long gone, refused exports as a records pull)."""
    path = lock_path(db_path)
    try:
        holder = _holder_record(path.read_bytes()[:4096])
    except OSError:
        return None
    if holder.get("pid") != pid:
        return None
    holding = _pids_holding(path)
    if holding is None:
        from catalog.scratch import process_alive

        return holder if process_alive(pid) else None
    if pid in holding:
        return holder
    if _written_here(holder) or not _held_unlisted(path, holding):
        return None
    return {**holder, NOT_KNOWN_HERE: str(path)}


# the kernel's list of the locks held now (Linux's); a test reads a recorded one
PROC_LOCKS = Path("/proc/locks")
# a holder /proc/locks gives as pid 0: one in a PID namespace the list's /proc cannot see (a container's),
# before Linux 4.9 (since, such a lock is left out of the list)
UNKNOWN_PID = 0


def _pids_holding(path: Path) -> set[int] | None:
    """The processes that hold a flock on the file at `path` now, from the kernel's list of locks
    (UNKNOWN_PID for one it lists without its PID); None where there is no such list."""
    try:
        held = os.stat(path)
    except OSError:
        return set()
    flocks = _flocks()
    return None if flocks is None else {pid for pid, inode in flocks if inode == str(held.st_ino)}


def _held_unlisted(path: Path, holding: set[int]) -> bool:
    """Whether the lock at `path`, whose holders the kernel's list gives as `holding` (_pids_holding), is
    held by a process the list cannot name: one listed as UNKNOWN_PID (before Linux 4.9), or none listed
    and a shared flock of the file refused (since, the list leaves out a lock held in a PID namespace it
    cannot see). The try holds the lock for no time a writer would notice: a writer refused reads again
    before it takes the lock for held (WriterLock._lock); one that took it since the list was read is
    listed when it is read again."""
    if holding - {UNKNOWN_PID}:
        return False
    if UNKNOWN_PID in holding:
        return True
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return not (_pids_holding(path) or set()) - {UNKNOWN_PID}
    except OSError:
        return False
    finally:
        os.close(fd)   # (a shared lock taken is let go with it)


def flock_holders() -> set[int] | None:
    """The processes that hold a flock on any file now (a civicat writer holds its catalogue's lock,
    UNKNOWN_PID as _pids_holding); None where there is no list of locks."""
    flocks = _flocks()
    return None if flocks is None else {pid for pid, _ in flocks}


def _flocks() -> list[tuple[int, str]] | None:
    """(PID, inode number) of each flock held now, from /proc/locks; None where it cannot be read."""
    try:
        locks = PROC_LOCKS.read_text()
    except OSError:
        return None
    # "1: FLOCK  ADVISORY  WRITE 4242 fe:00:2146466 0 EOF" (a waiter's line has "->" after "1:");
    # matched on the inode number, not the device: the superblock's device listed there is not
    # stat()'s on overlayfs over two file systems (a container's layers) or a btrfs subvolume
    flocks = []
    for line in locks.splitlines():
        fields = line.split()
        if fields[1:2] == ["FLOCK"] and fields[4:5] and fields[4].isdigit() and fields[5:6]:
            flocks.append((int(fields[4]), fields[5].rpartition(":")[2]))
    return flocks


def current_writer(db_path: str | Path) -> dict | None:
    """The holder record of the civicat writer that holds the catalogue's lock now, or None (no
    writer, or a process holding the DuckDB file without civicat's lock: a notebook); one in
    another PID namespace has its `NOT_KNOWN_HERE` set (writer_holding)."""
    try:
        pid = _holder_record(lock_path(db_path).read_bytes()[:4096]).get("pid")
    except OSError:
        return None
    return writer_holding(db_path, pid) if isinstance(pid, int) else None


def pulls_records(holder: dict) -> bool:
    """Whether the writer a holder record names pulls records (`civicat records`, `civicat
    harvest --records`): the one writer that replaces records folders as it runs. The writer
    says so itself (`"pulls_records"`, WriterLock's); a record without it, an older civicat's, is
    judged by its command's words (`harvest --portal records` read as a pull there), and one that
    gives no command is taken for one. A brief holder (an export making the read copy current)
    pulls none."""
    if holder.get("brief") is True:
        return False
    if "pulls_records" in holder:
        return holder["pulls_records"] is True
    words = str(holder.get("command") or "civicat records").split()[1:]
    return "records" in words or "--records" in words


def file_locked(exc: Exception) -> bool:
    """DuckDB refused to open the file because another process holds it (its lock error: "Could
    not set lock on file ...: Conflicting lock is held in ..."). Not any error saying "lock": a
    damaged file's ("... in block at location ...") was taken for one, and waited for."""
    return "could not set lock on file" in str(exc).lower()


# DuckDB's lock error names the holder "held in /usr/bin/python3 (PID 4242)", or "held in PID 4242" where
# it cannot read the program's path, "held in PID 0" where the holder is in another PID namespace
_DUCKDB_HOLDER = re.compile(r"held in (?:(.+?) \()?PID (\d+)\b")


def file_holder(exc: Exception) -> str:
    """Who holds the DuckDB file, from DuckDB's lock error."""
    held = _DUCKDB_HOLDER.search(str(exc))
    if held is None:
        return "another process"
    if int(held.group(2)) == UNKNOWN_PID:   # (until session 44 "another process": the message unread)
        return "a process whose PID is not known here (one in another PID namespace, such as a container's)"
    return f"process {held.group(2)}" + (f" ({held.group(1)})" if held.group(1) else "")


def file_writer(exc: Exception, db_path: str | Path) -> str:
    """Who writes the DuckDB file, for messages: the civicat writer (its command, since when)
    when the PID DuckDB's lock error names holds the catalogue's writer lock too, else
    DuckDB's words."""
    held = _DUCKDB_HOLDER.search(str(exc))
    if held and int(held.group(2)) == UNKNOWN_PID:   # (a writer in another PID namespace: its record's PID is not 0)
        writer = current_writer(db_path)
        writer = writer if writer and writer.get(NOT_KNOWN_HERE) else None
    else:
        writer = writer_holding(db_path, int(held.group(2))) if held else None
    return describe_holder(writer) if writer else f"{file_holder(exc)} (a harvest?)"


# how long a writer waits, unasked, for a brief holder of the lock (`WriterLock(brief=True)`: an
# export making the read copy current) that shows no progress: the holder sets the lock file's time
# at each step (`WriterLock.progressed`: each 64 MiB of the copy, each step of putting the catalogue
# right), so a copy of many GB is waited for to its end, and a hung holder 5 minutes after its last
# step. The longest step without a sign is the copy's last flush to the disk, bounded by a flush every
# 64 MiB (catalog.read_copy); docs/harvesting.md ("Locks in full") gives a copy's time
BRIEF_HOLD_SECONDS = 300
# how long a writer that waited for a brief holder reads again a record no longer brief before it takes
# it for another writer's: a look puts back the record it found just before it lets go (held_for_a_look),
# and a process can be held from running that long on a loaded machine
LETTING_GO_SECONDS = 1.0
# of the record found at acquire, kept to be put back (release(restore=True)): a civicat record is
# under 10 KiB (its command cut to 500 characters, its crash note to 1,500); a longer file is not read whole
RECORD_KEPT_BYTES = 64 << 10


class WriterLock:
    """`with WriterLock(db):` — the catalogue's single writer for the block.

    Raises CatalogueBeingWritten when another process holds it: at once, or, given `wait_until` (a
    time.monotonic() deadline; math.inf: as long as it takes), once that has passed, polling
    meanwhile (so Ctrl-C still works). A holder that took it `brief` (a reader that puts the
    catalogue right and publishes its read copy, then lets go: an export) is waited for whatever
    `wait_until` says, as long as it shows progress (its `progressed()`), and BRIEF_HOLD_SECONDS
    past the last it showed: a nightly harvest starting then must not fail behind a slow copy, nor
    wait for ever behind a hung one. `pulls_records`: the holder replaces records folders as it
    runs (a records pull), said in its record for the exports (catalog.lock.pulls_records)."""

    def __init__(self, db_path: str | Path, *, wait_until: float = -math.inf, poll_seconds: float = 0.5,
                 brief: bool = False, pulls_records: bool = False, waits_for_brief: bool = True):
        self.db_path = Path(db_path)
        self.path = lock_path(db_path)
        self.wait_until = wait_until
        self.poll_seconds = poll_seconds
        self.brief = brief
        self.waits_for_brief = waits_for_brief   # (False: a brief holder refuses it at once too: held_for_a_look)
        self.pulls_records = pulls_records
        self._fd: int | None = None
        self.holder: dict = {}
        self.crash: dict | None = None   # the crash note of a harvest before (note_crash), read at acquire
        self.created = False   # the lock file made by this acquire (release(remove=True))
        self._found: tuple[bytes, int, int] | None = None   # the record before this one, and its times (restore)
        # no catalogue file (nor its log) at the writer's check under this lock (harvester.cli.writer_lock):
        # the file is then this writer's to make, and one found there as it makes it is another program's
        self.found_no_file = False
        # the catalogue file that check read (its stat, taken before it read it), None where there was none:
        # the writer opens no other file put at the path since (catalog.store.connect's `checked`)
        self.checked_file: os.stat_result | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
                self.created = True
            except FileExistsError:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                self._lock(fd)
            except BaseException:
                os.close(fd)
                raise
            if _still_at(fd, self.path):
                break
            # the file taken away as this one waited for it (release(remove=True)): its lock is no one's,
            # and a process that came since may hold the file now at the path: that one is the lock
            os.close(fd)
            self.created = False
        try:
            found = os.fstat(fd)
            self._found = (os.pread(fd, min(found.st_size, RECORD_KEPT_BYTES), 0),
                           found.st_atime_ns, found.st_mtime_ns)
            previous = _holder_record(self._found[0][:4096])
            # a harvest that crashed said so here (`crashed`): kept until a harvest has read it
            self.crash = previous.get("crashed") if isinstance(previous.get("crashed"), dict) else None
            if (elsewhere := _other_machine(previous)) is not None:   # (said where the docs say why)
                logging.getLogger("civicat.lock").warning(
                    "%s was last written from another machine, %s (its lock file's record %s): %s", self.db_path,
                    elsewhere, describe_holder(previous), SHARED_FOLDER)
            self.holder = {"pid": os.getpid(), "since": datetime.now(UTC).isoformat(timespec="seconds"),
                           "command": " ".join(os.path.basename(a) if i == 0 else a
                                               for i, a in enumerate(sys.argv))[:500],
                           "pulls_records": self.pulls_records, **({"brief": True} if self.brief else {}),
                           **({"pid_namespace": namespace} if (namespace := pid_namespace()) else {}),
                           **this_host(),
                           **({"crashed": self.crash} if self.crash else {})}
            self._write_record(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _lock(self, fd: int) -> None:
        """flock of `fd`, waited for as the class says (CatalogueBeingWritten past the wait)."""
        blocked, was_brief, first_look = None, False, 0.1
        step, stepped = None, None   # the brief holder's last sign of progress, and when it was seen
        between = None   # since when the record has named no process that holds the lock
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                now = time.monotonic()
                blocked = blocked or now
                # a brief holder (a reader putting the catalogue right) is waited for unasked
                # (its record is written just after it took the lock: read once more a moment later)
                record = _holder_record(os.pread(fd, 4096, 0))
                brief = self.waits_for_brief and record.get("brief") is True
                if was_brief and not brief:   # (a look puts back the record it found just before it lets go)
                    blocked, first_look = now, LETTING_GO_SECONDS
                was_brief = brief
                if not brief and now - blocked < first_look:
                    time.sleep(0.05)
                    continue
                # the record names a process that does not hold the lock (one gone, or the look itself
                # before it: r42's): the lock is between two records, its holder has taken it and not yet
                # written its own, or is a look that has put back the one it found and lets go: read
                # again, as a look's waiter does, before the record is taken for its holder's
                between = None if brief or self._names_the_holder(record) else between or now
                if between is not None and now - between < LETTING_GO_SECONDS:
                    time.sleep(0.05)
                    continue
                if brief and os.fstat(fd).st_mtime_ns != step:   # (its record, or a step since)
                    step, stepped = os.fstat(fd).st_mtime_ns, now
                left = max(self.wait_until, stepped + BRIEF_HOLD_SECONDS if brief else -math.inf) - now
                if left <= 0:
                    with contextlib.suppress(BlockingIOError):   # (let go as this one read who held it: taken)
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    hung = brief and stepped + BRIEF_HOLD_SECONDS >= self.wait_until
                    raise CatalogueBeingWritten(self._busy_message(fd, waited=self.wait_until > -math.inf, hung=hung)) \
                        from None
                time.sleep(min(self.poll_seconds, left))

    def _write_record(self, fd: int) -> None:
        """The holder record, in place: written over the one before, then cut to its length (the
        file's block is there already, so a disk full since can still take a record of up to 4 KiB)."""
        record = json.dumps(self.holder).encode() + b"\n"
        os.pwrite(fd, record, 0)
        os.ftruncate(fd, len(record))

    def note_crash(self, exc: BaseException) -> None:
        """In the holder record, that this writer ends on an error it did not expect (the
        catalogue's disk full, a bug), and which: the runs it leaves unfinished in the catalogue
        (which may take no more writes) are then closed by the next harvest naming that error,
        not as a process killed without a word. Best effort: the record cannot always be written."""
        if self._fd is None:
            return
        said = f"{type(exc).__name__}: {exc}"
        self.holder["crashed"] = {"pid": self.holder["pid"], "since": self.holder["since"],
                                  "at": datetime.now(UTC).isoformat(timespec="seconds"),
                                  "error": said if len(said) <= 1500 else said[:1500] + "…"}
        try:
            self._write_record(self._fd)
        except OSError:
            pass

    def crash_read(self) -> None:
        """The crash note read (a harvest closed the runs it left): not said again."""
        if self._fd is not None and self.holder.pop("crashed", None) is not None:
            try:
                self._write_record(self._fd)
            except OSError:
                pass

    def _names_the_holder(self, record: dict) -> bool:
        """Whether the holder record names a process that holds the lock now."""
        pid = record.get("pid")
        if not isinstance(pid, int) or pid <= UNKNOWN_PID:
            return False
        holding = _pids_holding(self.path)
        if holding is None:   # (no list of locks: the PID, while a process has it)
            from catalog.scratch import process_alive

            return process_alive(pid)
        return pid in holding

    def _busy_message(self, fd: int, waited: bool, hung: bool = False) -> str:
        record = _holder_record(os.pread(fd, 4096, 0))
        if self._names_the_holder(record):
            who = describe_holder(record)
        else:   # (not the process its record names, one long gone: the one the kernel says holds it)
            holding = _pids_holding(self.path)
            known = (holding or set()) - {UNKNOWN_PID}
            if len(known) == 1 and UNKNOWN_PID not in holding:
                who = f"process {min(known)} (its record in {self.path} not yet written, or not civicat's)"
            elif holding is not None and not known and _held_unlisted(self.path, holding):   # (by one it cannot name)
                who = _not_known_here(self.path, describe_holder(record) if isinstance(record.get("pid"), int)
                                      else None, not_it=_written_here(record), on=_other_machine(record))
            elif holding is not None and not known:   # (until session 45 said as held in another namespace)
                who = "a process that let go of it as this one read who held it (try again)"
            else:
                who = "another process"
        if hung:
            return (f"{self.db_path} is held by {who}, which has shown no progress for {BRIEF_HOLD_SECONDS:g} s "
                    "(hung?): try again later, or end that process")
        if waited:
            return (f"{self.db_path} is still being written by {who} at the end of the wait asked "
                    "(--wait-minutes): try again later")
        return (f"{self.db_path} is being written by {who}; one writer at a time: "
                "try again later, or pass --wait (or --wait-minutes N) to wait for it")

    def progressed(self) -> None:
        """A brief holder's sign that it is getting on (the lock file's time set to now), which
        writers waiting for it watch (see BRIEF_HOLD_SECONDS)."""
        if self._fd is not None:
            os.utime(self._fd)

    def release(self, *, remove: bool = False, restore: bool = False) -> None:
        """`remove`: the lock file taken away too when this acquire made it, for a file refused as no
        catalogue (another program's database: nothing of civicat's is left beside it). Any process
        that took the lock meanwhile refuses the same file. `restore`: the record found at acquire
        put back (bytes and times), for a holder that wrote nothing (held_for_a_look): the file
        keeps naming the catalogue's last writer and its crash note, not a look at it."""
        if self._fd is not None and remove and self.created:
            with contextlib.suppress(OSError):
                self.path.unlink()
        elif self._fd is not None and restore and self._found is not None:
            record, atime, mtime = self._found
            with contextlib.suppress(OSError):   # (best effort, as note_crash: the lock is let go all the same)
                os.pwrite(self._fd, record, 0)
                os.ftruncate(self._fd, len(record))
                os.utime(self._fd, ns=(atime, mtime))
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "WriterLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


@contextlib.contextmanager
def held_for_a_look(db_path: str | Path) -> Iterator[bool | None]:
    """Another catalogue's writer lock (`db_path`'s: one that catalog.folder looks at beside the
    catalogue it checks) taken at once, as a brief holder, while the caller opens its file read-only
    in DuckDB: a writer of it starting in that moment found the file held and was refused (exit 2);
    now it waits for the look, unasked (brief holders are waited for). Yields True when taken (let go
    after, its lock file removed where this made it, else the record it found there put back: a look
    is no writer, and a user reading the file after a crash reads who wrote the catalogue last), False
    when a civicat writer holds it now (never waited for: the caller does not open the file), None when
    it cannot be taken (its folder not writable: the caller looks without it, as before)."""
    lock = WriterLock(db_path, brief=True, waits_for_brief=False)
    try:
        lock.acquire()
    except CatalogueBeingWritten:
        yield False
        return
    except OSError:
        yield None
        return
    try:
        yield True
    finally:
        lock.release(remove=True, restore=True)


def _still_at(fd: int, path: Path) -> bool:
    """Whether the file open at `fd` is still the one at `path` (not taken away, nor made anew). By
    inode number alone: stat() and the kernel's lock list may give the file's device differently
    (overlayfs: see writer_holding), and the path's folder is one file system."""
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def connect_read_only(db_path: str | Path, config: dict | None = None):
    """A read-only DuckDB connection to the catalogue, recovering it first when needed; a stop
    interrupts its statement (catalog.uncut: a reader has nothing to finish).

    A writer killed at the wrong moment (SIGKILL, power loss) can leave a WAL that a
    read-only open cannot replay ("Failure while replaying WAL ... Could not write file"):
    replaying it writes to the database file. The next harvest would replay it; a reader
    does the same when no writer holds the catalogue (the lock taken, the WAL replayed and
    checkpointed by a writable open), so `civicat sql` and the exports work after a crash. Only into
    the file whose open found the log: another put at the path meanwhile is opened afresh (until
    session 46 the log was replayed into it, and written there); a log DuckDB refuses as not the
    file's is set aside (checkpoint_wal)."""
    import duckdb

    from catalog import uncut
    from catalog.read_copy import catalogue_of
    from catalog.versions import not_a_catalogue

    for last in (False, True):
        try:
            meant = os.stat(db_path)   # (the file whose open found a log to replay: none other is written)
        except OSError:
            meant = None
        try:
            con = uncut.connect(str(db_path), read_only=True, config=config or {}, interruptible=True)
            break
        except (duckdb.IOException, *_log_unreadable()) as exc:
            if "replaying WAL" not in str(exc) and not not_this_files_log(exc):   # (an older one's: said without)
                raise
            try:
                with WriterLock(db_path):
                    checkpoint_wal(db_path, checked=meant)
            except CatalogueBeingWritten:
                raise CatalogueBeingWritten(f"{db_path}: its last write was cut short and a harvest is writing it "
                                            "now (it recovers the catalogue); try again when it ends") from exc
            except CatalogueReplaced as replaced:   # (another file at the path since: read as the first was)
                if last:   # (replaced again: a program putting files there still; until session 46 a traceback)
                    raise CatalogueReplaced(f"{replaced}, twice as this reader recovered it (a killed writer's log "
                                            "to replay): nothing read, nothing written; run again once the file "
                                            "there stays") from None
                continue
            con = uncut.connect(str(db_path), read_only=True, config=config or {}, interruptible=True)
            break
    # another program's DuckDB file (`--db other.duckdb`): refused, where its reader met no such
    # table (a traceback) or ran on it (an empty export, `sql` reading someone else's data)
    refused = not_a_catalogue(con, catalogue_of(db_path) or db_path)
    if refused is not None:
        con.close()
        raise refused
    _say_if_newer(con, db_path)
    return con


_said_newer: set[str] = set()


def _say_if_newer(con, db_path: str | Path) -> None:
    """A warning, once a catalogue, when a newer civicat migrated it: read as this civicat knows it
    (a table or column it added is not read; one it changed may fail a query). Named as the user
    knows it: the catalogue, where `db_path` is its read copy (what readers open; the copy's
    name, `civicat.read.duckdb`, is no file the user gave)."""
    from catalog.read_copy import catalogue_of
    from catalog.versions import newer_migrations

    newer = newer_migrations(dict(con.execute("SELECT version, name FROM schema_migrations").fetchall()))
    named = str(catalogue_of(db_path) or db_path)
    if newer and named not in _said_newer:
        _said_newer.add(named)
        logging.getLogger("civicat.read").warning("%s was migrated by a newer civicat (%s): read as this one knows it",
                                                  named, newer)


# DuckDB's refusal of a log written for another state of the file at the path (its checkpoint iteration
# not the file's: "… That means the WAL was created for a newer version of this database …"), or for another
# database's file
_NOT_THIS_FILES_LOG = ("the WAL checkpoint iteration does not match the database file",
                       "WAL does not match database file")


def checkpoint_wal(db_path: str | Path, checked: os.stat_result | None = None) -> None:
    """Replay the WAL a writer killed after its commits left, and write them into the file (a
    writable open, then a checkpoint). The caller holds the writer lock. In the catalogue's
    format: the WAL may hold what only it can store. `checked`: the file the caller meant (its stat):
    another put at the path since is not opened (catalog.store.CatalogueReplaced).

    A log that is not the file's, which DuckDB refuses (written at another checkpoint of the file: a backup put
    back after a writer was killed; or for another database), is set aside (renamed as catalog.store's
    set_aside_this_runs_log renames a replaced run's), and said: until session 46 no writer, export or reader of the catalogue went on until the user took
    it away."""
    import duckdb

    from catalog import uncut
    from catalog.store import how_replaced, log_path_of

    db_path = Path(db_path)
    log = log_path_of(db_path)
    try:
        found = os.stat(log)
    except OSError:
        found = None
    if why := how_replaced(db_path, checked):
        raise CatalogueReplaced(f"{db_path} was {why} after this run checked it was the catalogue")
    try:
        with uncut.connect(str(db_path), config={"storage_compatibility_version": STORAGE_VERSION}) as writer:
            writer.execute("CHECKPOINT")
    except (duckdb.IOException, *_log_unreadable()) as exc:
        if not not_this_files_log(exc) or not _set_aside_not_its_log(db_path, found, f"DuckDB {_did(exc)}: {exc}"):
            raise


# the errors DuckDB 1.5 ends a replay with where it cannot read the log at all, neither the file system's
# (an IOException: no room, no permission) nor memory's: a log in an older DuckDB's format, which names no
# database (DuckDB 1.5 cannot tell it is another's), applied to this file ("INTERNAL Error: Failure while
# replaying WAL …: Calling DatabaseManager::GetDefaultDatabase with no default database set"; by an ATTACH,
# "Catalog Error: … Table with name … does not exist"). The process goes on: only that open failed
def _log_unreadable() -> tuple[type[Exception], ...]:
    import duckdb   # (here: catalog.lock is imported by commands that never open DuckDB)

    return duckdb.InternalException, duckdb.CatalogException


def not_this_files_log(exc: Exception) -> bool:
    """DuckDB refused the catalogue's write-ahead log as not the file's (_NOT_THIS_FILES_LOG), or could not
    replay it at all (_log_unreadable: until session 46 it was not set aside, and every writer, export and
    reader of the catalogue failed on it, readers with a traceback, until the user took it away)."""
    if isinstance(exc, _log_unreadable()):
        return "Failure while replaying WAL" in str(exc)
    return any(said in str(exc) for said in _NOT_THIS_FILES_LOG)


def _did(exc: Exception) -> str:
    return "refused it" if any(said in str(exc) for said in _NOT_THIS_FILES_LOG) else "could not read it"


def _set_aside_not_its_log(db_path: Path, found: os.stat_result | None, why: str) -> bool:
    """The write-ahead log `found` at the catalogue's path before checkpoint_wal opened it, which DuckDB refused
    as not the file's (`why`), set aside and said, where it is there still; whether it was (anything else is
    left as it is: the refusal stands)."""
    from catalog.store import log_path_of, rename_log_aside

    log = log_path_of(db_path)
    try:
        if found is None or not os.path.samestat(os.stat(log), found):
            return False
        aside = rename_log_aside(log)
    except OSError as exc:
        if not isinstance(exc, FileNotFoundError):
            logging.getLogger("civicat").warning("%s is not the log of the file at %s (%s), and could not be set "
                                                 "aside (%s): take it away", log, db_path, why, exc.strerror or exc)
        return False
    logging.getLogger("civicat").warning(
        "%s is not the log of the file at %s (%s): the log of a file that one replaced (a backup put back after a "
        "writer was killed, say), or of another state of it; moved to %s, where no open of that path replays it "
        "nor a write there overwrites it. What it holds is the file's it was written for: put that file back at "
        "%s with the log beside it as %s to read it", log, db_path, why, aside, db_path, log)
    return True
