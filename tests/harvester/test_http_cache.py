"""ValidatorCache on its own: its file, shared with other runs and processes, and its faults
(the cache through HttpClient's conditional requests: http/test_client.py)."""
import gzip
import os
import hashlib
import json
import logging
import sqlite3
import threading
import time

from harvester.http_cache import ValidatorCache


def test_the_old_cache_layout_is_removed_and_nothing_else(tmp_path):
    """Earlier versions kept two files per URL, in folders named by the hash's first two digits."""
    folder = tmp_path / "http_cache" / "ab"
    folder.mkdir(parents=True)
    key = hashlib.sha256(b"https://example.org/x").hexdigest()
    old = [folder / f"{key}.meta.json", folder / f"{key}.body.gz", folder / f"{key}.body.gz.12.34.tmp"]
    for path in old:
        path.write_bytes(b"{}")
    kept = [tmp_path / "http_cache" / "cd" / "notes.txt", tmp_path / "http_cache" / "README"]
    for path in kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("mine")
    elsewhere = tmp_path / "elsewhere"   # a folder named like ours but linked: not followed
    elsewhere.mkdir()
    (elsewhere / f"{key}.meta.json").write_bytes(b"{}")
    (tmp_path / "http_cache" / "ef").symlink_to(elsewhere)
    ValidatorCache(tmp_path / "http_cache").flush()
    assert not folder.exists() and all(path.read_text() == "mine" for path in kept)
    assert (elsewhere / f"{key}.meta.json").exists()


def test_readers_see_entries_while_the_writer_adds_more(tmp_path):
    """The page threads read validators while the writer thread commits rows (WAL)."""
    cache = ValidatorCache(tmp_path / "http_cache")
    urls = [f"https://example.org/page/{i}" for i in range(300)]
    errors = []

    def read_all():
        try:
            for _ in range(3):
                for url in urls:
                    meta = cache.validators(url)
                    assert meta is None or meta["url"] == url
        except Exception as exc:   # reported below, from the main thread
            errors.append(exc)

    readers = [threading.Thread(target=read_all) for _ in range(3)]
    for reader in readers:
        reader.start()
    for i, url in enumerate(urls):
        cache.put(url, f'"e{i}"', None, f"body {i}".encode())
    for reader in readers:
        reader.join()
    cache.flush()
    later = ValidatorCache(tmp_path / "http_cache")   # the next run
    assert not errors
    assert all(later.get(url) == ({"url": url, "etag": f'"e{i}"', "last_modified": None,
                                   "sha256": hashlib.sha256(f"body {i}".encode()).hexdigest()}, f"body {i}".encode())
               for i, url in enumerate(urls))



