"""pytest fixtures for local portals; a conftest.py re-exports them with
``from tests.portals.fixtures import *``."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest

from .base import LocalPortal
from .dcat import DataJsonPortal
from .socrata import SocrataPortal
from .synth import make_data_json, make_socrata_entries

__all__ = ["socrata_portal_factory", "socrata_portal", "data_json_portal_factory", "data_json_portal"]


def _started(portal_class: type[LocalPortal], default: Callable[[], Any]) -> Iterator[Callable[..., LocalPortal]]:
    """make(payload=None, **kwargs) -> a started portal, stopped at teardown."""
    started: list[LocalPortal] = []

    def make(payload=None, **kwargs: Any) -> LocalPortal:
        portal = portal_class(default() if payload is None else payload, **kwargs)
        started.append(portal.start())
        return portal

    yield make
    for portal in started:
        portal.stop()


@pytest.fixture
def socrata_portal_factory() -> Iterator[Callable[..., SocrataPortal]]:
    """make(entries=None, **SocrataPortal kwargs); without entries, 25 synthetic ones."""
    yield from _started(SocrataPortal, lambda: make_socrata_entries(25))


@pytest.fixture
def socrata_portal(socrata_portal_factory) -> SocrataPortal:
    """A started SocrataPortal with 25 synthetic entries on data.example.org."""
    return socrata_portal_factory()


@pytest.fixture
def data_json_portal_factory() -> Iterator[Callable[..., DataJsonPortal]]:
    """make(document=None, path="/data.json", prefix=""); without a document, make_data_json(10)."""
    yield from _started(DataJsonPortal, lambda: make_data_json(10))


@pytest.fixture
def data_json_portal(data_json_portal_factory) -> DataJsonPortal:
    """A started DataJsonPortal serving make_data_json(10) at /data.json."""
    return data_json_portal_factory()
