"""The README's catalogue table (and docs/search.md's index tables) against a catalogue the
migrations made: every table and view is listed, each with exactly its columns; the tables and
columns SPEC.md's Store section names exist. Read from DESCRIBE, so that a migration that adds a
table or column fails here until the README says it."""
from __future__ import annotations

import re

import pytest

from catalog.store import Store
from tests.docs_text import README, ROOT, SPEC, backticked_names, markdown_table, section, without_parentheses


@pytest.fixture(scope="module")
def described(tmp_path_factory) -> dict[str, set[str]]:
    """{table or view: its columns} of a freshly migrated catalogue."""
    store = Store(tmp_path_factory.mktemp("catalogue") / "civicat.duckdb")
    try:
        con = store.con
        names = [row[0] for row in con.execute("SELECT table_name FROM information_schema.tables "
                                               "WHERE table_schema = 'main'").fetchall()]
        return {name: {row[0] for row in con.execute(f'DESCRIBE "{name}"').fetchall()} for name in names}
    finally:
        store.close()


def documented() -> dict[str, set[str] | None]:
    """{table: the columns its README row lists, its key's among them} (None: the row sends the
    reader elsewhere for them)."""
    tables = {}
    rows = markdown_table(section(README.read_text(), "## The catalogue (DuckDB)"))
    # (a key's cell may name another table beside its columns: raw_records' sends the reader
    # to dataset_events for what a change changed)
    named = {name for cells in rows for name in backticked_names(without_parentheses(cells[0]))}
    for cells in rows:
        names, columns = backticked_names(without_parentheses(cells[0])), cells[2]
        listed = None if re.search(r"\]\([^)]*\.md[^)]*\)", columns) and len(names) > 1 else \
            set(backticked_names(without_parentheses(columns))) | (set(backticked_names(cells[1])) - named)
        tables.update({name: listed for name in names})
    for cells in markdown_table(section((ROOT / "docs" / "search.md").read_text(), "## The index tables")):
        # one part per table, in the first cell's order: "document per dataset (`docid`, ...); stemmed term (...)"
        for name, part in zip(backticked_names(cells[0]), cells[2].split(";"), strict=True):
            tables[name] = set(backticked_names(part))
    return tables


def test_the_readme_lists_every_table_of_the_catalogue(described):
    said = documented()
    assert set(said) == set(described), (f"tables not in the README's catalogue table: "
                                         f"{sorted(set(described) - set(said))}; listed there but not in a "
                                         f"migrated catalogue: {sorted(set(said) - set(described))}")


def test_each_table_row_lists_exactly_its_columns(described):
    wrong = []
    for table, columns in documented().items():
        if table in described and columns is not None and columns != described[table]:
            wrong.append(f"{table}: not listed {sorted(described[table] - columns)}, "
                         f"no such column {sorted(columns - described[table])}")
    assert not wrong, "\n".join(wrong)


def test_the_tables_and_columns_spec_names_exist(described):
    if not SPEC.is_file():
        pytest.skip(f"../shared/SPEC.md not found beside the repository: {SPEC}")
    store_section = section(SPEC.read_text(), "## Store (DuckDB) — tables an analyst can rely on")
    columns = set().union(*described.values())
    values = {"irregular", "unknown", "other"}   # (values SPEC names: of accrual_periodicity, columns.type)
    missing = [name for name in backticked_names(store_section) if name not in described and name not in columns
               and name not in values]
    assert not missing, f"SPEC's Store section names what no migrated catalogue has: {missing}"
    for bullet in re.findall(r"^- `datasets`:(.*?)(?=^- )", store_section, re.M | re.S):
        assert set(backticked_names(without_parentheses(bullet))) <= described["datasets"]
