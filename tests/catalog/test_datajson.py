"""DCAT-US 1.1 data.json: every dataset validates against the official schemas (format
checks included), required fields are derived as documented, nothing is invented."""
import json
from datetime import UTC, datetime

import duckdb
import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from catalog.datajson import PortalDefaults, dataset_entry, uri, write_data_json
from catalog.export import open_catalogue
from harvester.cli import cli
from tests.catalog.test_search import SHELBYVILLE, SPRINGFIELD, entry
from tests.portals.catalogues import harvest_data_json
from tests.shared_fixtures import FIXTURES, require_fixtures

SCHEMAS = FIXTURES.parent / "schemas" / "dcatus1.1"


def official(name: str) -> dict:
    require_fixtures()
    path = SCHEMAS / name
    if not path.exists():
        pytest.skip(f"the official DCAT-US schemas are not beside the repository: {path}")
    return json.loads(path.read_text())


def validators():
    """(dataset validator, catalog validator): the catalog's `dataset.json` reference
    resolved to the official non-federal dataset schema, formats (uri) checked."""
    dataset_schema = official("non-federal_dataset.json")
    catalog_schema = official("catalog.json")
    registry = Registry().with_resource("https://project-open-data.cio.gov/v1.1/schema/dataset.json",
                                        Resource.from_contents(dataset_schema))
    checker = FormatChecker()
    assert "uri" in checker.checkers  # rfc3986-validator installed: URLs are checked, not waved through
    return (Draft202012Validator(dataset_schema, format_checker=checker),
            Draft202012Validator(catalog_schema, registry=registry, format_checker=checker))


def errors_of(validator, document) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def export_data_json(db, out, defaults):
    con = open_catalogue(db)
    try:
        return write_data_json(con, out, defaults)
    finally:
        con.close()


def test_a_real_harvested_catalogue_validates_with_zero_errors(tmp_path, real_catalogue):
    dataset_validator, catalog_validator = validators()
    con = open_catalogue(real_catalogue)
    pod_portals = [r[0] for r in con.execute("SELECT DISTINCT portal_id FROM datasets WHERE portal_kind = 'dcat-us'").fetchall()]
    active = con.execute("SELECT count(*) FROM datasets WHERE deleted_at IS NULL").fetchone()[0]
    con.close()
    # the data team's config names a contact for the 2013 data.json portals (which publish none)
    defaults = {p: PortalDefaults(contact_name="Open Data Team", contact_email="opendata@example.org")
                for p in pod_portals}
    report = export_data_json(real_catalogue, tmp_path, defaults)
    document = json.loads((tmp_path / "data.json").read_text())
    datasets = document["dataset"]
    assert len(datasets) == report.written > 2500
    assert report.written + len(report.left_out) == active
    assert errors_of(catalog_validator, document) == []
    for dataset in datasets:
        assert errors_of(dataset_validator, dataset) == [], dataset["identifier"]
    assert len({d["identifier"] for d in datasets}) == len(datasets)
    # the 2017 Socrata listings carry no modified date and no contact: left out, and why
    reasons = report.reasons()
    assert reasons["no modified date"] >= 7000 and set(reasons) <= {
        "no modified date", "no keyword or theme", "no contact email (none harvested, no config contact_email)",
        "no access level", "no publisher (none harvested, no config publisher or city)"}
    # of the 2013 data.json datasets, only those without any keyword or theme
    assert {tuple(d["reasons"]) for d in report.left_out if d["uid"].startswith("pod-")} == {("no keyword or theme",)}


