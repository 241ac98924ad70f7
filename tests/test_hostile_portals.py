"""A hostile or broken portal, played against civicat over real HTTP on 127.0.0.1 (session 40's
audit, docs/harvesting.md#hostile-portals): each test a hole that audit found, or a guard of a
bound that was already kept but that no test held."""
import contextlib
import json
import socket
import ssl
import threading

from tests.conftest import fast_client
from tests.harvester.http.conftest import DOC
from tests.harvester.http.test_https_proxy import PROXY_VARIABLES, _tls_for_127_0_0_1


# -- secrets on a redirect ------------------------------------------------------------------------

class _TlsAndPlainOnOnePort:
    """A server on 127.0.0.1 that speaks TLS to a client opening with a TLS handshake and plain HTTP
    to any other, on the same port: `https://host/` and `http://host/` at one host and port, as a
    portal's 443 and 80 are to a client's redirect check. It answers /moved with a redirect to
    `moved_to` and anything else with DOC; `heard` is each request's (scheme, path, headers)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context, self.heard, self.moved_to = context, [], ""
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]

    def __enter__(self):
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:   # (closed: the test is over)
                return
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with contextlib.suppress(OSError, ValueError), connection:
            tls = connection.recv(1, socket.MSG_PEEK) == b"\x16"   # (a TLS record of a handshake)
            if tls:
                connection = self.context.wrap_socket(connection, server_side=True)
            head = b""
            while b"\r\n\r\n" not in head and (piece := connection.recv(65536)):
                head += piece
            line, *fields = head.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
            headers = dict(field.split(": ", 1) for field in fields)
            path = line.split(" ")[1]
            self.heard.append(("https" if tls else "http", path, headers))
            if path == "/moved":
                status, fields, body = "302 Found", f"Location: {self.moved_to}\r\n", b""
            else:
                status, fields, body = "200 OK", "Content-Type: application/json\r\n", json.dumps(DOC).encode()
            connection.sendall(f"HTTP/1.1 {status}\r\n{fields}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                               .encode() + body)


def test_a_secret_header_does_not_follow_a_redirect_from_https_down_to_plain_http(tmp_path, monkeypatch):
    """The app token was kept on a redirect whose host and port stayed the same (compared as the
    URL's netloc), its scheme not: `https://data.city.example/` redirecting to
    `http://data.city.example/` (443 to 80, one netloc) sent the token in clear text, where anyone on
    the way reads it. It is kept only where requests keeps Authorization: the same host and port, or
    http going up to https on the standard ports."""
    context, cert = _tls_for_127_0_0_1(tmp_path)
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert)
    with _TlsAndPlainOnOnePort(context) as portal:
        portal.moved_to = f"http://127.0.0.1:{portal.port}/doc"
        assert fast_client().get_json(f"https://127.0.0.1:{portal.port}/moved",
                                      headers={"X-App-Token": "secret"}).data == DOC
    assert [(scheme, path) for scheme, path, _ in portal.heard] == [("https", "/moved"), ("http", "/doc")]
    assert portal.heard[0][2]["X-App-Token"] == "secret"
    assert "X-App-Token" not in portal.heard[1][2]
