"""Reading a response's body: under the size cap and the total-time bound (_read_capped),
gzip- and deflate-decoded a piece at a time and capped as it is decoded (_gunzip_capped, _decoded_chunks), gathered in memory
or, from a size on, in a temporary file read back like bytes (_BodySink, _SpooledBody); and
a data body (CSV, JSON lines) refused when an HTML page stands in its place (parse_data_body)."""
from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import time
import weakref
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import requests
import urllib3.exceptions

from harvester.http.errors import ConnectionFailed, HtmlInsteadOfData, InvalidBody, ResponseTooLarge, TimedOut

log = logging.getLogger("civicat.http")


# the start of a body over the response cap kept with the error (ResponseTooLarge.head): a
# Discovery entry names its id in its first hundred bytes, before what makes it huge
HEAD_OF_OVERSIZED = 64 * 1024


def _read_capped(response: requests.Response, cap: int, url: str, started: float, timeout: float,
                 truncate: bool = False, decode: bool = True, spool_from: int | None = None,
                 hashed: bool = False) -> "bytes | _SpooledBody":
    """The body, up to `cap` bytes; `decode=False`: as it came, still content-encoded. Gathered
    in a BytesIO, whose value is its buffer (not a copy): a list of chunks joined at the end
    held a large body twice over; from `spool_from` bytes on, in a temporary file (_BodySink),
    hashed as it is written with `hashed`."""
    gathered = _BodySink(spool_from, spool_hashed=hashed)
    size = 0
    try:
        for chunk in _decoded_chunks(response, 256 * 1024) if decode else _encoded_chunks(response, 256 * 1024):
            size += len(chunk)
            if size > cap:
                if truncate:
                    gathered.write(chunk)
                    break
                raise ResponseTooLarge(f"response is over the {cap}-byte cap", url, response.status_code,
                                       head=gathered.head(chunk))
            gathered.write(chunk)
            # read timeouts apply per socket read; this bounds a server that drips bytes
            if time.monotonic() - started > timeout * 2:
                raise TimedOut(f"response took over {timeout * 2:.0f}s to arrive", url, response.status_code)
    except requests.exceptions.RequestException as exc:
        gathered.discard()
        raise ConnectionFailed(f"response body cut short: {type(exc).__name__}", url, response.status_code) from None
    except BaseException:
        gathered.discard()
        raise
    return gathered.body()


def _head_of(response: requests.Response) -> bytes:
    """The first HEAD_OF_OVERSIZED bytes of a body not read (over the cap by its Content-Length),
    or what of them arrives without a fault (b"": the answer stays one over the cap)."""
    head = b""
    try:
        for chunk in _decoded_chunks(response, HEAD_OF_OVERSIZED):
            head += chunk
            if len(head) >= HEAD_OF_OVERSIZED:
                break
    except (requests.exceptions.RequestException, OSError):
        pass
    return head[:HEAD_OF_OVERSIZED]


def _gunzip_head(encoded: bytes) -> bytes:
    """The decoded start of a gzip-encoded body's first bytes (b"" when they are no gzip)."""
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(encoded, HEAD_OF_OVERSIZED)
    except zlib.error:
        return b""


def _encoded_chunks(response: requests.Response, size: int) -> Iterator[bytes]:
    """`response.iter_content` without decoding the content: urllib3's errors raised as the
    requests errors iter_content raises for them."""
    try:
        yield from response.raw.stream(size, decode_content=False)
    except urllib3.exceptions.ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from None
    except urllib3.exceptions.DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from None
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.exceptions.ConnectionError(exc) from None
    except urllib3.exceptions.SSLError as exc:
        raise requests.exceptions.SSLError(exc) from None
    response._content_consumed = True   # (as iter_content marks it: the connection goes back to the pool)


def _gunzip_capped(encoded: "bytes | Iterable[bytes]", cap: int, url: str, status: int,
                   spool_from: int | None = None, hashed: bool = False) -> tuple["bytes | _SpooledBody", bool]:
    """A gzip-encoded body decoded as urllib3 decodes it (members one after another; what
    follows a first whole member and is not gzip is dropped; a stream cut short gives what
    it holds), never more than `cap` bytes (a gzip bomb). Also whether `encoded` was nothing
    but whole members, so that it can be stored as the body's gzip file. Decoded a piece at a
    time (GZIP_PIECE_BYTES in, and out of each): decoded in one call, the body was held twice,
    the bytes decoded and their copy gathered (a 33 MB data.json peaked at 2.5 times its size).
    From `spool_from` bytes on, the body is decoded into a temporary file (_BodySink). `encoded`
    may also be given in pieces as they are read (the validator cache's stored gzip). `hashed`: a
    body spooled is hashed as it is written (_SpooledBody.sha256)."""
    pieces = _BodySink(spool_from, spool_hashed=hashed)   # (a BytesIO whose value is its buffer: joined pieces held the body twice)
    try:
        return _gunzip_into(pieces, encoded, cap, url, status)
    except BaseException:
        pieces.discard()
        raise


