"""A --db that is a DuckDB file but no civicat catalogue (another program's database, an empty
one, a catalogue a newer civicat migrated): each command says so, before anything is done, and
the file is left as it was."""
import json

import duckdb
import pytest

from catalog.lock import lock_path
from catalog.read_copy import read_copy_path
from catalog.store import Store
from tests.harvester.test_cli_new_user import invoke
from tests.portals.dcat import DataJsonPortal
from tests.portals.synth import make_data_json


@pytest.fixture
def portal():
    """The portal of the config the commands are given: never asked (each is refused first)."""
    with DataJsonPortal(make_data_json(3)) as served:
        yield served


def write_config(path, url):
    path.write_text(f'[[portals]]\nid = "city"\ncity = "City"\nkind = "dcat-us"\nurl = "{url}"\n')
    return path


def another_program_s(db):
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE sales (id INTEGER, amount DOUBLE)")
    con.execute("INSERT INTO sales VALUES (1, 2.5)")
    con.execute("CREATE VIEW big_sales AS SELECT * FROM sales WHERE amount > 2")
    con.close()


def another_tool_s_migrations(db):
    """A table named as civicat's, of another migration tool (Rails' shape)."""
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE schema_migrations (version VARCHAR PRIMARY KEY)")
    con.execute("INSERT INTO schema_migrations VALUES ('20240101000000')")
    con.close()


def another_tool_s_numbered_migrations(db):
    """A table named and shaped as civicat's, of another tool: its first migration is not civicat's."""
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL)")
    con.execute("INSERT INTO schema_migrations VALUES (20240101, 'create_users')")
    con.close()


def another_tool_s_migrations_none_yet(db):
    """A table named and shaped as civicat's, of another tool, nothing recorded in it yet, beside that
    tool's tables (taken for civicat's: `overlap` migrated the database, adding civicat's tables)."""
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL)")
    con.execute("CREATE TABLE users (id INTEGER)")
    con.close()


def a_first_harvest_cut_short(db):
    """What catalog.store.migrate leaves when killed before the first migration committed: its
    record, empty (taken for a catalogue: `runs` and `search` a traceback)."""
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
                "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
    con.close()


def empty_duckdb(db):
    duckdb.connect(str(db)).close()


COMMANDS = [["harvest"], ["harvest", "--records"], ["overlap"], ["retire", "gone"], ["records", "city:ds-1"],
            ["export", "--out", "OUT"], ["runs"], ["sql", "SELECT count(*) FROM sales"], ["search", "permits"],
            ["similar", "city:ds-1"]]


def run(command, db, config, tmp_path, *extra):
    config_given = ["--config", str(config)] if command[0] in ("harvest", "retire", "records", "export") else []
    return invoke(*[str(tmp_path / "out") if arg == "OUT" else arg for arg in command], "--db", str(db),
                  *config_given, *extra)


def left_as_it_was(tmp_path, db):
    return sorted(p.name for p in tmp_path.iterdir()), db.read_bytes()


def assert_refused_and_left_as_it_was(command, db, tmp_path, portal, message):
    """`command` on `db` exits 2 with `message`, the file and its folder as they were, nothing requested."""
    config = write_config(tmp_path / "portals.toml", portal.url + "/data.json")
    before = left_as_it_was(tmp_path, db)
    result = run(command, db, config, tmp_path)
    assert (result.exit_code, result.output) == (2, f"Error: {message}\n")
    assert left_as_it_was(tmp_path, db) == before   # (no table added, no lock, no read copy, no export)
    assert sum(portal.hits.values()) == 0


@pytest.mark.parametrize("make, lacks, holds", [
    (another_program_s, "it has no civicat migration record (table schema_migrations)",
     "2 tables of another program's (big_sales, sales)"),
    (another_tool_s_migrations, "its table schema_migrations is not civicat's record of its migrations",
     "1 table of another program's (schema_migrations)"),
    (another_tool_s_numbered_migrations, "its table schema_migrations is not civicat's record of its migrations",
     "1 table of another program's (schema_migrations)"),
    (another_tool_s_migrations_none_yet, "its table schema_migrations is not civicat's record of its migrations",
     "2 tables of another program's (schema_migrations, users)")])
@pytest.mark.parametrize("command", COMMANDS)
def test_another_program_s_duckdb_file_is_refused_naming_what_it_lacks_and_is_left_as_it_was(
        tmp_path, portal, command, make, lacks, holds):
    """On main: `runs`, `similar` a traceback (exit 1, "Table with name harvest_runs does not exist"),
    `sql` read the other program's table, `overlap`, `retire`, `records` and `export` added civicat's
    tables to it (and left a lock and a read copy beside it), `harvest` harvested into it."""
    db = tmp_path / "other.duckdb"
    make(db)
    assert_refused_and_left_as_it_was(
        command, db, tmp_path, portal, f"{db} is a DuckDB database but no civicat catalogue: {lacks}; it holds "
                                       f"{holds}. --db names civicat's catalogue, and civicat adds no table to another "
                                       "program's database")


