"""JSON from a body: faults said alike parsed whole or a window at a time, capped_json's cut lists,
Entries, value_in_head."""
import json
import re

import pytest

from harvester.http import TransientError
from tests.conftest import fast_client
from tests.harvester.http.conftest import DOC, get
from tests.portals.base import RawBody


def test_lone_surrogates_in_valid_json_are_replaced(portal):
    from harvester.http import parse_json_body
    assert parse_json_body(b'{"t": "a\\ud83d b"}', "application/json", "u") == {"t": "a\ufffd b"}


def test_a_body_that_is_not_utf8_is_named_so_with_the_offending_byte(portal):
    """A Latin-1 title in a JSON page: refused as invalid JSON (retried, then failing its
    portal), with the byte and where it is, not orjson's "surrogates not allowed" at char 0."""
    portal.static["/latin1"] = RawBody(b'{"results": [{"title": "Caf\xe9 permits"}]}', "application/json")
    with pytest.raises(TransientError, match=r"not UTF-8 \(0xe9\) at byte 27 \(after b'.*Caf'\)"):
        get(fast_client(max_attempts=2), portal, "/latin1")
    assert portal.hits["/latin1"] == 2


@pytest.mark.parametrize("content_type", ["text/html", "text/html; charset=utf-8"])
def test_valid_json_labelled_html_is_read_by_its_body(portal, content_type):
    """A portal (or its CDN) labelling its JSON `text/html`: the body is JSON, not an HTML
    page, so it is read (the label alone made every page a fault, and the portal fail)."""
    portal.static["/mislabelled"] = RawBody(json.dumps(DOC).encode(), content_type)
    client = fast_client(max_attempts=2)
    assert get(client, portal, "/mislabelled").data == DOC
    assert portal.hits["/mislabelled"] == 1 and client.stats.retries == 0


@pytest.mark.parametrize("body", [b"Service Unavailable", b"\xef\xbb\xbf<!DOCTYPE html><html></html>", b"  <p>down</p>"])
def test_an_html_label_on_a_body_that_is_no_json_is_an_html_page(portal, body):
    portal.static["/page"] = RawBody(body, "text/html")
    with pytest.raises(TransientError, match="HTML page instead of JSON"):
        get(fast_client(max_attempts=2), portal, "/page")
    assert portal.hits["/page"] == 2


def test_json_nested_past_any_limit_is_invalid_json_of_its_url(portal):
    """5,000 nested arrays in one field: orjson refuses past 1,024 levels, and the json module
    it falls back on raised a RecursionError naming no URL, which was not retried."""
    portal.static["/deep"] = RawBody(b'{"results": [{"deep": ' + b"[" * 5000 + b"]" * 5000 + b"}]}",
                                     "application/json")
    with pytest.raises(TransientError, match=r"invalid or truncated JSON: .*depth limit exceeded.*/deep"):
        get(fast_client(max_attempts=2), portal, "/deep")
    assert portal.hits["/deep"] == 2


