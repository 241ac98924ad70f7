"""JSON from a 200's body: parsed whole (parse_json_body), HTML, empty, broken and truncated
bodies refused as transient faults said alike, with the byte where each shows; or parsed with
its long lists cut (capped_json), a large body read a value at a time from a window of its text
(_TextWindow), a listing's entries given as Entries, parsed again one at a time; and a value
read from the start of a body over the cap (value_in_head)."""
from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator

import orjson

from harvester.http import bodies
from harvester.http.bodies import _let_go, _SpooledBody
from harvester.http.errors import HtmlInsteadOfData, InvalidBody, TransientError


def parse_json_body(body: bytes, content_type: str, url: str) -> object:
    """JSON from a 200, or a TransientError: HTML, empty and truncated bodies are faults.
    The body decides, not its label: portals and their CDNs do serve JSON as `text/html`,
    and a body that parses as JSON is no HTML page (one that does not is, so labelled)."""
    _refuse_html_or_empty(body, content_type, url)
    return _json_loads(body, content_type, url)


def _refuse_html_or_empty(body: bytes, content_type: str, url: str) -> None:
    head = body[:512].lstrip()
    if head.startswith(b"<"):
        raise HtmlInsteadOfData(f"HTML page instead of JSON (Content-Type {content_type or 'none'})", url, 200)
    if not head:
        raise InvalidBody("empty body instead of JSON", url, 200)


# capped_json: a smaller document is parsed whole by orjson, then cut (its lists cannot be very
# long: 16 MB of JSON is 10^6 short items, ~100 MB parsed); a larger one is read a value at a
# time, 3-4 times slower (a 31 MB data.json: 1.8 s of CPU against 0.5)
STREAMED_JSON_BYTES = 16 << 20
TEXT_WINDOW_BYTES = 1 << 20   # of such a body, decoded at a time (_TextWindow)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")   # (a lone surrogate's escape, or a pair's)
_JSON_SPACE = re.compile(r"[ \t\n\r]*")

# What capped_json cuts: object keys (and "*", every item of a list) down to the lists to cut,
# each given its largest number of items: {"results": {"*": {"fields": 10_000}}}; a number
# alone cuts the document itself, a list
CapTree = dict[str, "CapTree | int"]


class CappedDocument(dict):
    """A JSON object some of whose lists were cut: `dropped` maps each such key to the
    number of its items that were read and dropped."""
    dropped: dict[str, int]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.dropped = {}

    @property
    def left_out(self) -> int:
        return max(self.dropped.values(), default=0)


class CappedList(list):
    """A JSON list that was cut: `left_out` items were read and dropped."""

    def __init__(self, items, left_out: int):
        super().__init__(items)
        self.left_out = left_out


def dropped(value) -> dict[str, int]:
    """The items dropped from the lists of an object capped_json returned, by key (from a list
    that was cut itself: "*"); none: {}."""
    if isinstance(value, CappedList):
        return {"*": value.left_out}
    return dict(value.dropped) if isinstance(value, CappedDocument) else {}


def value_in_head(head: bytes, path: tuple[str | int, ...]):
    """The value at `path` (keys of objects, positions in arrays) of a JSON document of which
    `head` is the start (ResponseTooLarge.head), when the head holds it whole and everything
    before it: what comes before is skipped a value at a time, none of it kept. None when the
    head is cut short before the value ends, or the document has no such value there."""
    text = head.decode("utf-8", "replace").removeprefix("\ufeff")   # (cut mid-character: at its end only)
    decoder = json.JSONDecoder()

    def after_space(at: int) -> int:
        return _JSON_SPACE.match(text, at).end()

    def past_value(at: int) -> int:   # (raises where the head ends inside the value)
        return after_space(decoder.raw_decode(text, at)[1])

    try:
        at = after_space(0)
        for step in path:
            if isinstance(step, str):
                if text[at:at + 1] != "{":
                    return None
                at = after_space(at + 1)
                while True:
                    if text[at:at + 1] != '"':
                        return None
                    key, at = json.decoder.scanstring(text, at + 1)
                    at = after_space(at)
                    if text[at:at + 1] != ":":
                        return None
                    at = after_space(at + 1)
                    if key == step:
                        break
                    at = past_value(at)
                    if text[at:at + 1] != ",":
                        return None
                    at = after_space(at + 1)
            else:
                if text[at:at + 1] != "[":
                    return None
                at = after_space(at + 1)
                for _ in range(step):
                    at = past_value(at)
                    if text[at:at + 1] != ",":
                        return None
                    at = after_space(at + 1)
        value, end = decoder.raw_decode(text, at)
        # (a number or literal that ends where the head does may be cut: something must follow)
        return value if isinstance(value, (str, list, dict)) or after_space(end) < len(text) else None
    except (ValueError, RecursionError):
        return None


