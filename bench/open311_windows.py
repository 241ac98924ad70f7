"""Benchmark: what Open311 date windows read in one answer cost, in requests.

A city's requests for `--days` days (`per_day` on weekdays, fewer at weekends, most between
8:00 and 18:00), served in memory newest first by pages of P; harvester.portals.open311.Windows
reads them all (checked: each once) and the requests it made are counted, against what
numbered pages cost (one 90-day window paged: N/P + 1, with requests lost when one is removed
between pages), with the page size remembered from the pull before, for a pull cut
short halfway then resumed, and for a server that cuts its answer at P and then leaves out
one request in 20 (private service types). No HTTP: the count, not the time, is the figure.

    python -m bench.open311_windows [--days 90]
"""
from __future__ import annotations

import argparse
import bisect
import random
from datetime import UTC, datetime, timedelta

from harvester.portals.open311 import Windows

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


def in_memory_server(moments: list[datetime], page_size: int, *, paging: bool = True, private: int = 0):
    """The requests made at `moments` as requests.json answers them: (the public requests,
    answer); `private`: every such request is left out of a page once it is cut."""
    requests = [{"service_request_id": str(n), "requested_datetime": m.isoformat()} for n, m in enumerate(moments)]

    def public(request: dict) -> bool:
        return not private or int(request["service_request_id"]) % private

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
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
