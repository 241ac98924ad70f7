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


def adapter_for(portal: PortalConfig, http: HttpClient) -> PortalAdapter:
    try:
        adapter = ADAPTERS[portal.kind]
    except KeyError:
        raise UnsupportedKind(
            f"portal kind {portal.kind!r} has no adapter in this version (supported: {', '.join(ADAPTERS)})"
        ) from None
    return adapter(portal, http)
