"""Benchmark: an ArcGIS Hub site whose DCAT-US feed is 16 MB or more, harvested whole.

A city Hub of 15-30k datasets serves a feed of that size, which the harvester reads a value at
a time (harvester.http.json_parsing: bodies of 16 MB or more). The feed is made of the recorded
Hub feed's entries (../shared/fixtures/dcat-us/evian-fr-arcgis-hub-data.json, 8 datasets, read at
run time), in turn, each copy its own item (a new item id) and its layer (five of the eight name
a FeatureServer layer), served on the same port: the recorded layer documents
(../shared/fixtures/arcgis-featureserver, 2.5-28 KB), the five in turn. For each size, in
processes of their own:
  - the harvest (`civicat harvest`'s path: the feed, every layer, the catalogue): wall, CPU, peak
    RSS and PSS;
  - the limit: the same feed fetched and parsed whole by orjson, then every layer it names fetched
    and parsed (one connection, in order, as the harvest asks them): wall, CPU, peak RSS;
  - a naive baseline: the feed parsed whole by `response.json()`, then each entry's layer fetched
    and the entry inserted row by row into DuckDB (the first `--naive` entries).
The harvest's memory must not grow with the feed: two sizes are run (~22 and ~65 MB by default).

    python -m bench.hub_feed [--datasets 12000 36000] [--naive 2000]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.harvest_catalog import HARVEST_CHILD
from bench.serve import serving
from tests.portals.base import RawBody
from tests.portals.catalogues import HUB_LAYERS
from tests.portals.dcat import DataJsonPortal
from tests.shared_fixtures import FIXTURES

ROOT = Path(__file__).resolve().parents[1]
RECORDED_FEED = FIXTURES / "dcat-us" / "evian-fr-arcgis-hub-data.json"
RECORDED_SERVICES = "https://services.arcgis.com/Hbks8qlTugfLqQka/arcgis/rest/services/"
_ITEM_ID = re.compile(r"[0-9a-f]{32}")


def recorded_hub_feed(count: int, host: str) -> bytes:
    """A Hub feed of `count` entries: the recorded feed's entries in turn, each copy with its item id
    (in its identifier, landing page and download links) made its own, and its layer served by
    `host` (the recorded service named apart for each copy); serialised as the recorded feed is."""
    feed = json.loads(RECORDED_FEED.read_bytes())
    recorded = [json.dumps(entry) for entry in feed["dataset"]]
    entries = []
    for index in range(count):
        text = recorded[index % len(recorded)]
        copy = index // len(recorded)
        # (the copy's number added to the item id's first 8 digits: distinct for each copy of each
        # entry, the first copy's the recorded one)
        text = _ITEM_ID.sub(lambda item: f"{(int(item.group()[:8], 16) + copy) % 2**32:08x}{item.group()[8:]}", text)
        text = text.replace(RECORDED_SERVICES, f"http://{host}/services/rest/c{copy}_")
        entries.append(text)
    head = json.dumps({key: value for key, value in feed.items() if key != "dataset"})
    return (head[:-1] + ', "dataset": [' + ", ".join(entries) + "]}").encode()


class RecordedHubPortal(DataJsonPortal):
    """A Hub site: its feed, and any FeatureServer layer, answered by a recorded layer document
    (HUB_LAYERS, the one its path's number picks), its bytes as recorded (serialised once: the
    server's CPU is not the harvest's)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.layers = [RawBody((FIXTURES / "arcgis-featureserver" / name).read_bytes(), "application/json")
                       for name in HUB_LAYERS]

    def route(self, path, query):
        if "/FeatureServer/" in path:
            return 200, self.layers[int(path.rsplit("/", 1)[1]) % len(self.layers)]
        return super().route(path, query)


LIMIT_CHILD = r"""
import json, sys, time
import orjson, psutil, requests
from bench.rss import PeakRss
from harvester.portals.arcgis_hub import layer_url
url = sys.argv[1]
memory = PeakRss(0.02)
session = requests.Session()
session.headers["Accept-Encoding"] = "gzip, deflate"   # as the harvester asks
cpu = lambda: sum(psutil.Process().cpu_times()[:2])
started, cpu_started = time.perf_counter(), cpu()
response = session.get(url + "/api/feed/dcat-us/1.1.json")
feed = orjson.loads(response.content)
feed_seconds, feed_cpu = time.perf_counter() - started, cpu() - cpu_started
feed_peak = max(memory.peak, psutil.Process().memory_info().rss) / 2**20   # (the parsed feed still held)
layers = [layer for layer in map(layer_url, feed["dataset"]) if layer]
for layer in layers:
    orjson.loads(session.get(layer, params={"f": "json"}).content)
print(json.dumps({"feed_seconds": feed_seconds, "feed_cpu": feed_cpu, "feed_peak_rss_mb": feed_peak,
                  "seconds": time.perf_counter() - started, "cpu_seconds": cpu() - cpu_started,
                  "entries": len(feed["dataset"]), "layers": len(layers), "bytes": len(response.content),
                  "peak_rss_mb": memory.stop()}))
"""

