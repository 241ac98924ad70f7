"""Open311 GeoReport v2 endpoints (a city's 311 service requests).

Endpoint: `{url}/services.json`, else `{url}/services.xml` (parsed with defusedxml, so an
entity-expansion bomb is refused). An endpoint is ONE catalogue dataset — the city's 311
service requests — whose columns are the GeoReport v2 request fields; its service list
is kept in the raw record and exposed as the `open311_services` view, to label 311 data
across cities. Requests themselves (`requests.json` by date window and page) are the
records harvest's business.
"""
from __future__ import annotations

import json
import logging
from array import array
from bisect import bisect_left
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from catalog import record as R
from catalog.record import Notes
from harvester.http import PermanentError, ResponseTooLarge, capped_json, dropped
from harvester.paging import RAISE_THE_CAP, Listing, Page, SinglePage, cap_reason, request_text
from harvester.portals.base import MAX_ITEMS, PortalAdapter
from harvester.records import (Conversion, Field, NotPullable, PagesDisagree, RecordSource, StartsOver,
                               server_began)

log = logging.getLogger("civicat.open311")

SOURCE_ID = "service-requests"
WINDOW = timedelta(days=90)             # the widest date window GeoReport v2 servers accept
EARLIEST = datetime(2010, 1, 1, tzinfo=UTC)   # GeoReport v2 dates from 2010: nothing older to ask for
RECENT = timedelta(days=90)             # an incremental pull re-reads this much before its watermark
SERVICE_FIELDS = ("service_code", "service_name", "description", "metadata", "type", "keywords", "group")
# GeoReport v2 service request fields (name, type in the shared vocabulary, description)
REQUEST_FIELDS = (
    ("service_request_id", "text", "Unique id of the service request"),
    ("status", "text", "open or closed"),
    ("status_notes", "text", "Explanation of the status"),
    ("service_name", "text", "Human-readable name of the service type"),
    ("service_code", "text", "Service type code (see open311_services)"),
    ("description", "text", "Description given by the requester"),
    ("agency_responsible", "text", "Agency responsible for fulfilling the request"),
    ("service_notice", "text", "Information about the expected handling"),
    ("requested_datetime", "datetime", "When the request was made"),
    ("updated_datetime", "datetime", "When the request was last changed"),
    ("expected_datetime", "datetime", "When the request is expected to be fulfilled"),
    ("address", "text", "Human-readable address"),
    ("address_id", "text", "Address id in the city's system"),
    ("zipcode", "text", "Postal code"),
    ("lat", "number", "Latitude (WGS84)"),
    ("long", "number", "Longitude (WGS84)"),
    ("media_url", "url", "Photo or other media of the request"),
)


SERVICES = capped_json(MAX_ITEMS)   # the first MAX_ITEMS services, the others dropped as they are read


def _services_shape(data) -> str | None:
    return None if isinstance(data, list) else "services.json is a JSON array of services"


def services_from_xml(root) -> list[dict]:
    """<services><service><service_code>…</service_code>…</service></services> → dicts."""
    services = []
    for element in root.iter("service"):
        service = {}
        for child in element:
            tag = child.tag.rsplit("}", 1)[-1]
            if tag in SERVICE_FIELDS:
                service[tag] = (child.text or "").strip() or None
        services.append(service)
    return services


class Open311Adapter(PortalAdapter):
    kind = "open311"

    def services(self) -> tuple[list, int, str]:
        """The endpoint's services (the first MAX_ITEMS), how many more it lists, and from which format."""
        try:
            services = self.http.get_json(f"{self.portal.url}/services.json", conditional=True,
                                          expect=_services_shape, parse=SERVICES).data
            return list(services[:MAX_ITEMS]), dropped(services).get("*", 0), "json"
        except PermanentError as exc:
            if exc.status not in (404, 406, 415, 501):
                raise
            services = services_from_xml(self.http.get_xml(f"{self.portal.url}/services.xml", conditional=True).data)
            return services[:MAX_ITEMS], max(0, len(services) - MAX_ITEMS), "xml"

    def listing(self) -> Listing:
        def fetch(_params: dict) -> Page:
            services, left_out, form = self.services()
            entry = {"endpoint": self.portal.url, "format": form, "services": services}
            return Page(items=[{**entry, "services_left_out": left_out} if left_out else entry])

        return Listing(fetch, SinglePage(), self.source_id)

    def source_id(self, entry) -> str | None:
        return SOURCE_ID if isinstance(entry, dict) else None

    @classmethod
    def settings_kept(cls, con, portal_ids: list[str]) -> dict[str, set[tuple[str, str, str]]]:
        """The endpoint's one answer is no page kept: its dataset's raw entry names the endpoint
        (the config entry's url) it was listed from, and the dataset its city. (No domain: an
        Open311 entry has none.)"""
        kept: dict[str, set[tuple[str, str, str]]] = {}
        for portal_id, city, endpoint in con.execute(
                "SELECT d.portal_id, d.city, r.raw::JSON ->> 'endpoint' FROM datasets d JOIN raw_records r "
                "ON r.uid = d.uid AND r.raw_hash = d.raw_hash WHERE d.portal_kind = ? AND d.source_id = ? "
                "AND list_contains(?, d.portal_id)", [cls.kind, SOURCE_ID, portal_ids]).fetchall():
            if endpoint is not None:
                kept.setdefault(portal_id, set()).add((city, endpoint, ""))
        return kept

    def record_source(self, dataset, previous) -> "RequestsRecords":
        if dataset.source_id != SOURCE_ID:
            raise NotPullable(f"an Open311 endpoint has one dataset, {SOURCE_ID!r}, not {dataset.source_id!r}")
        return RequestsRecords(self, previous)

    def map(self, entry: dict, details: dict | None, notes: Notes) -> dict:
        services = [s for s in entry.get("services") or [] if isinstance(s, dict)]
        names = R.text_list([s.get("service_name") for s in services])
        groups = R.text_list([s.get("group") for s in services], split=None)
        out = R.blank_record()
        out["source_id"] = SOURCE_ID
        out["identifier"] = f"{self.portal.url}/requests.json"
        out["title"] = f"{self.portal.city} 311 service requests"
        out["description"] = (
            f"Service requests reported to {self.portal.city} through its Open311 GeoReport v2 endpoint "
            f"({len(services)} service types" + (f": {', '.join(names[:40])}" if names else "") + ").")
        out["keywords"] = R.text_list(["311", "service requests", *names])
        out["themes"] = groups
        out["access_level"] = "public"
        out["landing_page"] = R.url(self.portal.url)
        out["asset_type"] = "dataset"
        out["distributions"] = [
            {"title": "GeoReport v2 requests (JSON)", "format": "JSON", "media_type": "application/json",
             "download_url": None, "access_url": f"{self.portal.url}/requests.json"},
            {"title": "GeoReport v2 services (JSON)", "format": "JSON", "media_type": "application/json",
             "download_url": None, "access_url": f"{self.portal.url}/services.json"},
        ]
        if entry.get("services_left_out"):
            notes.warn("services", f"the endpoint lists {MAX_ITEMS + entry['services_left_out']:,} services; the "
                       f"first {MAX_ITEMS:,} are kept")
        out["columns"] = [{"position": i, "name": name, "field_name": name, "type": kind,
                           "source_type": "georeport-v2", "description": description}
                          for i, (name, kind, description) in enumerate(REQUEST_FIELDS)]
        return out


def _requests_shape(data) -> str | None:
    return None if isinstance(data, list) else "requests.json is a JSON array of requests"


def _ids(requests: list) -> list[str]:
    return [str(r.get("service_request_id")) for r in requests if isinstance(r, dict)]


def _stamp(moment: datetime, zone: tzinfo = UTC) -> str:
    """A W3C datetime: in UTC `…Z`; in a portal's `timezone`, its local time with the offset (a
    server that reads the offset gets the instant, one that drops it the local time it keeps)."""
    if zone is UTC:
        return (moment.astimezone(UTC) if moment.tzinfo else moment).strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.astimezone(zone).isoformat(timespec="seconds")


DATETIME_FIELDS = tuple(name for name, kind, _ in REQUEST_FIELDS if kind == "datetime")


def _zoned(requests: list, zone: tzinfo) -> list:
    """`requests` with their zone-less datetimes given `zone` (the portal's `timezone`): real
    servers give their local time without an offset, which read as UTC is hours off, in the
    windows and in the records stored."""
    for request in requests:
        if not isinstance(request, dict):
            continue
        for name in DATETIME_FIELDS:
            value = request.get(name)
            try:
                moment = datetime.fromisoformat(value) if isinstance(value, str) else None
            except ValueError:
                continue   # (the conversion nulls it, with a warning)
            if moment is not None and moment.tzinfo is None:
                request[name] = moment.replace(tzinfo=zone).isoformat()
    return requests


def _second(request) -> datetime | None:
    """The second a request was made in (its `requested_datetime`, in UTC), or None."""
    try:
        moment = datetime.fromisoformat(str(request["requested_datetime"]).replace("Z", "+00:00"))
    except (KeyError, TypeError, ValueError):
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


SECOND = timedelta(seconds=1)
DAY = 86_400   # seconds: the width of a window of a server read by whole days (Windows.days)
SHORTEST_DAY = timedelta(hours=23)   # a day whose clock goes forward: no zone has two midnights closer
SLACK = timedelta(days=1)   # how far outside its window an answer's requests may be made (Windows._made_within)
# how much further apart than its window is wide an answer's requests may be made: a server that
# reads the dates asked in its local time spans two hours with the hour a clock goes back
SPREAD = timedelta(hours=1)
# how long windows in a row may go on giving one request (Windows._given_on): a server that reads the
# dates asked to the minute gives it for a minute; one that reads whole days, all day
RUN = timedelta(minutes=2)
# reads of a one-second window's pages, until two in a row agree: that second alone is read again
# (what reading the whole pull again, on SourceChanged, gave it), then the pull fails, naming it
PASSES = 6
# fewer requests than any server gives in one answer (GeoReport's default is 1,000, Boston's pages
# 50): a server that ignores `page` gave all of a second that answers fewer, whatever else it gives
SMALLEST_PAGE = 10
# the share of a page a window aims at: 1/2 cost 2.2 N/P requests for a city of N a day with pages of P,
# 3/4 1.9 (fewer windows, more of them full: 4/5 gained nothing more)
FILL = 0.75
# a server may cut a window's requests at P, then leave some out (private service types): a cut
# answer holds fewer than P. One within this share of P is taken as possibly cut, until the
# server's own thinning is learned (bench/open311_windows.py)
DROPPED = 0.1
# answers shown cut that a pull needs to have seen to say how much its server thins them
CUTS_TO_LEARN = 3
MARGIN_MAX = 0.5
# of the windows taken whole outside the margin (but within MARGIN_MAX of P), a pull checks one in
# AUDIT_EVERY, and the first AUDITS too where its server is not seen to thin none, again from the
# first once one is shown cut: the cuts it sees otherwise are only those within the margin
# (Windows._audit; bench/open311_windows.py)
AUDITS = 10
AUDIT_EVERY = 20
# the statuses GeoReport v2 gives a request (others met in the pull are asked too): the first parts a
# window in doubt is read by (Windows._by_parts), each then by service codes where still at the cap
STATUSES = ("open", "closed")
# characters of service codes joined in one `service_code` (a comma-separated list): URLs stay short
CODES_ASKED = 1_500
# what a server answers a `service_code` it will not be asked by (GeoReport's 404 for a code it does not
# know; 400, 403 or 422 from others): a private service type's (Windows._refused)
REFUSALS = (400, 403, 404, 422)


def _margin(thinning: float) -> float:
    """The share of P an answer may fall short of it and still be taken as possibly cut, for a
    server seen to leave out `thinning` of a cut answer at most: twice that, and 2% more. Only the
    cut answers within the margin are seen, so the thinning seen is at most the margin it was seen
    under: the next pull may meet pages thinned more (bench: 1.5 times lost requests of a server
    thinning 40% still, twice lost none). Never under DROPPED: a margin narrowed for a server seen
    to thin nothing saw no answer thinned more, so it never learned that the server had started to
    (a private service type added: 63 of 856 public requests lost every pull at a tenth)."""
    return min(MARGIN_MAX, max(DROPPED, 2 * thinning + 0.02))


def _request_key(request) -> int:
    """What a request is known by in a reading (its id, else all it holds), hashed: 8 bytes a
    request kept for the windows that may be read again."""
    key = request.get("service_request_id") if isinstance(request, dict) else None
    return hash(("id", str(key)) if key is not None else ("row", json.dumps(request, sort_keys=True, default=str)))


IGNORES_TIMES = "the server does not read the times of start_date/end_date (whole days, or another date than " \
                "requested_datetime)"


class IgnoresTimes(NotPullable):
    """The server was shown not to read the times of start_date/end_date (whole days, or another
    date than requested_datetime): its windows are read again by whole days (Windows.days)."""


class PastHalf(StartsOver):
    """The server was shown past the half rule (Windows._past_half) once days of it had been taken whole
    by their answers' size, which proves nothing then: the pull starts over from what it learned (each
    day of a server that ignores `page` read by parts)."""


def _holds(read: tuple[array, ...], key: int) -> bool:
    """Whether any of the sorted arrays `read` holds `key`."""
    return any((i := bisect_left(keys, key)) < len(keys) and keys[i] == key for keys in read)


@dataclass
class Taken:
    """A window taken as whole because its answer (`count` requests, or its last page's) was
    under P by more than the margin then: read again, split, if the margin widens past it.
    `read`: the keys of the requests read in it or at its start (sorted arrays), so that
    reading it again yields only those its answer lacked."""
    start: datetime
    end: datetime
    count: int
    read: tuple[array, ...]

    def has(self, key: int) -> bool:
        return _holds(self.read, key)


