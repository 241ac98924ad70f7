"""The stored catalogue of one Socrata harvest, pinned by a digest: work on the harvest's speed
(listing parse, mapping, validation, staging, the merge) must store the very same datasets,
distributions, columns, raw records and harvest_errors, byte for byte."""
import copy
import hashlib
import json

import orjson

from catalog.stage import canonical_json, content_hash
from harvester.mapping import WorkerPool, mapping_namespace
from harvester.pipeline import harvest
from harvester.portals import adapter_for
from harvester.portals.socrata import VOLATILE_KEYS
from tests.conftest import fast_client, portal_config
from tests.portals.socrata import SocrataPortal
from tests.portals.synth import make_socrata_entries

DOMAIN = "data.example.org"

# sha256 of the catalogue below as main stored it (6fe60ce, before session 17's speed work)
PINNED = "ba17aaee2747dd0963584e962ece8b7ab238faae2f7b580c73eb6e1eb1d5a742"


def entries() -> tuple[list[dict], dict]:
    """1,200 synthetic entries and the ragged ones a mapping must get right: no title, a date
    that is none, column lists of uneven lengths, columns of a views document, markup, system
    columns, lists over the caps, a parent, numbers and objects where text was expected."""
    listed = make_socrata_entries(1_200, domain=DOMAIN, seed=17)
    listed[3]["resource"]["name"] = "  "
    listed[5]["resource"]["createdAt"] = "R/P1D"
    listed[7]["resource"]["columns_datatype"] = listed[7]["resource"]["columns_datatype"][:2]
    listed[9]["resource"]["description"] = "<p>Permits &amp; <b>inspections</b></p><script>x()</script>"
    listed[11]["resource"]["columns_field_name"][0] = ":id"
    listed[11]["resource"]["columns_description"][1] = "A <i>marked</i> &lt;column&gt;"
    listed[11]["resource"]["columns_name"][2] = 42
    listed[11]["resource"]["columns_datatype"][3] = None
    listed[13]["classification"]["tags"] = [f"tag {n}" for n in range(10_005)]
    listed[15]["resource"]["parent_fxf"] = ["abcd-1234"]
    listed[17]["resource"]["attribution"] = {"en": "Office of Open Data", "fr": "Bureau"}
    listed[19]["resource"]["contact_email"] = "not an address"
    listed[21]["resource"]["updatedAt"] = 1_700_000_000
    tabular = listed[23]["resource"]
    tabular["type"] = "dataset"
    for key in [key for key in tabular if key.startswith("columns_")]:
        del tabular[key]
    views = {tabular["id"]: {"id": tabular["id"], "columns": [
        {"fieldName": "b", "name": "B", "dataTypeName": "number", "position": 2,
         "cachedContents": {"non_null": 5, "null": 1}},
        {"fieldName": "a", "name": "A", "dataTypeName": "calendar_date", "position": 1,
         "description": "<b>when</b>"},
        {"fieldName": ":updated_at", "name": "Updated", "dataTypeName": "date", "position": 3}]}}
    return listed, views


def catalogue_text(store, url: str) -> str:
    """The stored catalogue as text, the portal's address (a port of the moment) as {url}."""
    sql = {
        "datasets": "SELECT * EXCLUDE (first_seen, last_seen, last_changed, raw_hash) FROM datasets ORDER BY uid",
        "distributions": "SELECT * FROM distributions ORDER BY dataset_uid, position",
        "columns": "SELECT * FROM columns ORDER BY dataset_uid, position",
        "raw_records": "SELECT uid, portal_id, source_id, raw, details FROM raw_records ORDER BY uid",
        "harvest_errors": "SELECT source_id, stage, error_type, severity, message FROM harvest_errors ORDER BY ALL",
    }
    tables = {name: store.con.execute(query).fetchall() for name, query in sql.items()}
    return json.dumps(tables, default=str, ensure_ascii=False).replace(url, "{url}")


def test_a_harvest_stores_the_pinned_catalogue_byte_for_byte(store):
    listed, views = entries()
    with SocrataPortal(copy.deepcopy(listed), views=views, domain=DOMAIN) as portal:
        config = portal_config("city", "socrata", portal.url, domain=DOMAIN)
        report = harvest([config], store, fast_client(), pool=WorkerPool(1))
        text = catalogue_text(store, portal.url)
    assert report.ok and report.portals[0].new == len(listed) - 1, report.portals[0]
    # each raw hash is the portal's entry less its counters, under the mapping's namespace (it
    # holds the address, so it is checked here rather than pinned)
    namespace = mapping_namespace(adapter_for(config, None))
    for uid, raw, details, raw_hash in store.con.execute(
            "SELECT d.uid, r.raw, r.details, d.raw_hash FROM datasets d JOIN raw_records r USING (uid, raw_hash)").fetchall():
        entry, details = orjson.loads(raw), orjson.loads(details) if details is not None else None
        entry["resource"] = {k: v for k, v in entry["resource"].items() if k not in VOLATILE_KEYS}
        if details is not None and isinstance(details.get("views"), dict):
            details["views"] = {k: v for k, v in details["views"].items() if k not in VOLATILE_KEYS}
        assert raw_hash == content_hash(namespace, canonical_json([entry, details])), uid
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert digest == PINNED, digest