def test_a_cache_of_the_one_table_layout_is_carried_over(tmp_path):
    """Before session 31 a row held an entry's validators and its body together (`validators`):
    such a file's entries are moved to the tables of validators and bodies once, and answered."""
    folder = tmp_path / "http_cache"
    folder.mkdir()
    url, body = "https://example.org/page", b'{"results": []}'
    meta = {"url": url, "etag": '"e1"', "last_modified": None, "sha256": hashlib.sha256(body).hexdigest()}
    with sqlite3.connect(folder / ValidatorCache.CACHE_FILE) as old:
        old.execute("CREATE TABLE validators (url_key TEXT PRIMARY KEY, meta TEXT NOT NULL, body BLOB NOT NULL)")
        old.execute("INSERT INTO validators VALUES (?, ?, ?)",
                    (hashlib.sha256(url.encode()).hexdigest(), json.dumps(meta), gzip.compress(body)))
    old.close()
    cache = ValidatorCache(folder)
    assert cache.get(url) == (meta, body)
    cache.revalidate(url, '"e2"', None, meta["sha256"])   # new validators, the body kept
    cache.flush()
    again = ValidatorCache(folder)
    assert again.get(url) == ({**meta, "etag": '"e2"'}, body)
    with sqlite3.connect(folder / ValidatorCache.CACHE_FILE) as check:
        tables = {row[0] for row in check.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    check.close()
    assert tables == {"entries", "bodies"}

def test_a_file_held_by_another_process_costs_one_wait_not_one_a_page(tmp_path, monkeypatch, caplog):
    """Another harvest on the same data/ folder stopped inside its write (Ctrl-Z): the writer
    waits BUSY_TIMEOUT once, then writes no more this run, instead of once for every entry
    (30 s x 1,000 pages at the harvest's end). Counted, not timed: each write tried on the held
    file is one wait."""
    monkeypatch.setattr(ValidatorCache, "BUSY_TIMEOUT", 0.5)
    cache = ValidatorCache(tmp_path / "http_cache")
    cache.put("https://example.org/first", '"f"', None, b"first")
    cache.flush()
    tried = []   # the writes that went to the file (SQLite traces each statement run, not each retry)
    cache._writer_connection.set_trace_callback(lambda sql: sql.startswith("INSERT") and tried.append(sql))
    other = sqlite3.connect(tmp_path / "http_cache" / ValidatorCache.CACHE_FILE, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")   # (a lock is a lock between connections of one process too)
    try:
        with caplog.at_level(logging.WARNING, logger="civicat.http"):
            for i in range(10):
                cache.put(f"https://example.org/page/{i}", f'"e{i}"', None, f"body {i}".encode())
            assert cache.validators("https://example.org/first")["etag"] == '"f"'
            cache.flush()
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert len(tried) == 1, tried   # the first entry waited and failed; the other nine were not tried
    assert caplog.text.count("could not write the HTTP cache") == 1 and "locked" in caplog.text
    assert not cache._pending   # nothing held in memory for entries never written


def test_a_new_file_another_connection_is_creating_is_waited_for(tmp_path, caplog):
    """SQLite refuses the switch to WAL at once, without its busy timeout, while another
    connection writes the still new file (two harvests starting together on a new data/ folder)."""
    folder = tmp_path / "http_cache"
    folder.mkdir()
    other = sqlite3.connect(folder / ValidatorCache.CACHE_FILE, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE IF NOT EXISTS validators (url_key TEXT PRIMARY KEY, meta TEXT NOT NULL, "
                  "body BLOB NOT NULL)")
    release = threading.Timer(0.3, other.execute, ("COMMIT",))
    release.start()
    cache = ValidatorCache(folder)
    with caplog.at_level(logging.WARNING, logger="civicat.http"):
        cache.put("https://example.org/a", '"a"', None, b"body")
        cache.flush()
    release.join()
    other.close()
    assert "could not" not in caplog.text
    assert ValidatorCache(folder).validators("https://example.org/a")["etag"] == '"a"'


def test_page_threads_never_wait_for_a_file_another_process_holds(tmp_path, monkeypatch, caplog):
    """Another harvest stopped (Ctrl-Z) while creating the new file, between its switch to WAL
    and its table: the page threads give up reading within READ_BUSY_TIMEOUT, once for the run,
    and never wait behind the writer thread's own wait of BUSY_TIMEOUT. Not timed: the writer's
    wait outlasts the test until the file is let go, and the page threads' tries are counted."""
    monkeypatch.setattr(ValidatorCache, "BUSY_TIMEOUT", 60.0)
    monkeypatch.setattr(ValidatorCache, "READ_BUSY_TIMEOUT", 0.2)
    opened = []   # the busy timeout of each opening of the file: 60 the writer's, 0.2 a page thread's
    open_file = ValidatorCache._open
    monkeypatch.setattr(ValidatorCache, "_open", lambda self, busy_timeout: (
        opened.append(busy_timeout), open_file(self, busy_timeout))[1])
    folder = tmp_path / "http_cache"
    folder.mkdir()
    other = sqlite3.connect(folder / ValidatorCache.CACHE_FILE, isolation_level=None)
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("BEGIN IMMEDIATE")
    try:
        cache = ValidatorCache(folder)
        with caplog.at_level(logging.WARNING, logger="civicat.http"):
            cache.put("https://example.org/a", '"a"', None, b"body")   # the writer thread starts its wait
            writer_done = cache._writer.submit(lambda: None)
            deadline = time.monotonic() + 30
            while 60.0 not in opened and time.monotonic() < deadline:
                time.sleep(0.01)
            for page in range(10):
                assert cache.validators(f"https://example.org/{page}") is None
            assert opened.count(0.2) == 1, opened   # one try, not ten
            assert not writer_done.done()           # answered while the writer still waits for the file
            assert cache.validators("https://example.org/a")["etag"] == '"a"'   # (from memory, until written)
    finally:
        other.execute("ROLLBACK")
        other.close()
    cache.flush()   # the writer's wait ends with the file let go: the entry is written
    assert caplog.text.count("could not read the HTTP cache") == 1 and "could not write" not in caplog.text
    assert ValidatorCache(folder).validators("https://example.org/a")["etag"] == '"a"'


def test_an_entry_forgotten_is_not_read_from_disk_before_its_removal_is_written(tmp_path):
    """The write of an entry may reach the disk after forget() took it out of memory and
    before the removal is written (the writer thread busy meanwhile): the row on disk must
    not answer in between (it did, now and then, under load)."""
    import threading

    cache = ValidatorCache(tmp_path)
    cache.put("https://p.example/a", None, "Mon, 15 Jan 2024 12:00:00 GMT", b'{"a": 1}')
    written, go_on = threading.Event(), threading.Event()
    cache._writer.submit(lambda: (written.set(), go_on.wait(30)))   # holds the writer before the removal
    cache.forget("https://p.example/a")
    try:
        assert written.wait(30)   # the entry's row is on disk, its removal not yet
        assert cache.validators("https://p.example/a") is None and cache.get("https://p.example/a") is None
    finally:
        go_on.set()
    cache.flush()
    assert cache.get("https://p.example/a") is None
    cache.put("https://p.example/a", None, "Mon, 15 Jan 2024 12:00:00 GMT", b'{"a": 2}')   # put again: answers
    cache.flush()
    assert cache.get("https://p.example/a")[1] == b'{"a": 2}'


def test_an_entry_forgotten_is_gone_whether_written_yet_or_not(tmp_path):
    """forget() after put(): the removal follows the write (one writer thread), so neither
    the entry still in memory nor the one on disk answers; other entries stay."""
    cache = ValidatorCache(tmp_path)
    cache.put("https://p.example/a", None, "Mon, 15 Jan 2024 12:00:00 GMT", b'{"a": 1}')
    cache.put("https://p.example/b", None, "Mon, 15 Jan 2024 12:00:00 GMT", b'{"b": 1}')
    cache.forget("https://p.example/a")      # (maybe before the write of it)
    assert cache.get("https://p.example/a") is None
    cache.flush()
    assert cache.get("https://p.example/a") is None and cache.validators("https://p.example/a") is None
    assert cache.get("https://p.example/b")[1] == b'{"b": 1}'
    cache.put("https://p.example/a", None, "Tue, 16 Jan 2024 12:00:00 GMT", b'{"a": 2}')   # asked again later
    cache.flush()
    assert cache.get("https://p.example/a")[1] == b'{"a": 2}'


def test_a_spooled_entry_written_leaves_a_later_one_of_its_url_pending(tmp_path):
    """Spooled bodies are put without their bytes (body None): the write of the first must not
    take the second, still unwritten, out of memory (nor fail when the entry was forgotten)."""
    cache = ValidatorCache(tmp_path)
    url = "https://p.example/data.json"
    first, second = b'{"dataset": [1]}', b'{"dataset": [2]}'
    before_first, before_second = threading.Event(), threading.Event()
    cache._writer.submit(before_first.wait, 10)
    cache.put(url, '"a"', None, None, hashlib.sha256(first).hexdigest(), gzip.compress(first))
    cache._writer.submit(before_second.wait, 10)
    cache.put(url, '"b"', None, None, hashlib.sha256(second).hexdigest(), gzip.compress(second))
    before_first.set()
    deadline = time.monotonic() + 10
    while cache._read("SELECT meta FROM entries WHERE url_key = ?", url) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cache.validators(url)["etag"] == '"b"'    # still the later one, though the earlier is on disk
    before_second.set()
    cache.flush()
    assert cache.validators(url)["etag"] == '"b"'
    assert cache.body(url, cache.validators(url)) == second


# a cache written under a file size limit (`ulimit -f`): SQLite says "disk I/O error" for its write past it
CACHE_UNDER_A_FILE_SIZE_LIMIT = """
import logging, os, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stdout)
from harvester.http_cache import ValidatorCache
cache = ValidatorCache(sys.argv[1])
cache.flush()   # (its file made before the limit)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
for i in range(40):
    cache.put(f"https://data.example.org/page/{i}", f'"{i}"', None, os.urandom(50_000))
cache.flush()
"""


def test_a_cache_write_past_the_file_size_limit_is_said_as_no_room_naming_the_cache(tmp_path):
    """SQLite says a write past `ulimit -f` (and a spent quota, and a failing disk) as "disk I/O
    error": the cache's warning said that, in SQLite's words. A write refused for want of room is
    said in civicat's, as any other (catalog.disk): the cache's file, why; once a run."""
    import subprocess
    import sys

    from tests.conftest import REPO

    limited = subprocess.run([sys.executable, "-c", CACHE_UNDER_A_FILE_SIZE_LIMIT, str(tmp_path / "cache"), "600000"],
                             capture_output=True, text=True, timeout=300, cwd=REPO, env={**os.environ, "PYTHONPATH": REPO})
    assert limited.returncode == 0, limited.stderr[-2000:]
    path = tmp_path / "cache" / ValidatorCache.CACHE_FILE
    assert limited.stdout.splitlines() == [
        f"could not write the HTTP cache: no room to write the HTTP cache ({path}): it would grow past the process's "
        "file size limit (`ulimit -f`) or the largest file its file system takes (OperationalError: disk I/O error); "
        "its entries cost a full request"], limited.stdout
