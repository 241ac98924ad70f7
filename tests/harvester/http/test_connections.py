"""Connections against local servers (no mocked requests): URLs refused before any request, redirects,
headers that must arrive in time, refused ports, certificates, pools kept."""
import contextlib
import json
import re
import socket
import threading
import time

import pytest

from bench.serve import serve_keep_alive
from harvester.http import CertificateRejected, HostUnavailable, HttpClient, Interrupted, InvalidUrl, TransientError
from tests.conftest import fast_client
from tests.harvester.http.conftest import (DOC, accepting_and_never_answering, asked_in_a_thread, unbounded_wait_fails,
                                           dripping_headers, left_unclosed_by_ctrl_c, stopped_while)
from tests.portals.base import LocalPortal


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


def test_a_server_dripping_its_headers_is_cut_off_at_the_total_time_bound():
    """Read timeouts apply per socket read, and the body's watchdog starts once the headers
    are in: a server (or a broken proxy) sending a header line every so often, each well
    inside the read timeout, held the request as long as it liked (http.client reads up to
    100 header lines of 64 KB, a byte at a time if they come so)."""
    client = fast_client(timeout=0.4, max_attempts=1)
    with dripping_headers() as port:
        # cut off at 2 x 0.4 s: a client that waited would fail otherwise, after 100 lines of
        # 0.2 s (http.client's "got more than 100 headers")
        with pytest.raises(TransientError, match="response headers took over 1s to arrive"):
            client.get_json(f"http://127.0.0.1:{port}/slow")


def test_the_server_that_never_answers_takes_no_connection_after_its_test():
    """(The tests' helper.) Its callers closed its listening socket from under its thread waiting in
    accept(): Linux keeps such a socket listening, so it took connections after its test, its thread
    left running on a descriptor's number the next tests' sockets take (as the proxies of the tests
    did: session 43's 407 flake). It ends itself: shut, its thread ended, everything closed."""
    with accepting_and_never_answering() as (server, held, read):
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as asking:
            asking.sendall(b"GET /doc HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert read.wait(10)
    assert server.fileno() == -1 and [connection.fileno() for connection in held] == [-1]
    assert not [thread for thread in threading.enumerate() if thread.name == f"never-answering-{port}"]
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=10):
        pass   # (refused: or another process's server, given the port since)
    assert len(held) == 1


@pytest.mark.parametrize("asked", ["page", "download"])
def test_a_stop_ends_a_wait_for_response_headers_at_once(tmp_path, asked):
    """A stop shut the sockets of bodies being read, but a request still waiting for its status
    line and headers (a server that accepts and never answers) waited for the headers' deadline:
    twice the read timeout, 600 s here (120 s by default). The stop shuts the socket of every
    request in flight: it ends at once with Interrupted, and a download leaves nothing written."""
    client = fast_client(max_attempts=1, timeout=300.0)
    # (the event named `read`: named `asked` until session 44, it hid the case's `asked`, and the
    # "download" case asked a page)
    with accepting_and_never_answering() as (server, _, read):
        url = f"http://127.0.0.1:{server.getsockname()[1]}/data"

        def waiting_for_the_headers():
            assert read.wait(60), "the client never asked"
            time.sleep(0.2)   # (the client most likely waiting for the headers by now; if not, the stop is seen next)

        stopped = stopped_while(client, asked, url, tmp_path, waiting_for_the_headers, "the wait for the headers")
    assert "interrupted" in str(stopped) and url in str(stopped)


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


def test_a_port_refused_for_the_limit_is_given_up_and_later_requests_fail_at_once(tmp_path, refusing_port):
    """A port that refuses every connection was asked 5 times a request with backoff (~17 s), and
    for 3 requests before its host was given up (~50 s). A host refusing for `refused_limit`
    seconds in a row (10 by default; 0.3 here) is down: its request ends, and every later one
    fails at once, naming the refused host and port."""
    client = fast_client(max_attempts=10_000, max_retry_seconds=600, refused_limit=0.3)
    port = refusing_port
    url = f"http://127.0.0.1:{port}/doc"
    with unbounded_wait_fails(client):
        with pytest.raises(TransientError, match=rf"^connection refused by 127\.0\.0\.1:{port} \(") as failed:
            client.get_json(url)
    made = client.stats.requests
    assert 1 < made < 10_000 and failed.value.error_type == "ConnectionRefused"
    for later in (url, url + "/other"):
        with pytest.raises(HostUnavailable, match=rf"^connection refused by 127\.0\.0\.1:{port} for 0\.3 s in a row; "
                                                  "not asked again this run"):
            client.get_json(later)
        with pytest.raises(HostUnavailable, match=rf"^connection refused by 127\.0\.0\.1:{port} for 0\.3 s in a row"):
            client.download(later, tmp_path / "file.csv")   # (a download too: it was asked once more)
    assert client.stats.requests == made


