"""The one small interface every portal kind implements (gather / fetch / map).

The pipeline knows nothing of any portal: it iterates `listing()`, asks `fetch_details()`
for what the listing entry lacks, and `map()`s the pair to a normalised record.
"""
from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from typing import ClassVar

from catalog.record import Notes
from harvester.config import KEY_HEADERS, PortalConfig, key_variables
from harvester.http import HttpClient
from harvester.http import dropped
from harvester.paging import Listing
from harvester.records import MAX_COLUMNS, NotPullable


# a dataset's distributions (CKAN resources) and keywords kept at most: the rest of such a list is
# cut as its page is read (harvester.http.capped_json), with a warning (one dataset of 10^6
# distributions failed its whole portal: its raw entry did not fit DuckDB's memory)
MAX_ITEMS = 10_000
PORTALS_NAMED = 10   # in the warning of a key's variable not set


class PortalAdapter(ABC):
    kind: ClassVar[str]
    # Part of every raw hash: bump it when the mapping changes, so stored records are re-mapped.
    mapping_version: ClassVar[int] = 1

    # what requests without the portal's key are (its `app_token_env` unset), in say_once_a_run's warning
    without_key: ClassVar[str] = "a key (the portal answers them as it answers anyone: its public data alone)"

    def __init__(self, portal: PortalConfig, http: HttpClient):
        self.portal = portal
        self.http = http
        header = KEY_HEADERS.get(portal.kind)
        if header and portal.app_token_env and http is not None:   # (a mapping-only adapter makes no requests)
            # (a key never holds a space: a line break a secrets file left is no part of it, and requests
            # would refuse the header, quoting it)
            key = os.environ.get(portal.app_token_env, "").strip()
            if key:   # (unset: said once for the run's portals, say_once_a_run)
                name, form = header
                http.send_key(portal.url, {name: form.format(key)})
        if header and portal.keys and http is not None:
            name, form = header
            for host, variable in portal.keys:   # (another host's key: https, or http to this machine alone)
                if key := os.environ.get(variable, "").strip():
                    for scheme in ("https", "http"):
                        http.send_key(f"{scheme}://{host}", {name: form.format(key)})

    @classmethod
    def settings_kept(cls, con, portal_ids: list[str]) -> dict[str, set[tuple[str, str, str]]]:
        """Portal id -> the settings (city, url, domain) the catalogue's datasets of `portal_ids`
        of this kind were listed with, read from what the kind keeps of them, for a kind whose
        listing keeps no pages (listing_pages' keys say it of the others: harvester.mapping.
        listed_settings). Nothing, by default."""
        return {}

    @classmethod
    def say_once_a_run(cls, portals: list[PortalConfig]) -> None:
        """What to say once of a run's `portals` of this kind, not once a portal (a setting they
        share that is missing): one warning for each environment variable an `app_token_env` of
        `portals` names that is not set, naming the portals that use it (it was said once a portal:
        five times in the default config, all SOCRATA_APP_TOKEN)."""
        unset: dict[str, list[str]] = {}
        for portal in portals:
            for variable in key_variables(portal):
                if not os.environ.get(variable):
                    unset.setdefault(variable, []).append(portal.id)
        for variable, ids in unset.items():
            named = ", ".join(ids[:PORTALS_NAMED]) + (f" and {len(ids) - PORTALS_NAMED} more"
                                                      if len(ids) > PORTALS_NAMED else "")
            logging.getLogger(f"civicat.{cls.kind}").warning(
                "environment variable %s is not set: %s (%s); %s requests go without %s", variable,
                "1 portal uses it" if len(ids) == 1 else f"{len(ids)} portals use it", named,
                "its" if len(ids) == 1 else "their", cls.without_key)

    @abstractmethod
    def listing(self) -> Listing:
        """Gather: the portal's catalogue entries, paged, de-duplicated."""

    @abstractmethod
    def source_id(self, entry) -> str | None:
        """The portal's own stable id of an entry (None when it has none)."""

    # The keys of fetch_details' answer that its lookup (a request) gives, as against those
    # the entry gives itself (entry_details). A stored dataset whose lookup fails one night
    # keeps these from its stored details and takes the rest from the entry anew
    # (details_without_lookup). Empty: the kind does not tell them apart, and such a dataset
    # keeps its stored version whole.
    looked_up: ClassVar[tuple[str, ...]] = ()
    # Days a stored dataset's details lookup may go unasked while its entry is listed as stored
    # (the entry and its stored details hash to its stored version): each dataset's lookup is
    # asked on a day of its own in every such period (harvester.mapping.lookup_due). 0: asked
    # every night.
    lookup_kept_days: ClassVar[int] = 0

    def fetch_details(self, entry: dict) -> dict | None:
        """Fetch: what the entry lacks (e.g. columns), or None. May raise HttpError: the
        pipeline records it against this dataset and keeps the entry as listed."""
        return None

    def entry_details(self, entry: dict) -> dict | None:
        """The part of fetch_details' answer that needs no request (see `looked_up`)."""
        return None

    def needs_lookup(self, entry: dict) -> bool:
        """Whether fetch_details makes a request for this entry (its kept lookup: see
        `lookup_kept_days`)."""
        return bool(self.looked_up)

    def details_without_lookup(self, entry: dict, stored: dict | None) -> dict | None:
        """The details of an entry whose lookup failed: entry_details, with the `looked_up`
        parts of `stored` (the details of the dataset's stored version, None when it has
        none) kept."""
        kept = {key: stored[key] for key in self.looked_up if key in (stored or {})}
        return {**(self.entry_details(entry) or {}), **kept} or None

    @abstractmethod
    def map(self, entry: dict, details: dict | None, notes: Notes) -> dict:
        """Map: the normalised record (catalog.record.blank_record() filled in)."""

    def record_source(self, dataset, previous):
        """Records: a harvester.records.RecordSource reading the rows of `dataset` (a
        StoredDataset), incremental from `previous` (a PreviousPull) where the kind can be."""
        raise NotImplementedError(f"{self.kind} portals have no records pull in this version")

    def hash_view(self, entry: dict, details: dict | None, owned: bool = False):
        """What is hashed to tell a changed dataset: the entry and its details, less
        counters (page views, downloads) that change every night while the dataset does not.
        `owned`: the caller needs `entry` and `details` no more, so they may be cut in place."""
        return [entry, details]


