import pytest

from harvester.http import ResponseTooLarge
from harvester.paging import (OVERSIZED_ANSWERS_MAX, CursorPaginator, KnownPage, Listing, OffsetPaginator, OversizedAnswers, Page,
                              PageNumberPaginator, PagingError, SinglePage, pages)

ITEMS = [{"id": f"{i:04d}"} for i in range(250)]


def offset_api(items, cap=100):
    """An offset API that silently caps limit, reporting its total."""
    calls = []

    def fetch(params):
        calls.append(params)
        limit = min(params["limit"], cap)
        return Page(items[params["offset"]:params["offset"] + limit], total=len(items))
    return fetch, calls


def test_offset_paging_advances_by_received_items_when_limit_is_capped():
    fetch, calls = offset_api(ITEMS, cap=100)
    listing = Listing(fetch, OffsetPaginator(1000), lambda i: i["id"])
    assert [i["id"] for i in listing] == [i["id"] for i in ITEMS]
    assert [c["offset"] for c in calls] == [0, 100, 200]
    assert listing.complete and listing.duplicates == []


def test_offset_paging_refuses_to_pass_the_window_cap():
    fetch, _ = offset_api(ITEMS)
    listing = Listing(fetch, OffsetPaginator(100, max_window=200), lambda i: i["id"])
    with pytest.raises(PagingError, match="cap of 200"):
        list(listing)
    assert not listing.complete


def test_shifting_pages_give_duplicates_once_and_mark_the_listing_partial():
    items = list(ITEMS)

    def fetch(params):
        if params["offset"] == 100:  # a new first item appears between two pages
            items.insert(0, {"id": "new"})
        return Page(items[params["offset"]:params["offset"] + 100], total=len(items))

    listing = Listing(fetch, OffsetPaginator(100), lambda i: i["id"])
    ids = [i["id"] for i in listing]
    assert len(ids) == len(set(ids)) == 250          # every original item, each once
    assert listing.duplicates == ["0099"]
    assert listing.total == 251 and not listing.complete and listing.shortfall == 1


def test_cursor_paging_follows_last_id():
    ordered = sorted(ITEMS, key=lambda i: i["id"])

    def fetch(params):
        after = params["scroll_id"]
        return Page([i for i in ordered if i["id"] > after][:100], total=len(ordered))

    listing = Listing(fetch, CursorPaginator("scroll_id", lambda p: p.items[-1]["id"]), lambda i: i["id"])
    assert len(list(listing)) == 250 and listing.pages == 4 and listing.complete


def test_cursor_that_does_not_move_is_an_error():
    listing = Listing(lambda p: Page([{"id": "a"}]), CursorPaginator("c", lambda p: "same", first_cursor="same"),
                      lambda i: i["id"])
    with pytest.raises(PagingError, match="did not move"):
        list(listing)


def test_page_number_paging_stops_on_short_page():
    def fetch(params):
        start = (params["page"] - 1) * 50
        return Page(ITEMS[start:start + 50])

    listing = Listing(fetch, PageNumberPaginator(size=50, size_param="page_size"), lambda i: i["id"])
    assert len(list(listing)) == 250 and listing.pages == 6 and listing.complete


def test_single_document_with_duplicates_and_items_without_ids():
    listing = Listing(lambda p: Page([{"id": "a"}, {"x": 1}, {"id": "a"}]), SinglePage(), lambda i: i.get("id"))
    assert list(listing) == [{"id": "a"}, {"x": 1}]
    assert listing.duplicates == ["a"] and listing.complete  # the whole document was read


def test_fewer_unique_items_than_reported_is_partial():
    listing = Listing(lambda p: Page([{"id": "a"}, {"id": "a"}], total=2), SinglePage(), lambda i: i["id"])
    list(listing)
    assert not listing.complete and listing.shortfall == 1


def test_pages_ahead_guesses_full_pages_and_drops_wrong_guesses():
    from harvester.paging import OffsetPaginator, Page, pages

    items = list(range(23))
    asked = []

    def fetch(params):
        asked.append(params["offset"])
        return Page(items=items[params["offset"]:params["offset"] + 5])

    got = [(page.items, after) for page, after in pages(fetch, OffsetPaginator(5, total=23), ahead=3)]
    assert [i for page, _ in got for i in page] == items
    assert got[-1][1] is None and sorted(asked) == [0, 5, 10, 15, 20]   # no guess past the total

    short = {10: 3}   # the page at offset 10 comes back short (a server cap): the guesses after it are dropped
    asked.clear()

    def capped(params):
        asked.append(params["offset"])
        offset = params["offset"]
        return Page(items=items[offset:offset + short.get(offset, 5)], total=23)

    seen = [i for page, _ in pages(capped, OffsetPaginator(5, total=23), ahead=3) for i in page.items]
    assert seen == items and 13 in asked


