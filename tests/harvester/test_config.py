import pytest

from harvester.config import ConfigError, load_config

GOOD = """
[[portals]]
id = "chicago"
city = "Chicago"
kind = "socrata"
url = "https://data.cityofchicago.org/"
app_token_env = "SOCRATA_APP_TOKEN"
records = ["ijzp-q8t2"]
timeout = 30
max_concurrency = 2
deletion_grace_days = 3
requests_per_second = 5
max_minutes = 90

[[portals]]
id = "dc"
city = "Washington, DC"
kind = "dcat-us"
url = "https://opendata.dc.gov/api/feed/dcat-us/1.1.json"
publisher = "District of Columbia"
contact_email = "opendata@dc.gov"
"""


def write(tmp_path, text):
    path = tmp_path / "portals.toml"
    path.write_text(text)
    return path


def test_good_config_loads_every_key(tmp_path):
    config = load_config(write(tmp_path, GOOD))
    chicago, dc = config.portals
    assert chicago.id == "chicago" and chicago.kind == "socrata"
    assert chicago.url == "https://data.cityofchicago.org"  # trailing slash dropped
    assert chicago.records == ("ijzp-q8t2",) and chicago.timeout == 30.0 and chicago.max_concurrency == 2
    assert chicago.host == "data.cityofchicago.org" and chicago.deletion_grace_days == 3.0
    assert chicago.requests_per_second == 5.0 and dc.requests_per_second is None
    assert chicago.max_minutes == 90.0 and dc.max_minutes == 360.0   # six hours unless told
    assert dc.deletion_grace_days == 0.0   # deleted at the first complete listing without it
    assert dc.publisher == "District of Columbia" and dc.contact_email == "opendata@dc.gov"
    assert [p.id for p in config.select(["dc"])] == ["dc"]
    assert len(config.select([])) == 2


def test_shipped_g7_config_is_valid():
    from pathlib import Path

    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "g7.toml")
    cities = {p.city for p in config.portals}
    assert {"San Francisco", "New York", "Seattle", "Los Angeles", "Chicago", "Boston", "Washington, DC"} <= cities


