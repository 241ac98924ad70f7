"""Requests through a SOCKS proxy (ALL_PROXY=socks5h://...), against a SOCKS proxy of the test's own on
127.0.0.1 relaying to the local portals (no mocked requests): every bound of a direct connection applies
(the stop, the connect timeout, the headers' deadline, refusals counted, the bounded lookup)."""
import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Callable

import pytest

from harvester.http import (CertificateRejected, ConnectionFailed, HostNotFound, HostUnavailable, HttpClient,
                           Interrupted, LookupUnanswered, ProxyRefused, TimedOut, TransientError)
from tests.conftest import fast_client
from tests.harvester.http.conftest import (DOC, accepting_and_never_answering, asked_in_a_thread, unbounded_wait_fails,
                                           LocalProxy, answering_every_request, dripping_headers, left_unclosed_by_ctrl_c,
                                           relay, stopped_while)


class SocksServer(LocalProxy):
    """A SOCKS proxy on 127.0.0.1, a thread a connection: SOCKS5 (RFC 1928: no login, or RFC 1929's
    user name and password when `users` is set) and SOCKS4/4a, relaying to the host and port asked.
    `names`: what it looks a name up to (any other is "host unreachable"); `stall`: it reads the
    client's greeting and never answers (a handshake held); `refuse`: its reply code to every
    request (5: the portal's port refused; SOCKS4's from 0x5B), `replies` to the requests for a
    host (a name or an address); `unanswered`: the hosts whose requests it reads and never answers.
    `asked`: the (host, port) of each request, a name as a name; `greeted`: set at each greeting read,
    `greetings` their count."""

    def __init__(self, users: dict[str, str] | None = None, names: dict[str, str] | None = None) -> None:
        self.users, self.names = users, names or {}
        self.stall, self.refuse = False, None
        self.replies: dict[str, int] = {}
        self.unanswered: set[str] = set()
        self.asked: list[tuple[str, int]] = []
        self.greeted = threading.Event()
        self.greetings = 0
        super().__init__()

    def _serve(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError, ValueError):
            version = _exactly(client, 1)[0]
            portal = self._socks5(client) if version == 5 else self._socks4(client)
            if portal is not None:
                relay(client, portal)

    def _socks5(self, client: socket.socket) -> socket.socket | None:
        methods = _exactly(client, _exactly(client, 1)[0])
        self.greeted.set()
        self.greetings += 1
        if self.stall:
            client.recv(1)   # (until the client closes it)
            return None
        if self.users is not None:
            if 2 not in methods:
                client.sendall(b"\x05\xff")
                return None
            client.sendall(b"\x05\x02")
            _exactly(client, 1)
            user = _exactly(client, _exactly(client, 1)[0]).decode()
            password = _exactly(client, _exactly(client, 1)[0]).decode()
            accepted = self.users.get(user) == password
            client.sendall(b"\x01" + (b"\x00" if accepted else b"\x01"))
            if not accepted:
                return None
        else:
            client.sendall(b"\x05\x00")
        _, command, _, kind = _exactly(client, 4)
        if kind == 3:
            host = _exactly(client, _exactly(client, 1)[0]).decode()
        else:
            host = str(ipaddress.ip_address(_exactly(client, 4 if kind == 1 else 16)))
        port = int.from_bytes(_exactly(client, 2), "big")
        self.asked.append((host, port))
        portal, reply = self._connect(client, host, port)
        client.sendall(b"\x05" + bytes([reply]) + b"\x00\x01" + bytes(4) + bytes(2))
        return portal

    def _socks4(self, client: socket.socket) -> socket.socket | None:
        _, port, address = _exactly(client, 1), int.from_bytes(_exactly(client, 2), "big"), _exactly(client, 4)
        self.greeted.set()
        self.greetings += 1
        _until_nul(client)   # (the user id)
        host = _until_nul(client) if address[:3] == b"\x00\x00\x00" else str(ipaddress.IPv4Address(address))
        self.asked.append((host, port))
        portal, reply = self._connect(client, host, port)
        client.sendall(b"\x00" + bytes([0x5A if reply == 0 else max(reply, 0x5B)]) + bytes(6))
        return portal

    def _connect(self, client: socket.socket, host: str, port: int) -> tuple[socket.socket | None, int]:
        if host in self.unanswered:
            client.recv(1)   # (until the client closes it)
            raise OSError("never answered")
        if self.replies.get(host, self.refuse) is not None:
            return None, self.replies.get(host, self.refuse)
        try:
            address = host if _is_address(host) else self.names[host]
        except KeyError:
            return None, 4   # (host unreachable)
        try:
            portal = socket.create_connection((address, port), timeout=10)
        except ConnectionRefusedError:
            return None, 5
        portal.settimeout(None)   # (relayed for as long as the client waits: the client's bounds are tested)
        self._held.append(portal)
        return portal, 0


