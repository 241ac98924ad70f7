"""DCAT-US `data.json`: the v1.1 catalog object, the legacy pre-1.1 bare array (Project
Open Data 1.0, as Socrata served it in 2013), and ArcGIS Hub's feed
(`/api/feed/dcat-us/1.1.json`). The portal's `url` is the document itself.

Legacy → v1.1 follows the official field mapping: `accessURL`/`distribution[].accessURL`
→ downloadURL, `webService` → accessURL, `format`/`formats[].value` → mediaType,
`keyword` string → list, `releaseDate` → issued, `frequency` → accrualPeriodicity,
`mbox` → contactPoint.hasEmail; so both forms give the same normalised record.
"""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

from catalog import record as R
from catalog.record import Notes
from harvester.http import Entries, capped_json
from harvester.paging import Listing, Page, SinglePage
from harvester.portals.base import MAX_ITEMS, PortalAdapter, lists_cut, note_lists_cut
from harvester.records import DownloadedFile, NotPullable, csv_distribution

# Hub identifiers are item URLs that change with the site's address; the item id does not.
_HUB_ITEM = re.compile(r"^[0-9a-f]{32}$")
_HUB_LANDING = re.compile(r"/(?:datasets|maps|documents|apps|content)/([0-9a-f]{32})(?:_(\d+))?(?:[/?#]|$)")
# an item's own download links (arcgis_item_of_downloads only: an identifier or landing page
# of this form is read as before, its URL the source id)
_HUB_DOWNLOAD = re.compile(r"/(?:api/download/v1|sharing/rest/content)/items/([0-9a-fA-F]{32})(?:/|$)")
_HUB_FILE = re.compile(r"/datasets/([0-9a-f]{32})(?:_(\d+))?\.\w+$")


def arcgis_item_id(identifier: str | None, landing_page: str | None = None) -> str | None:
    """'<item id>' or '<item id>_<layer>' from an ArcGIS Hub identifier or landing page."""
    for candidate in (identifier, landing_page):
        if not candidate or not candidate.startswith(("http://", "https://")):
            continue
        parsed = urlparse(candidate)
        query = parse_qs(parsed.query)
        item = (query.get("id") or [""])[0].lower()
        if parsed.path.endswith("/home/item.html") and _HUB_ITEM.match(item):
            layer = (query.get("sublayer") or query.get("layer") or [""])[0]
            return f"{item}_{layer}" if layer.isdigit() else item
        match = _HUB_LANDING.search(parsed.path)
        if match:
            return f"{match.group(1)}_{match.group(2)}" if match.group(2) else match.group(1)
    return None


def arcgis_item_of_downloads(distributions) -> str | None:
    """'<item id>' or '<item id>_<layer>' from the links Hub generates for an item's own
    downloads (`…/api/download/v1/items/<item>/csv?layers=5`, the older
    `…/datasets/<item>_5.csv`, `…/sharing/rest/content/items/<item>/data`) or its pages: a
    feed whose identifier and landing page are the item's slug URL (`…/datasets/<org>::<slug>`)
    names the item only there. None unless every such link names the same one."""
    found = set()
    for dist in distributions if isinstance(distributions, list) else []:
        for key in ("downloadURL", "accessURL"):
            url = R.text(dist.get(key)) if isinstance(dist, dict) else None
            if not url or not url.startswith(("http://", "https://")):
                continue
            parsed = urlparse(url)
            if match := _HUB_DOWNLOAD.search(parsed.path):
                layer = (parse_qs(parsed.query).get("layers") or [""])[0]
                found.add(f"{match.group(1).lower()}_{layer}" if layer.isdigit() else match.group(1).lower())
            elif match := _HUB_FILE.search(parsed.path):
                found.add(f"{match.group(1)}_{match.group(2)}" if match.group(2) else match.group(1))
            else:
                found.add(arcgis_item_id(url))
    found.discard(None)
    return found.pop() if len(found) == 1 else None


# each dataset's lists cut as the document is read, in a catalog object or a bare array; in a
# large document, the datasets read again one at a time as the listing hands them out (Entries)
_DATASET_LISTS = dict.fromkeys(("distribution", "keyword", "keywords", "theme"), MAX_ITEMS)
DOCUMENT = capped_json({"dataset": {"*": _DATASET_LISTS}, "*": _DATASET_LISTS}, entries=("*", "dataset"))