@pytest.mark.parametrize("text, expected", [
    (GOOD.replace('kind = "socrata"', 'kind = "sokrata"'), ["portals[0]", "kind", "'sokrata'"]),
    (GOOD.replace('id = "dc"', 'id = "chicago"'), ["portals[1].id", "duplicate id 'chicago'"]),
    (GOOD.replace('url = "https://data.cityofchicago.org/"\n', ""), ["portals[0]", ".url", "missing"]),
    (GOOD.replace('url = "https://data.cityofchicago.org/"', 'url = "ftp://x"'), [".url", "'ftp://x'"]),
    # urlparse takes port 0, and every request to it then failed inside the harvest (exit 1, not 2)
    (GOOD.replace('url = "https://data.cityofchicago.org/"', 'url = "https://x.org:0/"'),
     [".url", "'https://x.org:0/'", "no valid port"]),
    (GOOD.replace("timeout = 30", "timeout = -1"), [".timeout", "-1"]),
    (GOOD.replace("max_concurrency = 2", 'max_concurrency = "2"'), [".max_concurrency", "'2'"]),
    (GOOD.replace('records = ["ijzp-q8t2"]', 'records = "ijzp-q8t2"'), [".records"]),
    (GOOD.replace('id = "chicago"', 'id = "Chicago City"'), [".id", "'Chicago City'", "slug"]),
    (GOOD.replace("timeout = 30", "timout = 30"), [".timout", "unknown key", "did you mean 'timeout'?"]),
    (GOOD.replace("records = ", "recrods = "), [".recrods", "did you mean 'records'?"]),
    (GOOD.replace("deletion_grace_days = 3", "deletion_grace_days = -1"), [".deletion_grace_days", "-1"]),
    (GOOD.replace("requests_per_second = 5", "requests_per_second = 0"), [".requests_per_second", "0"]),
    (GOOD.replace("max_minutes = 90", "max_minutes = 0"), [".max_minutes", "0"]),
    (GOOD.replace("max_minutes = 90", 'max_minutes = "90"'), [".max_minutes", "'90'"]),
    (GOOD.replace("max_minutes = 90", "records_max_rows = 0"), [".records_max_rows", "from 1 to", "got 0"]),
    (GOOD.replace("max_minutes = 90", "records_max_rows = 1e6"), [".records_max_rows", "got 1000000.0"]),
    (GOOD.replace("max_minutes = 90", "records_max_rows = true"), [".records_max_rows", "got True"]),
    (GOOD.replace('app_token_env = "SOCRATA_APP_TOKEN"', 'app_token_env = "my token"'), [".app_token_env"]),
    (GOOD.replace('contact_email = "opendata@dc.gov"', 'contact_email = "nobody"'), [".contact_email", "'nobody'"]),
    # a trailing line break passed the slug, domain and variable-name patterns (`$` matches before it)
    (GOOD.replace('id = "dc"', 'id = "dc\\n"'), ["portals[1]", ".id", "slug"]),
    (GOOD.replace('app_token_env = "SOCRATA_APP_TOKEN"', 'app_token_env = "SOCRATA_APP_TOKEN\\n"'),
     [".app_token_env"]),
    (GOOD.replace("max_minutes = 90", 'max_minutes = 90\ndomain = "data.cityofchicago.org\\n"'), [".domain"]),
    (GOOD.replace('contact_email = "opendata@dc.gov"', 'contact_email = "@"'), [".contact_email", "'@'"]),
    ("[[portals]]\nid = \"x\"\ncity = \n", ["invalid TOML", "line 3"]),
    ("title = 'x'\n", ["unknown top-level key 'title'"]),
    ("", ["no [[portals]]"]),
])
def test_bad_config_is_refused_naming_file_key_and_value(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    for part in expected:
        assert part in message


def test_missing_file_and_unknown_portal(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")
    config = load_config(write(tmp_path, GOOD))
    with pytest.raises(ConfigError, match="no portal with id 'boston'"):
        config.select(["boston"])


DC_URL = 'url = "https://opendata.dc.gov/api/feed/dcat-us/1.1.json"'
OPEN311 = """
[[portals]]
id = "chi311"
city = "Chicago"
kind = "open311"
url = "http://311api.cityofchicago.org/open311/v2"
timezone = "America/Chicago"
"""


def test_an_open311_portal_takes_a_time_zone(tmp_path):
    chicago, = load_config(write(tmp_path, OPEN311)).portals
    assert chicago.timezone == "America/Chicago"
    assert load_config(write(tmp_path, GOOD)).portals[0].timezone is None   # (UTC, as GeoReport's `…Z` dates)


@pytest.mark.parametrize("text, expected", [
    # accepted, then every request failed (InvalidURL) after the harvest had begun: exit 1, not 2
    (GOOD.replace('url = "https://data.cityofchicago.org/"', 'url = "https://data.city of chicago.org"'),
     ["portals[0]", ".url", "'https://data.city of chicago.org'", "space"]),
    (GOOD.replace('url = "https://data.cityofchicago.org/"', 'url = "https://data.cityofchicago.org:99999"'),
     ["portals[0]", ".url", ":99999'", "port"]),
    # keys only the socrata adapter reads were taken and ignored on any other kind
    (GOOD.replace(DC_URL, DC_URL + '\ndomain = "opendata.dc.gov"'), ["portals[1] (id 'dc').domain", "socrata"]),
    (GOOD.replace(DC_URL, DC_URL + '\napp_token_env = "DC_TOKEN"'), ["portals[1] (id 'dc').app_token_env", "socrata"]),
    # the zone of an Open311 server's times: a name zoneinfo does not know would fail the pull, not the config
    (GOOD.replace(DC_URL, DC_URL + '\ntimezone = "America/New_York"'), ["portals[1] (id 'dc').timezone", "open311"]),
    (OPEN311.replace("America/Chicago", "America/Chicgo"),
     ["portals[0] (id 'chi311').timezone", "'America/Chicgo' is no time zone", "IANA"]),
    (OPEN311.replace('"America/Chicago"', '"../../etc/passwd"'), ["portals[0] (id 'chi311').timezone", "'../../etc/passwd'"]),
    (OPEN311.replace('"America/Chicago"', "-6"), ["portals[0] (id 'chi311').timezone", "-6"]),
    ('portals = "chicago"\n', ["portals", "'chicago'", "[[portals]]"]),
    # a base url's query or fragment landed in the middle of every address ({url}/api/…): the harvest
    # asked `…/socrata?x=1/api/catalog/v1&domains=…` and failed on its 404 (exit 1, not 2)
    (GOOD.replace('url = "https://data.cityofchicago.org/"', 'url = "https://data.cityofchicago.org/?x=1"'),
     ["portals[0] (id 'chicago').url", "'https://data.cityofchicago.org/?x=1'", "no query"]),
    (GOOD.replace('url = "https://data.cityofchicago.org/"', 'url = "https://data.cityofchicago.org/#data"'),
     ["portals[0] (id 'chicago').url", "#data", "fragment"]),
    (OPEN311.replace("/open311/v2", "/open311/v2?"), ["portals[0] (id 'chi311').url", "no query"]),
])
def test_a_config_value_no_request_could_use_is_refused_before_any(tmp_path, text, expected):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    for part in expected:
        assert part in str(info.value)


def test_a_data_json_address_keeps_its_query(tmp_path):
    """(A guard: a dcat-us url is the document's own address, asked as it is.)"""
    dc = load_config(write(tmp_path, GOOD.replace(DC_URL, DC_URL[:-1] + '?format=json"'))).portals[1]
    assert dc.url == "https://opendata.dc.gov/api/feed/dcat-us/1.1.json?format=json"


@pytest.mark.parametrize("url", ["https://opendata:s3cret@data.cityofchicago.org", "https://s3cret@data.cityofchicago.org",
                                 "ftp://opendata:s3cret@data.cityofchicago.org"])
def test_a_url_holding_a_password_is_refused_without_showing_it(tmp_path, url):
    """requests sent a url's `user:password@` as Basic auth, and the url went into every message about
    its requests: the harvest's log, `harvest_runs.error_message`, `civicat runs`. Refused before any
    request, the secret in no message."""
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, GOOD.replace('"https://data.cityofchicago.org/"', f'"{url}"')))
    message = str(info.value)
    assert "portals[0] (id 'chicago').url" in message and "user name or password" in message, message
    assert "s3cret" not in message and "…@data.cityofchicago.org" in message, message


