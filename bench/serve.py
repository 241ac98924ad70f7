"""Serve a synthetic portal from a separate process, so benchmarks measure the harvester
and not the server sharing its interpreter.

    python -m bench.serve socrata 100000     # prints the base URL, serves until stdin closes
    python -m bench.serve socrata 100000:none   # its validators stable, none or changing (as data.json's)
    python -m bench.serve soda-records 5000000   # one dataset of that many rows (and its first tenth)
    python -m bench.serve soda-wide 20000x1000x16   # one dataset of rows x distinct texts (bench.records_memory)
    python -m bench.serve nightly 300x300000    # portals x datasets of every kind (bench.fleet), one port
                                                # each; prints them as a JSON line; commands on stdin
    python -m bench.serve data.json 50000:none  # one data.json (or `hub`: a Hub feed and its layers),
                                                # its validators stable, none or changing
    python -m bench.serve hub-recorded 36000    # a Hub feed of the recorded entries, and its layers
                                                # (bench.hub_feed)
"""
from __future__ import annotations

import gc
import io
import os
import shutil
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote

from tests.portals.socrata import SocrataPortal
from tests.portals.synth import make_socrata_entries

DOMAIN = "data.example.org"
ROOT = Path(__file__).resolve().parents[1]


STOP_SECONDS = 60   # the server's own stop (a fleet's 300 servers, each a poll interval): then it is killed


@contextmanager
def serving(kind: str, count: int | str) -> Iterator[subprocess.Popen]:
    """This module in a process of its own; read what it prints from `.stdout` (the URL
    last). It stops when the block ends; one that has not stopped STOP_SECONDS later (a
    machine at load 50 and more) is killed, with a message, never an exception: the block's
    measurements are done, and the benchmark goes on to print them."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-m", "bench.serve", kind, str(count)], cwd=ROOT, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        yield server
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            print(f"bench.serve: the {kind} server did not stop within {STOP_SECONDS} s (load "
                  f"{os.getloadavg()[0]:.1f}): killed", file=sys.stderr, flush=True)
            server.kill()
            server.wait()


class CachedSocrataPortal(SocrataPortal):
    """Answers each distinct request from memory after its first time, so the benchmark's
    warm-up pass leaves the server nearly free: its cost must not hide the harvester's."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._answers: dict[str, tuple[str, list, list]] = {}

    def _wsgi(self, environ, start_response):
        query = "&".join(sorted(environ.get("QUERY_STRING", "").split("&")))  # the same request in any order
        key = (f"{environ.get('PATH_INFO')}?{query}|{environ.get('HTTP_ACCEPT_ENCODING', '')}"
               f"|{environ.get('HTTP_IF_NONE_MATCH', '')}|{environ.get('HTTP_IF_MODIFIED_SINCE', '')}")  # 304s too
        answer = self._answers.get(key)
        if answer is None:
            captured = {}

            def capture(status, headers, exc_info=None):
                captured.update(status=status, headers=headers)

            body = list(super()._wsgi(environ, capture))
            answer = self._answers[key] = (captured["status"], captured["headers"], body)
        start_response(answer[0], answer[1])
        return answer[2]


def answered_from_memory(app, answers: dict, asked: list | None = None):
    """`app` (a portal's WSGI app) answering each distinct request from `answers` after its first
    time (clear `answers` when the portal changes), but while the portal has faults queued; with
    `asked`, the path and query of every request that asked without a condition are appended."""
    portal = getattr(app, "__self__", None)

    def answer(environ, start_response):
        if portal is not None and portal._faults:
            return app(environ, start_response)
        query = "&".join(sorted(environ.get("QUERY_STRING", "").split("&")))  # the same request in any order
        conditional = environ.get("HTTP_IF_NONE_MATCH", "") or environ.get("HTTP_IF_MODIFIED_SINCE", "")
        if asked is not None and not conditional:
            asked.append(f"{environ.get('PATH_INFO')}?{environ.get('QUERY_STRING', '')}")
        key = (f"{environ.get('PATH_INFO')}?{query}|{environ.get('HTTP_ACCEPT_ENCODING', '')}"
               f"|{environ.get('HTTP_IF_NONE_MATCH', '')}|{environ.get('HTTP_IF_MODIFIED_SINCE', '')}")  # 304s too
        cached = answers.get(key)
        if cached is None:
            captured = {}

            def capture(status, headers, exc_info=None):
                captured.update(status=status, headers=headers)

            body = list(app(environ, capture))
            cached = answers[key] = (captured["status"], captured["headers"], body)
        start_response(cached[0], cached[1])
        return cached[2]

    return answer


