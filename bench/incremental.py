"""Benchmark: the nightly cost of an unchanged catalogue.

Harvests a Socrata catalogue served locally twice into the same catalogue, each run in a
process of its own as cron would start it: the first run stores everything; the second,
over the unchanged catalogue, sends conditional requests along the last listing's chain
(the portal answers 304), leaves every page it knows unread, and writes no dataset row.
Prints, from one run: both times, the ratio (target: second <= 1/10 of the first), what
each run wrote, its HTTP figures and peak memory.

`--kind dcat-us` (or `arcgis-hub`) harvests one data.json document (a Hub feed, its layers
on the same port) instead. Any kind is served with `--validators` stable (ETag and
Last-Modified: 304s), none (no validators: every page whole every night) or changing (a new
ETag for the same bytes every answer); it prints what the second night read entry by entry too.
`--days-later N`: the second run's clock N days after the first's, so that the lookups kept
while entries are as stored (a Hub feed's layers) are due on it as on a nightly harvest's
night (1: about a seventh of them).

    python -m bench.incremental [--datasets 100000]
    python -m bench.incremental --kind dcat-us --datasets 50000 --validators none
    python -m bench.incremental --datasets 50000 --validators none
    python -m bench.incremental --kind arcgis-hub --datasets 5000 --days-later 1
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import requests

from bench.harvest_catalog import DOMAIN, HARVEST_CHILD
from bench.serve import serving

ROOT = Path(__file__).resolve().parents[1]


def warm_up(url: str) -> None:
    """Ask the server every page the harvests will ask, plainly and conditionally, so it
    answers both runs from memory (its cost, a 304 included, must not hide ours)."""
    session = requests.Session()
    session.headers["Accept-Encoding"] = "gzip, deflate"   # as the harvester asks
    probe = session.get(f"{url}/api/catalog/v1", params={"domains": DOMAIN, "offset": 0, "limit": 1})
    responses, scroll = [probe], ""
    while True:
        page = session.get(f"{url}/api/catalog/v1", params={"domains": DOMAIN, "limit": 100, "scroll_id": scroll})
        responses.append(page)
        if not page.json()["results"]:
            break
        scroll = page.json()["results"][-1]["resource"]["id"]
    for response in responses:
        if "ETag" in response.headers:   # (a server sending no validators answers no 304)
            session.get(response.url, headers={"If-None-Match": response.headers["ETag"],
                                               "If-Modified-Since": response.headers["Last-Modified"]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", type=int, default=100_000)
    parser.add_argument("--kind", choices=("socrata", "dcat-us", "arcgis-hub"), default="socrata")
    parser.add_argument("--validators", choices=("stable", "none", "changing"), default="stable",
                        help="what the server sends")
    parser.add_argument("--days-later", type=float, default=0.0,
                        help="days between the two runs, as the harvest tells them (kept lookups due)")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_KIND": args.kind}

    served = {"socrata": ("socrata", args.datasets if args.validators == "stable" else
                          f"{args.datasets}:{args.validators}"), "dcat-us": ("data.json", f"{args.datasets}:{args.validators}"),
              "arcgis-hub": ("hub", f"{args.datasets}:{args.validators}")}[args.kind]
    print(f"building and serving a {args.datasets:,}-dataset {args.kind} catalogue ({args.validators} validators) ...",
          flush=True)
    with serving(*served) as server, tempfile.TemporaryDirectory() as tmp:
        url = server.stdout.readline().strip()
        if args.kind == "socrata":
            warm_up(url)
        child, db = Path(tmp) / "harvest_child.py", f"{tmp}/catalog.duckdb"
        child.write_text(HARVEST_CHILD)
        runs, snapshots = [], []
        for interval, later in (("0.05", 0.0), ("0.25", args.days_later)):  # (the second run's memory
            # sampled less often: it costs CPU)
            out = subprocess.run([sys.executable, str(child), url, db], cwd=ROOT,
                                 env={**env, "BENCH_RSS_INTERVAL": interval, "BENCH_DAYS_LATER": str(later or "")},
                                 capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            with duckdb.connect(db, read_only=True) as con:
                snapshots.append(con.execute("SELECT md5(string_agg(d::VARCHAR, '' ORDER BY uid)) FROM datasets d")
                                 .fetchone()[0])

    first, second = runs
    assert first["status"] == second["status"] == "ok" and first["new"] == args.datasets, runs
    assert (second["new"], second["changed"], second["unchanged"], second["removed"]) == (0, 0, args.datasets, 0), second
    ratio = second["seconds"] / first["seconds"]
    for name, run in (("first run", first), ("second run", second)):
        print(f"{name:<11} {run['seconds']:6.1f} s  new {run['new']:,}, changed {run['changed']:,}, unchanged "
              f"{run['unchanged']:,}; {run['requests']:,} requests, {run['not_modified']:,} answered 304, "
              f"{run['bytes'] / 2**20:,.1f} MB received; CPU {run['cpu_seconds']:.1f} s; peak "
              f"{run['peak_tree_pss_mb']:.0f} MB PSS")
        print(f"{'':<11} the process: {run['process_seconds']:.1f} s with start-up, imports and opening the "
              f"database ({run['open_seconds']:.2f} s); search index {run['search_seconds']:.2f} s")
        if "checked" in run:   # (a checkout before session 30 counts neither)
            print(f"{'':<11} entries checked one by one {run['checked']['entries']:,}, raw hashes taken here "
                  f"{run['checked']['hashed']:,}, batches mapped {run['listing_cpu']['batches']:,}; written "
                  f"{run['written_bytes'] / 2**20:,.1f} MB")
    print(f"datasets table unchanged by the second run: {snapshots[0] == snapshots[1]}")
    print(f"ratio second / first    {ratio:.3f} = 1/{1 / ratio:.1f}   (target <= 1/10: "
          f"{'met' if ratio <= 0.1 else 'NOT met'}); whole processes "
          f"{second['process_seconds'] / first['process_seconds']:.3f}")


if __name__ == "__main__":
    main()
