"""Mistakes a new user makes at the command line (session 35's first hour with the README): each
refused before anything is done, exit 2, saying what was wrong and what to type instead."""
import json
import re
import shutil
from datetime import UTC

import duckdb
import pytest
from click.testing import CliRunner

from catalog.read_copy import read_copy_path
from harvester.cli import cli
from tests.conftest import as_in_a_test
from tests.portals.dcat import DataJsonPortal
from tests.portals.synth import make_data_json


@pytest.fixture
def portal():
    with DataJsonPortal(make_data_json(5)) as p:
        yield p


def city_config(folder, portal):
    config = folder / "portals.toml"
    config.write_text(f'[[portals]]\nid = "city"\ncity = "City"\nkind = "dcat-us"\nurl = "{portal.url}/data.json"\n')
    return config


@pytest.fixture(scope="module")
def harvested_folder(tmp_path_factory):
    """A folder as `civicat harvest` of one portal (make_data_json(5)) leaves it: the catalogue, its
    read copy, its lock file, its folder's marker and HTTP validators; harvested once a module (each
    worker's), ~0.5 s of CPU a test when each harvested its own."""
    folder = tmp_path_factory.mktemp("harvested")
    with as_in_a_test(), DataJsonPortal(make_data_json(5)) as portal:
        result = invoke("harvest", "--config", str(city_config(folder, portal)), "--db", str(folder / "c.duckdb"))
    assert result.exit_code == 0, result.output
    assert read_copy_path(folder / "c.duckdb").exists()
    return folder


@pytest.fixture
def harvested(tmp_path, portal, harvested_folder):
    """A catalogue of one harvested portal and its read copy (a copy of harvested_folder's: the same
    catalogue, as a backup restored, in a folder of its own); its config, naming `portal`, which
    serves what it was harvested from."""
    shutil.copytree(harvested_folder, tmp_path, dirs_exist_ok=True)
    return tmp_path / "c.duckdb", city_config(tmp_path, portal)


def invoke(*args):
    return CliRunner().invoke(cli, list(args), prog_name="civicat")


@pytest.mark.parametrize("command", [["harvest"], ["harvest", "--records"], ["overlap"], ["retire", "gone"],
                                     ["records", "city:ds-1"]])
def test_a_writer_given_the_read_copy_as_its_catalogue_exits_2_naming_the_catalogue(harvested, portal, command):
    """`harvest --db data/civicat.read.duckdb` harvested into the copy (exit 0) and made a copy of
    the copy (`civicat.read.read.duckdb`); the catalogue's next writer replaced the copy, and what
    was written there was gone without a word."""
    db, config = harvested
    copy = read_copy_path(db)
    before = (copy.stat().st_mtime_ns, copy.stat().st_size)
    hits = sum(portal.hits.values())
    extra = ["--config", str(config)] if command[0] in ("harvest", "retire", "records") else []
    result = invoke(*command, "--db", str(copy), *extra)
    assert result.exit_code == 2, result.output
    assert f"{copy} is the read copy of {db}" in result.output and f"--db {db}" in result.output
    assert "Traceback" not in result.output and "Usage:" not in result.output
    assert sum(portal.hits.values()) == hits   # refused before any request
    assert (copy.stat().st_mtime_ns, copy.stat().st_size) == before
    assert sorted(p.name for p in db.parent.glob("*.duckdb")) == ["c.duckdb", "c.read.duckdb"]
    assert not copy.with_name(copy.name + ".lock").exists()   # (no lock taken on it either)


def test_readers_still_read_the_copy_given_as_their_catalogue(harvested):
    """A guard: the copy given as --db is read as it is by the readers (README, Locks)."""
    db, _ = harvested
    copy = read_copy_path(db)
    result = invoke("sql", "--db", str(copy), "--format", "csv", "SELECT count(*) AS n FROM datasets")
    assert result.exit_code == 0 and result.output == "n\n5\n", result.output
    assert invoke("runs", "--db", str(copy), "--json").exit_code == 0