def capped_json(caps: CapTree | int, *, entries: tuple[str, ...] = ()) -> Callable[[bytes, str, str], object]:
    """A parse for get_json: the JSON document with each list `caps` names cut to its first
    items (a Socrata views document can list 10^6 columns, a Discovery entry or a DataStore
    as many). An object that had a list cut is a CappedDocument saying how many items were
    dropped. A large body is read a value at a time from a window of its text (_TextWindow),
    its capped lists' items past the cap dropped as they are read: parsed whole, such a
    document took a GB and more. Faults are parse_json_body's, said alike.

    `entries`: where the entries of a listing served as one document are ("*": the document
    itself, when it is a list; a key: its list, when the document is an object). In a large
    body that list is given as Entries, read again an entry at a time as it is iterated: a
    data.json of 10^5 datasets, parsed whole, held a GB and more until the last was stored."""
    def parse(body: "bytes | _SpooledBody", content_type: str, url: str) -> object:
        if len(body) < STREAMED_JSON_BYTES or json.detect_encoding(body[:4]) not in ("utf-8", "utf-8-sig"):
            body = body[:] if isinstance(body, _SpooledBody) else body   # (UTF-16 and -32: read whole, as before)
            return _cut(parse_json_body(body, content_type, url), caps)   # (UTF-16 and -32 too, as json has them)
        _refuse_html_or_empty(body, content_type, url)
        text = _TextWindow(body)
        try:
            value, at = _capped_value(text, text.skip_space(0), caps, entries)
            at = text.skip_space(at)
            if text.has(at):
                raise text.fault("Extra data", at)   # (json's words, as parsed whole)
        except _NotJson as fault:
            raise _not_json(fault, body, content_type, url) from None
        except RecursionError:
            raise _not_json(_NotJson("depth limit exceeded"), body, content_type, url) from None
        except ValueError as exc:
            raise _not_json(_unreadable_number(exc), body, content_type, url) from None
        # (a walk over every value: only for a body that may hold a lone surrogate)
        return _without_lone_surrogates(value) if _has_surrogate_escape(body) else value
    parse.reads_spooled = True   # (a large body is read from its temporary file: see _fetch)
    return parse


def _has_surrogate_escape(body: "bytes | _SpooledBody") -> bool:
    if not isinstance(body, _SpooledBody):
        return _SURROGATE_ESCAPE.search(body) is not None
    overlap, piece = 3, bodies.GZIP_PIECE_BYTES   # (an escape across two pieces: its first 3 bytes end the one before)
    return any(_SURROGATE_ESCAPE.search(body[start:start + piece + overlap]) for start in range(0, len(body), piece))


def _cut(value, caps: "CapTree | int"):
    """A parsed document with the lists `caps` names cut (the objects that held them made
    CappedDocuments, a list cut itself a CappedList, in place of the originals)."""
    if isinstance(caps, int):
        if isinstance(value, list) and len(value) > caps:
            value = CappedList(value[:caps], len(value) - caps)
    elif isinstance(value, list) and "*" in caps:
        item_caps = caps["*"]
        for number, item in enumerate(value):
            cut = _cut(item, item_caps)
            if cut is not item:
                value[number] = cut
    elif isinstance(value, dict):
        # hot: every entry of every listing page (a Discovery page: 100 results of 8 capped
        # lists), so a list under its cap is passed over here, without a call, and a member
        # left as it was is not set again
        for key, cap in caps.items():
            member = value.get(key)
            if isinstance(member, (dict, list)):
                if isinstance(cap, int):
                    cut = CappedList(member[:cap], len(member) - cap) if isinstance(member, list) and \
                        len(member) > cap else member
                else:
                    cut = _cut(member, cap)
                if cut is not member or isinstance(value, CappedDocument):
                    value = _member_cut(value, key, cut)
    return value


