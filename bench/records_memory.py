"""Benchmark: the memory of a wide dataset's incremental merge and profile, run as a records
pull runs them (the merge streamed with Arrow: harvester.records_merge; the profile in a DuckDB
of its own at 128 MB, once more on one thread with 1 GB where that does not fit:
catalog.records.fitted_scan), with row groups bounded by bytes (harvester.records.ROW_GROUP_BYTES)
and, with `--before`, by rows only as before session 24. `--duckdb`: the merge as before session
26, one DuckDB COPY at 128 MB with the 1 GB retry (the baseline, its statement kept here).

For each shape (rows x columns x characters of distinct texts, nothing Parquet can share by
dictionary; or `ROWSxspd911`, bench.records_data's SPD 911 shape): the previous records written by the pull's writer in pages of 10,000 rows, a
delta of 1% edited and 1% new rows staged the same way (`--unchanged`: the last 10% of the
rows read again as they are, a night that changed nothing, as Open311's 90 days read again; `--edits`: every
100th row edited, none added, a night of edits only, an edit in every row group), merged (`_merge`), the merged folder
profiled (`measure_folder`); the build, the merge and the profile each in a process of its own,
so each peak RSS is that step's (`--open`: then the merged parts' footers opened, one column read
by pandas, and by DuckDB). Prints seconds and CPU seconds (the machine's load stretches
the first), peak RSS, the bytes the step read and wrote (its `read` and `write` calls: /proc/self/io's rchar, wchar), the
row groups, the merged bytes, and whether the 1 GB retry ran (or failed even so).

`--pull SHAPES`: a full pull of each such shape through SODA CSV (`civicat harvest --records`
in a process of its own, the portal served by another: bench.serve soda-wide), its peak RSS and
requests; with `--before`, its pages sized by rows only (50,000, cut by the response cap), as
before session 25 (harvester.records.PAGE_BYTES).

    python -m bench.records_memory [--shapes 300000x12x16,1000000x30x16,50000x200x40,20000x1000x16,5000x2000x16]
                                   [--before] [--duckdb] [--open] [--unchanged] [--edits] [--pull 40000x1000x16]
"""
from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.serve import serving

ROOT = Path(__file__).resolve().parents[1]
PAGE = 10_000
PORTAL, DATASET = "city", "wide-0001"
# `--edits`: the delta is every EDITED_EVERY-th row edited (1%), no row added: in every row group
EDITED_EVERY = 100


def _pages(first: int, last: int, columns: int, width: int, salt: str, step: int = 1):
    """(table, state) pages of rows `first`..`last` - 1 (every `step`th) as a source gives them, the last state None."""
    import duckdb

    texts = ", ".join(f"repeat(md5('{salt}' || (i * {k + 1})::VARCHAR), 2)[:{width}] AS c{k}" for k in range(columns))
    with duckdb.connect(config={"threads": 1}) as con:
        for start in range(first, last, PAGE * step):
            end = min(last, start + PAGE * step)
            table = con.execute(f"""SELECT 'row-' || lpad(i::VARCHAR, 9, '0') AS ":id", {texts}
                                    FROM range({start}, {end}, {step}) t(i)""").to_arrow_table()
            yield table, (None if end == last else {"offset": end})


def _write(folder: Path, pages) -> None:
    """The pages written into parts of `folder` by the pull's own writer (_write_parts)."""
    from types import SimpleNamespace

    from harvester.records import PART_ROWS, _write_parts

    folder.mkdir(parents=True)
    first, state = next(pages)
    progress = {"parts": [], "rows": 0, "state": None, "done": False}
    # (a source that counted no rows, and no bound of rows: the build failed on None, and its pages taken for
    # max_rows, since _write_parts asked both)
    _write_parts(SimpleNamespace(expected_rows=None), first.schema, progress, folder.parent / f"{folder.name}.json",
                 folder, PART_ROWS, 3600.0, None, tables=iter([(first, state), *pages]))


