"""How a request's connections are made, and their failures named: requests' session and adapter
with urllib3 connections whose headers must arrive by the request's deadline (_HeadersInTime),
whose host names are looked up with a bound (resolver.py), and whose refusals are counted per
port (_Refusals), through a SOCKS proxy alike (_ThroughSocks, socks.py); an HTTP proxy's refusal
said as its own (_HttpProxyRefused), and a proxy that refuses every request given up for the run
(_Adapter.send); a URL no request can be made to refused first (_check_url); what a failed
connection came of said as the HttpError its retries go by (_connection_failed)."""
from __future__ import annotations

import errno
import os
import re
import select
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlparse, urlsplit

import requests
import urllib3
import urllib3.connection
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.util.ssl_ import create_urllib3_context, resolve_cert_reqs, resolve_ssl_version

from harvester.config import SPACE_OR_CONTROL
from harvester.http.deadlines import _SocketWatchdog
from harvester.http.errors import (CertificateRejected, ConnectionFailed, ConnectionRefused, HostNotFound, HttpError,
                                   InvalidUrl, ProxyRefused, TimedOut)
from harvester.http.resolver import _LOOKUPS, _LookupFault, _ResolverWatch
from harvester.http.socks import ADDRESS, PROXY, REFUSED, SocksProxy, SocksRefused, ask_for_connection


def _check_url(url: str) -> str:
    """`url`'s host and port (netloc), or InvalidUrl where no request can be made to it: its host
    name encoded as the resolver (and urllib3) encode it, idna, which refuses an empty label and
    one over 63 characters."""
    try:
        parsed = urlparse(url)
        host, _ = parsed.hostname or "", parsed.port
    except ValueError as exc:
        raise InvalidUrl(f"URL not valid ({exc})", url) from None
    # (urllib3 refuses these itself only from 2.8: before, a request was made, failed and retried as a
    # connection fault against the host)
    if SPACE_OR_CONTROL.search(host):
        raise InvalidUrl(f"URL not valid (its host name {host!r} holds a space or a control character)", url)
    try:
        host.encode("idna")
    except UnicodeError as exc:
        raise InvalidUrl(f"host name {host} is not valid ({exc.__cause__ or exc})", url) from None
    return parsed.netloc


def _check_proxy_url(proxy: str) -> None:
    """ValueError, never naming the URL (it may hold the proxy's password), for a proxy's URL no
    request goes through: a SOCKS proxy's as SocksProxy reads it, another's as requests does (a URL
    without a scheme is an HTTP proxy's), which quoted it whole in every request's error."""
    if "://" in proxy and proxy.lower().startswith("socks"):
        SocksProxy.from_url(proxy)
        return
    proxy = proxy if "://" in proxy else f"http://{proxy}"
    try:
        parts = urlsplit(proxy)
        port = parts.port
    except ValueError:   # (its text may quote the URL's netloc)
        raise ValueError("its host or port does not parse (a port from 1 to 65535; an IPv6 address in brackets)") \
            from None
    if not parts.hostname:
        raise ValueError(f"the {parts.scheme}:// proxy names no host")
    if port == 0:
        raise ValueError(f"the {parts.scheme}:// proxy's port is not a number from 1 to 65535")
    try:
        urllib3.util.parse_url(proxy)
    except urllib3.exceptions.LocationParseError:
        raise ValueError(f"the {parts.scheme}:// proxy's URL does not parse") from None


def _without_credentials(text: str) -> str:
    """`text` with the user name and password of any URL in it left out (a proxy's, quoted by
    requests or urllib3: "Failed to parse: http://user:password@proxy:99999"). Up to the last '@'
    before the host, as urllib splits a URL: a password may hold an '@' left unescaped."""
    return re.sub(r"(?<=://)[^/\s]*@", "", text)


# the keys' headers but Authorization, which requests drops itself (config.KEY_HEADERS)
SECRET_HEADERS = ("X-App-Token", "X-Esri-Authorization")


class _Session(requests.Session):
    # the proxies the environment names for a URL (HttpClient._environment); requests'
    # own lookup is off (trust_env), so a redirect must ask for its new host's
    environment_proxies: Callable[[str], dict] | None = None

    def rebuild_proxies(self, prepared_request, proxies):
        if self.environment_proxies is not None:
            proxies = self.environment_proxies(prepared_request.url)
        return super().rebuild_proxies(prepared_request, proxies)

    def send(self, request, **kwargs):   # (a redirect's hop: its URL checked as the first's, _get)
        _check_url(request.url)
        return super().send(request, **kwargs)

    def rebuild_auth(self, prepared_request, response):
        """requests drops Authorization on a redirect to another host or port, or from https
        down to http; so do we for our secret headers (a portal's app token must never reach a
        host it redirects to, nor cross the network in clear: comparing the netloc alone kept
        it from `https://host/` to `http://host/`)."""
        super().rebuild_auth(prepared_request, response)
        if self.should_strip_auth(response.request.url, prepared_request.url):
            for name in SECRET_HEADERS:
                prepared_request.headers.pop(name, None)