def test_a_catalogue_named_like_a_read_copy_with_no_catalogue_beside_it_is_a_catalogue(tmp_path, portal):
    """A guard: only a copy whose catalogue is beside it is refused."""
    config = tmp_path / "portals.toml"
    config.write_text(f'[[portals]]\nid = "city"\ncity = "City"\nkind = "dcat-us"\nurl = "{portal.url}/data.json"\n')
    result = invoke("harvest", "--config", str(config), "--db", str(tmp_path / "nightly.read.duckdb"))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("command", [["runs"], ["sql", "SELECT 1"], ["harvest", "--config", "CONFIG"],
                                     ["search", "permits"]])
@pytest.mark.parametrize("option, before", [(["-v"], "-v"), (["-vv"], "-v"), (["--verbose"], "--verbose"),
                                            (["--log-format", "json"], "--log-format json"),
                                            (["--log-format=json"], "--log-format json")])
def test_civicats_own_options_after_the_command_say_they_go_before_it(harvested, command, option, before):
    """`civicat harvest -v` said only "No such option '-v'": the README's -v is civicat's own."""
    db, config = harvested
    args = [str(config) if arg == "CONFIG" else arg for arg in command]
    result = invoke(*args, *option, "--db", str(db))
    assert result.exit_code == 2, result.output
    assert (f"is an option of civicat itself: it goes before the command (civicat {before} {command[0]} ...)"
            in result.output), result.output
    assert invoke(*before.split(), *args, "--db", str(db)).exit_code == 0   # where the message says, it runs


QUESTION = """-- each portal's last harvest: did it fail, and why
SELECT portal_id, status FROM harvest_runs
QUALIFY row_number() OVER (PARTITION BY portal_id ORDER BY started_at DESC) = 1"""


def test_a_query_that_starts_with_its_comment_says_to_put_double_dash_before_it(harvested):
    """The README's analyst questions start with an SQL comment: pasted, click took the query for
    an option, "No such option '-- each portal's last harvest...'"."""
    db, _ = harvested
    result = invoke("sql", "--db", str(db), QUESTION)
    assert result.exit_code == 2, result.output
    assert ("is no option but text that starts with '-' (an SQL comment?): put `--` before it, after the options "
            "(civicat sql [OPTIONS] -- QUERY)") in result.output
    assert "No such option" not in result.output
    result = invoke("sql", "--db", str(db), "--json", "--", QUESTION)   # as the message says
    assert result.exit_code == 0 and json.loads(result.output) == [{"portal_id": "city", "status": "ok"}]


def test_the_hint_for_text_taken_for_an_option_is_a_json_log_line_with_log_format_json(harvested):
    db, _ = harvested
    result = invoke("--log-format", "json", "sql", "--db", str(db), QUESTION)
    assert result.exit_code == 2
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert "put `--` before it" in line["message"] and line["exit_code"] == 2


def test_an_option_that_is_no_option_of_civicat_s_keeps_click_s_message(harvested):
    """A guard: an option mistyped is said as click says it, with its nearest options."""
    db, _ = harvested
    result = invoke("runs", "--limt", "3", "--db", str(db))
    assert result.exit_code == 2
    assert "No such option" in result.output and "--limt" in result.output and "--limit" in result.output
    assert "civicat itself" not in result.output and "SQL comment" not in result.output


def test_sql_format_says_what_it_is_in_the_help(harvested):
    result = invoke("sql", "--help")
    assert result.exit_code == 0 and "How the rows are printed" in " ".join(result.output.split()), result.output



@pytest.mark.parametrize("portal_id", ["-north", "_north", "North", "north.city", "n" * 64])
def test_a_portal_id_that_is_no_slug_is_refused_saying_every_rule_it_breaks_could_be(tmp_path, portal_id):
    """'-north' and '_north' were refused naming the characters allowed, which they are made of:
    the rule they break, a first character that is a letter or digit, was not said."""
    config = tmp_path / "portals.toml"
    config.write_text(f'[[portals]]\nid = "{portal_id}"\ncity = "North"\nkind = "ckan"\nurl = "http://127.0.0.1:9"\n')
    result = invoke("harvest", "--config", str(config), "--db", str(tmp_path / "c.duckdb"))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert (f"portals[0] (id {portal_id!r}).id: {portal_id!r} is not a slug (lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit; at most 63 characters)") in result.output, result.output
    assert not (tmp_path / "c.duckdb").exists()