def note_columns_cut(notes: Notes, listed_by: str, details: dict | None, kept: int) -> None:
    """The warning of a dataset whose column list was cut to MAX_COLUMNS (`columns_left_out`
    in its details, see harvester.http.capped_json): `listed_by` names the document."""
    left_out = (details or {}).get("columns_left_out")
    if left_out:
        notes.warn("columns", f"{listed_by} lists {kept + left_out:,} columns; the first {MAX_COLUMNS:,} are kept "
                   "(as many as a records pull takes)")


def refuse_cut_columns(dataset) -> None:
    """A records pull of a dataset whose columns were cut would read the ones kept and drop
    the others unsaid: refused (NotPullable), naming how many it has."""
    left_out = (dataset.details or {}).get("columns_left_out")
    if left_out:
        raise NotPullable(f"the dataset has {len(dataset.columns) + left_out} columns, more than the "
                          f"{MAX_COLUMNS:,} a records pull takes")


def lists_cut(entry) -> dict | None:
    """Details for an entry some of whose lists were cut as its page was read: how many items
    each lost (`lists_left_out`), for note_lists_cut; None when none was."""
    cut = dropped(entry)
    return {"lists_left_out": cut} if cut else None


def note_lists_cut(notes: Notes, details: dict | None) -> None:
    for key, left_out in (details or {}).get("lists_left_out", {}).items():
        notes.warn(key, f"the catalogue entry lists {MAX_ITEMS + left_out:,} of them; the first {MAX_ITEMS:,} are kept")
