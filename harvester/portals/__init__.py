"""One module per portal kind; this registry is the only place that lists them."""
from __future__ import annotations

from harvester.config import PortalConfig
from harvester.http import HttpClient
from harvester.portals.arcgis_hub import ArcgisHubAdapter
from harvester.portals.base import PortalAdapter
from harvester.portals.ckan import CkanAdapter
from harvester.portals.dcat_us import DcatUsAdapter
from harvester.portals.open311 import Open311Adapter
from harvester.portals.opendatasoft import OpenDataSoftAdapter
from harvester.portals.socrata import SocrataAdapter

ADAPTERS: dict[str, type[PortalAdapter]] = {
    adapter.kind: adapter for adapter in (SocrataAdapter, CkanAdapter, DcatUsAdapter, ArcgisHubAdapter, OpenDataSoftAdapter,
                                          Open311Adapter)
}


class UnsupportedKind(Exception):
    pass


def say_once_a_run(portals: list[PortalConfig]) -> None:
    """Each kind's warnings of a run (a harvest, a records pull) of `portals`, said once for all
    its portals of that kind (PortalAdapter.say_once_a_run), as the run starts."""
    for kind, adapter in ADAPTERS.items():
        mine = [portal for portal in portals if portal.kind == kind]
        if mine:
            adapter.say_once_a_run(mine)


def settings_kept(con, portal_ids: list[str]) -> dict[str, set[tuple[str, str, str]]]:
    """Each kind's PortalAdapter.settings_kept of `portal_ids`: the settings their datasets were
    listed with, of the kinds whose listing keeps no pages."""
    kept: dict[str, set[tuple[str, str, str]]] = {}
    for adapter in ADAPTERS.values():
        for portal_id, settings in adapter.settings_kept(con, portal_ids).items():
            kept.setdefault(portal_id, set()).update(settings)
    return kept


def adapter_for(portal: PortalConfig, http: HttpClient) -> PortalAdapter:
    try:
        adapter = ADAPTERS[portal.kind]
    except KeyError:
        raise UnsupportedKind(
            f"portal kind {portal.kind!r} has no adapter in this version (supported: {', '.join(ADAPTERS)})"
        ) from None
    return adapter(portal, http)