@pytest.mark.parametrize("given", ["city:{typo}",   # a close spelling on its portal
                                   "{source_id}",   # the source id alone
                                   "town:{source_id}"])   # another portal's
def test_similar_names_the_uid_an_unknown_one_may_have_meant(harvested, given):
    """`similar` of an unknown UID said "no dataset ... in the catalogue" alone, where `records`
    names the UIDs it may have meant."""
    db, _ = harvested
    with duckdb.connect(str(read_copy_path(db)), read_only=True) as con:
        [(uid, source_id)] = con.execute("SELECT uid, source_id FROM datasets ORDER BY uid LIMIT 1").fetchall()
    typo = source_id[:-1] + ("x" if source_id[-1] != "x" else "y")
    given = given.format(typo=typo, source_id=source_id)
    result = invoke("similar", given, "--db", str(db))
    assert result.exit_code == 2, result.output
    assert f"Error: no dataset {given!r} in the catalogue (did you mean {uid!r}?)" in result.output, result.output


def test_similar_of_a_uid_nothing_is_near_says_so_alone(harvested):
    """A guard: nothing invented when no UID is near."""
    db, _ = harvested
    result = invoke("similar", "elsewhere:zzz", "--db", str(db))
    assert result.exit_code == 2 and "Error: no dataset 'elsewhere:zzz' in the catalogue\n" in result.output


def test_export_of_data_json_with_a_config_named_that_is_not_there_exits_2_before_writing(harvested, tmp_path):
    """`export --format data.json --config typo.toml` exported all the same, exit 0, a line on
    stderr: data.json without the config's contacts, most datasets left out for want of one."""
    db, config = harvested
    out = tmp_path / "export"
    result = invoke("export", "--db", str(db), "--config", str(tmp_path / "portls.toml"), "--out", str(out),
                    "--format", "data.json")
    assert result.exit_code == 2, result.output
    assert f"{tmp_path / 'portls.toml'}: cannot read config file" in result.output
    assert not out.exists()
    bad = tmp_path / "bad.toml"
    bad.write_text(config.read_text().replace('kind = "dcat-us"', 'kind = "dcat"'))
    result = invoke("export", "--db", str(db), "--config", str(bad), "--out", str(out), "--format", "data.json")
    assert result.exit_code == 2 and "'dcat' is not one of" in result.output and not out.exists()


def test_export_without_the_default_config_still_writes_data_json_saying_so(harvested, tmp_path, monkeypatch):
    """A guard: run elsewhere than the checkout (no configs/g7.toml), data.json is written without
    the config's defaults, and stderr says so; a Parquet export needs no config."""
    db, _ = harvested
    monkeypatch.chdir(tmp_path)
    result = invoke("export", "--db", str(db), "--out", str(tmp_path / "export"), "--format", "data.json")
    assert result.exit_code == 0, result.output
    assert "no config at configs/g7.toml: publishers fall back to each dataset's city" in result.stderr
    assert json.loads((tmp_path / "export" / "data.json").read_text())["@type"] == "dcat:Catalog"
    result = invoke("export", "--db", str(db), "--config", str(tmp_path / "portls.toml"), "--out", str(tmp_path / "p"))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("db", ["notes/c.duckdb", "notes/more/c.duckdb"])
