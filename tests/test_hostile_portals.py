"""A hostile or broken portal, played against civicat over real HTTP on 127.0.0.1 (session 40's
audit, docs/harvesting.md#hostile-portals): each test a hole that audit found, or a guard of a
bound that was already kept but that no test held."""
import codecs
import contextlib
import json
import re
import socket
import ssl
import time

import duckdb
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from catalog.export import export_parquet
from catalog.records import RecordsLayout
from harvester import paging, records
from harvester.cli import cli
from harvester.pipeline import harvest
from tests.catalog.test_datajson import errors_of, export_data_json, validators
from tests.conftest import fast_client, harvest_with_records, portal_config
from tests.harvester.http.conftest import DOC, LocalProxy
from tests.harvester.http.test_https_proxy import PROXY_VARIABLES, _tls_for_127_0_0_1
from tests.harvester.test_cli import invoke, write_config
from tests.harvester.portals.test_ckan import UndercountingCkan, packages
from tests.harvester.portals.test_arcgis_records import ESRI, ESRI_ITEM, hub_entry
from tests.portals.arcgis import FeatureServerPortal
from tests.portals.base import LocalPortal, RawBody
from tests.portals.catalogues import harvest_data_json
from tests.portals.ckan import CkanPortal
from tests.portals.dcat import HUB_FEED_PATH, DataJsonPortal
from tests.portals.opendatasoft import OpenDataSoftPortal, make_ods_datasets
from tests.portals.socrata import SocrataPortal
from tests.portals.synth import make_data_json, make_socrata_entries
from tests.shared_fixtures import load_json

DOMAIN = "data.example.org"


# -- secrets on a redirect ------------------------------------------------------------------------