def test_records_max_rows_defaults_to_a_hundred_million_and_is_read_per_portal(tmp_path):
    chicago, dc = load_config(write(tmp_path, GOOD.replace("max_minutes = 90", "records_max_rows = 250_000_000"))).portals
    assert (chicago.records_max_rows, dc.records_max_rows) == (250_000_000, 100_000_000)


def _one_portal(tmp_path, kind, url, extra='app_token_env = "CITY_KEY"\n'):
    return load_config(write(tmp_path, f'[[portals]]\nid = "city"\ncity = "City"\nkind = "{kind}"\nurl = "{url}"\n'
                                       f'{extra}')).portals[0]


@pytest.mark.parametrize("kind", ["socrata", "ckan", "opendatasoft", "arcgis-hub"])
def test_every_kind_whose_api_reads_a_key_from_a_header_takes_app_token_env(tmp_path, kind):
    """Socrata's alone until session 41: another kind's app_token_env was refused."""
    assert _one_portal(tmp_path, kind, "https://data.city.example").app_token_env == "CITY_KEY"
    assert _one_portal(tmp_path, kind, "http://127.0.0.1:8080").app_token_env == "CITY_KEY"   # (no network on the way)
    assert _one_portal(tmp_path, kind, "http://localhost:8080").app_token_env == "CITY_KEY"


