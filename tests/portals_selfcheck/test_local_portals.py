"""Self-checks of the local portal servers, seen from a real HTTP client."""

from __future__ import annotations

import errno
import gzip
import json
import re
import socket
import subprocess
import time
from datetime import datetime, timezone

import pytest
import requests
from werkzeug.http import http_date

from tests.portals import HUB_FEED_PATH, DataJsonPortal, SocrataPortal, make_data_json, make_socrata_entries
from tests.shared_fixtures import (
    FIXTURES,
    SHARED,
    dcat_us_files,
    load_json,
    require_fixtures,
    socrata_catalog_files,
    spellarbot_domain_files,
)

CATALOG = "/api/catalog/v1"
FXF = re.compile(r"^[a-z0-9]{4}-[a-z0-9]{4}$")
IDENTITY = {"Accept-Encoding": "identity"}


def get(portal, path=CATALOG, headers=None, **params) -> requests.Response:
    return requests.get(portal.url + path, params=params, headers=headers, timeout=5)


def ids_of(page: dict) -> list[str]:
    return [entry["resource"]["id"] for entry in page["results"]]


@pytest.fixture(scope="module")
def entries_250():
    return make_socrata_entries(250, seed=3)


@pytest.fixture(scope="module")
def big_portal():
    """10,200 entries: enough to cross the 10,000 offset window."""
    with SocrataPortal(make_socrata_entries(10_200, seed=4)) as portal:
        yield portal


# -- Socrata Discovery: caps, ordering, domains ------------------------------


def test_limit_defaults_to_10_and_is_capped_at_100(socrata_portal_factory, entries_250):
    portal = socrata_portal_factory(entries_250)
    assert len(get(portal).json()["results"]) == 10
    page = get(portal, limit=1000).json()
    assert len(page["results"]) == 100
    assert page["resultSetSize"] == 250
    assert set(page) == {"results", "resultSetSize", "timings", "warnings"}
    assert page["warnings"] == [] and "serviceMillis" in page["timings"]


def test_offset_plus_limit_beyond_10000_is_refused(big_portal):
    refused = get(big_portal, offset=9950, limit=100)
    assert refused.status_code == 400
    assert "10000" in refused.json()["error"]
    assert get(big_portal, offset=9950, limit=1000).status_code == 400  # capped to 100 first
    assert len(get(big_portal, offset=9900, limit=100).json()["results"]) == 100
    assert len(get(big_portal, offset=9990, limit=10).json()["results"]) == 10
    assert get(big_portal, limit="many").status_code == 400
    assert get(big_portal, offset=-1).status_code == 400


def test_offset_pages_follow_the_given_order_not_id_order(socrata_portal_factory, entries_250):
    portal = socrata_portal_factory(entries_250)
    seen = []
    for offset in range(0, 300, 100):
        seen += ids_of(get(portal, offset=offset, limit=100).json())
    expected = [e["resource"]["id"] for e in entries_250]
    assert seen == expected
    assert seen != sorted(seen)


def test_scroll_pages_in_id_order_until_exhausted(socrata_portal_factory, entries_250):
    portal = socrata_portal_factory(entries_250)
    seen, scroll_id = [], ""
    while True:
        page = get(portal, limit=100, scroll_id=scroll_id).json()
        assert page["resultSetSize"] == 250  # the total, not what is left
        if not page["results"]:
            break
        seen += ids_of(page)
        scroll_id = seen[-1]
    assert seen == sorted(e["resource"]["id"] for e in entries_250)
    # offset is ignored once scroll_id is present
    assert ids_of(get(portal, limit=5, offset=100, scroll_id="").json()) == seen[:5]


def test_scroll_goes_past_the_offset_window(big_portal):
    ordered = sorted(e["resource"]["id"] for e in big_portal.entries)
    page = get(big_portal, limit=100, scroll_id=ordered[10_049]).json()
    assert ids_of(page) == ordered[10_050:10_150]
    assert ids_of(get(big_portal, limit=100, scroll_id=ordered[-1]).json()) == []