class _TlsAndPlainOnOnePort(LocalProxy):
    """A server on 127.0.0.1 that speaks TLS to a client opening with a TLS handshake and plain HTTP
    to any other, on the same port: `https://host/` and `http://host/` at one host and port, as a
    portal's 443 and 80 are to a client's redirect check. It answers /moved with a redirect to
    `moved_to` and anything else with DOC; `heard` is each request's (scheme, path, headers)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__()
        self.context, self.heard, self.moved_to = context, [], ""

    def _serve(self, connection: socket.socket) -> None:
        with contextlib.suppress(OSError, ValueError), connection:
            tls = connection.recv(1, socket.MSG_PEEK) == b"\x16"   # (a TLS record of a handshake)
            if tls:
                connection = self.context.wrap_socket(connection, server_side=True)
            head = b""
            while b"\r\n\r\n" not in head and (piece := connection.recv(65536)):
                head += piece
            line, *fields = head.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
            headers = dict(field.split(": ", 1) for field in fields)
            path = line.split(" ")[1]
            self.heard.append(("https" if tls else "http", path, headers))
            if path == "/moved":
                status, fields, body = "302 Found", f"Location: {self.moved_to}\r\n", b""
            else:
                status, fields, body = "200 OK", "Content-Type: application/json\r\n", json.dumps(DOC).encode()
            connection.sendall(f"HTTP/1.1 {status}\r\n{fields}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                               .encode() + body)


def test_a_secret_header_does_not_follow_a_redirect_from_https_down_to_plain_http(tmp_path, monkeypatch):
    """The app token was kept on a redirect whose host and port stayed the same (compared as the
    URL's netloc), its scheme not: `https://data.city.example/` redirecting to
    `http://data.city.example/` (443 to 80, one netloc) sent the token in clear text, where anyone on
    the way reads it. It is kept only where requests keeps Authorization: the same host and port, or
    http going up to https on the standard ports."""
    context, cert = _tls_for_127_0_0_1(tmp_path)
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert)
    with _TlsAndPlainOnOnePort(context) as portal:
        portal.moved_to = f"http://127.0.0.1:{portal.port}/doc"
        assert fast_client().get_json(f"https://127.0.0.1:{portal.port}/moved",
                                      headers={"X-App-Token": "secret"}).data == DOC
    assert [(scheme, path) for scheme, path, _ in portal.heard] == [("https", "/moved"), ("http", "/doc")]
    assert portal.heard[0][2]["X-App-Token"] == "secret"
    assert "X-App-Token" not in portal.heard[1][2]


# -- a portal's key, in its kind's header ---------------------------------------------------------

KEY = "k3y-0f-the-p0rtal"


def _harvested_with_a_key(tmp_path, monkeypatch, kind, url, records=(), keys=""):
    """`civicat harvest` of one portal of `kind` at `url` whose app_token_env names a variable holding KEY
    (and the line break a secrets file ends with: no part of the key); `keys`: its `[portals.keys]` table."""
    monkeypatch.setenv("CIVICAT_TEST_KEY", KEY + "\n")
    db, result = harvest_with_records(tmp_path, "city", kind, url, list(records), with_records=bool(records),
                                      extra='app_token_env = "CIVICAT_TEST_KEY"\n' + keys)
    assert result.exit_code == 0, result.output
    return db, result


@pytest.mark.parametrize("kind, portal, header", [
    ("ckan", lambda: CkanPortal(packages(3)), ("Authorization", KEY)),
    ("opendatasoft", lambda: OpenDataSoftPortal(make_ods_datasets(3)), ("Authorization", f"Apikey {KEY}")),
])
def test_a_ckan_or_opendatasoft_key_goes_in_its_header_on_every_request(tmp_path, monkeypatch, kind, portal, header):
    """Until session 41 only a Socrata portal took a key (app_token_env, refused on another kind), and
    a key in the url's query was refused: a CKAN or OpenDataSoft portal that needs one could not be
    harvested. Each kind whose API reads a key from a header is sent it there, on every request."""
    with portal() as server:
        db, _ = _harvested_with_a_key(tmp_path, monkeypatch, kind, server.url)
    assert server.requests and all(headers.get(header[0]) == header[1] for _, _, headers in server.requests)
    assert not any(KEY in path or KEY in json.dumps(query) for path, query, _ in server.requests)
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM datasets").fetchone() == (3,)
    for path in tmp_path.rglob("*"):   # the catalogue, its WAL, the HTTP cache
        assert not path.is_file() or KEY.encode() not in path.read_bytes(), path


def test_an_arcgis_key_goes_to_the_hubs_own_host_and_not_to_the_layers_host(tmp_path, monkeypatch):
    """An ArcGIS token in X-Esri-Authorization (Bearer): to the Hub's host, whose feed it reads, and to
    no other host, though a feed names it (a FeatureServer elsewhere: its columns and its records pull)."""
    meta = load_json("arcgis-featureserver/esri-test-layer-metadata.json")
    features = load_json("arcgis-featureserver/esri-test-query-page1000.json")["features"]
    with FeatureServerPortal({ESRI: (meta, features)}) as services:
        with DataJsonPortal({"dataset": [hub_entry(ESRI_ITEM, "Facilities", services.url + ESRI)]},
                            path=HUB_FEED_PATH) as hub:
            _, result = _harvested_with_a_key(tmp_path, monkeypatch, "arcgis-hub", hub.url, [f"{ESRI_ITEM}_0"])
    assert json.loads(result.output)["portals"][0]["record_rows"] == 1000, result.output
    assert hub.requests and all(headers.get("X-Esri-Authorization") == f"Bearer {KEY}"
                                for _, _, headers in hub.requests)
    assert services.requests and not any(KEY in json.dumps(headers) for _, _, headers in services.requests)


def test_a_key_of_the_layers_host_goes_to_that_host_alone_and_the_hubs_to_the_hub_alone(tmp_path, monkeypatch):
    """An ArcGIS Hub's datasets are layers on another host (services1.arcgis.com for hub.arcgis.com),
    which a secured layer asks a key of: until session 42 no key could reach it (app_token_env goes
    to the hub's own host alone). `[portals.keys]` names a host and the variable holding its key: it
    goes to that host (and port) alone, the hub's to the hub alone, over http only to this machine.
    Two local hosts: the hub at 127.0.0.1, the layers at `localhost` on another port."""
    meta = load_json("arcgis-featureserver/esri-test-layer-metadata.json")
    features = load_json("arcgis-featureserver/esri-test-query-page1000.json")["features"]
    layers_key = "k3y-0f-the-layers"
    monkeypatch.setenv("CIVICAT_TEST_LAYERS_KEY", layers_key)
    with FeatureServerPortal({ESRI: (meta, features)}) as services:
        layers = services.url.replace("127.0.0.1", "localhost")
        with DataJsonPortal({"dataset": [hub_entry(ESRI_ITEM, "Facilities", layers + ESRI)]},
                            path=HUB_FEED_PATH) as hub:
            host = layers.removeprefix("http://")
            _, result = _harvested_with_a_key(tmp_path, monkeypatch, "arcgis-hub", hub.url, [f"{ESRI_ITEM}_0"],
                                              keys=f'[portals.keys]\n"{host}" = "CIVICAT_TEST_LAYERS_KEY"\n')
    assert json.loads(result.output)["portals"][0]["record_rows"] == 1000, result.output
    assert hub.requests and all(headers.get("X-Esri-Authorization") == f"Bearer {KEY}" for _, _, headers in hub.requests)
    assert services.requests and all(headers.get("X-Esri-Authorization") == f"Bearer {layers_key}"
                                     for _, _, headers in services.requests)
    assert not any(layers_key in json.dumps(headers) for _, _, headers in hub.requests)
    assert not any(layers_key in path or layers_key in json.dumps(query) for path, query, _ in services.requests)
    for path in tmp_path.rglob("*"):   # the catalogue, its WAL, the HTTP cache
        assert not path.is_file() or layers_key.encode() not in path.read_bytes(), path


def test_a_key_held_back_from_a_host_over_plain_http_is_a_warning_of_the_run_not_a_log_line_alone(tmp_path,
                                                                                                  monkeypatch):
    """A hub whose feed names its layers over plain http on another machine (layers.invalid, reached through
    a proxy: the layers' portal): their host's key in `[portals.keys]` is held back, and since session 43 its
    first request said so in the log alone, where a nightly run's user never looks (the secured layers
    answered as to anyone). Now it is a warning of the run too (KeyHeldBack, in `harvest_errors`, counted in
    the report, listed by `runs --errors`), once the harvest, once a `records` run; never the key."""
    meta = load_json("arcgis-featureserver/esri-test-layer-metadata.json")
    features = load_json("arcgis-featureserver/esri-test-query-page1000.json")["features"]
    layers_key = "k3y-0f-the-layers"
    monkeypatch.setenv("CIVICAT_TEST_LAYERS_KEY", layers_key)
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with FeatureServerPortal({ESRI: (meta, features)}) as services:
        monkeypatch.setenv("HTTP_PROXY", services.url)   # (layers.invalid reached through it; the hub not)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        with DataJsonPortal({"dataset": [hub_entry(ESRI_ITEM, "Facilities", "http://layers.invalid" + ESRI)]},
                            path=HUB_FEED_PATH) as hub:
            db, result = _harvested_with_a_key(tmp_path, monkeypatch, "arcgis-hub", hub.url, [f"{ESRI_ITEM}_0"],
                                               keys='[portals.keys]\n"layers.invalid" = "CIVICAT_TEST_LAYERS_KEY"\n')
            pulled = CliRunner().invoke(cli, ["records", f"city:{ESRI_ITEM}_0", "--config", str(tmp_path / "c.toml"),
                                              "--db", str(db)])
            assert pulled.exit_code == 0, pulled.output
    said = ("the key configured for layers.invalid ([portals.keys]) is not sent to http://layers.invalid: plain http "
            "to another machine would carry it in clear; its answers are those of a request without it (ask for "
            "its https address)")
    report = json.loads(result.output)["portals"][0]
    assert report["record_rows"] == 1000 and report["warnings"] >= 1, report
    assert services.requests and not any(layers_key in json.dumps(headers) for _, _, headers in services.requests)
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT run_id LIKE '%-records-%', stage, severity, message FROM harvest_errors "
                           "WHERE error_type = 'KeyHeldBack' ORDER BY occurred_at").fetchall()
    assert rows == [(False, "fetch", "warning", said), (True, "records", "warning", said)], rows
    listed = CliRunner().invoke(cli, ["runs", "--errors", "--db", str(db)])
    assert listed.exit_code == 0 and "KeyHeldBack" in listed.output, listed.output
    for path in tmp_path.rglob("*"):   # the catalogue, its WAL, the HTTP cache
        assert not path.is_file() or layers_key.encode() not in path.read_bytes(), path


def test_a_hosts_key_goes_to_its_host_and_port_only_over_https_or_to_this_machine():
    """(The client's rule, host by host: the port named, the scheme's own else; http to loopback alone.)"""
    client = fast_client()
    client.send_key("https://services1.arcgis.com", {"X-Esri-Authorization": "Bearer a"})
    client.send_key("http://services1.arcgis.com", {"X-Esri-Authorization": "Bearer b"})   # (never: in clear)
    client.send_key("http://localhost:8081", {"X-Esri-Authorization": "Bearer c"})
    sent = {url: client._with_key(url, {}).get("X-Esri-Authorization") for url in (
        "https://services1.arcgis.com/x/FeatureServer/0", "https://SERVICES1.arcgis.com:443/x",
        "http://services1.arcgis.com/x", "https://services1.arcgis.com:8443/x", "https://services2.arcgis.com/x",
        "http://localhost:8081/x", "http://localhost:8082/x", "http://127.0.0.1:8081/x")}
    assert sent == {"https://services1.arcgis.com/x/FeatureServer/0": "Bearer a",
                    "https://SERVICES1.arcgis.com:443/x": "Bearer a", "http://services1.arcgis.com/x": None,
                    "https://services1.arcgis.com:8443/x": None, "https://services2.arcgis.com/x": None,
                    "http://localhost:8081/x": "Bearer c", "http://localhost:8082/x": None,
                    "http://127.0.0.1:8081/x": None}


@pytest.mark.parametrize("name, value", [("X-Esri-Authorization", f"Bearer {KEY}"), ("Authorization", KEY),
                                         ("X-App-Token", KEY)])
def test_a_key_does_not_follow_a_redirect_to_another_host(name, value):
    """Dropped on a redirect to another host or port, whatever its header: X-Esri-Authorization
    followed one until session 41 (requests drops Authorization alone; civicat dropped X-App-Token)."""
    class Redirecting(LocalPortal):
        def _wsgi(self, environ, start_response):
            if environ["PATH_INFO"] == "/moved":
                self.requests.append(("/moved", {}, {"moved": environ.get("HTTP_" + name.upper().replace("-", "_"))}))
                start_response("302 Found", [("Location", other.url + "/doc"), ("Content-Length", "0")])
                return [b""]
            return super()._wsgi(environ, start_response)

    with LocalPortal() as other, Redirecting() as origin:
        other.serve_json("/doc", DOC)
        client = fast_client()
        client.send_key(origin.url, {name: value})
        assert client.get_json(origin.url + "/moved").data == DOC
    assert origin.requests == [("/moved", {}, {"moved": value})]
    assert [path for path, _, _ in other.requests] == ["/doc"] and name not in other.requests[0][2]


# -- paging that never ends -----------------------------------------------------------------------

class MintingCkan(CkanPortal):
    """A CKAN whose every page past its packages is new: ids minted from `start`, and a count of 10^9
    (a search index gone wrong, or a hostile portal), once `minting` is set."""
    minting = False

    def package_search(self, query):
        status, body = super().package_search(query)
        if self.minting:
            start, rows = int(query.get("start", 0)), int(query.get("rows", 10))
            body["result"].update(count=10 ** 9, results=[
                {**self.packages[0], "id": f"minted-{start + i:09d}", "name": f"minted-{start + i}"}
                for i in range(rows)])
        return status, body


def test_a_listing_whose_pages_never_end_fails_its_portal_at_the_entries_bound_and_loses_nothing(
        store, http, monkeypatch):
    """Each page new and a total of 10^9: the listing paged on for the portal's whole max_minutes (6
    hours), its memory growing with every id (521,000 ids and 370 MB in 30 s). It fails past
    MAX_LISTING_ENTRIES (2,000,000; 5,000 here), the catalogue kept."""
    monkeypatch.setattr(paging, "MAX_LISTING_ENTRIES", 5_000)
    with MintingCkan(packages(30)) as portal:
        config = portal_config("c", "ckan", portal.url)
        assert harvest([config], store, http).ok
        before = store.con.execute("SELECT uid, title, deleted_at, missing_since FROM datasets ORDER BY uid").fetchall()
        portal.minting, searches = True, portal.hits["/api/3/action/package_search"]
        report = harvest([config], store, http).portals[0]
        searches = portal.hits["/api/3/action/package_search"] - searches
    assert (report.status, report.error_type) == ("failed", "PagingError")
    assert report.error_message.startswith("the listing gave over 5,000 entries and did not end (at sort=id asc, "
                                           "start=5000, rows=1000)")
    assert searches in (6, 7)   # (5,000 entries at 1,000 a page: the page after the last may be asked ahead)
    assert store.con.execute("SELECT uid, title, deleted_at, missing_since FROM datasets ORDER BY uid").fetchall() \
        == before


class MintingSocrata(SocrataPortal):
    """A Socrata portal reporting 12,000 assets (listed by scroll_id, past the offset window) whose
    scroll never ends: each page new ids past the cursor."""

    def catalog(self, query):
        status, body = super().catalog(query)
        scroll_id = query.get("scroll_id")
        if scroll_id is not None:
            after = int(scroll_id[1:]) if scroll_id[1:].isdigit() else 0
            template = body["results"][0] if body["results"] else self._entries[0]
            body["results"] = [{**template, "resource": {**template["resource"], "id": f"m{after + i:08d}"}}
                               for i in range(1, int(query.get("limit", 100)) + 1)]
        body["resultSetSize"] = 12_000
        return status, body


def test_a_cursor_that_never_ends_fails_its_portal_past_twice_the_total_reported(store, http, monkeypatch):
    """A cursor does not stop at the total as offsets do: a scroll whose every page is new paged on
    for the portal's max_minutes (a million pages). Past twice the total the portal reports and
    ENTRIES_PAST_THE_TOTAL more (100,000; 1,000 here) the listing fails: pages that shift repeat or
    skip a few ids, a total that lies low is read past by the catalogue's length, never so many."""
    monkeypatch.setattr(paging, "ENTRIES_PAST_THE_TOTAL", 1_000)
    with MintingSocrata(make_socrata_entries(20, domain=DOMAIN), domain=DOMAIN) as portal:
        report = harvest([portal_config("s", "socrata", portal.url, domain=DOMAIN, max_minutes=2)], store,
                         http).portals[0]
        pages = portal.hits["/api/catalog/v1"]
    assert (report.status, report.error_type) == ("failed", "PagingError")
    assert report.error_message.startswith("the listing gave 25,100 entries, over twice the 12,000 the portal "
                                           "reports and 1,000 more, and did not end")
    assert pages <= 255   # (the total asked, 251 pages of 100, and one ahead)


# -- names in the terminal ------------------------------------------------------------------------

BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def test_bidirectional_controls_from_a_portal_are_shown_escaped_by_search_overlap_and_similar(tmp_path, monkeypatch):
    """A right-to-left override in a title ("Crime \\u202egpj.exe": "Crime exe.jpg" as a terminal
    that lays text out both ways shows it, the rest of the table's line turned around with it)
    reached the terminal as it was; C0 and C1 controls were escaped already. Each is shown as
    `\\u202e`; the catalogue and the JSON output keep the title as it was sent."""
    document = make_data_json(3)
    hostile = "Crime incidents \u202egpj.exe\u202c \u2066isolated\u2069 \u200fmark\x1b[2J"
    document["dataset"][0]["title"] = hostile
    with DataJsonPortal(document) as portal:
        config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"),
                              ("town", "dcat-us", portal.url + "/data.json"))
        db = str(tmp_path / "c.duckdb")
        assert invoke("harvest", "--config", config, "--db", db).exit_code == 0
    found = json.loads(invoke("search", "--db", db, "crime", "--json").output)
    assert hostile in [hit["title"] for hit in found]   # as it was sent
    uid = next(hit["uid"] for hit in found if hit["title"] == hostile)
    monkeypatch.setenv("COLUMNS", "400")   # (overlap's examples are cut to the terminal's width: the title shown whole)
    outputs = [invoke("search", "--db", db, "crime").output, invoke("overlap", "--db", db).output,
               invoke("similar", "--db", db, uid).output]
    for output in outputs:
        assert not any(c in BIDI_CONTROLS or ord(c) < 32 and c != "\n" for c in output), repr(output)
    # (a mark, U+200F here, is in ordinary Hebrew and Arabic titles and reorders nothing alone: shown as written)
    assert "Crime incidents \\u202egpj.exe\\u202c \\u2066isolated\\u2069 \u200fmark\\x1b[2J" in outputs[0]
    assert "\\u202egpj.exe" in outputs[1] and "\\u202egpj.exe" in outputs[2]


