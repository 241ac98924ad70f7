"""The value-overlap signal reads the top values of column_profiles (filled by the records
harvest) when the table exists and has rows for both datasets."""
import numpy as np
import pytest

from catalog.overlap import features, scoring
from catalog.store import Store

CRIME_COLUMNS = [("Offense", "offense", "text"), ("Occurred On", "occurred_on", "datetime"),
                 ("District", "district", "text")]


def add_dataset(con, uid, city, title, columns):
    portal_id, source_id = uid.split(":")
    con.execute("""INSERT INTO datasets (uid, portal_id, city, portal_kind, source_id, title, asset_type,
                   first_seen, last_seen, last_changed, raw_hash)
                   VALUES (?, ?, ?, 'socrata', ?, ?, 'dataset', now(), now(), now(), 'h')""",
                [uid, portal_id, city, source_id, title])
    for position, (name, field_name, column_type) in enumerate(columns):
        con.execute("INSERT INTO columns (dataset_uid, position, name, field_name, type) VALUES (?, ?, ?, ?, ?)",
                    [uid, position, name, field_name, column_type])


def profile(con, uid, column, values):
    con.execute("INSERT INTO column_profiles (dataset_uid, column_name, type, top_values) VALUES (?, ?, 'text', ?)",
                [uid, column, values])


def scores(con, a, b):
    c = features.load(con)
    x, y = c.row(a), c.row(b)
    result = scoring.score_pairs(c, np.array([x]), np.array([y]))
    signals = {k: float(v[0]) for k, v in result.signals.items()}
    return c, x, y, result, signals


def test_no_profiles_table_means_no_value_signal(tmp_path):
    store = Store(tmp_path / "c.duckdb")
    add_dataset(store.con, "a:1", "A", "Crime reports", CRIME_COLUMNS)
    add_dataset(store.con, "b:1", "B", "Crime reports", CRIME_COLUMNS)
    _, _, _, _, signals = scores(store.con, "a:1", "b:1")
    assert np.isnan(signals["values"])
    store.close()


def test_shared_top_values_raise_the_score_and_are_explained(tmp_path):
    store = Store(tmp_path / "c.duckdb")
    con = store.con
    con.execute(features.COLUMN_PROFILES_DDL)
    add_dataset(con, "a:1", "A", "Police reports", CRIME_COLUMNS)
    add_dataset(con, "b:1", "B", "Police reports", CRIME_COLUMNS)
    add_dataset(con, "c:1", "C", "Police reports", CRIME_COLUMNS)
    profile(con, "a:1", "offense", ["THEFT", "BATTERY", "BURGLARY", "ROBBERY"])
    profile(con, "b:1", "offense", ["Theft ", "burglary", "Robbery", "Assault"])
    profile(con, "c:1", "offense", ["POTHOLE", "GRAFFITI", "STREET LIGHT OUT", "TREE DEBRIS"])
    c, x, y, shared, signals = scores(con, "a:1", "b:1")
    assert 0.5 < signals["values"] <= 1.0
    text = scoring.explain(c, x, y, signals)
    assert "3 profiled values shared: 'burglary', 'robbery', 'theft'" in text
    _, _, _, disjoint, other = scores(con, "a:1", "c:1")
    assert other["values"] == 0.0
    assert other["title"] == pytest.approx(signals["title"]) and other["columns"] == pytest.approx(signals["columns"])
    # no descriptions, no keywords; both titles name the kind ('police reports': crime incidents)
    assert signals["concept"] == pytest.approx(1.0) and np.isnan(signals["keywords"])
    present = sum(scoring.WEIGHTS[k] for k in ("title", "columns", "values", "concept"))
    gain = scoring.WEIGHTS["values"] * signals["values"] / present
    assert shared.total[0] - disjoint.total[0] == pytest.approx(gain, abs=1e-4)
    store.close()


def test_a_dataset_without_profiles_leaves_the_signal_out(tmp_path):
    store = Store(tmp_path / "c.duckdb")
    con = store.con
    con.execute(features.COLUMN_PROFILES_DDL)
    add_dataset(con, "a:1", "A", "Crime reports", CRIME_COLUMNS)
    add_dataset(con, "b:1", "B", "Crime reports", CRIME_COLUMNS)
    profile(con, "a:1", "offense", ["THEFT"])
    _, _, _, _, signals = scores(con, "a:1", "b:1")
    assert np.isnan(signals["values"]) and signals["columns"] > 0.9
    store.close()
