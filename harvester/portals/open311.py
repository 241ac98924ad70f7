"""Open311 GeoReport v2 endpoints (a city's 311 service requests).

Endpoint: `{url}/services.json`, else `{url}/services.xml` (parsed with defusedxml, so an
entity-expansion bomb is refused). An endpoint is ONE catalogue dataset — the city's 311
service requests — whose columns are the GeoReport v2 request fields; its service list
is kept in the raw record and exposed as the `open311_services` view, to label 311 data
across cities. Requests themselves (`requests.json` by date window and page) are the
records harvest's business.
"""
from __future__ import annotations

from catalog import record as R
from catalog.record import Notes
from harvester.http import PermanentError
from harvester.paging import Listing, Page, SinglePage
from harvester.portals.base import PortalAdapter

SOURCE_ID = "service-requests"
SERVICE_FIELDS = ("service_code", "service_name", "description", "metadata", "type", "keywords", "group")
# GeoReport v2 service request fields (name, type in the shared vocabulary, description)
REQUEST_FIELDS = (
    ("service_request_id", "text", "Unique id of the service request"),
    ("status", "text", "open or closed"),
    ("status_notes", "text", "Explanation of the status"),
    ("service_name", "text", "Human-readable name of the service type"),
    ("service_code", "text", "Service type code (see open311_services)"),
    ("description", "text", "Description given by the requester"),
    ("agency_responsible", "text", "Agency responsible for fulfilling the request"),
    ("service_notice", "text", "Information about the expected handling"),
    ("requested_datetime", "datetime", "When the request was made"),
    ("updated_datetime", "datetime", "When the request was last changed"),
    ("expected_datetime", "datetime", "When the request is expected to be fulfilled"),
    ("address", "text", "Human-readable address"),
    ("address_id", "text", "Address id in the city's system"),
    ("zipcode", "text", "Postal code"),
    ("lat", "number", "Latitude (WGS84)"),
    ("long", "number", "Longitude (WGS84)"),
    ("media_url", "url", "Photo or other media of the request"),
)


def _services_shape(data) -> str | None:
    return None if isinstance(data, list) else "services.json is a JSON array of services"


def services_from_xml(root) -> list[dict]:
    """<services><service><service_code>…</service_code>…</service></services> → dicts."""
    services = []
    for element in root.iter("service"):
        service = {}
        for child in element:
            tag = child.tag.rsplit("}", 1)[-1]
            if tag in SERVICE_FIELDS:
                service[tag] = (child.text or "").strip() or None
        services.append(service)
    return services


class Open311Adapter(PortalAdapter):
    kind = "open311"

    def listing(self) -> Listing:
        def fetch(_params: dict) -> Page:
            try:
                services = self.http.get_json(f"{self.portal.url}/services.json", conditional=True,
                                              expect=_services_shape).data
                form = "json"
            except PermanentError as exc:
                if exc.status not in (404, 406, 415, 501):
                    raise
                services = services_from_xml(self.http.get_xml(f"{self.portal.url}/services.xml",
                                                               conditional=True).data)
                form = "xml"
            return Page(items=[{"endpoint": self.portal.url, "format": form, "services": services}])

        return Listing(fetch, SinglePage(), self.source_id)

    def source_id(self, entry) -> str | None:
        return SOURCE_ID if isinstance(entry, dict) else None

    def map(self, entry: dict, details: dict | None, notes: Notes) -> dict:
        services = [s for s in entry.get("services") or [] if isinstance(s, dict)]
        names = R.text_list([s.get("service_name") for s in services])
        groups = R.text_list([s.get("group") for s in services], split=None)
        out = R.blank_record()
        out["source_id"] = SOURCE_ID
        out["identifier"] = f"{self.portal.url}/requests.json"
        out["title"] = f"{self.portal.city} 311 service requests"
        out["description"] = (
            f"Service requests reported to {self.portal.city} through its Open311 GeoReport v2 endpoint "
            f"({len(services)} service types" + (f": {', '.join(names[:40])}" if names else "") + ").")
        out["keywords"] = R.text_list(["311", "service requests", *names])
        out["themes"] = groups
        out["access_level"] = "public"
        out["landing_page"] = R.url(self.portal.url)
        out["asset_type"] = "dataset"
        out["distributions"] = [
            {"title": "GeoReport v2 requests (JSON)", "format": "JSON", "media_type": "application/json",
             "download_url": None, "access_url": f"{self.portal.url}/requests.json"},
            {"title": "GeoReport v2 services (JSON)", "format": "JSON", "media_type": "application/json",
             "download_url": None, "access_url": f"{self.portal.url}/services.json"},
        ]
        out["columns"] = [{"position": i, "name": name, "field_name": name, "type": kind,
                           "source_type": "georeport-v2", "description": description}
                          for i, (name, kind, description) in enumerate(REQUEST_FIELDS)]
        return out