# -- secrets in a portal's URL --------------------------------------------------------------------

@pytest.mark.parametrize("kind, url, said", [
    ("ckan", "https://alice:s3cret-pw@data.city.example", "'https://…@data.city.example' holds a user name or password"),
    ("dcat-us", "https://data.city.example/data.json?api_key=s3cret-pw",
     "'https://data.city.example/data.json' has a secret in its query (api_key)"),
    ("socrata", "https://data.city.example?$$app_token=s3cret-pw", "has a secret in its query ($$app_token)"),
    ("arcgis-hub", "https://hub.city.example?format=json&access_token=s3cret-pw&X-Amz-Signature=s3cret-pw",
     "has a secret in its query (X-Amz-Signature, access_token)"),
])
def test_a_portal_url_holding_a_secret_is_refused_before_any_request_without_quoting_it(tmp_path, kind, url, said):
    """A user name and password in a portal's URL (which requests sends as Basic auth) went into every
    error message and log line naming a request, `harvest_errors`, and the links built from the URL (a
    CKAN's landing pages): the catalogue and its Parquet export held the password. A key in its query
    went alike. Either is refused at the config, exit 2, the secret not quoted."""
    config = tmp_path / "c.toml"
    config.write_text(f'[[portals]]\nid = "city"\ncity = "City"\nkind = "{kind}"\nurl = "{url}"\n')
    result = CliRunner().invoke(cli, ["harvest", "--config", str(config), "--db", str(tmp_path / "c.duckdb")])
    assert result.exit_code == 2 and said in result.output, result.output
    assert "s3cret-pw" not in result.output and not (tmp_path / "c.duckdb").exists()


def test_a_query_of_no_secret_in_a_data_json_url_is_kept(tmp_path):
    """(A guard of the refusal above: a data.json URL's own query, `?format=json`, is no secret.)"""
    with DataJsonPortal(make_data_json(2)) as portal:
        config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json?format=json&keyword=x"))
        assert invoke("harvest", "--config", config, "--db", str(tmp_path / "c.duckdb")).exit_code == 0
        assert portal.hits["/data.json"] == 1


# -- guards: bounds already kept, held by no test before --------------------------------------------

@pytest.mark.parametrize("encoded", [
    lambda text: codecs.BOM_UTF8 + text.encode(), lambda text: text.encode("utf-16"),
    lambda text: text.encode("utf-16-be"), lambda text: text.encode("utf-32"),
], ids=["utf-8 BOM", "utf-16", "utf-16-be without a BOM", "utf-32"])
def test_a_data_json_with_a_bom_or_in_utf_16_or_32_is_read(store, http, encoded):
    """(A guard.) RFC 8259 allows a reader to take a BOM, and json reads UTF-16 and -32: a document so
    sent is read whole, each entry, where a UTF-8-only reader would have failed the portal."""
    document = make_data_json(5)
    with DataJsonPortal(document) as portal:
        portal.static["/data.json"] = RawBody(encoded(json.dumps(document)), "application/json")
        report = harvest([portal_config("c", "dcat-us", portal.url + "/data.json")], store, http).portals[0]
    assert (report.status, report.seen, report.errors) == ("ok", 5, 0)


