"""Bodies read under their cap: gzip decoded as urllib3 decodes it, large bodies spooled to a temporary
file, the start of a body over the cap kept."""
import gzip
import hashlib
import json
import os
import signal
import tempfile

import pytest
from urllib3.response import GzipDecoder

from harvester.http import ResponseTooLarge, TransientError
from harvester.http.bodies import _gunzip_capped
from tests.conftest import fast_client
from tests.harvester.http.conftest import get
from tests.portals.base import RawBody


def _members(*bodies: bytes) -> bytes:
    return b"".join(gzip.compress(body, mtime=0) for body in bodies)


LONG = b"".join(hashlib.sha256(str(i).encode()).hexdigest().encode() for i in range(200))


@pytest.mark.parametrize("encoded, whole", [
    (_members(b'{"a": 1}'), True),
    (_members(b'{"a": ', b'1}'), True),             # members one after another
    (_members(b'{"a": 1}') + b"<html>", False),     # garbage after a member: dropped
    (_members(LONG)[:-30], False),                  # cut short: what it holds
    (_members(LONG, LONG)[:-30], False),
    (b"", False),
])
@pytest.mark.parametrize("piece", [1 << 20, 7])   # (7: members and faults across the pieces fed)
def test_a_kept_gzip_body_is_decoded_as_urllib3_decodes_it(encoded, whole, piece, monkeypatch):
    monkeypatch.setattr("harvester.http.bodies.GZIP_PIECE_BYTES", piece)
    urllib3_decoder = GzipDecoder()
    expected = urllib3_decoder.decompress(encoded) + urllib3_decoder.flush()
    decoded, was_whole = _gunzip_capped(encoded, 1 << 20, "http://x", 200)
    assert decoded == expected and was_whole is whole
    assert len(decoded) > 6000 or whole or len(encoded) < 100


class ReadsRecorded:
    """A spooled body whose reads from its file are recorded (their lengths)."""

    def __init__(self, body: bytes):
        from harvester.http.bodies import _SpooledBody
        self.spooled, self.reads = _SpooledBody(), []
        self.spooled.write(body)
        read = self.spooled._read
        self.spooled._read = lambda start, length: self.reads.append(length) or read(start, length)


def test_a_spooled_body_is_read_in_pieces_of_the_size_the_module_sets(monkeypatch):
    """GZIP_PIECE_BYTES was bound as the default of _SpooledBody.pieces and imported by name in
    json_parsing: setting the module's constant reached neither. Both read it where they use it."""
    from harvester.http.json_parsing import _has_surrogate_escape
    monkeypatch.setattr("harvester.http.bodies.GZIP_PIECE_BYTES", 7)
    body = ReadsRecorded(b'{"a": "' + b"x" * 40 + b'\\ud800"}')
    assert b"".join(body.spooled.pieces()) == body.spooled[:] and max(body.reads[:-1]) == 7
    body.reads.clear()
    assert _has_surrogate_escape(body.spooled)   # (an escape across two pieces: found by their overlap)
    assert body.reads and max(body.reads) == 7 + 3
    body.spooled.close()


def test_a_kept_gzip_body_is_decoded_into_its_one_copy():
    """Decoded in one call, a kept gzip body was held twice, its bytes and their copy gathered:
    a 33 MB data.json served gzipped peaked at 2.5 times its size while it was listed."""
    import tracemalloc
    body = b"".join(b'{"identifier": "%d", "title": "Street Trees %d"}, ' % (i, i * 7919 % 10007) for i in range(600_000))
    encoded = gzip.compress(body, compresslevel=1)
    tracemalloc.start()
    try:
        decoded, whole = _gunzip_capped(encoded, 1 << 30, "http://x", 200)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert decoded == body and whole
    assert peak < 1.3 * len(body), f"{peak / len(body):.2f} times the body's size"


def test_a_kept_gzip_body_is_capped_and_checked():
    with pytest.raises(ResponseTooLarge):
        _gunzip_capped(gzip.compress(b"0" * (1 << 22)), 1 << 20, "http://x", 200)   # a gzip bomb
    with pytest.raises(TransientError, match="ContentDecodingError"):
        _gunzip_capped(b"not gzip at all", 1 << 20, "http://x", 200)


