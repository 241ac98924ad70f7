"""The read copy: published whole or not at all, replaced in one step, a reader of the
previous one undisturbed."""
import logging
import os
import subprocess
import sys
from pathlib import Path
from tests.children import line_of

import duckdb
import pytest

from catalog import read_copy
from catalog.read_copy import as_of, is_current, publish, read_copy_path

REPO = str(Path(__file__).resolve().parents[2])


def write_rows(db: Path, n: int) -> None:
    """The catalogue as a writer leaves it: n rows committed, the file closed (checkpointed)."""
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE OR REPLACE TABLE datasets AS SELECT range AS n, repeat('x', 200) AS title FROM range(?)",
                    [n])
        migrations_recorded(con)


def migrations_recorded(con) -> None:
    """The record of its migrations every civicat catalogue holds (without it a reader refuses the
    file: catalog.versions.not_a_catalogue)."""
    con.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL)")
    con.execute("INSERT OR IGNORE INTO schema_migrations VALUES (1, 'initial')")


def count(path: Path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("SELECT count(*) FROM datasets").fetchone()[0]


def test_the_copy_holds_what_the_catalogue_held_and_says_when_it_was_written(tmp_path):
    db = tmp_path / "civicat.duckdb"
    write_rows(db, 1000)
    db.chmod(0o640)   # (a catalogue its owner keeps from other users)
    published = publish(db)
    assert published.path == read_copy_path(db) == tmp_path / "civicat.read.duckdb"
    assert published.bytes == db.stat().st_size == published.path.stat().st_size
    assert published.path.read_bytes() == db.read_bytes() and count(published.path) == 1000
    # its time is the catalogue's last write, not the copy's own
    assert published.path.stat().st_mtime_ns == db.stat().st_mtime_ns
    assert as_of(db).endswith("+00:00")
    assert published.path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["civicat.duckdb", "civicat.read.duckdb"]


def test_a_reader_of_the_previous_copy_keeps_reading_it_while_the_new_one_replaces_it(tmp_path):
    db = tmp_path / "c.duckdb"
    write_rows(db, 10)
    publish(db)
    copy = read_copy_path(db)
    # an analyst's notebook, opened on the copy before the next writer ended
    reader = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys\n"
         f"con = duckdb.connect({str(copy)!r}, read_only=True)\n"
         "for line in sys.stdin:\n"
         "    print(con.execute('SELECT count(*), sum(n) FROM datasets').fetchone(), flush=True)\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        reader.stdin.write("read\n")
        reader.stdin.flush()
        assert line_of(reader) == "(10, 45)\n"
        old_inode = copy.stat().st_ino
        write_rows(db, 20000)
        publish(db)
        assert copy.stat().st_ino != old_inode and count(copy) == 20000   # renamed into place, whole
        reader.stdin.write("read again\n")
        reader.stdin.flush()
        assert line_of(reader) == "(10, 45)\n"   # still the copy it opened, readable
    finally:
        reader.stdin.close()
        assert reader.wait(30) == 0


# a copy cut short by a full disk: the copy's writes limited to fewer bytes than the catalogue
# holds (SIGXFSZ ignored: the write fails with EFBIG, "File too large", as on a full disk)
FULL_DISK = """
import logging, resource, signal, sys
from catalog.read_copy import publish
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
logging.basicConfig()
print(publish(sys.argv[1]))
"""


def test_a_copy_that_cannot_be_written_leaves_the_previous_one_and_no_leftover(tmp_path):
    db = tmp_path / "c.duckdb"
    write_rows(db, 10)
    publish(db)
    previous = read_copy_path(db).read_bytes()
    write_rows(db, 50000)
    failed = subprocess.run([sys.executable, "-c", FULL_DISK, str(db), str(db.stat().st_size // 2)],
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": REPO}, timeout=60)
    assert failed.returncode == 0 and failed.stdout == "None\n", failed.stderr   # the writer's work stands
    assert "the read copy" in failed.stderr and "was not refreshed" in failed.stderr and "File too large" in failed.stderr
    assert read_copy_path(db).read_bytes() == previous and count(read_copy_path(db)) == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.duckdb", "c.read.duckdb"]


def test_a_copy_killed_half_way_is_replaced_by_the_next_writer_s_and_never_read(tmp_path):
    db = tmp_path / "c.duckdb"
    write_rows(db, 10)
    publish(db)
    unfinished = tmp_path / ".c.read.duckdb.publishing"
    unfinished.write_bytes(db.read_bytes()[:4096])   # kill -9 mid-copy
    assert count(read_copy_path(db)) == 10           # readers open the previous copy
    write_rows(db, 30)
    assert not is_current(db)   # (the next writer publishes it as it starts: harvester.cli.open_for_writing)
    publish(db)
    assert count(read_copy_path(db)) == 30 and not unfinished.exists() and is_current(db)


def test_a_catalogue_with_a_write_ahead_log_is_not_copied(tmp_path, caplog):
    """The copy is of the file alone: commits still in the WAL would be missing from a copy
    that says it is of the catalogue's last write."""
    db = tmp_path / "c.duckdb"
    write_rows(db, 10)
    publish(db)
    Path(f"{db}.wal").write_bytes(b"a checkpoint that failed")
    with caplog.at_level(logging.WARNING):
        assert publish(db) is None
    assert "write-ahead log not checkpointed" in caplog.text
    assert count(read_copy_path(db)) == 10


def test_a_catalogue_being_recovered_by_a_writer_is_read_from_the_copy(tmp_path, monkeypatch, caplog):
    """A killed writer's WAL that a read-only open cannot replay, while a writer holds the lock
    to recover it (catalog.lock.connect_read_only raises CatalogueBeingWritten): the copy, said so;
    without a copy, the error as before."""
    import catalog.query as query
    from catalog.lock import CatalogueBeingWritten

    db = tmp_path / "c.duckdb"
    write_rows(db, 10)

    connect_read_only = query.connect_read_only

    def being_recovered(path, config=None):   # (the copy opens: it has no WAL)
        if Path(path) == db:
            raise CatalogueBeingWritten(f"{path}: its last write was cut short and a harvest is writing it now")
        return connect_read_only(path, config)

    monkeypatch.setattr(query, "connect_read_only", being_recovered)
    with pytest.raises(CatalogueBeingWritten, match="cut short"):
        query.read_only_connection(db)
    publish(db)
    (tmp_path / "c.duckdb.wal").write_bytes(b"the killed writer's commits")   # (a current copy is read at once)
    with caplog.at_level(logging.WARNING):
        con = query.read_only_connection(db)
    assert con.execute("SELECT count(*) FROM datasets").fetchone()[0] == 10
    con.close()
    assert f"{db} is being recovered by a writer: reading its read copy {read_copy_path(db)}" in caplog.text


@pytest.mark.parametrize("opened_first", [True, False], ids=["checked-by-opening", "opened-after-the-check"])
def test_a_catalogue_open_for_writing_in_another_process_is_not_copied(tmp_path, caplog, monkeypatch, opened_first):
    """A process that opened the catalogue for writing without civicat's writer lock (a notebook's
    `duckdb.connect(path)`) may be writing it while the bytes are copied: a torn copy would be
    published whole. The copy is made under a shared lock on the file, DuckDB's own: refused
    while a writer has it (r23), and keeping one out until the copy is made."""
    db = tmp_path / "c.duckdb"
    write_rows(db, 10)
    publish(db)
    write_rows(db, 20)
    notebook = subprocess.Popen([sys.executable, "-c", "import duckdb, sys\n"
                                 f"con = duckdb.connect({str(db)!r})\nprint('open', flush=True)\nsys.stdin.read()"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert line_of(notebook) == "open\n"
        if not opened_first:   # (the notebook opened it between the check that the catalogue opens and the copy)
            monkeypatch.setattr(read_copy, "_unopened", lambda path: None)
        with caplog.at_level(logging.WARNING):
            assert publish(db) is None
        assert f"{db} is open for writing in another process" in caplog.text
        assert count(read_copy_path(db)) == 10
    finally:
        notebook.stdin.close()
        assert notebook.wait(30) == 0
    monkeypatch.undo()
    assert publish(db) is not None and count(read_copy_path(db)) == 20


def test_the_copy_under_way_is_readable_by_no_one_but_its_owner(tmp_path, monkeypatch):
    """The hidden copy under way was made as the umask allows (0644), left so by a copy killed,
    and given the catalogue's permissions only once whole: a catalogue kept from other users
    was readable by them while it was copied (r23)."""
    db = tmp_path / "c.duckdb"
    write_rows(db, 10)
    db.chmod(0o600)
    (tmp_path / ".c.read.duckdb.publishing").write_bytes(b"a copy killed half-way")
    (tmp_path / ".c.read.duckdb.publishing").chmod(0o644)
    modes, copy_file_range = [], os.copy_file_range

    def copying(src, dst, count, *args):
        modes.append(os.fstat(dst).st_mode & 0o777)
        return copy_file_range(src, dst, count, *args)

    monkeypatch.setattr(os, "copy_file_range", copying)
    umask = os.umask(0o022)
    try:
        assert publish(db) is not None
    finally:
        os.umask(umask)
    assert modes and set(modes) == {0o600} and read_copy_path(db).stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("kernel_copy", [True, False])
def test_a_copy_is_flushed_and_shows_its_progress_as_it_goes(tmp_path, monkeypatch, kernel_copy):
    """A copy of many GB was flushed to the disk in one step at its end (minutes on a slow
    disk) and showed nothing meanwhile: a writer waiting for an export making it (a brief holder
    of the lock) could not tell it from a hung one. Each 64 MiB (here 64 KiB) is flushed, then
    said, by the kernel's copy and by reads and writes (a file system without it)."""
    from catalog import files

    monkeypatch.setattr(files, "_COPY_CHUNK", 64 << 10)
    db = tmp_path / "c.duckdb"
    write_rows(db, 20_000)
    if not kernel_copy:
        monkeypatch.setattr(os, "copy_file_range", lambda *args: 0)
    unfinished = tmp_path / ".c.read.duckdb.publishing"
    events, fdatasync = [], os.fdatasync

    def flushing(fd):
        events.append(("flushed", os.fstat(fd).st_size))
        fdatasync(fd)
    monkeypatch.setattr(os, "fdatasync", flushing)
    published = publish(db, lambda: events.append(("progressed", unfinished.stat().st_size)))
    steps = published.bytes // (64 << 10)
    assert steps >= 4 and len(events) == 2 * steps, events
    assert events == [(what, (i // 2 + 1) * (64 << 10)) for i, what in enumerate(["flushed", "progressed"] * steps)]
    assert published.path.read_bytes() == db.read_bytes()


def test_a_stop_during_the_copy_leaves_no_unfinished_copy(tmp_path, monkeypatch):
    """Ctrl-C or SIGTERM while the bytes are copied (a writer's start or end): the stop goes on,
    the previous copy stays, and no hidden copy is left beside the catalogue."""
    db = tmp_path / "c.duckdb"
    write_rows(db, 10)
    publish(db)
    write_rows(db, 20)

    def stopped(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "copy_file_range", stopped)
    with pytest.raises(KeyboardInterrupt):
        publish(db)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.duckdb", "c.read.duckdb"]
    assert count(read_copy_path(db)) == 10


def test_a_catalogue_duckdb_cannot_open_does_not_replace_the_last_good_copy(tmp_path, caplog):
    """A catalogue damaged since the copy (a checkpoint cut short by a power loss) was copied as
    any other by the next writer, as it started (it fails to open it after): the last good
    catalogue, the copy, replaced by the damage (r23). The copy is of a catalogue that opens."""
    db = tmp_path / "c.duckdb"
    write_rows(db, 10)
    publish(db)
    damaged = bytearray(db.read_bytes())
    damaged[3 * 4096:3 * 4096 + 8] = bytes(range(1, 9))   # (the first block's checksum)
    db.write_bytes(damaged)
    with caplog.at_level(logging.WARNING):
        assert publish(db) is None
    assert "Corrupt database file" in caplog.text and "was not refreshed" in caplog.text
    assert count(read_copy_path(db)) == 10


def test_a_reader_reads_the_copy_when_it_is_current_and_keeps_no_writer_out(tmp_path):
    """civicat's readers opened the catalogue itself whenever no writer held it: a long `civicat
    sql` at 01:00 kept the cron harvest out (exit 2). A copy of the catalogue's last write, no WAL
    beside it, is the same catalogue: it is read instead, and a writer opens the file meanwhile."""
    from catalog.query import read_only_connection

    db = tmp_path / "civicat.duckdb"
    write_rows(db, 10)
    publish(db)
    con = read_only_connection(db)
    try:
        assert con.execute("SELECT count(*) FROM datasets").fetchone() == (10,)
        writer = subprocess.run([sys.executable, "-c", "import duckdb, sys\n"
                                 "with duckdb.connect(sys.argv[1]) as con:\n"
                                 "    con.execute('INSERT INTO datasets SELECT 10, 1')\n", str(db)],
                                capture_output=True, text=True, timeout=60)
        assert writer.returncode == 0, writer.stderr
        assert con.execute("SELECT count(*) FROM datasets").fetchone() == (10,)   # (its snapshot)
    finally:
        con.close()
    assert not is_current(db)   # the writer wrote: the next reader opens the catalogue itself, 11 rows
    with read_only_connection(db) as fresh:
        assert fresh.execute("SELECT count(*) FROM datasets").fetchone() == (11,)


def written_by_this_process() -> int:
    """Bytes this process has handed to write calls (`wchar`: copy_file_range's among them)."""
    return int(dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())["wchar"])


def write_varied_rows(db: Path, n: int) -> None:
    """n rows that compress little (a catalogue of megabytes)."""
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE OR REPLACE TABLE datasets AS SELECT range AS n, md5(range::VARCHAR) AS title FROM range(?)",
                    [n])


def add_run(db: Path, n: int) -> None:
    """What an unchanged night commits: a row of its run, the rest of the catalogue as it was."""
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE IF NOT EXISTS runs (n INTEGER)")
        con.execute("INSERT INTO runs VALUES (?)", [n])


def test_a_night_that_changed_little_writes_the_changed_blocks_of_the_spare_not_a_whole_copy(tmp_path, monkeypatch):
    """Each writer wrote a whole copy of the catalogue as it ended (session 32: 251 MB of an unchanged
    night's 316 MB written at 300 portals). The copy before the current one is kept hidden and made
    the catalogue again in place, only the blocks that differ written, under its owner's permissions
    alone until whole; then renamed into place, the copy it replaced kept as the next spare."""
    from catalog import files

    monkeypatch.setattr(files, "_COPY_CHUNK", 256 << 10)
    db = tmp_path / "c.duckdb"
    write_varied_rows(db, 200_000)
    db.chmod(0o640)
    copy, spare = read_copy_path(db), tmp_path / ".c.read.duckdb.spare"
    first = publish(db)
    first_inode = copy.stat().st_ino
    add_run(db, 1)
    second = publish(db)
    assert (first.written, second.written) == (first.bytes, second.bytes)   # (no spare yet: made anew)
    assert spare.stat().st_ino == first_inode and count(spare) == 200_000    # the copy replaced, kept hidden
    previous = copy.read_bytes()
    add_run(db, 2)
    modes = []
    before = written_by_this_process()
    third = publish(db, lambda: modes.append(spare.stat().st_mode & 0o777))
    written = written_by_this_process() - before
    assert db.stat().st_size > 2 << 20 and 0 < written < db.stat().st_size / 4 and written == third.written
    assert copy.stat().st_ino == first_inode and copy.read_bytes() == db.read_bytes()   # the spare, published
    assert spare.read_bytes() == previous                                                 # the one it replaced
    assert modes and set(modes) == {0o600} and copy.stat().st_mode & 0o777 == 0o640 and is_current(db)
    with duckdb.connect(str(copy), read_only=True) as con:
        assert con.execute("SELECT count(*), (SELECT sum(n) FROM runs) FROM datasets").fetchone() == (200_000, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".c.read.duckdb.spare", "c.duckdb", "c.read.duckdb"]


READER = """import duckdb, sys
con = duckdb.connect(sys.argv[1], read_only=True)
for line in sys.stdin:
    print(con.execute('SELECT count(*), sum(n) FROM datasets').fetchone(), flush=True)
"""


@pytest.mark.parametrize("where", ["another process", "this process"])
def test_a_reader_of_the_copy_before_the_current_one_keeps_it_whole(tmp_path, where):
    """A notebook opened on the copy two writers' ends ago holds what is now the spare: it is not
    written in place (DuckDB's reader holds a shared lock on it; the test's lock, an open file
    description's, sees one in this process too), the copy is made anew and the reader reads on."""
    db = tmp_path / "c.duckdb"
    write_rows(db, 10)
    publish(db)
    copy, spare = read_copy_path(db), tmp_path / ".c.read.duckdb.spare"
    if where == "this process":
        reader = duckdb.connect(str(copy), read_only=True)
        read = lambda: reader.execute("SELECT count(*), sum(n) FROM datasets").fetchone()   # noqa: E731
    else:
        process = subprocess.Popen([sys.executable, "-c", READER, str(copy)], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True)

        def read():
            process.stdin.write("read\n")
            process.stdin.flush()
            return eval(line_of(process))
    try:
        assert read() == (10, 45)
        held = open(copy, "rb")   # (the reader's file, whatever becomes of its names)
        write_rows(db, 20)
        publish(db)
        assert os.path.samestat(os.fstat(held.fileno()), spare.stat())   # the reader's copy is the spare now
        was = held.read()
        write_rows(db, 20_000)
        published = publish(db)
        assert published.written == published.bytes and copy.read_bytes() == db.read_bytes()   # made anew
        held.seek(0)
        assert held.read() == was and read() == (10, 45)   # not written in place: the reader reads on
        assert not os.path.samestat(os.fstat(held.fileno()), spare.stat())   # the spare is the copy of 20
        held.close()
    finally:
        if where == "this process":
            reader.close()
        else:
            process.stdin.close()
            assert process.wait(30) == 0
    assert count(spare) == 20   # (the spare is the copy of 20)
    write_rows(db, 30)
    assert publish(db).written < db.stat().st_size and count(copy) == 30   # no reader now: updated in place


@pytest.mark.parametrize("other_name", ["the published copy", "a backup"])
def test_a_spare_that_has_another_name_is_never_written_in_place(tmp_path, other_name):
    """A spare that is the published copy itself (its name linked there by hand), or linked elsewhere
    (a backup made by hand), is not a file the publish may change: the copy is made anew."""
    db = tmp_path / "c.duckdb"
    write_rows(db, 10)
    publish(db)
    copy, spare = read_copy_path(db), tmp_path / ".c.read.duckdb.spare"
    if other_name == "the published copy":
        os.link(copy, spare)
        kept = copy
    else:
        write_rows(db, 15)
        publish(db)
        kept = tmp_path / "backup.duckdb"
        os.link(spare, kept)
    was = kept.read_bytes()
    held = open(kept, "rb")
    write_rows(db, 20)
    published = publish(db)
    assert held.read() == was   # (the file the other name is of, unchanged)
    assert other_name == "the published copy" or count(kept) == 10
    assert published.written == published.bytes and copy.read_bytes() == db.read_bytes()
    held.close()


KILLED = """import os, signal, sys
from pathlib import Path
from catalog import files, read_copy
files._COPY_CHUNK = 64 << 10
kill = lambda *args: os.kill(os.getpid(), signal.SIGKILL)
if sys.argv[2] == "between the renames":
    rename = os.rename
    os.rename = lambda a, b: rename(a, b) if not str(a).endswith(".spare.next") else kill()
read_copy.publish(sys.argv[1], kill if sys.argv[2] == "updating the spare" else None)
"""


@pytest.mark.parametrize("when", ["updating the spare", "between the renames"])
def test_a_publish_killed_as_it_updates_the_spare_leaves_a_whole_copy(tmp_path, when):
    """kill -9 as the spare is written in place (it is no copy any reader opens), or between the
    renames that publish it: the copy readers open is whole, the previous one or the new one, and the
    next writer's publish makes it the catalogue's, nothing left beside it."""
    db = tmp_path / "c.duckdb"
    write_rows(db, 10)
    publish(db)
    write_rows(db, 20)
    publish(db)
    copy = read_copy_path(db)
    previous = copy.read_bytes()
    write_rows(db, 30_000)
    killed = subprocess.run([sys.executable, "-c", KILLED, str(db), when], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": REPO}, timeout=120)
    assert killed.returncode == -9, killed.stderr
    if when == "updating the spare":
        assert copy.read_bytes() == previous and count(copy) == 20
    else:
        assert copy.read_bytes() == db.read_bytes() and (tmp_path / ".c.read.duckdb.spare.next").exists()
    published = publish(db)
    assert copy.read_bytes() == db.read_bytes() and count(copy) == 30_000 and is_current(db)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".c.read.duckdb.spare", "c.duckdb", "c.read.duckdb"]
    assert count(tmp_path / ".c.read.duckdb.spare") == (20 if when == "updating the spare" else 30_000)
    assert published.bytes == db.stat().st_size


LOOKING = """import duckdb, sys, time
deadline = time.monotonic() + 120
with open(sys.argv[2], "a") as seen:
    while time.monotonic() < deadline and not open(sys.argv[3]).read():
        try:
            with duckdb.connect(sys.argv[1], read_only=True) as con:
                seen.write(repr(con.execute('SELECT count(*), sum(n) FROM datasets').fetchone()) + "\\n")
        except duckdb.Error as exc:
            seen.write(repr(repr(exc)) + "\\n")
        seen.flush()
"""


def test_readers_opening_the_copy_as_it_is_published_again_and_again_each_find_a_whole_one(tmp_path):
    """A reader opening the copy at any moment of a publish (the spare updated in place beside it,
    the renames) opens the previous copy or the new one, whole: every read is one of the catalogues
    published, none fails. Published until the reader has read 30 times (18 publishes at least)."""
    import time

    db = tmp_path / "c.duckdb"
    sizes = [1_000, 20_000, 5_000]
    write_rows(db, sizes[0])
    publish(db)
    seen, stop = tmp_path / "seen", tmp_path / "stop"
    seen.write_text("")
    stop.write_text("")
    reader = subprocess.Popen([sys.executable, "-c", LOOKING, str(read_copy_path(db)), str(seen), str(stop)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    published, deadline = 0, time.monotonic() + 90
    try:
        while (published < 18 or len(seen.read_text().splitlines()) < 30) and time.monotonic() < deadline:
            write_rows(db, sizes[published % 3])
            assert publish(db) is not None
            published += 1
    finally:
        stop.write_text("stop")
    out, err = reader.communicate(timeout=150)
    assert reader.returncode == 0, err
    reads = [eval(line) for line in seen.read_text().splitlines()]
    whole = {(n, n * (n - 1) // 2) for n in sizes}
    assert len(reads) >= 30 and set(reads) <= whole, (set(reads) - whole, err)


def test_reads_shorter_than_asked_leave_no_part_of_the_spare_unwritten(tmp_path, monkeypatch):
    """A read may return fewer bytes than asked before the file's end (a network or FUSE file system,
    a signal): each taken for its whole block left the rest of the block, changed in the catalogue,
    unwritten in the copy published. Read on to the block's end now: the copy is the catalogue's bytes."""
    db = tmp_path / "c.duckdb"
    write_varied_rows(db, 100_000)
    publish(db)
    add_run(db, 1)
    publish(db)   # (the spare: the first copy)
    write_varied_rows(db, 120_000)   # (most blocks changed)
    preadv = os.preadv

    def halves(handle, buffers, offset):   # (each read gives at most half of what it asks, as such a file system may)
        [buffer] = buffers
        return preadv(handle, [memoryview(buffer)[:max(1, len(buffer) // 2)]], offset)

    monkeypatch.setattr(read_copy.os, "preadv", halves)
    published = publish(db)
    monkeypatch.undo()
    assert 0 < published.written and read_copy_path(db).read_bytes() == db.read_bytes()
    assert count(read_copy_path(db)) == 120_000


# -- a disk short of room: the spare dropped, a copy that would not fit not begun ---------------

def test_the_spare_is_removed_when_less_than_a_catalogue_s_size_stays_free_beside_it(tmp_path, caplog):
    """The disk held the catalogue three times between writers (the catalogue, the copy, the spare)
    whatever room was left: a data team whose disk filled lost the catalogue's writes to a spare kept
    for a faster publish. Once less than a catalogue's size stays free beside it, the spare goes
    (a warning, once), the next publish makes the copy anew, and a spare is kept again with room."""
    from tests.small_disk import fill, small_disk

    with small_disk(tmp_path / "disk", 24 << 20) as disk:
        db = disk / "c.duckdb"
        copy, spare = read_copy_path(db), disk / ".c.read.duckdb.spare"
        write_varied_rows(db, 150_000)
        catalogue = db.stat().st_size
        assert catalogue > 3 << 20
        publish(db)
        add_run(db, 1)
        publish(db)
        assert spare.exists()                                # room: the spare kept
        ballast = fill(disk, catalogue + (2 << 20))          # room for the spare's update, and a catalogue's beyond
        add_run(db, 2)
        caplog.set_level(logging.INFO, "civicat.read_copy")
        kept = publish(db)
        assert kept.written < kept.bytes / 2 and spare.exists() and not caplog.records
        ballast.unlink()
        ballast = fill(disk, catalogue // 2)                 # half a catalogue's size left free
        add_run(db, 3)
        updated = publish(db)
        assert updated.written < updated.bytes / 2 and copy.read_bytes() == db.read_bytes() and is_current(db)
        assert not spare.exists()
        [warning] = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert warning.levelno == logging.WARNING and f"the read copy's spare {spare}" in warning.getMessage()
        assert "less than the catalogue's size" in warning.getMessage()
        assert "the next publish makes the copy anew" in warning.getMessage()
        ballast.unlink()
        add_run(db, 4)
        anew = publish(db)
        assert anew.written == anew.bytes and count(copy) == 150_000 and spare.exists()   # room again: kept


@pytest.mark.parametrize("how", ["made anew", "the spare updated"])
def test_a_copy_that_would_not_fit_is_not_begun_and_the_previous_stays_published(tmp_path, caplog, how):
    """A copy begun on a disk without room for it failed part-way (its writes, and every other
    write of the disk's, failing meanwhile). Not begun now: the previous copy stays published,
    the warning names the copy, what it needs, the disk's free space and the catalogue's time
    the readers read; `no_room` is told; nothing is left beside it."""
    from tests.small_disk import fill, small_disk

    with small_disk(tmp_path / "disk", 24 << 20) as disk:
        db = disk / "c.duckdb"
        copy = read_copy_path(db)
        write_varied_rows(db, 20_000)
        publish(db)
        if how == "the spare updated":
            add_run(db, 1)
            publish(db)
        previous, previous_time = copy.read_bytes(), as_of(db)
        beside = sorted(p.name for p in disk.iterdir())
        write_varied_rows(db, 80_000)   # (the catalogue grown past the copy: its update writes more than the spare holds)
        ballast = fill(disk, 256 << 10)
        said = []
        caplog.set_level(logging.WARNING, "civicat.read_copy")
        assert publish(db, no_room=said.append) is None
        assert copy.read_bytes() == previous and count(copy) == 20_000
        assert sorted(p.name for p in disk.iterdir()) == sorted([*beside, "ballast"])
        [warning] = [r.getMessage() for r in caplog.records]
        assert said == [warning]
        assert warning.startswith(f"the read copy {copy} was not refreshed: "
                                  f"{'a copy' if how == 'made anew' else 'its update'} would write ")
        assert f"MB free of 25.2 MB on {disk}: free space there" in warning
        assert warning.endswith(f"readers while a writer holds the catalogue read the previous copy, the catalogue "
                                f"as of {previous_time}")
        ballast.unlink()
        assert publish(db) is not None and count(copy) == 80_000 and is_current(db)


# -- a file system that makes reflinks (btrfs, XFS): a copy that shares the catalogue's blocks ----

def used(where: Path) -> int:
    os.sync()
    stats = os.statvfs(where)
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize


@pytest.mark.parametrize("kind", ["xfs", "btrfs"])
def test_a_reflink_copy_is_made_on_a_disk_without_room_for_a_whole_one(tmp_path, caplog, kind):
    """On btrfs or XFS the copy is a reflink (the catalogue's blocks shared, none written), yet on
    main it was not begun where less than the catalogue's size was free ("a copy would write N MB:
    no room"): on a nearly full disk the readers kept yesterday's catalogue for no want of room.
    Now the reflink is tried first, the room asked only of the copy written instead; and no spare
    is kept (updating one writes blocks where a reflink writes none: a spare only holds room)."""
    from tests.small_disk import fill, reflink_disk

    with reflink_disk(tmp_path / "disk", kind) as disk:
        db = disk / "c.duckdb"
        copy, spare = read_copy_path(db), disk / ".c.read.duckdb.spare"
        write_varied_rows(db, 500_000)
        catalogue = db.stat().st_size
        assert catalogue > 8 << 20
        assert publish(db) is not None
        spare.write_bytes(b"a spare an earlier publish kept")
        add_run(db, 1)
        fill(disk, catalogue // 2)   # (less than a copy written needs; btrfs's metadata has room for a reflink's)
        before = used(disk)
        said = []
        caplog.set_level(logging.WARNING, "civicat.read_copy")
        published = publish(db, no_room=said.append)
        assert said == [] and not caplog.records, [r.getMessage() for r in caplog.records]
        assert published is not None and (published.bytes, published.written) == (catalogue, 0), published
        assert copy.read_bytes() == db.read_bytes() and is_current(db) and count(copy) == 500_000
        taken = used(disk) - before
        assert taken < catalogue // 8, (taken, catalogue)   # (its blocks shared: what the disk gave it is metadata)
        assert sorted(p.name for p in disk.iterdir()) == sorted(["ballast", "c.duckdb", copy.name])   # (no spare)


# another program puts its own DuckDB file in the catalogue's place (made beside it, renamed over it)
PUTS_ITS_FILE_THERE = """import duckdb, os, sys
path = sys.argv[1]
beside = path + ".analysis-tool.tmp"
with duckdb.connect(beside) as con:
    con.execute("CREATE TABLE results AS SELECT range AS answer FROM range(100000)")
os.utime(beside, (1_000_000_000, 1_000_000_000))
os.replace(beside, path)
print("replaced")
"""


def test_a_file_put_in_the_catalogue_s_place_as_its_copy_is_made_is_neither_copied_nor_its_time_taken(
        tmp_path, monkeypatch):
    """publish read the catalogue by its path, at several moments: main copied the file it opened for the
    copy, then took the time and permissions of whatever file the path held after it (here another
    program's, renamed over the catalogue by a real process as the copy was under way): the copy said it
    was of that file's time, so it was taken as current beside it (is_current), and given the
    catalogue's place. Now the catalogue is opened once, checked to be the one the writer checked
    (`checked`), and copied, timed and given permissions from that handle; given a file already
    replaced, nothing is copied, the previous copy kept."""
    from catalog import files

    db = tmp_path / "c.duckdb"
    write_rows(db, 20_000)
    checked = os.stat(db)
    monkeypatch.setattr(files, "_COPY_CHUNK", 64 << 10)   # (a sign of progress each 64 KiB: the swap comes in one)
    swapped = []

    def replaced_as_it_copies():
        if not swapped:
            ran = subprocess.run([sys.executable, "-c", PUTS_ITS_FILE_THERE, str(db)], capture_output=True,
                                 text=True, timeout=120)
            swapped.append((ran.returncode, ran.stdout.strip(), ran.stderr))

    published = publish(db, replaced_as_it_copies, checked=checked)
    assert swapped == [(0, "replaced", "")], swapped
    copy = read_copy_path(db)
    assert published is not None and count(copy) == 20_000   # (the catalogue's rows: the file opened, checked)
    assert copy.stat().st_mtime_ns == checked.st_mtime_ns != db.stat().st_mtime_ns   # (main: the other file's)
    assert not is_current(db)   # (main: taken for a copy of the file now at the path)
    kept = copy.read_bytes()
    assert publish(db, checked=checked) is None   # (the path's file is not the one checked: not copied)
    assert copy.read_bytes() == kept


def test_another_catalogue_s_log_at_the_path_is_set_aside_and_the_catalogue_there_put_right(tmp_path, caplog):
    """A writer is killed after a commit (its log at `c.duckdb.wal`); the user moves the catalogue aside and
    puts another catalogue in its place (another database: one from another folder, say). DuckDB 1.5 refuses
    another database's log ("Failure while replaying WAL …: WAL does not match database file"): on main
    put_right raised it, as every writer and export of the catalogue would until the user took the log away.
    Now that log is set aside and said, the catalogue there put right and written, and the moved-aside
    catalogue with it reads the commit. (Real processes: the writer killed, the file put back.)"""
    import shutil
    from datetime import UTC, datetime

    from catalog.read_copy import put_right
    from catalog.store import Store
    from tests.harvester.test_cli_one_catalogue_a_folder import (KILLED_AFTER_ITS_COMMIT, MOVES_IT_ASIDE_AND_PUTS_BACK,
                                                                 runs_named)

    db = tmp_path / "data" / "c.duckdb"
    Store(db).close()
    elsewhere = tmp_path / "elsewhere" / "c.duckdb"
    Store(elsewhere).close()
    killed = subprocess.run([sys.executable, "-c", KILLED_AFTER_ITS_COMMIT, str(db)], capture_output=True, text=True,
                            timeout=120)
    assert (killed.returncode, killed.stdout) == (-9, "committed\n"), killed.stderr
    log = db.with_name("c.duckdb.wal")
    written = log.read_bytes()
    put_back = subprocess.run([sys.executable, "-c", MOVES_IT_ASIDE_AND_PUTS_BACK, str(db), str(elsewhere)],
                              capture_output=True, text=True, timeout=120)
    assert (put_back.returncode, put_back.stdout) == (0, "put back\n"), put_back.stderr
    put_right(db, checked=os.stat(db))   # (main: DuckDB's IOException)
    [aside] = db.parent.glob("c.duckdb.wal.of-a-replaced-file-*") or [None]
    assert aside is not None and aside.read_bytes() == written and not log.exists()
    said = " ".join(caplog.text.split())
    assert f"{log} is not the log of the file at {db} (DuckDB refused it: " in said, said
    assert "WAL does not match database file" in said and f"moved to {aside}" in said, said
    store = Store(db)   # (the next write: a log of its own)
    store.start_run("the-next-run", "sea", datetime.now(UTC))
    store.close()
    assert aside.read_bytes() == written
    assert runs_named(db, "the-killed-run") == 0 and runs_named(db, "the-next-run") == 1
    shutil.copyfile(aside, db.with_name("c.duckdb.crashed.wal"))
    assert runs_named(db.with_name("c.duckdb.crashed"), "the-killed-run") == 1
