"""HttpClient against a local portal that really misbehaves (no mocked requests): retries, Retry-After,
budgets, pace, conditional requests and the validator cache."""
import functools
import gc
import gzip
import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
import requests

from harvester import __version__
from harvester.http import (HostUnavailable, HttpError, Interrupted, OverBudget, PermanentError, ResponseTooLarge,
                            TransientError, UnexpectedPayload, ValidatorCache)
from tests.conftest import fast_client
from tests.harvester.http.conftest import DOC, asked_in_a_thread, unbounded_wait_fails, get
from tests.portals.base import MAINTENANCE_PAGE, LocalPortal, RawBody, _Handler


@pytest.mark.parametrize("fault", [("status", 503), ("status", 500), ("status", 502), "reset", "html",
                                   "html_as_json", "truncated", "truncated_json", "invalid_json"])
def test_transient_faults_are_retried_then_succeed(portal, fault):
    client = fast_client()
    portal.inject("/doc", fault, times=2)
    assert get(client, portal).data == DOC
    assert client.stats.retries == 2 and client.stats.requests == 3


@pytest.mark.parametrize("fault, message", [("html", "HTML page instead of JSON"), ("invalid_json", "invalid or truncated JSON"),
                                            (("status", 503), "HTTP 503"), ("truncated", "cut short")])
def test_persistent_faults_fail_after_bounded_attempts(portal, fault, message):
    client = fast_client(max_attempts=3)
    portal.inject("/doc", fault, times=10)
    with pytest.raises(TransientError, match=message):
        get(client, portal)
    assert portal.hits["/doc"] == 3


def waits_asked(client, monkeypatch) -> list[float]:
    """The waits `client` (and its portals' clients) asks for, each still waited: all go
    through the run's stop event (the host's pace and Retry-After hold, the retries' backoff),
    which ends them when the run stops."""
    asked, wait = [], client._stop.wait

    def recorded(seconds=None):
        asked.append(seconds)
        return wait(seconds)
    monkeypatch.setattr(client._stop, "wait", recorded)
    return asked


def stopped_pace_clock(client, portal) -> None:
    """The pace of `portal`'s host read a clock that stands still: each request's turn is then
    exactly `interval` after the one before it (or the end of a hold), not less the time the
    machine took between them (which varies with its load), and the waits asked are exact."""
    client._pace(portal.url.split("//")[1]).clock = lambda: 0.0


def test_retry_after_is_honoured(portal, monkeypatch):
    client = fast_client()
    waits = waits_asked(client, monkeypatch)
    portal.inject("/doc", ("retry_after", 429, 1))
    assert get(client, portal).data == DOC
    assert waits[0] == 1.0 and client.stats.retries == 1   # the second asked, not the backoff's 0.01-0.05


def outcome(call, *args, **kwargs):
    """What `call` raised, or None. Interrupted and OverBudget are KeyboardInterrupts: caught
    here, where pytest would stop the whole session on one."""
    try:
        call(*args, **kwargs)
    except (Exception, KeyboardInterrupt) as exc:
        return exc
    return None


def test_retry_after_is_capped(portal, caplog):
    client = fast_client(max_retry_after=0.2)
    portal.inject("/doc", ("retry_after", 429, 3600))
    with caplog.at_level(logging.WARNING, logger="civicat.http"), unbounded_wait_fails(client):
        assert outcome(get, client, portal) is None   # neither the retry nor the host's hold waited the hour
    assert "retrying in 0.2s after attempt 1" in caplog.text and portal.hits["/doc"] == 2


def test_a_cancelled_client_stops_a_retry_wait_and_makes_no_more_requests(portal):
    """Ctrl-C (HttpClient.cancel, from another thread): a request waiting out a long
    Retry-After gives up at once, and no request of any portal's client is made after."""
    client = fast_client(max_retry_after=60)
    other_portal = client.for_portal(type("P", (), {"host": "127.0.0.1:1", "timeout": 5.0, "max_concurrency": 1})())
    portal.inject("/doc", ("retry_after", 503, 60), times=10)
    portal.on_request = lambda path, query: threading.Timer(0.3, client.cancel).start()
    failures = []
    waiting = threading.Thread(target=lambda: failures.append(outcome(get, client, portal)))
    waiting.start()
    waiting.join(60)   # the portal's 60 s wait was cut short (a failure ends here after 60 s)
    assert not waiting.is_alive() and isinstance(failures[0], Interrupted), failures
    assert "interrupted" in str(failures[0]) and portal.hits["/doc"] == 1
    portal.on_request = None
    with pytest.raises(Interrupted):
        get(other_portal, portal)
    assert portal.hits["/doc"] == 1 and client.cancelled


def test_a_portal_s_time_budget_cuts_its_retry_wait_and_then_every_request_of_that_portal_alone(portal, monkeypatch):
    """max_minutes (HttpClient.limit_to): a wait between attempts ends with the budget, no request of that
    portal's client is made after it, and the run's other clients go on (no Ctrl-C)."""
    client = fast_client(max_attempts=10, backoff_initial=3600, backoff_max=3600)
    limited = client.for_portal(type("P", (), {"host": portal.url.split("//")[1], "timeout": 5.0,
                                               "max_concurrency": 1})())
    limited.limit_to(0.01)   # 0.6 s
    portal.inject("/doc", ("status", 503), times=1)
    waits = waits_asked(client, monkeypatch)
    with unbounded_wait_fails(client):   # a wait of the hour's backoff would end Interrupted
        stopped = outcome(get, limited, portal)
    assert isinstance(stopped, OverBudget), stopped
    assert re.search(r"over 0\.01 minutes \(its max_minutes\); not requested: .*/doc", str(stopped))
    assert len(waits) == 1 and 0 <= waits[0] <= 0.6 and portal.hits["/doc"] == 1   # the backoff cut to the budget
    assert get(client, portal).data == DOC and not client.cancelled      # the others' requests are made
    limited.limit_to(None)
    assert get(limited, portal).data == DOC                              # lifted (a records pull's own bounds)
    assert portal.hits["/doc"] == 3


def test_a_retry_after_hold_on_the_host_ends_with_the_portal_s_time_budget(portal):
    """A 429's Retry-After holds back every request to its host (another portal's on the same
    host, another thread's of the same portal): a request of a portal whose budget ends
    during the hold fails OverBudget when it ends, not after the hold (up to 120 s more)."""
    client = fast_client(max_attempts=1, max_retry_after=3600)
    limited = client.for_portal(type("P", (), {"host": portal.url.split("//")[1], "timeout": 5.0,
                                               "max_concurrency": 1})())
    portal.inject("/doc", ("retry_after", 429, 3600))
    with pytest.raises(TransientError, match="HTTP 429"):
        get(client, portal)                     # the host is held for an hour
    limited.limit_to(0.01)                      # 0.6 s
    with unbounded_wait_fails(client):               # a wait out of the hold would end Interrupted
        stopped = outcome(get, limited, portal)
    assert isinstance(stopped, OverBudget) and "max_minutes" in str(stopped), stopped
    assert portal.hits["/doc"] == 1

def test_total_retry_time_is_bounded(portal):
    client = fast_client(max_attempts=100, max_retry_seconds=0.5, backoff_initial=0.2, backoff_max=0.2)
    portal.inject("/doc", ("status", 503), times=100)
    with pytest.raises(TransientError, match="HTTP 503"):
        get(client, portal)
    # waits of at least 0.2 s between attempts leave room for 4 in 0.5 s (fewer under load), not 100
    assert portal.hits["/doc"] <= 4, portal.hits["/doc"]


