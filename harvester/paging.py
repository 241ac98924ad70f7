"""The paging toolkit every adapter uses.

A paginator only decides the parameters of the next request from the page just read
(offset/limit, cursor/scroll, page number); `Listing` drives it, de-duplicates ids seen
twice (pages that shift while they are read) and tells whether the listing is complete.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass


class PagingError(Exception):
    """The listing cannot be completed (a cap reached, a cursor that does not move)."""


@dataclass
class Page:
    items: list
    total: int | None = None     # the total the API reports, when it reports one
    cursor: str | None = None    # the next cursor the API hands out, when it does
    digest: str | None = None    # sha256 of the body the page was read from, when the adapter knows it


class Paginator(ABC):
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


class OffsetPaginator(Paginator):
    """offset/limit paging. Advances by the items actually received, because some APIs
    silently cap `limit`; stops at an empty page or at the reported total. `max_window`
    is the API's cap on offset+limit: reaching it is an error, never a silent stop."""

    def __init__(self, limit: int, *, offset_param: str = "offset", limit_param: str = "limit",
                 max_window: int | None = None, extra: dict | None = None, total: int | None = None):
        self.limit = limit
        self.total = total   # items the API said it holds: no guess goes past them
        self.offset_param = offset_param
        self.limit_param = limit_param
        self.max_window = max_window
        self.extra = extra or {}

    def _params(self, offset: int) -> dict:
        if self.max_window is not None and offset + self.limit > self.max_window:
            raise PagingError(f"offset {offset} + limit {self.limit} is past the API's cap of {self.max_window}")
        return {**self.extra, self.offset_param: offset, self.limit_param: self.limit}

    def first(self) -> dict:
        return self._params(0)

    def guess(self, params: dict) -> dict | None:
        offset = params[self.offset_param] + self.limit
        if self.total is None or offset >= self.total or \
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
        elif len(page.items) < self.limit:
            return None
        return self._params(offset)


class CursorPaginator(Paginator):
    """Cursor/scroll paging: the cursor comes from the page (`cursor_of`), e.g. the id of
    its last item (Socrata's scroll_id) or a token the API hands out."""

    def __init__(self, cursor_param: str, cursor_of: Callable[[Page], str | None], *,
                 first_cursor: str = "", extra: dict | None = None):
        self.cursor_param = cursor_param
        self.cursor_of = cursor_of
        self.first_cursor = first_cursor
        self.extra = extra or {}

    def first(self) -> dict:
        return {**self.extra, self.cursor_param: self.first_cursor}

    def next(self, page: Page, params: dict) -> dict | None:
        if not page.items:
            return None
        cursor = self.cursor_of(page)
        if not cursor:
            return None
        if cursor == params[self.cursor_param]:
            raise PagingError(f"cursor {self.cursor_param}={cursor!r} did not move")
        return {**self.extra, self.cursor_param: cursor}


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


class Listing:
    """Iterates the unique items of a paged listing.

    `complete` is True only when the last page was read without error and as many unique
    items arrived as the API last said it holds: a partial listing must never be used to
    mark datasets deleted.
    """

    def __init__(self, fetch_page: Callable[[dict], Page], paginator: Paginator,
                 id_of: Callable[[object], str | None], *, max_pages: int = 1_000_000):
        self.fetch_page = fetch_page
        self.paginator = paginator
        self.id_of = id_of
        self.max_pages = max_pages
        self.pages = 0
        self.total: int | None = None
        self.unique = 0
        self.duplicates: list[str] = []
        self.finished = False
        self.total_changed = False
        self.page_digest: str | None = None  # of the page whose items are being handed out
        self.digests: list[str] = []         # of every page read that had one

    @property
    def complete(self) -> bool:
        """Read to its end, as many unique ids as reported, and a total that held still:
        an item added or removed while the pages were read shifts offsets, so another
        one may have been skipped unseen."""
        return self.finished and not self.total_changed and (self.total is None or self.unique >= self.total)

    @property
    def shortfall(self) -> int:
        return max(0, (self.total or 0) - self.unique) if self.finished else 0

    def __iter__(self) -> Iterator:
        """Pages are fetched one ahead, in a background thread, while the caller works
        through the current one: the next request only depends on the page just read."""
        seen: set[str] = set()
        params: dict | None = self.paginator.first()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="civicat-page") as prefetch:
            pending: Future | None = prefetch.submit(self.fetch_page, params)
            while pending is not None:
                page = pending.result()
                self.pages += 1
                if page.total is not None:
                    if self.total is not None and page.total != self.total:
                        self.total_changed = True
                    self.total = page.total
                params = self.paginator.next(page, params)
                if params is not None and self.pages >= self.max_pages:
                    raise PagingError(f"listing did not end after {self.max_pages} pages")
                pending = prefetch.submit(self.fetch_page, params) if params is not None else None
                self.page_digest = page.digest
                if page.digest is not None:
                    self.digests.append(page.digest)
                try:
                    for item in page.items:
                        source_id = self.id_of(item)
                        if source_id is not None:
                            if source_id in seen:
                                self.duplicates.append(source_id)
                                continue
                            seen.add(source_id)
                        self.unique += 1
                        yield item
                except GeneratorExit:  # the caller stopped: do not leave a request running
                    if pending is not None:
                        pending.cancel()
                    raise
        self.finished = True


def pages(fetch_page: Callable[[dict], Page], paginator: Paginator, *, start: dict | None = None,
          max_pages: int = 1_000_000, ahead: int = 1) -> Iterator[tuple[Page, dict | None]]:
    """Each page with the parameters of the request after it (None after the last), the
    next pages fetched in background threads while the caller works through the current
    one: up to `ahead` requests in flight, those after the first sent on the paginator's
    guess and dropped when the page before them says otherwise. `start`: the parameters
    to begin with (a pull resumed where it stopped)."""
    params: dict | None = start or paginator.first()
    count = 0
    with ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="civicat-page") as prefetch:
        queue: deque[tuple[dict, Future]] = deque([(params, prefetch.submit(fetch_page, params))])

        def fill() -> None:
            while len(queue) < ahead:
                guessed = paginator.guess(queue[-1][0])
                if guessed is None:
                    return
                queue.append((guessed, prefetch.submit(fetch_page, guessed)))

        fill()
        try:
            while queue:
                params, pending = queue.popleft()
                page = pending.result()
                count += 1
                params = paginator.next(page, params)
                if params is not None and count >= max_pages:
                    raise PagingError(f"paging did not end after {max_pages} pages")
                if queue and queue[0][0] != params:   # the guess was wrong: ask what the page says
                    while queue:
                        queue.pop()[1].cancel()
                if params is not None:
                    if not queue:
                        queue.append((params, prefetch.submit(fetch_page, params)))
                    fill()
                yield page, params
        finally:  # the caller stopped or failed: no request is left running
            for _, pending in queue:
                pending.cancel()
