"""The CLI through click's CliRunner: exit codes, summary, JSON, runs, sql."""
import json
import os
import re
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from catalog.read_copy import read_copy_path
from harvester.cli import cli
from tests.children import line_of, output_of, run
from tests.conftest import new_store, stopped_at_its_first_line, writer_under_way
from tests.portals.dcat import DataJsonPortal
from tests.portals.synth import make_data_json


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def portal():
    with DataJsonPortal(make_data_json(7)) as p:
        yield p


def write_config(tmp_path, *entries):
    text = ""
    for portal_id, kind, url in entries:
        text += f'[[portals]]\nid = "{portal_id}"\ncity = "{portal_id.title()}"\nkind = "{kind}"\nurl = "{url}"\n\n'
    path = tmp_path / "portals.toml"
    path.write_text(text)
    return str(path)


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_harvest_prints_the_summary_and_exits_0(tmp_path, portal):
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    db = str(tmp_path / "c.duckdb")
    result = invoke("harvest", "--config", config, "--db", db)
    assert result.exit_code == 0, result.output
    header, _, row = result.output.splitlines()[:3]
    assert header.split() == ["portal", "status", "seen", "new", "changed", "unchanged", "removed", "errors", "seconds"]
    assert row.split()[:8] == ["city", "ok", "7", "7", "0", "0", "0", "0"]
    result = invoke("harvest", "--config", config, "--db", db, "--json")
    report = json.loads(result.output)
    assert report["ok"] and report["portals"][0]["unchanged"] == 7



def test_a_harvest_writes_only_beside_the_catalogue(tmp_path, portal, monkeypatch):
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    data, elsewhere = tmp_path / "data", tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # cron's working directory, wherever it is
    assert invoke("harvest", "--config", config, "--db", str(data / "civicat.duckdb")).exit_code == 0
    assert invoke("search", "--db", str(data / "civicat.duckdb"), "permits").exit_code == 0
    assert list(elsewhere.iterdir()) == []
    assert {path.name for path in data.iterdir()} <= {"civicat.duckdb", "civicat.duckdb.wal", "civicat.duckdb.lock",
                                                     "civicat.read.duckdb",
                                                     ".civicat.duckdb.staging", "civicat.duckdb.tmp", "http_cache",
                                                     "civicat-folder.json"}


def test_bad_config_exits_2_before_any_request(tmp_path, portal):
    config = tmp_path / "bad.toml"
    config.write_text(f'[[portals]]\nid = "x"\ncity = "X"\nkind = "sokrata"\nurl = "{portal.url}/data.json"\n')
    result = CliRunner().invoke(cli, ["harvest", "--config", str(config), "--db", str(tmp_path / "c.duckdb")])
    assert result.exit_code == 2
    assert str(config) in result.output and "kind" in result.output and "'sokrata'" in result.output
    assert portal.requests == []
    result = CliRunner().invoke(cli, ["harvest", "--config", str(config), "--portal", "nope"])
    assert result.exit_code == 2


def test_unknown_portal_id_exits_2(tmp_path, portal):
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    result = CliRunner().invoke(cli, ["harvest", "--config", config, "--db", str(tmp_path / "c.duckdb"),
                                      "--portal", "boston"])
    assert result.exit_code == 2 and "no portal with id 'boston'" in result.output


def test_runs_and_sql(tmp_path, portal):
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    db = str(tmp_path / "c.duckdb")
    invoke("harvest", "--config", config, "--db", db)
    portal.inject("/data.json", "html", times=20)
    CliRunner().invoke(cli, ["harvest", "--config", config, "--db", db])
    runs = json.loads(invoke("runs", "--db", db, "--json").output)
    assert [r["status"] for r in runs] == ["failed", "ok"]
    assert "HTML page instead of JSON" in runs[0]["error_message"]
    assert (runs[0]["requests"], runs[0]["retries"]) == (5, 4) and runs[1]["not_modified"] == 0
    # the bytes received, as the README promises `runs --json` gives them
    assert runs[0]["bytes"] > 0 and runs[1]["bytes"] > 0
    table = invoke("runs", "--db", db, "--errors").output
    assert "failed" in table and "HtmlInsteadOfData" in table
    header, _, failed = table.splitlines()[:3]
    assert header.split()[-5:] == ["errors", "requests", "retries", "304s", "failure"]
    assert failed.split()[12:16] == ["5", "4", "0", "HtmlInsteadOfData:"]
    csv_out = invoke("sql", "--db", db, "SELECT source_id FROM datasets ORDER BY 1 LIMIT 2", "--format", "csv").output
    assert csv_out.splitlines()[0] == "source_id" and len(csv_out.splitlines()) == 3
    refused = CliRunner().invoke(cli, ["sql", "--db", db, "DROP TABLE datasets"])
    assert refused.exit_code == 2 and "read-only" in refused.output
    missing = CliRunner().invoke(cli, ["sql", "--db", str(tmp_path / "none.duckdb"), "SELECT 1"])
    assert missing.exit_code == 2 and "no catalogue" in missing.output


def readme_json_examples(after: str) -> list:
    """The JSON examples of the README that follow the text `after`, parsed."""
    import re
    from pathlib import Path
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", readme[readme.index(after):], re.S)]


def test_runs_json_is_a_list_and_runs_errors_json_an_object_as_the_readme_shows_them(tmp_path):
    """Two shapes, each relied on by scripts (`runs --errors --json | jq '.errors[]'`): the README
    states both, and its examples have the keys the commands print."""
    document = make_data_json(2)
    document["dataset"][0]["modified"] = "R/P1D"   # a warning
    with DataJsonPortal(document) as portal:
        config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
        db = str(tmp_path / "c.duckdb")
        assert CliRunner().invoke(cli, ["runs", "--db", db, "--json"]).exit_code == 2   # no catalogue yet
        invoke("harvest", "--config", config, "--db", db)
    runs = json.loads(invoke("runs", "--db", db, "--json").output)
    report = json.loads(invoke("runs", "--db", db, "--errors", "--json").output)
    listed, with_errors = readme_json_examples("`runs --json` is a **list**")[:2]
    assert isinstance(runs, list) and isinstance(listed, list)
    assert [list(run) for run in runs] == [list(listed[0])]
    assert list(report) == list(with_errors) == ["runs", "errors"]
    assert report["runs"] == runs and list(with_errors["runs"][0]) == list(runs[0])
    assert [(e["severity"], e["error_type"]) for e in report["errors"]] == [("warning", "InvalidValue")]
    assert list(report["errors"][0]) == list(with_errors["errors"][0])


def documented_json_reports() -> list[list[tuple[str, str]]]:
    """The tables of docs/harvesting.md's "The JSON reports", in order, as (key, type) rows."""
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[2] / "docs" / "harvesting.md").read_text()
    section = re.search(r"^## The JSON reports\n(.*?)(?=^## |\Z)", text, re.S | re.M)[1]
    tables = re.findall(r"^\| key \| type \| meaning \|\n\|[-|]+\|\n((?:\|.*\n?)+)", section, re.M)
    return [[(row.split("|")[1].strip().strip("`"), row.split("|")[2].strip()) for row in table.strip().splitlines()]
            for table in tables]


def assert_as_documented(value: dict, documented: list[tuple[str, str]], what: str) -> None:
    """`value` has exactly the documented keys, in their order, each of its documented JSON type."""
    types = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "list": list}
    assert list(value) == [key for key, _ in documented], what
    for key, kind in documented:
        allowed = kind.split(" or ")
        item = value[key]
        if item is None:
            assert "null" in allowed, (what, key, kind)
        else:   # (a JSON true is no integer)
            assert any(isinstance(item, types[k]) and not (k in ("integer", "number") and isinstance(item, bool))
                       for k in allowed if k != "null"), (what, key, kind, item)