def _gunzip_into(pieces: "_BodySink", encoded: "bytes | Iterable[bytes]", cap: int, url: str,
                 status: int) -> tuple["bytes | _SpooledBody", bool]:
    size, decoded = 0, _Gunzipped(_pieces_of(encoded) if isinstance(encoded, bytes) else encoded)
    decoded.piece = min(cap + 1, GZIP_PIECE_BYTES)   # (never decoded past the cap's first byte)
    try:
        for piece in decoded:
            size += len(piece)
            if size > cap:
                raise ResponseTooLarge(f"response is over the {cap}-byte cap", url, status, head=pieces.head(piece))
            pieces.write(piece)
            decoded.piece = min(cap + 1 - size, GZIP_PIECE_BYTES)
    except requests.exceptions.ContentDecodingError:
        raise InvalidBody("response failed: ContentDecodingError", url) from None   # (as requests says it)
    return pieces.body(), decoded.whole


class _Gunzipped:
    """The pieces (`piece` bytes at most each, else GZIP_PIECE_BYTES) of a gzip stream given in pieces,
    decoded as urllib3 decodes it: members one after another; what follows a first whole member
    and is not gzip is dropped; a stream cut short gives what it holds; no gzip at all raises
    requests' ContentDecodingError. `whole` once read: the stream was nothing but whole members.
    Decoded here, not by urllib3 (2.8), which fed what follows a member ending where a read's length
    ends to a decoder already at its end, whose leftover then held it twice: the body's bytes given
    again and again, doubling at each read (a 594 KB gzip bomb held GBs before any cap saw them)."""

    def __init__(self, encoded: Iterable[bytes], piece: int | None = None) -> None:
        self.encoded, self.piece, self.whole = encoded, piece, False

    def __iter__(self) -> Iterator[bytes]:
        members = 0
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        fed, data = iter(self.encoded), b""
        while True:
            if not data:
                data = next(fed, None)
                if data is None:
                    break
                if decoder.eof:   # (the next member begins with this piece)
                    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                # (`piece` read at each call: a caller may narrow it; GZIP_PIECE_BYTES the module's, as it is now)
                piece = decoder.decompress(data, self.piece or GZIP_PIECE_BYTES)
            except zlib.error:
                if members:   # garbage after a whole member
                    return
                raise requests.exceptions.ContentDecodingError("the body is not gzip as its Content-Encoding "
                                                               "says") from None
            if piece:
                yield piece
            if decoder.unconsumed_tail:
                data = decoder.unconsumed_tail
            elif decoder.eof:
                members += 1
                data = decoder.unused_data
                if data:
                    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
            else:
                data = b""   # (this piece consumed: the next)
        if not decoder.eof:   # the input ends inside a member: what zlib holds of it yet (urllib3 flushes too)
            rest = decoder.flush()
            if rest:
                yield rest
        self.whole = members > 0 and decoder.eof


def _decoded_chunks(response: requests.Response, size: int) -> Iterator[bytes]:
    """`response.iter_content(size)`, a body encoded by gzip, deflate or both, one layer over another
    ("gzip, gzip"), decoded here in pieces of at most `size`, each layer a piece at a time (_Gunzipped,
    _Inflated); other encodings (none, or one urllib3 leaves as it came: br without brotli) by urllib3.
    Stacked encodings went to urllib3's MultiDecoder, whose gzip decoder a gzip bomb under a second
    gzip layer still doubled (1.7 GB held for a body capped at 8 MB)."""
    layers = _content_codings(response.headers.get("Content-Encoding", ""))
    if layers is None:
        yield from response.iter_content(chunk_size=size)
        return
    pieces: Iterable[bytes] = _encoded_chunks(response, size)
    for coding in reversed(layers):   # (the last coding listed was applied last: undone first)
        pieces = _Gunzipped(pieces, size) if coding in ("gzip", "x-gzip") else _Inflated(pieces, size)
    yield from pieces


def _content_codings(header: str) -> list[str] | None:
    """The codings a Content-Encoding lists (identity left out) when each is gzip or deflate and
    there is one at least; else None (urllib3 decodes the body, or leaves it as it came)."""
    codings = [c.strip().lower() for c in header.split(",") if c.strip().lower() not in ("", "identity")]
    if codings and all(c in ("gzip", "x-gzip", "deflate") for c in codings):
        return codings
    return None


