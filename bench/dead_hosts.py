"""Benchmark: what a host that cannot be reached costs a harvest, with the client's own
retries and backoff (the defaults: 5 attempts, a first wait of 1 s).

1. `civicat harvest` of a config holding a local Socrata portal and a CKAN portal at a name
   that does not resolve (`data.nowhere.invalid`, RFC 6761), in a process of its own as cron
   starts it: the whole command's time, and the dead portal's requests and message. First,
   what this machine's resolver answers for that name, and how fast.
   The same beside a CKAN portal whose port refuses every connection.
2. An ArcGIS Hub feed of 20 datasets whose FeatureServer layers are all on one host that
   cannot be reached: a name that does not resolve, a port that refuses connections, a TLS
   certificate that fails verification (self-signed; needs the openssl command).
3. A resolver that never answers: glibc's own, in a user, network and mount namespace of its
   own (`unshare -rnm`, where /etc/resolv.conf is bind-mounted to name three nameservers on
   127.0.0.1-3 that drop every query: 5 s x 2 attempts x 3 servers, as a dead DNS server
   costs); the portal beside a local one, and the hub, at a name looked up there; then 30
   portals, each at a name of its own, beside a local one (`civicat harvest`'s 4 at a time).
4. 8 https portals behind one HTTP proxy that refuses the user name and password of its URL
   (HTTPS_PROXY=http://user:password@127.0.0.1:PORT, every request answered 407), harvested 4 at a
   time: the whole command's time, and how many times the proxy was asked (`--refusing-proxy`:
   this case alone).

    python -m bench.dead_hosts [--refusing-proxy]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.harvest_catalog import DOMAIN
from bench.serve import self_signed_tls, serve_keep_alive, serving

ROOT = Path(__file__).resolve().parents[1]
DEAD_NAME = "data.nowhere.invalid"
HANGING_NAME = "data.hanging.example"   # (looked up only where every query is dropped)
LAYERS = 20
PORTALS = 30   # (a night's config, each portal at a name of its own, where the resolver never answers)


def resolver_answer(name: str = DEAD_NAME) -> str:
    started = time.monotonic()
    try:
        socket.getaddrinfo(name, 443)
        answer = "resolves"
    except socket.gaierror as exc:
        code = {socket.EAI_NONAME: "EAI_NONAME", socket.EAI_AGAIN: "EAI_AGAIN"}.get(exc.errno, str(exc.errno))
        answer = f"{code} ({exc.strerror})"
    return f"getaddrinfo({name!r}): {answer} in {(time.monotonic() - started) * 1000:.1f} ms"


def harvest_beside_a_dead_portal(tmp: Path, dead_url: str = f"https://{DEAD_NAME}/", more: int = 0) -> None:
    """`more`: as many portals again, each at a name of its own (dead_url's first label numbered)."""
    scheme, _, rest = dead_url.partition("://")
    label, _, domain = rest.partition(".")
    dead_urls = [dead_url] + [f"{scheme}://{label}{number}.{domain}" for number in range(1, more + 1)]
    with serving("socrata", 200) as server:
        url = server.stdout.readline().strip()
        config = tmp / "portals.toml"
        config.write_text(f'[[portals]]\nid = "local"\ncity = "Local"\nkind = "socrata"\nurl = "{url}"\n'
                          f'domain = "{DOMAIN}"\n' + "".join(
                              f'\n[[portals]]\nid = "moved{number or ""}"\ncity = "Moved"\nkind = "ckan"\n'
                              f'url = "{dead}"\n' for number, dead in enumerate(dead_urls)))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env = {name: value for name, value in env.items() if not name.startswith("CIVICAT_HTTP_")}   # the defaults
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "harvester", "harvest", "--json", "--config", str(config),
                               "--db", str(tmp / "catalog.duckdb")], env=env, cwd=ROOT, capture_output=True, text=True)
        seconds = time.monotonic() - started
    moved = [p for p in json.loads(done.stdout)["portals"] if p["portal_id"].startswith("moved")]
    if not more:
        print(f"civicat harvest, a local portal beside one at {dead_url}: {seconds:.1f} s (exit {done.returncode}); "
              f"the dead portal {moved[0]['seconds']:.1f} s, {moved[0]['requests']} requests, {moved[0]['retries']} "
              f"retries, {moved[0]['error_type']}: {moved[0]['error_message']}")
        return
    kinds = Counter(p["error_type"] for p in moved)
    last = max(moved, key=lambda p: p["seconds"])
    print(f"civicat harvest, a local portal beside {len(moved)} at {scheme}://{label}N.{domain}: {seconds:.1f} s "
          f"(exit {done.returncode}); the dead portals {sum(p['seconds'] for p in moved):.1f} s in all, the longest "
          f"{last['seconds']:.1f} s, {sum(p['requests'] for p in moved)} requests, "
          f"{', '.join(f'{count} {kind}' for kind, count in kinds.most_common())}; the last one's: "
          f"{moved[-1]['error_message']}")


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


def dropping_queries() -> list[float]:
    """A DNS "server" on port 53 of every loopback address that reads each query and never
    answers; the times of the queries it got."""
    import threading
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("0.0.0.0", 53))
    queries: list[float] = []

    def drop():
        while True:
            sink.recvfrom(4096)
            queries.append(time.monotonic())
    threading.Thread(target=drop, daemon=True).start()
    return queries