@dataclass
class _Exchange:
    """This thread's request (its redirects included) under way: when its headers are due."""
    deadline: float
    refusals: "_Refusals"        # the client's: told of each connection refused or made
    resolver: "_ResolverWatch"   # the client's: told of each lookup answered or not
    # the client's stop and the watchdogs it shuts (HttpClient.cancel): a wait for headers is one
    stop: threading.Event | None = None
    in_flight: set | None = None
    connecting: float = 0.0      # seconds spent making connections (the connect timeout bounds them)
    headers_late: bool = False
    stopped: str | None = None   # what the stop ended: "connect" (a TCP connect, a TLS handshake), "headers"
    refused: tuple[str, float] | None = None   # (host:port, seconds it has refused in a row), when it did
    # the client's (the run's): each proxy (its URL, as the environment names it) that refused in a way final
    # for every request (its refusal: final PROXY), asked no more (_Adapter.send); no lock: one refusal kept, set once
    proxies_refused: "dict[str, SocksRefused | _HttpProxyRefused] | None" = None


_EXCHANGE = threading.local()   # `current`: this thread's _Exchange, while its request is made


class _HeadersInTime:
    """A connection whose response status line and headers must arrive by the deadline the
    request set (`_EXCHANGE.current`): read timeouts apply per socket read, and http.client
    reads up to 100 header lines of 64 KB, so a server dripping them could hold a request
    for hours before the body's watchdog (`_Watchdog`) ever started. The time spent
    connecting moves the deadline: it has a timeout of its own, and a slow connect (a SYN
    sent again after 1 s) would otherwise leave a short timeout no time for the headers."""

    _connecting: _Connecting | None = None

    def connect(self):
        exchange = getattr(_EXCHANGE, "current", None)
        started = time.monotonic()
        if exchange is not None and exchange.in_flight is not None:   # (a stop shuts it: see _Connecting)
            self._connecting = _Connecting()
            exchange.in_flight.add(self._connecting)
            if exchange.stop.is_set():   # (a cancel that came before it was listed)
                self._connecting.stop()
        try:
            return super().connect()
        finally:
            if exchange is not None:
                spent = time.monotonic() - started
                exchange.deadline += spent
                exchange.connecting += spent
            if self._connecting is not None:
                exchange.in_flight.discard(self._connecting)
                self._connecting.close()
                if self._connecting.stopped and self._connecting.held:   # (else the lookup's stop says so)
                    exchange.stopped = "connect"
                self._connecting = None

    def _new_conn(self):
        return self._connected(self._dns_host, self.port, f"{self.host}:{self.port}")

    def _connected(self, name: str, port: int, endpoint: str) -> socket.socket:
        """urllib3's _new_conn to `name`:`port`: each address of the name tried in turn (as urllib3
        tries them), the name looked up first within the connect timeout (_Lookups): getaddrinfo has
        no timeout of its own. A refusal of `endpoint`, or a connection made, is told to the
        client's _Refusals."""
        exchange = getattr(_EXCHANGE, "current", None)
        failed = None
        for address in self._looked_up(name, port):
            try:
                sock = self._connected_to(address, port)
            except urllib3.exceptions.ConnectTimeoutError as exc:   # (NewConnectionError too)
                failed = exc
                continue
            if exchange is not None:
                exchange.refusals.connected(endpoint)
            return sock
        if failed is None:   # (getaddrinfo gives at least one address, or fails)
            raise urllib3.exceptions.NewConnectionError(self, "the host name has no address")
        if isinstance(failed.__cause__, ConnectionRefusedError) and exchange is not None:
            exchange.refused = (endpoint, exchange.refusals.refused(endpoint))
        raise failed

    def _looked_up(self, name: str, port: int) -> list[str]:
        exchange = getattr(_EXCHANGE, "current", None)
        try:
            return _LOOKUPS.addresses(name, port, self.timeout,
                                      exchange.resolver if exchange is not None else _ResolverWatch())
        except socket.gaierror as exc:
            raise _NameNotResolved(name.rstrip("."), self, exc) from exc

    def _connected_to(self, address: str, port: int) -> socket.socket:
        """urllib3's _new_conn to one numeric address (its create_connection holds the socket out of
        reach until it is connected), the socket given to `_connecting` before its connect. Closed
        here whatever ends the connect: a KeyboardInterrupt in its wait (a one-worker harvest's
        Ctrl-C, in the main thread) left it to the garbage collector."""
        sock = None
        try:
            family, kind, proto, _, where = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM,
                                                               flags=socket.AI_NUMERICHOST)[0]
            sock = socket.socket(family, kind, proto)
            for option in self.socket_options or ():
                sock.setsockopt(*option)
            if self.timeout is None or isinstance(self.timeout, (int, float)):   # (not urllib3's "default")
                sock.settimeout(self.timeout)
            if self.source_address:
                sock.bind(self.source_address)
            if self._connecting is not None:
                self._connecting.holds(sock)
            _connect_unless_stopped(sock, where, self._connecting)
        except BaseException as exc:
            if sock is not None:
                sock.close()
            if isinstance(exc, TimeoutError):
                raise urllib3.exceptions.ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})") from exc
            if isinstance(exc, OSError):
                raise urllib3.exceptions.NewConnectionError(
                    self, f"Failed to establish a new connection: {exc}") from exc
            raise
        sys.audit("http.client.connect", self, self.host, self.port)
        return sock

    def _tunnel(self):
        """urllib3's CONNECT through an HTTP proxy (an https:// portal's), the proxy's refusal said as
        its own (_HttpProxyRefused): urllib3 (and http.client, whose _tunnel it copies) keeps its status
        and reason alone, in the text of a bare OSError, which was retried as a "ProxyError" of no reason."""
        host, port = self._tunnel_host, self._tunnel_port   # (a refusal closes the connection, which forgets them)
        try:
            return super()._tunnel()
        except OSError as exc:
            answered = _TUNNEL_REFUSED.fullmatch(str(exc))
            if answered is None:
                raise
            target = f"{f'[{host}]' if ':' in host else host}:{port}"
            raise _HttpProxyRefused.answered(self.proxy, int(answered[1]), answered[2], target) from None

    def getresponse(self, *args, **kwargs):
        exchange = getattr(_EXCHANGE, "current", None)
        if exchange is None or self.sock is None:
            return super().getresponse(*args, **kwargs)
        guard = _SocketWatchdog(self.sock, exchange.deadline)
        if exchange.in_flight is not None:   # (a stop shuts it too: a stalled server held it to the deadline)
            exchange.in_flight.add(guard)
            if exchange.stop.is_set():   # (a cancel that came before it was listed: shut it here)
                guard.stop()
        try:
            response = super().getresponse(*args, **kwargs)
        finally:
            if exchange.in_flight is not None:
                exchange.in_flight.discard(guard)
            guard.cancel()
            exchange.headers_late = guard.fired
            exchange.stopped = "headers" if guard.stopped else exchange.stopped
        if guard.fired or guard.stopped:   # (the socket shut mid-headers reads as their end: never a response)
            response.close()
            raise ConnectionAbortedError("the run was stopped" if guard.stopped else "the response headers were late")
        return response


