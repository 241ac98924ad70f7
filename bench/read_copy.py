"""Benchmark: the read copy's cost (catalog.read_copy), at the benches' size.

Harvests a 100,000-dataset Socrata catalogue served locally (bench.harvest_catalog's
harvest, in a process of its own), then a second, unchanged night (bench.incremental's),
and publishes the read copy after each as every writer does when it ends; with
`--overlap`, runs `civicat overlap` too (its tables are in the file) and publishes again.
Prints the catalogue's size, the copy's, and each publish's time (the best of `--rounds`
and all of them) against the harvest it follows. The page cache is warm, as it is for a
writer that has just closed the file.

    python -m bench.read_copy [--datasets 100000] [--rounds 5] [--overlap]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harvest_catalog import HARVEST_CHILD
from bench.incremental import warm_up
from bench.serve import serving
from catalog.read_copy import publish, read_copy_path

ROOT = Path(__file__).resolve().parents[1]


def harvest(child: Path, url: str, db: str, env: dict) -> float:
    out = subprocess.run([sys.executable, str(child), url, db], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == "ok", result
    return result["seconds"]


def publishes(db: str, rounds: int) -> list[float]:
    seconds = []
    for _ in range(rounds):
        published = publish(db)
        assert published is not None, "the copy was not published (see the warning)"
        seconds.append(published.seconds)
    return seconds


def report(what: str, db: str, before: float, seconds: list[float]) -> None:
    size, copy = Path(db).stat().st_size, read_copy_path(db).stat().st_size
    print(f"{what:<28} catalogue {size / 2**20:,.0f} MiB, copy {copy / 2**20:,.0f} MiB; publish best "
          f"{min(seconds):.2f} s ({', '.join(f'{s:.2f}' for s in seconds)}) = {min(seconds) / before:.1%} of "
          f"the {before:.1f} s before it, {size / min(seconds) / 2**20:,.0f} MiB/s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5, help="publishes after each step (the best is reported)")
    parser.add_argument("--overlap", action="store_true", help="also run `civicat overlap` (~1 min, 1.5 GB)")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    print(f"building and serving a {args.datasets:,}-dataset Socrata catalogue ...", flush=True)
    with serving("socrata", args.datasets) as server, tempfile.TemporaryDirectory(dir=ROOT / "data"
                                                                                  if (ROOT / "data").is_dir()
                                                                                  else None) as tmp:
        url = server.stdout.readline().strip()
        warm_up(url)
        child, db = Path(tmp) / "harvest_child.py", f"{tmp}/catalog.duckdb"
        child.write_text(HARVEST_CHILD)
        first = harvest(child, url, db, env)
        report("first harvest", db, first, publishes(db, args.rounds))
        second = harvest(child, url, db, env)
        report("unchanged night", db, second, publishes(db, args.rounds))
        if args.overlap:
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "harvester", "overlap", "--db", db], cwd=ROOT, env=env,
                           check=True, capture_output=True)
            report("overlap", db, time.perf_counter() - started, publishes(db, args.rounds))
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
