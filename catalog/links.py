"""A link's secrets: the query parameters of a URL that carry one (`?token=…`, `?api_key=…`,
`?sig=…`, `X-Amz-Signature=…`), and those of its fragment (`#access_token=…`), found by their name,
and a password before its host
(`ftp://user:pass@host/…`); and the link with their values redacted; the same of the links a
text pastes (a description's `see https://…?api_key=…`).

One rule for both uses: a portal `url` holding one is refused at the config (harvester.config),
and a link a portal publishes holding one (a signed download, a landing page with a key) is kept
in the catalogue as the portal published it (a records pull may need it whole), warned of as it
is stored (`SecretInLink`), and exported with its value replaced by REDACTED: an export
republishes the catalogue, and a key must not be published again, whoever published it first."""
from __future__ import annotations

import re
from urllib.parse import unquote_plus

SECRET_WORDS = ("key", "token", "secret", "password", "passwd", "pwd", "signature", "sig", "credential")
# a query parameter that carries a secret, by its name less '$', '_' and '-' (`api_key`, `$$app_token`,
# `access_token`, `X-Amz-Signature`...)
SECRET_PARAMETER = re.compile(rf"(?:x?amz|api|app|access|auth|client|session)?(?:{'|'.join(SECRET_WORDS)})",
                              re.IGNORECASE)
# what a link less '$', '_' and '-' holds if it may hold a secret parameter (a name ending in a secret word,
# then its value), a name escaped, a password before its host ('@'), or a tab or line break a parser drops (one
# inside a name): for SQL to pass the others by without a call of `redacted` (8 us a link)
MAYBE_SECRET_SQL = rf"(?i)(?:{'|'.join(SECRET_WORDS)})=|%|@|[\t\r\n]"
REDACTED = "REDACTED"


def is_secret_parameter(name: str) -> bool:
    return SECRET_PARAMETER.fullmatch(re.sub(r"[$_-]", "", name)) is not None


def _parts_of(link: str) -> list[tuple[int, str, re.Pattern, re.Pattern]]:
    """(where it begins in `link`, its text, what separates its parameters, what ends a value) of `link`'s
    query and of its fragment, each that may hold a parameter, read as urlsplit reads them (the query from
    the first '?' before the first '#' up to it, the fragment after that '#') but in the text itself, never
    refused (urlsplit refuses some hosts whole: `[not-an-ip]`).
    A link with no '?' but an '&' before its '#' is read as a link a text pastes inside another's query,
    the text after its first '&' the rest of that query (`…/r?to=ftp://h/f.csv&api_key=k`: a text's second
    link, `ftp://h/f.csv&api_key=k`, until session 42 read as holding no parameter, the key exported as
    published). A fragment is read only where it holds an '=': most are anchors (`#section-2`, ArcGIS Hub's
    `#data`, `#/map/12/40.7/-74.0`), and a parameter in one is an OAuth implicit grant's
    (`#access_token=…&token_type=bearer`) or an app's route (`#/view?access_token=…`, `#/access_token=…`):
    the browser keeps it from the server, but a link exported with it publishes the key all the same
    (until session 44 exported as published)."""
    before, hashed, fragment = link.partition("#")
    parts = []
    mark = "?" if "?" in before else "&" if "&" in before else None   # (most links: neither)
    if mark is not None and (start := before.index(mark) + 1) < len(before):
        parts.append((start, before[start:], SEPARATORS, VALUE_END))
    if hashed and "=" in fragment:
        # (a hashbang's '!' marks an app's route, no part of a name: `#!access_token=…`, read as `#access_token=…`;
        # until session 44 read as the name `!access_token`, the key exported as published)
        bang = 1 if fragment.startswith("!") else 0
        parts.append((len(before) + 1 + bang, fragment[bang:], FRAGMENT_SEPARATORS, VALUE_END))
    return parts