def test_client_errors_are_not_retried(portal):
    client = fast_client()
    with pytest.raises(PermanentError) as info:
        get(client, portal, "/missing")
    assert info.value.status == 404 and portal.hits["/missing"] == 1


def test_slow_response_times_out(portal):
    client = fast_client(timeout=0.3, max_attempts=2)
    portal.inject("/doc", ("slow", 1.0), times=2)
    with pytest.raises(TransientError, match="timed out"):
        get(client, portal)


def test_unexpected_shape_is_retried_then_raised(portal):
    client = fast_client(max_attempts=2)
    with pytest.raises(UnexpectedPayload, match="needs a list"):
        get(client, portal, expect=lambda d: None if isinstance(d, list) else "needs a list")
    assert portal.hits["/doc"] == 2


def test_headers_user_agent_and_gzip(portal):
    client = fast_client()
    get(client, portal, headers={"X-App-Token": "secret"})
    headers = portal.requests[-1][2]
    assert headers["User-Agent"].startswith(f"civicat/{__version__}")
    assert "gzip" in headers["Accept-Encoding"] and headers["X-App-Token"] == "secret"


def test_conditional_requests_reuse_the_remembered_body(portal, tmp_path):
    client = fast_client(tmp_path)
    first = get(client, portal, conditional=True)
    client.cache.flush()                                            # as a run ends
    second = get(fast_client(tmp_path), portal, conditional=True)  # a later run, same cache
    assert not first.not_modified and second.not_modified and second.data == DOC
    assert "If-None-Match" in portal.requests[-1][2]
    DOC2 = {**DOC, "resultSetSize": 201}
    portal.serve_json("/doc", DOC2)
    assert get(client, portal, conditional=True).data == DOC2



class HeaderNamesInOtherCase(LocalPortal):
    """Sends each header name as Go's net/http writes it (`Etag`, `Content-type`...):
    names are case-insensitive (RFC 9110, 5.1), and servers and proxies vary."""

    def _wsgi(self, environ, start_response):
        def renamed(status, headers, exc_info=None):
            return start_response(status, [(name.capitalize(), value) for name, value in headers], exc_info)
        return super()._wsgi(environ, renamed)


def test_validators_and_content_type_are_read_whatever_the_case_of_their_names(tmp_path):
    """`Etag` and `Last-modified` were not read (a dict of the headers, case-sensitive): no
    request to such a server was ever conditional, every unchanged night read in full."""
    with HeaderNamesInOtherCase() as portal:
        portal.serve_json("/doc", DOC)
        client = fast_client(tmp_path)
        get(client, portal, conditional=True)
        client.cache.flush()
        again = get(fast_client(tmp_path), portal, conditional=True)
        assert again.not_modified and again.data == DOC
        assert portal.requests[-1][2].get("If-None-Match", "").startswith('"')
        portal.static["/page"] = RawBody(b"<p>down</p>", "text/html")
        with pytest.raises(TransientError, match=r"HTML page instead of JSON \(Content-Type text/html\)"):
            get(fast_client(max_attempts=1), portal, "/page")


def requests_together(client, portal, count: int) -> list:
    """`count` GETs of the portal's document, each in a thread of its own: what each gave."""
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(outcome(get, client, portal))) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return answers


class InFlight(LocalPortal):
    """Counts the requests it is answering at once (`most`)."""

    def __init__(self) -> None:
        super().__init__()
        self.answering = self.most = 0

    def _wsgi(self, environ, start_response):
        with self._lock:
            self.answering += 1
            self.most = max(self.most, self.answering)
        try:
            return super()._wsgi(environ, start_response)
        finally:
            with self._lock:
                self.answering -= 1


def test_per_host_concurrency_limit():
    with InFlight() as portal:
        portal.serve_json("/doc", DOC)
        client = fast_client()
        client.set_host_limit(portal.url.split("//")[1], 1)
        portal.inject("/doc", ("slow", 0.3), times=3)
        assert requests_together(client, portal, 3) == [None] * 3
        assert portal.most == 1 and portal.hits["/doc"] == 3   # served one after another


def test_the_portals_requests_per_second_are_kept_by_every_thread(portal, monkeypatch):
    from tests.conftest import portal_config

    client = fast_client().for_portal(portal_config("city", "dcat-us", portal.url, requests_per_second=20))
    stopped_pace_clock(client, portal)
    waits = waits_asked(client, monkeypatch)
    assert requests_together(client, portal, 8) == [None] * 8 and portal.hits["/doc"] == 8
    # 20 a second, not 8 at once: the first at once, each other one a twentieth of a second after the one before
    assert sorted(waits) == pytest.approx([k / 20 for k in range(1, 8)])


def test_a_retry_after_holds_back_every_request_to_that_host(portal, monkeypatch):
    """Not only the retry of the request that met it: another thread's request to the host
    waits out the portal's Retry-After too."""
    client = fast_client(max_attempts=1, max_retry_after=5)
    stopped_pace_clock(client, portal)
    waits = waits_asked(client, monkeypatch)
    portal.inject("/doc", ("retry_after", 429, 1))
    with pytest.raises(TransientError, match="HTTP 429"):
        get(client, portal)                  # (not retried: the hold alone is left of it)
    assert waits == [] and requests_together(client, portal, 1) == [None]
    assert waits == [1.0] and portal.hits["/doc"] == 2


def test_retry_after_http_date():
    from harvester.http.client import _retry_after
    assert _retry_after("5") == 5.0
    assert 0 <= _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert _retry_after("soon") is None


def test_a_retry_after_date_in_the_zone_of_unknown_offset_is_read_as_utc_whatever_the_machine_s_zone(monkeypatch):
    """RFC 5322's "-0000" (a UTC time of unknown local offset) gives email.utils a naive datetime,
    which `.timestamp()` read in the machine's own zone: in New York a minute's wait became five hours
    (cut to max_retry_after)."""
    from harvester.http.client import _retry_after
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        in_a_minute = time.strftime("%a, %d %b %Y %H:%M:%S -0000", time.gmtime(time.time() + 60))
        assert 50 <= _retry_after(in_a_minute) <= 61
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_redirect_on_the_same_host_is_followed_once_a_hop_and_a_cookie_set_is_sent_back():
    """Requests are sent by the session's adapter without Session.request (HttpClient._send):
    still as requests sends them: a redirect is followed, each hop asked once, the app token
    kept on the portal's own host; a cookie the portal sets goes back with its later requests."""
    class Redirecting(LocalPortal):
        def _wsgi(self, environ, start_response):
            if environ["PATH_INFO"] == "/moved":
                self.requests.append(("/moved", {}, {"Cookie": environ.get("HTTP_COOKIE")}))
                start_response("301 Moved Permanently", [("Location", "/doc"), ("Content-Length", "0"),
                                                         ("Set-Cookie", "lb=node-2; Path=/")])
                return [b""]
            return super()._wsgi(environ, start_response)

    with Redirecting() as origin:
        origin.serve_json("/doc", DOC)
        client = fast_client()
        response = client.get_json(origin.url + "/moved", headers={"X-App-Token": "secret"})
        assert response.data == DOC and [path for path, _, _ in origin.requests] == ["/moved", "/doc"]
        assert origin.requests[-1][2]["X-App-Token"] == "secret"
        client.get_json(origin.url + "/moved")
        assert origin.requests[-2][2]["Cookie"] == "lb=node-2" and "lb=node-2" in origin.requests[-1][2]["Cookie"]


