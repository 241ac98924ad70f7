"""Benchmark: what Open311 date windows read in one answer cost, in requests.

A city's requests for `--days` days (`per_day` on weekdays, fewer at weekends, most between
8:00 and 18:00), served in memory newest first by pages of P; harvester.portals.open311.Windows
reads them all (checked: each once) and the requests it made are counted, against what
numbered pages cost (one 90-day window paged: N/P + 1, with requests lost when one is removed
between pages), with the page size remembered from the pull before, for a pull cut
short halfway then resumed, and for a server that cuts its answer at P and then leaves out
one request in 20 (private service types); then three pulls in turn of a small city whose server
thins every cut answer and ignores `page` (its real P never shows). No HTTP: the count, not the
time, is the figure.

    python -m bench.open311_windows [--days 90] [--thinned [--per-day 200]] [--bursts 300] [--whole-days 200 [--pages-deep 2]]
                                    [--minute-apart 30 [--pages-deep 2]]
                                    [--page-ignored 100] [--private-type 10] [--partly-private 10]

`--bursts N`: N seeded cities of bursts (requests lost and asked, two pulls in turn, summed).
`--whole-days N`: N seeded cities from servers that read whole days (a zone of their own or the
portal's; the end's day left out or included; cut pages thinned in odd weeks), read by whole days:
requests lost, published twice, asked, and the pulls that failed, summed; `--pages-deep D`: from servers
giving no page after page D, and the days the pulls named as kept short (`RequestsUnread`).
`--minute-apart DAYS`: a city of a request a minute from servers reading whole days, read from times as a
first pull is (started over by whole days once shown), with `--pages-deep D` too: read, asked, windows named.
`--page-ignored N`: the same cities from servers that also ignore `page` (pages of 50, 200 or 1,000),
their cut pages thinned in every week, after one city whose days are each over P (400 a day). Their
requests have a status (one in 6 open) and one of 40 service codes (one in 20 a code services.json does
not list), which the servers read: a day in doubt is read again by parts (`--no-parts`: not, as before
session 35: it fails the pull).
`--private-type N`: rare public codes beside a private service type (private_type_cost), N cities a row.
`--partly-private N`: a code made private lately, rare before, beside a private type (partly_private_cost).
"""
from __future__ import annotations

import argparse
import bisect
import random
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from harvester.portals.open311 import IgnoresTimes, Windows
from harvester.records import RecordsError, StartsOver

HOURS = [0.2] * 7 + [1.0, 1.8, 2.0, 2.0, 1.8, 1.6, 1.8, 1.8, 1.6, 1.4, 1.0] + [0.6] * 6   # each hour's share


def busy_city(per_day: int, days: int, start: datetime, seed: int = 311) -> list[datetime]:
    """When a city's requests come, sorted (seeded: the same every run)."""
    draw = random.Random(seed)
    moments = []
    for day in (start + timedelta(days=d) for d in range(days)):
        count = per_day * (0.6 if day.weekday() >= 5 else 1.1)
        for hour, weight in enumerate(HOURS):
            moments += [day + timedelta(hours=hour, seconds=draw.randrange(3600))
                        for _ in range(round(count * weight / sum(HOURS)))]
    return sorted(moments)


def in_memory_server(moments: list[datetime], page_size: int, *, paging: bool = True, private: int = 0,
                     thinned: float = 0.0, odd_weeks: bool = False):
    """The requests made at `moments` as requests.json answers them: (the public requests,
    answer); `private`: every such request is left out of a page once it is cut; `thinned`: that
    share of them (so many in every 20), only those of odd weeks with `odd_weeks` (a service type
    made private for a while: the pull meets pages cut whole and pages thinned)."""
    requests = [{"service_request_id": str(n), "requested_datetime": m.isoformat()} for n, m in enumerate(moments)]
    hidden = {n for n, m in enumerate(moments) if n % 20 < round(thinned * 20)
              and not (odd_weeks and m.isocalendar()[1] % 2 == 0)}

    def public(request: dict) -> bool:
        number = int(request["service_request_id"])
        return (not private or number % private) and number not in hidden

    def answer(since: datetime, until: datetime, page: int) -> list:   # newest first
        window = requests[bisect.bisect_left(moments, since):bisect.bisect_left(moments, until)][::-1]
        page = page if paging else 1
        return [r for r in window[(page - 1) * page_size:page * page_size] if public(r)]

    return [r for r in requests if public(r)], answer