class _Inflated:
    """The pieces (`piece` bytes at most each) of a deflate-encoded stream given in pieces, decoded
    as urllib3 decodes it: zlib-wrapped, else raw deflate (servers send either under "deflate");
    what follows the end of the stream is dropped; a stream that is neither raises requests'
    ContentDecodingError.

    Which of the two it is, the first two bytes say: zlib checks its header (CM 8 in the low four
    bits, the pair a multiple of 31) as soon as it has them, and no raw stream an encoder writes
    begins with such a byte (a block's first three bits are 000 only for a stored block, whose
    padding bits after them are 0, so the low four bits are never 8). So the raw fallback is tried
    on the first call alone, given two bytes at least (gathered first: a server's first chunk may be
    one byte, which zlib took without a word), and no later piece can need it."""

    def __init__(self, encoded: Iterable[bytes], piece: int) -> None:
        self.encoded, self.piece = encoded, piece

    def __iter__(self) -> Iterator[bytes]:
        decoder, first, wrapped = zlib.decompressobj(zlib.MAX_WBITS), True, True
        head = b""   # (the first bytes, until there are two)
        for data in self.encoded:
            if first and len(head) + len(data) < 2:
                head += bytes(data)
                continue
            if head:
                data, head = head + bytes(data), b""
            while data and not decoder.eof:
                try:
                    piece = decoder.decompress(data, self.piece)
                except zlib.error:
                    if not (first and wrapped):
                        raise requests.exceptions.ContentDecodingError("the body is not deflate as its "
                                                                       "Content-Encoding says") from None
                    decoder, wrapped = zlib.decompressobj(-zlib.MAX_WBITS), False   # (raw deflate: tried again)
                    continue
                first = False
                if piece:
                    yield piece
                data = decoder.unconsumed_tail
            if decoder.eof:
                return
        # (a body of one byte, left in `head`, gives nothing, as a stream cut short before its first byte out)
        rest = decoder.flush()   # (the input ends inside the stream: what zlib holds of it yet)
        if rest:
            yield rest


def _pieces_of(encoded: bytes) -> Iterator[memoryview]:
    view = memoryview(encoded)
    return (view[start:start + GZIP_PIECE_BYTES] for start in range(0, len(view), GZIP_PIECE_BYTES))


GZIP_PIECE_BYTES = 1 << 20   # of a gzip body kept for the cache, decoded at a time (_gunzip_capped)


class _SpooledBody:
    """A response body of STREAMED_JSON_BYTES and more, written to a temporary file as it
    arrives and read back a piece at a time: held in memory, a 192 MB data.json was 183 MiB
    of the 550 its harvest peaked at, up to the 256 MiB response cap. Read like bytes: its
    length, a byte, a slice (read from the file, never mapped: mapped pages count in the RSS).
    The file has no name (tempfile.TemporaryFile: O_TMPFILE on Linux, unlinked at once
    elsewhere), readable by this process alone; its space is given back when it is closed, or
    when the process ends however it ends: a harvest killed leaves no file behind. Closed by
    the request that read it, unless Entries read from it (`kept`): then by them (close),
    and in any case once it is garbage."""

    def __init__(self, hashed: bool = False) -> None:
        # unbuffered: what a write that failed (the disk full) left in the file is what it said it wrote
        self.file = tempfile.TemporaryFile(prefix="civicat-body-", buffering=0)
        self.size = 0
        # `hashed`: its sha256 taken as it is written (a page's digest without reading the file again)
        self._digest = hashlib.sha256() if hashed else None
        self.kept = False
        self._close = weakref.finalize(self, self.file.close)

    def write(self, data) -> None:
        view = memoryview(data)
        while view:   # (a raw file may take part of it: the disk filling)
            written = self.file.write(view)
            self.size += written
            if self._digest is not None:
                self._digest.update(view[:written])
            view = view[written:]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(self.size)
            if step != 1:
                raise ValueError("a spooled body is read in slices of consecutive bytes")
            return self._read(start, stop - start) if stop > start else b""
        at = key + self.size if key < 0 else key
        if not 0 <= at < self.size:
            raise IndexError("spooled body index out of range")
        return self._read(at, 1)[0]

    def _read(self, start: int, length: int) -> bytes:
        read = os.pread(self.file.fileno(), length, start)
        while len(read) < length:   # (a short read: a signal, or over 2 GB at once)
            more = os.pread(self.file.fileno(), length - len(read), start + len(read))
            if not more:
                raise OSError(f"the spooled body ends at byte {start + len(read)} of {self.size}")
            read += more
        return read

    def pieces(self, size: int | None = None) -> Iterator[bytes]:
        size = size or GZIP_PIECE_BYTES   # (read here, not bound as the default: the module's, as it is now)
        for start in range(0, self.size, size):
            yield self[start:start + size]

    def sha256(self) -> str:
        if self._digest is not None:
            return self._digest.hexdigest()
        digest = hashlib.sha256()
        for piece in self.pieces():
            digest.update(piece)
        return digest.hexdigest()

    def gzipped(self) -> bytes:
        """The body gzip-encoded (level 1, as the cache encodes a body), a piece at a time."""
        encoder = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        out = io.BytesIO()
        for piece in self.pieces():
            out.write(encoder.compress(piece))
        out.write(encoder.flush())
        return out.getvalue()

    def close(self) -> None:
        self._close()

    @property
    def closed(self) -> bool:
        return not self._close.alive