def _exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        piece = sock.recv(size - len(data))
        if not piece:
            raise OSError("closed")
        data += piece
    return data


def _until_nul(sock: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\x00"):
        data += _exactly(sock, 1)
    return data[:-1].decode()


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@pytest.fixture
def socks(monkeypatch):
    """A SocksServer, named by ALL_PROXY with the scheme `socks.use(scheme)` gives (socks5h by default)."""
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with SocksServer(names={"portal.invalid": "127.0.0.1"}) as server:
        def use(scheme: str = "socks5h", login: str = "") -> SocksServer:
            monkeypatch.setenv("ALL_PROXY", f"{scheme}://{login}127.0.0.1:{server.port}")
            return server

        server.use = use
        use()
        yield server


@pytest.mark.parametrize("scheme, host, asked", [("socks5h", "portal.invalid", "portal.invalid"),
                                                  ("socks4a", "portal.invalid", "portal.invalid"),
                                                  ("socks5", "localhost", "127.0.0.1"),
                                                  ("socks4", "localhost", "127.0.0.1")])
def test_a_page_is_asked_through_a_socks_proxy_without_pysocks(socks, portal, resolver, scheme, host, asked):
    """A SOCKS proxy failed every request, retried, as "connection failed: InvalidSchema" without
    PySocks (not one of civicat's dependencies), and with it went without civicat's bounds. The
    handshake is civicat's own: the portal is asked through the proxy, its name sent to the proxy
    to look up (socks5h, socks4a: a .invalid name no resolver knows) or looked up here first."""
    socks.use(scheme)
    url = portal.url.replace("127.0.0.1", host) + "/doc"
    client = fast_client(max_attempts=1)
    assert client.get_json(url).data == DOC
    assert resolver.asked["portal.invalid"] == 0
    assert socks.asked == [(asked, int(portal.url.rsplit(":", 1)[1]))]


def test_a_stop_ends_a_socks_handshake_the_proxy_holds_at_once(socks, tmp_path):
    """A proxy that accepts and never answers the handshake held a request, stop or no stop, for the
    connect timeout (300 s here, 10 s by default, each retry again). The stop shuts the socket the
    handshake runs on, as it shuts a connect or a TLS handshake: the request ends at once, Interrupted."""
    socks.stall = True
    url = "http://portal.invalid/doc"
    stopped = _stopped_in_a_handshake(socks, url, tmp_path, lambda: socks.greeted.wait(60))
    assert str(stopped) == f"the harvest was interrupted while connecting: {url}"


def _stopped_in_a_handshake(socks, url: str, tmp_path, proxy_asked) -> Interrupted:
    """`url` asked in a thread (its timeouts 300 s) and the client cancelled once `proxy_asked()` is
    true: the request must end at once (60 s: far beyond any load), Interrupted, which is returned."""
    client = fast_client(max_attempts=1, timeout=300.0, connect_timeout=300.0)
    asking, outcomes = asked_in_a_thread(client, "page", url, tmp_path / "data.csv")
    try:
        assert proxy_asked(), "the client never asked the proxy"
        time.sleep(0.2)   # (the client most likely waiting for the proxy's answer; if not, the stop is seen next)
        client.cancel()
        asking.join(60)
        assert not asking.is_alive(), "the handshake went on after the stop"
    finally:
        socks.__exit__()
        asking.join(60)
    assert len(outcomes) == 1 and isinstance(outcomes[0], Interrupted), outcomes
    return outcomes[0]


def test_a_socks_handshake_the_proxy_holds_ends_at_the_connect_timeout(socks):
    """The handshake is part of the connection: bounded by the connect timeout (0.3 s here), whatever
    the read timeout (300 s), as one TimedOut retried."""
    socks.stall = True
    client = fast_client(max_attempts=2, timeout=300.0, connect_timeout=0.3)
    with unbounded_wait_fails(client), pytest.raises(TimedOut, match="^timed out: ConnectTimeout"):
        client.get_json("http://portal.invalid/doc")
    assert (client.stats.requests, client.stats.retries) == (2, 1)


@pytest.mark.parametrize("scheme, waited", [("http", "waiting for the response's headers"), ("https", "connecting")])
def test_a_stop_ends_a_wait_for_headers_or_a_tls_handshake_through_a_socks_proxy_at_once(socks, tmp_path, scheme,
                                                                                         waited):
    """A portal behind the proxy that reads the request (or the TLS hello) and never answers held the
    request until the headers' deadline (twice the read timeout: 600 s here), or the connect timeout
    (300 s): the stop shuts the socket, under the TLS handshake too, and the request ends Interrupted."""
    client = fast_client(max_attempts=1, timeout=300.0, connect_timeout=300.0)
    with accepting_and_never_answering() as (server, _, asked):
        url = f"{scheme}://portal.invalid:{server.getsockname()[1]}/doc"

        def asked_of_the_portal():
            assert asked.wait(60), "the portal was never asked"

        stopped = stopped_while(client, "page", url, tmp_path, asked_of_the_portal, "the wait")
    assert str(stopped) == f"the harvest was interrupted while {waited}: {url}"


def test_headers_dripped_through_a_socks_proxy_are_cut_off_at_their_deadline(socks):
    """A header line every 0.2 s, each inside the read timeout (0.4 s), held a request through the
    proxy for up to 100 header lines: cut off at twice the read timeout, as without a proxy."""
    with dripping_headers() as port, pytest.raises(TimedOut, match="response headers took over 1s to arrive"):
        fast_client(timeout=0.4, max_attempts=1).get_json(f"http://portal.invalid:{port}/slow")


def test_a_socks_proxy_refusing_connections_is_counted_and_its_portal_given_up(socks, refusing_port, monkeypatch):
    """The proxy's port refusing: each refusal counted as a port's (ConnectionRefused naming the
    proxy's host and port once it has refused for the limit, its portal given up), not a
    ConnectionFailed retried in full request after request."""
    monkeypatch.setenv("ALL_PROXY", f"socks5h://127.0.0.1:{refusing_port}")
    client = fast_client(max_attempts=10_000, max_retry_seconds=600, refused_limit=0.3)
    with unbounded_wait_fails(client), pytest.raises(TransientError) as failed:
        client.get_json("http://portal.invalid/doc")
    assert failed.value.error_type == "ConnectionRefused" and 1 < client.stats.requests < 10_000
    assert str(failed.value) == f"connection refused by 127.0.0.1:{refusing_port} (http://portal.invalid/doc)"
    with pytest.raises(HostUnavailable, match=rf"^connection refused by 127\.0\.0\.1:{refusing_port} for 0\.3 s in a "
                                              "row; not asked again this run"):
        client.get_json("http://portal.invalid/other")


def test_a_portal_port_refused_behind_a_socks_proxy_is_counted_as_its_refusal(socks, refusing_port):
    """The proxy saying the portal's port refused it (SOCKS5's reply 5) is that port's refusal, as
    when the portal is asked directly: counted, the portal given up after the limit."""
    client = fast_client(max_attempts=10_000, max_retry_seconds=600, refused_limit=0.3)
    with unbounded_wait_fails(client), pytest.raises(TransientError) as failed:
        client.get_json(f"http://portal.invalid:{refusing_port}/doc")
    assert failed.value.error_type == "ConnectionRefused" and 1 < client.stats.requests < 10_000
    with pytest.raises(HostUnavailable, match=rf"^connection refused by portal\.invalid:{refusing_port} for 0\.3 s in "
                                              "a row; not asked again this run"):
        client.get_json(f"http://portal.invalid:{refusing_port}/other")


def test_a_host_the_socks_proxy_cannot_reach_says_so(socks):
    client = fast_client(max_attempts=1)
    with pytest.raises(ConnectionFailed, match=r"^connection failed: ConnectionError: the SOCKS5 proxy "
                                               rf"127\.0\.0\.1:{socks.port} could not connect to "
                                               r"elsewhere\.invalid:80: host unreachable "
                                               r"\(http://elsewhere\.invalid/doc\)$"):
        client.get_json("http://elsewhere.invalid/doc")


def test_a_socks_proxy_s_user_name_and_password_are_sent_and_never_shown(monkeypatch, portal):
    """Sent (RFC 1929); refused, the request fails at once, never retried (it was, in full: the same
    user name and password get the same answer all night), and its host is not asked again."""
    from harvester.http.socks import SocksProxy

    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with SocksServer(users={"civicat": "s3cr%t"}) as server:
        monkeypatch.setenv("ALL_PROXY", f"socks5://civicat:s3cr%25t@127.0.0.1:{server.port}")
        assert fast_client(max_attempts=1).get_json(portal.url + "/doc").data == DOC
        monkeypatch.setenv("ALL_PROXY", f"socks5://civicat:wrong-s3cret@127.0.0.1:{server.port}")
        client = fast_client(max_attempts=5)
        with pytest.raises(ProxyRefused, match="refused the user name and password of the proxy's URL; no request "
                                               "goes through it this run \\(") \
                as failed:
            client.get_json(portal.url + "/doc")
        assert "s3cret" not in str(failed.value) and "s3cret" not in repr(SocksProxy.from_url(
            f"socks5://civicat:wrong-s3cret@127.0.0.1:{server.port}"))
        assert (client.stats.requests, client.stats.retries, server.greetings) == (1, 0, 2)
        with pytest.raises(ProxyRefused, match="refused the user name and password of the proxy's URL; no request "
                                               "goes through it this run \\("):
            client.get_json(portal.url + "/other")
        assert server.greetings == 2


def test_a_socks_proxy_s_name_is_looked_up_as_a_portal_s(monkeypatch, resolver):
    """The proxy's host name is looked up with the bound every lookup has (the connect timeout:
    a resolver that never answers held the request as long as it liked), and a name that does not
    exist is said as the proxy's."""
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    unanswered = threading.Event()
    resolver.answers["proxy.test"] = [unanswered]
    monkeypatch.setenv("ALL_PROXY", "socks5h://proxy.test:1080")
    client = fast_client(max_attempts=1, connect_timeout=0.3)
    try:
        with unbounded_wait_fails(client), pytest.raises(LookupUnanswered, match=r"^host name proxy\.test did not "
                                                                            r"resolve within 0\.3 s"):
            client.get_json("http://portal.invalid/doc")
    finally:
        unanswered.set()
    monkeypatch.setenv("ALL_PROXY", "socks5h://proxy.invalid:1080")
    with pytest.raises(HostNotFound, match=r"^host name proxy\.invalid does not resolve \("):
        fast_client(max_attempts=1).get_json("http://portal.invalid/doc")


@pytest.mark.parametrize("variable, proxy, said", [
    ("ALL_PROXY", "socks6://user:s3cret@proxy:1080", "socks6:// is no SOCKS proxy"),
    ("HTTPS_PROXY", "socks5h://user:s3cret@proxy:99999", "port is not a number from 1 to 65535"),
    ("ALL_PROXY", "socks5h://user:s3cret@proxy:0", "port is not a number from 1 to 65535"),   # (was read as 1080)
    ("all_proxy", "socks5h://user:s3cret@:1080", "names no host")])
def test_a_socks_proxy_no_request_can_go_through_is_refused_before_any_request(monkeypatch, variable, proxy, said):
    """Such a proxy failed every request of the night, retried; the bad setting is now refused at the
    start, naming the variable and what is wrong, never the proxy's password."""
    monkeypatch.setenv(variable, proxy)
    with pytest.raises(ValueError, match=f"^the proxy of environment variable {variable.upper()} is not valid: ") \
            as refused:
        HttpClient.from_env()
    assert said in str(refused.value) and "s3cret" not in str(refused.value)


@pytest.mark.parametrize("variable, value", [("NO_PROXY", "socks.corp.example,localhost"),
                                             ("HTTPS_PROXY", "socksgate.corp.example:3128"),
                                             ("ALL_PROXY", "http://socks.corp.example:3128")])
def test_a_setting_that_names_no_socks_proxy_is_not_refused_as_one(monkeypatch, variable, value):
    """The check read every value that starts with "socks" as a SOCKS proxy: a NO_PROXY whose first host
    is socks.corp.example (hosts, no proxy), or an HTTP proxy written without its scheme (requests reads
    it as http://), kept every command from starting, exit 2. Only a proxy of a socks scheme is checked."""
    monkeypatch.setenv(variable, value)
    assert isinstance(HttpClient.from_env(), HttpClient)


def test_a_ctrl_c_in_a_socks_handshake_closes_its_socket(socks):
    """A one-worker harvest's Ctrl-C in the handshake (the proxy holding it) leaves nothing to the
    garbage collector: the socket is closed whatever ends the handshake."""
    socks.stall = True

    def greeted():
        assert socks.greeted.wait(60), "the client never greeted the proxy"
        time.sleep(0.2)   # (the client most likely waiting for the proxy's answer; if not, it is in the handshake)

    client = fast_client(max_attempts=1, timeout=300.0, connect_timeout=300.0)
    assert left_unclosed_by_ctrl_c(client, "http://portal.invalid/doc", greeted) == []


def test_tls_through_a_socks_proxy_checks_the_portal_s_certificate(socks, self_signed_portal, tmp_path, monkeypatch):
    """TLS runs end to end through the proxy, the certificate checked against the portal's name
    (portal.invalid, the proxy's name for 127.0.0.1): refused as self-signed, then, trusted (the
    CA bundle), as made for 127.0.0.1."""
    url = self_signed_portal.replace("127.0.0.1", "portal.invalid") + "/doc"
    with pytest.raises(CertificateRejected, match=r"^TLS certificate of portal\.invalid not accepted"):
        fast_client(max_attempts=1).get_json(url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "cert.pem"))
    with pytest.raises(CertificateRejected, match=r"^TLS certificate of portal\.invalid not accepted \(.*mismatch"):
        fast_client(max_attempts=1).get_json(url)


