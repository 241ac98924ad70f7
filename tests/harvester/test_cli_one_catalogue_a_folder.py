"""One catalogue a folder (catalog.folder): the files beside a catalogue (records/, .records-staging/,
http_cache/) are its folder's, and a second catalogue in the same folder shared them: its records pull
replaced the first's without a word (the first's export then exited 1). Refused now, exit 2, before
any request or write; the same catalogue renamed or restored still owns them; a folder made before
(no marker) is adopted by its one catalogue, and two catalogues already sharing one are refused."""
import hashlib
import json
import shutil

import duckdb
import pytest

from catalog.folder import MARKER
from catalog.lock import WriterLock, lock_path
from catalog.store import Store
from tests.harvester.test_cli_new_user import invoke
from tests.portals.socrata import SocrataPortal, SodaTable, discovery_entry

DOMAIN = "data.example.org"
DATASET = "abcd-0001"


@pytest.fixture
def portal():
    views = [{"id": DATASET, "name": "Calls", "category": "Public Safety",
              "columns": [{"fieldName": "n", "dataTypeName": "number"}]}]
    table = SodaTable.from_rows([{"n": str(i)} for i in range(30)])
    with SocrataPortal([discovery_entry(v) for v in views], domain=DOMAIN, records={DATASET: table}) as served:
        served.table = table
        yield served


@pytest.fixture
def config(tmp_path, portal):
    path = tmp_path / "portals.toml"
    path.write_text(f'[[portals]]\nid = "sea"\ncity = "Seattle"\nkind = "socrata"\nurl = "{portal.url}"\n'
                    f'domain = "{DOMAIN}"\nrecords = ["{DATASET}"]\n')
    return path


def harvest(config, db, *extra):
    return invoke("harvest", "--config", str(config), "--db", str(db), "--records", *extra)


def export(db, out):
    return invoke("export", "--db", str(db), "--out", str(out))


def folder_files(folder):
    """Every file under the files beside the catalogues, with a digest of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for name in ("records", ".records-staging", "http_cache") for p in sorted((folder / name).rglob("*"))
            if p.is_file()}


def marker(folder):
    return json.loads((folder / MARKER).read_text())


def catalogue_id(db):
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT id FROM catalogue_identity").fetchone()[0]


def test_a_second_catalogue_in_the_folder_is_refused_and_the_first_s_files_left_as_they_were(tmp_path, portal, config):
    """On main B's harvest ran (exit 0): its pull of the same dataset (new rows since) replaced A's
    folder, and A's export exited 1 ("not the pull the read copy describes")."""
    data = tmp_path / "data"
    first, second = data / "civicat.duckdb", data / "other.duckdb"
    assert harvest(config, first).exit_code == 0
    before = folder_files(data)
    assert any(name.startswith("records/") for name in before) and "http_cache/validators.sqlite3" in before
    portal.table.add([{"n": str(i)} for i in range(30, 40)])   # (B's pull would be another pull)
    requests = len(portal.requests)

    refused = harvest(config, second)
    assert refused.exit_code == 2, refused.output
    message = " ".join(refused.output.split())
    assert str(second) in message and str(first) in message and "one folder per catalogue" in message
    assert f"--db {data / 'other' / 'other.duckdb'}" in message
    assert len(portal.requests) == requests   # (not one request)
    assert folder_files(data) == before
    assert not second.exists() and not lock_path(second).exists()   # (nothing of B's left beside A's)
    assert export(first, tmp_path / "out").exit_code == 0
    assert marker(data)["catalogue"] == "civicat.duckdb" and marker(data)["catalogue_id"] == catalogue_id(first)

    # B in a folder of its own, as the message says: harvested, A's files still as they were
    own = harvest(config, data / "other" / "other.duckdb")
    assert own.exit_code == 0, own.output
    assert folder_files(data) == before


@pytest.mark.parametrize("command", [["overlap"], ["retire", "gone"], ["records", f"sea:{DATASET}", "--config", "CONFIG"]])
def test_every_writer_of_a_second_catalogue_is_refused(tmp_path, portal, config, command):
    data = tmp_path / "data"
    assert harvest(config, data / "a.duckdb").exit_code == 0
    Store(data / "b.duckdb").close()   # (a catalogue made beside it without civicat's writers)
    before = folder_files(data)
    result = invoke(*[str(config) if word == "CONFIG" else word for word in command], "--db", str(data / "b.duckdb"))
    assert result.exit_code == 2 and "belong to the catalogue" in result.output, result.output
    assert folder_files(data) == before and marker(data)["catalogue"] == "a.duckdb"


def test_the_same_catalogue_renamed_or_restored_still_owns_its_folder(tmp_path, portal, config):
    data = tmp_path / "data"
    assert harvest(config, data / "civicat.duckdb").exit_code == 0
    identity = catalogue_id(data / "civicat.duckdb")
    backup = tmp_path / "backup.duckdb"
    shutil.copyfile(data / "civicat.duckdb", backup)

    (data / "civicat.duckdb").rename(data / "main.duckdb")
    renamed = harvest(config, data / "main.duckdb", "--full")
    assert renamed.exit_code == 0, renamed.output
    assert marker(data) == {**marker(data), "catalogue": "main.duckdb", "catalogue_id": identity}
    assert export(data / "main.duckdb", tmp_path / "out").exit_code == 0

    (data / "main.duckdb").unlink()
    shutil.copyfile(backup, data / "civicat.duckdb")   # (restored from the backup, under its old name)
    restored = harvest(config, data / "civicat.duckdb", "--full")
    assert restored.exit_code == 0, restored.output
    assert marker(data)["catalogue"] == "civicat.duckdb"


def test_a_copy_beside_the_catalogue_is_refused_as_a_copy(tmp_path, portal, config):
    """The same id, and the file the marker names still there: the copy would replace its pulls."""
    data = tmp_path / "data"
    assert harvest(config, data / "civicat.duckdb").exit_code == 0
    shutil.copyfile(data / "civicat.duckdb", data / "copy.duckdb")
    before = folder_files(data)
    result = harvest(config, data / "copy.duckdb")
    assert result.exit_code == 2 and "are copies of one catalogue" in result.output, result.output
    assert folder_files(data) == before and marker(data)["catalogue"] == "civicat.duckdb"


def files_opened_read_only(monkeypatch):
    """The DuckDB files the checks open read-only from now on (catalog.versions.read_from_file), in order."""
    from catalog import versions

    real, opened = versions.read_from_file, []
    monkeypatch.setattr(versions, "read_from_file",
                        lambda db_path, read, **kw: opened.append(db_path) or real(db_path, read, **kw))
    return opened


def made_before_0020(db, folder):
    """The catalogue and its folder as a civicat before one catalogue a folder left them."""
    (folder / MARKER).unlink()
    with duckdb.connect(str(db)) as con:
        con.execute("DROP TABLE catalogue_identity")
        con.execute("DELETE FROM schema_migrations WHERE version = 20")


def test_a_folder_made_before_is_adopted_by_its_one_catalogue(tmp_path, portal, config):
    data = tmp_path / "data"
    db = data / "civicat.duckdb"
    assert harvest(config, db).exit_code == 0
    made_before_0020(db, data)
    result = harvest(config, db)
    assert result.exit_code == 0, result.output
    assert marker(data) == {**marker(data), "catalogue": "civicat.duckdb", "catalogue_id": catalogue_id(db)}
    assert export(db, tmp_path / "out").exit_code == 0


def test_two_catalogues_sharing_a_folder_made_before_are_each_refused_until_one_moves(tmp_path, portal, config):
    data = tmp_path / "data"
    first, second = data / "civicat.duckdb", data / "other.duckdb"
    assert harvest(config, first).exit_code == 0
    with WriterLock(second):   # (as its civicat writer made it: its lock file stays beside it)
        Store(second).close()
    made_before_0020(first, data)
    before = folder_files(data)
    for db, other in ((first, second), (second, first)):
        result = harvest(config, db)
        assert result.exit_code == 2, result.output
        message = " ".join(result.output.split())
        assert str(db) in message and str(other) in message and "Move every catalogue but one" in message
    assert folder_files(data) == before and not (data / MARKER).exists()

    (data / "own").mkdir()
    second.rename(data / "own" / "other.duckdb")
    assert harvest(config, first).exit_code == 0
    assert marker(data)["catalogue_id"] == catalogue_id(first)


