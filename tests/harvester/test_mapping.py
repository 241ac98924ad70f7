"""Mapping in worker processes: the same catalogue, errors and raw records as mapping in
the harvest's own process, and a pool whose workers die falls back without losing data."""
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from harvester import mapping
from harvester.mapping import Batch, WorkerPool
from catalog.stage import raw_part, records_part
from harvester.pipeline import harvest
from tests.children import line_of
from tests.conftest import fast_client, portal_config
from tests.portals.socrata import SocrataPortal
from tests.portals.synth import make_socrata_entries

DOMAIN = "data.example.org"
ENTRIES = 2_600   # three parts of 1,000 and a partial one


def catalogue_entries() -> list[dict]:
    entries = make_socrata_entries(ENTRIES, domain=DOMAIN, seed=7)
    entries[10]["resource"]["name"] = "   "                 # rejected: no title
    entries[1_500]["resource"]["createdAt"] = "R/P1D"        # stored, with a warning
    entries[2_400]["resource"]["columns_field_name"] = "x"   # stored, with a warning
    return entries


def contents(store) -> dict:
    sql = {
        "datasets": "SELECT * EXCLUDE (first_seen, last_seen, last_changed) FROM datasets ORDER BY uid",
        "columns": "SELECT * FROM columns ORDER BY dataset_uid, position",
        "distributions": "SELECT * FROM distributions ORDER BY dataset_uid, position",
        "raw_records": "SELECT uid, raw_hash, raw, details FROM raw_records ORDER BY uid",
        "errors": "SELECT source_id, stage, error_type, severity, message FROM harvest_errors ORDER BY ALL",
    }
    return {name: store.con.execute(query).fetchall() for name, query in sql.items()}


@pytest.fixture
def portal():
    with SocrataPortal(catalogue_entries(), domain=DOMAIN) as server:
        server.config = portal_config("city", "socrata", server.url, domain=DOMAIN)
        yield server


def test_worker_processes_stage_what_the_harvest_process_stages(portal, tmp_path, monkeypatch):
    from catalog.store import Store

    in_process = Store(tmp_path / "in_process.duckdb")
    assert harvest([portal.config], in_process, fast_client(), pool=WorkerPool(0)).ok

    monkeypatch.setattr(mapping, "POOL_AFTER", 0)   # every batch to the workers
    workers = Store(tmp_path / "workers.duckdb")
    pool = WorkerPool(2)
    started = []
    workers.commit_portal = lambda *args, original=workers.commit_portal, **kw: (
        started.append(pool.started) or original(*args, **kw))
    report = harvest([portal.config], workers, fast_client(), pool=pool)
    assert report.ok and pool.workers == 2 and pool.submitted > 0   # the batches went to the workers...
    assert started == [False]                                       # ...which had stopped before the merge

    expected, got = contents(in_process), contents(workers)
    assert len(got["datasets"]) == ENTRIES - 1 == report.portals[0].new
    assert len(got["errors"]) == 3 and report.portals[0].errors == 1 and report.portals[0].warnings == 2
    for name in expected:
        assert got[name] == expected[name], name