def test_a_host_that_keeps_failing_is_not_asked_again_this_run(portal):
    client = fast_client(max_attempts=2, host_failure_limit=2)
    portal.inject("/doc", ("status", 503), times=100)
    for _ in range(2):
        with pytest.raises(TransientError):
            get(client, portal)
    hits = portal.hits["/doc"]
    with pytest.raises(HostUnavailable, match="not asked again"):
        get(client, portal)
    assert portal.hits["/doc"] == hits == 4


def cached_bodies(tmp_path) -> dict[str, bytes]:
    """The cache's stored bodies by URL, read from its file as a next run would."""
    with sqlite3.connect(tmp_path / "http_cache" / ValidatorCache.CACHE_FILE) as connection:
        return {json.loads(meta)["url"]: body for meta, body in connection.execute(
            "SELECT meta, body FROM entries JOIN bodies USING (url_key)")}


def set_cached_body(tmp_path, body: bytes) -> None:
    connection = sqlite3.connect(tmp_path / "http_cache" / ValidatorCache.CACHE_FILE)
    with connection:
        connection.execute("UPDATE bodies SET body = ?", (body,))
    connection.close()


def test_the_cache_keeps_the_gzip_body_the_portal_sent(portal, tmp_path):
    """Not compressed a second time: the file is the portal's own gzip stream, and a 304
    on the next run is answered from it."""
    sent = requests.get(portal.url + "/doc", headers={"Accept-Encoding": "gzip"}, stream=True)
    assert sent.headers["Content-Encoding"] == "gzip"
    sent_gzip = sent.raw.read(decode_content=False)
    client = fast_client(tmp_path)
    first = get(client, portal, conditional=True)
    assert first.data == DOC and first.digest == hashlib.sha256(gzip.decompress(sent_gzip)).hexdigest()
    client.cache.flush()
    assert cached_bodies(tmp_path) == {portal.url + "/doc": sent_gzip}
    again = get(fast_client(tmp_path), portal, conditional=True)
    assert again.not_modified and again.data == DOC and again.digest == first.digest


def test_a_damaged_cached_body_is_asked_for_plainly(portal, tmp_path):
    """A deflate stream damaged on disk (zlib's error, not a CRC mismatch) is no body: the
    page is fetched again rather than the portal failing every night on its 304."""
    client = fast_client(tmp_path)
    first = get(client, portal, conditional=True)
    client.cache.flush()
    [stored] = cached_bodies(tmp_path).values()
    damaged = bytearray(stored)
    damaged[12] ^= 0xFF
    set_cached_body(tmp_path, bytes(damaged))
    again = get(fast_client(tmp_path), portal, conditional=True)
    assert again.data == DOC and again.digest == first.digest


def test_a_304_for_a_body_the_caller_holds_is_answered_without_reading_it(portal, tmp_path):
    client = fast_client(tmp_path)
    first = get(client, portal, conditional=True)
    client.cache.flush()
    set_cached_body(tmp_path, b"")          # the remembered body is gone: only its validators are left
    unread = get(client, portal, conditional=True, unread=first.digest)
    assert unread.not_modified and unread.data is None and unread.digest == first.digest
    assert client.stats.requests == 2
    again = get(client, portal, conditional=True)   # the body needed, and not there: asked plainly
    assert not again.not_modified and again.data == DOC and client.stats.requests == 4
    assert "If-None-Match" in portal.requests[-2][2] and "If-None-Match" not in portal.requests[-1][2]


def test_a_speculative_request_is_made_once_and_not_held_against_the_host(portal):
    client = fast_client(max_attempts=3, host_failure_limit=1)
    portal.inject("/doc", ("status", 503), times=1)
    with client.speculative(), pytest.raises(TransientError, match="HTTP 503"):
        get(client, portal)
    assert client.stats.requests == 1 and client.stats.retries == 0
    assert get(client, portal).data == DOC           # the host is still asked


def test_the_proxy_of_the_environment_is_used(portal, monkeypatch):
    """Read once a host (not from the whole environment on every request), but read."""
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", portal.url)
    client = fast_client()
    assert client.get_json("http://portal.invalid/doc").data == DOC   # asked of the proxy, never resolved
    assert portal.requests[-1][0] == "/doc"


def test_a_cache_file_that_is_no_database_is_started_afresh(portal, tmp_path, caplog):
    (tmp_path / "http_cache").mkdir()
    (tmp_path / "http_cache" / ValidatorCache.CACHE_FILE).write_bytes(b"<html>not a cache</html>" * 200)
    client = fast_client(tmp_path)
    with caplog.at_level(logging.WARNING, logger="civicat.http"):
        assert get(client, portal, conditional=True).data == DOC
    client.cache.flush()
    assert "damaged" in caplog.text and list(cached_bodies(tmp_path)) == [portal.url + "/doc"]
    assert get(fast_client(tmp_path), portal, conditional=True).not_modified   # and used by the next run


def test_a_cache_that_cannot_be_opened_warns_once_and_loses_nothing(portal, tmp_path, caplog):
    """A path the cache cannot open (here a folder in its file's place) is not removed, and
    every page is still fetched: one warning for reading and one for writing, not one a page."""
    (tmp_path / "http_cache" / ValidatorCache.CACHE_FILE).mkdir(parents=True)
    client = fast_client(tmp_path)
    with caplog.at_level(logging.WARNING, logger="civicat.http"):
        for path in ("/doc", "/doc?page=2", "/doc?page=3"):
            assert get(client, portal, path, conditional=True).data == DOC
        client.cache.flush()
    assert (tmp_path / "http_cache" / ValidatorCache.CACHE_FILE).is_dir()
    assert caplog.text.count("could not read the HTTP cache") == 1
    assert caplog.text.count("could not write the HTTP cache") == 1


def damage_pages(path, pages) -> None:
    """Pages of the file overwritten with garbage (a bad sector), the header page left whole:
    the file still opens, and the damage shows only when a row on those pages is read or written."""
    connection = sqlite3.connect(path)
    page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    connection.close()
    with open(path, "r+b") as file:
        for page in pages:
            file.seek((page - 1) * page_size)
            file.write(b"\xff" * page_size)


def test_a_cache_found_damaged_while_in_use_is_started_afresh(portal, tmp_path, caplog):
    """Damage past the first page is met by a query, not when the file is opened: the cache
    is started afresh then too, not left to cost full requests night after night."""
    cache = ValidatorCache(tmp_path / "http_cache")
    for i in range(200):
        cache.put(f"https://example.org/page/{i}", f'"e{i}"', None, bytes(3000))
    cache.flush()
    del cache   # (closed as a run's end closes it: the WAL is checkpointed into the file)
    gc.collect()
    damage_pages(tmp_path / "http_cache" / ValidatorCache.CACHE_FILE, (2, 3))
    client = fast_client(tmp_path)
    with caplog.at_level(logging.WARNING, logger="civicat.http"):
        assert get(client, portal, conditional=True).data == DOC
        client.cache.flush()
    assert "damaged" in caplog.text
    assert list(cached_bodies(tmp_path)) == [portal.url + "/doc"]
    assert get(fast_client(tmp_path), portal, conditional=True).not_modified   # the next run asks conditionally