def test_another_program_s_duckdb_file_is_a_json_log_line_with_log_format_json(tmp_path):
    db = tmp_path / "other.duckdb"
    another_program_s(db)
    result = invoke("--log-format", "json", "runs", "--db", str(db))
    assert result.exit_code == 2, result.output
    line = json.loads(result.output)
    assert line["exit_code"] == 2 and line["message"].startswith(f"{db} is a DuckDB database but no civicat catalogue")


def test_another_program_s_file_held_by_a_writer_lock_taken_before_is_refused_and_the_lock_kept(tmp_path):
    """The lock file is taken away only when the refused command made it: one that was there
    (another civicat's, that same moment) stays."""
    db = tmp_path / "other.duckdb"
    another_program_s(db)
    lock_path(db).write_text("")
    result = invoke("overlap", "--db", str(db))
    assert result.exit_code == 2 and "no civicat catalogue" in result.output
    assert lock_path(db).exists() and not read_copy_path(db).exists()


@pytest.mark.parametrize("make", [empty_duckdb, a_first_harvest_cut_short])
@pytest.mark.parametrize("command", [c for c in COMMANDS if c[0] != "harvest"])
def test_an_empty_duckdb_file_is_no_catalogue_yet_for_every_command_but_harvest(tmp_path, portal, command, make):
    db = tmp_path / "new.duckdb"
    make(db)
    assert_refused_and_left_as_it_was(command, db, tmp_path, portal, f"{db} is an empty DuckDB database, no civicat "
                                      "catalogue yet: run `civicat harvest` first (it makes the catalogue there)")


@pytest.mark.parametrize("make", [empty_duckdb, a_first_harvest_cut_short])
def test_an_empty_duckdb_file_is_where_a_first_harvest_makes_the_catalogue(tmp_path, portal, make):
    """A guard (passes on main): an empty DuckDB file is how a first harvest may start, and one cut
    short before its first migration committed goes on from there."""
    config = write_config(tmp_path / "portals.toml", portal.url + "/data.json")
    db = tmp_path / "new.duckdb"
    make(db)
    result = invoke("harvest", "--config", str(config), "--db", str(db))
    assert result.exit_code == 0, result.output
    runs = invoke("runs", "--db", str(db), "--json")
    assert runs.exit_code == 0 and [r["seen"] for r in json.loads(runs.output)] == [3]
    assert invoke("sql", "SELECT count(*) AS n FROM datasets", "--db", str(db), "--json").output.count('"n": 3') == 1


def test_a_catalogue_that_ran_a_migration_since_reverted_is_still_civicat_s(tmp_path):
    """A guard: 0014_search_fields was shipped, then reverted (0014 is another migration now): a
    catalogue that recorded it is civicat's all the same."""
    db = tmp_path / "c.duckdb"
    Store(db).close()
    con = duckdb.connect(str(db))
    con.execute("UPDATE schema_migrations SET name = 'search_fields' WHERE version = 14")
    con.close()
    result = invoke("runs", "--db", str(db), "--json")
    assert (result.exit_code, json.loads(result.output)) == (0, [])


def test_a_catalogue_and_its_read_copy_are_still_read(tmp_path, portal):
    """A guard (passes on main): a civicat catalogue, and its read copy given as --db, are read."""
    config = write_config(tmp_path / "portals.toml", portal.url + "/data.json")
    db = tmp_path / "c.duckdb"
    assert invoke("harvest", "--config", str(config), "--db", str(db)).exit_code == 0
    for given in (db, read_copy_path(db)):
        result = invoke("sql", "SELECT count(*) AS n FROM datasets", "--db", str(given), "--json")
        assert (result.exit_code, json.loads(result.output)) == (0, [{"n": 3}])


@pytest.fixture
def newer(tmp_path):
    """A catalogue a newer civicat migrated (a migration this one does not ship)."""
    db = tmp_path / "c.duckdb"
    Store(db).close()
    con = duckdb.connect(str(db))
    con.execute("INSERT INTO schema_migrations (version, name) VALUES (9999, 'from_the_future')")
    con.close()
    return db


@pytest.mark.parametrize("command", [["harvest"], ["overlap"], ["retire", "gone"], ["records", "city:ds-1"]])
def test_a_catalogue_a_newer_civicat_migrated_keeps_every_writer_out_unaltered(tmp_path, portal, newer, command):
    """A guard (passes on main: the writers refused it already, and left the file as it was)."""
    config = write_config(tmp_path / "portals.toml", portal.url + "/data.json")
    before = newer.read_bytes()
    result = run(command, newer, config, tmp_path)
    assert result.exit_code == 2, result.output
    assert (f"Error: cannot open the catalogue {newer}: {newer} was migrated by a newer civicat (9999_from_the_future; "
            "this one knows up to ") in result.output and "nothing was written" in result.output
    assert newer.read_bytes() == before and sum(portal.hits.values()) == 0


def test_a_catalogue_a_newer_civicat_migrated_is_read_with_a_warning(newer, caplog):
    """A guard (passes on main): readers read it as this civicat knows it (README, "The catalogue")."""
    before = newer.read_bytes()
    result = invoke("runs", "--db", str(newer), "--json")
    assert (result.exit_code, json.loads(result.output)) == (0, [])
    assert "was migrated by a newer civicat (9999_from_the_future" in caplog.text
    assert newer.read_bytes() == before
