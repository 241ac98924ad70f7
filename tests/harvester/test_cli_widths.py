"""The tables of rows as a user meets them on a terminal: `runs`, `harvest`'s summary, `records` and `sql`
fit the terminal's width (80 where it says none), their ids whole; piped, the table as it always was.
(Until session 43 each ran past 80 columns: `runs` ~200 characters a row.)"""
import json

import pytest
from click.testing import CliRunner

from harvester.cli import cli
from tests.conftest import harvest_with_records
from tests.harvester.test_cli import invoke, write_config
from tests.portals.base import RawBody
from tests.portals.dcat import DataJsonPortal
from tests.portals.synth import make_data_json

RUNS_HEADERS = ["run", "portal", "status", "started", "(UTC)", "seconds", "seen", "new", "changed", "unchanged",
                "removed", "errors", "requests", "retries", "304s", "failure"]


def shown(args: list[str], columns: int | None) -> str:
    """The command's output on a terminal of `columns` ($COLUMNS), or piped (None: no $COLUMNS)."""
    result = CliRunner().invoke(cli, args, env={"COLUMNS": None if columns is None else str(columns)})
    assert result.exit_code in (0, 1), result.output
    return result.stdout


def widest(text: str) -> int:
    return max(map(len, text.splitlines()))


@pytest.fixture
def failed_night(tmp_path):
    """A catalogue of one good harvest and one failed (its portal answered HTML), its runs as --json gives them."""
    with DataJsonPortal(make_data_json(7)) as portal:
        config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
        db = str(tmp_path / "c.duckdb")
        harvested = shown(["harvest", "--config", config, "--db", db], 80)
        portal.inject("/data.json", "html", times=20)
        CliRunner().invoke(cli, ["harvest", "--config", config, "--db", db])
    return db, json.loads(invoke("runs", "--db", db, "--json").output), harvested


@pytest.mark.parametrize("columns", [80, 100])
def test_runs_fits_the_terminal_each_run_id_whole_its_failure_cut_where_it_was(failed_night, columns):
    db, runs, _ = failed_night
    failure = f"{runs[0]['error_type']}: {runs[0]['error_message']}"
    assert len(failure) > 100   # (so that it is cut at these widths)
    out = shown(["runs", "--db", db, "--errors"], columns)
    assert widest(out) <= columns, out
    lines = out.splitlines()
    for run in runs:   # (each run's line starts with its id, whole: a user copies it)
        assert any(line.split()[:3] == [run["run_id"], "city", run["status"]] for line in lines), out
    said = next(line for line in lines if "HtmlInsteadOfData" in line and "failure" in line)
    assert said.endswith("…") and failure.startswith(said.strip().removeprefix("failure: ")[:-1].rstrip())
    assert " ".join(out.split()).count("requests 5, retries 4") == 1   # (its counts, named)


def test_runs_on_a_wide_terminal_is_the_table_its_failure_whole_and_piped_the_table_as_it_always_was(failed_night):
    db, runs, _ = failed_night
    out = shown(["runs", "--db", db], 400)
    header, rule, failed, ok = out.splitlines()
    assert header.split() == RUNS_HEADERS and failed.split()[:3] == [runs[0]["run_id"], "city", "failed"]
    assert failed.endswith(f"{runs[0]['error_type']}: {runs[0]['error_message']}")   # (whole: it fits)
    assert widest(out) <= 400

    out = shown(["runs", "--db", db], None)
    header, _, failed, _ = out.splitlines()
    assert header.split() == RUNS_HEADERS
    assert failed.rstrip().endswith(f"{runs[0]['error_type']}: {runs[0]['error_message'][:80].rstrip()}")
    assert widest(out) > 150   # (a file, `less -S`, grep: every column of a run on its line)


def test_harvest_s_summary_on_80_columns_is_the_table_each_column_as_wide_as_its_widest_cell(failed_night):
    """tabulate's columns are 2 wider than their header: the 9 of the summary took 89 columns."""
    _, _, harvested = failed_night
    header, rule, row = harvested.splitlines()
    assert widest(harvested) <= 80 and rule.split() == ["-" * len(word) for word in header.split()]
    assert header.split() == ["portal", "status", "seen", "new", "changed", "unchanged", "removed", "errors", "seconds"]
    assert row.split()[:8] == ["city", "ok", "7", "7", "0", "0", "0", "0"]