KEYED = 'app_token_env = "CITY_KEY"\n'


@pytest.mark.parametrize("kind, url, extra, said", [
    ("open311", "https://311.city.example/open311/v2", KEYED, ".app_token_env: open311 portals take no key (kinds that "
                                                              "do: socrata, ckan, opendatasoft, arcgis-hub)"),
    ("dcat-us", "https://data.city.example/data.json", KEYED, ".app_token_env: dcat-us portals take no key"),
    # (a key in clear crosses every network on the way: Socrata's token was sent over http until session 41)
    ("socrata", "http://data.city.example", KEYED, ".app_token_env: 'http://data.city.example' is plain http: the key "
                                                   "would cross the network in clear (an https url, or none)"),
    ("ckan", "http://10.0.0.7", KEYED, ".app_token_env: 'http://10.0.0.7' is plain http"),
    # a secret in the url: the refusal said only that civicat sends none in a URL (and that a Socrata token
    # goes in a header), not what a CKAN or ArcGIS portal needing a key should do
    ("ckan", "https://data.city.example?api_key=s3cret", "", "put the key in an environment variable and name it with "
                                                             "app_token_env: civicat sends it in the kind's header"),
    ("arcgis-hub", "https://user:s3cret@hub.city.example", "", "X-Esri-Authorization: Bearer"),
    ("dcat-us", "https://data.city.example/data.json?token=s3cret", "",
     "dcat-us portals take no key (their API reads none from a header): only public data is harvested"),    # (escaped: session 43, accepted, the key quoted in errors and stored in the datasets' links)
    ("dcat-us", "https://data.city.example/data.json?token%3Ds3cret", "", "has a secret in its query (token)"),
    ("dcat-us", "https://proxy.city.example/get?u=https%3A%2F%2Fdata.city.example%2Fdata.json%3Fapi_key%3Ds3cret", "",
     "has a secret in its query (api_key)"),
    # (in its fragment, and escaped twice: session 44, accepted, the key quoted in errors and logs; and a key escaped
    # in its path was quoted in the refusal itself, which showed the url less its query)
    ("dcat-us", "https://data.city.example/data.json#access_token=s3cret", "", "has a secret in its fragment (access_token)"),
    ("dcat-us", "https://data.city.example/data.json?next=%252Ff%253Ftoken%253Ds3cret", "", "has a secret in its query (token)"),
    ("dcat-us", "https://proxy.city.example/get/https%3A%2F%2Fdata.city.example%2Fdata.json%3Fapi_key%3Ds3cret", "",
     "'https://proxy.city.example/get/https%3A%2F%2Fdata.city.example%2Fdata.json%3Fapi_key%3DREDACTED' has a secret"),
])
def test_a_key_where_none_may_go_is_refused_saying_why_and_what_to_do(tmp_path, kind, url, extra, said):
    with pytest.raises(ConfigError) as refused:
        _one_portal(tmp_path, kind, url, extra=extra)
    assert "portals[0] (id 'city')." in str(refused.value) and said in str(refused.value)
    assert "s3cret" not in str(refused.value)


def test_a_portals_keys_name_other_hosts_in_lower_case_each_with_its_variable(tmp_path):
    """Session 42: a key for a host other than the portal's (an ArcGIS Hub's layers on services1.arcgis.com)."""
    portal = _one_portal(tmp_path, "arcgis-hub", "https://hub.city.example",
                         '[portals.keys]\n"services1.arcgis.com" = "LAYERS_KEY"\n"Services2.ArcGIS.com." = "LAYERS_KEY"\n'
                         '"localhost:8443" = "LOCAL_KEY"\n"[::1]:9443" = "LOCAL_KEY"\n')
    assert portal.keys == (("services1.arcgis.com", "LAYERS_KEY"), ("services2.arcgis.com", "LAYERS_KEY"),
                           ("localhost:8443", "LOCAL_KEY"), ("[::1]:9443", "LOCAL_KEY"))
    # (plain http's port on this machine: a key goes there)
    assert _one_portal(tmp_path, "arcgis-hub", "https://hub.city.example",
                       '[portals.keys]\n"127.0.0.1:80" = "LOCAL_KEY"\n').keys == (("127.0.0.1:80", "LOCAL_KEY"),)
    assert portal.app_token_env is None