def test_required_fields_are_derived_as_documented(tmp_path, store, http):
    bare = {"identifier": "b-1", "title": "Bare Permits", "modified": "2024-03-04T05:06:07Z",
            "accessLevel": "public", "theme": ["Housing"],
            "distribution": [{"downloadURL": "https://x.example.org/a.csv", "format": "CSV"},
                             {"downloadURL": "https://x.example.org/b.csv", "mediaType": "text/csv"}],
            "license": "Public Domain", "landingPage": "https://x.example.org/b-1", "accrualPeriodicity": "R/P1D"}
    harvest_data_json(store, http, {"springfield": ("Springfield", SPRINGFIELD),
                                    "ogdenville": ("Ogdenville", [bare, entry("sp-1", "Same identifier")])})
    db = store.db_path
    store.close()
    defaults = {"ogdenville": PortalDefaults(publisher=None, contact_name=None, contact_email="data@ogdenville.gov")}
    report = export_data_json(db, tmp_path, defaults)
    dataset_validator, _ = validators()
    by_title = {d["title"]: d for d in json.loads((tmp_path / "data.json").read_text())["dataset"]}
    assert report.written == 6 and report.left_out == []
    for dataset in by_title.values():
        assert errors_of(dataset_validator, dataset) == []
    derived = by_title["Bare Permits"]
    assert derived["description"] == "Bare Permits"                      # from the title
    assert derived["keyword"] == ["Housing"]                             # from the themes
    assert derived["publisher"]["name"] == "Ogdenville"                  # the city: no publisher anywhere
    assert derived["contactPoint"] == {"@type": "vcard:Contact", "fn": "Ogdenville",
                                       "hasEmail": "mailto:data@ogdenville.gov"}
    assert derived["modified"] == "2024-03-04T05:06:07Z" and derived["accessLevel"] == "public"
    assert "license" not in derived and derived["landingPage"] == "https://x.example.org/b-1"
    assert derived["accrualPeriodicity"] == "R/P1D"
    assert derived["distribution"] == [
        {"@type": "dcat:Distribution", "accessURL": "https://x.example.org/a.csv", "format": "CSV"},
        {"@type": "dcat:Distribution", "downloadURL": "https://x.example.org/b.csv", "mediaType": "text/csv"}]
    harvested = by_title["Building Permits"]
    assert harvested["publisher"]["name"] == "Test City"
    assert harvested["contactPoint"]["hasEmail"] == "mailto:open@example.org"
    # two portals publishing the same identifier: the second in uid order gets civicat's uid
    assert by_title["Same identifier"]["identifier"] == "sp-1"
    assert harvested["identifier"] == "springfield:sp-1"


def test_a_dataset_missing_a_required_field_is_left_out_with_the_reason():
    row = {"uid": "a:1", "portal_id": "a", "city": None, "identifier": "1", "title": "T", "description": None,
           "keywords": [], "themes": [""], "publisher": None, "contact_name": None, "contact_email": "not-an-email",
           "issued": None, "modified": None, "accrual_periodicity": "unknown", "license": None,
           "access_level": None, "landing_page": None, "spatial": None, "temporal_start": None,
           "temporal_end": None, "distributions": None}
    entry_, reasons = dataset_entry(row, PortalDefaults())
    assert entry_ is None
    assert reasons == ["no publisher (none harvested, no config publisher or city)", "no keyword or theme",
                       "no modified date", "no access level",
                       "no contact email (none harvested, no config contact_email)"]
    complete = {**row, "publisher": "P", "keywords": ["k"], "modified": datetime(2024, 1, 1, tzinfo=UTC),
                "access_level": "public"}
    entry_, reasons = dataset_entry(complete, PortalDefaults(contact_email="a@b.org"))
    assert reasons == [] and entry_["contactPoint"] == {"@type": "vcard:Contact", "fn": "P", "hasEmail": "mailto:a@b.org"}
    assert "accrualPeriodicity" not in entry_ and entry_["modified"] == "2024-01-01T00:00:00Z"


def test_uris_are_absolute_web_urls():
    assert uri("https://a.org/x y?q=1#f") == "https://a.org/x%20y?q=1#f"
    assert uri("www.a.org") is None and uri("javascript:alert(1)") is None and uri("") is None
    assert uri("mailto:a@b.org") is None


def test_identifiers_stay_unique_and_urls_valid_whatever_a_portal_sends(tmp_path, store, http):
    """A portal whose identifier is another portal's uid (`b:id-1`, which the second `id-1`
    falls back on), and a licence URL with a broken percent escape: data.json held the
    identifier twice (a harvester keying on it keeps one of the two datasets) and a licence
    that fails the schema's `uri` format."""
    def dataset(identifier, **extra):
        return {"identifier": identifier, "title": f"Title {identifier}", "keyword": ["k"], "modified": "2024-01-01",
                "publisher": {"name": "P"}, "contactPoint": {"fn": "C", "hasEmail": "mailto:c@example.org"},
                "accessLevel": "public", **extra}

    harvest_data_json(store, http, {"a": ("A", [dataset("id-1"), dataset("b:id-1", license="http://ex.org/%zz 100%")]),
                                    "b": ("B", [dataset("id-1")])})
    db = store.db_path
    store.close()
    report = export_data_json(db, tmp_path, {})
    document = json.loads((tmp_path / "data.json").read_text())
    identifiers = [d["identifier"] for d in document["dataset"]]
    assert report.written == 3 and len(set(identifiers)) == 3
    dataset_validator, catalog_validator = validators()
    assert errors_of(catalog_validator, document) == []
    assert {d["identifier"]: d.get("license") for d in document["dataset"]}["b:id-1"] == "http://ex.org/%25zz%20100%25"
    assert uri("http://ex.org/a%2Fb") == "http://ex.org/a%2Fb"