class _KeepAliveHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive in front of a portal's WSGI app: werkzeug's server closes
    every connection after one answer, which no real portal does, and a new connection
    per request would be counted against the harvester (and the server) in each benchmark."""

    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes: with Nagle's algorithm the body waits for the
    # client's delayed ACK of the headers, 40 ms a request
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        environ = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": unquote(path), "QUERY_STRING": query,
                   "SERVER_NAME": self.server.server_address[0], "SERVER_PORT": str(self.server.server_address[1]),
                   "SERVER_PROTOCOL": self.request_version, "REMOTE_PORT": str(self.client_address[1]),
                   "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(),
                   "wsgi.errors": sys.stderr, "wsgi.version": (1, 0), "wsgi.multithread": True,
                   "wsgi.multiprocess": False, "wsgi.run_once": False}
        for name, value in self.headers.items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        answer: dict = {}

        def start_response(status, headers, exc_info=None):
            answer.update(status=status, headers=headers)

        body = b"".join(self.server.app(environ, start_response))
        code = int(answer["status"].split()[0])
        self.send_response(code)
        for name, value in answer["headers"]:
            if name.lower() not in ("content-length", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body) if code != 304 else 0))
        self.end_headers()
        if code != 304:
            self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def serve_keep_alive(app, poll_interval: float = 0.5, tls: ssl.SSLContext | None = None) -> ThreadingHTTPServer:
    """`app` served on 127.0.0.1 (a free port) from a thread, connections kept alive (over TLS
    with `tls`, a server context); `shutdown` takes up to `poll_interval` seconds."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAliveHandler)
    if tls is not None:   # (a handshake that fails is an OSError of accept, which the server drops)
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    server.app = app
    threading.Thread(target=server.serve_forever, args=(poll_interval,), daemon=True).start()
    return server



def self_signed_tls(folder: Path) -> ssl.SSLContext | None:
    """A server context whose certificate, for 127.0.0.1, is self-signed (no client accepts
    it), made in `folder` by the openssl command; None without that command."""
    if shutil.which("openssl") is None:
        return None
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context