# an '&' a page's author wrote as HTML writes it (`?a=1&amp;token=…`, copied from a page's source): the
# name then read is `amp;token`, and its value is the key all the same
HTML_AMPERSAND = "amp;"


def _name_of(piece: str) -> str:
    """The name of a query's `piece` (`name=value`), unescaped, less an HTML_AMPERSAND before it."""
    return unquote_plus(piece.partition("=")[0]).removeprefix(HTML_AMPERSAND)


# what separates a query's parameters where a secret may follow: '&', ';' (HTML 4's other separator, which
# some servers split on: `?a=1;token=…`) and a '?' inside a value (a link nested unescaped: `?next=/f?token=…`)
SEPARATORS = re.compile(r"[&;?]")
# and in a fragment a '/' too: an app's route before its parameters (`#/access_token=…`, as an OAuth server
# appends an implicit grant to a redirect `…/#/`; `#!/view/token=…`), and a '#': an implicit grant appended
# to a hash-routed app's redirect that holds its own (`…/#/callback#access_token=…`), and a nested link's
# fragment inside a fragment (`#next=x.org/a#token=…`); read as one name ('callback#access_token'), its key
# was exported as published
FRAGMENT_SEPARATORS = re.compile(r"[&;?/#]")
# what ends a secret's value, in a query as in a fragment: the next '&' (a ';', a '?' may be its own:
# _secret_values), read on through a '#' (_secret_values); and the '#' of an exported uid's number after a value
# already REDACTED (exported_uids, `…?token=REDACTED#2`, `…#access_token=REDACTED#2`), read again (a message
# naming it, a log line), kept. Any other '#' is the value's: in a fragment a browser keeps it (WHATWG's URL),
# and an app reading its parameters reads the value through it (`#access_token=ab#cd`: `ab#cd`; until session 44
# every '#' ended it, its tail published); after a query's secret it is a key's own '#' written unescaped
# (`?password=ab#cd`) or an anchor (`?token=ab#data`), which cannot be told apart, and an anchor hidden is a word
# lost from a link whose key is REDACTED, where a key's tail shown is a key half published (until session 45
# the query ended at the '#', `#cd` shown); so was a fragment key's own `#digits` tail (`#access_token=ab#12`)
VALUE_END = re.compile(r"&|(?<=REDACTED)#(?=[0-9]+\Z)")


def _secret_values(link: str) -> list[tuple[str, int, int]]:
    """(name, start, end) of each value in `link`'s query and fragment (_parts_of; `link` cleaned:
    _cleaned) that carries a secret: a parameter with a secret's name and an '=' (one with none carries
    no value: `?token` publishes nothing). A value runs to the next '&' (VALUE_END), a query's on through
    the '#' that ends its query (`?token=ab#cd`: VALUE_END says why): a ';' or a '?' begins a parameter's name
    (`?a=1;token=…`), but may be a secret's own character (`?password=pa;ss?word`: its tail was published)."""
    found = []
    for start, part, separators, value_end in _parts_of(link):
        at, rest = 0, link[start:]   # (the part, and for a query the fragment after it)
        for piece in separators.split(part):   # (each separator one character)
            if "=" in piece and is_secret_parameter(name := _name_of(piece)):
                value = at + piece.index("=") + 1
                end = value_end.search(rest, value)
                found.append((name, start + value, start + (len(rest) if end is None else end.start())))
            at += len(piece) + 1
    return found


def secret_parameters(link: str | None) -> list[str]:
    """The names of the parameters of `link`'s query and fragment that carry a secret, each once, in order."""
    if not isinstance(link, str):
        return []
    return list(dict.fromkeys(name for name, _, _ in _secret_values(_cleaned(link))))


# what secret_links names a password written before a link's host (`ftp://user:pass@host/f.csv`) by
PASSWORD_BEFORE_HOST = "a password before its host"


