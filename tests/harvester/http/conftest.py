"""What the tests of harvester/http/ share: the local portal (over TLS too), its client calls, large-body
settings, servers that stall a request, a request stopped or Ctrl-C'd mid-wait."""
import base64
import contextlib
import gc
import signal
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

from bench.serve import self_signed_tls, serve_keep_alive
from harvester.http import Interrupted
from tests.portals.base import LocalPortal

DOC = {"results": [{"id": i, "name": f"dataset {i}"} for i in range(200)], "resultSetSize": 200}


@pytest.fixture
def portal():
    with LocalPortal() as p:
        p.serve_json("/doc", DOC)
        yield p


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


def get(client, portal, path="/doc", **kw):
    return client.get_json(portal.url + path, **kw)


@contextlib.contextmanager
def unbounded_wait_fails(client, seconds=60):
    """Waits the test expects to end in well under a second, ended after `seconds` (far beyond
    any load) by cancelling the run: the test then fails, saying its wait was not bounded (no
    elapsed time is asserted). The cancel makes the client raise Interrupted, a KeyboardInterrupt:
    let out of the test, it ended the whole pytest session (the tests after it never ran, and
    the run showed few tests), so a cut made here is turned into this test's failure, whatever
    the test made of the Interrupted (raised on, caught, or asserted against). (tests/conftest.py's
    fail_pull_after, which makes a records pull fail, was named as this one until session 37.)"""
    cut = threading.Event()

    def cut_short():
        cut.set()
        client.cancel()

    def not_bounded() -> str:
        return (f"the wait was not bounded: still waiting after {seconds:g} s (unbounded_wait_fails cancelled the "
                "client, which raised Interrupted)")

    timer = threading.Timer(seconds, cut_short)
    timer.start()
    try:
        yield
    except BaseException:
        if cut.is_set():   # (the Interrupted, or what the test made of it, shown as this failure's context)
            pytest.fail(not_bounded(), pytrace=False)
        raise   # (a Ctrl-C of the run's own, or the test's: as it was)
    finally:
        timer.cancel()
    if cut.is_set():
        pytest.fail(not_bounded(), pytrace=False)


