"""Benchmark: the product's real night, `civicat harvest` over many portals of every kind.

One separate process (bench.serve's `nightly` kind, bench.fleet) serves `--portals` portals
of the six kinds, `--datasets` datasets in all: one large portal (50,000 at most) per hundred
portals holding half of them, the rest small (a long tail), each on a port of its own. The
config names them all, and `civicat harvest --json` runs three times into one catalogue, each
in a process of its own as cron starts it:

  night 1: everything new;
  night 2: nothing changed (conditional requests, 304s);
  night 3: a few percent of every portal's entries changed, removed and added, one portal
           answering 500 and one a maintenance page behind a 200 (exit code 1).

Prints per night: wall and CPU seconds (the harvest and its mapping workers), peak memory
(the largest process: the harvest's high-water mark, exact, or a mapping worker's, sampled; the
process tree's RSS summed, sampled), the
requests and bytes, what was written, the exit code, the sizes of the catalogue and its read
copy and of harvest_runs / harvest_errors. Then the limit (fetching and parsing every answer
night 1 read, nothing else, as many at a time as the harvest's portals), a naive baseline
(each dataset inserted by itself, every night anew), and checks: night 3's counts are the
changes the server made, the failing portals' rows are night 2's exactly, `civicat runs
--errors` names both failures.

    python -m bench.nightly [--portals 300] [--datasets 300000] [--largest 50000] [--workers 4] [--civicat CHECKOUT]
    python -m bench.nightly --portals 30 --datasets 10000      # about a minute
    python -m bench.nightly --reclaim-share 0.02   # night 3 reclaims `datasets` (its 3% changed left ~3% dead)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import psutil
import requests

from bench.serve import serving

ROOT = Path(__file__).resolve().parents[1]
# as the `civicat` script starts it (the stop handlers first); runs the checkouts of --civicat back to session 27
CIVICAT = [sys.executable, "-c", "import sys; from harvester.command import main; sys.exit(main())"]
# a portal's rows, for comparing nights (the read copy: as the night left the catalogue)
PORTAL_ROWS = {
    "datasets": "SELECT md5(string_agg(t::VARCHAR, '' ORDER BY uid)) FROM datasets t WHERE portal_id = $p",
    "distributions": """SELECT md5(string_agg(t::VARCHAR, '' ORDER BY dataset_uid, position)) FROM distributions t
                        WHERE starts_with(dataset_uid, $p || ':')""",
    "columns": """SELECT md5(string_agg(t::VARCHAR, '' ORDER BY dataset_uid, position)) FROM columns t
                  WHERE starts_with(dataset_uid, $p || ':')""",
    "raw_records": "SELECT md5(string_agg(t::VARCHAR, '' ORDER BY uid, raw_hash)) FROM raw_records t WHERE portal_id = $p",
    "portal_listings": "SELECT md5(string_agg(t::VARCHAR, '')) FROM portal_listings t WHERE portal_id = $p",
}


def write_config(portals: list[dict], path: Path) -> None:
    lines = []
    for p in portals:
        lines += ["[[portals]]"] + [f'{key} = "{p[key]}"' for key in ("id", "city", "kind", "url", "domain") if key in p]
        lines.append("")
    path.write_text("\n".join(lines))


# The harvest's own peak memory: its high-water mark (/proc/self/status's VmHWM, the kernel's
# exact figure) written as it exits, to the file this variable names. Not wait4's ru_maxrss: a
# process Python starts (vfork, then exec) keeps its parent's high-water mark in it, so that
# figure was never below the bench's own peak (`python -c pass` started by a process of 500 MB:
# 511 MB), which made night 2's "largest process" the bench's ~540 MB
PEAK_FILE = "CIVICAT_BENCH_PEAK_FILE"
MEASURED = ("import atexit, os, sys; atexit.register(lambda: open(os.environ['" + PEAK_FILE + "'], 'w').write("
            "open('/proc/self/status').read())); ")


def own_peak_mb(status: str) -> float | None:
    """VmHWM of a /proc/<pid>/status text, in MB."""
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def run_measured(command: list[str], **popen) -> tuple[subprocess.Popen, bytes, os.struct_rusage, dict]:
    """`command` (a `python -c CODE` line) run with its peak memory measured: its own high-water
    mark, exact (see PEAK_FILE; None if it died before writing it), and its descendants' (the
    mapping workers'), sampled. Returns the process, its stdout, its rusage and the figures."""
    python, flag, code, *args = command
    with tempfile.NamedTemporaryFile(suffix=".status") as peak:
        env = {**popen.pop("env", os.environ), PEAK_FILE: peak.name}
        child = subprocess.Popen([python, flag, MEASURED + code, *args], env=env, stdout=subprocess.PIPE, **popen)
        memory = TreeMemory(child.pid)
        out = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        memory.stop()
        own = own_peak_mb(Path(peak.name).read_text())
    figures = {"own_peak_mb": own, "descendants_peak_mb": memory.peak_descendant / 2**20,
               "tree_rss_mb": memory.peak / 2**20, "main_rss_mb": memory.peak_main / 2**20}
    figures["max_rss_mb"] = max(own or memory.peak_main / 2**20, figures["descendants_peak_mb"])
    return child, out, usage, figures


