"""`civicat overlap` and `civicat similar` through click's CliRunner, on a real selection."""
import itertools
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from harvester.cli import cli

REPO = str(Path(__file__).resolve().parents[2])


@pytest.fixture(scope="module")
def db(real_selection_path, tmp_path_factory):
    path = tmp_path_factory.mktemp("cli-overlap") / "catalog.duckdb"
    shutil.copy(real_selection_path, path)   # (`overlap` saves its results in it)
    return str(path)


def test_overlap_prints_groups_and_json(db):
    runner = CliRunner()
    result = runner.invoke(cli, ["overlap", "--db", db])
    assert result.exit_code == 0, result.output
    assert "Building permits" in result.output and "groups" in result.output.splitlines()[0]
    result = runner.invoke(cli, ["overlap", "--db", db, "--json"])
    assert result.exit_code == 0, result.output
    assert "pairs" not in json.loads(result.output) and json.loads(result.output)["strong_pairs"] > 0
    result = runner.invoke(cli, ["overlap", "--db", db, "--json", "--pairs", "--min-score", "0.6"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["min_score"] == 0.6 and len(payload["pairs"]) == payload["strong_pairs"]
    assert [p["score"] for p in payload["pairs"]] == sorted((p["score"] for p in payload["pairs"]), reverse=True)
    assert all(p["score"] >= 0.6 for p in payload["pairs"])
    assert all(len(g["cities"]) >= 2 and g["label"] for g in payload["groups"])
    assert {"uid_a", "uid_b", "score", "title_score", "columns_score", "explanation"} <= set(payload["pairs"][0])


def test_overlap_refuses_a_bad_min_score_and_a_missing_catalogue(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["overlap", "--db", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 2 and "run `civicat harvest` first" in result.output
    result = runner.invoke(cli, ["overlap", "--db", str(tmp_path / "none.duckdb"), "--min-score", "1.5"])
    assert result.exit_code == 2 and "1.5" in result.output


def test_similar_lists_other_cities_with_explanations(db):
    runner = CliRunner()
    result = runner.invoke(cli, ["similar", "data-cityofchicago-org:ydr8-5enu", "--db", db, "--json", "--limit", "3"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert len(found) == 3 and found[0]["score"] >= found[-1]["score"]
    assert {f["uid"] for f in found[:2]} == {"data-sfgov-org:i98e-djp9", "data-seattle-gov:mags-97de"}
    assert all(f["city"] != "Chicago" for f in found)
    assert "titles share 'building permits'" in found[0]["explanation"]
    result = runner.invoke(cli, ["similar", "nowhere:x", "--db", db])
    assert result.exit_code == 2 and "no dataset 'nowhere:x'" in result.output


def test_embeddings_without_the_extra_are_refused_before_any_work(db, monkeypatch):
    from catalog import EMBEDDINGS_INSTALL
    from catalog.overlap import embeddings
    monkeypatch.setattr(embeddings, "available", lambda: False)
    result = CliRunner().invoke(cli, ["overlap", "--db", db, "--embeddings"])
    # civicat is installed from its checkout (the README's quickstart), not from PyPI, where
    # `pip install 'civicat[embeddings]'` asks for a package of that name
    assert EMBEDDINGS_INSTALL == "pip install -e '.[embeddings]'"
    assert result.exit_code == 2 and EMBEDDINGS_INSTALL in result.output
    help_text = CliRunner().invoke(cli, ["overlap", "--help"], terminal_width=200).output
    assert f"(needs: {EMBEDDINGS_INSTALL})" in help_text


def table_rows(lines: list[str]) -> list[str]:
    """The rows of the first table in `lines` (below its dashes, up to a blank line)."""
    start = next(i for i, line in enumerate(lines) if line.startswith("-----"))
    return [line for line in itertools.takewhile(str.strip, lines[start + 1:])]


@pytest.mark.parametrize("width", [80, 120])
def test_overlap_s_table_fits_the_terminal_most_cities_first_a_title_of_each_city_and_says_how_to_list_a_group(
        db, width, monkeypatch):
    """Session 41, read as a CIO reads it: lines of 183 characters in any terminal, examples cut mid-word
    ('New York: CCRB: Attribution'), three titles of one city for a group of three cities, the groups by
    datasets (New York's hundred CCRB tables before crime incidents in 21 cities), nothing saying how to
    see a group's datasets. Session 42: at 80 columns the summary (99 characters) and the footer (a `civicat
    sql` line of 150) ran past the width, and nothing said why a group is one but `--json`."""
    monkeypatch.chdir(Path(db).parent)   # (a --db of a few characters: the footer's commands name it)
    result = CliRunner().invoke(cli, ["overlap", "--db", "catalog.duckdb"], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    groups = {g["group_id"]: g for g in json.loads(CliRunner().invoke(cli, ["overlap", "--db", db, "--json"]).output)["groups"]}
    lines = result.output.splitlines()
    assert [line for line in lines if len(line) > width] == []
    rows = table_rows(lines)
    assert len(rows) == len(groups)
    shown = [(int(row.split()[0]), row) for row in rows]
    order = [(-len(groups[g]["cities"]), -groups[g]["datasets"]) for g, _ in shown]
    assert order == sorted(order) and order[0] < order[-1]
    # JSON lists the groups in the same order
    assert [g for g, _ in shown] == list(groups)
    at_examples = next(line for line in lines if line.startswith("group ")).index("examples")
    for group_id, row in shown:   # a title of each city before a second of any, in the order the group lists them
        cities = list(dict.fromkeys(m["city"] for m in groups[group_id]["members"]))
        named = [piece.split(": ")[0] for piece in row[at_examples:].split("; ") if ": " in piece]
        assert named and named == cities[:len(named)], (row, cities)
    # the footer's command shows the first group's datasets and why they compare, runnable as printed
    at = lines.index(f"a group's datasets and why they compare (group {shown[0][0]} here):")
    command = shlex.split(lines[at + 1])
    assert command == ["civicat", "overlap", "--group", str(shown[0][0]), "--db", "catalog.duckdb"]
    listed = CliRunner().invoke(cli, [*command[1:], "--json"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output)["members"] == sorted(groups[shown[0][0]]["members"],
                                                          key=lambda m: (m["city"], m["title"], m["uid"]))
    assert lines[at + 2:] == ["every pair with its datasets' uids: civicat overlap --pairs --db catalog.duckdb",
                              "a dataset's nearest in other cities: civicat similar UID --db catalog.duckdb"]


def test_overlap_s_footer_asks_for_the_pairs_as_the_groups_were_computed(db):
    """The footer's `--pairs` line keeps the run's --min-score: without it, it would compute and save other groups
    than those just printed."""
    result = CliRunner().invoke(cli, ["overlap", "--db", db, "--min-score", "0.5"])
    assert result.exit_code == 0, result.output
    assert f"every pair with its datasets' uids: civicat overlap --pairs --min-score 0.5 --db {db}" \
        in result.output.splitlines(), result.output


def pair_entries(lines: list[str]) -> list[tuple[str, str, str]]:
    """(the score and first dataset's line, the second's, the explanation joined) of each pair printed."""
    entries = []
    for line in lines:
        if not line.startswith(" "):
            entries.append([line, None, ""])
        elif entries[-1][1] is None:
            entries[-1][1] = line
        else:
            entries[-1][2] = " ".join([entries[-1][2], line.strip()]).strip()
    return [tuple(entry) for entry in entries]


def test_overlap_s_pairs_name_each_dataset_by_city_title_and_uid_and_explain_it_whole(db):
    """Session 41: `--pairs` printed two uids ('data-austintexas-gov:7g8v-xxja') and a score of '1.0'
    per pair, and its JSON no title: a reader joined the catalogue to know what was compared. Session 42:
    the table named each by city and title but left out the uids, what `civicat similar` takes, and cut
    the explanation to what a row had left (at 80 columns, 24 characters)."""
    result = CliRunner().invoke(cli, ["overlap", "--db", db, "--pairs", "--min-score", "0.6"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    payload = json.loads(CliRunner().invoke(cli, ["overlap", "--db", db, "--pairs", "--min-score", "0.6", "--json"]).output)
    titles = {r["uid"]: (r["city"], r["title"]) for r in json.loads(CliRunner().invoke(
        cli, ["sql", "--db", db, "--json", "SELECT uid, city, title FROM datasets"]).output)}
    assert all((p["city_a"], p["title_a"]) == titles[p["uid_a"]] and (p["city_b"], p["title_b"]) == titles[p["uid_b"]]
               for p in payload["pairs"])
    lines = result.output.splitlines()
    assert [line for line in lines if len(line) > 80 and " --db " not in line] == []   # (but a command with --db)
    at = lines.index(f"{len(payload['pairs'])} pairs, best first:")
    entries = pair_entries(lines[at + 1:lines.index("", at)])
    assert len(entries) == len(payload["pairs"])
    for (first, second, explained), p in zip(entries, payload["pairs"]):
        assert first.startswith(f"{p['score']:.2f}  ") and first.endswith(f"  {p['uid_a']}")
        assert second.startswith(" " * 6) and second.endswith(f"  {p['uid_b']}")
        assert explained == " ".join(p["explanation"].split())
        name_a = first[6:-len(p["uid_a"]) - 2]
        assert name_a == f"{p['city_a']}: {p['title_a']}" or (
            name_a.endswith("\u2026") and f"{p['city_a']}: {p['title_a']}".startswith(name_a[:-1]))
    assert any(len(p["explanation"]) > 80 for p in payload["pairs"])   # (wrapped, not cut)


def test_overlap_group_shows_a_saved_group_s_datasets_and_why_computing_nothing(db):
    """Session 42: a group's `why` (its best stored pair) was in `--json` alone, and its datasets in a
    `civicat sql` line 150 characters long: a terminal user never saw why a group is one. `--group N`
    reads the last run's group, as `civicat similar` reads, and says it."""
    assert CliRunner().invoke(cli, ["overlap", "--db", db]).exit_code == 0
    groups = json.loads(CliRunner().invoke(cli, ["overlap", "--db", db, "--json"]).output)["groups"]
    crimes = next(g for g in groups if g["label"] == "Crime incidents")
    stored = json.loads(CliRunner().invoke(cli, ["sql", "--db", db, "--json",
                                                 "SELECT * EXCLUDE (computed_at) FROM overlap_pairs"]).output)
    computed = CliRunner().invoke(cli, ["sql", "--db", db, "SELECT DISTINCT computed_at FROM overlap_groups"]).output
    n = str(crimes["group_id"])
    result = CliRunner().invoke(cli, ["overlap", "--db", db, "--group", n, "--pairs"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line for line in lines if len(line) > 80 and " --db " not in line] == []   # (but a command with --db)
    cities = len(crimes["cities"])
    assert " ".join(lines[:2]).startswith(f"group {n}, Crime incidents: {crimes['datasets']} datasets of {cities} "
                                          "cities, saved by `civicat overlap` at ")
    why = crimes["why"]
    at = lines.index("why they compare, its best pair:")
    [(first, second, explained)] = pair_entries(lines[at + 1:at + 1 + lines[at + 1:].index("its datasets:")])
    assert first.startswith(f"{why['score']:.2f}  ") and first.endswith(why["uid_a"]) and second.endswith(why["uid_b"])
    assert explained == " ".join(why["explanation"].split()) and "both are crime incident records" in explained
    at = lines.index("its datasets:")
    listed = lines[at + 1:at + 1 + crimes["datasets"]]
    members = sorted(crimes["members"], key=lambda m: (m["city"], m["title"], m["uid"]))
    assert [line.split()[-1] for line in listed] == [m["uid"] for m in members]
    assert all(line.startswith(f"  {m['city']}: {m['title'][:10]}") for line, m in zip(listed, members))
    inside = [p for p in stored if {p["uid_a"], p["uid_b"]} <= {m["uid"] for m in members}]
    assert lines[at + 1 + crimes["datasets"]] == f"its {len(inside)} pairs, best first:"
    assert len(pair_entries(lines[at + 2 + crimes["datasets"]:-1])) == len(inside)
    assert lines[-1].startswith("a dataset's nearest in other cities: civicat similar UID")
    as_json = json.loads(CliRunner().invoke(cli, ["overlap", "--db", db, "--group", n, "--json", "--pairs"]).output)
    assert {k: as_json[k] for k in ("group_id", "label", "datasets", "cities", "why")} == {
        k: crimes[k] for k in ("group_id", "label", "datasets", "cities", "why")}
    assert as_json["members"] == members
    assert [{k: p[k] for k in stored[0]} for p in as_json["pairs"]] == sorted(
        inside, key=lambda p: (-p["score"], p["uid_a"], p["uid_b"]))
    # read, not computed: the groups saved are those of the run before
    assert CliRunner().invoke(cli, ["sql", "--db", db, "SELECT DISTINCT computed_at FROM overlap_groups"]).output == computed


def test_overlap_group_refuses_a_group_not_saved_and_the_options_of_a_computation(db, tmp_path):
    assert CliRunner().invoke(cli, ["overlap", "--db", db]).exit_code == 0
    saved = len(json.loads(CliRunner().invoke(cli, ["overlap", "--db", db, "--json"]).output)["groups"])
    result = CliRunner().invoke(cli, ["overlap", "--db", db, "--group", str(saved + 1)])
    assert result.exit_code == 2 and (f"Error: no group {saved + 1}: the last `civicat overlap` saved {saved} groups, "
                                      f"numbered 1 to {saved}") in result.output, result.output
    result = CliRunner().invoke(cli, ["overlap", "--db", db, "--group", "1", "--min-score", "0.5", "--wait"])
    assert result.exit_code == 2 and ("--min-score and --wait are for computing the groups (give them without "
                                      "--group)") in " ".join(result.output.split()), result.output
    empty = tmp_path / "empty.duckdb"
    from catalog.store import Store
    Store(empty).close()
    result = CliRunner().invoke(cli, ["overlap", "--db", str(empty), "--group", "1"])
    assert result.exit_code == 2 and f"no overlap groups saved in {empty} yet: `civicat overlap --db {empty}` " \
        "computes them" in " ".join(result.output.split()), result.output


def test_overlap_group_imports_neither_numpy_scipy_pandas_nor_arrow(db):
    """`--group N` reads a saved group's few rows; it imported the detector's modules for its copies
    (copies_of: numpy, scipy, pandas) and read its rows through Arrow (numpy), ~0.5 s of its start."""
    assert CliRunner().invoke(cli, ["overlap", "--db", db]).exit_code == 0
    groups = json.loads(CliRunner().invoke(cli, ["overlap", "--db", db, "--json"]).output)["groups"]
    n = str(max(groups, key=lambda g: g["datasets"])["group_id"])
    for options in (["--json", "--pairs"], []):
        result = subprocess.run([sys.executable, "-X", "importtime", "-m", "harvester", "overlap", "--db", db,
                                 "--group", n, *options], capture_output=True, text=True, timeout=120,
                                env={**os.environ, "PYTHONPATH": REPO, "COLUMNS": "80"})
        assert result.returncode == 0, result.stderr
        # (what it prints is what it printed with them)
        assert result.stdout == CliRunner().invoke(cli, ["overlap", "--db", db, "--group", n, *options],
                                                   env={"COLUMNS": "80"}).output
        imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()
                    if line.startswith("import time:")}
        assert "duckdb" in imported and "catalog.copies" in imported
        # (-X importtime names a refused import too, pandas' as DuckDB asks for it, without its submodules)
        assert [name for name in imported if name.split(".")[0] in ("numpy", "scipy", "pyarrow")
                or name.startswith("pandas.")] == []


def test_similar_names_the_dataset_and_its_group_and_shows_each_explanation_whole(db):
    """Session 41: the list named neither the dataset it was of nor why it was not by score alone (its saved
    group's datasets first), and cut each explanation at 110 characters: "titles share 'building permits';
    4 of 19 co", the columns that align, the specific part, left out."""
    uid = "data-cityofchicago-org:ydr8-5enu"
    assert CliRunner().invoke(cli, ["overlap", "--db", db]).exit_code == 0   # (its group saved)
    found = json.loads(CliRunner().invoke(cli, ["similar", uid, "--db", db, "--json", "--limit", "40"]).output)
    result = CliRunner().invoke(cli, ["similar", uid, "--db", db, "--limit", "40"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    in_group = sum(f["in_group"] for f in found)
    group_id, label = next((g["group_id"], g["label"]) for g in json.loads(CliRunner().invoke(
        cli, ["overlap", "--db", db, "--json"]).output)["groups"] if uid in {m["uid"] for m in g["members"]})
    # its first lines: the dataset and its group, wrapped to the width (one line of 130 until session 43), and
    # the command that shows the group
    at = next(i for i, line in enumerate(lines) if line.startswith(f"{found[0]['score']:.2f}  "))
    assert 0 < in_group < len(found) and " ".join(" ".join(lines[:at - 1]).split()) == (
        f"Chicago: Building Permits ({uid}), in overlap group {group_id} '{label}', whose datasets come first "
        f"({in_group} here)")
    assert lines[at - 1] == f"its group and why they compare: civicat overlap --group {group_id} --db {db}"
    lines = lines[at - 1:]
    weak = sum(f["score"] < 0.35 for f in found)
    assert weak and lines[-1] == f"{weak} score under 0.35, `civicat overlap`'s default --min-score: too weak to group"
    entries = [line for line in lines[1:-1] if not line.startswith(" ")]
    assert [entry.split()[0] for entry in entries] == [f"{f['score']:.2f}" for f in found]
    assert all(entry.endswith(f"  {f['uid']}") and len(entry) <= 80 for entry, f in zip(entries, found))
    explained = " ".join(lines[1:-1]).split(entries[0])[1]
    for entry, f in zip(entries[1:] + [None], found):
        text, _, explained = explained.partition(entry) if entry else (explained, "", "")
        assert " ".join(text.split()) == " ".join(f["explanation"].split()), (text, f["explanation"])
    assert [line for line in lines[1:] if len(line) > 80] == []
    assert any("columns align" in f["explanation"] and len(f["explanation"]) > 110 for f in found)


@pytest.mark.parametrize("typed", ["DATA-CITYOFCHICAGO-ORG:YDR8-5ENU", " data-cityofchicago-org: ydr8-5enu"])
def test_similar_of_a_uid_typed_in_capitals_or_with_spaces_names_the_uid_meant(db, typed):
    """Session 41: no suggestion at all ("no dataset 'DATA-CITYOFCHICAGO-ORG:YDR8-5ENU' in the catalogue"), or three
    close spellings of its portal for the one a space was typed in."""
    result = CliRunner().invoke(cli, ["similar", typed, "--db", db])
    assert result.exit_code == 2
    assert (f"Error: no dataset {typed!r} in the catalogue (did you mean 'data-cityofchicago-org:ydr8-5enu'?)\n"
            in result.output), result.output


def test_overlap_s_json_says_why_each_group_is_one_by_its_best_pair(db):
    """Session 41: a group's JSON said what it is, where and what it holds, never why: its best stored pair of
    two of its datasets now does, as `overlap_pairs` keeps it."""
    groups = json.loads(CliRunner().invoke(cli, ["overlap", "--db", db, "--json"]).output)["groups"]
    stored = json.loads(CliRunner().invoke(cli, ["sql", "--db", db, "--json",
                                                 "SELECT uid_a, uid_b, score, explanation FROM overlap_pairs"]).output)
    assert groups and all(g["why"] for g in groups)
    for g in groups:
        members = {m["uid"] for m in g["members"]}
        inside = [p for p in stored if p["uid_a"] in members and p["uid_b"] in members]
        assert g["why"] in inside and g["why"]["score"] == max(p["score"] for p in inside)
    crimes = next(g for g in groups if g["label"] == "Crime incidents")
    assert "both are crime incident records" in crimes["why"]["explanation"]


def test_overlap_group_lists_a_dataset_two_portals_of_its_city_list_once_as_the_run_does(tmp_path):
    """A saved group holds a dataset's copies on its city's other portals as rows of their own (any uid finds the
    group); the run lists the dataset once, its copies beside it. On the session's first merge of `--group N`
    (u42's, written before o42's copies) the saved group listed Chicago's and Seattle's pothole repairs twice each:
    4 datasets where the run said 2."""
    from catalog.store import Store
    from tests.catalog.overlap.conftest import POD_2013, SOCRATA, harvest_selection, uid_of
    from tests.catalog.overlap.test_groups import COPIES_POD_2013, COPIES_SOCRATA

    db = tmp_path / "catalog.duckdb"
    store = Store(db)
    try:
        harvest_selection(store, {**SOCRATA, **COPIES_SOCRATA}, {**POD_2013, **COPIES_POD_2013})
    finally:
        store.close()
    chicago, chicago_2013 = uid_of("data.cityofchicago.org", "sbt5-2ec8"), uid_of("data.cityofchicago.org",
                                                                                   "sbt5-2ec8", pod=True)
    run = json.loads(CliRunner().invoke(cli, ["overlap", "--db", str(db), "--json"]).output)
    potholes = next(g for g in run["groups"] if chicago in {m["uid"] for m in g["members"]})
    assert potholes["datasets"] == 2 and {m["uid"]: m["copies"] for m in potholes["members"]}[chicago] == [chicago_2013]
    n = str(potholes["group_id"])
    saved = json.loads(CliRunner().invoke(cli, ["overlap", "--db", str(db), "--group", n, "--json"]).output)
    assert saved["datasets"] == 2 and saved["why"] == potholes["why"]
    assert sorted(saved["members"], key=lambda m: m["uid"]) == sorted(potholes["members"], key=lambda m: m["uid"])
    shown = CliRunner().invoke(cli, ["overlap", "--db", str(db), "--group", n], env={"COLUMNS": "100"})
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    at = lines.index("its datasets:")
    seattle, seattle_2013 = uid_of("data.seattle.gov", "w3qe-e2jj"), uid_of("data.seattle.gov", "w3qe-e2jj", pod=True)
    assert [line.split()[-1] for line in lines[at + 1:at + 5]] == [chicago, chicago_2013, seattle, seattle_2013]
    assert all("the same on another portal of the city" in lines[at + i] for i in (2, 4))


@pytest.mark.parametrize("pad", range(4))
def test_a_title_s_control_characters_and_line_breaks_are_escaped_before_it_is_cut(tmp_path, monkeypatch, pad):
    """`overlap` and `similar` cut a title to fit, then escaped it: a `\\x1b` kept by the cut became four
    characters past the width (or half an escape), and a line break in a title began a line of its own,
    unindented, in the middle of a pair (search escaped first). Now escaped first, a line break a space."""
    import re

    from catalog.store import Store
    from tests.harvester.test_cli_keys import CRIME, add_dataset

    monkeypatch.chdir(tmp_path)   # (a --db path is never cut in the hints: a short one)
    db = "c.duckdb"
    store = Store(db)
    try:
        add_dataset(store.con, "springfield:crimes", "Springfield", "Crime reports " + "x" * pad + "\x1b[2J\x1b]0;"
                    "owned\x07 and\na second line of the title long enough to be cut at any width", CRIME, 2)
        add_dataset(store.con, "shelbyville:crimes", "Shelbyville", "Crime reports", CRIME, 1)
    finally:
        store.close()
    group = json.loads(CliRunner().invoke(cli, ["overlap", "--db", db, "--json"]).output)["groups"][0]["group_id"]
    for width, args in itertools.product((80, 100), (["overlap", "--pairs"], ["overlap", "--group", str(group)],
                                                    ["overlap", "--group", str(group), "--pairs"],
                                                    ["similar", "shelbyville:crimes"])):
        result = CliRunner().invoke(cli, [*args, "--db", db], env={"COLUMNS": str(width)})
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert max(map(len, lines)) <= width, (args, result.output)
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", result.output), (args, result.output)
        assert not re.search(r"\\(?!x1b|x07)", result.output), (args, result.output)   # (an escape whole, or none)
        # the title on its dataset's line: none of its text begins a line of its own
        assert not any(line.lstrip().startswith("a second line") for line in lines), (args, result.output)


def test_similar_s_first_line_points_to_the_group_s_why(db):
    """A dataset in a saved group: `similar`'s first line says where the group and why it is one are told."""
    run = json.loads(CliRunner().invoke(cli, ["overlap", "--db", db, "--json"]).output)
    group = run["groups"][0]
    uid = group["members"][0]["uid"]
    result = CliRunner().invoke(cli, ["similar", uid, "--db", db], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("its group and why they compare: "))
    first = " ".join(" ".join(lines[:at]).split())   # (the sentence before it, wrapped)
    assert first.startswith(f"{group['members'][0]['city']}: ") and f"({uid})" in first
    assert f"in overlap group {group['group_id']} '{group['label']}', whose datasets come first" in first
    assert lines[at] == f"its group and why they compare: civicat overlap --group {group['group_id']} --db {db}"
    assert lines[at + 1].startswith("0.") and max(map(len, lines[:at])) <= 80
