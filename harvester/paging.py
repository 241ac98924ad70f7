"""The paging toolkit every adapter uses.

A paginator only decides the parameters of the next request from the page just read
(offset/limit, cursor/scroll, page number); `Listing` drives it, de-duplicates ids seen
twice (pages that shift while they are read) and tells whether the listing is complete.
A page whose answer is over the response cap is asked for in smaller pages where the page
size is a request parameter (SmallerPages; a records pull keeps the smaller size to its end),
and an entry over it alone asked for by its id only where the API can select the fields of
its answer (an ids-only page: the entry is known listed, so the listing stays complete), or by
the id the start of the answer over the cap names (Listing's entry_in_head: Socrata), else
skipped where the API can skip it by offset (Listing.skipped: the listing is then partial); what
the answers over the cap cost is a warning (OversizedAnswers.cost). The next night, a remembered
listing asks the requests that worked around a known entry over the cap (its ids-only request,
the smaller pages) instead of learning them again from answers over the cap.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import logging
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from harvester.http import ResponseTooLarge
from harvester.http.client import RAISES_THE_CAP as RAISE_THE_CAP

log = logging.getLogger("civicat.paging")

# entries handed out at a time from a page parsed as it is read (Listing._in_batches)
ENTRIES_AT_A_TIME = 1_000

# unique entries a listing may give before its portal fails: a portal whose paging never ends, each
# page new ids (a cursor minting them, a total of 10^9 that offsets page on to), was bounded only by
# its max_minutes, its memory growing with the ids listed (a local CKAN: 521,000 ids in 30 s, the
# process at 370 MB and growing: six hours would exhaust any machine's). The largest real catalogue, catalog.data.gov's
# CKAN, lists ~400,000. Past twice the total the portal reports (the most it ever reported) and
# ENTRIES_PAST_THE_TOTAL more, too: a cursor, unlike offsets, does not stop at the total; pages that
# shift while read repeat or skip a few ids, and a total that lies low (a search index's stale count,
# which a full page reaching it reads past: OffsetPaginator.past_a_full_total) is read past by the
# catalogue's whole length, which the more allows for
MAX_LISTING_ENTRIES = 2_000_000
ENTRIES_PAST_THE_TOTAL = 100_000

# answers over the response cap a listing may get before its portal fails: each may cost a
# read of the whole cap (256 MiB), and a single huge entry costs log2(page size)+1 of them
OVERSIZED_ANSWERS_MAX = 50


class PagingError(Exception):
    """The listing cannot be completed (a cap reached, a cursor that does not move).
    `repeated`: the page that answered the page before again (a portal ignoring the paging
    parameters), whose body is no answer to its request (Listing.read has it forgotten)."""

    def __init__(self, message: str, repeated: "Page | None" = None):
        super().__init__(message)
        self.repeated = repeated


@dataclass
class Page:
    # None: a known page answered with the same body, not read (see KnownPage); an iterable
    # that is no list: entries parsed as they are read (harvester.http.Entries), which
    # Listing.read hands out in pages of their own, ENTRIES_AT_A_TIME at a time
    items: list | Iterable | None
    total: int | None = None     # the total the API reports, when it reports one
    cursor: str | None = None    # the next cursor the API hands out, when it does
    digest: str | None = None    # sha256 of the body the page was read from, when the adapter knows it
    params: dict | None = None   # the request that gave it (set by pages)
    url: str | None = None       # the address it was read from (a conditional request's: its body is cached)
    known: "KnownPage | None" = None   # the page of the last listing it is, when its body was not read
    # entries known by their ids only, each over the response cap alone (Paginator.identify): they
    # are listed, not read; `reason` says why (set by Listing)
    ids_only: bool = False
    reason: str | None = None
    # what the page's items take in memory, where pages are sized by it (a records pull's
    # table: PagedTables; SmallerPages.fit)
    bytes: int | None = None


@dataclass(frozen=True)
class KnownPage:
    """A page of the portal's last committed listing (see Listing.remember): the request
    that gave it, the one after it, its digest and what was on it. Every entry it holds is
    stored as it is on the page, so when the same request gives the same body back (a 304),
    the page needs no reading: `size` entries, all unchanged."""
    digest: str
    params: dict
    next_params: dict | None
    total: int | None
    size: int
    skippable: bool = True   # False: its entries need a details lookup, so its body is read
    ref: str | None = None   # the catalogue's name for it (its stored request)


def reported_total(fetch_page: Callable[[dict], Page], request: Callable[[int], dict]) -> int | None:
    """The number of entries a listing reports, from a page of the one entry at offset 0
    (`request(offset)`), or at 1 when the first alone is over the response cap (every page
    reports it; the listing then skips that entry)."""
    try:
        return fetch_page(request(0)).total
    except ResponseTooLarge:
        return fetch_page(request(1)).total


def request_text(params: dict | None) -> str:
    """A request's parameters as a message shows them: `start=1000, rows=1000` (a None
    is no parameter: the request leaves it out)."""
    return ", ".join(f"{key}={value}" for key, value in (params or {}).items() if value is not None)


def params_key(params: dict) -> str:
    """The same request, whatever the order its parameters were built in."""
    return json.dumps(params, sort_keys=True, default=str)


@dataclass
class PageRead:
    """What the listing leaves of a page, for the next night's KnownPage."""
    digest: str
    params: dict
    next_params: dict | None
    total: int | None
    ids: list[str] | None          # None: a known page (its ids are those stored)
    known: KnownPage | None = None
    url: str | None = None         # the address it was read from (forgotten when it is refused as a repeat)