def _let_go(body) -> None:
    """A body given up on (its parse failed, the run stopped): its file, if spooled, closed."""
    if isinstance(body, _SpooledBody):
        body.close()


@contextmanager
def _parsing(body) -> Iterator[None]:
    """A body parsed and done with: its file, if spooled, closed when the parse fails, or once
    parsed unless Entries read from it (`kept`: they close it)."""
    try:
        yield
    except BaseException:
        _let_go(body)
        raise
    if not getattr(body, "kept", True):
        body.close()


class _BodySink:
    """Where a body is gathered as it arrives: a BytesIO (its value is its buffer, not a copy)
    up to `spool_from` bytes (None: no bound), then a _SpooledBody, what came before copied in.
    `hashed`: its sha256 taken as it is written (`digest`); `spool_hashed`: a body spooled takes
    its own as it is written (_SpooledBody.sha256), one held in memory none."""

    def __init__(self, spool_from: int | None, hashed: bool = False, spool_hashed: bool = False) -> None:
        self.memory: io.BytesIO | None = io.BytesIO()
        self.spooled: _SpooledBody | None = None
        self.spool_from = spool_from
        self.spool_hashed = spool_hashed
        self.size = 0
        self.digest = hashlib.sha256() if hashed else None

    def write(self, data) -> None:
        self.size += len(data)
        if self.digest is not None:
            self.digest.update(data)
        if self.memory is not None and self.spool_from is not None and self.size >= self.spool_from:
            self.spool_from = None   # (tried once a body)
            try:
                self.spooled = _SpooledBody(self.spool_hashed)
                with self.memory.getbuffer() as before:
                    self.spooled.write(before)
                self.memory = None
            except OSError as exc:
                self._held_in_memory(exc)
        if self.memory is None:
            spooled_before = self.spooled.size
            try:
                self.spooled.write(data)
                return
            except OSError as exc:
                data = data[self.spooled.size - spooled_before:]
                self.memory = io.BytesIO(self.spooled[:])
                self.memory.seek(0, io.SEEK_END)
                self._held_in_memory(exc)
        self.memory.write(data)

    def _held_in_memory(self, exc: OSError) -> None:
        """A temporary file that cannot be written (its folder full, or missing): the body is
        held in memory, as it was before bodies were spooled, not failed with a bare OSError."""
        log.warning("a large response body is held in memory: it could not be written to a temporary file "
                    "in %s (%s; TMPDIR sets the folder)", tempfile.gettempdir(), exc)
        _let_go(self.spooled)
        self.spooled = None

    def body(self) -> "bytes | _SpooledBody":
        return self.memory.getvalue() if self.memory is not None else self.spooled

    def head(self, more=b"") -> bytes:
        """The first HEAD_OF_OVERSIZED bytes written, then of `more` (bytes not written: what
        went over the cap), no copy of the rest."""
        if self.memory is not None:
            with self.memory.getbuffer() as written:
                head = bytes(written[:HEAD_OF_OVERSIZED])
        else:
            head = self.spooled[:HEAD_OF_OVERSIZED]
        return head + bytes(more[:HEAD_OF_OVERSIZED - len(head)])

    def discard(self) -> None:
        _let_go(self.spooled)


def parse_data_body(body: bytes, content_type: str, url: str) -> bytes:
    """A data body (CSV, JSON lines) from a 200: an HTML page in its place is a fault. The
    body decides, as for JSON: file servers label CSV downloads `text/html`, and no CSV or
    JSON line begins with a tag, where an HTML page does (labelled so, any tag or comment)."""
    head = body[:512].removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    if head.startswith((b"<!doctype", b"<html")) or ("html" in content_type.lower() and head.startswith(b"<")):
        raise HtmlInsteadOfData(f"HTML page instead of data (Content-Type {content_type or 'none'})", url, 200)
    return body