def test_the_json_reports_of_harvest_and_runs_have_exactly_the_keys_and_types_documented(tmp_path):
    """Scripts read `harvest --json`, `runs --json` and `runs --errors --json`: docs/harvesting.md
    lists their keys and types, and that list is what the commands print (a key added, dropped
    or renamed fails here, as does a value of another type)."""
    harvest_report, portal_report, run_row, error_row = documented_json_reports()
    document = make_data_json(2)
    document["dataset"][0]["modified"] = "R/P1D"   # a warning
    with DataJsonPortal(document) as portal:
        url = portal.url + "/data.json"
        db = str(tmp_path / "c.duckdb")
        config = write_config(tmp_path, ("city", "dcat-us", url), ("town", "dcat-us", url))
        invoke("harvest", "--config", config, "--db", db)
        # town taken out of the config (not_in_config), a portal that fails (its nulls filled)
        write_config(tmp_path, ("city", "dcat-us", url), ("gone", "dcat-us", portal.url + "/no-such.json"))
        result = invoke("harvest", "--config", config, "--db", db, "--json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert_as_documented(report, harvest_report, "harvest --json")
    assert [(p["portal_id"], p["status"]) for p in report["portals"]] == [("city", "ok"), ("gone", "failed")]
    for portal_report_value in report["portals"]:
        assert_as_documented(portal_report_value, portal_report, "harvest --json: portals[]")
    assert report["not_in_config"] == [{"portal_id": "town", "live_datasets": 2}]
    runs = json.loads(invoke("runs", "--db", db, "--json").output)
    assert len(runs) == 4 and {r["listing_complete"] for r in runs} == {True, None}
    for row in runs:
        assert_as_documented(row, run_row, "runs --json")
    with_errors = json.loads(invoke("runs", "--db", db, "--errors", "--json").output)
    assert list(with_errors) == ["runs", "errors"] and with_errors["runs"] == runs
    # the warnings, and the failed portal's error (no dataset's: source_id null)
    assert {(e["severity"], e["source_id"] is None) for e in with_errors["errors"]} == {("error", True),
                                                                                      ("warning", False)}
    for row in with_errors["errors"]:
        assert_as_documented(row, error_row, "runs --errors --json: errors[]")


def test_runs_show_the_records_pulled_their_failures_and_rows(tmp_path):
    """`runs --json` left out the records counts of harvest_runs (a script had to ask `civicat
    sql`); the table shows them as `harvest --records` does, when a run pulled any."""
    from tests.portals.socrata import SocrataPortal, SodaTable, discovery_entry
    views = [{"id": f"abcd-000{n}", "name": f"Calls {n}", "category": "Public Safety",
              "columns": [{"fieldName": "n", "dataTypeName": "number"}]} for n in (1, 2)]
    domain = "data.example.org"
    with SocrataPortal([discovery_entry(v) for v in views], domain=domain,
                       records={"abcd-0001": SodaTable.from_rows([{"n": str(i)} for i in range(30)])}) as portal:
        config = tmp_path / "portals.toml"
        config.write_text(f'[[portals]]\nid = "sea"\ncity = "Seattle"\nkind = "socrata"\nurl = "{portal.url}"\n'
                          f'domain = "{domain}"\nrecords = ["abcd-0001", "abcd-0002"]\n')
        db = str(tmp_path / "c.duckdb")
        invoke("harvest", "--config", str(config), "--db", db, "--records")   # abcd-0002 has no records: its pull fails
    [run] = json.loads(invoke("runs", "--db", db, "--json").output)
    assert (run["records_pulled"], run["records_failed"], run["record_rows"]) == (1, 1, 30)
    header, _, row = invoke("runs", "--db", db).output.splitlines()[:3]
    assert header.split()[15:18] == ["records", "rows", "failure"] and row.split()[15:17] == ["1/2", "30"]


def test_runs_errors_json_lists_every_error_and_the_table_says_how_many_it_leaves_out(tmp_path):
    # a night of over 1,000 warnings: the list stopped at 1,000 without a word, so the README's
    # `runs --errors --json | jq '.errors[] | select(.severity == "error")'` could miss the errors
    document = make_data_json(1005)
    for dataset in document["dataset"]:
        dataset["modified"] = "R/P1D"   # a warning each (InvalidValue)
    with DataJsonPortal(document) as portal:
        config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
        db = str(tmp_path / "c.duckdb")
        assert invoke("harvest", "--config", config, "--db", db).exit_code == 0
    report = json.loads(invoke("runs", "--db", db, "--errors", "--json").output)
    assert len(report["errors"]) == report["runs"][0]["warnings"] == 1005
    table = invoke("runs", "--db", db, "--errors").output
    assert table.rstrip().endswith("5 more errors and warnings: --json lists them all")


def test_sql_takes_json_as_every_command_does(tmp_path, portal):
    # SPEC: every command prints JSON with --json; sql refused it ("No such option")
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    db = str(tmp_path / "c.duckdb")
    invoke("harvest", "--config", config, "--db", db)
    query = "SELECT count(*) AS n FROM datasets"
    result = CliRunner().invoke(cli, ["sql", "--db", db, query, "--json"])
    assert result.exit_code == 0 and json.loads(result.output) == [{"n": 7}], result.output
    assert result.output == invoke("sql", "--db", db, query, "--format", "json").output


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_runs_refuses_a_limit_below_one_as_bad_usage(tmp_path, portal, limit):
    # -1 reached DuckDB's LIMIT (a traceback, exit 1) and 0 said "no harvest runs yet" over a catalogue with runs
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    db = str(tmp_path / "c.duckdb")
    invoke("harvest", "--config", config, "--db", db)
    result = CliRunner().invoke(cli, ["runs", "--db", db, "--limit", limit])
    assert result.exit_code == 2 and "--limit" in result.output, result.output


def test_a_portal_named_twice_is_harvested_once(tmp_path, portal):
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    result = invoke("harvest", "--config", config, "--db", str(tmp_path / "c.duckdb"), "--portal", "city",
                    "--portal", "city", "--json")
    assert result.exit_code == 0 and [p["portal_id"] for p in json.loads(result.output)["portals"]] == ["city"]


def test_full_remaps_every_dataset_without_conditional_requests(tmp_path, portal):
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    db = str(tmp_path / "c.duckdb")
    invoke("harvest", "--config", config, "--db", db)
    incremental = json.loads(invoke("harvest", "--config", config, "--db", db, "--json").output)["portals"][0]
    assert incremental["unchanged"] == 7 and incremental["not_modified"] == 1
    assert "If-None-Match" in portal.requests[-1][2]
    full = json.loads(invoke("harvest", "--config", config, "--db", db, "--full", "--json").output)["portals"][0]
    # every dataset re-mapped; none changed (its mapped record is as stored): its last_changed stays
    assert (full["new"], full["changed"], full["unchanged"], full["not_modified"]) == (0, 0, 7, 0)
    assert "If-None-Match" not in portal.requests[-1][2]


def test_a_second_writer_exits_2_at_once_or_waits_with_wait(tmp_path, portal):
    from catalog.lock import WriterLock

    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    db = tmp_path / "c.duckdb"
    args = ["--config", config, "--db", str(db)]
    assert invoke("harvest", *args).exit_code == 0
    portal.clear_log()
    with WriterLock(db):                              # a harvest still running from last night
        busy = CliRunner().invoke(cli, ["harvest", *args])
        assert busy.exit_code == 2 and "pass --wait (or --wait-minutes N) to wait for it" in busy.output
        assert f"{db} is being written by process {os.getpid()}" in busy.output
        for command in (["records", "city:x", *args], ["overlap", "--db", str(db)]):   # every command that writes
            refused = CliRunner().invoke(cli, command)
            assert refused.exit_code == 2 and "is being written by" in refused.output
        assert portal.requests == []                  # nothing was asked of the portal
    holder = WriterLock(db)
    holder.acquire()
    threading.Timer(0.5, holder.release).start()
    waited = CliRunner().invoke(cli, ["harvest", "--wait", *args])   # exit 0: it had the lock only once released
    assert waited.exit_code == 0


def test_wait_minutes_bounds_the_wait_then_exits_2_naming_the_holder(tmp_path, portal):
    """`--wait` waits as long as it takes: behind a stuck harvest, the nights after it queued up.
    `--wait-minutes N` waits as --wait does for N minutes at most, then exits 2 as without it,
    naming the holder; every command that writes the catalogue takes it."""
    from catalog.lock import WriterLock

    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    db = tmp_path / "c.duckdb"
    args = ["--config", config, "--db", str(db)]
    assert invoke("harvest", *args).exit_code == 0
    portal.clear_log()
    with WriterLock(db):                              # a harvest stuck since last night
        for command in (["harvest", *args], ["records", "city:x", *args], ["overlap", "--db", str(db)],
                        ["retire", "gone", *args]):
            given_up = CliRunner().invoke(cli, [*command, "--wait-minutes", "0.01"])
            assert given_up.exit_code == 2, (command, given_up.output)
            assert f"{db} is still being written by process {os.getpid()}" in given_up.output, given_up.output
            assert "at the end of the wait asked (--wait-minutes)" in given_up.output
        assert portal.requests == []
    holder = WriterLock(db)
    holder.acquire()
    threading.Timer(0.5, holder.release).start()
    waited = CliRunner().invoke(cli, ["harvest", "--wait-minutes", "5", *args])   # within the bound: as --wait
    assert waited.exit_code == 0 and sum(portal.hits.values()) > 0
    for bad in ("0", "-1", "10081", "soon"):
        assert CliRunner().invoke(cli, ["harvest", "--wait-minutes", bad, *args]).exit_code == 2


def test_a_catalogue_of_a_newer_civicat_keeps_every_writer_out_before_any_request(tmp_path, portal, caplog):
    """A catalogue a newer civicat migrated (a rollback after an upgrade, a second install on
    the same data/): an older writer would write a schema it does not know. Every command
    that writes exits 2 naming the migration, before any request; readers read it, saying so."""
    import duckdb

    from catalog.versions import shipped_migrations
    newer = max(shipped_migrations()) + 1
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"), ("gone", "dcat-us", portal.url))
    db = tmp_path / "c.duckdb"
    args = ["--config", config, "--db", str(db)]
    assert CliRunner().invoke(cli, ["harvest", *args]).exit_code == 1   # ('gone' fails: its data.json is no document)
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    with duckdb.connect(str(db)) as con:
        # (a version past every one this civicat ships)
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, 'datasets_region')", [newer])
        runs = con.execute("SELECT count(*) FROM harvest_runs").fetchone()
    portal.clear_log()
    for command in (["harvest", *args], ["records", "city:x", *args], ["overlap", "--db", str(db)],
                    ["retire", "gone", *args]):
        refused = CliRunner().invoke(cli, command)
        assert refused.exit_code == 2, (command, refused.output)
        assert f"cannot open the catalogue {db}" in refused.output and f"{newer:04d}_datasets_region" in refused.output
        assert "newer civicat" in refused.output
    assert portal.requests == []
    with duckdb.connect(str(db)) as con:
        assert con.execute("SELECT count(*) FROM harvest_runs").fetchone() == runs
    caplog.clear()
    read = CliRunner().invoke(cli, ["runs", "--db", str(db), "--json"])   # a reader reads it, saying so
    assert read.exit_code == 0 and json.loads(read.stdout)[0]["portal_id"] in {"city", "gone"}
    [said] = [r.getMessage() for r in caplog.records if "newer civicat" in r.getMessage()]
    assert f"was migrated by a newer civicat ({newer:04d}_datasets_region; this one knows up to 00" in said
    assert said.endswith("read as this one knows it")
    assert said.startswith(f"{db} was migrated")   # the file the user gave, not its read copy's


def test_an_export_that_would_put_right_a_newer_civicats_catalogue_is_refused_without_a_traceback(tmp_path, portal):
    """An export puts right what a records pull killed between its publish and its record left
    (catalog.export._copy_made_current), a write: on a catalogue a newer civicat migrated it
    ended in CatalogueTooNew's traceback (exit 1). It is the writers' refusal: exit 2 naming
    the catalogue and the migration, nothing written, no export."""
    import duckdb

    from catalog.records import RECORDING, RecordsLayout

    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    db = tmp_path / "c.duckdb"
    assert CliRunner().invoke(cli, ["harvest", "--config", config, "--db", str(db)]).exit_code == 0
    with duckdb.connect(str(db)) as con:
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (9999, 'from_the_future')")
    layout = RecordsLayout.beside(db)
    layout.staging_root.mkdir(parents=True, exist_ok=True)
    intent = layout.staging_root / f"{RECORDING}city-x.json"   # a pull killed before its record
    intent.write_text("{}")
    out = tmp_path / "export"
    refused = CliRunner().invoke(cli, ["export", "--out", str(out), "--db", str(db), "--config", config])
    assert refused.exit_code == 2, refused.output
    assert refused.exception is None or isinstance(refused.exception, SystemExit), refused.exception
    assert refused.stderr.startswith(f"Error: cannot open the catalogue {db}: {db} was migrated by a newer civicat "
                                     "(9999_from_the_future"), refused.stderr
    assert "Traceback" not in refused.output and not out.exists() and intent.exists()


def test_errors_not_about_the_command_line_give_no_usage_hint(tmp_path, portal):
    """A bad config, a catalogue held by another writer, or one a newer civicat migrated, each
    exit 2 with click's usage line and "Try '... harvest --help' for help." before the
    error: noise in a cron mail, whose command line was right. A usage error keeps them."""
    import duckdb

    from catalog.lock import WriterLock

    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    db = tmp_path / "c.duckdb"
    assert CliRunner().invoke(cli, ["harvest", "--config", config, "--db", str(db)]).exit_code == 0
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text('[[portals]]\nid = "x"\nkind = "nope"\nurl = "http://h"\n')

    def refused(*args: str, env: dict | None = None) -> str:
        result = CliRunner().invoke(cli, list(args), env=env)
        assert result.exit_code == 2, result.output
        return result.stderr

    said = refused("harvest", "--config", str(bad_config), "--db", str(db))
    assert said.startswith("Error: ") and "bad.toml" in said and "city: missing" in said and "--help" not in said, said
    said = refused("harvest", "--config", config, "--db", str(db), env={"CIVICAT_HTTP_MAX_ATTEMPTS": "many"})
    assert said.startswith("Error: ") and "CIVICAT_HTTP_MAX_ATTEMPTS" in said and "--help" not in said, said
    with WriterLock(db):
        said = refused("harvest", "--config", config, "--db", str(db))
    assert said.startswith("Error: ") and "being written by" in said and "--help" not in said, said
    with duckdb.connect(str(db)) as con:
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (9999, 'from_the_future')")
    said = refused("harvest", "--config", config, "--db", str(db))
    assert said.startswith(f"Error: cannot open the catalogue {db}") and "newer civicat" in said, said
    assert "--help" not in said and "Usage:" not in said
    said = refused("harvest", "--no-such-option")   # the command line's own error keeps its hint
    # (click names the first of -h/--help before 8.4, the long one from 8.4 on)
    assert said.startswith("Usage: ") and re.search(r"harvest (-h|--help)' for help\.", said), said


