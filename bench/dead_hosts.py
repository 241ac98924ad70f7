"""Benchmark: what a host that cannot be reached costs a harvest, with the client's own
retries and backoff (the defaults: 5 attempts, a first wait of 1 s).

1. `civicat harvest` of a config holding a local Socrata portal and a CKAN portal at a name
   that does not resolve (`data.nowhere.invalid`, RFC 6761), in a process of its own as cron
   starts it: the whole command's time, and the dead portal's requests and message. First,
   what this machine's resolver answers for that name, and how fast.
2. An ArcGIS Hub feed of 20 datasets whose FeatureServer layers are all on one host that
   cannot be reached: a name that does not resolve, a port that refuses connections, a TLS
   certificate that fails verification (self-signed; needs the openssl command).

    python -m bench.dead_hosts
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harvest_catalog import DOMAIN
from bench.serve import self_signed_tls, serve_keep_alive, serving

ROOT = Path(__file__).resolve().parents[1]
DEAD_NAME = "data.nowhere.invalid"
LAYERS = 20


def resolver_answer() -> str:
    started = time.monotonic()
    try:
        socket.getaddrinfo(DEAD_NAME, 443)
        answer = "resolves"
    except socket.gaierror as exc:
        name = {socket.EAI_NONAME: "EAI_NONAME", socket.EAI_AGAIN: "EAI_AGAIN"}.get(exc.errno, str(exc.errno))
        answer = f"{name} ({exc.strerror})"
    return f"getaddrinfo({DEAD_NAME!r}): {answer} in {(time.monotonic() - started) * 1000:.1f} ms"


def harvest_beside_a_dead_portal(tmp: Path) -> None:
    with serving("socrata", 200) as server:
        url = server.stdout.readline().strip()
        config = tmp / "portals.toml"
        config.write_text(f'[[portals]]\nid = "local"\ncity = "Local"\nkind = "socrata"\nurl = "{url}"\n'
                          f'domain = "{DOMAIN}"\n\n[[portals]]\nid = "moved"\ncity = "Moved"\nkind = "ckan"\n'
                          f'url = "https://{DEAD_NAME}/"\n')
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env = {name: value for name, value in env.items() if not name.startswith("CIVICAT_HTTP_")}   # the defaults
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "harvester.cli", "harvest", "--json", "--config", str(config),
                               "--db", str(tmp / "catalog.duckdb")], env=env, cwd=ROOT, capture_output=True, text=True)
        seconds = time.monotonic() - started
    moved = next(p for p in json.loads(done.stdout)["portals"] if p["portal_id"] == "moved")
    print(f"civicat harvest, a local portal beside one at {DEAD_NAME}: {seconds:.1f} s (exit {done.returncode}); "
          f"the dead portal {moved['seconds']:.1f} s, {moved['requests']} requests, {moved['retries']} retries, "
          f"{moved['error_type']}: {moved['error_message']}")


def self_signed_server(tmp: Path):
    context = self_signed_tls(tmp)
    return None if context is None else serve_keep_alive(lambda environ, start_response: [], tls=context)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def hub_with_layers_on(services: str, tmp: Path, label: str) -> None:
    from catalog.store import Store
    from harvester.config import PortalConfig
    from harvester.http import HttpClient
    from harvester.pipeline import harvest
    from tests.portals.dcat import HUB_FEED_PATH, DataJsonPortal

    feed = {"dataset": [{"identifier": f"https://www.arcgis.com/home/item.html?id={number:032x}&sublayer=0",
                         "title": f"Layer {number}", "modified": "2024-01-01",
                         "distribution": [{"accessURL": f"{services}/arcgis/rest/services/L{number}/FeatureServer/0"}]}
                        for number in range(LAYERS)]}
    store = Store(tmp / f"{label}.duckdb")
    try:
        with DataJsonPortal(feed, path=HUB_FEED_PATH) as hub:
            started = time.monotonic()
            report = harvest([PortalConfig(id="hub", city="Hub", kind="arcgis-hub", url=hub.url)], store,
                             HttpClient()).portals[0]
            seconds = time.monotonic() - started
        last = store.con.execute("SELECT message FROM harvest_errors ORDER BY occurred_at DESC LIMIT 1").fetchone()[0]
    finally:
        store.close()
    print(f"hub of {LAYERS} layers on a host whose {label}: {seconds:.1f} s, {report.requests} requests "
          f"({report.retries} retries), {report.errors} datasets without columns; the last: {last}")


def main() -> None:
    import logging
    logging.disable(logging.WARNING)   # (a retry's warning each)
    print(resolver_answer())
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        harvest_beside_a_dead_portal(tmp)
        hub_with_layers_on(f"https://services.{DEAD_NAME.split('.', 1)[1]}", tmp, "name does not resolve")
        hub_with_layers_on(f"http://127.0.0.1:{closed_port()}", tmp, "port refuses connections")
        server = self_signed_server(tmp)
        if server is None:
            print("(no openssl command: the certificate case is left out)")
            return
        try:
            hub_with_layers_on(f"https://127.0.0.1:{server.server_address[1]}", tmp, "certificate is self-signed")
        finally:
            server.shutdown()
            server.server_close()


if __name__ == "__main__":
    main()
