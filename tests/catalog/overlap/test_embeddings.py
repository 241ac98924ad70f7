"""The optional embedding signal (runs where `civicat[embeddings]` is installed)."""
import numpy as np
import pytest

from catalog import overlap
from catalog.overlap import embeddings, features, scoring
from catalog.store import Store
from tests.catalog.overlap.test_values import CRIME_COLUMNS, add_dataset

from catalog import EMBEDDINGS_INSTALL


@pytest.mark.skipif(not embeddings.available(), reason=f"optional extra not installed: {EMBEDDINGS_INSTALL}")
def test_vectors_are_cached_and_make_a_signal(tmp_path):
    store = Store(tmp_path / "c.duckdb")
    con = store.con
    add_dataset(con, "a:1", "A", "Crimes - 2001 to present", CRIME_COLUMNS)
    add_dataset(con, "b:1", "B", "Reported offenses", CRIME_COLUMNS)
    add_dataset(con, "c:1", "C", "Street tree inventory", [("Species", "species", "text")])
    c = features.load(con)
    c.embeddings = embeddings.vectors(con, c)
    assert c.embeddings.shape == (3, 384)
    assert np.allclose(np.linalg.norm(c.embeddings, axis=1), 1, atol=1e-3)
    assert con.execute("SELECT count(*) FROM overlap_embeddings").fetchone()[0] == 3
    again = embeddings.vectors(con, c)                      # from the cache, same vectors
    assert np.allclose(again, c.embeddings)
    crime = scoring.score_pairs(c, np.array([c.row("a:1")]), np.array([c.row("b:1")]))
    trees = scoring.score_pairs(c, np.array([c.row("a:1")]), np.array([c.row("c:1")]))
    assert crime.signals["embedding"][0] > trees.signals["embedding"][0]
    result = overlap.detect(con, use_embeddings=True)
    overlap.save(con, result)
    assert con.execute("SELECT count(*) FROM overlap_pairs WHERE embedding_score IS NOT NULL").fetchone()[0] >= 1
    store.close()


def test_without_the_extra_the_signal_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setattr(embeddings, "available", lambda: False)
    store = Store(tmp_path / "c.duckdb")
    add_dataset(store.con, "a:1", "A", "Crimes - 2001 to present", CRIME_COLUMNS)
    add_dataset(store.con, "b:1", "B", "Reported offenses", CRIME_COLUMNS)
    with pytest.raises(embeddings.EmbeddingsUnavailable) as refused:
        overlap.detect(store.con, use_embeddings=True)
    assert str(refused.value) == f"the embedding signal needs the optional extra: {EMBEDDINGS_INSTALL}"
    store.close()