@pytest.mark.parametrize("damage", ["another body", "cut short", "no gzip"])
def test_a_large_body_answered_304_is_decoded_from_the_cache_into_a_temporary_file_or_refused(
        portal, tmp_path, streamed_from_1_mb, spooled_bodies, damage):
    """A large body answered 304 was read whole from the cache and decompressed whole (a 33 MB
    data.json listed at 2.6 times its size): it is now decoded from the stored gzip as it is read,
    into a temporary file, closed once read. A stored body that is not the one its digest names
    (another body, a gzip cut short, no gzip) is refused, and the page asked again plainly."""
    from harvester.http import capped_json
    body = json.dumps({"results": [{"id": i, "text": "x" * 60} for i in range(30_000)]}).encode()
    assert len(body) > 2 << 20
    portal.static["/big.json"] = RawBody(body, "application/json")
    parse, plain = capped_json({"results": 5}), {"Accept-Encoding": "identity"}
    tonight = fast_client(tmp_path)
    first = get(tonight, portal, "/big.json", parse=parse, conditional=True, headers=plain)
    tonight.cache.flush()
    again = get(fast_client(tmp_path), portal, "/big.json", parse=parse, conditional=True, headers=plain)
    assert again.not_modified and again.data == first.data and again.digest == first.digest
    assert len(spooled_bodies) == 2 and all(spooled.closed for spooled in spooled_bodies)   # (the 200's, the 304's)
    stored = gzip.compress(body, compresslevel=1)
    set_cached_body(tmp_path, {"another body": gzip.compress(body.replace(b'"id": 7,', b'"id": 8,')),
                               "cut short": stored[:len(stored) // 2], "no gzip": body}[damage])
    client = fast_client(tmp_path)
    asked = get(client, portal, "/big.json", parse=parse, conditional=True, headers=plain)
    assert not asked.not_modified and asked.data == first.data and client.stats.requests == 2
    assert "If-None-Match" in portal.requests[-2][2] and "If-None-Match" not in portal.requests[-1][2]
    assert all(spooled.closed for spooled in spooled_bodies)


@pytest.mark.parametrize("encoding", ["gzip", "identity"])
def test_a_large_bodys_digest_is_taken_as_it_is_written_not_read_again(portal, tmp_path, streamed_from_1_mb,
                                                                       spooled_bodies, monkeypatch, encoding):
    """A large body (a data.json of 100 MB and more) is written to a temporary file as it arrives;
    its digest, which tells the next night the same document, is taken as it is written: the file
    is not read through once more to hash it. Unchanged, the same body answered 200 to a caller
    holding that digest (`unread`) is neither parsed nor checked."""
    import harvester.http.bodies
    from harvester.http import capped_json
    body = json.dumps({"results": [{"id": i, "text": "x" * 60} for i in range(30_000)]}).encode()
    assert len(body) > 2 << 20
    portal.static["/big.json"] = RawBody(body, "application/json")
    portal.validators = "none"
    read_whole = []
    pieces = harvester.http.bodies._SpooledBody.pieces
    monkeypatch.setattr(harvester.http.bodies._SpooledBody, "pieces",
                        lambda self, *args: read_whole.append(1) or pieces(self, *args))
    parsed = []
    parse = capped_json({"results": 5})
    counted = lambda *args: parsed.append(1) or parse(*args)   # noqa: E731
    counted.reads_spooled = True
    client = fast_client(tmp_path)
    first = get(client, portal, "/big.json", parse=counted, conditional=True, headers={"Accept-Encoding": encoding})
    assert first.digest == hashlib.sha256(body).hexdigest() and len(spooled_bodies) == 1 and read_whole == []
    again = client.get_json(portal.url + "/big.json", parse=counted, conditional=True, unread=first.digest,
                            headers={"Accept-Encoding": encoding})
    assert (again.status, again.data, again.digest, len(parsed)) == (200, None, first.digest, 1)
    assert read_whole == [] and all(spooled.closed for spooled in spooled_bodies)
    portal.static["/big.json"] = RawBody(body.replace(b'"id": 7,', b'"id": 8,'), "application/json")
    changed = client.get_json(portal.url + "/big.json", parse=counted, conditional=True, unread=first.digest)
    assert changed.data is not None and changed.digest != first.digest and len(parsed) == 2


def test_a_spooled_body_asked_again_before_the_cache_writes_it_is_answered_by_its_304(portal, tmp_path,
                                                                                      streamed_from_1_mb):
    """A body read into a temporary file goes to the cache gzip-encoded only, its entry pending
    (the validators, no body in memory) until the writer thread has written it: asked again
    meanwhile, its 304 found no body and the URL was asked again plainly, a full request more.
    The 304 now waits for the write and reads the body from the cache."""
    from harvester.http import capped_json
    document = {"results": [{"id": i, "text": "x" * 100} for i in range(20_000)]}
    portal.serve_json("/large", document)
    client = fast_client(tmp_path)
    parse = capped_json({"results": 5})
    held, release = threading.Event(), threading.Event()

    def hold_the_writer():
        held.set()
        release.wait(10)

    client.cache._writer.submit(hold_the_writer)   # the first answer's entry is written after it
    assert held.wait(10)
    first = get(client, portal, "/large", conditional=True, parse=parse)
    threading.Timer(0.3, release.set).start()   # the write goes on while the second request waits for it
    again = get(client, portal, "/large", conditional=True, parse=parse)
    assert again.not_modified and again.data == first.data == {"results": document["results"][:5]}
    assert client.stats.requests == 2 and portal.hits["/large"] == 2


# -- downloads: the request path every other request takes ------------------------------------

CSV = b"id,name\n1,a\n2,b\n"


def test_a_download_answered_429_holds_back_every_request_to_that_host(portal, tmp_path, monkeypatch):
    """A download's Retry-After was its own retry's wait only: the run's other requests to that
    host went on while the portal asked to wait. It holds the host as a page's 429 does: the
    request asked meanwhile waits the 2 s the portal asked for."""
    portal.static["/file.csv"] = RawBody(CSV)
    client = fast_client(max_attempts=1, max_retry_after=5)
    stopped_pace_clock(client, portal)
    waits = waits_asked(client, monkeypatch)
    portal.inject("/file.csv", ("retry_after", 429, 2))
    with pytest.raises(TransientError, match="HTTP 429") as refused:
        client.download(portal.url + "/file.csv", tmp_path / "file.csv")
    assert refused.value.retry_after == 2 and waits == []
    with unbounded_wait_fails(client):
        assert get(client, portal).data == DOC
    assert waits == [2.0] and portal.hits["/doc"] == 1


def test_a_download_s_time_bound_counts_from_its_request_not_from_the_host_s_hold(portal, tmp_path):
    """`max_seconds` counted from before the wait for the host's slot and pace: a download held
    back by a Retry-After (up to 120 s) longer than its bound failed at its first bytes."""
    portal.static["/file.csv"] = RawBody(CSV)
    client = fast_client(max_attempts=1, max_retry_after=5)
    portal.inject("/doc", ("retry_after", 429, 3))
    with pytest.raises(TransientError, match="HTTP 429"):
        get(client, portal)                   # the host is held for 3 s
    with unbounded_wait_fails(client):             # (2 s for a 16-byte file: room for any load)
        assert client.download(portal.url + "/file.csv", tmp_path / "file.csv", max_seconds=2) == len(CSV)
    assert (tmp_path / "file.csv").read_bytes() == CSV


def test_a_download_that_times_out_says_it_timed_out(portal, tmp_path):
    portal.static["/file.csv"] = RawBody(CSV)
    client = fast_client(timeout=0.3, max_attempts=1)
    portal.inject("/file.csv", ("slow", 1.0))
    with pytest.raises(TransientError, match=r"^timed out: ReadTimeout \("):
        client.download(portal.url + "/file.csv", tmp_path / "file.csv")


def test_a_download_to_a_host_given_up_is_refused_unasked(portal, tmp_path):
    """Downloads did not consult the hosts given up: a records pull asked a host the run knew
    down again, file after file, each with all its retries."""
    client = fast_client(max_attempts=1, host_failure_limit=2)
    portal.inject("/doc", ("status", 503), times=2)
    for _ in range(2):
        with pytest.raises(TransientError, match="HTTP 503"):
            get(client, portal)
    with pytest.raises(HostUnavailable, match=r"^127\.0\.0\.1:\d+ failed 2 requests in a row this run; not asked again"):
        client.download(portal.url + "/file.csv", tmp_path / "file.csv")
    assert portal.hits["/file.csv"] == 0 and client.stats.requests == 2
    assert not (tmp_path / "file.csv").exists()


def test_downloads_that_keep_failing_give_their_host_up_and_one_that_succeeds_clears_its_count(portal, tmp_path):
    portal.static["/file.csv"] = RawBody(CSV)
    client = fast_client(max_attempts=1, host_failure_limit=2)
    portal.inject("/file.csv", ("status", 503), times=1)
    with pytest.raises(TransientError, match="HTTP 503"):
        client.download(portal.url + "/file.csv", tmp_path / "file.csv")
    assert client.download(portal.url + "/file.csv", tmp_path / "file.csv") == len(CSV)   # (the count cleared)
    portal.inject("/file.csv", ("status", 503), times=2)
    for _ in range(2):
        with pytest.raises(TransientError, match="HTTP 503"):
            client.download(portal.url + "/file.csv", tmp_path / "file.csv")
    with pytest.raises(HostUnavailable, match="failed 2 requests in a row this run; not asked again"):
        get(client, portal)
    assert portal.hits["/doc"] == 0 and portal.hits["/file.csv"] == 4


def test_a_download_s_client_error_says_what_the_server_said(portal, tmp_path):
    client = fast_client()
    with pytest.raises(PermanentError, match=r'^HTTP 404: \{"code": "not_found", .*"No route for /missing\.csv"') as failed:
        client.download(portal.url + "/missing.csv", tmp_path / "file.csv")
    assert failed.value.status == 404 and portal.hits["/missing.csv"] == 1
    assert not (tmp_path / "file.csv").exists()


# -- what counts against a host: its own faults, not one file's ----------------------------------

class BodiesByHand(LocalPortal):
    """Answers the paths of `bodies` with their headers at once, then their body as `chunks`
    gives it (waiting, dripping), counting the bytes handed to the server to send (`handed`)."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: dict[str, tuple[list, Callable[[], Iterator[bytes]]]] = {}
        self.handed: Counter = Counter()

    def _wsgi(self, environ, start_response):
        path = environ["PATH_INFO"]
        if path not in self.bodies:
            return super()._wsgi(environ, start_response)
        with self._lock:
            self.hits[path] += 1
        headers, chunks = self.bodies[path]
        start_response("200 OK", headers)

        def body():
            yield b""   # (werkzeug sends the headers at the first write)
            for chunk in chunks():
                self.handed[path] += len(chunk)
                yield chunk
        return body()


class _Http10(_Handler):
    protocol_version = "HTTP/1.0"


class BodiesToTheClose(BodiesByHand):
    """BodiesByHand answering in HTTP/1.0: a body without a Content-Length ends as its socket closes."""

    handler = _Http10


def dripping(seconds: float, chunks: int = 20) -> Callable[[], Iterator[bytes]]:
    """A CSV body a line every `seconds`: a slow host, alive all along."""
    def lines():
        yield b"id,name\n"
        for i in range(chunks):
            time.sleep(seconds)
            yield b"%d,row\n" % i
    return lines


@pytest.mark.parametrize("fault", ["HTML page", "over the cap", "over max_seconds", "not found"])
def test_three_bad_files_of_a_host_leave_it_asked_and_its_next_file_fetched(tmp_path, fault):
    """A file's own faults (an HTML page in its place, a body over the cap, a slow but live
    download over its `max_seconds`, a 404) said nothing of its host, but the first three
    counted toward giving it up: three in a row stopped every later file of that portal."""
    with BodiesByHand() as portal:
        portal.static["/good.csv"] = RawBody(CSV)
        portal.static["/page.html"] = RawBody(MAINTENANCE_PAGE, "text/html")
        portal.static["/big.csv"] = RawBody(CSV * 100)
        portal.bodies["/slow.csv"] = ([("Content-Type", "text/csv")], dripping(0.5))
        path = {"HTML page": "/page.html", "over the cap": "/big.csv", "over max_seconds": "/slow.csv",
                "not found": "/missing.csv"}[fault]
        client = fast_client(max_attempts=1, host_failure_limit=3, max_download_bytes=len(CSV) * 10)
        for _ in range(3):
            with pytest.raises(HttpError) as failed:
                client.download(portal.url + path, tmp_path / "file.csv", max_seconds=0.2)
            assert not isinstance(failed.value, HostUnavailable), failed.value
        assert client.download(portal.url + "/good.csv", tmp_path / "file.csv") == len(CSV)
        assert (tmp_path / "file.csv").read_bytes() == CSV and portal.hits[path] == 3


@pytest.mark.parametrize("fault", ["html", "invalid_json", "truncated_json"])
def test_three_bad_pages_of_a_host_leave_it_asked(portal, fault):
    """Pages follow the rule downloads do: a body that is not what was asked is the address's
    fault, not its host's."""
    client = fast_client(max_attempts=1, host_failure_limit=3)
    portal.serve_json("/other", DOC)
    portal.inject("/doc", fault, times=3)
    for _ in range(3):
        with pytest.raises(TransientError) as failed:
            get(client, portal)
        assert not isinstance(failed.value, HostUnavailable), failed.value
    assert get(client, portal, "/other").data == DOC


@pytest.mark.parametrize("fault", ["reset", ("status", 503), ("slow", 1.0)])
def test_three_faults_of_the_host_give_it_up_for_downloads_and_pages_alike(portal, tmp_path, fault):
    """A reset connection, a 5xx, headers later than the timeout: the host's own faults, three
    in a row (downloads and pages mixed) give it up."""
    portal.static["/file.csv"] = RawBody(CSV)
    client = fast_client(timeout=0.3, max_attempts=1, host_failure_limit=3)
    portal.inject("/", fault, times=3)
    for asked in ("download", "page", "download"):
        with pytest.raises(TransientError):
            if asked == "page":
                get(client, portal)
            else:
                client.download(portal.url + "/file.csv", tmp_path / "file.csv")
    with pytest.raises(HostUnavailable, match="failed 3 requests in a row this run; not asked again"):
        client.download(portal.url + "/file.csv", tmp_path / "file.csv")
    assert portal.hits["/file.csv"] == 2 and portal.hits["/doc"] == 1


def test_a_host_answering_an_html_page_at_every_address_is_given_up_after_a_bounded_number(portal):
    """One address's HTML page is that address's fault (three in a row leave the host asked), but a
    host answering one at every address (a login wall, a maintenance page served with a 200) is down
    for the run: a Hub's thousands of FeatureServer lookups would each be retried with backoff (about
    15 s apiece at the defaults: hours of the night). address_fault_limit addresses in a row answered
    so, none well, give the host up; a good answer between them starts the count again."""
    client = fast_client(max_attempts=2, host_failure_limit=3, address_fault_limit=5)
    paths = [f"/layer/{i}" for i in range(8)]
    for path in [*paths, "/good"]:
        portal.serve_json(path, DOC)
    portal.inject("/layer/", "html", times=1_000)
    failed = []
    for path in paths[:4]:   # four in a row, then a good answer: the count starts again
        with pytest.raises(HttpError) as error:
            get(client, portal, path)
        failed.append(error.value)
    assert get(client, portal, "/good").data == DOC
    for path in paths[4:] + paths[:4]:
        with pytest.raises(HttpError) as error:
            get(client, portal, path)
        failed.append(error.value)
    assert [type(f).__name__ for f in failed] == ["HtmlInsteadOfData"] * 9 + ["HostUnavailable"] * 3
    assert re.search(r"answered 5 addresses in a row with no usable answer \(the last: HtmlInsteadOfData\)",
                     str(failed[-1])), failed[-1]
    assert sum(portal.hits[p] for p in paths) == 9 * 2   # (each asked with its retries, then not at all)


# -- an answer over its cap by its Content-Length: refused at its headers ------------------------

def held_back(released: threading.Event, size: int) -> Callable[[], Iterator[bytes]]:
    """A body of `size` bytes sent only once `released` (a client that waits for it waits
    until its read timeout)."""
    def pieces():
        if not released.wait(60):
            return
        for start in range(0, size, 64 * 1024):
            yield b"x" * min(64 * 1024, size - start)
    return pieces


def test_a_download_over_its_cap_by_its_content_length_is_refused_before_any_of_its_body(tmp_path):
    """It was read to the cap (16 GiB by default) before being refused."""
    released = threading.Event()
    with BodiesByHand() as portal:
        portal.bodies["/huge.csv"] = ([("Content-Type", "text/csv"), ("Content-Length", "5000000")],
                                      held_back(released, 5_000_000))
        client, url = fast_client(max_attempts=1, max_download_bytes=1_000_000), portal.url + "/huge.csv"
        try:
            with pytest.raises(ResponseTooLarge) as refused:
                client.download(url, tmp_path / "huge.csv")
            handed = portal.handed["/huge.csv"]
        finally:
            released.set()
    assert handed == 0 and not (tmp_path / "huge.csv").exists()
    assert str(refused.value) == ("download of 5000000 bytes (its Content-Length) is over the 1000000-byte cap; "
                                  f"CIVICAT_HTTP_MAX_DOWNLOAD_BYTES raises the cap ({url})")
    assert client.stats.requests == 1


def test_a_download_without_a_content_length_still_stops_at_its_cap(tmp_path):
    with BodiesByHand() as portal:
        portal.bodies["/endless.csv"] = ([("Content-Type", "text/csv")],
                                         lambda: (b"1,row\n" * 10_000 for _ in range(10_000)))
        client = fast_client(max_attempts=1, max_download_bytes=1_000_000)
        with pytest.raises(ResponseTooLarge, match=r"^download is over the 1000000-byte cap; "
                                                   r"CIVICAT_HTTP_MAX_DOWNLOAD_BYTES raises the cap \("):
            client.download(portal.url + "/endless.csv", tmp_path / "endless.csv")
        assert portal.handed["/endless.csv"] < 60_000_000   # (the 60 MB it would send, not read to their end)


def test_a_gzip_page_over_the_cap_by_its_content_length_is_refused_at_its_head(tmp_path):
    """The check of a page's Content-Length left out gzip-encoded answers, which were read to
    the cap (256 MiB by default). Its head is still read (an entry over the cap may name
    itself there: value_in_head), no more."""
    import os as _os
    encoded = gzip.compress(json.dumps({"results": [{"id": "abcd-1234", "blob": _os.urandom(600_000).hex()}]})
                            .encode(), compresslevel=1)
    released = threading.Event()

    def head_then_held():
        yield encoded[:256 * 1024]
        if released.wait(60):
            yield encoded[256 * 1024:]

    with BodiesByHand() as portal:
        portal.bodies["/big.json"] = ([("Content-Type", "application/json"), ("Content-Encoding", "gzip"),
                                       ("Content-Length", str(len(encoded)))], head_then_held)
        client = fast_client(tmp_path, max_attempts=1, max_bytes=len(encoded) - 1)
        try:
            for conditional in (False, True):   # (read decoded; read as it came, for the cache)
                with pytest.raises(ResponseTooLarge) as refused:
                    get(client, portal, "/big.json", conditional=conditional)
                assert str(refused.value) == (
                    f"response of {len(encoded)} bytes (its Content-Length, gzip-encoded) is over the "
                    f"{len(encoded) - 1}-byte cap; CIVICAT_HTTP_MAX_BYTES raises the cap ({portal.url}/big.json)")
                assert refused.value.head.startswith(b'{"results": [{"id": "abcd-1234"')
        finally:
            released.set()


def test_a_download_cut_short_is_a_connection_fault_retried_not_a_file_that_could_not_be_written(portal, tmp_path):
    """requests' errors are OSErrors: the one of a body cut short went through `writing`,
    which made it "could not write <the temporary file>: ...", an OSError no retry took."""
    portal.static["/file.csv"] = RawBody(CSV * 1000)
    portal.inject("/file.csv", "truncated", times=2)
    with pytest.raises(TransientError, match=r"^download cut short: \w+ \("):
        fast_client(max_attempts=1).download(portal.url + "/file.csv", tmp_path / "file.csv")
    client = fast_client(max_attempts=2)
    assert client.download(portal.url + "/file.csv", tmp_path / "file.csv") == len(CSV) * 1000
    assert portal.hits["/file.csv"] == 3 and client.stats.retries == 1


# -- a gzip bomb: capped as it is decoded, its decoded bytes never held --------------------------

# 512 MiB of zeros in members of 256 KiB each, 594 KB as sent: urllib3 (2.8) decoded a member that
# ends where a read's length ends, then fed the rest to a decoder already at its end, whose
# leftover doubled at each read (the body read twice over, ever faster: GBs held)
BOMB_MEMBER = gzip.compress(b"0" * (256 << 10), compresslevel=9, mtime=0)
BOMB = BOMB_MEMBER * 2048


def sent_in_pieces(body: bytes) -> Callable[[], Iterator[bytes]]:
    return lambda: (body[at:at + 64 * 1024] for at in range(0, len(body), 64 * 1024))


def deflated(body: bytes, raw: bool = False) -> bytes:
    encoder = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
    return b"".join([encoder.compress(body[at:at + (1 << 20)]) for at in range(0, len(body), 1 << 20)]
                    + [encoder.flush()])


# a body as each Content-Encoding sends it: the gzip members above, deflate (zlib-wrapped or raw, as
# servers send either), and gzip over gzip (stacked codings went to urllib3's MultiDecoder)
ENCODED = {"gzip": lambda body: b"".join(gzip.compress(body[at:at + (256 << 10)], compresslevel=9, mtime=0)
                                         for at in range(0, len(body), 256 << 10)),
           "deflate": deflated,
           "deflate (raw)": lambda body: deflated(body, raw=True),
           "gzip, gzip": lambda body: gzip.compress(ENCODED["gzip"](body), mtime=0)}


@functools.cache   # (deflating 512 MiB takes ~2 s of CPU: once a coding, not once a test)
def bomb(coding: str) -> bytes:
    return BOMB if coding == "gzip" else gzip.compress(BOMB, mtime=0) if coding == "gzip, gzip" \
        else ENCODED[coding](b"0" * (512 << 20))


@pytest.mark.parametrize("coding", ["gzip", "deflate", "deflate (raw)", "gzip, gzip"])
@pytest.mark.parametrize("asked", ["page", "page for the cache", "download"])
def test_a_compression_bomb_is_refused_at_its_cap_decoded_holding_no_more_than_the_cap(tmp_path, asked, coding):
    """A small gzip or deflate body that inflates past the cap is refused as over the cap (its
    decoded bytes counted, not the 0.5 MB sent), for a page (decoded as it is read, or kept as it came
    for the validator cache) and a download alike, and the client holds about the cap meanwhile: a
    page read decoded held GBs before it was refused (gzip; and gzip under a second gzip layer, which
    urllib3 decoded, until session 30)."""
    import tracemalloc
    cap, sent = 8 << 20, bomb(coding)
    with BodiesByHand() as portal:
        for path, kind in (("/bomb.json", "application/json"), ("/bomb.csv", "text/csv")):
            portal.bodies[path] = ([("Content-Type", kind), ("Content-Encoding", coding.split(" (")[0]),
                                    ("Content-Length", str(len(sent)))], sent_in_pieces(sent))
        client = fast_client(tmp_path, max_attempts=1, max_bytes=cap, max_download_bytes=cap)
        tracemalloc.start()
        try:
            with pytest.raises(ResponseTooLarge) as refused:
                if asked == "download":
                    client.download(portal.url + "/bomb.csv", tmp_path / "bomb.csv")
                else:
                    get(client, portal, "/bomb.json", conditional=asked == "page for the cache")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    cap_said = (f"download is over the {cap}-byte cap; CIVICAT_HTTP_MAX_DOWNLOAD_BYTES raises the cap"
                if asked == "download" else f"response is over the {cap}-byte cap")
    assert str(refused.value).startswith(cap_said + " ("), refused.value
    assert peak < 3 * cap, f"held {peak / 1e6:.0f} MB decoding a body capped at {cap / 1e6:.0f} MB"


@pytest.mark.parametrize("coding", ["deflate", "deflate (raw)", "gzip, gzip", "identity, gzip"])
def test_a_body_deflated_or_in_stacked_codings_is_read_as_sent(tmp_path, coding):
    """Deflate (either form) and stacked codings decoded by the client give the page and the file
    sent, each byte once; and a body that is not what its Content-Encoding says is a fault, never
    its encoded bytes taken for the data."""
    page = json.dumps({"results": [os.urandom(64).hex() for _ in range(12_000)]}).encode()
    csv = b"id,value\n" + b"".join(b"%d,%s\n" % (i, os.urandom(32).hex().encode()) for i in range(45_000))
    encode = ENCODED["gzip"] if coding == "identity, gzip" else ENCODED[coding]
    with BodiesByHand() as portal:
        for path, body, kind in (("/page.json", page, "application/json"), ("/file.csv", csv, "text/csv"),
                                 ("/not.csv", csv, "text/csv")):
            encoded = encode(body) if path != "/not.csv" else b"\x00not compressed at all" + csv
            portal.bodies[path] = ([("Content-Type", kind), ("Content-Encoding", coding.split(" (")[0]),
                                    ("Content-Length", str(len(encoded)))], sent_in_pieces(encoded))
        client = fast_client(tmp_path, max_attempts=1)
        assert get(client, portal, "/page.json").data == json.loads(page)
        assert client.download(portal.url + "/file.csv", tmp_path / "file.csv") == len(csv)
        with pytest.raises(HttpError, match="ContentDecodingError"):
            client.download(portal.url + "/not.csv", tmp_path / "not.csv")
    assert (tmp_path / "file.csv").read_bytes() == csv and not (tmp_path / "not.csv").exists()


@pytest.mark.parametrize("coding", ["deflate", "deflate (raw)"])
@pytest.mark.parametrize("first", [1, 2, 3])
def test_a_deflate_body_whose_first_piece_is_a_byte_or_two_is_read_as_sent(tmp_path, coding, first):
    """Whether a deflate body is zlib-wrapped or raw is fixed by its first two bytes (zlib's header,
    which no raw stream an encoder writes begins with: see _Inflated), so the raw fallback is tried
    on them alone, never on a later piece; but a server sending its first byte in a piece of its own
    (chunked) had the zlib decoder take that byte without a word, and the raw body then failed on
    the next piece ('not deflate as its Content-Encoding says')."""
    csv = b"id,value\n" + b"".join(b"%d,%s\n" % (i, os.urandom(32).hex().encode()) for i in range(20_000))
    encoded = ENCODED[coding](csv)
    with BodiesByHand() as portal:   # (no Content-Length: chunked, each piece a chunk of its own)
        portal.bodies["/file.csv"] = ([("Content-Type", "text/csv"), ("Content-Encoding", "deflate")],
                                      lambda: iter([encoded[:first], encoded[first:first + 1], encoded[first + 1:]]))
        client = fast_client(tmp_path, max_attempts=1)
        assert client.download(portal.url + "/file.csv", tmp_path / "file.csv") == len(csv)
    assert (tmp_path / "file.csv").read_bytes() == csv


def test_a_gzip_body_in_members_is_read_whole_once(tmp_path):
    """Members whose ends fall where a read's length ends (256 KiB, 1 MiB): urllib3 gave the
    body's bytes again after such a member, a page or a file read longer than it is (each of
    these members decoded twice and more, the document or the CSV no longer the one sent)."""
    page = json.dumps({"results": [os.urandom(64).hex() for _ in range(12_000)]}).encode()
    csv = b"id,value\n" + b"".join(b"%d,%s\n" % (i, os.urandom(32).hex().encode()) for i in range(45_000))
    with BodiesByHand() as portal:
        for path, body, kind in (("/page.json", page, "application/json"), ("/file.csv", csv, "text/csv")):
            piece = 256 << 10 if path == "/page.json" else 1 << 20
            encoded = b"".join(gzip.compress(body[at:at + piece], mtime=0) for at in range(0, len(body), piece))
            portal.bodies[path] = ([("Content-Type", kind), ("Content-Encoding", "gzip"),
                                    ("Content-Length", str(len(encoded)))], sent_in_pieces(encoded))
        client = fast_client(tmp_path, max_attempts=1)
        assert get(client, portal, "/page.json").data == json.loads(page)
        assert client.download(portal.url + "/file.csv", tmp_path / "file.csv") == len(csv)
    assert (tmp_path / "file.csv").read_bytes() == csv


# -- a download refused as it streams: nothing partial left where it was going ---------------------

@pytest.mark.parametrize("refusal", ["over the cap", "cut short", "an HTML page", "the run stopped"])
def test_a_download_refused_while_streaming_leaves_the_file_it_would_replace_whole(tmp_path, refusal):
    """The body was written at its destination as it came: refused (over the cap past its first
    bytes, the connection cut, an HTML page in its place, the run stopped), the part written stayed
    there, and a file already there (the previous download) was emptied as the refused one began.
    Now it is written beside it and renamed into place only once whole; the previous file stays."""
    previous = b"id,name\n1,the previous file\n"
    folder = tmp_path / "downloads"
    folder.mkdir()
    (folder / "data.csv").write_bytes(previous)
    released = threading.Event()

    def body():
        yield b"id,name\n" + b"2,row\n" * 300_000   # (1.8 MB arrives, then the refusal)
        if refusal == "over the cap":
            yield b"3,row\n" * 400_000
        elif refusal == "the run stopped":
            client.cancel()
            # (a piece sent once the run is stopped: the client, which may have read the 1.8 MB before
            # the stop under load and waits for more, sees the stop as it arrives, not at its timeout)
            yield b"3,row\n"
            released.wait(10)
            yield b"4,row\n" * 10
    with BodiesByHand() as portal:
        length = [("Content-Length", str(2_500_000))] if refusal == "cut short" else []   # (more than it sends)
        if refusal == "an HTML page":
            portal.inject("/data.csv", "html", times=1)
            portal.static["/data.csv"] = RawBody(b"id,name\n1,x\n")
        else:
            portal.bodies["/data.csv"] = ([("Content-Type", "text/csv"), *length], body)
        client = fast_client(max_attempts=1, max_download_bytes=3_000_000)
        try:
            failed = outcome(client.download, portal.url + "/data.csv", folder / "data.csv")
        finally:
            released.set()
    expected = {"over the cap": ResponseTooLarge, "cut short": TransientError, "an HTML page": TransientError,
                "the run stopped": Interrupted}[refusal]
    assert isinstance(failed, expected), failed
    assert (folder / "data.csv").read_bytes() == previous
    assert sorted(p.name for p in folder.iterdir()) == ["data.csv"]


@pytest.mark.parametrize("asked", ["download", "page"])
@pytest.mark.parametrize("length", ["Content-Length", "chunked", "to the close"])
def test_a_stop_ends_a_body_stalled_mid_way_at_once(tmp_path, asked, length):
    """A stop was seen between two reads of a body: a server stalled mid-body held the request (and
    the harvest's end) for its read timeout (60 s by default; here 300 s). The stop shuts the socket
    of every answer being read: the request ends at once with Interrupted, and a download leaves
    nothing written and the previous file whole, however its body was to end (a body read to the
    close would otherwise end at the shut socket looking whole)."""
    previous = b"id,name\n1,the previous file\n"
    (tmp_path / "data.csv").write_bytes(previous)
    sent, released = threading.Event(), threading.Event()
    head = b"id,name\n" + b"2,row\n" * 1_000 if asked == "download" else b'{"results": [' + b'"row", ' * 1_000

    def stalled():
        yield head
        sent.set()
        released.wait(300)   # (stalled until the test ends)
        yield b"3,row\n" if asked == "download" else b'"row"]}'
    with (BodiesToTheClose if length == "to the close" else BodiesByHand)() as portal:
        kind = "text/csv" if asked == "download" else "application/json"
        declared = [("Content-Length", str(len(head) + 100))] if length == "Content-Length" else []
        portal.bodies["/data"] = ([("Content-Type", kind), *declared], stalled)
        client = fast_client(max_attempts=1, timeout=300.0)
        asking, outcomes = asked_in_a_thread(client, asked, portal.url + "/data", tmp_path / "data.csv")
        try:
            assert sent.wait(60), "the server never sent the body's start"
            time.sleep(0.2)   # (the client most likely waiting in its read by now; if not, the stop is seen next)
            client.cancel()
            asking.join(60)   # (far beyond any load; the read timeout is 300 s)
            assert not asking.is_alive(), "the stalled read waited for its timeout after the stop"
        finally:
            released.set()
            asking.join(60)
    assert len(outcomes) == 1 and isinstance(outcomes[0], Interrupted), outcomes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv"]
    assert (tmp_path / "data.csv").read_bytes() == previous


def test_a_download_replaces_the_previous_file_once_whole(portal, tmp_path):
    (tmp_path / "file.csv").write_bytes(b"id,name\n1,the previous file\n")
    portal.static["/file.csv"] = RawBody(CSV)
    assert fast_client().download(portal.url + "/file.csv", tmp_path / "file.csv") == len(CSV)
    assert (tmp_path / "file.csv").read_bytes() == CSV and [p.name for p in tmp_path.iterdir()] == ["file.csv"]


def test_an_answer_a_cache_kept_puts_the_host_s_clock_at_its_date_plus_its_age(portal):
    """A cache (a CDN before the portal) answers with the Date of when the server made the answer and
    an Age of how long it has kept it (RFC 9111): a Date 3 days old with an Age of 3 days is a clock
    that agrees with ours, not one 3 days behind (by which a row changed yesterday would look ahead,
    kept out of the watermark and warned of). An Age that is no number is none."""
    from datetime import timedelta

    client = fast_client()
    portal.date_header = timedelta(days=-3)
    portal.age_header = str(3 * 86_400)
    get(client, portal)
    assert abs(client.server_clock(portal.url)) < timedelta(seconds=3)
    for not_an_age in ("soon", "-5", "\u00b2", "9" * 11):
        portal.age_header = not_an_age
        get(client, portal)
        assert timedelta(days=-3, seconds=-3) < client.server_clock(portal.url) <= timedelta(days=-3), not_an_age


def test_a_host_s_clock_is_read_from_its_answers_date_header(portal):
    """`server_clock` says how far a host's clock is ahead of ours by its latest answer's Date header
    (a records pull judges its rows' stamps by it), for every URL of the host, an error's answer's
    too; an answer without one leaves the latest that gave one, one that is no date says nothing
    (ours is taken), and an obsolete form RFC 7231 has clients read (asctime's) is read."""
    from datetime import timedelta

    client = fast_client(max_attempts=1)
    other = fast_client()
    assert client.server_clock(portal.url + "/doc") is None
    portal.date_header = ""
    get(client, portal)
    assert client.server_clock(portal.url) is None
    portal.date_header = timedelta(days=3)
    get(client, portal)
    for url in (portal.url + "/doc", portal.url + "/anything?else=1"):
        assert timedelta(days=3, seconds=-3) < client.server_clock(url) <= timedelta(days=3)
    assert other.server_clock(portal.url) is None   # (another run's client)
    portal.date_header = timedelta(hours=-5)
    with pytest.raises(PermanentError):
        get(client, portal, "/nothing")
    assert timedelta(hours=-5, seconds=-3) < client.server_clock(portal.url) <= timedelta(hours=-5)
    portal.date_header = ""
    get(client, portal)
    assert timedelta(hours=-5, seconds=-3) < client.server_clock(portal.url) <= timedelta(hours=-5)
    for not_a_date in ("Mon, 32 Dec 2026 02:09:00 GMT", "yesterday", "Fri, 31 Dec 9999 23:59:59 -0100", "x" * 5000):
        portal.date_header = not_a_date
        get(client, portal)
        assert client.server_clock(portal.url) is None, not_a_date
    portal.date_header = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(time.time() + 7200))
    get(client, portal)
    assert timedelta(hours=2, seconds=-3) < client.server_clock(portal.url) <= timedelta(hours=2)


def test_a_key_for_a_host_reached_over_plain_http_is_not_sent_and_its_first_request_says_so(portal, monkeypatch,
                                                                                             caplog):
    """A host a portal's `[portals.keys]` names, reached over plain http (its layers' links in a feed say
    http://): the key is not sent (it would cross the network in clear), and until session 43 nothing said
    so: a secured layer answered 403, a listing came short of its restricted layers, the key's owner none the
    wiser. Its first request now says so, once, naming the host, never the key; over https it is sent."""
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", portal.url)   # (layers.invalid, no loopback host, reached through it)
    client = fast_client()
    for scheme in ("https", "http"):   # (as an adapter gives a host's key: harvester.portals.base)
        client.send_key(f"{scheme}://layers.invalid", {"X-Esri-Authorization": "Bearer s3cret-layers-key"})
    with caplog.at_level(logging.WARNING, logger="civicat.http"):
        for _ in range(3):
            assert client.get_json("http://layers.invalid/doc").data == DOC
    assert all("X-Esri-Authorization" not in headers for _, _, headers in portal.requests[-3:])
    said = [r.getMessage() for r in caplog.records if "not sent" in r.getMessage()]
    assert said == ["the key configured for layers.invalid ([portals.keys]) is not sent to http://layers.invalid: "
                    "plain http to another machine would carry it in clear; its answers are those of a request "
                    "without it (ask for its https address)"]
    assert "s3cret" not in caplog.text
