"""Requests through a plain HTTP proxy (HTTP_PROXY, HTTPS_PROXY=http://...) that refuses: its 407 (the user
name and password of its URL refused, or none given), a CONNECT refused for one host (403) or not carried
through (502), against an HTTP proxy of the test's own on 127.0.0.1 relaying to the local portals (no
mocked requests); and a proxy's URL no request goes through, refused naming none of its secrets."""
import contextlib
import socket
import threading

import pytest

from harvester.http import ConnectionFailed, HostUnavailable, HttpClient, InvalidUrl, PermanentError, ProxyRefused
from tests.conftest import fast_client
from tests.harvester.http.conftest import DOC, HttpProxy

PROXY_VARIABLES = ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                   "all_proxy")
PORTALS_BEHIND_ONE_PROXY = ["a.invalid", "b.invalid", "c.invalid"]


@pytest.fixture
def http_proxy(monkeypatch):
    """An http:// HttpProxy taking the user civicat (password "right"); `use(login)` names it, with
    `login` in its URL, by HTTP_PROXY and HTTPS_PROXY."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with HttpProxy(users={"civicat": "right"}) as proxy:
        def use(login: str = "civicat:right@") -> HttpProxy:
            for name in ("HTTP_PROXY", "HTTPS_PROXY"):
                monkeypatch.setenv(name, f"http://{login}127.0.0.1:{proxy.port}")
            return proxy
        proxy.use = use
        yield proxy


@pytest.mark.parametrize("scheme", ["https", "http"])
@pytest.mark.parametrize("login, said", [
    ("civicat:wrong-s3cret@", "refused the user name and password of the proxy's URL"),
    ("", "wants a user name and password, which the proxy's URL does not give")])
def test_an_http_proxy_refusing_its_login_is_asked_once_in_a_run_for_every_portal_behind_it(http_proxy, scheme,
                                                                                            login, said):
    """An HTTP proxy's 407 to an https portal's CONNECT was a ConnectionFailed "ProxyError" of no reason,
    retried five times, portal after portal; to an http portal's request it forwards, an "HTTP 407"
    said of the portal. It says what the proxy refused now, and gives the proxy up for the run, as a
    SOCKS proxy's refused login: the portals after the first fail at once with the same message, the
    proxy not asked again, and no portal's host held to it."""
    http_proxy.use(login)
    client = fast_client(max_attempts=5)
    messages = []
    for host in PORTALS_BEHIND_ONE_PROXY:
        with pytest.raises(ProxyRefused) as failed:
            client.get_json(f"{scheme}://{host}/doc")
        assert failed.value.proxy_wide and not failed.value.counts_against_host
        messages.append(str(failed.value))
    refusal = (f"the HTTP proxy 127.0.0.1:{http_proxy.port} {said} (407 Proxy Authentication Required); no request "
               "goes through it this run")
    assert messages == [f"{refusal} ({scheme}://{host}/doc)" for host in PORTALS_BEHIND_ONE_PROXY]
    target = "a.invalid:443" if scheme == "https" else "http://a.invalid/doc"
    assert http_proxy.asked == [f"{'CONNECT' if scheme == 'https' else 'GET'} {target}"]
    assert (client.stats.requests, client.stats.retries) == (3, 0)
    assert not any("s3cret" in message or "civicat" in message for message in messages)


def test_a_connect_refused_for_one_portal_gives_up_that_portal_alone(http_proxy, portal):
    """The proxy's rules refusing one destination (its 403 to the CONNECT) were retried as a
    ConnectionFailed of no reason. That portal fails at once now, saying so, and is given up for the run
    (asked again, it is HostUnavailable, the proxy not asked); another portal behind the proxy is
    asked through it as before."""
    http_proxy.use()
    http_proxy.refusing["a.invalid:443"] = 403
    client = fast_client(max_attempts=5)
    with pytest.raises(ProxyRefused, match=rf"^the HTTP proxy 127\.0\.0\.1:{http_proxy.port} refused to connect to "
                                           r"a\.invalid:443 \(403 Forbidden\) \(https://a\.invalid/doc\)$") as failed:
        client.get_json("https://a.invalid/doc")
    assert not failed.value.proxy_wide
    with pytest.raises(HostUnavailable, match=r"refused to connect to a\.invalid:443 \(403 Forbidden\); not asked "
                                              r"again this run"):
        client.get_json("https://a.invalid/other")
    assert client.get_json(portal.url.replace("127.0.0.1", "portal.invalid") + "/doc").data == DOC
    assert http_proxy.asked == ["CONNECT a.invalid:443", f"GET {portal.url.replace('127.0.0.1', 'portal.invalid')}/doc"]
    assert client.stats.retries == 0


