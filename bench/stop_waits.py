"""Benchmark: how long a Ctrl-C or SIGTERM waits for the DuckDB statement it comes in (not a
speed target: docs/harvesting.md's stop section, docs/benchmarks.md "Stops during DuckDB
statements").

A stop that comes while the main thread is in a held statement of the catalogue's connection
(catalog.uncut) takes effect as the statement returns. Measured at the benches' largest sizes:
  - catalogue: `harvest --full` of bench.harvest_catalog's 100,000 Socrata datasets, every one
    changed since the first harvest: the main thread's longest calls of the catalogue's
    connection, and the merge's seconds; then the same sent SIGTERM 0.5 s into its insert of the
    datasets (the table rebuilt: catalog.store._write_datasets), and how long that took to
    return after it;
    and each COMMIT's growth of the WAL (what it wrote there), against a plain write and fsync
    of as many bytes beside the catalogue;
  - search: the first harvest sent SIGTERM 1 s into the search index build's longest statement
    (its term frequencies), how long that statement took to return after it, and whether the
    next harvest (nothing changed) builds the index;
  - commit: what the merge's COMMIT spends on, a table shaped as `datasets` every row of which
    is written again (an UPDATE, a delete and insert, the table rebuilt), with its key a PRIMARY
    KEY as the catalogue's, and the UPDATE without;
  - records: an incremental pull's merge (harvester.records_merge: Arrow, no DuckDB statement
    since session 26) of bench.harvest_records' 5,000,000 rows with a delta of 1% changed and 1%
    new rows, and the same stopped by Ctrl-C 1 s in.

Without --only, each part runs in a process of its own, as each civicat command does: a stop's
signals are counted for the life of a process (the third quits at once), and the parts' stops
taken in one process made the records part's Ctrl-C a third, ending the bench without its figure.

    python -m bench.stop_waits [--datasets 100000] [--rows 5000000] [--only catalogue|stopped|search|commit|records]
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.serve import serving

DOMAIN = "data.example.org"
SHOWN = 6


INSERT_STOP_AFTER = 0.5   # seconds into the --full merge's insert of the datasets that SIGTERM comes


class CallTimes:
    """The main thread's calls of every catalog.uncut Connection while it is installed: their
    seconds and the first words of their SQL. Given `stop_in` (words a call's SQL begins with)
    and `after`, the process sends itself SIGTERM `after` seconds into the first such call (not
    SIGINT: a shell's background job ignores it, and so does civicat's stop then);
    `stop_waited`: the seconds from the signal to the return of the call it came in (that call,
    or a later one when that call returned first; None: it came between calls), `stopped_in` its SQL."""

    def __init__(self, stop_in: str | None = None, after: float = 2.0, wal: Path | None = None):
        from catalog import uncut
        self.calls: list[tuple[float, str]] = []
        self.commits: list[tuple[float, int]] = []   # each COMMIT's seconds and growth of the WAL `wal`
        self.stop_waited: float | None = None
        self.stopped_in: str | None = None   # the first words of the call the signal came in
        self._uncut, self._call = uncut, uncut.Connection._call
        timed_call = self._call
        signalled: list[float] = []

        def signal_now() -> None:
            signalled.append(time.perf_counter())
            os.kill(os.getpid(), signal.SIGTERM)

        def call(connection, method, args, kwargs):
            if threading.current_thread() is not threading.main_thread():
                return timed_call(connection, method, args, kwargs)
            said = " ".join(str(args[0]).split())[:70] if args else method.__name__
            stopping = stop_in is not None and not signalled and said.startswith(stop_in)
            if stopping:
                threading.Timer(after, signal_now).start()
            committing = wal is not None and said.startswith("COMMIT")
            wal_before = wal_size(wal) if committing else 0
            began = time.perf_counter()
            try:
                return timed_call(connection, method, args, kwargs)
            finally:
                ended = time.perf_counter()
                self.calls.append((ended - began, said))
                if committing:
                    self.commits.append((ended - began, wal_size(wal) - wal_before))
                # (the call the signal came in: the one timed, or any later one it fell in when that
                # one had returned first)
                if signalled and self.stop_waited is None and began <= signalled[0] <= ended:
                    self.stop_waited, self.stopped_in = ended - signalled[0], said
        uncut.Connection._call = call

    def longest(self, count: int = SHOWN) -> list[tuple[float, str]]:
        return sorted(self.calls, reverse=True)[:count]

    def close(self) -> None:
        self._uncut.Connection._call = self._call


class TimedMerges:
    """Store._merge (a portal's transaction) timed: the seconds of each attempt (one that did not
    fit the memory limit is tried again with more)."""

    def __init__(self, merge):
        self.merge, self.seconds = merge, []

    def __call__(self, *args, **kwargs):
        began = time.perf_counter()
        try:
            return self.merge(*args, **kwargs)
        finally:
            self.seconds.append(time.perf_counter() - began)


def wal_size(wal: Path) -> int:
    return wal.stat().st_size if wal.exists() else 0


def write_seconds(directory: Path, size: int) -> float:
    """The seconds a plain write of `size` bytes and its fsync take in `directory`."""
    block = os.urandom(1 << 20)
    path = directory / "write-speed.bin"
    began = time.perf_counter()
    with open(path, "wb") as out:
        for _ in range(max(1, size >> 20)):
            out.write(block)
        out.flush()
        os.fsync(out.fileno())
    took = time.perf_counter() - began
    path.unlink()
    return took


def catalogue_waits(datasets: int, *, unstopped: bool = True) -> None:
    from catalog.store import Store, connect
    from harvester.config import PortalConfig
    from harvester.http import HttpClient
    from harvester.mapping import WorkerPool
    from harvester.pipeline import harvest

    with serving("socrata", datasets) as server, tempfile.TemporaryDirectory() as tmp:
        url = server.stdout.readline().strip()
        portal = PortalConfig(id="bench", city="Bench City", kind="socrata", url=url, domain=DOMAIN)
        db = Path(tmp) / "catalog.duckdb"
        pool = WorkerPool()
        for full, stopped in ((False, False), *([(True, False)] if unstopped else []), (True, True)):
            if full:   # every dataset changed since (its stored raw hash no longer the portal's)
                with connect(db) as con:
                    con.execute("UPDATE datasets SET raw_hash = 'stale'")
            store = Store(db)
            store._merge = merges = TimedMerges(store._merge)
            # (0.5 s: on a quiet machine the insert of 100,000 changed datasets takes 1-2 s, and one
            # 2 s in (until session 32) came after it had returned)
            times = CallTimes(stop_in="INSERT INTO datasets" if stopped else None, after=INSERT_STOP_AFTER,
                              wal=db.with_name(db.name + ".wal"))
            started = time.perf_counter()
            try:
                [result] = harvest([portal], store, HttpClient(), pool=pool, full=full).portals
            except KeyboardInterrupt:
                result = None
            store.close()
            times.close()
            took = time.perf_counter() - started
            if stopped:
                waited = ("it came between two statements" if times.stop_waited is None else
                          f"it came in {times.stopped_in!r}, which returned {times.stop_waited:.2f} s after")
                print(f"--full, every dataset changed, SIGTERM {INSERT_STOP_AFTER:g} s into the datasets' insert: "
                      f"{waited}; "
                      + (f"the harvest ended {result.status} {result.error_type}" if result else "KeyboardInterrupt")
                      + f" ({took:.1f} s in all)")
                continue
            print(f"{'--full, every dataset changed' if full else 'first harvest'}: {result.status}, "
                  f"{result.new} new, {result.changed} changed in {took:.1f} s; "
                  f"{len(times.calls)} calls of the catalogue's connection in the main thread, the longest:")
            print(f"  the merge's transaction {sum(merges.seconds):.2f} s" + (
                  f" (tried {len(merges.seconds)} times: " + ", ".join(f"{s:.2f}" for s in merges.seconds) + " s; "
                  "the first did not fit the memory limit)" if len(merges.seconds) > 1 else ""))
            for seconds, said in times.longest():
                print(f"  {seconds:6.2f} s  {said}")
            for seconds, grown in sorted(times.commits, reverse=True)[:2]:
                print(f"  a COMMIT of {seconds:.2f} s wrote {grown / 1e6:.0f} MB to the WAL; a plain write and "
                      f"fsync of as many bytes there {write_seconds(db.parent, grown):.2f} s")
        pool.close()


def search_waits(datasets: int) -> None:
    """The first harvest stopped 1 s (less below 100,000 datasets) into the search build's term
    frequencies; then harvested again."""
    from catalog.store import Store, connect
    from harvester.config import PortalConfig
    from harvester.http import HttpClient
    from harvester.mapping import WorkerPool
    from harvester.pipeline import harvest

    with serving("socrata", datasets) as server, tempfile.TemporaryDirectory() as tmp:
        url = server.stdout.readline().strip()
        portal = PortalConfig(id="bench", city="Bench City", kind="socrata", url=url, domain=DOMAIN)
        db = Path(tmp) / "catalog.duckdb"
        pool = WorkerPool()
        for stopped in (True, False):
            store = Store(db)
            times = CallTimes(stop_in="CREATE OR REPLACE TABLE search_work.tf" if stopped else None,
                              after=min(1.0, datasets / 100_000))   # (the statement's seconds grow with them)
            started = time.perf_counter()
            try:
                [result] = harvest([portal], store, HttpClient(), pool=pool).portals
                ended = f"{result.status}, {result.new} new"
            except KeyboardInterrupt as stop:
                ended = type(stop).__name__
            store.close()
            times.close()
            with connect(db, read_only=True) as con:
                state = con.execute("SELECT count(*), max(documents) FROM search_state").fetchone()
                leftovers = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '%_next'"
                                        ).fetchone()[0]
            index = f"index of {state[1]:,} documents" if state[0] else "no index"
            search = sum(seconds for seconds, said in times.calls if "search" in said)
            if stopped:
                waited = "it came between two statements" if times.stop_waited is None else \
                    f"it came in {times.stopped_in!r}, which returned {times.stop_waited:.2f} s after"
                print(f"first harvest, SIGTERM {min(1.0, datasets / 100_000):g} s into the search build's term "
                      f"frequencies: {waited}; the harvest ended {ended} in "
                      f"{time.perf_counter() - started:.1f} s; {index}, {leftovers} tables left over")
            else:
                print(f"the next harvest, nothing changed: {ended} in {time.perf_counter() - started:.1f} s, of which "
                      f"{search:.1f} s in the search build's statements; {index}, {leftovers} tables left over")
        pool.close()


# the ways commit_parts writes every row again: the merge's UPDATE until session 25, and its
# two routes since (catalog.store._write_datasets)
REWRITES = {
    "UPDATE": ["""UPDATE d SET title = u.title, description = u.description, keywords = u.keywords,
                  raw_hash = u.raw_hash FROM (SELECT * FROM _new) u WHERE d.uid = u.uid"""],
    "delete and insert": ["DELETE FROM d WHERE uid IN (SELECT uid FROM _new)", "INSERT INTO d BY NAME SELECT * FROM _new"],
    "the table rebuilt": ["CREATE TABLE d_next AS FROM d LIMIT 0", "ALTER TABLE d_next ADD PRIMARY KEY (uid)",
                          """INSERT INTO d_next BY NAME SELECT * FROM d WHERE uid NOT IN (SELECT uid FROM _new)
                             UNION ALL BY NAME SELECT * FROM _new""",
                          "DROP TABLE d", "ALTER TABLE d_next RENAME TO d"],
}


def commit_parts(datasets: int) -> None:
    """What the merge's COMMIT spends on: a table shaped as `datasets` (a VARCHAR key, texts,
    lists) of `datasets` rows, every row written again in one transaction (REWRITES), with the
    key a PRIMARY KEY as the catalogue's and, for the UPDATE, without: the statements' and the
    COMMIT's seconds, the COMMIT's growth of the WAL, a CHECKPOINT after."""
    from catalog import uncut

    cases = [("PRIMARY KEY", rewrite) for rewrite in REWRITES] + [("", "UPDATE")]
    with tempfile.TemporaryDirectory() as tmp:
        for number, (key, rewrite) in enumerate(cases):
            db = Path(tmp) / f"commit{number}.duckdb"
            with uncut.connect(config={"memory_limit": "1GB", "checkpoint_threshold": "1GB"}) as con:
                con.execute(f"ATTACH '{db}' AS c (ROW_GROUP_SIZE 16384)")
                con.execute("USE c")
                con.execute(f"""CREATE TABLE d (uid VARCHAR {key}, title VARCHAR, description VARCHAR, keywords VARCHAR[],
                                themes VARCHAR[], modified TIMESTAMPTZ, raw_hash VARCHAR)""")
                con.execute("""INSERT INTO d SELECT 'p:' || i, 'title ' || i, repeat('words ', 60) || i, ['a', 'b' || i],
                               ['t'], now(), md5(i::VARCHAR) FROM range($n) r(i)""", {"n": datasets})
                con.execute("CHECKPOINT")
                con.execute("BEGIN TRANSACTION")
                began = time.perf_counter()
                con.execute("""CREATE TEMP TABLE _new AS SELECT uid, title || 'x' AS title, description || 'y' AS description,
                               keywords || ['z'] AS keywords, themes, modified, md5(raw_hash) AS raw_hash FROM d""")
                for statement in REWRITES[rewrite]:
                    con.execute(statement)
                written = time.perf_counter() - began
                wal = db.with_name(db.name + ".wal")
                before, began = wal_size(wal), time.perf_counter()
                con.execute("COMMIT")
                committed, grown = time.perf_counter() - began, wal_size(wal) - before
                began = time.perf_counter()
                con.execute("CHECKPOINT")
                print(f"{datasets:,} rows written again ({rewrite}), the key {key or 'not a primary key'}: the statements "
                      f"{written:.2f} s, COMMIT {committed:.2f} s (the WAL +{grown / 1e6:.1f} MB), a CHECKPOINT after "
                      f"{time.perf_counter() - began:.2f} s", flush=True)


def records_waits(rows: int) -> None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from bench.records_data import build_table
    from harvester.records import PART_COLUMN_CHUNKS, PART_ROWS, ROW_GROUP_BYTES, ROW_GROUP_ROWS, Field, arrow_schema
    from harvester.records_merge import merge_by_key

    with tempfile.TemporaryDirectory() as tmp:
        previous, delta = Path(tmp) / "previous", Path(tmp) / "delta"
        previous.mkdir()
        delta.mkdir()
        table = build_table(rows)
        pq.write_table(table, previous / "part-00000.parquet", row_group_size=131_072, compression="zstd")
        changed = table.slice(rows - rows // 100)   # the last 1% edited, and 1% new rows
        added = build_table(rows // 100, seed=6)
        added = added.set_column(0, ":id", pc.binary_join_element_wise("new-", added[":id"], ""))
        for number, part in enumerate((changed, added)):
            pq.write_table(part, delta / f"part-{number:05d}.parquet", compression="zstd")
        schema = arrow_schema([Field(name, "text") for name in table.column_names])   # (as SODA's: by :id)
        print(f"records: merge of {rows:,} rows with a delta of {len(changed) + len(added):,}")

        def merge(into: str) -> None:   # as the pull merges (harvester.records._merge)
            (Path(tmp) / into).mkdir()
            merge_by_key(sorted(previous.glob("*.parquet")), sorted(delta.glob("*.parquet")), ":id", schema,
                         Path(tmp) / into, part_rows=PART_ROWS, part_column_chunks=PART_COLUMN_CHUNKS,
                         row_group_rows=ROW_GROUP_ROWS,
                         row_group_bytes=ROW_GROUP_BYTES)

        began, cpu = time.perf_counter(), time.process_time()
        merge("merged")
        print(f"  as the pull merges (Arrow, a row group at a time): {time.perf_counter() - began:.2f} s, "
              f"CPU {time.process_time() - cpu:.2f} s")
        # a shell script's background job runs with SIGINT ignored (and civicat keeps it so): the
        # Ctrl-C this part sends itself would end nothing, and "not stopped" would measure the shell
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        began = time.perf_counter()
        threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            merge("merged-stopped")
            print("  not stopped")
        except KeyboardInterrupt:   # (between two of Arrow's calls: a row group read, filtered or written)
            print(f"  the same, Ctrl-C 1 s in: ended {time.perf_counter() - began - 1.0:.2f} s after")


PARTS = ("catalogue", "search", "commit", "records")   # (catalogue includes what `stopped` runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", type=int, default=100_000)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--only", choices=("catalogue", "stopped", "search", "commit", "records"),
                        help="stopped: the catalogue's first harvest and the --full stopped, no other")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}", flush=True)
    if args.only is None:
        failed = [f"{part} (exit {ended.returncode})" for part in PARTS
                  if (ended := subprocess.run([sys.executable, "-m", "bench.stop_waits", "--only", part,
                                               "--datasets", str(args.datasets), "--rows", str(args.rows)]))
                  .returncode]
        if failed:
            sys.exit(f"bench.stop_waits: parts failed: {', '.join(failed)}")
        return
    from harvester.stopping import stop_on_signals
    stop_on_signals()   # (as civicat's: a stop in a statement held or interrupted, catalog.uncut)
    if args.only in ("catalogue", "stopped"):
        catalogue_waits(args.datasets, unstopped=args.only != "stopped")
    if args.only == "search":
        search_waits(args.datasets)
    if args.only == "commit":
        commit_parts(args.datasets)
    if args.only == "records":
        records_waits(args.rows)
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