class TreeMemory:
    """The summed RSS of a process and its descendants, and the largest high-water mark (VmHWM)
    of a descendant, sampled from a thread."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.peak = self.peak_main = self.peak_descendant = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(pid, interval), daemon=True)
        self._thread.start()

    def _sample(self, pid: int, interval: float) -> None:
        try:
            process = psutil.Process(pid)
        except psutil.Error:
            return
        children, listed = [], 0.0
        while not self._done.wait(interval):
            try:
                own = process.memory_info().rss
            except psutil.Error:
                return
            now = time.monotonic()
            if now - listed > 0.5:
                try:
                    children, listed = process.children(recursive=True), now
                except psutil.Error:
                    return
            total = own
            for child in children:
                try:
                    total += child.memory_info().rss
                    self.peak_descendant = max(self.peak_descendant, _high_water(child.pid))
                except (psutil.Error, OSError):
                    pass
            self.peak, self.peak_main = max(self.peak, total), max(self.peak_main, own)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def _high_water(pid: int) -> int:
    """A process's VmHWM in bytes."""
    with open(f"/proc/{pid}/status") as status:
        return int((own_peak_mb(status.read()) or 0) * 2**20)


def ask(server, command: str):
    server.stdin.write(command + "\n")
    server.stdin.flush()
    return json.loads(server.stdout.readline())


