"""`civicat export --format data.json`: the unified catalogue as a DCAT-US 1.1 catalog
(Project Open Data), as data.gov and other catalogues harvest it.

Every dataset written must validate against the official non-federal dataset schema.
Required fields come from the harvested record; where it has none (SPEC "Parquet
export"): publisher from the portal's config `publisher`, else its city; contactPoint
from the config's `contact_name`/`contact_email`, the publisher's name standing as the
contact's name when only an email is known; description from the title; keyword from
the themes; an Open311 dataset's modified from its pulled records (RECORDS_MODIFIED).
Nothing is invented: a dataset still lacking a required field is left out and reported
with the reason. Optional fields that do not fit their schema pattern (a licence given
as words, not a URL; an `unknown` periodicity) are omitted, not bent.
The file is streamed (memory does not grow with the catalogue) and renamed into place.
"""
from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

import orjson

from catalog.files import writing
from catalog.links import redacted, redacted_text

CONFORMS_TO = "https://project-open-data.cio.gov/v1.1/schema"
CATALOG_HEADER = {
    "@context": "https://project-open-data.cio.gov/v1.1/schema/catalog.jsonld",
    "@type": "dcat:Catalog",
    "conformsTo": CONFORMS_TO,
    "describedBy": "https://project-open-data.cio.gov/v1.1/schema/catalog.json",
}
ACCESS_LEVELS = {"public", "restricted public", "non-public"}
# the schema's own patterns, so what is written is what validates
EMAIL = re.compile(r"^mailto:[\w\_\~\!\$\&\'\(\)\*\+\,\;\=\:.-]+@[\w.-]+\.[\w.-]+?$")
MEDIA_TYPE = re.compile(r"^[-\w]+/[-\w]+(\.[-\w]+)*([+][-\w]+)?$")
PERIODICITY = re.compile(r"^R\/P(?:\d+(?:\.\d+)?Y)?(?:\d+(?:\.\d+)?M)?(?:\d+(?:\.\d+)?W)?(?:\d+(?:\.\d+)?D)?"
                         r"(?:T(?:\d+(?:\.\d+)?H)?(?:\d+(?:\.\d+)?M)?(?:\d+(?:\.\d+)?S)?)?$")
URI_SAFE = ":/?#[]@!$&'()*+,;=%~-._"
BROKEN_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
MAX_DESCRIPTION = 10000
MAX_KEYWORDS, MAX_KEYWORD = 1000, 1000
BATCH = 2000

# An Open311 endpoint dates nothing of its own. Its requests say when each was made and last changed
# (GeoReport v2: `requested_datetime`, `updated_datetime`): the latest of them in its last records pull is
# the most recent date on which the dataset was changed (DCAT-US 1.1's `modified`) as far as the pull saw.
# From the column profiles of that pull (their max_value, exact: the Parquet statistics'), never later
# than the pull's end: every request it read was made and changed by then, and one a server's clock or a
# typo stamps in the future (2099) would publish that date as the dataset's last change.
RECORDS_MODIFIED = {"open311": ("requested_datetime", "updated_datetime")}
RECORDS_MODIFIED_SQL = " ".join(
    f"""WHEN '{kind}' THEN (SELECT CASE WHEN stamped IS NOT NULL THEN least(stamped, (
                                SELECT date_trunc('second', r.pulled_at) FROM record_pulls r
                                WHERE r.dataset_uid = d.uid)) END
                            FROM (SELECT max(TRY_CAST(p.max_value AS TIMESTAMPTZ)) AS stamped FROM column_profiles p
       WHERE p.dataset_uid = d.uid AND p.column_name IN ({", ".join(f"'{name}'" for name in names)})))"""
    for kind, names in RECORDS_MODIFIED.items())

DATASETS = f"""
SELECT d.uid, d.portal_id, d.city, d.identifier, d.title, d.description, d.keywords, d.themes, d.publisher,
       d.contact_name, d.contact_email, d.issued,
       coalesce(d.modified, CASE d.portal_kind {RECORDS_MODIFIED_SQL} END) AS modified,
       d.accrual_periodicity, d.license, d.access_level,
       d.landing_page, d.spatial, d.temporal_start, d.temporal_end,
       (SELECT list(struct_pack(title := x.title, format := x.format, media_type := x.media_type,
                                download_url := x.download_url, access_url := x.access_url) ORDER BY x.position)
        FROM distributions x WHERE x.dataset_uid = d.uid) AS distributions
FROM datasets d WHERE d.deleted_at IS NULL ORDER BY d.uid"""


