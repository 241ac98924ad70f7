"""What the harvest's process does for each listed entry, counted in Python calls (a count is
exact where a time is not: the listing is CPU-bound, and what is done per entry of a 100,000
dataset catalogue is done 100,000 times)."""
import sys

import orjson

from harvester.http import json_parsing
from harvester.portals.socrata import DISCOVERY_PAGE
from tests.portals.synth import make_socrata_entries


def calls_of(function, run) -> int:
    counted = 0

    def count(frame, event, arg):
        nonlocal counted
        if event == "call" and frame.f_code is function.__code__:
            counted += 1
    sys.setprofile(count)
    try:
        run()
    finally:
        sys.setprofile(None)
    return counted


def test_a_discovery_page_under_its_caps_is_checked_in_a_call_per_capped_object():
    """Each result's resource and classification are looked at for lists over their caps; a
    list under its cap costs no call of its own (8 a result, 800 a page, before)."""
    body = orjson.dumps({"results": make_socrata_entries(100, seed=5), "resultSetSize": 100})
    page = {}
    assert calls_of(json_parsing._cut, lambda: page.update(DISCOVERY_PAGE(body, "application/json", "u"))) == 2 + 3 * 100
    assert page["results"] == orjson.loads(body)["results"] and not json_parsing.dropped(page["results"][0]["resource"])