def test_a_socks4_proxy_is_not_asked_for_a_host_of_ipv6_addresses_only(socks, resolver):
    """SOCKS4 carries IPv4 addresses only: a name that has none is said so, the proxy not asked, and
    not retried (it was, in full: the name's addresses do not change within seconds; socks4a:// or
    socks5:// is the setting that does)."""
    socks.use("socks4")
    resolver.answers["six.portal.test"] = [["::1"]]
    client = fast_client(max_attempts=5)
    with pytest.raises(ProxyRefused, match=rf"^the SOCKS4 proxy 127\.0\.0\.1:{socks.port} takes IPv4 addresses "
                                           r"only, and six\.portal\.test has none \(socks4a:// sends it its name\)"):
        client.get_json("http://six.portal.test/doc")
    assert socks.asked == [] and client.stats.requests == 1


def _portal_port(portal) -> int:
    return int(portal.url.rsplit(":", 1)[1])


@pytest.mark.parametrize("scheme, addresses, asked", [
    ("socks5", ["127.0.0.2", "127.0.0.1"], ["127.0.0.2", "127.0.0.1"]),
    ("socks5", ["::1", "127.0.0.1"], ["::1", "127.0.0.1"]),   # (::1 answered "address type not supported")
    ("socks4", ["::1", "127.0.0.2", "127.0.0.1"], ["127.0.0.2", "127.0.0.1"])])