class _HandshakeClosed:
    """An HTTPS connection whose TLS socket is closed whatever ends its handshake. ssl closes it on
    an OSError or ValueError only, and urllib3 holds it only once the handshake is done: a
    KeyboardInterrupt in the handshake's wait (a one-worker harvest's Ctrl-C) left it to the
    garbage collector (a ResourceWarning, its descriptor held until then). So urllib3 is handed
    the connection's SSL context as _ClosingContext, which makes the socket and does its handshake
    itself: the socket closed where it is made, as _connected_to closes a TCP socket, never looked
    for in the frames of another library's code. An https:// proxy's own TLS (before its CONNECT)
    is made alike, by the proxy's context (urllib3's ProxyConfig.ssl_context, its public
    proxy_ssl_context): given none, urllib3 made one of its own for it, out of reach."""

    def connect(self):
        given, proxy_config = self.ssl_context, self.proxy_config
        self.ssl_context = _ClosingContext(given if given is not None else self._tls_context())
        if proxy_config is not None and self.proxy is not None and self.proxy.scheme == "https":
            self.proxy_config = proxy_config._replace(ssl_context=_ClosingContext(
                proxy_config.ssl_context if proxy_config.ssl_context is not None else self._proxy_tls_context()))
        try:
            return super().connect()
        finally:
            self.ssl_context, self.proxy_config = given, proxy_config

    def _tls_context(self):
        """The context urllib3 makes for a connection given none (_ssl_wrap_socket_and_match_hostname)."""
        context = create_urllib3_context(ssl_version=resolve_ssl_version(self.ssl_version),
                                         cert_reqs=resolve_cert_reqs(self.cert_reqs),
                                         ssl_minimum_version=self.ssl_minimum_version,
                                         ssl_maximum_version=self.ssl_maximum_version)
        if not (self.ca_certs or self.ca_cert_dir or self.ca_cert_data):   # (urllib3 loads these for its own only)
            context.load_default_certs()
        return context

    def _proxy_tls_context(self):
        """The context urllib3 makes for an https:// proxy given none (_connect_tls_proxy): the
        connection's trust, its CA bundle loaded here (urllib3 loads none into a proxy's context given)."""
        context = self._tls_context()
        if self.ca_certs or self.ca_cert_dir or self.ca_cert_data:
            context.load_verify_locations(self.ca_certs, self.ca_cert_dir, self.ca_cert_data)
        return context


