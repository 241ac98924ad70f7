"""SPEC.md's contracts that no other test pins, each checked against what civicat does: the
layout and the one console command, the shipped G7 config, the record schema's vocabulary and
what it may reject, the catalogue's column types, `search --json`'s hits, and a harvest's
progress on a terminal. (The README's and docs' sections against the code, and SPEC's names of
tables, commands, config keys and export files: tests/test_docs.py and the *_docs.py tests.)"""
from __future__ import annotations

import fcntl
import json
import os
import re
import struct
import subprocess
import sys
import termios
import threading
import tomllib

import pytest
from click.testing import CliRunner

from catalog import record as R
from catalog.store import Store
from harvester.cli import cli
from harvester.config import load_config
from tests.conftest import REPO
from tests.docs_text import ROOT, SPEC, section
from tests.portals.socrata import SocrataPortal
from tests.portals.synth import make_socrata_entries


def spec_section(heading: str) -> str:
    if not SPEC.is_file():
        pytest.skip(f"../shared/SPEC.md not found beside the repository: {SPEC}")
    return section(SPEC.read_text(), heading)


def test_the_layout_is_specs_with_two_packages_and_one_console_command():
    for name in ("pyproject.toml", "README.md", "harvester", "catalog", "configs", "data", "tests", "bench"):
        assert (ROOT / name).exists(), f"SPEC's layout names {name}, not in the repository"
    assert os.access(ROOT / ".ci" / "run", os.X_OK), ".ci/run is missing or not executable"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"] == {"civicat": "harvester.command:main"}
    assert project["tool"]["setuptools"]["packages"]["find"]["include"] == ["harvester*", "catalog*"]
    # data/ holds generated content, git-ignored but for its placeholder
    ignored = (ROOT / ".gitignore").read_text().split("\n")
    assert "/data/*" in ignored and "!/data/.gitkeep" in ignored


def test_the_shipped_config_is_the_seven_cities_of_their_kinds_with_open311_endpoints():
    portals = load_config(ROOT / "configs" / "g7.toml").portals
    kinds = {(p.city, p.kind) for p in portals if p.kind != "open311"}
    assert kinds == {("San Francisco", "socrata"), ("New York", "socrata"), ("Seattle", "socrata"),
                     ("Los Angeles", "socrata"), ("Chicago", "socrata"), ("Boston", "ckan"),
                     ("Washington, DC", "arcgis-hub")}
    open311 = {p.city for p in portals if p.kind == "open311"}
    assert open311 and open311 <= {city for city, _ in kinds}


def test_the_record_schemas_column_types_are_specs_shared_vocabulary():
    said = re.search(r"`type` in a\s+shared vocabulary:\s*([a-z,\s]+);", spec_section("## Store (DuckDB) — tables an analyst can rely on"))
    assert said, "SPEC's Store section no longer names the column type vocabulary"
    vocabulary = [word.strip() for word in said.group(1).split(",")]
    assert R.SCHEMA["properties"]["columns"]["items"]["properties"]["type"]["enum"] == vocabulary
    # (a source type with no match, or none, is `other`: tests/catalog/test_record.py)


def test_a_record_is_rejected_only_without_a_source_id_or_title():
    """SPEC: rejected only when it is not an object or has no source id or no title (the other
    required fields come from the config, never from the portal); every other field may be
    missing and is stored as null."""
    from_config = {"uid", "portal_id", "city", "portal_kind"}
    assert set(R.SCHEMA["required"]) - from_config == {"source_id", "title"}
    bare = {"uid": "p:1", "portal_id": "p", "city": "C", "portal_kind": "ckan", "source_id": "1", "title": "T"}
    notes = R.Notes()
    assert R.validate(dict(bare), notes) == bare and notes.items == []


@pytest.mark.parametrize("value, valid", [
    ("R/P1D", True), ("R/PT15M", True), ("R/P0.5M", True), ("irregular", True), ("unknown", True), (None, True),
    ("daily", False), ("R/P", False), ("P1D", False),
])
def test_accrual_periodicity_is_an_iso_repeating_duration_or_irregular_or_unknown(value, valid):
    bare = {"uid": "p:1", "portal_id": "p", "city": "C", "portal_kind": "ckan", "source_id": "1", "title": "T"}
    notes = R.Notes()
    stored = R.validate({**bare, "accrual_periodicity": value}, notes)["accrual_periodicity"]
    assert (stored, notes.items == []) == ((value, True) if valid else (None, False))


# SPEC's types of the datasets columns it names (DuckDB's names); the other columns are text
SPEC_TYPES = {
    "keywords": "VARCHAR[]", "themes": "VARCHAR[]",   # (list)
    **{name: "TIMESTAMP WITH TIME ZONE" for name in ("issued", "modified", "temporal_start", "temporal_end",
                                                     "first_seen", "last_seen", "last_changed", "deleted_at")},
    "row_count": "BIGINT",
}


