"""Shared fixtures: a fast-retrying HTTP client, a store in tmp_path, portal configs."""
import socket

import pytest

from catalog.store import Store
from harvester.config import PortalConfig
from harvester.http import HttpClient, ValidatorCache


def fast_client(tmp_path=None, **overrides) -> HttpClient:
    """The production client with test-sized waits (backoff in milliseconds)."""
    options = dict(backoff_initial=0.01, backoff_max=0.05, max_retry_after=2.0, timeout=5.0)
    if tmp_path is not None:
        options["cache"] = ValidatorCache(tmp_path / "http_cache")
    options.update(overrides)
    return HttpClient(**options)


def portal_config(portal_id, kind, url, **options) -> PortalConfig:
    return PortalConfig(id=portal_id, city=options.pop("city", portal_id.title()), kind=kind, url=url, **options)


@pytest.fixture
def http(tmp_path):
    return fast_client(tmp_path)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "catalog.duckdb")
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    """Tests talk to their own portals on 127.0.0.1, never to the network: a URL left
    pointing at a real host fails at once instead of waiting on a connection."""
    real = socket.getaddrinfo

    def guarded(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost", "::1", None):
            raise socket.gaierror(f"tests may not resolve {host!r}: serve it from a local portal")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


@pytest.fixture(autouse=True)
def _fast_cli_retries(monkeypatch):
    """CLI runs build their own client from the environment: keep retries quick."""
    monkeypatch.setenv("CIVICAT_HTTP_BACKOFF", "0.01")