def test_a_large_body_s_temporary_file_is_closed_once_read_or_refused(portal, streamed_from_1_mb, spooled_bodies):
    """A body of STREAMED_JSON_BYTES and more is written to a temporary file as it arrives; a
    document read from it whole (a services list cut to its first items), or refused (cut short,
    not JSON, over the response cap), leaves the file closed when its request returns or fails."""
    from harvester.http import capped_json
    services = [{"service_code": f"{i:07d}", "description": "x" * 80} for i in range(20_000)]
    body = json.dumps(services).encode()
    assert len(body) > 1 << 20
    portal.static["/services.json"] = RawBody(body, "application/json")
    portal.static["/cut.json"] = RawBody(body[:-5], "application/json")
    portal.static["/bad.json"] = RawBody(body[:-1] + b", oops]", "application/json")
    client = fast_client(max_attempts=1)
    assert get(client, portal, "/services.json", parse=capped_json(3)).data == services[:3]
    for path, fault in (("/cut.json", "ends inside a value"), ("/bad.json", "the body is not JSON")):
        with pytest.raises(TransientError, match=fault):
            get(client, portal, path, parse=capped_json(3))
    with pytest.raises(ResponseTooLarge):
        get(fast_client(max_bytes=len(body) - 1000), portal, "/services.json", parse=capped_json(3))
    assert len(spooled_bodies) == 4 and all(spooled.closed for spooled in spooled_bodies)
    spooled_bodies.interrupt_at = 2 << 20   # Ctrl-C while the body arrives
    with pytest.raises(KeyboardInterrupt):
        get(client, portal, "/services.json", parse=capped_json(3))
    assert len(spooled_bodies) == 5 and all(spooled.closed for spooled in spooled_bodies)


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="a file size limit is set with setrlimit")
def test_a_large_body_whose_temporary_file_cannot_be_written_is_held_in_memory(portal, tmp_path, streamed_from_1_mb,
                                                                             spooled_bodies, monkeypatch, caplog):
    """A large body goes to a temporary file; a disk that fills midway (here: a file size limit,
    whose write fails as ENOSPC does) or a temporary folder that is missing failed the request
    with a bare OSError (no address, not an HTTP error: an ArcGIS layer's lookup failed its whole
    portal), where the body held in memory had been read. It is held in memory again, with a warning."""
    import resource
    from harvester.portals.dcat_us import DOCUMENT
    datasets = [{"identifier": f"{i:07d}", "title": "Parcels \u00e9", "keyword": ["a", "b"]} for i in range(40_000)]
    body = json.dumps(datasets, ensure_ascii=False).encode()
    assert 2 << 20 < len(body) < 4 << 20
    portal.static["/data.json"] = RawBody(body, "application/json")
    plain = {"Accept-Encoding": "identity"}
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # (a write past the limit fails, EFBIG)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, limit[1]))
    try:
        listed = list(get(fast_client(), portal, "/data.json", parse=DOCUMENT, headers=plain).data)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, handler)
    assert listed == datasets
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    assert list(get(fast_client(), portal, "/data.json", parse=DOCUMENT, headers=plain).data) == datasets
    assert len(spooled_bodies) == 1 and spooled_bodies[0].closed   # (the one the full disk stopped)
    assert caplog.text.count("a large response body is held in memory") == 2


def test_a_spooled_body_is_read_as_its_bytes_and_cached_gzip_encoded(portal, tmp_path, streamed_from_1_mb,
                                                                     spooled_bodies):
    """A spooled body reads as the bytes it holds (a byte, slices from either end); a body sent
    without gzip goes to the validator cache gzip-encoded from the file, its digest the body's,
    and a 304 gives back the same document."""
    from harvester.http import capped_json
    from harvester.http.bodies import _SpooledBody
    body = json.dumps({"results": [{"id": i, "text": "é" * 30} for i in range(30_000)]}, ensure_ascii=False).encode()
    spooled = _SpooledBody()
    for start in range(0, len(body), 100_000):
        spooled.write(body[start:start + 100_000])
    assert len(spooled) == len(body) and spooled[:] == body and spooled[-40:] == body[-40:]
    assert spooled[5] == body[5] and spooled[-1] == body[-1] and spooled[1000:1000 + 3 * 2**20] == body[1000:]
    assert gzip.decompress(spooled.gzipped()) == body and spooled.sha256() == hashlib.sha256(body).hexdigest()
    spooled.close()
    portal.static["/big.json"] = RawBody(body, "application/json")
    parse = capped_json({"results": 5})
    plain = {"Accept-Encoding": "identity"}   # (the test portal gzips whatever a client accepts)
    client = fast_client(tmp_path)
    first = get(client, portal, "/big.json", parse=parse, conditional=True, headers=plain)
    client.cache.flush()
    assert first.digest == hashlib.sha256(body).hexdigest() and first.data == {"results": json.loads(body)["results"][:5]}
    again = get(fast_client(tmp_path), portal, "/big.json", parse=parse, conditional=True, headers=plain)
    assert again.not_modified and again.data == first.data
    # (the test's, the 200's, and the 304's: decoded from the cache into a file of its own)
    assert len(spooled_bodies) == 3 and all(spooled.closed for spooled in spooled_bodies)


@pytest.mark.parametrize("answer", ["decoded", "kept gzip, over the cap as it came", "kept gzip, over it decoded",
                                    "not encoded, over the cap by its Content-Length"])
def test_an_answer_over_the_cap_keeps_the_start_of_its_body_decoded(portal, tmp_path, answer):
    """Every way an answer is found over the cap keeps the start of its body decoded, as far as it
    was read (ResponseTooLarge.head: up to HEAD_OF_OVERSIZED bytes, here past the 50,000-byte
    cap), from which value_in_head reads what the body starts with."""
    from harvester.http import value_in_head
    from harvester.http.bodies import HEAD_OF_OVERSIZED
    filler = "ab" * 100_000 if "decoded" in answer else os.urandom(100_000).hex()   # (gzip: 2 to 1, or 1,000 to 1)
    body = json.dumps({"results": [{"resource": {"name": "a dataset", "id": "abcd-1234", "description": filler}}],
                       "resultSetSize": 1}).encode()
    portal.static["/big.json"] = RawBody(body, "application/json")
    client = fast_client(tmp_path if "kept" in answer else None, max_bytes=50_000)
    identity = {"Accept-Encoding": "identity"} if "not encoded" in answer else None
    with pytest.raises(ResponseTooLarge) as raised:
        get(client, portal, "/big.json", conditional="kept" in answer, headers=identity)
    head = raised.value.head
    assert head == body[:len(head)] and len(head) == (50_001 if answer == "kept gzip, over it decoded" else
                                                      HEAD_OF_OVERSIZED)
    assert value_in_head(raised.value.head, ("results", 0, "resource", "id")) == "abcd-1234"
    assert value_in_head(raised.value.head, ("resultSetSize",)) is None   # (after the head's end)
