import duckdb
import pytest

from catalog.export import _exported
from catalog.links import (PASSWORD_BEFORE_HOST, redacted, redacted_text, secret_links, secret_parameters,
                           secrets_in_text, secrets_of)

SIGNED = [
    "https://x.org/a.csv?accessType=DOWNLOAD&token=abc",
    "https://bucket.s3.amazonaws.com/k.zip?X-Amz-Algorithm=AWS4&X-Amz-Signature=f00&X-Amz-Expires=60",
    "https://x.blob.core.windows.net/c/f.csv?sv=2022-11-02&sig=ab%2Fcd%3D#part",
    "https://x.org/?$$app_token=t",
    "https://x.org/?API-KEY=t&format=json",
    "https://x.org/?%74oken=t",                  # (a name escaped: '%74' is 't')
    "https://x.org/?client_secret=t&x=1&access_token=u",
    "https://x.org/a.csv?accessType=DOWNLOAD&amp;token=abc",   # (an '&' written as HTML writes it)
    # (a tab or line break in the query, which urlsplit drops: its positions were the cleaned text's, and
    # the value's last characters were left after REDACTED)
    "https://x.org/a?to\tken=abcdef", "https://x.org/a?token=sec\nret&x=1",
]
PLAIN = ["https://x.org/a.csv?accessType=DOWNLOAD", "https://x.org/?keyword=parks&signup=1", "https://x.org/key=1",
         "https://x.org/path?tokenizer=2", "not a url ? token", None, ""]


def test_a_links_secret_parameters_are_named_and_their_values_redacted_the_rest_kept():
    assert [secret_parameters(link) for link in SIGNED] == [
        ["token"], ["X-Amz-Signature"], ["sig"], ["$$app_token"], ["API-KEY"], ["token"],
        ["client_secret", "access_token"], ["token"], ["token"], ["token"]]
    assert [redacted(link) for link in SIGNED] == [
        "https://x.org/a.csv?accessType=DOWNLOAD&token=REDACTED",
        "https://bucket.s3.amazonaws.com/k.zip?X-Amz-Algorithm=AWS4&X-Amz-Signature=REDACTED&X-Amz-Expires=60",
        # (what follows a query's secret up to the next '&' is its value, a '#' too: until session 45 `#part` was
        # kept, as `?password=ab#cd` kept `#cd`, a key's tail: catalog.links.VALUE_END)
        "https://x.blob.core.windows.net/c/f.csv?sv=2022-11-02&sig=REDACTED",
        "https://x.org/?$$app_token=REDACTED", "https://x.org/?API-KEY=REDACTED&format=json",
        "https://x.org/?%74oken=REDACTED", "https://x.org/?client_secret=REDACTED&x=1&access_token=REDACTED",
        "https://x.org/a.csv?accessType=DOWNLOAD&amp;token=REDACTED",
        "https://x.org/a?token=REDACTED", "https://x.org/a?token=REDACTED&x=1"]
    assert [secret_parameters(link) for link in PLAIN] == [[]] * len(PLAIN)
    assert [redacted(link) for link in PLAIN] == PLAIN


WITH_PASSWORD = {   # (session 41, r41: exported as published, warned of never)
    "ftp://user:s3cret@ftp.city.example/pub/f.csv": "ftp://user:REDACTED@ftp.city.example/pub/f.csv",
    "https://u:p%40ss@x.org:8080/a.csv?token=t&a=1": "https://u:REDACTED@x.org:8080/a.csv?token=REDACTED&a=1",
    # (a tab or line break, which a URL parser drops: urlsplit's positions were off by them, part of the
    # password left, or no '//' found and a ValueError; a host urlsplit refuses: no password found)
    "ftp://u:sec\nret@h/f": "ftp://u:REDACTED@h/f", "ftp://u\t:secret@h/f": "ftp://u:REDACTED@h/f",
    "CC:/\t/u:p@h": "CC://u:REDACTED@h", "http://u:p@[notip]/x": "http://u:REDACTED@[notip]/x",
    "http://a:b:c@h/x": "http://a:REDACTED@h/x", "//u:p@h/x": "//u:REDACTED@h/x",
}
WITH_USER_ALONE = ["https://user@x.org/a.csv", "mailto:open.data@city.example", "https://x.org/?contact=a@b.org",
                   "https://x.org/people/@handle", "ftp://u:@h/", "https://[::1]:8080/x"]


def test_a_links_password_before_its_host_is_named_and_redacted_its_user_kept():
    assert [secrets_of(link) for link in WITH_PASSWORD] == [[PASSWORD_BEFORE_HOST], [PASSWORD_BEFORE_HOST, "token"]] + [
        [PASSWORD_BEFORE_HOST]] * (len(WITH_PASSWORD) - 2)
    assert [redacted(link) for link in WITH_PASSWORD] == list(WITH_PASSWORD.values())
    assert [secrets_of(link) for link in WITH_USER_ALONE] == [[]] * len(WITH_USER_ALONE)
    assert [redacted(link) for link in WITH_USER_ALONE] == WITH_USER_ALONE
    assert secret_links({"landing_page": PLAIN[0], "distributions": [{"access_url": next(iter(WITH_PASSWORD))}]}) == [
        ("distributions[0].access_url", [PASSWORD_BEFORE_HOST])]


