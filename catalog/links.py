"""A link's secrets: the query parameters of a URL that carry one (`?token=…`, `?api_key=…`,
`?sig=…`, `X-Amz-Signature=…`), found by their name, and a password before its host
(`ftp://user:pass@host/…`); and the link with their values redacted; the same of the links a
text pastes (a description's `see https://…?api_key=…`).

One rule for both uses: a portal `url` holding one is refused at the config (harvester.config),
and a link a portal publishes holding one (a signed download, a landing page with a key) is kept
in the catalogue as the portal published it (a records pull may need it whole), warned of as it
is stored (`SecretInLink`), and exported with its value replaced by REDACTED: an export
republishes the catalogue, and a key must not be published again, whoever published it first."""
from __future__ import annotations

import re
from urllib.parse import unquote_plus, urlsplit

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


def _query_of(link: str) -> str | None:
    """The query of `link` (None when it has none, or is no URL that parses). A link with no '?' but an
    '&' is read as a link a text pastes inside another's query, the text after its first '&' the rest of
    that query (`…/r?to=ftp://h/f.csv&api_key=k`: a text's second link, `ftp://h/f.csv&api_key=k`, until
    session 42 read as holding no parameter, the key exported as published)."""
    if "?" not in link:   # (most links: nothing to parse)
        if "&" not in link:
            return None
        return link.partition("&")[2].partition("#")[0] or None
    try:
        return urlsplit(link).query or None
    except ValueError:
        return None


# an '&' a page's author wrote as HTML writes it (`?a=1&amp;token=…`, copied from a page's source): the
# name then read is `amp;token`, and its value is the key all the same
HTML_AMPERSAND = "amp;"


def _name_of(piece: str) -> str:
    """The name of a query's `piece` (`name=value`), unescaped, less an HTML_AMPERSAND before it."""
    return unquote_plus(piece.partition("=")[0]).removeprefix(HTML_AMPERSAND)


# what separates a query's parameters where a secret may follow: '&', ';' (HTML 4's other separator, which
# some servers split on: `?a=1;token=…`) and a '?' inside a value (a link nested unescaped: `?next=/f?token=…`)
SEPARATORS = re.compile(r"[&;?]")


def _secret_values(link: str) -> list[tuple[str, int, int]]:
    """(name, start, end) of each value in `link`'s query (cleaned: _cleaned) that carries a secret: a
    parameter with a secret's name and an '=' (one with none carries no value: `?token` publishes nothing)."""
    query = _query_of(link)
    if query is None:
        return []
    # (urlsplit's query is the text from the first '?' to the '#'; with none, _query_of's from the first '&')
    at = link.index("?" if "?" in link else "&") + 1
    found = []
    for piece in SEPARATORS.split(query):   # (each separator one character)
        if "=" in piece and is_secret_parameter(name := _name_of(piece)):
            found.append((name, at + piece.index("=") + 1, at + len(piece)))
        at += len(piece) + 1
    return found


def secret_parameters(link: str | None) -> list[str]:
    """The names of the parameters of `link`'s query that carry a secret, each once, in order."""
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
    return link.translate(_DROPPED) if any(c in link for c in "\t\r\n") else link


_DROPPED = {9: None, 10: None, 13: None}


def _secrets_of_one(link: str | None) -> list[str]:
    """What secrets `link`, read as one link, holds: its secret query parameters (secret_parameters),
    and a password before its host."""
    if not isinstance(link, str):
        return []
    return ([PASSWORD_BEFORE_HOST] if _password_at(_cleaned(link)) else []) + secret_parameters(link)


def secrets_of(link: str | None) -> list[str]:
    """What secrets `link` (a link field: a landing page, a download URL) holds, each once, in order:
    its own (its secret query parameters, a password before its host), and those of each link a
    scheme after its first begins, as a text's (`?next=https://y.org/f.csv?token=…`: read as one
    link, the token was the text of `next`, exported as published)."""
    if not isinstance(link, str):
        return []
    escaped = [what for what, _, _ in _escaped_secrets(_cleaned(link), one_link=True)]
    return list(dict.fromkeys(_secrets_of_one(link) + _secrets_in_text(link) + escaped))


def redacted(link: str | None) -> str | None:
    """`link` with the secrets secrets_of finds REDACTED, the rest as written."""
    if not isinstance(link, str) or not secrets_of(link):
        return link
    link = _redacted_text(_redacted_one(_cleaned(link)))
    return _replaced(link, [(start, end) for _, start, end in _escaped_secrets(link, one_link=True)])


def _redacted_one(link: str) -> str:
    """`link`, read as one link, with its password before its host, and the value of each query
    parameter that carries a secret, replaced by REDACTED, the rest as written (its user, its other
    parameters, their order and escapes, its fragment)."""
    # (given cleaned: urlsplit reads its query less the tabs and line breaks, and the positions below
    # are the cleaned text's; they were no part of the link)
    link = _cleaned(link)
    return _replaced(link, _secret_spans(link))


def _secret_spans(link: str) -> list[tuple[int, int]]:
    """Where in `link` (cleaned), read as one link, its secrets are: its password before its host, the
    value of each query parameter that carries one."""
    password = _password_at(link)
    return ([password] if password else []) + [(start, end) for _, start, end in _secret_values(link)]