def test_pages_sized_by_bytes_ask_the_rows_of_the_target_and_change_only_when_the_width_doubles_or_halves():
    """Rows of 100 bytes, then of 180, then of 1,000, against pages of 10,000 bytes: the pages
    after the first ask 100 rows; rows of 180 bytes (a fit of 55, within half of 100) leave
    it, so that requests sent ahead stay right guesses; rows of 1,000 bytes make it 10. No
    request is guessed before the first page is read: at its own size, a page of wide rows
    would be asked for a read of up to the response cap, then dropped."""
    widths = [100] * 400 + [180] * 400 + [1_000] * 400
    asked = []

    def fetch(params):
        asked.append((params["offset"], params["limit"]))
        rows = widths[params["offset"]:params["offset"] + params["limit"]]
        return Page(items=rows, bytes=sum(rows))

    paginator = OffsetPaginator(400, total=len(widths))
    paginator.sizes.target = 10_000
    assert [row for page, _ in pages(fetch, paginator, ahead=2) for row in page.items] == widths
    assert asked[:3] == [(0, 400), (400, 100), (500, 100)], asked
    assert [limit for offset, limit in asked if offset < 800] == [400] + [100] * 4, asked
    assert {limit for offset, limit in asked if offset >= 800} == {100, 10} and asked[-1][1] == 10, asked


def test_pages_resume_from_given_parameters():
    from harvester.paging import OffsetPaginator, Page, pages

    seen = [page.items for page, _ in pages(lambda p: Page(items=list(range(p["offset"], min(p["offset"] + 4, 10)))),
                                            OffsetPaginator(4), start={"offset": 8, "limit": 4})]
    assert seen == [[8, 9]]


def test_a_guess_that_failed_is_asked_again_in_earnest_once_the_page_before_confirms_it():
    calls = []

    def fetch(params):
        calls.append(("earnest", params["offset"]))
        return Page(items=list(range(params["offset"], min(params["offset"] + 5, 12))))

    def fetch_guess(params):
        calls.append(("guess", params["offset"]))
        raise ConnectionError("one attempt only")

    got = [page.items for page, _ in pages(fetch, OffsetPaginator(5, total=12), ahead=3, fetch_guess=fetch_guess)]
    assert got == [list(range(5)), list(range(5, 10)), [10, 11]]
    assert sorted(calls) == [("earnest", 0), ("earnest", 5), ("earnest", 10), ("guess", 5), ("guess", 10)]


def test_a_remembered_listing_leaves_known_pages_unread_and_follows_a_chain_that_changed():
    """Cursor paging (the cursor is the page's last id): last night's requests are sent
    ahead; a page answered with its very body is not read; when a page changed, its real
    next cursor is followed and the guesses after it are dropped."""
    items = [{"id": f"{i:03d}"} for i in range(10)]
    catalogue, asked = {"items": items}, []

    def fetch(params, unread=None):
        asked.append(params["c"])
        page = [i for i in catalogue["items"] if i["id"] > params["c"]][:3]
        digest = ",".join(i["id"] for i in page)   # stands for the sha256 of the body
        return Page(items=None, digest=digest) if unread == digest else Page(page, total=None, digest=digest)

    def listing():
        return Listing(fetch, CursorPaginator("c", lambda p: p.items[-1]["id"]), lambda i: i["id"], skips_bodies=True)

    first = listing()
    assert [i["id"] for i in first] == [i["id"] for i in items]
    known = [KnownPage(p.digest, p.params, p.next_params, p.total, len(p.ids)) for p in first.pages_read]
    assert [k.params["c"] for k in known] == ["", "002", "005", "008", "009"]   # the last page is empty

    catalogue["items"] = [i for i in items if i["id"] != "004"]   # the second page now ends on 006
    second, asked[:] = listing(), []
    second.remember(known, ahead=3)
    read = list(second.read())
    assert [page.known is not None for page in read] == [True, False, False, True]
    assert [i["id"] for page in read if page.items for i in page.items] == ["003", "005", "006", "007", "008", "009"]
    assert second.unique == 9 and second.complete and not second.duplicates
    assert "005" in asked and {"", "002", "006", "009"} <= set(asked)   # a guess sent, then the real chain