def serve_fleet(spec: str) -> None:
    """bench.fleet's portals, `PORTALSxDATASETS[xLARGEST]`, each on a port of its own; prints them as a JSON
    line, then answers commands read from stdin, one a line, each with a JSON line: `asked` (the
    unconditional requests since the last `asked`, as URLs: the limit pass replays them),
    `change [NIGHT [steady]]` (bench.fleet.change: what the harvest should find), `cpu` (this process's CPU
    seconds); until stdin closes."""
    import json
    import psutil
    from bench.fleet import build, change, point_layers_at

    portals, datasets, *largest = (int(part) for part in spec.split("x"))
    fleet = build(portals, datasets, largest=largest[0]) if largest else build(portals, datasets)
    caches: list[dict] = []
    asked: dict[str, list] = {}
    servers = []
    for member in fleet:
        caches.append({})
        asked[member.id] = []
        server = serve_keep_alive(answered_from_memory(member.portal._wsgi, caches[-1], asked[member.id]))
        server.handle_error = lambda request, address: None   # (a client that hung up: no traceback)
        member.portal._server = server   # (its url: HTTPServer's server_port)
        servers.append(server)
        if member.kind in ("arcgis-hub", "dcat-us"):
            point_layers_at(member)
    print(json.dumps([member.describe() for member in fleet]), flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "asked":
            urls = [f"http://127.0.0.1:{member.portal._server.server_port}{path}" for member in fleet for path in asked[member.id]]
            for member in fleet:
                asked[member.id].clear()
            print(json.dumps(urls), flush=True)
        elif command.split()[:1] == ["change"]:   # `change [NIGHT [steady]]`: steady, no portal failing
            words = command.split()
            found = change(fleet, int(words[1]) if len(words) > 1 else 1, failing_portals="steady" not in words)
            for cache in caches:
                cache.clear()
            print(json.dumps(found), flush=True)
        elif command == "cpu":
            times = psutil.Process().cpu_times()
            print(json.dumps(times.user + times.system), flush=True)
        else:
            print(json.dumps({"error": f"unknown command {command!r}"}), flush=True)
    stopping = [threading.Thread(target=server.shutdown) for server in servers]   # (each takes a poll interval)
    for thread in stopping:
        thread.start()
    for thread in stopping:
        thread.join()


def serve_data_json(kind: str, spec: str) -> None:
    """One data.json document (`data.json`) or ArcGIS Hub site (`hub`: its feed, and the
    FeatureServer layers its feed names, on the same port; `hub-recorded`: the feed made of the
    recorded Hub entries, bench.hub_feed's) of `DATASETS[:VALIDATORS]` datasets,
    VALIDATORS as LocalPortal.validators says (stable, none, changing); prints the URL the
    config names, serves until stdin closes. The document is serialised once (its gzip is made
    at every answer: a 79 MB body at level 1, the server's CPU, not the harvest's)."""
    import json
    from bench.fleet import HubPortal
    from tests.portals.base import RawBody
    from tests.portals.dcat import HUB_FEED_PATH, DataJsonPortal
    from tests.portals.synth import make_data_json

    count, _, validators = spec.partition(":")
    if kind == "hub-recorded":   # (bench.hub_feed: the recorded Hub feed's entries and layers, in turn)
        from bench.hub_feed import RecordedHubPortal, recorded_hub_feed
        portal = RecordedHubPortal({}, path=HUB_FEED_PATH)
    else:
        portal = HubPortal({}, path=HUB_FEED_PATH) if kind == "hub" else DataJsonPortal({})
    portal.validators = validators or "stable"
    server = serve_keep_alive(portal._wsgi)
    host = f"127.0.0.1:{server.server_address[1]}"
    if kind == "hub-recorded":
        portal.document = RawBody(recorded_hub_feed(int(count), host), "application/json")
    else:
        document = make_data_json(int(count), services_url=f"http://{host}/services/rest")
        portal.document = RawBody(json.dumps(document).encode(), "application/json")
        del document
    print(f"http://{host}" + ("" if kind.startswith("hub") else "/data.json"), flush=True)
    sys.stdin.read()
    server.shutdown()


def main() -> None:
    if sys.argv[1:2] in (["-h"], ["--help"]):
        print(__doc__)
        return
    if len(sys.argv) != 3:   # (a benchmark starts it with both)
        print(f"usage: python -m bench.serve KIND COUNT\n{__doc__}", file=sys.stderr)
        raise SystemExit(2)
    kind, count = sys.argv[1], (int(sys.argv[2]) if sys.argv[2].isdigit() else 0)
    validators = "stable"
    if kind == "socrata" and ":" in sys.argv[2]:   # `socrata 100000:none`: as a data.json's validators
        count, validators = int(sys.argv[2].partition(":")[0]), sys.argv[2].partition(":")[2]
    if kind == "nightly":
        serve_fleet(sys.argv[2])
        return
    if kind in ("data.json", "hub", "hub-recorded"):
        serve_data_json(kind, sys.argv[2])
        return
    if kind == "socrata":
        portal = CachedSocrataPortal(make_socrata_entries(count, domain=DOMAIN), domain=DOMAIN)
        portal.validators = validators
    elif kind == "soda-records":
        from bench.records_data import SMALL_ID, records_portal_parts

        entries, records = records_portal_parts(count, DOMAIN)
        portal = CachedSocrataPortal(entries, domain=DOMAIN, records=records)
        print(SMALL_ID, records[SMALL_ID].table.num_rows, flush=True)
    elif kind == "soda-wide":   # `count`: rows x columns x characters (bench.records_memory's shapes)
        from bench.records_memory import wide_portal_parts

        entries, records = wide_portal_parts(sys.argv[2], DOMAIN)
        portal = SocrataPortal(entries, domain=DOMAIN, records=records)   # (answers of ~1 GB: none kept)
    else:
        raise SystemExit(f"unknown portal kind {kind!r}")
    # The portal's entries (100,000: millions of objects) live until the end and hold no garbage:
    # Python's full collections, run as the first answers are made, re-scanned them all (the warm-up
    # pass's server CPU 8.2 s, 5.8 s frozen), and the collection at exit took 9 s at a load of 14
    # before the process ended (the benchmarks wait for it; 0.4 s now): frozen, never scanned, and
    # the process ends once served, its objects not freed one by one (docs/benchmarks.md, session 38)
    gc.freeze()
    if kind == "socrata":  # (the records benchmark's figures were taken on werkzeug's server)
        server = serve_keep_alive(portal._wsgi)
        print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
        sys.stdin.read()  # until the benchmark closes our stdin
        server.shutdown()
    else:
        with portal:
            print(portal.url, flush=True)
            sys.stdin.read()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