def test_nan_infinity_and_a_duplicate_key_in_a_listing_are_read_as_json_readers_do(store, http):
    """(A guard.) NaN and Infinity, which JSON has not but Python's json writes, are read (a
    portal built on it sends them) and stored as null: the raw record and the export stay JSON;
    of a key given twice the last is taken, as every JSON reader does."""
    document = make_data_json(3)
    text = json.dumps(document).replace('"spatial": ', '"spatial": NaN, "ignored": Infinity, "spatial": ', 1)
    text = text.replace('"title": ', '"title": "first of two", "title": ', 1)
    assert "NaN" in text and "first of two" in text
    with DataJsonPortal(document) as portal:
        portal.static["/data.json"] = RawBody(text.encode(), "application/json")
        report = harvest([portal_config("c", "dcat-us", portal.url + "/data.json")], store, http).portals[0]
    assert (report.status, report.seen) == ("ok", 3)
    raws = [json.loads(raw) for raw, in store.con.execute("SELECT raw FROM raw_records").fetchall()]
    first = next(raw for raw in raws if "ignored" in raw)
    assert first["ignored"] is None and first["title"] == document["dataset"][0]["title"]
    assert "first of two" not in json.dumps([row for row in store.con.execute("SELECT title FROM datasets")
                                             .fetchall()])


def test_hostile_values_export_to_a_data_json_the_official_schemas_take(tmp_path, store, http):
    """(A guard.) An identifier climbing out with a NUL, a line break and SQL; a title of escapes, a
    right-to-left override and 10,000 characters; links to javascript:, data: and file:; a keyword of
    a NUL: the export validates against ../shared's DCAT-US 1.1 schemas, and no such link is in it."""
    def dataset(identifier, **extra):
        return {"identifier": identifier, "title": f"Title {identifier}", "keyword": ["k"], "modified": "2024-01-01",
                "publisher": {"name": "P"}, "contactPoint": {"fn": "C", "hasEmail": "mailto:c@example.org"},
                "accessLevel": "public", **extra}

    harvest_data_json(store, http, {"a": ("A\x1b[2J", [
        dataset("../../x\x00y\n'; DROP TABLE datasets; --", title="\x1b[2J\u202eevil" + "A" * 10_000),
        dataset("links", landingPage="javascript:alert(1)", license="javascript:x", references=["file:///etc/passwd"],
                distribution=[{"downloadURL": "javascript:alert(1)", "mediaType": "text/csv"},
                              {"accessURL": "data:text/html,<script>alert(1)</script>"},
                              {"downloadURL": "file:///etc/passwd", "mediaType": "text/csv"}]),
        dataset("words", keyword=["\x00", "a" * 10_000, "\u202e"], description="\x00\x1b[2J")])})
    db = store.db_path
    store.close()
    assert export_data_json(db, tmp_path, {}).written == 3
    text = (tmp_path / "data.json").read_text()
    document = json.loads(text)
    assert errors_of(validators()[1], document) == []
    assert not any(scheme in text for scheme in ("javascript:", "data:text", "file:"))


SIGNED = "s3cr3t-S1GNATURE"


def _closed_and_exported_to_data_json(store, tmp_path):
    """`store`'s catalogue (one dataset), closed and exported to data.json, checked against the DCAT-US
    schema: (its path, the data.json document)."""
    db = store.db_path
    store.close()
    assert export_data_json(db, tmp_path / "json", {}).written == 1
    document = json.loads((tmp_path / "json" / "data.json").read_text())
    assert errors_of(validators()[1], document) == []
    return db, document


def test_links_a_portal_publishes_with_a_secret_are_kept_warned_of_and_exported_redacted(tmp_path, store, http):
    """Philadelphia's 311 entry of its real data.json, its publisher's keys put in its links: its CSV
    download from Carto's SQL API with Carto's `api_key=`, an S3 link presigned (`X-Amz-Signature=`), a
    landing page with `token=`. Until session 41 the export republished them as published. The
    catalogue keeps them as published (a records pull may need the link whole; the catalogue is the
    city's own copy); each is warned of as it is stored (SecretInLink: field and parameter, never the
    value), and every export gives the value REDACTED."""
    entry = next(e for e in load_json("dcat-us/philadelphia-opendataphilly-data.json")["dataset"]
                 if e["title"] == "311 Service and Information Requests")
    visualization, carto, *others = entry["distribution"]
    signed = carto["downloadURL"] + f"&api_key={SIGNED}"
    presigned = (f"https://bucket.s3.amazonaws.com/export.zip?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature={SIGNED}"
                 "&X-Amz-Expires=3600")
    # (and a modified date: Philadelphia gives a frequency in its place, which data.json leaves out)
    entry = {**entry, "modified": "2025-06-01", "landingPage": f"https://data.city.example/dataset?id=7&token={SIGNED}",
             "distribution": [{**visualization, "accessURL": presigned}, {**carto, "downloadURL": signed}, *others]}
    harvest_data_json(store, http, {"phl": ("Philadelphia", [entry])})
    assert store.con.execute("SELECT landing_page FROM datasets").fetchone()[0].endswith(f"token={SIGNED}")
    assert store.con.execute("SELECT download_url FROM distributions WHERE position = 1").fetchone() == (signed,)
    warned = store.con.execute("SELECT severity, message FROM harvest_errors WHERE error_type = 'SecretInLink' "
                               "ORDER BY message").fetchall()
    assert [(severity, message.split(":")[0]) for severity, message in warned] == [
        ("warning", "distributions[0].access_url"), ("warning", "distributions[1].download_url"),
        ("warning", "landing_page")]
    assert warned[0][1] == ("distributions[0].access_url: the link holds a secret (X-Amz-Signature): "
                            "kept in the catalogue as the portal published it; exports give it as REDACTED (the "
                            "portal's publisher should take it out and change the key)")
    assert not any(SIGNED in message for _, message in warned)
    db, document = _closed_and_exported_to_data_json(store, tmp_path)
    [dataset] = document["dataset"]
    assert dataset["landingPage"] == "https://data.city.example/dataset?id=7&token=REDACTED"
    assert dataset["distribution"][0]["accessURL"] == presigned.replace(SIGNED, "REDACTED")
    assert dataset["distribution"][1]["downloadURL"] == signed.replace(SIGNED, "REDACTED")
    assert SIGNED not in json.dumps(document)

    export_parquet(db, tmp_path / "parquet")
    links = pq.read_table(tmp_path / "parquet" / "distributions.parquet").to_pylist()
    assert links[0]["access_url"] == presigned.replace(SIGNED, "REDACTED")
    assert links[1]["download_url"] == signed.replace(SIGNED, "REDACTED")
    assert pq.read_table(tmp_path / "parquet" / "datasets.parquet")["landing_page"].to_pylist() == [
        "https://data.city.example/dataset?id=7&token=REDACTED"]
    assert not any(SIGNED.encode() in path.read_bytes() for path in (tmp_path / "parquet").rglob("*") if path.is_file())
    # (a link of no secret is exported as published: Philadelphia's other Carto downloads, their queries whole)
    assert [link["download_url"] for link in links[2:]] == [d.get("downloadURL") for d in others]