def _document_shape(data) -> str | None:
    if isinstance(data, (list, Entries)):
        return None
    if isinstance(data, dict) and isinstance(data.get("dataset"), (list, Entries)):
        return None
    return "a data.json document is a catalog object with a 'dataset' list, or a bare array"


class DcatUsAdapter(PortalAdapter):
    kind = "dcat-us"
    # 2: a Hub template's placeholder is no `spatial`; update frequencies read whole (catalog.record);
    # 3: a link in a description keeps its address (catalog.record.html_to_text); English by any of its
    # language keys ("en-GB"); the legacy `created` (as issued, where releaseDate is absent) and `feed`
    # (an RSS distribution) read. ArcGIS Hub maps as this kind does, and shares its version; 4: the
    # update frequencies read since (session 34's French, Catalan and Italian words, session 35's
    # "twice weekly", "multiple times per hour") and dates written day first with dots ("22.09.2004");
    # 5: a `modified` that is a repeating duration ("R/P1D") is the frequency where the entry gives none
    # (11 of the 3,879 recorded entries change: Philadelphia's, their frequency null before)
    mapping_version = 5

    @property
    def feed_url(self) -> str:
        return self.portal.url  # for dcat-us, the url is the data.json document itself

    def listing(self) -> Listing:
        def fetch(_params: dict, unread: str | None = None) -> Page:
            response = self.http.get_json(self.feed_url, conditional=True, expect=_document_shape, parse=DOCUMENT,
                                          unread=unread)
            if response.data is None:   # the very body `unread` names (a 304, or a 200 of the same bytes)
                return Page(items=None, digest=response.digest)
            document = response.data
            items = document if isinstance(document, (list, Entries)) else document["dataset"]
            # the whole document: complete once read; its digest (hashed as it arrived) tells the
            # next night the same document, whatever the portal's validators say
            return Page(items=items, digest=response.digest, url=response.url)

        return Listing(fetch, SinglePage(), self.source_id, skips_bodies=True)

    def source_id(self, entry) -> str | None:
        if not isinstance(entry, dict):
            return None
        identifier = R.text(entry.get("identifier"))
        if not identifier or not identifier.startswith(("http://", "https://")):
            return identifier  # a plain id is stable as it is
        return arcgis_item_id(identifier, R.text(entry.get("landingPage"))) or identifier

    def fetch_details(self, entry: dict) -> dict | None:
        """Nothing to fetch: how many items were left out of the lists cut as the document was read."""
        return lists_cut(entry)

    def record_source(self, dataset, previous) -> DownloadedFile:
        """The first CSV distribution, downloaded whole, its types sniffed from the file."""
        url = csv_distribution(dataset)
        if url is None:
            raise NotPullable(f"{dataset.uid} has no CSV distribution to download")
        return DownloadedFile(self.http, url)

    def map(self, entry: dict, details: dict | None, notes: Notes) -> dict:
        out = R.blank_record()
        out["source_id"] = self.source_id(entry)
        out["identifier"] = R.text(entry.get("identifier"), notes, "identifier")
        out["title"] = R.plain_text(entry.get("title"), notes, "title")
        out["description"] = R.plain_text(entry.get("description"), notes, "description")
        out["keywords"] = R.text_list(R.text_list(entry.get("keyword"), notes, "keywords")
                                      + R.text_list(entry.get("keywords"), notes, "keywords"))
        out["themes"] = R.text_list(entry.get("theme"), notes, "themes", split=None)
        publisher = entry.get("publisher")
        out["publisher"] = R.text(publisher.get("name") if isinstance(publisher, dict) else publisher,
                                  notes, "publisher")
        contact = entry.get("contactPoint")
        if isinstance(contact, dict):
            out["contact_name"] = R.text(contact.get("fn"), notes, "contact_name")
            out["contact_email"] = R.email(contact.get("hasEmail"), notes)
        else:  # legacy: contactPoint is the name, mbox the address
            out["contact_name"] = R.text(contact, notes, "contact_name")
            out["contact_email"] = R.email(entry.get("mbox"), notes)
        # (legacy: releaseDate; Socrata's 2013 documents add `created`, the asset's creation, the same
        # day as its releaseDate in each of their 3,453 recorded entries: read where that is absent)
        out["issued"] = R.timestamp(entry.get("issued") or entry.get("releaseDate") or entry.get("created"),
                                    notes, "issued")
        # (a `modified` of "R/P1D", updated continually, names no day: null, and the frequency where none is given)
        out["modified"], out["accrual_periodicity"] = R.modified_and_frequency(
            entry.get("modified"), entry.get("accrualPeriodicity") or entry.get("frequency"), notes)
        out["license"] = R.plain_text(entry.get("license"), notes, "license")
        out["access_level"] = R.access_level(entry.get("accessLevel"), notes)
        out["landing_page"] = R.url(entry.get("landingPage"), notes, "landing_page")
        out["spatial"] = _rendered(R.text(entry.get("spatial")), notes, "spatial") \
            if not isinstance(entry.get("spatial"), (dict, list)) else R.text(str(entry.get("spatial")))
        out["temporal_start"], out["temporal_end"] = R.temporal(entry.get("temporal"), notes)
        out["asset_type"] = "catalog" if _describes_data_json(entry) else "dataset"
        out["distributions"] = _distributions(entry, notes)
        note_lists_cut(notes, details)
        return out