# a link field holding a link after its first, read as a text's links are, each scheme beginning one (session
# 42, r42: read as one link, a secret after the second scheme was the text of the first's parameter, and a
# password after a word was no password before the host: both exported as published)
NESTED = {
    "https://x.org/login?next=https://y.org/f.csv?token=abc": "https://x.org/login?next=https://y.org/f.csv?token=REDACTED",
    "https://x.org/r?to=ftp://u:pw@h/f.csv&api_key=k": "https://x.org/r?to=ftp://u:REDACTED@h/f.csv&api_key=REDACTED",
    "https://x.org/?u=https://y.org/?sig=s&token=t": "https://x.org/?u=https://y.org/?sig=REDACTED&token=REDACTED",
    "see http://u:p@h/x": "see http://u:REDACTED@h/x",
}


def test_a_link_fields_links_after_its_first_are_read_as_a_texts():
    assert [secrets_of(link) for link in NESTED] == [
        ["token"], ["api_key", PASSWORD_BEFORE_HOST], ["sig", "token"], [PASSWORD_BEFORE_HOST]]   # (in their order: a "?" inside a value separates)
    assert [redacted(link) for link in NESTED] == list(NESTED.values())
    # as a text's too: a text's link ends where the next scheme begins, and a parameter after a link inside
    # another's query is read as the rest of that query (until the lead's change in session 42, no link's: a
    # description's `api_key=k` after `?to=ftp://h/f.csv` exported as published)
    assert [redacted_text(link) for link in NESTED] == list(NESTED.values())
    assert [secrets_in_text(f"see {link}.") for link in NESTED] == [
        ["token"], [PASSWORD_BEFORE_HOST, "api_key"], ["sig", "token"], [PASSWORD_BEFORE_HOST]]
    assert secret_links({"landing_page": next(iter(NESTED))}) == [("landing_page", ["token"])]


# a link nested in another's query as a form escapes it, a parameter's '=' escaped (session 43: not decoded, the
# key exported as published; the export's SQL passed the second by, holding no '=' and no '@'), and a secret after
# the other separators a server may split a query on
ESCAPED = {
    "https://x.org/login?next=https%3A%2F%2Fy.org%2Ff.csv%3Ftoken%3Dabc":
        "https://x.org/login?next=https%3A%2F%2Fy.org%2Ff.csv%3Ftoken%3DREDACTED",
    "https://x.org/a?token%3Dabc": "https://x.org/a?token%3DREDACTED",
    "https://x.org/sso?return=https%3a%2f%2fu%3apw%40h.example%2ff":
        "https://x.org/sso?return=https%3a%2f%2fu%3aREDACTED%40h.example%2ff",
    "https://x.org/login?next=%2Fdata%3Fapi_key%3Dk%26x%3D1": "https://x.org/login?next=%2Fdata%3Fapi_key%3DREDACTED%26x%3D1",
    "https://x.org/a?x=1;token=abc": "https://x.org/a?x=1;token=REDACTED",
    "https://x.org/login?next=/f.csv?token=abc": "https://x.org/login?next=/f.csv?token=REDACTED",
}
# a secret's name with no value publishes nothing (session 43: named, and rewritten `token=REDACTED` in data.json
# alone, the Parquet export's SQL passing it by); escapes of nothing secret kept as written
NO_VALUE = ["https://x.org/a?token", "https://x.org/a?x=1&api_key", "https://x.org/a?q=50%25%20off&key",
            "https://x.org/a?q=token%20=%201"]


def test_a_links_escaped_secrets_are_decoded_once_named_and_redacted_where_written():
    assert [secrets_of(link) for link in ESCAPED] == [
        ["token"], ["token"], [PASSWORD_BEFORE_HOST], ["api_key"], ["token"], ["token"]]
    assert [redacted(link) for link in ESCAPED] == list(ESCAPED.values())
    assert [secrets_in_text(f"Sign in: {link}.") for link in ESCAPED] == [
        ["token"], ["token"], [PASSWORD_BEFORE_HOST], ["api_key"], ["token"], ["token"]]
    assert [redacted_text(f"Sign in: {link}.") for link in ESCAPED] == [f"Sign in: {link}." for link in ESCAPED.values()]
    assert [secrets_of(link) for link in NO_VALUE] == [[]] * len(NO_VALUE)
    assert [redacted(link) for link in NO_VALUE] == NO_VALUE
    assert [redacted_text(link) for link in NO_VALUE] == NO_VALUE


@pytest.mark.parametrize("link", SIGNED + PLAIN[:-2] + list(WITH_PASSWORD) + WITH_USER_ALONE + list(NESTED)
                         + list(ESCAPED) + NO_VALUE)