def test_a_db_whose_folder_is_a_file_says_a_file_is_in_the_way(tmp_path, portal, monkeypatch, db):
    """`--db notes/c.duckdb` with a file `notes` said "[Errno 17] File exists: 'notes'" alone."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes").write_text("a file of the user's\n")
    config = tmp_path / "portals.toml"
    config.write_text(f'[[portals]]\nid = "city"\ncity = "City"\nkind = "dcat-us"\nurl = "{portal.url}/data.json"\n')
    result = invoke("harvest", "--config", str(config), "--db", db)
    assert result.exit_code == 2, result.output
    assert f"Error: cannot open the catalogue {db}: its folder cannot be made: a file is in the way (" in result.output
    assert "'notes" in result.output and sum(portal.hits.values()) == 0
    assert (tmp_path / "notes").read_text() == "a file of the user's\n"


@pytest.mark.parametrize("formats", [["--format", "parquet"], ["--format", "data.json"]])
def test_an_export_whose_folder_is_under_a_file_says_a_file_is_in_the_way(harvested, tmp_path, formats):
    """`export --out notes/export` with a file `notes` said "[Errno 17] File exists: 'notes'" alone
    (exit 1, as the README says of an export that cannot be written)."""
    db, _ = harvested
    (tmp_path / "notes").write_text("a file of the user's\n")
    out = tmp_path / "notes" / "export"
    result = invoke("export", "--db", str(db), "--out", str(out), *formats)
    assert result.exit_code == 1, result.output
    assert f"to {out}: its folder cannot be made: a file is in the way (" in result.output, result.output
    assert (tmp_path / "notes").read_text() == "a file of the user's\n"


@pytest.mark.parametrize("text", ["-x y", "-police", "--no longer"])
def test_search_text_that_starts_with_a_dash_says_to_put_double_dash_before_it(harvested, text):
    """`civicat search "-x y"` said "No such option '-x'": an option the user never wrote."""
    db, _ = harvested
    result = invoke("search", text, "--db", str(db))
    assert result.exit_code == 2, result.output
    assert (f"Error: {text!r} is no option but text that starts with '-': put `--` before it, after the options "
            "(civicat search [OPTIONS] -- TEXT)\n") in result.output, result.output
    assert "No such option" not in result.output and "SQL comment" not in result.output
    result = invoke("search", "--db", str(db), "--json", "--", text)   # as the message says: searched
    assert result.exit_code == 0 and isinstance(json.loads(result.output), list), result.output


def test_text_taken_for_an_option_is_offered_no_option_it_is_not(harvested):
    """`sql "-- hello"` added click's "Did you mean '--help'?" to the advice to put `--` before it."""
    db, _ = harvested
    result = invoke("sql", "--db", str(db), "-- hello")
    assert result.exit_code == 2 and "put `--` before it" in result.output
    assert "Did you mean" not in result.output, result.output


def test_an_option_written_with_one_dash_says_the_option_it_may_be(harvested):
    db, _ = harvested
    result = invoke("search", "-limit", "5", "permits", "--db", str(db))
    assert result.exit_code == 2
    assert "Error: No such option '-limit': did you mean --limit?\n" in result.output, result.output


@pytest.mark.parametrize("wait, said", [(["--wait", "-5"], "-5.0"), (["--wait=-5"], "-5.0"),
                                        (["--wait", "-0.5"], "-0.5"), (["--wait", "604801"], "604801.0"),
                                        (["--wait", "-inf"], "-inf"), (["--wait", "-1e400"], "-inf"),
                                        (["--wait=-1e400"], "-inf"), (["--wait", "-nan"], "-nan")])
def test_export_wait_out_of_range_exits_2_naming_it(harvested, tmp_path, wait, said):
    """`export --wait -5` said "No such option '-5'" (click read the number as an option and
    --wait, whose SECONDS may be left out, as given none): neither --wait nor what was wrong."""
    db, _ = harvested
    out = tmp_path / "export"
    for args in ([*wait, "--db", str(db), "--out", str(out)], ["--db", str(db), "--out", str(out), *wait]):
        result = invoke("export", *args)
        assert result.exit_code == 2, result.output
        assert f"Error: Invalid value for '--wait': {said} is not in the range 0<=x<=604800.\n" in result.output, \
            result.output
        assert not out.exists()


def test_export_wait_of_a_valid_number_exports(harvested, tmp_path):
    """SECONDS in range, and --wait alone, are taken; `--wait -0` and `--wait=-0` as 0 (they said
    "No such option '-0'": click took the number for an option)."""
    db, _ = harvested
    for wait in (["--wait", "5"], ["--wait=0"], ["--wait"], ["--wait", "-0"], ["--wait=-0"], ["--wait", "-0.0"]):
        result = invoke("export", "--db", str(db), "--out", str(tmp_path / "export"), *wait)
        assert result.exit_code == 0, result.output


