"""The Open311 adapter: services.json or services.xml (safely), one 311 dataset per
endpoint, and the services view."""
from harvester.pipeline import harvest
from tests.conftest import portal_config
from tests.portals.open311 import Open311Portal
from tests.shared_fixtures import FIXTURES, require_fixtures

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<services><service><service_code>1</service_code><service_name>&lol3;</service_name></service></services>"""

JSON_SERVICES = [
    {"service_code": "4f389210e75084437f0001de", "service_name": "Abandoned Vehicle", "description": "Report a car",
     "metadata": False, "type": "realtime", "keywords": "car,vehicle", "group": "Transportation"},
    {"service_code": "4f38920de75084437f0001c6", "service_name": "Pothole", "description": None,
     "metadata": True, "type": "realtime", "keywords": "", "group": "Streets"},
]


def test_services_json_endpoint_is_one_311_dataset(store, http):
    with Open311Portal(services=JSON_SERVICES) as endpoint:
        report = harvest([portal_config("boston311", "open311", endpoint.url, city="Boston")], store, http).portals[0]
    assert report.status == "ok" and report.seen == 1
    title, keywords, themes = store.con.execute("SELECT title, keywords, themes FROM datasets").fetchone()
    assert title == "Boston 311 service requests"
    assert keywords == ["311", "service requests", "Abandoned Vehicle", "Pothole"] and themes == ["Transportation", "Streets"]
    columns = store.con.execute("SELECT field_name, type FROM columns ORDER BY position").fetchall()
    assert ("requested_datetime", "datetime") in columns and ("lat", "number") in columns and len(columns) == 17
    assert store.con.execute("SELECT service_code, service_name, service_group, metadata FROM open311_services "
                             "ORDER BY service_name").fetchall() == [
        ("4f389210e75084437f0001de", "Abandoned Vehicle", "Transportation", "false"),
        ("4f38920de75084437f0001c6", "Pothole", "Streets", "true")]


def test_xml_only_endpoints_of_san_francisco_and_giessen(store, http):
    require_fixtures()
    for portal_id, city, name in (("sf311", "San Francisco", "sf-sf311v2-services.xml"),
                                  ("giessen311", "Giessen", "giessen-de-services.xml")):
        with Open311Portal(services_xml=(FIXTURES / "open311" / name).read_bytes()) as endpoint:
            report = harvest([portal_config(portal_id, "open311", endpoint.url, city=city)], store, http).portals[0]
        assert report.status == "ok", report.error_message
    counts = dict(store.con.execute("SELECT portal_id, count(*) FROM open311_services GROUP BY ALL").fetchall())
    assert counts == {"sf311": 36, "giessen311": 8}   # every <service> element of the recorded lists
    assert store.con.execute("SELECT service_name, service_group FROM open311_services WHERE portal_id = 'sf311' "
                             "AND service_code = '001'").fetchone() == ("Cans_Left_Out_24x7", "Litter Receptacles")


def test_an_xml_bomb_is_refused_and_nothing_stored(store, http):
    with Open311Portal(services=JSON_SERVICES) as endpoint:
        assert harvest([portal_config("c311", "open311", endpoint.url)], store, http).ok
    with Open311Portal(services_xml=BOMB) as endpoint:
        report = harvest([portal_config("c311", "open311", endpoint.url)], store, http).portals[0]
    assert report.status == "failed" and "EntitiesForbidden" in report.error_message
    assert store.con.execute("SELECT count(*) FROM open311_services").fetchone() == (2,)   # the previous list stays


def test_an_endpoint_of_more_services_than_kept_keeps_the_first_10000(store, http):
    """services.json listing 25,000 services (10^6: one raw entry of them all, and each name
    looked for among those kept so far as a keyword): the first 10,000 are kept as the body is
    read, with a warning; the endpoint's dataset is stored with them."""
    services = [{"service_code": str(i), "service_name": f"Service {i}", "group": "G", "description": "d" * 100}
                for i in range(25_000)]
    with Open311Portal(services=services) as endpoint:
        report = harvest([portal_config("city", "open311", endpoint.url)], store, http).portals[0]
    assert report.status == "ok" and report.warnings == 1
    # (read on the harvest's own connection, its memory limit: the view's lateral unnest did not
    # fit it even at 2,000 services, its memory the square of their number)
    assert store.con.execute("SELECT count(*), count(DISTINCT service_code), max_by(service_code, service_code::INT) "
                             "FROM open311_services").fetchone() == (10_000, 10_000, "9999")
    assert store.con.execute("SELECT len(keywords) FROM datasets").fetchone()[0] == 2 + 10_000
    assert store.con.execute("SELECT source_id, severity, message FROM harvest_errors").fetchall() == [
        ("service-requests", "warning", "services: the endpoint lists 25,000 services; the first 10,000 are kept")]
