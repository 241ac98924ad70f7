"""The run's warnings said once (an app token variable not set, for every Socrata portal naming
it), and `records`' check of the config entry a catalogue was harvested with, for Open311 portals
too (no listing pages: their dataset's raw entry names the endpoint)."""
import json
import logging

import pytest
from click.testing import CliRunner

from harvester.cli import cli
from tests.harvester.portals.test_open311 import JSON_SERVICES
from tests.portals.open311 import Open311Portal
from tests.portals.socrata import SocrataPortal, SodaTable, discovery_entry

DOMAIN = "data.example.org"
VIEWS = [{"id": "abcd-0001", "name": "Calls", "category": "Public Safety",
          "columns": [{"fieldName": "n", "dataTypeName": "number"}]}]


def invoke(*args):
    return CliRunner().invoke(cli, list(args), prog_name="civicat")


@pytest.fixture
def socrata():
    with SocrataPortal([discovery_entry(v, DOMAIN) for v in VIEWS], domain=DOMAIN,
                       records={"abcd-0001": SodaTable.from_rows([{"n": str(i)} for i in range(5)])}) as portal:
        yield portal


def socrata_entries(url, ids_and_variables):
    return "".join(f'[[portals]]\nid = "{portal_id}"\ncity = "{portal_id.title()}"\nkind = "socrata"\nurl = "{url}"\n'
                   f'domain = "{DOMAIN}"\n' + (f'app_token_env = "{variable}"\n' if variable else "") + "\n"
                   for portal_id, variable in ids_and_variables)


def token_warnings(caplog, *command: str) -> list[str]:
    """The app token warnings of `command` (exit 0), sorted."""
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        result = invoke(*command)
    assert result.exit_code == 0, result.output
    return sorted(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "app token" in r.getMessage())


def test_an_app_token_variable_not_set_is_warned_of_once_a_run_naming_its_portals(tmp_path, socrata, monkeypatch,
                                                                                  caplog):
    """On main: one warning a portal ("sf: environment variable SOCRATA_APP_TOKEN is not set; ..."),
    five in the default config's harvest."""
    monkeypatch.delenv("CIVICAT_TEST_TOKEN_A", raising=False)
    monkeypatch.delenv("CIVICAT_TEST_TOKEN_B", raising=False)
    monkeypatch.setenv("CIVICAT_TEST_TOKEN_SET", "tok-1234567890")
    config = tmp_path / "portals.toml"
    config.write_text(socrata_entries(socrata.url, [("sf", "CIVICAT_TEST_TOKEN_A"), ("nyc", "CIVICAT_TEST_TOKEN_A"),
                                                    ("la", "CIVICAT_TEST_TOKEN_A"), ("sea", "CIVICAT_TEST_TOKEN_B"),
                                                    ("chi", "CIVICAT_TEST_TOKEN_SET"), ("bos", None)]))
    db = tmp_path / "c.duckdb"
    assert token_warnings(caplog, "harvest", "--config", str(config), "--db", str(db), "--workers", "3") == [
        "environment variable CIVICAT_TEST_TOKEN_A is not set: 3 portals use it (sf, nyc, la); their requests go "
        "without an app token (Socrata throttles such requests)",
        "environment variable CIVICAT_TEST_TOKEN_B is not set: 1 portal uses it (sea); its requests go without an "
        "app token (Socrata throttles such requests)"]
    # (the token set is sent; the portals without one are still harvested)
    assert any(headers.get("X-App-Token") == "tok-1234567890" for _, _, headers in socrata.requests)
    assert [r["status"] for r in json.loads(invoke("runs", "--db", str(db), "--json").output)] == ["ok"] * 6

    # a records pull is a run too: said once, for the portals it pulls from
    assert token_warnings(caplog, "records", "sf:abcd-0001", "nyc:abcd-0001", "sea:abcd-0001", "--config", str(config),
                          "--db", str(db), "--json") == [
        "environment variable CIVICAT_TEST_TOKEN_A is not set: 2 portals use it (sf, nyc); their requests go without "
        "an app token (Socrata throttles such requests)",
        "environment variable CIVICAT_TEST_TOKEN_B is not set: 1 portal uses it (sea); its requests go without an "
        "app token (Socrata throttles such requests)"]


def test_more_portals_than_are_named_are_counted(tmp_path, socrata, monkeypatch, caplog):
    monkeypatch.delenv("CIVICAT_TEST_TOKEN_A", raising=False)
    config = tmp_path / "portals.toml"
    ids = [f"city{n:02d}" for n in range(12)]
    config.write_text(socrata_entries(socrata.url, [(portal_id, "CIVICAT_TEST_TOKEN_A") for portal_id in ids]))
    assert token_warnings(caplog, "harvest", "--config", str(config), "--db", str(tmp_path / "c.duckdb"),
                          "--workers", "4") == [
        f"environment variable CIVICAT_TEST_TOKEN_A is not set: 12 portals use it ({', '.join(ids[:10])} and 2 more); "
        "their requests go without an app token (Socrata throttles such requests)"]


@pytest.mark.parametrize("key, why", [("tok-1234\ntok-5678", "holds a line break, a space or a control character"),
                                      ("tok 1234", "holds a line break, a space or a control character"),
                                      ("tok-\u20ac1234", "holds a character beyond Latin-1")])