@dataclass
class Doubt:
    """A window taken whole in doubt (Windows.doubtful), up to `end`: the keys of its `answer`, and
    `read`, those of the answers around it (the window before's and after's, and a window read
    again's first answer), which its parts (Windows._by_parts) may give again: yielded already.
    `end_asked`: the `end_date` its answer was asked to. Its parts are asked as windows are now
    (Windows._end_asked): a day taken before the server was seen to include the end's day was answered
    with two days, the day after's too (read by the window after), which held one code of one status at
    the cap and failed the pull (6 or 7 of a bench row's 100); its parts are asked without it."""
    end: datetime
    end_asked: datetime
    answer: array
    read: tuple[array, ...]

    def has(self, key: int) -> bool:
        return _holds((self.answer, *self.read), key)


@dataclass
class Narrowed:
    """A window narrowed because its answer (`count` requests, `answered` their ids) may be cut:
    `cut` once a narrower window brings a request made before `reach` that the answer lacked (its
    `end`; by whole days, its newest request's second: the server's own days may end hours before
    the window does, and the requests made in those hours come in the windows after it, lacked by a
    whole answer: answers of two days were so counted cut, a thinning of 50% learned from a server
    that thins none, and its days, taken whole, failed the pull at its end as possibly cut)."""
    end: datetime
    answered: set[str]
    count: int
    reach: datetime
    cut: bool = False