def test_each_address_of_a_portal_is_asked_for_through_a_socks_proxy_in_turn(socks, portal, resolver, scheme,
                                                                             addresses, asked):
    """socks5:// and socks4:// sent the proxy the portal's first address alone: a host whose first
    address the proxy cannot reach (its port refusing there: 127.0.0.2, where no portal listens; an
    IPv6 address the proxy takes none of) failed, where a direct connection tries the next. Each
    is asked for in turn now, and SOCKS4, which carries IPv4 addresses only, is sent none of IPv6."""
    socks.use(scheme)
    socks.replies["::1"] = 8
    resolver.answers["two.portal.test"] = [addresses]
    url = portal.url.replace("127.0.0.1", "two.portal.test") + "/doc"
    assert fast_client(max_attempts=1).get_json(url).data == DOC
    assert socks.asked == [(address, _portal_port(portal)) for address in asked]


def test_an_address_whose_handshake_the_proxy_holds_is_given_up_at_the_connect_timeout(socks, portal, resolver):
    """The proxy holding its answer about one address (its own connect to it hanging) costs that
    address the connect timeout, and the next is asked for, as a direct connect to an address that
    never answers moves on to the next after it."""
    socks.use("socks5")
    socks.unanswered.add("127.0.0.2")
    resolver.answers["two.portal.test"] = [["127.0.0.2", "127.0.0.1"]]
    client = fast_client(max_attempts=1, timeout=300.0, connect_timeout=1.0)   # (the next address's time too)
    with unbounded_wait_fails(client):
        assert client.get_json(portal.url.replace("127.0.0.1", "two.portal.test") + "/doc").data == DOC
    assert [host for host, _ in socks.asked] == ["127.0.0.2", "127.0.0.1"]