def test_domains_filters_out_federated_entries(socrata_portal_factory):
    own = make_socrata_entries(30, seed=1)
    federated = make_socrata_entries(6, domain="data.other.org", seed=2)
    portal = socrata_portal_factory(own, other_domain_entries=federated)

    everything = get(portal, limit=100).json()
    assert everything["resultSetSize"] == 36
    domains = [e["metadata"]["domain"] for e in everything["results"]]
    assert "data.other.org" in domains[:30]  # interleaved, not tucked at the end

    mine = get(portal, limit=100, domains="data.example.org").json()
    assert mine["resultSetSize"] == 30
    assert ids_of(mine) == [e["resource"]["id"] for e in own]
    scrolled = get(portal, limit=100, domains="data.example.org", scroll_id="").json()
    assert ids_of(scrolled) == sorted(ids_of(mine))
    assert get(portal, domains="data.other.org").json()["resultSetSize"] == 6


def test_listing_that_gains_a_first_item_between_pages_shifts(socrata_portal_factory):
    portal = socrata_portal_factory(make_socrata_entries(30, seed=5))
    first = get(portal, limit=10).json()
    portal.entries.insert(0, make_socrata_entries(1, seed=99)[0])
    second = get(portal, limit=10, offset=10).json()
    assert second["resultSetSize"] == 31
    assert ids_of(second)[0] == ids_of(first)[-1]  # the classic duplicate across pages

    portal.entries = portal.entries[:5]  # replacing the list is seen too
    assert get(portal, scroll_id="").json()["resultSetSize"] == 5


def test_on_request_hook_can_mutate_the_catalogue(socrata_portal_factory):
    portal = socrata_portal_factory(make_socrata_entries(20, seed=6))
    newcomer = make_socrata_entries(1, seed=98)[0]

    def grow(path, query):
        if path == CATALOG and portal.hits[CATALOG] == 2:
            portal.entries.insert(0, newcomer)

    portal.on_request = grow
    assert newcomer["resource"]["id"] not in ids_of(get(portal, limit=10).json())
    assert get(portal, limit=10, offset=10).json()["resultSetSize"] == 21


def test_views_endpoint(socrata_portal_factory):
    view = {"id": "ab12-cd34", "name": "Building Permits", "columns": []}
    portal = socrata_portal_factory(views={"ab12-cd34": view})
    assert get(portal, "/api/views/ab12-cd34.json").json() == view
    missing = get(portal, "/api/views/zz99-zz99.json")
    assert missing.status_code == 404 and missing.json()["error"] is True
    assert get(portal, "/api/nothing").status_code == 404


def test_real_discovery_and_views_payloads_are_served_unchanged(socrata_portal_factory):
    mixed = load_json("socrata-catalog/chicago-nygov-discovery-p1.json")["results"]
    view = load_json("socrata-views/chicago-zidz-sdfj-landmark-districts.json")
    portal = socrata_portal_factory(mixed, views={view["id"]: view}, domain="data.cityofchicago.org")
    page = get(portal, domains="data.cityofchicago.org").json()
    assert page["results"] == [e for e in mixed if e["metadata"]["domain"] == "data.cityofchicago.org"]
    assert get(portal, f"/api/views/{view['id']}.json").json() == view


# -- faults ---------------------------------------------------------------------


def test_status_fault_is_consumed_then_service_recovers(socrata_portal):
    socrata_portal.inject(CATALOG, ("status", 503), times=2)
    for _ in range(2):
        failed = get(socrata_portal)
        assert failed.status_code == 503 and failed.json()["error"] is True
    assert get(socrata_portal).status_code == 200
    assert socrata_portal.pending_faults == []


def test_retry_after_fault(socrata_portal):
    socrata_portal.inject(CATALOG, ("retry_after", 429, 7))
    throttled = get(socrata_portal)
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "7"


def test_reset_fault_drops_the_connection(socrata_portal):
    socrata_portal.inject(CATALOG, "reset")
    with pytest.raises(requests.exceptions.ConnectionError):
        get(socrata_portal)
    assert get(socrata_portal).status_code == 200


