"""The Parquet export's files as the README's Export section, docs/export.md and SPEC.md's
"Parquet export" list them, against catalog.export's own list: a table added to the export
fails here until the three say it. (Each file's columns: tests/catalog/test_export.py pins
them against docs/export.md.)"""
from __future__ import annotations

import re

import pytest

from catalog.export import MANIFEST, TABLES
from tests.docs_text import README, ROOT, SPEC, code_blocks, section


def files_named(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w=])([a-z_]+\.parquet|manifest\.json)\b", text))


EXPORTED = {f"{table}.parquet" for table in TABLES} | {MANIFEST}


def test_the_readme_and_docs_export_list_the_files_the_export_writes():
    readme = code_blocks(section(README.read_text(), "## Export"))[0]
    docs = code_blocks(section((ROOT / "docs" / "export.md").read_text(), "## Parquet export"))[0]
    for where, text in (("README's Export section", readme), ("docs/export.md's Parquet export", docs)):
        assert files_named(text) == EXPORTED, (f"{where}: not listed {sorted(EXPORTED - files_named(text))}, "
                                               f"not exported {sorted(files_named(text) - EXPORTED)}")


def test_the_export_writes_every_file_spec_names():
    """(A file beyond SPEC's list breaks no reader of it: the README and docs/export.md list those.)"""
    if not SPEC.is_file():
        pytest.skip(f"../shared/SPEC.md not found beside the repository: {SPEC}")
    spec = section(SPEC.read_text(), "## Parquet export")
    named = files_named(spec.split("`--format data.json`")[0])
    assert len(named) > 5 and named <= EXPORTED, sorted(named - EXPORTED)


def test_the_columns_docs_export_says_are_never_null_are_the_catalogue_s_not_null_columns(tmp_path):
    """docs/export.md said "never null" of `uid` and `title` alone, every other column "may be null",
    where the catalogue declares `portal_id`, `first_seen`, `overlap_pairs.score`... NOT NULL too: a
    front end had to handle nulls that cannot come. Each file's table against a migrated catalogue's
    DESCRIBE, both ways."""
    from catalog.store import Store

    store = Store(tmp_path / "civicat.duckdb")
    try:
        declared = {table: {row[0] for row in store.con.execute(f'DESCRIBE "{table}"').fetchall() if row[2] == "NO"}
                    for table in TABLES}
    finally:
        store.close()
    said, current = {}, None
    for line in (ROOT / "docs" / "export.md").read_text().splitlines():
        heading = re.match(r"^### (\w+)\.parquet\s*$", line)
        current = heading.group(1) if heading else (None if line.startswith("#") else current)
        row = re.match(r"^\| `(\w+)` \| `[^`]+` \|(.*)\|\s*$", line)
        if row and current in TABLES:
            said.setdefault(current, set()).update([row.group(1)] if "never null" in row.group(2) else [])
    assert set(said) == set(TABLES)
    assert said == declared, {table: (f"said never null, declared nullable: {sorted(said[table] - declared[table])}; "
                                      f"NOT NULL, not said: {sorted(declared[table] - said[table])}")
                              for table in TABLES if said[table] != declared[table]}