def test_a_page_of_nothing_but_ids_already_listed_is_an_error():
    """An API that ignores the offset answers its first page again and again: with a large
    reported total, the listing would page on for hours; it stops at the first repeat."""
    calls = []

    def fetch(params):
        calls.append(params)
        return Page(ITEMS[:100], total=10**9)

    listing = Listing(fetch, OffsetPaginator(100), lambda i: i["id"])
    with pytest.raises(PagingError, match=r"offset=100.*100 entries, every one already listed"):
        list(listing)
    assert len(calls) == 2 and not listing.complete


@pytest.mark.parametrize("paginator", [OffsetPaginator(100), CursorPaginator("c", lambda p: p.items[-1]["id"])],
                         ids=["offset", "cursor"])
def test_a_page_refused_as_a_repeat_is_forgotten_by_its_address(paginator):
    """Its body is no answer to its request: the validator cache must not keep it for that
    address (a portal validating by date alone would answer 304, and the repeat be read
    again); the page before it, a true answer, stays remembered."""
    asked, forgotten = [], []

    def fetch(params):
        asked.append(f"https://portal.example/list?{sorted(params.items())}")
        return Page(ITEMS[:100], total=10**9, url=asked[-1])

    listing = Listing(fetch, paginator, lambda i: i["id"], forget=forgotten.append)
    with pytest.raises(PagingError, match="every one already listed|did not move"):
        list(listing)
    assert len(asked) == 2 and forgotten == asked[1:]