def cost(per_day: int, page_size: int, days: int, *, paging: bool = True,
         remembered: int | None = None, private: int = 0) -> tuple[int, int]:
    """(requests the city made public, requests the windows asked); `remembered`: the page
    size as the pull before learned it; `private`: see in_memory_server."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    requests, answer = in_memory_server(busy_city(per_day, days, start), page_size, paging=paging, private=private)
    windows = Windows(answer, start, start + timedelta(days=days), page_size=remembered)
    read = sum(len(batch) for batch, _ in windows)
    assert read == len(requests), (read, len(requests))
    return len(requests), windows.asked


def thinned_cost(per_day: int, page_size: int, days: int, thinned: float, *, odd_weeks: bool = False,
                 paging: bool = True, pulls: int = 2) -> list[tuple[int, int]]:
    """(requests lost, requests asked) of each of `pulls` pulls of the same days in turn, each
    starting from what the one before learned (P, and how much the server thins a cut answer),
    from a server that leaves out `thinned` of a page after cutting it (see in_memory_server)."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    requests, answer = in_memory_server(busy_city(per_day, days, start), page_size, thinned=thinned,
                                        odd_weeks=odd_weeks, paging=paging)
    learned: dict = {}
    figures = []
    for _ in range(pulls):
        windows = Windows(answer, start, start + timedelta(days=days), **learned)
        read = {request["service_request_id"] for batch, _ in windows for request in batch}
        figures.append((len(requests) - len(read), windows.asked))
        learned = {"page_size": windows.page_size, "thinning": getattr(windows, "thinning", None)}
        if learned["thinning"] is None:   # (a Windows that learns no thinning)
            del learned["thinning"]
    return figures


def bursty_city(seed: int, start: datetime) -> tuple[list[datetime], float, bool]:
    """A city of 1 to 4 bursts (20 to 120 requests within an hour, a day or five) and 0 to 200
    requests spread over 90 days, and its server's thinning and whether it reads `page` (seeded)."""
    draw = random.Random(seed)
    moments = []
    for _ in range(draw.randint(1, 4)):
        at = start + timedelta(days=draw.uniform(0, 80))
        moments += [at + timedelta(seconds=draw.uniform(0, draw.choice([3600, 86400, 5 * 86400])))
                    for _ in range(draw.randint(20, 120))]
    moments += [start + timedelta(days=draw.uniform(0, 90)) for _ in range(draw.randint(0, 200))]
    return sorted(moments), draw.choice([0.0, 0.2, 0.4]), draw.choice([True, False])


