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
    """The query of `link` (None when it has none, or is no URL that parses)."""
    if "?" not in link:   # (most links: nothing to parse)
        return None
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


def secret_parameters(link: str | None) -> list[str]:
    """The names of the parameters of `link`'s query that carry a secret, each once, in order."""
    query = _query_of(link) if isinstance(link, str) else None
    if query is None:
        return []
    return list(dict.fromkeys(name for name in map(_name_of, query.split("&")) if is_secret_parameter(name)))


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


def secrets_of(link: str | None) -> list[str]:
    """What secrets `link` holds: its secret query parameters (secret_parameters), and a password
    before its host."""
    if not isinstance(link, str):
        return []
    return ([PASSWORD_BEFORE_HOST] if _password_at(_cleaned(link)) else []) + secret_parameters(link)


def redacted(link: str | None) -> str | None:
    """`link` with its password before its host, and the value of each query parameter that carries
    a secret, replaced by REDACTED, the rest as written (its user, its other parameters, their order
    and escapes, its fragment)."""
    if not isinstance(link, str) or not secrets_of(link):
        return link
    # (given cleaned: urlsplit reads its query less the tabs and line breaks, and the positions below
    # are the cleaned text's; they were no part of the link)
    link = _cleaned(link)
    password = _password_at(link)
    if password:
        link = link[:password[0]] + REDACTED + link[password[1]:]
    query = _query_of(link)
    if query is None or not secret_parameters(link):
        return link
    pieces = [f"{piece.partition('=')[0]}={REDACTED}" if is_secret_parameter(_name_of(piece)) else piece
              for piece in query.split("&")]
    start = link.index("?") + 1   # (urlsplit's query is the text from the first '?' to the '#')
    return link[:start] + "&".join(pieces) + link[start + len(query):]


# a link a text pastes: one with a scheme (`https://…`, `ftp://…`), or a run of characters holding a
# query (`data.city.gov/x.json?$$app_token=…`), each up to a space, a quote or an angle bracket (how
# text quotes a link: `<https://…>`, `"https://…"`, an HTML attribute). Each begins where such a run
# begins, and a scheme where no letter, digit, '+', '.' or '-' is before it (the lookbehinds): a match
# is then tried once a run, not from each of its characters to its end, which took a description's
# run of 250,000 characters (a field list, a pasted image) beside an '@' or a '?' ten minutes
TEXT_LINK = re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*://[^\s<>\"'`]+"
                       r"|(?<![^\s<>\"'`()\[\]{}])[^\s<>\"'`()\[\]{}]+\?[^\s<>\"'`]+")
# what ends a sentence after a link, no part of it (as GitHub's autolinks read it); and the brackets
# that close one the link is in (`(see https://…)`, Markdown's `[x](https://…)`) when the link opens none
AFTER_A_LINK = ".,;:!?'"
CLOSING = {")": "(", "]": "[", "}": "{"}
# what a text less '$', '_' and '-' holds if a link in it may hold a secret: as MAYBE_SECRET_SQL, but a
# '%' only as an escape, and an '@' only after '//' (a text's percentages and email addresses are many; a
# link may name no scheme: `//user:password@host/…`)
MAYBE_SECRET_TEXT_SQL = rf"(?i)(?:{'|'.join(SECRET_WORDS)})=|%[0-9a-f]{{2}}|//[^\s/?#]*@"


def _link_alone(found: str) -> str:
    """`found` (a TEXT_LINK) less the punctuation after it that is the text's, not the link's. (Each
    bracket counted once, not the link cut and counted again a character at a time: a link followed
    by 200,000 of them took minutes.)"""
    unopened = {close: found.count(close) - found.count(opening) for close, opening in CLOSING.items()}
    end = len(found)
    while end:
        last = found[end - 1]
        if last in CLOSING and unopened[last] > 0:
            unopened[last] -= 1
        elif last not in AFTER_A_LINK:
            break
        end -= 1
    return found[:end]


def links_in(text: str | None) -> list[str]:
    """The links `text` pastes that may hold a secret (a query, or an '@')."""
    if not isinstance(text, str) or ("?" not in text and "@" not in text):   # (most texts)
        return []
    return [link for link in map(_link_alone, TEXT_LINK.findall(text)) if link]


def secrets_in_text(text: str | None) -> list[str]:
    """The secrets the links of `text` hold (secrets_of), each once, in order."""
    return list(dict.fromkeys(secret for link in links_in(text) for secret in secrets_of(link)))


def redacted_text(text: str | None) -> str | None:
    """`text` with each link it pastes redacted (redacted), the rest as written."""
    if not secrets_in_text(text):
        return text

    def redact(match: re.Match) -> str:
        link = _link_alone(match.group())
        return redacted(link) + match.group()[len(link):]

    return TEXT_LINK.sub(redact, text)


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


def is_text(field_name: str) -> bool:
    """Whether secret_links' `field_name` is a text (its links hold the secret), not a link."""
    return field_name.rpartition(".")[2] in RECORD_TEXTS + COLUMN_TEXTS