def _spd_pages(first: int, last: int, salt: str, step: int = 1):
    """(table, state) pages of SPD 911's shape (bench.records_data: 12 columns, most of few
    distinct values, as texts), the rows from `salt` "after" edited (other values drawn); every `step`th."""
    from bench.records_data import build_table

    table = build_table(last, seed=5 if salt == "before" else 6).slice(first)
    if step > 1:
        table = table.take(list(range(0, table.num_rows, step)))
    for start in range(0, table.num_rows, PAGE):
        yield table.slice(start, PAGE), (None if start + PAGE >= table.num_rows else {"offset": start + PAGE})


def build(work: Path, rows: int, columns: int, width: int, unchanged: bool = False, edits: bool = False) -> None:
    from catalog.records import RecordsLayout

    layout = RecordsLayout(work / "records")
    pages = functools.partial(_pages, columns=columns, width=width) if columns else _spd_pages
    _write(layout.folder(PORTAL, DATASET), pages(0, rows, salt="before"))
    delta = (pages(rows - rows // 10, rows, salt="before") if unchanged else
             pages(0, rows, salt="after", step=EDITED_EVERY) if edits else
             pages(rows - rows // 100, rows + rows // 100, salt="after"))
    _write(work / "staging" / "parts", delta)


def duckdb_merge_sql(previous_glob: str, delta_glob: str, key: str, names: list[str]) -> str:
    """The merge as DuckDB's COPY ran it before session 26 (`--duckdb`; the reference of
    tests/harvester/test_records_merge.py): the previous rows whose key the delta does not hold,
    the previous keyless rows EXCEPT ALL the delta's, then the delta's."""
    from harvester.records import read_parquet_sql

    def quoted(name):
        return '"' + name.replace('"', '""') + '"'

    previous, delta, column = read_parquet_sql(previous_glob), read_parquet_sql(delta_glob), quoted(key)
    columns = ", ".join(quoted(name) for name in names)
    return (f"SELECT * FROM {previous} WHERE {column} NOT IN (SELECT {column} FROM {delta} WHERE {column} IS NOT NULL) "
            f"UNION ALL BY NAME (SELECT {columns} FROM {previous} WHERE {column} IS NULL "
            f"EXCEPT ALL SELECT {columns} FROM {delta} WHERE {column} IS NULL) "
            f"UNION ALL BY NAME SELECT * FROM {delta}")


def merge(work: Path, columns: int, duckdb_merge: bool) -> None:
    from types import SimpleNamespace

    from catalog.records import RecordsLayout, fitted_scan

    layout = RecordsLayout(work / "records")
    names = pq_names(next(layout.folder(PORTAL, DATASET).glob("*.parquet")))
    if not duckdb_merge:
        from harvester.records import Field, _merge, kind_of

        schema = pq_schema(next(layout.folder(PORTAL, DATASET).glob("*.parquet")))
        fields = [Field(f.name, kind_of(f.type)) for f in schema]
        _merge(SimpleNamespace(merge_key=":id", fields=fields), layout, PORTAL, DATASET, work / "staging")  # (as SODA's)
        return
    merged = work / "staging" / "merged"
    merged.mkdir()
    # on a DuckDB of its own on one thread with 128 MB, once more with 1 GB (fitted_scan)
    statement = (f"COPY ({duckdb_merge_sql(str(layout.glob(PORTAL, DATASET)), str(work / 'staging' / 'parts' / '*.parquet'), ':id', names)}) "
                 f"TO '{merged / 'part-00000.parquet'}' "
                 "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 131072, ROW_GROUP_SIZE_BYTES 8388608)")

    def copy(con) -> None:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET preserve_insertion_order = false")
        con.execute(statement)

    fitted_scan(copy, "128MB", threads=1, what="the merge")   # (catalog.records.MERGE_MEMORY, before session 26)


def pq_schema(path: Path):
    import pyarrow.parquet as pq

    return pq.read_schema(path)


def pq_names(path: Path) -> list[str]:
    return pq_schema(path).names


def profile(work: Path) -> None:
    from catalog.records import measure_folder

    measure_folder(work / "staging" / "merged")


def footer(work: Path) -> None:
    """Every merged part's footer opened, as any reader of a part first does (`--open`)."""
    import pyarrow.parquet as pq

    for path in sorted((work / "staging" / "merged").glob("*.parquet")):
        pq.ParquetFile(path).metadata


def pandas_column(work: Path) -> None:
    """One column of the merged folder read by pandas, as an analyst would (`--open`)."""
    import pandas

    pandas.read_parquet(work / "staging" / "merged", columns=["c0"])


def duckdb_column(work: Path) -> None:
    """One column of the merged folder scanned by DuckDB with its defaults (`--open`)."""
    import duckdb

    with duckdb.connect() as con:
        con.execute("SELECT count(*), min(c0) FROM read_parquet(?)",
                    [str(work / "staging" / "merged" / "*.parquet")]).fetchone()


def footers(folder: Path) -> str:
    """The largest footer of `folder`'s parts (what opening one reads whole), and their count."""
    import pyarrow.parquet as pq

    sizes = [pq.read_metadata(path).serialized_size for path in sorted(folder.glob("*.parquet"))]
    return f"footers up to {max(sizes) / 2**20:.1f} MB ({len(sizes)} parts)"


def delta_bytes(folder: Path) -> int:
    """The bytes of `folder`'s rows as Arrow holds them (what e42's check held at most 8 MB of)."""
    import pyarrow.parquet as pq

    files = [pq.read_metadata(path) for path in sorted(folder.glob("*.parquet"))]
    return sum(f.row_group(g).total_byte_size for f in files for g in range(f.num_row_groups))


def row_groups(folder: Path) -> str:
    import pyarrow.parquet as pq

    files = [pq.read_metadata(path) for path in sorted(folder.glob("*.parquet"))]
    sizes = [f.row_group(g) for f in files for g in range(f.num_row_groups)]
    return (f"{len(sizes)} row groups of {min(s.num_rows for s in sizes):,}-{max(s.num_rows for s in sizes):,} rows, "
            f"up to {max(s.total_byte_size for s in sizes) / 2**20:.1f} MB")


def wide_portal_parts(shape: str, domain: str) -> tuple[list[dict], dict]:
    """A SODA portal's parts (bench.serve soda-wide): one dataset of `shape`'s distinct texts."""
    import pyarrow as pa

    from tests.portals.socrata import SodaTable, discovery_entry

    rows, columns, width = (int(n) for n in shape.split("x"))
    table = pa.concat_tables(page for page, _ in _pages(0, rows, columns, width, "before"))
    table = table.append_column(":updated_at", pa.array(["2024-01-15T12:00:00.000Z"] * rows))
    view = {"id": DATASET, "name": "Wide", "columns": [{"fieldName": f"c{k}", "dataTypeName": "text"}
                                                        for k in range(columns)]}
    return [discovery_entry(view, domain)], {DATASET: SodaTable(table)}


def pull(work: Path) -> dict:
    """A full pull of the served dataset (its URL in `work`/url) as `civicat harvest --records` runs it."""
    from catalog.store import Store
    from harvester.config import PortalConfig
    from harvester.http import HttpClient
    from harvester.pipeline import harvest

    portal = PortalConfig(id=PORTAL, city="Bench City", kind="socrata", url=(work / "url").read_text(),
                          domain="data.example.org", records=(DATASET,))
    store = Store(work / "pull.duckdb")
    harvest([portal], store, HttpClient())   # the catalogue: the dataset's entry
    # (the local server builds each answer whole before it sends a byte: 500 MB of CSV took
    # longer than the default read timeout on a loaded machine)
    report = harvest([portal], store, HttpClient(timeout=600), records=True, full=True).portals[0]
    errors = store.con.execute("SELECT error_type || ': ' || message FROM harvest_errors WHERE severity = 'error'").fetchall()
    store.close()
    if report.records_pulled != 1:
        raise RuntimeError(f"the pull failed after {report.requests} requests: {errors}")
    return {"requests": report.requests, "rows": report.record_rows}


def shape_of(text: str) -> tuple[int, int, int]:
    """`ROWSxCOLUMNSxCHARACTERS`, or `ROWSxspd911` (columns 0: bench.records_data's shape)."""
    rows, _, rest = text.partition("x")
    return (int(rows), 0, 0) if rest == "spd911" else tuple(int(n) for n in text.split("x"))


def published_the_previous_parts(work: Path) -> bool:
    """Whether the merge published the previous parts themselves (linked: the same records)."""
    from catalog.records import RecordsLayout

    def inodes(folder: Path) -> list[int]:
        return [path.stat().st_ino for path in sorted(folder.glob("*.parquet"))]

    return inodes(work / "staging" / "merged") == inodes(RecordsLayout(work / "records").folder(PORTAL, DATASET))


def child(step: str, work: Path, shape: tuple[int, int, int], before: bool, duckdb_merge: bool,
          unchanged: bool = False, edits: bool = False) -> None:
    """One step in this process: prints its seconds, peak RSS and whether the retry ran, as JSON."""
    from bench.rss import PeakRss

    if before:   # row groups and pages by rows only: the byte bounds out of reach
        import harvester.records
        harvester.records.ROW_GROUP_BYTES = harvester.records.PAGE_BYTES = 2**62
    retried = []
    handler = logging.Handler()
    handler.emit = lambda record: retried.append(record.getMessage())
    logging.getLogger("civicat.records").addHandler(handler)
    memory, began, cpu, failed, pulled = PeakRss(), time.perf_counter(), time.process_time(), None, {}
    written, read = _written(), _written("rchar")
    rows, columns, width = shape
    try:
        pulled = {"build": lambda: build(work, rows, columns, width, unchanged, edits),
                  "merge": lambda: merge(work, columns, duckdb_merge),
                  "profile": lambda: profile(work), "pull": lambda: pull(work), "footer": lambda: footer(work),
                  "pandas": lambda: pandas_column(work), "duckdb": lambda: duckdb_column(work)}[step]() or {}
    except Exception as exc:   # (the retry did not fit either)
        failed = str(exc).splitlines()[0]
    print(json.dumps({"seconds": time.perf_counter() - began, "cpu_seconds": time.process_time() - cpu,
                      "peak_rss_mb": memory.stop(), "written_mb": (_written() - written) / 2**20,
                      "read_mb": (_written("rchar") - read) / 2**20,
                      "retried": bool(retried), "failed": failed, **pulled}))


def _written(counter: str = "wchar") -> int:
    """The bytes this process has written so far (its `write` calls, to any file: /proc/self/io's wchar),
    or read (`rchar`: its `read` calls, the page cache's answers too)."""
    with open("/proc/self/io") as io:
        return next(int(line.split()[1]) for line in io if line.startswith(f"{counter}:"))


def run(step: str, work: Path, shape: str, before: bool, duckdb_merge: bool = False, unchanged: bool = False,
        edits: bool = False) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.records_memory", "--child", step, str(work), shape,
                          *(["--before"] if before else []), *(["--duckdb"] if duckdb_merge else []),
                          *(["--unchanged"] if unchanged else []), *(["--edits"] if edits else [])],
                         cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", default="300000x12x16,1000000x30x16,50000x200x40,20000x1000x16,5000x2000x16",
                        help="rows x columns x characters (or ROWSxspd911: SPD 911's 12 columns), comma-separated "
                             "('' for none)")
    parser.add_argument("--pull", default="", help="shapes to pull through SODA, comma-separated")
    parser.add_argument("--before", action="store_true",
                        help="row groups by rows only, as before session 24, and pages as before session 25")
    parser.add_argument("--duckdb", action="store_true",
                        help="merge by DuckDB's COPY (128 MB, the 1 GB retry), as before session 26")
    parser.add_argument("--open", action="store_true",
                        help="also open the merged parts' footers, and read one column with pandas and DuckDB")
    parser.add_argument("--unchanged", action="store_true",
                        help="a delta of the last 10%% of the rows read again as they are (a night that changed "
                             "nothing): the merge publishes the previous parts, linked")
    parser.add_argument("--edits", action="store_true",
                        help="a delta of every %d-th row edited, none added (a night of edits only): the merge "
                             "judges the replaced rows, then writes" % EDITED_EVERY)
    parser.add_argument("--child", nargs=3, metavar=("STEP", "WORK", "SHAPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        step, work, shape = args.child
        child(step, Path(work), shape_of(shape), args.before, args.duckdb, args.unchanged, args.edits)
        return
    print(f"row groups and pages sized by {'rows only (before sessions 24, 25)' if args.before else 'bytes and rows'}; "
          f"merged by {'DuckDB (before session 26)' if args.duckdb else 'Arrow'}; load average {os.getloadavg()[0]:.1f}", flush=True)
    for shape in filter(None, args.pull.split(",")):
        with tempfile.TemporaryDirectory(prefix="civicat-bench-") as tmp, serving("soda-wide", shape) as server:
            (Path(tmp) / "url").write_text(server.stdout.readline().strip())
            result = run("pull", Path(tmp), shape, args.before)
            failed = f", FAILED ({result['failed']})" if result["failed"] else ""
            print(f"{shape} pulled: {result['seconds']:.1f} s (CPU {result['cpu_seconds']:.1f} s), peak RSS "
                  f"{result['peak_rss_mb']:.0f} MB, {result.get('requests')} requests{failed}", flush=True)
    for shape in filter(None, args.shapes.split(",")):
        with tempfile.TemporaryDirectory(prefix="civicat-bench-") as tmp:
            work = Path(tmp)
            run("build", work, shape, args.before, unchanged=args.unchanged, edits=args.edits)
            said = []
            for step in ("merge", "profile") + (("footer", "pandas", "duckdb") if args.open else ()):
                result = run(step, work, shape, args.before, args.duckdb and step == "merge")
                outcome = (f"FAILED ({result['failed']})" if result["failed"] else
                           "published the previous parts (the same records)" if step == "merge" and not args.duckdb
                           and published_the_previous_parts(work) else
                           "did not fit 128 MB: retried with 1 GB" if result["retried"] else
                           "no retry" if step == "merge" and not args.duckdb else
                           "fitted 128 MB" if step == "profile" else "read")
                said.append(f"{step} {result['seconds']:.1f} s (CPU {result.get('cpu_seconds', 0):.1f} s), peak RSS "
                            f"{result['peak_rss_mb']:.0f} MB, read {result['read_mb']:.1f} MB, written "
                            f"{result['written_mb']:.1f} MB, {outcome}")
                if result["failed"]:
                    break
            print(f"{shape}: " + "; ".join(said), flush=True)
            previous = work / "records" / f"portal={PORTAL}" / f"dataset={DATASET}"
            print(f"  previous: {row_groups(previous)}, {footers(previous)}")
            print(f"  delta{' (read again as it is)' if args.unchanged else ' (edits only)' if args.edits else ''}: {row_groups(work / 'staging' / 'parts')}, "
                  f"{delta_bytes(work / 'staging' / 'parts') / 2**20:.1f} MB as Arrow holds it")
            if (work / "staging" / "merged").is_dir() and any((work / "staging" / "merged").glob("*.parquet")):
                merged = sorted((work / "staging" / "merged").glob("*.parquet"))
                print(f"  merged: {row_groups(work / 'staging' / 'merged')}, {len(merged)} parts, "
                      f"{sum(path.stat().st_size for path in merged) / 2**20:.1f} MB, {footers(work / 'staging' / 'merged')}")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