def test_a_pool_whose_workers_die_falls_back_to_mapping_in_process(portal, store, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(mapping, "POOL_AFTER", 0)
    pool = WorkerPool(2)
    (tmp_path / "warmup").mkdir()
    pool.submit(Batch(portal.config, str(tmp_path / "warmup"), 0)).result()   # the workers are up
    for process in list(pool._executor._processes.values()):
        process.kill()
        process.join()
    with caplog.at_level(logging.WARNING, logger="civicat.harvest"):
        report = harvest([portal.config], store, fast_client(), pool=pool)
    assert report.ok and report.portals[0].new == ENTRIES - 1
    assert store.con.execute("SELECT count(*) FROM raw_records").fetchone()[0] == ENTRIES - 1
    assert "mapping worker processes failed" in caplog.text
    assert pool.workers == 0


def test_workers_write_parquet_without_numpy_duckdb_or_pandas(tmp_path):
    """A mapping worker imports every portal module (each also holds its records code) and
    writes a part with Arrow, but never imports numpy, DuckDB or pandas (~40 MB, 50 MB and
    more a worker); a later `import numpy` still works."""
    probe = (
        "import sys\n"
        "from harvester.config import KINDS, PortalConfig\n"
        "from harvester.mapping import Batch, _adapter, _worker_started, map_batch\n"
        "_worker_started()  # as the pool starts each worker\n"
        "for kind in KINDS:\n"
        "    _adapter(PortalConfig(id='p', city='C', kind=kind, url='http://127.0.0.1:9'))\n"
        "portal = PortalConfig(id='p', city='C', kind='socrata', url='http://127.0.0.1:9', domain='d')\n"
        "entry = b'{\"resource\": {\"id\": \"abcd-1234\", \"name\": \"Permits\", \"type\": \"dataset\"}}'\n"
        f"result = map_batch(Batch(portal, {str(tmp_path)!r}, 0, [(entry, None)]))\n"
        "assert result.staged == 1 and not result.errors, result\n"
        "print(sorted(m for m in ('pyarrow', 'duckdb', 'numpy', 'pandas') if m in sys.modules))\n"
        "import pyarrow.parquet as pq\n"
        f"table = pq.read_table({str(tmp_path / 'records-000000.parquet')!r})\n"
        "assert table.column('uid').to_pylist() == ['p:abcd-1234'] and table.column('title').to_pylist() == ['Permits']\n"
        "import numpy\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[0] == "['pyarrow']"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["raw-000000.tsv", "records-000000.parquet"]


def test_relaxed_gc_is_shared_by_harvests_side_by_side_and_put_back_by_the_last():
    import gc

    before = gc.get_threshold()
    with mapping.relaxed_gc():
        with mapping.relaxed_gc():   # a second harvest in another thread of the process
            assert gc.get_threshold() == mapping.GC_THRESHOLDS
        assert gc.get_threshold() == mapping.GC_THRESHOLDS   # the first is still running
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


class HeldBatch(Future):
    def result(self, timeout=None):
        assert self.done(), "the harvest's process waited for a batch a worker still holds"
        return super().result(timeout)


class HeldPool(WorkerPool):
    """A pool of one worker whose batches finish only when the test lets them (mapped then,
    in this process): the harvest's process must map the overflow itself, not wait."""

    def __init__(self):
        super().__init__(1)
        self.held: list[tuple[Batch, Future]] = []

    def submit(self, batch):
        future = HeldBatch()
        self.held.append((batch, future))
        self.submitted += 1
        return future

    def release(self):
        for batch, future in self.held:
            if not future.done():
                future.set_result(mapping.map_batch(batch))


def test_the_harvest_process_maps_a_batch_itself_while_every_worker_is_busy(tmp_path, monkeypatch):
    from catalog.store import Store
    from harvester.mapping import Mapper
    from harvester.portals import adapter_for

    import orjson

    monkeypatch.setattr(mapping, "BATCH", 10)
    store = Store(tmp_path / "c.duckdb")
    config = portal_config("city", "socrata", "http://127.0.0.1:9", domain=DOMAIN)
    stage, pool, errors = store.new_stage(), HeldPool(), []
    mapper = Mapper(adapter_for(config, None), config, stage, lambda *args: errors.append(args), pool)
    mapper.pool_after = 0
    for entry in make_socrata_entries(50, domain=DOMAIN, seed=3):
        mapper.add(orjson.loads(orjson.dumps(entry)))
    # five batches: the worker holds one and one waits for it; the other three were mapped
    # here as they filled, without waiting for the held ones
    assert pool.submitted == 2 and stage.parts == 3 and len(mapper.in_flight) == 2
    pool.release()
    mapper.finish()
    assert stage.parts == 5 and not errors
    Store.discard(stage)


def map_batch_or_die_writing(batch: Batch):
    """Part 1 dies mid-write, its raw part half written (runs in a worker). Part 0 waits
    until the harvest's own process has written part 2, so that part 2 is always mapped
    beside the busy worker, however the machine's load times the two processes."""
    if batch.number == 0:
        deadline = time.monotonic() + 60
        while not records_part(Path(batch.directory), 2).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    if batch.number == 1:
        raw_part(Path(batch.directory), 1).write_bytes(b"half a part\n")
        os._exit(1)
    return mapping.map_batch(batch)


class DyingPool(WorkerPool):
    def __init__(self, workers):
        super().__init__(workers)
        self.numbers = []   # the parts the worker was given

    def submit(self, batch):
        if self._executor is None:
            self._executor = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=mapping._worker_started)
        future = self._executor.submit(map_batch_or_die_writing, batch)   # (refused once the pool is broken)
        self.numbers.append(batch.number)
        return future


def test_a_worker_dying_mid_write_while_the_harvest_maps_beside_it_loses_nothing(portal, tmp_path, monkeypatch):
    """One worker: parts 0 and 1 go to it, and the harvest's own process maps part 2 while
    it is busy, collecting it before the worker's; part 1's worker dies after writing half
    its raw part. The lost part is mapped again, whole, and the catalogue is the in-process
    one. (The last part, 3, goes to the worker if part 0 is done and part 1 not yet dead
    when it is dispatched: that depends on the machine's load.)"""
    from catalog.store import Store

    in_process = Store(tmp_path / "in_process.duckdb")
    assert harvest([portal.config], in_process, fast_client(), pool=WorkerPool(0)).ok
    monkeypatch.setattr(mapping, "POOL_AFTER", 0)
    store, pool = Store(tmp_path / "dying.duckdb"), DyingPool(1)
    report = harvest([portal.config], store, fast_client(), pool=pool)
    assert report.ok and pool.numbers in ([0, 1], [0, 1, 3]) and pool.workers == 0   # broken: the rest mapped here
    assert contents(store) == contents(in_process)


class StartedPool(HeldPool):
    def __init__(self):
        super().__init__()
        self.starts = 0

    def start(self):
        self.starts += 1


def test_a_portal_harvested_afresh_starts_its_workers_on_its_first_page_a_night_with_unchanged_entries_does_not(tmp_path):
    import orjson

    from catalog.store import Store
    from harvester.mapping import Mapper, raw_hash
    from harvester.portals import adapter_for

    store = Store(tmp_path / "c.duckdb")
    config = portal_config("city", "socrata", "http://127.0.0.1:9", domain=DOMAIN)
    adapter = adapter_for(config, None)
    page = [orjson.loads(orjson.dumps(entry)) for entry in make_socrata_entries(100, domain=DOMAIN, seed=5)]

    def first_page(known, total=100_000):
        stage, pool = store.new_stage(), StartedPool()
        mapper = Mapper(adapter, config, stage, lambda *args: None, pool, known=known)
        for entry in page:
            mapper.add(entry)
        mapper.expect(total)
        Store.discard(stage)
        return pool.starts, mapper.pool_after

    assert first_page({}) == (1, 0)                              # started now, every batch to them
    assert first_page({}, total=2_000) == (0, mapping.POOL_AFTER)   # a small portal: no workers
    stored = {f"city:{adapter.source_id(e)}": raw_hash(adapter, e, None) for e in page[:50]}
    assert first_page(stored) == (0, mapping.POOL_AFTER)         # half of it unchanged: the 3,000 rule


def test_an_entry_nested_past_what_can_be_stored_is_rejected_alone(store, http):
    """orjson reads 1,024 levels of nesting but writes 254: one entry holding a field nested
    300 deep failed its whole portal ("TypeError: Recursion limit reached"); it is rejected
    with its reason, and the rest of the portal is stored (a 30-digit number too, as text).
    A stored dataset that turns so deep keeps its stored version."""
    from tests.portals.dcat import DataJsonPortal
    from tests.portals.synth import make_data_json

    document = make_data_json(3)
    deep = 0
    for _ in range(300):
        deep = [deep]
    with DataJsonPortal(document) as portal:
        config = portal_config("d", "dcat-us", portal.url + "/data.json")
        assert harvest([config], store, http).ok
        before = store.con.execute("SELECT uid, raw_hash FROM datasets ORDER BY uid").fetchall()
        document["dataset"][1]["extra"] = deep
        document["dataset"].append({**document["dataset"][1], "identifier": "new-and-deep"})
        document["dataset"].append({**document["dataset"][0], "identifier": "huge", "size": 10**30})
        portal.document = document
        report = harvest([config], store, http).portals[0]
    assert report.status == "ok" and report.errors == 2 and report.removed == 0 and report.new == 1
    assert [row for row in store.con.execute("SELECT uid, raw_hash FROM datasets ORDER BY uid").fetchall()
            if row[0] != "d:huge"] == before
    rejected = store.con.execute("SELECT source_id, stage, error_type, message FROM harvest_errors "
                                 "WHERE severity = 'error' ORDER BY source_id").fetchall()
    assert [(stage, kind) for _, stage, kind, _ in rejected] == [("validate", "RecordRejected")] * 2
    assert all("Recursion limit reached (nested deeper than 254 levels)" in message for *_, message in rejected)


def test_an_entry_waiting_for_its_stored_details_comes_back_the_very_same():
    """An entry whose lookup failed waits as its JSON (a fifth of the memory) only when that
    gives it back as it was: one an adapter built keeps its dates, tuples, non-string keys
    (its hash would change otherwise)."""
    from datetime import UTC, datetime

    from harvester.mapping import entry_back, held_entry
    listed = make_socrata_entries(1, domain="data.example.org")[0]
    built = [{"modified": datetime(2024, 1, 15, tzinfo=UTC)}, {"columns": ("id", "kind")}, {1: "one"},
             {"rows": float("nan")}, {"deep": 2**70}]
    assert isinstance(held_entry(listed), bytes) and entry_back(held_entry(listed)) == listed
    for entry in [listed, *built, {"float": 1.0, "int": 1, "none": None, "list": [True, "é"]}]:
        assert repr(entry_back(held_entry(entry))) == repr(entry)
    assert all(held_entry(entry) is entry for entry in built)


def test_an_entry_waiting_for_its_stored_details_is_not_kept_parsed(tmp_path, monkeypatch):
    """5,000 of them wait: each as its JSON, and its lookup's error as a type and a message
    (the exception's traceback kept the lookup's frames, and the parsed entry in them)."""
    import gc
    import weakref

    import orjson

    from catalog.store import Store
    from harvester.http import PermanentError
    from harvester.mapping import Mapper
    from harvester.portals import adapter_for

    class Entry(dict):   # (a plain dict takes no weak reference)
        pass

    def lookup_fails(entry):
        raise PermanentError("HTTP 404: no such view", "http://127.0.0.1:9/api/views/x.json", 404)

    store = Store(tmp_path / "c.duckdb")
    config = portal_config("city", "socrata", "http://127.0.0.1:9", domain=DOMAIN)
    adapter = adapter_for(config, None)
    monkeypatch.setattr(adapter, "fetch_details", lookup_fails)
    stage, errors = store.new_stage(), []
    mapper = Mapper(adapter, config, stage, lambda *args: errors.append(args), None,
                    stored_details=store.stored_details)
    entry = Entry(orjson.loads(orjson.dumps(make_socrata_entries(1, domain=DOMAIN)[0])))
    parsed = weakref.ref(entry)
    mapper.add(entry)
    del entry
    gc.collect()
    assert parsed() is None and len(mapper.lookups_failed) == 1
    mapper.finish()
    assert [error[1:4] for error in errors] == [
        ("fetch", "NotFound", "HTTP 404: no such view (http://127.0.0.1:9/api/views/x.json)")]
    assert stage.parts == 1   # staged without its details (none stored)
    Store.discard(stage)
    store.close()


def test_a_worker_dying_beside_one_mid_batch_does_not_hang_the_pool():
    """One worker is killed (the OOM killer) while the other maps a batch whose answer is
    larger than a pipe holds (a batch's warnings). The pool, broken, stops the survivor: its
    workers ignore SIGTERM (the harvest's own stop, sent to the whole process group), so
    concurrent.futures' SIGTERM left it blocked writing an answer nobody reads, and
    `broken()` waited on it for ever."""
    pool = WorkerPool(2)
    executor = pool._executor_started()
    busy = executor.submit(subprocess.check_output, ["sh", "-c", "sleep 10; head -c 1000000 /dev/zero"])
    idle_pid = executor.submit(os.getpid).result()   # the other worker: the first is busy
    survivors = [p for p in executor._processes.values() if p.pid != idle_pid]
    try:
        os.kill(idle_pid, signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):
            busy.result()
        closing = threading.Thread(target=pool.broken, args=(BrokenProcessPool("killed"),), daemon=True)
        closing.start()
        closing.join(60)   # (a hang guard, not a timing: killed, the survivor ends at once)
        assert not closing.is_alive(), "the pool waits for ever on a worker that cannot be stopped"
        assert pool.workers == 0 and not pool.started
    finally:
        for process in survivors:
            process.kill()


def _running(pid: int) -> bool:
    """Whether `pid` is a process that has not ended (a zombie nobody reaps has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads process states from /proc (Linux)")
def test_the_workers_of_a_harvest_killed_outright_leave_with_it(tmp_path):
    """The workers ignore SIGTERM (the harvest's own stop reaches the whole process group), so
    when the harvest itself was killed outright (SIGKILL, the OOM killer) an idle worker waited
    for work for ever, and `kill` no longer ended it: it leaves once its parent is gone."""
    script = tmp_path / "killed.py"
    script.write_text(
        "import os, signal\n"
        "from harvester.mapping import WorkerPool\n"
        "if __name__ == '__main__':\n"
        "    pool = WorkerPool(1)\n"
        "    print(pool._executor_started().submit(os.getpid).result(), flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n")
    harvest = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                               cwd=Path(__file__).resolve().parents[2])
    worker = int(line_of(harvest))
    harvest.stdout.close()
    assert harvest.wait(timeout=60) == -signal.SIGKILL
    deadline = time.monotonic() + 60   # (a hang guard, not a timing: the worker leaves at once)
    while _running(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        assert not _running(worker), "a worker outlived the harvest killed outright"
    finally:
        if _running(worker):
            os.kill(worker, signal.SIGKILL)


def test_an_entry_the_mapping_fails_on_is_stored_as_mapping_failed_not_under_pythons_name(store, monkeypatch):
    """An entry whose shape the mapping did not foresee (a field where it expects another)
    was stored under the name of the Python exception it raised (`KeyError`, `TypeError`):
    a filter had to know every such name. It is `MappingFailed`, the exception in the message."""
    from harvester.portals.socrata import SocrataAdapter

    entries = make_socrata_entries(20, domain="data.example.org")
    odd = entries[7]["resource"]["id"]
    real_map = SocrataAdapter.map

    def mapping_that_did_not_foresee_it(self, entry, details, notes):
        if entry["resource"]["id"] == odd:
            return {}["columns_field_name"]   # a KeyError, as a mapping reading a missing key raises
        return real_map(self, entry, details, notes)

    monkeypatch.setattr(SocrataAdapter, "map", mapping_that_did_not_foresee_it)
    with SocrataPortal(entries, domain="data.example.org") as portal:
        report = harvest([portal_config("city", "socrata", portal.url, domain="data.example.org")], store,
                         fast_client()).portals[0]
    assert report.status == "ok" and report.new == 19 and report.errors == 1
    assert store.con.execute("SELECT source_id, stage, error_type, message FROM harvest_errors").fetchall() == [
        (odd, "map", "MappingFailed", "mapping failed: KeyError: 'columns_field_name'")]
