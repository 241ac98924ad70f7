"""One city's dataset listed by two of its portals (its data.json and its Socrata site): copies, the same
dataset. A light module (no numpy, no pandas): `records --overlap` and `overlap --group N` fold a saved group's
copies without loading the overlap detector."""
from __future__ import annotations

import re

# an id a portal mints, the same wherever the dataset is listed: a Socrata 4x4 (one id across a federation of
# domains and in the site's data.json), a UUID, an ArcGIS item id; not a name a portal makes of a title ('budget')
MINTED_ID = re.compile(r"[a-z0-9]{4}-[a-z0-9]{4}|[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}|[0-9a-f]{32}(?:_\d+)?",
                       re.IGNORECASE)


def copies_of(rows: dict[str, list]) -> dict[str, list[str]]:
    """One city's datasets listed by two of its portals (Chicago's 2013 data.json and its Socrata site both list
    'Warming Centers', h243-v2q5): the same dataset, no comparison across cities. Same city and same source id, the
    id one a portal mints or the titles alike. -> the copy that says most of it (the most columns, then the latest
    modified, then the first uid) -> the others."""
    sets: dict[tuple[str, str], list[int]] = {}
    for i, (city, source_id) in enumerate(zip(rows["city"], rows["source_id"])):
        sets.setdefault(((city or "").lower(), source_id), []).append(i)
    copies = {}
    for (_, source_id), members in sets.items():
        if len(members) < 2:
            continue
        members.sort(key=lambda i: (-(rows["column_count"][i] or 0),
                                    -(rows["modified"][i].timestamp() if rows["modified"][i] else float("-inf")),
                                    rows["uid"][i]))
        first = members[0]
        same = [i for i in members[1:] if MINTED_ID.fullmatch(source_id or "")
                or _plain(rows["title"][i]) == _plain(rows["title"][first])]
        if same:
            copies[rows["uid"][first]] = [rows["uid"][i] for i in same]
    return copies


def _plain(title: str | None) -> str:
    return " ".join(re.findall(r"\w+", (title or "").lower()))