# a placeholder of ArcGIS Hub's feed template left as it is, the item having no value for it (the
# real Evian feed's `"spatial": "{{extent:computeSpatialProperty}}"` for items without an extent)
_PLACEHOLDER = re.compile(r"^\{\{[^{}]*\}\}$")


def _rendered(value: str | None, notes: Notes, field_name: str) -> str | None:
    if value is not None and _PLACEHOLDER.match(value):
        notes.warn(field_name, f"an unrendered template placeholder {value[:80]!r}; stored as null")
        return None
    return value


def _describes_data_json(entry: dict) -> bool:
    """Legacy documents open with an entry describing the data.json file itself."""
    return any(isinstance(entry.get(key), str) and entry[key].rstrip("/").endswith("data.json")
               for key in ("identifier", "webService", "accessURL"))


def _format_label(value) -> str | None:
    label = R.text(value)
    return label.upper() if label and len(label) <= 12 and "/" not in label else label


def _distributions(entry: dict, notes: Notes) -> list[dict]:
    out = []
    distributions = entry.get("distribution")
    if isinstance(distributions, dict):
        distributions = [distributions]
    for dist in distributions if isinstance(distributions, list) else []:
        if not isinstance(dist, dict):
            notes.warn("distributions", "a distribution is not an object")
            continue
        formats = dist.get("formats") if isinstance(dist.get("formats"), list) else []
        first = formats[0] if formats and isinstance(formats[0], dict) else {}
        legacy = "formats" in dist
        media_type = R.text(dist.get("mediaType") or first.get("value") or (dist.get("format") if legacy else None))
        out.append({
            "title": R.text(dist.get("title"), notes, "distributions.title"),
            "format": _format_label(first.get("label") if legacy else dist.get("format")),
            "media_type": media_type.lower() if media_type else None,
            # pre-1.1 accessURL meant the file itself: 1.1 calls that downloadURL
            "download_url": R.url(dist.get("downloadURL") or (dist.get("accessURL") if legacy else None),
                                  notes, "distributions.download_url"),
            "access_url": None if legacy else R.url(dist.get("accessURL"), notes, "distributions.access_url"),
        })
    if not out and entry.get("accessURL"):
        media_type = R.text(entry.get("format"))
        out.append({"title": None, "format": None, "media_type": media_type.lower() if media_type else None,
                    "download_url": R.url(entry.get("accessURL"), notes, "distributions.download_url"),
                    "access_url": None})
    if entry.get("webService"):
        out.append({"title": None, "format": "API", "media_type": None, "download_url": None,
                    "access_url": R.url(entry.get("webService"), notes, "distributions.access_url")})
    if entry.get("feed"):   # legacy (Socrata, 2013): the rows as an RSS feed (`…/rows.rss`), a file of the data
        out.append({"title": None, "format": "RSS", "media_type": "application/rss+xml",
                    "download_url": R.url(entry.get("feed"), notes, "distributions.download_url"), "access_url": None})
    return out
