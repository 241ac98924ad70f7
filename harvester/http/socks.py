"""The client's side of a SOCKS proxy (ALL_PROXY=socks5h://host:1080): which proxy a URL names
(SocksProxy), and the handshake that asks it for a connection to the portal, made on a socket
already connected to it (`ask_for_connection`): SOCKS5 (RFC 1928) with a user name and password
(RFC 1929) or none, SOCKS4 and SOCKS4a. Written here, not taken from PySocks (urllib3's SOCKS
support): its socket connects to the proxy and talks to it in one call, out of reach of the
bounds every other connection has (connections.py: the bounded lookup, the refusals counted, the
stop); here the proxy is connected to as any host is, and this handshake runs on its socket,
within the connect timeout, ended by the stop as a TLS handshake is."""
from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

SCHEMES = {"socks5": (5, False), "socks5h": (5, True), "socks4": (4, False), "socks4a": (4, True)}

# What a SOCKS5 proxy's reply says (RFC 1928, 6), and a SOCKS4 proxy's (its reply's second byte), and
# whether asking again can change it: None, retried under the direct path's bounds; ADDRESS, final for
# the address asked (another address of the portal may be let through, another portal too: a proxy's
# rules name destinations); PROXY, final for every request through the proxy, whatever it asks for (a
# setting to change: a night of retries gets the same answer each time, for every portal).
ADDRESS, PROXY = "address", "proxy"
_SOCKS5_REPLIES = {
    1: ("general SOCKS server failure", None),   # (many proxies' answer for a fault of their own, a connect timed out)
    2: ("connection not allowed by its rules", ADDRESS),   # (its rules name destinations: another may be allowed)
    3: ("network unreachable", None),   # (as the direct path's ENETUNREACH: a route that comes back)
    4: ("host unreachable", None),   # (as EHOSTUNREACH; some proxies' answer too for a name they could not look up)
    5: ("connection refused", None),   # (counted as the portal's port's refusal: connections.py)
    6: ("TTL expired", None),   # (a routing loop, or some proxies' answer for a connect timed out)
    7: ("command not supported", PROXY),   # (it makes no TCP connections (CONNECT): no request goes through it;
    #                                          a command its rules refuse for a destination is 2's)
    8: ("address type not supported", ADDRESS)}   # (an IPv6 address, or a name (socks5h://) to one that looks up none)
_SOCKS4_REPLIES = {
    0x5B: ("request rejected or failed", None),   # (SOCKS4's one answer for every failure, a refusal among them)
    # (it wants an identd on civicat's machine: a setting, not a moment; but SOCKS4 grants a request by
    # "any combination" of its destination, the user id and what identd says, so a rule may ask for it for
    # some destinations alone: final for the address, as 2 is)
    0x5C: ("its identd unreachable", ADDRESS),
    0x5D: ("its identd said another user id", ADDRESS)}
REFUSED = "connection refused"   # (the portal's port refused the proxy: counted as a refusal of the port)


