"""The HTTP layer against a local portal that really misbehaves (no mocked requests)."""
import concurrent.futures
import contextlib
import gc
import gzip
import hashlib
import json
import logging
import os
import re
import signal
import socket
import sqlite3
import tempfile
import threading
import time

import pytest
import requests
from urllib3.response import GzipDecoder

from harvester import __version__
from harvester.http import (CertificateRejected, HostNotFound, HostUnavailable, HttpClient, Interrupted, InvalidUrl,
                            LookupTimedOut, LookupUnanswered, OverBudget, PermanentError, ResolverDown,
                            ResponseTooLarge, TransientError, UnexpectedPayload, ValidatorCache)
from harvester.http.bodies import _gunzip_capped
from harvester.http.resolver import _Lookups
from bench.serve import self_signed_tls, serve_keep_alive
from tests.conftest import fast_client
from tests.portals.base import LocalPortal, RawBody

DOC = {"results": [{"id": i, "name": f"dataset {i}"} for i in range(200)], "resultSetSize": 200}


@pytest.fixture
def portal():
    with LocalPortal() as p:
        p.serve_json("/doc", DOC)
        yield p


def get(client, portal, path="/doc", **kw):
    return client.get_json(portal.url + path, **kw)


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


def test_a_connection_that_fails_says_why(tmp_path, refusing_port):
    # offline, every portal failed with "connection failed: ConnectionError": neither the
    # name lookup nor the refused connection was named (a name that does not resolve: below)
    client = fast_client(max_attempts=1)
    port = refusing_port
    url = f"http://127.0.0.1:{port}/doc"
    with pytest.raises(TransientError, match=rf"^connection refused by 127\.0\.0\.1:{port} \(") as failed:
        client.get_json(url)
    assert url in str(failed.value)
    with pytest.raises(TransientError, match=rf"^connection refused by 127\.0\.0\.1:{port} \("):
        client.download(url, tmp_path / "file.csv")



@pytest.mark.parametrize("host", ["services..example.org", "a" * 64 + ".example.org"])
def test_a_url_whose_host_name_no_resolver_takes_is_a_permanent_error_naming_it(host, tmp_path):
    """A host name with an empty label, or a label over 63 characters (a portal's link to a layer
    or a file), is no name DNS can hold: urllib3 raised its LocationParseError (or the resolver's
    idna encoding a UnicodeError), no HttpError, which no handler of one dataset's errors took:
    an ArcGIS Hub entry naming such a layer failed its whole portal. It is an InvalidUrl naming
    the host, never asked, and so is a redirect to such a name (its URL named: where the name is)."""
    class Redirecting(LocalPortal):
        def _wsgi(self, environ, start_response):
            self.requests.append((environ["PATH_INFO"], {}, {}))
            start_response("302 Found", [("Location", f"http://{host}/doc"), ("Content-Length", "0")])
            return [b""]

    client = fast_client(max_attempts=3)
    with Redirecting() as origin:
        for url in (f"http://{host}/doc", origin.url + "/moved"):
            with pytest.raises(InvalidUrl, match=rf"^host name {re.escape(host)} is not valid \(.*\(http://{host}/doc\)$"):
                client.get_json(url)
            with pytest.raises(InvalidUrl, match=rf"^host name {re.escape(host)} is not valid"):
                client.download(url, tmp_path / "file.csv")
        assert len(origin.requests) == 2   # (the redirecting one: once a call, no retry)
    assert client.stats.retries == 0


@pytest.mark.parametrize("url", ["http://[::1/doc", "http://127.0.0.1:99999/doc", "http://ex ample.org/doc"])
def test_a_url_no_request_can_be_made_to_is_a_permanent_error_asked_never(url, tmp_path):
    """Unclosed brackets raised urlparse's ValueError, no HttpError (a portal's link so written failed
    its portal); a port out of range or a space in the host was requests' InvalidURL, retried as a
    connection fault and counted against the host. Each is an InvalidUrl, at once."""
    client = fast_client(max_attempts=3)
    for call in (lambda: client.get_json(url), lambda: client.download(url, tmp_path / "file.csv")):
        with pytest.raises(InvalidUrl, match=r"^URL not valid \(") as failed:
            call()
        assert url in str(failed.value)
    assert client.stats.retries == 0

def test_retry_after_is_honoured(portal):
    client = fast_client()
    portal.inject("/doc", ("retry_after", 429, 1))
    started = time.monotonic()
    assert get(client, portal).data == DOC
    assert time.monotonic() - started >= 0.95
    assert client.stats.retries == 1


def outcome(call, *args, **kwargs):
    """What `call` raised, or None. Interrupted and OverBudget are KeyboardInterrupts: caught
    here, where pytest would stop the whole session on one."""
    try:
        call(*args, **kwargs)
    except (Exception, KeyboardInterrupt) as exc:
        return exc
    return None


@contextlib.contextmanager
def cut_short_after(client, seconds=60):
    """Waits the test expects to end in well under a second, ended after `seconds` (far beyond
    any load) by cancelling the run: a test that then sees Interrupted, not the outcome it
    expects, waited where it should not have (no elapsed time is asserted)."""
    timer = threading.Timer(seconds, client.cancel)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def test_retry_after_is_capped(portal, caplog):
    client = fast_client(max_retry_after=0.2)
    portal.inject("/doc", ("retry_after", 429, 3600))
    with caplog.at_level(logging.WARNING, logger="civicat.http"), cut_short_after(client):
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


def test_a_portal_s_time_budget_cuts_its_retry_wait_and_then_every_request_of_that_portal_alone(portal):
    """max_minutes (HttpClient.limit_to): a wait between attempts ends with the budget, no request of that
    portal's client is made after it, and the run's other clients go on (no Ctrl-C)."""
    client = fast_client(max_attempts=10, backoff_initial=3600, backoff_max=3600)
    limited = client.for_portal(type("P", (), {"host": portal.url.split("//")[1], "timeout": 5.0,
                                               "max_concurrency": 1})())
    limited.limit_to(0.01)   # 0.6 s
    portal.inject("/doc", ("status", 503), times=1)
    started = time.monotonic()
    with cut_short_after(client):   # a wait of the hour's backoff would end Interrupted
        stopped = outcome(get, limited, portal)
    assert isinstance(stopped, OverBudget), stopped
    assert re.search(r"over 0\.01 minutes \(its max_minutes\); not requested: .*/doc", str(stopped))
    assert time.monotonic() - started > 0.5 and portal.hits["/doc"] == 1   # (the budget was waited for)
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
    with cut_short_after(client):               # a wait out of the hold would end Interrupted
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