class Windows:
    """The requests from `since` to `until`, window after window, each read in ONE answer.

    GeoReport v2 says no count and servers page by number (`page`, an extension some
    ignore) with a page size of their own: a request removed while a window's pages are
    read moves the requests after it back a page, one of them never read, unseen. One
    answer has no later page to move, so a window is narrowed (halved) until its answer is
    not a full page: P, the server's page size (or the cap of a server that ignores
    `page`), learned from the first answer shown to have left requests out. Until P is
    known, an answer as large as the largest yet may be full: the window is read again in
    two narrower windows cut inside the span of the answer's requests (both then hold
    some): requests they bring that the answer lacks show it was full (P is its size);
    none shows it held the whole window. A window of one second cannot be narrowed (many
    requests at one timestamp): its pages are read, and read again until two readings
    agree page by page (PagesDisagree after PASSES: only that second is read again, not
    the whole pull as SourceChanged would; a server shown to ignore `page`: its one answer,
    read once). Window widths adapt to aim at FILL of
    a page (doubling at most from one window to the next, within GeoReport's 90 days): a
    city of N requests a day costs about 2 N/P requests a day read, where numbered pages
    cost N/P and lost requests (docs/records.md).

    `answer(start, end, page)` is the server's answer (a list); iterating yields each
    window's requests (without those of the window before, met again at an inclusive
    `end_date`) with the state to go on from (`resume`: a pull cut short goes on there).

    `page_size`: P as a pull before learned it (or the state's). A server may change its
    page size between pulls: it is not trusted until an answer as large shows the server
    still gives that many (P is at least that, so a smaller answer is not full); until then
    P is learned as if unknown. An answer larger than P shows P grew: it is forgotten, the
    answer not taken as whole, and P learned again.

    `thinning`: how much of a cut answer the server left out, as a pull before learned it (or
    the state's). An answer within DROPPED of P is taken as possibly cut (a server may leave
    requests out after cutting at P) until the server's thinning is known: then within
    _margin(thinning), wider for one that leaves out more than that (never narrower: a server
    that thins none today may tomorrow, unseen under a narrower margin). It is learned from the answers
    shown cut (CUTS_TO_LEARN of them at least): a window narrowed, whose narrower windows brought
    requests its answer lacked, a page 2 that brought some, and the next pages of a window whose
    answer may be cut (_pages_cut); their smallest against the largest answer yet. Within a pull
    the margin only widens; the next pull starts from the thinning learned. A server seen to
    ignore `page` (its pages show no cut) is read at MARGIN_MAX until the thinning is learned,
    from every window narrowed, not the outermost only; then at the margin learned.
    The windows taken whole under a narrower margin (`Taken`) that the wider one would not take
    are read again, split (a Windows of their own), and the requests their answers lacked yielded,
    before the reading goes on: the pull that learns the thinning loses none either. Some of the
    windows taken whole outside the margin are checked (_audit): the cut answers a margin too
    narrow takes whole are seen, and widen it.

    `known`: the keys of requests read already around the span (a window read again's own).

    `zone`: the portal's `timezone`, in which errors name the windows as sent. `days`: the server
    was shown not to read the times asked (IgnoresTimes, raised by the checks that show it): each
    window is whole days, from a midnight of `zone` to a midnight, one day at the narrowest (read
    as a one-second window is: its pages until two readings agree); a server seen to include the
    end's day (two windows in a row gave one request, or _gives_the_ends_day) is asked to 23 hours
    before each window's end (_end_asked). None of those checks is made then; windows taken whole are checked by pages and days
    (_audited_days). `days_remembered`:
    whole days because the pull before read them (record_pulls.whole_days), not shown by this reading:
    checked once (_reads_times; not by a pull gone on from one cut short), and a server fixed since is
    read by times from there on."""

    def __init__(self, answer, since: datetime, until: datetime, resume: dict | None = None,
                 page_size: int | None = None, thinning: float | None = None, known: tuple[array, ...] = (),
                 zone: tzinfo = UTC, days: bool = False, days_remembered: bool = False, services=None):
        state = resume or {}
        self.answer, self.until, self.zone = answer, until, zone
        # whole days: windows from a midnight of `zone` to a midnight, one day at the narrowest (a server
        # shown not to read the times asked); `inclusive`: it is seen to include the end's day, whose
        # windows then end a second before midnight
        # (a state says how its windows were read: one without `days` was read by times)
        self.days = bool(state.get("days", False)) if "start" in state else days
        self.inclusive = bool(state.get("inclusive", False))
        self.inclusion_asked = False   # the server asked once whether it gives the end's day (_gives_the_ends_day)
        # (_reads_times; not where a pull cut short goes on: the next pull checks)
        self.days_unchecked = self.days and days_remembered and "start" not in state
        # whole days shown by this reading (or by the pull it goes on from) or checked (_reads_times): an end's
        # day included is then asked to 23 hours before a window's end (_end_asked)
        self.days_known = bool(state.get("days_known", False)) if "start" in state else days and not days_remembered
        self.start = datetime.fromisoformat(state["start"]) if "start" in state else since.replace(microsecond=0)
        if self.days and "start" not in state:
            self.start = self._midnight(self.start)
        self.width = int(state.get("width", WINDOW.total_seconds()))   # seconds
        self.page_size: int | None = None   # P, shown by this reading
        self.remembered: int | None = state.get("page_size") or page_size   # P before, not yet shown again
        self.largest = 0   # the largest answer yet: P is at least that
        # the window before's requests (those met again at an inclusive `end_date` are dropped)
        self.before: set[str] = set(state.get("before", ()))
        # the ids of the window before's answer: (the end of the first of the windows in a row that gave
        # each, how many) (_given_on)
        self.met: dict[str, tuple[datetime, int]] = {}
        self.asked = 0   # requests made (what the reading costs)
        self.remembered_thinning: float | None = state.get("thinning", thinning)
        self.margin = DROPPED if self.remembered_thinning is None else _margin(self.remembered_thinning)
        self.cuts: list[int] = []   # the sizes of the answers shown cut
        self.ignores_page = False   # a page 2 asked was the first again (_pages_cut)
        # a one-second (one-day) window's page 2 was the first again, asked twice (_reading): the server ignores
        # `page`, and the next such windows' page 2 is not asked; the last reading was that one answer
        self.first_page_again = self.one_answer = False
        self.unlearned = False   # the margin is MARGIN_MAX until the thinning is learned (_pages_cut)
        # the answers of windows narrowed with P known, outermost first: whether each was cut is
        # known once its narrower windows are read
        self.narrowed: list[Narrowed] = []
        # the windows taken whole that a wider margin would not take; what decided the last one
        # (its answer's size, or its last page's; None: shown whole, not by the margin)
        self.taken: list[Taken] = []
        self.taken_at: int | None = None
        self.taken_pages = 1   # the pages read of the window taken whole (a day's, by whole days)
        self.following_page: list = []   # what _audit asked last
        self.known = known
        # by whole days: the keys of the requests windows read again yielded, which a window side by side
        # (sharing a day with it, the server's days not the zone's) may give again
        self.read_again: set[int] = set()
        self.ends_with: array = array("q")   # the keys of the window before's requests at its end
        # the largest answer of the windows taken whole before the state this reading went on from
        # (a pull cut short), which it does not hold: a wider margin that would not take it starts
        # the pull over (_going_on_from)
        self.unheld: int | None = state.get("unheld")
        # windows taken whole outside the margin since one checked was shown cut (_audit)
        self.audited: int = state.get("audited", 0)
        self.auditing = True
        self.audited_thinning: float | None = None   # the thinning that a cut answer an audit found shows
        # one-second (by whole days, one-day) windows of a server that ignores `page` taken whole against a
        # larger answer, but within the margin of it (_reading): [start, end, their answer's size, the largest
        # answer then], settled once the pull has read all (_settle_doubts); a reading again's, here
        self.doubtful: list[list] = [list(window) for window in state.get("doubtful", ())]
        self.settles_doubts = True
        # where `answer` reads GeoReport's `status` and `service_code` (answer(start, end, page, filters)):
        # a callable giving the endpoint's service codes (services.json, asked only when a window needs
        # them), by which the windows in doubt are read again at the pull's end (_by_parts); None: not, a
        # window still in doubt then fails the pull. The doubtful windows' keys (by their start), the
        # keys the parts yielded, and the statuses and service codes met in the pull's answers
        self.services = services
        self.listed: list[str] | None = None
        self.doubts: dict[str, Doubt] = {}
        self.settled: set[int] = set()
        self.codes_met: set[str] = set()
        self.refused: dict[str, str] = {}   # the service codes the server refuses to be asked by: why (_refused)
        self.screened: set[str] = set()   # the codes never met asked alone over the days in doubt (_screen)
        self.statuses_met: set[str] = set()
        # how much of a part's cut answer the server was shown to leave out (a part shown cut under the largest
        # answer, _by_parts), by this reading or the one it goes on from: kept with the pull (kept_thinning)
        self.parts_thinning: float | None = state.get("parts_thinning")
        self.parts_split = False   # a part was split (_by_parts): what its narrower parts gave shows thinning or not
        self.reaches_past = True   # by whole days, the windows reach past `until` (_days_end)
        # a day of a server that ignores `page` taken whole by its answer's size before the server was seen
        # past half (_past_half): the pull then starts over (PastHalf), where `restarts` (not yet started over)
        # (in the state: a pull gone on from one cut short that sees the server past half starts over too; before, it
        # forgot them, and the days taken whole by size before the cut were kept, possibly cut)
        self.sized_whole = bool(state.get("sized_whole", False))
        self.restarts = True
        # the windows a full page then an empty one ended, which the server may page no deeper than (_last_page)
        # and nothing could tell whole: kept with the pull's other windows, each an error of the run (`short`,
        # messages naming it; RequestsRecords.notices), not a pull failed every night. `deepest`: a page number
        # the server was shown to give (a page after it unasked)
        self.short: list[str] = list(state.get("short", ()))
        self.deepest = int(state.get("deepest", 0))
        # a page number the server was shown to give none after (`no_deeper`: page no_deeper + 1 of a span it
        # was read to hold more requests in was empty): a window ended so is kept short at once, not asked about
        # again (2 requests each capped day, or 4 where read twice); what each span was answered (given or not)
        # by page asked; the windows kept short while that was unknown, asked about again at the pull's end
        # (`unsure`: [start, end, pages, message]); the requests the pull read, by the zone's day they were made in
        self.no_deeper: int | None = state.get("no_deeper")
        self.deeper_answers: dict[tuple[datetime, datetime, int], bool | None] = {}
        self.unsure: list[list] = [list(window) for window in state.get("unsure", ())]
        self.read_by_day: dict[int, int] = {}
        self.counts_read = True   # (a window read again: its reading counts what it yields, _read_split)

    @property
    def thinning(self) -> float | None:
        """The share of a cut answer the server left out at most, as this reading showed it (else
        as the pull before did; None: not known)."""
        if len(self.cuts) < CUTS_TO_LEARN:
            learned = self.remembered_thinning
        else:
            learned = 1 - min(self.cuts) / max(self.largest, self.page_size or 0, *self.cuts)
        if self.audited_thinning is None:
            return learned
        return max(learned or 0.0, self.audited_thinning)

    @property
    def kept_thinning(self) -> float | None:
        """The thinning kept with the pull for the next (record_pulls.thinning): the windows', or what a
        part shown cut showed, the more. Kept from the parts too, a server that leaves requests out of
        parts only (private service types) starts the next pull as one that leaves some out (_thins_none):
        re-learned each pull, the days settled before a part showed it again were judged as under the cap
        of a server that leaves none out, and the next pull could take whole a day it must not. A pull that
        split no part saw nothing of them: it keeps the pull before's too."""
        shown = self.parts_thinning if self.parts_split else max(self.parts_thinning or 0.0,
                                                                 self.remembered_thinning or 0.0)
        return max(self.thinning or 0.0, shown) if shown else self.thinning

    def _cut(self, count: int) -> None:
        """An answer of `count` requests was shown cut."""
        self.cuts.append(count)
        if len(self.cuts) >= CUTS_TO_LEARN:
            self.margin = _margin(self.thinning) if self.unlearned else max(self.margin, _margin(self.thinning))
            self.unlearned = False

    def _may_be_cut(self, count: int, page_size: int) -> bool:
        """Whether an answer of `count` requests may be a page of `page_size` cut short, some
        of its requests left out after the cut (within the margin)."""
        return count >= page_size - int(page_size * self.margin)

    def state(self) -> dict:
        days = {"days": True, "inclusive": self.inclusive, "days_known": self.days_known} if self.days else {}
        doubtful = {"doubtful": self.doubtful} if self.doubtful else {}
        return {"start": self.start.isoformat(), "width": self.width,
                "page_size": self.page_size or self.remembered, "before": sorted(self.before),
                "thinning": self.thinning, "audited": self.audited, **days, **doubtful,
                **({"parts_thinning": self.parts_thinning} if self.parts_thinning else {}),
                **({"sized_whole": True} if self.sized_whole else {}), **({"short": self.short} if self.short else {}),
                **({"deepest": self.deepest} if self.deepest else {}),
                **({"no_deeper": self.no_deeper} if self.no_deeper is not None else {}),
                **({"unsure": self.unsure} if self.unsure else {})}

    def _narrowed_read(self, end: datetime, requests: list) -> None:
        """A window up to `end` read whole: once the narrower windows of a window narrowed are
        read, whether its answer lacked some of their requests (it was cut)."""
        for window in self.narrowed:
            # (those made before its end only: a window widened since may reach past it)
            window.cut = window.cut or any(key not in window.answered for key in _ids(
                [r for r in requests if isinstance(r, dict) and (_second(r) or window.reach) < window.reach]))
        for window in [window for window in self.narrowed if end >= window.end]:
            self.narrowed.remove(window)
            if window.cut:
                self._cut(window.count)

    def _days_end(self) -> datetime:
        """By whole days, where the windows end: the midnight after `until` (that day read whole), a day
        later where the server is not seen to include the end's day: one that leaves it out, its days not
        the zone's, gives no request of its day of `until` made after its own midnight before that one (its
        day `until` falls in ends after the zone's: 3,680 of the 4,710 requests of 30 cities' last days from
        New York's days read in UTC's were left to the next pull, never read where the portal was retired
        after it, bench/open311_windows.py --page-ignored). The day after `until` holds no request yet: in
        the zone's own days, it costs a request at most. Not a window read again (`reaches_past`), whose
        end is the next window's start."""
        last = self._midnight_after(self.until)
        return self._midnight(last, 1) if self.reaches_past and not self.inclusive else last

    def __iter__(self):
        while self.start < (self._days_end() if self.days else self.until):
            if self.days:   # (the last may end past `until`, at the midnight after it, or the day after: _days_end)
                end = min(self._midnight(self.start, self._days(self.width)), self._days_end())
            else:
                end = min(self.start + timedelta(seconds=self.width), self.until)
            margin, self.taken_at = self.margin, None
            requests = self._whole(self.start, end)
            if requests is None:   # a full answer: the window narrowed
                if self.days:
                    self.width = max(1, self._days(int((end - self.start).total_seconds())) // 2) * DAY
                else:
                    self.width = max(1, int((end - self.start).total_seconds()) // 2)
                if self.margin > margin:
                    yield from self._read_again()
                continue
            self._narrowed_read(end, requests)
            if self._keep_taken(end, requests, margin) and self.auditing and (self.days or end - self.start > SECOND):
                self.audited += 1
                if self.audited % AUDIT_EVERY == 1 or self.audited <= AUDITS and self.thinning != 0:
                    self._audit(self.start, end, requests)
            kept, ids = [], set()
            for request in requests:
                key = request.get("service_request_id") if isinstance(request, dict) else None
                if key is not None:
                    key = str(key)
                    seen = key in ids or key in self.before
                    ids.add(key)
                    if seen:
                        continue
                if self.read_again and _request_key(request) in self.read_again:
                    continue
                kept.append(request)
            if self.days and ids & self.before:
                self.inclusive = True   # it gave the end's day, given again now: the next windows end before it
            elif self.days and not self.inclusive and self._gives_the_ends_day(end, requests):
                self.inclusive = True   # (shown by what it gave after its end: the next windows end before it)
            # every id of this answer, yielded now or in the window before: a request met in three
            # windows in a row (a server that reads the dates asked to the minute) was yielded again
            self.before = ids
            if not self.days:   # (whole days: windows side by side share the end's day until `inclusive`)
                self._given_on(ids, end)
            self._widen(len(requests), int((end - self.start).total_seconds()))
            if self.days_unchecked and self._reads_times(end, requests):
                log.warning("the server reads the times of start_date/end_date again (the pull before read it by "
                            "whole days): read by times from %s on", _stamp(end, self.zone))
                self.days = self.inclusive = False
            self.start = end
            self._count_read(kept)
            yield kept, self._going_on_from()
            if self.margin > margin:
                yield from self._read_again()
        if self.settles_doubts:
            yield from self._settle_doubts()
            self._ask_unsure_again()

    def _reads_times(self, end: datetime, requests: list) -> bool:
        """Whether a server read by whole days because the pull before was (record_pulls.whole_days)
        now reads the times asked (one fixed since), checked once, at the first window answered
        whole whose requests were all made in it: the rest of the window is asked from a second after
        its newest request made in no 59th second (the second after one is then no midnight, in any
        zone: zones are whole minutes from UTC). A server reading times gives none made before that
        second; one reading whole days, that request's day (its own days, the end's day left out or
        not), that request among them. One request a pull. Asked a second after the newest request
        whatever its second, one made at 23:59:59 of the server's day (UTC's, or 04:59:59Z of New
        York's from a portal in UTC) put that second at the server's next midnight, whose day held
        none of the window's requests: nothing came back, the server was taken as reading times
        again, and the next pull by times, shown otherwise, started over. A request made since in that
        span is made after that second: no sign of whole days. What a wrong verdict costs is requests,
        none lost."""
        seconds = [_second(r) if isinstance(r, dict) else None for r in requests]
        if not seconds or None in seconds or min(seconds) < self.start:
            return False
        after = max((moment for moment in seconds if moment.second != 59), default=None)
        if after is None or after + SECOND >= self._end_asked(end):
            return False
        self.days_unchecked, after = False, after + SECOND
        self.days_known = any((_second(r) or after) < after for r in self._ask(after, end) if isinstance(r, dict))
        return not self.days_known

    def _gives_the_ends_day(self, end: datetime, requests: list) -> bool:
        """By whole days, whether the server includes the end's day, shown by the answer up to `end`:
        it gave requests made at or after `end`, and the one second from `end` is answered with one of
        them (asked once a pull). A server that leaves the end's day out gives none made after the
        midnight of its own day of `end`, at or before `end`; one that includes it gives that day, whose
        newest requests come first where the answer is cut: every answer of a server that ignores `page`
        cut, no two windows in a row shared a request, and each one-day window's parts held the day
        after's too, one code of one status of the two days at the cap (7 failed pulls of a bench row of
        100, bench/open311_windows.py --page-ignored). A request made after `end` is no proof alone: a
        server whose clock or zone is hours off gives such requests whatever it includes, and a window
        ended 23 hours early there would leave a day asked by none. The one second from `end` is
        answered with nothing by a server that leaves the end's day out, with its day of `end` by one
        that includes it (that request among its newest, as in the wider answer)."""
        if self.inclusion_asked or end >= self.until:
            return False
        after = set(_ids([r for r in requests if isinstance(r, dict) and (_second(r) or end - SECOND) >= end]))
        if not after:
            return False
        self.inclusion_asked = True
        return bool(after & set(_ids(self._ask(end, end + SECOND))))

    def _given_on(self, ids: set[str], end: datetime) -> None:
        """NotPullable where a request has been given by window after window for longer than RUN:
        windows side by side share at most the second at their edge, so a request in three in a row
        was given for a span it was not made in (a server reading the dates to the minute: for a
        minute). One reading whole days gave each one-second window of a day the same requests (2
        or 20 made in one second, the city's only ones), read one second after another: 5,000
        requests asked for 16 minutes of that day, without end."""
        met = {key: self.met.get(key, (end, 0)) for key in ids}
        self.met = {key: (first_end, run + 1) for key, (first_end, run) in met.items()}
        key, (first_end, run) = max(self.met.items(), key=lambda item: item[1][1], default=(None, (end, 0)))
        if run >= 3 and self.start - first_end > RUN:
            raise IgnoresTimes(f"request {key!r} was given by every window from {_stamp(first_end, self.zone)} to "
                               f"{_stamp(end, self.zone)}, {run} in a row (windows side by side share at most the "
                               f"second at their edge): {IGNORES_TIMES}")

    def _going_on_from(self, reading_again: bool = False) -> dict:
        """The state a pull cut short goes on from. Windows taken whole are in no state: a pull
        that went on past them read none of them again (r23: 592 and 302 of 1,596 public requests
        lost). One cut short while they are being read again, or due to be, starts over
        (RequestsRecords.starts_over_from: `windows_unheld` says why). Any other may be due once the
        margin widens, which it may until the pull ends (a thinning learned from three cuts thinned
        alike reads as none, until a larger answer shows P larger): the state keeps the largest of
        their answers (`unheld`), and a pull gone on from it whose margin widens past that starts
        over then (StartsOver; o24: 298 of 1,596 lost when cut after 10 requests). A server that
        thins none never widens it: its pull goes on from where it stopped."""
        state = self.state()
        reference = self._reference()
        if reading_again:
            state["windows_unheld"] = "windows taken whole were being read again, split"
        elif self.doubts and self.doubtful:
            # (what a window in doubt's parts may give again is known from the answers around it: in no state)
            state["windows_unheld"] = f"{self._unit[4:]}s taken whole in doubt are due to be read by parts"
        elif any(self._may_be_cut(window.count, reference) for window in self.taken):
            state["windows_unheld"] = "windows taken whole are due to be read again, split, under the wider " \
                                      "margin it learned"
        unheld = max([window.count for window in self.taken] + [self.unheld or 0])
        if unheld:
            state["unheld"] = unheld
        return state

    def _reference(self) -> int:
        """P, or while it is not shown, the largest answer yet: what an answer is judged against."""
        return self.page_size or max(1, self.largest)

    def _keep_taken(self, end: datetime, requests: list, margin: float) -> None:
        """Keeps the window just read, up to `end`, if it was taken whole by `margin` (the margin
        as it was read: what it showed may have widened it since) and a wider one would not take
        it (the keys of its answer and of the window before's requests at its start, which an
        inclusive `end_date` gave that window; by whole days, the window before's and after's whole
        answers, with which it may share a day). True: kept."""
        reference = self._reference()
        kept = self.taken_at is not None and margin < MARGIN_MAX \
            and self.taken_at >= reference - int(reference * MARGIN_MAX)
        keys = array("q", sorted(map(_request_key, requests)))
        # (the window after's, to the window in doubt before it: it may share a day with it. Found among all
        # the doubts, not the last only: where this window is in doubt too, the last is its own, and the day
        # before's parts gave again what this answer gave of the day they share, from a server that sorts
        # oldest first, includes the end's day, not yet seen, and ignores `page`: 540 of a city's 1,596
        # requests published twice, the pull ok, tests/harvester/portals/test_open311_records.py)
        before = next((doubt for doubt in self.doubts.values() if doubt.end == self.start), None)
        if before is not None:
            before.read += (keys,)
        doubt = self.doubts.get(self.doubtful[-1][0]) if self.doubtful else None
        if doubt is None and self.services is not None and self.doubtful \
                and self.start <= datetime.fromisoformat(self.doubtful[-1][0]) < end:
            # (one second of a wider window, all of whose requests were made in it: read as that second)
            self.doubts[self.doubtful[-1][0]] = Doubt(
                end, self._end_asked(datetime.fromisoformat(self.doubtful[-1][1])), keys, (*self.known, self.ends_with))
        if self.days and self.taken and self.taken[-1].end == self.start:
            self.taken[-1].read += (keys,)   # (by whole days: the window after's, which may share a day with it)
        if kept:
            self.taken.append(Taken(self.start, end, self.taken_at, (*self.known, keys, self.ends_with)))
        # by whole days, all of them: the server's day at the edge may not be the zone's, and hold any
        self.ends_with = keys if self.days else array("q", sorted(
            _request_key(r) for r in requests if not isinstance(r, dict) or (_second(r) or end) >= end))
        return kept

    def _audit(self, start: datetime, end: datetime, requests: list) -> None:
        """Checks a window taken whole by the margin, outside it but within MARGIN_MAX of P (kept
        in `taken`), as an answer is checked while P is not known (_checked): the part beyond the
        end its answer stops at is asked (a second after its oldest request, newest first; both
        halves where it is in no order). Requests it lacks show it cut: the margin widens past
        its size (the window is then read again, split, with any other it would not take), the
        thinning kept with the pull is at least what it shows, and the first AUDITS windows are
        checked again.

        Without it a pull saw only the cut answers within its margin, so a thinning learned from
        a few answers thinned alike, against a P itself learned from a thinned answer (a server
        that thins every cut answer never shows its real P), was never corrected: 30 requests a
        day, 8 of every 20 left out after a cut at 50, a server that ignores `page`: P 34 and a
        thinning of 6% (cuts of 32 to 34), the cut answers of 26 taken whole, 22 of 168 lost
        every pull; a server that reads `page`, P 29 learned from one thinned cut, the margin a
        tenth: 24 of 53. A check costs one request (two in no order)."""
        seconds = [_second(r) if isinstance(r, dict) else None for r in requests]
        if not requests or None in seconds:
            return   # (nothing to cut it by)
        low, high = min(seconds), max(seconds)
        if seconds == sorted(seconds, reverse=True):
            parts = [(start, min(low + SECOND, end))]
        elif seconds == sorted(seconds):
            parts = [(high, end)]
        else:
            middle = low + timedelta(seconds=int((high - low).total_seconds()) // 2)
            parts = [(start, middle), (middle, end)]
        known, reference, count = set(_ids(requests)), self._reference(), self.taken_at
        for part_start, part_end, page in self._audited_days(start, end, requests, parts) if self.days else \
                [(a, b, 1) for a, b in parts]:
            try:
                self.following_page = self._ask(part_start, part_end, page) if part_start < part_end else []
                shown = set(_ids(self.following_page)) - known
            except ResponseTooLarge:
                shown = False   # (what it holds is not known: the window counts as checked)
            if shown:
                self.audited, self.audited_thinning = 0, max(self.audited_thinning or 0.0, 1 - count / reference)
                self._cut(count)
                self.margin = max(self.margin, _margin(self.audited_thinning))
                return

    def _audited_days(self, start: datetime, end: datetime, requests: list, parts: list):
        """By whole days, what _audit asks of a window taken whole (a part cut at a request's second is
        read as whole days, and tells nothing): the page after the last it read, which brings requests
        where the last was cut (a day read by pages, thinned under the margin, was taken as the day's
        end: 768 of 2,224 requests of 200 a day lost every pull, 40% left out in odd weeks only). A
        server that ignores `page` answers it with the first page again: then the days of `parts`, a
        midnight before or after the request each is cut at, where they are narrower than the window
        (one day cannot be checked); where that request is in the window's last day (newest first; its
        first, oldest first), the days before (after) that day. A window of days whose answer, cut and
        thinned under the margin, held only its last day's requests was checked by none (its first day
        to its last, the window again) and taken whole: 789 requests of 140 a day lost, the pull ok
        (bench/open311_windows.py --page-ignored, once the end's day was seen included from the first)."""
        page = self.taken_pages + 1
        if not (page == 2 and self.first_page_again):   # (known to be the first again: not asked)
            yield start, end, page
            if page > 2 or _ids(self.following_page) != _ids(requests):
                return
        for part_start, part_end in parts:
            if part_start == start:   # (the days up to the request it is cut at, that day's whole)
                part_end = self._midnight(part_end - SECOND, 1)
                part_end = part_end if part_end < end else self._midnight(part_end - SECOND)
            else:
                part_start = self._midnight(part_start)
                part_start = part_start if part_start > start else self._midnight(part_start, 1)
            if start < part_end < end or start < part_start < end:
                yield max(start, part_start), min(end, part_end), 1

    def _read_again(self):
        """The windows taken whole that the margin, widened, would not take, read again split:
        the requests made in each that it did not yield (a cut answer thinned under the margin
        then). Reading them may widen the margin further, and more are read again."""
        while True:
            reference = self._reference()
            if self.unheld is not None and self._may_be_cut(self.unheld, self.page_size or self.remembered or reference):
                raise StartsOver("gone on from where a pull cut short stopped: windows taken whole before that "
                                 "point, in no state, are due to be read again, "
                                 "split, under the wider margin learned since")
            due = [w for w in self.taken if self._may_be_cut(w.count, reference)]
            if not due:
                break
            self.taken = [] if self.margin >= MARGIN_MAX else [w for w in self.taken if w not in due]
            for window in due:
                yield from self._read_split(window)

    def _read_split(self, window: Taken):
        half = max(1, int((window.end - window.start).total_seconds()) // 2)
        if self.days:
            half = max(1, self._days(half) // 2 * DAY)   # (whole days: halved in days)
        again = Windows(self.answer, window.start, window.end, {"start": window.start.isoformat(), "width": half,
                                                                "days": self.days, "inclusive": self.inclusive,
                                                                "days_known": self.days_known},
                        thinning=self.thinning, known=window.read, zone=self.zone)
        again.page_size, again.remembered, again.largest, again.margin, again.unlearned = \
            self.page_size, self.remembered, self.largest, self.margin, self.unlearned
        again.services, again.codes_met, again.statuses_met = self.services, self.codes_met, self.statuses_met
        again.refused = self.refused   # (a code refused in a window read again is refused in all)
        # (its windows taken whole join this reading's, and its doubtful ones: the checks go on here)
        again.auditing = again.settles_doubts = again.reaches_past = False
        again.inclusion_asked = True   # (asked by this reading, if at all)
        again.parts_thinning, again.first_page_again = self.parts_thinning, self.first_page_again
        # (what the server was shown to page, or not, and the requests read, are the pull's: counted here, as yielded)
        again.deepest, again.no_deeper, again.deeper_answers = self.deepest, self.no_deeper, self.deeper_answers
        again.read_by_day, again.unsure, again.counts_read = self.read_by_day, self.unsure, False
        try:
            for requests, _ in again:
                # (by whole days, the requests the server gives for its days, made when they were: a server
                # whose days are not the zone's gives some made hours outside it, in no other window)
                new = [r for r in requests if not window.has(_request_key(r))
                       and (self.days or window.start <= (_second(r) or window.start) < window.end)]
                if self.days:
                    new = [r for r in new if _request_key(r) not in self.read_again]
                    self.read_again.update(map(_request_key, new))
                self._count_read(new)
                yield new, self._going_on_from(reading_again=True)
        finally:
            # (its windows kept short are the run's errors even where the pull fails as it is read: the notices)
            self.asked += again.asked
            self.short += [message for message in again.short if message not in self.short]
            self.deepest, self.no_deeper = max(self.deepest, again.deepest), again.no_deeper
        self.largest = max(self.largest, again.largest)
        self.page_size = self.page_size or again.page_size
        self.sized_whole = self.sized_whole or again.sized_whole   # (days it took whole by size are this pull's)
        self.doubtful += [window for window in again.doubtful if window not in self.doubtful]
        self.doubts.update(again.doubts)
        for count in again.cuts:
            self._cut(count)
        self.margin = max(self.margin, again.margin)
        if self.margin < MARGIN_MAX:
            self.taken += again.taken

    def _ask(self, start: datetime, end: datetime, page: int = 1, filters: dict | None = None,
             end_asked: datetime | None = None) -> list:
        self.asked += 1
        end_asked = self._end_asked(end) if end_asked is None else end_asked
        if not filters:
            answer = self.answer(start, end_asked, page)
        else:
            answer = self.answer(start, end_asked, page,
                                 {name: ",".join(value) if isinstance(value, tuple) else value
                                  for name, value in filters.items()})
        if self.services is not None:   # (the statuses and codes its windows in doubt may be read by)
            for request in answer:
                if isinstance(request, dict) and len(self.codes_met) + len(self.statuses_met) < MAX_ITEMS:
                    if request.get("service_code") not in (None, ""):
                        self.codes_met.add(str(request["service_code"]))
                    if request.get("status") not in (None, ""):
                        self.statuses_met.add(str(request["status"]).lower())
        return answer

    def _end_asked(self, end: datetime) -> datetime:
        """The `end_date` asked for a window up to `end`: where whole days are read from a server seen
        to include the end's day, 23 hours before `end` (the shortest day of any zone: no two
        midnights of the server's are within it), so that the server's midnight in the window's
        last day, if any falls in those 23 hours, ends what it gives: the windows tile its days.
        Asked a second before `end`, that second fell in the server's day after the window where its
        days are not the portal's zone's (New York's read from UTC's days, UTC's from New York's or
        Tokyo's): every window overlapped the next by a day, 1.7 times the requests (bench/
        open311_windows.py --whole-days); still so where its midnight is in the hour after the
        zone's. A second before `end` for the window that reaches the pull's end (the server's day
        past `until` read now, not left to the next pull), and where the server is not known to read
        whole days (read by them because the pull before was, not yet checked: were it fixed, a
        server reading times would leave out the window's last day)."""
        if not (self.days and self.inclusive):
            return end
        return end - SHORTEST_DAY if self.days_known and end < self.until else end - SECOND

    def _sent(self, start: datetime, end: datetime, page: int = 1) -> str:
        """The window [start, end) as its request says it (in the portal's zone, with the offset)."""
        return request_text(_params(start, self._end_asked(end), page, self.zone))

    def _midnight(self, moment: datetime, days: int = 0) -> datetime:
        """The midnight of the zone's day of `moment` (in UTC), `days` days later."""
        day = moment.astimezone(self.zone).date() + timedelta(days=days)
        return datetime.combine(day, time(), tzinfo=self.zone).astimezone(UTC)

    def _midnight_after(self, moment: datetime) -> datetime:
        """The first midnight of the zone at or after `moment` (a window read again ends at its own)."""
        midnight = self._midnight(moment)
        return midnight if midnight == moment else self._midnight(moment, 1)

    @staticmethod
    def _days(seconds: int) -> int:
        """Whole days in a width of `seconds` (a day of a clock changed is 23 or 25 hours)."""
        return max(1, round(seconds / DAY))

    def _narrowest(self, start: datetime, end: datetime) -> bool:
        """Whether [start, end) cannot be narrowed: one second, or one day where whole days are read."""
        return end - start <= (timedelta(hours=25) if self.days else SECOND)

    @property
    def _unit(self) -> str:
        return "one day" if self.days else "one second"

    def _widen(self, count: int, width: int) -> None:
        """The next window's width, aiming at FILL of a page where P is known (the next
        window's requests unknown: a full answer costs one request and a narrower window)."""
        wider, page_size = 2 * width, self.page_size or self.remembered
        if page_size is not None and count:
            wider = min(wider, int(width * max(1, page_size * FILL) / count))
        self.width = max(1, min(wider, int(WINDOW.total_seconds())))

    def _whole(self, start: datetime, end: datetime) -> list | None:
        """The requests of [start, end) when they can be known whole without narrowing it;
        None: narrow it."""
        one_second = self._narrowest(start, end)   # (or one day, whole days read)
        try:
            requests = self._made_within(start, end, self._ask(start, end))
        except ResponseTooLarge as error:
            if not one_second:
                return None   # (narrower windows, smaller answers)
            raise ResponseTooLarge(f"{cap_reason(error)}: the window at {self._sent(start, end)} is {self._unit}, "
                                   "which cannot be narrowed, and a records pull never skips a row: the pull "
                                   f"fails, its previous records kept ({RAISE_THE_CAP})", error.url, error.status) from None
        count = len(requests)
        if count > (self.page_size or self.remembered or count):   # P grew: learned again
            self.page_size = self.remembered = None
        elif self.page_size is None and count == self.remembered:
            self.page_size, self.remembered = count, None   # the server gives P still: a smaller answer is not full
        largest = self.largest
        self.largest = max(largest, count)
        by_parts = bool(count) and self.days and self.services is not None and (self.ignores_page or self.first_page_again)
        if not self._may_be_cut(count, self.page_size or max(1, largest)) and not (by_parts and self._past_half()):
            # (by its size: were the server later seen past half, that proves nothing, and the pull starts over)
            self.sized_whole = self.sized_whole or by_parts
            self.taken_at, self.taken_pages = count, 1
            return requests
        if self.page_size is None and not one_second and not self.days:   # (whole days: narrowed, a day paged)
            verdict = self._checked(start, end, requests)
            if verdict is True:
                return requests
            if verdict is None or isinstance(verdict, bool):
                return None
            window, (start, end) = (start, end), (verdict, verdict + SECOND)   # every request of the window is in that second
        elif not one_second:
            # the outermost: its narrower windows tell whether it was cut; and each within it of a server
            # that ignores `page`, whose pages show nothing: its thinning was learned from the few
            # outermost windows only, so late that its cut answers were taken whole (200 a day for 20
            # days, 40% left out: 2,209 of 2,328 lost every pull)
            if not self.narrowed or self.ignores_page:
                if not self._pages_cut(start, end, requests, first_shown=False):   # (else counted cut)
                    newest = max((moment for moment in map(_second, requests) if moment is not None), default=None)
                    reach = min(end, newest + SECOND) if self.days and newest is not None else end
                    self.narrowed.append(Narrowed(end, set(_ids(requests)), count, reach))
            return None
        else:
            window = None
        return self._paged(start, end, requests, window)

    def _made_within(self, start: datetime, end: datetime, requests: list) -> list:
        """`requests`, the answer for [start, end); NotPullable where none of them was made
        within a day of it (a server's clock or zone hours off is no sign): a server that
        does not read the dates asked answers every window alike, each narrowed down to
        one second and read page after page, without end. NotPullable too where they were
        made further apart than the window is wide (by more than SPREAD): a server that reads
        the days of the dates asked but not their times (uReport chopped them, its issue #285)
        answered each one-second window with a whole day's requests, read one second after
        another, each yielded again: 53,678 rows of 386 requests for 40 days of Boston's,
        without end (IgnoresTimes: read again by whole days, which a server including the end's
        day answers with two until that is seen)."""
        seconds = [moment for moment in map(_second, requests) if moment is not None]
        if seconds and not any(start - SLACK <= moment <= end + SLACK for moment in seconds):
            raise NotPullable(f"the window at {self._sent(start, end)} was answered with requests made from "
                              f"{_stamp(min(seconds), self.zone)} to {_stamp(max(seconds), self.zone)}, none within a "
                              "day of it: the "
                              "server does not read start_date/end_date, and its requests cannot be read window by "
                              "window")
        if seconds:
            self._within_width(start, end, min(seconds), max(seconds))
        return requests

    def _within_width(self, start: datetime, end: datetime, low: datetime, high: datetime, pages: int = 1) -> None:
        """IgnoresTimes where the requests the window [start, end) was answered with, over `pages` of
        it, were made from `low` to `high`, further apart than it is wide (by more than SPREAD): a
        server that reads the days asked but not their times (not by whole days: a day's requests)."""
        if high - low > end - start + SPREAD and not self.days:
            over = f", over {pages} pages," if pages > 1 else ""
            raise IgnoresTimes(f"the window at {self._sent(start, end)} was answered{over} with requests made from "
                               f"{_stamp(low, self.zone)} to {_stamp(high, self.zone)}, further apart than the "
                               f"window is wide: {IGNORES_TIMES}")

    def _checked(self, start: datetime, end: datetime, requests: list) -> bool | datetime | None:
        """Whether an answer as large as the largest yet held its whole window (P unknown):
        True; False: it did not (P learned); None: cannot tell here (narrow the window); a
        second: every request of the window is in that one second.

        The window is cut inside the span of the answer's requests, so that each part holds
        some of them. An answer is the first P requests of its window in the server's order:
        were it full, a part that brings nothing it lacks would be full too, with P of its
        requests, all of them, leaving the other part's requests in it none; so two parts that
        bring nothing new and some requests each show it held the whole window. The cut is next
        to the end the answer stops at (a second after its oldest request, newest first; at its
        newest, oldest first; the middle where it is in no order): were it full, the part beyond
        brings nearly P requests it lacks, too many for a server that leaves some out after
        cutting to leave out all. (Cut in the middle, a part of mostly the answer's requests
        brought only the few just beyond it, all private now and then: a full answer taken as
        whole, 36 of 70 public requests lost every pull.)"""
        seconds = [_second(r) if isinstance(r, dict) else None for r in requests]
        if None in seconds or not start <= min(seconds) <= max(seconds) < end:
            return None   # (no usable `requested_datetime` to cut by)
        low, high = min(seconds), max(seconds)
        if low == high:   # all in one second: is anything outside it?
            parts = [(start, low), (low + SECOND, end)]
        elif high - low < 2 * SECOND:
            return None
        else:
            if seconds == sorted(seconds, reverse=True):
                cut = low + SECOND
            elif seconds == sorted(seconds):
                cut = high
            else:
                cut = low + timedelta(seconds=int((high - low).total_seconds()) // 2)
            parts = [(start, cut), (cut, end)]
        answers = [self._ask(a, b) if a < b else [] for a, b in parts]
        self._apart(parts, answers)
        known = set(_ids(requests))
        if any(set(_ids(answer)) - known for answer in answers):
            self.page_size = len(requests)   # it left requests out: a full page
            self._cut(len(requests))
            self._pages_cut(start, end, requests, first_shown=True)
            return False
        if low == high:
            # (an inclusive `end_date` puts that second in the part before it: newest first, its
            # requests may fill that part's answer, which then shows nothing of the days before)
            return None if any(_second(r) == low for r in answers[0] if isinstance(r, dict)) else low
        return True if all(answers) else None   # (a part with none: one removed as it was checked)

    def _apart(self, parts: list[tuple[datetime, datetime]], answers: list[list]) -> None:
        """NotPullable where two windows side by side both gave requests made in more than one
        second: only the second at their edge is in both (an inclusive `end_date`, read in any
        zone). A server that reads the days asked, the end's included, and ignores `page` gave
        both parts of a full answer its first page again: nothing new, so the answer was taken
        as its window's whole (1,995 of 2,045 requests of 20 days lost unsaid)."""
        both = set(_ids(answers[0])) & set(_ids(answers[1]))
        seconds = {_second(r) for r in answers[1] if isinstance(r, dict) and str(r.get("service_request_id")) in both}
        if len(seconds - {None}) > 1:
            (start, cut), (_, end) = parts
            raise IgnoresTimes(f"the windows at {self._sent(start, cut)} and {self._sent(cut, end)} both gave "
                               f"{len(both)} requests made from {_stamp(min(seconds - {None}), self.zone)} to "
                               f"{_stamp(max(seconds - {None}), self.zone)}: {IGNORES_TIMES}")

    def _pages_cut(self, start: datetime, end: datetime, first: list, first_shown: bool) -> bool:
        """While the server's thinning is not known: the next pages of [start, end), whose answer
        `first` may be a cut page (`first_shown`: shown cut, and counted), asked for their sizes
        only (their requests are read in narrower windows), until CUTS_TO_LEARN cut answers are
        seen: each page followed by one that brings requests was cut. A cut page shows P is at
        least its size. Without them, a server that thins learned P from a thinned answer (a
        city whose requests start after empty windows: its first window's) and took its cut
        answers, thinned as much, as whole, never seeing them cut, so never learning the
        thinning: 100 a day for 30 days, 40% left out, lost 1,740 of 1,766 every pull. True:
        `first` was shown cut here."""
        page, seen = first, set(_ids(first))
        for number in range(2, CUTS_TO_LEARN + 2):
            if self.remembered_thinning is not None or self.ignores_page or len(self.cuts) >= CUTS_TO_LEARN:
                break
            try:
                following = self._ask(start, end, number)
            except ResponseTooLarge:
                break   # (its requests are read in narrower windows, as any answer over the cap)
            if not set(_ids(following)) - seen:
                # (the window's last page; a server that ignores `page` repeats the first: not asked again)
                self.ignores_page = number == 2 and bool(following) and _ids(following) == _ids(first)
                if self.ignores_page:
                    self.margin, self.unlearned = MARGIN_MAX, True
                break
            if page is not first or not first_shown:
                self._cut(len(page))
                self.page_size = max(self.page_size or 0, len(page))
            page = following
            seen.update(_ids(page))
        return page is not first and not first_shown

    def _paged(self, start: datetime, end: datetime, first: list, window: tuple[datetime, datetime] | None = None
               ) -> list:
        """A one-second window whose answer may be a full page: its pages, read until two
        readings agree page by page (a request removed between pages moves the rest). `first`:
        its page 1, or the answer of the wider `window` whose requests were all made in it."""
        readings = [self._reading(start, end, first)]
        # (a server that ignores `page` gives one answer, read once: no page of it moves as the others are read.
        # Read again, each one-day window cost 6 requests where 1 does: 5,000 of a bench row's 25,000)
        while not self.one_answer:
            if len(readings) == PASSES:
                raise PagesDisagree(f"the pages of the {self._unit} at {self._sent(start, end)} did not agree in "
                                    f"any two readings of {PASSES} (requests added or removed as they were read, or a "
                                    "page repeating requests of the pages before it): the pull fails, its previous "
                                    f"records kept, and the next pull reads that {self._unit[4:]} again")
            readings.append(self._reading(start, end))
            if None not in readings[-2:] and [_ids(p) for p in readings[-1]] == [_ids(p) for p in readings[-2]]:
                break
        requests = [request for page in readings[-1] for request in page]
        if window is not None:
            self._second_answered(start, end, window, set(_ids(first)) - set(_ids(requests)))
        return requests

    def _second_answered(self, start: datetime, end: datetime, window: tuple[datetime, datetime],
                         lacked: set[str]) -> None:
        """NotPullable where the wider `window`, asked again, still gives requests made in the second
        [start, end) that the second's own answers `lacked`: gone from both, they were removed as it
        was read. A server that reads the days of the dates asked, the end's day excluded (a date
        chopped to midnight, `<=`), answers a window within one day with nothing: the one request of
        a window of Boston's, made in one second, was lost unsaid (every other window's requests came
        in the next window to cross a midnight)."""
        if not lacked:
            return
        still = lacked & set(_ids(self._ask(*window)))
        if still:
            raise IgnoresTimes(f"the window at {self._sent(*window)} gives {len(still)} request(s) made in the one "
                               f"second at {self._sent(start, end)} (e.g. {sorted(still)[0]!r}), which that second's "
                               f"own answers lack: {IGNORES_TIMES}")

    def _reading(self, start: datetime, end: datetime, first: list | None = None) -> list[list] | None:
        """One reading of a one-second window's pages, up to one short of a full page; None:
        a later page of requests all on its earlier pages (a stale or repeated page)."""
        self.taken_at, self.one_answer = None, False
        pages = [self._ask(start, end) if first is None else first]
        seconds = [moment for moment in map(_second, pages[0]) if moment is not None]
        low, high = min(seconds, default=None), max(seconds, default=None)
        while pages[-1]:
            # (page 2 of a server shown to answer it with the first page, twice: the first again, not asked)
            page = pages[0] if len(pages) == 1 and self.first_page_again else self._ask(start, end, len(pages) + 1)
            # every page's requests made within the window's width, as the first's (_made_within): a server
            # reading whole days, the end's day left out, answered a second before a midnight with its day,
            # page 1 the day's last 50 requests, made within an hour where they come a minute apart: the
            # pull read a day's pages second by second, and where the server pages no deeper named the
            # second as kept short, where the day was
            seconds = [moment for moment in map(_second, page) if moment is not None]
            if seconds:
                low, high = min(seconds + [low] * bool(low)), max(seconds + [high] * bool(high))
                self._within_width(start, end, low, high, len(pages) + 1)
            if len(pages) > 1 and page and set(_ids(page)) <= {key for seen in pages for key in _ids(seen)}:
                return None
            if len(pages) == 1 and page and _ids(page) == _ids(pages[0]):
                if not self.first_page_again:
                    page = self._ask(start, end, 2)   # (a stale page is not repeated)
                if _ids(page) == _ids(pages[0]):
                    self.first_page_again = self.one_answer = True   # (the server ignores `page`)
                    if self.page_size is None and self._gives_more_than(len(pages[0]), start):
                        # a server that ignores `page`, shown to give more at once: taken whole, unless the
                        # answers the pull ends with say that it may be cut all the same (_settle_doubts)
                        if self._doubted(len(pages[0]), self.largest) and \
                                start.isoformat() not in (window[0] for window in self.doubtful):
                            self.doubtful.append([start.isoformat(), end.isoformat(), len(pages[0]), self.largest])
                        return pages
                    if self.services is not None:   # (as full as any answer: read by parts at the pull's end)
                        if start.isoformat() not in (window[0] for window in self.doubtful):
                            self.doubtful.append([start.isoformat(), end.isoformat(), len(pages[0]),
                                                  max(self.largest, len(pages[0]))])
                        return pages
                    raise NotPullable(
                        f"the {self._unit} at {self._sent(start, end)} holds at least the "
                        f"{self.page_size or len(pages[0])} requests the server gives in one answer"
                        f"{'' if self.page_size else ' (none of the 90 days either side gave more)'}, and the server "
                        "ignores `page`: the others cannot be read, and a records pull never skips a row")
            if page and set(_ids(page)) - {key for seen in pages for key in _ids(seen)}:
                self._cut(len(pages[-1]))   # a page after it: it was full
                if self.page_size is None:
                    self.page_size = len(pages[0])
            pages.append(page)
            if not self._may_be_cut(len(page), self.page_size or len(pages[0])):
                self.taken_at = len(page) or None   # (an empty page: the end, whatever the margin)
                self.taken_pages = len(pages)
                if not page:
                    self._last_page(start, end, pages[:-1])
                break
        return pages

    def _last_page(self, start: datetime, end: datetime, pages: list[list]) -> None:
        """A one-second (by whole days, one-day) window's `pages` ended by an empty page after one that may
        be full (within the margin of P): the window held exactly so many pages, or the server pages no
        deeper (a cap on `page`, as on an offset), the rest of it unread. A cap is the server's, not the
        window's: the page after the last of the 90 days up to `end` (else from `start`) is asked (_pages_deeper) and, given,
        shows the server pages deeper, the empty page the window's end: taken whole. Else a one-second
        window is read again by parts at the pull's end (as a full answer of a server that ignores `page`);
        a day, or a second whose parts cannot tell, is kept as read, the rest of it lost: an error of the
        run naming it (`short`), every other window kept. Before, a second taken as ended there lost 100 of
        the 300 requests of one second from a server paging 4 pages deep, the pull ok; then (session 44) a
        second of exactly 2 pages on an endpoint listing no codes failed its pull every night; and a day so
        ended was taken whole, what its server paged no deeper lost unsaid (docs/records.md)."""
        before = pages[-1] if pages else []
        if self.page_size is None or not before or not self._may_be_cut(len(before), self.page_size):
            return
        if self._pages_deeper(start, end, len(pages)):
            return
        read = sum(len(page) for page in pages)
        if self.days or self.services is None:
            # (a day's parts, at the cap, cost half as much again as the pull and failed 1 to 11 pulls of 100:
            # bench/open311_windows.py --whole-days, session 44)
            message = self._short(start, end, len(pages), read, "")
            if (self.no_deeper is None or len(pages) < self.no_deeper) \
                    and start.isoformat() not in (window[0] for window in self.unsure):
                self.unsure.append([start.isoformat(), end.isoformat(), len(pages), message])   # (asked again at the end)
        elif start.isoformat() not in (window[0] for window in self.doubtful):
            self.doubtful.append([start.isoformat(), end.isoformat(), len(before), max(self.largest, self.page_size),
                                  len(pages), read])

    def _pages_deeper(self, start: datetime, end: datetime, depth: int) -> bool:
        """Whether the server gives a page after page `depth`: that page of the 90 days up to `end`, else of
        those from `start` (a city's 90 days hold more than a second's or a day's requests; the days before
        its first requests hold none: asked of the 90 days before only, 303 of the first days of
        --whole-days 100's cities were taken as paged no deeper), or a deeper page shown before. A server
        that pages no deeper answers both with none, as does one whose 180 days hold no more: where the pull
        read more than a page beyond `depth` in one of them (_held), the server is shown to page no deeper
        (`no_deeper`, remembered for the pull: its windows ended so are not asked about again, 2 requests a
        capped day, 4 where a day's pages are read twice); where neither tells, the span of 90 days the pull
        read the most requests in is asked (_busiest: a cap is the server's, not the window's; a city quiet
        for 90 days either side of a window told apart by its busy days). Each span asked once a pull
        (deeper_answers). One request a pull (two at a city's start) where the server pages as deep as its
        windows need."""
        if self.deepest > depth:
            return True
        if self.no_deeper is not None and depth >= self.no_deeper:
            return False
        if self.days:   # (whole days: from a midnight to a midnight, within 90 days)
            spans = [(self._midnight(end - WINDOW, 1), end), (start, self._midnight(start + WINDOW))]
        else:
            spans = [(end - WINDOW, end), (start, start + WINDOW)]
        for since, until in spans:
            if self._given(since, until, depth):
                return True
            if self._no_deeper_shown(since, until, depth):
                return False
        busiest = self._busiest()
        if busiest is None or busiest in spans or self._held(*busiest) <= (depth + 1) * self._reference():
            return False   # (nothing tells: the window kept short, saying the server may page no deeper)
        if self._given(*busiest, depth):
            return True
        self._no_deeper_shown(*busiest, depth)
        return False

    def _given(self, since: datetime, until: datetime, depth: int) -> bool:
        """Whether the server gives page `depth` + 1 of [since, until) (asked once a pull)."""
        key = (since, until, depth + 1)
        if key not in self.deeper_answers:
            try:
                self.deeper_answers[key] = bool(self._ask(since, until, depth + 1))
            except PermanentError:   # (too large, or refused: it tells nothing)
                self.deeper_answers[key] = None
        if self.deeper_answers[key]:
            self.deepest = max(self.deepest, depth + 1)
        return bool(self.deeper_answers[key])

    def _no_deeper_shown(self, since: datetime, until: datetime, depth: int) -> bool:
        """Whether [since, until), whose page `depth` + 1 the server gave none of (_given), holds more than
        a page beyond it as the pull read it (_held): the server pages no deeper than `depth` (`no_deeper`)."""
        if self.deeper_answers.get((since, until, depth + 1)) is not False \
                or self._held(since, until) <= (depth + 1) * self._reference():
            return False
        if self.no_deeper is None or depth < self.no_deeper:
            self.no_deeper = depth
            log.warning("the server gives no page %d of the window at %s, which it holds more requests in: it pages "
                        "no deeper than page %d", depth + 1, self._sent(since, until, depth + 1), depth)
        return True

    def _count_read(self, requests: list) -> None:
        """The requests yielded counted by the zone's day they were made in (_held)."""
        if not self.counts_read:
            return
        for request in requests:
            moment = _second(request) if isinstance(request, dict) else None
            if moment is not None:
                day = moment.astimezone(self.zone).toordinal()
                self.read_by_day[day] = self.read_by_day.get(day, 0) + 1

    def _held(self, since: datetime, until: datetime) -> int:
        """The requests the pull read made in [since, until): those of its whole days of the zone but the
        first and last (a server's days may be hours off the zone's), at most what the server holds there."""
        first, last = since.astimezone(self.zone).toordinal(), until.astimezone(self.zone).toordinal()
        return sum(self.read_by_day.get(day, 0) for day in range(first + 2, last - 1))

    def _busiest(self) -> tuple[datetime, datetime] | None:
        """The span of at most 90 days (89 and an hour a clock goes back) whose whole days the pull read the
        most requests in, as _held counts them; None: none read."""
        days = sorted(self.read_by_day)
        best, total, low, span = 0, 0, 0, None
        for day in days:
            total += self.read_by_day[day]
            while day - days[low] > 85:
                total -= self.read_by_day[days[low]]
                low += 1
            if total > best:
                best, span = total, (days[low], day)
        if span is None:
            return None
        return tuple(datetime.combine(date.fromordinal(day), time(), tzinfo=self.zone).astimezone(UTC)
                     for day in (span[0] - 2, span[1] + 2))

    def _ask_unsure_again(self) -> None:
        """The days kept short while nothing told whether the server pages deeper (_last_page), asked about
        again once the pull has read all (_pages_deeper: the span it read the most requests in may tell): a
        day of a server shown to page deeper is whole, its error dropped."""
        for start, end, pages, message in self.unsure:
            if self._pages_deeper(datetime.fromisoformat(start), datetime.fromisoformat(end), pages) \
                    and message in self.short:
                self.short.remove(message)
        self.unsure.clear()

    def _short(self, start: datetime, end: datetime, pages: int, read: int, why: str) -> str:
        """The window [start, end) kept as read, the rest of it unread (_last_page): an error of the run."""
        if self.no_deeper is not None and pages >= self.no_deeper:
            cap = (f"pages no deeper than page {self.no_deeper} (its page {self.no_deeper + 1} of 90 days it holds "
                   "more requests in was empty)")
        else:
            cap = f"gives no page {pages + 1} of the 90 days up to it or from it either: it may page no deeper"
        message = (f"the {self._unit} at {self._sent(start, end)} gave {pages} full page(s), {read} requests, then "
                   f"an empty page, and the server {cap}, and the {self._unit}'s requests past those {read} are "
                   f"unread{why} (the {self._unit} cannot be narrowed; every other window read whole)")
        if message not in self.short:
            self.short.append(message)
            log.warning("%s", message)
        return message

    def _settle_doubts(self):
        """The windows taken whole by _reading against a larger answer that may be cut ones under the
        margin the pull ends with: the answer of a server that cuts at its cap, then leaves some
        requests out (private service types), may be smaller than another cut answer it thinned less,
        so an answer larger does not show that the server gives more than it at once. Taken whole so,
        the days of a server that reads whole days, ignores `page` and leaves out 8 of every 20
        requests after cutting at 50 (31 given of 400, 34 by 90 days beside it) lost 1,899 of 2,148
        requests, the pull ok (bench/open311_windows.py --page-ignored). Settled at the end, not as the
        window is read: the margin is then learned (a server that thins none is read at half of P until
        it is), and nothing read is published until the pull ends. Each still in doubt is read again
        by parts (_by_parts; the requests they give that no answer around it gave are yielded), else
        (or where its parts cannot tell) NotPullable, naming it. In doubt: within the margin of
        _parts_margin, not the pull's; the windows settled while the server was taken to leave nothing
        out of a cut answer are settled again once a part shows that it does (a day's part taken whole
        so, 25 of 50 where every other request of it was left out: 5 lost, the pull ok)."""
        # the windows settled while the server was taken to leave nothing out of a cut answer: settled again
        # once a part shows otherwise (_by_parts), under the bound of a server that does
        narrowly: list[list] = []
        for window in list(self.doubtful):
            thins_none = self._thins_none()
            yield from self._settle(window)
            self._past_half_seen()
            if self._thins_none():
                narrowly.append(window)
            elif thins_none:   # (shown by this window's parts, which were judged again there)
                for again in narrowly:
                    if again not in self.doubtful:   # (in the state again while it is read: one cut short starts over)
                        self.doubtful.append(again)
                    yield from self._settle(again)
                narrowly = []
        # (also where no window was left in doubt: a pull gone on from the state of one cut short after its last
        # window settled, whose days taken whole by size the state keeps)
        self._past_half_seen()

    def _past_half_seen(self) -> None:
        """PastHalf where days were taken whole by their answers' size and the server is now seen past half."""
        if self.sized_whole and self.restarts and self._past_half():
            raise PastHalf(f"the server leaves out up to {self.kept_thinning:.0%} of a cut answer, so more than "
                           "half of some: days taken whole by their answers' size may have been cut, and are "
                           "read again by parts")

    def _settle(self, window: list):
        """One window in doubt settled: taken whole where its answer is not doubted (now), else read by
        parts, the requests no answer around it gave yielded."""
        start, end, count, largest = window[:4]
        paged = window[4:6]   # (a second paged no deeper, _last_page: its pages and requests read)
        largest = max(largest, self.largest)
        if not self._doubted(count, largest):
            return
        doubt, start, end = self.doubts.get(start), datetime.fromisoformat(start), datetime.fromisoformat(end)
        if paged and self._pages_deeper(start, end, paged[0]):   # (shown at the pull's end: its empty page its end)
            self.doubtful.remove(window)
            return
        if doubt is None:   # (not read by parts: a server not known to read them, or a window from a state)
            others = f" (and {len(self.doubtful) - 1} more of the pull's)" if len(self.doubtful) > 1 else ""
            raise NotPullable(f"{self._in_doubt(start, end, count, largest, others)}, its other requests "
                              "unreadable, and a records pull never skips a row")
        try:
            requests = self._by_parts(start, end, count, largest, doubt)
        except NotPullable as error:
            if paged:   # (its pages kept, the rest of it an error of the run: the pull not failed every night)
                self.doubtful.remove(window)
                why = str(error).rsplit("; read by parts", 1)[-1].removesuffix(", and a records pull never skips a row")
                self._short(start, end, *paged, f" (read by parts{why})")
                return
            if count >= largest - int(largest * self._parts_margin()):
                raise
            # (in doubt only past half, where its parts cannot tell: its requests of no code, one code at the
            # cap: taken whole by its size, as before, not failing a pull that may have read it all)
            self.doubtful.remove(window)
            return
        if self._parts_end(end) != self._end_asked(end):   # (the last window's parts: its last day alone too)
            requests += self._last_day(start, end, count, largest, doubt, requests)
        self.doubtful.remove(window)
        new = [r for r in requests if not doubt.has(key := _request_key(r)) and key not in self.read_again
               and key not in self.settled]
        self.settled.update(map(_request_key, new))
        self._count_read(new)
        yield new, self._going_on_from()

    def _last_day(self, start: datetime, end: datetime, count: int, largest: int, doubt: Doubt,
                  found: list) -> list:
        """The server's day of the pull's last second, asked alone (from and to that second: one day of
        a server including the end's day), after the last window's parts (asked to 23 hours before its
        end, _parts_end): where the server's days are not the portal's zone's, that day is not theirs,
        and of it only what the window's cut answer held was read, the pull ok (611 of the 4,984
        requests of 30 cities' last days from New York's days read in UTC's, bench/open311_windows.py
        --page-ignored; the next pull read them, from 90 days back, but a portal retired after the pull
        never published them). Its answer, if it gives a request the parts lacked, is that day's: taken
        whole under the cap the parts are judged by, else read by parts. Where it gives none (the same
        day as the parts', in the portal's zone), one request more."""
        second = end - SECOND
        answer = self._ask(second, end, 1, None, second)
        if not {*map(_request_key, answer)} - {*map(_request_key, found)}:
            return []
        self.largest = largest = max(largest, self.largest, len(answer))
        if len(answer) < largest - int(largest * self._parts_margin()):
            return answer
        return self._by_parts(start, end, count, largest, doubt, last_day=answer)

    def _parts_end(self, end: datetime) -> datetime:
        """The `end_date` a window in doubt's parts are asked to (_by_parts): as the windows are now, but the
        window that reaches the pull's end, asked a second before its end, to 23 hours before: it held the
        server's day after its own where the server's days are not the zone's, and one code of one status of
        the two days stayed at the cap (bench: 1 pull of 100, UTC's days from New York's). That day is asked
        alone after them (_last_day)."""
        end_asked = self._end_asked(end)
        return end - SHORTEST_DAY if end_asked == end - SECOND and self.days_known else end_asked

    def _thins_none(self) -> bool:
        """Whether the server is taken to leave nothing out of a cut answer (it cuts at its cap, or
        leaves requests out before the cut): not seen to, every answer shown cut as large as the largest
        (a thinning of none learned, by this pull or the one before, or none yet), no part either. Seen by
        the pull before (its thinning kept, kept_thinning), not unseen by this one's cuts as large as the
        largest: the cuts of a day's answers show nothing of how the server thins its parts."""
        return not self.thinning and not self.remembered_thinning and not self.parts_thinning \
            and all(cut >= self.largest for cut in self.cuts)

    def _parts_margin(self) -> float:
        """The share of the largest answer a part's answer (or a one-day answer of a server that ignores
        `page`, to be read by parts) may fall short of it and still be a cut one. An answer under the cap
        proves the part whole only where the server cuts at its cap and leaves nothing out after the cut
        (_thins_none: within DROPPED of it, as the windows). A server seen to leave requests out after the
        cut may leave out more of one part than of those it was seen to: which requests it leaves out
        (private ones, of a status or of a service type) differ from part to part, so no margin learned
        from some parts holds for another (one status thinned 25% where the other was not: 559 of 1,417
        lost, the pull ok). Then only an answer under half of the largest proves its part whole: this
        assumes no cut answer has more than half of its requests left out (MARGIN_MAX, the widest margin
        of any window); a part at half of the largest or more is split, one code of one status that is
        fails the pull, naming it."""
        return max(self.margin, DROPPED) if self._thins_none() else MARGIN_MAX

    def _doubted(self, count: int, largest: int) -> bool:
        """Whether the one-second (one-day) answer of `count` requests of a server that ignores `page`
        may be a cut one, against the `largest` answer: where it can be read by parts, within the margin
        its parts are judged by (_parts_margin: not the margin learned so far where the server leaves
        requests out, which a day thinned more than those it was learned from is under); else within
        the margin."""
        if self.services is None:
            return self._may_be_cut(count, largest)
        if self._past_half():   # (no size proves it whole: only an answer of none)
            return count > 0
        return count >= largest - int(largest * self._parts_margin())

    def _past_half(self) -> bool:
        """Whether the server is seen to leave out so much of a cut answer (the windows' thinning, a part's
        shown cut, or the pull before's) that the margin it would be read at (_margin: twice that and 2%) is
        wider than half: one that leaves out over 24% on the whole leaves out more than half of some cut
        answers, past what the half rule assumes (_parts_margin), so an answer's size proves nothing whole
        (at 50% or more seen, the first try, a private type of half still lost others' requests: the
        thinning is seen against the largest answer, itself thinned). A private service type of half the requests
        or more: its days' answers, cut and then thinned by it, under half of the largest, were taken whole,
        and so were their parts by status, which hold it (the others' requests behind each cut lost, the
        pull ok: 1,476 to 5,168 of a row's, bench/open311_windows.py --private-type). Then each day (or
        second) a server that ignores `page` answers with any request is read by parts (_whole), and a part
        holding the codes met beside a code listed and never met or refused is split by them (_mixes): the
        private type apart, the parts of the codes met are thinned by none of it."""
        seen = max(self.thinning or 0.0, self.parts_thinning or 0.0, self.remembered_thinning or 0.0)
        return 2 * seen + 0.02 > MARGIN_MAX

    def _in_doubt(self, start: datetime, end: datetime, count: int, largest: int, others: str = "",
                  end_asked: datetime | None = None) -> str:
        sent = self._sent(start, end) if end_asked is None else request_text(_params(start, end_asked, 1, self.zone))
        return (f"the {self._unit} at {sent}{others} answers {count} requests, within "
                f"{self.margin:.0%} of the largest answer the server gave ({largest}), and the server ignores "
                "`page`: it may be an answer cut at the server's cap with requests left out after the cut (the "
                f"server is seen to leave out up to {self.thinning or 0:.0%} of a cut answer)")

    def _by_parts(self, start: datetime, end: datetime, count: int, largest: int, doubt: Doubt,
                  last_day: list | None = None) -> list:
        """The requests of a window in doubt that cannot be narrowed (one day, or one second), read by
        parts: GeoReport v2's `requests.json` also filters by `status` (open or closed) and by
        `service_code` (comma-separated lists of them), and a part answered under the cap (by the
        margin of _parts_margin, which states what that assumes) is complete. First by status (open, closed, and any other met in the pull), a part
        still at the cap then by service codes (services.json's and any other met in the pull's
        answers: real servers give codes they do not list), split while at the cap by what its answer gave
        of each code (_narrower), down to one code.
        The parts hold every request of the window that has one of the statuses and one of the codes
        asked. NotPullable, naming the window (a records pull never skips a row), where: one code of
        one status is still at the cap; a part gives a request of a status or code not asked (a server
        that ignores `status` or `service_code` answers every part alike); or a request of the window's
        answer or of a part's is in no part taken whole (a status or code asked by none, or no code:
        a part split holds it too, cut). A part split whose narrower parts gave requests its answer
        lacked, under the largest answer, shows the server leaves requests out after the cut: the parts
        taken whole as under the cap of one that does not are split after all (and the pull's other
        windows settled so, _settle_doubts). Its parts are asked to the end its windows are asked to
        now: the end's day left out where the server is seen to include it since the window was read
        (its answer's requests of the day after came in the window after; the parts' own span is then
        asked once whole, for the check of requests in no part). A request of a code neither
        listed nor met in any answer of the pull, made where no answer of the window showed it (past
        its cap), is the one the parts cannot see (docs/records.md). Cost: two requests a window
        whose parts by status are under the cap; a part by codes about two per P of its requests."""
        def failed(reason: str) -> NotPullable:
            return NotPullable(f"{self._in_doubt(start, end, count, largest, end_asked=doubt.end_asked)}; read by "
                               f"parts{sent}, {reason}, and a records pull never skips a row")

        # (`last_day`: the server's day of the pull's last second, asked alone, its answer that: _last_day)
        end_asked = self._parts_end(end) if last_day is None else end - SECOND
        asked_from = start if last_day is None else end_asked
        sent = "" if end_asked == doubt.end_asked and last_day is None else \
            f" from start_date={_stamp(asked_from, self.zone)} to end_date={_stamp(end_asked, self.zone)}"

        found: dict[int, dict] = {}
        statuses = (*STATUSES, *sorted(self.statuses_met - set(STATUSES)))
        pending: list[dict] = [{"status": status} for status in statuses]
        # the parts taken whole and split (filters, size, their answers' keys each)
        taken: list[tuple[dict, int, set[int]]] = []
        split: list[tuple[dict, int, set[int]]] = []
        answers: dict[tuple, list] = {}   # each part's answer, by its filters (what a part is split by)
        while pending:
            filters = pending.pop(0)
            try:
                answer = self._ask(asked_from, end, 1, filters, end_asked)
            except PermanentError as error:
                codes = filters.get("service_code") or ()
                if isinstance(error, ResponseTooLarge) or error.status not in REFUSALS or not codes:
                    raise
                if len(codes) > 1:   # (which of its codes the server refuses: each half asked)
                    pending[:0] = [{**filters, "service_code": codes[:len(codes) // 2]},
                                   {**filters, "service_code": codes[len(codes) // 2:]}]
                else:
                    self._refused(codes[0], error)
                continue
            asked = ", ".join(f"{name}={','.join(value) if isinstance(value, tuple) else value}"
                              for name, value in filters.items())
            if any(not _asked(request, filters) for request in answer):
                request = next(request for request in answer if not _asked(request, filters))
                raise failed(f"the part {asked} gave request {_ids([request])[0] if isinstance(request, dict) else request!r}"
                             f" of status {_field(request, 'status')} and service code "
                             f"{_field(request, 'service_code')}: the server does not read `status` or `service_code`")
            self.largest = largest = max(largest, len(answer))
            found.update((_request_key(request), request) for request in answer)
            answers[_part(filters)] = answer
            # (a larger answer later does not undo it: the cap is at least the largest answer when it was taken)
            whole = len(answer) < largest - int(largest * self._parts_margin()) \
                and not self._mixes(filters, start, end_asked)
            narrower = [] if whole else self._narrower(filters, answer, start, end_asked, largest)
            if whole or not narrower and self._shown_whole(filters, answer, asked_from, end, end_asked):
                taken.append((filters, len(answer), set(map(_request_key, answer))))
            else:
                if not narrower:
                    raise failed(f"the part {asked} answers {len(answer)} requests, within "
                                 f"{self._parts_margin():.0%} of the largest answer too, and cannot be split further")
                split.append((filters, len(answer), set(map(_request_key, answer))))
                pending[:0] = narrower
            if not pending:
                # a part split whose narrower parts gave requests its answer lacked was cut: under the largest
                # answer, the server leaves requests out after the cut (kept for the next pull, kept_thinning),
                # and the parts taken whole as under the cap of one that does not are judged again, under half
                # of it
                thinned_none = self._thins_none()
                self.parts_split = self.parts_split or bool(split)
                shown = [size for filters, size, keys in split if size < largest and any(
                    key not in keys for key, request in found.items() if _asked(request, filters))]
                if shown:
                    self.parts_thinning = max(self.parts_thinning or 0.0, 1 - min(shown) / largest)
                again = [part for part in taken if thinned_none and
                         (part[1] >= largest - int(largest * self._parts_margin()) or self._mixes(part[0], start, end_asked))]
                taken = [part for part in taken if part not in again]
                for filters, _, _ in again:
                    # (one code asked again: it fails the pull)
                    pending += self._narrower(filters, answers[_part(filters)], start, end_asked, largest) or [filters]
        # the keys the parts taken whole gave (not those of the parts split): each request of any answer is one
        whole = {key for _, _, keys in taken for key in keys}
        # (asked to an earlier end than its answer was, the answer of the span its parts were asked for)
        answered = map(_request_key, last_day) if last_day is not None else doubt.answer \
            if end_asked == doubt.end_asked else map(_request_key, self._ask(start, end, 1, None, end_asked))
        missing = sum(1 for key in {*answered, *found} if key not in whole)
        if missing:
            example = next((request for key, request in found.items() if key not in whole), None) or next(
                (r for r in self._ask(asked_from, end, 1, None, end_asked) if _request_key(r) not in whole), {})
            raise failed(f"{missing} of its requests came in no part (e.g. {_ids([example])[0]!r}, of status "
                         f"{_field(example, 'status')} and service code {_field(example, 'service_code')}): a status or "
                         "service code asked by none")
        return list(found.values())

    def _narrower(self, filters: dict, answer: list, start: datetime, end: datetime, largest: int) -> list[dict]:
        """The parts a part at the cap is split into, by its service codes (services.json's and those met,
        where it has none yet): in groups whose requests its `answer` (asked from `start` to `end`)
        says are under the cap each (_by_counts), else its codes halved; none where it is one code.
        Halved whatever the answer held, a part of 40 codes, one of them most of its requests, was
        split level after level down to that code: what it answered said so at the first.
        The codes no answer of the pull gave are grouped apart from those met: a private service type
        (listed, its requests never given) is one, and beside public codes in a part it was most of the
        part's cut, left out, the part's answer under half of the largest and taken whole (the half rule
        assumes no cut answer thinned by more than half): 10 and 42 of 1,130 and 1,691 requests lost, the
        pull ok (200 and 300 a day, one in three of a private type). Apart, its part answers nothing, and
        the codes met are thinned by none of it."""
        codes = filters.get("service_code")
        if codes is None:
            if self.listed is None:   # (services.json asked once a pull, where a part needs its codes)
                self.listed = [str(code) for code in self.services() if code not in (None, "")]
            codes = tuple(dict.fromkeys([*self.listed, *sorted(self.codes_met)]))
        if len(codes) > 1 and not self._thins_none():   # (the codes never met that give requests are met now)
            self._screen([code for code in codes if code not in self.codes_met], start, end)
        kept = tuple(code for code in codes if code not in self.refused)
        if len(kept) < 2:   # (one code left of a part whose others are refused: that code alone)
            return [{**filters, "service_code": kept}] if kept and len(kept) < len(codes) else []
        codes = kept
        bound = largest - int(largest * self._parts_margin())   # (an answer under it: its part is whole)
        seen = _seen_share(answer, start, end)
        met = tuple(code for code in codes if code in self.codes_met)
        unmet = tuple(code for code in codes if code not in self.codes_met)
        if met and unmet:
            return [{**filters, "service_code": tuple(group)} for group in
                    (*_by_counts(met, answer, seen, FILL * bound), *_by_counts(unmet, answer, seen, FILL * bound))]
        groups = _by_counts(codes, answer, seen, FILL * bound)
        if len(groups) < 2:   # (its answer says nothing of its codes: halved, each half in CODES_ASKED)
            half = len(codes) // 2
            groups = [codes[:half], codes[half:]]
        return [{**filters, "service_code": tuple(group)} for group in groups if group]

    def _shown_whole(self, filters: dict, answer: list, start: datetime, end: datetime, end_asked: datetime) -> bool:
        """Whether a part that cannot be split (one code of one status), its answer at half of the largest
        or more, is shown whole by the same part asked over a day more, on the side the server's order
        reaches last (newest first: the day before; oldest first: the day after). That answer lists the
        part's requests first, in the same order, then the other day's, and the server cuts every answer
        at its cap: were the part's answer cut, the wider one would be cut at the same request, and hold
        none made before the part's oldest (after its newest, oldest first); one it holds shows the part
        held fewer than the cap. Before, such a part failed the pull, naming it (bench/open311_windows.py
        --page-ignored: one city of 338 a day, a fifth left out after a cut at 50, whose part of one code
        of one status answered 22 of a largest 44). Not where the day before (after) holds none of the
        code, nor where its answer is in no order (all in one second: a one-second window's). One request."""
        seconds = [_second(r) if isinstance(r, dict) else None for r in answer]
        if None in seconds or len(set(seconds)) < 2:
            return False
        low, high = min(seconds), max(seconds)
        newest_first = seconds == sorted(seconds, reverse=True)
        if not newest_first and seconds != sorted(seconds):
            return False
        try:
            if newest_first:
                wider = self._ask(self._midnight(start, -1) if self.days else start - timedelta(days=1), end, 1,
                                  filters, end_asked)
            else:
                wider = self._ask(start, self._midnight(end, 1) if self.days else end + timedelta(days=1), 1, filters)
        except PermanentError:   # (refused, or too large: it tells nothing, and the part fails the pull as before)
            return False
        beyond = [r for r in wider if (_second(r) or low) < low] if newest_first else \
            [r for r in wider if (_second(r) or high) > high]
        self.largest = max(self.largest, len(wider))
        return all(_asked(r, filters) for r in wider) and bool(beyond)

    def _mixes(self, filters: dict, start: datetime, end: datetime) -> bool:
        """Whether a part holds codes met and codes never met (after _screen), where the server leaves
        requests out after the cut: a private service type may be among those never met and fill the
        part's cut, its answer under half of the largest taken whole, the met codes' requests behind the
        cut lost. Split (_narrower), it is not taken whole."""
        if "service_code" not in filters and self._past_half():
            # (a part by status holds every code: the refused ones too, private, in no part by codes)
            if self.listed is None:
                self.listed = [str(code) for code in self.services() if code not in (None, "")]
            codes = [*dict.fromkeys([*self.listed, *sorted(self.codes_met)])]
            self._screen([code for code in codes if code not in self.codes_met and code not in self.refused],
                         start, end)
            return any(code in self.codes_met for code in codes) and any(code not in self.codes_met for code in codes)
        codes = [code for code in filters.get("service_code") or () if code not in self.refused]
        if len(codes) < 2 or self._thins_none() or all(code in self.codes_met for code in codes):
            return False
        self._screen([code for code in codes if code not in self.codes_met], start, end)
        met = sum(code in self.codes_met for code in codes)
        return 0 < met < len([code for code in codes if code not in self.refused])

    def _screen(self, codes: list[str], start: datetime, end: datetime) -> None:
        """Each of `codes` (listed, never met in an answer of the pull) asked alone, once a pull, over the
        days in doubt (windows of up to 90 days): one that gives a request is met, and is grouped with the
        codes met (_narrower); one that gives none has no request the server shows there, and its group
        can lose none. Only where the server leaves requests out after the cut (not _thins_none): the codes
        never met were grouped together, a private service type (listed, its requests never given) among
        them, which filled their part's cut; the part answered the requests of a rare public code within
        the cut, under half of the largest, was taken whole, and those behind the cut were lost, the pull
        ok (bench/open311_windows.py --private-type: 2% and 11% of a code of one request every 3 and 10
        days beside a private type of a third). Asked alone in each part split, they cost one request a
        code a part (2% to 14% more); so, one a code a pull. A server that thins none leaves private
        requests out before its cut, and grouping them loses nothing there: nothing is asked."""
        spans: list[list[datetime]] = []   # the days in doubt, in windows of up to 90 days
        doubted = {(datetime.fromisoformat(w[0]), datetime.fromisoformat(w[1])) for w in self.doubtful}
        for since, until in sorted(doubted | {(start, end)}):   # (the part's own window among them)
            if spans and until - spans[-1][0] <= WINDOW:
                spans[-1][1] = max(spans[-1][1], until)
            else:
                spans.append([since, until])
        for code in codes:
            if code in self.screened or code in self.refused or code in self.codes_met:
                continue
            self.screened.add(code)
            for since, until in spans:
                try:
                    self._ask(since, until, 1, {"service_code": (code,)})
                except PermanentError as error:
                    if isinstance(error, ResponseTooLarge) or error.status not in REFUSALS:
                        raise
                    self._refused(code, error)
                if code in self.codes_met or code in self.refused:
                    break

    def _refused(self, code: str, error: PermanentError) -> None:
        """A service code the server refuses to be asked by (HTTP 400, 403, 404 or 422 for a part of it
        alone: a private service type, listed in services.json): taken as one whose requests it gives
        none of, its part empty, and not asked again by the pull. Before, the refusal of a part holding it
        failed the pull, every night. Where the server does give one of its requests (in a window's
        answer), that request is in no part: the pull fails, naming it (_by_parts)."""
        if code not in self.refused:
            self.refused[code] = str(error)
            log.warning("the server refuses service_code=%s (%s): taken as a service type whose requests it "
                        "gives none of", code, error)

    def _gives_more_than(self, count: int, at: datetime) -> bool:
        """Whether the server gives more than `count` requests in one answer (P unknown): fewer
        than SMALLEST_PAGE, or an answer yet, else one of the 90 days before or after the
        second `at`, larger. Where none is, an answer of `count` may be full."""
        if count < SMALLEST_PAGE:
            return True
        for start, end in ((at + SECOND - WINDOW, at + SECOND), (at, at + WINDOW)):
            if self.largest > count:
                break
            self.largest = max(self.largest, len(self._ask(start, end)))
        return self.largest > count


def _part(filters: dict) -> tuple:
    """A part's filters as a key (their values texts or tuples of codes)."""
    return tuple(sorted(filters.items()))


def _seen_share(answer: list, start: datetime, end: datetime) -> float:
    """The share of the window [start, end) that a part's answer (newest first, cut at the server's cap)
    spans, its oldest request to its newest (what the part holds before it, the answer does not say): by
    the requests' span, not the window's end, since a server's days may not be the window's. At least a
    24th: an answer within the window's last hour is taken as that hour's."""
    seconds = [moment for moment in map(_second, answer) if moment is not None]
    width = (end - start).total_seconds()
    if not seconds or width <= 0:
        return 1.0
    return min(1.0, max((max(seconds) - min(seconds) + SECOND).total_seconds() / width, 1 / 24))


def _by_counts(codes: tuple, answer: list, seen: float, capacity: float) -> list[list[str]]:
    """`codes` in groups, in their order, each expected to hold fewer than `capacity` requests and within
    CODES_ASKED characters: each code expected to hold what the part's `answer` gave of it over the `seen`
    share of the window that answer covers (requests spread over the rest as over that share: a cost, never a
    loss, where they are not, a group at the cap split again), the codes it lacks together half a request of
    it. In their order, not packed by what the answer gave: the requests a server leaves out make a code look
    lighter, and the codes that look lightest packed together were a part left out more than half of (4 of
    2,148 lost, the pull ok: bench/open311_windows.py's city of 400 a day)."""
    given: dict[str, int] = {}
    for request in answer:
        if isinstance(request, dict):
            given[str(request.get("service_code"))] = given.get(str(request.get("service_code")), 0) + 1
    lacked = sum(1 for code in codes if not given.get(code))
    groups: list[list[str]] = [[]]
    load = 0.0
    for code in codes:
        expected = (given.get(code) or 0.5 / lacked) / seen
        if groups[-1] and (load + expected >= capacity or len(",".join([*groups[-1], code])) > CODES_ASKED):
            groups.append([])
            load = 0.0
        groups[-1].append(code)
        load += expected
    return groups


def _asked(request, filters: dict) -> bool:
    """Whether `request` has the status and a service code of the part `filters` asked for."""
    return isinstance(request, dict) and str(request.get("status") or "").lower() == filters["status"] \
        and ("service_code" not in filters or str(request.get("service_code")) in filters["service_code"])


def _field(request, name: str) -> str:
    return repr(request.get(name)) if isinstance(request, dict) else "(not an object)"


def _params(start: datetime, end: datetime, page: int = 1, zone: tzinfo = UTC) -> dict:
    return {"start_date": _stamp(start, zone), "end_date": _stamp(end, zone), "page": page}


FAILED_KEEPS_NONE = "the pull failed, keeping none of the requests it read (the previous records kept)"


class RequestsRecords(RecordSource):
    """An endpoint's service requests from `requests.json` (see Windows), from 2010 (or,
    after a pull, from 90 days before its latest request, merged by `service_request_id`)."""

    def __init__(self, adapter: Open311Adapter, previous, *, now: datetime | None = None,
                 since: datetime = EARLIEST):
        # P and how much of a cut answer the server leaves out, as the pull before learned them;
        # kept for the next unless this pull learns otherwise
        self.remembered_page_size = self.page_size = getattr(previous, "page_size", None)
        self.remembered_thinning = self.thinning = getattr(previous, "thinning", None)
        self.adapter, self.http, self.url = adapter, adapter.http, f"{adapter.portal.url}/requests.json"
        timezone = getattr(adapter.portal, "timezone", None)
        self.zone: tzinfo = ZoneInfo(timezone) if timezone else UTC   # (validated with the config)
        self.fields = [Field(name, "datetime_utc" if kind == "datetime" else kind) for name, kind, _ in REQUEST_FIELDS]
        self.conversion = Conversion(self.fields)
        self.until = now or datetime.now(UTC).replace(microsecond=0)
        self.since = since
        # the server was shown not to read the times asked (by the pull before, or this one): windows of
        # whole days; kept with the pull for the next (`shown`: by this pull, whose start over read them)
        self.whole_days = bool(getattr(previous, "whole_days", False))
        self.days_shown = False
        self.resumed_ahead: timedelta | None = None   # the server's clock as the pull cut short knew it (_clock_kept)
        # PastHalf raised by this source (each reason to start over once a pull: the driver starts over again for
        # another, pull_dataset; guarded by the first start-over of any reason, a server shown not to read times
        # then past half kept the days taken whole by size, which may have been cut)
        self.restarted_past_half = False
        if previous is not None and previous.watermark:
            self.mode = "incremental"
            latest = datetime.fromisoformat(previous.watermark)
            self.since = max(since, (latest if latest.tzinfo else latest.replace(tzinfo=UTC)) - RECENT)

    @property
    def fingerprint(self) -> str:
        # (a pull cut short goes on only in the zone its rows staged were read in)
        zone = "" if self.zone is UTC else f"|{self.zone}"
        return f"{super().fingerprint}|{self.url}|{_stamp(self.since)}{zone}"

    def _answer(self, start: datetime, end: datetime, page: int, filters: dict | None = None) -> list:
        requests = self.http.get_json(self.url, {**_params(start, end, page, self.zone), **(filters or {})},
                                      expect=_requests_shape).data
        return requests if self.zone is UTC else _zoned(requests, self.zone)

    def _service_codes(self) -> list:
        """The endpoint's service codes (services.json, else .xml), what windows in doubt are read by."""
        return [service.get("service_code") for service in self.adapter.services()[0] if isinstance(service, dict)]

    def _end(self) -> datetime:
        """Where the pull's windows end: its now (`until`) by the server's clock, which stamps the
        requests, where that clock is known (its answers' Date header) and believed, and ahead of ours
        (records.server_began); else ours. Ended at our now, a server 3 hours ahead had made requests in
        those 3 hours that no window asked for: read by the next pull only (it starts 90 days before
        the latest), never where the portal was retired after it. Not ended before ours where it is
        behind: asking our now costs nothing more, and a web front whose clock is behind its
        database's would leave the requests made since its now to the next pull. Nor more than RECENT
        after ours: a front whose clock is wrong (the Date's) while its database's is right (the
        stamps') gives requests of that gap only where typed ahead, and one read is the watermark; the
        next pull starts RECENT before it, so within RECENT of our now it still starts at our now at
        the latest, and no request made meanwhile is skipped (docs/records.md#the-servers-clock)."""
        return min(max(self.until, server_began(self.until, self.server_clock())[0]), self.until + RECENT)

    def _clock_kept(self, state) -> None:
        """Takes the server's clock as the pull cut short at `state` knew it (its lead on ours), until
        this pull's own answers give it (server_clock). A pull that asked the server nothing before
        (`civicat records`) knows its clock from its first answer only: the resume's check against
        the windows' end (ours then) refused a state past our now, which a pull of a server ahead
        reaches in its last windows, and the pull read again from its start (a test's: 33 windows,
        31 asked before)."""
        try:
            self.resumed_ahead = timedelta(seconds=float(state["server_ahead"]))
        except (KeyError, TypeError, ValueError, OverflowError):   # (none kept, or not a number of seconds)
            self.resumed_ahead = None

    def batches(self, resume):
        self._clock_kept(resume or {})
        windows = Windows(self._answer, self.since, self._end(), resume, self.remembered_page_size,
                          self.remembered_thinning, zone=self.zone, days=self.whole_days,
                          days_remembered=not self.days_shown, services=self._service_codes)
        self.refused = windows.refused   # (filled as the windows read: the run report's, notices)
        self.short = windows.short   # (the windows kept short: errors of the run, notices)
        windows.restarts = not self.restarted_past_half   # (PastHalf once a pull)
        try:
            for requests, state in windows:
                # (a pull that asked the server nothing before, `civicat records`, knows its clock from
                # the first answer on: the windows then reach the server's now, one window more where
                # they had reached ours)
                windows.until = max(windows.until, self._end())
                # (kept with the pull, for the next)
                self.page_size, self.thinning, self.whole_days = state["page_size"], windows.kept_thinning, windows.days
                ahead = self.server_clock()
                yield self.conversion.table_from_rows(requests), \
                    state if ahead is None else {**state, "server_ahead": ahead.total_seconds()}
        except IgnoresTimes as error:
            if windows.days:
                raise
            # (what was read so far was read by windows the server did not read as asked: none of it is kept)
            self.whole_days = self.days_shown = True   # (so once a pull: read by whole days from now on)
            raise StartsOver(f"{error}: reading whole days from midnight ({self.zone}) instead") from None
        except PastHalf:
            self.remembered_thinning = self.thinning = windows.kept_thinning
            self.restarted_past_half = True
            raise

    def notices(self, kept: bool = True) -> list[tuple[str, ...]]:
        # (a window kept short is an error of a pull that is kept; of one that failed, which keeps nothing it
        # read, a warning: what the next pull meets there)
        return [("RefusedServiceCode", f"the server refuses to be asked for service_code={code} ({why}): taken as a "
                 "service type whose requests it gives none of (a private one), not asked again by this pull")
                for code, why in sorted(getattr(self, "refused", {}).items())] + \
            [("RequestsUnread", f"{message}: the pull kept the requests it read", "error") if kept else
             ("RequestsUnread", f"{message}: {FAILED_KEEPS_NONE}", "warning") for message in getattr(self, "short", ())]

    def resumes_at(self, state: dict) -> bool:
        """A pull cut short goes on after its last window read: a request added or removed
        in a window before moves none of the windows after (a request edited there since is
        read again by the next incremental pull, 90 days back)."""
        self._clock_kept(state)
        try:
            return self.since <= datetime.fromisoformat(state["start"]) <= self._end() and int(state["width"]) >= 1 \
                and isinstance(state["before"], list) and not state.get("windows_unheld")
        except (KeyError, TypeError, ValueError):   # (no state of windows, or one without the window before's)
            return False

    def starts_over_from(self, state) -> str | None:
        """Windows taken whole are in no state: one cut short while they are due to be read
        again, or being read, starts over (Windows._going_on_from), and says so."""
        reason = state.get("windows_unheld") if isinstance(state, dict) else None
        if not reason:
            return None
        return reason if isinstance(reason, str) else "windows taken whole were due to be read again, split"

    # GeoReport v2's stamps of when a request was made and last changed (expected_datetime, a plan, is not one);
    # the windows are of requested_datetime, up to the pull's now by the server's clock (_end): one ahead is of
    # a server that answered requests outside the window asked
    past_stamps = ("requested_datetime", "updated_datetime")
    watermark_column = "requested_datetime"

    def server_clock(self) -> timedelta | None:
        # (its rows are stamped by the server's clock; until this pull's answers give it, a pull cut
        # short's: _clock_kept)
        ahead = self.http.server_clock(self.url)
        return self.resumed_ahead if ahead is None else ahead

    # (a request without one equal to a delta row in every column is that row read again, kept once)
    merge_key = "service_request_id"