def _member_cut(holder: dict, key: str, value) -> dict:
    """`holder` with `value` as its `key`: a CappedDocument saying what was dropped when
    `value` is a list that was cut."""
    if isinstance(value, CappedList):
        holder = holder if isinstance(holder, CappedDocument) else CappedDocument(holder)
        holder.dropped[key], value = value.left_out, list(value)
    elif isinstance(holder, CappedDocument):   # a repeated key: its last value stands, as json.loads has it
        holder.dropped.pop(key, None)
    holder[key] = value
    return holder


class _NotJson(ValueError):
    """Where a body stops being JSON: `at` its byte (None: nowhere in particular); `cut_short`
    when it ends inside a value."""

    def __init__(self, reason: str, at: int | None = None, cut_short: bool = False):
        super().__init__(reason)
        self.reason, self.at, self.cut_short = reason, at, cut_short


def _not_json(fault: _NotJson, body: bytes, content_type: str, url: str) -> TransientError:
    """The fault of a 200 whose body is not JSON, or not all of it: said alike whether the body
    was parsed whole or a window at a time, with the byte where it shows."""
    if "html" in content_type.lower():
        return HtmlInsteadOfData(f"HTML page instead of JSON (Content-Type {content_type})", url, 200)
    if fault.cut_short:
        return InvalidBody(f"invalid or truncated JSON: the body is not complete JSON, it ends inside a value "
                              f"at byte {len(body)} (after {body[-40:]!r})", url, 200)
    where = "" if fault.at is None else f" at byte {fault.at} (after {body[max(0, fault.at - 40):fault.at]!r})"
    return InvalidBody(f"invalid or truncated JSON: the body is not JSON: {fault.reason}{where}", url, 200)


# what is left of a text where json stops reading, when it ends inside a literal or a number
# (json reads "1" of "1." or "1e+", then stops at what follows)
_PARTIAL_LITERAL = re.compile(r"[ \t\n\r]*(?:-|t|tr|tru|f|fa|fal|fals|n|nu|nul|\.|[eE][-+]?)?")


def _json_fault(exc: json.JSONDecodeError, text: str, byte_at: Callable[[int], int]) -> _NotJson:
    """json's error reading `text` (the rest of a body), as a _NotJson; `byte_at`: the byte of a character."""
    if exc.msg.startswith("Unterminated string") or _PARTIAL_LITERAL.fullmatch(text, exc.pos):
        return _NotJson("cut short", cut_short=True)
    return _NotJson(exc.msg, byte_at(exc.pos))