@contextlib.contextmanager
def dripping_headers():
    """A server on 127.0.0.1 that reads a request and answers its status line, then a header line
    every 0.2 s, never ending them: its port."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip():
        try:
            connection, _ = server.accept()
        except OSError:   # (closed: the test is over)
            return
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\n")
            while not stop.wait(0.2):
                try:
                    connection.sendall(b"X-Drip: a\r\n")
                except OSError:
                    return

    dripping = threading.Thread(target=drip, daemon=True)
    dripping.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        stop_accepting(server, [dripping])


@contextlib.contextmanager
def accepting_and_never_answering():
    """`with accepting_and_never_answering() as (server, held, asked):` a server that accepts and reads
    the request, then answers nothing: itself, the connections it holds, and an event set once a
    request has been read. It owns its end: shut, its thread ended, then closed with what it holds.
    Closed by its callers from under the thread waiting in accept() (until session 44), it stayed
    listening (Linux) and took connections after its test, its thread left running on descriptor
    numbers the next tests' sockets take (as LocalProxy's did: the 407 flake of session 43)."""
    server = socket.create_server(("127.0.0.1", 0))
    held, asked = [], threading.Event()

    def accept():
        while True:
            try:
                connection, _ = server.accept()
            except OSError:   # (shut: the test is over)
                return
            held.append(connection)
            with contextlib.suppress(OSError):
                if connection.recv(65536):
                    asked.set()

    accepting = threading.Thread(target=accept, name=f"never-answering-{server.getsockname()[1]}", daemon=True)
    accepting.start()
    try:
        yield server, held, asked
    finally:
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_RDWR)
        ending = time.monotonic() + 30   # (a bound on a teardown: the thread ends at once once shut)
        while accepting.is_alive() and time.monotonic() < ending:
            for connection in list(held):   # (its thread may be reading one, accepted as the server was shut)
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            accepting.join(0.05)
        server.close()
        for connection in held:
            connection.close()


def relay(client: socket.socket, portal: socket.socket) -> None:
    """What each of two connected sockets sends, sent on to the other, until both have ended (a
    proxy's relay: the SOCKS and https:// proxies of the tests)."""
    def copy(source, sink):
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    back = threading.Thread(target=copy, args=(portal, client), daemon=True)
    back.start()
    copy(client, portal)
    back.join()   # (both ways ended before the caller's thread does: LocalProxy.__exit__ waits for it)


def stop_accepting(server: socket.socket, threads=()) -> None:
    """`server` (a listening socket) shut, which ends an accept() waiting on it, then, once `threads`
    (those that accept on it) have ended, closed. Closed alone, it stayed listening while a thread
    waited in accept() on it (Linux), and took one more connection after its test."""
    with contextlib.suppress(OSError):
        server.shutdown(socket.SHUT_RDWR)
    for thread in threads:
        thread.join(30)
    server.close()


class LocalProxy:
    """A proxy server on 127.0.0.1 of the tests, a thread a connection (`_serve`, a subclass's), its
    connections closed as it is, once its threads have ended (see __exit__)."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._held: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self.port = self._server.getsockname()[1]

    def __enter__(self):
        self._start(self._accept)
        return self

    def __exit__(self, *exc) -> None:
        # Its sockets shut and its threads ended before any is closed. Closed from under a thread waiting in
        # accept() (until session 43), the socket stayed listening (Linux keeps it while a call waits on it):
        # the proxy took one more connection after its test, and answered it (a `users` one: 407 "refused");
        # and a thread between two calls could make its next one on a descriptor's number that another socket
        # held by then (the next test's portal's: a flake's 407 from a test's own portal, session 43).
        stop_accepting(self._server, self._threads[:1])
        ending = time.monotonic() + 30   # (a bound on a teardown: the threads end at once once shut)
        while any(thread.is_alive() for thread in self._threads) and time.monotonic() < ending:
            for held in list(self._held):   # (again: a connection to a portal made meanwhile)
                with contextlib.suppress(OSError):
                    held.shutdown(socket.SHUT_RDWR)
            for thread in list(self._threads):
                thread.join(0.05)
        for held in list(self._held):
            held.close()

    def _start(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:   # (shut: the test is over)
                return
            self._held.append(client)
            self._start(self._serve, client)

    def _serve(self, client: socket.socket) -> None:
        raise NotImplementedError


class HttpProxy(LocalProxy):
    """An HTTP proxy on 127.0.0.1 (an https:// one given a TLS `context`), a thread a connection: a
    CONNECT relayed to the host and port asked (answered "200 Connection established"), a request
    for an absolute URL (an http portal's) sent on to its host as an origin's. portal.invalid is
    127.0.0.1. `users`: the user names and passwords it takes (Basic, Proxy-Authorization), any other
    answered 407; `refusing`: the status it answers a CONNECT to a host ("host:port") with (403 its
    rules, 502 the host not reached). `asked`: each request line read, `answers` the statuses it
    answered itself."""

    def __init__(self, context: "ssl.SSLContext | None" = None, users: dict[str, str] | None = None) -> None:
        super().__init__()
        self.context, self.users = context, users
        self.refusing: dict[str, int] = {}
        self.asked: list[str] = []
        self.answers: list[int] = []
        self.url = f"{'https' if context else 'http'}://127.0.0.1:{self.port}"

    def _serve(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError, ValueError):
            if self.context is not None:
                client = self.context.wrap_socket(client, server_side=True)
                self._held.append(client)
            while True:   # (a forwarded request's connection kept for the next one, as a proxy does)
                head = b""
                while b"\r\n\r\n" not in head:
                    piece = client.recv(65536)
                    if not piece:
                        return
                    head += piece
                line, rest = head.split(b"\r\n", 1)
                method, target, version = line.decode().split(" ")
                self.asked.append(f"{method} {target}")
                refusal = self._refusal(method, target, rest)
                if refusal:
                    self.answers.append(refusal)
                    reason = {403: "Forbidden", 407: "Proxy Authentication Required", 502: "Bad Gateway"}[refusal]
                    client.sendall(f"HTTP/1.1 {refusal} {reason}\r\nProxy-Authenticate: Basic realm=\"proxy\"\r\n"
                                   f"Content-Length: 7\r\n\r\nrefused".encode())
                    continue
                if method == "CONNECT":
                    host, port = target.rsplit(":", 1)
                    portal = self._portal(host, int(port))
                    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                else:   # (an absolute URL: asked of its host by its path, the connection not kept after)
                    parts = urlsplit(target)
                    portal = self._portal(parts.hostname, parts.port or 80)
                    portal.sendall(f"{method} {parts.path or '/'}{'?' + parts.query if parts.query else ''} "
                                   f"{version}\r\n".encode() + rest)
                relay(client, portal)
                return

    def _refusal(self, method: str, target: str, head: bytes) -> int | None:
        if self.users is not None:
            given = next((line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                          if line.lower().startswith(b"proxy-authorization:")), b"")
            scheme, _, encoded = given.partition(b" ")
            try:
                user, _, password = base64.b64decode(encoded).decode().partition(":")
            except ValueError:
                user, password = "", None
            if scheme.lower() != b"basic" or self.users.get(user) != password:
                return 407
        return self.refusing.get(target) if method == "CONNECT" else None

    def _portal(self, host: str, port: int) -> socket.socket:
        portal = socket.create_connection(("127.0.0.1" if host == "portal.invalid" else host, port), timeout=10)
        portal.settimeout(None)
        self._held.append(portal)
        return portal


@contextlib.contextmanager
def answering_every_request(answer: Callable[[bytes], bytes]):
    """A server on 127.0.0.1 answering the first line of whatever it reads with `answer(line)`, then
    closing (an HTTP proxy's port): its port, and the list of the connections it answered."""
    server = socket.create_server(("127.0.0.1", 0))
    answered = []

    def answer_each():
        while True:
            try:
                connection, _ = server.accept()
            except OSError:   # (closed: the test is over)
                return
            with connection, contextlib.suppress(OSError):
                line = connection.recv(65536).split(b"\r\n")[0]
                # (counted before it is answered: the client, answered, may count the answers at once)
                answered.append(connection)
                connection.sendall(answer(line))

    answering = threading.Thread(target=answer_each, daemon=True)
    answering.start()
    try:
        yield server.getsockname()[1], answered
    finally:
        stop_accepting(server, [answering])


def asked_in_a_thread(client, asked: str, url: str, destination) -> tuple[threading.Thread, list]:
    """`url` asked by `client` in a thread started here, as a page (get_json) or a "download" to
    `destination`: the thread, and the list that gets what the call gave back or raised."""
    outcomes: list = []

    def ask():
        try:
            if asked == "download":
                outcomes.append(client.download(url, destination))
            else:
                outcomes.append(client.get_json(url))
        except BaseException as exc:
            outcomes.append(exc)

    asking = threading.Thread(target=ask)
    asking.start()
    return asking, outcomes


@pytest.fixture
def streamed_from_1_mb(monkeypatch):
    """Documents of 1 MB and more read a value at a time (in place of 16 MB): test bodies stay small."""
    monkeypatch.setattr("harvester.http.json_parsing.STREAMED_JSON_BYTES", 1 << 20)


@pytest.fixture
def spooled_bodies(monkeypatch):
    """Every body spooled to a temporary file, recorded (its file closed or not); with
    `interrupt_at` set, a KeyboardInterrupt raised as a body reaches that size."""
    import harvester.http.bodies

    class Made(list):
        interrupt_at = None

    made = Made()

    class Recorded(harvester.http.bodies._SpooledBody):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

        def write(self, data):
            super().write(data)
            if made.interrupt_at is not None and self.size >= made.interrupt_at:
                raise KeyboardInterrupt

    monkeypatch.setattr(harvester.http.bodies, "_SpooledBody", Recorded)
    return made


def left_unclosed_by_ctrl_c(client, url: str, waiting, wakeup: socket.socket | None = None) -> list[str]:
    """`url` asked by `client` in this thread, the main one, as a one-worker harvest asks (pytest's
    workers run their tests in it), and SIGINT sent to it once `waiting()`, in another thread, has
    returned: its handler cancels the client and raises KeyboardInterrupt, as the stop's does
    (harvester.stopping), a byte sent first through `wakeup` if given (a socket of the handler's own,
    as an event loop's handler wakes the loop through one). The ResourceWarnings of what the request
    left to the garbage collector."""
    assert threading.current_thread() is threading.main_thread(), "signals are taken by the main thread only"
    interrupted = []

    def ctrl_c(signum, frame):
        interrupted.append(signum)
        client.cancel()
        if wakeup is not None:
            told = wakeup   # (a local of the handler's frame, which the KeyboardInterrupt is raised from)
            told.send(b"!")
        raise KeyboardInterrupt

    def interrupt():
        waiting()
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    previous = signal.signal(signal.SIGINT, ctrl_c)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            interrupting = threading.Thread(target=interrupt)
            interrupting.start()
            try:
                with unbounded_wait_fails(client):
                    client.get_json(url)
            except KeyboardInterrupt:
                pass
            interrupting.join(60)
            gc.collect()   # (what the exception's frames held, freed as it was let go or here)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert interrupted, "the request ended before the Ctrl-C"
    return [str(warning.message) for warning in caught if issubclass(warning.category, ResourceWarning)]


def stopped_while(client, asked: str, url: str, tmp_path, waiting, what: str) -> Interrupted:
    """`url` asked by `client` in a thread (asked_in_a_thread, a download to tmp_path) and the client
    cancelled once `waiting()` has returned: the request must end at once (60 s: far beyond any load,
    its timeouts are minutes) with Interrupted, which is returned, and write nothing. The server asked
    is its caller's to close, after. A wait that fails says what became of the request too (it may have
    ended before the state waited for)."""
    asking, outcomes = asked_in_a_thread(client, asked, url, tmp_path / "data.csv")
    try:
        try:
            waiting()
        except AssertionError as failed:
            client.cancel()
            asking.join(60)
            raise AssertionError(f"{failed}; the request: {outcomes or 'still asking after the stop'}") from None
        client.cancel()
        asking.join(60)
        assert not asking.is_alive(), f"{what} went on after the stop"
    finally:
        asking.join(60)
    assert len(outcomes) == 1 and isinstance(outcomes[0], Interrupted), outcomes
    assert list(tmp_path.iterdir()) == []
    return outcomes[0]