def _password_at(link: str) -> tuple[int, int] | None:
    """Where in `link` (cleaned: _cleaned) the password written before its host is
    (`user:PASSWORD@host`), or None: found in the text itself, as urlsplit would read its authority
    (the text after '//' up to the first '/', '?' or '#', its user info before the last '@'), never
    through urlsplit, which gives no positions and refuses some hosts (`[not-an-ip]`) whole."""
    if "@" not in link:   # (most links)
        return None
    slashes = link.find("//")
    if slashes < 0 or not re.fullmatch(r"(?:[A-Za-z][A-Za-z0-9+.-]*:)?", link[:slashes]):
        return None
    start = slashes + 2
    end = min([i for i in (link.find(c, start) for c in "/?#") if i >= 0], default=len(link))
    userinfo, at, _ = link[start:end].rpartition("@")
    colon = userinfo.find(":")
    if not at or colon < 0 or colon == len(userinfo) - 1:   # (no password, or an empty one)
        return None
    return start + colon + 1, start + len(userinfo)


def _cleaned(link: str) -> str:
    """`link` less the tabs and line breaks a URL parser drops from it (WHATWG's URL, urlsplit): what
    a browser or a client would ask, the text whose secrets are found and redacted."""
    return link.translate(_DROPPED) if "\t" in link or "\r" in link or "\n" in link else link


_DROPPED = {9: None, 10: None, 13: None}


def _may_hold_a_secret(link: str) -> bool:
    """False where `link` holds no secret, read as one link or as a text: it has no query ('?', or
    an '&' after which _parts_of reads one), no fragment holding an '=' or an escape, and no '@' (a
    password before a host). Most links: a harvest reads some 20 links and texts a dataset, nearly all
    of them passed by here. Nor one of those escaped (`%3F`, `%40`, `%26`, `%23`), or an escape escaped
    (`%25`): a link nested in another's as a form escapes it, whose escapes decoded may show one
    (_escaped_secrets)."""
    return ("?" in link or "@" in link or "&" in link or ("#" in link and ("=" in link or "%" in link))
            or ("%" in link and ESCAPED_QUERY.search(link) is not None))


ESCAPED_QUERY = re.compile(r"%(?:3[Ff]|40|26|23|25)")


def _secrets_of_one(link: str | None) -> list[str]:
    """What secrets `link`, read as one link, holds: its secret query parameters (secret_parameters),
    and a password before its host."""
    if not isinstance(link, str) or not _may_hold_a_secret(link):
        return []
    return ([PASSWORD_BEFORE_HOST] if _password_at(_cleaned(link)) else []) + secret_parameters(link)


def secrets_of(link: str | None) -> list[str]:
    """What secrets `link` (a link field: a landing page, a download URL) holds, each once, in order:
    its own (its secret query parameters, a password before its host), and those of each link a
    scheme after its first begins, as a text's (`?next=https://y.org/f.csv?token=…`: read as one
    link, the token was the text of `next`, exported as published)."""
    if not isinstance(link, str) or not _may_hold_a_secret(link):
        return []
    found = _links_at(link)
    # (a link field's usual text: itself alone, read once, not twice)
    in_text = [] if found == [(0, len(link))] else _secrets_of_links(link, found)
    escaped = [what for what, _, _ in _escaped_secrets(_cleaned(link), one_link=True)]
    return list(dict.fromkeys(_secrets_of_one(link) + in_text + escaped))


def redacted(link: str | None) -> str | None:
    """`link` with the secrets secrets_of finds REDACTED, the rest as written."""
    if not isinstance(link, str) or not secrets_of(link):
        return link
    link = _redacted_text(_redacted_one(_cleaned(link)))
    return _replaced(link, [(start, end) for _, start, end in _escaped_secrets(link, one_link=True)])


def _redacted_one(link: str) -> str:
    """`link`, read as one link, with its password before its host, and the value of each parameter of
    its query and fragment that carries a secret, replaced by REDACTED, the rest as written (its user, its
    other parameters, their order and escapes, its fragment's anchor)."""
    # (given cleaned: the positions below are the cleaned text's; its tabs and line breaks were no part of
    # the link)
    link = _cleaned(link)
    return _replaced(link, _secret_spans(link))


