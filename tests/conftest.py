"""Shared fixtures: a fast-retrying HTTP client, a store in tmp_path, portal configs."""
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from catalog.store import Store
from harvester.config import PortalConfig
from harvester.http import HttpClient, ValidatorCache
from tests.children import line_of


def pytest_configure(config):
    """The tests of a stop send SIGINT as Ctrl-C does, to the suite's own process or to a civicat it
    starts, and expect Python's default handler (KeyboardInterrupt) or civicat's. A shell script's
    background job (`pytest > log &`, `nohup pytest &`) starts with SIGINT ignored, which each
    process it starts inherits and civicat's stop keeps (harvester.stopping): 19 of those tests
    then failed, most after waiting out the statement the stop was to end ("DID NOT RAISE
    KeyboardInterrupt", exit 0 where 130 was due). The suite takes SIGINT as a terminal's
    foreground process does, however it was started; the tests of an ignored SIGINT ignore it in
    the process they start."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if not hasattr(config, "workerinput"):   # (pytest-xdist's workers start after this, taking its environment)
        compiled_code_kept()


def compiled_code_kept():
    """The suite starts many Python processes (a `civicat` run, a portal served apart, a writer
    held open), each importing civicat's modules. Under PYTHONDONTWRITEBYTECODE (set on the machine
    CI runs on) none kept the bytecode it compiled, so each compiled them all again (~0.15 s of CPU a
    `civicat harvest`). The variable is taken out of the environment the suite's processes inherit:
    they keep their bytecode beside the sources (__pycache__, ignored by git), as Python does unless
    told not to; the standard library's and the installed packages' were compiled when installed. (A
    folder of the run's own, PYTHONPYCACHEPREFIX, would compile those again too: more CPU, not less.)"""
    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None):
        sys.dont_write_bytecode = False


def pytest_pyfunc_call(pyfuncitem):
    """A test that mounts a small disk (tests.small_disk), run by a user who may not mount one: run
    in a user namespace, where it may (tests.small_disk.in_user_namespace), its outcome this one's."""
    from tests.small_disk import in_user_namespace, needs_user_namespace

    if needs_user_namespace(pyfuncitem):
        in_user_namespace(pyfuncitem)
        return True
    return None


# session fixtures that harvest real catalogues through local portals (tens of seconds under load)
BUILT_ONCE = {"real_catalogue_path", "real_selection_path"}


def pytest_collection_modifyitems(config, items):
    """On two workers (`-n 2 --dist loadgroup`) each builds the session fixtures its own tests use:
    the tests of the real catalogues go to one worker, which builds each once."""
    for item in items:
        if BUILT_ONCE & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group("real_catalogues"))


def fast_client(tmp_path=None, **overrides) -> HttpClient:
    """The production client with test-sized waits (backoff in milliseconds)."""
    options = dict(backoff_initial=0.01, backoff_max=0.05, max_retry_after=2.0, timeout=5.0)
    if tmp_path is not None:
        options["cache"] = ValidatorCache(tmp_path / "http_cache")
    options.update(overrides)
    return HttpClient(**options)


REPO = str(Path(__file__).resolve().parents[1])

# a civicat writer under way in another process: the writer lock taken (its holder record
# naming the command, argv[2:]), the DuckDB file held, every dataset marked removed and
# committed since the last writer ended (its read copy has them live)
WRITER_UNDER_WAY = """
import sys, duckdb
from catalog.lock import WriterLock
db = sys.argv[1]
sys.argv = ["/usr/local/bin/civicat", *sys.argv[2:]]
WriterLock(db, pulls_records=sys.argv[1] == "records" or "--records" in sys.argv).acquire()   # (as the CLI's)
con = duckdb.connect(db)
con.execute("UPDATE datasets SET deleted_at = now()")
print("open", flush=True)
sys.stdin.read()
"""


