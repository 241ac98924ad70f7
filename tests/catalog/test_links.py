import duckdb
import pytest

from catalog.export import _exported
from catalog.links import redacted, secret_links, secret_parameters

SIGNED = [
    "https://x.org/a.csv?accessType=DOWNLOAD&token=abc",
    "https://bucket.s3.amazonaws.com/k.zip?X-Amz-Algorithm=AWS4&X-Amz-Signature=f00&X-Amz-Expires=60",
    "https://x.blob.core.windows.net/c/f.csv?sv=2022-11-02&sig=ab%2Fcd%3D#part",
    "https://x.org/?$$app_token=t",
    "https://x.org/?API-KEY=t&format=json",
    "https://x.org/?%74oken=t",                  # (a name escaped: '%74' is 't')
    "https://x.org/?client_secret=t&x=1&access_token=u",
    "https://x.org/a.csv?accessType=DOWNLOAD&amp;token=abc",   # (an '&' written as HTML writes it)
]
PLAIN = ["https://x.org/a.csv?accessType=DOWNLOAD", "https://x.org/?keyword=parks&signup=1", "https://x.org/key=1",
         "https://x.org/path?tokenizer=2", "not a url ? token", None, ""]


def test_a_links_secret_parameters_are_named_and_their_values_redacted_the_rest_kept():
    assert [secret_parameters(link) for link in SIGNED] == [
        ["token"], ["X-Amz-Signature"], ["sig"], ["$$app_token"], ["API-KEY"], ["token"],
        ["client_secret", "access_token"], ["token"]]
    assert [redacted(link) for link in SIGNED] == [
        "https://x.org/a.csv?accessType=DOWNLOAD&token=REDACTED",
        "https://bucket.s3.amazonaws.com/k.zip?X-Amz-Algorithm=AWS4&X-Amz-Signature=REDACTED&X-Amz-Expires=60",
        "https://x.blob.core.windows.net/c/f.csv?sv=2022-11-02&sig=REDACTED#part",
        "https://x.org/?$$app_token=REDACTED", "https://x.org/?API-KEY=REDACTED&format=json",
        "https://x.org/?%74oken=REDACTED", "https://x.org/?client_secret=REDACTED&x=1&access_token=REDACTED",
        "https://x.org/a.csv?accessType=DOWNLOAD&amp;token=REDACTED"]
    assert [secret_parameters(link) for link in PLAIN] == [[]] * len(PLAIN)
    assert [redacted(link) for link in PLAIN] == PLAIN


@pytest.mark.parametrize("link", SIGNED + PLAIN[:-2])
def test_the_exports_sql_redacts_a_link_as_redacted_does(link):
    """(A guard of the SQL's prefilter: it passes by a link only where `redacted` would change nothing.)"""
    with duckdb.connect() as con:
        con.execute("CREATE TABLE t AS SELECT ?::VARCHAR AS download_url", [link])
        assert con.execute(f"SELECT {_exported(con, 'download_url')} FROM t").fetchone() == (redacted(link),)


def test_a_records_links_holding_a_secret_are_named_by_field():
    record = {"landing_page": SIGNED[0], "license": PLAIN[0],
              "distributions": [{"download_url": PLAIN[0], "access_url": None}, {"download_url": SIGNED[1]}]}
    assert secret_links(record) == [("landing_page", ["token"]), ("distributions[1].download_url", ["X-Amz-Signature"])]
