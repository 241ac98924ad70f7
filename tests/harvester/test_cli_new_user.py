"""A new user's first commands (session 37's leftovers): a --db that is no catalogue, export's
formats as a comma list, `-V` and `help`, the offline demo's catalogue pulled from the default
config's live portals. Each said plainly, before anything is done."""
import json
import shutil
import sqlite3

import duckdb
import pytest
from click.testing import CliRunner

from catalog.read_copy import read_copy_path
from harvester.cli import cli
from tests.conftest import as_in_a_test
from tests.portals.dcat import DataJsonPortal
from tests.portals.socrata import SocrataPortal, SodaTable, discovery_entry
from tests.portals.synth import make_data_json


def invoke(*args):
    return CliRunner().invoke(cli, list(args), prog_name="civicat")


@pytest.fixture
def portal():
    with DataJsonPortal(make_data_json(3)) as p:
        yield p


def write_config(path, portal_id, kind, url, domain=None):
    path.write_text(f'[[portals]]\nid = "{portal_id}"\ncity = "City"\nkind = "{kind}"\nurl = "{url}"\n'
                    + (f'domain = "{domain}"\n' if domain else ""))
    return path


README = "# civicat\n\nA federated open-data catalogue harvester.\n"


def _text(path):
    path.write_text(README)


def _empty(path):
    path.write_bytes(b"")


def _sqlite(path):
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()


def _bytes(path):
    path.write_bytes(bytes(range(256)) * 20)


@pytest.mark.parametrize("make, what", [
    (_text, "a text file (its first line: '# civicat')"), (_empty, "an empty file"), (_sqlite, "an SQLite database"),
    (_bytes, "a file of 5120 bytes that does not start as a DuckDB database does")])
@pytest.mark.parametrize("command", [["harvest"], ["harvest", "--records"], ["overlap"], ["retire", "gone"],
                                     ["records", "city:ds-1"], ["export", "--out", "OUT"], ["runs"],
                                     ["sql", "SELECT 1"], ["search", "permits"], ["similar", "city:ds-1"]])
def test_a_db_that_is_no_duckdb_file_is_refused_naming_what_it_is_and_nothing_is_left_behind(
        tmp_path, portal, monkeypatch, command, make, what):
    """`civicat harvest --db README.md` warned "the read copy README.read.md was not refreshed",
    left README.md.lock, then said DuckDB's "exists, but it is not a valid DuckDB database file"
    (with the file's absolute path): neither what the file is nor what --db is for."""
    monkeypatch.chdir(tmp_path)
    config = write_config(tmp_path / "portals.toml", "city", "dcat-us", portal.url + "/data.json")
    db = tmp_path / "README.md"
    make(db)
    before = sorted(p.name for p in tmp_path.iterdir()), db.read_bytes()
    extra = ["--config", str(config)] if command[0] in ("harvest", "retire", "records", "export") else []
    result = invoke(*[str(tmp_path / "out") if arg == "OUT" else arg for arg in command], "--db", "README.md", *extra)
    assert result.exit_code == 2, result.output
    assert result.output == (f"Error: --db README.md is not a DuckDB catalogue: it is {what}; --db names the "
                             "catalogue's DuckDB file (default data/civicat.duckdb; the first harvest makes it)\n")
    assert (sorted(p.name for p in tmp_path.iterdir()), db.read_bytes()) == before   # (no lock, no copy, no export)
    assert sum(portal.hits.values()) == 0


def test_a_db_that_is_no_duckdb_file_is_a_json_log_line_with_log_format_json(tmp_path):
    db = tmp_path / "notes.txt"
    db.write_text("notes\n")
    result = invoke("--log-format", "json", "harvest", "--db", str(db))
    assert result.exit_code == 2, result.output
    line = json.loads(result.output)
    assert line["exit_code"] == 2 and line["message"].startswith(f"--db {db} is not a DuckDB catalogue: it is a "
                                                                 "text file (its first line: 'notes')")