def test_a_key_in_a_links_fragment_or_escaped_twice_is_kept_warned_of_and_exported_redacted(tmp_path, store, http):
    """Philadelphia's 311 entry of its real data.json over HTTP, its links given keys where session 43 read
    none: a download with an OAuth implicit grant's `#access_token=` (copied from a browser after signing in),
    an app's route with one (`#/view?access_token=`), a landing page nesting a link escaped twice
    (`%253Fapi_key%253D`), a description pasting a link with `#token=…&sig=…`. All were exported as published
    (and never warned of). Now kept in the catalogue, warned of as they are stored, exported REDACTED in
    data.json (valid DCAT-US) and Parquet; the anchors beside them (`#data`, `#section-2`) as published."""
    entry = next(e for e in load_json("dcat-us/philadelphia-opendataphilly-data.json")["dataset"]
                 if e["title"] == "311 Service and Information Requests")
    visualization, carto, *others = entry["distribution"]
    granted = carto["downloadURL"] + f"#access_token={SIGNED}&token_type=bearer&expires_in=3600"
    routed = f"https://maps.city.example/#/view?layer=311&access_token={SIGNED}"
    landing = f"https://data.city.example/login?next=%252Fdataset%253Fid%253D7%2526api_key%253D{SIGNED}"
    anchors = ["https://hub.arcgis.com/datasets/phl::311-requests#data", "https://data.city.example/about#section-2"]
    entry = {**entry, "modified": "2025-06-01", "landingPage": landing, "license": anchors[1],
             "description": f"311 requests. Map: https://maps.city.example/app#token={SIGNED}&sig={SIGNED}. "
                            f"Hub: {anchors[0]}.",
             "distribution": [{**visualization, "accessURL": routed}, {**carto, "downloadURL": granted},
                              {**others[0], "downloadURL": anchors[0]}]}
    harvest_data_json(store, http, {"phl": ("Philadelphia", [entry])})
    assert store.con.execute("SELECT landing_page FROM datasets").fetchone() == (landing,)
    assert store.con.execute("SELECT download_url FROM distributions WHERE position = 1").fetchone() == (granted,)
    warned = store.con.execute("SELECT message FROM harvest_errors WHERE error_type = 'SecretInLink' "
                               "ORDER BY message").fetchall()
    assert [message.split(" a secret")[0] for (message,) in warned] == [
        "description: a link in the text holds", "distributions[0].access_url: the link holds",
        "distributions[1].download_url: the link holds", "landing_page: the link holds"]
    assert [message.split("(")[1].split(")")[0] for (message,) in warned] == [
        "token, sig", "access_token", "access_token", "api_key"]
    assert not any(SIGNED in message for (message,) in warned)
    db, document = _closed_and_exported_to_data_json(store, tmp_path)
    [dataset] = document["dataset"]
    assert dataset["landingPage"] == landing.replace(SIGNED, "REDACTED")
    assert dataset["license"] == anchors[1]
    assert [d.get("accessURL") or d.get("downloadURL") for d in dataset["distribution"]] == [
        routed.replace(SIGNED, "REDACTED"), granted.replace(SIGNED, "REDACTED"), anchors[0]]
    assert dataset["description"] == ("311 requests. Map: https://maps.city.example/app#token=REDACTED&sig=REDACTED. "
                                      f"Hub: {anchors[0]}.")
    assert SIGNED not in json.dumps(document)

    export_parquet(db, tmp_path / "parquet")
    links = pq.read_table(tmp_path / "parquet" / "distributions.parquet").to_pylist()
    assert [link["access_url"] or link["download_url"] for link in links] == [
        routed.replace(SIGNED, "REDACTED"), granted.replace(SIGNED, "REDACTED"), anchors[0]]
    [row] = pq.read_table(tmp_path / "parquet" / "datasets.parquet").to_pylist()
    assert (row["landing_page"], row["license"]) == (landing.replace(SIGNED, "REDACTED"), anchors[1])
    assert row["description"] == dataset["description"]
    assert not any(SIGNED.encode() in path.read_bytes() for path in (tmp_path / "parquet").rglob("*") if path.is_file())


@pytest.mark.parametrize("keyed", ["https://data.city.example/api/views/parks#access_token={key}&token_type=bearer",
                                   "https://data.city.example/login?next=%252Fapi%252Fparks%253Ftoken%253D{key}"],
                         ids=["fragment", "escaped-twice"])
def test_an_identifier_with_a_key_in_its_fragment_or_escaped_twice_is_exported_redacted_in_every_uid_and_folder(
        tmp_path, keyed):
    """A data.json identifier (its dataset's source id) holding a key in its fragment or escaped twice: until
    session 44 exported as published in every uid, source id, records folder and the manifest, and in
    data.json's identifier. Redacted, the two that differ only in their key numbered `#2`."""
    document = make_data_json(2)
    first, second = document["dataset"]
    db, result, (one, other) = _harvest_keyed_in_their_identifiers(tmp_path, document, keyed)
    assert json.loads(result.stdout)["portals"][0]["records_pulled"] == 2
    redacted_one = one.replace("k-one", "REDACTED")
    assert redacted_one == other.replace("k-two", "REDACTED")

    out = tmp_path / "export"
    export_parquet(db, out)
    for path in out.rglob("*"):
        assert not any(key in str(path) for key in ("k-one", "k-two")), path
        assert not path.is_file() or not any(key.encode() in path.read_bytes() for key in ("k-one", "k-two")), path
    datasets = {d["title"]: d for d in pq.read_table(out / "datasets.parquet").to_pylist()}
    assert [(datasets[e["title"]]["uid"], datasets[e["title"]]["source_id"]) for e in (first, second)] == [
        (f"city:{redacted_one}", redacted_one), (f"city:{redacted_one}#2", f"{redacted_one}#2")]
    manifest = json.loads((out / "manifest.json").read_text())
    records = sorted({f["path"].rsplit("/", 1)[0] for f in manifest["files"] if f["path"].startswith("records/")})
    assert records == sorted(f"records/{RecordsLayout(out).relative('city', d['source_id'])}" for d in datasets.values())
    assert all((out / f["path"]).is_file() for f in manifest["files"])

    assert export_data_json(db, tmp_path / "json", {}).written == 2
    written = json.loads((tmp_path / "json" / "data.json").read_text())
    assert errors_of(validators()[1], written) == []
    assert sorted(d["identifier"] for d in written["dataset"]) == sorted([redacted_one, f"city:{redacted_one}#2"])
    assert not any(key in json.dumps(written) for key in ("k-one", "k-two"))


def _harvest_keyed_in_their_identifiers(tmp_path, document: dict,
                                        keyed: str = "https://data.city.example/api/views/parks?id=7&token={key}"):
    """`document`'s first two datasets given identifiers (their source ids: `keyed`) that differ only in a
    key, and a CSV, harvested with their records pulled: (the catalogue, the harvest's result, the two ids)."""
    first, second = document["dataset"][:2]
    one, other = (keyed.format(key=key) for key in ("k-one", "k-two"))
    csv = {"@type": "dcat:Distribution", "mediaType": "text/csv", "format": "CSV", "downloadURL": "PORTAL/rows.csv"}
    first.update(identifier=one, landingPage="https://data.city.example/parks", distribution=[csv])
    second.update(identifier=other, landingPage="https://data.city.example/parks-2", distribution=[dict(csv)])
    with DataJsonPortal(document) as portal:
        for entry in (first, second):
            entry["distribution"][0]["downloadURL"] = portal.url + "/rows.csv"
        portal.static["/rows.csv"] = RawBody(b"a,b\n1,x\n2,y\n")
        db, result = harvest_with_records(tmp_path, "city", "dcat-us", portal.url + "/data.json", [one, other])
    assert result.exit_code == 0, result.output
    return db, result, (one, other)