@pytest.mark.parametrize("command, option, said", [
    (["harvest"], ["--wait-minutes", "nan"], "Invalid value for '--wait-minutes': nan is not in the range 0<x<=10080."),
    (["export", "--out", "OUT"], ["--wait", "NaN"], "Invalid value for '--wait': NaN is not in the range "
                                                       "0<=x<=604800."),
    (["overlap"], ["--min-score", "-nan"], "Invalid value for '--min-score': -nan is not in the range 0.0<=x<=1.0.")])
def test_a_number_that_is_nan_exits_2_as_out_of_range(harvested, portal, tmp_path, command, option, said):
    """click's FloatRange let `nan` through its bounds (every comparison with it is false):
    `--wait-minutes nan` waited as long as it took (its deadline never came: a writer holding the
    catalogue was waited for until the process was killed; `export --wait nan` had that deadline too). Refused
    as a number out of range now, before anything is done."""
    db, config = harvested
    runs_before = invoke("runs", "--db", str(db), "--json").output
    hits = sum(portal.hits.values())
    extra = ["--config", str(config)] if command[0] != "overlap" else []
    command = [str(tmp_path / "export") if word == "OUT" else word for word in command]
    result = invoke(*command, *option, "--db", str(db), *extra)
    assert result.exit_code == 2, result.output
    assert f"Error: {said}\n" in result.output, result.output
    assert sum(portal.hits.values()) == hits and invoke("runs", "--db", str(db), "--json").output == runs_before
    assert not (tmp_path / "export").exists()


def test_a_negative_wait_is_said_as_a_json_log_line_with_log_format_json(harvested, tmp_path):
    db, _ = harvested
    result = invoke("--log-format", "json", "export", "--db", str(db), "--out", str(tmp_path / "e"), "--wait", "-5")
    assert result.exit_code == 2
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert line["message"].startswith("Invalid value for '--wait': -5.0 is not in the range") and line["exit_code"] == 2


@pytest.mark.parametrize("command", [["harvest"], ["records", "city:ds-1"], ["retire", "gone"], ["overlap"]])
@pytest.mark.parametrize("wait, bound", [(["--wait", "5"], "5"), (["--wait=5"], "5"), (["--wait", "0.5"], "0.5"),
                                         (["--wait", "-5"], "N (0 < N <= 10080)"),
                                         (["--wait", "0"], "N (0 < N <= 10080)"),
                                         (["--wait", "20000"], "N (0 < N <= 10080)")])
def test_a_number_given_to_the_wait_flag_of_a_writer_names_wait_minutes(harvested, portal, command, wait, bound):
    """`harvest --wait 5` said "Got unexpected extra argument (5)" (and `records --wait 5 UID`
    that '5' was no portal_id:source_id): --wait of a writer is a flag, where export's takes
    seconds; the bound is --wait-minutes'."""
    db, config = harvested
    runs_before = invoke("runs", "--db", str(db), "--json").output
    hits = sum(portal.hits.values())
    extra = ["--config", str(config)] if command[0] != "overlap" else []
    result = invoke(*command, "--db", str(db), *extra, *wait)
    assert result.exit_code == 2, result.output
    assert (f"Error: --wait takes no value on {command[0]}; to bound the wait use --wait-minutes {bound}\n"
            in result.output), result.output
    assert sum(portal.hits.values()) == hits and invoke("runs", "--db", str(db), "--json").output == runs_before