def test_a_stop_while_the_proxy_holds_an_address_ends_the_request_and_asks_for_no_other(socks, portal, resolver,
                                                                                       tmp_path):
    """(A guard: the stop ends the handshake of the address under way, and no later address is asked for.)"""
    socks.use("socks5")
    socks.unanswered.add("127.0.0.2")
    resolver.answers["two.portal.test"] = [["127.0.0.2", "127.0.0.1"]]

    def proxy_asked():
        deadline = time.monotonic() + 60
        while not socks.asked and time.monotonic() < deadline:
            time.sleep(0.01)
        return bool(socks.asked)

    _stopped_in_a_handshake(socks, portal.url.replace("127.0.0.1", "two.portal.test") + "/doc", tmp_path, proxy_asked)
    assert [host for host, _ in socks.asked] == ["127.0.0.2"]


# what a SOCKS proxy's refusal says, and whether it is final (ProxyRefused), for the portal ("host") or
# for every request through the proxy ("proxy"), or retried (ConnectionFailed: None)
REFUSALS = [("socks5h", 1, "general SOCKS server failure", None),
            ("socks5h", 2, "connection not allowed by its rules", "host"),
            ("socks5h", 3, "network unreachable", None),
            ("socks5h", 4, "host unreachable", None),
            ("socks5h", 6, "TTL expired", None),
            ("socks5h", 7, "command not supported", "proxy"),
            ("socks5h", 8, "address type not supported", "host"),
            ("socks5h", 9, "reply 9", None),
            ("socks4a", 0x5B, "request rejected or failed", None),
            ("socks4a", 0x5C, "its identd unreachable", "host"),
            ("socks4a", 0x5D, "its identd said another user id", "host")]