@dataclass(frozen=True)
class SocksProxy:
    """A SOCKS proxy as its URL names it. `remote_names`: the portal's host name is sent to the
    proxy to look up (socks5h, socks4a), not looked up here first. Hashable: urllib3 keys its pools
    by it. The credentials are never shown (repr, errors)."""

    version: int
    host: str
    port: int
    remote_names: bool
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str) -> "SocksProxy":
        """ValueError (never naming the credentials) for a URL no SOCKS proxy is reached by."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            raise ValueError(f"{scheme}:// is no SOCKS proxy (one of {', '.join(s + '://' for s in SCHEMES)})")
        try:
            port = 1080 if parts.port is None else parts.port   # (a port 0 is no port 1080: refused below)
        except ValueError:
            port = 0
        if not 1 <= port <= 65535:
            raise ValueError(f"the {scheme}:// proxy's port is not a number from 1 to 65535")
        if not parts.hostname:
            raise ValueError(f"the {scheme}:// proxy names no host")
        version, remote_names = SCHEMES[scheme]
        username = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
        if version == 5 and username is not None and (len(username.encode()) > 255 or
                                                      len((password or "").encode()) > 255):
            raise ValueError("the socks5:// proxy's user name or password is over 255 bytes (RFC 1929)")
        return cls(version, parts.hostname, port, remote_names, username, password)

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"


class SocksRefused(OSError):
    """The proxy's handshake failed: it said no (`reply`, its reason, REFUSED among them), or it is
    no SOCKS proxy of that version. Its text names the proxy's host and port, never its credentials.
    `final`: None where asking again may do, ADDRESS where the proxy will not connect to the address
    asked, PROXY where no request goes through it as set (its login refused, no SOCKS proxy...)."""

    def __init__(self, proxy: SocksProxy, said: str, reply: str | None = None, final: str | None = None):
        super().__init__(0, f"the SOCKS{proxy.version} proxy {proxy.endpoint} {said}")
        self.proxy, self.said, self.reply, self.final = proxy, said, reply, final

    def again(self) -> "SocksRefused":
        """The same refusal, raised anew (a later request's, the proxy not asked: an exception
        object is not raised in two threads at once)."""
        return SocksRefused(self.proxy, self.said, self.reply, self.final)


def ask_for_connection(sock: socket.socket, proxy: SocksProxy, host: str, port: int, seconds: float | None) -> None:
    """The handshake on `sock` (connected to `proxy`) asking for a connection to `host`:`port`,
    done within `seconds` in all (None: each read waits for as long as the socket's timeout):
    TimeoutError past them, SocksRefused when the proxy says no. `host` is a name only where the
    proxy looks names up (`remote_names`), else the address looked up for it."""
    deadline = None if seconds is None else time.monotonic() + seconds
    if proxy.version == 5:
        _socks5(sock, proxy, host, port, deadline)
    else:
        _socks4(sock, proxy, host, port, deadline)


def _socks5(sock: socket.socket, proxy: SocksProxy, host: str, port: int, deadline: float | None) -> None:
    methods = b"\x00\x02" if proxy.username is not None else b"\x00"   # (none, or a user name and password)
    sock.sendall(b"\x05" + bytes([len(methods)]) + methods)
    version, method = _received(sock, 2, proxy, deadline)
    if version != 5:
        raise SocksRefused(proxy, "is no SOCKS5 proxy (its answer to the greeting is not SOCKS5's)", final=PROXY)
    if method == 0x02 and proxy.username is not None:
        username, password = proxy.username.encode(), (proxy.password or "").encode()
        sock.sendall(b"\x01" + bytes([len(username)]) + username + bytes([len(password)]) + password)
        if _received(sock, 2, proxy, deadline)[1] != 0:
            raise SocksRefused(proxy, "refused the user name and password of the proxy's URL", final=PROXY)
    elif method != 0x00:
        raise SocksRefused(proxy, "takes none of the ways to log in offered (none, or the user name and "
                                  "password of the proxy's URL)", final=PROXY)
    sock.sendall(b"\x05\x01\x00" + _socks5_address(host) + port.to_bytes(2, "big"))
    version, reply, _, kind = _received(sock, 4, proxy, deadline)
    if version != 5:
        raise SocksRefused(proxy, "is no SOCKS5 proxy (its reply is not SOCKS5's)", final=PROXY)
    if reply != 0:
        raise _refused(proxy, host, port, _SOCKS5_REPLIES.get(reply, (f"reply {reply}", None)))
    # the address it connected from, read to its end: what follows on the socket is the portal's
    length = {1: 4, 4: 16}.get(kind) or (_received(sock, 1, proxy, deadline)[0] if kind == 3 else None)
    if length is None:
        raise SocksRefused(proxy, f"replied with an address of unknown type {kind}")
    _received(sock, length + 2, proxy, deadline)


def _socks5_address(host: str) -> bytes:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        name = host.encode("idna")   # (as urllib3 sends it in the Host header and TLS's SNI)
        if len(name) > 255:
            raise ValueError(f"host name {host} is over SOCKS5's 255 bytes") from None
        return b"\x03" + bytes([len(name)]) + name
    return (b"\x01" if address.version == 4 else b"\x04") + address.packed


def _socks4(sock: socket.socket, proxy: SocksProxy, host: str, port: int, deadline: float | None) -> None:
    user = (proxy.username or "").encode() + b"\x00"
    try:
        address, name = ipaddress.IPv4Address(host).packed, b""
    except ValueError:   # (SOCKS4a: an address 0.0.0.x, the name after the user id)
        address, name = b"\x00\x00\x00\x01", host.encode("idna") + b"\x00"
    sock.sendall(b"\x04\x01" + port.to_bytes(2, "big") + address + user + name)
    version, reply, *_ = _received(sock, 8, proxy, deadline)
    if version != 0:
        raise SocksRefused(proxy, "is no SOCKS4 proxy (its reply is not SOCKS4's)", final=PROXY)
    if reply != 0x5A:
        raise _refused(proxy, host, port, _SOCKS4_REPLIES.get(reply, (f"reply {reply}", None)))


def _refused(proxy: SocksProxy, host: str, port: int, reply: tuple[str, str | None]) -> SocksRefused:
    said, final = reply   # (a reply no RFC names: retried, as a fault not known to last)
    if final == PROXY:   # (said to every portal's request after it: the first's host not named)
        return SocksRefused(proxy, f"refuses every connection: {said}", said, final)
    where = f"[{host}]" if ":" in host else host   # (an IPv6 address's port told apart from it)
    return SocksRefused(proxy, f"could not connect to {where}:{port}: {said}", said, final)


def _received(sock: socket.socket, size: int, proxy: SocksProxy, deadline: float | None) -> bytes:
    """`size` bytes of the proxy's answer, each read given what is left of the handshake's time
    (a proxy sending a byte at a time never holds it longer)."""
    received = b""
    while len(received) < size:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out")
            sock.settimeout(left)
        piece = sock.recv(size - len(received))
        if not piece:   # (a stop's shut socket reads as this too: connections.py tells the two apart)
            raise SocksRefused(proxy, "closed the connection in the handshake")
        received += piece
    return received