def test_a_proxy_that_could_not_reach_the_portal_says_so_and_is_retried(http_proxy):
    """A 502 to the CONNECT (the proxy could not connect to the portal: a moment's fault, as a direct
    connection's) is retried as before, but says what the proxy answered, not a bare "ProxyError"."""
    http_proxy.use()
    http_proxy.refusing["a.invalid:443"] = 502
    client = fast_client(max_attempts=3)
    with pytest.raises(ConnectionFailed, match=rf"^connection failed: ProxyError: the HTTP proxy 127\.0\.0\.1:"
                                               rf"{http_proxy.port} could not connect to a\.invalid:443 \(502 Bad "
                                               r"Gateway\) \(https://a\.invalid/doc\)$"):
        client.get_json("https://a.invalid/doc")
    assert http_proxy.asked == ["CONNECT a.invalid:443"] * 3 and client.stats.retries == 2


def test_a_portal_s_own_407_without_a_proxy_is_the_portal_s_answer(monkeypatch, portal):
    """(A guard: a 407 is taken for the proxy's only from a proxy forwarding the request; a portal asked
    directly that answers one is a portal's 4xx, given up for nothing.)"""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    portal.inject("/doc", ("status", 407))
    client = fast_client(max_attempts=5)
    with pytest.raises(PermanentError, match=r"^HTTP 407") as failed:
        client.get_json(portal.url + "/doc")
    assert not isinstance(failed.value, ProxyRefused) and failed.value.error_type == "ClientError"
    assert client.get_json(portal.url + "/doc").data == DOC


def test_portals_asked_at_once_behind_a_proxy_refusing_its_login_each_ask_it_once_at_most(http_proxy):
    """Portals harvested side by side (workers) each reached the proxy until its refusal was kept, and
    each was retried five times: each fails at its first answer now, and none asks it after the
    refusal is kept (the proxy asked once for each request under way when it refused, no more)."""
    http_proxy.use("civicat:wrong@")
    client = fast_client(max_attempts=5)
    hosts = [f"p{number}.invalid" for number in range(8)]
    failures: dict[str, BaseException] = {}
    start = threading.Barrier(4)

    def harvest(share: list[str]) -> None:
        start.wait()
        for host in share:
            try:
                client.for_portal(_Portal(host)).get_json(f"https://{host}/doc")
            except BaseException as exc:
                failures[host] = exc

    threads = [threading.Thread(target=harvest, args=(hosts[number::4],)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(failures) == hosts and all(isinstance(exc, ProxyRefused) for exc in failures.values())
    assert 1 <= len(http_proxy.asked) <= 4 and http_proxy.answers == [407] * len(http_proxy.asked)
    assert client.stats.retries == 0


class _Portal:
    """What HttpClient.for_portal reads of a portal's config."""

    def __init__(self, host: str) -> None:
        self.host, self.timeout, self.max_concurrency, self.requests_per_second = host, 5.0, 4, None


@pytest.mark.parametrize("proxy, said", [
    ("http://civicat:s3/cret@127.0.0.1:9", "its host or port does not parse"),
    ("http://civicat:s3cret@127.0.0.1:0", "the http:// proxy's port is not a number from 1 to 65535"),
    ("socks5h://civicat:s3cret@127.0.0.1:0", "the socks5h:// proxy's port is not a number from 1 to 65535")])
def test_a_proxy_url_no_request_goes_through_is_refused_naming_none_of_its_secrets(monkeypatch, proxy, said):
    """A client not made by from_env (which refuses such a URL before the run) met the proxy's URL at
    its first request: a password holding a '/' (unescaped) was quoted up to it in urllib3's error
    ("'civicat:s3' is not a valid host or port"), and socks5h://...:0 was asked as port 1080. The
    request fails now, at once, not retried, saying what is wrong, naming neither user nor password."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    client = HttpClient(max_attempts=5, backoff_initial=0.01)
    with pytest.raises(InvalidUrl) as failed:
        client.get_json("http://portal.invalid/doc")
    assert str(failed.value).startswith(f"the proxy's URL is not valid ({said}")
    assert "s3" not in str(failed.value) and "civicat" not in str(failed.value)
    assert client.stats.retries == 0


def test_a_proxy_the_test_is_done_with_takes_no_connection_to_its_port_after_it():
    """The tests' proxy closed its listening socket from under its thread waiting in accept(): Linux
    keeps a socket listening while a call waits on it, so the proxy took one more connection after its
    test and answered it (this one: 407 "refused"), its threads left running on descriptors' numbers
    the next tests' sockets take (a flake of session 43: a test's first request to its own portal was
    answered 407 "refused"). Its sockets are shut and its threads ended before it closes them."""
    with HttpProxy(users={"civicat": "right"}) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as asking:   # (its thread accepting)
            asking.sendall(b"GET http://portal.invalid/doc HTTP/1.1\r\nHost: portal.invalid\r\n\r\n")
            assert asking.recv(65536).startswith(b"HTTP/1.1 407 ")
    assert proxy.answers == [407]
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as asking:
        asking.sendall(b"GET http://portal.invalid/doc HTTP/1.1\r\nHost: portal.invalid\r\n\r\n")
        asking.recv(65536)   # (refused, or the end of a connection: no answer of the proxy's)
    assert proxy.answers == [407] and len(proxy.asked) == 1, proxy.asked
