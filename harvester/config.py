"""Portal list (TOML) loading and validation.

A bad config is refused here, before any request, with the file, the key and the
offending value named: a nightly job must fail loudly on a typo, not harvest half.
"""
from __future__ import annotations

import difflib
import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from catalog.links import redacted, secrets_of

KINDS = ("socrata", "ckan", "dcat-us", "arcgis-hub", "opendatasoft", "open311")
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
DOMAIN_PATTERN = re.compile(r"^[A-Za-z0-9.-]+(:\d+)?$")
ENV_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+")   # one @ with something either side; data.json checks the rest
# a host a key of `keys` goes to: a name (`services1.arcgis.com`) or an address (`127.0.0.1`, `[::1]`), and
# a port where it is not the scheme's own (`localhost:8443`)
KEY_HOST_PATTERN = re.compile(r"(?P<host>[a-z0-9][a-z0-9.-]{0,252}|\[[0-9a-f:.]{2,45}\])(?::(?P<port>\d{1,5}))?")

DEFAULT_RECORDS_MAX_ROWS = 100_000_000
MOST_RECORDS_MAX_ROWS = 10 ** 12

REQUIRED_KEYS = ("id", "city", "kind", "url")
OPTIONAL_KEYS = (
    "app_token_env", "records", "timeout", "max_concurrency", "domain",
    "publisher", "contact_name", "contact_email", "deletion_grace_days", "requests_per_second", "max_minutes",
    "records_max_minutes", "records_max_rows", "timezone", "keys",
)
SOCRATA_ONLY_KEYS = ("domain",)
OPEN311_ONLY_KEYS = ("timezone",)
# the header each kind's API reads a key from, and how the key is written in it (the key named by
# `app_token_env`, read from the environment): Socrata's app token; a CKAN API token (CKAN 2.9+); an
# OpenDataSoft API key; an ArcGIS token (X-Esri-Authorization is read by web-tier secured servers, where
# Authorization is the server's own login). A data.json is a file, and Open311 (GeoReport v2) takes
# its api_key in the query, for POSTs only: no key for either
KEY_HEADERS = {
    "socrata": ("X-App-Token", "{}"),
    "ckan": ("Authorization", "{}"),
    "opendatasoft": ("Authorization", "Apikey {}"),
    "arcgis-hub": ("X-Esri-Authorization", "Bearer {}"),
}
# what to do instead of a secret in a url's query, said by its refusal
KEY_INSTEAD = ("put the key in an environment variable and name it with app_token_env: civicat sends it in the "
               "kind's header (Socrata X-App-Token, CKAN Authorization, OpenDataSoft Authorization: Apikey, ArcGIS "
               "X-Esri-Authorization: Bearer), to the portal's own host over https only")


class ConfigError(Exception):
    """The config file cannot be used; the message names file, key and value."""


@dataclass(frozen=True)
class PortalConfig:
    id: str
    city: str
    kind: str
    url: str
    app_token_env: str | None = None
    records: tuple[str, ...] = ()
    timeout: float = 60.0
    max_concurrency: int = 4
    domain: str | None = None
    publisher: str | None = None
    contact_name: str | None = None
    contact_email: str | None = None
    deletion_grace_days: float = 0.0   # missing from complete listings this long before deleted_at
    requests_per_second: float | None = None   # the portal's published rate limit, per host
    # the portal's catalogue harvest (listing, lookups, storing; not records pulls) fails past this: every
    # request is bounded, but a portal answering each one slowly (a Retry-After hold before every page)
    # must not hold the night's cron job for days
    max_minutes: float = 360.0
    # each records pull of the portal fails past this (a server trickling its pages), its previous records kept
    records_max_minutes: float = 360.0
    # each records pull of the portal fails past this many rows (RowsOverBudget), or at once when the portal
    # counts more: the bound of a pull whose count lies high (500,000,000 rows counted and served for ever),
    # which no other count of the same server checks. Over twice the largest civic table commonly pulled (NYC's
    # 311 requests since 2010, about 40 million rows); a taxi-trip table of 200 million raises it
    records_max_rows: int = DEFAULT_RECORDS_MAX_ROWS
    # open311: the zone of the server's times that carry none (an IANA name), and of the dates civicat sends
    timezone: str | None = None
    # the keys of hosts other than the portal's own: (host, or host:port, in lower case; the variable holding
    # its key), each sent in the kind's header to that host alone, over https or to this machine (an ArcGIS
    # Hub's FeatureServer layers on services*.arcgis.com, which the hub's own key never reaches)
    keys: tuple[tuple[str, str], ...] = ()

    @property
    def host(self) -> str:
        return urlparse(self.url).netloc