def test_a_number_after_the_wait_flag_of_retire_is_the_portal_id_it_may_be(tmp_path, portal):
    """A portal's id may be a number (`311`): `retire --wait 311` retires it, as `retire 311 --wait`
    does (the wait flag's check read 311 as a bound given to --wait, exit 2); a number after the
    id given is still refused naming --wait-minutes."""
    config, db = tmp_path / "portals.toml", tmp_path / "c.duckdb"
    config.write_text(f'[[portals]]\nid = "311"\ncity = "City"\nkind = "dcat-us"\nurl = "{portal.url}/data.json"\n')
    assert invoke("harvest", "--config", str(config), "--db", str(db)).exit_code == 0
    config.write_text(config.read_text().replace('id = "311"', 'id = "city"'))   # (311 taken out of the config)
    result = invoke("retire", "--config", str(config), "--db", str(db), "--wait", "5", "311")
    assert result.exit_code == 2 and "--wait takes no value on retire" not in result.output, result.output
    result = invoke("retire", "--config", str(config), "--db", str(db), "311", "--wait", "5")
    assert result.exit_code == 2 and "--wait takes no value on retire; to bound the wait use --wait-minutes 5" \
        in result.output, result.output
    result = invoke("retire", "--config", str(config), "--db", str(db), "--wait", "311")
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT count(*), count(deleted_at) FROM datasets WHERE portal_id = '311'").fetchone() \
            == (5, 5)
    finally:
        con.close()


def test_the_wait_flag_before_a_uid_or_an_option_is_still_a_flag(harvested):
    """A guard: a word after a writer's --wait that is no number is read as before (records'
    UID; an option), and a --db named like an option is a file name."""
    db, config = harvested
    result = invoke("records", "--config", str(config), "--db", str(db), "--wait", "city:ds-1")
    assert "takes no value" not in result.output, result.output   # (the UID read as one: its dataset looked up)
    assert "not in the catalogue (a typo? harvest the portal first?): 'city:ds-1'" in result.output, result.output
    result = invoke("runs", "--db", "--wait")
    assert result.exit_code == 2 and "no catalogue at --wait" in result.output, result.output


@pytest.mark.parametrize("command", [["harvest"], ["records", "city:ds-1"], ["retire", "gone"], ["overlap"]])
def test_wait_and_wait_minutes_together_exit_2_before_anything_is_done(harvested, portal, command):
    """Both were taken, --wait-minutes winning unsaid: a user who added --wait to lift a bound
    still had it."""
    db, config = harvested
    runs_before = invoke("runs", "--db", str(db), "--json").output
    hits = sum(portal.hits.values())
    extra = ["--config", str(config)] if command[0] != "overlap" else []
    result = invoke(*command, "--db", str(db), *extra, "--wait", "--wait-minutes", "1")
    assert result.exit_code == 2, result.output
    assert ("Error: --wait and --wait-minutes contradict each other: --wait waits as long as it takes, "
            "--wait-minutes N N minutes at most; give one\n") in result.output, result.output
    assert sum(portal.hits.values()) == hits and invoke("runs", "--db", str(db), "--json").output == runs_before


def test_a_second_retire_says_the_portal_is_already_retired(harvested, tmp_path):
    """A second `civicat retire` said "the catalogue holds no live dataset of a portal 'city'
    outside ..." under a usage line, as for a name mistyped: the retirement it did was not said."""
    db, config = harvested
    elsewhere = tmp_path / "elsewhere.toml"
    elsewhere.write_text('[[portals]]\nid = "other"\ncity = "Other"\nkind = "ckan"\nurl = "http://127.0.0.1:9"\n')
    first = json.loads(invoke("retire", "city", "--config", str(elsewhere), "--db", str(db), "--json").output)
    assert first["removed"] == 5
    with duckdb.connect(str(read_copy_path(db)), read_only=True) as con:
        [(started,)] = con.execute("SELECT started_at FROM harvest_runs WHERE run_id = ?", [first["run_id"]]).fetchall()
    for json_flag in ([], ["--json"]):
        result = invoke("retire", "city", "--config", str(elsewhere), "--db", str(db), *json_flag)
        assert result.exit_code == 2, result.output
        assert result.output == (f"Error: 'city' is already retired: 5 datasets marked removed on "
                                 f"{started.astimezone(UTC):%Y-%m-%d %H:%M} UTC (run {first['run_id']}); nothing "
                                 "left to retire\n")
    runs = json.loads(invoke("runs", "--db", str(db), "--json").output)
    assert [r["run_id"] for r in runs if "-retire-" in r["run_id"]] == [first["run_id"]]   # (no second run)


