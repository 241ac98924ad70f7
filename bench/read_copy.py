"""Benchmark: the read copy's cost (catalog.read_copy), at the benches' size.

Harvests a 100,000-dataset Socrata catalogue served locally (bench.harvest_catalog's
harvest, in a process of its own), then `--nights` unchanged nights (bench.incremental's),
and publishes the read copy after each as every writer does when it ends (since session 38
the copy before the current one is updated in place, only its changed blocks written, from
the third publish on); with `--overlap`, runs `civicat overlap` too (its tables are in the
file), which publishes as it ends, as every writer does. Prints, after each step, the
catalogue's size, the writer's publish (its time and the bytes it wrote: this process's `wchar`,
the kernel's copy among them; its peak memory, this process's high-water mark before and after;
`overlap`'s own publish as `civicat -v` logs it) against the step before it, and
a whole copy of the file as every publish made it before session 38 (the kernel's copy and the
flush, to a scratch file: the best of `--rounds`). The page cache is warm, as it is for a
writer that has just closed the file.

    python -m bench.read_copy [--datasets 100000] [--nights 2] [--rounds 3] [--overlap]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harvest_catalog import HARVEST_CHILD
from bench.incremental import warm_up
from bench.nightly import published
from bench.serve import serving
from catalog.read_copy import _copy_file, publish

ROOT = Path(__file__).resolve().parents[1]


def harvest(child: Path, url: str, db: str, env: dict) -> float:
    out = subprocess.run([sys.executable, str(child), url, db], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == "ok", result
    return result["seconds"]


def written_so_far() -> int:
    """Bytes this process has handed to write calls (/proc/self/io's wchar)."""
    return int(dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())["wchar"])


def whole_copy(db: str, rounds: int) -> float:
    """The best time of a whole copy and its flush, as each publish made it before session 38."""
    scratch = Path(f"{db}.whole")
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        _copy_file(Path(db), scratch)
        fd = os.open(scratch, os.O_RDONLY)
        os.fdatasync(fd)
        os.close(fd)
        seconds.append(time.perf_counter() - started)
        scratch.unlink()
    return min(seconds)


def report(what: str, db: str, before: float, rounds: int) -> None:
    peak, written = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, written_so_far()
    published = publish(db)
    assert published is not None, "the copy was not published (see the warning)"
    written, peak_after = written_so_far() - written, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    whole = whole_copy(db, rounds)
    how = "made anew" if published.written == published.bytes else "the spare updated"
    print(f"{what:<18} catalogue {published.bytes / 2**20:,.1f} MiB; publish ({how}) {published.seconds:.2f} s "
          f"= {published.seconds / before:.1%} of the {before:.1f} s before it, wrote {written / 2**20:,.1f} MiB "
          f"({written / published.bytes:.1%}), peak memory {peak / 1024:.0f} -> {peak_after / 1024:.0f} MB; "
          f"a whole copy {whole:.2f} s, {published.bytes / 2**20:,.1f} MiB written", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", type=int, default=100_000)
    parser.add_argument("--nights", type=int, default=2, help="unchanged nights after the first harvest")
    parser.add_argument("--rounds", type=int, default=3, help="whole copies timed after each step (the best)")
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
        report("first harvest", db, harvest(child, url, db, env), args.rounds)
        for night in range(1, args.nights + 1):
            report(f"unchanged night {night}", db, harvest(child, url, db, env), args.rounds)
        if args.overlap:   # (the command publishes as it ends, as every writer: its own publish is the figure)
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "harvester", "-v", "overlap", "--db", db], cwd=ROOT, env=env,
                                  check=True, capture_output=True, text=True)
            seconds, own = time.perf_counter() - started, published(done.stderr.splitlines())
            assert own is not None, "`civicat overlap` published no read copy (see its stderr)"
            print(f"{'overlap':<18} catalogue {own['bytes'] / 2**20:,.1f} MiB; its own publish {own['seconds']:.2f} s "
                  f"= {own['seconds'] / seconds:.1%} of the {seconds:.1f} s of the command, wrote "
                  f"{own['written'] / 2**20:,.1f} MiB ({own['written'] / own['bytes']:.1%}); a whole copy "
                  f"{whole_copy(db, args.rounds):.2f} s", flush=True)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