@pytest.mark.parametrize("scheme, reply, said, final", REFUSALS)
def test_a_socks_refusal_asking_again_cannot_change_fails_at_once(socks, scheme, reply, said, final):
    """Every refusal of the proxy but "connection refused" was retried in full (5 attempts and their
    waits a request, every request of the portal). One that says how the proxy is set (its rules
    refuse the portal, it makes no TCP connections or takes no such address, it wants an identd
    civicat's machine does not run) gets the same answer all night: it fails the request at once,
    never retried, naming the proxy's answer, and its host is not asked again this run. One about
    the way to the portal (unreachable, a fault of the proxy's own, a reply no RFC names) is retried
    as a direct connection's failure is."""
    socks.use(scheme)
    socks.replies["portal.invalid"] = reply
    client = fast_client(max_attempts=3)
    version = scheme[5]
    refusal = rf"the SOCKS{version} proxy 127\.0\.0\.1:{socks.port} " + (
        f"refuses every connection: {said}; no request goes through it this run" if final == "proxy" else
        rf"could not connect to portal\.invalid:80: {said}")
    with pytest.raises(ProxyRefused if final else ConnectionFailed,
                       match=("^" if final else r"^connection failed: ConnectionError: ") + refusal + r" \("):
        client.get_json("http://portal.invalid/doc")
    assert (client.stats.requests, client.stats.retries) == ((1, 0) if final else (3, 2))
    if final == "host":
        with pytest.raises(HostUnavailable, match=f"^{refusal}; not asked again this run"):
            client.get_json("http://portal.invalid/other")
        assert client.stats.requests == 1 and len(socks.asked) == 1
    elif final == "proxy":
        with pytest.raises(ProxyRefused, match=f"^{refusal} " + r"\(http://portal\.invalid/other\)$"):
            client.get_json("http://portal.invalid/other")
        assert client.stats.requests == 2 and len(socks.asked) == 1