def test_a_db_that_is_a_duckdb_file_or_none_is_still_harvested(tmp_path, portal):
    """A guard: the check lets through a catalogue that is not there yet and one that is."""
    config = write_config(tmp_path / "portals.toml", "city", "dcat-us", portal.url + "/data.json")
    db = tmp_path / "new" / "c.duckdb"
    for _ in range(2):
        result = invoke("harvest", "--config", str(config), "--db", str(db))
        assert result.exit_code == 0, result.output
    assert read_copy_path(db).exists()


@pytest.fixture(scope="module")
def harvested_folder(tmp_path_factory):
    """A folder as `civicat harvest` of one portal (make_data_json(3)) leaves it, harvested once a
    module (each worker's)."""
    folder = tmp_path_factory.mktemp("harvested")
    with as_in_a_test(), DataJsonPortal(make_data_json(3)) as portal:
        config = write_config(folder / "portals.toml", "city", "dcat-us", portal.url + "/data.json")
        assert invoke("harvest", "--config", str(config), "--db", str(folder / "c.duckdb")).exit_code == 0
    return folder


@pytest.fixture
def harvested(tmp_path, portal, harvested_folder):
    """A catalogue of one harvested portal (a copy of harvested_folder's: the same catalogue, as a backup
    restored, in a folder of its own); its config, naming `portal`, which serves what it was harvested from."""
    shutil.copytree(harvested_folder, tmp_path, dirs_exist_ok=True)
    return tmp_path / "c.duckdb", write_config(tmp_path / "portals.toml", "city", "dcat-us", portal.url + "/data.json")


@pytest.mark.parametrize("formats", [["--format", "parquet,data.json"], ["--format", "data.json, parquet"],
                                     ["--format", "parquet", "--format", "data.json"],
                                     ["--format", "parquet,data.json", "--format", "parquet"]])