def test_the_exports_sql_redacts_a_link_as_redacted_does(link):
    """(A guard of the SQL's prefilter: it passes by a link only where `redacted` would change nothing.)"""
    with duckdb.connect() as con:
        con.execute("CREATE TABLE t AS SELECT ?::VARCHAR AS download_url", [link])
        assert con.execute(f"SELECT {_exported(con, 'download_url')} FROM t").fetchone() == (redacted(link),)


def test_a_records_links_holding_a_secret_are_named_by_field():
    record = {"landing_page": SIGNED[0], "license": PLAIN[0],
              "distributions": [{"download_url": PLAIN[0], "access_url": None}, {"download_url": SIGNED[1]}]}
    assert secret_links(record) == [("landing_page", ["token"]), ("distributions[1].download_url", ["X-Amz-Signature"])]


TEXTS = {   # a description pasting a link with its key (session 42: exported as published until then)
    "Query it at https://x.org/api?id=1&api_key=abc123. Daily.": "Query it at https://x.org/api?id=1&api_key=REDACTED. Daily.",
    "(see https://x.org/?token=t)": "(see https://x.org/?token=REDACTED)",
    "[the map](https://x.org/a.csv?token=abc) and <https://x.org/?sig=s>":
        "[the map](https://x.org/a.csv?token=REDACTED) and <https://x.org/?sig=REDACTED>",
    "data.city.gov/resource/x.json?$$app_token=tok, thanks": "data.city.gov/resource/x.json?$$app_token=REDACTED, thanks",
    "From ftp://u:pw@h/f.csv!": "From ftp://u:REDACTED@h/f.csv!",
    'href="https://x.org/p?a=1&amp;token=zz"': 'href="https://x.org/p?a=1&amp;token=REDACTED"',
    "Line one\nhttps://x.org/?%74oken=t\tand more": "Line one\nhttps://x.org/?%74oken=REDACTED\tand more",
    # (a link naming no scheme: the export's SQL passed it by, its password published)
    "at //u:pw@h.example/f.csv?x=1": "at //u:REDACTED@h.example/f.csv?x=1",
    # (several links in one run of text, each read apart: as one, from the first's scheme to the run's end, a
    # secret after the first's query was read as that query's text, and a link before a scheme not at all)
    "[https://x.org/api?id=1](https://x.org/api?token=abc)": "[https://x.org/api?id=1](https://x.org/api?token=REDACTED)",
    "[https://x.org/?token=abc](https://x.org/?token=abc)": "[https://x.org/?token=REDACTED](https://x.org/?token=REDACTED)",
    "data.city.gov/x.json?$$app_token=tok,https://city.gov/about":
        "data.city.gov/x.json?$$app_token=REDACTED,https://city.gov/about",
    "Sign in: https://x.org/login?next=https://y.org/f.csv?token=abc": (
        "Sign in: https://x.org/login?next=https://y.org/f.csv?token=REDACTED"),
}
PLAIN_TEXTS = ["Mail open.data@city.example: 50% of parks", "Why? token=x is no link", "https://x.org/?keyword=parks",
               "Use your API key (https://x.org/signup).", "https://user@x.org/a", None, ""]


def test_a_texts_links_holding_a_secret_are_named_and_redacted_the_rest_as_written():
    assert [secrets_in_text(text) for text in TEXTS] == [
        ["api_key"], ["token"], ["token", "sig"], ["$$app_token"], [PASSWORD_BEFORE_HOST], ["token"], ["token"],
        [PASSWORD_BEFORE_HOST], ["token"], ["token"], ["$$app_token"], ["token"]]
    assert [redacted_text(text) for text in TEXTS] == list(TEXTS.values())
    assert [secrets_in_text(text) for text in PLAIN_TEXTS] == [[]] * len(PLAIN_TEXTS)
    assert [redacted_text(text) for text in PLAIN_TEXTS] == PLAIN_TEXTS
    assert secret_links({"identifier": SIGNED[0], "description": next(iter(TEXTS)),
                         "columns": [{"description": None}, {"description": "(see https://x.org/?token=t)"}]}) == [
        ("identifier", ["token"]), ("description", ["api_key"]), ("columns[1].description", ["token"])]


@pytest.mark.parametrize("text", list(TEXTS) + PLAIN_TEXTS[:-2] + [f"Sign in: {link}." for link in ESCAPED]
                         + NO_VALUE)
def test_the_exports_sql_redacts_a_text_as_redacted_text_does(text):
    """(A guard of the SQL's prefilter of texts: it passes a text by only where redacted_text would change nothing.)"""
    with duckdb.connect() as con:
        con.execute("CREATE TABLE t AS SELECT ?::VARCHAR AS description", [text])
        assert con.execute(f"SELECT {_exported(con, 'description', text=True)} FROM t").fetchone() == (
            redacted_text(text),)