def _replaced(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with each of `spans` (they may overlap or repeat) replaced by REDACTED."""
    pieces, done = [], 0
    for start, end in sorted(spans):
        if end <= done:
            continue
        pieces += [text[done:max(start, done)], REDACTED]
        done = end
    return "".join(pieces) + text[done:] if pieces else text


# an escape of a printable ASCII character (`%3D`, `%3F`, `%2F`, `%40`): a link a form nested in another's
# query escapes its own (`?next=https%3A%2F%2Fy.org%2Ff.csv%3Ftoken%3Dabc`), and a parameter's '=' may be
# escaped (`?token%3Dabc`); its key is published all the same
ESCAPE = re.compile(r"%(?:[2-6][0-9A-Fa-f]|7[0-9A-Ea-e])")


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


def _escaped_secrets(text: str, one_link: bool) -> list[tuple[str, int, int]]:
    """(what, start, end) of each secret in `text` that its escapes decoded once show (a link nested in
    another's query as a form escapes it, a parameter's '=' escaped), read as a text's links, and
    (`one_link`) as one link: where it is in `text` as written."""
    decoded = _decoded_once(text)
    if decoded is None:
        return []
    plain, starts = decoded
    found = []
    for start, end in ([(0, len(plain))] if one_link else []) + _links_at(plain):
        link = plain[start:end]
        password = _password_at(link)
        spans = ([(PASSWORD_BEFORE_HOST, *password)] if password else []) + _secret_values(link)
        found += [(what, starts[start + a], starts[start + b]) for what, a, b in spans]
    return found


# a link a text pastes: in a run of characters up to a space, a quote or an angle bracket (how text quotes
# a link: `<https://…>`, `"https://…"`, an HTML attribute), from its scheme (`https://…`, `ftp://…`), or,
# with none, from after the last bracket before its query (`data.city.gov/x.json?$$app_token=…`). Found by
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
    query's text (exported as published), or one before a scheme was not read at all."""
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
    query = run.find("?", 0, starts[0] if starts else len(run))
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


def _links_at(text: str) -> list[tuple[int, int]]:
    """Where in `text` each link it pastes that may hold a secret (a query, or an '@') is."""
    if not isinstance(text, str) or ("?" not in text and "@" not in text):   # (most texts)
        return []
    found = []
    for run in TEXT_RUN.finditer(text):
        if "?" not in run.group() and "@" not in run.group():
            continue
        starts = _link_starts(run.group())
        for start, end in zip(starts, starts[1:] + [len(run.group())]):
            if link := _link_alone(run.group()[start:end]):
                found.append((run.start() + start, run.start() + start + len(link)))
    return found


def links_in(text: str | None) -> list[str]:
    """The links `text` pastes that may hold a secret (a query, or an '@')."""
    return [text[start:end] for start, end in _links_at(text)]


def secrets_in_text(text: str | None) -> list[str]:
    """The secrets the links of `text` hold, each read as one link (_secrets_of_one), each once, in order;
    then those its escapes decoded once show (a link nested in another's query as a form escapes it)."""
    if not isinstance(text, str):
        return []
    return list(dict.fromkeys(_secrets_in_text(text) + [what for what, _, _ in _escaped_secrets(text, one_link=False)]))


def _secrets_in_text(text: str | None) -> list[str]:
    return [secret for link in links_in(text) for secret in _secrets_of_one(link)]


def redacted_text(text: str | None) -> str | None:
    """`text` with each link it pastes redacted (_redacted_one), the rest as written; then the secrets
    its escapes decoded once show, where they are written."""
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
# the texts of a record, and of each of its columns, whose links an export publishes
RECORD_TEXTS = ("description",)
COLUMN_TEXTS = ("description",)


def secret_links(record: dict) -> list[tuple[str, list[str]]]:
    """(field, the secrets its link holds) for each link of `record` that holds one, and each text
    whose links do (`description`), its distributions' and columns' named by position
    (`distributions[2].download_url`, `columns[0].description`)."""
    found = [(name, secrets_of(record.get(name))) for name in RECORD_LINKS]
    found += [(name, secrets_in_text(record.get(name))) for name in RECORD_TEXTS]
    for position, distribution in enumerate(record.get("distributions") or []):
        if isinstance(distribution, dict):
            found += [(f"distributions[{position}].{name}", secrets_of(distribution.get(name)))
                      for name in DISTRIBUTION_LINKS]
    for position, column in enumerate(record.get("columns") or []):
        if isinstance(column, dict):
            found += [(f"columns[{position}].{name}", secrets_in_text(column.get(name))) for name in COLUMN_TEXTS]
    return [(name, secrets) for name, secrets in found if secrets]


def maybe_secret_sql(column: str, text: bool = False) -> str:
    """The SQL of whether `column` (a link; `text`: a text, its links) may hold a secret: False where
    redacted (redacted_text) would change nothing, so that most values are never passed to Python."""
    stripped = f"replace(replace(replace(\"{column}\", '$', ''), '_', ''), '-', '')"
    # (a secret's value follows an '=', a password comes before an '@': a value holding neither, most
    # descriptions, is passed by before it is copied three times and searched; 100,000 descriptions took
    # 2.2 s to search at a load of 26)
    # (or either escaped, `%3D`, `%40`: a link nested in another's query as a form escapes it, `token%3Dabc`)
    held = " OR ".join(f"contains(\"{column}\", '{c}')" for c in ("=", "@", "%3D", "%3d", "%40"))
    return f"(({held}) AND regexp_matches({stripped}, '{MAYBE_SECRET_TEXT_SQL if text else MAYBE_SECRET_SQL}'))"


def is_text(field_name: str) -> bool:
    """Whether secret_links' `field_name` is a text (its links hold the secret), not a link."""
    return field_name.rpartition(".")[2] in RECORD_TEXTS + COLUMN_TEXTS


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