NAIVE_CHILD = r"""
import json, sys, time
import duckdb, requests
from harvester.portals.arcgis_hub import layer_url
url, db, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
con = duckdb.connect(db)
con.execute("CREATE TABLE datasets (id VARCHAR PRIMARY KEY, title VARCHAR, description VARCHAR, modified VARCHAR, "
            "raw JSON, layer JSON)")
session = requests.Session()
started = time.perf_counter()
feed = session.get(url + "/api/feed/dcat-us/1.1.json").json()
done = 0
for entry in feed["dataset"][:limit]:
    layer = layer_url(entry)
    fields = session.get(layer, params={"f": "json"}).json() if layer else None
    con.execute("INSERT OR REPLACE INTO datasets VALUES (?, ?, ?, ?, ?, ?)",
                [entry["identifier"], entry.get("title"), entry.get("description"), entry.get("modified"),
                 json.dumps(entry), json.dumps(fields)])
    done += 1
print(json.dumps({"datasets": done, "seconds": time.perf_counter() - started}))
"""


def in_a_process(script: Path, *args: str, env: dict) -> dict:
    out = subprocess.run([sys.executable, str(script), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def one_size(count: int, naive: int, tmp: Path, env: dict) -> dict:
    with serving("hub-recorded", count) as server:
        url = server.stdout.readline().strip()
        limit = in_a_process(tmp / "limit_child.py", url, env=env)
        harvest = in_a_process(tmp / "harvest_child.py", url, str(tmp / f"catalog-{count}.duckdb"),
                               env={**env, "BENCH_KIND": "arcgis-hub"})
        baseline = in_a_process(tmp / "naive_child.py", url, str(tmp / f"naive-{count}.duckdb"), str(naive), env=env)
    assert harvest["status"] == "ok" and harvest["new"] == count == limit["entries"], harvest
    return {"count": count, "limit": limit, "harvest": harvest, "naive": baseline,
            "load": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", type=int, nargs="+", default=[12_000, 36_000], help="the feed's sizes, in entries")
    parser.add_argument("--naive", type=int, default=2_000, help="entries for the naive baseline")
    args = parser.parse_args()
    if not RECORDED_FEED.is_file():
        sys.exit(f"needs the recorded Hub feed in ../shared/fixtures beside the repository ({RECORDED_FEED})")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    results = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for name, script in (("harvest_child.py", HARVEST_CHILD), ("limit_child.py", LIMIT_CHILD),
                             ("naive_child.py", NAIVE_CHILD)):
            (tmp / name).write_text(script)
        for count in args.datasets:
            print(f"serving a Hub feed of {count:,} recorded entries ...", flush=True)
            results.append(one_size(count, min(args.naive, count), tmp, env))
            r = results[-1]
            limit, harvest, baseline = r["limit"], r["harvest"], r["naive"]
            rate = count / harvest["seconds"]
            naive_rate = baseline["datasets"] / baseline["seconds"]
            print(f"  feed {limit['bytes'] / 2**20:.1f} MB, {count:,} entries, {limit['layers']:,} layers (load "
                  f"{r['load']:.1f})")
            print(f"  harvest        {harvest['seconds']:.1f} s = {rate:,.0f} datasets/s, CPU {harvest['cpu_seconds']:.1f} s, "
                  f"peak {harvest['peak_rss_mb']:.0f} MB RSS (main process), {harvest['peak_tree_pss_mb']:.0f} MB PSS "
                  f"with its workers; {harvest['requests']:,} requests")
            print(f"  limit          {limit['seconds']:.1f} s, CPU {limit['cpu_seconds']:.1f} s, peak {limit['peak_rss_mb']:.0f} MB "
                  f"RSS; of which the feed fetched and parsed whole {limit['feed_seconds']:.2f} s "
                  f"(CPU {limit['feed_cpu']:.2f} s, {limit['feed_peak_rss_mb']:.0f} MB); ratio "
                  f"{harvest['seconds'] / limit['seconds']:.2f}")
            print(f"  naive baseline {naive_rate:,.0f} datasets/s on {baseline['datasets']:,} entries; civicat is "
                  f"{rate / naive_rate:.1f}x faster")
    if len(results) >= 2:
        small, large = results[0], results[-1]
        print(f"peak RSS from {small['count']:,} to {large['count']:,} entries: harvest "
              f"{small['harvest']['peak_rss_mb']:.0f} -> {large['harvest']['peak_rss_mb']:.0f} MB, the feed parsed whole "
              f"{small['limit']['feed_peak_rss_mb']:.0f} -> {large['limit']['feed_peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