@pytest.mark.parametrize("fault, content_type", [("html", "text/html"), ("html_as_json", "application/json")])
def test_html_faults_answer_200_with_an_html_page(socrata_portal, fault, content_type):
    socrata_portal.inject(CATALOG, fault)
    page = get(socrata_portal)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith(content_type)
    assert "<html" in page.text
    with pytest.raises(requests.exceptions.JSONDecodeError):
        page.json()


@pytest.mark.parametrize("headers", [None, IDENTITY], ids=["gzip", "identity"])
def test_truncated_fault_gives_an_incomplete_read(socrata_portal, headers):
    socrata_portal.inject(CATALOG, "truncated")
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        get(socrata_portal, headers=headers, limit=25)
    assert get(socrata_portal, limit=25).status_code == 200


@pytest.mark.parametrize("headers", [None, IDENTITY], ids=["gzip", "identity"])
def test_truncated_json_fault_is_valid_http_but_invalid_json(socrata_portal, headers):
    full = get(socrata_portal, headers=IDENTITY, limit=25).content
    socrata_portal.inject(CATALOG, "truncated_json")
    cut = get(socrata_portal, headers=headers, limit=25)
    assert cut.status_code == 200
    assert cut.content == full[: len(full) // 2]
    if headers is IDENTITY:
        assert int(cut.headers["Content-Length"]) == len(cut.content)
    with pytest.raises(requests.exceptions.JSONDecodeError):
        cut.json()


def test_invalid_json_fault(socrata_portal):
    socrata_portal.inject(CATALOG, "invalid_json")
    broken = get(socrata_portal)
    assert broken.status_code == 200 and broken.headers["Content-Type"].startswith("application/json")
    assert broken.content == b'{"results": [1, 2,'
    with pytest.raises(requests.exceptions.JSONDecodeError):
        broken.json()


def test_slow_fault_delays_then_answers_normally(socrata_portal):
    socrata_portal.inject(CATALOG, ("slow", 0.3), times=2)
    started = time.monotonic()
    assert get(socrata_portal).status_code == 200
    assert time.monotonic() - started >= 0.3
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(socrata_portal.url + CATALOG, timeout=0.1)


def test_faults_match_by_path_prefix_in_queue_order(socrata_portal):
    socrata_portal.inject("/api/views", ("status", 500))
    socrata_portal.inject(CATALOG, "html")
    socrata_portal.inject("/api", ("status", 502))
    assert get(socrata_portal).headers["Content-Type"].startswith("text/html")
    assert get(socrata_portal).status_code == 502
    assert get(socrata_portal, "/api/views/ab12-cd34.json").status_code == 500
    assert get(socrata_portal).status_code == 200
    with pytest.raises(ValueError):
        socrata_portal.inject(CATALOG, ("explode", 1))


# -- HTTP caching, gzip, log, prefix ----------------------------------------------


def test_etag_and_last_modified_give_304(socrata_portal):
    first = get(socrata_portal)
    etag = first.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert first.headers["Last-Modified"] == http_date(socrata_portal.last_modified)

    for condition in (etag, f'"nope", {etag}', f"W/{etag}", "*"):
        again = get(socrata_portal, headers={"If-None-Match": condition})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["ETag"] == etag
    assert get(socrata_portal, headers={"If-None-Match": '"other"'}).status_code == 200
    assert get(socrata_portal, limit=11, headers={"If-None-Match": etag}).status_code == 200

    since = first.headers["Last-Modified"]
    assert get(socrata_portal, headers={"If-Modified-Since": since}).status_code == 304
    socrata_portal.last_modified = datetime(2025, 3, 1, tzinfo=timezone.utc)
    assert get(socrata_portal, headers={"If-Modified-Since": since}).status_code == 200

    socrata_portal.entries.pop()
    assert get(socrata_portal, headers={"If-None-Match": etag}).status_code == 200
    assert "ETag" not in get(socrata_portal, "/api/views/ab12-cd34.json").headers  # errors carry none


def test_gzip_only_when_accepted(socrata_portal):
    zipped = requests.get(socrata_portal.url + CATALOG, headers={"Accept-Encoding": "gzip"},
                          stream=True, timeout=5)
    raw = zipped.raw.read(decode_content=False)
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert int(zipped.headers["Content-Length"]) == len(raw)
    assert len(json.loads(gzip.decompress(raw))["results"]) == 10
    plain = get(socrata_portal, headers=IDENTITY)
    assert "Content-Encoding" not in plain.headers
    assert plain.json() == json.loads(gzip.decompress(raw))


def test_request_log_hits_prefix_and_static_routes(socrata_portal_factory):
    portal = socrata_portal_factory(prefix="/portal/v2")
    assert portal.url.endswith("/portal/v2")
    assert len(get(portal, limit=5, domains="data.example.org").json()["results"]) == 5
    path, query, headers = portal.requests[-1]
    assert (path, query) == (CATALOG, {"limit": "5", "domains": "data.example.org"})
    assert headers["User-Agent"].startswith("python-requests")
    assert portal.hits[CATALOG] == 1

    root = portal.url[: -len("/portal/v2")]
    assert requests.get(root + CATALOG, timeout=5).status_code == 404  # prefix forgotten

    layer = {"name": "Bike Racks", "fields": [{"name": "OBJECTID", "type": "esriFieldTypeOID"}]}
    portal.serve_json("/arcgis/rest/services/Bike/FeatureServer/0", layer)
    assert get(portal, "/arcgis/rest/services/Bike/FeatureServer/0", f="json").json() == layer

    portal.clear_log()
    assert portal.requests == [] and not portal.hits


# -- DCAT-US data.json ---------------------------------------------------------------


def test_a_refusing_port_refuses_and_no_other_server_takes_it_meanwhile(refusing_port):
    """Under pytest-xdist another worker starts portals meanwhile: a port let go as soon as it was
    found free could become one of theirs (binding, as werkzeug and http.server do, with
    SO_REUSEADDR), and the test meant to be refused would be answered."""
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", refusing_port), timeout=5)
    with socket.socket() as other, pytest.raises(OSError) as taken:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind(("127.0.0.1", refusing_port))
    assert taken.value.errno == errno.EADDRINUSE


def test_a_folder_served_apart_is_what_its_url_answers_though_another_process_takes_ports(tmp_path, monkeypatch):
    """files_served_apart found a free port, let it go and named it to its server: another process
    (another pytest-xdist worker's portal) could bind it first, the server then failed to start, and
    the URL named a port of theirs. Here every port named to a process is taken before it starts."""
    from tests.portals.base import files_served_apart
    (tmp_path / "doc.json").write_text('{"served": true}')
    taken, start = [], subprocess.Popen

    def ports_taken_first(argv, *args, **kwargs):
        taken.extend(socket.create_server(("127.0.0.1", int(arg))) for arg in argv if arg.isdigit())
        return start(argv, *args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", ports_taken_first)
    try:
        with files_served_apart(tmp_path) as url:
            assert requests.get(url + "/doc.json", timeout=5).json() == {"served": True}
    finally:
        for other in taken:
            other.close()


def test_data_json_portal_serves_catalog_and_faults(data_json_portal):
    catalog = get(data_json_portal, "/data.json").json()
    assert catalog["conformsTo"] == "https://project-open-data.cio.gov/v1.1/schema"
    assert len(catalog["dataset"]) == 10
    assert get(data_json_portal, HUB_FEED_PATH).status_code == 404
    data_json_portal.inject("/data.json", "truncated")
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        get(data_json_portal, "/data.json")


def test_hub_feed_path_and_replaced_document():
    with DataJsonPortal(make_data_json(3), path=HUB_FEED_PATH, prefix="/hub") as portal:
        first = get(portal, HUB_FEED_PATH)
        assert len(first.json()["dataset"]) == 3
        portal.document = make_data_json(4, seed=1)
        second = get(portal, HUB_FEED_PATH, headers={"If-None-Match": first.headers["ETag"]})
        assert second.status_code == 200 and len(second.json()["dataset"]) == 4


def test_real_data_json_documents_round_trip(data_json_portal_factory):
    require_fixtures()
    files = dcat_us_files()
    assert any(isinstance(load_json(p.relative_to(FIXTURES)), list) for p in files)  # legacy arrays too
    portal = data_json_portal_factory([])
    for path in files:
        portal.document = json.loads(path.read_text(encoding="utf-8"))
        assert get(portal, "/data.json").json() == portal.document, path.name


# -- synthetic catalogues -------------------------------------------------------------


def test_synthetic_entries_have_the_real_key_structure():
    real = load_json("socrata-catalog/chicago-discovery-p1-a.json")["results"][0]
    synthetic = make_socrata_entries(50)
    for entry in synthetic:
        assert list(entry) == list(real)
        assert list(entry["resource"]) == list(real["resource"])
        assert list(entry["classification"]) == list(real["classification"])
        assert list(entry["resource"]["page_views"]) == list(real["resource"]["page_views"])
        assert list(entry["owner"]) == list(real["owner"])


def test_synthetic_entries_are_varied_consistent_and_deterministic():
    entries = make_socrata_entries(2000, domain="data.city.test", seed=11)
    ids = [e["resource"]["id"] for e in entries]
    assert len(set(ids)) == 2000 and all(FXF.match(i) for i in ids)
    assert ids != sorted(ids)

    by_id = {e["resource"]["id"]: e for e in entries}
    kinds = [e["resource"]["type"] for e in entries]
    assert set(kinds) == {"dataset", "filter", "chart", "map", "story", "href", "file"}
    assert kinds.count("dataset") > len(kinds) / 2
    assert len({e["resource"]["name"] for e in entries}) > 500
    datatypes = set()
    for entry in entries:
        resource = entry["resource"]
        assert entry["metadata"]["domain"] == "data.city.test"
        assert entry["permalink"].startswith("https://data.city.test/")
        width = len(resource["columns_name"])
        assert all(len(resource[k]) == width for k in resource if k.startswith("columns_"))
        if resource["type"] in ("filter", "chart", "map"):
            assert by_id[resource["parent_fxf"][0]]["resource"]["type"] == "dataset"
        else:
            assert resource["parent_fxf"] == []
        if resource["type"] in ("dataset", "filter", "chart", "map"):
            assert 5 <= width <= 20
        else:
            assert width == 0
        assert resource["createdAt"] <= resource["metadata_updated_at"] <= resource["data_updated_at"]
        datatypes.update(resource["columns_datatype"])
    assert {"Text", "Number", "Calendar date", "Point", "Checkbox", "URL", "Location"} <= datatypes

    assert make_socrata_entries(300, seed=11) == make_socrata_entries(300, seed=11)
    assert make_socrata_entries(300, seed=11) != make_socrata_entries(300, seed=12)


def test_make_data_json_is_a_dcat_us_catalog():
    catalog = make_data_json(40)
    assert catalog["@type"] == "dcat:Catalog" and len(catalog["dataset"]) == 40
    required = {"title", "description", "keyword", "modified", "publisher", "contactPoint",
                "identifier", "accessLevel", "distribution"}
    assert all(required <= set(d) for d in catalog["dataset"])
    assert len({d["identifier"] for d in catalog["dataset"]}) == 40
    feature_layers = [d for d in catalog["dataset"]
                      if any("/FeatureServer/" in x["accessURL"] for x in d["distribution"])]
    assert 0 < len(feature_layers) < 40  # some datasets name no layer


# -- shared fixtures helpers ----------------------------------------------------------


def test_shared_fixture_helpers():
    require_fixtures()
    assert SHARED == FIXTURES.parent and SHARED.name == "shared"
    assert socrata_catalog_files() and all(p.suffix == ".json" for p in socrata_catalog_files())
    domain_files = spellarbot_domain_files()
    assert domain_files and "index.json" not in {p.name for p in domain_files}
    assert isinstance(json.loads(domain_files[0].read_text(encoding="utf-8")), list)
    assert any(p.parent.name == "socrata-pod-2013-08-28" for p in dcat_us_files())