@pytest.mark.parametrize("kind, keys, said", [
    ("dcat-us", '"services1.arcgis.com" = "K"', ".keys: dcat-us portals take no key"),
    ("arcgis-hub", '"services 1.arcgis.com" = "K"', ".keys.'services 1.arcgis.com': is no host a key can go to"),
    ("arcgis-hub", '"https://services1.arcgis.com" = "K"', ".keys.'https://services1.arcgis.com': is no host"),
    ("arcgis-hub", '"services1.arcgis.com/x" = "K"', "is no host a key can go to"),
    ("arcgis-hub", '"h.example:0" = "K"', "is no host a key can go to"),
    ("arcgis-hub", '"h.example:70000" = "K"', "is no host a key can go to"),
    ("arcgis-hub", '"[not:an:ip]" = "K"', "is no host a key can go to"),
    ("arcgis-hub", '"user@h.example" = "K"', "is no host a key can go to"),
    ("arcgis-hub", '"services1.arcgis.com" = "my key"', ".keys.'services1.arcgis.com': must name an environment "
                                                        "variable, got 'my key'"),
    ("arcgis-hub", '"services1.arcgis.com" = 7', "must name an environment variable, got 7"),
    ("arcgis-hub", '"hub.city.example" = "K"', ".keys.'hub.city.example': is the portal's own host: its key is "
                                               "named by app_token_env"),
    ("arcgis-hub", '"HUB.city.example:443" = "K"', "is the portal's own host"),
    ("arcgis-hub", '"a.example" = "K"\n"A.example" = "J"', ".keys.'A.example': names the host 'a.example' a second time"),
    # (session 43: accepted, and the key never sent, nothing said)
    ("arcgis-hub", '"gis.city.example:80" = "K"', ".keys.'gis.city.example:80': is plain http's port: a key is never sent"),
])
def test_a_portals_keys_that_are_wrong_are_refused_before_any_request(tmp_path, kind, keys, said):
    url = "https://data.city.example/data.json" if kind == "dcat-us" else "https://hub.city.example"
    with pytest.raises(ConfigError) as refused:
        _one_portal(tmp_path, kind, url, f"[portals.keys]\n{keys}\n")
    assert said in str(refused.value), str(refused.value)


@pytest.mark.parametrize("table", ['keys = "services1.arcgis.com"', "keys = {}", 'keys = ["K"]'])
def test_keys_that_are_no_table_of_hosts_are_refused(tmp_path, table):
    with pytest.raises(ConfigError) as refused:
        _one_portal(tmp_path, "arcgis-hub", "https://hub.city.example", table + "\n")
    assert ".keys: must be a table of hosts and the environment variables holding their keys" in str(refused.value)


def test_a_hosts_key_no_header_can_carry_is_named_with_its_portal(tmp_path):
    from harvester.config import unusable_keys

    portal = _one_portal(tmp_path, "arcgis-hub", "https://hub.city.example",
                         'app_token_env = "HUB_KEY"\n[portals.keys]\n"services1.arcgis.com" = "LAYERS_KEY"\n')
    assert unusable_keys([portal], {"HUB_KEY": "ok-1234", "LAYERS_KEY": "two\nlines"}) == [
        "environment variable LAYERS_KEY holds a line break, a space or a control character inside it, which no key "
        "holds (a file of two lines?): the key of city (keys); set it to the key alone"]
    assert unusable_keys([portal], {"HUB_KEY": "ok-1234", "LAYERS_KEY": "ok-5678\n"}) == []