def bursts_cost(count: int) -> None:
    """Requests lost and asked by two pulls in turn (the second from what the first learned) of
    `count` bursty cities, summed, and the cities that lost any."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    lost, asked, cities = [0, 0], [0, 0], 0
    for seed in range(count):
        moments, share, paging = bursty_city(seed, start)
        requests, answer = in_memory_server(moments, 50, thinned=share, paging=paging)
        public, learned, lost_here = {r["service_request_id"] for r in requests}, {}, False
        for pull in range(2):
            windows = Windows(answer, start, start + timedelta(days=90), **learned)
            missing = public - {r["service_request_id"] for batch, _ in windows for r in batch}
            lost[pull] += len(missing)
            asked[pull] += windows.asked
            lost_here = lost_here or bool(missing)
            learned = {"page_size": windows.page_size, "thinning": windows.thinning}
        cities += lost_here
    print(f"{count} bursty cities: lost {lost[0]:,}; {lost[1]:,} (pull 1; pull 2), in {cities} cities; "
          f"asked {asked[0]:,}; {asked[1]:,}")


CODES = [f"code-{n:02d}" for n in range(40)]   # a city's service codes (services.json's), the first the most given


def whole_days_server(moments: list[datetime], page_size: int, *, thinned: float, inclusive: bool, days_in,
                      paging: bool = True, odd_weeks: bool = True, codes: list[str] | None = None,
                      private: str | None = None, private_from: tuple[str, datetime] | None = None,
                      pages_deep: int | None = None):
    """A server that reads the days of the dates asked in its zone `days_in`, their times dropped (the
    end's day `inclusive` or not), newest first by pages of P, leaving out `thinned` of every 20 requests
    made in odd weeks (in every week without `odd_weeks`) once a page is cut: (the public requests, answer).
    Its requests have a status and a service code (one in 20 unlisted; else each's of `codes`), which
    `status` and `service_code` (comma-separated lists) choose before the cut. `private`: a service code
    whose every request is left out once a page is cut (a private service type services.json lists);
    `private_from`: a code and a moment, its requests made from then on left out so (a type made private).
    `pages_deep`: the deepest page it gives, those after it answered with none (a cap on `page`)."""
    draw = random.Random(35)   # (its own: the moments drawn are those of the cities before session 35)
    weights = [len(CODES) - n for n in range(len(CODES))]
    requests = [{"service_request_id": str(n), "requested_datetime": m.isoformat(),
                 "status": "open" if n % 6 == 0 else "closed",
                 "service_code": codes[n] if codes else "unlisted" if n % 20 == 10 else draw.choices(CODES, weights)[0]}
                for n, m in enumerate(moments)]
    hidden = {n for n, m in enumerate(moments) if n % 20 < round(thinned * 20)
              and (m.isocalendar()[1] % 2 or not odd_weeks) or requests[n]["service_code"] == private
              or private_from is not None and requests[n]["service_code"] == private_from[0] and m >= private_from[1]}

    def midnight(moment: datetime, days: int = 0) -> datetime:
        """The midnight of the server's day of `moment`, `days` days later (a day of 23 or 25 hours where
        its clock changes: a day added in UTC left the hour the clock goes back served by no one-day window)."""
        day = moment.astimezone(days_in).date() + timedelta(days=days)
        return datetime.combine(day, time(), tzinfo=days_in).astimezone(UTC)

    def answer(since: datetime, until: datetime, page: int, filters: dict | None = None) -> list:
        end = midnight(until, 1 if inclusive else 0)
        window = requests[bisect.bisect_left(moments, midnight(since)):bisect.bisect_left(moments, end)][::-1]
        if filters:
            window = [r for r in window if all(r[name] in value.split(",") for name, value in filters.items())]
        page = page if paging else 1
        if pages_deep is not None and page > pages_deep:
            return []
        return [r for r in window[(page - 1) * page_size:page * page_size] if int(r["service_request_id"]) not in hidden]

    return [r for n, r in enumerate(requests) if n not in hidden], answer


def whole_days_cost(count: int, page_ignored: bool = False, parts: bool = True, pages_deep: int | None = None) -> None:
    """Requests lost (made before the pull's end: its last day's too since session 39, which a server
    whose days are not the portal's zone's gave to the next pull only), published twice and asked of
    `count` seeded cities (20 to 400 requests a day for 10 to 40 days, pages of 50, `page` read, 0, 20%
    or 40% left out in odd weeks) read by whole
    days of the portal's zone from a server reading days of its own, summed, and the pulls that failed.
    `page_ignored`: the same cities from servers that ignore `page`, with pages of 50, 200 or 1,000, and
    leave so many out of every cut page (a day over P cannot be read: its pull fails, naming it). `pages_deep`:
    from servers that give no page after that one (a day deeper is kept short: its rest lost, the day named
    by the pull, `RequestsUnread`; the days named, summed)."""
    named_column = " named |" if pages_deep else ""
    print(f"| portal's zone | server's days | end's day | lost | twice | asked | failed |{named_column}")
    print("|---|---|---|---|---|---|---|" + ("---|" if pages_deep else ""))
    for zone, days_in in (("UTC", "UTC"), ("New York", "New York"), ("New York", "UTC"), ("UTC", "New York"),
                          ("Tokyo", "UTC")):
        for inclusive in (False, True):
            lost = twice = asked = failed = 0
            named: list[str] = []
            for seed in range(count):
                read, unread, asked_here, error = seeded_city(seed, zone, days_in, inclusive, page_ignored, parts,
                                                              pages_deep, named)
                asked += asked_here
                if error:
                    failed += 1
                    continue
                lost += unread
                twice += sum(1 for n in read.values() if n > 1)
            print(f"| {zone} | {days_in} | {'included' if inclusive else 'left out'} | {lost:,} | {twice:,} | "
                  f"{asked:,} | {failed} |" + (f" {len(named):,} |" if pages_deep else ""))


ZONES = {"UTC": UTC, "New York": ZoneInfo("America/New_York"), "Tokyo": ZoneInfo("Asia/Tokyo")}


def seeded_city(seed: int, zone: str, days_in: str, inclusive: bool, page_ignored: bool = False, parts: bool = True,
                pages_deep: int | None = None, named: list | None = None) -> tuple[Counter, int, int, str | None]:
    """One of whole_days_cost's cities (`seed`), read by whole days of `zone` from a server reading those
    of `days_in` (ZONES' names), paging `pages_deep` deep at most: read_by_days' figures (`named`: see there)."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    draw = random.Random(seed)
    per_day, days = draw.randint(20, 400), draw.randint(10, 40)
    moments = uniform_moments(draw, per_day, days, start)
    thinned = draw.choice([0.0, 0.2, 0.4])
    page_size = draw.choice([50, 200, 1000]) if page_ignored else 50
    public, answer = whole_days_server(moments, page_size, thinned=thinned, inclusive=inclusive,
                                       days_in=ZONES[days_in], paging=not page_ignored, odd_weeks=not page_ignored,
                                       pages_deep=pages_deep)
    return read_by_days(public, answer, start, days, ZONES[zone], parts, named=named)


def uniform_moments(draw: random.Random, per_day: int, days: int, start: datetime) -> list[datetime]:
    """`per_day` requests a day for `days` days, at any second alike (drawn from `draw`), sorted."""
    return sorted(start + timedelta(seconds=draw.randrange(days * 86_400)) for _ in range(per_day * days))


def read_by_days(public: list[dict], answer, start: datetime, days: int, zone, parts: bool = True,
                 listed: list[str] = CODES, named: list | None = None) -> tuple[Counter, int, int, str | None]:
    """A pull of `days` days from `start` by whole days of `zone`: (how often each request was read,
    how many of `public` made before its end it did not read, the requests asked, its error);
    `parts`: days in doubt read again by status and service codes (`listed`, services.json's); `named`:
    extended with the windows the pull kept short, each named (Windows.short: `RequestsUnread`)."""
    windows = Windows(answer, start, start + timedelta(days=days), zone=zone, days=True,
                      services=(lambda: listed) if parts else None)
    read, error, asked = Counter(), None, 0
    try:
        try:
            for batch, _ in windows:
                read.update(r["service_request_id"] for r in batch)
        except StartsOver:   # (as pull_dataset: once, what was read dropped, from what the pull learned)
            asked, read = windows.asked, Counter()
            windows = Windows(answer, start, start + timedelta(days=days), zone=zone, days=True,
                              services=(lambda: listed) if parts else None, thinning=windows.kept_thinning)
            windows.restarts = False
            for batch, _ in windows:
                read.update(r["service_request_id"] for r in batch)
    except RecordsError as failed:
        error = str(failed)
    if named is not None:
        named += windows.short
    end = start + timedelta(days=days)
    unread = sum(1 for r in public if r["service_request_id"] not in read
                 and datetime.fromisoformat(r["requested_datetime"]) < end)
    return read, unread, asked + windows.asked, error


def minute_apart_cost(days: int, pages_deep: int | None = None) -> None:
    """A city of a request every minute for `days` days, from servers reading whole days (their zone UTC's or
    New York's, the end's day left out or included; pages of 50, `page` read, `pages_deep` deep at most), read
    as a first pull reads: by times until a check shows the server does not read them, then (started over) by
    whole days of UTC. Page 1 of a second before a midnight is the day's last 50 requests, made within the hour:
    before session 46 a server leaving the end's day out was read second by second. Requests read (of those
    made), asked, the windows named kept short (one-second or one-day), the pulls started over."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    moments = [start + timedelta(minutes=n) for n in range(days * 1440)]
    print("| server's days | end's day | read | asked | seconds named | days named | started over |")
    print("|---|---|---|---|---|---|---|")
    for days_in in ("UTC", "New York"):
        for inclusive in (False, True):
            public, answer = whole_days_server(moments, 50, thinned=0.0, inclusive=inclusive, days_in=ZONES[days_in],
                                               pages_deep=pages_deep)
            windows, read, asked, over = Windows(answer, start, start + timedelta(days=days)), set(), 0, "no"
            try:
                read.update(r["service_request_id"] for batch, _ in windows for r in batch)
            except IgnoresTimes:   # (as RequestsRecords: started over by whole days, what was read dropped)
                asked, over = windows.asked, "yes"
                windows = Windows(answer, start, start + timedelta(days=days), days=True)
                read.update(r["service_request_id"] for batch, _ in windows for r in batch)
            named = [message.split(" at ")[0] for message in windows.short]
            print(f"| {days_in} | {'included' if inclusive else 'left out'} | {len(read):,} of {len(public):,} | "
                  f"{asked + windows.asked:,} | {named.count('the one second'):,} | {named.count('the one day'):,} | "
                  f"{over} |")


def page_ignored_city(parts: bool = True) -> None:
    """w33's city: 400 requests a day for 10 days, from a server that reads New York's days (the
    portal's zone UTC, the end's day left out), ignores `page`, cuts at 50 and then leaves out 8 of
    every 20: no day of it can be read whole (each over P)."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    public, answer = whole_days_server(uniform_moments(random.Random(311), 400, 10, start), 50, thinned=0.4,
                                       inclusive=False, days_in=ZoneInfo("America/New_York"), paging=False,
                                       odd_weeks=False)
    _, unread, asked, error = read_by_days(public, answer, start, 10, UTC, parts)
    print(f"400 a day for 10 days, 40% thinned, New York's days, `page` ignored: {unread:,} requests made before the "
          f"pull's end unread, {asked} asked, " + (f"the pull failed: {error[:120]}…" if error else "the pull ok") + "\n")


RARE = [f"rare-{n}" for n in range(5)]   # public service codes of a request every few days


def drawn_city(seed: int, start: datetime) -> tuple[random.Random, int, int, list[datetime]]:
    """A city of private_type_cost's (`seed`): its draw, requests a day, days and requests' moments."""
    draw = random.Random(seed)
    per_day, days = draw.randint(100, 400), draw.randint(10, 30)
    return draw, per_day, days, uniform_moments(draw, per_day, days, start)


def private_type_cost(count: int, shares: tuple[float, ...] = (0.2, 0.33, 0.5, 0.67)) -> None:
    """w39's left case: a code never met in the pull's answers, rare, shares its part with a private
    service type (listed, its requests never given: the codes never met are grouped apart from those
    met, _narrower), which fills the part's cut; its answer, the rare requests among the cut, was taken
    whole, and those behind the cut were lost (since session 42 each code never met is asked alone once a
    pull where the server thins, _screen: none lost at a fifth or a third). `count` seeded cities of 100 to 400 requests a day for
    10 to 30 days, from a server that reads UTC's whole days and ignores `page` (pages of 50: every day
    in doubt, read by parts), a private type of a fifth, a third, half or two thirds of the requests, and five rare
    public codes of a request each every 1, 3 or 10 days: their requests lost, the others', the pulls
    that failed, by share and rarity, summed."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    print("| private share | a rare code's request every | cities | rare requests | rare lost | others lost | "
          "failed | asked |")
    print("|---|---|---|---|---|---|---|---|")
    weights = [len(CODES) - n for n in range(len(CODES))]
    for share in shares:
        for every in (1, 3, 10):
            rare = rare_lost = others_lost = failed = asked = 0
            for seed in range(count):
                draw, per_day, days, moments = drawn_city(seed, start)
                odds = len(RARE) / (every * per_day)   # (a request's chance of a rare code)
                codes = [("private" if (x := draw.random()) < share else draw.choice(RARE) if x < share + odds
                          else draw.choices(CODES, weights)[0]) for _ in moments]
                public, answer = whole_days_server(moments, 50, thinned=0.0, inclusive=False, days_in=UTC,
                                                   paging=False, codes=codes, private="private")
                read, _, asked_here, error = read_by_days(public, answer, start, days, UTC,
                                                          listed=[*CODES, "private", *RARE])
                asked += asked_here
                rare += sum(r["service_code"] in RARE for r in public)
                if error:
                    failed += 1
                    continue
                lost = [r for r in public if r["service_request_id"] not in read]
                rare_lost += sum(r["service_code"] in RARE for r in lost)
                others_lost += sum(r["service_code"] not in RARE for r in lost)
            print(f"| {share:.0%} | {every} day{'s' if every > 1 else ''} | {count} | {rare:,} | {rare_lost:,} | "
                  f"{others_lost:,} | {failed} | {asked:,} |")


def partly_private_cost(count: int) -> None:
    """A code only partly private (c42's left case): public until its city's last `hidden` days, and from
    then on its requests left out once a page is cut (a type made private), as many then as a tenth of the
    traffic, so that its newest requests, asked alone over the days in doubt (_screen), are all hidden and
    give none; before, a request of it every 1, 3 or 10 days (rare: in no day's cut answer, never met). It
    is grouped with the private type (a fifth or a third of the requests, as private_type_cost's cities),
    which fills their part's cut: its older public requests behind the cut lost. Its public requests
    (made before it was hidden), those lost, the others lost, the pulls that failed, asked, summed."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    print("| private share | hidden days | a public request of it every | cities | its public | lost | others lost | "
          "failed | asked |")
    print("|---|---|---|---|---|---|---|---|---|")
    weights = [len(CODES) - n for n in range(len(CODES))]
    for share in (0.2, 0.33):
        for hidden in (3, 7):
            for every in (1, 3, 10):
                public_count = lost_count = others_lost = failed = asked = 0
                for seed in range(count):
                    draw, per_day, days, moments = drawn_city(seed, start)
                    since = start + timedelta(days=days - hidden)
                    codes = []
                    for moment in moments:
                        odds = 0.1 if moment >= since else 1 / (every * per_day)
                        x = draw.random()
                        codes.append("private" if x < share else "partial" if x < share + odds
                                     else draw.choices(CODES, weights)[0])
                    public, answer = whole_days_server(moments, 50, thinned=0.0, inclusive=False, days_in=UTC,
                                                       paging=False, codes=codes, private="private",
                                                       private_from=("partial", since))
                    read, _, asked_here, error = read_by_days(public, answer, start, days, UTC,
                                                              listed=[*CODES, "private", "partial"])
                    asked += asked_here
                    public_count += sum(r["service_code"] == "partial" for r in public)
                    if error:
                        failed += 1
                        continue
                    lost = [r for r in public if r["service_request_id"] not in read]
                    lost_count += sum(r["service_code"] == "partial" for r in lost)
                    others_lost += sum(r["service_code"] != "partial" for r in lost)
                print(f"| {share:.0%} | {hidden} | {every} day{'s' if every > 1 else ''} | {count} | {public_count:,} | "
                      f"{lost_count:,} | {others_lost:,} | {failed} | {asked:,} |")


def cut_short_cost(per_day: int, page_size: int, days: int) -> int:
    """The requests of a pull cut short once it has asked half of what a whole pull asks,
    and of the next pull, which goes on from the state of its last window read."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    requests, answer = in_memory_server(busy_city(per_day, days, start), page_size)
    whole = cost(per_day, page_size, days)[1]
    first, read, state = Windows(answer, start, start + timedelta(days=days)), [], None
    for batch, state in first:
        read += batch
        if first.asked >= whole // 2:
            break
    resumed = Windows(answer, start, start + timedelta(days=days), state)
    read += [request for batch, _ in resumed for request in batch]
    assert sorted(r["service_request_id"] for r in read) == sorted(r["service_request_id"] for r in requests)
    return first.asked + resumed.asked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--per-day", type=int, help="--thinned: only a city of so many requests a day, pages of 50")
    parser.add_argument("--thinned", action="store_true",
                        help="requests lost and asked, two pulls in turn, from servers that thin a cut page")
    parser.add_argument("--bursts", type=int, metavar="N", help="requests lost and asked of N bursty cities")
    parser.add_argument("--whole-days", type=int, metavar="N",
                        help="requests lost, twice, asked of N cities from servers reading whole days")
    parser.add_argument("--page-ignored", type=int, metavar="N",
                        help="--whole-days' cities from servers that also ignore `page` and thin every cut page")
    parser.add_argument("--private-type", type=int, metavar="N",
                        help="rare public codes lost beside a private service type, of N cities per row")
    parser.add_argument("--partly-private", type=int, metavar="N",
                        help="a code made private lately, rare before, beside a private service type, of N cities per row")
    parser.add_argument("--minute-apart", type=int, metavar="DAYS",
                        help="a request a minute for DAYS days from servers reading whole days, read from times")
    parser.add_argument("--pages-deep", type=int, metavar="D",
                        help="--whole-days, --minute-apart: servers giving no page after page D (the days named kept short, summed)")
    parser.add_argument("--no-parts", action="store_true",
                        help="--page-ignored: days in doubt not read by status and service codes (before session 35)")
    args = parser.parse_args()
    if args.private_type:
        private_type_cost(args.private_type)
        return
    if args.partly_private:
        partly_private_cost(args.partly_private)
        return
    if args.minute_apart:
        minute_apart_cost(args.minute_apart, args.pages_deep)
        return
    if args.whole_days:
        whole_days_cost(args.whole_days, pages_deep=args.pages_deep)
        return
    if args.page_ignored:
        page_ignored_city(not args.no_parts)
        whole_days_cost(args.page_ignored, page_ignored=True, parts=not args.no_parts)
        return
    if args.bursts:
        bursts_cost(args.bursts)
        return
    if args.thinned:
        thinned_table(args.days, args.per_day)
        return
    print(f"| N a day | P | requests in {args.days} days | windows asked | per N/P | numbered pages (one window each "
          "90 days) | P remembered from the pull before | cut short halfway, then resumed (started over: 1.5×) "
          "| 1 in 20 left out after the cut |")
    print("|---|---|---|---|---|---|---|---|---|")
    for per_day, page_size in ((20, 50), (100, 50), (700, 50), (700, 1000), (3000, 50)):
        made, asked = cost(per_day, page_size, args.days)
        paged = sum(made * min(90, args.days - d) // args.days // page_size + 1 for d in range(0, args.days, 90))
        remembered = cost(per_day, page_size, args.days, remembered=page_size)[1]
        print(f"| {per_day:,} | {page_size:,} | {made:,} | {asked:,} | {asked / (made / page_size):.2f} | {paged:,} "
              f"| {remembered:,} | {cut_short_cost(per_day, page_size, args.days):,} "
              f"| {cost(per_day, page_size, args.days, private=20)[1]:,} |")
    small_thinned_city()


def small_thinned_city() -> None:
    """30 requests a day for 10 days, 8 of every 20 left out after a cut at 50, a server that
    ignores `page`: every cut answer thinned, P learned from one (34, not 50)."""
    figures = thinned_cost(30, 50, 10, 0.4, paging=False, pulls=3)
    print("\n30 a day for 10 days, 40% thinned, ignores `page`: lost, asked (pulls 1; 2; 3): "
          + "; ".join(f"{lost:,}, {asked:,}" for lost, asked in figures))


def thinned_table(days: int, per_day: int | None = None) -> None:
    shares = (0.0, 0.05, 0.2, 0.4)
    print("| N a day | P | server | " + " | ".join(f"thins {share:.0%}: lost, asked (pull 1; pull 2)"
                                                  for share in shares) + " |")
    print("|---|---|---|" + "---|" * len(shares))
    cities = ((per_day, 50),) if per_day else ((100, 50), (700, 50), (700, 1000), (3000, 50))
    for per_day, page_size in cities:
        for server, odd_weeks, paging in (("every page", False, True), ("odd weeks only", True, True),
                                          ("every page, ignores `page`", False, False)):
            cells = []
            for share in shares:
                (lost, asked), (lost_again, asked_again) = thinned_cost(per_day, page_size, days, share,
                                                                        odd_weeks=odd_weeks, paging=paging)
                cells.append(f"{lost:,}, {asked:,}; {lost_again:,}, {asked_again:,}")
            print(f"| {per_day:,} | {page_size:,} | {server} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