@dataclass(frozen=True)
class PortalDefaults:
    """What the config says of a portal, for datasets that say nothing themselves."""
    publisher: str | None = None
    contact_name: str | None = None
    contact_email: str | None = None
    in_config: bool = True   # False: a portal the config no longer names (its defaults unknown)


# the reasons a dataset is left out for want of a contact, as the config names its portal or not
NO_CONTACT = "no contact email (none harvested, no config contact_email)"
NO_CONTACT_OUT_OF_CONFIG = "no contact email (none harvested; its portal is not in the config)"


@dataclass
class DataJsonReport:
    path: str
    written: int = 0
    left_out: list[dict] = field(default_factory=list)   # {"uid", "reasons": [...]}

    def reasons(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.left_out:
            for reason in item["reasons"]:
                counts[reason] = counts.get(reason, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def uri(value: str | None) -> str | None:
    """An absolute http(s)/ftp URL, characters outside RFC 3986 percent-encoded, the value of a
    query parameter carrying a secret REDACTED (catalog.links); else None."""
    if not value or not isinstance(value, str):
        return None
    value = redacted(value.strip())
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https", "ftp") or not parts.netloc:
        return None
    return BROKEN_ESCAPE.sub("%25", quote(value, safe=URI_SAFE))   # (a '%' that escapes nothing is one)


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def _texts(values, limit: int) -> list[str]:
    out: list[str] = []
    for value in values or []:
        value = (value or "").strip()[:MAX_KEYWORD]
        if value and value not in out:
            out.append(value)
    return out[:limit]


def _contact(row: dict, defaults: PortalDefaults, publisher: str | None) -> dict | None:
    # (the portal's contact read for links as its description is: an email is any text with an '@', a password's
    # link too; one whose key was redacted is no email, the config's then)
    email = next((e for e in (redacted_text(row["contact_email"]), defaults.contact_email)
                  if e and EMAIL.match("mailto:" + e.strip())), None)
    name = (redacted_text(row["contact_name"]) or "").strip() or (defaults.contact_name or "").strip() or publisher
    if not email or not name:
        return None
    return {"@type": "vcard:Contact", "fn": name, "hasEmail": "mailto:" + email.strip()}


def _distribution(item: dict) -> dict | None:
    out: dict = {"@type": "dcat:Distribution"}
    download, access = uri(item["download_url"]), uri(item["access_url"])
    # the type without its parameters ("application/zip; charset=binary", as Socrata gave them): the
    # schema's pattern has none, and a download without a media type could only be written as a way in
    media_type = (item["media_type"] or "").split(";")[0].strip()
    if download and MEDIA_TYPE.match(media_type):
        out["downloadURL"], out["mediaType"] = download, media_type
    else:  # the schema requires a media type beside a download URL: then it is a way in
        access = access or download
    if access:
        out["accessURL"] = access
    if "downloadURL" not in out and "accessURL" not in out:
        return None
    if "mediaType" not in out and MEDIA_TYPE.match(media_type):
        out["mediaType"] = media_type
    if (item["format"] or "").strip():
        out["format"] = redacted_text(item["format"]).strip()   # (its texts' links, as a dataset's)
    if (item["title"] or "").strip():
        out["title"] = redacted_text(item["title"]).strip()
    return out


def dataset_entry(row: dict, defaults: PortalDefaults) -> tuple[dict | None, list[str]]:
    """The DCAT-US dataset of a catalogue row, or None and why it cannot be one."""
    reasons = []
    publisher = ((redacted_text(row["publisher"]) or "").strip() or (defaults.publisher or "").strip()
                 or (row["city"] or "").strip())
    if not publisher:
        reasons.append("no publisher (none harvested, no config publisher or city)")
    # (a keyword's links redacted before it is cut: cut, a key's link may no longer read as one)
    themes = [redacted_text(t) for t in row["themes"] or []]
    keywords = _texts([redacted_text(k) for k in row["keywords"] or []], MAX_KEYWORDS) or _texts(themes, MAX_KEYWORDS)
    if not keywords:
        reasons.append("no keyword or theme")
    modified = iso(row["modified"])
    if not modified:
        reasons.append("no modified date")
    access_level = row["access_level"] if row["access_level"] in ACCESS_LEVELS else None
    if not access_level:
        reasons.append("no access level")
    contact = _contact(row, defaults, publisher or None)
    if contact is None:
        reasons.append(NO_CONTACT if defaults.in_config else NO_CONTACT_OUT_OF_CONFIG)
    if reasons:
        return None, reasons

    entry: dict = {
        "@type": "dcat:Dataset",
        "title": redacted_text(row["title"]),   # (a title's links, a keyword's, as a description's)
        # (the links it pastes redacted as the dataset's links are: an export republishes them)
        "description": redacted_text((row["description"] or "").strip() or row["title"])[:MAX_DESCRIPTION],
        "keyword": keywords,
        "modified": modified,
        "publisher": {"@type": "org:Organization", "name": publisher},
        "contactPoint": contact,
        "identifier": row["identifier"],
        "accessLevel": access_level,
    }
    optional = {
        "issued": iso(row["issued"]),
        "accrualPeriodicity": (row["accrual_periodicity"] if row["accrual_periodicity"] == "irregular"
                               or PERIODICITY.match(row["accrual_periodicity"] or "") else None),
        "license": uri(row["license"]),
        "landingPage": uri(row["landing_page"]),
        "spatial": (redacted_text(row["spatial"]) or "").strip() or None,
        "temporal": (f"{iso(row['temporal_start'])}/{iso(row['temporal_end'])}"
                     if row["temporal_start"] and row["temporal_end"] else None),
        "theme": _texts(themes, 10000) or None,
        "distribution": [d for d in map(_distribution, row["distributions"] or []) if d] or None,
    }
    entry.update({k: v for k, v in optional.items() if v is not None})
    return entry, []


def _unique_identifier(identifier: str, uid: str, seen: set[str]) -> str:
    """The harvested identifier, else the uid, else the uid numbered: a portal's identifier
    can be another dataset's uid (`b:id-1`), which that dataset falls back on."""
    for candidate in (identifier, uid):
        if candidate and candidate not in seen:
            return candidate
    number = 2
    while f"{uid}#{number}" in seen:
        number += 1
    return f"{uid}#{number}"


def catalogue_entries(con, defaults: dict[str, PortalDefaults], report: DataJsonReport) -> Iterator[dict]:
    """The datasets of the catalogue as DCAT-US entries, streamed. Identifiers are unique
    in the catalog: the harvested identifier, else (or when another dataset has the same)
    civicat's uid (numbered, `#2`, when that too is taken); each with its secrets REDACTED
    (catalog.links: a data.json's identifier is often a URL), the uid as the Parquet export
    gives it (catalog.export.exported_uids), and unique as redacted: two identifiers that
    differ only in a key are two once exported."""
    from catalog.export import exported_uids

    uids = exported_uids(con)
    seen: set[str] = set()
    cursor = con.execute(DATASETS)
    names = [d[0] for d in cursor.description]
    while batch := cursor.fetchmany(BATCH):
        for values in batch:
            row = dict(zip(names, values))
            row["identifier"] = _unique_identifier(redacted((row["identifier"] or "").strip()),
                                                   uids.get(row["uid"], row["uid"]), seen)
            entry, reasons = dataset_entry(row, defaults.get(row["portal_id"], PortalDefaults()))
            if entry is None:
                # (named as the export names it: a report is published too)
                report.left_out.append({"uid": uids.get(row["uid"], row["uid"]), "reasons": reasons})
                continue
            seen.add(entry["identifier"])
            report.written += 1
            yield entry


def write_data_json(con, out: str | Path, defaults: dict[str, PortalDefaults]) -> DataJsonReport:
    """Write OUT/data.json (a temporary file renamed into place)."""
    from catalog.export import export_folder

    out = Path(out).absolute()
    with export_folder(out):
        return _write_data_json(con, out, defaults)


def _write_data_json(con, out: Path, defaults: dict[str, PortalDefaults]) -> DataJsonReport:
    out.mkdir(parents=True, exist_ok=True)
    target = out / "data.json"
    report = DataJsonReport(path=str(target))
    tmp = out / f".data.json.{uuid.uuid4().hex[:12]}.tmp"
    try:
        with writing(target), open(tmp, "wb") as f:
            f.write(orjson.dumps(CATALOG_HEADER)[:-1] + b',"dataset":[')
            for number, entry in enumerate(catalogue_entries(con, defaults, report)):
                f.write((b",\n" if number else b"\n") + orjson.dumps(entry))
            f.write(b"\n]}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return report