def test_a_final_refusal_of_one_address_leaves_the_others_to_ask_for(socks, portal, resolver):
    """The proxy's rules may refuse one address of the portal and let another through: the next is
    asked for; the request fails at once only when every address was refused so, and is retried
    when one of them got an answer asking again may change."""
    socks.use("socks5")
    resolver.answers["two.portal.test"] = [["127.0.0.2", "127.0.0.1"]]
    url = portal.url.replace("127.0.0.1", "two.portal.test") + "/doc"
    socks.replies["127.0.0.2"] = 2
    assert fast_client(max_attempts=1).get_json(url).data == DOC
    socks.replies["127.0.0.1"] = 2
    with pytest.raises(ProxyRefused, match=r"could not connect to 127\.0\.0\.1:\d+: connection not allowed by its "
                                           r"rules \("):
        fast_client(max_attempts=3).get_json(url)
    socks.replies["127.0.0.2"] = 4
    client = fast_client(max_attempts=3)
    with pytest.raises(ConnectionFailed, match=r"could not connect to 127\.0\.0\.2:\d+: host unreachable \("):
        client.get_json(url)
    assert client.stats.requests == 3
    assert [host for host, _ in socks.asked] == ["127.0.0.2", "127.0.0.1"] * 5


def test_a_proxy_that_makes_no_connections_is_not_asked_for_another_address(socks, resolver):
    """"Command not supported" is the proxy's answer for every address: the first one's ends the request."""
    socks.use("socks5")
    socks.refuse = 7
    resolver.answers["two.portal.test"] = [["127.0.0.2", "127.0.0.1"]]
    with pytest.raises(ProxyRefused, match="command not supported"):
        fast_client(max_attempts=3).get_json("http://two.portal.test/doc")
    assert [host for host, _ in socks.asked] == ["127.0.0.2"]