class Paginator(ABC):
    sizes: "SmallerPages | None" = None   # where the page size is a request parameter

    @abstractmethod
    def first(self) -> dict:
        """Parameters of the first request."""

    @abstractmethod
    def next(self, page: Page, params: dict) -> dict | None:
        """Parameters of the request after `page` (fetched with `params`), None when done."""

    def guess(self, params: dict) -> dict | None:
        """The request after `params` if its page comes back full, to send before it has
        (None: no guess; the next request waits for the page)."""
        return None

    def passed(self, count: int) -> None:
        """`count` entries handed out on a known page, unread (`next` is not asked after it)."""

    def smaller(self, params: dict) -> dict | None:
        """The request for the first half of the entries `params` asks for, whose answer
        was over the response cap; the rest of them are then asked in pages that size,
        and past them paging goes back to its own size (a records pull keeps the smaller:
        see SmallerPages). None: the page size is not a request parameter (a cursor, one
        document), or `params` asks for one entry."""
        return None

    skips = False   # whether the API can skip an entry by its position (past_one)

    def past_one(self, params: dict, total: int | None) -> dict | None:
        """The request after the single entry `params` asks for (where `skips`); None when
        that entry is the last of the `total` the listing reports: the listing ends there."""
        return None

    def page_size(self, params: dict) -> int | None:
        """The entries `params` asks for, where the page size is a request parameter."""
        return None

    # request parameters that make the API answer each entry with its id only (CKAN's
    # `fl=id,name`, OpenDataSoft's `select=dataset_id`), where it can select the fields it answers
    ids_only: dict | None = None

    def identify(self, params: dict) -> dict | None:
        """The request for the single entry `params` asks for, answered with its id only (None:
        the API cannot select fields, or `params` already does)."""
        if self.ids_only is None or self.asks_ids_only(params):
            return None
        return {**params, **self.ids_only}

    def asks_ids_only(self, params: dict) -> bool:
        return self.ids_only is not None and all(params.get(key) == value for key, value in self.ids_only.items())

    def whole(self, params: dict) -> dict:
        """`params` asking for its entries whole (without the ids-only parameters)."""
        return {key: value for key, value in params.items() if key not in (self.ids_only or {})}

    def position(self, params: dict) -> int | None:
        """Where the entries `params` asks for start (an offset), where paging has positions."""
        return None

    def resized(self, params: dict) -> dict | None:
        """The request for the entries from where `params` starts, in this paginator's own size
        (None where paging has no positions)."""
        return None


@dataclass
class _Window:
    """The entries of a page over the response cap (up to `end`), asked in pages of `size`."""
    end: int
    size: int


