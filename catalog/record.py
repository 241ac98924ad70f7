"""The normalised dataset record: its JSON Schema, validation, and the value parsers
every adapter's field mapping uses.

Real catalogues are ragged. A parser never raises: a value that does not parse as its
type becomes None and leaves a note, which the pipeline stores as a warning in
`harvest_errors` (the raw record keeps the original).
"""
from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from html.parser import HTMLParser
from importlib import resources

import jsonschema_rs

COLUMN_TYPES = ("text", "integer", "number", "boolean", "date", "datetime", "point", "geometry", "url", "other")
ACCESS_LEVELS = ("public", "restricted public", "non-public")
REQUIRED = ("uid", "portal_id", "city", "portal_kind", "source_id", "title")

SCHEMA: dict = json.loads(resources.files("catalog").joinpath("schema/dataset.schema.json").read_text())
_validator = jsonschema_rs.validator_for(SCHEMA)


class RecordRejected(Exception):
    """A record that cannot be stored: not an object, or no source id, or no title."""


@dataclass
class Notes:
    """Warnings raised while mapping one record: (field, message)."""

    items: list[tuple[str, str]] = field(default_factory=list)

    def warn(self, field_name: str, message: str) -> None:
        self.items.append((field_name, message))


def validate(record: dict, notes: Notes) -> dict:
    """Validate against the JSON Schema. A required field that fails rejects the record;
    any other failing field is set to null (or emptied) with a warning."""
    if _validator.is_valid(record):   # (a quarter cheaper than collecting no errors: hot, once per record)
        return record
    for _ in range(3):
        errors = list(_validator.iter_errors(record))
        if not errors:
            return record
        # deepest paths first, so deleting a list element never shifts another error's index
        for error in sorted(errors, key=lambda e: [str(p).zfill(9) for p in e.instance_path], reverse=True):
            path = list(error.instance_path)
            top = path[0] if path else None
            if top is None or top in REQUIRED:
                if top is not None and record.get(top) in (None, ""):
                    raise RecordRejected(f"record has no {top}")
                raise RecordRejected(f"{'.'.join(map(str, path)) or 'record'}: {error.message}")
            notes.warn(str(top), f"dropped invalid value: {error.message}")
            _drop(record, path)
    raise RecordRejected("record keeps failing validation")


def _drop(record: dict, path: list) -> None:
    top = path[0]
    if top in ("distributions", "columns") and len(path) >= 2 and str(path[1]).isdigit():
        del record[top][int(path[1])]
    elif top in ("keywords", "themes", "distributions", "columns"):
        record[top] = []
    elif top not in SCHEMA["properties"]:
        del record[top]
    else:
        record[top] = None


# -- value parsers -----------------------------------------------------------------------

def text(value, notes: Notes | None = None, field_name: str = "") -> str | None:
    """Plain string. A multilingual object ({"de": ..., "en": ...}) gives English, else
    the first language given; numbers become their text."""
    if value is None:
        return None
    if type(value) is str:
        return value.strip() or None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, dict):
        if "en" in value and text(value["en"]):
            return text(value["en"])
        for key, candidate in value.items():   # English by another name: "EN", "en-GB", "en_US", "eng"
            if is_english(key) and isinstance(candidate, str) and candidate.strip():
                return candidate.strip()
        for candidate in value.values():
            if isinstance(candidate, str) and candidate.strip():
                return candidate.strip()
        return None
    if notes is not None:
        notes.warn(field_name, f"expected text, got {type(value).__name__}")
    return None


# a language key that names English: "en" or ISO 639-2's "eng", any case, alone or with a region or
# script ("en-GB", "en_US")
_ENGLISH = re.compile(r"^eng?(?:[-_][A-Za-z0-9]+)*$", re.IGNORECASE)


def is_english(key) -> bool:
    return type(key) is str and _ENGLISH.match(key) is not None


def plain_text(value, notes: Notes | None = None, field_name: str = "") -> str | None:
    """Text with HTML markup removed (descriptions arrive as HTML from many portals)."""
    value = text(value, notes, field_name)
    if value is None or "<" not in value and "&" not in value:
        return value
    return html_to_text(value) or None