def harvest_night(config: Path, db: Path, workers: int, code: Path, reclaim_share: float | None = None,
                  verbose: bool = False) -> dict:
    """`civicat harvest --json` in a process of its own (civicat's code from `code`): its
    report and figures. `reclaim_share`: catalog.store.RECLAIM_SHARE for the night (a night that
    reclaims `datasets`' dead rows, which 3% changed a night brings past the default's 20% only
    after ~11 nights at 300 portals: docs/benchmarks.md, Nightly). `verbose`: its info lines too
    (`civicat -v`: the read copy's publish, its bytes written, among them)."""
    from catalog.read_copy import is_current

    python, flag, code_line = CIVICAT
    if reclaim_share is not None:
        code_line = f"import catalog.store; catalog.store.RECLAIM_SHARE = {float(reclaim_share)!r}; " + code_line
    started = time.perf_counter()
    with open(db.parent / "stderr.log", "ab") as stderr:
        child, out, usage, memory = run_measured(
            [python, flag, code_line, *(["-v"] if verbose else []), "harvest", "--config", str(config), "--db", str(db), "--json",
             "--workers", str(workers)],
            cwd=code, env={**os.environ, "PYTHONPATH": str(code)}, stderr=stderr)
    wall = time.perf_counter() - started
    report = json.loads(out)
    portals = report["portals"]
    total = {key: sum(p[key] for p in portals) for key in
             ("seen", "new", "changed", "unchanged", "removed", "errors", "warnings", "requests", "not_modified", "bytes")}
    copy = db.with_name(f"{db.stem}.read{db.suffix}")
    wal = db.with_name(db.name + ".wal")
    wal_mb = wal.stat().st_size / 2**20 if wal.exists() else 0.0
    current = is_current(db)
    stderr_lines = (db.parent / "stderr.log").read_text().splitlines()
    with duckdb.connect(str(db), read_only=True) as con:   # (the catalogue itself: its copy may be late)
        runs, errors = (con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("harvest_runs", "harvest_errors"))
        live = con.execute("SELECT count(*) FROM datasets WHERE deleted_at IS NULL").fetchone()[0]
        # the rows `datasets` holds that merges deleted (a changed dataset's old version): what reclaim_datasets frees
        dead = con.execute("""SELECT estimated_size - (SELECT count(*) FROM datasets) FROM duckdb_tables()
                              WHERE schema_name = 'main' AND table_name = 'datasets'""").fetchone()[0]
        # the night's dataset_events and all of them (none: a checkout from before migration 0017)
        events = con.execute("""SELECT count(*) FILTER (WHERE run_id = $run), count(*) FROM dataset_events""",
                             {"run": report["run_id"]}).fetchone() if con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'dataset_events'").fetchone()[0] else (None, None)
    return {"exit": child.returncode, "wall": wall, "cpu": usage.ru_utime + usage.ru_stime, **memory,
            "written_mb": usage.ru_oublock * 512 / 2**20,   # (the harvest's own writes, the read copy's among them)
            "report": report, **total,
            "failed": {p["portal_id"]: p["error_type"] for p in portals if p["status"] != "ok"},
            "db_mb": db.stat().st_size / 2**20, "copy_mb": copy.stat().st_size / 2**20,
            "harvest_runs": runs, "harvest_errors": errors, "live": live, "dead": dead, "events": events, "wal_mb": wal_mb, "copy_current": current,
            "retried": sum("did not fit in" in line for line in stderr_lines),
            # (which: the log line's subject, e.g. "p012-ckan: the merge", "the search index's update")
            "retried_what": [line[:line.index(" did not fit in")].split("WARNING", 1)[-1].strip(" :]")
                             for line in stderr_lines if "did not fit in" in line],
            "search_failed": sum("search index was not rebuilt" in line for line in stderr_lines),
            "published_written": (published(stderr_lines) or {}).get("written")}


def published(stderr_lines: list[str]) -> dict | None:
    """The read copy's publish as `civicat -v` logs it ("published the read copy PATH (N bytes, W of
    them written) in S s"): its bytes, those written and its seconds; None without the line."""
    for line in stderr_lines:
        if "published the read copy" in line and "of them written" in line:
            size, _, written, *_ = line.rsplit("(", 1)[1].split()
            return {"bytes": int(size), "written": int(written), "seconds": float(line.rsplit(" in ", 1)[1].split()[0])}
    return None