def test_retire_of_a_portal_never_harvested_keeps_its_message(harvested, tmp_path):
    """A guard: a name the catalogue never held is no retirement (a typo, said with the usage line)."""
    db, _ = harvested
    elsewhere = tmp_path / "elsewhere.toml"
    elsewhere.write_text('[[portals]]\nid = "other"\ncity = "Other"\nkind = "ckan"\nurl = "http://127.0.0.1:9"\n')
    result = invoke("retire", "ctiy", "--config", str(elsewhere), "--db", str(db))
    assert result.exit_code == 2 and "Usage:" in result.output
    assert ("the catalogue holds no live dataset of a portal 'ctiy' outside "
            f"{elsewhere} (those it holds: city)") in result.output, result.output


@pytest.mark.parametrize("option, command", [(["--json"], ["runs"]), (["--db", "DB"], ["runs"]), (["--db=DB"], ["runs"]),
                                             (["--json"], ["search", "permits"]),
                                             (["--limit", "3"], ["runs"])])
def test_a_command_s_option_before_the_command_says_it_goes_after_it(harvested, option, command):
    """`civicat --json runs` said "No such option '--json'. Did you mean '--version'?", and
    `civicat --db X runs` "No such option '--db'": options of the commands, given before one."""
    db, _ = harvested
    option = [word.replace("DB", str(db)) for word in option]
    name = option[0].partition("=")[0]
    result = invoke(*option, *command, *([] if name == "--db" else ["--db", str(db)]))
    assert result.exit_code == 2, result.output
    assert (f"Error: No such option '{name}': {name} is an option of the command: it goes after it "
            f"(civicat {command[0]} {name} ...)\n") in result.output, result.output
    assert "Did you mean" not in result.output
    after = invoke(*command, *option, *([] if name == "--db" else ["--db", str(db)]))   # where the message says
    assert after.exit_code == 0, after.output


def test_an_option_of_other_commands_before_the_command_names_those_that_take_it(harvested):
    db, _ = harvested
    result = invoke("--config", "portals.toml", "runs", "--db", str(db))
    assert result.exit_code == 2
    assert ("Error: No such option '--config': --config is an option of harvest, records, retire, export, after the "
            "command (civicat harvest --config ...)\n") in result.output, result.output
    result = invoke("--json")
    assert result.exit_code == 2
    assert ("Error: No such option '--json': --json is an option of every command, after the command "
            "(civicat harvest --json ...)\n") in result.output, result.output


def test_an_option_no_command_has_before_the_command_keeps_click_s_answer(harvested):
    """A guard: a typo of civicat's own options is click's, with its suggestion."""
    result = invoke("--verbos", "runs")
    # (click's wording: "No such option '--verbos'. (Did you mean one of: '--verbose', ...)" from 8.4 on,
    # "No such option: --verbos (Possible options: --verbose, ...)" before)
    assert result.exit_code == 2 and re.search(r"No such option:? '?--verbos\b", result.output), result.output
    assert re.search(r"(mean|options)[^\n]*--verbose\b", result.output) and "is an option of" not in result.output, result.output


@pytest.mark.parametrize("given, meant", [("CITY", "city"), ("City", "city"), ("cty", "city")])
def test_a_portal_id_in_another_case_or_misspelt_says_the_id_meant(harvested, portal, given, meant):
    """`harvest --portal SF` listed the known ids and no more: ids are lowercase slugs."""
    db, config = harvested
    hits = sum(portal.hits.values())
    result = invoke("harvest", "--config", str(config), "--db", str(db), "--portal", given)
    assert result.exit_code == 2, result.output
    assert f"no portal with id {given!r} (did you mean {meant!r}? known: city)" in result.output, result.output
    assert sum(portal.hits.values()) == hits


def test_a_portal_id_like_none_known_lists_the_known(harvested):
    """A guard: no guess where none is near."""
    db, config = harvested
    result = invoke("harvest", "--config", str(config), "--db", str(db), "--portal", "zzzz")
    assert result.exit_code == 2 and "no portal with id 'zzzz' (known: city)" in result.output, result.output