@contextmanager
def writer_under_way(db, *command: str):
    """`with writer_under_way(db, "harvest") as writer:` the catalogue held by `civicat <command>`
    (WRITER_UNDER_WAY) for the block; `writer` is its process."""
    writer = subprocess.Popen([sys.executable, "-c", WRITER_UNDER_WAY, str(db), *command], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": REPO})
    try:
        assert line_of(writer) == "open\n"
        yield writer
    finally:
        writer.kill()
        writer.wait()


def pid_namespace_or_skip(instead: str) -> str:
    """The path of `unshare`, once `unshare -Urpf --mount-proc` has made a user and PID namespace (a container's
    view: its own /proc); else the test is skipped, saying so and what tests it `instead`."""
    import shutil

    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-Urpf", "--mount-proc", "true"], capture_output=True,
                                         timeout=60).returncode != 0:
        pytest.skip(f"no PID namespace can be made here (unshare -Urpf: no unshare, or user namespaces not allowed); "
                    f"{instead}")
    return unshare


def stopped_at_its_first_line(script: str, sig: int, first_line: str, *args: str) -> subprocess.Popen:
    """`python -c script *args` (the repository's code), sent `sig` once it has printed
    `first_line`; returns the process ended, its `out` and `err` the rest of its output. The script's
    slow step after that line is short sleeps, as Python's work looks for signals at every step: in
    one sleep of 60 s, a signal taken by another thread, or handled by C just before the sleep began,
    is run by Python only when it ends (one run in 8 under load: exit after the test's 60 s)."""
    process = subprocess.Popen([sys.executable, "-c", script, *args], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": REPO})
    try:
        assert line_of(process) == first_line
        process.send_signal(sig)
        try:
            process.out, process.err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            said = signal.Signals(sig).name
            raise AssertionError(f"not ended 60 s after {said}: {threads_of(process.pid)}") from None
    finally:
        process.kill()
        process.wait()
    return process


def threads_of(pid: int) -> list[dict]:
    """What each thread of process `pid` is doing and which signals wait (/proc): for the message
    of a process that did not end when told to."""
    threads = []
    for tid in sorted(os.listdir(f"/proc/{pid}/task")):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as status:
                fields = dict(line.split(":\t", 1) for line in status.read().splitlines() if ":\t" in line)
            with open(f"/proc/{pid}/task/{tid}/wchan") as wchan:
                fields["wchan"] = wchan.read()
        except OSError:   # (ended meanwhile)
            continue
        threads.append({key: fields.get(key) for key in ("Name", "State", "SigPnd", "ShdPnd", "SigBlk", "wchan")})
    return threads


def harvested_with_a_cap(store, tmp_path, config: PortalConfig, entries: list) -> int:
    """A first harvest of `config` without a response cap; returns a cap that a page of 100
    of `entries` fits in twice over (an entry made as large as half of it is over it alone)."""
    from harvester.pipeline import harvest
    assert harvest([config], store, fast_client(tmp_path)).ok
    return 2 * len(json.dumps(entries[:100]))


def portal_config(portal_id, kind, url, **options) -> PortalConfig:
    return PortalConfig(id=portal_id, city=options.pop("city", portal_id.title()), kind=kind, url=url, **options)


@pytest.fixture
def http(tmp_path):
    return fast_client(tmp_path)


@pytest.fixture(scope="session")
def migrated_catalogue(tmp_path_factory) -> Path:
    """A catalogue as Store makes it new, made once a session (each worker's): its migrations, each
    committed alone, cost a new catalogue ~25 fsyncs, 0.3-0.9 s of a test at load 10."""
    path = tmp_path_factory.mktemp("migrated") / "catalog.duckdb"
    Store(path).close()
    return path


def new_store(path: Path, migrated: Path) -> Store:
    """The Store of a new catalogue at `path`, as Store(path) makes it: a copy of `migrated`
    (the migrated_catalogue fixture's), given an identity of its own (each new catalogue's)."""
    assert not path.exists(), path
    shutil.copyfile(migrated, path)
    s = Store(path)
    s.con.execute("UPDATE catalogue_identity SET id = CAST(uuid() AS VARCHAR)")
    return s


@pytest.fixture
def store(tmp_path, migrated_catalogue):
    s = new_store(tmp_path / "catalog.duckdb", migrated_catalogue)
    yield s
    s.close()


@pytest.fixture
def refusing_port():
    """A port of 127.0.0.1 that refuses every connection: bound, never listening, and held for the
    test. A port bound and let go at once could be taken meanwhile by a portal of another process
    (another pytest-xdist worker's): the test then found it answering."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture(scope="session")
def real_catalogue_path(tmp_path_factory):
    """The path of a closed catalogue holding both real catalogues (about 10,600 datasets: the 16
    city data.json catalogues of 2013, the 33 Socrata domains of 2017), harvested once per session;
    named apart from `real_catalogue` so that the overlap tests, whose own `real_catalogue` is a
    small selection, reach it."""
    from tests.portals.catalogues import harvest_pod_2013, harvest_spellarbot
    from tests.shared_fixtures import require_fixtures
    require_fixtures()
    db = tmp_path_factory.mktemp("real") / "catalog.duckdb"
    store = Store(db)
    try:
        harvest_pod_2013(store, fast_client())
        harvest_spellarbot(store, fast_client())
    finally:
        store.close()
    return db


@pytest.fixture(scope="session")
def real_selection_path(tmp_path_factory):
    """The path of a closed catalogue of the overlap tests' real selection, harvested once per
    session: a module that writes to it (overlap results) takes a file copy of its own."""
    from tests.catalog.overlap.conftest import harvest_selection
    path = tmp_path_factory.mktemp("real-selection") / "catalog.duckdb"
    selection = Store(path)
    try:
        harvest_selection(selection)
    finally:
        selection.close()
    return path


def _is_loopback(host) -> bool:
    try:
        return isinstance(host, str) and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _output_piped(monkeypatch):
    """A command's tables fit $COLUMNS (harvester.cli.output_width), which pytest-xdist's workers are given
    (80): a test reads a command's output as piped, as a serial run does, unless it sets COLUMNS itself."""
    output_piped(monkeypatch)


def output_piped(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    """Tests talk to their own portals on 127.0.0.1, never to the network: a URL left
    pointing at a real host fails at once instead of waiting on a connection."""
    loopback_only(monkeypatch)


def loopback_only(monkeypatch):
    real = socket.getaddrinfo

    def guarded(host, *args, **kwargs):
        if host not in ("localhost", None) and not _is_loopback(host):   # (127.0.0.2: an address no portal is at)
            raise socket.gaierror(f"tests may not resolve {host!r}: serve it from a local portal")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


@pytest.fixture
def resolver(monkeypatch):
    """The resolver of the tests (_loopback_only), but for names a test gives answers of its own:
    a host name mapped to what getaddrinfo does for it in turn (a socket.gaierror raised, or an
    address resolved in its place, or a list of addresses, each resolved in turn, answered in that
    order, or a threading.Event: the lookup hangs until it is set, then fails
    with EAI_AGAIN, as glibc's does once its DNS servers have dropped every query; or (an Event or
    seconds, an address): a slow answer, the address resolved once the Event is set or the seconds
    have passed), the last one kept. Names under .invalid never resolve (RFC 6761), as this machine's resolver answers them:
    EAI_NONAME (test_http, for real). Every name asked is counted. Only the resolver's answer
    stands in: requests, urllib3 and the sockets are real."""
    loopback_only = socket.getaddrinfo
    answers: dict[str, list] = {}
    asked: Counter = Counter()

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        asked[name] += 1
        if name not in answers:
            if name and name.endswith(".invalid"):
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return loopback_only(host, *args, **kwargs)
        answer = answers[name][0] if len(answers[name]) == 1 else answers[name].pop(0)
        if isinstance(answer, threading.Event):
            answer.wait()
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        if isinstance(answer, tuple):
            delay, answer = answer
            delay.wait() if isinstance(delay, threading.Event) else time.sleep(delay)
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, list):   # (a name of several addresses)
            return [found for address in answer for found in loopback_only(address, *args, **kwargs)]
        return loopback_only(answer, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return SimpleNamespace(answers=answers, asked=asked)


@pytest.fixture(autouse=True)
def _fast_cli_retries(monkeypatch):
    """CLI runs build their own client from the environment: keep retries quick."""
    fast_cli_retries(monkeypatch)


def fast_cli_retries(monkeypatch):
    monkeypatch.setenv("CIVICAT_HTTP_BACKOFF", "0.01")


@contextmanager
def as_in_a_test():
    """For the block, what the autouse fixtures give each test (output piped, names resolved to loopback
    only, quick CLI retries): a fixture of a module's or the session's scope is made before them."""
    with pytest.MonkeyPatch.context() as patch:
        for autouse in (output_piped, loopback_only, fast_cli_retries):
            autouse(patch)
        yield


def left_beside(out) -> list[str]:
    """What exports into OUT left beside it but the version folders kept: OUT's own and the
    one before it (catalog.export.stale_versions)."""
    from catalog.export import stale_versions, versions

    kept = set(versions(out)) - set(stale_versions(out))
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.") and p not in kept)


def harvest_with_records(tmp_path, portal_id, kind, url, records, *options, extra="", with_records=True):
    """`civicat harvest [--records] --json` over a one-portal config; returns (db path, result)."""
    import json

    from click.testing import CliRunner

    from harvester.cli import cli

    config = tmp_path / "c.toml"
    config.write_text(f'[[portals]]\nid = "{portal_id}"\ncity = "{portal_id.title()}"\nkind = "{kind}"\n'
                      f'url = "{url}"\nrecords = {json.dumps(list(records))}\n{extra}')
    db = tmp_path / "c.duckdb"
    result = CliRunner().invoke(cli, ["harvest", *(["--records"] if with_records else []), "--json",
                                      "--config", str(config), "--db", str(db), *options])
    return db, result


def assert_first_10000_columns_kept(store, source_id, listed_by, portal_id="city", listed=25_000):
    """The dataset of 25,000 columns (`listed`) keeps its first 10,000, with a warning naming
    it and `listed_by`, and a records pull of it was refused."""
    uid = f"{portal_id}:{source_id}"
    assert store.con.execute("SELECT count(*), max(position), max_by(field_name, position) FROM columns "
                             "WHERE dataset_uid = ?", [uid]).fetchone() == (10_000, 9_999, "column_9999")
    warnings = store.con.execute("SELECT DISTINCT source_id, severity, message FROM harvest_errors "
                                 "WHERE stage != 'records'").fetchall()
    assert warnings == [(source_id, "warning", f"columns: {listed_by} lists {listed:,} columns; the first 10,000 "
                         "are kept (as many as a records pull takes)")]
    refused = store.con.execute("SELECT message FROM harvest_errors WHERE stage = 'records'").fetchone()[0]
    assert f"the dataset has {listed} columns, more than the 10,000 a records pull takes" in refused


def assert_an_edited_dataset_whose_lookup_is_down_keeps_its_columns(store, http, config, lookups, path_prefix: str,
                                                                    edit, lookup_urls: dict[str, str],
                                                                    asked: set[str] | None = None) -> None:
    """Nights 1 and 2 of a portal of two datasets whose columns come from a details lookup
    (paths under `path_prefix` of the portal `lookups`). Night 2, `edit()` renames the first
    (by title) "<title>, renamed", its keywords ["new"] and modified 2024-02-01 in the listing
    while the lookups answer 503: the listing's metadata is stored, the columns the lookups
    gave on night 1 are kept, the other dataset is unchanged, and a warning for each lookup
    asked names it (`lookup_urls`: source id -> URL; `asked`: the source ids whose lookups night 2
    asks, all by default; a kind that keeps an unchanged entry's lookup asks the edited one's)."""
    from harvester.pipeline import harvest
    assert harvest([config], store, http).portals[0].new == 2
    stored = "SELECT source_id, title, keywords, modified, last_changed FROM datasets ORDER BY title"
    columns = "SELECT dataset_uid, position, name, field_name, type FROM columns ORDER BY ALL"
    night_1, columns_1 = store.con.execute(stored).fetchall(), store.con.execute(columns).fetchall()

    edit()
    lookups.inject(path_prefix, ("status", 503), times=1000)
    run = harvest([config], store, http)
    report = run.portals[0]
    assert report.status == "ok" and (report.changed, report.unchanged) == (1, 1)
    night_2 = store.con.execute(stored).fetchall()
    assert night_2[0][1:4] == (f"{night_1[0][1]}, renamed", ["new"], datetime(2024, 2, 1, tzinfo=UTC))
    assert night_2[0][4] > night_1[0][4] and night_2[1] == night_1[1]
    assert store.con.execute(columns).fetchall() == columns_1   # the lookups' columns, as stored
    warnings = store.con.execute("SELECT source_id, severity, message FROM harvest_errors WHERE run_id = ? "
                                 "AND stage = 'fetch'", [run.run_id]).fetchall()
    asked = set(lookup_urls) if asked is None else asked
    assert sorted((source, severity) for source, severity, _ in warnings) == [
        (source, "warning") for source in sorted(asked)]
    assert all(lookup_urls[source] in message and "keeps what" in message for source, _, message in warnings)
    assert report.errors == 0 and report.warnings == len(asked)


def assert_a_full_harvest_with_its_lookup_down_keeps_the_columns(store, http, config, lookups, path_prefix: str,
                                                                  stored: int) -> None:
    """`harvest --full` re-maps every dataset: the one dataset of `config`, harvested first,
    whose details lookup (paths under `path_prefix` of the portal `lookups`) then answers 503,
    keeps the `stored` columns it has, and is not rewritten (nothing else of it changed)."""
    from harvester.pipeline import harvest
    harvest([config], store, http)
    columns = "SELECT dataset_uid, position, name, field_name, type FROM columns ORDER BY ALL"
    before = store.con.execute(columns).fetchall()
    lookups.inject(path_prefix, ("status", 503), times=1000)
    report = harvest([config], store, http, full=True).portals[0]
    assert report.status == "ok" and (report.changed, report.unchanged) == (0, 1)
    assert len(before) == stored and store.con.execute(columns).fetchall() == before


def assert_a_lookup_refused_for_good_is_asked_again_only_when_due(store, http, config, lookups, failing, working,
                                                                   edit, mend, kept: bool = False) -> None:
    """Nights of a portal of two datasets whose columns come from a details lookup (requests
    to the portal `lookups`), one of which (the requests `failing(path, query)` is true of) is
    refused for good (a 404, an ArcGIS error), the other's (`working`) answering. Night 1 reports the refusal, a
    NotFound or PortalError error of the fetch stage; an unchanged night 2 neither asks
    `failing` again nor reports it (the other lookup is asked as every night); `edit()` changes
    the failing dataset's entry: night 3 asks again (and reports again); `harvest --full` asks
    again; a week after its last error row it is asked again, and, `mend()`ed meanwhile, it
    gives the dataset its columns. `kept`: the kind keeps the lookup of an entry listed as stored
    (PortalAdapter.lookup_kept_days): on such a night, the same day as the last, neither is asked."""
    from harvester.mapping import LOOKUP_ASKED_AGAIN_DAYS
    from harvester.pipeline import harvest

    def night(**options):
        lookups.clear_log()
        run = harvest([config], store, http, **options)
        report = run.portals[0]
        assert report.status == "ok", report.error_message
        asked = {which: sum(which(path, query) for path, query, _ in lookups.requests) for which in (failing, working)}
        errors = store.con.execute("SELECT stage, error_type, severity FROM harvest_errors WHERE run_id = ?",
                                   [run.run_id]).fetchall()
        return report, asked[failing], asked[working], errors

    report, asked, other, errors = night()
    assert (report.new, report.errors, asked, other) == (2, 1, 1, 1)
    [(stage, refused_as, severity)] = errors
    assert (stage, severity) == ("fetch", "error") and refused_as in ("NotFound", "PortalError")
    without_columns = "SELECT count(*) FROM datasets d WHERE NOT EXISTS (SELECT 1 FROM columns WHERE dataset_uid = d.uid)"
    assert store.con.execute(without_columns).fetchone()[0] == 1
    recorded = store.con.execute("SELECT json_extract_string(details, '$.lookup_failed.error_type') AS why "
                                 "FROM raw_records WHERE why IS NOT NULL").fetchall()
    assert recorded == [(refused_as,)]   # why it has none, beside the night's error row

    report, asked, other, errors = night()   # unchanged: the refusal is not asked again, nor reported
    assert (report.unchanged, report.changed, report.errors, asked, errors) == (2, 0, 0, 0, [])
    assert other == (0 if kept else 1)

    edit()
    report, asked, other, errors = night()   # its entry changed: asked again
    assert (report.changed, report.unchanged, report.errors, asked, errors) == (
        1, 1, 1, 1, [("fetch", refused_as, "error")])
    report, asked, other, errors = night()
    assert (report.unchanged, report.errors, asked, errors) == (2, 0, 0, [])

    report, asked, other, errors = night(full=True)   # --full asks every lookup
    assert (report.changed, report.unchanged, report.errors, asked) == (0, 2, 1, 1)

    # a week later: the error rows made as old as that, and the portal mended meanwhile
    store.con.execute("UPDATE harvest_errors SET occurred_at = occurred_at - ?",
                      [timedelta(days=LOOKUP_ASKED_AGAIN_DAYS, minutes=1)])
    mend()
    report, asked, other, errors = night()
    assert (report.changed, report.unchanged, report.errors, asked, errors) == (1, 1, 0, 1, [])
    assert store.con.execute(without_columns).fetchone()[0] == 0
    report, asked, other, errors = night()   # answered again: asked every night, as every lookup (or kept)
    assert (report.unchanged, asked, other) == ((2, 0, 0) if kept else (2, 1, 1))


def as_before_the_lookup_marker(store, config) -> list[str]:
    """The catalogue as session 26's code left it: each dataset of `config`'s portal whose stored
    details record a lookup refused for good (`lookup_failed`, session 27's) stored without that
    record, under the hash of its entry and details without it, its error rows typed as they
    were then (PermanentError). Returns the uids it touched."""
    from harvester.http import HttpClient
    from harvester.mapping import raw_hash
    from harvester.portals import adapter_for
    adapter = adapter_for(config, HttpClient())
    marked = store.con.execute(
        """SELECT d.uid, r.raw, r.details FROM datasets d JOIN raw_records r ON r.uid = d.uid AND r.raw_hash = d.raw_hash
           WHERE d.portal_id = ? AND json_extract_string(r.details, '$.lookup_failed') IS NOT NULL""",
        [config.id]).fetchall()
    for uid, raw, details in marked:
        unmarked = {key: value for key, value in json.loads(details).items() if key != "lookup_failed"} or None
        before = raw_hash(adapter, json.loads(raw), unmarked)
        store.con.execute("UPDATE raw_records SET details = ?, raw_hash = ? WHERE uid = ? AND raw_hash = "
                          "(SELECT raw_hash FROM datasets WHERE uid = ?)",
                          [json.dumps(unmarked) if unmarked is not None else None, before, uid, uid])
        store.con.execute("UPDATE datasets SET raw_hash = ? WHERE uid = ?", [before, uid])
    store.con.execute("UPDATE harvest_errors SET error_type = 'PermanentError' WHERE portal_id = ? AND stage = 'fetch'",
                      [config.id])
    return [uid for uid, _, _ in marked]


def assert_the_first_night_after_the_upgrade_changes_nothing(store, http, config, lookups, failing,
                                                              full: bool = False) -> None:
    """A portal of datasets whose columns come from a details lookup (requests to the portal
    `lookups`), one refused for good (the requests `failing(path, query)` is true of), first
    harvested by session 26's code (as_before_the_lookup_marker): the night after the upgrade
    asks that lookup once more and records its refusal in the dataset's details, but counts no
    dataset changed and writes no `changed` event (nothing of the portal's changed), and
    last_changed stays; the night after, the lookup is not asked again. `full`: the night after
    the upgrade is a `harvest --full` (which counted such a dataset changed before session 29)."""
    from harvester.pipeline import harvest
    assert harvest([config], store, http).ok
    [uid] = as_before_the_lookup_marker(store, config)
    stored = "SELECT uid, raw_hash, last_changed FROM datasets ORDER BY uid"
    before = store.con.execute(stored).fetchall()

    lookups.clear_log()
    run = harvest([config], store, http, full=full)
    report = run.portals[0]
    assert report.status == "ok", report.error_message
    assert (report.new, report.changed, report.unchanged, report.errors) == (0, 0, len(before), 1)
    assert sum(failing(path, query) for path, query, _ in lookups.requests) == 1
    assert store.con.execute("SELECT event, uid FROM dataset_events WHERE run_id = ?", [run.run_id]).fetchall() == []
    after = store.con.execute(stored).fetchall()
    assert [(u, changed) for u, _, changed in after] == [(u, changed) for u, _, changed in before]
    refused_as = store.con.execute("SELECT error_type FROM harvest_errors WHERE run_id = ?", [run.run_id]).fetchone()[0]
    assert store.con.execute(   # the stored version records the refusal, as a night of session 27's code leaves it
        """SELECT json_extract_string(r.details, '$.lookup_failed.error_type') FROM datasets d
           JOIN raw_records r ON r.uid = d.uid AND r.raw_hash = d.raw_hash WHERE d.uid = ?""", [uid]).fetchall() == [
        (refused_as,)]
    assert store.con.execute("SELECT count(*) FROM raw_records WHERE uid = ?", [uid]).fetchone()[0] == 1

    lookups.clear_log()
    run = harvest([config], store, http)
    report = run.portals[0]
    assert (report.changed, report.unchanged, report.errors) == (0, len(before), 0)
    assert sum(failing(path, query) for path, query, _ in lookups.requests) == 0


def assert_a_refused_lookup_down_for_a_night_changes_nothing(store, http, config, lookups, path_prefix: str,
                                                             failing) -> None:
    """A dataset whose details lookup (the requests to `lookups` that `failing(path, query)` is
    true of) is refused for good, asked again a week later when it answers 503 (a fault of the
    moment: under `path_prefix`), then refused again: neither night counts it changed nor writes
    an event (the record of the refusal stays as it was: the 503 says nothing new of it)."""
    from harvester.mapping import LOOKUP_ASKED_AGAIN_DAYS
    from harvester.pipeline import harvest
    assert harvest([config], store, http).ok
    refused = "SELECT json_extract_string(details, '$.lookup_failed.error_type') AS why FROM raw_records " \
              "WHERE why IS NOT NULL"
    [(refused_as,)] = store.con.execute(refused).fetchall()
    for fault in (("status", 503), None):
        store.con.execute("UPDATE harvest_errors SET occurred_at = occurred_at - ?",
                          [timedelta(days=LOOKUP_ASKED_AGAIN_DAYS, minutes=1)])
        lookups.clear_log()
        if fault:
            lookups.inject(path_prefix, fault, times=1000)
        run = harvest([config], store, http)
        lookups.clear_faults()
        report = run.portals[0]
        assert report.status == "ok", report.error_message
        assert (report.changed, report.errors) == (0, 1), fault
        assert sum(failing(path, query) for path, query, _ in lookups.requests) >= 1
        assert store.con.execute("SELECT event FROM dataset_events WHERE run_id = ?", [run.run_id]).fetchall() == []
        assert store.con.execute(refused).fetchall() == [(refused_as,)]


def fail_pull_after(source, batches: int, error: Exception) -> None:
    """Make a RecordSource's pull fail with `error` (a kill, as the test shows it) once it
    has given `batches` tables. `error` is an Exception: a KeyboardInterrupt (harvester.http's
    Interrupted is one) that the pull let out where the test did not expect it ended the whole
    pytest session, not the test. (tests/harvester/http/conftest.py's unbounded_wait_fails, a bound
    on a wait, was named as this one until session 37.)"""
    if not isinstance(error, Exception):
        raise TypeError(f"fail_pull_after cuts a pull short with an Exception, not {type(error).__name__} "
                        f"({type(error).__mro__[1].__name__}): uncaught, it would end the whole pytest session")
    real = source.batches

    def cut_short(resume):
        for n, item in enumerate(real(resume)):
            if n == batches:
                raise error
            yield item

    source.batches = cut_short


def assert_an_unread_frequency_stored_as_unknown_is_re_mapped_once(store, http, config, adapter_class,
                                                                   version_before: int) -> None:
    """A catalogue stored by civicat before session 31 (its kind's mapping `version_before`), which
    stored an update frequency it could not read as 'unknown' (what a portal says of itself): the
    first night after the upgrade re-maps every dataset once (its frequency now null, with a
    warning); the night after finds each unchanged again. Every dataset of `config`'s portal has
    such a frequency."""
    from catalog import record as R
    from harvester.pipeline import harvest

    def as_before(value, notes=None, field_name="accrual_periodicity"):
        value = R.text(value)
        return (R._periodicity(value) or "unknown") if value else None

    frequencies = "SELECT DISTINCT accrual_periodicity FROM datasets"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(adapter_class, "mapping_version", version_before)
        patch.setattr(R, "periodicity", as_before)
        first = harvest([config], store, http).portals[0]
    assert first.status == "ok" and first.new > 0 and store.con.execute(frequencies).fetchall() == [("unknown",)]

    upgraded = harvest([config], store, http).portals[0]
    assert (upgraded.status, upgraded.changed, upgraded.unchanged) == ("ok", first.new, 0)
    assert store.con.execute(frequencies).fetchall() == [(None,)]
    warned = store.con.execute("SELECT count(DISTINCT source_id) FROM harvest_errors WHERE severity = 'warning' AND "
                               "message LIKE 'accrual_periodicity: unrecognised update frequency%'").fetchone()[0]
    assert warned == first.new

    after = harvest([config], store, http).portals[0]
    assert (after.changed, after.unchanged) == (0, first.new)


def assert_stored_by_an_older_mapping_is_re_mapped_once(store, http, config, adapter_class, stored_by: int,
                                                        as_stored_then, columns: tuple[str, ...],
                                                        expected: dict[str, tuple]) -> None:
    """A catalogue harvested by the kind's mapping `stored_by` (its version, and what it read:
    `as_stored_then(monkeypatch)` patches the mapping back) is re-mapped the first night after the
    upgrade, without `--full` (every dataset written again: its version is another), each dataset of
    `expected` (source id → its `columns` now) given those values, every other one keeping its own;
    the night after finds each unchanged."""
    from harvester.pipeline import harvest

    select = f"SELECT source_id, {', '.join(columns)} FROM datasets"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(adapter_class, "mapping_version", stored_by)
        as_stored_then(patch)
        first = harvest([config], store, http).portals[0]
    assert first.status == "ok" and first.new >= len(expected), first.error_message
    before = {uid: tuple(values) for uid, *values in store.con.execute(select).fetchall()}
    assert all(before[uid] != values for uid, values in expected.items()), before

    upgraded = harvest([config], store, http).portals[0]
    assert (upgraded.status, upgraded.changed, upgraded.unchanged) == ("ok", first.new, 0)
    after = {uid: tuple(values) for uid, *values in store.con.execute(select).fetchall()}
    assert after == {**before, **expected}
    again = harvest([config], store, http).portals[0]
    assert (again.changed, again.unchanged) == (0, first.new)


def periodicity_as_before(said_then: dict[str, str | None]):
    """catalog.record.periodicity as an earlier civicat read these values (each to what it stored
    then), every other value as now: patched in to store a catalogue as that version did."""
    from catalog import record as R
    now = R.periodicity

    def periodicity(value, notes=None, field_name="accrual_periodicity"):
        text = R.text(value)
        return said_then[text] if text in said_then else now(value, notes, field_name)
    return periodicity