class _TextWindow:
    """The text of a large UTF-8 JSON body, decoded a window at a time as _capped_value reads
    on, the text before the value it reads let go. Decoded whole, the text was held with the
    body and up to four times its size (one emoji makes every character of a str 4 bytes): a
    200 MB body took 1 GB. A value wider than the window widens it, doubling (read twice at most)."""

    def __init__(self, body: "bytes | memoryview | _SpooledBody", begin: int = 0):
        """`begin`: the byte to read from (a character's first), character 0 of the text."""
        self.body = body if isinstance(body, _SpooledBody) else memoryview(body)
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        # bytes decoded so far (past a byte order mark)
        self.read = begin or (3 if self.body[:3] == b"\xef\xbb\xbf" else 0)
        self.text = ""           # the window: the text from character `start` on
        self.start = 0

    def byte_at(self, at: int) -> int:
        """The byte character `at` (in the window) begins at: counted back from the window's
        end, the last byte decoded (a fault's only: the text is encoded again)."""
        decoded = self.read - len(self.decoder.getstate()[0])
        return decoded - len(self.text[at - self.start:].encode("utf-8"))

    def fault(self, reason: str, at: int) -> _NotJson:
        if self.read >= len(self.body) and _PARTIAL_LITERAL.fullmatch(self.text, at - self.start):
            return _NotJson("cut short", cut_short=True)   # (as _json_fault has it: "[1." read as 1, then ".")
        return _NotJson(reason, self.byte_at(at))

    def _widen(self, at: int) -> bool:
        """Decode more of the body, letting go of the text before character `at`; False at its end."""
        if self.read >= len(self.body):
            return False
        if at > self.start:
            self.text, self.start = self.text[at - self.start:], at
        piece = self.body[self.read:self.read + max(TEXT_WINDOW_BYTES, len(self.text))]
        held = len(self.decoder.getstate()[0])   # (the first bytes of a character the last piece cut)
        try:
            self.text += self.decoder.decode(piece, final=self.read + len(piece) >= len(self.body))
        except UnicodeDecodeError as bad:
            byte = self.read - held + bad.start
            raise _NotJson(f"not UTF-8 (0x{self.body[byte]:02x})", byte) from None
        self.read += len(piece)
        return True

    def has(self, at: int) -> bool:
        """Whether the text goes on to character `at`."""
        while at >= self.start + len(self.text):
            if not self._widen(at):
                return False
        return True

    # (char, skip_space and value are read once or more per item of a list of 10^6: each reads
    # within the window first, and only past its end calls on has or _widen)
    def char(self, at: int) -> str:
        try:
            return self.text[at - self.start]   # (never before `start`: reading only goes on)
        except IndexError:
            if not self.has(at):
                raise _NotJson("cut short", cut_short=True) from None
            return self.text[at - self.start]

    def skip_space(self, at: int) -> int:
        while True:
            at = self.start + _JSON_SPACE.match(self.text, at - self.start).end()
            if at < self.start + len(self.text) or not self._widen(at):
                return at

    def capped_items(self, at: int, cap: int) -> tuple[list, int, int]:
        """The items of a list from character `at` (past its "[" and any space): the first `cap`
        kept, the others counted; and where the list ends (past its "]")."""
        items, left_out = [], 0
        scan, space = _SCAN, _JSON_SPACE.match
        while True:
            # within the window, a loop of its own (a call per item, not five): an item, the
            # space and comma after it, the space before the next
            text, start = self.text, self.start
            within, i = len(text) - 8, at - start   # (8: as value's rule)
            while i < within and text[i] != "]":
                try:
                    item, j = scan(text, i)
                except (StopIteration, json.JSONDecodeError):
                    break
                j = space(text, j).end()
                if j >= within:
                    break
                if text[j] == ",":
                    j = space(text, j + 1).end()
                    if j >= within or text[j] in "]}":
                        break
                elif text[j] != "]":
                    break
                if len(items) < cap:
                    items.append(item)
                else:
                    left_out += 1
                i = j
            at = start + i
            # at the window's end, the list's or a fault: one item read with care
            if self.char(at) == "]":
                return items, left_out, at + 1
            item, at = self.value(at)
            if len(items) < cap:
                items.append(item)
            else:
                left_out += 1
            at = _next_member(self, self.skip_space(at), "]")

    def value(self, at: int) -> tuple[object, int]:
        """The JSON value at character `at`, and where it ends."""
        try:
            value, end = _SCAN(self.text, at - self.start)
            if end + 8 <= len(self.text):   # (a number at the window's end may go on: "1." of "1.5e+3" reads as 1)
                return value, self.start + end
        except (StopIteration, json.JSONDecodeError):
            pass
        while True:
            whole = self.read >= len(self.body)
            try:
                value, end = _DECODER.raw_decode(self.text, at - self.start)
                if whole or end + 8 <= len(self.text):
                    return value, self.start + end
            except json.JSONDecodeError as exc:
                if whole or exc.pos < len(self.text) - 16 and not exc.msg.startswith("Unterminated string"):
                    raise _json_fault(exc, self.text, lambda pos: self.byte_at(self.start + pos)) from None
            self._widen(at)


_DECODER = json.JSONDecoder()
_SCAN = _DECODER.scan_once   # (raw_decode without its frame: StopIteration where nothing is a value)


