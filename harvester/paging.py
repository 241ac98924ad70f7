"""The paging toolkit every adapter uses.

A paginator only decides the parameters of the next request from the page just read
(offset/limit, cursor/scroll, page number); `Listing` drives it, de-duplicates ids seen
twice (pages that shift while they are read) and tells whether the listing is complete.
A page whose answer is over the response cap is asked for in smaller pages where the page
size is a request parameter (SmallerPages; a records pull keeps the smaller size to its end),
and an entry over it alone skipped where the API can skip it by offset (Listing.skipped: the
listing is then partial); what the answers over the cap cost is a warning (OversizedAnswers.cost).
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

log = logging.getLogger("civicat.paging")

# entries handed out at a time from a page parsed as it is read (Listing._in_batches)
ENTRIES_AT_A_TIME = 1_000

# answers over the response cap a listing may get before its portal fails: each may cost a
# read of the whole cap (256 MiB), and a single huge entry costs log2(page size)+1 of them
OVERSIZED_ANSWERS_MAX = 50
RAISE_THE_CAP = "CIVICAT_HTTP_MAX_BYTES raises the cap"


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
    over the cap in all (four times: two; eight times: four), not as many a page."""

    def __init__(self, size: int, *, keep: bool = False):
        self.full = self.size = size
        self.keep = keep
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
            return self.size
        window = self.windows[-1]
        return min(window.size, window.end - position)

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
    """An answer-over-the-cap error's message without its URL (a message names it once)."""
    return str(error).removesuffix(f" ({error.url})")


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
    entry over it alone skipped by its offset (`past_one`)."""

    def __init__(self, limit: int, *, offset_param: str = "offset", limit_param: str = "limit",
                 max_window: int | None = None, extra: dict | None = None, total: int | None = None):
        self.limit = limit
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
        if self.total is None or offset >= self.total or self.sizes.windows or \
                (self.max_window is not None and offset + self.limit > self.max_window):
            return None
        return self._params(offset)

    def next(self, page: Page, params: dict) -> dict | None:
        if not page.items:
            return None
        offset = params[self.offset_param] + len(page.items)
        if page.total is not None:
            if offset >= page.total:
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
    request is the one that followed it then, and is guessed before the page arrives."""

    def __init__(self, paginator: Paginator, known: dict[str, KnownPage]):
        self.paginator, self.known = paginator, known

    def first(self) -> dict:
        return self.paginator.first()

    def next(self, page: Page, params: dict) -> dict | None:
        if page.known is None:
            return self.paginator.next(page, params)
        self.paginator.passed(page.known.size)
        return page.known.next_params

    def guess(self, params: dict) -> dict | None:
        known = self.known.get(params_key(params))
        return known.next_params if known is not None else self.paginator.guess(params)


class Listing:
    """Iterates the unique items of a paged listing.

    `complete` is True only when the last page was read without error and as many unique
    items arrived as the API last said it holds, and no entry was skipped: a partial
    listing must never be used to mark datasets deleted.

    A page whose answer is over the response cap is asked for in smaller pages where the
    paginator can (`Paginator.smaller`); an entry over it alone is skipped where the API
    can skip it by position (`Paginator.past_one`), and named in `skipped`.

    `fetch_page(params)` gives a Page; with `skips_bodies`, `fetch_page(params, unread=digest)`
    may give a page without items (`items=None`) when the answer is that very body again.
    `forget(url)`: drops the body remembered for a page's address (HttpClient.forget), for
    a page refused as a repeat of the one before (PagingError.repeated): a portal that
    validates by date alone would answer that address 304 next time, and the repeat be
    read again.
    """

    def __init__(self, fetch_page: Callable[..., Page], paginator: Paginator,
                 id_of: Callable[[object], str | None], *, max_pages: int = 1_000_000, skips_bodies: bool = False,
                 forget: Callable[[str], None] | None = None):
        self.fetch_page = fetch_page
        self.forget = forget
        self.paginator = paginator
        self.id_of = id_of
        self.max_pages = max_pages
        self.skips_bodies = skips_bodies
        self.pages = 0
        self.total: int | None = None
        self.unique = 0
        self.duplicates: list[str] = []
        self.skipped: list[str] = []         # why each entry skipped (over the response cap alone) was
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

    def _instead_of_oversized(self, params: dict, error: ResponseTooLarge) -> dict | None:
        """What to ask instead of `params`, whose answer was over the response cap: the same
        entries in a smaller page, else the request after the one entry it asks for
        (skipped; None when that entry was the last); raises ResponseTooLarge when neither
        can be asked, or once OVERSIZED_ANSWERS_MAX answers were over the cap."""
        instead = self.answers.smaller(params, error)
        if instead is not None:
            return instead
        reason = cap_reason(error)
        if not self.paginator.skips:
            asked = f"the page at {request_text(params)}" if params else "its one document"
            raise ResponseTooLarge(f"{reason}, and this listing cannot ask for {asked} in smaller parts nor skip an "
                                   f"entry by its position ({RAISE_THE_CAP})", error.url, error.status) from None
        self.skipped.append(f"the entry asked for alone ({request_text(params)}) is over the response cap "
                            f"({reason}): skipped, the rest of the listing read ({RAISE_THE_CAP})")
        return self.paginator.past_one(params, self.total)

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
        paginator = _Remembering(self.paginator, self.known) if self.known else self.paginator
        for page, next_params in pages(self._fetch, paginator, max_pages=self.max_pages, ahead=self.ahead,
                                       fetch_guess=self._fetch_guess, oversized=self._instead_of_oversized):
            self.pages += 1
            if page.total is not None:
                if self.total is not None and page.total != self.total:
                    self.total_changed = True
                self.total = page.total
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
            if page.digest is not None:
                self.digests.append(page.digest)
                self.pages_read.append(PageRead(page.digest, page.params, next_params, page.total, ids))
            page.items = unique
            yield page
        if known_read and seen and self.overlap is not None:
            twice = self.overlap(seen, known_read)   # listed on a page read and on a known one
            self.duplicates.extend(sorted(twice))
            self.unique -= len(twice)
        self.finished = True


def pages(fetch_page: Callable[[dict], Page], paginator: Paginator, *, start: dict | None = None,
          max_pages: int = 1_000_000, ahead: int = 1,
          fetch_guess: Callable[[dict], Page] | None = None,
          oversized: Callable[[dict, ResponseTooLarge], dict | None] | None = None) -> Iterator[tuple[Page, dict | None]]:
    """Each page with the parameters of the request after it (None after the last), the
    next pages fetched in background threads while the caller works through the current
    one: up to `ahead` requests in flight, those after the first sent on the paginator's
    guess and dropped when the page before them says otherwise. `start`: the parameters
    to begin with (a pull resumed where it stopped). `fetch_guess`: how a guessed page is
    fetched (e.g. without retries); a guess that failed is fetched again with `fetch_page`
    once the page before it has confirmed it (but for an answer over the size cap: it
    would be again). `oversized(params, error)`: the request to make instead of one whose
    answer was over the size cap (it raises to give up, None to end the listing there;
    without it, the error stands)."""
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
                    params = oversized(params, error)
                    while queue:   # guesses that followed the request given up
                        queue.pop()[1].cancel()
                    if params is None:
                        return
                    queue.append((params, prefetch.submit(fetch_page, params), False))
                    fill()
                    continue
                page.params = params
                count += 1
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