def seconds_for_requests_together(client, portal, count: int) -> float:
    threads = [threading.Thread(target=get, args=(client, portal)) for _ in range(count)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - started


def test_per_host_concurrency_limit(portal):
    client = fast_client()
    client.set_host_limit(portal.url.split("//")[1], 1)
    portal.inject("/doc", ("slow", 0.3), times=3)
    assert seconds_for_requests_together(client, portal, 3) >= 0.85  # served one after another


def test_the_portals_requests_per_second_are_kept_by_every_thread(portal):
    from tests.conftest import portal_config

    client = fast_client().for_portal(portal_config("city", "dcat-us", portal.url, requests_per_second=20))
    elapsed = seconds_for_requests_together(client, portal, 8)
    assert portal.hits["/doc"] == 8 and elapsed >= 7 / 20 - 0.02   # 20 a second, not 8 at once


def test_a_retry_after_holds_back_every_request_to_that_host(portal):
    client = fast_client(max_retry_after=5)
    portal.inject("/doc", ("retry_after", 429, 1))
    first = threading.Thread(target=get, args=(client, portal))
    first.start()
    while not portal.hits["/doc"]:
        time.sleep(0.005)
    time.sleep(0.1)                     # the 429 has been answered; another thread asks the same host
    started = time.monotonic()
    assert get(client, portal).data == DOC
    assert time.monotonic() - started >= 0.8   # it waited for the portal's Retry-After too
    first.join()
    assert client.stats.retries == 1


def test_retry_after_http_date():
    from harvester.http.client import _retry_after
    assert _retry_after("5") == 5.0
    assert 0 <= _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert _retry_after("soon") is None


def test_a_secret_header_does_not_follow_a_redirect_to_another_host():
    class Redirecting(LocalPortal):
        target = ""

        def _wsgi(self, environ, start_response):
            if environ["PATH_INFO"] == "/moved":
                self.requests.append(("/moved", {}, {}))
                start_response("302 Found", [("Location", self.target), ("Content-Length", "0")])
                return [b""]
            return super()._wsgi(environ, start_response)

    with LocalPortal() as other, Redirecting() as origin:
        other.serve_json("/doc", DOC)
        origin.target = other.url + "/doc"
        assert fast_client().get_json(origin.url + "/moved", headers={"X-App-Token": "secret"}).data == DOC
        assert "X-App-Token" not in other.requests[-1][2]


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


def test_a_redirect_to_another_host_takes_that_hosts_proxy(monkeypatch):
    """The environment is read once a host, the redirect's host too: the origin is asked
    directly (NO_PROXY), the host it redirects to through the proxy."""
    class Redirecting(LocalPortal):
        def _wsgi(self, environ, start_response):
            self.requests.append((environ["PATH_INFO"], {}, {}))
            start_response("302 Found", [("Location", "http://elsewhere.invalid/doc"), ("Content-Length", "0")])
            return [b""]

    for name in ("no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    with LocalPortal() as proxy, Redirecting() as origin:
        proxy.serve_json("/doc", DOC)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        assert fast_client().get_json(origin.url + "/moved").data == DOC   # never resolved: asked of the proxy
        assert origin.requests[-1][0] == "/moved" and proxy.requests[-1][0] == "/doc"


def test_lone_surrogates_in_valid_json_are_replaced(portal):
    from harvester.http import parse_json_body
    assert parse_json_body(b'{"t": "a\\ud83d b"}', "application/json", "u") == {"t": "a\ufffd b"}


def test_a_body_that_is_not_utf8_is_named_so_with_the_offending_byte(portal):
    """A Latin-1 title in a JSON page: refused as invalid JSON (retried, then failing its
    portal), with the byte and where it is, not orjson's "surrogates not allowed" at char 0."""
    portal.static["/latin1"] = RawBody(b'{"results": [{"title": "Caf\xe9 permits"}]}', "application/json")
    with pytest.raises(TransientError, match=r"not UTF-8 \(0xe9\) at byte 27 \(after b'.*Caf'\)"):
        get(fast_client(max_attempts=2), portal, "/latin1")
    assert portal.hits["/latin1"] == 2


@pytest.mark.parametrize("content_type", ["text/html", "text/html; charset=utf-8"])
def test_valid_json_labelled_html_is_read_by_its_body(portal, content_type):
    """A portal (or its CDN) labelling its JSON `text/html`: the body is JSON, not an HTML
    page, so it is read (the label alone made every page a fault, and the portal fail)."""
    portal.static["/mislabelled"] = RawBody(json.dumps(DOC).encode(), content_type)
    client = fast_client(max_attempts=2)
    assert get(client, portal, "/mislabelled").data == DOC
    assert portal.hits["/mislabelled"] == 1 and client.stats.retries == 0


@pytest.mark.parametrize("body", [b"Service Unavailable", b"\xef\xbb\xbf<!DOCTYPE html><html></html>", b"  <p>down</p>"])
def test_an_html_label_on_a_body_that_is_no_json_is_an_html_page(portal, body):
    portal.static["/page"] = RawBody(body, "text/html")
    with pytest.raises(TransientError, match="HTML page instead of JSON"):
        get(fast_client(max_attempts=2), portal, "/page")
    assert portal.hits["/page"] == 2


def test_xml_labelled_html_is_read_by_its_body_and_an_xhtml_page_is_still_html(portal):
    services = b'<?xml version="1.0" encoding="utf-8"?><services><service><service_code>1</service_code></service></services>'
    portal.static["/services.xml"] = RawBody(services, "text/html")
    assert fast_client().get_xml(portal.url + "/services.xml").data.tag == "services"
    xhtml = b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><body>down</body></html>'
    for content_type in ("text/html", "application/xml"):
        portal.static["/page.xml"] = RawBody(xhtml, content_type)
        with pytest.raises(TransientError, match="HTML page instead of XML"):
            fast_client(max_attempts=1).get_xml(portal.url + "/page.xml")

def test_json_nested_past_any_limit_is_invalid_json_of_its_url(portal):
    """5,000 nested arrays in one field: orjson refuses past 1,024 levels, and the json module
    it falls back on raised a RecursionError naming no URL, which was not retried."""
    portal.static["/deep"] = RawBody(b'{"results": [{"deep": ' + b"[" * 5000 + b"]" * 5000 + b"}]}",
                                     "application/json")
    with pytest.raises(TransientError, match=r"invalid or truncated JSON: .*depth limit exceeded.*/deep"):
        get(fast_client(max_attempts=2), portal, "/deep")
    assert portal.hits["/deep"] == 2


def test_a_server_dripping_bytes_is_cut_off_at_the_total_time_bound():
    sent = []

    class Dripping(LocalPortal):
        def _wsgi(self, environ, start_response):
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "600")])

            def drip():
                for _ in range(600):
                    time.sleep(0.1)          # each byte well inside the read timeout (60 s in all)
                    sent.append(1)
                    yield b" "
            return drip()

    with Dripping() as portal:
        client = fast_client(timeout=0.4, max_attempts=1)
        with pytest.raises(TransientError, match="response took over 1s to arrive"):
            client.get_json(portal.url + "/slow")
        assert len(sent) < 600   # cut off at 2 x 0.4 s, not once the 60 s drip had ended