class _ClosingContext:
    """An SSL context (`context`, what urllib3 sets and reads passed on to it) whose wrap_socket does
    the handshake after the socket is made, not within its making (ssl's documented
    do_handshake_on_connect=False, then do_handshake), and closes it on whatever ends the handshake."""

    def __init__(self, context: ssl.SSLContext) -> None:
        object.__setattr__(self, "context", context)

    def __getattr__(self, name):
        return getattr(self.context, name)

    def __setattr__(self, name, value):
        setattr(self.context, name, value)

    def wrap_socket(self, sock, *args, do_handshake_on_connect: bool = True, **kwargs) -> ssl.SSLSocket:
        wrapped = self.context.wrap_socket(sock, *args, do_handshake_on_connect=False, **kwargs)
        try:
            if do_handshake_on_connect:
                wrapped.do_handshake()
        except BaseException:
            wrapped.close()
            raise
        return wrapped


def _connect_unless_stopped(sock: socket.socket, where, connecting: "_Connecting | None") -> None:
    """`sock` connected to `where` within its timeout, or ended by the stop at once. A shut before
    the connect has begun is lost on it (the socket connects all the same, for the connect timeout):
    so the connect is begun first, without waiting, and the stop looked at after. A stop before that
    look is seen by it, one after shuts a socket already connecting, which ends its connect."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    failed = sock.connect_ex(where)
    if connecting is not None and connecting.stopped:
        raise ConnectionAbortedError("the run was stopped")
    if failed in (errno.EINPROGRESS, errno.EINTR):   # (EINTR: it goes on all the same, POSIX's connect)
        waiting = select.poll()
        waiting.register(sock, select.POLLOUT)
        if not waiting.poll(None if timeout is None else timeout * 1000):
            raise TimeoutError("timed out")
        failed = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if connecting is not None and connecting.stopped:
        raise ConnectionAbortedError("the run was stopped")
    if failed:
        raise OSError(failed, os.strerror(failed))   # (ConnectionRefusedError and the like, by its number)
    sock.settimeout(timeout)


class _Connecting:
    """A connection being made, its TCP connect or TLS handshake, which only the connect timeout
    bounded: a stop of the run (HttpClient.cancel: `stop`) shuts its socket, and the connect or
    the handshake fails at once (a server whose accept queue is full, one that accepts and never
    answers the handshake). What it shuts is a duplicate of the socket, its own until `close`: the
    handshake runs on an SSLSocket that took over the socket's descriptor, and a descriptor closed
    by a failed connect may be another socket's by the time a stop comes. `stop` never blocks (a
    signal's handler calls it): where `holds` or `close` has the lock, `holds` looks again after."""

    def __init__(self) -> None:
        self.stopped = False
        self.held = False   # (a socket was given: before, the stop ended the name's lookup, if any)
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    def holds(self, sock: socket.socket) -> None:
        with self._lock:
            replaced, self._sock, self.held = self._sock, sock.dup(), True
        if replaced is not None:   # the copy of an address tried before: left to the collector, a ResourceWarning
            replaced.close()
        if self.stopped:
            self.stop()

    def stop(self) -> None:
        self.stopped = True
        if self._lock.acquire(blocking=False):
            try:
                if self._sock is not None:
                    self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            finally:
                self._lock.release()

    def close(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


class _NameNotResolved(urllib3.exceptions.NameResolutionError):
    """urllib3's, naming the name looked up (`name`): the portal's, or its SOCKS proxy's."""

    def __init__(self, name: str, conn, reason: socket.gaierror):
        super().__init__(name, conn, reason)
        self.name = name


_TUNNEL_REFUSED = re.compile(r"Tunnel connection failed: (\d{3}) ?(.*)", re.DOTALL)   # (urllib3's, http.client's)


class _HttpProxyRefused(OSError):
    """An HTTP proxy's status refusing a request: its answer to a CONNECT (an https:// portal's tunnel),
    or a 407 to a request it forwards (an http:// portal's). Its text names the proxy's host and port and
    quotes the status, never the proxy's credentials. `final` as SocksRefused's: PROXY for a 407, which
    says the proxy wants a login its URL does not give (no request goes through it as set); ADDRESS for
    another 4xx to a CONNECT (its rules refuse that destination: a 403); None for the rest (a 502, 503 or
    504: it could not reach the portal, retried as a direct connection's failure)."""

    def __init__(self, said: str, final: str | None):
        super().__init__(0, said)
        self.said, self.final = said, final

    def again(self) -> "_HttpProxyRefused":
        """The same refusal, raised anew (as SocksRefused.again)."""
        return _HttpProxyRefused(self.said, self.final)

    @classmethod
    def answered(cls, proxy: urllib3.util.Url, status: int, reason: str, target: str | None = None
                 ) -> "_HttpProxyRefused":
        """The refusal of `proxy` (its URL, parsed) answering `status` and `reason` to the CONNECT to
        `target` (host:port), or to a request it forwards (None: a 407 alone is taken for the proxy's)."""
        scheme = (proxy.scheme or "http").lower()
        port = proxy.port or {"http": 80, "https": 443}.get(scheme, 80)   # (urllib3's default for a proxy's)
        answer = f"{status} {_printable(reason)}".strip()
        if status == 407:
            said = ("refused the user name and password of the proxy's URL" if proxy.auth else
                    "wants a user name and password, which the proxy's URL does not give")
            final = PROXY
        elif 400 <= status < 500:
            said, final = f"refused to connect to {target}", ADDRESS
        else:
            said, final = f"could not connect to {target}", None
        return cls(f"the {scheme.upper()} proxy {proxy.host}:{port} {said} ({answer})", final)


def _printable(text: str, limit: int = 100) -> str:
    """A proxy's reason phrase as it may be quoted: its first `limit` characters, each one that does
    not print (a control character, a line's end) shown as '?'."""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


class _ThroughSocks:
    """A connection made through a SOCKS proxy (`_socks_options`, as urllib3 names what its SOCKS
    pools hand their connections): the proxy connected to as a portal is (its name looked up with
    a bound, its refusals counted, the stop ending the connect: _HeadersInTime), then asked for the
    portal (socks.ask_for_connection) within the connect timeout, on the socket `_connecting`
    holds: the stop ends the handshake too, and a TLS handshake through it. The portal's name is
    looked up here with the same bound unless the proxy looks it up (socks5h://, socks4a://), and
    each of its addresses asked for in turn, as a direct connection tries them: the first may be one
    the proxy cannot reach. The portal's port refused behind the proxy counts as its refusal, as
    when it is asked directly; a refusal asking again cannot change (SocksRefused.final) fails the
    request at once (ProxyRefused: _connection_failed), unless another address got another answer;
    one final for every request (its login refused, no SOCKS proxy: SocksRefused.final PROXY) asks
    for no other address, and is kept for the run by the adapter (_Adapter.send), as an HTTP proxy's."""

    def __init__(self, *args, _socks_options: dict[str, SocksProxy], **kwargs):
        self._proxy = _socks_options["proxy"]
        super().__init__(*args, **kwargs)

    def _new_conn(self):
        proxy, endpoint = self._proxy, f"{self.host}:{self.port}"
        exchange = getattr(_EXCHANGE, "current", None)
        failures: list[OSError] = []
        for portal in [self.host] if proxy.remote_names else self._addresses_for(proxy):
            if failures and self._connecting is not None and self._connecting.stopped:   # (not one more lookup)
                raise urllib3.exceptions.NewConnectionError(self, "the run was stopped") from ConnectionAbortedError()
            sock = self._connected(proxy.host, proxy.port, proxy.endpoint)   # (the proxy not reached: raised)
            try:
                self._asked_through(sock, proxy, portal)
            except OSError as exc:   # (a TimeoutError, a SocksRefused among them)
                failures.append(exc)
                if getattr(exc, "final", None) == PROXY:   # (no address goes through it: not one more asked)
                    break
                continue
            if exchange is not None:
                exchange.refusals.connected(endpoint)
            return sock
        # the request's failure: the last one asking again may change, if any (another address's answer)
        failed = next((exc for exc in reversed(failures) if not getattr(exc, "final", None)), failures[-1])
        if isinstance(failed, SocksRefused) and failed.reply == REFUSED and exchange is not None:
            exchange.refused = (endpoint, exchange.refusals.refused(endpoint))
        if isinstance(failed, TimeoutError):
            raise urllib3.exceptions.ConnectTimeoutError(
                self, f"the SOCKS proxy's handshake timed out. (connect timeout={self.timeout})") from failed
        raise urllib3.exceptions.NewConnectionError(self, f"Failed to establish a new connection: {failed}") \
            from failed

    def _asked_through(self, sock: socket.socket, proxy: SocksProxy, portal: str) -> None:
        """The proxy asked on `sock` for `portal`, within the connect timeout; `sock` closed
        whatever ends the handshake (a KeyboardInterrupt too: see _connected_to)."""
        seconds = self.timeout if isinstance(self.timeout, (int, float)) else None   # (not urllib3's "default")
        try:
            ask_for_connection(sock, proxy, portal, self.port, seconds)
            if seconds is not None:   # (its reads were given what was left of it)
                sock.settimeout(seconds)
        except BaseException:
            sock.close()
            raise

    def _addresses_for(self, proxy: SocksProxy) -> list[str]:
        """The portal's addresses to send the proxy (socks5://, socks4://: its name looked up
        here), in the resolver's order. SOCKS4 carries IPv4 addresses only: an IPv6 one is not
        sent (the proxy could not be asked for it), and a name with none fails at once."""
        addresses = self._looked_up(self._dns_host, self.port)
        if proxy.version == 4:
            addresses = [address for address in addresses if ":" not in address]
            if not addresses:
                said = f"takes IPv4 addresses only, and {self.host} has none (socks4a:// sends it its name)"
                raise urllib3.exceptions.NewConnectionError(self, said) from SocksRefused(proxy, said, final=ADDRESS)
        return addresses


class _DeadlineHTTPConnection(_HeadersInTime, urllib3.connection.HTTPConnection):
    pass


class _DeadlineHTTPSConnection(_HandshakeClosed, _HeadersInTime, urllib3.connection.HTTPSConnection):
    pass


class _SocksHTTPConnection(_ThroughSocks, _HeadersInTime, urllib3.connection.HTTPConnection):
    pass


class _SocksHTTPSConnection(_HandshakeClosed, _ThroughSocks, _HeadersInTime,
                            urllib3.connection.HTTPSConnection):
    pass


class _DeadlineHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


class _SocksHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _SocksHTTPConnection


class _SocksHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _SocksHTTPSConnection


class _SocksProxyManager(urllib3.PoolManager):
    """The pools of the portals asked through one SOCKS proxy (urllib3's SOCKSProxyManager, whose
    connections are PySocks', without the bounds: _ThroughSocks). ValueError for a URL no SOCKS
    proxy is reached by."""

    def __init__(self, proxy_url: str, num_pools: int = 10, headers=None, **connection_pool_kw):
        # (a dict: urllib3 keys the pools by its items)
        connection_pool_kw["_socks_options"] = {"proxy": SocksProxy.from_url(proxy_url)}
        super().__init__(num_pools, headers, **connection_pool_kw)
        self.pool_classes_by_scheme = {"http": _SocksHTTPPool, "https": _SocksHTTPSPool}


class _PoolManager(urllib3.PoolManager):
    """urllib3's, each pool it gives knowing the key and the context it was asked for by
    (`asked_as`), for the adapter to ask for it by them alone: requests works them out from the
    request's URL again for every request."""

    def connection_from_pool_key(self, pool_key, request_context):
        asked_as = (pool_key, dict(request_context))   # (a pool made takes its scheme, host and port out)
        pool = super().connection_from_pool_key(pool_key, request_context)
        pool.asked_as = asked_as
        return pool


class _Adapter(HTTPAdapter):
    """requests' adapter, its pools (a proxy's included) making _HeadersInTime connections."""

    POOLS = {"http": _DeadlineHTTPPool, "https": _DeadlineHTTPSPool}

    def __init__(self, *args, **kwargs):
        self._pools_asked_as: dict[tuple, tuple] = {}
        self._proxies_checked: set[str] = set()
        super().__init__(*args, **kwargs)

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        """requests' send, through a proxy (`proxies` naming one for the request's URL) as a run sends:
        its URL checked first, once (_check_proxy_url: requests quoted it in its error, a password
        holding a '/' in part, when the client was not made by from_env, which refuses it); a proxy
        given up this run (`_Exchange.proxies_refused`) not asked, its refusal raised again at once; a
        refusal final for every request (`final` PROXY: a SOCKS proxy's, an HTTP proxy's 407) kept
        for the run; and a 407 answered to a request the proxy forwards (an http:// portal's) taken
        for what it says, the proxy's refusal of its login (an origin's own 407 comes through a
        tunnel: an https:// portal's, or any behind a SOCKS proxy)."""
        proxy = requests.utils.select_proxy(request.url, proxies) if proxies else None
        if proxy is None:
            return super().send(request, stream, timeout, verify, cert, proxies)
        exchange = getattr(_EXCHANGE, "current", None)
        given_up = exchange.proxies_refused if exchange is not None else None
        if given_up and proxy in given_up:   # (what it said for every request: not asked again)
            raise requests.exceptions.ProxyError(given_up[proxy].again(), request=request)
        if proxy not in self._proxies_checked:
            try:
                _check_proxy_url(proxy)
            except ValueError as exc:
                raise requests.exceptions.InvalidProxyURL(str(exc), request=request) from None
            self._proxies_checked.add(proxy)
        try:
            response = super().send(request, stream, timeout, verify, cert, proxies)
            if response.status_code == 407 and request.url[:5].lower() == "http:" \
                    and not proxy.lower().startswith("socks"):
                response.close()
                parsed = urllib3.util.parse_url(proxy if "://" in proxy else f"http://{proxy}")
                raise requests.exceptions.ProxyError(_HttpProxyRefused.answered(parsed, 407, response.reason or ""),
                                                     request=request, response=response)
        except requests.exceptions.RequestException as exc:
            final = next((e for e in _causes(exc) if isinstance(e, (SocksRefused, _HttpProxyRefused))), None)
            if final is not None and final.final == PROXY and given_up is not None:
                given_up.setdefault(proxy, final.again())   # (no traceback kept)
            raise
        return response

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        """The pool of the request's origin, asked of the pool manager by the key it was made with
        (kept here, a few hundred bytes a host). Always asked of the manager, which keeps the pools
        of the 16 hosts used last: a pool kept here beside it outlived it, and a connection was
        held open to every host a thread ever asked (a records pull's downloads). Not through a
        proxy or with a client certificate (requests' own lookup)."""
        if proxies or cert is not None:
            return super().get_connection_with_tls_context(request, verify, proxies, cert)
        scheme, _, origin, *_ = request.url.split("/", 3)
        asked_as = self._pools_asked_as.get((scheme, origin, verify))
        if asked_as is not None:
            pool_key, request_context = asked_as
            return self.poolmanager.pools.get(pool_key) or \
                self.poolmanager.connection_from_pool_key(pool_key, dict(request_context))
        pool = super().get_connection_with_tls_context(request, verify)
        self._pools_asked_as[(scheme, origin, verify)] = pool.asked_as
        return pool

    def cert_verify(self, conn, url, verify, cert):
        """requests' check of the pool's certificates, for an http:// URL asked through an https://
        proxy as for an https:// one: that pool is the proxy's, spoken to over TLS (its password
        sent in it), and requests left the proxy's certificate unchecked for an http:// URL."""
        if url[:5].lower() == "http:" and conn.scheme == "https" and getattr(conn, "proxy", None) is not None:
            url = "https:" + url[5:]
        super().cert_verify(conn, url, verify, cert)

    def request_url(self, request, proxies):
        return super().request_url(request, proxies) if proxies else request.path_url   # (as requests has it)

    def init_poolmanager(self, connections, maxsize, block=requests.adapters.DEFAULT_POOLBLOCK, **pool_kwargs):
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)   # (it keeps them, for pickling)
        self.poolmanager = _PoolManager(num_pools=connections, maxsize=maxsize, block=block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = self.POOLS

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        if not proxy.lower().startswith("socks"):
            manager = super().proxy_manager_for(proxy, **proxy_kwargs)
            manager.pool_classes_by_scheme = self.POOLS
            return manager
        manager = self.proxy_manager.get(proxy)   # (requests' own needs PySocks, its connections unbounded)
        if manager is None:
            try:
                manager = _SocksProxyManager(proxy, num_pools=self._pool_connections, maxsize=self._pool_maxsize,
                                             block=self._pool_block, **proxy_kwargs)
            except ValueError as exc:   # (HttpClient.from_env refuses it first: a library caller's)
                raise requests.exceptions.InvalidProxyURL(str(exc)) from None
            self.proxy_manager[proxy] = manager
        return manager


@contextmanager
def _headers_by(deadline: float, refusals: "_Refusals", resolver: "_ResolverWatch", stop: threading.Event,
                in_flight: set, proxies_refused: dict | None = None) -> Iterator[_Exchange]:
    """The responses of this thread's request (its redirects too) must have their headers by
    `deadline` (time.monotonic), moved on by the time its connections take to make, or by `stop`
    (their waits' watchdogs listed in `in_flight` meanwhile, for the stop to shut); the
    connections refused or made are told to `refusals`, the lookups to `resolver`, and a proxy no
    request goes through is kept in `proxies_refused`, and not asked again (_Adapter.send)."""
    exchange = _EXCHANGE.current = _Exchange(deadline, refusals, resolver, stop, in_flight,
                                             proxies_refused=proxies_refused)
    try:
        yield exchange
    finally:
        _EXCHANGE.current = None


def _connection_failed(exc: Exception, url: str, seconds: float, exchange: _Exchange) -> HttpError:
    if isinstance(exc, requests.exceptions.InvalidProxyURL):   # (its text never names the proxy's credentials)
        return InvalidUrl(f"the proxy's URL is not valid ({exc})", url)
    if isinstance(exc, requests.exceptions.InvalidURL):   # (what _check_url lets by: requests' own checks, a proxy's)
        return InvalidUrl(f"URL not valid ({_without_credentials(str(exc))})", url)
    if exchange.headers_late:
        return TimedOut(f"response headers took over {seconds:.0f}s to arrive", url)
    unresolved = _name_not_found(exc)
    if unresolved is not None:
        return HostNotFound(*unresolved, url)
    unanswered = next((e for e in _causes(exc) if isinstance(e, _LookupFault)), None)
    if unanswered is not None:
        return unanswered.error(url)
    final = next((e for e in _causes(exc) if isinstance(e, (SocksRefused, _HttpProxyRefused)) and e.final), None)
    if final is not None:   # (what the proxy will say again: a setting to correct; a redirect's host too)
        return ProxyRefused(urlparse(_url_of(exc) or url).hostname, final.strerror, url, final.final == PROXY)
    if exchange.refused is not None:
        endpoint, seconds = exchange.refused
        return ConnectionRefused(endpoint, url, seconds, exchange.refusals.limit)
    rejected = next((e for e in _causes(exc) if isinstance(e, ssl.SSLCertVerificationError)), None)
    if rejected is not None:   # (the host of the request that failed: a redirect's too; or its https:// proxy's)
        proxy = _proxy_not_reached(exc)
        host = f"the proxy {proxy}" if proxy else urlparse(_url_of(exc) or url).hostname
        return CertificateRejected(host, rejected.verify_message or rejected.strerror or str(rejected), url)
    return ConnectionFailed(f"connection failed: {type(exc).__name__}{_os_reason(exc)}", url)


def _proxy_not_reached(exc: Exception) -> str | None:
    """The host of the proxy `exc` (requests' error) failed to reach, if it did (urllib3's
    ProxyError: no TLS with it made, say), from the pool it failed in (MaxRetryError's)."""
    if not any(isinstance(e, urllib3.exceptions.ProxyError) for e in _causes(exc)):
        return None
    pool = next((e.pool for e in _causes(exc) if isinstance(e, urllib3.exceptions.MaxRetryError)), None)
    proxy = getattr(pool, "proxy", None)
    return getattr(proxy, "host", None) or getattr(pool, "host", None)


def _url_of(exc: Exception) -> str | None:
    """The URL of the request `exc` (requests' error) failed: a redirect's, where one failed."""
    return getattr(getattr(exc, "request", None), "url", None)


_NAME_NOT_FOUND = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


def _name_not_found(exc: BaseException) -> tuple[str, str] | None:
    """(the host name, the resolver's reason) when `exc` (requests' error) comes of a name the
    resolver says does not exist. The name is the one looked up: the URL's, a redirect's or a
    proxy's host (urllib3's NameResolutionError keeps the connection it failed for)."""
    for error in _causes(exc):
        if isinstance(error, urllib3.exceptions.NameResolutionError):
            reason = next((e for e in _causes(error) if isinstance(e, socket.gaierror)), None)
            host = getattr(error, "name", None) or getattr(getattr(error, "conn", None), "host", None)
            if reason is not None and reason.errno in _NAME_NOT_FOUND and host:
                return host, reason.strerror
            return None
    return None


class _Refusals:
    """How long each endpoint (host:port) has refused connections in a row: since its first
    refusal with no connection made since and no pause over `limit` between two refusals (a
    gap that long says nothing of the port meanwhile). Shared by the clients of a run."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self._streaks: dict[str, tuple[float, float]] = {}   # endpoint: (first refusal, last refusal)
        self._lock = threading.Lock()

    def refused(self, endpoint: str) -> float:
        """`endpoint` refused a connection: the seconds it has refused in a row (0 the first time)."""
        now = time.monotonic()
        with self._lock:
            first, last = self._streaks.get(endpoint, (now, now))
            if now - last > self.limit:
                first = now
            self._streaks[endpoint] = (first, now)
        return now - first

    def connected(self, endpoint: str) -> None:
        if self._streaks:   # (most runs never meet a refusal: no lock taken)
            with self._lock:
                self._streaks.pop(endpoint, None)


def _causes(exc: BaseException | None) -> Iterator[BaseException]:
    """`exc` and what it wraps: requests' error wraps urllib3's (args[0]), which names its cause
    (`reason`), raised from the socket's."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        wrapped = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
        cause = getattr(exc, "reason", None)
        exc = next((e for e in (wrapped, cause, exc.__cause__, exc.__context__) if isinstance(e, BaseException)), None)


def _os_reason(exc: BaseException) -> str:
    """The system's reason under a requests exception (a name that does not resolve, a refused
    connection), so that an offline run says why: ": Connection refused", or "" when there is none.
    Only the error's own text is taken, never the exception's, which may name a proxy's credentials."""
    reason = ""
    for error in _causes(exc):
        if isinstance(error, socket.gaierror):
            reason = f": cannot resolve the host name ({error.strerror})"
        elif isinstance(error, OSError) and error.strerror:
            reason = f": {error.strerror}"
    return reason