def _answering_as_http():
    """A server answering whatever it reads with an HTTP 400 (an HTTP proxy's port): answering_every_request."""
    return answering_every_request(lambda line: b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


def test_a_server_that_is_no_socks_proxy_is_said_so_and_not_asked_again(monkeypatch):
    """ALL_PROXY naming an HTTP proxy's port with a socks scheme: its answer to the greeting is no
    SOCKS5 answer, all night. The request fails at once, saying so."""
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    client = fast_client(max_attempts=5)
    with _answering_as_http() as (port, answered):
        monkeypatch.setenv("ALL_PROXY", f"socks5h://127.0.0.1:{port}")
        with pytest.raises(ProxyRefused, match=rf"^the SOCKS5 proxy 127\.0\.0\.1:{port} is no "
                                               r"SOCKS5 proxy \(its answer to the greeting is not SOCKS5's\); no "
                                               r"request goes through it this run \("):
            client.get_json("http://portal.invalid/doc")
    assert client.stats.requests == 1 and len(answered) == 1


PORTALS_BEHIND_ONE_PROXY = ["a.invalid", "b.invalid", "c.invalid"]

# a proxy no request goes through: how it is set (a SocksServer's settings, or an HTTP server's port), the
# URL's login, and what it answers every request
NO_REQUEST_GOES_THROUGH = [
    ("socks5h", {"users": {"civicat": "right"}}, "civicat:wrong-s3cret@",
     "refused the user name and password of the proxy's URL"),
    ("socks5h", {"users": {"civicat": "right"}}, "", "takes none of the ways to log in offered (none, or the user "
                                                     "name and password of the proxy's URL)"),
    ("socks5h", {"refuse": 7}, "", "refuses every connection: command not supported"),
    ("socks5h", "http", "", "is no SOCKS5 proxy (its answer to the greeting is not SOCKS5's)"),
    ("socks4a", "http", "", "is no SOCKS4 proxy (its reply is not SOCKS4's)")]


@contextlib.contextmanager
def _proxy_set(setting) -> "contextlib.AbstractContextManager[tuple[int, Callable[[], int]]]":
    """A proxy set as NO_REQUEST_GOES_THROUGH says: its port, and how many times it has been asked
    (greeted, or answered as an HTTP server)."""
    if setting == "http":
        with _answering_as_http() as (port, answered):
            yield port, lambda: len(answered)
        return
    with SocksServer(users=setting.get("users"), names=dict.fromkeys(PORTALS_BEHIND_ONE_PROXY, "127.0.0.1")) as server:
        server.refuse = setting.get("refuse")
        yield server.port, lambda: server.greetings


@pytest.mark.parametrize("scheme, setting, login, said", NO_REQUEST_GOES_THROUGH)
def test_a_proxy_no_request_goes_through_is_asked_once_in_a_run_for_every_portal_behind_it(monkeypatch, scheme,
                                                                                           setting, login, said):
    """A refusal that says how the proxy is set, whatever is asked of it (its login refused, no way to
    log in offered taken, no TCP connections made, no SOCKS proxy at that port), gave up the portal's
    host alone: every portal behind the proxy asked it once more, got the same answer, and failed on
    its own. The proxy is given up for the run now: the portals after the first fail at once with
    the same message, naming the proxy and its answer, the proxy not asked again."""
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with _proxy_set(setting) as (port, asked):
        monkeypatch.setenv("ALL_PROXY", f"{scheme}://{login}127.0.0.1:{port}")
        client = fast_client(max_attempts=5)
        messages = []
        for host in PORTALS_BEHIND_ONE_PROXY:
            with pytest.raises(ProxyRefused) as failed:
                client.get_json(f"http://{host}/doc")
            messages.append(str(failed.value))
        assert asked() == 1
    refusal = f"the SOCKS{scheme[5]} proxy 127.0.0.1:{port} {said}; no request goes through it this run"
    assert messages == [f"{refusal} (http://{host}/doc)" for host in PORTALS_BEHIND_ONE_PROXY]
    assert (client.stats.requests, client.stats.retries) == (3, 0)
    assert not any("s3cret" in message for message in messages)


def test_a_proxy_refusing_one_portal_by_its_rules_is_asked_for_each_portal(socks):
    """(A guard: the proxy's rules name destinations, "connection not allowed by its rules" is said
    of one portal, and the portals after it are asked for, each given up alone.)"""
    for host in PORTALS_BEHIND_ONE_PROXY:
        socks.names[host] = "127.0.0.1"
    socks.refuse = 2
    client = fast_client(max_attempts=5)
    for host in PORTALS_BEHIND_ONE_PROXY:
        with pytest.raises(ProxyRefused, match=rf"could not connect to {host}:80: connection not allowed by its "
                                               r"rules \("):
            client.get_json(f"http://{host}/doc")
        with pytest.raises(HostUnavailable):
            client.get_json(f"http://{host}/other")
    assert [host for host, _ in socks.asked] == PORTALS_BEHIND_ONE_PROXY