def test_a_server_dripping_its_headers_is_cut_off_at_the_total_time_bound():
    """Read timeouts apply per socket read, and the body's watchdog starts once the headers
    are in: a server (or a broken proxy) sending a header line every so often, each well
    inside the read timeout, held the request as long as it liked (http.client reads up to
    100 header lines of 64 KB, a byte at a time if they come so)."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip():
        connection, _ = server.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\n")
            while not stop.wait(0.2):
                try:
                    connection.sendall(b"X-Drip: a\r\n")
                except OSError:
                    return

    threading.Thread(target=drip, daemon=True).start()
    client = fast_client(timeout=0.4, max_attempts=1)
    try:
        # cut off at 2 x 0.4 s: a client that waited would fail otherwise, after 100 lines of
        # 0.2 s (http.client's "got more than 100 headers")
        with pytest.raises(TransientError, match="response headers took over 1s to arrive"):
            client.get_json(f"http://127.0.0.1:{server.getsockname()[1]}/slow")
    finally:
        stop.set()
        server.close()


def test_the_time_to_connect_does_not_count_against_the_headers_time():
    """The status line and headers are due twice the (read) timeout after the connection is
    made, not after the request started: a connect that took a second (a SYN dropped by a
    full accept queue is sent again after 1 s) failed a healthy server at once when the
    timeout was under a second, the connect having its own timeout."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(3):   # fill the accept queue: the client's first SYN is dropped
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    body = json.dumps(DOC).encode()

    def answer(connection):
        with connection:
            connection.settimeout(5)
            try:
                if connection.recv(65536):
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                       b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            except OSError:
                pass

    def serve():
        time.sleep(0.3)
        for filler in fillers:
            filler.close()
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(connection,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    client = fast_client(timeout=0.4, connect_timeout=5, max_attempts=1)
    started = time.monotonic()
    try:
        assert client.get_json(f"http://127.0.0.1:{port}/doc").data == DOC
        assert time.monotonic() - started > 0.8    # the connect alone took longer than 2 x 0.4 s
    finally:
        server.close()

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


SYSTEM_RESOLVER = socket.getaddrinfo   # (taken before conftest's _loopback_only stands in for it)


def test_an_invalid_name_resolved_by_the_system_is_a_host_not_found(monkeypatch):
    try:
        SYSTEM_RESOLVER("data.nowhere.invalid", 80)
        pytest.skip("this machine's resolver resolves data.nowhere.invalid")
    except socket.gaierror as exc:
        if exc.errno != socket.EAI_NONAME:
            pytest.skip(f"this machine's resolver answers data.nowhere.invalid with {exc} (not EAI_NONAME)")
    monkeypatch.setattr(socket, "getaddrinfo", SYSTEM_RESOLVER)
    client = fast_client(max_attempts=5)
    with pytest.raises(HostNotFound, match=r"^host name data\.nowhere\.invalid does not resolve \(Name or service"):
        client.get_json("http://data.nowhere.invalid/doc")
    assert (client.stats.requests, client.stats.retries) == (2, 1)


def test_a_name_that_does_not_resolve_is_asked_twice_and_its_host_given_up(tmp_path, resolver):
    """An NXDOMAIN (EAI_NONAME) was retried five times, ~17 s
    with the default backoff, and three requests (~50 s) before its host was given up. Now one
    retry, then no request of the run asks that host again; the error says plainly why."""
    client = fast_client(max_attempts=5, host_failure_limit=3)
    url = "http://data.nowhere.invalid/api/doc"
    with pytest.raises(HostNotFound, match=r"^host name data\.nowhere\.invalid does not resolve \(") as failed:
        client.get_json(url)
    assert url in str(failed.value) and "urllib3" not in str(failed.value) and "ConnectionError" not in str(failed.value)
    assert (client.stats.requests, client.stats.retries) == (2, 1)
    assert resolver.asked["data.nowhere.invalid"] == 2
    with pytest.raises(HostUnavailable, match=r"^host name data\.nowhere\.invalid does not resolve \(.*\); not asked again"):
        client.get_json(url + "/other")
    assert client.stats.requests == 2 and resolver.asked["data.nowhere.invalid"] == 2
    with pytest.raises(HostNotFound):   # a download (a records pull) is asked twice too
        client.download(url, tmp_path / "file.csv")
    assert resolver.asked["data.nowhere.invalid"] == 4


def test_a_name_that_does_not_resolve_for_a_moment_is_asked_once_more(portal, resolver):
    """The one retry is for a resolver that answers NXDOMAIN for a moment (another server of
    its pool, a link that came up)."""
    resolver.answers["flaky.portal.test"] = [socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
                                             "127.0.0.1"]
    client = fast_client(max_attempts=5)
    assert client.get_json(portal.url.replace("127.0.0.1", "flaky.portal.test") + "/doc").data == DOC
    assert (client.stats.requests, client.stats.retries, portal.hits["/doc"]) == (2, 1, 1)


def test_a_redirect_to_a_name_that_does_not_resolve_names_that_name(resolver):
    class Redirecting(LocalPortal):
        def _wsgi(self, environ, start_response):
            self.requests.append((environ["PATH_INFO"], {}, {}))
            start_response("301 Moved Permanently", [("Location", "http://gone.nowhere.invalid/doc"),
                                                     ("Content-Length", "0")])
            return [b""]

    client = fast_client(max_attempts=5, host_failure_limit=3)
    with Redirecting() as origin:
        with pytest.raises(HostNotFound, match=r"^host name gone\.nowhere\.invalid does not resolve"):
            client.get_json(origin.url + "/moved")
        assert len(origin.requests) == 2 and resolver.asked["gone.nowhere.invalid"] == 2
        with pytest.raises(HostUnavailable, match="host name gone.nowhere.invalid does not resolve"):
            client.get_json(origin.url + "/moved")   # (the origin redirects every request there)
        assert len(origin.requests) == 2



@pytest.fixture
def self_signed_portal(tmp_path):
    """The DOC portal over TLS, its certificate self-signed (made by the openssl command): its URL."""
    context = self_signed_tls(tmp_path)
    if context is None:
        pytest.skip("the openssl command is needed to make a certificate")
    portal = LocalPortal()
    portal.serve_json("/doc", DOC)
    server = serve_keep_alive(portal._wsgi, poll_interval=0.05, tls=context)
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_certificate_refused_is_asked_twice_and_its_host_given_up(self_signed_portal):
    """A certificate that fails verification (self-signed here; expired, for another name) was
    asked five times, as a connection fault, and for three requests before its host was given
    up; no retry within seconds mends it."""
    client = fast_client(max_attempts=5, host_failure_limit=3)
    with pytest.raises(CertificateRejected, match=r"^TLS certificate of 127\.0\.0\.1 not accepted \(self-signed"):
        client.get_json(self_signed_portal + "/doc")
    assert (client.stats.requests, client.stats.retries) == (2, 1)
    with pytest.raises(HostUnavailable, match=r"^TLS certificate of 127\.0\.0\.1 not accepted .*; not asked again"):
        client.get_json(self_signed_portal + "/doc")
    assert client.stats.requests == 2

def test_a_resolver_that_fails_for_a_while_keeps_the_bounded_retries(portal, resolver):
    """EAI_AGAIN (the resolver timed out, the network is down) is no answer about the name:
    retried as any connection fault, and the host given up only after its failures' limit."""
    again = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    resolver.answers["slow.portal.test"] = [again, again, "127.0.0.1"]
    client = fast_client(max_attempts=5, host_failure_limit=2)
    url = portal.url.replace("127.0.0.1", "slow.portal.test") + "/doc"
    assert client.get_json(url).data == DOC
    assert (client.stats.requests, client.stats.retries) == (3, 2)
    resolver.answers["slow.portal.test"] = [again]
    for made in (8, 13):
        with pytest.raises(LookupUnanswered, match=r"^the resolver gave no answer for host name slow\.portal\.test "
                                                   r"\(Temporary failure in name resolution\)") as failed:
            client.get_json(url)
        assert failed.value.host_down is None and client.stats.requests == made
    with pytest.raises(HostUnavailable, match="failed 2 requests in a row"):
        client.get_json(url)
    assert client.stats.requests == 13


def test_a_lookup_that_hangs_is_bounded_and_a_name_unanswered_for_two_connect_timeouts_is_given_up(
        portal, resolver, tmp_path):
    """getaddrinfo has no timeout of its own: each attempt waits the connect timeout for the name,
    and the lookup still hanging is the one every retry waits for (one thread a name, not one an
    attempt). A request was then asked 5 times, ~61 s with a hanging resolver, and 3 requests
    before its host was given up (~183 s for a hub's layers): a name unanswered for twice the
    connect timeout in a row is now down for the run, as a port refused for its limit. The
    lookup here hangs until the test ends it (the dead servers' own give-up)."""
    dropped = threading.Event()
    resolver.answers["slow.portal.test"] = [dropped]
    client = fast_client(max_attempts=5, connect_timeout=0.2, host_failure_limit=3)
    url = portal.url.replace("127.0.0.1", "slow.portal.test")
    try:
        with cut_short_after(client), pytest.raises(
                LookupTimedOut, match=r"^host name slow\.portal\.test did not resolve within 0\.2 s \(") as failed:
            client.get_json(url + "/doc")
        assert (client.stats.requests, client.stats.retries) == (2, 1)   # two connect timeouts, then down
        assert failed.value.host_down == ("host name slow.portal.test went unanswered by the resolver for 0.4 s "
                                          "in a row; not asked again this run")
        for later in ("/doc", "/other"):
            with pytest.raises(HostUnavailable, match=r"^host name slow\.portal\.test went unanswered by the resolver "
                                                      r"for 0\.4 s in a row; not asked again this run \("):
                client.get_json(url + later)
        assert client.stats.requests == 2
        with pytest.raises(LookupUnanswered, match="went unanswered by the resolver"):
            client.download(url + "/doc", tmp_path / "file.csv")   # (a download: asked once, not waited for)
        assert client.stats.requests == 3
        assert resolver.asked["slow.portal.test"] == 1 and not dropped.is_set()
    finally:
        dropped.set()


def test_a_resolver_that_answers_slowly_is_waited_for_and_a_late_answer_taken_by_the_retry(portal, resolver, caplog):
    """A resolver that answers within the connect timeout, however slowly, serves every request,
    names looked up in parallel too. One that answers a moment past it (6 names unanswered at
    once: the resolver taken for down) answers the retries, which wait for the lookups under
    way (a transient miss is retried)."""
    names = [f"slow{number}.portal.test" for number in range(6)]
    urls = [portal.url.replace("127.0.0.1", name) + "/doc" for name in names]
    for name in names:
        resolver.answers[name] = [(0.15, "127.0.0.1")]
    client = fast_client(max_attempts=5, connect_timeout=5.0)
    with concurrent.futures.ThreadPoolExecutor(6) as threads:
        assert [response.data for response in threads.map(client.get_json, urls)] == [DOC] * 6
    assert (client.stats.requests, client.stats.retries) == (6, 0)

    answered, waits = threading.Event(), []
    for name in names:
        resolver.answers[name] = [(answered, "127.0.0.1")]
    client = fast_client(max_attempts=5, connect_timeout=1.0)
    retry_wait = client._sleep

    def answered_once_every_name_went_unanswered(seconds):
        waits.append(seconds)
        if len(waits) == len(names):   # (each thread's first retry wait: each name's lookup timed out)
            answered.set()
        retry_wait(seconds)

    client._sleep = answered_once_every_name_went_unanswered
    try:
        with caplog.at_level(logging.WARNING, logger="civicat.http"), \
                concurrent.futures.ThreadPoolExecutor(6) as threads:
            assert [response.data for response in threads.map(client.get_json, urls)] == [DOC] * 6
    finally:
        answered.set()
    assert (client.stats.requests, client.stats.retries) == (12, 6)
    said = [record.getMessage() for record in caplog.records if "resolver" in record.getMessage()]
    assert said[0].startswith("the resolver has answered no lookup of ") and len(said) == 2


def test_a_resolver_that_answers_no_name_is_down_and_no_request_waits_for_it(portal, resolver, caplog):
    """Lookups of 3 different names unanswered, none answered since: the resolver is down, said
    once. Every later request fails at once (not retried, its host not held to blame), one
    lookup at a time runs meanwhile, and the first that answers brings the resolver back. (A
    request waited 2 connect timeouts a name, and 5 attempts.)"""
    dropped, answers_again = threading.Event(), threading.Event()
    for name in ("a", "b", "c"):
        resolver.answers[f"{name}.dead.test"] = [dropped]
    for number in range(20):
        resolver.answers[f"d{number}.portal.test"] = [(answers_again, "127.0.0.1")]
    client = fast_client(max_attempts=5, connect_timeout=0.1, host_failure_limit=1)
    port = portal.url.rsplit(":", 1)[1]
    try:
        with caplog.at_level(logging.WARNING, logger="civicat.http"), cut_short_after(client):
            for name in ("a", "b", "c"):   # (c's lookup, under way, is waited for by its retry)
                with pytest.raises(LookupTimedOut) as failed:
                    client.get_json(f"http://{name}.dead.test:{port}/doc")
                assert failed.value.host_down is not None   # (2 attempts: 2 connect timeouts)
            assert client.stats.requests == 6
            with pytest.raises(ResolverDown, match=r"^the resolver has answered no lookup for \d+ s \(3 host names "
                                                   r"unanswered: a\.dead\.test, b\.dead\.test, c\.dead\.test\); host "
                                                   r"name d0\.portal\.test not waited for until it answers again \("):
                client.get_json(f"http://d0.portal.test:{port}/doc")
            for number in range(1, 20):
                with pytest.raises(ResolverDown, match=rf"host name d{number}\.portal\.test not waited for"):
                    client.get_json(f"http://d{number}.portal.test:{port}/doc")
            assert client.stats.requests == 26   # one attempt each, none waited for
            assert sum(resolver.asked[f"d{number}.portal.test"] for number in range(20)) <= 1   # the one probe
            said = [record.getMessage() for record in caplog.records if "resolver" in record.getMessage()]
            assert said == ["the resolver has answered no lookup of 3 host names (a.dead.test, b.dead.test, "
                            "c.dead.test): no lookup starts until it answers again"]
            answers_again.set()
            for _ in range(1000):   # (the probe's answer, told from its thread)
                if not client._resolver._down:
                    break
                time.sleep(0.01)
            assert client.get_json(f"http://d7.portal.test:{port}/doc").data == DOC   # (d7 was not given up)
            assert caplog.records[-1].getMessage() == "the resolver answers again: host names are looked up again"
    finally:
        dropped.set()
        answers_again.set()


def test_a_moment_s_failure_of_the_resolver_for_names_asked_at_once_is_retried(portal, resolver):
    """A resolver that fails for a moment (restarted, the network blinking) fails with EAI_AGAIN
    every lookup under way: three portals' names asked at once, none answered. That is not a
    resolver down: their retries, once it answers again, serve every request (r23: the three
    made it down at once, and each request failed without a retry, its portal for the night)."""
    blinking = threading.Event()
    names = [f"p{number}.portal.test" for number in range(3)]
    for name in names:
        resolver.answers[name] = [(blinking, socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")),
                                  "127.0.0.1"]
    client = fast_client(max_attempts=5, connect_timeout=5.0)
    port = portal.url.rsplit(":", 1)[1]
    with cut_short_after(client), concurrent.futures.ThreadPoolExecutor(3) as threads:
        fetched = [threads.submit(client.get_json, f"http://{name}:{port}/doc") for name in names]
        while not all(resolver.asked[name] for name in names):   # (all three lookups under way)
            time.sleep(0.01)
        blinking.set()
        assert [future.result().data for future in fetched] == [DOC] * 3
    assert (client.stats.requests, client.stats.retries) == (6, 3)
    assert not client._resolver._down


def test_a_resolver_that_never_answers_holds_a_few_lookup_threads_however_many_names_are_asked(resolver):
    """A lookup that never ends holds its thread for good: a thread a name, every name a harvest
    asked (or a process's runs, each a client). At most _Lookups.AT_ONCE lookups run at a time; a
    name beyond them waits for a place within its connect timeout, and is unanswered."""
    dropped = threading.Event()
    names = [f"host{number}.hanging.test" for number in range(30)]
    for name in names:
        resolver.answers[name] = [dropped]
    try:
        for name in names:   # (a run each: none has seen the resolver down)
            with pytest.raises(LookupTimedOut, match=rf"^host name {re.escape(name)} did not resolve within 0\.05 s"):
                fast_client(max_attempts=1, connect_timeout=0.05).get_json(f"http://{name}/doc")
        lookups = [thread for thread in threading.enumerate() if thread.name == "civicat-lookup"]
        assert len(lookups) <= _Lookups.AT_ONCE == 8
        assert len([name for name in names if resolver.asked[name]]) <= 8
    finally:
        dropped.set()


def test_names_queued_behind_a_slow_resolver_s_lookups_wait_their_turn_and_are_not_given_up(portal, resolver):
    """A resolver that answers every name, slowly (0.3 s a name), asked 40 names at once: 8 are
    looked up at a time and the rest wait for a place. A place freed by an answer is no silence
    of the resolver: a name waited for one within its connect timeout, was counted unanswered,
    and after two such waits (twice the connect timeout) given up for the run, its portal failed
    though the resolver answered it and every other. Now a name waits for its place in turn for
    as long as the resolver answers (it is silent only when none of the lookups under way ends)."""
    names = [f"queued{number}.portal.test" for number in range(40)]
    for name in names:
        resolver.answers[name] = [(0.3, "127.0.0.1")]
    port = portal.url.rsplit(":", 1)[1]
    client = fast_client(max_attempts=5, connect_timeout=0.6)
    with cut_short_after(client), concurrent.futures.ThreadPoolExecutor(len(names)) as threads:
        fetched = list(threads.map(lambda name: client.get_json(f"http://{name}:{port}/doc").data, names))
    assert fetched == [DOC] * len(names)
    assert (client.stats.requests, client.stats.retries) == (40, 0)   # each name looked up once, in its turn
    assert all(resolver.asked[name] == 1 for name in names)


# the stop's handler (harvester.stopping) runs in the main thread wherever it is, here with the lock of
# the lookups held (as when a request of the main thread's looks up a host name)
STOP_UNDER_THE_LOOKUPS_LOCK = """
import signal, time
from harvester.http import HttpClient
from harvester.http.resolver import _LOOKUPS
client = HttpClient()
signal.signal(signal.SIGALRM, lambda signum, frame: client.cancel())
with _LOOKUPS._lock:
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    time.sleep(0.5)
print("cancelled")
"""


def test_a_stop_that_comes_while_its_thread_holds_the_lookups_lock_cancels_and_goes_on():
    """A stop wakes the lookups waiting for a place (HttpClient.cancel), under their lock. Its
    handler runs in the main thread between any two steps of it, one inside that lock too (the
    main thread's request looking up a name): a lock it could not take again left the main
    thread waiting for itself, and the thread that counts the signals waiting behind it in its
    own cancel, so a third Ctrl-C did not quit either (SIGKILL only)."""
    import subprocess
    import sys

    from tests.conftest import REPO

    ran = subprocess.run([sys.executable, "-c", STOP_UNDER_THE_LOOKUPS_LOCK], capture_output=True, text=True,
                         timeout=30, env={**os.environ, "PYTHONPATH": REPO})
    assert (ran.returncode, ran.stdout) == (0, "cancelled\n"), ran.stderr


def test_a_stop_drops_the_lookups_queued_behind_a_slow_resolver_s(portal, resolver):
    """20 names asked at once of a resolver that answers none yet: 8 looked up, 12 queued for a
    place. After Ctrl-C (the run's requests cancelled) each queued lookup still ran in its turn,
    as the ones under way ended, holding the stop for as long as the resolver took. The queued
    ones are dropped: their requests end Interrupted at once, their names never looked up."""
    answers = threading.Event()
    names = [f"stopped{number}.portal.test" for number in range(20)]
    for name in names:
        resolver.answers[name] = [(answers, "127.0.0.1")]
    port = portal.url.rsplit(":", 1)[1]
    client = fast_client(max_attempts=1, connect_timeout=60.0)
    threads = concurrent.futures.ThreadPoolExecutor(len(names))
    try:
        fetched = [threads.submit(client.get_json, f"http://{name}:{port}/doc") for name in names]
        while sum(resolver.asked[name] for name in names) < _Lookups.AT_ONCE:   # (8 under way, 12 queued)
            time.sleep(0.01)
        time.sleep(0.2)
        client.cancel()
        under_way = {name for name in names if resolver.asked[name]}
        queued = [future for name, future in zip(names, fetched) if name not in under_way]
        concurrent.futures.wait(queued, timeout=30)   # (the lookups under way still hang)
        assert len(queued) == len(names) - _Lookups.AT_ONCE and all(future.done() for future in queued)
        for future in queued:
            with pytest.raises(Interrupted, match=r"^the harvest was interrupted; host name stopped\d+\.portal\.test "
                                                  r"not looked up: http://"):
                future.result()
    finally:
        answers.set()
        threads.shutdown()
    assert {name for name in names if resolver.asked[name]} == under_way


def test_a_port_refused_for_the_limit_is_given_up_and_later_requests_fail_at_once(tmp_path, refusing_port):
    """A port that refuses every connection was asked 5 times a request with backoff (~17 s), and
    for 3 requests before its host was given up (~50 s). A host refusing for `refused_limit`
    seconds in a row (10 by default; 0.3 here) is down: its request ends, and every later one
    fails at once, naming the refused host and port."""
    client = fast_client(max_attempts=10_000, max_retry_seconds=600, refused_limit=0.3)
    port = refusing_port
    url = f"http://127.0.0.1:{port}/doc"
    with cut_short_after(client):
        with pytest.raises(TransientError, match=rf"^connection refused by 127\.0\.0\.1:{port} \(") as failed:
            client.get_json(url)
    made = client.stats.requests
    assert 1 < made < 10_000 and failed.value.error_type == "ConnectionRefused"
    for later in (url, url + "/other"):
        with pytest.raises(HostUnavailable, match=rf"^connection refused by 127\.0\.0\.1:{port} for 0\.3 s in a row; "
                                                  "not asked again this run"):
            client.get_json(later)
    assert client.stats.requests == made
    with cut_short_after(client), pytest.raises(TransientError, match="connection refused by"):
        client.download(url, tmp_path / "file.csv")   # (a download, not given up, is asked once: it is down)
    assert client.stats.requests == made + 1


def test_the_refusal_limit_is_set_by_the_environment(monkeypatch, refusing_port):
    """A portal served directly (no proxy answering 502 meanwhile) that takes longer than 10 s
    to restart would fail for the night: CIVICAT_HTTP_REFUSED_SECONDS sets how long a port may
    refuse in a row before its host is given up."""
    monkeypatch.setenv("CIVICAT_HTTP_REFUSED_SECONDS", "0.2")
    client = HttpClient.from_env(backoff_initial=0.01, backoff_max=0.05, max_attempts=10_000)
    url = f"http://127.0.0.1:{refusing_port}/doc"
    with cut_short_after(client), pytest.raises(TransientError, match="connection refused by"):
        client.get_json(url)
    with pytest.raises(HostUnavailable, match=r"for 0\.2 s in a row; not asked again this run"):
        client.get_json(url)


def test_refusals_further_apart_than_the_limit_are_no_run_of_them(refusing_port):
    """Two refusals more than `refused_limit` apart say nothing of the port between them (it may
    have listened): the second starts a new run, and the host is not given up for it."""
    client = fast_client(max_attempts=1, refused_limit=0.2)
    url = f"http://127.0.0.1:{refusing_port}/doc"
    for _ in range(2):
        with pytest.raises(TransientError, match="connection refused by") as failed:
            client.get_json(url)
        assert failed.value.host_down is None
        time.sleep(0.3)   # (a pause, not a timed assertion: the refusals' gap)
    with pytest.raises(TransientError, match="connection refused by"):
        client.get_json(url)
    assert client.stats.requests == 3


def test_a_port_refused_for_a_moment_is_asked_again_until_it_listens():
    """A server restarting refuses connections for a moment: those refusals keep the retries.
    Here the port is bound, refusing, and listens from the third attempt on."""
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    body = json.dumps(DOC).encode()

    def answer_once():
        connection, _ = port.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    client = fast_client(max_attempts=5)
    waits = 0
    retry_wait = client._sleep

    def restarted_after_two(seconds):
        nonlocal waits
        waits += 1
        if waits == 2:
            port.listen()
            threading.Thread(target=answer_once, daemon=True).start()
        retry_wait(seconds)

    client._sleep = restarted_after_two
    try:
        assert client.get_json(f"http://127.0.0.1:{port.getsockname()[1]}/doc").data == DOC
    finally:
        port.close()
    assert (client.stats.requests, client.stats.retries) == (3, 2)



@contextlib.contextmanager
def kept_alive(portal: LocalPortal):
    """`portal` served with its connections kept alive (as real portals do; werkzeug closes each
    after one answer): its URL, and the set of its clients' ports (one a connection made)."""
    ports: set[str] = set()

    def counting(environ, start_response):
        ports.add(environ["REMOTE_PORT"])
        return portal._wsgi(environ, start_response)

    server = serve_keep_alive(counting, poll_interval=0.05)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", ports
    finally:
        server.shutdown()
        server.server_close()


def test_a_thread_keeps_the_pools_of_the_16_hosts_it_used_last_and_no_more():
    """The pool manager keeps the pools (and their open connections) of the 16 hosts a thread
    used last. The adapter kept every pool it had found beside it: a thread that asked 100
    hosts (a records pull's downloads) held a socket open to each until the run ended. Now a
    busy host, asked between the requests to 17 others, keeps its connection throughout, and
    the host used longest ago is let go: asked again, it is connected to anew."""
    portal = LocalPortal()
    portal.serve_json("/doc", DOC)
    client = fast_client()
    with contextlib.ExitStack() as stack:
        (busy, busy_connections), *others = [stack.enter_context(kept_alive(portal)) for _ in range(18)]
        client.get_json(busy + "/doc")
        for other, _ in others:
            client.get_json(other + "/doc")
            client.get_json(busy + "/doc")
        (first, first_connections), (second, second_connections) = others[:2]
        client.get_json(first + "/doc")   # (let go as the 17th host was asked)
        client.get_json(others[-1][0] + "/doc")   # (kept: used last but one)
        assert portal.hits["/doc"] == 37 and len(busy_connections) == 1
        assert len(first_connections) == 2 and all(len(connections) == 1 for _, connections in others[1:])

def cached_bodies(tmp_path) -> dict[str, bytes]:
    """The cache's stored bodies by URL, read from its file as a next run would."""
    with sqlite3.connect(tmp_path / "http_cache" / ValidatorCache.CACHE_FILE) as connection:
        return {json.loads(meta)["url"]: body for meta, body in connection.execute("SELECT meta, body FROM validators")}


def set_cached_body(tmp_path, body: bytes) -> None:
    connection = sqlite3.connect(tmp_path / "http_cache" / ValidatorCache.CACHE_FILE)
    with connection:
        connection.execute("UPDATE validators SET body = ?", (body,))
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


def _members(*bodies: bytes) -> bytes:
    return b"".join(gzip.compress(body, mtime=0) for body in bodies)


LONG = b"".join(hashlib.sha256(str(i).encode()).hexdigest().encode() for i in range(200))


@pytest.mark.parametrize("encoded, whole", [
    (_members(b'{"a": 1}'), True),
    (_members(b'{"a": ', b'1}'), True),             # members one after another
    (_members(b'{"a": 1}') + b"<html>", False),     # garbage after a member: dropped
    (_members(LONG)[:-30], False),                  # cut short: what it holds
    (_members(LONG, LONG)[:-30], False),
    (b"", False),
])
@pytest.mark.parametrize("piece", [1 << 20, 7])   # (7: members and faults across the pieces fed)
def test_a_kept_gzip_body_is_decoded_as_urllib3_decodes_it(encoded, whole, piece, monkeypatch):
    monkeypatch.setattr("harvester.http.bodies.GZIP_PIECE_BYTES", piece)
    urllib3_decoder = GzipDecoder()
    expected = urllib3_decoder.decompress(encoded) + urllib3_decoder.flush()
    decoded, was_whole = _gunzip_capped(encoded, 1 << 20, "http://x", 200)
    assert decoded == expected and was_whole is whole
    assert len(decoded) > 6000 or whole or len(encoded) < 100


def test_a_kept_gzip_body_is_decoded_into_its_one_copy():
    """Decoded in one call, a kept gzip body was held twice, its bytes and their copy gathered:
    a 33 MB data.json served gzipped peaked at 2.5 times its size while it was listed."""
    import tracemalloc
    body = b"".join(b'{"identifier": "%d", "title": "Street Trees %d"}, ' % (i, i * 7919 % 10007) for i in range(600_000))
    encoded = gzip.compress(body, compresslevel=1)
    tracemalloc.start()
    try:
        decoded, whole = _gunzip_capped(encoded, 1 << 30, "http://x", 200)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert decoded == body and whole
    assert peak < 1.3 * len(body), f"{peak / len(body):.2f} times the body's size"


def test_a_kept_gzip_body_is_capped_and_checked():
    with pytest.raises(ResponseTooLarge):
        _gunzip_capped(gzip.compress(b"0" * (1 << 22)), 1 << 20, "http://x", 200)   # a gzip bomb
    with pytest.raises(TransientError, match="ContentDecodingError"):
        _gunzip_capped(b"not gzip at all", 1 << 20, "http://x", 200)


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


def test_one_watchdog_thread_serves_every_request(portal):
    client = fast_client()
    before = threading.active_count()
    for _ in range(20):
        get(client, portal)
    watchdogs = [t for t in threading.enumerate() if t.name == "civicat-watchdog"]
    assert len(watchdogs) == 1 and threading.active_count() <= before + 1


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


@pytest.fixture
def streamed_from_1_mb(monkeypatch):
    """Documents of 1 MB and more read a value at a time (in place of 16 MB): test bodies stay small."""
    monkeypatch.setattr("harvester.http.json_parsing.STREAMED_JSON_BYTES", 1 << 20)


def test_a_capped_json_list_is_the_document_cut_and_faults_stay_faults(streamed_from_1_mb):
    """Small documents are parsed whole and cut, large ones read an item at a time: both give
    json.loads' document with the list cut; a body cut short, extra data or an HTML page fail."""
    from harvester.http import capped_json
    from harvester.http.json_parsing import STREAMED_JSON_BYTES
    from tests.portals.base import MAINTENANCE_PAGE
    parse = capped_json({"columns": 3})
    items = [{"n": i, "tags": ["a", {"b": None}], "text": "é ü"} for i in range(STREAMED_JSON_BYTES // 40)]
    for document in ({"id": "x", "columns": items, "after": {"columns": [1] * 9}, "n": 1.5e3},
                     {"columns": items[:5]}, {"columns": []}, {"id": "no columns"}, ["not", "an object"]):
        for body in (json.dumps(document, indent=1).encode(), json.dumps(document).encode()):
            expected = json.loads(body)
            columns = expected.get("columns") if isinstance(expected, dict) else None
            if columns is not None:
                expected["columns"] = columns[:3]
            parsed = parse(body, "application/json", "http://x")
            assert parsed == expected and getattr(parsed, "left_out", 0) == max(0, len(columns or []) - 3)
    assert parse(json.dumps({"columns": items, "t": "\ud83d"}).encode(), "", "http://x")["t"] == "\ufffd"
    big = json.dumps({"columns": items}).encode()
    assert len(big) > STREAMED_JSON_BYTES
    for broken in (big[:-1], big[: len(big) // 2], big + b"x", MAINTENANCE_PAGE + b" " * STREAMED_JSON_BYTES):
        with pytest.raises(TransientError):
            parse(broken, "application/json", "http://x")


def test_a_large_capped_json_list_is_read_as_a_small_one_is(streamed_from_1_mb):
    """parse_json_body takes a body that starts with a UTF-8 byte order mark (json's own
    reading does) and refuses a trailing comma (orjson and json do): the item-at-a-time reading
    of a large body refused the mark and took the comma."""
    from harvester.http import capped_json
    from harvester.http.json_parsing import STREAMED_JSON_BYTES
    parse = capped_json({"columns": 3})
    for items in ([{"n": 1}] * 5, [{"n": i, "text": "x" * 40} for i in range(STREAMED_JSON_BYTES // 40)]):
        body = json.dumps({"columns": items, "id": "abcd-1234"}).encode()
        parsed = parse(b"\xef\xbb\xbf" + body, "application/json", "http://x")
        assert parsed["columns"] == items[:3] and parsed["id"] == "abcd-1234"
        for comma_before in (b"]", b"}"):
            at = body.rindex(comma_before)
            with pytest.raises(TransientError):
                parse(body[:at] + b"," + body[at:], "application/json", "http://x")


def test_capped_json_cuts_the_lists_it_names_inside_lists_and_objects(streamed_from_1_mb):
    """The lists a cap tree names deep in a document (each Discovery result's `columns_*`, each
    data.json dataset's `distribution`, in a catalog object or a bare array) are cut the same
    way in a small body, parsed whole, and a large one, read an item at a time; the objects
    that held them say how many items each lost, the others are plain dicts."""
    from harvester.http import CappedDocument, capped_json, dropped
    from harvester.http.json_parsing import STREAMED_JSON_BYTES
    wide = [f"column {i}" for i in range(STREAMED_JSON_BYTES // 10)]
    page = {"results": [{"resource": {"id": "narr-0001", "columns_name": ["a"], "n": 1}, "link": "x"},
                        {"resource": {"columns_name": wide, "columns_datatype": wide[:4], "id": "wide-0001",
                                      "deep": {"columns_name": wide[:9]}}, "columns_name": wide[:9]},
                        "not an object", {"resource": ["not", "an", "object"]}],
            "resultSetSize": 4}
    parse = capped_json({"results": {"*": {"resource": {"columns_name": 3, "columns_datatype": 3}}}})
    expected = json.loads(json.dumps(page))
    expected["results"][1]["resource"].update(columns_name=wide[:3], columns_datatype=wide[:3])
    small = dict(page, results=[page["results"][0], dict(page["results"][1], resource={
        **page["results"][1]["resource"], "columns_name": wide[:20]})] + page["results"][2:])
    for body, lost in ((json.dumps(page).encode(), len(wide) - 3), (json.dumps(small, indent=1).encode(), 17)):
        parsed = parse(body, "application/json", "http://x")
        assert parsed == json.loads(json.dumps(expected)) and type(parsed) is dict
        resource = parsed["results"][1]["resource"]
        assert isinstance(resource, CappedDocument) and dropped(resource) == {"columns_name": lost,
                                                                              "columns_datatype": 1}
        assert dropped(parsed["results"][0]["resource"]) == {} and type(parsed["results"][1]) is dict
    catalogue = {"dataset": [{"distribution": list(range(STREAMED_JSON_BYTES // 5)), "keyword": ["a"] * 5}]}
    parse = capped_json({"dataset": {"*": {"distribution": 2, "keyword": 2}}, "*": {"distribution": 2}})
    lost = len(catalogue["dataset"][0]["distribution"]) - 2
    for document, cut in ((catalogue, {"distribution": lost, "keyword": 3}), (catalogue["dataset"], {"distribution": lost})):
        parsed = parse(json.dumps(document).encode(), "", "http://x")
        dataset = (parsed["dataset"] if isinstance(parsed, dict) else parsed)[0]
        assert dataset["distribution"] == [0, 1] and dropped(dataset) == cut
    services = [{"service_code": str(i)} for i in range(STREAMED_JSON_BYTES // 10)]
    for document in (services, services[:5]):   # (a number alone: the document is the list cut)
        parsed = capped_json(2)(json.dumps(document).encode(), "", "http://x")
        assert parsed == services[:2] and dropped(parsed) == {"*": len(document) - 2}
    assert dropped(capped_json(2)(b'{"a": [1, 2, 3]}', "", "http://x")) == {}


def test_a_listings_entries_in_a_large_body_are_read_again_one_at_a_time(monkeypatch):
    """capped_json(entries=...): in a large body the entries of a listing served as one document
    (a bare array, or a catalog object's list) are Entries, each read again as it is iterated,
    as the body parsed whole gives it (cut, a lone surrogate made safe, long integers exact,
    past a byte order mark, the last of a repeated key); a body broken past the last entry
    fails when it is read, before any entry is handed out."""
    import harvester.http.json_parsing
    from harvester.http import Entries, capped_json, dropped
    datasets = [{"identifier": f"id-{i}", "title": "Café \ud83d ✓" if i == 7 else f"Dataset {i}",
                 "keyword": ["a", "b", "c"] if i % 2 else ["a"], "n": 12345678901234567890123} for i in range(30_000)]
    parse = capped_json({"dataset": {"*": {"keyword": 2}}, "*": {"keyword": 2}}, entries=("*", "dataset"))
    listed = json.dumps(datasets)
    bodies = [b"\xef\xbb\xbf" + json.dumps({"@type": "dcat:Catalog", "dataset": datasets, "after": [1, 2]}).encode(),
              listed.encode(), ('{"dataset": [{"identifier": "first"}], "dataset": ' + listed + "}").encode(),
              ('{"dataset": ' + listed + ', "dataset": [{"identifier": "last"}]}').encode()]
    for body in bodies:
        assert len(body) > 1 << 20
        monkeypatch.setattr(harvester.http.json_parsing, "STREAMED_JSON_BYTES", len(body) + 1)
        whole = parse(body, "application/json", "http://x")
        monkeypatch.setattr(harvester.http.json_parsing, "STREAMED_JSON_BYTES", 1 << 20)
        read = parse(body, "application/json", "http://x")
        entries = read if isinstance(read, Entries) else read["dataset"]
        expected = whole if isinstance(whole, list) else whole["dataset"]
        assert isinstance(entries, Entries) and len(entries) == len(expected)
        assert list(entries) == expected and [dropped(e) for e in entries] == [dropped(e) for e in expected]
        assert not isinstance(whole, dict) or {**read, "dataset": None} == {**whole, "dataset": None}
    assert list(entries) == [{"identifier": "last"}]
    assert [e["title"] for e in parse(bodies[1], "", "http://x")][7] == "Café \ufffd ✓"
    for broken in (bodies[0] + b"x", bodies[1][:-1], bodies[0].replace(b'"after"', b'"after" 1')):
        with pytest.raises(TransientError):
            parse(broken, "application/json", "http://x")


def test_a_repeated_key_of_a_capped_list_is_its_last_value_in_a_large_body_too(streamed_from_1_mb):
    """JSON's last value of a repeated key stands (orjson, json): a large body read a value at
    a time said its first value's list was cut when the last one was not, so the dataset got
    a false warning and its records pull was refused."""
    from harvester.http import capped_json, dropped
    from harvester.http.json_parsing import STREAMED_JSON_BYTES
    wide = json.dumps(list(range(STREAMED_JSON_BYTES // 5)))
    parse = capped_json({"columns": 3})
    for last in ("[1]", "null", '{"a": 1}'):
        body = ('{"columns": ' + wide + ', "columns": ' + last + "}").encode()
        parsed = parse(body, "application/json", "http://x")
        assert parsed == {"columns": json.loads(last)} and dropped(parsed) == {}
    parsed = parse(('{"columns": [1], "columns": ' + wide + "}").encode(), "application/json", "http://x")
    assert parsed == {"columns": [0, 1, 2]} and dropped(parsed) == {"columns": len(json.loads(wide)) - 3}


def test_a_large_body_is_never_held_while_it_is_read(tmp_path, streamed_from_1_mb, monkeypatch):
    """A large services.json read over HTTP and cut: its chunks were joined into a second copy,
    then decoded whole into a str up to four times its size (one emoji makes every character
    4 bytes): a 200 MB body peaked at 1 GB. Since f16 it was held once, its text decoded a window
    at a time; it is now written to a temporary file as it arrives, and read from there.
    (Served by a process of its own: a LocalPortal's thread answering it allocated up to its
    size again now and then, counted by tracemalloc with the client's; the bound of 1.5 times
    the body, which the client held whole, flaked under load.)"""
    import tracemalloc
    from harvester.http import capped_json, dropped
    from harvester.http.json_parsing import STREAMED_JSON_BYTES
    from tests.portals.base import files_served_apart
    monkeypatch.setattr("harvester.http.json_parsing.TEXT_WINDOW_BYTES", 1 << 16)   # (small beside the body)
    services = [{"service_code": f"{i:07d}", "service_name": "Pothole \U0001F6A7", "description": "x" * 80}
                for i in range(8 * STREAMED_JSON_BYTES // 140)]
    body = json.dumps(services, ensure_ascii=False).encode()
    (tmp_path / "services.json").write_bytes(body)
    with files_served_apart(tmp_path) as url:
        tracemalloc.start()
        try:
            data = fast_client().get_json(url + "/services.json", parse=capped_json(10)).data
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert data == services[:10] and dropped(data) == {"*": len(services) - 10}
    assert peak < 0.5 * len(body), f"{peak / len(body):.2f} times the body's size"


@pytest.fixture
def spooled_bodies(monkeypatch):
    """Every body spooled to a temporary file, recorded (its file closed or not); with
    `interrupt_at` set, a KeyboardInterrupt raised as a body reaches that size."""
    import harvester.http.bodies

    class Made(list):
        interrupt_at = None

    made = Made()

    class Recorded(harvester.http.bodies._SpooledBody):
        def __init__(self):
            super().__init__()
            made.append(self)

        def write(self, data):
            super().write(data)
            if made.interrupt_at is not None and self.size >= made.interrupt_at:
                raise KeyboardInterrupt

    monkeypatch.setattr(harvester.http.bodies, "_SpooledBody", Recorded)
    return made


def test_a_large_body_s_temporary_file_is_closed_once_read_or_refused(portal, streamed_from_1_mb, spooled_bodies):
    """A body of STREAMED_JSON_BYTES and more is written to a temporary file as it arrives; a
    document read from it whole (a services list cut to its first items), or refused (cut short,
    not JSON, over the response cap), leaves the file closed when its request returns or fails."""
    from harvester.http import capped_json
    services = [{"service_code": f"{i:07d}", "description": "x" * 80} for i in range(20_000)]
    body = json.dumps(services).encode()
    assert len(body) > 1 << 20
    portal.static["/services.json"] = RawBody(body, "application/json")
    portal.static["/cut.json"] = RawBody(body[:-5], "application/json")
    portal.static["/bad.json"] = RawBody(body[:-1] + b", oops]", "application/json")
    client = fast_client(max_attempts=1)
    assert get(client, portal, "/services.json", parse=capped_json(3)).data == services[:3]
    for path, fault in (("/cut.json", "ends inside a value"), ("/bad.json", "the body is not JSON")):
        with pytest.raises(TransientError, match=fault):
            get(client, portal, path, parse=capped_json(3))
    with pytest.raises(ResponseTooLarge):
        get(fast_client(max_bytes=len(body) - 1000), portal, "/services.json", parse=capped_json(3))
    assert len(spooled_bodies) == 4 and all(spooled.closed for spooled in spooled_bodies)
    spooled_bodies.interrupt_at = 2 << 20   # Ctrl-C while the body arrives
    with pytest.raises(KeyboardInterrupt):
        get(client, portal, "/services.json", parse=capped_json(3))
    assert len(spooled_bodies) == 5 and all(spooled.closed for spooled in spooled_bodies)


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="a file size limit is set with setrlimit")
def test_a_large_body_whose_temporary_file_cannot_be_written_is_held_in_memory(portal, tmp_path, streamed_from_1_mb,
                                                                             spooled_bodies, monkeypatch, caplog):
    """A large body goes to a temporary file; a disk that fills midway (here: a file size limit,
    whose write fails as ENOSPC does) or a temporary folder that is missing failed the request
    with a bare OSError (no address, not an HTTP error: an ArcGIS layer's lookup failed its whole
    portal), where the body held in memory had been read. It is held in memory again, with a warning."""
    import resource
    from harvester.portals.dcat_us import DOCUMENT
    datasets = [{"identifier": f"{i:07d}", "title": "Parcels \u00e9", "keyword": ["a", "b"]} for i in range(40_000)]
    body = json.dumps(datasets, ensure_ascii=False).encode()
    assert 2 << 20 < len(body) < 4 << 20
    portal.static["/data.json"] = RawBody(body, "application/json")
    plain = {"Accept-Encoding": "identity"}
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # (a write past the limit fails, EFBIG)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, limit[1]))
    try:
        listed = list(get(fast_client(), portal, "/data.json", parse=DOCUMENT, headers=plain).data)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, handler)
    assert listed == datasets
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    assert list(get(fast_client(), portal, "/data.json", parse=DOCUMENT, headers=plain).data) == datasets
    assert len(spooled_bodies) == 1 and spooled_bodies[0].closed   # (the one the full disk stopped)
    assert caplog.text.count("a large response body is held in memory") == 2


def test_a_spooled_body_is_read_as_its_bytes_and_cached_gzip_encoded(portal, tmp_path, streamed_from_1_mb,
                                                                     spooled_bodies):
    """A spooled body reads as the bytes it holds (a byte, slices from either end); a body sent
    without gzip goes to the validator cache gzip-encoded from the file, its digest the body's,
    and a 304 gives back the same document."""
    from harvester.http import capped_json
    from harvester.http.bodies import _SpooledBody
    body = json.dumps({"results": [{"id": i, "text": "é" * 30} for i in range(30_000)]}, ensure_ascii=False).encode()
    spooled = _SpooledBody()
    for start in range(0, len(body), 100_000):
        spooled.write(body[start:start + 100_000])
    assert len(spooled) == len(body) and spooled[:] == body and spooled[-40:] == body[-40:]
    assert spooled[5] == body[5] and spooled[-1] == body[-1] and spooled[1000:1000 + 3 * 2**20] == body[1000:]
    assert gzip.decompress(spooled.gzipped()) == body and spooled.sha256() == hashlib.sha256(body).hexdigest()
    spooled.close()
    portal.static["/big.json"] = RawBody(body, "application/json")
    parse = capped_json({"results": 5})
    plain = {"Accept-Encoding": "identity"}   # (the test portal gzips whatever a client accepts)
    client = fast_client(tmp_path)
    first = get(client, portal, "/big.json", parse=parse, conditional=True, headers=plain)
    client.cache.flush()
    assert first.digest == hashlib.sha256(body).hexdigest() and first.data == {"results": json.loads(body)["results"][:5]}
    again = get(fast_client(tmp_path), portal, "/big.json", parse=parse, conditional=True, headers=plain)
    assert again.not_modified and again.data == first.data
    # (the test's, the 200's, and the 304's: decoded from the cache into a file of its own)
    assert len(spooled_bodies) == 3 and all(spooled.closed for spooled in spooled_bodies)


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


def test_a_body_that_is_not_json_is_the_same_fault_read_whole_or_a_window_at_a_time(monkeypatch):
    """Each fault of a body behind a 200 is a TransientError (never an empty catalogue) saying
    what and at which byte, for its URL, the same whether the body is parsed whole (under 16 MB)
    or read a window at a time: the latter said "string index out of range" of a body cut short."""
    import harvester.http.json_parsing
    from harvester.http import capped_json
    from tests.portals.base import MAINTENANCE_PAGE
    items = ",".join(json.dumps({"n": i, "name": f"data ✓ {i}", "size": 12.5}, ensure_ascii=False) for i in range(60_000))
    body = ('{"results": [' + items + '], "count": 60000}').encode()
    in_string, in_number = body.rindex(b"data \xe2\x9c\x93") + 3, body.index(b"12.5", len(body) - 100) + 2
    latin1 = body.index("✓ 59999".encode())   # (a Latin-1 byte in its place)
    complete = "the body is not complete JSON, it ends inside a value at byte {size}"
    faults = {
        "in a string": (body[:in_string], complete),
        "in a number": (body[:in_number], complete),
        "in a number's fraction": (body[:in_number + 1], complete),
        "in a number that is an item": (b'{"results": [' + b"1.5, " * 300_000 + b"1.", complete),
        "in a capped list": (body[:len(body) // 2], complete),
        "after the last item": (body[:body.rindex(b"]") + 1], complete),
        "in a literal": (body[:-1] + b', "more": tr', complete),
        "trailing garbage": (body + b"\n<!-- cached -->", f"the body is not JSON: .* at byte {len(body) + 1} "),
        "a second document": (body + b' {"count": 1}', f"the body is not JSON: .* at byte {len(body) + 1} "),
        "bad middle": (body.replace(b'"size": 12.5}', b'"size": 12.5,}', 1),
                       f"the body is not JSON: .* at byte {body.index(b'12.5') + 5} "),
        "an HTML page": (MAINTENANCE_PAGE + b" " * len(body), "HTML page instead of JSON"),
        "an empty body": (b" \n" * len(body), "empty body instead of JSON"),
        "not UTF-8": (body[:latin1] + b"\xe9" + body[latin1 + 3:],
                      f"the body is not JSON: not UTF-8 \\(0xe9\\) at byte {latin1} "),
    }
    parse = capped_json({"results": 5})
    for case, (broken, expected) in faults.items():
        messages = []
        assert len(broken) > 1 << 20
        for streamed_from in (len(broken) + 1, 1 << 20):   # parsed whole, then a window at a time
            monkeypatch.setattr(harvester.http.json_parsing, "STREAMED_JSON_BYTES", streamed_from)
            monkeypatch.setattr(harvester.http.json_parsing, "TEXT_WINDOW_BYTES", 4096)   # (many windows)
            with pytest.raises(TransientError) as fault:
                parse(broken, "application/json", "http://portal.test/api")
            messages.append(str(fault.value))
        pattern = expected.format(size=len(broken))
        assert all(re.search(pattern, message) and message.endswith("(http://portal.test/api)")
                   for message in messages), (case, messages)
        assert messages[0] == messages[1] or case == "bad middle", case   # (json's words for it vary by version)


def test_an_integer_past_64_bits_is_read_exactly_whole_or_a_window_at_a_time(monkeypatch):
    """orjson reads 12345678901234567890123 as 1.2345678901234568e+22 (it does not raise): an id
    that large lost its digits in a body under 16 MB, and kept them in a larger one."""
    import harvester.http.json_parsing
    from harvester.http import capped_json
    long_ids = [12345678901234567890123, 18446744073709551616, -9223372036854775809, 2 ** 64 - 1]
    document = {"results": [{"id": n, "text": "x" * 100} for n in long_ids * 5000], "count": 20000}
    body = json.dumps(document).encode()
    for streamed_from in (len(body) + 1, 1 << 20):
        monkeypatch.setattr(harvester.http.json_parsing, "STREAMED_JSON_BYTES", streamed_from)
        parsed = capped_json({"results": 8})(body, "application/json", "http://x")
        assert [item["id"] for item in parsed["results"]] == long_ids * 2
        assert all(type(item["id"]) is int for item in parsed["results"])


def test_an_integer_past_64_bits_is_found_across_the_scan_pieces_and_a_shorter_run_is_not():
    """The scan for 19 digits reads the body a megabyte at a time: a run across two pieces is
    found (read exactly), 18 digits are not (orjson's fast parse keeps them)."""
    from harvester.http import parse_json_body
    from harvester.http.json_parsing import _DIGIT_SCAN_BYTES
    before_the_run = len(b'{"text": "' + b'", "id": ')
    for run in (b"12345678901234567890123", b"1" * 19, b"1" * 18):
        for starts_at in (_DIGIT_SCAN_BYTES - 5, _DIGIT_SCAN_BYTES - len(run) + 1, _DIGIT_SCAN_BYTES, 40):
            body = b'{"text": "' + b"x" * (starts_at - before_the_run) + b'", "id": ' + run + b"}"
            assert body.index(run) == starts_at
            parsed = parse_json_body(body, "application/json", "http://x")
            assert parsed["id"] == int(run) and type(parsed["id"]) is int, (run, starts_at)


def test_a_number_too_long_for_python_is_a_fault_of_the_body_whole_or_a_window_at_a_time(portal, monkeypatch):
    """Python reads no integer of more than 4,300 digits: its ValueError escaped as no HttpError,
    so a dataset's details lookup holding one failed its whole portal (orjson, before integers
    past 64 bits were read by json, refused it as invalid JSON)."""
    import harvester.http.json_parsing
    from harvester.http import capped_json
    body = b'{"results": [{"id": ' + b"9" * 5000 + b', "text": "' + b"x" * 2_000_000 + b'"}], "count": 1}'
    portal.static["/long"] = RawBody(body, "application/json")
    with pytest.raises(TransientError, match=r"the body is not JSON: Exceeds the limit \(4300 digits\)"):
        get(fast_client(max_attempts=1), portal, "/long")
    monkeypatch.setattr(harvester.http.json_parsing, "STREAMED_JSON_BYTES", 1 << 20)   # (a window at a time)
    with pytest.raises(TransientError, match=r"the body is not JSON: Exceeds the limit \(4300 digits\)"):
        capped_json({"results": 8})(body, "application/json", "http://x")


@pytest.mark.parametrize("answer", ["decoded", "kept gzip, over the cap as it came", "kept gzip, over it decoded",
                                    "not encoded, over the cap by its Content-Length"])
def test_an_answer_over_the_cap_keeps_the_start_of_its_body_decoded(portal, tmp_path, answer):
    """Every way an answer is found over the cap keeps the start of its body decoded, as far as it
    was read (ResponseTooLarge.head: up to HEAD_OF_OVERSIZED bytes, here past the 50,000-byte
    cap), from which value_in_head reads what the body starts with."""
    from harvester.http import value_in_head
    from harvester.http.bodies import HEAD_OF_OVERSIZED
    filler = "ab" * 100_000 if "decoded" in answer else os.urandom(100_000).hex()   # (gzip: 2 to 1, or 1,000 to 1)
    body = json.dumps({"results": [{"resource": {"name": "a dataset", "id": "abcd-1234", "description": filler}}],
                       "resultSetSize": 1}).encode()
    portal.static["/big.json"] = RawBody(body, "application/json")
    client = fast_client(tmp_path if "kept" in answer else None, max_bytes=50_000)
    identity = {"Accept-Encoding": "identity"} if "not encoded" in answer else None
    with pytest.raises(ResponseTooLarge) as raised:
        get(client, portal, "/big.json", conditional="kept" in answer, headers=identity)
    head = raised.value.head
    assert head == body[:len(head)] and len(head) == (50_001 if answer == "kept gzip, over it decoded" else
                                                      HEAD_OF_OVERSIZED)
    assert value_in_head(raised.value.head, ("results", 0, "resource", "id")) == "abcd-1234"
    assert value_in_head(raised.value.head, ("resultSetSize",)) is None   # (after the head's end)


@pytest.mark.parametrize("head, path, value", [
    (b'{"results": [{"resource": {"name": "x", "id": "abcd-1234", "description": "cut', ("results", 0, "resource", "id"),
     "abcd-1234"),
    (b'\xef\xbb\xbf {"a": [1, {"b": [true, "x"]}, 3], "c": ', ("a", 1, "b", 1), "x"),
    (b'{"results": [{"resource": {"name": "a name cut sh', ("results", 0, "resource", "id"), None),
    (b'{"n": 12', ("n",), None),                   # a number the head may have cut
    (b'{"n": 12, ', ("n",), 12),
    (b'{"results": []}', ("results", 0), None),
    (b'{"results": {"0": 1}}', ("results", 0), None),
    (b'["not", "an", "object"]', ("results",), None),
    (b'{"a": 1 "b": 2}', ("b",), None),             # no JSON
    (b'{"name": "caf\xc3', ("name",), None),        # cut inside a character
])
def test_value_in_head_reads_only_what_the_start_of_a_document_holds_whole(head, path, value):
    from harvester.http import value_in_head
    assert value_in_head(head, path) == value


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