class _TextExtractor(HTMLParser):
    """The text of HTML markup, each link's address kept after its text as "text (url)", as CKAN's
    Markdown links are (`[text](url)`): "see <a href=…>here</a>" lost the document it named."""

    BLOCKS = {"p", "div", "br", "li", "ul", "ol", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "section"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._links: list[tuple[str | None, int]] = []   # open <a>: its address, where its text starts

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "a":
            self._links.append((_link_address(dict(attrs).get("href")), len(self.parts)))
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag == "a":
            if self._links:
                self._link_ends(*self._links.pop())
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def close(self):
        super().close()
        while self._links:   # an <a> never closed: its address after the text that follows it
            self._link_ends(*self._links.pop())

    def _link_ends(self, address: str | None, start: int) -> None:
        if address is None:
            return
        shown = " ".join("".join(self.parts[start:]).split())
        if not shown:
            self.parts.append(f" {address} ")
        elif _link_key(address) not in _link_key(shown):   # (a link whose text is its address: once)
            self.parts.append(f" ({address})")

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


_LINK_SCHEMES = re.compile(r"^(?:https?://|ftp://|mailto:)\S", re.IGNORECASE)


def _link_address(href) -> str | None:
    """A link's address as kept in text: absolute (http, https, ftp, mailto: a page-relative one
    names nothing without the page), its spaces encoded (a PDF's name as published: "…/Crash
    Report SR 1050.pdf"), a mailto: as the address alone. None for any other."""
    href = (href or "").strip()
    if not _LINK_SCHEMES.match(href):
        return None
    href = re.sub(r"\s", lambda space: "%20" if space.group() == " " else "", href)
    return href[7:] if href[:7].lower() == "mailto:" else href


def _link_key(value: str) -> str:
    """An address or a link's text as compared: "https://www.Example.org/" and "example.org" alike."""
    value = value.strip().lower()
    value = re.sub(r"^(?:https?://|ftp://|mailto:)", "", value)
    return value.removeprefix("www.").rstrip("/")


def html_to_text(markup: str) -> str:
    parser = _TextExtractor()
    try:
        parser.feed(markup)
        parser.close()
        raw = "".join(parser.parts)
    except Exception:  # malformed markup: fall back to dropping tags
        raw = html.unescape(re.sub(r"<[^>]*>", " ", markup))
    lines = [re.sub(r"[ \t\r\f\v\xa0]+", " ", line).strip() for line in raw.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def text_list(value, notes: Notes | None = None, field_name: str = "", *, split: str | None = ",") -> list[str]:
    """A list of distinct non-empty strings; a single string is split on `split`
    (keywords arrive as 'crime,violent,seattle'; categories such as 'Parks, Recreation'
    must not be split: pass split=None)."""
    out: dict[str, None] = {}
    _add_texts(out, value, notes, field_name, split)
    return list(out)


def text_lists(values, notes: Notes | None = None, field_name: str = "", *, split: str | None = ",") -> list[str]:
    """The distinct strings of several values, in order: `text_list` of their `text_list`s
    joined, in one pass (tags and domain tags, hot: once per dataset)."""
    out: dict[str, None] = {}
    for value in values:
        _add_texts(out, value, notes, field_name, split)
    return list(out)


def _add_texts(out: dict[str, None], value, notes: Notes | None, field_name: str, split: str | None) -> None:
    """The strings of `value` added to `out` (a dict: distinct in order, where a list's `in`
    made 10^5 keywords a minute and a half of CPU, 10^6 hours)."""
    if value is None:
        return
    if isinstance(value, str):
        value = value.split(split) if split else [value]
    elif isinstance(value, dict):
        value = [value]
    elif not isinstance(value, (list, tuple)):
        if notes is not None:
            notes.warn(field_name, f"expected a list, got {type(value).__name__}")
        return
    for item in value:
        if type(item) is str:  # (most items: text() of a str is this)
            item = item.strip()
        else:
            if isinstance(item, dict):
                item = item.get("name") or item.get("display_name") or item.get("title") or text(item)
            item = text(item)
        if item:
            out[item] = None


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_YEAR_ONLY = re.compile(r"^\d{4}$")


_CANONICAL_UTC = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?Z$")


def timestamp(value, notes: Notes | None = None, field_name: str = "") -> str | None:
    """A UTC timestamp 'YYYY-MM-DDTHH:MM:SS[.ffffff]Z' from ISO 8601 text, a date, a year
    or epoch seconds/milliseconds; None (with a note) when it does not parse."""
    if type(value) is str:  # fast path: already UTC ('...Z'), as most APIs send it
        match = _CANONICAL_UTC.match(value)
        if match:
            base, fraction = match.groups()
            if _valid_datetime(base):
                return f"{base}.{fraction.ljust(6, '0')}Z" if fraction and fraction.strip("0") else f"{base}Z"
    parsed = parse_datetime(value)
    if parsed is None:
        if value not in (None, "") and notes is not None:
            notes.warn(field_name, f"not a date/time: {str(value)[:80]!r}")
        return None
    return format_timestamp(parsed)


def _valid_datetime(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def parse_datetime(value) -> datetime | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        seconds = value / 1000 if abs(value) > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value:
        return None
    if _YEAR_ONLY.match(value):
        value += "-01-01"
    if _DATE_ONLY.match(value):
        value += "T00:00:00"
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "T", 1) if " " in value[:11] else value)
    except ValueError:
        parsed = _day_first(value)
        if parsed is None:
            return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00
        return None


# a date written day first with dots, as German, Swiss and French portals write it (Stadt Zürich's
# "22.09.2004", its own DCAT export reading it day first): no order of day and month writes dots but
# this one. Slashes are not read: 03/04/2024 is 4 March in the US and 3 April in Europe.
_DOTTED_DATE = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")


def _day_first(value: str) -> datetime | None:
    match = _DOTTED_DATE.match(value)
    if not match:
        return None
    day, month, year, hour, minute, second = (int(part or 0) for part in match.groups())
    try:
        return datetime(year, month, day, hour, minute, second)
    except ValueError:   # 31.02.2020
        return None


# how far past a run's own start a date of something past (a dataset's `modified`, a row's last change)
# may be before it is warned of: a portal's clock, or a date written in its own zone's day, may run hours
# ahead of the run's
DATED_AHEAD_SLACK = timedelta(days=1)


def days_after(moment: datetime, began: datetime) -> str:
    """How many whole days `moment` is after `began`, in words ("54 days")."""
    days = (moment - began).days
    return f"{days} day{'s' if days != 1 else ''}"


def format_timestamp(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{moment.microsecond:06d}Z" if moment.microsecond else f"{base}Z"


def temporal(value, notes: Notes | None = None, field_name: str = "temporal") -> tuple[str | None, str | None]:
    """DCAT-US temporal 'start/end' (ISO 8601 interval; a duration end is resolved)."""
    value = text(value)
    if not value:
        return None, None
    if "/" not in value:
        single = timestamp(value, notes, field_name)
        return single, single
    start_text, end_text = value.split("/", 1)
    start = parse_datetime(start_text)
    end = parse_datetime(end_text)
    if end is None and start is not None and end_text.startswith("P"):
        duration = _duration(end_text)
        end = start + duration if duration else None
    if start is None and end is None:
        if notes is not None:
            notes.warn(field_name, f"not an ISO 8601 interval: {value[:80]!r}")
        return None, None
    return (format_timestamp(start) if start else None, format_timestamp(end) if end else None)


def _duration(value: str) -> timedelta | None:
    match = re.fullmatch(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?", value)
    if not match or not any(match.groups()):
        return None
    years, months, weeks, days = (int(g or 0) for g in match.groups())
    return timedelta(days=years * 365 + months * 30 + weeks * 7 + days)


_NUM = r"\d+(?:\.\d+)?"
_ISO_PERIODICITY = re.compile(
    rf"^R/P(?=\d|T\d)(?:{_NUM}Y)?(?:{_NUM}M)?(?:{_NUM}W)?(?:{_NUM}D)?(?:T(?:{_NUM}H)?(?:{_NUM}M)?(?:{_NUM}S)?)?$"
)
# Words portals use for update frequency, to ISO 8601 repeating durations (DCAT-US accrualPeriodicity).
PERIODICITY_WORDS = {
    "continuous": "R/PT1S", "continuously": "R/PT1S", "real-time": "R/PT1S", "realtime": "R/PT1S",
    "streaming": "R/PT1S", "minutely": "R/PT1M", "hourly": "R/PT1H", "daily": "R/P1D", "day": "R/P1D",
    "nightly": "R/P1D", "weekly": "R/P1W", "week": "R/P1W", "biweekly": "R/P2W", "bi-weekly": "R/P2W",
    "fortnightly": "R/P2W", "semimonthly": "R/P0.5M", "monthly": "R/P1M", "month": "R/P1M",
    "bimonthly": "R/P2M", "bi-monthly": "R/P2M", "quarterly": "R/P3M", "quarter": "R/P3M",
    "semiannual": "R/P6M", "semi-annual": "R/P6M", "semiannually": "R/P6M", "semi-annually": "R/P6M",
    "biannually": "R/P6M",
    "annual": "R/P1Y", "annually": "R/P1Y", "yearly": "R/P1Y", "year": "R/P1Y", "biennial": "R/P2Y",
    "biennially": "R/P2Y", "triennial": "R/P3Y", "decennial": "R/P10Y",
    "irregular": "irregular", "irregularly": "irregular", "as needed": "irregular",
    "as-needed": "irregular", "ad hoc": "irregular", "adhoc": "irregular", "other": "irregular",
    "unknown": "unknown", "never": "unknown", "not planned": "unknown", "historical": "unknown",
    "not updated": "unknown",
    "static": "unknown", "notplanned": "unknown", "none": "unknown",
    # German, with umlauts or written out (ae, oe, ue) as Stadt Zurich's CKAN vocabulary
    # (`updateInterval`) has them; "laufend" (ongoing) as the city's own DCAT export maps it
    "stündlich": "R/PT1H", "stuendlich": "R/PT1H", "täglich": "R/P1D", "taeglich": "R/P1D",
    "wöchentlich": "R/P1W", "woechentlich": "R/P1W", "vierzehntäglich": "R/P2W", "vierzehntaeglich": "R/P2W",
    "monatlich": "R/P1M", "quartalsweise": "R/P3M", "vierteljährlich": "R/P3M", "vierteljaehrlich": "R/P3M",
    "halbjährlich": "R/P6M", "halbjaehrlich": "R/P6M", "jährlich": "R/P1Y", "jaehrlich": "R/P1Y",
    "alle 4 jahre": "R/P4Y", "echtzeit": "R/PT1S", "laufend": "R/PT1S", "laufende nachführung": "R/PT1S",
    "laufende nachfuehrung": "R/PT1S", "sporadisch oder unregelmässig": "irregular",
    "sporadisch oder unregelmaessig": "irregular", "sporadisch oder unregelmäßig": "irregular",
    "unregelmässig": "irregular", "unregelmaessig": "irregular", "unregelmäßig": "irregular",
    "sporadisch": "irregular", "keines": "unknown", "keine nachführung": "unknown", "keine nachfuehrung": "unknown",
    # French, as French portals word them (OpenDataSoft's free-text `accrualperiodicity`, data.gouv.fr's
    # labels: "Quotidienne", "Temps réel", "Ponctuelle"), in either gender, with or without accents;
    # bimensuel is twice a month, bimestriel every two months, bihebdomadaire twice a week (dictionary
    # senses, as the EU vocabulary's MONTHLY_2, BIMONTHLY, WEEKLY_2); ponctuel (now and then) is "as needed".
    # ("continue" is read only as the whole value: English text continues too)
    "temps réel": "R/PT1S", "temps reel": "R/PT1S", "en continu": "R/PT1S",
    "toutes les heures": "R/PT1H", "deux fois par jour": "R/PT12H", "quotidienne": "R/P1D", "quotidien": "R/P1D",
    "journalière": "R/P1D", "journalier": "R/P1D", "journaliere": "R/P1D", "trois fois par semaine": "R/P2D",
    "deux fois par semaine": "R/P3D", "bihebdomadaire": "R/P3D", "hebdomadaire": "R/P1W",
    "trois fois par mois": "R/P10D", "deux fois par mois": "R/P0.5M", "bimensuelle": "R/P0.5M",
    "bimensuel": "R/P0.5M", "mensuelle": "R/P1M", "mensuel": "R/P1M", "bimestrielle": "R/P2M",
    "bimestriel": "R/P2M", "trimestrielle": "R/P3M", "trimestriel": "R/P3M", "trois fois par an": "R/P4M",
    "semestrielle": "R/P6M", "semestriel": "R/P6M", "deux fois par an": "R/P6M", "annuelle": "R/P1Y",
    "annuel": "R/P1Y", "biennale": "R/P2Y", "biennal": "R/P2Y", "triennale": "R/P3Y", "triennal": "R/P3Y",
    "quinquennale": "R/P5Y", "quinquennal": "R/P5Y", "décennale": "R/P10Y", "décennal": "R/P10Y",
    "ponctuelle": "irregular", "ponctuel": "irregular", "irrégulière": "irregular", "irrégulier": "irregular",
    "irreguliere": "irregular", "irregulier": "irregular", "irrégulièrement": "irregular", "inconnue": "unknown",
    "inconnu": "unknown", "jamais": "unknown", "aucune": "unknown", "non planifiée": "unknown",
    "non planifié": "unknown",
    # more French (session 34): udata's labels (data.gouv.fr: "Quatre fois par jour", "Sans régularité",
    # "Toutes les deux semaines"; its newer "Plusieurs fois par jour", at least twice a day, the period it
    # promises), the EU vocabulary's and ISO 19115's ("mise à jour continue", "au besoin", "quand
    # nécessaire"), portals' own "au fil de l'eau" (as it comes: continuously). Four and five times a week
    # round to whole days as the EU's WEEKLY_2/WEEKLY_3 do. ("tous les N jours…": _every_in_french)
    "au fil de l'eau": "R/PT1S", "mise à jour continue": "R/PT1S", "mise a jour continue": "R/PT1S",
    "continue": "R/PT1S", "en continue": "R/PT1S", "plusieurs fois par jour": "R/PT12H",
    "quatre fois par jour": "R/PT6H", "trois fois par jour": "R/PT8H", "cinq fois par semaine": "R/P1D",
    "quatre fois par semaine": "R/P2D", "decennale": "R/P10Y", "decennal": "R/P10Y",
    "sans régularité": "irregular", "sans regularite": "irregular", "sans périodicité": "irregular",
    "sans periodicite": "irregular", "au besoin": "irregular", "selon les besoins": "irregular",
    "quand nécessaire": "irregular", "quand necessaire": "irregular", "si nécessaire": "irregular",
    "autre": "irregular", "non planifiee": "unknown", "non planifie": "unknown",
    # Catalan and Italian, as Socrata's Generalitat de Catalunya and Italian domains word them (recorded:
    # "Diària", "Diari", "Anual", "Dades estàtiques", "Giornaliera"), with their neighbours in those lists
    "diària": "R/P1D", "diaria": "R/P1D", "diari": "R/P1D", "setmanal": "R/P1W", "mensual": "R/P1M",
    "trimestral": "R/P3M", "semestral": "R/P6M", "anual": "R/P1Y", "dades estàtiques": "unknown",
    "giornaliera": "R/P1D", "giornaliero": "R/P1D", "quotidiana": "R/P1D", "settimanale": "R/P1W",
    "mensile": "R/P1M", "trimestrale": "R/P3M", "semestrale": "R/P6M", "annuale": "R/P1Y",
    # English counts in a period (session 35), as the French ones above: "twice weekly" was read as
    # "weekly", "multiple times per hour" not at all (Chicago's). Several or multiple times promise at
    # least twice, the period of twice (as "plusieurs fois par jour"); twice a week is every 3 days,
    # three times every 2, as the EU vocabulary's WEEKLY_2 and WEEKLY_3
    **{f"{times} {per} {unit}": period for times, periods in (
        ("once", ("R/PT1H", "R/P1D", "R/P1W", "R/P1M", "R/P1Y")),
        ("twice", ("R/PT30M", "R/PT12H", "R/P3D", "R/P0.5M", "R/P6M")),
        ("two times", ("R/PT30M", "R/PT12H", "R/P3D", "R/P0.5M", "R/P6M")),
        ("multiple times", ("R/PT30M", "R/PT12H", "R/P3D", "R/P0.5M", "R/P6M")),
        ("several times", ("R/PT30M", "R/PT12H", "R/P3D", "R/P0.5M", "R/P6M")),
        ("three times", ("R/PT20M", "R/PT8H", "R/P2D", "R/P10D", "R/P4M")),
        ("four times", ("R/PT15M", "R/PT6H", "R/P2D", "R/P1W", "R/P3M")))
       for per in ("a", "an", "per", "each") for unit, period in zip(("hour", "day", "week", "month", "year"), periods)},
    "twice daily": "R/PT12H", "twice weekly": "R/P3D", "twice monthly": "R/P0.5M", "twice yearly": "R/P6M",
    "twice annually": "R/P6M",
    # NYC's "Every weekday" (each working day); "To be determined": the portal says it does not know yet
    "every weekday": "R/P1D", "each weekday": "R/P1D", "to be determined": "unknown",
}
# words read only as a whole value: in a sentence they say other things ("une autre direction", "la
# série continue"), as "day" or "other" do in English
WHOLE_VALUE_ONLY = ("day", "week", "month", "year", "quarter", "other", "autre", "continue")
_PERIODICITY_URIS = {  # Dublin Core / EU frequency vocabularies end in one of these words
    "ANNUAL": "R/P1Y", "ANNUAL_2": "R/P6M", "ANNUAL_3": "R/P4M", "BIENNIAL": "R/P2Y", "BIMONTHLY": "R/P2M",
    "BIWEEKLY": "R/P2W", "CONT": "R/PT1S", "DAILY": "R/P1D", "DAILY_2": "R/PT12H", "HOURLY": "R/PT1H",
    "IRREG": "irregular", "MONTHLY": "R/P1M", "MONTHLY_2": "R/P2W", "MONTHLY_3": "R/P10D", "NEVER": "unknown",
    "QUARTERLY": "R/P3M", "TRIENNIAL": "R/P3Y", "UNKNOWN": "unknown", "WEEKLY": "R/P1W", "WEEKLY_2": "R/P3D",
    "WEEKLY_3": "R/P2D", "OTHER": "irregular", "UPDATE_CONT": "R/PT1S", "QUINQUENNIAL": "R/P5Y",
}


def repeating_duration(value) -> str | None:
    """`value` if it is an ISO 8601 repeating duration ("R/P1D", "R/PT5M"), else None. DCAT-US 1.1
    allows one as a dataset's `modified` (its schema's second pattern; Project Open Data's
    guidance: "If there is a need to reflect that the dataset is continually updated, ISO 8601
    formatting can account for this with repeating intervals ... R/P1D for daily"): a frequency,
    not a date."""
    if type(value) is not str or "R/P" not in value[:4]:
        return None
    value = value.strip()
    return value if _ISO_PERIODICITY.match(value) and not value.endswith(("P", "T")) else None


def modified_and_frequency(modified, frequency, notes: Notes, *, instead=None,
                           instead_named: str = "") -> tuple[str | None, str | None]:
    """A dataset's `modified` (a timestamp) and update frequency (`frequency`, as `periodicity` reads
    it). A `modified` that is a repeating duration ("R/P1D": DCAT-US 1.1's way of saying the dataset is
    updated continually) names no day: the timestamp `instead` where the portal keeps one of its own
    (CKAN's record's `metadata_modified`, named `instead_named`), else null, with a warning naming it;
    and it is the dataset's frequency where `frequency` gives none. DCAT-US documents carry it
    (Philadelphia's 11 recorded entries), and so do CKAN packages harvested from them, whose `modified`
    extra keeps the document's value (data.gov's harvester writes `{"key": "modified", "value": "R/P1W"}`)."""
    continual = repeating_duration(modified)
    if continual is None:
        return timestamp(modified, notes, "modified"), periodicity(frequency, notes)
    kept = timestamp(instead, notes, "modified") if instead is not None else None
    stored = f"{instead_named} stored instead" if kept else "stored as null"
    if text(frequency) is None:
        notes.warn("modified", f"a repeating interval {continual!r} (updated continually), not a date: {stored}, and "
                               "read as the update frequency (the entry gives none)")
        return kept, continual
    notes.warn("modified", f"a repeating interval {continual!r} (updated continually), not a date: {stored}")
    return kept, periodicity(frequency, notes)


def periodicity(value, notes: Notes | None = None, field_name: str = "accrual_periodicity") -> str | None:
    """An ISO 8601 repeating duration, 'irregular' or 'unknown' (the portal says so: unknown,
    never, not planned); None when absent or not read, as every value that does not parse
    (SPEC), with a warning. Free text such as 'Data are updated daily' is read for its
    frequency word."""
    value = text(value)
    if not value:
        return None
    result = _periodicity(value)
    if result is None and notes is not None:
        notes.warn(field_name, f"unrecognised update frequency {value[:80]!r}; stored as null")
    return result


@lru_cache(maxsize=4096)   # a portal words its frequencies in a handful of ways
def _periodicity(value: str) -> str | None:
    if _ISO_PERIODICITY.match(value) and not value.endswith(("P", "T")):
        return value
    tail = value.rstrip("/").rsplit("/", 1)[-1].upper()
    if tail in _PERIODICITY_URIS:
        return _PERIODICITY_URIS[tail]
    lowered = value.lower().strip().replace("\u2019", "'")   # (l’eau: a curly apostrophe)
    if lowered in PERIODICITY_WORDS:
        return PERIODICITY_WORDS[lowered]
    every = _EVERY.search(lowered)   # "Every 2 Minutes", "Data is updated every 15 minutes", "every hour"
    if every:
        count, unit = int(every.group(1) or 1), every.group(2)
        return f"R/PT{count}{unit[0].upper()}" if unit in ("second", "minute", "hour") else f"R/P{count}{unit[0].upper()}"
    # each word (hyphenated ones whole; letters of any language: "jährlich") and each two words in a
    # row ("as needed", "semi annually", "not updated"), punctuation aside ("updated daily."), in the
    # order written: the first frequency named is the one read ("Daily beginning 7/1/19; twice weekly
    # previously"), two words before the first of them alone ("twice weekly", not "twice")
    words = re.findall(r"[^\W\d_]+(?:-[^\W\d_]+)*", lowered)
    for at, word in enumerate(words):
        following = words[at + 1] if at + 1 < len(words) else None
        for phrase in ((f"{word} {following}", f"{word}-{following}", word) if following else (word,)):
            if phrase in PERIODICITY_WORDS and phrase not in WHOLE_VALUE_ONLY:
                return PERIODICITY_WORDS[phrase]
    return _every_in_french(lowered) or _longer_phrase(lowered)


_FRENCH_COUNTS = {"deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "six": 6, "dix": 10, "douze": 12, "quinze": 15,
                  "trente": 30}
_FRENCH_UNITS = {"minute": "TM", "heure": "TH", "jour": "D", "semaine": "W", "mois": "M", "an": "Y", "année": "Y",
                 "annee": "Y"}
_EVERY_FR = re.compile(rf"\btou(?:te)?s les (?:(\d{{1,4}}|{'|'.join(_FRENCH_COUNTS)}) )?"
                       rf"(minute|heure|jour|semaine|mois|année|annee|an)s?\b")


def _every_in_french(lowered: str) -> str | None:
    """"toutes les 15 minutes", "tous les deux ans", "tous les jours" (EU labels: "toutes les deux
    heures"); "tous les quinze jours" is the French fortnight."""
    every = _EVERY_FR.search(lowered)
    if not every:
        return None
    count, unit = every.group(1), _FRENCH_UNITS[every.group(2)]
    count = int(_FRENCH_COUNTS.get(count, count or 1))
    if unit == "D" and count == 15:
        return "R/P2W"
    return f"R/PT{count}{unit[1]}" if unit.startswith("T") else f"R/P{count}{unit}"


def _longer_phrase(lowered: str) -> str | None:
    """A phrase of three to five words in free text ("mise à jour plusieurs fois par jour", "au fil
    de l'eau" with its apostrophe, straight or curly), when no word or pair of words said one."""
    words = re.findall(r"[^\W\d_]+(?:['-][^\W\d_]+)*", lowered.replace("\u2019", "'"))
    for size in (5, 4, 3):
        for start in range(len(words) - size + 1):
            phrase = " ".join(words[start:start + size])
            if phrase in PERIODICITY_WORDS:
                return PERIODICITY_WORDS[phrase]
    return None


_EVERY = re.compile(r"\bevery (?:(\d{1,4}) )?(second|minute|hour|day|week|month|year)s?\b")


_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_HTTP_URL = re.compile(r"^https?://\S+$", re.IGNORECASE)


def email(value, notes: Notes | None = None, field_name: str = "contact_email") -> str | None:
    value = text(value)
    if not value:
        return None
    if value.lower().startswith("mailto:"):
        value = value[7:].strip()
    if _EMAIL.fullmatch(value):
        return value
    if notes is not None:
        notes.warn(field_name, f"not an email address: {value[:80]!r}")
    return None


def url(value, notes: Notes | None = None, field_name: str = "") -> str | None:
    value = text(value)
    if not value:
        return None
    if _HTTP_URL.match(value):
        return value if value[:4] == "http" else "http" + value[4:]
    if value.startswith("//"):
        return "https:" + value
    if notes is not None:
        notes.warn(field_name, f"not an http(s) URL: {value[:80]!r}")
    return None


def access_level(value, notes: Notes | None = None) -> str | None:
    value = text(value)
    if not value:
        return None
    lowered = re.sub(r"[\s_-]+", " ", value.lower())
    if lowered in ACCESS_LEVELS:
        return lowered
    if lowered == "nonpublic" or lowered == "non public":
        return "non-public"
    if notes is not None:
        notes.warn("access_level", f"not a DCAT-US access level: {value[:40]!r}")
    return None


def integer(value, notes: Notes | None = None, field_name: str = "") -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        if notes is not None:
            notes.warn(field_name, f"not an integer: {str(value)[:40]!r}")
        return None
    if not 0 <= number < 2 ** 63:
        if notes is not None:
            notes.warn(field_name, f"integer out of range: {str(value)[:40]!r}")
        return None
    return number


def column_type(source_type, table: dict[str, str]) -> str:
    """Map a portal's column type to the shared vocabulary through the adapter's table;
    keys are compared lowercased with spaces as underscores. No match (or none) → 'other'."""
    if not isinstance(source_type, str):
        return "other"
    return table.get(_type_key(source_type), "other")


@lru_cache(maxsize=4096)
def _type_key(source_type: str) -> str:
    return re.sub(r"[\s-]+", "_", source_type.strip().lower())


def obj(value) -> dict:
    """`value` if it is a JSON object, else {}: a ragged payload must not stop a mapping."""
    return value if isinstance(value, dict) else {}


def items(value) -> list:
    """`value` if it is a JSON array, else []."""
    return value if isinstance(value, list) else []


_BLANK_RECORD = {
    "source_id": None, "identifier": None, "title": None, "description": None,
    "keywords": None, "themes": None, "publisher": None, "contact_name": None, "contact_email": None,
    "issued": None, "modified": None, "accrual_periodicity": None, "license": None,
    "access_level": None, "landing_page": None, "spatial": None, "temporal_start": None,
    "temporal_end": None, "asset_type": None, "parent_uid": None, "row_count": None,
    "distributions": None, "columns": None,
}


def blank_record() -> dict:
    """Every field of the record, empty: adapters fill what their portal has."""
    # (copied, its lists new: a third of what the dict's literal cost, 0.4 against 1.1 us: once per entry)
    record = _BLANK_RECORD.copy()
    record["keywords"], record["themes"], record["distributions"], record["columns"] = [], [], [], []
    return record
