"""Benchmark: pull the records of a 5,000,000-row, 12-column dataset shaped like Seattle's
SPD 911 fixture, served locally through SODA from a separate process.

Prints, from one run:
  - rows/s end to end (`civicat harvest --records`: SODA CSV pages → typed Arrow → Parquet
    parts → publish → DuckDB column profiles), and the pull's peak RSS (its own process);
  - the limit: the time just to fetch the same CSV pages and parse them with pyarrow, and
    the ratio;
  - the JSON path (SODA `.json` pages → orjson → typed Arrow) on the first tenth, to show
    which SODA format is faster;
  - a naive baseline on the first tenth: requests JSON pages → pandas DataFrame → to_parquet.
Targets (issue 5): >= 200,000 rows/s, peak RSS <= 400 MB, >= 3x the naive baseline.
`--part-seconds 0` closes a part after every page (as a slow portal's pull closes one every
30 s), then joins them at the publish: what parts closed by time cost, at most.

    python -m bench.harvest_records [--rows 5000000] [--part-seconds S]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench.serve import serving

ROOT = Path(__file__).resolve().parents[1]
DOMAIN = "data.example.org"
PAGE = 50_000

PULL_CHILD = r"""
import json, resource, sys, time
from bench.rss import PeakRss
from catalog.store import Store
from harvester.config import PortalConfig
from harvester.http import HttpClient
from harvester.pipeline import harvest
url, db, dataset, fmt, part_seconds = sys.argv[1:6]
if part_seconds:                                    # parts closed by time (harvester.records.PART_SECONDS)
    import harvester.records
    harvester.records.PART_SECONDS = float(part_seconds)
memory = PeakRss()
portal = PortalConfig(id="bench", city="Bench City", kind="socrata", url=url, domain="%s", records=(dataset,))
store = Store(db)
harvest([portal], store, HttpClient())              # the catalogue: one dataset's entry
if fmt == "json":                                   # the SODA JSON path, for comparison
    import harvester.portals.socrata as socrata
    socrata.SocrataAdapter.record_source = lambda self, d, p: socrata.SodaRecords(self, d, p, format="json")
started, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
report = harvest([portal], store, HttpClient(), records=True, full=True)
seconds, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
store.close()
p = report.portals[0]
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "status": p.status, "rows": p.record_rows, "pulled": p.records_pulled,
                  "errors": p.errors, "requests": p.requests, "peak_rss_mb": memory.stop()}))
""" % DOMAIN


def pages(url: str, dataset: str, rows: int, fmt: str):
    for offset in range(0, rows, PAGE):
        yield f"{url}/resource/{dataset}.{fmt}", {"$select": ":id,:updated_at,*", "$order": ":id",
                                                   "$limit": PAGE, "$offset": offset}


def fetch_and_parse(url: str, dataset: str, rows: int, session: requests.Session) -> int:
    """The limit: every CSV page of the pull, fetched and parsed by pyarrow (no types, no writing)."""
    import pyarrow.csv as pacsv

    total = 0
    for page_url, params in pages(url, dataset, rows, "csv"):
        total += pacsv.read_csv(io.BytesIO(session.get(page_url, params=params).content)).num_rows
    return total


def naive_baseline(url: str, dataset: str, rows: int, out: str) -> float:
    """As often written: JSON pages → one pandas DataFrame → to_parquet."""
    import pandas as pd

    session = requests.Session()
    started = time.perf_counter()
    frames = [pd.DataFrame(session.get(page_url, params=params).json())
              for page_url, params in pages(url, dataset, rows, "json")]
    frame = pd.concat(frames, ignore_index=True)
    frame.to_parquet(out)
    assert len(frame) == rows, len(frame)
    return rows / (time.perf_counter() - started)


def pull(url: str, tmp: str, dataset: str, fmt: str, env: dict, part_seconds: float | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", PULL_CHILD, url, f"{tmp}/{fmt}-{dataset}.duckdb", dataset, fmt,
                          "" if part_seconds is None else str(part_seconds)],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def published_layout(folder: Path) -> str:
    import pyarrow.parquet as pq

    files = [pq.read_metadata(path) for path in sorted(folder.glob("*.parquet"))]
    return (f"{len(files)} parts of {min(f.num_rows for f in files):,}-{max(f.num_rows for f in files):,} rows, "
            f"{sum(f.num_row_groups for f in files)} row groups")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--part-seconds", type=float, default=None,
                        help="close a part this long after the last (default: civicat's own, 30 s)")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    print(f"building and serving a {args.rows:,}-row SODA dataset ...", flush=True)
    with serving("soda-records", args.rows) as server:
        small_id, small_rows = server.stdout.readline().split()
        small_rows = int(small_rows)
        url = server.stdout.readline().strip()
        session = requests.Session()
        big_id = "bnch-0001"
        fetch_and_parse(url, big_id, args.rows, session)   # warm the server's page cache
        for page_url, params in pages(url, small_id, small_rows, "json"):
            session.get(page_url, params=params).content

        started = time.perf_counter()
        fetched = fetch_and_parse(url, big_id, args.rows, session)
        limit_seconds = time.perf_counter() - started

        with tempfile.TemporaryDirectory() as tmp:
            load_before = os.getloadavg()[0]
            result = pull(url, tmp, big_id, "csv", env, args.part_seconds)
            load_after = os.getloadavg()[0]
            published = published_layout(Path(tmp) / "records" / "portal=bench" / f"dataset={big_id}")
            json_result = pull(url, tmp, small_id, "json", env)
            csv_small = pull(url, tmp, small_id, "csv", env)
            naive_rate = naive_baseline(url, small_id, small_rows, f"{tmp}/naive.parquet")

    assert fetched == args.rows, fetched
    for r, rows in ((result, args.rows), (json_result, small_rows), (csv_small, small_rows)):
        assert r["status"] == "ok" and r["pulled"] == 1 and r["rows"] == rows and r["errors"] == 0, r
    rate = args.rows / result["seconds"]
    print(f"rows pulled               {args.rows:,} x 12 columns (+ :id, :updated_at), {result['requests']} requests")
    print(f"harvest --records         {result['seconds']:.1f} s = {rate:,.0f} rows/s    (target >= 200,000)")
    print(f"CPU time of the pull      {result['cpu_seconds']:.1f} s (user + system, all its threads) = "
          f"{args.rows / result['cpu_seconds']:,.0f} rows per CPU-second")
    print(f"machine load (1 min)      {load_before:.1f} before the pull, {load_after:.1f} after, on {os.cpu_count()} CPUs "
          "(other work on the machine slows every figure)")
    print(f"peak RSS of the pull      {result['peak_rss_mb']:.0f} MB                 (target <= 400)")
    print(f"published                 {published}")
    print(f"limit: fetch + parse CSV  {limit_seconds:.1f} s = {fetched / limit_seconds:,.0f} rows/s")
    print(f"ratio to the limit        {result['seconds'] / limit_seconds:.2f}")
    print(f"on the first {small_rows:,} rows: CSV path {small_rows / csv_small['seconds']:,.0f} rows/s, "
          f"JSON path {small_rows / json_result['seconds']:,.0f} rows/s (peak RSS {json_result['peak_rss_mb']:.0f} MB)")
    print(f"naive baseline            {naive_rate:,.0f} rows/s on {small_rows:,} rows (requests JSON → pandas → "
          f"to_parquet); civicat is {rate / naive_rate:.1f}x faster   (target >= 3)")


if __name__ == "__main__":
    main()
