"""Benchmark: the overlap detector at catalogue scale.

Builds catalogues of 10,000 and 100,000 datasets across 500 portals from the shapes of
the real fixture entries: the 7,187 datasets of the 33 Socrata domains of 2017
(flattened-catalog/spellarbot-2018, harvested through a local portal), each copy given a
city, a year or qualifier in its title, and its column names re-spelt the way cities
differ (case, separators, abbreviations, a column or two dropped); about 15% are filtered
views, charts and maps of a dataset of the same portal. The catalogue is written straight
into the DuckDB tables (the harvest has its own benchmark).

Then `civicat overlap` (detect + save) runs in a child process that samples its own RSS.
Prints seconds (wall and CPU, in all and of each step: load, candidates, score, groups, labels,
explain and write, the last two the save), peak RSS, the 10k -> 100k growth ratio, the ratio to the limit (just
reading the same datasets and columns out of DuckDB) and a naive baseline (an all-pairs
title TF-IDF loop, timed on 3,000 datasets and extrapolated quadratically).
Targets (issue 4): 100,000 datasets in <= 120 s and <= 2 GB peak RSS; growth <= 15x.

    python -m bench.overlap [--sizes 10000 100000] [--portals 500]
"""
from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from catalog.store import DATASET_FIELDS, Store  # noqa: E402

QUALIFIERS = ["", "", "", " - {year}", " {year}", " ({year}-{year2})", " - Current", " - Historical",
              ": Beginning {year}", " FY{year}", " by Ward", " - Map"]
ABBREVIATIONS = {"number": "no", "description": "desc", "date": "dt", "address": "addr", "department": "dept",
                 "amount": "amt", "identifier": "id", "latitude": "lat", "longitude": "lon", "code": "cd"}
DERIVED = [("filtered_view", 0.08), ("chart", 0.04), ("map", 0.03)]

CHILD = r"""
import json, sys, time
from bench.rss import PeakRss
from catalog import overlap
from catalog.store import connect
rss = PeakRss()
con = connect(sys.argv[1])
started, cpu = time.perf_counter(), time.process_time()
result = overlap.detect(con)
overlap.save(con, result)
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": rss.stop(), "steps": result.seconds,
                  "cpu_steps": result.cpu_seconds,
                  "comparable": len(result.catalogue), "candidates": result.candidates,
                  "pairs": int(len(result.pairs.total)), "groups": len(result.groups)}))
"""