def test_an_identifier_and_a_description_holding_a_secret_are_exported_redacted_and_still_identify(tmp_path):
    """A data.json's `identifier` is often a URL, and its dataset's source id: one holding a key
    (`?token=`) was exported as published until session 42, in data.json's identifier and in every
    uid, source id and records folder of the Parquet export, as was a key in a link its description
    pastes. The catalogue keeps them as published and warns of them (SecretInLink); an export redacts
    them, and two identifiers that differ only in their key stay two datasets: the second numbered
    (`#2`), the same uid in every table, the records folder and the manifest, and data.json."""
    document = make_data_json(3)
    first, second, third = document["dataset"]
    third.update(identifier="parks-3", landingPage="https://data.city.example/parks-3",
                 description=f"Daily. Query it at https://api.city.example/q?f=json&api_key={SIGNED}. Or "
                             f"[the map](https://maps.city.example/?token={SIGNED}).")
    db, result, (one, other) = _harvest_keyed_in_their_identifiers(tmp_path, document)
    assert json.loads(result.stdout)["portals"][0]["records_pulled"] == 2
    with duckdb.connect(str(db), read_only=True) as con:   # the catalogue's copy as published
        assert con.execute("SELECT uid FROM datasets WHERE identifier LIKE '%token%' ORDER BY uid").fetchall() == [
            (f"city:{one}",), (f"city:{other}",)]
        warned = con.execute("SELECT source_id, message FROM harvest_errors WHERE error_type = 'SecretInLink' "
                             "ORDER BY source_id").fetchall()
    assert [(source_id, message.split(" (")[0]) for source_id, message in warned] == [
        (one, "identifier: the link holds a secret"), (other, "identifier: the link holds a secret"),
        ("parks-3", "description: a link in the text holds a secret")]
    assert "(api_key, token)" in warned[2][1]

    out = tmp_path / "export"
    export_parquet(db, out)
    for path in out.rglob("*"):
        assert not any(secret in str(path) for secret in ("k-one", "k-two", SIGNED)), path
        assert not path.is_file() or not any(secret.encode() in path.read_bytes()
                                             for secret in ("k-one", "k-two", SIGNED)), path
    datasets = {d["title"]: d for d in pq.read_table(out / "datasets.parquet").to_pylist()}
    redacted_one = one.replace("k-one", "REDACTED")
    assert [(datasets[e["title"]]["uid"], datasets[e["title"]]["source_id"], datasets[e["title"]]["identifier"])
            for e in (first, second)] == [(f"city:{redacted_one}", redacted_one, redacted_one),
                                          (f"city:{redacted_one}#2", f"{redacted_one}#2", redacted_one)]
    assert datasets[third["title"]]["description"] == (
        "Daily. Query it at https://api.city.example/q?f=json&api_key=REDACTED. Or "
        "[the map](https://maps.city.example/?token=REDACTED).")
    uids = {d["uid"] for d in datasets.values()}
    for table in ("distributions", "columns"):
        assert set(pq.read_table(out / f"{table}.parquet")["dataset_uid"].to_pylist()) <= uids, table
    # each records folder is its dataset's exported source id, and the manifest lists its parts
    manifest = json.loads((out / "manifest.json").read_text())
    records = sorted({f["path"].rsplit("/", 1)[0] for f in manifest["files"] if f["path"].startswith("records/")})
    assert records == sorted(f"records/{RecordsLayout(out).relative('city', d['source_id'])}"
                             for d in datasets.values() if d["title"] != third["title"])
    assert all((out / f["path"]).is_file() for f in manifest["files"])

    assert export_data_json(db, tmp_path / "json", {}).written == 3
    document = json.loads((tmp_path / "json" / "data.json").read_text())
    assert errors_of(validators()[1], document) == []
    written = {d["title"]: d for d in document["dataset"]}
    assert [written[e["title"]]["identifier"] for e in (first, second)] == [redacted_one, f"city:{redacted_one}#2"]
    assert written[third["title"]]["description"] == datasets[third["title"]]["description"]
    assert not any(secret in json.dumps(document) for secret in ("k-one", "k-two", SIGNED))


def test_an_exports_warnings_errors_and_report_name_a_dataset_whose_source_id_holds_a_key_redacted(tmp_path, caplog):
    """An export redacted a key in a source id in what it wrote, but printed it in what it said: the
    warning of a records folder removed by hand, the error of one changed as it was linked
    (RecordsChanged: its uid, its folder's name) and the uids data.json left out (`export --json`),
    each as published as the files (r42). Named as the export names them; the catalogue keeps them."""
    import logging

    from catalog.export import RecordsChanged, _copy_records, exported_uids
    from catalog.folder import catalogue_id

    document = make_data_json(2)
    document["dataset"][0].pop("contactPoint")   # (left out of data.json: no contact)
    db, _, (one, _) = _harvest_keyed_in_their_identifiers(tmp_path, document)
    keys = ("k-one", "k-two")
    redacted_one = f"city:{one.replace('k-one', 'REDACTED')}"

    report = export_data_json(db, tmp_path / "json", {})
    assert report.left_out == [{"uid": redacted_one, "reasons": ["no contact email (none harvested, no config "
                                                                 "contact_email)"]}]

    with duckdb.connect(str(db), read_only=True) as con:
        layout = RecordsLayout.beside(db, catalogue_id(con))   # (its keyed folders named by it: RecordsLayout.segment)
        uids = exported_uids(con)
        pulls = con.execute("SELECT portal_id, source_id, row_count, bytes FROM record_pulls ORDER BY source_id"
                            ).fetchall()
    with pytest.raises(RecordsChanged) as changed:   # (a read copy older than the folders: each "changed")
        _copy_records(layout, tmp_path / "staging", pulls, copy_written=0, uids=uids)
    assert changed.value.uid == redacted_one and changed.value.redacted
    assert str(changed.value).startswith(f"the records of {redacted_one} in its folder in {layout.root} are not")
    assert not any(key in str(changed.value) or key in str(changed.value.uid) for key in keys)

    for part in layout.folder("city", one).glob("part-*.parquet"):   # removed by hand
        part.unlink()
    with caplog.at_level(logging.WARNING, logger="catalog.export"):
        export_parquet(db, tmp_path / "export")
    said = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"export: records of {redacted_one} left out"), said
    assert not any(key in message for key in keys for message in said)


def test_every_harvest_says_what_it_publishes_with_a_secret_and_warns_once_of_what_was_stored_before(tmp_path):
    """Until session 42 a dataset was warned of (SecretInLink) only as a version of it was stored: one
    stored before civicat knew the secret (session 41's rule; an identifier's and a description's,
    42's) went unsaid until its portal changed it, or `--full`, though its exports gave it REDACTED. Now
    every harvest's report counts and names the portal's live datasets publishing one, and the first
    harvest that finds one never warned of warns of it, once: no row a night for the same thing."""
    document = make_data_json(4)
    document["dataset"][0]["description"] = f"Query it at https://api.city.example/q?api_key={SIGNED} daily."
    document["dataset"][1]["landingPage"] = f"https://data.city.example/parks?token={SIGNED}"
    document["dataset"][2].update(identifier=f"https://data.city.example/trees?id=9&token={SIGNED}",   # (its source id)
                                  landingPage="https://data.city.example/trees")
    with DataJsonPortal(document) as portal:
        config = write_config(tmp_path, ("city", "dcat-us", portal.url + "/data.json"))
        db = str(tmp_path / "c.duckdb")

        def harvested() -> tuple[str, list]:
            result = invoke("harvest", "--config", config, "--db", db)
            assert result.exit_code == 0, result.output
            with duckdb.connect(db, read_only=True) as con:
                return result.output, con.execute("SELECT run_id, stage, source_id, split_part(message, ':', 1) "
                                                  "FROM harvest_errors WHERE error_type = 'SecretInLink' "
                                                  "ORDER BY run_id, source_id").fetchall()

        said, warned = harvested()   # the versions stored warned of as the mapping stores them, and none twice
        with duckdb.connect(db, read_only=True) as con:
            uids = [uid.replace(SIGNED, "REDACTED") for (uid,) in con.execute(
                "SELECT uid FROM datasets WHERE title IN (?, ?, ?) ORDER BY uid",
                [d["title"] for d in document["dataset"][:3]]).fetchall()]
        assert uids[2] == "city:https://data.city.example/trees?id=9&token=REDACTED"   # (named as exports name it)
        line = (f"city: 3 live datasets publish a secret in a link (a key, a signature, a password): "
                f"{', '.join(uids)}; kept in the catalogue as published, exported as REDACTED")
        assert line in " ".join(said.split()), said
        assert sorted((stage, field) for _, stage, _, field in warned) == [
            ("map", "description"), ("map", "identifier"), ("map", "landing_page")]
        with duckdb.connect(db) as con:   # (as a catalogue harvested before the rule has them: never warned of)
            con.execute("DELETE FROM harvest_errors WHERE error_type = 'SecretInLink'")

        said, warned = harvested()   # unchanged, so not mapped: warned of once, by the store's look
        assert line in " ".join(said.split()), said
        assert sorted((stage, field) for _, stage, _, field in warned) == [
            ("store", "description"), ("store", "identifier"), ("store", "landing_page")]
        said, again = harvested()    # and said in every report after, with no row more
        assert line in " ".join(said.split()), said
        assert again == warned
    assert SIGNED not in said