@pytest.mark.parametrize("table", ["runs", "nope", "x"])
def test_a_table_that_does_not_exist_names_the_catalogue_s_tables_not_duckdb_s_own(harvested, table):
    """`sql "SELECT * FROM runs"` said `Did you mean "duckdb_constraints"?` (`nope`: "pg_enum"),
    DuckDB's system tables: no table of the catalogue was named."""
    db, _ = harvested
    result = invoke("sql", "--db", str(db), f"SELECT * FROM {table}")
    assert result.exit_code == 2, result.output
    said = result.output.split("Error: ", 1)[1]
    assert said.startswith(f"Catalog Error: Table with name {table} does not exist!\nThe catalogue's tables: "), said
    tables = said.split("The catalogue's tables: ", 1)[1].split("\n", 1)[0].split(", ")
    assert {"datasets", "harvest_runs", "record_pulls", "open311_services"} <= set(tables), tables
    assert tables == sorted(tables) and not [t for t in tables if t.startswith(("duckdb_", "pg_", "sqlite_"))]
    assert "Did you mean" not in said and f"LINE 1: SELECT * FROM {table}" in said


def test_a_table_name_near_one_of_the_catalogue_s_keeps_duckdb_s_guess(harvested):
    """A guard: DuckDB's guess is kept where it is a table of the catalogue."""
    db, _ = harvested
    result = invoke("sql", "--db", str(db), "SELECT * FROM harvest_run")
    assert result.exit_code == 2 and 'Did you mean "harvest_runs"?' in result.output, result.output
    assert "The catalogue's tables" not in result.output


@pytest.mark.parametrize("command, words, argument", [
    (["search"], ["building", "permits"], "TEXT"),
    (["search", "--limit", "2"], ["building", "--json", "permits"], "TEXT"),
    (["sql"], ["SELECT", "count(*)", "FROM", "datasets"], "QUERY")])
def test_free_text_given_as_several_words_says_to_quote_it(harvested, command, words, argument):
    """`civicat search building permits` said "Got unexpected extra argument (permits)", and
    `civicat sql SELECT 1` "(1)": neither the argument nor the quotes it wants."""
    db, _ = harvested
    result = invoke(*command, *words, "--db", str(db))
    assert result.exit_code == 2, result.output
    text = " ".join(word for word in words if word != "--json")
    assert (f"Error: {argument} is one argument, and {len(text.split())} words were given: quote them as one "
            f"(civicat {command[0]} [OPTIONS] '{text}')\n") in result.output, result.output
    quoted = invoke(*command, text, "--db", str(db))   # as the message says
    assert quoted.exit_code == 0, quoted.output


def test_free_text_given_as_one_word_or_none_is_as_before(harvested):
    """A guard: one word is the text; none is click's missing argument."""
    db, _ = harvested
    assert invoke("search", "permits", "--db", str(db)).exit_code == 0
    result = invoke("sql", "--db", str(db))
    assert result.exit_code == 2 and "Missing argument 'QUERY'" in result.output, result.output


def test_a_records_id_the_portal_does_not_list_is_said_so_after_its_harvest(tmp_path, portal):
    """`records = ["nope"]` said "city:nope is not in the catalogue (harvest the portal first)"
    just after the harvest of its portal: the id is what is wrong."""
    config = tmp_path / "portals.toml"
    config.write_text(f'[[portals]]\nid = "city"\ncity = "City"\nkind = "dcat-us"\nurl = "{portal.url}/data.json"\n'
                      'records = ["nope"]\n')
    db = tmp_path / "c.duckdb"
    result = invoke("harvest", "--config", str(config), "--db", str(db), "--records", "--json")
    assert result.exit_code == 0, result.output   # (a failed pull fails no portal: README, exit codes)
    assert json.loads(result.stdout)["portals"][0]["records_failed"] == 1
    errors = json.loads(invoke("runs", "--db", str(db), "--errors", "--json").output)["errors"]
    assert [e["message"] for e in errors if e["stage"] == "records"] == [
        "records pull failed (city:nope): city:nope is not in the catalogue, or was deleted: city's listing has "
        "no dataset 'nope' (a typo in "
        "`records`? its portal not harvested yet?)"]