def test_cli_writes_both_formats_and_lists_what_was_left_out(tmp_path, store, http):
    harvest_data_json(store, http, {"springfield": ("Springfield", SPRINGFIELD + [
        {"identifier": "x", "title": "No date", "accessLevel": "public", "keyword": ["k"]}])})
    db = store.db_path
    store.close()
    config = tmp_path / "c.toml"
    config.write_text('[[portals]]\nid = "springfield"\ncity = "Springfield"\nkind = "dcat-us"\n'
                      'url = "http://127.0.0.1:1/data.json"\npublisher = "City of Springfield"\n'
                      'contact_email = "data@springfield.gov"\n')
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["export", "--db", str(db), "--config", str(config), "--out", str(out),
                                      "--format", "parquet", "--format", "data.json", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["data.json"]["datasets"] == 4 and summary["data.json"]["left_out"] == 1
    assert summary["data.json"]["left_out_datasets"] == [{"uid": "springfield:x", "reasons": ["no modified date"]}]
    assert summary["parquet"]["row_counts"]["datasets"] == 5
    assert (out / "manifest.json").exists() and (out / "datasets.parquet").exists()
    assert len(json.loads((out / "data.json").read_text())["dataset"]) == 4
    result = CliRunner().invoke(cli, ["export", "--db", str(db), "--config", str(config), "--out", str(out),
                                      "--format", "data.json"])
    assert result.exit_code == 0 and "4 datasets; 1 left out" in result.output and "no modified date" in result.output
    assert (out / "manifest.json").exists()  # a data.json export leaves the Parquet files alone


def test_export_names_its_files_as_the_folder_was_given(tmp_path, store, http, monkeypatch):
    """`--out data/export` printed `data/export: Parquet export ...` and then data.json's path in
    full (`/srv/civicat/data/export/data.json: ...`). Both as given, in the table and in --json."""
    harvest_data_json(store, http, {"springfield": ("Springfield", SPRINGFIELD)})
    store.close()
    monkeypatch.chdir(tmp_path)
    both = ["export", "--db", str(store.db_path), "--out", "data/export", "--format", "parquet", "--format", "data.json"]
    result = CliRunner().invoke(cli, both)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("data/export: Parquet export, schema "), result.stdout
    assert [line for line in lines if "data.json" in line][0].startswith("data/export/data.json: "), result.stdout
    summary = json.loads(CliRunner().invoke(cli, [*both, "--json"]).stdout)
    assert (summary["out"], summary["data.json"]["path"]) == ("data/export", "data/export/data.json")


def test_a_portal_out_of_the_config_is_named_when_its_datasets_miss_the_config_contact(tmp_path):
    """A portal taken out of the config keeps its datasets live, in exports too; but data.json
    takes a portal's contact and publisher from the config as it exports, so the datasets of
    one out of it that name no contact themselves are left out: the export says why, naming it."""
    from tests.portals.dcat import DataJsonPortal

    no_contact = [{k: v for k, v in e.items() if k != "contactPoint"} for e in SPRINGFIELD]
    db, out = tmp_path / "c.duckdb", tmp_path / "out"

    def config(*portals):
        path = tmp_path / "c.toml"
        path.write_text("".join(f'[[portals]]\nid = "{pid}"\ncity = "{pid.title()}"\nkind = "dcat-us"\n'
                                f'url = "{url}/data.json"\ncontact_email = "data@{pid}.gov"\n\n' for pid, url in portals))
        return str(path)

    def export(config_path):
        result = CliRunner().invoke(cli, ["export", "--db", str(db), "--config", config_path, "--out", str(out),
                                          "--format", "data.json", "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["data.json"], result.stderr

    with DataJsonPortal({"dataset": no_contact}) as springfield, DataJsonPortal({"dataset": SHELBYVILLE}) as shelbyville:
        both = config(("springfield", springfield.url), ("shelbyville", shelbyville.url))
        assert CliRunner().invoke(cli, ["harvest", "--config", both, "--db", str(db)]).exit_code == 0
        written, warned = export(both)
        assert (written["datasets"], written["left_out"], warned) == (6, 0, "")
        without = config(("shelbyville", shelbyville.url))   # springfield taken out, not retired
        assert CliRunner().invoke(cli, ["harvest", "--config", without, "--db", str(db)]).exit_code == 0
        written, warned = export(without)
    assert (written["datasets"], written["left_out"]) == (2, 4)
    reason = "no contact email (none harvested; its portal is not in the config)"
    assert written["left_out_datasets"] == [{"uid": f"springfield:sp-{n}", "reasons": [reason]} for n in range(1, 5)]
    assert f"springfield (4 left out): not in {without}" in warned and "civicat retire" in warned
    assert CliRunner().invoke(cli, ["retire", "springfield", "--config", without, "--db", str(db)]).exit_code == 0
    written, warned = export(without)   # retired: removed, no longer in data.json, and nothing to say
    assert (written["datasets"], written["left_out"], warned) == (2, 0, "")


def test_an_exported_data_json_harvested_again_gives_the_same_datasets(tmp_path, http):
    """The round trip: a real Hub feed (Evian) and a real 2013 data.json (Salt Lake City), harvested,
    exported, and the export harvested by civicat's own dcat-us adapter: every dataset written comes
    back with its title, description, keywords, themes, dates, licence, landing page, coverage, period
    and distributions (a media type with parameters, "application/zip; charset=binary", is written as
    its type, so a download stays a download). What the export adds is the documented defaults only."""
    from catalog.store import Store
    from harvester.pipeline import harvest
    from tests.conftest import portal_config
    from tests.portals.dcat import DataJsonPortal
    require_fixtures()
    first = Store(tmp_path / "first.duckdb")
    with DataJsonPortal([], path="/unused") as portal:
        for name, path in (("evian", "dcat-us/evian-fr-arcgis-hub-data.json"),
                           ("slc", "dcat-us/socrata-pod-2013-08-28/data.slcgov.com.json")):
            portal.serve_json(f"/{name}/data.json", json.loads((FIXTURES / path).read_text()))
        assert harvest([portal_config(name, "dcat-us", f"{portal.url}/{name}/data.json", city="Evian" if
                                      name == "evian" else "Salt Lake City") for name in ("evian", "slc")],
                       first, http).ok
    first.close()
    defaults = {"evian": PortalDefaults(contact_email="sig@example.org"),
                "slc": PortalDefaults(contact_name="Open Data Team", contact_email="opendata@example.org")}
    report = export_data_json(tmp_path / "first.duckdb", tmp_path / "out", defaults)
    document = json.loads((tmp_path / "out" / "data.json").read_text())
    assert report.written == len(document["dataset"]) == 8 + 25
    again = Store(tmp_path / "again.duckdb")
    with DataJsonPortal(document) as portal:
        assert harvest([portal_config("again", "dcat-us", f"{portal.url}/data.json")], again, http).ok
    fields = ("identifier, title, description, keywords, themes, issued, modified, accrual_periodicity, license, "
              "access_level, landing_page, spatial, temporal_start, temporal_end")
    distributions = ("(SELECT list((x.title, x.format, x.media_type, x.download_url, x.access_url) ORDER BY x.position) "
                     "FROM distributions x WHERE x.dataset_uid = d.uid)")
    before = {r[0]: r for r in duckdb.connect(str(tmp_path / "first.duckdb"), read_only=True).execute(
        f"SELECT {fields}, {distributions}, publisher, portal_id FROM datasets d").fetchall()}
    after = {r[0]: r for r in again.con.execute(f"SELECT {fields}, {distributions}, publisher, contact_email "
                                                 "FROM datasets d").fetchall()}
    again.close()
    assert len(after) == report.written and set(after) <= set(before)
    for identifier, back in after.items():
        was = before[identifier]
        assert back[:2] + back[3:8] + back[9:-3] == was[:2] + was[3:8] + was[9:-3], identifier   # as the record had
        assert back[2] == (was[2] or was[1])                          # a description, else the title
        assert back[8] == (was[8] if was[8] and was[8].startswith("https://") else None)   # a licence given as a URL
        assert back[-3] == [(t, f, m.split(";")[0] if m else m, d, a) for t, f, m, d, a in was[-3] or []] or None
        assert back[-2] == (was[-2] or "Salt Lake City")              # the city where none was published
        assert back[-1] == ("sig@example.org" if was[-1] == "evian" else "opendata@example.org")
    parameters = [m for r in before.values() for _, _, m, d, _ in r[-3] or [] if m and ";" in m and d]
    assert parameters                                                 # (the case is in the fixture)


def test_an_open311_dataset_is_dated_by_its_pulled_requests(tmp_path):
    """An Open311 endpoint gives no modified date, so its dataset never reached data.json (DCAT-US 1.1
    requires one). Its requests say when each was made and last changed: the latest of them in its last
    records pull is the most recent date on which the dataset changed, as far as the pull saw (Boston's
    recorded requests: the last made 2020-01-18 00:03:41 UTC, after the last changed). Without a pull it
    is still left out, saying why; a pull that reads a later change moves it."""
    from tests.conftest import harvest_with_records
    from tests.harvester.portals.test_open311 import JSON_SERVICES
    from tests.portals.open311 import Open311Portal
    from tests.shared_fixtures import load_json

    dataset_validator, _ = validators()
    defaults = {"bos311": PortalDefaults(contact_email="311@boston.example.org")}
    uid = "bos311:service-requests"
    with Open311Portal(services=JSON_SERVICES, requests=load_json(
            "open311/boston-mayors24-requests-abandoned-vehicle-merged-pages.json")) as boston:
        db, result = harvest_with_records(tmp_path, "bos311", "open311", boston.url, ["service-requests"],
                                          with_records=False)
        assert result.exit_code == 0, result.output
        report = export_data_json(db, tmp_path / "none", defaults)
        assert (report.written, report.left_out) == (0, [{"uid": uid, "reasons": ["no modified date"]}])

        for night, (request, changed) in enumerate([(None, None), ("101003172470", "2020-02-03T10:15:00-05:00")]):
            if request:
                edited = next(r for r in boston.service_requests if r.get("service_request_id") == request)
                edited.update(status="closed", updated_datetime=changed)
            db, result = harvest_with_records(tmp_path, "bos311", "open311", boston.url, ["service-requests"])
            assert result.exit_code == 0, result.output
            report = export_data_json(db, tmp_path / f"night{night}", defaults)
            (written,) = json.loads((tmp_path / f"night{night}" / "data.json").read_text())["dataset"]
            assert report.written == 1 and errors_of(dataset_validator, written) == []
            assert written["modified"] == ("2020-01-18T00:03:41Z" if night == 0 else "2020-02-03T15:15:00Z")
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT modified FROM datasets WHERE uid = ?", [uid]).fetchone() == (None,)   # (the portal's)
    con.close()


def test_an_open311_dataset_is_dated_no_later_than_its_pull(tmp_path):
    """A request a server's clock or a typo stamps in the future (2099) was published as the dataset's last
    change: every request a pull reads was made and changed by the pull's end, so modified is that time at
    the latest (r42's point on e42's modified)."""
    from tests.conftest import harvest_with_records
    from tests.harvester.portals.test_open311 import JSON_SERVICES
    from tests.portals.open311 import Open311Portal
    from tests.shared_fixtures import load_json

    dataset_validator, _ = validators()
    defaults = {"bos311": PortalDefaults(contact_email="311@boston.example.org")}
    with Open311Portal(services=JSON_SERVICES, requests=load_json(
            "open311/boston-mayors24-requests-abandoned-vehicle-merged-pages.json")) as boston:
        edited = next(r for r in boston.service_requests if r.get("service_request_id") == "101003172470")
        edited.update(status="closed", updated_datetime="2099-02-03T10:15:00-05:00")
        before = datetime.now(UTC).replace(microsecond=0)
        db, result = harvest_with_records(tmp_path, "bos311", "open311", boston.url, ["service-requests"])
        after = datetime.now(UTC)
        assert result.exit_code == 0, result.output
    report = export_data_json(db, tmp_path / "out", defaults)
    (written,) = json.loads((tmp_path / "out" / "data.json").read_text())["dataset"]
    assert report.written == 1 and errors_of(dataset_validator, written) == []
    con = duckdb.connect(str(db), read_only=True)
    (pulled_at,) = con.execute("SELECT pulled_at FROM record_pulls WHERE dataset_uid = 'bos311:service-requests'"
                               ).fetchone()
    con.close()
    assert written["modified"] == pulled_at.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    assert before <= datetime.fromisoformat(written["modified"]) <= after