def test_a_uid_redacted_never_names_another_dataset():
    """Two source ids one once redacted, and a third that is what they redact to, stay three uids."""
    from catalog.export import exported_uids

    ids = ["https://x.org/?id=1&token=a", "https://x.org/?id=1&token=b", "https://x.org/?id=1&token=REDACTED",
           "https://x.org/?id=2"]
    with duckdb.connect() as con:
        con.execute("CREATE TABLE datasets AS SELECT 'p' AS portal_id, s AS source_id, 'p:' || s AS uid, "
                    "TIMESTAMPTZ '2026-12-01 00:00:00+00' AS first_seen FROM unnest(?) AS t(s)", [ids])
        assert exported_uids(con) == {"p:https://x.org/?id=1&token=a": "p:https://x.org/?id=1&token=REDACTED#2",
                                      "p:https://x.org/?id=1&token=b": "p:https://x.org/?id=1&token=REDACTED#3"}


def test_a_uid_redacted_keeps_its_number_when_a_dataset_sorting_before_it_comes():
    """Numbered in the order of their uids, a dataset first seen tonight whose key sorts first took the
    exported uid another had: a front end keyed on uids saw that dataset become another (r42)."""
    from catalog.export import exported_uids

    with duckdb.connect() as con:
        con.execute("CREATE TABLE datasets (portal_id VARCHAR, source_id VARCHAR, uid VARCHAR, first_seen TIMESTAMPTZ)")
        nights = {}
        for night, key in enumerate(["m", "z", "a"], start=1):
            source_id = f"https://x.org/?id=1&token={key}"
            con.execute("INSERT INTO datasets VALUES ('p', ?, 'p:' || ?, TIMESTAMPTZ '2026-12-01 00:00:00+00' + "
                        "to_days(?))", [source_id, source_id, night])
            nights[night] = exported_uids(con)
        base = "p:https://x.org/?id=1&token=REDACTED"
        assert nights[3] == {"p:https://x.org/?id=1&token=m": base, "p:https://x.org/?id=1&token=z": f"{base}#2",
                             "p:https://x.org/?id=1&token=a": f"{base}#3"}
        assert all(nights[3][uid] == exported for night in (1, 2) for uid, exported in nights[night].items())


# a description as long as a portal may send one, holding a run of characters with no space or quote
# (a field list joined by commas, a base64 image pasted in Markdown) beside an email address or a
# question: its links are found in time linear in its length (on a42's first version each start in
# the run read the rest of it: 40,000 characters took 16 s, 250,000 about ten minutes, at harvest, load 20)
LONG_TEXTS = {
    "Ask data@city.example. Fields: " + ",".join(f"field_{i}" for i in range(25_000)) + ". Why?": [],
    "Fields: " + "a1" * 150_000 + " then https://x.org/f.csv?api_key=abc": ["api_key"],
    "(see https://x.org/f?token=abc" + ")" * 200_000: ["token"],
    "https://x.org/f?token=abc" + "." * 1_000_000: ["token"],
}


