"""Every command's text as a user meets it, one width rule for all: on a terminal `runs`, `harvest`'s summary,
`records`, `sql`, `search`, `overlap` and `similar` fit its width (80 where it says none), their ids whole; piped,
every value whole, a row a line. (Until session 43 the tables ran past 80 columns: `runs` ~200 characters a row;
until session 44 `overlap`, `similar` and `search` cut titles to 120 piped.)"""
import json
import os

import pytest
from click.testing import CliRunner

from harvester.cli import cli
from tests.conftest import as_in_a_test, harvest_with_records
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


@pytest.fixture(scope="module")
def failed_night(tmp_path_factory):
    """A catalogue of one good harvest and one failed (its portal answered HTML), its runs as --json gives them;
    made once a module (each worker's), its tests only read it."""
    tmp_path = tmp_path_factory.mktemp("failed-night")
    with as_in_a_test(), DataJsonPortal(make_data_json(7)) as portal:
        config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
        db = str(tmp_path / "c.duckdb")
        harvested = shown(["harvest", "--config", config, "--db", db], 80)
        portal.inject("/data.json", "html", times=20)
        CliRunner().invoke(cli, ["harvest", "--config", config, "--db", db])
    return db, json.loads(invoke("runs", "--db", db, "--json").output), harvested


@pytest.mark.parametrize("columns", [80, 100])
def test_runs_on_a_narrow_terminal_is_a_line_a_portal_s_run_under_its_run_s_id_its_failure_on_a_line_below(
        failed_night, columns):
    """Until session 44 each portal's run took three lines at 80 columns (its ids, its counts wrapped, its failure)."""
    db, runs, _ = failed_night
    failure = f"{runs[0]['error_type']}: {runs[0]['error_message']}"
    assert len(failure) > 100   # (so that it is cut at these widths)
    out = shown(["runs", "--db", db, "--errors"], columns)
    assert widest(out) <= columns, out
    lines = out.splitlines()
    # (the columns that say most, and as many of the others as the width allows since session 45: runs_shown)
    header, left_out = runs_shown(lines, out)
    assert header[:2] == ["portal", "status"] and {"seen", "new", "changed", "removed", "errors"} <= set(header)
    failed, ok = lines.index(f"run {runs[0]['run_id']}"), lines.index(f"run {runs[1]['run_id']}")   # (whole)
    counts = ["portal", "status", "seen", "new", "changed", "unchanged", "removed", "errors"]
    assert {h: v for h, v in zip(header, lines[failed + 1].split()) if h in counts} == {
        h: v for h, v in zip(counts, ["city", "failed", "0", "0", "0", "0", "0", "1"]) if h in header}, out
    said = lines[failed + 2]
    assert said.startswith("  failure: ") and said.endswith("…") and failure.startswith(
        said.removeprefix("  failure: ")[:-1].rstrip())
    assert ok == failed + 3 and dict(zip(header, lines[ok + 1].split()))["seen"] == "7", out
    assert lines[ok + 4 - (not left_out)].split() == ["portal", "source", "id", "stage", "severity", "type",
                                                       "message"], out


# the columns of `runs` but the run and the failure, as the header splits them into words
RUNS_FIGURES = ["portal", "status", "started", "(UTC)", "seconds", "seen", "new", "changed", "unchanged", "removed",
                "errors", "requests", "retries", "304s"]


def runs_shown(lines: list[str], out: str) -> tuple[list[str], list[str]]:
    """The header's words of `runs` on a terminal its table does not fit, and the columns it says it left out,
    each of RUNS_FIGURES either shown or left out, in order."""
    header = lines[0].split()
    said = [line for line in lines if line.startswith("(left out: ")]
    left_out = said[0].removeprefix("(left out: ").removesuffix(")").replace(" (UTC)", "").split(", ") if said else []
    left_out = [word for name in left_out for word in ([name, "(UTC)"] if name == "started" else [name])]
    assert sorted(header + left_out) == sorted(RUNS_FIGURES) and [h for h in RUNS_FIGURES if h in header] == header, out
    return header, left_out