def portal_rows(db: Path, portal_ids: list[str]) -> dict[str, dict[str, str]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return {p: {table: con.execute(sql, {"p": p}).fetchone()[0] for table, sql in PORTAL_ROWS.items()}
                for p in portal_ids}


def items_of(document) -> list:
    """The catalogue entries of an answer, whatever its kind (a layer document: none)."""
    if isinstance(document, list):
        return document
    if not isinstance(document, dict):
        return []
    for key in ("results", "dataset"):
        if isinstance(document.get(key), list):
            return document[key]
    result = document.get("result")
    return result.get("results", []) if isinstance(result, dict) else []


def limit_pass(urls: list[str], workers: int) -> tuple[float, int, int]:
    """Every answer of night 1 fetched and parsed, `workers` portals' worth at a time:
    (seconds, bytes, entries)."""
    by_host: dict[str, list[str]] = {}
    for url in urls:
        by_host.setdefault(url.split("/")[2], []).append(url)

    def host(urls: list[str]) -> tuple[int, int]:
        session = requests.Session()
        size = entries = 0
        for url in urls:
            response = session.get(url, headers={"Accept-Encoding": "gzip, deflate"})
            size += len(response.content)
            try:
                entries += len(items_of(response.json()))
            except ValueError:
                raise SystemExit(f"{url}: {response.status_code} {response.headers} {response.content[:200]!r}")
        return size, entries

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        done = list(pool.map(host, by_host.values()))
    return time.perf_counter() - started, sum(d[0] for d in done), sum(d[1] for d in done)


def naive_baseline(urls: list[str], db: str, limit: int) -> float:
    """A harvester as often written: every page fetched, each entry inserted by itself
    (INSERT OR REPLACE), every night anew; datasets per second on the first `limit`."""
    con = duckdb.connect(db)
    con.execute("CREATE TABLE datasets (uid VARCHAR PRIMARY KEY, title VARCHAR, raw JSON)")
    session, done = requests.Session(), 0
    started = time.perf_counter()
    for url in urls:
        for n, entry in enumerate(items_of(session.get(url).json())):
            if not isinstance(entry, dict):
                continue
            resource = entry.get("resource") if isinstance(entry.get("resource"), dict) else entry
            uid = f"{url.split('/')[2]}:{resource.get('id') or resource.get('identifier') or resource.get('dataset_id') or n}"
            title = resource.get("name") or resource.get("title") or resource.get("service_name")
            con.execute("INSERT OR REPLACE INTO datasets VALUES (?, ?, ?)", [uid, title, json.dumps(entry)])
            done += 1
        if done >= limit:
            break
    rate = done / (time.perf_counter() - started)
    con.close()
    return rate


def load() -> str:
    return "load " + ", ".join(f"{x:.1f}" for x in os.getloadavg())


def fleet_options(parser: argparse.ArgumentParser, portals: int, datasets: int) -> None:
    """The options of a bench that harvests the fleet night after night (this one, bench.nights)."""
    parser.add_argument("--portals", type=int, default=portals)
    parser.add_argument("--datasets", type=int, default=datasets)
    parser.add_argument("--largest", type=int, default=50_000, help="datasets of the large portals, at most")
    parser.add_argument("--workers", type=int, default=4, help="civicat harvest --workers")
    parser.add_argument("--keep", type=Path, help="leave the catalogue in this (new) folder")
    parser.add_argument("--civicat", type=Path, default=ROOT,
                        help="the checkout whose civicat harvests (another branch's, to compare; default this one)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    fleet_options(parser, 300, 300_000)
    parser.add_argument("--naive", type=int, default=2_000, help="datasets for the naive baseline")
    parser.add_argument("--reclaim-share", type=float,
                        help="catalog.store.RECLAIM_SHARE for every night (e.g. 0.02: night 3 reclaims datasets)")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(args.civicat)}

    print(f"building and serving {args.portals} portals, ~{args.datasets:,} datasets ({load()}) ...", flush=True)
    building = time.perf_counter()
    with serving("nightly", f"{args.portals}x{args.datasets}x{args.largest}") as server, tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        portals = json.loads(server.stdout.readline())
        kinds: dict[str, int] = {}
        for p in portals:
            kinds[p["kind"]] = kinds.get(p["kind"], 0) + p["datasets"]
        served = sum(p["datasets"] for p in portals)
        print(f"served in {time.perf_counter() - building:.0f} s: {len(portals)} portals, {served:,} datasets "
              f"(" + ", ".join(f"{k} {n:,}" for k, n in sorted(kinds.items())) + "); the largest "
              + ", ".join(f"{p['datasets']:,}" for p in sorted(portals, key=lambda p: -p["datasets"])[:4]), flush=True)
        config, db = folder / "nightly.toml", folder / "catalog.duckdb"
        write_config(portals, config)
        nights, expected = [], None
        before = None
        for night in (1, 2, 3):
            if night == 3:
                before = portal_rows(db, [p["id"] for p in portals])
                expected = ask(server, "change")
            server_cpu = ask(server, "cpu")
            at = load()
            (db.parent / "stderr.log").write_text("")   # (each night's own)
            result = harvest_night(config, db, args.workers, args.civicat, args.reclaim_share)
            result.update(server_cpu=ask(server, "cpu") - server_cpu, load=at)
            nights.append(result)
            print(f"night {night}: {result['wall']:.1f} s wall, {result['cpu']:.1f} s CPU, exit {result['exit']}, "
                  f"{result['requests']:,} requests, {result['written_mb']:.0f} MB written, "
                  f"largest process {result['max_rss_mb']:.0f} MB (the harvest {result['own_peak_mb'] or 0:.0f}, "
                  f"a mapping worker {result['descendants_peak_mb']:.0f}), tree {result['tree_rss_mb']:.0f} MB, "
                  f"{result['retried']} writes retried with 1 GB ({at})", flush=True)
            if night == 1:   # (before the changing night: night 1's answers)
                urls = ask(server, "asked")
                limit_seconds, limit_bytes, limit_entries = limit_pass(urls, args.workers)
                naive_rate = naive_baseline(urls, str(folder / "naive.duckdb"), args.naive)
        failing = expected["failing"]
        after = portal_rows(db, list(failing))
        runs = subprocess.run([*CIVICAT, "runs", "--errors", "--json", "--limit", "1", "--db", str(db)], cwd=args.civicat,
                              env=env, capture_output=True, text=True)
        runs_report = json.loads(runs.stdout)

    print(f"\n{len(portals)} portals, {served:,} datasets, --workers {args.workers}, on {os.cpu_count()} cores; "
          f"civicat from {args.civicat}")
    print("night  exit   wall    CPU  server CPU  largest process  tree RSS  requests  304s     MB in   new  changed  "
          "unchanged  removed  errors  catalogue  read copy  runs rows  error rows")
    for number, n in enumerate(nights, 1):
        print(f"{number:>5}  {n['exit']:>4} {n['wall']:6.1f} {n['cpu']:6.1f} {n['server_cpu']:11.1f} "
              f"{n['max_rss_mb']:13.0f} MB {n['tree_rss_mb']:6.0f} MB {n['requests']:9,} {n['not_modified']:5,} "
              f"{n['bytes'] / 2**20:9.1f} {n['new']:5,} {n['changed']:8,} {n['unchanged']:10,} {n['removed']:8,} "
              f"{n['errors']:7,} {n['db_mb']:7.1f} MB {n['copy_mb']:7.1f} MB {n['harvest_runs']:10,} "
              f"{n['harvest_errors']:11,}   ({n['load']})")
        print(f"{'':>5}  writes retried with 1 GB: {n['retried']}; search index failed: {n['search_failed']}; "
              f"log left {n['wal_mb']:.1f} MB; read copy current: {n['copy_current']}; dataset_events written "
              f"{n['events'][0]} ({n['events'][1]} in all); datasets' dead rows held after: {n['dead']:,}")
        if n["retried_what"]:
            print(f"{'':>5}  retried with 1 GB: {'; '.join(n['retried_what'])}")
    first = nights[0]
    print(f"limit (fetch + parse night 1's {len(urls):,} answers, {limit_bytes / 2**20:.0f} MB, {args.workers} hosts "
          f"at a time): {limit_seconds:.1f} s; night 1 / limit = {first['wall'] / limit_seconds:.2f}; "
          f"night 2 / night 1 = 1/{first['wall'] / nights[1]['wall']:.1f}; night 3 / night 1 = "
          f"1/{first['wall'] / nights[2]['wall']:.1f}")
    naive_night = served / naive_rate
    print(f"naive baseline: {naive_rate:,.0f} datasets/s (on {args.naive:,}): a night of {served:,} would take "
          f"{naive_night:.0f} s, every night; civicat night 1 {naive_night / first['wall']:.1f}x faster, night 2 "
          f"{naive_night / nights[1]['wall']:.1f}x")
    # the checks
    assert first["exit"] == 0 and nights[1]["exit"] == 0, [n["failed"] for n in nights]
    assert first["new"] == served and first["live"] == served, (first["new"], served)
    assert (nights[1]["new"], nights[1]["changed"], nights[1]["removed"]) == (0, 0, 0), nights[1]
    third = nights[2]
    want = {key: sum(e[key] for e in expected["expected"].values()) for key in ("new", "changed", "removed")}
    got = {key: third[key] for key in want}
    print(f"night 3: the server changed {want}, the harvest found {got}; failing {failing}: "
          f"{'as expected' if got == want else 'NOT as expected'}")
    assert third["exit"] == 1 and set(third["failed"]) == set(failing), third["failed"]
    kept = {p: after[p] == before[p] for p in failing}
    print(f"the failing portals' rows (datasets, distributions, columns, raw_records, portal_listings) as night 2 "
          f"left them: {kept}")
    shown = {r["portal_id"]: f"{r['error_type']}: {r['error_message']}" for r in runs_report["runs"]
             if r["status"] == "failed"}
    for portal_id, why in shown.items():
        print(f"civicat runs: {portal_id} failed, {why[:200]}")
    assert got == want and all(kept.values()) and set(shown) == set(failing), (got, want, kept, shown)


if __name__ == "__main__":
    main()