def test_export_takes_its_formats_as_a_comma_list_or_repeated(harvested, tmp_path, formats):
    """`export --format parquet,data.json` was click's "'parquet,data.json' is not one of 'parquet',
    'data.json'", not saying how to ask for both."""
    db, config = harvested
    out = tmp_path / "export"
    result = invoke("export", "--db", str(db), "--config", str(config), "--out", str(out), *formats, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert {"parquet", "data.json"} <= set(report) and report["parquet"]["row_counts"]["datasets"] == 3
    assert (out / "manifest.json").exists() and len(json.loads((out / "data.json").read_text())["dataset"]) == 3


@pytest.mark.parametrize("given, said", [
    ("csv", "'csv' is not one of 'parquet', 'data.json'"),
    ("parquet,csv", "'csv' in 'parquet,csv' is not one of 'parquet', 'data.json'"),
    ("parquet;data.json", "'parquet;data.json' is not one of 'parquet', 'data.json'"),
    ("parquet,", "'' in 'parquet,' is not one of 'parquet', 'data.json'")])
def test_an_export_format_that_is_none_says_how_to_ask_for_both(harvested, tmp_path, given, said):
    db, config = harvested
    out = tmp_path / "export"
    result = invoke("export", "--db", str(db), "--out", str(out), "--format", given)
    assert result.exit_code == 2, result.output
    assert (f"Error: Invalid value for '--format': {said} (for both: --format parquet,data.json, or --format "
            "twice)") in result.output
    assert not out.exists()


def test_dash_capital_v_is_the_version_and_dash_h_the_help():
    """`civicat -V` (and `-h`) was "No such option"."""
    version = invoke("--version")
    assert version.exit_code == 0 and version.output.startswith("civicat, version ")
    assert invoke("-V").output == version.output and invoke("-V").exit_code == 0
    assert invoke("-h").output == invoke("--help").output and invoke("-h").exit_code == 0
    assert invoke("runs", "-h").output == invoke("runs", "--help").output
    after = invoke("runs", "-V")
    assert after.exit_code == 2 and "-V is an option of civicat itself: it goes before the command" in after.output


def test_help_is_the_help_and_help_command_the_command_s():
    """`civicat help` and `civicat help harvest` were "No such command 'help'"."""
    group_help = invoke("--help")
    assert invoke("help").output == group_help.output and invoke("help").exit_code == 0
    assert "`civicat help COMMAND` (or `civicat COMMAND --help`): a command's options." in group_help.output
    assert "\n  help " not in group_help.output   # (not one of the commands listed: it is --help)
    for command in ("harvest", "export", "records"):
        shown = invoke("help", command)
        assert shown.exit_code == 0 and shown.output == invoke(command, "--help").output
        assert shown.output.startswith(f"Usage: civicat {command} [OPTIONS]")
    wrong = invoke("help", "harvst")
    assert wrong.exit_code == 2
    assert ("Error: No such command 'harvst' (did you mean 'harvest'?): civicat's commands are export, harvest, "
            "overlap, records, retire, runs, search, similar, sql") in wrong.output


@pytest.mark.parametrize("command", [["harvest"], ["runs"], ["overlap"], ["export", "--out", "x"],
                                     ["harvest", "--full"], ["runs", "--json"]])
def test_help_after_a_command_that_takes_no_argument_says_how_to_ask_for_its_help(tmp_path, command):
    """`civicat harvest help` was click's "Got unexpected extra argument (help)"."""
    db = tmp_path / "c.duckdb"
    result = invoke(*command, "help", "--db", str(db))
    assert result.exit_code == 2, result.output
    name = command[0]
    assert (f"Error: {name} takes no argument, and `help` is none of its options: for its help, civicat {name} "
            f"--help (or civicat help {name})\n") in result.output
    assert not db.exists()


def test_help_as_an_option_s_value_or_after_double_dash_is_read_as_before(tmp_path, portal):
    """A guard: `--portal help` names a portal, `-- help` is an argument (refused by click as before)."""
    config = write_config(tmp_path / "portals.toml", "city", "dcat-us", portal.url + "/data.json")
    result = invoke("harvest", "--portal", "help", "--config", str(config), "--db", str(tmp_path / "c.duckdb"))
    assert result.exit_code == 2 and "no portal with id 'help'" in result.output, result.output
    result = invoke("runs", "--db", str(tmp_path / "c.duckdb"), "--", "help")
    assert result.exit_code == 2 and "Got unexpected extra argument (help)" in result.output, result.output


def test_a_portal_named_help_is_still_a_portal(tmp_path, portal):
    """A guard: `help` is a command only where a command is named; a portal of that id is
    harvested, and retired, as any."""
    config = write_config(tmp_path / "portals.toml", "help", "dcat-us", portal.url + "/data.json")
    db = tmp_path / "c.duckdb"
    assert invoke("harvest", "--config", str(config), "--db", str(db), "--portal", "help").exit_code == 0
    config.write_text(config.read_text().replace('id = "help"', 'id = "city"'))
    result = invoke("retire", "help", "--config", str(config), "--db", str(db))
    assert result.exit_code == 0 and result.output.startswith("help: 3 datasets marked removed"), result.output


def test_an_option_before_the_command_still_says_every_command_takes_it():
    """A guard: `help` is no command of the group's list, so --db is still "an option of every command"."""
    result = invoke("--db", "x.duckdb", "runs")
    assert result.exit_code == 2 and "--db is an option of the command: it goes after it" in result.output


VIEWS = [{"id": "abcd-0001", "name": "Calls", "category": "Public Safety",
          "columns": [{"fieldName": "n", "dataTypeName": "number"}]}]


@pytest.fixture
def socrata():
    """Two Socrata portals of one domain's catalogue: the recorded one (the demo's) and the live one."""
    def serve():
        return SocrataPortal([discovery_entry(v, "data.example.org") for v in VIEWS], domain="data.example.org",
                             records={"abcd-0001": SodaTable.from_rows([{"n": str(i)} for i in range(30)])})
    with serve() as demo, serve() as live:
        yield demo, live


def test_records_of_a_catalogue_harvested_with_another_config_entry_are_refused_naming_the_config(
        tmp_path, socrata, monkeypatch):
    """The offline demo's catalogue with the default config (`civicat records seattle:3k2p-39jp --db
    data/demo.duckdb`) pulled live Seattle's records into it: the config's `seattle` is not the
    portal the demo's datasets came from. Refused, naming the config beside the catalogue whose
    entry it is; nothing requested of either portal."""
    demo, live = socrata
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    demo_config = write_config(tmp_path / "data" / "demo.toml", "sea", "socrata", demo.url, "data.example.org")
    live_config = write_config(tmp_path / "g7.toml", "sea", "socrata", live.url, "data.example.org")
    db = tmp_path / "data" / "demo.duckdb"
    assert invoke("harvest", "--config", str(demo_config), "--db", str(db)).exit_code == 0
    hits = sum(demo.hits.values()), sum(live.hits.values())
    runs = invoke("runs", "--db", str(db), "--json").output

    result = invoke("records", "sea:abcd-0001", "--config", str(live_config), "--db", str(db))
    assert result.exit_code == 2, result.output
    assert result.output == (
        f"Error: {db} holds datasets of sea listed from another address, domain or city than {live_config} gives "
        f"(sea is {live.url} (domain data.example.org)): records pulled from there would be another portal's; "
        f"harvested with {demo_config}? pass it: --config {demo_config}\n")
    assert (sum(demo.hits.values()), sum(live.hits.values())) == hits
    assert invoke("runs", "--db", str(db), "--json").output == runs   # (no run recorded)

    demo_config.unlink()   # (no config beside it: the ways out said)
    result = invoke("records", "sea:abcd-0001", "--config", str(live_config), "--db", str(db))
    assert result.exit_code == 2, result.output
    assert result.output.endswith(
        "records pulled from there would be another portal's; pass the config the catalogue was harvested with "
        f"(--config), or harvest with this one first (civicat harvest --config {live_config} --db {db} --portal sea)\n")
    assert (sum(demo.hits.values()), sum(live.hits.values())) == hits


def test_records_of_the_overlap_groups_skip_a_portal_moved_in_the_config_and_pull_the_others(tmp_path, socrata):
    """`records --overlap` (cron's, after the harvest) with one grouped portal's entry moved in the config
    and not harvested from there yet (its harvest failed, say) exited 2 pulling nothing, every other
    portal's grouped datasets held up by it. Its datasets are skipped now, named on stderr with the
    refusal's words; the others are pulled. A UID of it named on the command line is refused as before."""
    demo, live = socrata
    entries = (f'[[portals]]\nid = "sea"\ncity = "City"\nkind = "socrata"\nurl = "{demo.url}"\ndomain = "data.example.org"\n\n'
               f'[[portals]]\nid = "oth"\ncity = "Other"\nkind = "socrata"\nurl = "{live.url}"\ndomain = "data.example.org"\n')
    harvested, moved = tmp_path / "harvested.toml", tmp_path / "moved.toml"
    harvested.write_text(entries)
    moved.write_text(entries.replace(f'url = "{demo.url}"', 'url = "http://127.0.0.1:9/moved"'))
    db = tmp_path / "c.duckdb"
    assert invoke("harvest", "--config", str(harvested), "--db", str(db)).exit_code == 0
    con = duckdb.connect(str(db))
    con.execute("INSERT INTO overlap_groups VALUES (1, 'sea:abcd-0001', 'x', now()), (1, 'oth:abcd-0001', 'x', now())")
    con.close()
    demo_hits = sum(demo.hits.values())

    result = invoke("records", "--overlap", "--json", "--config", str(moved), "--db", str(db))
    assert result.exit_code == 0, result.output
    assert [(r["uid"], r["status"], r["rows"]) for r in json.loads(result.stdout)] == [("oth:abcd-0001", "ok", 30)]
    assert result.stderr.startswith(f"skipped 1 grouped dataset of sea: {db} holds datasets of sea listed from another "
                                    f"address, domain or city than {moved} gives"), result.stderr
    assert sum(demo.hits.values()) == demo_hits
    named = invoke("records", "sea:abcd-0001", "--overlap", "--config", str(moved), "--db", str(db))
    assert named.exit_code == 2 and named.output.startswith(f"Error: {db} holds datasets of sea"), named.output


def test_records_with_the_config_the_catalogue_was_harvested_with_are_pulled(tmp_path, socrata):
    """A guard: the demo's own config pulls (its entry's url the one listed); so does the other
    config, once the catalogue is harvested with it."""
    demo, live = socrata
    demo_config = write_config(tmp_path / "demo.toml", "sea", "socrata", demo.url, "data.example.org")
    live_config = write_config(tmp_path / "live.toml", "sea", "socrata", live.url, "data.example.org")
    db = tmp_path / "c.duckdb"
    assert invoke("harvest", "--config", str(demo_config), "--db", str(db)).exit_code == 0
    result = invoke("records", "sea:abcd-0001", "--config", str(demo_config), "--db", str(db), "--json")
    assert result.exit_code == 0, result.output
    assert [(r["uid"], r["status"], r["rows"]) for r in json.loads(result.output)] == [("sea:abcd-0001", "ok", 30)]
    assert invoke("harvest", "--config", str(live_config), "--db", str(db)).exit_code == 0
    live_hits = sum(live.hits.values())
    result = invoke("records", "sea:abcd-0001", "--config", str(live_config), "--db", str(db), "--full", "--json")
    assert result.exit_code == 0, result.output
    assert sum(live.hits.values()) > live_hits


@pytest.fixture
def portal_without_contacts():
    document = make_data_json(3)
    for dataset in document["dataset"]:
        dataset.pop("contactPoint", None)   # (the config's contact_email fills it in, as the README's)
    with DataJsonPortal(document) as p:
        yield p


def test_data_json_of_a_catalogue_exported_with_another_config_names_the_one_it_was_harvested_with(
        tmp_path, portal_without_contacts, monkeypatch):
    """The offline demo's `export --db data/demo.duckdb --format data.json` without `--config
    data/demo.toml` said of boston-2013, evian, giessen-311 "not in configs/g7.toml ...: put the
    entry back, or `civicat retire` a portal gone for good": advice for a portal taken out of the
    config, where the config was the wrong one. Now it names the config beside the catalogue that
    holds them; without one, the advice is as before."""
    portal = portal_without_contacts
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    demo_config = tmp_path / "data" / "demo.toml"
    demo_config.write_text(f'[[portals]]\nid = "city"\ncity = "City"\nkind = "dcat-us"\nurl = "{portal.url}/data.json"\n'
                           f'contact_email = "open@example.org"\n')
    other_config = write_config(tmp_path / "g7.toml", "elsewhere", "dcat-us", portal.url + "/data.json")
    db = tmp_path / "data" / "demo.duckdb"
    assert invoke("harvest", "--config", str(demo_config), "--db", str(db)).exit_code == 0
    for config, out in ((demo_config, "right"), (other_config, "wrong")):
        result = invoke("export", "--db", str(db), "--config", str(config), "--out", out, "--format", "data.json",
                        "--json")
        assert result.exit_code == 0, result.output
    written = {out: len(json.loads((tmp_path / out / "data.json").read_text())["dataset"]) for out in ("right", "wrong")}
    assert written == {"right": 3, "wrong": 0}   # (the contact the demo's config gives)
    assert (f"data.json: city (3 left out): not in {other_config}, so without the contact its entry gave: harvested "
            f"with {demo_config}? pass it: --config {demo_config}\n") in result.stderr
    demo_config.unlink()
    result = invoke("export", "--db", str(db), "--config", str(other_config), "--out", "wrong", "--format", "data.json")
    assert result.exit_code == 0, result.output
    assert (f"data.json: city (3 left out): not in {other_config}, so without the contact its entry gave: put the "
            "entry back, or `civicat retire` a portal gone for good\n") in result.stderr


def test_a_search_of_a_catalogue_whose_every_harvest_failed_says_it_holds_no_dataset(tmp_path, portal):
    """The quickstart offline: every portal fails, and the README's next line, `civicat search
    "building permits" --city Chicago`, exited 2 under a usage line with "'Chicago' is no city or
    portal id of the catalogue's datasets (those known: none)", blaming the city."""
    config = write_config(tmp_path / "portals.toml", "city", "dcat-us", "http://127.0.0.1:1/data.json")
    db = tmp_path / "c.duckdb"
    assert invoke("harvest", "--config", str(config), "--db", str(db)).exit_code == 1
    said = (f"no dataset matches 'building permits': the catalogue holds no dataset yet (`civicat runs --db {db}`: "
            "what its harvests did)\n")
    for filters in ([], ["--city", "Chicago"], ["--theme", "Housing"]):
        result = invoke("search", "building permits", "--db", str(db), *filters)
        assert (result.exit_code, result.output) == (0, said)
        result = invoke("search", "building permits", "--db", str(db), *filters, "--json")
        assert (result.exit_code, json.loads(result.output)) == (0, [])
    typo = invoke("search", "building permits", "--db", str(db), "--type", "datset")
    assert typo.exit_code == 2 and "'datset' is no asset type civicat or the catalogue knows" in typo.output


def test_a_city_a_catalogue_with_datasets_does_not_know_is_still_refused(harvested):
    """A guard: a catalogue that holds datasets names the cities it knows."""
    db, _ = harvested
    result = invoke("search", "permits", "--db", str(db), "--city", "Chicago")
    assert result.exit_code == 2 and "'Chicago' is no city or portal id of the catalogue's datasets (those known: " \
        "city)" in result.output


def test_every_command_s_summary_in_civicat_help_is_whole_at_80_columns():
    """Session 42: at 80 columns `civicat --help` cut six of nine summaries mid-sentence ('retire  Mark every
    dataset of a portal taken out of the config removed...', 'overlap  (Re)compute comparable datasets across
    cities and print the...'), retire's saying the opposite of what it does."""
    result = CliRunner().invoke(cli, ["--help"], prog_name="civicat", terminal_width=80)
    assert result.exit_code == 0, result.output
    listed = result.output.split("Commands:\n")[1].split("\n\n")[0].splitlines()
    assert len(listed) == len(cli.commands) and all(len(line) <= 80 for line in listed)
    assert [line for line in listed if line.endswith("...")] == []
    for line in listed:   # (each the first sentence of its command's own help, whole)
        name, summary = line.split(maxsplit=1)
        assert cli.commands[name].help.startswith(summary), (name, summary)


@pytest.mark.parametrize("command", ["similar", "records"])
def test_the_help_of_a_command_that_takes_a_uid_says_what_one_is_and_where_it_is_listed(command):
    """Session 42: `similar UID` said nothing of what a UID is; `records` put it in its summary, cut at 80
    columns."""
    said = " ".join(CliRunner().invoke(cli, [command, "--help"], terminal_width=80).output.split())
    assert "UID = portal_id:source_id, as `civicat search`" in said, said


def test_a_number_after_overlap_says_how_to_show_that_group(harvested):
    """Session 42: `civicat overlap 6`, after a table whose first column is a group's number, said "Got unexpected
    extra argument (6)"."""
    result = invoke("overlap", "6", "--db", str(harvested[0]))
    assert result.exit_code == 2
    assert "Error: overlap takes no argument, and '6' was given: to show group 6, civicat overlap --group 6" \
        in result.output, result.output


def test_the_default_config_missing_from_the_current_folder_names_the_folder(tmp_path, monkeypatch):
    """Session 42: run outside the checkout, `civicat harvest` said "configs/g7.toml: cannot read config file: No
    such file or directory", not that the default is read from the current folder."""
    monkeypatch.chdir(tmp_path)
    result = invoke("harvest")
    assert result.exit_code == 2
    assert (f"Error: configs/g7.toml: cannot read config file: No such file or directory; configs/g7.toml is read "
            f"from the current folder, {tmp_path} (the default --config: run civicat in its checkout, or give "
            "--config FILE)") in result.output, result.output
    assert not (tmp_path / "data").exists()   # (refused before the catalogue is made)