def test_runs_a_crash_left_running_are_closed_by_the_next_harvest(tmp_path, portal):
    from datetime import UTC, datetime

    from catalog.store import Store

    db = tmp_path / "c.duckdb"
    store = Store(db)
    store.start_run("20260101T000000Z-dead", "city", datetime(2026, 1, 1, tzinfo=UTC))   # then: kill -9
    (tmp_path / ".c.duckdb.staging" / "tmpdead").mkdir(parents=True)
    store.close()
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    assert invoke("harvest", "--config", config, "--db", str(db)).exit_code == 0
    runs = json.loads(invoke("runs", "--db", str(db), "--json").output)
    dead = next(r for r in runs if r["run_id"] == "20260101T000000Z-dead")
    assert (dead["status"], dead["error_type"]) == ("failed", "Interrupted") and "killed" in dead["error_message"]
    assert not (tmp_path / ".c.duckdb.staging" / "tmpdead").exists()


def test_runs_a_harvest_that_crashed_on_an_error_left_running_are_closed_naming_it_not_as_killed(
        tmp_path, portal, monkeypatch, caplog):
    """A harvest whose catalogue's disk filled as it recorded a portal's end ended on DuckDB's
    error, its run left 'running'; the next harvest closed it as `Interrupted`, "(killed?)",
    though nothing was killed and the error was known. The crashed harvest says it in its lock's
    record (the catalogue takes no more writes): the next one closes its runs `Crashed`, naming it."""
    import duckdb

    from catalog.store import Store

    db = tmp_path / "c.duckdb"
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    assert invoke("harvest", "--config", config, "--db", str(db)).exit_code == 0
    full = f'IO Error: Could not write file "{db}.wal": No space left on device'

    def disk_full(self, run_id, portal_id, report):
        raise duckdb.IOException(full)

    with monkeypatch.context() as patched:
        patched.setattr(Store, "finish_run", disk_full)
        crashed = CliRunner().invoke(cli, ["harvest", "--config", config, "--db", str(db)])
    # (a disk full is said in one line, no traceback, since session 30: the lock's record keeps DuckDB's words)
    assert crashed.exit_code == 1 and isinstance(crashed.exception, SystemExit), crashed.output
    assert crashed.stderr.startswith("harvest failed: no room to write the catalogue's write-ahead log ("), crashed.stderr
    caplog.clear()
    assert invoke("harvest", "--config", config, "--db", str(db)).exit_code == 0
    said = " ".join(r.getMessage() for r in caplog.records if "never finished" in r.getMessage())
    assert "1 portal run(s) of an earlier harvest never finished: it ended on an error (IOException: " in said, said
    assert "No space left on device" in said and "killed" not in said
    runs = json.loads(invoke("runs", "--db", str(db), "--json").output)
    [closed] = [r for r in runs if r["error_type"] is not None]
    assert (closed["status"], closed["error_type"]) == ("failed", "Crashed")
    assert "the run did not finish: its harvest (process " in closed["error_message"]
    assert "ended on an error it could not record in the catalogue: IOException: " + full in closed["error_message"]
    caplog.clear()   # said once: the next harvest finds nothing to close, and a kill later is no crash
    store = Store(db)
    store.start_run("20990101T000000Z-dead", "city", datetime(2099, 1, 1, tzinfo=UTC))   # then: kill -9
    store.close()
    assert invoke("harvest", "--config", config, "--db", str(db)).exit_code == 0
    said = [r.getMessage() for r in caplog.records if "never finished" in r.getMessage()]
    assert len(said) == 1 and "ended without a word (killed, or the machine stopped)" in said[0], said
    dead = next(r for r in json.loads(invoke("runs", "--db", str(db), "--json").output)
                if r["run_id"] == "20990101T000000Z-dead")
    assert dead["error_type"] == "Interrupted"


def test_a_portal_out_of_the_config_is_warned_of_at_the_end_and_retired_only_when_asked(tmp_path, portal, caplog):
    url = portal.url + "/data.json"
    db = str(tmp_path / "c.duckdb")
    config = write_config(tmp_path, ("city", "dcat-us", url), ("town", "dcat-us", url))
    assert invoke("harvest", "--config", config, "--db", db).exit_code == 0
    assert json.loads(invoke("harvest", "--portal", "city", "--config", config, "--db", db, "--json").output)[
        "not_in_config"] == []                                              # --portal drops nothing, says nothing
    write_config(tmp_path, ("city", "dcat-us", url))                        # town taken out of the config
    caplog.clear()
    report = json.loads(invoke("harvest", "--config", config, "--db", db, "--json").output)
    assert report["not_in_config"] == [{"portal_id": "town", "live_datasets": 7}]
    [warning] = [r.getMessage() for r in caplog.records if "not in" in r.getMessage()]   # once
    assert "town (7 live datasets)" in warning and "civicat retire" in warning
    table = invoke("harvest", "--config", config, "--db", db).output
    assert f"town: not in {config}, 7 live datasets kept" in table
    assert invoke("sql", "--db", db, "--format", "csv",          # nothing removed by the harvests
                  "SELECT count(*) FROM datasets WHERE portal_id = 'town' AND deleted_at IS NULL").output == "count_star()\n7\n"

    [title] = json.loads(invoke("sql", "--db", db, "--json", "SELECT title FROM datasets LIMIT 1").output)[0].values()

    def portals_found(text):
        return {h["uid"].split(":")[0] for h in json.loads(invoke("search", "--db", db, "--json", text).output)}

    assert portals_found(title) == {"city", "town"}
    still = CliRunner().invoke(cli, ["retire", "city", "--config", config, "--db", db])
    assert still.exit_code == 2 and "'city' is still in" in still.output
    unknown = CliRunner().invoke(cli, ["retire", "twon", "--config", config, "--db", db])
    assert unknown.exit_code == 2 and "those it holds: town" in unknown.output
    retired = json.loads(invoke("retire", "town", "--config", config, "--db", db, "--json").output)
    assert (retired["portal_id"], retired["removed"]) == ("town", 7)
    rows = json.loads(invoke("sql", "--db", db, "--json", "SELECT count(*) AS n, count(deleted_at) AS removed, "
                             "count(DISTINCT deleted_at) AS at FROM datasets WHERE portal_id = 'town'").output)
    assert rows == [{"n": 7, "removed": 7, "at": 1}]                        # marked, not purged
    # (in the order they happened: run ids begin with their second, and two runs of one second
    # follow their random suffixes)
    events = ("SELECT run_id, event, count(*) AS n FROM dataset_events WHERE portal_id = 'town' GROUP BY ALL "
              "ORDER BY min(occurred_at)")
    first_run = json.loads(invoke("sql", "--db", db, "--json", "SELECT arg_min(run_id, started_at) AS r FROM harvest_runs "
                                  "WHERE portal_id = 'town'").output)[0]["r"]
    assert json.loads(invoke("sql", "--db", db, "--json", events).output) == [   # its events: new once, removed
        {"run_id": first_run, "event": "new", "n": 7}, {"run_id": retired["run_id"], "event": "removed", "n": 7}]
    [run] = [r for r in json.loads(invoke("runs", "--db", db, "--json").output) if r["run_id"] == retired["run_id"]]
    assert (run["portal_id"], run["status"], run["removed"]) == ("town", "ok", 7)
    assert portals_found(title) == {"city"}                                 # out of search
    assert json.loads(invoke("harvest", "--config", config, "--db", db, "--json").output)["not_in_config"] == []
    again = CliRunner().invoke(cli, ["retire", "town", "--config", config, "--db", db])
    assert again.exit_code == 2 and "Usage:" not in again.output   # (session 36: said "no live dataset" alone)
    assert re.search(rf"Error: 'town' is already retired: 7 datasets marked removed on \d{{4}}-\d\d-\d\d \d\d:\d\d UTC "
                     rf"\(run {retired['run_id']}\); nothing left to retire\n", again.output), again.output
    write_config(tmp_path, ("city", "dcat-us", url), ("town", "dcat-us", url))   # put back: listed afresh
    back = json.loads(invoke("harvest", "--config", config, "--db", db, "--json").output)
    assert [(p["portal_id"], p["changed"]) for p in back["portals"]] == [("city", 0), ("town", 7)]
    assert json.loads(invoke("sql", "--db", db, "--json", events).output)[-1] == {
        "run_id": back["run_id"], "event": "back", "n": 7}
    assert portals_found(title) == {"city", "town"}


def test_logs_go_to_stderr_as_json_lines_with_log_format_json(tmp_path, portal):
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"),
                          ("down", "dcat-us", "http://127.0.0.1:9/data.json"))
    result = subprocess.run([sys.executable, "-m", "harvester", "--log-format", "json", "-v", "harvest", "--json",
                             "--config", config, "--db", str(tmp_path / "c.duckdb")],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "CIVICAT_HTTP_MAX_ATTEMPTS": "1"})
    assert result.returncode == 1
    report = json.loads(result.stdout)                # stdout: the report alone
    assert [p["status"] for p in report["portals"]] == ["ok", "failed"]
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    assert any(line["level"] == "error" and line["message"].startswith("down: harvest failed") for line in lines)
    assert any(line["level"] == "info" and line["message"].startswith("city: ok: 7 seen, 7 new") for line in lines)


def test_errors_that_end_a_command_are_json_log_lines_with_log_format_json(tmp_path, portal, monkeypatch):
    def json_lines(result):
        lines = [json.loads(line) for line in result.stderr.splitlines()]
        assert lines and all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
        return lines

    bad_config = tmp_path / "bad.toml"
    bad_config.write_text('[[portals]]\nid = "x"\nkind = "nope"\nurl = "http://h"\n')
    db = str(tmp_path / "c.duckdb")
    for args, says in ((["harvest", "--config", str(bad_config), "--db", db], "bad.toml"),   # a config at 02:15
                       (["harvest", "--no-such-option"], "--no-such-option"),               # click's own usage error
                       (["sql", "DELETE FROM datasets", "--db", db], "")):                  # no catalogue
        result = CliRunner().invoke(cli, ["--log-format", "json", *args])
        [line] = json_lines(result)
        assert result.exit_code == 2 and (line["level"], line["exit_code"]) == ("error", 2) and says in line["message"]
    plain = CliRunner().invoke(cli, ["harvest", "--config", str(bad_config), "--db", db])
    assert plain.exit_code == 2 and plain.stderr.startswith("Error: ")                      # plain logs: as before

    monkeypatch.setenv("CIVICAT_HTTP_MAX_ATTEMPTS", "1")
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"),
                          ("down", "dcat-us", "http://127.0.0.1:9/data.json"))
    failed = CliRunner().invoke(cli, ["--log-format", "json", "harvest", "--config", config, "--db", db])
    assert failed.exit_code == 1 and "city" in failed.stdout                                 # the table, on stdout
    assert [(line["message"].split(":")[:2], line["exit_code"]) for line in json_lines(failed)] == [
        (["down", " FAILED"], 1)]