@dataclass(frozen=True)
class Config:
    path: Path
    portals: tuple[PortalConfig, ...] = field(default_factory=tuple)

    def select(self, ids: list[str] | tuple[str, ...]) -> list[PortalConfig]:
        """The named portals (all when none named); unknown ids are a config error."""
        if not ids:
            return list(self.portals)
        known = {p.id: p for p in self.portals}
        unknown = [i for i in ids if i not in known]
        if unknown:
            near = [match for u in unknown for match in _near_ids(u, list(known))]
            guess = f"did you mean {' or '.join(map(repr, dict.fromkeys(near)))}? " if near else ""
            raise ConfigError(
                f"{self.path}: no portal with id {', '.join(repr(u) for u in unknown)} "
                f"({guess}known: {', '.join(known) or 'none'})"
            )
        return [known[i] for i in dict.fromkeys(ids)]  # each portal once, in the order named


def _near_ids(given: str, known: list[str]) -> list[str]:
    """The ids `given` may have meant: the same in another case (`--portal SF`; ids are lowercase),
    else the closest spelling."""
    same = [i for i in known if i == given.lower()]
    return same or difflib.get_close_matches(given.lower(), known, n=1)


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from exc
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc

    unknown_top = sorted(set(doc) - {"portals"})
    if unknown_top:
        raise ConfigError(f"{path}: unknown top-level key {unknown_top[0]!r} (expected [[portals]] tables)")
    entries = doc.get("portals")
    if entries is not None and not isinstance(entries, list):
        raise ConfigError(f"{path}: portals: expected [[portals]] tables, got {entries!r}")
    if not entries:
        raise ConfigError(f"{path}: no [[portals]] entries")

    portals: list[PortalConfig] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        portal = _portal(path, index, entry)
        if portal.id in seen:
            raise ConfigError(
                f"{path}: portals[{index}].id: duplicate id {portal.id!r} "
                f"(already used by portals[{seen[portal.id]}])"
            )
        seen[portal.id] = index
        portals.append(portal)
    return Config(path=path, portals=tuple(portals))