def _harvested_with_records(tmp_path, options=()):
    """`harvest --records` (its text report) of a portal of 3 datasets, 2 pulled: (db, config, output)."""
    document = make_data_json(3)
    csv = {"@type": "dcat:Distribution", "mediaType": "text/csv", "format": "CSV"}
    with DataJsonPortal(document) as portal:
        for n, dataset in enumerate(document["dataset"][:2], start=1):
            dataset.update(identifier=f"parks-and-recreation-facilities-{n}", landingPage=f"https://city.example/p{n}",
                           distribution=[{**csv, "downloadURL": portal.url + "/rows.csv"}])
        portal.static["/rows.csv"] = RawBody(b"a,b\n1,x\n2,y\n")
        ids = [d["identifier"] for d in document["dataset"][:2]]
        db, result = harvest_with_records(tmp_path, "springfield-open-data", "dcat-us", portal.url + "/data.json",
                                          ids, "--json")
        assert result.exit_code == 0, result.output
        config = str(tmp_path / "c.toml")
        outputs = {columns: shown(["harvest", "--records", "--config", config, "--db", str(db), *options], columns)
                   for columns in (80, None)}
        records = {columns: shown(["records", "--config", config, "--db", str(db),
                                   *(f"springfield-open-data:{i}" for i in ids)], columns) for columns in (80, None)}
    return db, ids, outputs, records


def test_harvest_s_summary_and_records_fit_80_columns_ids_and_folders_whole_and_piped_as_before(tmp_path):
    db, ids, harvested, pulled = _harvested_with_records(tmp_path)
    assert widest(harvested[80]) <= 80, harvested[80]
    assert any(line.split()[:2] == ["springfield-open-data", "ok"] for line in harvested[80].splitlines())
    assert "records 2/2, rows 4" in " ".join(harvested[80].split()), harvested[80]
    header = harvested[None].splitlines()[0]   # piped: the table of every column, as before
    assert header.split() == ["portal", "status", "seen", "new", "changed", "unchanged", "removed", "errors",
                              "seconds", "records", "rows"]

    lines = pulled[80].splitlines()
    assert widest(pulled[80]) <= 80, pulled[80]
    for source_id in ids:   # each pull's uid and folder whole (a folder is copied, never cut)
        assert [f"springfield-open-data:{source_id}", "ok"] in [line.split() for line in lines], pulled[80]
        assert f"    portal=springfield-open-data/dataset={source_id}" in lines, pulled[80]
    piped = pulled[None].splitlines()
    assert piped[0].split() == ["dataset", "status", "mode", "rows", "columns", "seconds", "folder", "/", "error"]
    assert len(piped) == 4 and widest(pulled[None]) > 80


def test_sql_past_the_terminal_shows_each_row_as_a_block_its_values_whole_and_piped_the_table(failed_night):
    db, runs, _ = failed_night
    query = "SELECT run_id, portal_id, status, error_type, error_message FROM harvest_runs ORDER BY started_at DESC"
    narrow = shown(["sql", "--db", db, query], 80)
    assert widest(narrow) <= 80, narrow
    blocks = narrow.split("-[ row ")[1:]
    assert len(blocks) == 2 and blocks[0].startswith("1 ]")
    lines = blocks[0].splitlines()[1:]
    assert [line.split(None, 1) for line in lines[:4]] == [["run_id", runs[0]["run_id"]], ["portal_id", "city"],
                                                           ["status", "failed"], ["error_type", runs[0]["error_type"]]]
    # the message whole, wrapped at its spaces under its name (never cut: a query's answer)
    assert lines[4].startswith("error_message  ") and all(line.startswith(" " * 15) for line in lines[5:])
    assert len(lines) > 5 and " ".join(" ".join(lines[4:]).split()[1:]) == " ".join(runs[0]["error_message"].split())
    table = shown(["sql", "--db", db, query], None)
    assert table.splitlines()[0].split() == ["run_id", "portal_id", "status", "error_type", "error_message"]
    assert runs[0]["error_message"] in table
    assert shown(["sql", "--db", db, query], 1000) == table   # (a terminal it fits: the table)