def test_an_export_of_a_catalogue_whose_folder_is_another_s_is_refused(tmp_path, portal, config):
    """Its records pulls are not the folder's: on main its export read the other's (exit 1, or their
    rows as its own where the pulls matched)."""
    data = tmp_path / "data"
    assert harvest(config, data / "civicat.duckdb").exit_code == 0
    assert harvest(config, tmp_path / "elsewhere" / "other.duckdb").exit_code == 0
    shutil.move(tmp_path / "elsewhere" / "other.duckdb", data / "other.duckdb")
    before = folder_files(data)
    result = export(data / "other.duckdb", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert "belong to the catalogue" in result.output and not (tmp_path / "out").exists()
    assert folder_files(data) == before
    assert export(data / "civicat.duckdb", tmp_path / "out").exit_code == 0


@pytest.mark.parametrize("text", ["not json", '{"catalogue_id": "x", "catalogue": "../elsewhere.duckdb"}',
                                  '{"catalogue": "civicat.duckdb"}', "[" * 100_000])
def test_a_marker_that_is_not_civicat_s_is_refused_naming_it(tmp_path, portal, config, text):
    data = tmp_path / "data"
    data.mkdir()
    (data / MARKER).write_text(text)
    result = harvest(config, data / "civicat.duckdb")
    assert result.exit_code == 2 and str(data / MARKER) in " ".join(result.output.split()), result.output
    assert not (data / "civicat.duckdb").exists() and (data / MARKER).read_text() == text


def test_a_new_catalogue_where_the_folder_s_is_gone_is_refused_naming_what_to_remove(tmp_path, portal, config):
    """The old catalogue deleted, its records and validators left: the new one would record a pull of
    the old one's cut short as its own. Removed as the message says, it claims the folder."""
    data = tmp_path / "data"
    db = data / "civicat.duckdb"
    assert harvest(config, db).exit_code == 0
    for leftover in data.glob("*civicat*.duckdb*"):
        shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    result = harvest(config, data / "fresh.duckdb")
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert f"{db} (no longer there)" in message
    assert f"remove {MARKER} and http_cache/, records/, .records-staging/ from {data}" in message
    for name in (MARKER, "http_cache", "records", ".records-staging"):
        shutil.rmtree(data / name) if (data / name).is_dir() else (data / name).unlink(missing_ok=True)
    assert harvest(config, data / "fresh.duckdb").exit_code == 0
    assert marker(data)["catalogue"] == "fresh.duckdb"


def claimed_meanwhile_by(first, monkeypatch):
    """The other of two writers starting at once in a new folder (no marker: each passed the
    check before its open) made its catalogue and claimed the folder while this one opened its
    own: `first` made and claimed just before this writer's claim."""
    from catalog import folder

    real = folder.claim

    def first_claims_it_first(db_path, cid):
        if not first.exists():
            made = Store(first)
            real(first, folder.catalogue_id(made.con))
            made.close()
        return real(db_path, cid)

    monkeypatch.setattr(folder, "claim", first_claims_it_first)


def test_the_refused_of_two_new_catalogues_starting_at_once_leaves_nothing_it_made(tmp_path, portal, config,
                                                                                   monkeypatch):
    """On main the loser was refused (exit 2) after its open had made its catalogue: b.duckdb and
    b.duckdb.lock stayed in the folder, a stray catalogue beside a.duckdb (its retry, or a listing,
    found it; its retry was refused as another's)."""
    data = tmp_path / "data"
    first, second = data / "a.duckdb", data / "b.duckdb"
    claimed_meanwhile_by(first, monkeypatch)
    refused = harvest(config, second)
    assert refused.exit_code == 2, refused.output
    assert "belong to the catalogue" in refused.output and str(first) in " ".join(refused.output.split())
    assert portal.requests == []
    assert sorted(p.name for p in data.iterdir()) == sorted([first.name, MARKER])   # (b's file, log and lock gone)
    assert marker(data)["catalogue"] == "a.duckdb"

    monkeypatch.undo()
    assert harvest(config, first).exit_code == 0
    assert harvest(config, data / "b" / "b.duckdb").exit_code == 0   # (as the message says: a folder of its own)


def test_a_refused_catalogue_made_in_an_earlier_run_is_left_where_it_is(tmp_path, portal, config, monkeypatch):
    """Guard: a file the writer did not make in this run (b.duckdb made by a run killed between its
    open and its claim, or by the user) is never removed, its lock file neither."""
    data = tmp_path / "data"
    first, second = data / "a.duckdb", data / "b.duckdb"
    Store(second).close()
    lock_path(second).write_text("")
    claimed_meanwhile_by(first, monkeypatch)
    refused = harvest(config, second)
    assert refused.exit_code == 2 and "belong to the catalogue" in refused.output, refused.output
    monkeypatch.undo()
    assert second.is_file() and lock_path(second).exists() and catalogue_id(second)


def test_the_look_at_the_folder_s_other_catalogue_never_keeps_its_writer_out(tmp_path, portal, config, monkeypatch):
    """A folder made before (no marker, its files there) is looked through for other catalogues,
    each opened read-only in DuckDB for a moment. On main a writer of that other catalogue starting
    in that moment (its nightly harvest, as a new catalogue is tried beside it) found its file held
    and was refused, exit 2 ("open in process ..."). The look is taken under the other's writer lock
    now, as a brief holder: its writer waits for it, unasked, then runs."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    from catalog import versions
    from catalog.lock import writer_holding

    data = tmp_path / "data"
    other = data / "civicat.duckdb"
    assert harvest(config, other).exit_code == 0
    made_before_0020(other, data)
    repo = str(Path(__file__).resolve().parents[2])
    real, writers = versions.read_from_file, []

    def a_writer_of_it_starts_as_it_is_looked_at(db_path, read, **kwargs):
        if Path(db_path) != other or writers:
            return real(db_path, read, **kwargs)

        def read_while_its_writer_starts(con):
            writer = subprocess.Popen([sys.executable, "-c", "from harvester.cli import cli; cli()", "overlap",
                                       "--db", str(other)], env={**os.environ, "PYTHONPATH": repo},
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            writers.append(writer)
            deadline = time.monotonic() + 60   # its end (main), or it waiting for the lock this look holds
            while writer.poll() is None and time.monotonic() < deadline and not (
                    writer_holding(other, os.getpid()) and lock_path(other) in opened_by(writer.pid)):
                time.sleep(0.05)
            return read(con)

        return real(db_path, read_while_its_writer_starts, **kwargs)

    monkeypatch.setattr(versions, "read_from_file", a_writer_of_it_starts_as_it_is_looked_at)
    refused = harvest(config, data / "new.duckdb")
    assert refused.exit_code == 2 and "Move every catalogue but one" in refused.output, refused.output
    assert len(writers) == 1
    output = writers[0].communicate(timeout=120)[0]
    assert writers[0].returncode == 0, output
    assert marker(data)["catalogue"] == "civicat.duckdb"   # (its writer adopted the folder)
    assert not (data / "new.duckdb").exists()


def opened_by(pid):
    """The files process `pid` has open."""
    from pathlib import Path

    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            found.add(Path(fd.readlink()))
        except OSError:
            pass
    return found


def test_a_catalogue_beside_it_that_a_writer_holds_is_counted_unopened(tmp_path, portal, config, monkeypatch):
    """Its writer holds its lock (and may be opening it this moment): taken for a catalogue without
    a look (on main it was opened read-only all the same, which keeps that writer's open out)."""
    data = tmp_path / "data"
    other = data / "civicat.duckdb"
    assert harvest(config, other).exit_code == 0
    made_before_0020(other, data)
    opened = files_opened_read_only(monkeypatch)
    with WriterLock(other):
        refused = harvest(config, data / "new.duckdb")
    assert refused.exit_code == 2 and "Move every catalogue but one" in refused.output, refused.output
    assert str(other) in " ".join(refused.output.split())
    assert other not in [type(other)(p) for p in opened]


def run_civicat(*args):
    """`civicat ARGS` in a process of its own (this tree's civicat): its exit and its words."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = str(Path(__file__).resolve().parents[2])
    ran = subprocess.run([sys.executable, "-c", "from harvester.cli import cli; cli()", *args], capture_output=True,
                         text=True, timeout=300, env={**os.environ, "PYTHONPATH": repo})
    return ran.returncode, ran.stdout + ran.stderr


def test_the_look_at_the_folder_s_other_catalogue_leaves_its_lock_file_naming_its_last_writer(tmp_path, portal,
                                                                                             config):
    """The lock file says who held the catalogue last (a user reads it after a crash). On main, after
    the look at the folder's other catalogue, that catalogue's lock file named the look (the pid and
    command of the writer of another catalogue, `brief`) as its last holder, its time the look's; now
    it is put back as it was, naming the writer that last wrote the catalogue."""
    data = tmp_path / "data"
    other = data / "civicat.duckdb"
    assert harvest(config, other).exit_code == 0
    code, said = run_civicat("overlap", "--db", str(other))   # (its last writer: a process of its own)
    assert code == 0, said
    made_before_0020(other, data)
    record, written = lock_path(other).read_bytes(), lock_path(other).stat().st_mtime_ns
    assert json.loads(record)["command"].split()[1:3] == ["overlap", "--db"]
    refused = harvest(config, data / "new.duckdb")
    assert refused.exit_code == 2 and "Move every catalogue but one" in refused.output, refused.output
    assert lock_path(other).read_bytes() == record and lock_path(other).stat().st_mtime_ns == written


@pytest.mark.parametrize("its_program", ["writing it", "closed"])
def test_another_program_s_duckdb_file_beside_the_catalogue_is_never_opened_by_the_look(tmp_path, portal, config,
                                                                                        monkeypatch, its_program):
    """A folder made before (no marker, its files there) is looked through for other catalogues. On
    main every DuckDB file there was opened read-only for a moment, another program's own too: its
    program's writable open at that moment was refused by DuckDB, and one its program was writing
    then (DuckDB could not open it) was taken for a catalogue, the folder refused ("Move every
    catalogue but one", exit 2). A DuckDB file no civicat writer has held (no lock file of civicat's
    beside it) is not opened now: the catalogue adopts its folder."""
    import subprocess
    import sys

    data = tmp_path / "data"
    db, theirs = data / "civicat.duckdb", data / "analysis.duckdb"
    assert harvest(config, db).exit_code == 0
    made_before_0020(db, data)
    (data / "analysis.duckdb.lock").write_text("held by the analysis tool\n")   # (a lock file of its own: not civicat's)
    program = subprocess.Popen([sys.executable, "-c", "import duckdb, sys\n"
                                f"con = duckdb.connect({str(theirs)!r})\n"
                                "con.execute('CREATE TABLE results AS SELECT 42 AS answer')\n"
                                "con.execute('CHECKPOINT')\n"
                                "print('open', flush=True)\n"
                                + ("sys.stdin.read()\n" if its_program == "writing it" else "con.close()\n")],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert program.stdout.readline() == "open\n"
        opened = files_opened_read_only(monkeypatch)
        adopted = harvest(config, db)
    finally:
        program.communicate("", timeout=60)
    assert adopted.exit_code == 0, adopted.output
    assert marker(data)["catalogue"] == "civicat.duckdb"
    assert theirs not in [type(theirs)(p) for p in opened]
    with duckdb.connect(str(theirs), read_only=True) as con:
        assert con.execute("SELECT answer FROM results").fetchall() == [(42,)]
    assert (data / "analysis.duckdb.lock").read_text() == "held by the analysis tool\n"


# another program making its own DuckDB file at PATH where there is none, whole at once (made beside,
# then linked: a link fails where a file is), and saying whether it did
MAKES_ITS_FILE_THERE = """import duckdb, os, sys
path = sys.argv[1]
beside = path + ".analysis-tool.tmp"
with duckdb.connect(beside) as con:
    con.execute("CREATE TABLE results AS SELECT 42 AS answer")
try:
    os.link(beside, path)
    print("made")
except FileExistsError:
    print("a file is there")
os.unlink(beside)
"""


def test_a_file_another_program_makes_where_the_catalogue_is_being_made_is_never_taken_away(tmp_path, portal):
    """A new catalogue refused at its claim (another new catalogue claimed the folder as it opened:
    two writers starting at once) takes away the file it made. On main it judged that by the path's
    absence just before DuckDB's open: a DuckDB file another program made there in between was opened
    as the catalogue (civicat's tables added to it) and, the claim refused, removed with that
    program's data. Now the catalogue's file is made whole where none is (linked), so a file that
    another program makes there at that moment is either there first (never this run's) or not made."""
    import math
    import subprocess
    import sys

    from catalog.folder import catalogue_id as id_on, claim
    from harvester.cli import Refused, Wait, open_for_writing, writer_lock

    data = tmp_path / "data"
    first, second = data / "a.duckdb", data / "b.duckdb"
    lock = writer_lock(second, Wait(-math.inf), makes_the_catalogue=True)
    made = Store(first)   # (the other new catalogue, claiming the folder as this one opens)
    claim(first, id_on(made.con))
    made.close()
    said = []

    def opened_as_another_program_makes_its_file_there(path, **options):
        ran = subprocess.run([sys.executable, "-c", MAKES_ITS_FILE_THERE, str(path)], capture_output=True,
                             text=True, timeout=120)
        assert ran.returncode == 0, ran.stderr
        said.append(ran.stdout.strip())
        return Store(path, **options)

    try:
        with pytest.raises(Refused, match="belong to the catalogue"):
            open_for_writing(opened_as_another_program_makes_its_file_there, second, Wait(-math.inf), lock)
    finally:
        lock.release()
    assert said in (["made"], ["a file is there"])
    if said == ["made"]:
        assert second.is_file(), "another program's file, made where the catalogue was being made, was taken away"
        with duckdb.connect(str(second), read_only=True) as con:
            assert con.execute("SELECT answer FROM results").fetchall() == [(42,)]
    else:   # (this run's file, taken away: nothing of it left)
        assert sorted(p.name for p in data.iterdir()) == sorted([first.name, MARKER])


# a process that runs until its stdin closes, holding a flock on a file of its own (argv[1]) or none
RUNS = """import fcntl, sys
if sys.argv[1:]:
    held = open(sys.argv[1], "w")
    fcntl.flock(held, fcntl.LOCK_EX)
print("running", flush=True)
sys.stdin.read()
"""


def a_process(tmp_path, *, holding_a_lock):
    import subprocess
    import sys
    import uuid

    held = [str(tmp_path / f"held-{uuid.uuid4().hex[:8]}")] if holding_a_lock else []
    process = subprocess.Popen([sys.executable, "-c", RUNS, *held], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdout.readline() == b"running\n"
    return process


# a harvest killed (SIGKILL, as the OOM killer or `kill -9` would) as it links the new catalogue's file
# into place, before the link or just after it
KILLED_AT_THE_LINK = """import os, signal, sys
from pathlib import Path
config, db, when = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
real = os.link

def link(source, target, *args, **kwargs):
    if Path(target) == db:
        if when == "after the link":
            real(source, target, *args, **kwargs)
        print(os.getpid(), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    return real(source, target, *args, **kwargs)

os.link = link
from harvester.cli import cli
cli(["harvest", "--config", config, "--db", str(db)])
"""


@pytest.mark.parametrize("when", ["before the link", "after the link"])
def test_what_a_run_killed_as_it_made_the_catalogue_left_beside_it_is_removed_by_the_next(tmp_path, portal, config,
                                                                                          when):
    """A new catalogue's file is made beside it (`.NAME.PID.new`) and linked into place; a run killed
    there left that file (an empty database, or a second name of the catalogue) for good: on main
    every later writer passed it by. The next writer removes it, as its process is gone; never a
    `.new` of a process that runs, nor another catalogue's."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    data = tmp_path / "data"
    data.mkdir()
    db = data / "c.duckdb"
    repo = str(Path(__file__).resolve().parents[2])
    killed = subprocess.run([sys.executable, "-c", KILLED_AT_THE_LINK, str(config), str(db), when],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": repo})
    assert killed.returncode == -9, killed.stderr
    left = data / f".c.duckdb.{int(killed.stdout)}.new"
    assert left.is_file() and db.exists() is (when == "after the link")
    running = a_process(tmp_path, holding_a_lock=True)   # (as a writer holds its catalogue's)
    try:
        its_own, another_s = data / f".c.duckdb.{running.pid}.new", data / f".other.duckdb.{int(killed.stdout)}.new"
        for kept in (its_own, another_s):
            kept.write_bytes(b"kept")
        harvested = harvest(config, db)
        assert harvested.exit_code == 0, harvested.output
        assert not left.exists()
        assert its_own.read_bytes() == another_s.read_bytes() == b"kept"
    finally:
        running.communicate(b"", timeout=60)
    assert catalogue_id(db)


# another program's database beside the catalogue, guarded as Python's filelock guards a file: an empty
# `<file>.lock`, made with O_TRUNC and flock'ed while it writes (and left there after)
LOCKED_AS_FILELOCK_LOCKS = """import duckdb, fcntl, os, sys
path, its_lock = sys.argv[1], sys.argv[2]
fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
with duckdb.connect(path) as con:
    con.execute("CREATE TABLE results AS SELECT 42 AS answer")
if its_lock == "let go":
    fcntl.flock(fd, fcntl.LOCK_UN)
print("written", flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("its_lock", ["held", "let go"])
def test_another_program_s_duckdb_file_beside_an_empty_lock_file_is_no_catalogue(tmp_path, portal, config,
                                                                                 monkeypatch, its_lock):
    """An empty lock file beside a DuckDB file counted as civicat's (a writer killed as it took the
    lock leaves one), but Python's filelock leaves one too, empty, beside the file it guards. On main,
    that program's lock held, the look could not take it and took the file for a catalogue a writer
    holds: the folder refused ("Move every catalogue but one", exit 2); let go, its database was opened
    under its own lock file (civicat's record written there for the look). Neither now: adopted."""
    import subprocess
    import sys

    data = tmp_path / "data"
    db, theirs = data / "civicat.duckdb", data / "analysis.duckdb"
    assert harvest(config, db).exit_code == 0
    made_before_0020(db, data)
    program = subprocess.Popen([sys.executable, "-c", LOCKED_AS_FILELOCK_LOCKS, str(theirs), its_lock],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert program.stdout.readline() == "written\n"
        opened = files_opened_read_only(monkeypatch)
        adopted = harvest(config, db)
        assert (data / "analysis.duckdb.lock").read_bytes() == b""
    finally:
        program.communicate("", timeout=60)
    assert adopted.exit_code == 0, adopted.output
    assert marker(data)["catalogue"] == "civicat.duckdb"
    assert theirs not in [type(theirs)(p) for p in opened]


def test_a_catalogue_whose_lock_file_was_removed_is_found_by_its_read_copy(tmp_path, portal, config, monkeypatch):
    """A folder made before one catalogue a folder, shared by two catalogues, one of which has lost its
    `.lock` (removed by hand, or an empty one left by a writer killed as it took it). On main the look
    did not see that one (no civicat lock file beside it): the other adopted the folder, its records
    pulls free to replace the first's. The read copy its last writer published beside it is civicat's
    own file, replaced whole and never written in place: opened read-only in its stead (the catalogue
    itself never opened, another program may be writing a file so named), it says the file is a
    catalogue, and the folder is refused as shared."""
    from catalog.read_copy import read_copy_path

    data = tmp_path / "data"
    other = data / "civicat.duckdb"
    assert harvest(config, other).exit_code == 0
    made_before_0020(other, data)
    lock_path(other).unlink()
    assert read_copy_path(other).is_file()
    opened = files_opened_read_only(monkeypatch)
    refused = harvest(config, data / "new.duckdb")
    assert refused.exit_code == 2 and "Move every catalogue but one" in refused.output, refused.output
    assert str(other) in " ".join(refused.output.split())
    assert other not in [type(other)(p) for p in opened]
    assert not (data / "new.duckdb").exists() and not (data / MARKER).exists()
    assert not lock_path(other).exists()   # (nothing made beside it for the look)


@pytest.mark.parametrize("links", ["hard links", "no hard links"])
def test_a_file_another_program_makes_as_the_catalogue_is_placed_is_never_replaced_nor_opened(tmp_path, monkeypatch,
                                                                                              links):
    """A new catalogue's file is made beside it and put at its path only where no file is. Where the
    file system makes no hard links (exFAT, vfat: os.link refused, EPERM, as here), main checked the
    path and then renamed the file there: a DuckDB file another program made in between was replaced,
    its data gone. Where it does, main's refused link (a file there) left the open to take that file
    for the catalogue (civicat's migrations added to that program's database). Now the catalogue's file
    is placed by a rename that refuses a file there, and a file found there is never opened: exit 2,
    that program's file as it made it. (This kernel mounts no vfat nor exFAT: the refused link is
    simulated, the rename and the other program are real.)"""
    import math
    import os
    import subprocess
    import sys
    from pathlib import Path

    from catalog import files
    from harvester.cli import Refused, Wait, open_for_writing, writer_lock

    data = tmp_path / "data"
    db = data / "c.duckdb"
    lock = writer_lock(db, Wait(-math.inf), makes_the_catalogue=True)
    said = []

    def as_another_program_makes_its_file_there(real):
        def placing(source, target, *args, **kwargs):
            if Path(target) == db and not said:
                ran = subprocess.run([sys.executable, "-c", MAKES_ITS_FILE_THERE, str(db)], capture_output=True,
                                     text=True, timeout=120)
                assert ran.returncode == 0, ran.stderr
                said.append(ran.stdout.strip())
            return real(source, target, *args, **kwargs)
        return placing

    real_link = os.link
    if links == "hard links":
        monkeypatch.setattr(os, "link", as_another_program_makes_its_file_there(real_link))
    else:
        def no_hard_links(source, target, *args, **kwargs):
            if Path(target) == db:
                raise PermissionError(1, "Operation not permitted", str(source), None, str(target))
            return real_link(source, target, *args, **kwargs)
        monkeypatch.setattr(os, "link", no_hard_links)
        monkeypatch.setattr(os, "rename", as_another_program_makes_its_file_there(os.rename))
        if hasattr(files, "rename_where_none"):
            monkeypatch.setattr(files, "rename_where_none",
                                as_another_program_makes_its_file_there(files.rename_where_none))
    try:
        with pytest.raises(Refused, match="was made by another process as this run was making the catalogue"):
            open_for_writing(Store, db, Wait(-math.inf), lock)
    finally:
        lock.release()
        monkeypatch.undo()
    assert said == ["made"]
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT answer FROM results").fetchall() == [(42,)]
        assert con.execute("SELECT table_name FROM duckdb_tables()").fetchall() == [("results",)]
    assert sorted(p.name for p in data.iterdir()) == ["c.duckdb"]   # (nothing of this run's left beside it)


def test_a_file_another_program_makes_after_the_writer_s_check_is_never_opened_as_the_catalogue(tmp_path):
    """writer_lock checks the catalogue's file under the lock (none there: the harvest makes it); the
    writer then opens it (open_for_writing). On main a file another program made between the two was
    found at the path and opened as the catalogue: civicat's migrations added their tables to that
    program's database. Now a writer whose check found no file makes it itself, and a file there
    since is another program's: exit 2, never opened, left as it was made. (The other program is a real
    process, run in that window.)"""
    import math

    from harvester.cli import Wait, writer_lock

    data = tmp_path / "data"
    db = data / "c.duckdb"
    lock = writer_lock(db, Wait(-math.inf), makes_the_catalogue=True)
    refused_after_another_program_ran(db, lock, MAKES_ITS_FILE_THERE, "made",
                                      "was made by another process as this run was making the catalogue")
    assert sorted(p.name for p in data.iterdir()) == ["c.duckdb"]   # (nor a lock, a read copy, a marker of civicat's)


# a harvest killed (SIGKILL) as it makes the new catalogue's file beside it, with DuckDB's log of that
# file written: DuckDB 1.5 writes none for the empty file civicat makes, one that does (a later DuckDB,
# a write of civicat's there) is made here by a table written to it
KILLED_WITH_ITS_LOG = """import os, signal, sys
from pathlib import Path
from catalog import uncut
config, db = sys.argv[1], Path(sys.argv[2])
real = uncut.connect

def connect(database=":memory:", **options):
    con = real(database, **options)
    if database.endswith(".new"):
        con.execute("CREATE TABLE t AS SELECT 1 AS a")
        print(os.getpid(), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    return con

uncut.connect = connect
from harvester.cli import cli
cli(["harvest", "--config", config, "--db", str(db)])
"""


def test_a_killed_run_s_new_file_is_removed_with_its_log_and_where_its_pid_is_another_process_s_now(
        tmp_path, portal, config):
    """What a run killed as it made the catalogue left beside it: on main its `.NAME.PID.new.wal`
    (DuckDB's log of the `.new`) stayed for good, and so did the `.new` files of a PID the kernel had
    given to another process since (process_alive alone). The next writer now removes the log with
    its file, and tells a PID given anew: its process started after the files were made (here a
    killed run's files an hour old, their PID a running process's), or it holds no flock, as every
    civicat writer making the catalogue holds its lock. Never the files of a process that holds a
    flock and started before them (a writer), nor another catalogue's."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    data = tmp_path / "data"
    data.mkdir()
    db = data / "c.duckdb"
    repo = str(Path(__file__).resolve().parents[2])
    killed = subprocess.run([sys.executable, "-c", KILLED_WITH_ITS_LOG, str(config), str(db)],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": repo})
    assert killed.returncode == -9, killed.stderr
    left = data / f".c.duckdb.{int(killed.stdout)}.new"
    log = left.with_name(left.name + ".wal")
    assert left.is_file() and log.is_file() and not db.exists()
    an_hour_ago = time.time() - 3600
    started_since = a_process(tmp_path, holding_a_lock=True)   # (another program's lock)
    holds_none = a_process(tmp_path, holding_a_lock=False)
    writer = a_process(tmp_path, holding_a_lock=True)
    try:
        given_anew = data / f".c.duckdb.{started_since.pid}.new"
        given_anew.write_bytes(left.read_bytes())
        given_anew.with_name(given_anew.name + ".wal").write_bytes(log.read_bytes())
        for path in (given_anew, given_anew.with_name(given_anew.name + ".wal")):
            os.utime(path, (an_hour_ago, an_hour_ago))   # (made by a run killed an hour ago, that PID then)
        no_lock = data / f".c.duckdb.{holds_none.pid}.new"
        writers, another_s = data / f".c.duckdb.{writer.pid}.new", data / f".other.duckdb.{int(killed.stdout)}.new"
        for path in (no_lock, writers, another_s):
            path.write_bytes(b"made")
        harvested = harvest(config, db)
        assert harvested.exit_code == 0, harvested.output
        beside = sorted(p.name for p in data.iterdir() if ".new" in p.name)
    finally:
        for process in (started_since, holds_none, writer):
            process.communicate(b"", timeout=60)
    assert beside == sorted([writers.name, another_s.name]), beside
    assert writers.read_bytes() == another_s.read_bytes() == b"made"
    assert catalogue_id(db)


def test_a_catalogue_beside_with_neither_its_lock_nor_a_read_copy_is_named_not_opened(tmp_path, portal, config,
                                                                                       monkeypatch, caplog):
    """A folder made before one catalogue a folder, shared by two catalogues, one of which has lost both
    its `.lock` and its read copy (removed by hand, or renamed without them): nothing of civicat's says
    it is a catalogue, and unopened it cannot be told from another program's database, which the look
    never opens (a read-only open keeps that program's writes out for the moment). The other still
    adopts the folder, but on main said nothing: that catalogue's records pulls were taken for the
    adopter's without a word. Now a warning names the file, what is taken for whose, and the fix; the
    file is still never opened, its bytes as they were."""
    import hashlib

    from catalog.read_copy import read_copy_path

    data = tmp_path / "data"
    other = data / "civicat.duckdb"
    assert harvest(config, other).exit_code == 0
    made_before_0020(other, data)
    lock_path(other).unlink()
    read_copy_path(other).unlink()
    before = hashlib.sha256(other.read_bytes()).hexdigest()
    opened = files_opened_read_only(monkeypatch)
    adopted = harvest(config, data / "new.duckdb")
    assert adopted.exit_code == 0, adopted.output
    said = " ".join(" ".join(r.getMessage() for r in caplog.records if r.name == "civicat").split())
    assert (f"{other} is a DuckDB file beside new.duckdb with neither a civicat writer's lock file nor a read copy, "
            "so it is not opened") in said, said
    assert "If civicat.duckdb is a civicat catalogue that shared them, move it into a folder of its own" in said
    assert said.count(f"{other} is a DuckDB file beside") == 1   # (once, though the folder is checked twice)
    assert other not in [type(other)(p) for p in opened]
    assert hashlib.sha256(other.read_bytes()).hexdigest() == before
    assert marker(data)["catalogue"] == "new.duckdb"


# another program's DuckDB file put in the place of the one at argv[1] (made beside it, renamed over it)
PUTS_ITS_FILE_THERE = """import duckdb, os, sys
path = sys.argv[1]
beside = path + ".analysis-tool.tmp"
with duckdb.connect(beside) as con:
    con.execute("CREATE TABLE results AS SELECT 42 AS answer")
os.replace(beside, path)
print("replaced")
"""


def test_a_file_another_program_puts_in_the_catalogue_s_place_after_the_writer_s_check_is_never_opened(tmp_path):
    """writer_lock checks the file at the path is a catalogue; open_for_writing then opens the path. On
    main a file another program renamed over the catalogue between the two was opened as the catalogue:
    civicat's migrations added their tables to that program's database. Now the writer opens no file but
    the one it checked (its stat taken before the check): exit 2, that file left as it was put there,
    nothing of civicat's written into it. (The other program is a real process, run in that window.)"""
    import math

    from harvester.cli import Wait, writer_lock

    data = tmp_path / "data"
    db = data / "c.duckdb"
    Store(db).close()   # (the catalogue, as a harvest before left it)
    lock = writer_lock(db, Wait(-math.inf))
    refused_after_another_program_ran(db, lock, PUTS_ITS_FILE_THERE, "replaced",
                                      "c.duckdb was replaced by another file after this run checked it was the "
                                      "catalogue: nothing done, that file left as it is")


def refused_after_another_program_ran(db, lock, script, said, refused):
    """open_for_writing of `db` under `lock` (writer_lock's) once a real process has run `script` (printing `said`)
    in the window after the check: refused (Refused matching `refused`), the lock let go, and that program's file
    (its table `results`) left as it made it, nothing of civicat's written into it."""
    import math
    import subprocess
    import sys

    from harvester.cli import Refused, Wait, open_for_writing

    try:
        ran = subprocess.run([sys.executable, "-c", script, str(db)], capture_output=True, text=True, timeout=120)
        assert (ran.returncode, ran.stdout.strip()) == (0, said), ran.stderr
        with pytest.raises(Refused, match=refused):
            open_for_writing(Store, db, Wait(-math.inf), lock)
    finally:
        lock.release()
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT table_name FROM duckdb_tables()").fetchall() == [("results",)]
        assert con.execute("SELECT answer FROM results").fetchall() == [(42,)]


def test_a_file_put_in_the_catalogue_s_place_after_the_writer_s_check_is_never_copied_as_its_read_copy(tmp_path):
    """A writer brings the read copy up to date (put right, published) before it opens the catalogue: on
    main that read the path, so a file another program renamed over the catalogue after writer_lock's
    check was copied as the catalogue's read copy (readers then read that program's database as the
    catalogue), though the open after it refused the file. Now the copy is made only of the file checked:
    exit 2 as before, the previous read copy kept byte for byte, the other file untouched."""
    import math
    import subprocess
    import sys

    from catalog.read_copy import publish, read_copy_path
    from harvester.cli import Refused, Wait, open_for_writing, writer_lock

    data = tmp_path / "data"
    db = data / "c.duckdb"
    Store(db).close()   # (the catalogue, as a harvest before left it: its read copy published, then stale)
    assert publish(db) is not None
    copy = read_copy_path(db)
    kept = copy.read_bytes()
    lock = writer_lock(db, Wait(-math.inf))
    try:
        ran = subprocess.run([sys.executable, "-c", PUTS_ITS_FILE_THERE, str(db)], capture_output=True, text=True,
                             timeout=120)
        assert (ran.returncode, ran.stdout.strip()) == (0, "replaced"), ran.stderr
        with pytest.raises(Refused, match="c.duckdb was replaced by another file after this run checked it was "
                                          "the catalogue: nothing done, that file left as it is"):
            open_for_writing(Store, db, Wait(-math.inf), lock)
    finally:
        lock.release()
    assert copy.read_bytes() == kept   # (main: a copy of the other program's file)
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT table_name FROM duckdb_tables()").fetchall() == [("results",)]


def backup_of(db):
    """A backup of the catalogue `db` at rest (last night's, say), beside its folder; and its bytes' digest."""
    backup = db.parent.parent / "backup.duckdb"
    shutil.copyfile(db, backup)
    return backup, hashlib.sha256(backup.read_bytes()).hexdigest()


def put_back_as_a_checkpoint_fails(monkeypatch, db, backup) -> list:
    """Every store's checkpoints made to fail (DuckDB's own abort flag: the catalogue invalidated, to be
    attached again), and `backup` put back over `db` by a process of its own as the first fails; what that
    process said, appended to the list returned."""
    from tests.catalog.test_store import put_in_its_place_once_invalidated

    opened = Store.__init__

    def opened_to_fail_its_checkpoints(self, *args, **kwargs):
        opened(self, *args, **kwargs)
        self.con.execute("SET debug_checkpoint_abort = 'before_header'")

    monkeypatch.setattr(Store, "__init__", opened_to_fail_its_checkpoints)
    return put_in_its_place_once_invalidated(monkeypatch, db, backup)


def said_replaced(result, db, when: str) -> str:
    """What a writer whose catalogue file `db` was replaced as it ran said (its output, one space a gap), checked to
    be harvest's refusal (cli.replaced_as_it_ran): the file named, `when` it was found, what to do."""
    said = " ".join(result.output.split())
    assert f"{db} was replaced by another file after this run {when}" in said, said
    assert said.endswith("; this run stopped there: run again once the file at that path is the catalogue to write, "
                         "or give --db a path of its own"), said
    return said


def test_a_harvest_whose_catalogue_is_put_back_from_a_backup_as_it_runs_exits_2_and_writes_nothing_there(
        tmp_path, portal, config, monkeypatch):
    """A harvest's checkpoint fails (DuckDB's own abort flag here: the catalogue invalidated), so the
    store detaches the catalogue and attaches it again; meanwhile another process has put a backup of the
    catalogue back over it (a real process, renaming it there). On main that backup was attached, the
    night's log replayed into it, the checkpoint written there. Now the harvest exits 2 saying the file was
    replaced, the backup byte for byte as it was put there."""

    db = tmp_path / "data" / "c.duckdb"
    assert harvest(config, db).exit_code == 0
    backup, restored = backup_of(db)
    put_back = put_back_as_a_checkpoint_fails(monkeypatch, db, backup)
    result = harvest(config, db, "--full")
    assert put_back == [(0, "replaced", "")], (put_back, result.output, repr(result.exception))
    assert result.exit_code == 2, result.output
    said_replaced(result, db, "opened it as the catalogue (found as it was to be attached again): that file was not "
                              "written")
    assert hashlib.sha256(db.read_bytes()).hexdigest() == restored


def test_the_log_of_a_harvest_whose_catalogue_is_put_back_from_a_backup_is_set_aside_never_replayed_into_it(
        tmp_path, portal, config, monkeypatch):
    """DuckDB names a database's write-ahead log by its path alone: a harvest that found its catalogue replaced by
    a backup (as its checkpoint failed) left its log, what it committed since its last checkpoint, at
    `c.duckdb.wal` beside the backup. On main (s45 merged) the next open of the path, a read-only one too, replayed
    it into the backup (the night's writes the backup was put back to undo: a second run in it; a backup older
    than the run's last checkpoint does not open at all then, DuckDB's "Failure while replaying WAL"). Now that log
    is renamed aside and said; the backup reads as it was put back, and the next harvest adds only its own run."""
    db = tmp_path / "data" / "c.duckdb"
    assert harvest(config, db).exit_code == 0
    backup, restored = backup_of(db)
    put_back = put_back_as_a_checkpoint_fails(monkeypatch, db, backup)
    result = harvest(config, db, "--full")
    assert (put_back, result.exit_code) == ([(0, "replaced", "")], 2), (put_back, result.output)
    monkeypatch.undo()
    aside = list(db.parent.glob("c.duckdb.wal.of-a-replaced-file-*"))
    assert not (db.parent / "c.duckdb.wal").exists()   # (main: this run's log, 2,840 bytes)
    assert len(aside) == 1 and aside[0].stat().st_size > 0, aside
    said = said_replaced(result, db, "opened it as the catalogue (found as it was to be attached again): that file "
                                     "was not written")
    assert (f"this run's log (what it wrote since its last checkpoint) was moved to {aside[0]}, where no open of "
            "that path replays it into the file there; this run stopped there") in said, said

    def runs():
        with duckdb.connect(str(db), read_only=True) as con:
            return con.execute("SELECT count(*) FROM harvest_runs").fetchone()[0]

    assert runs() == 1   # (main: 2, the failed run's replayed into the backup)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == restored
    assert harvest(config, db).exit_code == 0
    assert runs() == 2   # (main: 3)


def test_a_retire_whose_catalogue_is_put_back_from_a_backup_as_it_runs_exits_2_as_a_harvest_does(
        tmp_path, portal, config, monkeypatch):
    """`retire` writes through the store as `harvest` and `records` do: its close's checkpoint failing, a backup put
    back over the catalogue meanwhile, the store refuses that file (CatalogueReplaced). On main (session 45's s45
    merged) harvest and records said so, exit 2, but retire ended in a traceback (exit 1). Now exit 2 with the same
    message, the backup as it was put there."""
    db = tmp_path / "data" / "c.duckdb"
    assert harvest(config, db).exit_code == 0
    other = tmp_path / "other.toml"   # (sea taken out of the config: retired)
    other.write_text(config.read_text().replace('id = "sea"', 'id = "elsewhere"'))
    backup, restored = backup_of(db)
    put_back = put_back_as_a_checkpoint_fails(monkeypatch, db, backup)
    result = invoke("retire", "sea", "--config", str(other), "--db", str(db))
    assert put_back == [(0, "replaced", "")], (put_back, result.output, repr(result.exception))
    assert result.exit_code == 2, (result.output, repr(result.exception))
    said_replaced(result, db, "opened it as the catalogue (found as it was to be attached again): that file was not "
                              "written")
    assert hashlib.sha256(db.read_bytes()).hexdigest() == restored


def overlap_as_the_backup_is_put_back(monkeypatch, db, backup, *, its_close_to_fail=False):
    """`civicat overlap` of `db`, `backup` put back over it by a process of its own once the groups are stored
    (`its_close_to_fail`: and the checkpoint as it closes the catalogue made to fail, DuckDB's own abort flag);
    its result, checked to be exit 2 after that process renamed the backup there."""
    import subprocess
    import sys

    from catalog import overlap as detector
    from tests.catalog.test_store import PUTS_ITS_FILE_IN_ITS_PLACE

    saved, ran = detector.save, []

    def saved_as_the_backup_is_put_back(con, result):
        saved(con, result)
        if its_close_to_fail:
            con.execute("SET debug_checkpoint_abort = 'before_header'")
        done = subprocess.run([sys.executable, "-c", PUTS_ITS_FILE_IN_ITS_PLACE, str(db), str(backup)],
                              capture_output=True, text=True, timeout=120)
        ran.append((done.returncode, done.stdout.strip(), done.stderr))

    monkeypatch.setattr(detector, "save", saved_as_the_backup_is_put_back)
    result = invoke("overlap", "--db", str(db))
    assert ran == [(0, "replaced", "")], (ran, result.output, repr(result.exception))
    assert result.exit_code == 2, (result.output, repr(result.exception))
    return result


def test_an_overlap_whose_catalogue_is_put_back_from_a_backup_as_it_runs_exits_2_and_publishes_no_copy_of_it(
        tmp_path, portal, config, monkeypatch):
    """`overlap` writes its groups through a connection of its own (no store): a backup put back over the catalogue
    as it stores them (a real process renaming it there) took the groups' place. On main (s45 merged) the run
    exited 0 saying the groups were stored, and published the backup as the catalogue's read copy. Now exit 2
    with harvest's message, the read copy left as the last writer made it, the backup untouched."""
    from catalog.read_copy import read_copy_path

    db = tmp_path / "data" / "c.duckdb"
    assert harvest(config, db).exit_code == 0
    copy = read_copy_path(db).read_bytes()
    backup, restored = backup_of(db)
    result = overlap_as_the_backup_is_put_back(monkeypatch, db, backup)
    said_replaced(result, db, "checked it was the catalogue: what this run wrote went into the file that was there, "
                              "not into that one")
    assert read_copy_path(db).read_bytes() == copy   # (main: a copy of the backup)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == restored


# a writer killed (SIGKILL) just after it committed the start of a run: its log left at `<db>.wal`
KILLED_AFTER_ITS_COMMIT = """import os, signal, sys
from datetime import UTC, datetime
from catalog.lock import WriterLock
from catalog.store import Store
WriterLock(sys.argv[1]).acquire()
store = Store(sys.argv[1])   # (kept: a store let go closes its catalogue, checkpointed)
store.start_run("the-killed-run", "sea", datetime.now(UTC))
print("committed", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""

# the user's restore after a crash: the catalogue moved aside, last night's backup put in its place
MOVES_IT_ASIDE_AND_PUTS_BACK = """import os, sys
os.rename(sys.argv[1], sys.argv[1] + ".crashed")
os.rename(sys.argv[2], sys.argv[1])
print("put back")
"""


def runs_named(db, run_id):
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT count(*) FROM harvest_runs WHERE run_id = ?", [run_id]).fetchone()[0]


def a_killed_writer_s_log_beside_a_backup_put_back(config, db):
    """A catalogue harvested at `db`, its backup taken, harvested again (a checkpoint after the backup), then a
    writer killed after a commit (its log at `<db>.wal`) and the user's restore: the catalogue moved aside as
    `<db>.crashed`, the backup put in its place (real processes)."""
    import subprocess
    import sys

    assert harvest(config, db).exit_code == 0
    backup, _ = backup_of(db)
    assert harvest(config, db).exit_code == 0   # (the catalogue's next checkpoint: the backup is from before it)
    killed = subprocess.run([sys.executable, "-c", KILLED_AFTER_ITS_COMMIT, str(db)], capture_output=True, text=True,
                            timeout=120)
    assert (killed.returncode, killed.stdout) == (-9, "committed\n"), killed.stderr
    put_back = subprocess.run([sys.executable, "-c", MOVES_IT_ASIDE_AND_PUTS_BACK, str(db), str(backup)],
                              capture_output=True, text=True, timeout=120)
    assert (put_back.returncode, put_back.stdout) == (0, "put back\n"), put_back.stderr


def test_the_log_of_a_killed_writer_beside_a_backup_put_back_after_it_is_set_aside_not_overwritten(
        tmp_path, portal, config, caplog):
    """A writer is killed after a commit (its log, `c.duckdb.wal`, holds it); the user moves the catalogue aside
    and puts back last night's backup, from before the catalogue's last checkpoint. DuckDB 1.5 refuses a log
    written at another checkpoint of the file ("Failure while replaying WAL …: the WAL checkpoint iteration does
    not match the database file"): on main the next harvest exited 2 with it, and so would every one until the
    user took the log away. Now the writer moves it to `c.duckdb.wal.of-a-replaced-file-…`, says so, and runs:
    that log beside the catalogue moved aside reads the killed writer's commit. (Real processes: the writer
    killed, the backup put back.)"""
    db = tmp_path / "data" / "c.duckdb"
    a_killed_writer_s_log_beside_a_backup_put_back(config, db)
    log = db.with_name("c.duckdb.wal")
    written = log.read_bytes()
    assert written
    result = harvest(config, db)
    assert result.exit_code == 0, result.output
    aside = list(db.parent.glob("c.duckdb.wal.of-a-replaced-file-*"))
    # (main: exit 2, DuckDB's "Failure while replaying WAL …: the WAL checkpoint iteration does not match the
    # database file", the catalogue unopened until the log is taken away; a log DuckDB passes over unreplayed,
    # another database's, was overwritten by the next write)
    assert len(aside) == 1 and aside[0].read_bytes() == written, (aside, result.output)
    said = " ".join(" ".join(r.getMessage() for r in caplog.records if r.name == "civicat").split())
    assert f"{log} is not the log of the file at {db}" in said, said
    assert f"moved to {aside[0]}" in said, said
    assert runs_named(db, "the-killed-run") == 0   # (the backup: its own runs, and this harvest's)
    crashed = db.with_name("c.duckdb.crashed")   # (the killed writer's catalogue with its log: its commit there)
    shutil.copyfile(aside[0], crashed.with_name("c.duckdb.crashed.wal"))
    assert runs_named(crashed, "the-killed-run") == 1


def test_the_log_of_an_overlap_whose_close_fails_to_checkpoint_after_its_catalogue_is_put_back_is_set_aside(
        tmp_path, portal, config, monkeypatch):
    """`overlap` writes its groups through a connection of its own; DuckDB checkpoints the catalogue as it closes
    it, and should that checkpoint fail (the disk full; DuckDB's own abort flag here) the log stays at
    `c.duckdb.wal`, DuckDB's name for the path's log. A backup put back over the catalogue as the groups were
    stored (a real process) then had that log beside it: on main (f45 merged) the run exited 2 but left it, and
    the next open of the path, a read-only one too, replayed the groups into the backup. Now the log is set
    aside as harvest's is and named in the message; the backup reads as it was put back."""
    db = tmp_path / "data" / "c.duckdb"
    assert harvest(config, db).exit_code == 0
    store = Store(db)   # (a group an earlier run found, of a dataset since retired: this run deletes it)
    store.con.execute("INSERT INTO overlap_groups VALUES (1, 'gone:abcd-1234', 'Calls', now())")
    store.close()
    backup, restored = backup_of(db)
    result = overlap_as_the_backup_is_put_back(monkeypatch, db, backup, its_close_to_fail=True)
    aside = list(db.parent.glob("c.duckdb.wal.of-a-replaced-file-*"))
    assert not (db.parent / "c.duckdb.wal").exists()   # (main: the overlap's log, beside the backup)
    assert len(aside) == 1 and aside[0].stat().st_size > 0, aside
    said = said_replaced(result, db, "checked it was the catalogue: what this run wrote went into the file that was "
                                     "there, not into that one")
    assert (f"not into that one; this run's log (what it wrote since its last checkpoint) was moved to {aside[0]}, "
            "where no open of that path replays it into the file there; this run stopped there") in said, said
    with duckdb.connect(str(db), read_only=True) as con:   # (main: this run's delete replayed into the backup)
        assert con.execute("SELECT uid FROM overlap_groups").fetchall() == [("gone:abcd-1234",)]
    assert hashlib.sha256(db.read_bytes()).hexdigest() == restored


# another program's database, in an older DuckDB's storage format (DuckDB 1.0's: its log names no database), killed
# after a commit: its log, `<path>.wal`, left beside it
OLDER_FORMAT_KILLED_AFTER_ITS_COMMIT = """import os, signal, sys
import duckdb
con = duckdb.connect(sys.argv[1], config={"storage_compatibility_version": "v1.0.0"})
con.execute("CREATE TABLE readings (station VARCHAR, value DOUBLE)")
con.execute("CHECKPOINT")
con.execute("INSERT INTO readings VALUES ('north', 4.2)")
print("committed", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def an_older_format_log_beside(db):
    """The log of another program's older-format database killed at `db`'s path (a real process), left beside the
    catalogue as the user moves that database aside and puts the catalogue back; the log's bytes."""
    import subprocess
    import sys

    catalogue = db.with_name("c.duckdb.kept")
    db.rename(catalogue)
    killed = subprocess.run([sys.executable, "-c", OLDER_FORMAT_KILLED_AFTER_ITS_COMMIT, str(db)],
                            capture_output=True, text=True, timeout=120)
    assert (killed.returncode, killed.stdout) == (-9, "committed\n"), killed.stderr
    put_back = subprocess.run([sys.executable, "-c", MOVES_IT_ASIDE_AND_PUTS_BACK, str(db), str(catalogue)],
                              capture_output=True, text=True, timeout=120)
    assert (put_back.returncode, put_back.stdout) == (0, "put back\n"), put_back.stderr
    return db.with_name("c.duckdb.wal").read_bytes()


def test_a_log_duckdb_cannot_read_at_all_is_set_aside_by_a_reader_and_the_harvest_after_it_runs(
        tmp_path, portal, config, caplog):
    """A log DuckDB 1.5 cannot replay at all beside the catalogue (an older DuckDB format's, of another database:
    such a log names no database, so DuckDB applies it and fails, "INTERNAL Error: Failure while replaying WAL …").
    On main every reader ended on it in a traceback (exit 1) and every writer too, until the user took the log away.
    Now the reader that meets it first sets it aside as a log DuckDB refuses is (named, with how to read it) and
    reads the catalogue; a harvest in the same process after it runs (the failed open left DuckDB usable)."""
    db = tmp_path / "data" / "c.duckdb"
    assert harvest(config, db).exit_code == 0
    written = an_older_format_log_beside(db)
    caplog.set_level("WARNING", logger="civicat")
    read = invoke("sql", "--db", str(db), "SELECT count(*) AS runs FROM harvest_runs")
    assert read.exit_code == 0, (read.output, read.exception)   # (main: 1, InternalException's traceback)
    assert "runs" in read.output and "1" in read.output, read.output
    [aside] = db.parent.glob("c.duckdb.wal.of-a-replaced-file-*") or [None]
    assert aside is not None and aside.read_bytes() == written and not db.with_name("c.duckdb.wal").exists()
    said = " ".join(" ".join(r.getMessage() for r in caplog.records if r.name == "civicat").split())
    assert f"is not the log of the file at {db} (DuckDB could not read it: " in said, said
    assert "Failure while replaying WAL" in said and f"moved to {aside}" in said, said
    assert harvest(config, db).exit_code == 0
    assert runs_named(db, "the-killed-run") == 0
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM harvest_runs").fetchone()[0] == 2


def test_a_log_duckdb_cannot_read_at_all_is_set_aside_by_the_next_harvest(tmp_path, portal, config, caplog):
    """As above, the next writer first: on main `harvest` ended on DuckDB's INTERNAL error (exit 1, a
    traceback), as every harvest after it would; now it sets the log aside, says so, and harvests."""
    db = tmp_path / "data" / "c.duckdb"
    assert harvest(config, db).exit_code == 0
    written = an_older_format_log_beside(db)
    caplog.set_level("WARNING", logger="civicat")
    result = harvest(config, db)
    assert result.exit_code == 0, (result.output, result.exception)
    [aside] = db.parent.glob("c.duckdb.wal.of-a-replaced-file-*") or [None]
    assert aside is not None and aside.read_bytes() == written
    said = " ".join(" ".join(r.getMessage() for r in caplog.records if r.name == "civicat").split())
    assert f"is not the log of the file at {db} (DuckDB could not read it: " in said, said
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM harvest_runs").fetchone()[0] == 2
    # the database that log was written for reads it, put back beside it
    other = db.with_name("c.duckdb.crashed")
    shutil.copyfile(aside, other.with_name("c.duckdb.crashed.wal"))
    with duckdb.connect(str(other), read_only=True) as con:
        assert con.execute("SELECT * FROM readings").fetchall() == [("north", 4.2)]


@pytest.mark.parametrize("reader", [["runs"], ["search", "calls"], ["sql", "SELECT count(*) FROM harvest_runs"]])
def test_a_catalogue_replaced_twice_as_a_reader_recovers_it_ends_with_a_message_not_a_traceback(
        tmp_path, portal, config, monkeypatch, reader):
    """A reader whose read-only open cannot replay the catalogue's log recovers it under the writer lock, writing
    only the file its open found; a file put at the path meanwhile is opened afresh. Should that one be replaced
    too (a program putting files there still: here a real process renames a copy of the backup over the path at
    each of the reader's two recoveries), main raised CatalogueReplaced out of `runs` and `search` as a traceback
    (exit 1; `sql` said it as a query that failed, exit 1). Now each ends exit 2 naming the file, nothing read or
    written, as a writer does."""
    import subprocess
    import sys

    from tests.catalog.test_store import PUTS_ITS_FILE_IN_ITS_PLACE

    db = tmp_path / "data" / "c.duckdb"
    a_killed_writer_s_log_beside_a_backup_put_back(config, db)   # (its log refused by the backup)
    acquire, ran = WriterLock.acquire, []

    def taken_as_another_copy_is_put_there(self):
        acquire(self)
        another = tmp_path / f"copy-{len(ran)}.duckdb"
        shutil.copyfile(db, another)
        done = subprocess.run([sys.executable, "-c", PUTS_ITS_FILE_IN_ITS_PLACE, str(db), str(another)],
                              capture_output=True, text=True, timeout=120)
        ran.append((done.returncode, done.stdout.strip()))

    monkeypatch.setattr(WriterLock, "acquire", taken_as_another_copy_is_put_there)
    log = db.with_name("c.duckdb.wal").read_bytes()
    read = invoke(reader[0], "--db", str(db), *reader[1:])
    assert ran == [(0, "replaced"), (0, "replaced")]
    assert read.exit_code == 2, (read.output, read.exception)   # (main: 1, CatalogueReplaced's traceback; sql's said)
    said = " ".join(read.output.split())
    assert f"Error: {db} was replaced by another file after this run checked it was the catalogue, twice as this " \
           "reader recovered it" in said, said
    assert "nothing read, nothing written; run again once the file there stays" in said
    assert db.with_name("c.duckdb.wal").read_bytes() == log   # (left for the file it was written for)