def _portal(path: Path, index: int, entry: object) -> PortalConfig:
    where = f"{path}: portals[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a table, got {entry!r}")
    if isinstance(entry.get("id"), str):
        where = f"{path}: portals[{index}] (id {entry['id']!r})"

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{where}.{key}: {problem}")

    unknown = sorted(set(entry) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        near = difflib.get_close_matches(unknown[0], REQUIRED_KEYS + OPTIONAL_KEYS, n=1)
        guess = f"did you mean {near[0]!r}? " if near else ""
        raise fail(unknown[0], f"unknown key ({guess}allowed: {', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)})")
    for key in REQUIRED_KEYS:
        if key not in entry:
            raise fail(key, "missing required key")
        if not isinstance(entry[key], str) or not entry[key].strip():
            raise fail(key, f"must be a non-empty string, got {entry[key]!r}")

    if not ID_PATTERN.fullmatch(entry["id"]):
        raise fail("id", f"{entry['id']!r} is not a slug (lowercase letters, digits, '-' or '_', starting with a "
                         "letter or digit; at most 63 characters)")
    if entry["kind"] not in KINDS:
        raise fail("kind", f"{entry['kind']!r} is not one of {', '.join(KINDS)}")
    url = entry["url"].strip()
    parsed = urlparse(url)
    # requests would send a url's user and password as Basic auth, and the url is in every message,
    # log line and catalogue row about its requests: refused unechoed (civicat's one portal credential
    # is a key read from the environment, sent in a header: KEY_HEADERS)
    instead = KEY_INSTEAD if entry["kind"] in KEY_HEADERS else \
        f"{entry['kind']} portals take no key (their API reads none from a header): only public data is harvested"
    if "@" in parsed.netloc:
        shown = url.replace(parsed.netloc, "…@" + parsed.netloc.rpartition("@")[2], 1)
        raise fail("url", f"{shown!r} holds a user name or password before its host, which would be shown in every "
                          "message about its requests, stored in the catalogue and published by an export: "
                          f"{instead}")
    # (a portal's URL is quoted in errors and logs and built into the links stored with its datasets: a
    # CKAN's landing pages, which an export publishes)
    secrets = secrets_of(url)   # (its escaped ones too: `?token%3D…`, a link nested in its query; its fragment's)
    if secrets:
        # (shown less its query and fragment, and a key its path escapes redacted: `…/go/https%3A…%3Ftoken%3D…`)
        shown = redacted(re.split(r"[?#]", url, maxsplit=1)[0])
        part = "query" if secrets_of(url.partition("#")[0]) else "fragment"
        raise fail("url", f"{shown!r} has a secret in its {part} ({', '.join(sorted(secrets))}), "
                          "which would be quoted in errors and logs and stored in the links of the portal's "
                          f"datasets, and published by an export: civicat sends no secret in a URL; {instead}")
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise fail("url", f"{url!r} is not an http(s) URL")
    # requests refuses these at the first request, after the harvest has begun (exit 1, not 2)
    if any(c.isspace() or not c.isprintable() for c in parsed.netloc):
        raise fail("url", f"{url!r}: its host {parsed.netloc!r} holds a space or a control character")
    try:
        port = parsed.port
    except ValueError as exc:
        raise fail("url", f"{url!r} has no valid port ({exc})") from None
    if port == 0:   # (urlparse takes it; no server listens there: every request would fail)
        raise fail("url", f"{url!r} has no valid port (0 is none a server listens on)")
    # every kind but dcat-us adds its API's paths to `url` ({url}/api/catalog/v1?…): a query or fragment
    # would land in the middle of each address, every request failing after the harvest had begun (a
    # 404 or the site's HTML page, exit 1); a data.json address is asked as it is, its query with it
    if entry["kind"] != "dcat-us" and ("?" in url or "#" in url):
        raise fail("url", f"{url!r}: a {entry['kind']} url is the base its API's paths are added to, so it "
                          "takes no query ('?…') or fragment ('#…')")
    # only the socrata adapter reads them: on another kind they would be ignored without a word
    for key in SOCRATA_ONLY_KEYS:
        if key in entry and entry["kind"] != "socrata":
            raise fail(key, f"applies to kind socrata only (this portal's kind is {entry['kind']})")
    for key in OPEN311_ONLY_KEYS:
        if key in entry and entry["kind"] != "open311":
            raise fail(key, f"applies to kind open311 only (this portal's kind is {entry['kind']})")

    options: dict = {}
    if "app_token_env" in entry:
        value = entry["app_token_env"]
        if not isinstance(value, str) or not ENV_NAME_PATTERN.fullmatch(value):
            raise fail("app_token_env", f"must name an environment variable, got {value!r}")
        if entry["kind"] not in KEY_HEADERS:
            raise fail("app_token_env", f"{entry['kind']} portals take no key (kinds that do: "
                                        f"{', '.join(KEY_HEADERS)})")
        # a key in clear crosses every network on the way (a proxy, a café's Wi-Fi); loopback is no network
        if not key_goes_safely(url):
            raise fail("app_token_env", f"{url!r} is plain http: the key would cross the network in clear "
                                        "(an https url, or none)")
        options["app_token_env"] = value
    if "keys" in entry:
        options["keys"] = _host_keys(entry["keys"], entry["kind"], parsed, fail)
    if "records" in entry:
        value = entry["records"]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise fail("records", f"must be a list of dataset ids (strings), got {value!r}")
        options["records"] = tuple(v.strip() for v in value)
    if "timeout" in entry:
        value = entry["timeout"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
            raise fail("timeout", f"must be a number of seconds in (0, 3600], got {value!r}")
        options["timeout"] = float(value)
    if "max_concurrency" in entry:
        value = entry["max_concurrency"]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 32:
            raise fail("max_concurrency", f"must be an integer from 1 to 32, got {value!r}")
        options["max_concurrency"] = value
    if "deletion_grace_days" in entry:
        value = entry["deletion_grace_days"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 365:
            raise fail("deletion_grace_days", f"must be a number of days from 0 to 365, got {value!r}")
        options["deletion_grace_days"] = float(value)
    if "requests_per_second" in entry:
        value = entry["requests_per_second"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1000:
            raise fail("requests_per_second", f"must be a number in (0, 1000], got {value!r}")
        options["requests_per_second"] = float(value)
    for key in ("max_minutes", "records_max_minutes"):
        if key in entry:
            value = entry[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 10080:
                raise fail(key, f"must be a number of minutes in (0, 10080], got {value!r}")
            options[key] = float(value)
    if "records_max_rows" in entry:
        value = entry["records_max_rows"]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MOST_RECORDS_MAX_ROWS:
            raise fail("records_max_rows", f"must be a whole number of rows from 1 to {MOST_RECORDS_MAX_ROWS:,}, "
                                           f"got {value!r}")
        options["records_max_rows"] = value
    if "domain" in entry:
        value = entry["domain"]
        if not isinstance(value, str) or not DOMAIN_PATTERN.fullmatch(value):
            raise fail("domain", f"must be a host name such as data.cityofchicago.org, got {value!r}")
        options["domain"] = value
    if "timezone" in entry:
        options["timezone"] = _zone_name(entry["timezone"], fail)
    for key in ("publisher", "contact_name", "contact_email"):
        if key in entry:
            value = entry[key]
            if not isinstance(value, str) or not value.strip():
                raise fail(key, f"must be a non-empty string, got {value!r}")
            if key == "contact_email" and not EMAIL_PATTERN.fullmatch(value.strip()):
                raise fail(key, f"{value!r} is not an email address")
            options[key] = value.strip()

    return PortalConfig(
        id=entry["id"], city=entry["city"].strip(), kind=entry["kind"], url=url.rstrip("/"), **options
    )


def _host_keys(value: object, kind: str, portal_url, fail) -> tuple[tuple[str, str], ...]:
    """A portal's `keys` table (host = the variable holding its key), each host in lower case, else
    refused: a key for a kind that takes none, for the portal's own host (app_token_env's), or for
    what is no host; a name that is no environment variable's."""
    if kind not in KEY_HEADERS:
        raise fail("keys", f"{kind} portals take no key (kinds that do: {', '.join(KEY_HEADERS)})")
    if not isinstance(value, dict) or not value:
        raise fail("keys", 'must be a table of hosts and the environment variables holding their keys, such as '
                           f'{{ "services1.arcgis.com" = "ARCGIS_SERVICES_KEY" }}, got {value!r}')
    own = (portal_url.hostname or "").rstrip("."), portal_url.port
    keys = {}
    for host, variable in value.items():
        named = KEY_HOST_PATTERN.fullmatch(host.strip().lower())
        port = int(named["port"]) if named and named["port"] else None
        if named is None or port == 0 or (port or 0) > 65535 or not _an_address_if_bracketed(named["host"]):
            raise fail(f"keys.{host!r}", "is no host a key can go to (a host name such as services1.arcgis.com, "
                                         "an address, and a port where it is not https's own: localhost:8443)")
        normal = named["host"].rstrip(".") + (f":{port}" if port else "")
        if (named["host"].rstrip("."), port) == own or (normal.partition(":")[0] == own[0] and own[1] is None
                                                        and port in (None, 443, 80)):
            raise fail(f"keys.{host!r}", "is the portal's own host: its key is named by app_token_env")
        # (a host's scheme is known at its request alone, where a key for plain http to another machine is held
        # back and said so: harvester.http.client; port 80 is plain http's, and its key would never go)
        if port == 80 and not key_goes_safely(f"http://{normal}"):
            raise fail(f"keys.{host!r}", "is plain http's port: a key is never sent over plain http to another "
                                         "machine, where it would cross the network in clear (the host's https "
                                         "port, or none)")
        if not isinstance(variable, str) or not ENV_NAME_PATTERN.fullmatch(variable):
            raise fail(f"keys.{host!r}", f"must name an environment variable, got {variable!r}")
        if normal in keys:
            raise fail(f"keys.{host!r}", f"names the host {normal!r} a second time")
        keys[normal] = variable
    return tuple(keys.items())


def _an_address_if_bracketed(host: str) -> bool:
    """Whether `host` is no `[…]`, or one holding an IP address (`[::1]`)."""
    return not host.startswith("[") or _ip_or_none(host[1:-1]) is not None


def _ip_or_none(text: str):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def key_variables(portal: PortalConfig) -> list[str]:
    """The environment variables holding `portal`'s keys: app_token_env's, then those of its `keys`."""
    return list(dict.fromkeys(([portal.app_token_env] if portal.app_token_env else [])
                              + [variable for _, variable in portal.keys]))


def unusable_keys(portals: list[PortalConfig], environ) -> list[str]:
    """What is wrong with each key an `app_token_env` of `portals` names, set in `environ` but
    not a key: a line break, a space or a control character inside it (a secrets file of two lines;
    what is around it is stripped: base.PortalAdapter) or a character beyond Latin-1. requests
    refuses a header with a line break or such a character at every request, as a connection failure
    of the portal's host that names no variable; a space it sends, and the portal refuses the key."""
    wrong: dict[str, dict[str, None]] = {}   # what is wrong: the portals, and the keys that name its variable
    named: dict[str, dict[str, None]] = {}
    for portal in portals:
        for variable in key_variables(portal):
            key = (environ.get(variable) or "").strip()
            if not key:
                continue
            if SPACE_OR_CONTROL.search(key):
                why = "holds a line break, a space or a control character inside it, which no key holds (a file of two lines?)"
            elif not key.isascii() and any(ord(c) > 0xFF for c in key):
                why = "holds a character beyond Latin-1, which no HTTP header carries"
            else:
                continue
            what = f"environment variable {variable} {why}"
            wrong.setdefault(what, {})[portal.id] = None
            named.setdefault(what, {})["app_token_env" if variable == portal.app_token_env else "keys"] = None
    return [f"{what}: the key of {', '.join(ids)} ({', '.join(named[what])}); set it to the key alone"
            for what, ids in wrong.items()]


# what no key, and no host name, holds (requests would refuse a header holding a line break; urllib3
# before 2.8 tried a host with a space: harvester.http.connections)
SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")


def key_goes_safely(url: str) -> bool:
    """Whether a key may be sent to `url`: over https, or to this machine (loopback: what the W3C's
    Secure Contexts call potentially trustworthy, nothing on the way to read it)."""
    parsed = urlparse(url)
    if parsed.scheme == "https":
        return True
    host = (parsed.hostname or "").rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _zone_name(value: object, fail) -> str:
    """An IANA time zone name that zoneinfo knows (`America/Chicago`), else the key refused."""
    if not isinstance(value, str) or not value.strip():
        raise fail("timezone", f"must be an IANA time zone name such as 'America/Chicago', got {value!r}")
    try:
        ZoneInfo(value.strip())
    except (ZoneInfoNotFoundError, ValueError):   # (ValueError: no zone key at all, e.g. a path)
        raise fail("timezone", f"{value!r} is no time zone zoneinfo knows (an IANA name such as "
                               "'America/Chicago')") from None
    return value.strip()
