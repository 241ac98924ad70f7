"""A harvest through proxies whose URLs hold a user name and password (HTTP_PROXY, HTTPS_PROXY,
ALL_PROXY=scheme://user:password@host:port), each failing its own way, over real sockets on
127.0.0.1: the password is in no message of the run (the command's output and report, its logs at
every level, `harvest_runs`, `harvest_errors`, `runs --errors`)."""
import contextlib
import json
import logging

import pytest
from click.testing import CliRunner

from bench.serve import self_signed_tls
from harvester.cli import cli
from tests.harvester.http.conftest import HttpProxy, answering_every_request
from tests.harvester.http.test_https_proxy import PROXY_VARIABLES
from tests.harvester.http.test_socks import SocksServer
from tests.harvester.test_cli import write_config

SECRET = "s3cr%t-pa55"   # (written %25 in the URLs: a password as a proxy's URL quotes it)
LOGIN = "civicat:s3cr%25t-pa55@"
HOSTS = ["a.invalid", "b.invalid"]


def _answered_407(line: bytes) -> bytes:
    """An HTTP proxy's 407 to every request (a CONNECT, an absolute URL's), its body quoting the
    request's line as some proxies do."""
    body = b"proxy login needed for " + line
    return (b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"proxy\"\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)


@contextlib.contextmanager
def _proxies(kind: str, refusing_port: int, tmp_path):
    """The environment's proxies for `kind`, each URL with LOGIN: a dict of variables."""
    if kind == "socks login refused":
        with SocksServer(users={"civicat": "another"}) as server:
            yield {"ALL_PROXY": f"socks5h://{LOGIN}127.0.0.1:{server.port}"}
    elif kind == "http proxy refusing":
        yield {"HTTP_PROXY": f"http://{LOGIN}127.0.0.1:{refusing_port}",
               "HTTPS_PROXY": f"http://{LOGIN}127.0.0.1:{refusing_port}"}
    elif kind == "http proxy answering 407":
        with answering_every_request(_answered_407) as (port, _):
            yield {"HTTP_PROXY": f"http://{LOGIN}127.0.0.1:{port}", "HTTPS_PROXY": f"http://{LOGIN}127.0.0.1:{port}"}
    else:   # an https proxy whose certificate is refused
        context = self_signed_tls(tmp_path)
        if context is None:
            pytest.skip("the openssl command is needed to make a certificate")
        with HttpProxy(context) as proxy:
            url = proxy.url.replace("https://", f"https://{LOGIN}")
            yield {"HTTP_PROXY": url, "HTTPS_PROXY": url}


@pytest.mark.parametrize("kind", ["socks login refused", "http proxy refusing", "http proxy answering 407",
                                  "https proxy's certificate refused"])
def test_a_proxy_s_password_is_in_no_message_of_a_run(tmp_path, monkeypatch, caplog, refusing_port, kind):
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CIVICAT_HTTP_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("CIVICAT_HTTP_REFUSED_SECONDS", "0.2")
    config = write_config(tmp_path, *[(host[0], "dcat-us", f"{scheme}://{host}/data.json")
                                      for host, scheme in zip(HOSTS, ["http", "https"])])
    db = str(tmp_path / "c.duckdb")
    caplog.set_level(logging.DEBUG)
    with _proxies(kind, refusing_port, tmp_path) as proxies:
        for name, value in proxies.items():
            monkeypatch.setenv(name, value)
        harvested = CliRunner().invoke(cli, ["-vv", "harvest", "--config", config, "--db", db, "--json"])
    assert harvested.exit_code == 1, harvested.output
    report = json.loads(harvested.stdout)
    assert [portal["status"] for portal in report["portals"]] == ["failed", "failed"]
    listed = CliRunner().invoke(cli, ["runs", "--db", db, "--errors", "--json"])
    assert listed.exit_code == 0, listed.output
    from catalog.store import Store
    store = Store(db)
    try:
        stored = store.con.execute("SELECT * FROM harvest_runs").fetchall() + \
            store.con.execute("SELECT * FROM harvest_errors").fetchall()
    finally:
        store.close()
    said = {"the command's output": harvested.output, "its logs": caplog.text, "runs --errors": listed.output,
            "harvest_runs, harvest_errors": repr(stored)}
    assert all(report["portals"][i]["error_message"] for i in range(2))   # (something said, and searched)
    for where, text in said.items():
        for secret in (SECRET, "s3cr%25t-pa55", "s3cr"):
            assert secret not in text, f"the proxy's password is in {where}: {text}"


# (the last two: a password with an '@' left unescaped, which urllib splits at the last '@'; one with a '/',
# where urllib ends the host: "civicat:s3cr" its host and port)
UNPARSED = [f"http://{LOGIN}127.0.0.1:99999", f"{LOGIN}[::1:3128", "http://civicat:s3cr@t-pa55@127.0.0.1:99999",
            "http://civicat:s3cr/t-pa55@127.0.0.1:3128"]


@pytest.mark.parametrize("proxy", UNPARSED)
def test_a_proxy_url_that_does_not_parse_stops_the_harvest_at_once_never_naming_its_password(tmp_path, monkeypatch,
                                                                                             caplog, proxy):
    """An HTTP proxy's URL requests cannot parse (a port out of range, a bracket not closed) failed
    every request of the night, each quoting it, its password too ("URL not valid (Failed to parse:
    http://civicat:...@127.0.0.1:99999)"), into harvest_runs and the logs. It stops the harvest
    before any request now, naming the variable and what is wrong, never the value."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy)
    config = write_config(tmp_path, ("a", "dcat-us", "https://a.invalid/data.json"))
    caplog.set_level(logging.DEBUG)
    harvested = CliRunner().invoke(cli, ["-vv", "harvest", "--config", config, "--db", str(tmp_path / "c.duckdb")])
    assert harvested.exit_code == 2, harvested.output
    assert "the proxy of environment variable HTTPS_PROXY is not valid: its host or port does not parse" \
        in harvested.output
    assert "s3cr" not in harvested.output + caplog.text and "pa55" not in harvested.output + caplog.text


@pytest.mark.parametrize("proxy", UNPARSED)
def test_a_proxy_url_that_does_not_parse_is_never_quoted_with_its_password_by_a_request(monkeypatch, proxy):
    """(A client made without from_env: a library caller's.) The request's error says what is wrong
    without the URL's user name and password (urllib3's quoted the URL whole, for a port out of range,
    and its host and port as it read them for a password with a '/', its user name and the password's
    start; requests' for a bracket not closed never did): the proxy's URL is checked as from_env
    checks it, at the first request through it, and refused at once."""
    from harvester.http import HttpError
    from tests.conftest import fast_client

    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy)
    with pytest.raises(HttpError, match=r"^the proxy's URL is not valid \(") as failed:
        fast_client(max_attempts=1).get_json("https://a.invalid/data.json")
    assert not any(part in str(failed.value) for part in ("s3cr", "pa55", "civicat")), str(failed.value)
