"""Benchmark: the catalogue's file over many nights, as a year of cron leaves it.

bench.nightly's fleet (bench.fleet, served by bench.serve's `nightly` kind), harvested by
`civicat harvest --json` in a process of its own each night: night 1 everything new, then
`--nights` changing nights, each changing other entries (bench.fleet.change with the night's
number: 3% of every portal's entries changed, 1% removed, 1% added; no portal failing, so that
every night's data is what the server holds). Prints per night: the catalogue's file (its bytes;
DuckDB's blocks used and free, `PRAGMA database_size`; the blocks its tables' data take), the read
copy, its spare (`.<copy>.spare`, kept for the next publish) and the bytes the night's publish
wrote, the disk the three files hold, the datasets live and the dead rows `datasets` holds
(reclaimed past catalog.store.RECLAIM_SHARE), the harvest's wall, CPU and peak memory; then each
table's blocks night by night. Checks: each night finds the changes the server made, exit 0, the
read copy current.

    python -m bench.nights [--portals 100] [--datasets 100000] [--nights 12] [--civicat CHECKOUT]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import duckdb

from bench.nightly import ROOT, ask, fleet_options, harvest_night, load, write_config
from bench.serve import serving
from catalog.read_copy import spare_path, read_copy_path


def blocks(db: Path) -> dict:
    """DuckDB's own account of the file: its blocks in all, used and free (PRAGMA database_size),
    and the blocks each table's data takes (pragma_storage_info: its segments' blocks; the rest
    of the used ones are metadata)."""
    with duckdb.connect(str(db), read_only=True) as con:
        size, total, used, free = con.execute(
            "SELECT block_size, total_blocks, used_blocks, free_blocks FROM pragma_database_size()").fetchone()
        tables = [name for (name,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' ORDER BY table_name").fetchall()]
        by_table = {}
        for table in tables:   # (quoted as a name: DuckDB parses the argument as one; none of civicat's has a quote)
            by_table[table] = con.execute("""
                SELECT count(DISTINCT b) FROM (
                    SELECT block_id AS b FROM pragma_storage_info($t) WHERE block_id >= 0
                    UNION ALL SELECT unnest(additional_block_ids) FROM pragma_storage_info($t))""",
                {"t": f'"{table}"'}).fetchone()[0]
    return {"block": size, "total_blocks": total, "used_blocks": used, "free_blocks": free, "tables": by_table}


def mib(path: Path) -> float:
    return path.stat().st_size / 2**20 if path.exists() else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    fleet_options(parser, 100, 100_000)
    parser.add_argument("--nights", type=int, default=12, help="changing nights after night 1")
    args = parser.parse_args()

    print(f"building and serving {args.portals} portals, ~{args.datasets:,} datasets ({load()}) ...", flush=True)
    with serving("nightly", f"{args.portals}x{args.datasets}x{args.largest}") as server, \
            tempfile.TemporaryDirectory(dir=ROOT / "data" if (ROOT / "data").is_dir() else None) as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        portals = json.loads(server.stdout.readline())
        config, db = folder / "nightly.toml", folder / "catalog.duckdb"
        write_config(portals, config)
        copy = read_copy_path(db)
        spare = spare_path(copy)
        print("night  exit   wall    CPU  peak MB  catalogue MiB  used/free blocks (MiB free)  read copy  spare  "
              "disk MiB      live      dead  found as changed", flush=True)
        rows, data_mib = [], None
        for night in range(1, args.nights + 2):
            expected = None
            if night > 1:
                expected = ask(server, f"change {night} steady")
            at = load()
            (folder / "stderr.log").write_text("")
            started = time.perf_counter()
            result = harvest_night(config, db, args.workers, args.civicat, verbose=True)
            wall = time.perf_counter() - started
            found = {key: result[key] for key in ("new", "changed", "removed")}
            want = ({key: sum(e[key] for e in expected["expected"].values()) for key in found} if expected
                    else {"new": result["live"], "changed": 0, "removed": 0})
            b = blocks(db)
            disk = mib(db) + mib(copy) + mib(spare) + mib(db.with_name(db.name + ".wal"))
            row = {"night": night, **result, **b, "wall": wall, "catalogue": mib(db), "copy": mib(copy),
                   "spare": mib(spare), "disk": disk, "load": at}
            rows.append(row)
            free_mib = b["free_blocks"] * b["block"] / 2**20
            written = result["published_written"]
            wrote = "?" if written is None else f"{written / 2**20:.1f} MiB"
            print(f"{night:>5}  {result['exit']:>4} {wall:6.1f} {result['cpu']:6.1f} {result['max_rss_mb']:8.0f} "
                  f"{row['catalogue']:13.1f}  {b['used_blocks']:>6,} / {b['free_blocks']:>5,} ({free_mib:6.1f})"
                  f"            {row['copy']:9.1f} {row['spare']:6.1f} {disk:9.1f} {sum(b['tables'].values()):12,} "
                  f"{wrote:13} {result['live']:9,} "
                  f"{result['dead']:9,}  {'as made' if found == want else f'NOT as made: {found} != {want}'}  ({at})",
                  flush=True)
            assert result["exit"] == 0, result["failed"]
            assert found == want, (night, found, want)
            assert result["copy_current"], night
            if night == 1:
                data_mib = row["catalogue"]
        last = rows[-1]
        print("the tables' data blocks, night by night: " + "; ".join(
            f"{table} " + " ".join(str(r["tables"].get(table, 0)) for r in rows)
            for table in sorted(last["tables"], key=lambda t: -last["tables"][t]) if last["tables"][table]))
        print(f"\n{args.portals} portals; night 1 {rows[0]['live']:,} datasets, night {last['night']} {last['live']:,}; "
              f"the catalogue {data_mib:.1f} -> {last['catalogue']:.1f} MiB, its largest "
              f"{max(r['catalogue'] for r in rows):.1f} (night {max(rows, key=lambda r: r['catalogue'])['night']}); "
              f"the disk its three files hold at most {max(r['disk'] for r in rows):.1f} MiB; the harvest's peak at "
              f"most {max(r['max_rss_mb'] for r in rows):.0f} MB; civicat from {args.civicat} ({load()})")


if __name__ == "__main__":
    main()