def test_runs_between_80_and_200_columns_adds_back_the_columns_the_width_allows(failed_night):
    """Until session 45 `runs` on any terminal its whole table did not fit (~200 columns) showed the 7 columns of
    80, the others left out: at 120 as at 80. Now each wider terminal shows more, none past its width."""
    db, runs, _ = failed_night
    shown_at = {}
    for columns in (80, 100, 120, 140):
        out = shown(["runs", "--db", db], columns)
        assert widest(out) <= columns, out
        shown_at[columns] = out
    at_100, _ = runs_shown(shown_at[100].splitlines(), shown_at[100])
    assert {"unchanged", "requests", "retries", "304s", "seconds"} <= set(at_100), shown_at[100]
    at_120, left_out = runs_shown(shown_at[120].splitlines(), shown_at[120])   # (every column: the run a line above)
    assert not left_out and f"run {runs[0]['run_id']}" in shown_at[120].splitlines(), shown_at[120]
    header, rule, failed, said, ok = shown_at[140].splitlines()   # (the run id a column: a run's portal a line)
    assert header.split() == ["run", *RUNS_FIGURES] and failed.split()[:3] == [runs[0]["run_id"], "city", "failed"]
    assert said.startswith("  failure: HtmlInsteadOfData") and ok.split()[:3] == [runs[1]["run_id"], "city", "ok"]


def test_runs_on_a_wide_terminal_is_the_table_its_failure_whole_and_piped_every_value_whole(failed_night):
    """Piped (a file, grep, `less -S`) a failure and an error's message are whole: until session 44 cut at 80 and
    100 characters, unmarked, so a file lost them and grep could not find their ends."""
    db, runs, _ = failed_night
    failure = f"{runs[0]['error_type']}: {runs[0]['error_message']}"
    out = shown(["runs", "--db", db], 400)
    header, rule, failed, ok = out.splitlines()
    assert header.split() == RUNS_HEADERS and failed.split()[:3] == [runs[0]["run_id"], "city", "failed"]
    assert failed.endswith(failure)   # (whole: it fits)
    assert widest(out) <= 400

    out = shown(["runs", "--db", db, "--errors"], None)
    header, rule, failed, ok, _, errors_header, errors_rule, error = out.splitlines()
    assert header.split() == RUNS_HEADERS and failed.split()[:3] == [runs[0]["run_id"], "city", "failed"]
    assert failed.endswith(failure) and len(failure) > 80
    assert len(rule) == len(header) and rule.endswith(" " + "-" * len("failure"))   # (not a dash a character of it)
    errors = json.loads(invoke("runs", "--db", db, "--errors", "--json").output)["errors"]
    assert error.endswith(errors[0]["message"])
    assert errors_header.split()[-1] == "message" and errors_rule.endswith(" " + "-" * len("message"))


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


def test_sql_past_the_terminal_shows_each_row_as_a_block_its_values_whole_and_piped_a_row_a_line(failed_night):
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
    piped = shown(["sql", "--db", db, query], None)   # (tab-separated since session 45)
    assert piped.splitlines()[0].split("\t") == ["run_id", "portal_id", "status", "error_type", "error_message"]
    assert runs[0]["error_message"] in piped
    table = shown(["sql", "--db", db, query], 1000)   # (a terminal it fits: the table)
    assert table.splitlines()[0].split() == piped.splitlines()[0].split("\t") and widest(table) <= 1000
    assert runs[0]["error_message"] in table


LONG_TITLE = ("Police Department crime incident reports with offense, district and case number, updated daily "
              "since 2001 from the records management system")


@pytest.fixture(scope="module")
def long_titles(tmp_path_factory):
    """A catalogue at data/civicat.duckdb (the default: no `--db` in the commands it prints) of two cities' crime
    reports, titled at 140 characters, their overlap group saved."""
    from catalog import search
    from catalog.store import Store
    from tests.harvester.test_cli_keys import CRIME, add_dataset

    folder = tmp_path_factory.mktemp("long-titles")
    (folder / "data").mkdir()
    store = Store(folder / "data" / "civicat.duckdb")
    try:
        for n, city in enumerate(("Springfield", "Shelbyville")):
            add_dataset(store.con, f"{city.lower()}:crime-{n}", city, f"{city} {LONG_TITLE}", CRIME, n + 1)
        search.refresh(store.con)
    finally:
        store.close()
    result = CliRunner().invoke(cli, ["overlap", "--db", str(folder / "data" / "civicat.duckdb")])
    assert result.exit_code == 0 and "1 groups" in result.output, result.output
    return folder


COMMANDS = [["search", "crime incident reports"], ["similar", "springfield:crime-0"], ["overlap", "--group", "1"],
            ["overlap", "--pairs"]]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_overlap_similar_and_search_piped_print_every_title_whole(long_titles, args):
    """One rule for every command: piped, nothing cut. Until session 44 these three cut titles to 120 piped."""
    db = str(long_titles / "data" / "civicat.duckdb")
    out = shown([*args, "--db", db], None)
    assert out.count(LONG_TITLE) >= 2 and "…" not in out, out