def test_the_catalogues_columns_have_the_types_spec_gives(tmp_path):
    store = Store(tmp_path / "civicat.duckdb")
    try:
        described = {table: {row[0]: (row[1], row[3]) for row in store.con.execute(f'DESCRIBE "{table}"').fetchall()}
                     for table in ("datasets", "distributions", "columns", "harvest_errors", "column_profiles",
                                   "overlap_pairs", "overlap_groups")}
    finally:
        store.close()
    datasets = described["datasets"]
    assert datasets["uid"] == ("VARCHAR", "PRI")   # (= portal_id:source_id, primary key)
    named = re.findall(r"`([a-z_]+)`", spec_section("## Store (DuckDB) — tables an analyst can rely on").split(
        "- `distributions`")[0])
    wrong = {name: datasets[name][0] for name in named if name in datasets
             and datasets[name][0] != SPEC_TYPES.get(name, "VARCHAR")}
    assert not wrong, f"datasets columns not of SPEC's types: {wrong}"
    assert described["columns"]["position"][0] == "INTEGER" and described["columns"]["type"][0] == "VARCHAR"
    assert described["column_profiles"]["top_values"][0] == "VARCHAR[]"
    assert described["overlap_pairs"]["score"][0] == "DOUBLE"
    assert {"uid_a", "uid_b", "score", "explanation"} <= set(described["overlap_pairs"])
    assert {"group_id", "uid", "label"} <= set(described["overlap_groups"])
    assert {"run_id", "portal_id", "source_id", "stage", "error_type", "message"} <= set(described["harvest_errors"])


def harvest_config(tmp_path, portal: SocrataPortal) -> str:
    config = tmp_path / "spec.toml"
    config.write_text(f'[[portals]]\nid = "spec"\ncity = "Spec City"\nkind = "socrata"\nurl = "{portal.url}"\n'
                      f'domain = "{portal.domain}"\n')
    return str(config)


def test_search_json_is_a_list_of_hits_best_first_each_with_uid_title_city_and_score(tmp_path):
    db = str(tmp_path / "civicat.duckdb")
    with SocrataPortal(make_socrata_entries(40)) as portal:
        harvested = CliRunner().invoke(cli, ["harvest", "--config", harvest_config(tmp_path, portal), "--db", db])
    assert harvested.exit_code == 0, harvested.output
    titles = CliRunner().invoke(cli, ["sql", "--db", db, "--format", "json",
                                      "SELECT title FROM datasets WHERE asset_type = 'dataset' ORDER BY uid LIMIT 1"])
    title = json.loads(titles.output)[0]["title"]
    result = CliRunner().invoke(cli, ["search", title, "--db", db, "--json", "--limit", "5"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)
    assert isinstance(hits, list) and 1 <= len(hits) <= 5
    assert all({"uid", "title", "city", "score"} <= set(hit) for hit in hits), hits
    assert all(hit["uid"].startswith("spec:") and hit["city"] == "Spec City" for hit in hits)
    scores = [hit["score"] for hit in hits]
    assert scores == sorted(scores, reverse=True) and hits[0]["title"] == title


def harvest_output(tmp_path, portal: SocrataPortal, terminal_columns: int | None) -> tuple[int, str]:
    """`civicat harvest` in a process of its own, its stderr a pseudo-terminal `terminal_columns`
    wide (0: one that says no width) or, None, a pipe: (exit code, what it wrote on stderr)."""
    command = [sys.executable, "-m", "harvester", "harvest", "--config", harvest_config(tmp_path, portal),
               "--db", str(tmp_path / "civicat.duckdb")]
    env = {**os.environ, "PYTHONPATH": REPO, "CIVICAT_HTTP_BACKOFF": "0.01"}
    if terminal_columns is None:
        done = subprocess.run(command, cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=180)
        return done.returncode, done.stderr
    terminal, side = os.openpty()
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 24 if terminal_columns else 0, terminal_columns, 0, 0))
    read: list[bytes] = []

    def drain() -> None:   # (a terminal's buffer is small: read as the harvest writes)
        while True:
            try:
                chunk = os.read(terminal, 4096)
            except OSError:   # EIO: every process closed its side
                return
            if not chunk:
                return
            read.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=side)
        os.close(side)
        try:
            code = process.wait(timeout=180)
        finally:
            process.kill()
            process.wait()
        reader.join(timeout=30)
        assert not reader.is_alive(), "the terminal's output did not end 30 s after the harvest"
    finally:
        os.close(terminal)
    return code, b"".join(read).decode(errors="replace")


@pytest.mark.parametrize("columns", [100, 0])
def test_a_harvest_shows_progress_on_a_terminal_and_none_in_a_log(tmp_path, columns):
    """SPEC: progress is shown on a terminal (stderr), also one that says no width (0 columns:
    script(1), a container's tty before its first resize, where tqdm drew bars of no width);
    cron's log (a file, a pipe) gets none."""
    (tmp_path / "terminal").mkdir()
    (tmp_path / "log").mkdir()
    with SocrataPortal(make_socrata_entries(150)) as portal:
        code, shown = harvest_output(tmp_path / "terminal", portal, columns)
        assert code == 0, shown
        assert re.search(r"spec: .*150/150 .*datasets", shown), f"no progress of portal 'spec' shown: {shown!r}"
        code, logged = harvest_output(tmp_path / "log", portal, None)
    assert code == 0, logged
    assert "150/150" not in logged and "\r" not in logged, f"progress written to a log: {logged!r}"
