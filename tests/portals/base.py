"""Local HTTP portal for tests: a werkzeug WSGI app served from a background thread.

Subclasses implement ``route(path, query) -> (status, json_body)``. The base class
adds what real portals do to a client: a request log, ETag/Last-Modified with 304s,
gzip, and queued faults (5xx, 429 + Retry-After, resets, HTML pages, truncated or
invalid JSON, slow answers).
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from werkzeug.http import HTTP_STATUS_CODES, http_date
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request

from tests.children import ended, line_of

Query = dict[str, str]
JSON_TYPE = "application/json; charset=utf-8"

# Fault kind -> number of arguments after the kind.
FAULT_ARITY = {
    "status": 1,  # ("status", 503)
    "retry_after": 2,  # ("retry_after", 429, seconds)
    "reset": 0,
    "html": 0,
    "html_as_json": 0,
    "truncated": 0,
    "truncated_json": 0,
    "invalid_json": 0,
    "slow": 1,  # ("slow", seconds)
}

MAINTENANCE_PAGE = (
    b'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
    b"<title>Service temporarily unavailable | example.org</title></head>\n"
    b'<body><div class="cf-error-details"><h1>Down for maintenance</h1>'
    b"<p>The portal is being upgraded and will be back shortly.</p>"
    b"<p>Ray ID: 7d1f3a9c2b8e4f60 &bull; Performance &amp; security by Cloudflare</p>"
    b"</div></body></html>\n"
)
INVALID_JSON = b'{"results": [1, 2,'


class RawBody:
    """A non-JSON answer from ``route`` (a CSV page, an export file)."""

    def __init__(self, body: bytes, content_type: str = "text/csv; charset=utf-8") -> None:
        self.body = body
        self.content_type = content_type


def json_error(status: int, message: str | None = None) -> dict:
    """Error body in the shape Socrata uses."""
    reason = HTTP_STATUS_CODES.get(status, "Error")
    return {"code": reason.lower().replace(" ", "_"), "error": True, "message": message or reason}


def parse_fault(fault: str | tuple) -> tuple[str, tuple]:
    kind, *args = (fault,) if isinstance(fault, str) else fault
    if FAULT_ARITY.get(kind) != len(args):
        raise ValueError(f"unknown fault or wrong arguments: {fault!r}")
    return kind, tuple(args)


class InjectedReset(ConnectionResetError):
    """Raised by the app to drop the connection without any response."""


class _Handler(WSGIRequestHandler):
    # werkzeug hands a ConnectionError raised by the app to connection_dropped()
    # without a 500 page or a logged traceback. Stop reading further requests
    # (the client keeps its socket open) and, for an injected reset, close with
    # SO_LINGER=0 so the kernel sends RST rather than FIN.
    def connection_dropped(self, error, environ=None) -> None:
        self.close_connection = True
        self._abort = isinstance(error, InjectedReset)

    def send_header(self, keyword: str, value: str) -> None:
        # the Date header as the portal's `date_header` says it: a clock of its own, a header not a date, none
        date = getattr(getattr(self.server.app, "__self__", None), "date_header", None)
        if keyword == "Date" and date is not None:
            if isinstance(date, timedelta):
                value = http_date(datetime.now(timezone.utc) + date)
            elif not (value := date):
                return
        super().send_header(keyword, value)

    def finish(self) -> None:
        super().finish()
        if getattr(self, "_abort", False):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    def log_request(self, *args) -> None:
        pass  # portals keep their own log; thousands of benchmark lines help nobody


class LocalPortal:
    """Base local portal; ``with SomePortal(...) as portal:`` starts and stops it.

    Paths used by ``route``, ``inject``, ``serve_json``, ``hits`` and ``requests``
    are relative to the portal root, i.e. without ``prefix``.
    """

    handler = _Handler   # (a subclass setting protocol_version "HTTP/1.0" sends bodies to the close)

    def __init__(self, prefix: str = "") -> None:
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.requests: list[tuple[str, Query, dict[str, str]]] = []
        self.hits: Counter[str] = Counter()
        self.last_modified = datetime(2024, 1, 15, 12, 0, 0, tzinfo=timezone.utc)
        # False: Last-Modified alone, no ETag (a portal whose date is its catalogue's last
        # change, so any answer since then is "not modified", whatever URL asked)
        self.etags = True
        # "stable": the validators above; "none": no ETag nor Last-Modified, never a 304 (a server
        # that sends no validators); "changing": an ETag of its own for every answer, the same bytes
        # included, never a 304 (servers behind a balancer, each node its own ETag)
        self.validators = "stable"
        # each answer's Date header: None, the time; a timedelta, a clock that far ahead of ours (behind: negative);
        # a text, that text ("" sends none)
        self.date_header: timedelta | str | None = None
        self.age_header: str | None = None   # each answer's Age header (as a cache that kept it sends), None: none
        self._answers_sent = itertools.count()
        # on_request(path, query) runs before each answer, e.g. to change the catalogue.
        self.on_request: Callable[[str, Query], None] | None = None
        self.static: dict[str, Any] = {}
        self._faults: list[list] = []  # [path_prefix, kind, args, remaining]
        self._lock = threading.Lock()
        self._server = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self, port: int = 0):
        """Serve on 127.0.0.1:`port` (0: a free port the server binds)."""
        self._server = make_server("127.0.0.1", port, self._wsgi, threaded=True, request_handler=self.handler)
        # A short poll interval keeps stop() (and so each test's teardown) quick.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("portal not started")
        return f"http://127.0.0.1:{self._server.server_port}{self.prefix}"

    # -- test controls -----------------------------------------------------

    def inject(self, path_prefix: str, fault: str | tuple, times: int = 1) -> None:
        """Queue ``fault`` for the next ``times`` requests whose path starts with
        ``path_prefix``; queued faults are consumed first in, first out."""
        kind, args = parse_fault(fault)
        with self._lock:
            self._faults.append([path_prefix, kind, args, times])

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> list[tuple[str, str | tuple, int]]:
        """Faults not consumed yet, as (path_prefix, fault, remaining)."""
        with self._lock:
            return [(p, (k, *a) if a else k, n) for p, k, a, n in self._faults]

    def serve_json(self, path: str, payload: Any) -> None:
        """Serve a fixed JSON payload at ``path`` (e.g. a FeatureServer layer)."""
        self.static[path] = payload

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()
            self.hits.clear()

    def route(self, path: str, query: Query) -> tuple[int, Any]:
        """Answer (status, JSON-able body); subclasses override."""
        return 404, json_error(404, f"No route for {path}")

    # -- WSGI --------------------------------------------------------------

    def _take_fault(self, path: str) -> tuple[str, tuple] | None:
        for queued in self._faults:
            if path.startswith(queued[0]):
                queued[3] -= 1
                if queued[3] <= 0:
                    self._faults.remove(queued)
                return queued[1], queued[2]
        return None

    def _wsgi(self, environ, start_response):
        request = Request(environ)
        path, inside = request.path, True
        if self.prefix:
            inside = path == self.prefix or path.startswith(self.prefix + "/")
            path = (path[len(self.prefix):] or "/") if inside else path
        query = request.args.to_dict()
        with self._lock:
            self.requests.append((path, query, dict(request.headers)))
            self.hits[path] += 1
            kind, args = self._take_fault(path) or (None, ())
        if self.on_request is not None:
            self.on_request(path, query)

        if kind == "slow":
            time.sleep(args[0])
            kind = None
        if kind == "reset":
            raise InjectedReset("injected connection reset")
        if kind in ("status", "retry_after"):
            extra = [("Retry-After", str(args[1]))] if kind == "retry_after" else []
            answer = self._encode(request, args[0], json.dumps(json_error(args[0])).encode(), headers=extra)
        elif kind == "html":
            answer = self._encode(request, 200, MAINTENANCE_PAGE, "text/html; charset=utf-8")
        elif kind == "html_as_json":
            answer = self._encode(request, 200, MAINTENANCE_PAGE)
        elif kind == "invalid_json":
            answer = self._encode(request, 200, INVALID_JSON)
        else:
            if not inside:
                status, payload = 404, json_error(404, f"No route for {path}")
            elif path in self.static:
                status, payload = 200, self.static[path]
            else:
                status, payload = self.route(path, query)
            content_type = JSON_TYPE
            if isinstance(payload, RawBody):
                body, content_type = payload.body, payload.content_type
            else:
                body = json.dumps(payload).encode()
            if kind == "truncated_json":
                body = body[: len(body) // 2]  # valid HTTP message, broken JSON (or CSV cut mid-row)
            answer = self._encode(request, status, body, content_type, validators=status == 200,
                                  conditional=kind is None)
            if kind == "truncated":
                # Keep the full Content-Length: the client must see an incomplete read.
                status, headers, body = answer
                answer = status, headers, body[: len(body) // 2]

        status, headers, body = answer
        start_response(f"{status} {HTTP_STATUS_CODES.get(status, 'Unknown')}", headers)
        return [body]

    def _encode(self, request: Request, status: int, body: bytes, content_type: str = JSON_TYPE,
                headers: list = (), validators: bool = False, conditional: bool = False):
        """Status, headers and body as a real server sends them: ETag and
        Last-Modified (``validators``), 304 on a matching condition
        (``conditional``), gzip when accepted, always a Content-Length."""
        headers = [("Content-Type", content_type), ("Vary", "Accept-Encoding"), *headers]
        if self.age_header is not None:
            headers.append(("Age", self.age_header))
        if validators and self.validators == "changing":
            headers.append(("ETag", '"%s-%d"' % (hashlib.sha1(body).hexdigest(), next(self._answers_sent))))
        elif validators and self.validators == "stable":
            etag = '"%s"' % hashlib.sha1(body).hexdigest()  # strong: hash of the JSON bytes
            validator_headers = [("ETag", etag)] if self.etags else []
            validator_headers.append(("Last-Modified", http_date(self.last_modified)))
            if conditional and self._not_modified(request, etag):
                return 304, validator_headers + [("Vary", "Accept-Encoding")], b""
            headers += validator_headers
        if body and request.accept_encodings["gzip"]:
            # Level 1: the server thread shares the GIL with the client under test.
            body = gzip.compress(body, compresslevel=1, mtime=0)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(body))))
        return status, headers, body

    def _not_modified(self, request: Request, etag: str) -> bool:
        # If-None-Match, when sent, overrides If-Modified-Since (RFC 9110, 13.2.2).
        if request.if_none_match:
            return request.if_none_match.contains_weak(etag.strip('"'))
        since = request.if_modified_since
        return since is not None and self.last_modified.replace(microsecond=0) <= since


# a folder served as `python -m http.server` serves it, on a port the server binds itself and prints
SERVE_FOLDER = """
import functools, http.server, sys
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@contextmanager
def files_served_apart(folder: Path) -> Iterator[str]:
    """`folder` served over HTTP on 127.0.0.1, in a process of its own: its URL.
    For tests that measure what the client allocates (tracemalloc counts every thread of the
    process, and a LocalPortal's thread answering a large body allocates up to its size again
    now and then: a bound on the client's memory flaked under load). The server picks its port
    as it binds: a port found free here and let go could be taken by another process (another
    pytest-xdist worker's portal) before the server bound it, and the URL then named theirs."""
    server = subprocess.Popen([sys.executable, "-c", SERVE_FOLDER, str(folder)], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        port = line_of(server).strip()   # (printed once it listens)
        if not port.isdigit():
            raise RuntimeError(f"the file server for {folder} did not start (exit status {ended(server, 30)})")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
