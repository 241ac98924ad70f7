"""Serve a synthetic portal from a separate process, so benchmarks measure the harvester
and not the server sharing its interpreter.

    python -m bench.serve socrata 100000     # prints the base URL, serves until stdin closes
"""
from __future__ import annotations

import sys

from tests.portals.socrata import SocrataPortal
from tests.portals.synth import make_socrata_entries

DOMAIN = "data.example.org"


def main() -> None:
    kind, count = sys.argv[1], int(sys.argv[2])
    if kind != "socrata":
        raise SystemExit(f"unknown portal kind {kind!r}")
    portal = SocrataPortal(make_socrata_entries(count, domain=DOMAIN), domain=DOMAIN)
    with portal:
        print(portal.url, flush=True)
        sys.stdin.read()  # until the benchmark closes our stdin


if __name__ == "__main__":
    main()