def test_a_capped_json_list_is_the_document_cut_and_faults_stay_faults(streamed_from_1_mb):
    """Small documents are parsed whole and cut, large ones read an item at a time: both give
    json.loads' document with the list cut; a body cut short, extra data or an HTML page fail."""
    from harvester.http import capped_json
    from harvester.http.json_parsing import STREAMED_JSON_BYTES
    from tests.portals.base import MAINTENANCE_PAGE
    parse = capped_json({"columns": 3})
    items = [{"n": i, "tags": ["a", {"b": None}], "text": "é ü"} for i in range(STREAMED_JSON_BYTES // 40)]
    for document in ({"id": "x", "columns": items, "after": {"columns": [1] * 9}, "n": 1.5e3},
                     {"columns": items[:5]}, {"columns": []}, {"id": "no columns"}, ["not", "an object"]):
        for body in (json.dumps(document, indent=1).encode(), json.dumps(document).encode()):
            expected = json.loads(body)
            columns = expected.get("columns") if isinstance(expected, dict) else None
            if columns is not None:
                expected["columns"] = columns[:3]
            parsed = parse(body, "application/json", "http://x")
            assert parsed == expected and getattr(parsed, "left_out", 0) == max(0, len(columns or []) - 3)
    assert parse(json.dumps({"columns": items, "t": "\ud83d"}).encode(), "", "http://x")["t"] == "\ufffd"
    big = json.dumps({"columns": items}).encode()
    assert len(big) > STREAMED_JSON_BYTES
    for broken in (big[:-1], big[: len(big) // 2], big + b"x", MAINTENANCE_PAGE + b" " * STREAMED_JSON_BYTES):
        with pytest.raises(TransientError):
            parse(broken, "application/json", "http://x")


def test_a_large_capped_json_list_is_read_as_a_small_one_is(streamed_from_1_mb):
    """parse_json_body takes a body that starts with a UTF-8 byte order mark (json's own
    reading does) and refuses a trailing comma (orjson and json do): the item-at-a-time reading
    of a large body refused the mark and took the comma."""
    from harvester.http import capped_json
    from harvester.http.json_parsing import STREAMED_JSON_BYTES
    parse = capped_json({"columns": 3})
    for items in ([{"n": 1}] * 5, [{"n": i, "text": "x" * 40} for i in range(STREAMED_JSON_BYTES // 40)]):
        body = json.dumps({"columns": items, "id": "abcd-1234"}).encode()
        parsed = parse(b"\xef\xbb\xbf" + body, "application/json", "http://x")
        assert parsed["columns"] == items[:3] and parsed["id"] == "abcd-1234"
        for comma_before in (b"]", b"}"):
            at = body.rindex(comma_before)
            with pytest.raises(TransientError):
                parse(body[:at] + b"," + body[at:], "application/json", "http://x")


def test_capped_json_cuts_the_lists_it_names_inside_lists_and_objects(streamed_from_1_mb):
    """The lists a cap tree names deep in a document (each Discovery result's `columns_*`, each
    data.json dataset's `distribution`, in a catalog object or a bare array) are cut the same
    way in a small body, parsed whole, and a large one, read an item at a time; the objects
    that held them say how many items each lost, the others are plain dicts."""
    from harvester.http import CappedDocument, capped_json, dropped
    from harvester.http.json_parsing import STREAMED_JSON_BYTES
    wide = [f"column {i}" for i in range(STREAMED_JSON_BYTES // 10)]
    page = {"results": [{"resource": {"id": "narr-0001", "columns_name": ["a"], "n": 1}, "link": "x"},
                        {"resource": {"columns_name": wide, "columns_datatype": wide[:4], "id": "wide-0001",
                                      "deep": {"columns_name": wide[:9]}}, "columns_name": wide[:9]},
                        "not an object", {"resource": ["not", "an", "object"]}],
            "resultSetSize": 4}
    parse = capped_json({"results": {"*": {"resource": {"columns_name": 3, "columns_datatype": 3}}}})
    expected = json.loads(json.dumps(page))
    expected["results"][1]["resource"].update(columns_name=wide[:3], columns_datatype=wide[:3])
    small = dict(page, results=[page["results"][0], dict(page["results"][1], resource={
        **page["results"][1]["resource"], "columns_name": wide[:20]})] + page["results"][2:])
    for body, lost in ((json.dumps(page).encode(), len(wide) - 3), (json.dumps(small, indent=1).encode(), 17)):
        parsed = parse(body, "application/json", "http://x")
        assert parsed == json.loads(json.dumps(expected)) and type(parsed) is dict
        resource = parsed["results"][1]["resource"]
        assert isinstance(resource, CappedDocument) and dropped(resource) == {"columns_name": lost,
                                                                              "columns_datatype": 1}
        assert dropped(parsed["results"][0]["resource"]) == {} and type(parsed["results"][1]) is dict
    catalogue = {"dataset": [{"distribution": list(range(STREAMED_JSON_BYTES // 5)), "keyword": ["a"] * 5}]}
    parse = capped_json({"dataset": {"*": {"distribution": 2, "keyword": 2}}, "*": {"distribution": 2}})
    lost = len(catalogue["dataset"][0]["distribution"]) - 2
    for document, cut in ((catalogue, {"distribution": lost, "keyword": 3}), (catalogue["dataset"], {"distribution": lost})):
        parsed = parse(json.dumps(document).encode(), "", "http://x")
        dataset = (parsed["dataset"] if isinstance(parsed, dict) else parsed)[0]
        assert dataset["distribution"] == [0, 1] and dropped(dataset) == cut
    services = [{"service_code": str(i)} for i in range(STREAMED_JSON_BYTES // 10)]
    for document in (services, services[:5]):   # (a number alone: the document is the list cut)
        parsed = capped_json(2)(json.dumps(document).encode(), "", "http://x")
        assert parsed == services[:2] and dropped(parsed) == {"*": len(document) - 2}
    assert dropped(capped_json(2)(b'{"a": [1, 2, 3]}', "", "http://x")) == {}


def test_a_listings_entries_in_a_large_body_are_read_again_one_at_a_time(monkeypatch):
    """capped_json(entries=...): in a large body the entries of a listing served as one document
    (a bare array, or a catalog object's list) are Entries, each read again as it is iterated,
    as the body parsed whole gives it (cut, a lone surrogate made safe, long integers exact,
    past a byte order mark, the last of a repeated key); a body broken past the last entry
    fails when it is read, before any entry is handed out."""
    import harvester.http.json_parsing
    from harvester.http import Entries, capped_json, dropped
    datasets = [{"identifier": f"id-{i}", "title": "Café \ud83d ✓" if i == 7 else f"Dataset {i}",
                 "keyword": ["a", "b", "c"] if i % 2 else ["a"], "n": 12345678901234567890123} for i in range(30_000)]
    parse = capped_json({"dataset": {"*": {"keyword": 2}}, "*": {"keyword": 2}}, entries=("*", "dataset"))
    listed = json.dumps(datasets)
    bodies = [b"\xef\xbb\xbf" + json.dumps({"@type": "dcat:Catalog", "dataset": datasets, "after": [1, 2]}).encode(),
              listed.encode(), ('{"dataset": [{"identifier": "first"}], "dataset": ' + listed + "}").encode(),
              ('{"dataset": ' + listed + ', "dataset": [{"identifier": "last"}]}').encode()]
    for body in bodies:
        assert len(body) > 1 << 20
        monkeypatch.setattr(harvester.http.json_parsing, "STREAMED_JSON_BYTES", len(body) + 1)
        whole = parse(body, "application/json", "http://x")
        monkeypatch.setattr(harvester.http.json_parsing, "STREAMED_JSON_BYTES", 1 << 20)
        read = parse(body, "application/json", "http://x")
        entries = read if isinstance(read, Entries) else read["dataset"]
        expected = whole if isinstance(whole, list) else whole["dataset"]
        assert isinstance(entries, Entries) and len(entries) == len(expected)
        assert list(entries) == expected and [dropped(e) for e in entries] == [dropped(e) for e in expected]
        assert not isinstance(whole, dict) or {**read, "dataset": None} == {**whole, "dataset": None}
    assert list(entries) == [{"identifier": "last"}]
    assert [e["title"] for e in parse(bodies[1], "", "http://x")][7] == "Café \ufffd ✓"
    for broken in (bodies[0] + b"x", bodies[1][:-1], bodies[0].replace(b'"after"', b'"after" 1')):
        with pytest.raises(TransientError):
            parse(broken, "application/json", "http://x")


def test_a_repeated_key_of_a_capped_list_is_its_last_value_in_a_large_body_too(streamed_from_1_mb):
    """JSON's last value of a repeated key stands (orjson, json): a large body read a value at
    a time said its first value's list was cut when the last one was not, so the dataset got
    a false warning and its records pull was refused."""
    from harvester.http import capped_json, dropped
    from harvester.http.json_parsing import STREAMED_JSON_BYTES
    wide = json.dumps(list(range(STREAMED_JSON_BYTES // 5)))
    parse = capped_json({"columns": 3})
    for last in ("[1]", "null", '{"a": 1}'):
        body = ('{"columns": ' + wide + ', "columns": ' + last + "}").encode()
        parsed = parse(body, "application/json", "http://x")
        assert parsed == {"columns": json.loads(last)} and dropped(parsed) == {}
    parsed = parse(('{"columns": [1], "columns": ' + wide + "}").encode(), "application/json", "http://x")
    assert parsed == {"columns": [0, 1, 2]} and dropped(parsed) == {"columns": len(json.loads(wide)) - 3}


def test_a_large_body_is_never_held_while_it_is_read(tmp_path, streamed_from_1_mb, monkeypatch):
    """A large services.json read over HTTP and cut: its chunks were joined into a second copy,
    then decoded whole into a str up to four times its size (one emoji makes every character
    4 bytes): a 200 MB body peaked at 1 GB. Since f16 it was held once, its text decoded a window
    at a time; it is now written to a temporary file as it arrives, and read from there.
    (Served by a process of its own: a LocalPortal's thread answering it allocated up to its
    size again now and then, counted by tracemalloc with the client's; the bound of 1.5 times
    the body, which the client held whole, flaked under load.)"""
    import tracemalloc
    from harvester.http import capped_json, dropped
    from harvester.http.json_parsing import STREAMED_JSON_BYTES
    from tests.portals.base import files_served_apart
    monkeypatch.setattr("harvester.http.json_parsing.TEXT_WINDOW_BYTES", 1 << 16)   # (small beside the body)
    services = [{"service_code": f"{i:07d}", "service_name": "Pothole \U0001F6A7", "description": "x" * 80}
                for i in range(8 * STREAMED_JSON_BYTES // 140)]
    body = json.dumps(services, ensure_ascii=False).encode()
    (tmp_path / "services.json").write_bytes(body)
    with files_served_apart(tmp_path) as url:
        tracemalloc.start()
        try:
            data = fast_client().get_json(url + "/services.json", parse=capped_json(10)).data
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert data == services[:10] and dropped(data) == {"*": len(services) - 10}
    assert peak < 0.5 * len(body), f"{peak / len(body):.2f} times the body's size"


def test_a_body_that_is_not_json_is_the_same_fault_read_whole_or_a_window_at_a_time(monkeypatch):
    """Each fault of a body behind a 200 is a TransientError (never an empty catalogue) saying
    what and at which byte, for its URL, the same whether the body is parsed whole (under 16 MB)
    or read a window at a time: the latter said "string index out of range" of a body cut short."""
    import harvester.http.json_parsing
    from harvester.http import capped_json
    from tests.portals.base import MAINTENANCE_PAGE
    items = ",".join(json.dumps({"n": i, "name": f"data ✓ {i}", "size": 12.5}, ensure_ascii=False) for i in range(60_000))
    body = ('{"results": [' + items + '], "count": 60000}').encode()
    in_string, in_number = body.rindex(b"data \xe2\x9c\x93") + 3, body.index(b"12.5", len(body) - 100) + 2
    latin1 = body.index("✓ 59999".encode())   # (a Latin-1 byte in its place)
    complete = "the body is not complete JSON, it ends inside a value at byte {size}"
    faults = {
        "in a string": (body[:in_string], complete),
        "in a number": (body[:in_number], complete),
        "in a number's fraction": (body[:in_number + 1], complete),
        "in a number that is an item": (b'{"results": [' + b"1.5, " * 300_000 + b"1.", complete),
        "in a capped list": (body[:len(body) // 2], complete),
        "after the last item": (body[:body.rindex(b"]") + 1], complete),
        "in a literal": (body[:-1] + b', "more": tr', complete),
        "trailing garbage": (body + b"\n<!-- cached -->", f"the body is not JSON: .* at byte {len(body) + 1} "),
        "a second document": (body + b' {"count": 1}', f"the body is not JSON: .* at byte {len(body) + 1} "),
        "bad middle": (body.replace(b'"size": 12.5}', b'"size": 12.5,}', 1),
                       f"the body is not JSON: .* at byte {body.index(b'12.5') + 5} "),
        "an HTML page": (MAINTENANCE_PAGE + b" " * len(body), "HTML page instead of JSON"),
        "an empty body": (b" \n" * len(body), "empty body instead of JSON"),
        "not UTF-8": (body[:latin1] + b"\xe9" + body[latin1 + 3:],
                      f"the body is not JSON: not UTF-8 \\(0xe9\\) at byte {latin1} "),
    }
    parse = capped_json({"results": 5})
    for case, (broken, expected) in faults.items():
        messages = []
        assert len(broken) > 1 << 20
        for streamed_from in (len(broken) + 1, 1 << 20):   # parsed whole, then a window at a time
            monkeypatch.setattr(harvester.http.json_parsing, "STREAMED_JSON_BYTES", streamed_from)
            monkeypatch.setattr(harvester.http.json_parsing, "TEXT_WINDOW_BYTES", 4096)   # (many windows)
            with pytest.raises(TransientError) as fault:
                parse(broken, "application/json", "http://portal.test/api")
            messages.append(str(fault.value))
        pattern = expected.format(size=len(broken))
        assert all(re.search(pattern, message) and message.endswith("(http://portal.test/api)")
                   for message in messages), (case, messages)
        assert messages[0] == messages[1] or case == "bad middle", case   # (json's words for it vary by version)


def test_an_integer_past_64_bits_is_read_exactly_whole_or_a_window_at_a_time(monkeypatch):
    """orjson reads 12345678901234567890123 as 1.2345678901234568e+22 (it does not raise): an id
    that large lost its digits in a body under 16 MB, and kept them in a larger one."""
    import harvester.http.json_parsing
    from harvester.http import capped_json
    long_ids = [12345678901234567890123, 18446744073709551616, -9223372036854775809, 2 ** 64 - 1]
    document = {"results": [{"id": n, "text": "x" * 100} for n in long_ids * 5000], "count": 20000}
    body = json.dumps(document).encode()
    for streamed_from in (len(body) + 1, 1 << 20):
        monkeypatch.setattr(harvester.http.json_parsing, "STREAMED_JSON_BYTES", streamed_from)
        parsed = capped_json({"results": 8})(body, "application/json", "http://x")
        assert [item["id"] for item in parsed["results"]] == long_ids * 2
        assert all(type(item["id"]) is int for item in parsed["results"])


def test_an_integer_past_64_bits_is_found_across_the_scan_pieces_and_a_shorter_run_is_not():
    """The scan for 19 digits reads the body a megabyte at a time: a run across two pieces is
    found (read exactly), 18 digits are not (orjson's fast parse keeps them)."""
    from harvester.http import parse_json_body
    from harvester.http.json_parsing import _DIGIT_SCAN_BYTES
    before_the_run = len(b'{"text": "' + b'", "id": ')
    for run in (b"12345678901234567890123", b"1" * 19, b"1" * 18):
        for starts_at in (_DIGIT_SCAN_BYTES - 5, _DIGIT_SCAN_BYTES - len(run) + 1, _DIGIT_SCAN_BYTES, 40):
            body = b'{"text": "' + b"x" * (starts_at - before_the_run) + b'", "id": ' + run + b"}"
            assert body.index(run) == starts_at
            parsed = parse_json_body(body, "application/json", "http://x")
            assert parsed["id"] == int(run) and type(parsed["id"]) is int, (run, starts_at)


def test_a_number_too_long_for_python_is_a_fault_of_the_body_whole_or_a_window_at_a_time(portal, monkeypatch):
    """Python reads no integer of more than 4,300 digits: its ValueError escaped as no HttpError,
    so a dataset's details lookup holding one failed its whole portal (orjson, before integers
    past 64 bits were read by json, refused it as invalid JSON)."""
    import harvester.http.json_parsing
    from harvester.http import capped_json
    body = b'{"results": [{"id": ' + b"9" * 5000 + b', "text": "' + b"x" * 2_000_000 + b'"}], "count": 1}'
    portal.static["/long"] = RawBody(body, "application/json")
    with pytest.raises(TransientError, match=r"the body is not JSON: Exceeds the limit \(4300 digits\)"):
        get(fast_client(max_attempts=1), portal, "/long")
    monkeypatch.setattr(harvester.http.json_parsing, "STREAMED_JSON_BYTES", 1 << 20)   # (a window at a time)
    with pytest.raises(TransientError, match=r"the body is not JSON: Exceeds the limit \(4300 digits\)"):
        capped_json({"results": 8})(body, "application/json", "http://x")


@pytest.mark.parametrize("head, path, value", [
    (b'{"results": [{"resource": {"name": "x", "id": "abcd-1234", "description": "cut', ("results", 0, "resource", "id"),
     "abcd-1234"),
    (b'\xef\xbb\xbf {"a": [1, {"b": [true, "x"]}, 3], "c": ', ("a", 1, "b", 1), "x"),
    (b'{"results": [{"resource": {"name": "a name cut sh', ("results", 0, "resource", "id"), None),
    (b'{"n": 12', ("n",), None),                   # a number the head may have cut
    (b'{"n": 12, ', ("n",), 12),
    (b'{"results": []}', ("results", 0), None),
    (b'{"results": {"0": 1}}', ("results", 0), None),
    (b'["not", "an", "object"]', ("results",), None),
    (b'{"a": 1 "b": 2}', ("b",), None),             # no JSON
    (b'{"name": "caf\xc3', ("name",), None),        # cut inside a character
])
def test_value_in_head_reads_only_what_the_start_of_a_document_holds_whole(head, path, value):
    from harvester.http import value_in_head
    assert value_in_head(head, path) == value