def test_an_error_of_a_command_s_own_is_a_json_log_line_and_exit_1_with_log_format_json(tmp_path, monkeypatch):
    """An error no handler expects (a bug, the catalogue's disk full) ended the command with
    Python's traceback, plain text in a JSON log, which a log collector took for as many
    lines; exit 1, as README says. With --log-format json it is one JSON line, the traceback
    in `exception`; plain logs keep the traceback."""
    import catalog.overlap

    from catalog.store import Store
    db = tmp_path / "c.duckdb"
    Store(db).close()

    def fails(*args, **kwargs):
        raise RuntimeError("an error of its own")
    monkeypatch.setattr(catalog.overlap, "detect", fails)
    result = CliRunner().invoke(cli, ["--log-format", "json", "overlap", "--db", str(db)])
    assert result.exit_code == 1, result.stderr
    [line] = [json.loads(line) for line in result.stderr.splitlines()]
    assert (line["level"], line["exit_code"]) == ("error", 1)
    assert line["message"] == "overlap failed on an error civicat did not expect: RuntimeError: an error of its own"
    assert line["exception"].startswith("Traceback") and "RuntimeError: an error of its own" in line["exception"]
    plain = CliRunner().invoke(cli, ["overlap", "--db", str(db)])
    assert plain.exit_code == 1 and isinstance(plain.exception, RuntimeError)   # (raised: Python prints it)


def test_a_command_out_of_room_says_which_file_without_a_traceback(tmp_path, monkeypatch):
    """A command whose write found its disk full ended in Python's traceback (plain logs) or "failed on
    an error civicat did not expect" (JSON logs), in DuckDB's words: a full disk is no bug. Exit 1,
    one line naming the file as what it is, its file system's free space, and DuckDB's words."""
    import duckdb

    import catalog.overlap
    from catalog.store import Store
    db = tmp_path / "c.duckdb"
    Store(db).close()

    def fails(*args, **kwargs):
        raise duckdb.TransactionException(f'TransactionContext Error: Failed to commit: Could not write file "{db}.wal": '
                                          "No space left on device")
    monkeypatch.setattr(catalog.overlap, "detect", fails)
    for log_format in ("plain", "json"):
        result = CliRunner().invoke(cli, ["--log-format", log_format, "overlap", "--db", str(db)])
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.stderr
        said = result.stderr if log_format == "plain" else json.loads(result.stderr)["message"] + "\n"
        assert said.startswith(f"overlap failed: no room to write the catalogue's write-ahead log ({db}.wal): its "
                               "file system is full; "), said
        assert " MB free of " in said and said.endswith('Could not write file "%s.wal": No space left on device)\n' % db)
        assert "Traceback" not in result.stderr


def test_a_catalogue_open_in_another_process_keeps_the_harvest_out_clearly_or_waits(tmp_path, portal, caplog):
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    db = tmp_path / "c.duckdb"
    args = ["harvest", "--config", config, "--db", str(db)]
    assert invoke(*args).exit_code == 0
    notebook = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time\n"
                                 f"con = duckdb.connect({str(db)!r}, read_only=True)\nprint('open', flush=True)\n"
                                 "sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert line_of(notebook) == "open\n"              # an analyst's notebook, read-only
        busy = CliRunner().invoke(cli, args)
        assert busy.exit_code == 2 and f"is open in process {notebook.pid}" in busy.output and "--wait" in busy.output
        given_up = CliRunner().invoke(cli, ["harvest", "--wait-minutes", "0.05", *args[1:]])   # 3 s
        assert given_up.exit_code == 2 and f"is open in process {notebook.pid}" in given_up.output
        assert "still open after --wait-minutes 0.05" in given_up.output
        caplog.clear()
        threading.Timer(4.5, notebook.stdin.close).start()   # the analyst closes it
        waited = CliRunner().invoke(cli, ["harvest", "--wait", *args[1:]])   # exit 0: only once it closed
        assert waited.exit_code == 0 and notebook.wait(5) == 0
        # said once, not every 2 seconds it waited (a night's wait filled the cron mail)
        said = [r.getMessage() for r in caplog.records if "waiting for it to close" in r.getMessage()]
        assert len(said) == 1 and f"{db} is open in process {notebook.pid} (" in said[0], said
    finally:
        notebook.kill()
        notebook.wait()