def test_field_names_of_sql_and_paths_reach_no_sql_string_nor_path(tmp_path):
    """(A guard.) A DataStore's field names of quotes and SQL, `../`, 10,000 characters, a parameter
    marker, and a dataset id that climbs out: the pull writes each as a column of that name, under the
    records folder, and the column profiles (their SQL quotes each name) name every one."""
    names = ['x"; DROP TABLE datasets; --', "'; DROP TABLE t; --", "../../etc/passwd", "a" * 10_000, "$1", "?",
             "sum(*)", "\\"]
    fields = [{"id": "_id", "type": "int"}] + [{"id": name, "type": "text"} for name in names]
    rows = [{"_id": i + 1, **{name: f"v{i}" for name in names}} for i in range(5)]
    source_id = "../../evil id'; DROP"
    with CkanPortal([], datastore={"res-n": fields}, records={"res-n": rows}) as portal:
        portal.packages = [{"id": source_id, "name": "names", "title": "Names", "resources": [
            {"id": "res-n", "name": "r", "format": "CSV", "datastore_active": True, "url": f"{portal.url}/x"}]}]
        db, result = harvest_with_records(tmp_path, "bos", "ckan", portal.url, [source_id])
    assert json.loads(result.output)["portals"][0]["records_pulled"] == 1, result.output
    written = list(tmp_path.rglob("*.parquet"))
    assert len(written) == 1 and (tmp_path / "records") in written[0].parents
    # (ParquetFile: pyarrow's read_table took the file's portal=/dataset= folders for columns before 25)
    assert pq.ParquetFile(written[0]).schema_arrow.names == ["_id", *names]
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM datasets").fetchone() == (1,)
        assert sorted(name for name, in con.execute("SELECT column_name FROM column_profiles").fetchall()) == \
            sorted(["_id", *names])


# -- a records pull whose pages never end ---------------------------------------------------------

class MintingFeatureServer(FeatureServerPortal):
    """A FeatureServer whose pages past its features, once `minting` is set, are new features (object
    ids past any read), each page saying `exceededTransferLimit`; its count stays its features'."""
    minting = False

    def query(self, metadata, features, query):
        answer = super().query(metadata, features, query)
        offset = int(query.get("resultOffset", 0))
        if self.minting and "resultOffset" in query:
            if offset >= len(features):
                template = features[0]
                answer["features"] = [{**template, "attributes": {**template["attributes"], "objectid": 10 ** 6 + offset + i}}
                                      for i in range(int(query.get("resultRecordCount", 100)))]
            answer["exceededTransferLimit"] = True
        return answer


def test_a_records_pull_whose_pages_never_end_fails_past_twice_its_count_and_keeps_the_previous_records(
        tmp_path, monkeypatch):
    """A layer saying `exceededTransferLimit` on every page, each of new rows: the pull read on for its
    records_max_minutes (six hours), writing them to the disk. Past twice the count the layer gave
    at the pull's start and ROWS_PAST_THE_COUNT more (a million; 500 here) it fails, its staged rows
    removed, the previous records kept."""
    monkeypatch.setattr(records, "ROWS_PAST_THE_COUNT", 500)
    meta = {**load_json("arcgis-featureserver/esri-test-layer-metadata.json"), "maxRecordCount": 300}
    features = load_json("arcgis-featureserver/esri-test-query-page1000.json")["features"]
    with MintingFeatureServer({ESRI: (meta, features)}) as services:
        with DataJsonPortal({"dataset": [hub_entry(ESRI_ITEM, "Facilities", services.url + ESRI)]},
                            path=HUB_FEED_PATH) as hub:
            _, first = harvest_with_records(tmp_path, "dc", "arcgis-hub", hub.url, [f"{ESRI_ITEM}_0"])
            assert json.loads(first.output)["portals"][0]["record_rows"] == 1000, first.output
            services.minting = True
            services.clear_log()
            db, result = harvest_with_records(tmp_path, "dc", "arcgis-hub", hub.url, [f"{ESRI_ITEM}_0"])
            pages = sum(1 for path, query, _ in services.requests if "resultOffset" in query)
    assert json.loads(result.output)["portals"][0]["records_failed"] == 1, result.output
    with duckdb.connect(str(db), read_only=True) as con:
        error_type, message = con.execute("SELECT error_type, message FROM harvest_errors WHERE stage = 'records'") \
            .fetchone()
    said = re.fullmatch(r"records pull failed \(dc:a{32}_0\): the pull gave over ([\d,]+) rows, more than twice the "
                        r"1,000 the portal counted at its start and 500 more: its pages do not end; the previous "
                        r"records are kept", message)
    assert error_type == "PagingError" and said, message
    assert 2_500 < int(said[1].replace(",", "")) <= 2_500 + 300   # (the page that passed the bound: 300 rows at most)
    assert pages <= 11   # (2,800 rows at 300 a page, and one asked ahead)
    kept = pq.read_table(tmp_path / "records" / "portal=dc" / f"dataset={ESRI_ITEM}_0")
    assert kept.num_rows == 1000 and max(kept["objectid"].to_pylist()) < 10 ** 6
    assert not any(path.name.startswith("part-") for path in (tmp_path / ".records-staging").rglob("*"))


class LyingCountFeatureServer(MintingFeatureServer):
    """A minting FeatureServer whose count (`returnCountOnly`), once `lying` is set, says 500,000,000."""
    lying = False

    def query(self, metadata, features, query):
        if self.lying and query.get("returnCountOnly") == "true":
            return {"count": 500_000_000}
        return super().query(metadata, features, query)


def _pull_from_a_minting_layer(tmp_path, *, lying: bool, extra: str):
    """A Hub layer of 1,000 features pulled once as it is, then again once it mints features for ever
    (its count lying at 500,000,000 if `lying`), the portal's config given `extra`: (the second
    run's JSON report, its records harvest_errors, the query pages it asked, the seconds it took)."""
    meta = {**load_json("arcgis-featureserver/esri-test-layer-metadata.json"), "maxRecordCount": 300}
    features = load_json("arcgis-featureserver/esri-test-query-page1000.json")["features"]
    with LyingCountFeatureServer({ESRI: (meta, features)}) as services:
        with DataJsonPortal({"dataset": [hub_entry(ESRI_ITEM, "Facilities", services.url + ESRI)]},
                            path=HUB_FEED_PATH) as hub:
            _, first = harvest_with_records(tmp_path, "dc", "arcgis-hub", hub.url, [f"{ESRI_ITEM}_0"], extra=extra)
            assert json.loads(first.output)["portals"][0]["record_rows"] == 1000, first.output
            services.minting, services.lying = True, lying
            services.clear_log()
            started = time.monotonic()
            db, result = harvest_with_records(tmp_path, "dc", "arcgis-hub", hub.url, [f"{ESRI_ITEM}_0"], extra=extra)
            seconds = time.monotonic() - started
            pages = sum(1 for path, query, _ in services.requests if "resultOffset" in query)
    with duckdb.connect(str(db), read_only=True) as con:
        errors = con.execute("SELECT error_type, message FROM harvest_errors WHERE stage = 'records'").fetchall()
    return json.loads(result.output)["portals"][0], errors, pages, seconds


def _assert_previous_records_kept(tmp_path):
    kept = pq.read_table(tmp_path / "records" / "portal=dc" / f"dataset={ESRI_ITEM}_0")
    assert kept.num_rows == 1000 and max(kept["objectid"].to_pylist()) < 10 ** 6
    assert not any(path.name.startswith("part-") for path in (tmp_path / ".records-staging").rglob("*"))


def test_a_records_pull_whose_count_lies_high_fails_at_its_first_page_past_records_max_rows(tmp_path):
    """A layer counting 500,000,000 features and minting them for ever: the pull's bound was twice that
    count and a million more, so it read on for its records_max_minutes (here 0.5: until session 41 it
    failed OverBudget after 30 s of rows staged; by default six hours, tens of GB). A count over the
    portal's records_max_rows (default 100,000,000) fails the pull at its first page, naming the bound,
    its staging removed, the previous records kept."""
    report, errors, pages, seconds = _pull_from_a_minting_layer(tmp_path, lying=True,
                                                                extra="records_max_minutes = 0.5\n")
    assert report["records_failed"] == 1, report
    assert errors == [("OverBudget", f"records pull failed (dc:{ESRI_ITEM}_0): the portal counts 500,000,000 rows, "
                                     "more than the portal's records_max_rows (100,000,000): the pull stops at its "
                                     "first page; the previous records are kept (a dataset that large is pulled with "
                                     "records_max_rows raised)")]
    assert pages <= 2 and seconds < 20   # (the first page, and one asked ahead)
    _assert_previous_records_kept(tmp_path)