def test_the_links_of_a_long_text_are_found_in_bounded_time():
    """In a process of its own, its CPU limited to ten seconds (the texts need under half a second): on
    a42's first version it was killed at the limit."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    program = ("import json, resource, sys\n"
               "resource.setrlimit(resource.RLIMIT_CPU, (10, 10))\n"
               "from catalog.links import redacted_text, secrets_in_text\n"
               "texts = json.load(sys.stdin)\n"
               "print(json.dumps([[secrets_in_text(t), redacted_text(t).count('REDACTED')] for t in texts]))\n")
    ran = subprocess.run([sys.executable, "-c", program], input=json.dumps(list(LONG_TEXTS)), capture_output=True,
                         text=True, timeout=600, cwd=Path(__file__).resolve().parents[2])
    assert ran.returncode == 0, f"killed at its CPU limit or failed: {ran.returncode} {ran.stderr[-500:]}"
    assert json.loads(ran.stdout) == [[secrets, len(secrets)] for secrets in LONG_TEXTS.values()]


# a secret holding a ';' or a '?' (a password a person chose, written unescaped): those begin a parameter's name
# after them (`?a=1;token=…`), but a secret's value runs to the next '&' (x43's first reading ended it there: the
# tail after the ';' or the '?' was published)
WITH_SEPARATORS = {
    "https://x.org/a?password=pa;ss?word&x=1": "https://x.org/a?password=REDACTED&x=1",
    "https://x.org/a?token=ab?cd#top": "https://x.org/a?token=REDACTED",   # (its '#' too, since session 45)
    "https://x.org/a?x=1;token=ab;cd": "https://x.org/a?x=1;token=REDACTED",
    "https://x.org/login?next=/f.csv?token=ab;cd&y=2": "https://x.org/login?next=/f.csv?token=REDACTED&y=2",
    "https://x.org/a?pwd%3Dpa%3Bss%26x%3D1": "https://x.org/a?pwd%3DREDACTED%26x%3D1",
}


def test_a_secret_holding_a_semicolon_or_a_question_mark_is_redacted_whole():
    assert [redacted(link) for link in WITH_SEPARATORS] == list(WITH_SEPARATORS.values())
    assert [redacted_text(f"Sign in: {link} now") for link in WITH_SEPARATORS] == [
        f"Sign in: {link} now" for link in WITH_SEPARATORS.values()]


def test_a_harvest_reads_a_link_once_and_passes_by_the_links_and_texts_that_cannot_hold_a_secret(monkeypatch):
    """secret_links runs on every dataset a harvest maps (~20 links and texts each, 15 of them its
    columns'): session 42 read each link field twice (as one link, then as a text) and scanned every
    text for links, 4.7 -> 28 us a dataset, 2.3 s of CPU in a 100,000-dataset harvest. Same findings,
    read once: a link field that is its own only link is parsed once; a value with no '?', '@' or
    '&' (a text with no '?' or '@') is never scanned."""
    import catalog.links as links

    calls = {"one": 0, "scanned": 0}
    one, links_at = links._secrets_of_one, links._links_at

    def counted_one(link):
        calls["one"] += 1
        return one(link)

    def counted_links_at(text):
        calls["scanned"] += 1
        return links_at(text)

    monkeypatch.setattr(links, "_secrets_of_one", counted_one)
    monkeypatch.setattr(links, "_links_at", counted_links_at)
    assert secrets_of("https://x.org/a.csv?accessType=DOWNLOAD&token=abc") == ["token"]
    assert calls == {"one": 1, "scanned": 1}
    # (a link whose query holds another's: both read, as before)
    assert secrets_of("https://x.org/r?next=https://y.org/f.csv?api_key=k") == ["api_key"]
    assert calls == {"one": 4, "scanned": 2}   # (the field whole, then its two links)
    calls.update(one=0, scanned=0)
    plain = {"identifier": "https://x.org/api/views/abcd-1234", "landing_page": "https://x.org/d/abcd-1234",
             "license": "https://creativecommons.org/licenses/by/4.0/", "description": "Crimes. See the portal.",
             "distributions": [{"download_url": "https://x.org/resource/abcd-1234.csv", "access_url": None}],
             "columns": [{"description": "The date of the report."}, {"description": ""}, {"description": None}]}
    assert secret_links(plain) == [] and calls == {"one": 0, "scanned": 0}
    keyed = {**plain, "columns": [*plain["columns"], {"description": "see https://x.org/f?api_key=k"}]}
    assert secret_links(keyed) == [("columns[3].description", ["api_key"])]


def test_a_link_whose_only_query_is_a_nested_links_escaped_one_is_read():
    """(The merge of p43's and x43's readings.) A link nested in another's path as a form escapes it holds no '?',
    '@' or '&' as written: p43's pass-by of such links would have kept x43's decoded reading from it."""
    link = "https://x.org/go/https%3A%2F%2Fy.org%2Ff.csv%3Ftoken%3Dabc"
    assert secrets_of(link) == secrets_in_text(f"see {link}") == ["token"]
    assert redacted(link) == "https://x.org/go/https%3A%2F%2Fy.org%2Ff.csv%3Ftoken%3DREDACTED"
    assert secret_links({"landing_page": link, "description": f"see {link}"}) == [
        ("landing_page", ["token"]), ("description", ["token"])]


# a key in a link's fragment (session 44: exported as published, since session 41): an OAuth implicit grant's
# (`#access_token=…&token_type=bearer`, the browser's redirect copied), an app's route before it (`#/view?…`,
# `#/access_token=…`, as an implicit grant is appended to a redirect `…/#/`), several alike
FRAGMENT_KEYS = {
    "https://x.org/data#access_token=abc": "https://x.org/data#access_token=REDACTED",
    "https://app.x.org/cb#access_token=abc&token_type=bearer&expires_in=3600":
        "https://app.x.org/cb#access_token=REDACTED&token_type=bearer&expires_in=3600",
    "https://x.org/d.csv#token=abc&sig=def": "https://x.org/d.csv#token=REDACTED&sig=REDACTED",
    "https://app.x.org/#/view?access_token=abc": "https://app.x.org/#/view?access_token=REDACTED",
    "https://app.x.org/#/access_token=abc&token_type=Bearer": "https://app.x.org/#/access_token=REDACTED&token_type=Bearer",
    # (a query's secret runs on through its '#' since session 45: one REDACTED for both)
    "https://x.org/a?id=1&token=abc#access_token=def": "https://x.org/a?id=1&token=REDACTED",
    # (a nested link's fragment, escaped: `%23`)
    "https://x.org/login?next=https%3A%2F%2Fy.org%2Fapp%23access_token%3Dabc":
        "https://x.org/login?next=https%3A%2F%2Fy.org%2Fapp%23access_token%3DREDACTED",
}
# fragments that are anchors or routes, and a query inside one naming no secret: exported as published (the
# last, Philadelphia's real metadata links: a search inside a view inside a link, escaped three times)
ANCHORS = ["https://x.org/page#section-2", "https://hub.arcgis.com/datasets/abc_0#data", "https://x.org/#/map/12/40.7/-74.0",
           "https://x.org/a?b=1#top", "https://x.org/#:~:text=open%20data", "https://x.org/#!/view/parks?sort=name",
           "http://metadata.phila.gov/#home/datasetdetails/5c49edcfcf1222529a2e3b32/representationdetails/"
           "5c49edcfcf1222529a2e3b36?ref=ref%3Dview_280_search%253Dcanopy%252520trees%2526view_280_page%253D1"]


def test_a_key_in_a_links_fragment_is_named_and_redacted_and_an_anchor_kept():
    assert [secrets_of(link) for link in FRAGMENT_KEYS] == [
        ["access_token"], ["access_token"], ["token", "sig"], ["access_token"], ["access_token"],
        ["token", "access_token"], ["access_token"]]
    assert [redacted(link) for link in FRAGMENT_KEYS] == list(FRAGMENT_KEYS.values())
    assert [redacted_text(f"Open {link}.") for link in FRAGMENT_KEYS] == [f"Open {v}." for v in FRAGMENT_KEYS.values()]
    assert [secrets_in_text(f"Open {link}.") for link in FRAGMENT_KEYS] == [secrets_of(link) for link in FRAGMENT_KEYS]
    # (a text's link naming no scheme, from its fragment as from its query)
    assert redacted_text("Open app.city.gov/#access_token=abc now") == "Open app.city.gov/#access_token=REDACTED now"
    assert [secrets_of(link) for link in ANCHORS] == [[]] * len(ANCHORS)
    assert [redacted(link) for link in ANCHORS] == ANCHORS
    assert [redacted_text(f"See {link}; or #2 and #3.") for link in ANCHORS] == [
        f"See {link}; or #2 and #3." for link in ANCHORS]
    assert secret_links({"landing_page": ANCHORS[1], "distributions": [{"download_url": next(iter(FRAGMENT_KEYS))}]}) == [
        ("distributions[0].download_url", ["access_token"])]


# a link nested in another's query as a form, itself nested so (each nesting escapes once more: `%253D`), or a
# key escaped twice: decoded up to catalog.links.DECODINGS (4) times (session 44: once, exported as published)
ESCAPED_TWICE = {
    "https://x.org/a?next=%253Ftoken%253Dabc": "https://x.org/a?next=%253Ftoken%253DREDACTED",
    "https://x.org/sso?r=https%3A%2F%2Fy.org%2Fgo%3Fu%3Dhttps%253A%252F%252Fz.org%252Ff.csv%253Fapi_key%253Dabc%2526x%253D1":
        "https://x.org/sso?r=https%3A%2F%2Fy.org%2Fgo%3Fu%3Dhttps%253A%252F%252Fz.org%252Ff.csv%253Fapi_key%253DREDACTED"
        "%2526x%253D1",
    "https://x.org/a?r=https%253A%252F%252Fu%253Apw%2540h.example%252Ff":
        "https://x.org/a?r=https%253A%252F%252Fu%253AREDACTED%2540h.example%252Ff",
    "https://x.org/a?token%25253Dabc": "https://x.org/a?token%25253DREDACTED",          # (three times)
    "https://x.org/a?token%2525253Dabc": "https://x.org/a?token%2525253DREDACTED",      # (four)
    "https://x.org/go/https%253A%252F%252Fy.org%252Fapp%2523access_token%253Dabc":
        "https://x.org/go/https%253A%252F%252Fy.org%252Fapp%2523access_token%253DREDACTED",
}


def test_a_key_escaped_twice_or_more_is_decoded_named_and_redacted_where_written():
    assert [secrets_of(link) for link in ESCAPED_TWICE] == [
        ["token"], ["api_key"], [PASSWORD_BEFORE_HOST], ["token"], ["token"], ["access_token"]]
    assert [redacted(link) for link in ESCAPED_TWICE] == list(ESCAPED_TWICE.values())
    assert [redacted_text(f"Sign in: {link} now") for link in ESCAPED_TWICE] == [
        f"Sign in: {link} now" for link in ESCAPED_TWICE.values()]
    assert [secrets_in_text(f"Sign in: {link} now") for link in ESCAPED_TWICE] == [
        secrets_of(link) for link in ESCAPED_TWICE]


# two readings of one secret whose spans overlap or touch (as one link, its value runs to the next '&'; as a
# text's link, the sentence's punctuation after it is the text's): session 44 wrote "REDACTEDREDACTED"
OVERLAPPING = {
    "https://x.org/a?token%3Dabc)": "https://x.org/a?token%3DREDACTED",
    "https://x.org/a?token%3Dabc.": "https://x.org/a?token%3DREDACTED",
    "https://x.org/a?next=%2Ff%3Fsig%3Dabc,": "https://x.org/a?next=%2Ff%3Fsig%3DREDACTED",
    "https://x.org/d.csv?token%3Dabc%20": "https://x.org/d.csv?token%3DREDACTED",
}


def test_secrets_whose_spans_overlap_or_touch_are_one_redacted():
    from catalog.links import _replaced

    assert [redacted(link) for link in OVERLAPPING] == list(OVERLAPPING.values())
    assert _replaced("abcdef", [(1, 3), (3, 5)]) == "aREDACTEDf"   # (touching)
    assert _replaced("abcdef", [(1, 4), (2, 5), (2, 3)]) == "aREDACTEDf"   # (overlapping, one inside)
    assert _replaced("abcdef", [(1, 2), (3, 4)]) == "aREDACTEDcREDACTEDef"   # (apart: two)


@pytest.mark.parametrize("link, exported", [*FRAGMENT_KEYS.items(), *((link, link) for link in ANCHORS),
                                            *ESCAPED_TWICE.items(), *OVERLAPPING.items()])
def test_the_exports_sql_redacts_a_fragment_and_a_link_escaped_twice_as_redacted_does(link, exported):
    """(The guard of the SQL's prefilter above, of session 44's cases: a link, and a text pasting it; the SQL
    passes by only what redacted would not change, `%253D` holding no '=', '@', '%3D' or '%40'.)"""
    with duckdb.connect() as con:
        con.execute("CREATE TABLE t AS SELECT ?::VARCHAR AS download_url, ?::VARCHAR AS description",
                    [link, f"See {link} now"])
        assert con.execute(f"SELECT {_exported(con, 'download_url')}, {_exported(con, 'description', text=True)} "
                           "FROM t").fetchone() == (exported, redacted_text(f"See {link} now"))
    assert redacted(link) == exported


def test_a_uid_whose_source_id_holds_a_key_in_its_fragment_or_escaped_twice_is_redacted():
    from catalog.export import exported_uids

    ids = ["https://x.org/parks#access_token=a", "https://x.org/parks#access_token=b",
           "https://x.org/p?next=%252Ff%253Ftoken%253Dc", "https://x.org/parks#data"]
    with duckdb.connect() as con:
        con.execute("CREATE TABLE datasets AS SELECT 'p' AS portal_id, s AS source_id, 'p:' || s AS uid, "
                    "TIMESTAMPTZ '2026-12-01 00:00:00+00' AS first_seen FROM unnest(?) AS t(s)", [ids])
        assert exported_uids(con) == {"p:https://x.org/parks#access_token=a": "p:https://x.org/parks#access_token=REDACTED",
                                      "p:https://x.org/parks#access_token=b":
                                          "p:https://x.org/parks#access_token=REDACTED#2",
                                      "p:https://x.org/p?next=%252Ff%253Ftoken%253Dc":
                                          "p:https://x.org/p?next=%252Ff%253Ftoken%253DREDACTED"}


# a fragment holding a second '#': a hash-routed app's redirect (`…/#/callback`) that an OAuth server appended an
# implicit grant to with a '#' of its own (the browser's address after signing in), and a nested link's fragment
# inside a fragment, as written and escaped (`%23`), and a text's link naming no scheme (r44: each read as one
# name, `callback#access_token`, the key exported as published)
SECOND_HASH = {
    "https://app.x.org/#/callback#access_token=abc&token_type=Bearer&expires_in=3600":
        "https://app.x.org/#/callback#access_token=REDACTED&token_type=Bearer&expires_in=3600",
    "https://app.x.org/#!/auth#id=1&access_token=abc": "https://app.x.org/#!/auth#id=1&access_token=REDACTED",
    "https://x.org/r#next=x.org/a#token=abc": "https://x.org/r#next=x.org/a#token=REDACTED",
    "https://x.org/r#/go?to=x.org%2Fa%3Fb%3D1%23access_token%3Dabc":
        "https://x.org/r#/go?to=x.org%2Fa%3Fb%3D1%23access_token%3DREDACTED",
    "app.x.org/#/callback#access_token=abc": "app.x.org/#/callback#access_token=REDACTED",
}


def test_a_key_after_a_second_hash_in_a_fragment_is_named_and_redacted():
    assert [secrets_of(link) for link in SECOND_HASH] == [["access_token"], ["access_token"], ["token"],
                                                          ["access_token"], ["access_token"]]
    assert [redacted(link) for link in SECOND_HASH] == list(SECOND_HASH.values())
    assert [redacted_text(f"Signed in: {link} now") for link in SECOND_HASH] == [
        f"Signed in: {link} now" for link in SECOND_HASH.values()]
    # (an anchor after an anchor names no secret: left as written)
    assert redacted("https://x.org/#/docs#section-2") == "https://x.org/#/docs#section-2"
    with duckdb.connect() as con:
        for link, exported in SECOND_HASH.items():
            con.execute("CREATE OR REPLACE TABLE t AS SELECT ?::VARCHAR AS download_url, ?::VARCHAR AS description",
                        [link, f"See {link} now"])
            assert con.execute(f"SELECT {_exported(con, 'download_url')}, {_exported(con, 'description', text=True)} "
                               "FROM t").fetchone() == (exported, f"See {exported} now")


# a key in a fragment after a hashbang (`#!`, an app's route mark), and a fragment key holding a '#' (a browser
# keeps it in the fragment, and an app reads the value through it): session 44's k44 exported the first as
# published (read as the name `!access_token`), and the second's tail after its '#'
HASHBANG_AND_HASH = {
    "https://app.x.org/cb#!access_token=abc&token_type=bearer": "https://app.x.org/cb#!access_token=REDACTED&token_type=bearer",
    "https://app.x.org/#!token=abc": "https://app.x.org/#!token=REDACTED",
    "https://x.org/data#access_token=ab#cd": "https://x.org/data#access_token=REDACTED",
    "https://x.org/data#access_token=ab#cd#ef&token_type=bearer": "https://x.org/data#access_token=REDACTED&token_type=bearer",
    "https://x.org/data#!/view?api_key=ab#c&x=1": "https://x.org/data#!/view?api_key=REDACTED&x=1",
}


def test_a_key_after_a_hashbang_or_holding_a_hash_in_a_fragment_is_redacted_whole():
    assert [secrets_of(link) for link in HASHBANG_AND_HASH] == [
        ["access_token"], ["token"], ["access_token"], ["access_token"], ["api_key"]]
    assert [redacted(link) for link in HASHBANG_AND_HASH] == list(HASHBANG_AND_HASH.values())
    assert [redacted_text(f"Open {link} now") for link in HASHBANG_AND_HASH] == [
        f"Open {v} now" for v in HASHBANG_AND_HASH.values()]
    # (an exported uid's number after a redacted value kept, read again: a message, a log line; anchors kept)
    uid = "p:https://x.org/parks#access_token=REDACTED#2"
    assert redacted(uid) == uid and redacted_text(f"no dataset {uid}: try again") == f"no dataset {uid}: try again"
    assert [redacted(link) for link in ANCHORS] == ANCHORS


# a '#' after a query's secret (a password written unescaped, `?password=ab#cd`, or an anchor: they cannot be told
# apart), and a fragment key's own '#digits' tail: session 44 showed `#cd`, `#12` (a query ended at its '#'; a
# fragment's value at a '#' followed by digits alone, an exported uid's number)
HASH_IN_A_KEY = {
    "https://x.org/d.csv?token=ab#cd": "https://x.org/d.csv?token=REDACTED",
    "https://x.org/login?user=u&password=pa#ss&x=1": "https://x.org/login?user=u&password=REDACTED&x=1",
    "https://www.arcgis.com/home/item.html?id=1&token=ab#data": "https://www.arcgis.com/home/item.html?id=1&token=REDACTED",
    "https://x.org/data#access_token=ab#12": "https://x.org/data#access_token=REDACTED",
    "https://x.org/d?api_key=ab#12": "https://x.org/d?api_key=REDACTED",
}
# the real catalogues' anchors after a query or in a text (../shared/fixtures: Hub's `?id=…#data`, `#specs`,
# Google Sheets' `#gid=…`, a PDF's `#page=43`), an exported uid's number after REDACTED: kept as written
KEPT_WITH_A_HASH = ["https://x.org/item.html?id=8caeca8122e54b65b7bc04a24d3d0850#data",
                    "https://x.org/p.cfm?fuseaction=find&pgw_code=WA#specs", "https://x.org/s/d/1ab/edit#gid=1499621902",
                    "https://x.org/Austin-2013.pdf#page=43", "p:https://x.org/d?token=REDACTED#2",
                    "p:https://x.org/parks#access_token=REDACTED#12"]


def test_a_hash_inside_a_query_or_fragment_key_is_redacted_with_it_and_an_anchor_with_no_key_kept():
    assert [secrets_of(link) for link in HASH_IN_A_KEY] == [["token"], ["password"], ["token"], ["access_token"],
                                                            ["api_key"]]
    assert [redacted(link) for link in HASH_IN_A_KEY] == list(HASH_IN_A_KEY.values())
    assert [redacted_text(f"Open {link} now") for link in HASH_IN_A_KEY] == [
        f"Open {v} now" for v in HASH_IN_A_KEY.values()]
    assert [redacted(link) for link in KEPT_WITH_A_HASH] == KEPT_WITH_A_HASH
    assert [redacted_text(f"See {link}). Or #2.") for link in KEPT_WITH_A_HASH] == [
        f"See {link}). Or #2." for link in KEPT_WITH_A_HASH]
    # (a parameter a text writes with no scheme or host, after a '#' as after a '?': a secret's name and a value
    # is a key wherever it is pasted, `app.city.gov/#access_token=…` or `#access_token=…`; an anchor, `#page=43`,
    # `#gid=…`, a hashtag, names none)
    assert redacted_text("Paste #access_token=abc or ?token=abc; see #page=43, #gid=1, #parks") == (
        "Paste #access_token=REDACTED or ?token=REDACTED; see #page=43, #gid=1, #parks")


# (session 45's cases, with a '#' in a query's key and a fragment key's '#digits' tail, and the anchors kept)
@pytest.mark.parametrize("link, exported", [*HASHBANG_AND_HASH.items(), *HASH_IN_A_KEY.items(),
                                            *((link, link) for link in KEPT_WITH_A_HASH)])
def test_the_exports_sql_redacts_a_hashbang_s_key_and_one_holding_a_hash_as_redacted_does(link, exported):
    with duckdb.connect() as con:
        con.execute("CREATE TABLE t AS SELECT ?::VARCHAR AS download_url, ?::VARCHAR AS description",
                    [link, f"See {link} now"])
        assert con.execute(f"SELECT {_exported(con, 'download_url')}, {_exported(con, 'description', text=True)} "
                           "FROM t").fetchone() == (exported, f"See {exported} now")