def test_readers_say_clearly_that_a_harvest_holds_the_catalogue(tmp_path, portal):
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    db = tmp_path / "c.duckdb"
    assert invoke("harvest", "--config", config, "--db", str(db)).exit_code == 0
    read_copy_path(db).unlink()   # no read copy yet (a catalogue last written by an older civicat)
    writer = subprocess.Popen([sys.executable, "-c", "import duckdb, sys\n"
                               f"con = duckdb.connect({str(db)!r})\nprint('open', flush=True)\nsys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert line_of(writer) == "open\n"   # a harvest writing the catalogue
        for args in (["runs"], ["sql", "SELECT 1"], ["search", "permits"], ["similar", "city:x"],
                     ["export", "--out", str(tmp_path / "out")]):
            result = CliRunner().invoke(cli, [*args, "--db", str(db)])
            assert result.exit_code == 1, (args, result.output)
            assert f"is being written by process {writer.pid}" in result.output, (args, result.output)
    finally:
        writer.kill()
        writer.wait()


# a civicat writer as a harvest holds the catalogue: the writer lock (its holder record naming
# the command and since when), then the DuckDB file; argv[2] "stale": a holder record naming
# this process, the lock itself not held (a writer killed outright, its PID given to another)
CIVICAT_WRITER = """
import json, sys, datetime, duckdb
from catalog.lock import WriterLock, lock_path
db, how = sys.argv[1], sys.argv[2]
sys.argv = ["/usr/local/bin/civicat", "harvest", "--records"]
lock = WriterLock(db, pulls_records=True)   # (as the CLI takes it for harvest --records)
lock.acquire()
if how == "stale":
    lock.release()
con = duckdb.connect(db)
print("open", flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("how", ["held", "stale"])
def test_readers_blocked_by_a_civicat_writer_name_its_command_and_since_when(tmp_path, portal, how):
    """A reader blocked by a harvest named DuckDB's view of the writer: the Python binary and a
    PID. Where that PID holds the catalogue's writer lock, the message names the civicat
    command and since when, from the lock's holder record; a record the lock no longer backs
    is not taken for the holder."""
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    db = tmp_path / "c.duckdb"
    assert invoke("harvest", "--config", config, "--db", str(db)).exit_code == 0
    read_copy_path(db).unlink()   # no read copy yet
    writer = subprocess.Popen([sys.executable, "-c", CIVICAT_WRITER, str(db), how], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": REPO})
    try:
        assert line_of(writer) == "open\n"
        since = json.loads((tmp_path / "c.duckdb.lock").read_text())["since"]
        for args in (["sql", "SELECT 1"], ["search", "permits"], ["export", "--out", str(tmp_path / "out")]):
            result = CliRunner().invoke(cli, [*args, "--db", str(db)])
            assert result.exit_code == 1, (args, result.output)
            if how == "held":   # (export: a records pull keeps it out, the copy or not)
                why = (": a records pull replaces records folders" if args[0] == "export"
                       else ", and DuckDB lets no reader open it")
                assert (f"{db} is being written by process {writer.pid} (civicat harvest --records, since {since})"
                        + why) in result.output, (args, result.output)
            else:
                assert f"is being written by process {writer.pid} (" in result.output, (args, result.output)
                assert "civicat harvest" not in result.output and "(a harvest?)" in result.output
    finally:
        writer.kill()
        writer.wait()


def test_readers_read_the_copy_the_last_writer_published_while_a_harvest_writes(tmp_path, portal, caplog):
    """DuckDB lets no reader open the file a harvest writes: the readers open the read copy the
    last writer published, and say so on stderr, naming the writer and the copy's time."""
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    db = tmp_path / "c.duckdb"
    assert invoke("harvest", "--config", config, "--db", str(db)).exit_code == 0
    copy = read_copy_path(db)
    as_of = datetime.fromtimestamp(copy.stat().st_mtime, UTC).isoformat(timespec="seconds")
    [uid] = json.loads(invoke("sql", "--db", str(db), "--json", "SELECT min(uid) AS uid FROM datasets").output)[0].values()
    live = "SELECT count(*) AS live FROM datasets WHERE deleted_at IS NULL"
    with writer_under_way(db, "harvest") as writer:
        since = json.loads((tmp_path / "c.duckdb.lock").read_text())["since"]
        said = (f"{db} is being written by process {writer.pid} (civicat harvest, since {since}): reading its read "
                f"copy {copy}, the catalogue as of {as_of} (when the last writer ended)")
        reader = subprocess.run([sys.executable, "-m", "harvester", "sql", "--db", str(db), "--json", live],
                                capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": REPO})
        assert reader.returncode == 0, reader.stderr
        assert json.loads(reader.stdout) == [{"live": 7}]   # the last committed catalogue, not the merge under way
        assert said in reader.stderr
        for args in (["runs", "--json"], ["search", "--json", "permits"], ["similar", "--json", uid]):
            caplog.clear()
            result = CliRunner().invoke(cli, [*args, "--db", str(db)])
            assert result.exit_code == 0, (args, result.output)
            assert json.loads(result.stdout) is not None and said in caplog.text, (args, caplog.text)
        assert len(json.loads(invoke("runs", "--db", str(db), "--json").stdout)) == 1


# a civicat writer (harvest, records, retire, overlap) started: its lock taken, the catalogue
# opened as they open it, held until stdin closes; argv[2] "killed": every dataset marked
# removed and committed (into the WAL alone: the checkpoint threshold is 1 GB), then kill -9
WRITER_STARTED = """
import math, os, signal, sys
from pathlib import Path
from catalog.store import Store
from harvester.cli import Wait, open_for_writing, writer_lock
db, killed = Path(sys.argv[1]), sys.argv[2:] == ["killed"]
sys.argv = ["/usr/local/bin/civicat", "harvest"]
lock = writer_lock(db, Wait(-math.inf))
store = open_for_writing(Store, db, Wait(-math.inf), lock)
if killed:
    store.con.execute("UPDATE datasets SET deleted_at = now()")
    os.kill(os.getpid(), signal.SIGKILL)
print("open", flush=True)
sys.stdin.read()
"""


def test_a_writer_that_ended_without_its_copy_leaves_the_next_writer_s_readers_the_catalogue_as_it_is(
        tmp_path, portal):
    """A writer stopped (Ctrl-C, SIGTERM: no copy after a stop), killed, or whose copy failed (the
    disk full) ended without publishing the read copy: the next writer's readers read the copy of
    the writer before it, a catalogue that goes back in time (r23: the portals the stopped harvest
    stored, gone). The next writer brings the copy up to date before it opens the catalogue."""
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    db = tmp_path / "c.duckdb"
    assert invoke("harvest", "--config", config, "--db", str(db)).exit_code == 0
    import duckdb
    with duckdb.connect(str(db)) as con:   # a writer that ended without publishing the copy
        con.execute("UPDATE datasets SET deleted_at = now()")
    live = "SELECT count(*) AS live FROM datasets WHERE deleted_at IS NULL"
    assert json.loads(invoke("sql", "--db", str(db), "--json", live).stdout) == [{"live": 0}]
    written = datetime.fromtimestamp(db.stat().st_mtime, UTC).isoformat(timespec="seconds")
    writer = subprocess.Popen([sys.executable, "-c", WRITER_STARTED, str(db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": REPO})
    try:
        assert line_of(writer) == "open\n"
        reader = subprocess.run([sys.executable, "-m", "harvester", "sql", "--db", str(db), "--json", live],
                                capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": REPO})
        assert reader.returncode == 0, reader.stderr
        assert json.loads(reader.stdout) == [{"live": 0}]   # as the catalogue is, not as it was before that writer
        # (the copy holds the catalogue's last write again, the writer having written nothing yet:
        # read as the catalogue itself is, nothing to say)
        assert "reading its read copy" not in reader.stderr, reader.stderr
        assert datetime.fromtimestamp(read_copy_path(db).stat().st_mtime, UTC).isoformat(timespec="seconds") == written
    finally:
        writer.stdin.close()
        assert writer.wait(30) == 0


def test_the_commits_of_a_writer_killed_with_its_wal_are_in_the_copy_the_next_writer_s_readers_read(
        tmp_path, portal):
    """A writer killed after commits leaves them in the WAL (`civicat.duckdb.wal`), not in the
    file: the copy is not refreshed from a file with a WAL, and the next writer replays it as it
    opens the catalogue. Its readers read the copy: they must find those commits, which are the
    catalogue's (r24: the copy of the writer before the killed one was read, as of its time)."""
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    db = tmp_path / "c.duckdb"
    assert invoke("harvest", "--config", config, "--db", str(db)).exit_code == 0
    env = {**os.environ, "PYTHONPATH": REPO}
    killed = subprocess.run([sys.executable, "-c", WRITER_STARTED, str(db), "killed"], capture_output=True, text=True,
                            timeout=60, env=env)
    assert killed.returncode == -9, killed.stderr
    assert (tmp_path / "c.duckdb.wal").stat().st_size > 0   # its commit, in the WAL alone
    live = "SELECT count(*) AS live FROM datasets WHERE deleted_at IS NULL"
    writer = subprocess.Popen([sys.executable, "-c", WRITER_STARTED, str(db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert line_of(writer) == "open\n"
        reader = subprocess.run([sys.executable, "-m", "harvester", "sql", "--db", str(db), "--json", live],
                                capture_output=True, text=True, timeout=60, env=env)
        assert reader.returncode == 0, reader.stderr
        assert json.loads(reader.stdout) == [{"live": 0}], reader.stderr   # the killed writer's commit, read
    finally:
        writer.stdin.close()
        assert writer.wait(30) == 0
    assert json.loads(invoke("sql", "--db", str(db), "--json", live).stdout) == [{"live": 0}]


def test_a_writer_that_waited_for_a_process_holding_the_file_brings_the_copy_up_to_date_all_the_same(
        tmp_path, portal, monkeypatch):
    """The killed writer's WAL cannot be checkpointed while another process (a notebook) has the
    file open for writing: the writer waits for it, then checkpoints and brings the copy up to date
    before it opens the catalogue. (r24: the notebook closing between the two, the writer opened
    the catalogue at once, replaying the WAL, and left the copy without the killed writer's
    commits for its readers.)"""
    import math
    import time

    import duckdb

    import catalog.lock
    from catalog.store import Store
    from harvester.cli import Wait, open_for_writing, writer_lock

    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    db = tmp_path / "c.duckdb"
    assert invoke("harvest", "--config", config, "--db", str(db)).exit_code == 0
    killed = subprocess.run([sys.executable, "-c", WRITER_STARTED, str(db), "killed"], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PYTHONPATH": REPO})
    assert killed.returncode == -9, killed.stderr
    checkpoint_wal, refused = catalog.lock.checkpoint_wal, []

    def held_by_a_notebook_that_closes_now(path):
        if not refused:
            refused.append(path)
            raise duckdb.IOException(f'IO Error: Could not set lock on file "{path}": Conflicting lock is held in '
                                     "/usr/bin/python3 (PID 4242). See also https://duckdb.org/docs/connect/concurrency")
        checkpoint_wal(path)

    monkeypatch.setattr(catalog.lock, "checkpoint_wal", held_by_a_notebook_that_closes_now)
    lock = writer_lock(db, Wait(-math.inf))
    try:
        open_for_writing(Store, db, Wait(time.monotonic() + 60, 1), lock).close()
    finally:
        lock.release()
    assert refused == [db]
    with duckdb.connect(str(read_copy_path(db)), read_only=True) as copy:   # the killed writer's commit, in the copy
        assert copy.execute("SELECT count(*) FROM datasets WHERE deleted_at IS NULL").fetchone() == (0,)


def test_a_damaged_catalogue_is_said_so_not_taken_for_one_a_process_writes(tmp_path, portal):
    """DuckDB's error for a damaged file ("Corrupt database file: computed checksum ... in block
    at location ...") has "lock" in it (b-l-o-c-k): it was taken for another process's lock on
    the file. A writer waited for that process as long as it was let (`--wait`: for good), then
    named it; a reader read the read copy, saying a harvest was writing the catalogue (r23). Both
    now name the damage, at once."""
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    db = tmp_path / "c.duckdb"
    assert invoke("harvest", "--config", config, "--db", str(db)).exit_code == 0
    damaged = bytearray(db.read_bytes())
    damaged[3 * 4096:3 * 4096 + 8] = bytes(range(1, 9))   # (the first block's checksum)
    db.write_bytes(damaged)
    writer = CliRunner().invoke(cli, ["harvest", "--config", config, "--db", str(db), "--wait-minutes", "0.05"])
    assert writer.exit_code == 2 and "Corrupt database file" in writer.output, writer.output
    assert "open in" not in writer.output and "waiting" not in writer.output
    reader = CliRunner().invoke(cli, ["sql", "--db", str(db), "SELECT count(*) FROM datasets"])
    assert reader.exit_code == 2 and "Corrupt database file" in reader.output, reader.output
    assert "read copy" not in reader.output


@pytest.mark.parametrize("typed, meant", [("CHICAGO:ydr8-5enu", "'chicago:ydr8-5enu'"),
                                           ("chicago :ydr8-5enu", "'chicago:ydr8-5enu'"),
                                           ("chicgao:ydr8-5enu", "'chicago:ydr8-5enu'"),
                                           ("paris:ydr8-5enu", "(portals: boston, chicago)")])
def test_records_of_a_uid_whose_portal_is_typed_in_capitals_or_misspelt_names_the_uid_meant(tmp_path, typed, meant):
    """Session 41 (u41's leftover): a uid copied in capitals or with a space before its colon was refused as
    naming no portal, with every portal id of the config listed and none suggested."""
    config = write_config(tmp_path, ("chicago", "dcat-us", "http://127.0.0.1:9/data.json"),
                          ("boston", "dcat-us", "http://127.0.0.1:9/data.json"))
    from catalog.store import Store

    db = tmp_path / "c.duckdb"
    Store(db).close()
    written = db.stat().st_mtime_ns
    result = CliRunner().invoke(cli, ["records", typed, "--config", config, "--db", str(db)])
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert f"{typed!r} is not portal_id:source_id of a portal in {config}" in said, said
    assert (f"(did you mean {meant}?)" if meant.startswith("'") else meant) in said, said
    assert db.stat().st_mtime_ns == written   # (refused before the catalogue is opened: no request, no write)


def test_every_writer_publishes_the_read_copy_when_it_ends(tmp_path, portal):
    url = portal.url + "/data.json"
    db = tmp_path / "c.duckdb"
    config = write_config(tmp_path, ("city", "dcat-us", url), ("town", "dcat-us", url))
    copy = read_copy_path(db)

    def in_copy(sql):
        import duckdb
        with duckdb.connect(str(copy), read_only=True) as con:
            return con.execute(sql).fetchall()

    assert invoke("harvest", "--config", config, "--db", str(db)).exit_code == 0
    assert in_copy("SELECT portal_id, count(*) FROM datasets GROUP BY ALL ORDER BY 1") == [("city", 7), ("town", 7)]
    assert invoke("overlap", "--db", str(db)).exit_code == 0
    assert in_copy("SELECT count(*) > 0 FROM overlap_pairs") == [(True,)]
    write_config(tmp_path, ("city", "dcat-us", url))
    assert invoke("retire", "town", "--config", config, "--db", str(db)).exit_code == 0
    assert in_copy("SELECT count(deleted_at) FROM datasets WHERE portal_id = 'town'") == [(7,)]
    published = copy.stat().st_mtime_ns
    assert CliRunner().invoke(cli, ["records", "city:nope", "--config", config, "--db", str(db)]).exit_code == 2
    assert copy.stat().st_mtime_ns == published   # refused before any write: nothing to publish
    assert [p.name for p in tmp_path.iterdir() if "publishing" in p.name] == []


@pytest.mark.parametrize("options, chosen, pulls", [
    (["--portal", "records"], ["ds-1"], False),
    (["--records"], [], False),   # (no dataset chosen: none pulled)
    (["--records"], ["ds-1"], True),
])
def test_a_harvest_s_lock_says_whether_it_pulls_records_whatever_its_words(tmp_path, portal, monkeypatch, options,
                                                                          chosen, pulls):
    """An export waits for a records pull (or refuses): judged by the writer's words, `harvest
    --portal records --config records.toml` was one. The writer says what it is."""
    import harvester.pipeline
    from catalog.lock import lock_path

    config = tmp_path / "records.toml"
    config.write_text(f'[[portals]]\nid = "records"\ncity = "Records"\nkind = "dcat-us"\n'
                      f'url = "{portal.url}/data.json"\nrecords = {json.dumps(chosen)}\n')
    db = tmp_path / "c.duckdb"
    held, harvest = [], harvester.pipeline.harvest

    def harvest_seeing_the_lock(*args, **kwargs):
        held.append(json.loads(lock_path(db).read_text()))
        return harvest(*args, **kwargs)
    monkeypatch.setattr(harvester.pipeline, "harvest", harvest_seeing_the_lock)
    invoke("harvest", *options, "--config", str(config), "--db", str(db))
    assert [holder.get("pulls_records") for holder in held] == [pulls]


def test_control_characters_from_a_portal_never_reach_the_terminal(tmp_path):
    """A title carrying terminal escapes (clear the screen, set the window title) or a NUL is
    stored as the portal gave it, and shown escaped in every table the CLI prints."""
    hostile = "Crimes \x1b[2J\x1b]0;owned\x07 \x00 \x9b31m"
    document = make_data_json(2)
    document["dataset"][0]["title"] = hostile
    with DataJsonPortal(document) as portal:
        config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
        db = str(tmp_path / "c.duckdb")
        assert invoke("harvest", "--config", config, "--db", db).exit_code == 0
    stored = json.loads(invoke("sql", "--db", db, "SELECT title FROM datasets", "--format", "json").output)
    assert hostile in [row["title"] for row in stored]          # the catalogue keeps what was sent
    for output in (CliRunner(env={"COLUMNS": "400"}).invoke(cli, ["search", "--db", db, "crimes"]).output,   # (uncut)
                   invoke("sql", "--db", db, "SELECT title FROM datasets").output):
        assert "Crimes \\x1b[2J\\x1b]0;owned\\x07 \\x00 \\x9b31m" in output
        assert not any(ord(c) < 32 and c != "\n" or 0x7f <= ord(c) < 0xa0 for c in output), repr(output)


@pytest.mark.parametrize("name, value", [("CIVICAT_HTTP_MAX_BYTES", "-1"), ("CIVICAT_HTTP_MAX_BYTES", "0"),
                                         ("CIVICAT_HTTP_MAX_ATTEMPTS", "0"), ("CIVICAT_HTTP_BACKOFF", "-1"),
                                         ("CIVICAT_HTTP_MAX_RETRY_SECONDS", "nan"),
                                         ("CIVICAT_HTTP_MAX_DOWNLOAD_BYTES", "-1"), ("CIVICAT_HTTP_MAX_ATTEMPTS", "x"),
                                         ("CIVICAT_HTTP_REFUSED_SECONDS", "-1"),
                                         # a traceback and exit 1 from inside the harvest; -1 was taken as 0
                                         ("CIVICAT_MAP_WORKERS", "x"), ("CIVICAT_MAP_WORKERS", "-1"),
                                         # a raw OSError from requests at the first https request
                                         ("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem"),
                                         ("CURL_CA_BUNDLE", "/nonexistent/ca.pem")])
def test_a_bad_http_setting_in_the_environment_exits_2_before_any_request(tmp_path, portal, name, value):
    """The environment is config too: a negative size cap failed every portal of the night
    ("response is over the -1-byte cap"), and a zero attempt count was taken as one."""
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    result = CliRunner(env={name: value}).invoke(cli, ["harvest", "--config", config, "--db", str(tmp_path / "c.db")])
    assert result.exit_code == 2 and f"{name}={value!r}" in result.output, result.output
    assert sum(portal.hits.values()) == 0 and not (tmp_path / "c.db").exists()


def test_a_socks_proxy_no_request_can_go_through_exits_2_before_any_request(tmp_path, portal):
    """Every request of the night failed through it, retried ("connection failed: InvalidSchema");
    the setting is refused first, its variable named and its value (a password in it) not shown."""
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    result = CliRunner(env={"ALL_PROXY": "socks6://civicat:s3cret@127.0.0.1:1080", "NO_PROXY": ""}).invoke(
        cli, ["harvest", "--config", config, "--db", str(tmp_path / "c.db")])
    assert result.exit_code == 2, result.output
    assert "the proxy of environment variable ALL_PROXY is not valid: socks6:// is no SOCKS proxy" in result.output
    assert "s3cret" not in result.output
    assert sum(portal.hits.values()) == 0 and not (tmp_path / "c.db").exists()


@pytest.mark.parametrize("name, value, said", [("CIVICAT_HTTP_MAX_ATTEMPTS", "x", "is not a whole number"),
                                               ("CIVICAT_HTTP_MAX_BYTES", "1.5", "is not a whole number"),
                                               ("CIVICAT_HTTP_BACKOFF", "x", "is not a number")])
def test_a_bad_http_setting_says_what_it_should_be_in_words(tmp_path, portal, name, value, said):
    # it said "is not a int"
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    result = CliRunner(env={name: value}).invoke(cli, ["harvest", "--config", config, "--db", str(tmp_path / "c.db")])
    assert result.exit_code == 2 and f"{name}={value!r} {said}" in result.output, result.output


@pytest.fixture
def empty_catalogue(tmp_path, migrated_catalogue):
    new_store(tmp_path / "c.duckdb", migrated_catalogue).close()
    return str(tmp_path / "c.duckdb")


# SPEC: exit 2 is bad usage. A refused file read and a wrong table name exited 1 (DuckDB's
# error), a refused write and a parse error 2.
@pytest.mark.parametrize("query, said", [
    ("DROP TABLE datasets", "only read-only queries"),
    # the statement named as it was written: INSTALL was called "a LOAD statement", ATTACH "a ATTACH"
    ("INSTALL httpfs", "only read-only queries (SELECT) are allowed; this is an INSTALL or LOAD statement"),
    ("ATTACH 'other.duckdb'", "only read-only queries (SELECT) are allowed; this is an ATTACH statement"),
    ("SELEC uid FROM datasets", "cannot parse the query"),
    ("SELECT * FROM no_such_table", "Table with name no_such_table does not exist"),
    ("SELECT no_such_column FROM datasets", 'Referenced column "no_such_column" not found'),
    ("SELECT sum(uid) FROM datasets", "No function matches"),
    ("SELECT * FROM read_csv('/etc/passwd')", "refused: a query reads the catalogue's own tables only"),
    ("SELECT * FROM 'https://example.org/data.csv'", "refused: a query reads the catalogue's own tables only"),
])
def test_sql_exits_2_for_an_error_of_the_query_itself(empty_catalogue, query, said):
    result = CliRunner().invoke(cli, ["sql", "--db", empty_catalogue, query])
    assert result.exit_code == 2 and said in result.output, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("query, said", [
    ("SELECT CAST(v AS INTEGER) FROM (VALUES ('1'), ('x')) t(v)", "Could not convert string 'x'"),
    ("SELECT error('the data says no')", "the data says no"),
])
def test_sql_exits_1_when_a_valid_query_fails_as_it_runs(empty_catalogue, query, said):
    result = CliRunner().invoke(cli, ["sql", "--db", empty_catalogue, query])
    assert result.exit_code == 1 and said in result.output, result.output


def test_sql_csv_writes_lists_and_structs_as_json_text(empty_catalogue):
    # they were written in Python's repr (['a', "b's"]), which no JSON or CSV reader parses back
    import csv
    import io
    result = CliRunner().invoke(cli, ["sql", "--db", empty_catalogue, "--format", "csv",
                                      "SELECT ['a', 'b''s'] AS keywords, {'n': 1, 'at': DATE '2024-01-02'} AS s, "
                                      "[]::VARCHAR[] AS none, 'plain' AS text"])
    assert result.exit_code == 0, result.output
    header, row = list(csv.reader(io.StringIO(result.output)))
    assert header == ["keywords", "s", "none", "text"]
    assert [json.loads(cell) for cell in row[:3]] == [["a", "b's"], {"n": 1, "at": "2024-01-02"}, []]
    assert row[3] == "plain"


def test_sql_csv_ends_lines_with_a_line_feed_and_quotes_as_rfc_4180(empty_catalogue):
    # lines ended "\r\n": $(civicat sql --format csv ...) gave "chicago:x\r"
    result = CliRunner().invoke(cli, ["sql", "--db", empty_catalogue, "--format", "csv",
                                      "SELECT 'chicago:x' AS uid, 'two\nlines, \"quoted\"' AS note, 'a\rb' AS cr"])
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == b'uid,note,cr\nchicago:x,"two\nlines, ""quoted""","a\rb"\n'




def test_sql_json_writes_nan_and_infinity_as_null_so_that_strict_parsers_read_it(empty_catalogue):
    """`sum(errors) / sum(seen)` of a failed portal is NaN or Infinity: printed bare, as Python's
    json does, the document was no JSON (RFC 8259) and JavaScript's, Go's or orjson's parser refused it."""
    import orjson
    query = "SELECT 'nan'::DOUBLE AS a, 1 / 0 AS b, ['-inf'::DOUBLE, 1.5] AS l, {'x': 'nan'::FLOAT} AS s"
    result = CliRunner().invoke(cli, ["sql", "--db", empty_catalogue, "--format", "json", query])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.output) == [{"a": None, "b": None, "l": [None, 1.5], "s": {"x": None}}]
    csv_out = CliRunner().invoke(cli, ["sql", "--db", empty_catalogue, "--format", "csv", query]).output
    assert csv_out.splitlines()[1] == 'nan,inf,"[null, 1.5]","{""x"": null}"'   # a cell of JSON text is JSON too

# every DuckDB type a query can give, and what `sql --json` writes of it
SQL_TYPES = {
    "blob": ("'ab\\x00\\xFF'::BLOB", "YWIA/w=="),   # base64
    "interval": ("INTERVAL '1 year 2 months 3 days 04:05:06.5'", "P423DT4H5M6.5S"),   # (a month: 30 days)
    "negative_interval": ("INTERVAL '-1 day'", "-P1D"),
    "no_interval": ("INTERVAL '0 seconds'", "PT0S"),
    "decimal": ("1.25::DECIMAL(18,3)", 1.25),
    "hugeint": ("123456789012345678901234567890::HUGEINT", 123456789012345678901234567890),
    "ubigint": ("18446744073709551615::UBIGINT", 18446744073709551615),
    "uuid": ("'0b5a0c48-2b35-4b5e-8f7e-3f1e9a2d7c11'::UUID", "0b5a0c48-2b35-4b5e-8f7e-3f1e9a2d7c11"),
    "time": ("TIME '12:34:56.789'", "12:34:56.789000"),
    "timetz": ("TIMETZ '12:00:00+02'", "12:00:00+02:00"),
    "timestamptz": ("TIMESTAMPTZ '2024-01-02 03:04:05+02'", "2024-01-02T01:04:05+00:00"),
    "timestamp_ns": ("TIMESTAMP_NS '2024-01-01 00:00:00.123456789'", "2024-01-01T00:00:00.123456"),
    "date": ("DATE '2024-01-02'", "2024-01-02"),
    "list": ("['x'::BLOB, NULL]", ["eA==", None]),
    "array": ("[1.5::DOUBLE, 'nan'::DOUBLE]::DOUBLE[2]", [1.5, None]),
    "struct": ("{'a': 'inf'::DOUBLE, 'b': [INTERVAL 1 hour], 'c': 2.5::DECIMAL(4,1)}", {"a": None, "b": ["PT1H"], "c": 2.5}),
    "map": ("MAP {'k': 'v'}", {"k": "v"}),
    "map_of_others": ("MAP {DATE '2024-01-01': 'x'::BLOB, DATE '2024-01-02': NULL}", {"2024-01-01": "eA==", "2024-01-02": None}),
    "map_of_blobs": ("MAP {'a'::BLOB: 1}", {"YQ==": 1}),
    "map_of_numbers": ("MAP {1: true}", {"1": True}),
    "nan": ("'nan'::DOUBLE", None),
    "minus_inf": ("'-inf'::FLOAT", None),
    "enum": ("'a'::ENUM('a', 'b')", "a"),
    "bits": ("'101'::BIT", "101"),
    "union": ("union_value(k := 7)", 7),
    "json": ("'{\"a\": 1}'::JSON", '{"a": 1}'),
}


def test_sql_json_writes_every_duckdb_type_as_json_a_front_end_reads(empty_catalogue):
    """BLOB came out as Python's `"b'ab\\x00\\xff'"` and INTERVAL as `"423 days, 4:05:06.500000"`
    (a BLOB or an INTERVAL in a map's key failed the command with a TypeError): BLOB is base64,
    INTERVAL an ISO 8601 duration, in lists, structs and maps too, and every type DuckDB gives is JSON
    a strict parser reads. CSV writes a BLOB and an INTERVAL the same way."""
    import orjson
    query = "SELECT " + ", ".join(f"{sql} AS {name}" for name, (sql, _) in SQL_TYPES.items())
    result = CliRunner().invoke(cli, ["sql", "--db", empty_catalogue, "--json", query])
    assert result.exit_code == 0, result.output
    orjson.loads(result.output)   # (strict: NaN, a bare word, would fail it; it reads a HUGEINT as a float)
    assert json.loads(result.output) == [{name: value for name, (_, value) in SQL_TYPES.items()}]
    csv_out = CliRunner().invoke(cli, ["sql", "--db", empty_catalogue, "--format", "csv",
                                       "SELECT 'ab\\x00\\xFF'::BLOB AS b, INTERVAL '-36 hours' AS i"]).output
    assert csv_out == "b,i\nYWIA/w==,-P1DT12H\n"


def test_sql_csv_writes_a_portals_escape_sequences_as_they_are_also_into_a_file(empty_catalogue):
    """Text as the portal sent it (the README: escaped in tables only): click, writing to no
    terminal, took `\x1b[31m` out of every value, and `--format csv > file` held other text."""
    result = CliRunner().invoke(cli, ["sql", "--db", empty_catalogue, "--format", "csv",
                                      "SELECT 'Evil ' || chr(27) || '[31mRED' || chr(27) || '[0m' AS title"])
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == b"title\nEvil \x1b[31mRED\x1b[0m\n"

@pytest.mark.parametrize("command", [["harvest"], ["runs"], ["search", "permits"], ["similar", "city:x"], ["overlap"],
                                     ["sql", "SELECT 1"], ["records", "city:x"], ["export", "--out", "OUT"],
                                     ["export", "--out", "OUT", "--format", "data.json"]])
def test_a_db_that_is_no_catalogue_is_refused_with_exit_2_and_no_traceback(tmp_path, portal, command):
    """`--db` naming a file that is not a DuckDB database (the config, an export) ended in
    a DuckDB traceback, exit 1: for harvest, the code of a failed portal (export exited 1,
    the code of a catalogue a harvest holds, where README promises 2 for every command)."""
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    db = tmp_path / "c.duckdb"
    db.write_text("not a database\n")
    extra = ["--config", config] if command[0] in ("harvest", "records", "export") else []
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, [str(out) if arg == "OUT" else arg for arg in command] + ["--db", str(db), *extra])
    assert result.exit_code == 2, result.output
    assert not out.exists()
    assert f"Error: --db {db} is not a DuckDB catalogue: it is a text file (its first line: 'not a database')" \
        in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    assert sum(portal.hits.values()) == 0


def test_control_characters_in_a_portals_error_never_reach_the_terminal_through_the_logs(tmp_path):
    """A CKAN's own error message (success: false) is quoted in the failure: in the plain
    log lines on stderr as in the summary, its escape sequences are shown, not obeyed."""
    from tests.portals.ckan import CkanPortal

    with CkanPortal([]) as portal:
        portal.serve_json("/api/3/action/package_search", {"success": False, "error": {
            "__type": "Authorization Error", "message": "denied\x1b]0;owned\x07\x1b[2J"}})
        config = write_config(tmp_path, ("city", "ckan", portal.url))
        result = subprocess.run([sys.executable, "-m", "harvester", "harvest", "--config", config,
                                 "--db", str(tmp_path / "c.duckdb")], capture_output=True, text=True, timeout=120,
                                env={**os.environ, "CIVICAT_HTTP_MAX_ATTEMPTS": "1"})
    assert result.returncode == 1
    assert "harvest failed: CKAN error (Authorization Error): denied\\x1b]0;owned\\x07\\x1b[2J" in result.stderr
    assert "FAILED: CKAN error (Authorization Error): denied\\x1b]0;owned\\x07" in result.stderr
    assert not any(ord(c) < 32 and c not in "\n\t" for c in result.stderr), repr(result.stderr)


def harvested_with_warnings(tmp_path, portal, message_sql: str, occurred_sql: str, count: int):
    """A catalogue harvested from `portal` whose run then got `count` warnings ('dataset-<i>', i
    from 0, in random order), given their message and time by SQL over `i`: a connection to it."""
    import duckdb

    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    db = tmp_path / "c.duckdb"
    assert invoke("harvest", "--config", config, "--db", str(db)).exit_code == 0
    con = duckdb.connect(str(db))
    con.execute(f"""INSERT INTO harvest_errors (run_id, portal_id, source_id, stage, error_type, severity, message,
                                                occurred_at)
                    SELECT run_id, 'city', 'dataset-' || i, 'map', 'InvalidValue', 'warning', {message_sql},
                           {occurred_sql}
                    FROM (SELECT run_id FROM harvest_runs LIMIT 1), range(?) AS t(i) ORDER BY random()""", [count])
    return con


def test_runs_errors_json_holds_no_more_than_a_batch_of_errors_in_memory(tmp_path, portal):
    """`runs --errors --json` lists every error: a night of warnings on a large portal (one a
    dataset) is hundreds of thousands of rows, which it built as one list and one string of JSON
    (1.2 GB for 300,000) before printing a byte: memory must not grow with a portal."""
    harvested_with_warnings(tmp_path, portal, "repeat('m', 400) || i", "now() - i * INTERVAL 1 SECOND", 300000).close()
    db = tmp_path / "c.duckdb"
    out = tmp_path / "runs.json"
    measure = ("import resource, subprocess, sys\n"
               f"with open({str(out)!r}, 'wb') as out:\n"
               "    subprocess.run([sys.executable, '-m', 'harvester', 'runs', '--errors', '--json', '--db', "
               f"{str(db)!r}], stdout=out, check=True)\n"
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)")
    # (600 s: the child lists 300,000 errors, 37 s at load 12-15 on this 2-core machine, which 120 s would
    # not cover at load 40; the deadline is there for a hang, not a timing)
    peak_mb = int(run([sys.executable, "-c", measure], 600, capture_output=True, text=True, check=True).stdout)
    with open(out, "rb") as listed:
        sources = [line.strip() for line in listed if line.strip().startswith(b'"source_id": ')]
    assert len(sources) == 300000 and sources[:2] == [b'"source_id": "dataset-0",', b'"source_id": "dataset-1",']
    assert sources[-1] == b'"source_id": "dataset-299999",'   # newest first
    # (sorted all at once by DuckDB, with their messages: ~350 MB; a slice of 10,000 at a time: ~190)
    assert peak_mb < 260, f"runs --errors --json peaked at {peak_mb} MB"


def test_runs_errors_json_sorted_a_slice_at_a_time_is_every_error_newest_first(tmp_path, portal, monkeypatch):
    """Slices of 3 errors, times repeated across their edges: every error once, newest first."""
    from harvester import cli as cli_module
    con = harvested_with_warnings(tmp_path, portal, "'m'",
                                  "TIMESTAMPTZ '2026-01-01 00:00:00+00' - (i // 4) * INTERVAL 1 SECOND", 23)
    db = tmp_path / "c.duckdb"
    expected = [r[0] for r in con.execute("SELECT source_id, occurred_at FROM harvest_errors "
                                          "ORDER BY occurred_at DESC").fetchall()]
    times = dict(con.execute("SELECT source_id, occurred_at FROM harvest_errors").fetchall())
    con.close()
    monkeypatch.setattr(cli_module, "ERRORS_SORTED", 3)
    listed = [e["source_id"] for e in json.loads(invoke("runs", "--errors", "--json", "--db", str(db)).output)["errors"]]
    assert sorted(listed) == sorted(expected) and len(listed) == 23
    assert [times[s] for s in listed] == [times[s] for s in expected]   # (ties in any order)


@pytest.mark.parametrize("items", [[], [{"a": 1, "when": "x\ny", "list": [1, {"b": None}]}, {"é": "ü"}]])
def test_json_streamed_is_the_text_echo_json_prints(capsys, items):
    from datetime import UTC, datetime

    from harvester.cli import echo_json, echo_json_streamed
    head = {"runs": [{"started_at": datetime(2026, 1, 2, tzinfo=UTC), "n": [1, 2]}], "empty": {}}
    echo_json({**head, "errors": items})
    whole = capsys.readouterr().out
    echo_json_streamed(head, "errors", iter(items))
    assert capsys.readouterr().out == whole


def test_civicat_harvest_never_imports_pandas(tmp_path, portal):
    """The harvest's whole process, from opening the catalogue (its migrations, the runs an
    earlier harvest left) to the search index, keeps pandas out (catalog.lazy.pandas_kept_out)."""
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "harvester", "harvest", "--json",
                             "--config", config, "--db", str(tmp_path / "c.duckdb")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert [p["new"] for p in json.loads(result.stdout)["portals"]] == [7]
    # (-X importtime names a refused import too, without its submodules)
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert {"duckdb", "pyarrow"} <= imported and not [name for name in imported if name.startswith("pandas.")]


@pytest.mark.parametrize("command", [["runs"], ["runs", "--errors", "--json"], ["search", "data", "--json"],
                                     ["retire", "city"]])
def test_commands_that_never_hand_duckdb_a_dataframe_never_import_pandas(tmp_path, portal, command):
    """DuckDB imported pandas (and numpy: ~0.3 s of CPU, ~40 MB) at their first statement given a
    parameter, for commands that never use it; a stop during that import was lost too."""
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    db = str(tmp_path / "c.duckdb")
    assert invoke("harvest", "--config", config, "--db", db).exit_code == 0
    without_it = write_config(tmp_path, ("other", "dcat-us", portal.url + "/data.json"))
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "harvester", *command, "--db", db,
                             *(["--config", without_it] if command[0] == "retire" else [])],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": REPO})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()   # (the command did its work: a table, JSON, or what it retired)
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "duckdb" in imported and not [name for name in imported if name.startswith("pandas.")]


def test_a_db_whose_folder_cannot_be_made_exits_2_naming_it_before_any_request(tmp_path, portal):
    """`--db` under a regular file (a typo, `data.json/civicat.duckdb`) ended in a
    FileExistsError traceback from the writer lock, exit 1: the code of a failed portal."""
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("a file, not a folder\n")
    result = CliRunner().invoke(cli, ["harvest", "--config", config, "--db", str(not_a_folder / "civicat.duckdb")])
    assert result.exit_code == 2, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    assert str(not_a_folder / "civicat.duckdb") in result.output and "File exists" in result.output
    assert not_a_folder.read_text() == "a file, not a folder\n"
    assert sum(portal.hits.values()) == 0


@pytest.mark.parametrize("fmt", ["parquet", "data.json"])
def test_an_export_to_a_folder_that_cannot_be_made_names_that_folder(tmp_path, portal, fmt):
    """`--out` under a regular file said `cannot export <the catalogue>: [Errno 17] File
    exists: <the file>`: the catalogue named as what failed, the folder asked for not at all."""
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    db = str(tmp_path / "c.duckdb")
    assert invoke("harvest", "--config", config, "--db", db).exit_code == 0
    in_the_way = tmp_path / "exports"
    in_the_way.write_text("a file, not a folder\n")
    out = in_the_way / "tonight"
    result = CliRunner().invoke(cli, ["export", "--out", str(out), "--format", fmt, "--db", db, "--config", config])
    assert result.exit_code == 1, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    assert f"to {out}:" in result.output and "File exists" in result.output
    assert in_the_way.read_text() == "a file, not a folder\n"


def civicat_to(stdout, *args, env=None, limit_file_bytes=None):
    """civicat run as cron runs it, its stdout `stdout` (an open file), in a process of its own."""
    import resource

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_bytes, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    return subprocess.run([sys.executable, "-m", "harvester", *args], stdout=stdout, stderr=subprocess.PIPE,
                          text=True, timeout=120, env={**os.environ, **(env or {})},
                          preexec_fn=limited if limit_file_bytes else None)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_report_stdout_cannot_take_exits_74_saying_why_and_what_was_done_stays_done(tmp_path, portal):
    """`civicat harvest --json > data/last-run.json` on a full disk ended in a traceback and exit
    1, which cron reads as "a portal failed". The report is lost, not the harvest: one line on
    stderr says why, the exit code is its own (74), and the run is stored."""
    config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
    db = str(tmp_path / "c.duckdb")
    commands = [["harvest", "--json", "--config", config, "--db", db], ["harvest", "--config", config, "--db", db],
                ["runs", "--db", db], ["sql", "SELECT uid FROM datasets", "--db", db],
                # (`overlap --json`: piped, overlap's summary goes to stderr since session 46, and this catalogue
                # has no group to write on stdout)
                ["search", "permits", "--json", "--db", db], ["overlap", "--json", "--db", db],
                ["export", "--out", str(tmp_path / "out"), "--config", config, "--db", db], ["--version"]]
    with open("/dev/full", "w") as full:
        for args in commands:
            result = civicat_to(full, *args)
            assert result.returncode == 74, (args, result.stderr)
            assert result.stderr == "could not write the report to stdout: No space left on device\n", (args, result.stderr)
        logged = civicat_to(full, "--log-format", "json", "runs", "--json", "--db", db)
    assert logged.returncode == 74 and json.loads(logged.stderr)["exit_code"] == 74
    runs = json.loads(invoke("runs", "--json", "--db", db).output)
    assert [(r["status"], r["new"], r["unchanged"]) for r in runs] == [("ok", 0, 7), ("ok", 7, 0)]   # both stored
    assert (tmp_path / "out" / "manifest.json").exists()                                             # and exported


def test_a_reader_that_stops_reading_is_no_error_to_print(empty_catalogue):
    """`civicat sql ... | head`: the reader closed the pipe by choice. Nothing is printed on
    stderr and the exit code is 141, as a shell shows a tool that a closed pipe stopped."""
    reader = subprocess.Popen([sys.executable, "-m", "harvester", "sql", "SELECT range AS n FROM range(1000000)",
                               "--format", "csv", "--db", empty_catalogue],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert line_of(reader) == b"n\n"
    reader.stdout.close()
    _, stderr = output_of(reader)
    assert reader.returncode == 141
    assert stderr == b""


def test_a_report_cut_short_by_the_file_size_limit_is_said_lost_not_exit_0(tmp_path, empty_catalogue):
    """Under `ulimit -f` the kernel takes a large write in part; Python's unbuffered stdout
    (PYTHONUNBUFFERED=1, as containers and systemd units often set) dropped the rest without a
    word and the command exited 0 with its report's tail missing."""
    out = tmp_path / "report.csv"
    with open(out, "w") as stdout:
        result = civicat_to(stdout, "sql", "SELECT range AS n FROM range(100000)", "--format", "csv",
                            "--db", empty_catalogue, env={"PYTHONUNBUFFERED": "1"}, limit_file_bytes=64 * 1024)
    assert result.returncode == 74, result.stderr
    assert result.stderr == "could not write the report to stdout: File too large\n"
    assert out.stat().st_size == 64 * 1024



# `civicat runs`, its options parsed slowly (by click: before the command's body), the group's or
# the command's: a stop signal lands there (in steps: see tests.conftest.stopped_at_its_first_line)
PARSING_SLOWLY = """
import sys, time
from harvester import cli
where = cli.cli if sys.argv[2] == "group" else cli.runs
parse_args = where.parse_args
def parsing_slowly(ctx, args):
    print("parsing", flush=True)
    for _ in range(600):
        time.sleep(0.1)
    return parse_args(ctx, args)
where.parse_args = parsing_slowly
sys.argv = ["civicat", "runs", "--db", sys.argv[1]]
cli.main()
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("options", ["group", "command"])
def test_a_stop_while_click_parses_the_options_exits_as_every_stop_does(tmp_path, options, sig):
    """Ctrl-C (or SIGTERM) as click read the group's options, before any command began: click's
    own "Aborted!" and exit 1, as if the command had failed. 130 / 143, as every stop."""
    parsing = stopped_at_its_first_line(PARSING_SLOWLY, sig, "parsing\n", str(tmp_path / "c.duckdb"), options)
    said = "SIGTERM" if sig == signal.SIGTERM else "Ctrl-C"
    assert parsing.returncode == 128 + sig, parsing.err
    assert parsing.err == f"Interrupted ({said}): stopped before its end; nothing half-written was published\n"


@pytest.mark.parametrize("command", [["runs"], ["sql", "SELECT 1"], ["search", "permits"], ["similar", "city:d1"],
                                     ["overlap"], ["export", "--out", "{tmp}/out"], ["records", "city:d1"],
                                     ["retire", "gone"]])
def test_no_catalogue_exits_2_saying_what_to_do_without_a_usage_hint(tmp_path, command):
    """"no catalogue at ...": exit 2 as before, but click's usage line and "Try 'civicat ...
    --help' for help." came with it, as if the command had been mistyped; nothing was."""
    config = write_config(tmp_path, ("city", "dcat-us", "http://127.0.0.1:9/data.json"))
    db = tmp_path / "none.duckdb"
    args = [a.format(tmp=tmp_path) for a in command] + ["--db", str(db)]
    if command[0] in ("export", "records", "retire"):
        args += ["--config", config]
    for log_format in ("plain", "json"):
        result = CliRunner().invoke(cli, ["--log-format", log_format, *args])
        assert result.exit_code == 2, result.output
        assert f"no catalogue at {db}: run `civicat harvest` first" in result.output, result.output
        assert "--help" not in result.output and "Usage:" not in result.output, result.output
    assert not db.exists()


def test_sql_table_shows_each_value_as_csv_writes_it(empty_catalogue):
    """The table showed Python's forms: an INTERVAL as `-1 day, 2:00:00` (-22 hours, read as -26),
    in a list `[datetime.timedelta(days=1)]`, a BLOB `b'\\xff\\x00AB'`; CSV and JSON said ISO 8601
    and base64. One form in every format now."""
    import csv
    import io
    query = ("SELECT INTERVAL '-1 day 2 hours' AS neg, INTERVAL '1 year 2 months 3 days 04:05:06.5' AS i, "
             "[INTERVAL 1 DAY] AS l, {'a': INTERVAL 2 HOUR, 'b': 'x''y'} AS s, MAP {1: 'x'} AS m, "
             "'\\xFF\\x00AB'::BLOB AS b, 'plain' AS t")
    table = CliRunner().invoke(cli, ["sql", "--db", empty_catalogue, query])
    as_csv = CliRunner().invoke(cli, ["sql", "--db", empty_catalogue, "--format", "csv", query])
    assert table.exit_code == 0 and as_csv.exit_code == 0, table.output + as_csv.output
    header, values = list(csv.reader(io.StringIO(as_csv.output)))
    assert values == ["-PT22H", "P423DT4H5M6.5S", '["P1D"]', '{"a": "PT2H", "b": "x\'y"}', '{"1": "x"}', "/wBBQg==",
                      "plain"]
    heading, row = table.output.splitlines()   # (piped: a row a line, tab-separated, since session 45)
    assert heading.split("\t") == header
    assert row.split("\t") == values
    heading, rule, row = CliRunner().invoke(cli, ["sql", "--db", empty_catalogue, query],
                                            env={"COLUMNS": "1000"}).output.splitlines()   # (on a terminal: the table)
    assert heading.split() == header
    assert re.split(r" {2,}", row.strip()) == values   # (tabulate's columns: two spaces apart at least)
    assert "timedelta" not in table.output and "day," not in table.output


def test_export_says_what_data_json_left_out_lacks_and_whose_it_was(tmp_path, monkeypatch):
    """The offline demo's export said "2915 left out" and its reasons, not that each lacks what
    DCAT-US requires nor whose they are: a new user read a fault of civicat's, with no portal to
    give a contact_email."""
    document = make_data_json(6)
    for dataset in document["dataset"][:4]:
        del dataset["modified"]
    with DataJsonPortal(document) as portal:
        url = portal.url + "/data.json"
        config = write_config(tmp_path, ("north", "dcat-us", url), ("south", "dcat-us", url), ("west", "dcat-us", url))
        db = str(tmp_path / "c.duckdb")
        assert invoke("harvest", "--config", config, "--db", db).exit_code == 0
    monkeypatch.setattr("harvester.cli.PORTALS_NAMED", 2)
    result = invoke("export", "--config", config, "--db", db, "--out", str(tmp_path / "out"), "--format", "data.json")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1:] == [   # (ties in the portals' order)
        "  12: no modified date", "  by portal: north 4, south 4 and 1 more portal"]
    assert result.output.splitlines()[0].endswith(
        "data.json: 6 datasets; 12 left out, each lacking a field DCAT-US 1.1 requires (--json lists them):")
    listed = json.loads(invoke("export", "--config", config, "--db", db, "--out", str(tmp_path / "out"),
                               "--format", "data.json", "--json").output)["data.json"]
    assert listed["left_out_portals"] == {"north": 4, "south": 4, "west": 4}
    assert len(listed["left_out_datasets"]) == 12
    monkeypatch.setattr("harvester.cli.PORTALS_NAMED", 10)
    result = invoke("export", "--config", config, "--db", db, "--out", str(tmp_path / "out"), "--format", "data.json")
    assert result.output.splitlines()[-1] == "  by portal: north 4, south 4, west 4"