def _secret_spans(link: str) -> list[tuple[int, int]]:
    """Where in `link` (cleaned), read as one link, its secrets are: its password before its host, the
    value of each parameter of its query and fragment that carries one."""
    password = _password_at(link)
    return ([password] if password else []) + [(start, end) for _, start, end in _secret_values(link)]


def _replaced(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with each of `spans` (they may overlap, touch or repeat) replaced by REDACTED: one for spans
    that overlap or touch, or for a span beside a REDACTED a reading before wrote (redacted, redacted_text
    read a link again once redacted). Until session 44 either wrote "REDACTEDREDACTED"."""
    pieces, done = [], 0
    for start, end in sorted(spans):
        if pieces and start <= done:   # (overlapping the span before, or touching it)
            done = max(done, end)
            continue
        pieces.append(text[done:start])
        # (a REDACTED written before, just before or after the span: the span joins it)
        if not text.endswith(REDACTED, 0, start) and not text.startswith(REDACTED, end):
            pieces.append(REDACTED)
        done = end
    return "".join(pieces) + text[done:] if pieces else text


# an escape of a printable ASCII character (`%3D`, `%3F`, `%2F`, `%40`): a link a form nested in another's
# query escapes its own (`?next=https%3A%2F%2Fy.org%2Ff.csv%3Ftoken%3Dabc`), and a parameter's '=' may be
# escaped (`?token%3Dabc`); its key is published all the same
ESCAPE = re.compile(r"%(?:[2-6][0-9A-Fa-f]|7[0-9A-Ea-e])")


# how many times escapes are decoded: a link nested in another's query as a form is escaped once more at each
# nesting (`%3D`, then `%253D`, `%25253D`), and the real catalogues hold three (Philadelphia's metadata links:
# `?ref=ref%3Dview_280_search%253Dcanopy%252520…`, a search inside a view inside a link); one more than that.
# Bounded: each costs a pass over a text holding an escape and a reading of its links, and a text of
# `%25252525…` would take as many passes as it has characters; a key escaped five times is not read
DECODINGS = 4


def _decoded_once(text: str) -> tuple[str, list[int]] | None:
    """`text` with each ESCAPE decoded once, and where in `text` each of its characters begins (and, last,
    its end); None where it holds none (most texts). Escapes of other characters (a tab, a line break,
    UTF-8's bytes) are kept as written: none ends or begins a link's part."""
    if "%" not in text:
        return None
    pieces, starts, done = [], [], 0
    for escape in ESCAPE.finditer(text):
        pieces += [text[done:escape.start()], chr(int(escape.group()[1:], 16))]
        starts += [*range(done, escape.start()), escape.start()]
        done = escape.end()
    if not pieces:
        return None
    pieces.append(text[done:])
    starts += [*range(done, len(text)), len(text)]
    return "".join(pieces), starts


def _decodings(text: str) -> list[tuple[str, list[int]]]:
    """`text` decoded once, twice… (_decoded_once), up to DECODINGS times or until nothing is left to
    decode, each with where in `text` as written each of its characters begins (and, last, its end)."""
    found = []
    decoded = _decoded_once(text)
    while decoded is not None:
        plain, starts = decoded
        if found:   # (positions in the decoding before, taken back to `text`'s)
            starts = [found[-1][1][i] for i in starts]
        found.append((plain, starts))
        decoded = _decoded_once(plain) if len(found) < DECODINGS else None
    return found


def _escaped_secrets(text: str, one_link: bool) -> list[tuple[str, int, int]]:
    """(what, start, end) of each secret in `text` that its escapes decoded show (_decodings: a link
    nested in another's query as a form escapes it, once more at each nesting; a parameter's '=' escaped),
    read as a text's links, and (`one_link`) as one link: where it is in `text` as written."""
    found = []
    for plain, starts in _decodings(text):
        for start, end in ([(0, len(plain))] if one_link else []) + _links_at(plain):
            link = plain[start:end]
            password = _password_at(link)
            spans = ([(PASSWORD_BEFORE_HOST, *password)] if password else []) + _secret_values(link)
            found += [(what, starts[start + a], starts[start + b]) for what, a, b in spans]
    return found


# a link a text pastes: in a run of characters up to a space, a quote or an angle bracket (how text quotes
# a link: `<https://…>`, `"https://…"`, an HTML attribute), from its scheme (`https://…`, `ftp://…`), or,
# with none, from after the last bracket before its query or fragment (`data.city.gov/x.json?$$app_token=…`,
# `app.city.gov/#access_token=…`). Found by
# a scan of each run, never by a pattern that backtracks: a description holds runs of 100,000 characters
# (an image in base64), which a regular expression searching such a run from each of its characters
# read some 10^10 times
TEXT_RUN = re.compile(r"[^\s<>\"'`]+")
SCHEME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
BRACKETS = "()[]{}"
# what ends a sentence after a link, no part of it (as GitHub's autolinks read it); and the brackets
# that close one the link is in (`(see https://…)`, Markdown's `[x](https://…)`) when the link opens none
AFTER_A_LINK = ".,;:!?'"
CLOSING = {")": "(", "]": "[", "}": "{"}
OPENING = {opening: closing for closing, opening in CLOSING.items()}
# what a text less '$', '_' and '-' holds if a link in it may hold a secret: as MAYBE_SECRET_SQL, but a
# '%' only as an escape, and an '@' only after '//' (a text's percentages and email addresses are many; a
# link may name no scheme: `//user:password@host/…`)
MAYBE_SECRET_TEXT_SQL = rf"(?i)(?:{'|'.join(SECRET_WORDS)})=|%[0-9a-f]{{2}}|//[^\s/?#]*@"


def _link_starts(run: str) -> list[int]:
    """Where each link in `run` (a TEXT_RUN) begins: each scheme's first letter, and, before the first,
    after the last bracket before a query (a link with no scheme); each ends where the next begins. A
    run holds several: a Markdown link whose text is a URL (`[https://…?id=1](https://…?token=…)`),
    links joined by a comma; read as one from the first, a secret after it was taken for the first's
    query's text (exported as published), or one before a scheme was not read at all. (A link with no
    scheme begins at its query's '?' or its fragment's '#', whichever is first.)"""
    starts, done = [], 0
    slashes = run.find("://")
    while slashes >= 0:
        start = slashes
        while start > done and run[start - 1] in SCHEME_CHARACTERS:
            start -= 1
        while start < slashes and not run[start].isalpha():   # (a scheme begins with a letter)
            start += 1
        if start < slashes:
            starts.append(start)
        done = slashes + 3
        slashes = run.find("://", done)
    query = min((at for at in (run.find(c, 0, starts[0] if starts else len(run)) for c in "?#") if at >= 0),
                default=-1)
    if query >= 0:
        starts.insert(0, max(run.rfind(bracket, 0, query) for bracket in BRACKETS) + 1)
    return starts


def _link_alone(found: str) -> str:
    """`found` (from a link's start to its run's end) less the punctuation after it that is the text's,
    not the link's (counted once: a run ending in 10,000 brackets is read twice, not 10,000 times)."""
    closed = {c: found.count(c) for c in CLOSING}
    opened = {c: found.count(o) for c, o in CLOSING.items()}
    end = len(found)
    while end:
        last = found[end - 1]
        if last in CLOSING and closed[last] > opened[last]:
            closed[last] -= 1
        elif last in OPENING:   # (what opens the next link of its run: Markdown's `[https://…](https://…)`)
            opened[OPENING[last]] -= 1
        elif last not in AFTER_A_LINK:
            break
        end -= 1
    return found[:end]


def _may_paste_a_link(text: str) -> bool:
    """Whether `text` may paste a link holding a secret: a query ('?'), an '@' after a '//' (a password before a
    host: _password_at reads one only after its '//'), or a fragment holding a parameter ('#' and '='). Most texts
    hold none; an email address, every contact_email (read since f45, session 45), holds no '//' (a plain '@' sent
    each through the reading of its links: 25 µs an address, 2.5 s of a harvest's mapping at 100,000 datasets)."""
    return "?" in text or ("@" in text and "//" in text) or ("#" in text and "=" in text)


def _links_at(text: str) -> list[tuple[int, int]]:
    """Where in `text` each link it pastes that may hold a secret (a query, an '@', a fragment's '=') is."""
    if not isinstance(text, str) or not _may_paste_a_link(text):   # (most texts)
        return []
    found = []
    for run in TEXT_RUN.finditer(text):
        if not _may_paste_a_link(run.group()):
            continue
        starts = _link_starts(run.group())
        for start, end in zip(starts, starts[1:] + [len(run.group())]):
            if link := _link_alone(run.group()[start:end]):
                found.append((run.start() + start, run.start() + start + len(link)))
    return found


def links_in(text: str | None) -> list[str]:
    """The links `text` pastes that may hold a secret (a query, an '@', a fragment's '=')."""
    return [text[start:end] for start, end in _links_at(text)]


def secrets_in_text(text: str | None) -> list[str]:
    """The secrets the links of `text` hold, each read as one link (_secrets_of_one), each once, in order;
    then those its escapes decoded show (_decodings: a link nested in another's query as a form escapes it)."""
    if not isinstance(text, str) or not (_may_paste_a_link(text) or "%" in text):   # (most texts)
        return []
    escaped = [what for what, _, _ in _escaped_secrets(text, one_link=False)]   # (none without a '%')
    if not _may_paste_a_link(text):   # (most texts: as _links_at)
        return list(dict.fromkeys(escaped))
    return list(dict.fromkeys(_secrets_of_links(text, _links_at(text)) + escaped))


def _secrets_of_links(text: str, found: list[tuple[int, int]]) -> list[str]:
    """secrets_in_text of `text` whose links are `found` (_links_at)."""
    return list(dict.fromkeys(secret for start, end in found for secret in _secrets_of_one(text[start:end])))


def redacted_text(text: str | None) -> str | None:
    """`text` with each link it pastes redacted (_redacted_one), the rest as written; then the secrets
    its escapes decoded show (_decodings), where they are written."""
    if not isinstance(text, str):
        return text
    text = _redacted_text(text)
    return _replaced(text, [(start, end) for _, start, end in _escaped_secrets(text, one_link=False)])


def _redacted_text(text: str) -> str:
    pieces, done = [], 0
    for start, end in _links_at(text):
        link = text[start:end]
        if _secrets_of_one(link):
            pieces += [text[done:start], _redacted_one(_cleaned(link))]
            done = end
    return "".join(pieces) + text[done:] if pieces else text


# the links of a record (catalog.record) an export publishes, and of each of its distributions: its
# identifier too, often a URL (a data.json's `identifier`: a landing page, an API's address)
RECORD_LINKS = ("identifier", "landing_page", "license")
DISTRIBUTION_LINKS = ("download_url", "access_url")
# the texts of a record, of each of its distributions and of each of its columns, whose links an export publishes:
# its title too, and each of its keywords and themes (lists of texts), its publisher and contact (a contact email
# is any text with an '@': `https://user:pw@host/?token=…` passes), its spatial text, a distribution's title,
# format and media type, which an export publishes and the commands print as they do a description (a title or a
# keyword pasting `https://…?api_key=…` was exported and printed as published until session 45, the others until
# f45). Not read: a record's periodicity and access level (an ISO 8601 duration, one of three words: anything
# else is left out, catalog.record), its asset type (civicat's words, a CKAN type made [a-z0-9_]); a column's
# name and field name (the names of the records' columns in their Parquet files and profiles, which keep them as
# the portal published them: one redacted here would name no column there)
RECORD_TEXTS = ("title", "description", "publisher", "contact_name", "contact_email", "spatial")
RECORD_TEXT_LISTS = ("keywords", "themes")
DISTRIBUTION_TEXTS = ("title", "format", "media_type")
COLUMN_TEXTS = ("description",)


def secret_links(record: dict) -> list[tuple[str, list[str]]]:
    """(field, the secrets its link holds) for each link of `record` that holds one, and each text
    whose links do (`title`, `description`, `publisher`, a keyword, a theme, a distribution's `title`), its
    keywords', themes', distributions' and columns' named by position (`keywords[1]`, `themes[0]`,
    `distributions[2].download_url`, `distributions[2].title`, `columns[0].description`)."""
    # (a field named only when it holds a secret: a harvest reads ~20 a dataset, 15 of them its columns')
    found = [(name, secrets) for name in RECORD_LINKS if (secrets := secrets_of(record.get(name)))]
    found += [(name, secrets) for name in RECORD_TEXTS if (secrets := secrets_in_text(record.get(name)))]
    for name in RECORD_TEXT_LISTS:
        texts = record.get(name)
        found += [(f"{name}[{position}]", secrets) for position, text in enumerate(texts)
                  if (secrets := secrets_in_text(text))] if isinstance(texts, list) else []
    for position, distribution in enumerate(record.get("distributions") or []):
        if isinstance(distribution, dict):
            found += [(f"distributions[{position}].{name}", secrets) for name in DISTRIBUTION_LINKS
                      if (secrets := secrets_of(distribution.get(name)))]
            found += [(f"distributions[{position}].{name}", secrets) for name in DISTRIBUTION_TEXTS
                      if (secrets := secrets_in_text(distribution.get(name)))]
    for position, column in enumerate(record.get("columns") or []):
        if isinstance(column, dict):
            for name in COLUMN_TEXTS:
                if secrets := secrets_in_text(column.get(name)):
                    found.append((f"columns[{position}].{name}", secrets))
    return found


def maybe_secret_sql(column: str, text: bool = False, texts: bool = False) -> str:
    """The SQL of whether `column` (a link; `text`: a text, its links; `texts`: a list of texts, any of
    theirs) may hold a secret: False where redacted (redacted_text) would change nothing, so that most
    values are never passed to Python."""
    if texts:   # (its texts joined by a space, which no link crosses)
        return _maybe_secret_sql(f"array_to_string(\"{column}\", ' ')", text=True)
    return _maybe_secret_sql(f'"{column}"', text)


def _maybe_secret_sql(value: str, text: bool) -> str:
    """maybe_secret_sql of the SQL `value`."""
    stripped = f"replace(replace(replace({value}, '$', ''), '_', ''), '-', '')"
    # (a secret's value follows an '=', a password comes before an '@': a value holding neither, most
    # descriptions, is passed by before it is copied three times and searched; 100,000 descriptions took
    # 2.2 s to search at a load of 26)
    # (or either escaped, `%3D`, `%40`: a link nested in another's query as a form escapes it, `token%3Dabc`;
    # or escaped twice or more, `%253D`: an escape escaped)
    held = " OR ".join(f"contains({value}, '{c}')" for c in ("=", "@", "%3D", "%3d", "%40", "%25"))
    return f"(({held}) AND regexp_matches({stripped}, '{MAYBE_SECRET_TEXT_SQL if text else MAYBE_SECRET_SQL}'))"


def is_text(field_name: str) -> bool:
    """Whether secret_links' `field_name` is a text (its links hold the secret), not a link."""
    return field_name.rpartition(".")[2].partition("[")[0] in (RECORD_TEXTS + RECORD_TEXT_LISTS + DISTRIBUTION_TEXTS
                                                                 + COLUMN_TEXTS)


def exported_uids(con) -> dict[str, str]:
    """uid -> the uid an export gives (and the commands print: harvester.cli.ShownUids), for each dataset
    of `con`'s catalogue (a DuckDB connection) whose source id holds a secret (a data.json's
    `identifier` is a URL, and its dataset's source id: `?token=…` in it would be published in every
    uid, source id and records folder of an export): `portal_id:` and its source id redacted; two
    that are one once redacted, or one that is another dataset's uid, numbered as data.json numbers
    a uid taken (`#2`): an exported uid still names one dataset. Numbered in the order they were
    first seen (then of their uids), so that each keeps its number night to night: numbered in the
    order of their uids, a dataset new tonight whose key sorts first took `#2`'s uid from another,
    and a front end keyed on uids saw one dataset become another. (Not numbered by a digest of the
    source id: that would publish a test of a guessed key.)"""
    found = con.execute(f"SELECT uid, portal_id, source_id FROM datasets WHERE {maybe_secret_sql('source_id')} "
                        "ORDER BY first_seen, uid").fetchall()
    redacting = [(uid, f"{portal_id}:{redacted(source_id)}") for uid, portal_id, source_id in found
                 if redacted(source_id) != source_id]
    if not redacting:
        return {}
    bases = sorted({base for _, base in redacting})
    # (the uids an exported one must not be: those kept as they are, equal to a base or numbered from one)
    taken = {uid for (uid,) in con.execute("SELECT uid FROM datasets WHERE regexp_replace(uid, '#[0-9]+$', '') "
                                           "IN (SELECT unnest($bases))", {"bases": bases}).fetchall()}
    taken -= {uid for uid, _ in redacting}
    exported = {}
    for uid, base in redacting:
        candidate, number = base, 2
        while candidate in taken:
            candidate, number = f"{base}#{number}", number + 1
        taken.add(candidate)
        exported[uid] = candidate
    return exported


class WordsReplaced:
    """Any of `words` (each -> what a text gives it as) in a text, in one pass, the longest where one begins
    another: a trie (a dict a character, "" where a word ends) walked from each place one may begin, which a
    flat pattern of the words' beginnings (their text up to their first ':', a uid's portal and ':') finds.
    Until r44 one regular expression nested a group a fork of the trie: past some 330 forks on one path (a
    portal's identifiers each the one before and more, `?token=a`, `?token=a&b=1`, ...) building it, and
    re compiling it, raised RecursionError, and every command printing a message failed."""

    def __init__(self, words: dict[str, str]):
        self.words, self.trie = words, {}
        for word in words:
            node = self.trie
            for character in word:
                node = node.setdefault(character, {})
            node[""] = {}   # (a word ends here)
        begins = {word[:word.find(":") + 1] or word[:1] for word in words if word}
        self.begins = re.compile("(?=" + "|".join(map(re.escape, sorted(begins))) + ")") if begins else None

    def replaced(self, text: str) -> str:
        """`text` with each word found given as `words` gives it."""
        if self.begins is None:
            return text
        pieces, done = [], 0
        for begin in self.begins.finditer(text):
            at = begin.start()
            if at < done:   # (inside a word found before)
                continue
            node, end = self.trie, None
            for position in range(at, len(text)):
                node = node.get(text[position])
                if node is None:
                    break
                if "" in node:
                    end = position + 1
            if end is not None:
                pieces += [text[done:at], self.words[text[at:end]]]
                done = end
        return "".join(pieces) + text[done:] if pieces else text


def named_as_exported(text: str | None, words: WordsReplaced | None) -> str | None:
    """A text that may name datasets by their uids (a message, an overlap explanation: "but p:…?token=… is a
    boundary file"), each named as exported_uids gives it (`words`: WordsReplaced of them), any other link
    holding a secret redacted (redacted_text)."""
    # (no secret: most texts, passed by at once; a '%' may escape a secret's '=' or '@')
    if not text or ("=" not in text and "@" not in text and "%" not in text):
        return text
    return redacted_text(words.replaced(text) if words is not None else text)