def on_a_terminal(args: list[str], columns: int, cwd) -> str:
    """`civicat ARGS` run in `cwd` with its stdout a terminal (a pty) of `columns` (0: one that says no size,
    as script(1) and a container's tty before its first resize give), no $COLUMNS."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    from tests.conftest import REPO

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24 if columns else 0, columns, 0, 0))
    env = {**{k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}, "PYTHONPATH": REPO}
    child = subprocess.Popen([sys.executable, "-m", "harvester", *args], stdin=subprocess.DEVNULL, stdout=follower,
                             stderr=subprocess.PIPE, cwd=cwd, env=env)
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:   # (EIO: the child closed the terminal)
            break
        if not chunk:
            break
        out += chunk
    assert child.wait(timeout=120) == 0, child.stderr.read()
    child.stderr.close()
    os.close(leader)
    return out.decode().replace("\r\n", "\n")


@pytest.mark.parametrize("columns", [0, 80])
def test_every_command_on_a_terminal_fits_its_width_and_one_that_says_none_80(long_titles, columns):
    """A real terminal (no $COLUMNS). Until session 44 `overlap`, `similar` and `search` took 120 columns on a
    terminal that says no size (Python's shutil), where `runs` and `records` took 80."""
    for args in [*COMMANDS, ["runs"]]:
        out = on_a_terminal(args, columns, long_titles)
        assert widest(out) <= 80, (args, out)
        if args[0] != "runs":
            assert "…" in out, (args, out)   # (a title cut to fit)


def test_sql_piped_is_a_row_a_line_tab_separated_unpadded_its_values_line_breaks_escaped(failed_night, tmp_path):
    """Through a real pipe (`civicat sql … | cut -f2,5`; a TSV reader): until session 45 piped `sql` printed the
    terminal's table, its middle columns padded to their widest value (`cut` and a TSV reader took the padding for
    the value) and a value's line breaks kept (a row over several lines)."""
    import csv
    import shlex
    import subprocess
    import sys
    from pathlib import Path

    db, runs, _ = failed_night
    query = ("SELECT portal_id, status || chr(10) || 'line two' AS said, 'a' || chr(9) || 'b' || chr(92) || 'c' "
             "AS tricky, NULL AS nothing, error_type FROM harvest_runs ORDER BY started_at DESC")
    piped = subprocess.run(f"{shlex.quote(sys.executable)} -m harvester sql --db {shlex.quote(db)} "
                           f"{shlex.quote(query)} | cut -f2,5", shell=True, capture_output=True, text=True,
                           cwd=Path(__file__).parents[2])
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.splitlines() == ["said\terror_type", f"failed\\nline two\t{runs[0]['error_type']}",
                                         "ok\\nline two\t"]
    out = shown(["sql", "--db", db, query], None)
    rows = list(csv.reader(out.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE))
    assert rows == [["portal_id", "said", "tricky", "nothing", "error_type"],
                    ["city", "failed\\nline two", "a\\tb\\\\c", "", runs[0]["error_type"]],
                    ["city", "ok\\nline two", "a\\tb\\\\c", "", ""]]


def crime_reports_of_two_cities(tmp_path) -> str:
    """A catalogue (its path) of Springfield's crime reports of four years and Shelbyville's, one group."""
    from catalog import search
    from catalog.store import Store
    from tests.harvester.test_cli_keys import CRIME, add_dataset

    db = str(tmp_path / "catalog.duckdb")
    store = Store(db)
    try:
        for year in (2019, 2020, 2021, 2022):
            add_dataset(store.con, f"springfield:crime-{year}", "Springfield", f"Crime reports {year}", CRIME, 1)
        add_dataset(store.con, "shelbyville:crime", "Shelbyville", "Crime reports", CRIME, 2)
        search.refresh(store.con)
    finally:
        store.close()
    return db


def test_overlap_piped_is_a_group_a_line_tab_separated_unpadded_as_sql_piped(tmp_path):
    """Through a real pipe (`civicat overlap | cut -s -f2,3,5`): its groups as `sql` pipes rows, a row a line, a tab
    between values, none padded. Until session 45 (k45 merged) the terminal's table: the label padded to the
    widest label (`cut` found no tab; a TSV reader or `awk -F'\t'` read the whole line as one value)."""
    import shlex
    import subprocess
    import sys
    from pathlib import Path

    db = crime_reports_of_two_cities(tmp_path)
    [group] = json.loads(shown(["overlap", "--db", db, "--json"], None))["groups"]
    piped = subprocess.run(f"{shlex.quote(sys.executable)} -m harvester overlap --db {shlex.quote(db)} | cut -s "
                           "-f2,3,5", shell=True, capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert piped.returncode == 0, piped.stderr
    lines = piped.stdout.splitlines()
    assert lines[0] == "label\tdatasets\texamples", piped.stdout
    assert len(lines) == 2 and lines[1].startswith(f"{group['label']}\t5\t"), piped.stdout
    assert lines[1].endswith("; and 3 more"), piped.stdout
    assert "  " not in lines[1], piped.stdout   # (no padding)


def test_overlap_piped_names_a_title_of_each_city_whole_and_counts_the_others(tmp_path):
    """Piped, a group's examples are a title of each of its cities, whole, then how many more: until session 45
    every member's title (a group of 73 datasets a 5.5 KB line; the real catalogues' groups 127 KB piped, 76 KB
    now); its whole list is `overlap --group N`'s, piped or not, and `--json`'s."""
    db = crime_reports_of_two_cities(tmp_path)
    out = shown(["overlap", "--db", db], None)
    [row] = [line for line in out.splitlines() if line.split()[:1] == ["1"]]
    examples = row.split("\t")[-1]
    assert examples.startswith(("Shelbyville: Crime reports; Springfield: Crime reports 20",
                                "Springfield: Crime reports 20")), out
    assert examples.count("Crime reports") == 2 and examples.endswith("; and 3 more"), out
    listed = shown(["overlap", "--group", "1", "--db", db], None)   # (every dataset, whole)
    assert all(f"Springfield: Crime reports {year}" in listed for year in (2019, 2020, 2021, 2022)), listed
    [group] = json.loads(shown(["overlap", "--db", db, "--json"], None))["groups"]
    assert len(group["members"]) == 5


def test_sql_format_table_asked_for_piped_is_the_table_and_its_default_piped_tab_separated(failed_night):
    """Through real pipes (`| head`): `--format table` given prints the table piped too, whole (until session 46
    tab-separated whatever was asked); no --format piped stays tab-separated."""
    import shlex
    import subprocess
    import sys
    from pathlib import Path

    db, runs, _ = failed_night
    query = "SELECT portal_id, status, error_type FROM harvest_runs ORDER BY started_at DESC"

    def piped(*options: str) -> list[str]:
        done = subprocess.run(f"{shlex.quote(sys.executable)} -m harvester sql --db {shlex.quote(db)} "
                              f"{shlex.quote(query)} {' '.join(options)} | head -n 5", shell=True, capture_output=True,
                              text=True, cwd=Path(__file__).parents[2], env={**os.environ, "COLUMNS": ""})
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    table = piped("--format", "table")
    assert table[0].split() == ["portal_id", "status", "error_type"] and set(table[1]) <= {"-", " "}, table
    assert [line.split() for line in table[2:]] == [["city", "failed", runs[0]["error_type"]], ["city", "ok"]], table
    assert "\t" not in "".join(table), table
    assert piped() == ["portal_id\tstatus\terror_type", f"city\tfailed\t{runs[0]['error_type']}", "city\tok\t"]


def test_overlap_piped_writes_its_groups_alone_on_stdout_the_summary_and_hints_on_stderr(tmp_path):
    """Through a real pipe (`civicat overlap > groups.tsv`, `| cut -f2`): data on stdout, talk on stderr. Until
    session 46 the summary line and the hints were written among the groups (`cut -s` needed to leave them out, a
    TSV reader took them for rows); on a terminal all of it on stdout, as before."""
    import shlex
    import subprocess
    import sys
    from pathlib import Path

    db = crime_reports_of_two_cities(tmp_path)
    [group] = json.loads(shown(["overlap", "--db", db, "--json"], None))["groups"]
    for options in ("", "--pairs"):
        piped = subprocess.run(f"{shlex.quote(sys.executable)} -m harvester overlap {options} --db {shlex.quote(db)} "
                               "| cut -f2", shell=True, capture_output=True, text=True, cwd=Path(__file__).parents[2],
                               env={**os.environ, "COLUMNS": ""})
        assert piped.returncode == 0, piped.stderr
        lines = piped.stdout.splitlines()
        assert lines[:2] == ["label", group["label"]], piped.stdout
        assert not [line for line in lines if "datasets compared" in line or "civicat " in line], piped.stdout
        assert "5 datasets compared" in piped.stderr and "civicat overlap --group 1" in piped.stderr, piped.stderr
        assert ("pairs, best first" in piped.stderr) == bool(options), piped.stderr
        if options:   # (the pairs themselves: data, on stdout)
            assert "Springfield: Crime reports 2019" in piped.stdout, piped.stdout
    out = shown(["overlap", "--db", db], 80)
    assert "5 datasets compared" in out and "civicat overlap --group 1" in out