def test_a_records_pull_fails_past_the_portals_records_max_rows_and_keeps_the_previous_records(tmp_path):
    """An honest count (1,000) and pages that never end: the pull fails past the portal's
    records_max_rows (2,000 here), before twice its count and a million more."""
    report, errors, pages, _ = _pull_from_a_minting_layer(tmp_path, lying=False, extra="records_max_rows = 2000\n")
    assert report["records_failed"] == 1, report
    [(error_type, message)] = errors
    said = re.fullmatch(rf"records pull failed \(dc:{ESRI_ITEM}_0\): the pull gave ([\d,]+) rows, past the "
                        r"portal's records_max_rows \(2,000\); the previous records are kept", message)
    assert error_type == "OverBudget" and said, message
    assert 2_000 < int(said[1].replace(",", "")) <= 2_000 + 300   # (the page that passed the bound: 300 rows at most)
    assert pages <= 9   # (2,100 rows at 300 a page, and one asked ahead)
    _assert_previous_records_kept(tmp_path)


# -- a total that lies low ------------------------------------------------------------------------

class CountingLow(UndercountingCkan):
    """A CKAN whose count says 1,000, a whole page, whatever it holds (a search index's stale count)."""
    count = 1_000


def test_a_total_that_lies_low_at_a_pages_end_marks_nothing_removed(store, http):
    """A count of 1,000 of 2,500 packages: the first page, full, reached it, the listing ended there
    complete, and the 1,500 after it were marked removed (deleted at once: deletion_grace_days 0).
    A full page that reaches the total is followed by one more request: the pages go on, the
    listing is partial, nothing is marked missing. An honest catalogue of whole pages costs one
    empty page more, and its deletions are still found."""
    catalogue = packages(2_500)
    with CkanPortal(catalogue) as portal:
        assert harvest([portal_config("c", "ckan", portal.url)], store, http).ok
    with CountingLow(catalogue) as portal:
        report = harvest([portal_config("c", "ckan", portal.url)], store, http).portals[0]
    assert (report.status, report.seen, report.removed, report.listing_complete) == ("ok", 2_500, 0, False)
    assert store.con.execute("SELECT count(*) FROM datasets WHERE deleted_at IS NULL AND missing_since IS NULL") \
        .fetchone() == (2_500,)
    with CkanPortal(catalogue[:2_000]) as portal:   # (an honest count of whole pages: 2 pages and an empty one)
        report = harvest([portal_config("c", "ckan", portal.url)], store, http).portals[0]
        starts = [query.get("start") for path, query, _ in portal.requests if path.endswith("package_search")]
    assert (report.status, report.seen, report.removed, report.listing_complete) == ("ok", 2_000, 500, True)
    assert starts == ["0", "1000", "2000"]


def test_a_copy_whose_source_id_holds_a_key_is_exported_in_its_group_redacted_the_same_night_to_night(store, http,
                                                                                                       tmp_path):
    """This session's merges together (r42): o42 stores a dataset's copy on its city's other portal as a row of
    overlap_groups, e42 keeps a row computed again to the same values with its computed_at, a42 exports a
    source id holding a key redacted in every uid. A copy keyed so (one data.json identifier a city's two
    portals list) is in its group under its exported uid, a uid of datasets.parquet, its key in no file; and
    a second night's overlap and export give the same overlap_groups file."""
    import hashlib

    from pathlib import Path

    from catalog import overlap
    from catalog.store import Store
    from tests.catalog.test_search import entry

    keyed = "https://data.springfield.example/api/views/potholes?id=7&token=k-one"
    potholes = entry(keyed, "Pothole Repairs", "Potholes the streets department repaired, by date and ward.",
                     ("potholes", "streets"))
    harvest_data_json(store, http, {
        "springfield": ("Springfield", [potholes, entry("sp-2", "Street Trees", "Every tree the city keeps.")]),
        "springfield_pod": ("Springfield", [dict(potholes)]),
        "shelbyville": ("Shelbyville", [entry("sh-9", "Pothole Repairs", "Potholes repaired by the streets "
                                              "department, by date and district.", ("potholes",)),
                                        entry("sh-2", "Police Incidents", "Incidents reported to police.")])})
    store.close()
    written = []
    for night in (1, 2):
        nightly = Store(store.db_path)
        try:
            result = overlap.detect(nightly.con)
            overlap.save(nightly.con, result)
        finally:
            nightly.close()
        export_parquet(store.db_path, tmp_path / f"night{night}")
        written.append({path.relative_to(tmp_path / f"night{night}"): hashlib.sha256(path.read_bytes()).hexdigest()
                        for path in (tmp_path / f"night{night}").rglob("*.parquet")})
    group = next(g for g in result.groups if f"springfield:{keyed}" in [*g.uids, *sum(g.copies.values(), [])])
    assert sorted([*group.uids, *sum(group.copies.values(), [])]) == sorted(
        ["shelbyville:sh-9", f"springfield:{keyed}", f"springfield_pod:{keyed}"])

    out = tmp_path / "night1"
    redacted = keyed.replace("k-one", "REDACTED")
    groups = pq.read_table(out / "overlap_groups.parquet").to_pylist()
    assert sorted(r["uid"] for r in groups if r["group_id"] == group.group_id) == sorted(
        ["shelbyville:sh-9", f"springfield:{redacted}", f"springfield_pod:{redacted}"])
    assert {r["uid"] for r in groups} <= set(pq.read_table(out / "datasets.parquet")["uid"].to_pylist())
    for path in out.rglob("*"):
        assert "k-one" not in str(path) and (not path.is_file() or b"k-one" not in path.read_bytes()), path
    assert written[0][Path("overlap_groups.parquet")] == written[1][Path("overlap_groups.parquet")]


@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_a_log_line_naming_a_dataset_whose_source_id_holds_a_key_prints_it_redacted(tmp_path, log_format):
    """The line of a failed records pull named the dataset by its uid, and a data.json identifier holding a
    key is its source id: a log on stderr (a cron's mail, a CI's page) published the key the exports redact
    (r42). Each line civicat logs gives it REDACTED, in both formats; the catalogue's rows keep it."""
    import os
    import subprocess
    import sys

    keyed = "https://data.city.example/api/views/parks?id=7&token=k-one"
    document = make_data_json(1)
    with DataJsonPortal(document) as portal:
        document["dataset"][0].update(identifier=keyed, landingPage="https://data.city.example/parks", distribution=[
            {"@type": "dcat:Distribution", "mediaType": "text/csv", "format": "CSV",
             "downloadURL": portal.url + "/gone.csv"}])
        config = tmp_path / "c.toml"
        config.write_text(f'[[portals]]\nid = "city"\ncity = "City"\nkind = "dcat-us"\nurl = "{portal.url}/data.json"\n'
                          f'records = ["{keyed}"]\n')
        db = tmp_path / "c.duckdb"
        result = subprocess.run([sys.executable, "-m", "harvester", "--log-format", log_format, "harvest", "--records",
                                 "--config", str(config), "--db", str(db)], capture_output=True, text=True,
                                timeout=120, env={**os.environ, "CIVICAT_HTTP_MAX_ATTEMPTS": "1"})
    failed = [line for line in result.stderr.splitlines() if "records pull failed" in line]
    assert len(failed) == 1 and "city:https://data.city.example/api/views/parks?id=7&token=REDACTED" in failed[0], \
        result.stderr
    assert "k-one" not in result.stderr and "k-one" not in result.stdout
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM harvest_errors WHERE stage = 'records' AND source_id = ?",
                           [keyed]).fetchone() == (1,)
