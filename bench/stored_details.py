"""Benchmark: the stored details of datasets whose detail lookup failed.

When a dataset's detail lookup fails (Socrata's /api/views, CKAN's DataStore, an ArcGIS
layer), the harvest keeps the looked-up parts of its stored version: it asks
`Store.stored_details` for them, LOOKUPS_FAILED_BATCH uids at a time (harvester/mapping.py).
Each ask reads every stored details document of the portal: they are compressed together,
and an ask's uids are spread over all of them. This builds a catalogue of one portal whose
every dataset has a stored version with details (a JSON document of 40 columns, about 4 KB,
as Socrata's views are), then asks for every dataset, in an order unrelated to the uids' (a
listing's; a portal whose every lookup failed), in asks of a part's size (BATCH, how the
harvest asked before session 20) and of LOOKUPS_FAILED_BATCH, on a catalogue just opened
and again. Prints the seconds for the whole portal and per 1,000 uids (best of the rounds).

    python -m bench.stored_details [--datasets 50000] [--rounds 3]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from catalog.store import MEMORY_LIMIT, Store  # noqa: E402
from harvester.mapping import BATCH, LOOKUPS_FAILED_BATCH  # noqa: E402

PORTAL = "bench"

FILL = """
INSERT INTO raw_records
SELECT $portal || ':' || id, md5(id), $portal, id, '{"id":"' || id || '"}',
       '{"id":"' || id || '","columns":[' || (SELECT string_agg('{"name":"Column ' || c || ' of ' || id
           || '","fieldName":"column_' || c || '","dataTypeName":"text","description":"What column ' || c
           || ' holds, in a sentence or two of the publisher''s, ' || md5(id || c) || '."}', ',')
           FROM range(40) t(c)) || ']}',
       TIMESTAMPTZ '2026-01-01 00:00:00+00'
FROM (SELECT lpad(i::VARCHAR, 7, '0') || '-' || substr(md5(i::VARCHAR), 1, 4) AS id FROM range($n) r(i));
INSERT INTO datasets (uid, portal_id, portal_kind, source_id, title, first_seen, last_seen, last_changed, raw_hash)
SELECT uid, portal_id, 'socrata', source_id, 'Dataset ' || source_id, fetched_at, fetched_at, fetched_at, raw_hash
FROM raw_records;
CHECKPOINT;
"""


def build(db: Path, datasets: int) -> list[str]:
    store = Store(db)
    store.con.execute("SET memory_limit = '2GB'")   # (the fill only: the lookups run at the harvest's limit)
    for statement in FILL.split(";\n"):
        if statement.strip():
            store.con.execute(statement, {"portal": PORTAL, "n": datasets} if "$n" in statement else {})
    store.con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    # in a listing's order, which is not the uids' (Socrata lists by its own ranking): each
    # batch's uids are spread over the whole portal
    uids = [row[0] for row in store.con.execute("SELECT uid FROM datasets ORDER BY hash(uid)").fetchall()]
    store.close()
    return uids


def all_batches(db: Path, uids: list[str], size: int) -> tuple[float, float, float]:
    """Seconds for every ask of `size` uids of the portal: on the catalogue just opened, then
    again; and the CPU seconds of the second (what a quiet machine would show of it)."""
    store = Store(db)
    try:
        times = []
        for _ in range(2):
            started, cpu_started = time.perf_counter(), time.process_time()
            for at in range(0, len(uids), size):
                found = store.stored_details(uids[at:at + size])
                assert len(found) == len(uids[at:at + size])
            times.append(time.perf_counter() - started)
        return times[0], times[1], time.process_time() - cpu_started
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "catalogue.duckdb"
        uids = build(db, args.datasets)
        for size in (BATCH, LOOKUPS_FAILED_BATCH):
            rounds = [all_batches(db, uids, size) for _ in range(args.rounds)]
            cold, warm, cpu = (min(r[i] for r in rounds) for i in range(3))
            per = 1000 / len(uids)
            print(f"stored_details of {len(uids):,} failed lookups in asks of {size:,} (best of {args.rounds}, "
                  f"load average {os.getloadavg()[0]:.1f}): just opened {cold:.2f} s ({cold * per:.3f} s per 1,000), "
                  f"again {warm:.2f} s ({warm * per:.3f} s per 1,000; CPU {cpu:.2f} s)", flush=True)


if __name__ == "__main__":
    main()