class SmallerPages:
    """The page size of a listing or records pull some of whose pages were over the response
    cap, by the position of the entry a page starts at (its offset; for a cursor, the
    entries read before it). A page over the cap is asked again for half its entries, and
    the rest of them in pages of that size, each over the cap halved again, down to one
    entry.

    Past them, a listing goes back to its own size: its pages are over the cap for a few
    huge entries among ordinary ones (a package of 10,000 resources), so a few huge entries
    cost a few requests each (log2 of the page size, twice), not a listing read one entry at
    a time. A records pull keeps the smaller size (`keep`) to its end: a table's rows are
    alike (a layer's polygons), so its page over the cap says the next is over it too, and
    going back would cost an answer over the cap (up to 256 MiB read for nothing) a page.
    There, a page over the cap inside smaller pages makes the rest of the page holding it
    asked in its halves too, and past the entries of the outermost page over the cap, the
    pull goes on in the size they were last asked in: pages twice too big cost one answer
    over the cap in all (four times: two; eight times: four), not as many a page.

    With a `target` (bytes), pages are sized by bytes too: from the first page read, no page
    asks more rows than fit about `target` at the width of the rows read (`fit`), whatever
    the cap allows; before it, no more than `fitted` if set (a bound from the row's columns)."""

    def __init__(self, size: int, *, keep: bool = False):
        self.full = self.size = size
        self.keep = keep
        self.target: int | None = None   # the bytes a page is sized to, where it is
        self.fitted: int | None = None   # the rows of about `target` bytes (a page's at most)
        self.measured = False   # whether `fitted` comes from a page read
        # the pages over the cap whose entries are being asked for in smaller pages, the
        # innermost last (each lies inside the one before it)
        self.windows: list[_Window] = []
        self.smallest: int | None = None   # the smallest page asked for instead of one over the cap

    def at(self, position: int) -> int:
        while self.windows and position >= self.windows[-1].end:
            closed = self.windows.pop()
            if self.keep and not self.windows:
                self.size = closed.size
        if not self.windows:
            return self._fitted(self.size)
        window = self.windows[-1]
        return self._fitted(min(window.size, window.end - position))

    def peek(self, position: int) -> int:
        """The size `at(position)` gives, the windows left as they are (a request further on,
        guessed before the entries before it are read)."""
        for window in reversed(self.windows):
            if position < window.end:
                return self._fitted(min(window.size, window.end - position))
        return self._fitted(self.size)

    @property
    def fitting(self) -> bool:
        """Whether the size of the pages to come is known: pages are not sized by bytes, or a
        page was read to size them by (no request is guessed before: at its own size, a
        page of wide rows would be asked for a read of up to the response cap, then dropped)."""
        return self.target is None or self.measured

    def _fitted(self, size: int) -> int:
        return size if self.fitted is None else min(size, self.fitted)

    def fit(self, rows: int, size_bytes: int) -> None:
        """A page of `rows` entries took `size_bytes`: pages of about `target` bytes from now
        on. Changed only when the rows' width moved the fit past half or twice the one in use:
        a fit that moved with every page would make every request sent ahead a wrong guess."""
        if self.target is None or not rows:
            return
        fitted = max(1, min(self.full, self.target * rows // max(size_bytes, 1)))
        if not self.measured or not self.fitted // 2 <= fitted <= 2 * self.fitted:
            self.fitted, self.measured = fitted, True

    def halve(self, position: int, size: int) -> int | None:
        """The size to ask the `size` entries from `position` in, whose page was over the
        cap (None for one entry)."""
        if size <= 1:
            return None
        half = (size + 1) // 2   # (rounded up: the page's entries in two requests, not three)
        if self.keep and self.windows:
            self.windows[-1].size = min(self.windows[-1].size, half)
        self.windows.append(_Window(position + size, half))
        self.smallest = half if self.smallest is None else min(self.smallest, half)
        return half


def cap_reason(error: ResponseTooLarge) -> str:
    """An answer-over-the-cap error's message without its URL nor what raises the cap (a message
    names each once)."""
    return str(error).removesuffix(f" ({error.url})").removesuffix(f"; {RAISE_THE_CAP}")


class OversizedAnswers:
    """The answers over the response cap of one listing or records pull (`reading` names it
    in messages): the request for the same entries in a smaller page, the bound on how many
    such answers it takes (OVERSIZED_ANSWERS_MAX, each a read of up to the cap), and what
    they cost one read to its end (`cost`)."""

    def __init__(self, paginator: Paginator, reading: str):
        self.paginator = paginator
        self.reading = reading
        self.count = 0
        self.reason: str | None = None   # the last answer's, naming the cap
        self.largest_read = 0   # the largest page read under the cap since the first answer over it

    def smaller(self, params: dict, error: ResponseTooLarge) -> dict | None:
        """The same entries as `params` in a smaller page (None: the paginator cannot ask
        for fewer); raises ResponseTooLarge past OVERSIZED_ANSWERS_MAX answers."""
        self.count += 1
        self.reason = cap_reason(error)
        if self.count > OVERSIZED_ANSWERS_MAX:
            raise ResponseTooLarge(f"{self.reason}: {self.reading} gave up after {OVERSIZED_ANSWERS_MAX} answers "
                                   f"over the cap ({RAISE_THE_CAP})", error.url, error.status) from None
        instead = self.paginator.smaller(params)
        if instead is not None:
            log.info("the answer to %s is over the response cap; asked for in smaller pages: %s",
                     request_text(params), request_text(instead))
        return instead

    def read(self, params: dict) -> None:
        """`params` was answered under the cap."""
        if self.count:
            self.largest_read = max(self.largest_read, self.paginator.page_size(params) or 0)

    def cost(self) -> str | None:
        """What the answers over the cap cost a listing or records pull read to its end, for
        a warning (None: there was none): how many, the page size that was read instead of
        the paginator's own, and what raises the cap."""
        sizes = self.paginator.sizes
        if not self.count or sizes is None:
            return None
        answers = f"{self.count} answer{'s' if self.count > 1 else ''} over the response cap (the last: {self.reason})"
        if sizes.keep:
            read = f"{self.reading} read on in pages of up to {self.largest_read:,} rows, not {sizes.full:,}"
        else:
            read = (f"the entries of its pages over the cap were asked in pages of down to {sizes.smallest or 1:,}, "
                    f"the rest in pages of {sizes.full:,}")
        return f"{answers}: {read}; each such answer may be a read of the whole cap ({RAISE_THE_CAP})"


class OffsetPaginator(Paginator):
    """offset/limit paging. Advances by the items actually received, because some APIs
    silently cap `limit`; stops at an empty page or at the reported total. `max_window`
    is the API's cap on offset+limit: reaching it is an error, never a silent stop.
    A page over the response cap is asked for in smaller pages (see SmallerPages), an
    entry over it alone asked for by its id only (with `ids_only`, the request parameters
    that select it: see Paginator.identify), else skipped by its offset (`past_one`)."""

    def __init__(self, limit: int, *, offset_param: str = "offset", limit_param: str = "limit",
                 max_window: int | None = None, extra: dict | None = None, total: int | None = None,
                 ids_only: dict | None = None, past_a_full_total: bool = False):
        self.limit = limit
        # a listing's: a full page that reaches the reported total is followed by one more request (within
        # max_window). A total that lies low at a page's end (1,000 of 2,500: a search index's stale
        # count) ended the listing there complete, and the 1,500 after it were marked removed; an honest
        # one costs an empty page, where the total is a whole number of pages
        self.past_a_full_total = past_a_full_total
        self.ids_only = ids_only
        self.total = total   # items the API said it holds: no guess goes past them
        self.offset_param = offset_param
        self.limit_param = limit_param
        self.max_window = max_window
        self.extra = extra or {}
        self.sizes = SmallerPages(limit)

    def _params(self, offset: int) -> dict:
        size = self.sizes.at(offset)
        if self.max_window is not None and offset + size > self.max_window:
            raise PagingError(f"offset {offset} + limit {size} is past the API's cap of {self.max_window}")
        return {**self.extra, self.offset_param: offset, self.limit_param: size}

    def first(self) -> dict:
        return self._params(0)

    def guess(self, params: dict) -> dict | None:
        # (the size `params` asks: a records pull resumed from a page asked smaller asks fewer)
        offset = params[self.offset_param] + params[self.limit_param]
        if self.total is None or offset >= self.total or self.sizes.windows or not self.sizes.fitting or \
                (self.max_window is not None and offset + self.limit > self.max_window):
            return None
        return self._params(offset)

    def next(self, page: Page, params: dict) -> dict | None:
        if not page.items:
            return None
        offset = params[self.offset_param] + len(page.items)
        if page.total is not None:
            if offset >= page.total and not (self.past_a_full_total and len(page.items) >= params[self.limit_param]
                                             and (self.max_window is None or
                                                  offset + self.sizes.peek(offset) <= self.max_window)):
                return None
        elif len(page.items) < min(self.limit, params[self.limit_param]):   # (smaller under SmallerPages)
            return None
        return self._params(offset)

    def smaller(self, params: dict) -> dict | None:
        half = self.sizes.halve(params[self.offset_param], params[self.limit_param])
        return None if half is None else {**params, self.limit_param: half}

    skips = True

    def past_one(self, params: dict, total: int | None) -> dict | None:
        offset = params[self.offset_param] + 1
        # (past the last entry nothing is asked: at the API's cap on offset+limit, e.g. Socrata's
        # 10,000 of 10,000 assets, that request would fail the portal)
        return None if total is not None and offset >= total else self._params(offset)

    def page_size(self, params: dict) -> int | None:
        return params[self.limit_param]

    def position(self, params: dict) -> int | None:
        return params.get(self.offset_param)   # (None for a request of another paging: Socrata's scroll_id)

    def resized(self, params: dict) -> dict | None:
        offset = params.get(self.offset_param)
        if offset is None:
            return None
        size = self.sizes.peek(offset)
        if self.max_window is not None:   # (a position of smaller pages may be closer to the window than a size)
            size = min(size, self.max_window - offset)
        return {**self.extra, self.offset_param: offset, self.limit_param: size} if size > 0 else None


class CursorPaginator(Paginator):
    """Cursor/scroll paging: the cursor comes from the page (`cursor_of`), e.g. the id of
    its last item (Socrata's scroll_id) or a token the API hands out. With `size_param`,
    the page size is a request parameter: a page over the response cap is asked for in
    smaller pages (see SmallerPages); an entry over it alone cannot be skipped (its id,
    the cursor past it, is in the answer that was not read)."""

    def __init__(self, cursor_param: str, cursor_of: Callable[[Page], str | None], *,
                 first_cursor: str = "", extra: dict | None = None, size_param: str | None = None,
                 size: int | None = None):
        self.cursor_param = cursor_param
        self.cursor_of = cursor_of
        self.first_cursor = first_cursor
        self.extra = extra or {}
        self.size_param = size_param
        self.sizes = SmallerPages(size) if size_param and size else None
        self.read = 0   # entries on the pages before the next request (its position, for `sizes`)

    def _params(self, cursor: str) -> dict:
        params = {**self.extra, self.cursor_param: cursor}
        if self.sizes is not None:
            params[self.size_param] = self.sizes.at(self.read)
        return params

    def first(self) -> dict:
        return self._params(self.first_cursor)

    def passed(self, count: int) -> None:
        # (the position a page over the cap is halved at: not counted, a changed page after
        # it asked for the stale windows' sizes, off last night's chain: no 304 past it)
        self.read += count

    def next(self, page: Page, params: dict) -> dict | None:
        if not page.items:
            return None
        self.read += len(page.items)
        cursor = self.cursor_of(page)
        if not cursor:
            return None
        if cursor == params[self.cursor_param]:
            raise PagingError(f"cursor {self.cursor_param}={cursor!r} did not move", repeated=page)
        return self._params(cursor)

    def smaller(self, params: dict) -> dict | None:
        half = self.sizes.halve(self.read, params[self.size_param]) if self.sizes is not None else None
        return None if half is None else {**params, self.size_param: half}

    def page_size(self, params: dict) -> int | None:
        return params[self.size_param] if self.sizes is not None else None


class PageNumberPaginator(Paginator):
    """page=1,2,... paging; stops at an empty page, or a short one when the size is known."""

    def __init__(self, *, page_param: str = "page", first_page: int = 1, size: int | None = None,
                 size_param: str | None = None, extra: dict | None = None):
        self.page_param = page_param
        self.first_page = first_page
        self.size = size
        self.size_param = size_param
        self.extra = extra or {}

    def _params(self, number: int) -> dict:
        params = {**self.extra, self.page_param: number}
        if self.size_param and self.size:
            params[self.size_param] = self.size
        return params

    def first(self) -> dict:
        return self._params(self.first_page)

    def next(self, page: Page, params: dict) -> dict | None:
        if not page.items or (self.size is not None and len(page.items) < self.size):
            return None
        return self._params(params[self.page_param] + 1)


class SinglePage(Paginator):
    """A listing served whole in one document (data.json, services.json)."""

    def first(self) -> dict:
        return {}

    def next(self, page: Page, params: dict) -> dict | None:
        return None


class _Remembering(Paginator):
    """A paginator that knows the last listing's chain of requests: a known page's next
    request is the one that followed it then, and is guessed before the page arrives.

    It knows where that listing met entries over the response cap alone (an ids-only page,
    or a request for one entry it skipped): a request whose entries would hold one is
    replaced by the one that listing asked at the same position (the smaller page that
    fitted, the entry's ids-only request), so a night whose pages have not moved asks no
    answer over the cap to learn them again. Elsewhere paging asks its own size (the smaller
    pages past such an entry are read once more in it, then known the nights after), so
    what was learnt is forgotten once the entry fits again, or moved."""

    def __init__(self, paginator: Paginator, known: dict[str, KnownPage]):
        self.paginator, self.known = paginator, known
        self.asked_at: dict[int, dict] = {}   # position -> the request last night read there
        self.over_cap: set[int] = set()       # positions of entries last night found over the cap alone
        for page in known.values():
            position = paginator.position(page.params)
            if position is None:
                continue
            self.asked_at[position] = page.params
            if paginator.asks_ids_only(page.params):
                self.over_cap.add(position)
        for page in known.values():   # a request for one entry where nothing was read: skipped over the cap
            after = page.next_params
            position = None if after is None else paginator.position(after)
            if position is not None and position not in self.asked_at and paginator.page_size(after) == 1:
                self.over_cap.add(position)

    def along(self, params: dict | None) -> dict | None:
        """The request to make for `params`: the paginator's own at its position, or last
        night's there (else `params`) when that one would hold an entry last night found over
        the cap (so what was learnt around such an entry is forgotten once it is not found);
        an ids-only request last night's listing no longer holds (its entry was read whole
        since) is asked whole."""
        position = None if params is None else self.paginator.position(params)
        if position is None:
            return params
        if self.paginator.asks_ids_only(params) and params_key(params) not in self.known:
            return self.paginator.whole(params)
        own = self.paginator.resized(params) or params
        size = self.paginator.page_size(own)
        if any(position <= held < position + size for held in self.over_cap):
            return self.asked_at.get(position, params)   # (none read there: the entry skipped, asked alone)
        return own

    def first(self) -> dict:
        return self.along(self.paginator.first())

    def next(self, page: Page, params: dict) -> dict | None:
        if page.known is None:
            own = self.paginator.next(page, params)
            known = self.known.get(params_key(params))
            if own is not None and known is not None and known.next_params is not None and \
                    self.paginator.position(own) is not None and \
                    self.paginator.position(own) == self.paginator.position(known.next_params):
                own = known.next_params   # (a page of last night's read, as long as then: along its chain)
            return self.along(own)
        self.paginator.passed(page.known.size)
        return self.along(page.known.next_params)

    def guess(self, params: dict) -> dict | None:
        known = self.known.get(params_key(params))
        return self.along(known.next_params if known is not None else self.paginator.guess(params))

    def past_one(self, params: dict, total: int | None) -> dict | None:
        return self.along(self.paginator.past_one(params, total))


class Listing:
    """Iterates the unique items of a paged listing.

    `complete` is True only when the last page was read without error and as many unique
    items arrived as the API last said it holds, and no entry was skipped: a partial
    listing must never be used to mark datasets deleted.

    A page whose answer is over the response cap is asked for in smaller pages where the
    paginator can (`Paginator.smaller`); an entry over it alone is asked for by its id only
    where the API can (`Paginator.identify`: a page with `ids_only`, its entries listed but
    not read, so the listing can be complete), else skipped where the API can skip it by
    position (`Paginator.past_one`), and named in `skipped`. `cap`: the response cap the
    listing is read under; an ids-only page's digest holds it, so that the next night asks
    such an entry whole again once the cap was raised (or its ids-only answer changed: the
    entry changed or moved).

    `fetch_page(params)` gives a Page; with `skips_bodies`, `fetch_page(params, unread=digest)`
    may give a page without items (`items=None`) when the answer is that very body again.
    `forget(url)`: drops the body remembered for a page's address (HttpClient.forget), for
    a page refused as a repeat of the one before (PagingError.repeated): a portal that
    validates by date alone would answer that address 304 next time, and the repeat be
    read again. `entry_in_head(head)`: where the API cannot select fields, the entry (as little
    of it as names it, for `id_of`) an answer over the cap for one entry names in its first
    bytes (ResponseTooLarge.head), else None: it is listed by its id as an ids-only page is.
    """

    def __init__(self, fetch_page: Callable[..., Page], paginator: Paginator,
                 id_of: Callable[[object], str | None], *, max_pages: int = 1_000_000,
                 max_entries: int | None = None, skips_bodies: bool = False,
                 cap: int | None = None, forget: Callable[[str], None] | None = None,
                 entry_in_head: Callable[[bytes], object | None] | None = None):
        self.fetch_page = fetch_page
        self.entry_in_head = entry_in_head
        self.cap = cap
        self.forget = forget
        self.paginator = paginator
        self.id_of = id_of
        self.max_pages = max_pages
        self.max_entries = MAX_LISTING_ENTRIES if max_entries is None else max_entries
        self.most_reported = 0   # the largest total the API reported as the pages were read
        self.skips_bodies = skips_bodies
        self.pages = 0
        self.total: int | None = None
        self.unique = 0
        self.duplicates: list[str] = []
        self.skipped: list[str] = []         # why each entry skipped (over the response cap alone) was
        self.over_cap: dict[str, str] = {}   # ids-only request (params_key) -> why its entry is asked so
        self.answers = OversizedAnswers(paginator, "the listing")
        self.finished = False
        self.total_changed = False
        self.page_digest: str | None = None  # of the page whose items are being handed out
        self.digests: list[str] = []         # of every page read that had one
        self.pages_read: list[PageRead] = []  # of every page with a digest, in order
        self.known: dict[str, KnownPage] = {}
        self.ahead = 1
        self.overlap: Callable[[set[str], list[KnownPage]], set[str]] | None = None
        self.speculative: Callable[[], AbstractContextManager] = nullcontext
        self._paging: Paginator = paginator   # (with remember: along last night's chain)

    def remember(self, known: list[KnownPage], *, ahead: int = 1,
                 overlap: Callable[[set[str], list[KnownPage]], set[str]] | None = None,
                 speculative: Callable[[], AbstractContextManager] = nullcontext) -> None:
        """The pages of the last listing: their requests are sent `ahead` at a time along
        last night's chain (each guess checked as the page before it arrives; a guessed
        request is made inside `speculative()`, e.g. HttpClient.speculative), and a known
        page answered with its very body is handed out unread (`Page.known`, by `read()`
        only). `overlap(ids, pages)`: which of `ids` the known `pages` list (to find an id
        listed both on a page read and on one not read)."""
        self.known = {params_key(page.params): page for page in known}
        self.ahead = max(1, ahead)
        self.overlap = overlap
        self.speculative = speculative

    def _fetch_guess(self, params: dict) -> Page:
        with self.speculative():
            return self._fetch(params)

    @property
    def complete(self) -> bool:
        """Read to its end, as many unique ids as reported, and a total that held still:
        an item added or removed while the pages were read shifts offsets, so another
        one may have been skipped unseen. More unique ids than reported is partial too:
        the total was wrong (a search index being rebuilt), and paging stopped on it."""
        return self.finished and not self.total_changed and not self.skipped and \
            (self.total is None or self.unique == self.total)

    @property
    def shortfall(self) -> int:
        return max(0, (self.total or 0) - self.unique) if self.finished else 0

    @property
    def oversized(self) -> int:
        """Answers over the response cap."""
        return self.answers.count

    def _instead_of_oversized(self, params: dict, error: ResponseTooLarge) -> dict | Page | None:
        """What to ask instead of `params`, whose answer was over the response cap: the same
        entries in a smaller page, else the one entry it asks for by its id only, else (an
        `entry_in_head`) the page of that entry as the answer's head names it, else the
        request after that entry (skipped; None when that entry was the last); raises
        ResponseTooLarge when none can be asked, or once OVERSIZED_ANSWERS_MAX answers were
        over the cap. The page read before keeps the request that worked as its next, for the
        next night's chain (see _Remembering)."""
        instead = self.answers.smaller(params, error)
        reason = cap_reason(error)
        if instead is None and (instead := self.paginator.identify(params)) is not None:
            self.over_cap[params_key(instead)] = f"over the response cap alone ({reason})"
            log.info("the entry asked for alone (%s) is over the response cap; asked for by its id only",
                     request_text(params))
        if instead is not None:
            self._asked_instead(params, instead)
            return instead
        named = self.entry_in_head(error.head) if self.entry_in_head is not None else None
        if named is not None and self.id_of(named) is not None:
            # (no digest: not kept as a page; the next night asks the entry alone again, as a skipped one's)
            return Page(items=[named], total=self.total, ids_only=True,
                        reason=f"the entry asked for alone ({request_text(params)}) is over the response cap alone "
                               f"({reason}), its id read from the start of the answer")
        if not self.paginator.skips:
            asked = f"the page at {request_text(params)}" if params else "its one document"
            raise ResponseTooLarge(f"{reason}, and this listing cannot ask for {asked} in smaller parts nor skip an "
                                   f"entry by its position ({RAISE_THE_CAP})", error.url, error.status) from None
        self.skipped.append(f"the entry asked for alone ({request_text(params)}) is over the response cap "
                            f"({reason}): skipped, the rest of the listing read ({RAISE_THE_CAP})")
        return self._paging.past_one(params, self.total)

    def _identified(self, page: Page) -> Page:
        """An ids-only page (its entry over the response cap alone), its digest holding the cap.
        When last night's listing had it with another digest (a raised cap, a changed entry,
        another one at its position), its entry is asked whole once more: read when it fits."""
        page.ids_only = True
        if self.cap is not None and page.digest is not None:
            page.digest = f"{page.digest} under a cap of {self.cap}"
        known = self.known.get(params_key(page.params))
        whole_params = self.paginator.whole(page.params)
        over = self.over_cap.get(params_key(page.params)) or \
            f"over the response cap alone when last asked whole{f' (a {self.cap}-byte cap)' if self.cap else ''}"
        page.reason = f"the entry asked for alone ({request_text(whole_params)}) is {over}"
        if any(self.id_of(item) is None for item in page.items):   # (not known listed: the listing is partial)
            self.skipped.append(f"{page.reason}, and its answer by id only names no id: skipped ({RAISE_THE_CAP})")
            page.items = [item for item in page.items if self.id_of(item) is not None]
        if known is None or known.digest == page.digest:
            return page
        try:
            whole = self.fetch_page(whole_params)
        except ResponseTooLarge as error:
            self.answers.count += 1
            self.answers.reason = cap_reason(error)
            page.reason = f"the entry asked for alone ({request_text(whole_params)}) is over the response cap " \
                          f"alone ({self.answers.reason})"
            return page
        whole.params = whole_params
        self._asked_instead(page.params, whole_params)
        return whole

    def _asked_instead(self, params: dict, instead: dict) -> None:
        """`instead` was asked for the entries of `params`: the page read before it, whose next
        request `params` was, keeps `instead` as its next, where paging has positions (a known
        page keeps its stored next: _Remembering finds `instead` by its position; a cursor's
        pages are asked in last night's sizes by halving again, see CursorPaginator.passed)."""
        last = self.pages_read[-1] if self.pages_read else None
        if last is not None and last.known is None and last.next_params == params and \
                self.paginator.position(params) is not None:
            last.next_params = instead

    def __iter__(self) -> Iterator:
        """The unique items, page after page (the pages of `read()` that were read)."""
        for page in self.read():
            self.page_digest = page.digest
            yield from page.items or ()

    def _fetch(self, params: dict) -> Page:
        known = self.known.get(params_key(params))
        if known is not None and known.skippable and self.skips_bodies:
            page = self.fetch_page(params, unread=known.digest)
            if page.items is None:
                return Page(items=None, total=known.total, digest=known.digest, known=known)
            return page
        return self.fetch_page(params)

    def _unique(self, items, seen: set[str]) -> tuple[list, list[str], list[str]]:
        """The items whose ids are not in `seen` (added to it), their ids, and the ids repeated."""
        unique, ids, repeated = [], [], []
        for item in items:
            source_id = self.id_of(item)
            if source_id is not None:
                if source_id in seen:
                    repeated.append(source_id)
                    continue
                seen.add(source_id)
                ids.append(source_id)
            unique.append(item)
        return unique, ids, repeated

    def _refuse_repeats(self, twice: set[str]) -> None:
        """A page read (not the last) every entry of which was listed already, some on a known page
        left unread (`twice`: the ids listed on a page read and on a known one), repeats a page as one
        whose entries were all on pages read does (PagingError, in _read): known pages' ids are not
        held while the pages are read, so this is told once the listing is read, from the one
        query of the ids on the known pages (`overlap`)."""
        for read in self.pages_read:
            if read.known is None and read.ids and read.next_params is not None and twice.issuperset(read.ids):
                raise PagingError(f"the page at {request_text(read.params)} gave {len(read.ids)} entries, every one "
                                  "already listed (on a page answered as the last listing's): the portal repeats a "
                                  "page instead of paging on", repeated=Page(items=None, url=read.url))

    def _refuse_endless(self, page: Page, next_params: dict | None) -> None:
        """PagingError once the entries listed pass `max_entries` (MAX_LISTING_ENTRIES), or twice
        the most the API reported and ENTRIES_PAST_THE_TOTAL more, and paging would go on
        (`next_params`): a listing whose
        every page is new would page on for its portal's whole time budget, its ids held all the
        while. (A page past its total that ends the listing is no such thing: a total gone wrong
        as a search index is rebuilt, the listing then partial.)"""
        if next_params is None:
            return
        if self.unique > self.max_entries:
            raise PagingError(f"the listing gave over {self.max_entries:,} entries and did not end (at "
                              f"{request_text(page.params)}): more than any open-data catalogue holds, so the "
                              "portal's paging does not end")
        if self.most_reported and self.unique > 2 * self.most_reported + ENTRIES_PAST_THE_TOTAL:
            raise PagingError(f"the listing gave {self.unique:,} entries, over twice the {self.most_reported:,} the "
                              f"portal reports and {ENTRIES_PAST_THE_TOTAL:,} more, and did not end (at "
                              f"{request_text(page.params)}): the portal's paging does not end")

    def _in_batches(self, page: Page, next_params: dict | None, seen: set[str]) -> Iterator[Page]:
        """A page whose items are parsed as they are read (harvester.http.Entries: a listing
        served as one large document), its unique items handed out ENTRIES_AT_A_TIME at a time,
        each batch a page of its own: no more of them are held at once. A body cut short was
        refused whole when it was read, before any of them. The entries are closed once handed
        out, or when the listing stops (a large body's temporary file goes with them)."""
        entries, ids = iter(page.items), []
        try:
            while batch := list(itertools.islice(entries, ENTRIES_AT_A_TIME)):
                unique, batch_ids, repeated = self._unique(batch, seen)
                if page.digest is not None:   # (kept for the page's PageRead only)
                    ids += batch_ids
                self.duplicates.extend(repeated)
                self.unique += len(unique)
                self._refuse_endless(page, next_params)
                yield dataclasses.replace(page, items=unique)
        finally:
            if hasattr(page.items, "close"):
                page.items.close()
        if page.digest is not None:
            self.digests.append(page.digest)
            self.pages_read.append(PageRead(page.digest, page.params, next_params, page.total, ids))

    def read(self) -> Iterator[Page]:
        """Each page in order, its items cut to those not listed before; a known page
        answered with its very body comes without items (`known` set). Pages are fetched
        ahead, in background threads, while the caller works through the current one: one
        ahead, or along the last listing's chain (see remember)."""
        try:
            yield from self._read()
        except PagingError as exc:
            if exc.repeated is not None and exc.repeated.url is not None and self.forget is not None:
                self.forget(exc.repeated.url)
            raise

    def _read(self) -> Iterator[Page]:
        seen: set[str] = set()
        known_read: list[KnownPage] = []
        self._paging = _Remembering(self.paginator, self.known) if self.known else self.paginator
        for page, next_params in pages(self._fetch, self._paging, max_pages=self.max_pages, ahead=self.ahead,
                                       fetch_guess=self._fetch_guess, oversized=self._instead_of_oversized):
            if page.items is not None and self.paginator.asks_ids_only(page.params):
                page = self._identified(page)
            self.pages += 1
            if page.total is not None:
                if self.total is not None and page.total != self.total:
                    self.total_changed = True
                self.total = page.total
                self.most_reported = max(self.most_reported, page.total)
            if page.known is not None:
                known_read.append(page.known)
                self.unique += page.known.size
                self.pages_read.append(PageRead(page.digest, page.params, next_params, page.total, None, page.known))
                yield page
                continue
            if not isinstance(page.items, list):   # entries parsed as they are handed out
                yield from self._in_batches(page, next_params, seen)
                continue
            unique, ids, repeated = self._unique(page.items, seen)
            if repeated and not unique and next_params is not None:
                # pages that shift while they are read repeat a few ids, never a whole page
                # (but a short last one, when datasets were both created and deleted meanwhile):
                # this API ignores the paging parameters, and would answer so till max_pages
                raise PagingError(f"the page at {request_text(page.params)} gave {len(repeated)} entries, every one "
                                  "already listed: the portal repeats a page instead of paging on", repeated=page)
            self.duplicates.extend(repeated)
            self.unique += len(unique)
            self._refuse_endless(page, next_params)
            if page.digest is not None:
                self.digests.append(page.digest)
                # (an ids-only page is read every night: its entry is told of, or asked whole again)
                self.pages_read.append(PageRead(page.digest, page.params, next_params, page.total,
                                                None if page.ids_only else ids, url=page.url))
            page.items = unique
            yield page
        if known_read and seen and self.overlap is not None:
            twice = self.overlap(seen, known_read)   # listed on a page read and on a known one
            self._refuse_repeats(twice)
            self.duplicates.extend(sorted(twice))
            self.unique -= len(twice)
        self.finished = True


def pages(fetch_page: Callable[[dict], Page], paginator: Paginator, *, start: dict | None = None,
          max_pages: int = 1_000_000, ahead: int = 1,
          fetch_guess: Callable[[dict], Page] | None = None,
          oversized: Callable[[dict, ResponseTooLarge], dict | Page | None] | None = None
          ) -> Iterator[tuple[Page, dict | None]]:
    """Each page with the parameters of the request after it (None after the last), the
    next pages fetched in background threads while the caller works through the current
    one: up to `ahead` requests in flight, those after the first sent on the paginator's
    guess and dropped when the page before them says otherwise. `start`: the parameters
    to begin with (a pull resumed where it stopped). `fetch_guess`: how a guessed page is
    fetched (e.g. without retries); a guess that failed is fetched again with `fetch_page`
    once the page before it has confirmed it (but for an answer over the size cap: it
    would be again). `oversized(params, error)`: the request to make instead of one whose
    answer was over the size cap, or the page that stands for its answer (its entry named by
    the answer's head); it raises to give up, None to end the listing there; without it, the
    error stands."""
    params: dict | None = start or paginator.first()
    count = 0
    with ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="civicat-page") as prefetch:
        # (params, pending, a guess)
        queue: deque[tuple[dict, Future, bool]] = deque([(params, prefetch.submit(fetch_page, params), False)])

        def fill() -> None:
            while len(queue) < ahead:
                guessed = paginator.guess(queue[-1][0])
                if guessed is None:
                    return
                queue.append((guessed, prefetch.submit(fetch_guess or fetch_page, guessed), True))

        fill()
        try:
            while queue:
                params, pending, guessed = queue.popleft()
                if guessed and fetch_guess is not None and pending.exception() is not None and \
                        not isinstance(pending.exception(), ResponseTooLarge):
                    pending = prefetch.submit(fetch_page, params)   # confirmed: asked again, in earnest
                try:
                    page = pending.result()
                except ResponseTooLarge as error:
                    if oversized is None:
                        raise
                    instead = oversized(params, error)
                    while queue:   # guesses that followed the request given up
                        queue.pop()[1].cancel()
                    if instead is None:
                        return
                    if not isinstance(instead, Page):
                        params = instead
                        queue.append((params, prefetch.submit(fetch_page, params), False))
                        fill()
                        continue
                    page = instead
                page.params = params
                count += 1
                if page.bytes is not None and paginator.sizes is not None:
                    paginator.sizes.fit(len(page.items), page.bytes)
                params = paginator.next(page, params)
                if params is not None and count >= max_pages:
                    raise PagingError(f"paging did not end after {max_pages} pages")
                if queue and queue[0][0] != params:   # the guess was wrong: ask what the page says
                    while queue:
                        queue.pop()[1].cancel()
                if params is not None:
                    if not queue:
                        queue.append((params, prefetch.submit(fetch_page, params), False))
                    fill()
                yield page, params
        finally:  # the caller stopped or failed: no request is left running
            for _, pending, _ in queue:
                pending.cancel()