def test_a_page_with_one_new_id_among_repeats_is_read_on():
    """Pages that shift while they are read repeat some ids, never all of them."""
    pages_ = [ITEMS[:100], ITEMS[99:150]]
    listing = Listing(lambda p: Page(pages_[p["offset"] // 100], total=150), OffsetPaginator(100), lambda i: i["id"])
    assert len(list(listing)) == 150 and listing.duplicates == ["0099"]


def test_more_unique_items_than_reported_is_partial():
    """A total the pages contradict (a search index being rebuilt says 5 while a page gives
    100) cannot vouch that the listing is whole: paging stopped on it."""
    listing = Listing(lambda params: Page(ITEMS[params["offset"]:params["offset"] + 100], total=5),
                      OffsetPaginator(100), lambda i: i["id"])
    assert len(list(listing)) == 100
    assert listing.finished and not listing.complete


def test_a_last_page_of_ids_already_listed_ends_a_listing_that_moved_without_failing_it():
    # CKAN sorted by id, 2,000 datasets, rows=1000: one created before page 2 (total 2001), another created and
    # the last one deleted before page 3, whose one entry (start=2000) was listed on page 2: partial, not failed
    ids = [f"d{i:05d}" for i in range(2000)]
    calls = []

    def fetch(params):
        calls.append(params["start"])
        current = ids if len(calls) == 1 else ["a-new"] + ids if len(calls) == 2 else ["a-new", "a-newer"] + ids[:1999]
        return Page(items=[{"id": i} for i in current[params["start"]:params["start"] + params["rows"]]],
                    total=len(current))

    listing = Listing(fetch, OffsetPaginator(1000, offset_param="start", limit_param="rows"), lambda e: e["id"])
    assert len(list(listing)) == 1999 and calls == [0, 1000, 2000]
    assert not listing.complete and len(listing.duplicates) == 2


# -- pages over the response cap ----------------------------------------------------------------

def oversized_api(items, huge, cap=100):
    """An offset API whose answer is over the response cap whenever its page holds an entry
    of `huge` (their offsets), silently capping limit at `cap`."""
    calls = []

    def fetch(params):
        offset, limit = params["offset"], min(params["limit"], cap)
        calls.append((offset, params["limit"]))
        if any(offset <= i < offset + limit for i in huge):
            raise ResponseTooLarge("response is over the 1000-byte cap", "http://127.0.0.1/list", 200)
        return Page(items[offset:offset + limit], total=len(items))
    return fetch, calls


def test_a_page_over_the_cap_is_read_in_halves_then_paging_goes_back_to_its_size():
    fetch, calls = oversized_api(ITEMS, huge={130})
    listing = Listing(fetch, OffsetPaginator(100), lambda i: i["id"])
    assert [i["id"] for i in listing] == [i["id"] for i in ITEMS if i["id"] != "0130"]   # in order, each once
    assert calls == [(0, 100), (100, 100), (100, 50), (100, 25), (125, 25), (125, 13), (125, 7), (125, 4),
                     (129, 3), (129, 2), (129, 1), (130, 1), (131, 1), (132, 6), (138, 12), (150, 50), (200, 100)]
    assert listing.skipped == ["the entry asked for alone (offset=130, limit=1) is over the response cap (response "
                               "is over the 1000-byte cap): skipped, the rest of the listing read "
                               "(CIVICAT_HTTP_MAX_BYTES raises the cap)"]
    assert listing.finished and not listing.complete and listing.unique == 249 and not listing.duplicates


@pytest.mark.parametrize("huge", [{0}, {249}, {99, 100}, {130, 131}, {7, 64, 200}])
def test_entries_over_the_cap_alone_are_skipped_and_no_other_is_missed_or_read_twice(huge):
    fetch, calls = oversized_api(ITEMS, huge)
    listing = Listing(fetch, OffsetPaginator(100), lambda i: i["id"])
    assert [i["id"] for i in listing] == [i["id"] for n, i in enumerate(ITEMS) if n not in huge]
    assert [reason.split(")")[0] for reason in listing.skipped] == [
        f"the entry asked for alone (offset={n}, limit=1" for n in sorted(huge)]
    # 3 pages, and per entry over the cap at most one failed and one good request a halving (100 → 1: 7)
    assert len(calls) <= 3 + 2 * 8 * len(huge) and not listing.complete


def test_the_last_entry_over_the_cap_alone_ends_a_listing_at_the_apis_offset_window():
    """Skipped, the last entry of a listing as large as the API's window on offset+limit ends
    it: the request past it was past the window, a PagingError that failed the portal."""
    items = ITEMS[:200]
    fetch, calls = oversized_api(items, huge={199})
    listing = Listing(fetch, OffsetPaginator(100, max_window=200), lambda i: i["id"])
    assert [i["id"] for i in listing] == [i["id"] for i in items[:199]]
    assert calls[-1] == (199, 1) and [reason.split(")")[0] for reason in listing.skipped] == [
        "the entry asked for alone (offset=199, limit=1"]
    assert listing.finished and not listing.complete


def test_a_listing_gives_up_after_so_many_answers_over_the_cap():
    fetch, calls = oversized_api(ITEMS, huge=set(range(250)))
    listing = Listing(fetch, OffsetPaginator(100), lambda i: i["id"])
    with pytest.raises(ResponseTooLarge, match=f"gave up after {OVERSIZED_ANSWERS_MAX} answers over the cap "
                                               r"\(CIVICAT_HTTP_MAX_BYTES raises the cap\)"):
        list(listing)
    assert len(calls) == OVERSIZED_ANSWERS_MAX + 1 and not listing.complete


@pytest.mark.parametrize("paginator, asked", [
    (SinglePage(), "its one document"),
    (CursorPaginator("scroll_id", lambda page: page.items[-1]["id"], extra={"limit": 100}),
     "the page at limit=100, scroll_id="),
])
def test_a_listing_that_cannot_be_asked_in_smaller_pages_fails_naming_the_cap_and_how_to_raise_it(paginator, asked):
    def fetch(params):
        raise ResponseTooLarge("response is over the 1000-byte cap", "http://127.0.0.1/list", 200)

    listing = Listing(fetch, paginator, lambda i: i["id"])
    with pytest.raises(ResponseTooLarge) as failed:
        list(listing)
    assert str(failed.value) == (f"response is over the 1000-byte cap, and this listing cannot ask for {asked} in "
                                 "smaller parts nor skip an entry by its position (CIVICAT_HTTP_MAX_BYTES raises the "
                                 "cap) (http://127.0.0.1/list)")


def test_a_records_pull_never_skips_rows_over_the_cap():
    """pages() without `oversized` lets the error stand (a records pull passes one that never skips a row)."""
    fetch, calls = oversized_api(ITEMS, huge={130})
    with pytest.raises(ResponseTooLarge):
        list(pages(fetch, OffsetPaginator(100)))
    assert calls == [(0, 100), (100, 100)]


def two_big_api(big: set[int]):
    """An offset API over ITEMS whose answer is over the response cap when it holds two
    entries of `big` (their offsets: each 0.6 the cap)."""
    calls = []

    def fetch(params):
        offset, limit = params["offset"], params["limit"]
        calls.append((offset, limit))
        if len(big & set(range(offset, offset + limit))) > 1:
            raise ResponseTooLarge("response is over the 1000-byte cap", "http://127.0.0.1/list", 200)
        return Page(ITEMS[offset:offset + limit], total=len(ITEMS))
    return fetch, calls


def test_a_page_over_the_cap_only_whole_is_read_in_smaller_pages_and_the_listing_stays_complete():
    """Two entries of 0.6 the cap each: no page holding both fits, each fits alone."""
    fetch, calls = two_big_api({120, 121})
    listing = Listing(fetch, OffsetPaginator(100), lambda i: i["id"])
    assert [i["id"] for i in listing] == [i["id"] for i in ITEMS]
    assert listing.complete and not listing.skipped and listing.oversized == 6
    assert calls == [(0, 100), (100, 100), (100, 50), (100, 25), (100, 13), (113, 12), (113, 6), (119, 6), (119, 3),
                     (119, 2), (121, 1), (122, 3), (125, 25), (150, 50), (200, 100)]


def cursor_api(huge, alone_over_the_cap=False):
    """Socrata's scroll_id paging (the entries after the id given, `limit` of them) over
    ITEMS: a page holding an id of `huge` and another entry is over the cap (the entry
    alone too, with `alone_over_the_cap`)."""
    calls = []

    def fetch(params):
        page = [i for i in ITEMS if i["id"] > params["scroll_id"]][:params["limit"]]
        calls.append((params["scroll_id"], params["limit"]))
        if huge & {i["id"] for i in page} and (len(page) > 1 or alone_over_the_cap):
            raise ResponseTooLarge("response is over the 1000-byte cap", "http://127.0.0.1/list", 200)
        return Page(page, total=len(ITEMS))
    return fetch, calls


def test_a_cursor_whose_page_size_is_a_parameter_reads_a_page_over_the_cap_in_smaller_pages():
    """The cursor is the last id read, so smaller pages keep the listing exact."""
    fetch, calls = cursor_api({"0130"})
    paginator = CursorPaginator("scroll_id", lambda p: p.items[-1]["id"], size_param="limit", size=100)
    listing = Listing(fetch, paginator, lambda i: i["id"])
    assert [i["id"] for i in listing] == [i["id"] for i in ITEMS] and listing.complete
    assert calls == [("", 100), ("0099", 100), ("0099", 50), ("0099", 25), ("0124", 25), ("0124", 13), ("0124", 7),
                     ("0124", 4), ("0128", 3), ("0128", 2), ("0128", 1), ("0129", 1), ("0130", 1), ("0131", 6),
                     ("0137", 12), ("0149", 50), ("0199", 100), ("0249", 100)]


def test_a_remembered_cursor_listing_with_a_page_over_the_cap_stays_on_last_nights_chain_past_a_changed_page():
    """The cursor's position, where a page over the cap is halved, counts the entries of the
    known pages too: counted only on pages read, the windows of smaller pages stood at the
    wrong place, and a changed page right past them asked for odd sizes, off last night's
    chain: every page after it was read again instead of answering 304."""
    items = [{"id": f"{i:04d}", "v": 0} for i in range(600)]
    answers = []

    def fetch(params, unread=None):
        page = [i for i in items if i["id"] > params["scroll_id"]][:params["limit"]]
        if {"0330", "0331"} <= {i["id"] for i in page}:   # (each 0.6 of the cap)
            answers.append("over")
            raise ResponseTooLarge("response is over the 1000-byte cap", "http://127.0.0.1/list", 200)
        digest = ",".join(f"{i['id']}:{i['v']}" for i in page)   # stands for the sha256 of the body
        answers.append("304" if unread == digest else "read")
        return Page(items=None if unread == digest else page, total=len(items), digest=digest)

    def listing():
        paginator = CursorPaginator("scroll_id", lambda p: p.items[-1]["id"], size_param="limit", size=100)
        return Listing(fetch, paginator, lambda i: i["id"], skips_bodies=True)

    first = listing()
    assert len(list(first)) == 600 and first.complete
    known = [KnownPage(p.digest, p.params, p.next_params, p.total, len(p.ids)) for p in first.pages_read]
    items[340]["v"] = 1   # on the second page of 12 past the two
    second, answers[:] = listing(), []
    second.remember(known)
    assert sum(len(page.items or ()) for page in second.read()) == 12 and second.complete
    assert answers.count("read") == 1 and answers.count("304") == len(known) - 1


def test_a_cursor_cannot_skip_an_entry_over_the_cap_alone():
    """The cursor past it is its id, in the answer that was not read: the listing fails, naming the request."""
    fetch, _ = cursor_api({"0130"}, alone_over_the_cap=True)
    paginator = CursorPaginator("scroll_id", lambda p: p.items[-1]["id"], size_param="limit", size=100)
    listing = Listing(fetch, paginator, lambda i: i["id"])
    with pytest.raises(ResponseTooLarge, match=r"cannot ask for the page at scroll_id=0129, limit=1 in smaller parts "
                                               r"nor skip an entry by its position \(CIVICAT_HTTP_MAX_BYTES"):
        list(listing)
    assert not listing.complete


# -- a records pull keeps the smaller page size ---------------------------------------------------

def wide_api(items, fits):
    """An offset API whose answer is over the response cap whenever it holds more than `fits`
    entries (rows alike in width: a layer of polygons)."""
    calls = []

    def fetch(params):
        offset, limit = params["offset"], params["limit"]
        calls.append((offset, limit))
        if len(items[offset:offset + limit]) > fits:
            raise ResponseTooLarge("response is over the 1000-byte cap", "http://127.0.0.1/rows", 200)
        return Page(items[offset:offset + limit], total=len(items))
    return fetch, calls


def read_all(fetch, paginator: OffsetPaginator, *, keep: bool) -> tuple[list, OversizedAnswers]:
    """pages() as a records pull (`keep`, as harvester.records.paged_tables) or a listing drives it."""
    paginator.sizes.keep = keep
    answers = OversizedAnswers(paginator, "the pull" if keep else "the listing")
    read = []
    for page, _ in pages(fetch, paginator, oversized=answers.smaller):
        answers.read(page.params)
        read.extend(page.items)
    return read, answers


def test_a_records_pull_whose_every_page_is_over_the_cap_keeps_the_size_that_fitted():
    """Every page of more than 25 rows is over the cap: a pull pays two answers over it in all
    (100 → 50 → 25), then reads on in pages of 25. A listing goes back to its own size past
    each page over the cap (its pages are over it for a few huge entries): three a page."""
    fetch, calls = wide_api(ITEMS, fits=25)
    read, answers = read_all(fetch, OffsetPaginator(100), keep=True)
    assert read == ITEMS
    assert calls == [(0, 100), (0, 50), (0, 25), (25, 25)] + [(n, 25) for n in range(50, 250, 25)]
    assert answers.count == 2 and answers.largest_read == 25

    fetch, calls = wide_api(ITEMS, fits=25)
    read, answers = read_all(fetch, OffsetPaginator(100), keep=False)
    assert read == ITEMS
    assert calls[:7] == [(0, 100), (0, 50), (0, 25), (25, 25), (50, 50), (50, 25), (75, 25)]
    assert calls.count((100, 100)) == calls.count((200, 100)) == 1 and answers.count == 8


def test_a_records_pull_past_two_huge_rows_reads_on_in_a_quarter_of_its_page_not_row_by_row():
    """Two neighbouring rows over half the cap each: the page holding them is halved down to
    each alone, the rest of it in the halves of the pages over the cap around them, and the
    pull reads on in the size the page's entries were last asked in (a quarter), not in the
    single rows that parted the two."""
    fetch, calls = two_big_api({120, 121})
    read, answers = read_all(fetch, OffsetPaginator(100), keep=True)
    assert read == ITEMS
    assert calls == [(0, 100), (100, 100), (100, 50), (100, 25), (100, 13), (113, 12), (113, 6), (119, 6), (119, 3),
                     (119, 2), (121, 1), (122, 2), (124, 1), (125, 13), (138, 12), (150, 25), (175, 25), (200, 25),
                     (225, 25)]
    assert answers.count == 6 and answers.largest_read == 25


def test_what_the_answers_over_the_cap_cost_is_told_with_the_page_size_read_and_the_setting_that_raises_the_cap():
    fetch, _ = wide_api(ITEMS, fits=25)
    _, answers = read_all(fetch, OffsetPaginator(100), keep=True)
    assert answers.cost() == ("2 answers over the response cap (the last: response is over the 1000-byte cap): the "
                              "pull read on in pages of up to 25 rows, not 100; each such answer may be a read of the "
                              "whole cap (CIVICAT_HTTP_MAX_BYTES raises the cap)")
    fetch, _ = oversized_api(ITEMS, huge={130})
    listing = Listing(fetch, OffsetPaginator(100), lambda i: i["id"])
    list(listing)
    assert listing.answers.cost() == (
        "8 answers over the response cap (the last: response is over the 1000-byte cap): the entries of its pages over "
        "the cap were asked in pages of down to 1, the rest in pages of 100; each such answer may be a read of the "
        "whole cap (CIVICAT_HTTP_MAX_BYTES raises the cap)")
    fetch, _ = wide_api(ITEMS, fits=250)
    _, answers = read_all(fetch, OffsetPaginator(100), keep=True)
    assert answers.cost() is None


# -- an entry over the cap alone, listed by its id only; the next night ------------------------------

def identifying_api(items, huge, cap=100):
    """An offset API (the entries of `items` from `offset`, `limit` of them, capped at `cap`)
    that can answer entries with their ids only (`fields=id`, as CKAN's `fl` or OpenDataSoft's
    `select`), and 304s a request whose body is the one `unread` names; an answer holding an
    entry whose id is in `huge` whole is over the response cap. `answers` logs each request
    as (offset, limit, 'ids' | 'over' | 'read' | '304')."""
    answers = []

    def fetch(params, unread=None):
        offset, limit = params["offset"], min(params["limit"], cap)
        page = items[offset:offset + limit]
        if params.get("fields") == "id":
            page = [{"id": item["id"]} for item in page]
        elif huge & {item["id"] for item in page}:
            answers.append((offset, params["limit"], "over"))
            raise ResponseTooLarge("response is over the 1000-byte cap", "http://127.0.0.1/list", 200)
        digest = ",".join(f"{item['id']}:{item.get('v', 0)}" for item in page)   # stands for the body's sha256
        answers.append((offset, params["limit"], "304" if unread == digest else
                        "ids" if params.get("fields") else "read"))
        return Page(items=None if unread == digest else page, total=len(items), digest=digest)
    return fetch, answers


def identifying_listing(fetch, cap=1000, known=None) -> Listing:
    listing = Listing(fetch, OffsetPaginator(100, ids_only={"fields": "id"}), lambda i: i.get("id"), skips_bodies=True,
                      cap=cap)
    if known:
        listing.remember(known, ahead=3)
    return listing


def committed(listing: Listing) -> list[KnownPage]:
    """The pages the catalogue keeps of a listing read to its end, as the next night knows them
    (harvester.mapping.Mapper.page_rows, Store.known_pages): a page known unread stays as stored."""
    return [page.known or KnownPage(page.digest, page.params, page.next_params, page.total,
                                    len(page.ids) if page.ids is not None else 0, skippable=page.ids is not None)
            for page in listing.pages_read]


def test_an_entry_over_the_cap_alone_is_listed_by_its_id_only_and_the_listing_is_complete():
    fetch, answers = identifying_api(ITEMS, huge={"0130"})
    listing = identifying_listing(fetch)
    pages_read = list(listing.read())
    assert [i["id"] for page in pages_read for i in page.items] == [i["id"] for i in ITEMS]   # each once, in order
    identified = [page for page in pages_read if page.ids_only]
    assert [page.items for page in identified] == [[{"id": "0130"}]] and not listing.skipped
    assert identified[0].reason == ("the entry asked for alone (offset=130, limit=1) is over the response cap alone "
                                    "(response is over the 1000-byte cap)")
    assert (130, 1, "over") in answers and (130, 1, "ids") in answers
    assert listing.complete and listing.unique == 250 and listing.oversized == 8


def test_the_next_night_asks_the_pages_that_worked_around_an_entry_over_the_cap_and_no_answer_over_it():
    """Night 1 learns, from 8 answers over the cap, the pages that fit around the entry and its
    ids-only request; night 2 asks them along night 1's chain (304s), then past the entry
    pages of the listing's own size (read once: past the entry, night 1's smaller pages are
    forgotten): no answer over the cap. Night 3: every page a 304 but the ids-only one."""
    fetch, answers = identifying_api(ITEMS, huge={"0130"})
    first = identifying_listing(fetch)
    list(first.read())
    known = committed(first)
    for night, read in ((2, [(131, 100, "read"), (231, 100, "read")]), (3, [])):
        answers.clear()
        listing = identifying_listing(fetch, known=known)
        assert sum(len(page.items) for page in listing.read() if page.items) == 1 + 119 * bool(read), night
        assert listing.complete and listing.unique == 250 and listing.oversized == 0, night
        assert [answer for answer in answers if answer[-1] not in ("304", "ids")] == read, night
        assert answers[:5] == [(0, 100, "304"), (100, 25, "304"), (125, 4, "304"), (129, 1, "304"), (130, 1, "ids")]
        known = committed(listing)


def test_an_entry_over_the_cap_is_asked_whole_again_once_its_ids_only_answer_changed():
    """A raised cap (the ids-only page's digest holds it), or another entry at its position:
    the entry is asked whole once more, and read when it fits; the night after, paging asks its
    own size again (what was learnt around it is forgotten)."""
    items = [dict(item) for item in ITEMS]
    fetch, answers = identifying_api(items, huge={"0130"})
    first = identifying_listing(fetch, cap=1000)
    list(first.read())
    answers.clear()
    fetch, answers = identifying_api(items, huge=set())   # the cap raised: the entry fits
    second = identifying_listing(fetch, cap=10_000, known=committed(first))
    read = [i["id"] for page in second.read() if not page.ids_only for i in page.items or ()]
    assert "0130" in read and second.complete and (130, 1, "read") in answers
    answers.clear()
    third = identifying_listing(fetch, cap=10_000, known=committed(second))
    list(third.read())
    assert third.complete and not any(kind == "ids" for *_, kind in answers)
    assert (100, 100, "read") in answers and not any(offset == 130 for offset, *_ in answers)


def test_an_entry_over_the_cap_still_is_asked_whole_once_when_it_changed_and_listed_by_id_again():
    fetch, answers = identifying_api(ITEMS, huge={"0130"})
    first = identifying_listing(fetch, cap=1000)
    list(first.read())
    answers.clear()
    second = identifying_listing(fetch, cap=2000, known=committed(first))   # raised, not enough
    pages_read = list(second.read())
    assert [page.items for page in pages_read if page.ids_only] == [[{"id": "0130"}]]
    assert [answer for answer in answers if answer[-1] == "over"] == [(130, 1, "over")] and second.oversized == 1
    assert second.complete


def test_an_entry_over_the_cap_that_moved_is_found_again_at_its_new_position():
    """A dataset created before it shifts it by one: the ids-only request at its old position
    names another entry, which is read whole; the entry is found over the cap where it is now."""
    items = list(ITEMS)
    fetch, answers = identifying_api(items, huge={"0130"})
    first = identifying_listing(fetch)
    list(first.read())
    items.insert(0, {"id": "0000a"})
    answers.clear()
    second = identifying_listing(fetch, known=committed(first))
    pages_read = list(second.read())
    assert [page.items for page in pages_read if page.ids_only] == [[{"id": "0130"}]]
    assert (130, 1, "read") in answers and (131, 1, "ids") in answers
    assert second.complete and second.unique == 251 and not second.duplicates


def test_an_entry_over_the_cap_alone_that_cannot_be_listed_by_id_costs_one_answer_over_the_cap_the_next_night():
    """Socrata's Discovery API selects no fields: the entry is skipped, the listing partial,
    and the next night asks it alone at once (one answer over the cap, not eight)."""
    fetch, answers = identifying_api(ITEMS, huge={"0130"})

    def listing(known=None):
        result = Listing(fetch, OffsetPaginator(100), lambda i: i["id"], skips_bodies=True)
        if known:
            result.remember(known, ahead=3)
        return result

    first = listing()
    list(first.read())
    assert first.oversized == 8 and not first.complete
    answers.clear()
    second = listing(committed(first))
    list(second.read())
    assert second.oversized == 1 and answers[:5] == [(0, 100, "304"), (100, 25, "304"), (125, 4, "304"),
                                                     (129, 1, "304"), (130, 1, "over")]
    assert not second.complete and len(second.skipped) == 1 and second.unique == 249


@pytest.mark.parametrize("ids_only_answer, skipped", [
    ("whole", "the entry asked for alone (offset=130, limit=1, fields=id) is over the response cap (response is over "
              "the 1000-byte cap): skipped, the rest of the listing read (CIVICAT_HTTP_MAX_BYTES raises the cap)"),
    ("nameless", "the entry asked for alone (offset=130, limit=1) is over the response cap alone (response is over "
                 "the 1000-byte cap), and its answer by id only names no id: skipped (CIVICAT_HTTP_MAX_BYTES raises "
                 "the cap)"),
])
def test_an_ids_only_answer_that_is_no_id_leaves_the_listing_partial(ids_only_answer, skipped):
    """An API that ignores the fields asked for answers the entry whole (over the cap again:
    skipped); one that answers no id for it lists nothing of it: either way the listing is
    partial, so that no dataset is marked deleted on it."""
    fetch, _ = identifying_api(ITEMS, huge={"0130"})

    def answer(params, unread=None):
        if params.get("fields") and ids_only_answer == "whole":
            raise ResponseTooLarge("response is over the 1000-byte cap", "http://127.0.0.1/list", 200)
        page = fetch(params, unread)
        if params.get("fields"):
            page.items = [{"name": "no id"} for _ in page.items]
        return page

    listing = identifying_listing(answer)
    assert [i["id"] for i in listing] == [i["id"] for i in ITEMS if i["id"] != "0130"]
    assert not listing.complete and listing.skipped == [skipped]