def test_a_key_no_header_can_carry_is_refused_naming_its_variable_before_any_request(tmp_path, socrata, monkeypatch,
                                                                                   key, why):
    """Session 41 (r41): a key of two lines (a secrets file's) failed every request of its portal as
    "connection failed: InvalidHeader", counted against the host, naming no variable. Only the keys of the
    portals a command asks are checked."""
    config = tmp_path / "portals.toml"
    config.write_text(socrata_entries(socrata.url, [("sf", "CIVICAT_TEST_TOKEN_A"), ("nyc", "CIVICAT_TEST_TOKEN_A"),
                                                    ("bos", "CIVICAT_TEST_TOKEN_B")]))
    db = tmp_path / "c.duckdb"
    monkeypatch.setenv("CIVICAT_TEST_TOKEN_A", "\ntok-1234567890\n")   # (a line break around it: stripped, sent)
    monkeypatch.setenv("CIVICAT_TEST_TOKEN_B", "tok-0987654321")
    assert invoke("harvest", "--config", str(config), "--db", str(db)).exit_code == 0
    assert any(headers.get("X-App-Token") == "tok-1234567890" for _, _, headers in socrata.requests)

    monkeypatch.setenv("CIVICAT_TEST_TOKEN_A", key + "\n")
    socrata.clear_log()
    for command in (["harvest"], ["harvest", "--portal", "nyc"], ["records", "sf:abcd-0001"]):
        result = invoke(*command, "--config", str(config), "--db", str(db))
        assert result.exit_code == 2, result.output
        said = " ".join(result.output.split())
        named = {"harvest": "sf, nyc", "nyc": "nyc", "sf:abcd-0001": "sf"}[command[-1]]
        assert f"environment variable CIVICAT_TEST_TOKEN_A {why}" in said, said
        assert f"the key of {named} (app_token_env); set it to the key alone" in said, said
        assert key not in result.output and "tok-" not in result.output   # (the key itself never shown)
    assert socrata.requests == []
    # the portals whose keys are right are harvested and pulled as before
    assert invoke("harvest", "--portal", "bos", "--config", str(config), "--db", str(db)).exit_code == 0
    assert invoke("records", "bos:abcd-0001", "--config", str(config), "--db", str(db)).exit_code == 0


# -- records of an Open311 portal: the config entry it was harvested with -------------------

REQUESTS = [{"service_request_id": f"r-{n}", "status": "open", "service_code": JSON_SERVICES[0]["service_code"],
             "requested_datetime": f"2026-11-{1 + n:02d}T08:00:00Z"} for n in range(5)]


@pytest.fixture
def endpoints():
    """The endpoint a catalogue was harvested from (the demo's) and another of the same id (live)."""
    with Open311Portal(services=JSON_SERVICES, requests=REQUESTS) as demo, \
            Open311Portal(services=JSON_SERVICES, requests=REQUESTS) as live:
        yield demo, live


def open311_entry(portal_id, url, city="Boston"):
    return f'[[portals]]\nid = "{portal_id}"\ncity = "{city}"\nkind = "open311"\nurl = "{url}"\n'


def test_records_of_an_open311_portal_harvested_from_another_endpoint_are_refused_naming_the_config(
        tmp_path, endpoints):
    """On main: Open311 portals have no listing pages, so `records` never checked them: the demo's
    catalogue with the default config pulled live Boston's service requests into it."""
    demo, live = endpoints
    (tmp_path / "data").mkdir()
    demo_config = tmp_path / "data" / "demo.toml"
    demo_config.write_text(open311_entry("bos311", demo.url))
    live_config = tmp_path / "g7.toml"
    live_config.write_text(open311_entry("bos311", live.url))
    db = tmp_path / "data" / "demo.duckdb"
    assert invoke("harvest", "--config", str(demo_config), "--db", str(db)).exit_code == 0
    live_hits, runs = sum(live.hits.values()), invoke("runs", "--db", str(db), "--json").output

    result = invoke("records", "bos311:service-requests", "--config", str(live_config), "--db", str(db))
    assert result.exit_code == 2, result.output
    assert result.output == (
        f"Error: {db} holds datasets of bos311 listed from another address, domain or city than {live_config} gives "
        f"(bos311 is {live.url}): records pulled from there would be another portal's; harvested with {demo_config}? "
        f"pass it: --config {demo_config}\n")
    assert sum(live.hits.values()) == live_hits
    assert invoke("runs", "--db", str(db), "--json").output == runs   # (no run recorded)

    renamed = tmp_path / "renamed.toml"   # the same endpoint under another city: the entry is another too
    renamed.write_text(open311_entry("bos311", demo.url, city="Boston, MA"))
    result = invoke("records", "bos311:service-requests", "--config", str(renamed), "--db", str(db))
    assert result.exit_code == 2 and "listed from another address, domain or city" in result.output, result.output


def test_records_of_an_open311_portal_with_the_config_it_was_harvested_with_are_pulled(tmp_path, endpoints):
    """A guard (passes on main): the entry it was harvested with pulls, from that endpoint."""
    demo, _ = endpoints
    config = tmp_path / "portals.toml"
    config.write_text(open311_entry("bos311", demo.url))
    db = tmp_path / "c.duckdb"
    assert invoke("harvest", "--config", str(config), "--db", str(db)).exit_code == 0
    result = invoke("records", "bos311:service-requests", "--config", str(config), "--db", str(db), "--json")
    assert result.exit_code == 0, result.output
    assert [(r["uid"], r["status"], r["rows"]) for r in json.loads(result.output)] == [
        ("bos311:service-requests", "ok", 5)]
    assert any(path == "/requests.json" for path, _, _ in demo.requests)