def with_a_hanging_resolver(tmp: Path) -> None:
    """Case 3, in a namespace of its own (this module again, `--hanging-resolver`)."""
    if not (shutil.which("unshare") and shutil.which("ip") and shutil.which("mount")):
        print("(no unshare, ip or mount command: the hanging resolver is left out)")
        return
    conf = tmp / "resolv.conf"
    conf.write_text("".join(f"nameserver 127.0.0.{n}\n" for n in (1, 2, 3)))
    script = f"ip link set lo up && mount --bind {conf} /etc/resolv.conf && exec {sys.executable} -m bench.dead_hosts " \
             "--hanging-resolver"
    done = subprocess.run(["unshare", "--user", "--map-root-user", "--net", "--mount", "sh", "-c", script], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode:
        print(f"(the namespace could not be made: exit {done.returncode}; the hanging resolver is left out)")


def hanging_resolver_cases() -> None:
    queries = dropping_queries()
    print(resolver_answer(HANGING_NAME) + f", {len(queries)} queries dropped")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for case in (lambda: harvest_beside_a_dead_portal(tmp, f"https://{HANGING_NAME}/"),
                     lambda: hub_with_layers_on(f"https://services.{HANGING_NAME.split('.', 1)[1]}", tmp,
                                                "name's lookup hangs"),
                     lambda: harvest_beside_a_dead_portal(tmp, f"https://{HANGING_NAME}/", more=PORTALS - 1)):
            before = len(queries)
            case()
            print(f"  ({len(queries) - before} queries dropped by then: 12 a lookup run to its end)")


class RefusingProxy:
    """An HTTP proxy on 127.0.0.1 answering every request 407, a thread a connection: `asked` counts them."""

    def __init__(self) -> None:
        import threading
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port, self.asked = self.server.getsockname()[1], 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:   # (closed: the case is over)
                return
            with connection:
                try:
                    connection.recv(65536)
                    self.asked += 1
                    connection.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic "
                                       b"realm=\"proxy\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass


def behind_a_refusing_proxy(tmp: Path, portals: int = 8) -> None:
    """Case 4: `portals` CKAN portals at https:// names (the proxy asked for them: none resolved here)."""
    proxy = RefusingProxy()
    config = tmp / "proxied.toml"
    config.write_text("".join(f'[[portals]]\nid = "proxied{number}"\ncity = "Proxied"\nkind = "ckan"\n'
                              f'url = "https://data{number}.example/"\n\n' for number in range(portals)))
    env = {name: value for name, value in os.environ.items() if not name.startswith("CIVICAT_HTTP_")
           and name.lower() not in ("no_proxy", "all_proxy", "http_proxy", "https_proxy")}
    env.update(PYTHONPATH=str(ROOT), HTTPS_PROXY=f"http://civicat:wrong@127.0.0.1:{proxy.port}")
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "harvester", "harvest", "--json", "--config", str(config),
                               # (a folder of its own: case 1's catalogue has `tmp`, one catalogue a folder)
                               "--db", str(tmp / "proxied" / "proxied.duckdb"), "--workers", "4"], env=env, cwd=ROOT,
                              capture_output=True, text=True)
    finally:
        proxy.server.close()
    seconds = time.monotonic() - started
    report = json.loads(done.stdout)["portals"]
    kinds = Counter(p["error_type"] for p in report)
    print(f"civicat harvest --workers 4, {portals} portals behind an HTTP proxy refusing its login (407): "
          f"{seconds:.1f} s (exit {done.returncode}); the proxy asked {proxy.asked} times, "
          f"{sum(p['requests'] for p in report)} requests, {sum(p['retries'] for p in report)} retries, the longest "
          f"portal {max(p['seconds'] for p in report):.1f} s; "
          f"{', '.join(f'{count} {kind}' for kind, count in kinds.most_common())}; the last one's: "
          f"{report[-1]['error_message']}")


def main() -> None:
    import logging
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # (case 3 runs this module again inside the namespace it makes)
    parser.add_argument("--hanging-resolver", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--refusing-proxy", action="store_true", help="case 4 alone: portals behind a proxy's 407")
    args = parser.parse_args()
    logging.disable(logging.WARNING)   # (a retry's warning each)
    if args.hanging_resolver:
        hanging_resolver_cases()
        return
    if args.refusing_proxy:
        with tempfile.TemporaryDirectory() as folder:
            behind_a_refusing_proxy(Path(folder))
        return
    print(resolver_answer())
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        harvest_beside_a_dead_portal(tmp)
        harvest_beside_a_dead_portal(tmp, f"http://127.0.0.1:{closed_port()}/")
        hub_with_layers_on(f"https://services.{DEAD_NAME.split('.', 1)[1]}", tmp, "name does not resolve")
        hub_with_layers_on(f"http://127.0.0.1:{closed_port()}", tmp, "port refuses connections")
        server = self_signed_server(tmp)
        if server is None:
            print("(no openssl command: the certificate case is left out)")
        else:
            try:
                hub_with_layers_on(f"https://127.0.0.1:{server.server_address[1]}", tmp, "certificate is self-signed")
            finally:
                server.shutdown()
                server.server_close()
        with_a_hanging_resolver(tmp)
        behind_a_refusing_proxy(tmp)


if __name__ == "__main__":
    main()