def test_the_refusal_limit_is_set_by_the_environment(monkeypatch, refusing_port):
    """A portal served directly (no proxy answering 502 meanwhile) that takes longer than 10 s
    to restart would fail for the night: CIVICAT_HTTP_REFUSED_SECONDS sets how long a port may
    refuse in a row before its host is given up."""
    monkeypatch.setenv("CIVICAT_HTTP_REFUSED_SECONDS", "0.2")
    client = HttpClient.from_env(backoff_initial=0.01, backoff_max=0.05, max_attempts=10_000)
    url = f"http://127.0.0.1:{refusing_port}/doc"
    with unbounded_wait_fails(client), pytest.raises(TransientError, match="connection refused by"):
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


def _connecting_to(port: int, besides: set[int]) -> list[int]:
    """The local ports of the sockets of this machine waiting in SYN_SENT for 127.0.0.1:`port`
    (/proc/net/tcp), but for those `besides` (the fillers of an accept queue)."""
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in list(table)[1:]]
    local_ports = (int(fields[1].rsplit(":", 1)[1], 16) for fields in rows
                   if fields[2] == f"0100007F:{port:04X}" and fields[3] == "02")
    return [local_port for local_port in local_ports if local_port not in besides]


def _filled_accept_queue() -> tuple[socket.socket, int, list[socket.socket]]:
    """A socket listening on 127.0.0.1 whose accept queue is full, its port and the sockets filling
    it: a connect to it waits, its SYNs dropped, for as long as its timeout."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(0)
    port = listening.getsockname()[1]
    held = []
    for _ in range(3):   # (the queue of a backlog of 0 holds one or two: the client's SYNs dropped)
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        held.append(filler)
    time.sleep(0.1)
    return listening, port, held


STALLED = ["an accept queue full", "a TLS handshake never answered"]


@contextlib.contextmanager
def _stalled(server: str):
    """A server the connection waits on (one of STALLED): the URL to ask it, the wait for the client
    to be in that wait (failing after 60 s, far beyond any load, saying what it saw); the server and
    the connections it holds closed after.

    Each wait is for a state that lasts until the stop: a connect whose SYNs the full queue drops
    is in SYN_SENT throughout, told from the fillers' by its port; a TLS handshake, by the hello the
    server read. (SYN_SENT was taken for the handshake's start too, but a connect on 127.0.0.1 is
    in it for an instant, answered at once: seen there, then seen no more, the wait failed saying
    the client never began to connect, once in four CI runs.)"""
    if server == "an accept queue full":
        listening, port, held = _filled_accept_queue()   # (no thread: closed below)
        fillers = {filler.getsockname()[1] for filler in held}
        url = f"http://127.0.0.1:{port}/data"

        def waiting():
            started = time.monotonic()
            while not (connecting := _connecting_to(port, fillers)) and time.monotonic() < started + 60:
                time.sleep(0.01)
            assert connecting, (f"the client never began to connect: no socket but the fillers' {sorted(fillers)} in "
                                f"SYN_SENT for port {port} after {time.monotonic() - started:.1f} s (all in it: "
                                f"{_connecting_to(port, set())})")
        try:
            yield url, waiting
        finally:
            listening.close()
            for connection in held:
                connection.close()
        return
    with accepting_and_never_answering() as (listening, held, hello):
        url = f"https://127.0.0.1:{listening.getsockname()[1]}/data"

        def waiting():
            started = time.monotonic()
            assert hello.wait(60), (f"the client never began the TLS handshake: no hello read in "
                                    f"{time.monotonic() - started:.1f} s, {len(held)} connection(s) accepted")
        yield url, waiting


@pytest.mark.parametrize("asked", ["page", "download"])
@pytest.mark.parametrize("server", STALLED)
def test_a_stop_ends_a_connect_or_a_tls_handshake_at_once(tmp_path, asked, server):
    """A stop shut the sockets of requests waiting for headers or reading a body, but not of one
    still connecting: a server whose accept queue is full (its SYNs dropped), or one that accepts
    and never answers the TLS handshake, held the request until the connect timeout (300 s here,
    10 s by default, each retry again). The stop shuts the socket being connected: the request
    ends at once with Interrupted, and a download leaves nothing written."""
    client = fast_client(max_attempts=1, timeout=300.0, connect_timeout=300.0)
    with _stalled(server) as (url, waiting):
        stopped = stopped_while(client, asked, url, tmp_path, waiting, "the connect")
    assert str(stopped) == f"the harvest was interrupted while connecting: {url}"


@pytest.mark.parametrize("asked", ["page", "download"])
def test_a_stop_in_the_instant_before_the_connect_ends_it_at_once(tmp_path, asked, monkeypatch):
    """The socket being connected was given to the stop before its connect, and the stop looked at
    once more before it: a stop that came between that look and the connect shut a socket not yet
    connecting, which the connect does not see, and the request waited for the connect timeout (300 s
    here, 10 s by default). The stop is made here at that instant, as the connect is called."""
    listening, port, held = _filled_accept_queue()
    client = fast_client(max_attempts=1, timeout=300.0, connect_timeout=300.0)
    stops = []

    class StoppedAsItConnects(socket.socket):
        def connect(self, address):
            self._stop_now(address)
            return super().connect(address)

        def connect_ex(self, address):
            self._stop_now(address)
            return super().connect_ex(address)

        def _stop_now(self, address):
            if address[1] == port and not stops:
                stops.append(address)
                client.cancel()

    monkeypatch.setattr(socket, "socket", StoppedAsItConnects)
    url = f"http://127.0.0.1:{port}/data"
    asking, outcomes = asked_in_a_thread(client, asked, url, tmp_path / "data.csv")
    try:
        asking.join(60)   # (far beyond any load: the connect timeout is 300 s)
        assert not asking.is_alive(), "the connect went on after the stop"
    finally:
        listening.close()   # (the connect then refused: the thread ends)
        for connection in held:
            connection.close()
        asking.join(60)
    assert stops, "the stop was never made as the connect was called"
    assert len(outcomes) == 1 and isinstance(outcomes[0], Interrupted), outcomes
    assert str(outcomes[0]) == f"the harvest was interrupted while connecting: {url}"
    assert list(tmp_path.iterdir()) == []


def test_a_connection_tried_at_a_second_address_closes_its_copy_of_the_first():
    """A host of several addresses is connected to one after another, each socket handed to the
    run's stop in turn: the copy kept of the address given up is closed then, not left to the
    garbage collector (a ResourceWarning, a descriptor held meanwhile)."""
    from harvester.http.connections import _Connecting

    connecting = _Connecting()
    first, first_peer = socket.socketpair()
    second, second_peer = socket.socketpair()
    with first, first_peer, second, second_peer:
        connecting.holds(first)
        copy_of_first = connecting._sock
        connecting.holds(second)
        assert copy_of_first.fileno() == -1
        assert connecting._sock.fileno() != -1
        connecting.close()
        assert connecting._sock is None


@pytest.mark.parametrize("server", STALLED)
def test_a_ctrl_c_in_a_connect_or_a_tls_handshake_closes_its_socket(server):
    """A one-worker harvest makes its requests in the main thread, where Ctrl-C raises
    KeyboardInterrupt in the wait for a connect (a server whose accept queue is full) or a TLS
    handshake (one that never answers it): only an OSError closed the socket, and ssl's handshake
    socket is its own until the handshake ends; either was left to the garbage collector (a
    ResourceWarning, its descriptor held until then). Closed whatever ends the wait."""
    with _stalled(server) as (url, waiting, *_):
        left = left_unclosed_by_ctrl_c(fast_client(max_attempts=1, timeout=300.0, connect_timeout=300.0), url, waiting)
    assert left == []


@pytest.mark.parametrize("server", STALLED)
def test_a_ctrl_c_in_a_connect_or_a_tls_handshake_closes_the_connection_s_sockets_alone(server):
    """The sockets a Ctrl-C left were looked for in the frames its KeyboardInterrupt went through
    (ssl's handshake socket, a local of ssl's), and every socket found there was closed: the signal
    handler's own too (its wakeup socket, as an event loop's handler writes to), from under the code
    that holds it. A connection's sockets are closed where they are made now (the TLS one by the
    context that makes it), none looked for in another's frames: the handler's stays open."""
    wakeup, woken = socket.socketpair()
    with wakeup, woken, _stalled(server) as (url, waiting, *_):
        left = left_unclosed_by_ctrl_c(fast_client(max_attempts=1, timeout=300.0, connect_timeout=300.0), url, waiting,
                                       wakeup)
        assert wakeup.fileno() != -1, "the handler's own socket was closed"
        assert woken.recv(1) == b"!"
    assert left == []
