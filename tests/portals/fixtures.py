"""pytest fixtures for local portals; a conftest.py re-exports them with
``from tests.portals.fixtures import *``."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest

from .dcat import DataJsonPortal
from .socrata import SocrataPortal
from .synth import make_data_json, make_socrata_entries

__all__ = ["socrata_portal_factory", "socrata_portal", "data_json_portal_factory", "data_json_portal"]


@pytest.fixture
def socrata_portal_factory() -> Iterator[Callable[..., SocrataPortal]]:
    """make(entries=None, **SocrataPortal kwargs) -> started portal, stopped at teardown.
    Without entries, serves 25 synthetic ones."""
    started: list[SocrataPortal] = []

    def make(entries=None, **kwargs: Any) -> SocrataPortal:
        portal = SocrataPortal(make_socrata_entries(25) if entries is None else entries, **kwargs)
        started.append(portal.start())
        return portal

    yield make
    for portal in started:
        portal.stop()


@pytest.fixture
def socrata_portal(socrata_portal_factory) -> SocrataPortal:
    """A started SocrataPortal with 25 synthetic entries on data.example.org."""
    return socrata_portal_factory()


@pytest.fixture
def data_json_portal_factory() -> Iterator[Callable[..., DataJsonPortal]]:
    """make(document=None, path="/data.json", prefix="") -> started portal, stopped at
    teardown. Without a document, serves make_data_json(10)."""
    started: list[DataJsonPortal] = []

    def make(document=None, **kwargs: Any) -> DataJsonPortal:
        portal = DataJsonPortal(make_data_json(10) if document is None else document, **kwargs)
        started.append(portal.start())
        return portal

    yield make
    for portal in started:
        portal.stop()


@pytest.fixture
def data_json_portal(data_json_portal_factory) -> DataJsonPortal:
    """A started DataJsonPortal serving make_data_json(10) at /data.json."""
    return data_json_portal_factory()