LIMIT_CHILD = r"""
import json, sys, time
from catalog.store import connect
con = connect(sys.argv[1])
started = time.perf_counter()
datasets = con.execute("SELECT uid, city, portal_id, title, description, keywords, themes, asset_type "
                       "FROM datasets WHERE deleted_at IS NULL AND parent_uid IS NULL").fetch_arrow_table()
columns = con.execute("SELECT dataset_uid, field_name, name, type FROM columns").fetch_arrow_table()
py = datasets.to_pydict(), columns.to_pydict()
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def templates() -> list[dict]:
    """The real 2017 Socrata datasets (title, description, keywords, columns) as harvested."""
    from tests.conftest import fast_client
    from tests.portals.catalogues import harvest_spellarbot
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "templates.duckdb")
        harvest_spellarbot(store, fast_client())
        store.con.execute("SET memory_limit = '2GB'")
        rows = store.con.execute("""
            SELECT any_value(d.title), any_value(d.description), any_value(d.keywords), any_value(d.themes),
                   list(struct_pack(name := c.name, field_name := c.field_name, type := c.type,
                                    source_type := c.source_type) ORDER BY c.position)
            FROM datasets d JOIN columns c ON c.dataset_uid = d.uid GROUP BY d.uid ORDER BY d.uid""").fetchall()
        store.close()
    return [{"title": t, "description": d, "keywords": k, "themes": th, "columns": cols}
            for t, d, k, th, cols in rows]


def respell(name: str, style: int) -> str:
    words = re.findall(r"[A-Za-z0-9]+", name)
    words = [ABBREVIATIONS.get(w.lower(), w) if style in (1, 3) else w for w in words]
    if style == 0:
        return "_".join(w.lower() for w in words)
    if style == 1:
        return " ".join(w.upper() for w in words)
    if style == 2:
        return "".join(w[:1].upper() + w[1:].lower() for w in words)
    return " ".join(w[:1].upper() + w[1:].lower() for w in words)


def build(db: Path, n: int, portals: int, bank: list[dict], seed: int = 0) -> None:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    data = {name: [] for name in DATASET_FIELDS + ("first_seen", "last_seen", "last_changed", "raw_hash")}
    column_rows = {name: [] for name in ("dataset_uid", "position", "name", "field_name", "type", "source_type")}
    per_portal = n // portals
    for p in range(portals):
        portal_id, city = f"p{p:03d}", f"City {p:03d}"
        own: list[tuple[str, dict]] = []
        for i in range(per_portal):
            uid = f"{portal_id}:{i:04x}-{p:04x}"
            draw = rng.random()
            derived = next((kind for kind, share in DERIVED if (draw := draw - share) < 0), None) if own else None
            if derived:
                parent_uid, template = rng.choice(own)
                title = {"filtered_view": f"{template['title']} - Last 30 Days",
                         "chart": f"{template['title']} by Year", "map": f"Map of {template['title']}"}[derived]
            else:
                parent_uid, template = None, rng.choice(bank)
                year = rng.randint(2008, 2024)
                title = (f"{city} " if rng.random() < 0.2 else "") + template["title"] + rng.choice(QUALIFIERS).format(
                    year=year, year2=year + rng.randint(1, 5))
                own.append((uid, template))
            record = {"uid": uid, "portal_id": portal_id, "city": city, "portal_kind": "socrata",
                      "source_id": uid.split(":")[1], "title": title, "description": template["description"],
                      "keywords": template["keywords"], "themes": template["themes"],
                      "asset_type": derived or "dataset", "parent_uid": parent_uid}
            for name in data:
                data[name].append(record.get(name))
            data["first_seen"][-1] = data["last_seen"][-1] = data["last_changed"][-1] = now
            data["raw_hash"][-1] = "bench"
            style = rng.randrange(4)
            for position, column in enumerate(template["columns"]):
                if rng.random() < 0.08:
                    continue  # cities publish a column more or less
                column_rows["dataset_uid"].append(uid)
                column_rows["position"].append(position)
                column_rows["name"].append(respell(column["name"] or column["field_name"], style))
                column_rows["field_name"].append(respell(column["field_name"] or column["name"], 0))
                column_rows["type"].append(column["type"])
                column_rows["source_type"].append(column["source_type"])
    store = Store(db)
    store.con.register("new_datasets", pa.table(data))
    store.con.register("new_columns", pa.table(column_rows))
    names = ", ".join(data)
    store.con.execute(f"INSERT INTO datasets ({names}) SELECT {names} FROM new_datasets")
    store.con.execute("INSERT INTO columns (dataset_uid, position, name, field_name, type, source_type) "
                      "SELECT * FROM new_columns")
    store.close()


def run_child(code: str, db: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", code, str(db)], capture_output=True, text=True, cwd=ROOT)
    if out.returncode:   # the child's own traceback, not only its exit status
        sys.exit(f"the measured child failed (exit status {out.returncode}):\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def naive_seconds_per_pair(bank: list[dict], sample: int = 3000) -> float:
    """An all-pairs loop: title TF-IDF cosine of every pair in Python dicts."""
    import math
    from collections import Counter
    rng = random.Random(1)
    docs = [Counter(re.findall(r"[a-z0-9]+", rng.choice(bank)["title"].lower())) for _ in range(sample)]
    df = Counter(t for d in docs for t in d)
    vectors = []
    for d in docs:
        v = {t: c * math.log(sample / df[t]) for t, c in d.items()}
        norm = math.sqrt(sum(x * x for x in v.values())) or 1.0
        vectors.append({t: x / norm for t, x in v.items()})
    started = time.perf_counter()
    for i in range(sample):
        vi = vectors[i]
        for j in range(i + 1, sample):
            sum(w * vectors[j].get(t, 0.0) for t, w in vi.items())
    return (time.perf_counter() - started) / (sample * (sample - 1) / 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--portals", type=int, default=500)
    args = parser.parse_args()
    bank = templates()
    print(f"{len(bank)} real dataset shapes from the 33 Socrata domains of 2017; {args.portals} portals")
    per_pair = naive_seconds_per_pair(bank)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            db = Path(tmp) / f"overlap-{n}.duckdb"
            started = time.perf_counter()
            build(db, n, args.portals, bank)
            built = time.perf_counter() - started
            limit = run_child(LIMIT_CHILD, db)["seconds"]
            result = run_child(CHILD, db)
            results[n] = result
            naive = per_pair * result["comparable"] * (result["comparable"] - 1) / 2
            steps = ", ".join(f"{k} {v:.1f}/{result['cpu_steps'][k]:.1f}" for k, v in result["steps"].items())
            print(f"{n:>7} datasets (built in {built:.0f} s): {result['seconds']:.1f} s, CPU "
                  f"{result['cpu_seconds']:.1f} s (wall/CPU: {steps}), "
                  f"peak RSS {result['peak_rss_mb']:.0f} MB; {result['comparable']} comparable, "
                  f"{result['candidates']} candidate pairs, {result['pairs']} strong pairs, {result['groups']} groups")
            print(f"{'':>7} limit (read the same rows from DuckDB): {limit:.1f} s, "
                  f"ratio {result['seconds'] / limit:.1f}; "
                  f"naive all-pairs title loop (extrapolated): {naive:,.0f} s, "
                  f"civicat {naive / result['seconds']:,.0f}x faster")
            db.unlink()
    if len(args.sizes) >= 2:
        small, large = args.sizes[0], args.sizes[-1]
        growth = results[large]["seconds"] / results[small]["seconds"]
        print(f"growth {small} -> {large}: {growth:.1f}x time for {large / small:.0f}x datasets (target <= 15x)")
        big = results[large]
        print(f"targets at {large}: {big['seconds']:.1f} s of 120 s ({big['seconds'] / 120:.2f}), "
              f"{big['peak_rss_mb']:.0f} MB of 2048 MB ({big['peak_rss_mb'] / 2048:.2f})")


if __name__ == "__main__":
    main()