def _capped_value(text: _TextWindow, at: int, caps: "CapTree | int",
                  entries: tuple[str, ...] = ()) -> tuple[object, int]:
    """The JSON value at character `at` (past any space), as _cut would leave it, and where it
    ends: the members and items on the way to a capped list are decoded one by one, the rest
    whole, and a capped list's items past its cap decoded and dropped. `entries` (of the
    document only, see capped_json): the lists read as Entries."""
    opener = text.char(at)
    if opener == "[" and "*" in entries:
        return Entries.checked(text, at, _item_caps(caps))
    if opener == "[" and (isinstance(caps, int) or "*" in caps):
        items, at, left_out = [], text.skip_space(at + 1), 0
        if isinstance(caps, int):
            items, left_out, at = text.capped_items(at, caps)
            return (CappedList(items, left_out) if left_out else items), at
        while text.char(at) != "]":
            item, at = _capped_value(text, at, caps["*"])
            items.append(item)
            at = _next_member(text, text.skip_space(at), "]")
        return items, at + 1
    if opener != "{" or isinstance(caps, int) or "*" in caps and len(caps) == 1:
        return text.value(at)
    out, at = {}, text.skip_space(at + 1)
    while text.char(at) != "}":
        name, at = text.value(at)
        at = text.skip_space(at)
        if not isinstance(name, str) or text.char(at) != ":":
            raise text.fault("Expecting property name enclosed in double quotes" if not isinstance(name, str)
                             else "Expecting ':' delimiter", at)
        at = text.skip_space(at + 1)
        if name in entries and text.char(at) == "[":
            value, at = Entries.checked(text, at, _item_caps(caps.get(name)))
            out = _member_cut(out, name, value)
        elif name in caps:
            value, at = _capped_value(text, at, caps[name])
            out = _member_cut(out, name, value)
        else:
            out[name], at = text.value(at)
        at = _next_member(text, text.skip_space(at), "}")
    return out, at + 1


def _item_caps(caps) -> "CapTree":
    """What caps say of each item of a list (none: {})."""
    return caps.get("*", {}) if isinstance(caps, dict) else {}


def _entry(text: _TextWindow, at: int, caps: "CapTree") -> tuple[object, int]:
    """The entry at character `at` of a listing's list, cut as `caps` say, and where it ends:
    scanned whole by json's C scanner when the window holds it (then it is small: a list long
    enough to need cutting as it is read is wider than the window), else a value at a time."""
    try:
        value, end = _SCAN(text.text, at - text.start)
        if end + 8 <= len(text.text):   # (as value's rule: a number at the window's end may go on)
            return _cut(value, caps), text.start + end
    except (StopIteration, json.JSONDecodeError):
        pass
    return _capped_value(text, at, caps)


class Entries:
    """The entries of a listing served as one large document (a data.json of 10^5 datasets),
    parsed again one at a time as they are iterated, each cut as capped_json's caps say: no
    more of them are held than the caller keeps. When the body was read, every entry was
    parsed, cut and dropped (`checked`), so a body cut short or broken midway failed its
    request (retried, and never stored in the validator cache) before any entry was handed
    out. Holds the body, once, while it lives: a body spooled to a temporary file (_SpooledBody)
    is read from it, and closed by `close` (Listing closes it once its entries are handed out)."""

    def __init__(self, body: "memoryview | _SpooledBody", begin: int, caps: "CapTree", count: int):
        self.body, self.begin, self.caps, self.count = body, begin, caps, count
        self.lone_surrogates = False   # (set by _without_lone_surrogates: each entry is made UTF-8-safe)
        if isinstance(body, _SpooledBody):
            body.kept = True   # (the request that read it leaves it open)

    def close(self) -> None:
        """Let go of the body: a spooled one's file is closed (its entries can be read no more)."""
        _let_go(self.body)

    @classmethod
    def checked(cls, text: _TextWindow, at: int, caps: "CapTree") -> tuple["Entries", int]:
        """The list at character `at` (its "["), each entry read and dropped; and where it ends."""
        begin, count = text.byte_at(at), 0
        at = text.skip_space(at + 1)
        while text.char(at) != "]":
            _, at = _entry(text, at, caps)
            count += 1
            at = _next_member(text, text.skip_space(at), "]")
        return cls(text.body, begin, caps, count), at + 1

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator:
        text = _TextWindow(self.body, self.begin)
        text.char(0)   # (its "[", decoded: skip_space reads on from the window it has)
        at = text.skip_space(1)
        while text.char(at) != "]":
            entry, at = _entry(text, at, self.caps)
            yield _without_lone_surrogates(entry) if self.lone_surrogates else entry
            at = _next_member(text, text.skip_space(at), "]")

    def __repr__(self) -> str:
        return f"<Entries: {self.count} entries>"


def _next_member(text: _TextWindow, at: int, end: str) -> int:
    """Past the comma after a member or item (to the next one), or at `end`."""
    char = text.char(at)
    if char == ",":
        at = text.skip_space(at + 1)
        if text.char(at) in "]}":
            raise text.fault("a trailing ','", at)
        return at
    if char != end:
        raise text.fault("Expecting ',' delimiter", at)
    return at


# a run of 19 digits or more: maybe an integer past 64 bits, which orjson reads as a float
# (12345678901234567890123 as 1.2345678901234568e+22); json reads it exactly
# A run of 19 digits may be an integer past 64 bits, which orjson reads as a float. Digits
# mapped to '0' and a plain find, a megabyte at a time: a regex's \d{19} tried a match at every
# digit, 4 ms for a 280 KB Discovery page (more than orjson's parse), this 0.3 ms.
_DIGITS_AS_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_NINETEEN_DIGITS = b"0" * 19
_DIGIT_SCAN_BYTES = 1 << 20


def _has_long_digits(body: bytes) -> bool:
    overlap = len(_NINETEEN_DIGITS) - 1   # (a run across two pieces)
    return any(body[start:start + _DIGIT_SCAN_BYTES + overlap].translate(_DIGITS_AS_ZERO).find(_NINETEEN_DIGITS) >= 0
               for start in range(0, len(body), _DIGIT_SCAN_BYTES))


def _json_loads(body: bytes, content_type: str, url: str) -> object:
    if not _has_long_digits(body):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    try:  # what orjson refuses or reads inexactly: lone surrogate escapes such as "\ud83d", long integers
        return _without_lone_surrogates(json.loads(body))
    except UnicodeDecodeError as bad:   # (orjson says "surrogates not allowed", at char 0)
        raise _not_json(_NotJson(f"not UTF-8 (0x{body[bad.start]:02x})", bad.start), body, content_type, url) from None
    except RecursionError:   # (json's own limit on nesting, past orjson's 1,024 levels)
        raise _not_json(_NotJson("depth limit exceeded"), body, content_type, url) from None
    except json.JSONDecodeError as exc:
        encoding = json.detect_encoding(body)
        text = body.decode(encoding)
        raise _not_json(_json_fault(exc, text, lambda pos: len(text[:pos].encode(encoding))),
                        body, content_type, url) from None
    except ValueError as exc:
        raise _not_json(_unreadable_number(exc), body, content_type, url) from None


def _unreadable_number(exc: ValueError) -> _NotJson:
    """json's ValueError that is no JSONDecodeError: an integer of more than 4,300 digits, which
    Python does not read (sys.set_int_max_str_digits). Raised as itself, it was no HttpError: a
    dataset's details lookup holding one failed its whole portal."""
    return _NotJson(str(exc).split(";")[0])


def _without_lone_surrogates(value):
    """Lone UTF-16 surrogates cannot be stored as UTF-8: each becomes U+FFFD."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        items = [_without_lone_surrogates(v) for v in value]
        return CappedList(items, value.left_out) if isinstance(value, CappedList) else items
    if isinstance(value, Entries):   # (each as it is read)
        value.lone_surrogates = True
        return value
    if isinstance(value, dict):
        out = {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in value.items()}
        if isinstance(value, CappedDocument):   # (what capped_json dropped stays said)
            out = CappedDocument(out)
            out.dropped = value.dropped
        return out
    return value
