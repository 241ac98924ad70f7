"""Benchmark: how well the overlap detector finds comparable datasets, against labels.

Ground truth: ../shared/groundtruth/labelled_datasets_combined.csv (police table types of
OpenPoliceData, CODE's crime-incident sources, JKAN's 311 datasets). Few of the labelled
datasets are in the fixture catalogues, so:
  - a labelled Socrata dataset found in the 2017 Socrata catalogues (spellarbot) is that
    harvested dataset, with its real title and columns;
  - every other one becomes a catalogue entry built from what the label tables hold of the
    publisher's own naming: the title a catalogue gave it when one is known (JKAN, the 2013
    data.json catalogues, the NYC catalogue), else the title in the path of its page on its
    publisher's portal (OpenPoliceData's `source_url`: '/Public-Safety/Crime-Data-from-2010-to-2019/
    63jg-8b9z', '/datasets/DCGIS::crime-incidents-in-2008/about'), else the name of its file,
    layer or page in its URL, and the description the table quotes. The label itself is never used.
These entries are served as one data.json per jurisdiction by a local portal and harvested
with the 7,187 datasets of the 33 Socrata domains of 2017 as distractors.

Measured on the labelled datasets, cross-city only: pairwise and B-cubed precision, recall
and F1 of the groups, and MAP of each dataset's ranked list of other cities' labelled
datasets; beside two baselines in the same run (title TF-IDF cosine; column-name Jaccard),
each grouped by connected components at its best threshold (an optimistic baseline).
Then the detector runs on the real multi-city catalogues (16 cities of 2013, 33 Socrata
domains of 2017) and prints a sample of groups to read.

    python -m bench.overlap_quality [--sample 25] [--misses police:incidents,police:arrests | all]
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import tempfile
import time
import zlib
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from catalog import EMBEDDINGS_INSTALL, overlap  # noqa: E402
from catalog.overlap import concepts, embeddings, features, scoring, text  # noqa: E402
from catalog.store import Store  # noqa: E402
from tests.conftest import fast_client  # noqa: E402
from tests.portals.catalogues import (harvest_data_json, harvest_pod_2013, harvest_spellarbot,  # noqa: E402
                                      pod_2013_files, portal_id)
from tests.shared_fixtures import FIXTURES, SHARED  # noqa: E402

GROUNDTRUTH = SHARED / "groundtruth"
GENERIC_PATH = re.compile(
    r"^(?:https?|www|com|org|gov|net|us|arcgis|rest|services?|featureserver|mapserver|query|download|downloads|"
    r"csv|xlsx?|json|php|html?|sites|default|files?|documents?|documentcenter|view|dataset|datasets|data|"
    r"resource|api|views|rows|foia_files|items?|content|sharing|opendata|open-data|catalog|\d+)$", re.I)
SOCRATA_ID = re.compile(r"^[a-z0-9]{4}-[a-z0-9]{4}$")


def words_of(segment: str) -> str:
    segment = re.sub(r"\.(csv|xlsx?|json|php|html?|zip|pdf)$", "", segment, flags=re.I)
    # an acronym with a small word inside is one word ('UoF_Race_2022': use of force), other capitals start one
    segment = re.sub(r"(?<![A-Za-z])[A-Z][a-z][A-Z](?![A-Za-z])", lambda m: m.group().upper(), segment)
    segment = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", segment)
    return " ".join(w for w in re.split(r"[^A-Za-z0-9]+", segment) if w)


def publisher_title(url: str, dataset_id: str) -> str:
    """The name the publisher gave the file, layer or page: the last informative part of
    its URL or dataset id ('.../APD_CAD_911_Calls_2005/FeatureServer/0' -> 'APD CAD 911 Calls 2005')."""
    parts = []
    if dataset_id and not SOCRATA_ID.match(dataset_id) and not re.fullmatch(r"[0-9a-f_]{20,}", dataset_id):
        parts += re.split(r"[/|]", dataset_id)
    path = unquote(re.sub(r"^[a-z]+://[^/]+", "", url or "").split("?")[0])   # 'use%20of%20force' as written
    parts += [p for p in path.split("/") if p]
    for part in reversed(parts):
        name = words_of(part)
        if (name and not GENERIC_PATH.match(name.replace(" ", "")) and not re.fullmatch(r"[\d ]+", name)
                and not re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", part, re.I)  # a uuid
                and not re.fullmatch(r"[\w-]+(\.[\w-]+)+\.(gov|org|com|us|net)", part)):     # a host
            return name
    return "Dataset"  # the publisher gave it no name we can see: a title that says nothing


# A dataset's page on its publisher's portal, whose path carries the title the portal gave it:
# Socrata '/Public-Safety/Crime-Data-from-2010-to-2019/63jg-8b9z' (a category, the title, the 4x4),
# ArcGIS Hub '/datasets/DCGIS::crime-incidents-in-2008/about', CKAN '/dataset/police-calls-for-service'.
PORTAL_PAGE = re.compile(r"^/(?:[a-z]{2}/)?[^/]+/(?P<socrata>[^/]+)/[a-z0-9]{4}-[a-z0-9]{4}(?:/|$)"
                         r"|^/datasets/(?:[^/:]+::)?(?P<hub>[^/]+)(?:/|$)"
                         r"|^/dataset/(?P<ckan>[^/]+)(?:/|$)")


def landing_page_title(url: str) -> str | None:
    """The title in the path of a dataset's page on its publisher's portal ('LAPD Calls for Service 2010'), or
    None for any other page (a city's web page, a FOIA request, a project's download page) or one that names
    the dataset by an id only ('/datasets/7b8a2a019e664a37bb7ff86685dda492_2/about')."""
    match = PORTAL_PAGE.match(unquote(re.sub(r"^[a-z]+://[^/]+", "", url or "")))
    if not match:
        return None
    slug = next(group for group in match.groups() if group)
    if re.fullmatch(r"[0-9a-f]{32}(_\d+)?|[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", slug, re.I):
        return None
    return " ".join(w for w in re.split(r"[^A-Za-z0-9]+", slug) if w) or None


def host_of(url: str) -> str:
    return re.sub(r"^https?://", "", url or "").split("/")[0].lower()


def landing_pages() -> dict[tuple, str]:
    """The page OpenPoliceData's source table links for a dataset (its `source_url`, the publisher's page;
    the combined table leaves it out), by the row's (state, jurisdiction, agency, year, URL, dataset id) and,
    for the same dataset listed by another source (CODE), by (host, dataset id). A key of two rows with
    different pages is left out: which page is whose cannot be told without the label."""
    pages: dict[tuple, set[str]] = defaultdict(set)
    for r in csv.DictReader(open(GROUNDTRUTH / "openpolicedata" / "opd_source_table.csv", encoding="utf-8")):
        pages[(r["State"], r["SourceName"], r["AgencyFull"], r["Year"], r["URL"], r["dataset_id"])].add(
            r["source_url"])
        if r["dataset_id"]:
            pages[(host_of(r["URL"]), r["dataset_id"])].add(r["source_url"])
    return {key: next(iter(urls)) for key, urls in pages.items() if len(urls) == 1}


def known_titles() -> dict[tuple[str, str], tuple[str, str]]:
    """(domain, id) -> (title, description) from the catalogues in the fixtures."""
    known = {}
    for path in pod_2013_files():
        for entry in json.loads(path.read_text()):
            if isinstance(entry, dict) and entry.get("identifier"):
                known[(path.stem, entry["identifier"])] = (entry.get("title"), entry.get("description"))
    nyc_file = FIXTURES / "flattened-catalog" / "nyc-open-data-explorer-catalog-full-2026-08-16.json"
    nyc = json.loads(nyc_file.read_text())
    for entry in nyc["datasets"] if isinstance(nyc, dict) else nyc:
        known[("data.cityofnewyork.us", entry["id"])] = (entry.get("name"), entry.get("description"))
    return known


def load_labels() -> list[dict]:
    """The labelled rows, less datasets their publishers deleted and a dataset listed twice (by CODE
    and OpenPoliceData: the same host and id, kept once, as first listed); each with its place as one
    name ("Chicago, Illinois"), so that a place the sources spell two ways is one jurisdiction."""
    rows = list(csv.DictReader(open(GROUNDTRUTH / "labelled_datasets_combined.csv", encoding="utf-8")))
    deleted = {r["dataset_id"] for r in csv.DictReader(open(GROUNDTRUTH / "openpolicedata" /
                                                            "datasets_deleted_by_publisher.csv", encoding="utf-8"))
               if r.get("dataset_id")}
    state_of = place_states(rows)
    seen, out = set(), []
    for r in rows:
        if r["dataset_id"] and r["dataset_id"] in deleted:
            continue
        place = re.sub(r"^City of\s+", "", r["jurisdiction"]).strip()
        state = r["state"] or state_of.get(place.lower(), "")
        r["city"] = f"{place}, {state}".strip(", ")
        key = ((host_of(r["domain_or_url"]), r["dataset_id"]) if r["dataset_id"]
               else (r["city"], r["domain_or_url"]))
        if key in seen:
            continue
        seen.add(key)
        out.append(r)
    return out


def place_states(rows: list[dict]) -> dict[str, str]:
    """Place name -> its state, for the names that OpenPoliceData's rows give one state only: CODE
    and JKAN name a place without its state ('Chicago', 'City of Chicago')."""
    states: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        if r["state"]:
            states[r["jurisdiction"].strip().lower()].add(r["state"])
    return {place: next(iter(found)) for place, found in states.items() if len(found) == 1}


def build_catalogue(db: Path) -> tuple[Store, dict[str, dict]]:
    """Harvest distractors and labelled entries; returns the store and uid -> label row."""
    store = Store(db)
    http = fast_client()
    harvest_spellarbot(store, http)
    spellarbot = {(d, s) for d, s in store.con.execute(
        "SELECT replace(portal_id, '-', '.'), source_id FROM datasets").fetchall()}
    known = known_titles()
    pages = landing_pages()
    labelled: dict[str, dict] = {}
    catalogues: dict[str, tuple[str, list[dict]]] = {}
    for number, r in enumerate(load_labels()):
        domain = host_of(r["domain_or_url"])
        if (domain.replace("-", "."), r["dataset_id"]) in spellarbot:
            labelled[f"{portal_id(domain)}:{r['dataset_id']}"] = dict(r, title_source="harvested")
            continue
        title, description = known.get((domain, r["dataset_id"]), (None, None))
        r = dict(r, title_source="catalogue")
        if not title and r["source"].startswith("andrew-friedman/jkan"):
            title = r["title_or_description"]
        if not title:
            page = pages.get((r["state"], r["jurisdiction"], r["agency"], r["year"], r["domain_or_url"],
                              r["dataset_id"])) or pages.get((domain, r["dataset_id"]))
            title = landing_page_title(page)
            r["title_source"] = "landing page" if title else "url"
            title = title or publisher_title(r["domain_or_url"], r["dataset_id"])
            description = r["title_or_description"] or None
        pid = "gt-" + portal_id(r["city"])[:40]
        source_id = f"gt{number}"
        entry = {"identifier": source_id, "title": title, "description": description or "",
                 "accessLevel": "public", "distribution": [{"downloadURL": r["domain_or_url"]}]}
        if r["agency"]:   # the agency that publishes it, as DCAT-US's required publisher
            entry["publisher"] = {"@type": "org:Organization", "name": r["agency"]}
        catalogues.setdefault(pid, (r["city"], []))[1].append(entry)
        labelled[f"{pid}:{source_id}"] = r
    harvest_data_json(store, http, catalogues)
    return store, labelled


def informative_title_words(title: str | None, drop: frozenset[str] = frozenset()) -> list[str]:
    """A title's words of three letters or more, read plainly (not by the detector, whose readings must not
    decide which datasets count as informative): tokens that look like ids dropped, letters cut from digits
    ('2014CFS' -> 'cfs'), less words that say nothing in any city ('Dataset', 'Tables', 'Public'), form
    words ('Map'), department acronyms ('MPD') and the words in `drop`."""
    words = []
    for token in re.split(r"[^A-Za-z0-9]+", title or ""):
        if token and not text.ID_TOKEN.fullmatch(token):
            words += [w.lower() for w in re.findall(r"[A-Za-z]{3,}", token)]
    return [w for w in words if w not in drop and w not in text.STOPWORDS and w not in text.GENERIC
            and not concepts.DEPARTMENT.match(w)]


def has_informative_text(title: str | None, description: str | None, own_place: frozenset[str]) -> bool:
    """A title word that is not an id, a department's acronym, a form word or the dataset's own place
    ('sacramento report data 2020'), or a description of a few words: what any matcher could go on (the label
    is not looked at)."""
    return bool(informative_title_words(title, own_place)) or len(text.terms(description, bigrams=False)) >= 3


# wordings that name where records are kept or how they were asked for, not what they are: Tucson's 25
# layers titled 'Open Data Public Safety', Bremerton's month files ('December 2017 XLSX', described by a note
# on how they are stored), records requests answered ('Records Request Download PRR 2024 ...', "FOIA data from
# MuckRock", 'RTKL ... Records sent 2'), publication files ('2016Finaldata WEBSITEVERSION'). A hand list,
# label-blind, read from the datasets the detector leaves alone (session 9); only the strict ceiling below uses it.
CONTAINER_WORDINGS = re.compile(
    r"Open Data Public Safety|\bXLSX\b|MuckRock|Muck Rock|FOIA data from|foia files|Right-to-Know Request from|"
    r"Records Request(?: Download(?: PRR| FOIL)?)?|RTKL|Records sent|evidence com case \w+ package \d+ of \d+ created|"
    r"pdicasesubjectsq|Open Data ES DS|Next Request|Finaldata WEBSITEVERSION|VSP ?Publication File|"
    r"Publication ?File(?: ?VSP)?|Public Safety Web Mercator|Community Safety Tables|Responsive record|"
    r"\w+ \w+ \d{8} CPRA Information|CPRA|Boston University SPARK Report|ALPHa LISTING|"
    r"NOTE: \w+ data is stored in 1 file per month.*", re.IGNORECASE | re.DOTALL)


def strict_signature(title: str | None, description: str | None, own_place: frozenset[str]) -> tuple | None:
    """`text_signature` of the text less its container's wordings, with plural and singular read as one word
    ('2016 citations', 'Citation'), or None when that text says nothing of what the records are. What is left
    is read: 'Use of force 2022' is use of force though its description is "FOIA data from MuckRock", 'Arrest
    2014 XLSX' arrests, and Tucson's 'Open Data Public Safety' layers described as calls for service are calls."""
    title, description = CONTAINER_WORDINGS.sub(" ", title or ""), CONTAINER_WORDINGS.sub(" ", description or "")
    if not has_informative_text(title, description, own_place):
        return None
    words, description_terms = text_signature(title, description, own_place)
    return tuple(sorted({text.stem(w) for w in words})), tuple(text.stem(t) for t in description_terms)


def kind_signature(kinds: tuple[str, ...], title: str | None, description: str | None,
                   own_place: frozenset[str]) -> tuple | None:
    """The kinds of record the detector reads in a dataset, when it reads any: a reader of kinds who groups
    datasets of one kind together, whatever else their words say ('Citations' of Cedar Lake and of Sacramento);
    else `strict_signature`. The best a grouping that keeps each of the detector's kinds whole can do."""
    return ("kind",) + tuple(kinds) if kinds else strict_signature(title, description, own_place)


def text_signature(title: str | None, description: str | None, own_place: frozenset[str]) -> tuple:
    """What a reader of the text alone sees of a dataset: its informative title words and its description's
    words, without its own place, years and ids ('yg821jf8611 tx arlington 2020 04 01 csv' and
    'yg821jf8611 ca san diego 2020 04 01 csv', both 'Standardized stop data from the Stanford Open Policing
    Project', read the same)."""
    return (tuple(sorted(set(informative_title_words(title, own_place)))),
            tuple(text.terms(description, own_place, bigrams=False, glued=False)))


def text_ceiling(members: list[str], signature_of: dict, label_of: dict, city_of: dict) -> tuple[dict, int]:
    """The best a reader of the text alone can do: perfect groups, except that datasets of one text share a
    group (that of their most common label), since nothing in what they say tells them apart; a dataset whose
    signature is None stays alone. Returns the scores and how many datasets share their text with a dataset
    of another label. (Optimistic: which label a text's datasets mostly have is the labels' knowledge.)"""
    labels_of_text: dict[tuple, Counter] = defaultdict(Counter)
    for u in members:
        if signature_of[u] is not None:
            labels_of_text[signature_of[u]][label_of[u]] += 1
    group = {u: labels_of_text[signature_of[u]].most_common(1)[0][0] if signature_of[u] is not None
             else f"alone:{u}" for u in members}
    conflicting = sum(1 for u in members if signature_of[u] is not None and len(labels_of_text[signature_of[u]]) > 1)
    return clustering_scores(members, group, label_of, city_of), conflicting


# --- measures ----------------------------------------------------------------------------

def cross_city_pairs(uids: list[str], label_of: dict, city_of: dict):
    for i in range(len(uids)):
        for j in range(i + 1, len(uids)):
            if city_of[uids[i]] != city_of[uids[j]]:
                yield uids[i], uids[j]


def clustering_scores(uids: list[str], cluster_of: dict, label_of: dict, city_of: dict,
                      per_dataset: bool = False) -> dict:
    """Pairwise and B-cubed figures on cross-city pairs; `per_dataset`: also each dataset's B-cubed recall."""
    tp = fp = fn = 0
    for x, y in cross_city_pairs(uids, label_of, city_of):
        same_cluster = cluster_of[x] == cluster_of[y]
        same_label = label_of[x] == label_of[y]
        tp += same_cluster and same_label
        fp += same_cluster and not same_label
        fn += same_label and not same_cluster
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    by_cluster, by_label = defaultdict(list), defaultdict(list)
    for u in uids:
        by_cluster[cluster_of[u]].append(u)
        by_label[label_of[u]].append(u)
    bp, br = [], []
    for u in uids:  # B-cubed over the item and its other-city peers
        cluster = [v for v in by_cluster[cluster_of[u]] if v != u and city_of[v] != city_of[u]]
        label = [v for v in by_label[label_of[u]] if v != u and city_of[v] != city_of[u]]
        correct = sum(label_of[v] == label_of[u] for v in cluster)
        bp.append((1 + correct) / (1 + len(cluster)))
        br.append((1 + correct) / (1 + len(label)))
    b_p, b_r = float(np.mean(bp)), float(np.mean(br))
    scores = {"pair_p": p, "pair_r": r, "pair_f1": 2 * p * r / (p + r) if p + r else 0.0,
              "b3_p": b_p, "b3_r": b_r, "b3_f1": 2 * b_p * b_r / (b_p + b_r) if b_p + b_r else 0.0}
    if per_dataset:
        scores["recall_of"] = dict(zip(uids, br))
    return scores


def largest_group_of_label(uids: list[str], cluster_of: dict, label_of: dict) -> dict[str, object]:
    """Label -> the group holding most of its datasets (ties: the group met first); a label none of whose
    datasets is grouped gets a group of its own name, so that joining it means grouping them together."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for u in uids:
        if not str(cluster_of[u]).startswith("single:"):
            counts[label_of[u]][cluster_of[u]] += 1
    return {label_of[u]: counts[label_of[u]].most_common(1)[0][0] if counts[label_of[u]] else f"label:{label_of[u]}"
            for u in uids}


def recall_lost_by_class(uids: list[str], cluster_of: dict, label_of: dict, city_of: dict, class_of: dict,
                         classes: list[str], half_of: dict | None = None) -> list[dict]:
    """Where B-cubed recall is lost: the datasets outside their label's largest group, by class (`class_of`,
    e.g. whether their text says anything), and the figures if a class joined that group, alone and after the
    classes before it. A dataset left alone loses its peers' share of its own recall and costs each grouped peer
    its share too, so a class's gain is about twice its `own_loss` (the mean of what its datasets lose).
    `half_of` (dataset -> 0 or 1): each class's datasets counted per half of the jurisdictions ('per_half'), since
    reading one jurisdiction's datasets better moves its own half's figure only."""
    largest = largest_group_of_label(uids, cluster_of, label_of)
    outside = [u for u in uids if cluster_of[u] != largest[label_of[u]]]
    per_dataset = clustering_scores(uids, cluster_of, label_of, city_of, per_dataset=True)["recall_of"]
    rows, cumulative = [], dict(cluster_of)
    for name in classes:
        moved = [u for u in outside if class_of.get(u) == name]
        alone = dict(cluster_of)
        for u in moved:
            alone[u] = cumulative[u] = largest[label_of[u]]
        rows.append({"class": name, "datasets": len(moved),
                     "per_half": [sum(1 for u in moved if half_of[u] == h) for h in (0, 1)] if half_of else None,
                     "own_loss": sum(1 - per_dataset[u] for u in moved) / len(uids),
                     "alone": clustering_scores(uids, alone, label_of, city_of),
                     "cumulative": clustering_scores(uids, dict(cumulative), label_of, city_of)})
    return rows


def recall_lost_by_mechanism(uids: list[str], cluster_of: dict, label_of: dict) -> dict[str, str]:
    """What became of each dataset outside its label's largest group (dataset -> mechanism): 'alone', in no group
    (no pair of it reached the minimum score, or the groups' cohesion refused every one); 'split', in another group
    whose datasets are mostly of its own label (the label cut in two: no link between the groups, or the kind merge
    not made); 'other', in a group mostly of other labels' datasets (lost to recall and to precision). A label tied
    for the most in a group counts as the group's: that group splits the label as much as it mixes it."""
    largest = largest_group_of_label(uids, cluster_of, label_of)
    labels_in: dict[object, Counter] = defaultdict(Counter)
    for u in uids:
        labels_in[cluster_of[u]][label_of[u]] += 1
    mechanism = {}
    for u in uids:
        group = cluster_of[u]
        if group == largest[label_of[u]]:
            continue
        if str(group).startswith("single:"):
            mechanism[u] = "alone"
        else:
            mechanism[u] = "split" if labels_in[group][label_of[u]] == max(labels_in[group].values()) else "other"
    return mechanism


STEPS = {"threshold": "no pair with a dataset of its label reaches the minimum score",
         "cohesion": "a strong pair with its label that the groups' centroids refused",
         "split": "in a second group of its label (the link between the two groups refused)",
         "kind": "the kind of record its text reads is that of another label's group",
         "words": "in another label's group by its words (no kind read)"}


def grouping_step(mechanism: str, best_same: float, min_score: float, has_kind: bool) -> str:
    """Which step of the detector keeps a dataset from its label's largest group (a key of STEPS): its score
    (every pair with its label under the minimum), the cohesion (a strong pair refused by the groups' centroids),
    a second group of its label, or another label's group it was read into (by its kind of record, else its
    words). `mechanism`: as `recall_lost_by_mechanism` gives it."""
    if mechanism == "alone":
        return "cohesion" if best_same >= min_score else "threshold"
    if mechanism == "split":
        return "split"
    return "kind" if has_kind else "words"


def gains_if_joined(uids: list[str], cluster_of: dict, label_of: dict, city_of: dict,
                    moved: list[str]) -> dict[str, float]:
    """For each dataset of `moved`: what B-cubed F1 gains if it alone joined its label's largest group (a label
    none of whose datasets is grouped: a group of its own name). Gains of several datasets roughly add up: each
    tells how much of the loss that one dataset is."""
    largest = largest_group_of_label(uids, cluster_of, label_of)
    now = clustering_scores(uids, cluster_of, label_of, city_of)["b3_f1"]
    gains = {}
    for u in moved:
        joined = dict(cluster_of)
        joined[u] = largest[label_of[u]]
        gains[u] = clustering_scores(uids, joined, label_of, city_of)["b3_f1"] - now
    return gains


def best_same_label_scores(similarity: np.ndarray, uids: list[str], label_of: dict, city_of: dict) -> dict[str, float]:
    """Each dataset's best score against a dataset of its label in another city (0 when there is none)."""
    labels = np.array([label_of[u] for u in uids])
    cities = np.array([city_of[u] for u in uids])
    best = {}
    for i, u in enumerate(uids):
        peers = (labels == labels[i]) & (cities != cities[i])
        best[u] = float(similarity[i, peers].max()) if peers.any() else 0.0
    return best


def precision_lost_by_group(uids: list[str], cluster_of: dict, label_of: dict, city_of: dict,
                            group_labels: dict) -> list[tuple[str, str, float]]:
    """Where B-cubed precision is lost: (the group's label, the datasets' label, their loss) for each label in
    each group whose datasets meet other cities' datasets of another label there, worst first; a loss is the
    datasets' wrong share of their group, over all datasets, so the rows sum to 1 - B-cubed precision."""
    by_cluster: dict[object, list[str]] = defaultdict(list)
    for u in uids:
        by_cluster[cluster_of[u]].append(u)
    lost: dict[tuple[str, str], float] = defaultdict(float)
    for u in uids:
        peers = [v for v in by_cluster[cluster_of[u]] if v != u and city_of[v] != city_of[u]]
        wrong = sum(label_of[v] != label_of[u] for v in peers)
        if wrong:
            lost[(group_labels.get(cluster_of[u], str(cluster_of[u])), label_of[u])] += wrong / (1 + len(peers)) / len(uids)
    return sorted(((group, label, loss) for (group, label), loss in lost.items()), key=lambda row: -row[2])


def mixed_pairs(uids: list[str], cluster_of: dict, label_of: dict, city_of: dict, text_of: dict) -> list[dict]:
    """What B-cubed precision loses, as pairs: the cross-city pairs of one group whose labels differ, by group and
    pair of labels, most first; each row with how many of them the labels cut where a text is one (a side reads,
    by `text_of`, as a dataset of the other side's label does: no reading of the text could part them)."""
    by_cluster: dict[object, list[str]] = defaultdict(list)
    texts_of_label: dict[str, set] = defaultdict(set)
    for u in uids:
        if not str(cluster_of[u]).startswith("single:"):
            by_cluster[cluster_of[u]].append(u)
        if text_of[u] is not None:
            texts_of_label[label_of[u]].add(text_of[u])
    rows: dict[tuple, dict] = {}
    for group, members in by_cluster.items():
        for i, x in enumerate(members):
            for y in members[i + 1:]:
                if city_of[x] == city_of[y] or label_of[x] == label_of[y]:
                    continue
                p, q = sorted((x, y), key=lambda u: label_of[u])
                row = rows.setdefault((group, label_of[p], label_of[q]), {
                    "group": group, "labels": (label_of[p], label_of[q]), "pairs": [], "one_text": 0})
                row["pairs"].append((p, q))
                row["one_text"] += text_of[p] in texts_of_label[label_of[q]] or text_of[q] in texts_of_label[label_of[p]]
    return sorted(rows.values(), key=lambda row: -len(row["pairs"]))


def minority_split_gains(uids: list[str], cluster_of: dict, label_of: dict, city_of: dict,
                         text_of: dict) -> list[dict]:
    """What precision each mix costs, label by label: for every label that is not the most common of a group it
    shares with others, the B-cubed F1 gained were its datasets there split off into a group of their own, with how
    many of them have the text (`text_of`, None: says nothing) of a dataset of the group's most common label there
    (`one_text`: no reading of the text could part them from it) and which do not (`other_text`). Largest gain
    first."""
    by_cluster: dict[object, list[str]] = defaultdict(list)
    for u in uids:
        if not str(cluster_of[u]).startswith("single:"):
            by_cluster[cluster_of[u]].append(u)
    now = clustering_scores(uids, cluster_of, label_of, city_of)["b3_f1"]
    rows = []
    for group, members in by_cluster.items():
        counts = Counter(label_of[u] for u in members)
        if len(counts) < 2:
            continue
        majority = counts.most_common(1)[0][0]
        majority_texts = {text_of[u] for u in members if label_of[u] == majority and text_of[u] is not None}
        for label in counts:
            if label == majority:
                continue
            moved = [u for u in members if label_of[u] == label]
            split = dict(cluster_of, **{u: (group, label) for u in moved})
            other_text = [u for u in moved if text_of[u] is None or text_of[u] not in majority_texts]
            rows.append({"group": group, "label": label, "majority": majority, "datasets": moved,
                         "one_text": len(moved) - len(other_text), "other_text": other_text,
                         "gain": clustering_scores(uids, split, label_of, city_of)["b3_f1"] - now})
    return sorted(rows, key=lambda row: -row["gain"])


def mean_average_precision(similarity: np.ndarray, uids: list[str], label_of: dict, city_of: dict,
                           cluster_of: dict | None = None) -> float:
    """MAP of each dataset's list of other cities' labelled datasets, ordered as `civicat similar` orders
    them: by score, those of its group first when the method groups (`cluster_of`)."""
    labels = np.array([label_of[u] for u in uids])
    cities = np.array([city_of[u] for u in uids])
    clusters = np.array([cluster_of[u] if cluster_of else u for u in uids], dtype=object)
    aps = []
    for i in range(len(uids)):
        other = cities != cities[i]
        relevant = other & (labels == labels[i])
        if not relevant.any():
            continue
        order = np.flatnonzero(other)[overlap.similar_order(similarity[i, other], clusters[other] == clusters[i])]
        hits = relevant[order]
        precision_at = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        aps.append(float(precision_at[hits].mean()))
    return float(np.mean(aps))


def threshold_components(similarity: np.ndarray, threshold: float) -> np.ndarray:
    graph = sp.csr_matrix(similarity >= threshold)
    return sp.csgraph.connected_components(graph, directed=False)[1]


def baseline_title_tfidf(titles: list[str]) -> np.ndarray:
    docs = [re.findall(r"[a-z0-9]+", (t or "").lower()) for t in titles]
    matrix, _ = features.tfidf(docs)
    return (matrix @ matrix.T).toarray()


def baseline_column_jaccard(column_sets: list[set]) -> np.ndarray:
    n = len(column_sets)
    out = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        for j in range(i + 1, n):
            a, b = column_sets[i], column_sets[j]
            if a and b:
                out[i, j] = out[j, i] = len(a & b) / len(a | b)
    return out


def best_threshold_scores(similarity, uids, label_of, city_of) -> tuple[float, dict]:
    best = None
    for threshold in np.arange(0.1, 0.96, 0.05):
        components = threshold_components(similarity, threshold)
        scores = clustering_scores(uids, {u: int(c) for u, c in zip(uids, components)}, label_of, city_of)
        if best is None or scores["b3_f1"] > best[1]["b3_f1"]:
            best = (float(threshold), scores)
    return best


def labelled_benchmark(tmp: Path, misses: list[str] = ()) -> None:
    started = time.perf_counter()
    store, labelled = build_catalogue(tmp / "quality.duckdb")
    con = store.con
    harvest_seconds = time.perf_counter() - started
    result = overlap.detect(con)
    overlap.save(con, result)
    catalogue = result.catalogue
    uids = [u for u in labelled if u in set(catalogue.uids)]
    label_of = {u: labelled[u]["label"] for u in uids}
    city_of = {u: labelled[u]["city"] for u in uids}
    rows = np.array([catalogue.row(u) for u in uids])
    n = len(uids)
    a, b = np.triu_indices(n, k=1)

    def detector_figures(found) -> tuple[dict, np.ndarray]:
        """The groups as clusters, and the detector's score of every labelled pair (for MAP)."""
        group_of = {u: g.group_id for g in found.groups for u in g.uids}
        scored = scoring.score_pairs(found.catalogue, rows[a], rows[b])
        similarity = np.zeros((n, n), dtype=np.float32)
        similarity[a, b] = similarity[b, a] = scored.total
        return {u: group_of.get(u, f"single:{u}") for u in uids}, similarity

    cluster_of, detector_similarity = detector_figures(result)
    methods = {"detector": (f"civicat overlap (groups, min score {result.min_score})", cluster_of,
                            detector_similarity)}
    if embeddings.available():
        with_vectors = overlap.detect(con, use_embeddings=True)
        methods["embeddings"] = (f"civicat overlap + embeddings ({with_vectors.seconds['embed']:.0f} s to embed)",
                                 *detector_figures(with_vectors))
    else:
        print(f"(embedding signal not measured: {EMBEDDINGS_INSTALL})")
    title_similarity = baseline_title_tfidf([catalogue.titles[r] for r in rows])
    column_sets = [{name.lower() for name, _, _ in catalogue.column_names[r]} for r in rows]
    methods["title"] = ("baseline: title TF-IDF cosine", None, title_similarity)
    methods["column"] = ("baseline: column-name Jaccard", None, baseline_column_jaccard(column_sets))
    cluster_of = methods["detector"][1]
    best_same = best_same_label_scores(detector_similarity, uids, label_of, city_of)
    group_labels = {g.group_id: g.label for g in result.groups}

    print(f"labelled datasets in the catalogue: {n} of {len(labelled)} "
          f"({sum(1 for u in uids if labelled[u]['title_source'] == 'harvested')} are real harvested Socrata "
          f"datasets, {sum(1 for u in uids if labelled[u]['title_source'] == 'catalogue')} have a title from a "
          f"catalogue, {sum(1 for u in uids if labelled[u]['title_source'] == 'landing page')} from the path of "
          f"their page on their portal, the rest a title made from their URL), {len(set(label_of.values()))} labels, "
          f"{len(set(city_of.values()))} jurisdictions; catalogue {len(catalogue)} comparable datasets "
          f"(harvest {harvest_seconds:.1f} s, overlap {sum(result.seconds.values()):.1f} s)")
    header = f"{'method':52} {'B3 P':>6} {'B3 R':>6} {'B3 F1':>6} {'pair P':>7} {'pair R':>7} {'pair F1':>7} {'MAP':>6}"
    rows_of = {u: catalogue.row(u) for u in uids}
    descriptions = dict(con.execute("SELECT uid, description FROM datasets").fetchall())
    # the reader's own place: the city's words, less the words for the whole of it ('statewide'), which the
    # detector may read (a state-wide agency's stops are traffic stops)
    place_of = {u: catalogue.places[rows_of[u]] - text.WHOLE_PLACE for u in uids}
    informative = [i for i, u in enumerate(uids)
                   if has_informative_text(catalogue.titles[rows_of[u]], descriptions.get(u), place_of[u])]
    informative_uids = {uids[i] for i in informative}
    half = {u: zlib.crc32(city_of[u].encode()) % 2 for u in uids}
    subsets = [("all labelled datasets", list(range(n))),
               ("jurisdictions of half A (a split of the jurisdictions by a hash of their name)",
                [i for i, u in enumerate(uids) if half[u] == 0]),
               ("jurisdictions of half B", [i for i, u in enumerate(uids) if half[u] == 1]),
               ("only those with a catalogue title (harvested or listed)",
                [i for i, u in enumerate(uids) if labelled[u]["title_source"] in ("harvested", "catalogue")]),
               ("only those with any informative text (a title word that is not an id, or a description)",
                informative),
               ("only those whose title or description names a kind of record (a concept; the detector's own "
                "reading, so optimistic)", [i for i, u in enumerate(uids) if catalogue.concept_lists[rows_of[u]]])]
    for subset_name, subset in subsets:
        members = [uids[i] for i in subset]
        print(f"\n{subset_name}: {len(members)} datasets, "
              f"{len({city_of[u] for u in members})} jurisdictions")
        print(header)
        figures = {}
        for name, (title, clusters, full_similarity) in methods.items():
            similarity = full_similarity[np.ix_(subset, subset)]
            if clusters is not None:
                scores = clustering_scores(members, clusters, label_of, city_of)
            else:
                threshold, scores = best_threshold_scores(similarity, members, label_of, city_of)
                title = f"{title} (best t={threshold:.2f})"
            scores["map"] = mean_average_precision(similarity, members, label_of, city_of, clusters)
            figures[name] = scores
            print(f"{title:52} {scores['b3_p']:6.3f} {scores['b3_r']:6.3f} {scores['b3_f1']:6.3f} "
                  f"{scores['pair_p']:7.3f} {scores['pair_r']:7.3f} {scores['pair_f1']:7.3f} {scores['map']:6.3f}")
        detector = figures["detector"]
        margin = detector["b3_f1"] - max(figures["title"]["b3_f1"], figures["column"]["b3_f1"])
        verdict = "met" if detector["b3_f1"] >= 0.85 else "NOT met"
        print(f"lexical detector: B-cubed F1 {detector['b3_f1']:.3f}: target >= 0.85 {verdict}; "
              f"{margin:+.3f} over the better baseline, target >= +0.15 {'met' if margin >= 0.15 else 'NOT met'}")
        if len(members) == n:  # the best any grouping could do when datasets without informative text stay alone
            ceiling = clustering_scores(members, {u: label_of[u] if u in informative_uids else f"alone:{u}"
                                                  for u in members}, label_of, city_of)
            print(f"ceiling (perfect groups of the datasets with informative text, the others alone): "
                  f"B-cubed F1 {ceiling['b3_f1']:.3f}")
            strict_of = {u: strict_signature(catalogue.titles[rows_of[u]], descriptions.get(u), place_of[u])
                         for u in members}
            strict, conflicting = text_ceiling(members, strict_of, label_of, city_of)
            print(f"ceiling for a reader of the text less a container's wording ('Open Data Public Safety', 'XLSX', "
                  f"'FOIA data from MuckRock'; alone what says nothing else) who reads plurals as one word (datasets "
                  f"of one text in one group, "
                  f"that of their most common label; {conflicting} share their text with another label's): "
                  f"B-cubed F1 {strict['b3_f1']:.3f} (P {strict['b3_p']:.3f} / R {strict['b3_r']:.3f}); "
                  f"the detector reaches {detector['b3_f1'] / strict['b3_f1']:.1%} of it")
            kinds, conflicting = text_ceiling(members, {u: kind_signature(
                catalogue.concept_lists[rows_of[u]], catalogue.titles[rows_of[u]], descriptions.get(u), place_of[u])
                for u in members}, label_of, city_of)
            print(f"... and for that reader when it reads kinds of record as the detector does (datasets of one kind "
                  f"in one group, whatever their words; {conflicting} share their kind with another label's): "
                  f"B-cubed F1 {kinds['b3_f1']:.3f} (P {kinds['b3_p']:.3f} / R {kinds['b3_r']:.3f}); "
                  f"the detector reaches {detector['b3_f1'] / kinds['b3_f1']:.1%} of it")
            print_recall_lost(members, cluster_of, label_of, city_of, strict_of, detector, half)
            print_recall_lost_by_mechanism(members, cluster_of, label_of, city_of, detector, half, best_same,
                                           group_labels, catalogue, result.min_score)
            print_informative_losses(members, cluster_of, label_of, city_of, strict_of, half, best_same,
                                     catalogue, result.min_score)
            print_precision_lost(members, cluster_of, label_of, city_of, detector, group_labels)
            print_mixed_pairs(members, cluster_of, label_of, city_of, strict_of, group_labels, catalogue)
            print_minority_splits(members, cluster_of, label_of, city_of, strict_of, group_labels, catalogue)
        if subset is informative:  # labels that cut where the text does not (the same file labelled two ways)
            ceiling, conflicting = text_ceiling(members, {u: text_signature(
                catalogue.titles[rows_of[u]], descriptions.get(u), place_of[u]) for u in members},
                label_of, city_of)
            print(f"ceiling for a reader of the text alone (perfect groups, but datasets of one text in one group; "
                  f"{conflicting} datasets share their text with a dataset of another label): "
                  f"B-cubed F1 {ceiling['b3_f1']:.3f} (P {ceiling['b3_p']:.3f} / R {ceiling['b3_r']:.3f})")
    per_label = defaultdict(list)
    for u in uids:
        per_label[label_of[u]].append(u)
    print("per label (datasets, jurisdictions, groups they fell in):")
    for label, members in sorted(per_label.items(), key=lambda kv: -len(kv[1]))[:12]:
        clusters = {cluster_of[u] for u in members if not str(cluster_of[u]).startswith("single:")}
        singles = sum(1 for u in members if str(cluster_of[u]).startswith("single:"))
        print(f"  {label:36} {len(members):4} datasets, {len({city_of[u] for u in members}):3} places, "
              f"{len(clusters):3} groups, {singles:4} ungrouped")
    if misses:
        for label in (sorted(per_label, key=lambda k: -len(per_label[k])) if misses == ["all"] else misses):
            print_misses(label, uids, label_of, city_of, cluster_of, best_same, catalogue, descriptions, group_labels)
    store.close()


RECALL_CLASSES = {"informative": "whose text says what they are",
                  "one text": "whose text is that of a dataset of another label (most are Stanford's stop files)",
                  "says nothing": "whose text says nothing once its container's wording is dropped"}


def print_recall_lost(members: list[str], cluster_of: dict, label_of: dict, city_of: dict, strict_of: dict,
                      detector: dict, half_of: dict) -> None:
    """The datasets outside their label's largest group, by what their text lets a reader do (and how many in each
    half of the jurisdictions), and the B-cubed figures if each class of them joined that group (counting what
    their grouped peers lose too)."""
    labels_of_text: dict[tuple, set] = defaultdict(set)
    for u in members:
        if strict_of[u] is not None:
            labels_of_text[strict_of[u]].add(label_of[u])
    class_of = {u: "says nothing" if strict_of[u] is None else "one text" if len(labels_of_text[strict_of[u]]) > 1
                else "informative" for u in members}
    print(f"where B-cubed recall is lost ({1 - detector['b3_r']:.3f} in all): the datasets outside their label's "
          f"largest group, and the figures if each class joined it (alone; after the classes above):")
    for row in recall_lost_by_class(members, cluster_of, label_of, city_of, class_of, list(RECALL_CLASSES), half_of):
        alone, cumulative = row["alone"], row["cumulative"]
        print(f"  {row['datasets']:4} ({row['per_half'][0]} of half A, {row['per_half'][1]} of B) "
              f"{RECALL_CLASSES[row['class']]}: recall +{alone['b3_r'] - detector['b3_r']:.3f} "
              f"(their own loss {row['own_loss']:.3f}), F1 {alone['b3_f1']:.3f}; after those above: "
              f"F1 {cumulative['b3_f1']:.3f} (P {cumulative['b3_p']:.3f} / R {cumulative['b3_r']:.3f})")


MECHANISMS = {"alone": "left alone", "split": "in a second group mostly of their own label",
              "other": "in a group mostly of another label's datasets"}


def print_recall_lost_by_mechanism(members: list[str], cluster_of: dict, label_of: dict, city_of: dict,
                                   detector: dict, half_of: dict, best_same: dict, group_labels: dict, catalogue,
                                   min_score: float, shown: int = 6) -> None:
    """The same datasets by what became of them (`recall_lost_by_mechanism`): the ones left alone by their best
    score against a dataset of their label in another city (at the minimum score or more, a pair the groups'
    cohesion refused) and by what the detector reads of them; the others by the group they are in."""
    mechanism = recall_lost_by_mechanism(members, cluster_of, label_of)
    print("... by what became of them (figures as above):")
    for row in recall_lost_by_class(members, cluster_of, label_of, city_of, mechanism, list(MECHANISMS), half_of):
        moved = [u for u in members if mechanism.get(u) == row["class"]]
        alone, cumulative = row["alone"], row["cumulative"]
        print(f"  {row['datasets']:4} ({row['per_half'][0]} of half A, {row['per_half'][1]} of B) "
              f"{MECHANISMS[row['class']]}: recall +{alone['b3_r'] - detector['b3_r']:.3f}, F1 {alone['b3_f1']:.3f}; "
              f"after those above: F1 {cumulative['b3_f1']:.3f}")
        if row["class"] == "alone":
            bands = Counter("at the minimum score or more" if best_same[u] >= min_score else
                            "0.25 to the minimum" if best_same[u] >= 0.25 else "0.10 to 0.25" if best_same[u] >= 0.10
                            else "under 0.10" if best_same[u] > 0 else "none" for u in moved)
            rows = [catalogue.row(u) for u in moved]
            print("       their best score against their label in another city: "
                  + ", ".join(f"{bands[band]} {band}" for band in ("at the minimum score or more", "0.25 to the minimum",
                                                                   "0.10 to 0.25", "under 0.10", "none"))
                  + f"; {sum(catalogue.has_title[r] for r in rows)} have a title term that is not a form word, "
                  f"{sum(catalogue.has_description[r] for r in rows)} a description, "
                  f"{sum(catalogue.has_concept[r] for r in rows)} a kind of record")
        else:
            where = Counter((group_labels.get(cluster_of[u], str(cluster_of[u])), label_of[u]) for u in moved)
            print("       " + ", ".join(f"{count} {label} in {group!r}" for (group, label), count in
                                        where.most_common(shown)))


def print_informative_losses(members: list[str], cluster_of: dict, label_of: dict, city_of: dict, strict_of: dict,
                             half_of: dict, best_same: dict, catalogue, min_score: float, shown: int = 12) -> None:
    """The recall a better reading could win: the datasets outside their label's largest group whose text says what
    they are (no dataset of another label says the same, and it says something), by the detector's step that keeps
    each out (`grouping_step`), with what F1 gains if each alone joined (`gains_if_joined`), then the largest one
    by one: which causes are general and which one dataset's own."""
    labels_of_text: dict[tuple, set] = defaultdict(set)
    for u in members:
        if strict_of[u] is not None:
            labels_of_text[strict_of[u]].add(label_of[u])
    largest = largest_group_of_label(members, cluster_of, label_of)
    mechanism = recall_lost_by_mechanism(members, cluster_of, label_of)
    moved = [u for u in members if cluster_of[u] != largest[label_of[u]] and strict_of[u] is not None
             and len(labels_of_text[strict_of[u]]) == 1]
    gains = gains_if_joined(members, cluster_of, label_of, city_of, moved)
    step_of = {u: grouping_step(mechanism[u], best_same[u], min_score, bool(catalogue.concept_lists[catalogue.row(u)]))
               for u in moved}
    print(f"... those whose text says what they are ({len(moved)}), by the step that keeps each from its label's "
          f"group, with the sum of what F1 gains if each alone joined it:")
    for step, meaning in STEPS.items():
        of_step = [u for u in moved if step_of[u] == step]
        if of_step:
            print(f"  {len(of_step):4} ({sum(half_of[u] == 0 for u in of_step)} of half A, "
                  f"{sum(half_of[u] == 1 for u in of_step)} of B) {meaning}: F1 {sum(gains[u] for u in of_step):+.4f}")
    for u in sorted(moved, key=lambda u: -gains[u])[:shown]:
        print(f"    {gains[u]:+.4f} {label_of[u]} ({step_of[u]}, best same-label score {best_same[u]:.2f}): "
              f"{catalogue.titles[catalogue.row(u)]!r}")


def print_precision_lost(members: list[str], cluster_of: dict, label_of: dict, city_of: dict, detector: dict,
                         group_labels: dict, shown: int = 8) -> None:
    """Where B-cubed precision is lost: the groups that hold datasets of several labels, by label, worst first."""
    print(f"where B-cubed precision is lost ({1 - detector['b3_p']:.3f} in all), by group and the label of its "
          f"datasets that meet other labels' there:")
    for group, label, loss in precision_lost_by_group(members, cluster_of, label_of, city_of, group_labels)[:shown]:
        print(f"  {loss:.4f} {label} in {group!r}")


def print_mixed_pairs(members: list[str], cluster_of: dict, label_of: dict, city_of: dict, strict_of: dict,
                      group_labels: dict, catalogue, shown: int = 8) -> None:
    """The same loss as pairs (`mixed_pairs`), with the signals that scored them and the figures if their group were
    split by label: whether the labels cut one text or the detector joined what a reader would keep apart."""
    rows = mixed_pairs(members, cluster_of, label_of, city_of, strict_of)
    split_figures: dict[object, dict] = {}
    print(f"... as pairs of other labels in one group ({sum(len(row['pairs']) for row in rows):,} cross-city pairs), "
          f"by group, with the mean of each signal where both sides have it (and how often they do):")
    for row in rows[:shown]:
        pairs = row["pairs"]
        scored = scoring.score_pairs(catalogue, np.array([catalogue.row(x) for x, _ in pairs]),
                                     np.array([catalogue.row(y) for _, y in pairs]))
        signals = []
        for name, values in scored.signals.items():
            present = values[~np.isnan(values)]
            if len(present):
                signals.append(f"{name} {present.mean():.2f} ({len(present) / len(values):.0%})")
        if row["group"] not in split_figures:
            split = {u: (cluster_of[u], label_of[u]) if cluster_of[u] == row["group"] else cluster_of[u]
                     for u in members}
            split_figures[row["group"]] = clustering_scores(members, split, label_of, city_of)
        figures = split_figures[row["group"]]
        print(f"  {len(pairs):6,} {' / '.join(row['labels'])} in {group_labels.get(row['group'], row['group'])!r}: "
              f"{row['one_text']:,} with a side that reads as the other label does; {', '.join(signals)}; "
              f"the group split by label: F1 {figures['b3_f1']:.4f} (P {figures['b3_p']:.4f})")


def print_minority_splits(members: list[str], cluster_of: dict, label_of: dict, city_of: dict, strict_of: dict,
                          group_labels: dict, catalogue, shown: int = 12) -> None:
    """The same loss by label (`minority_split_gains`): what each minority label costs where it sits, and whether its
    datasets say what the group's most common label's do (the labels' cut) or something else (with their titles)."""
    rows = minority_split_gains(members, cluster_of, label_of, city_of, strict_of)
    print("... each label split off a group whose most common label is another (F1 gained; of one text: its datasets "
          "whose text is that of one of the group's most common label there):")
    for row in rows[:shown]:
        others = [catalogue.titles[catalogue.row(u)] for u in row["other_text"]]
        print(f"  {row['gain']:+.4f} {len(row['datasets'])} {row['label']} beside {row['majority']} in "
              f"{group_labels.get(row['group'], row['group'])!r}, {row['one_text']} of one text"
              + (f"; the others: {', '.join(repr(t) for t in others[:3])}{' ...' if len(others) > 3 else ''}"
                 if others else ""))


def print_misses(label: str, uids: list[str], label_of: dict, city_of: dict, cluster_of: dict,
                 best_same: dict, catalogue, descriptions: dict, group_labels: dict) -> None:
    """A label's datasets outside its largest group: where they went, what the detector read
    and their best score against a dataset of that label in another city (why recall is lost)."""
    members = [u for u in uids if label_of[u] == label]
    if not members:
        print(f"\nno labelled dataset has the label {label!r}")
        return
    largest = largest_group_of_label(members, cluster_of, label_of)[label]
    outside = [u for u in members if cluster_of[u] != largest]
    print(f"\n{label}: {len(members)} datasets, {len(outside)} outside its largest group "
          f"({group_labels.get(largest, 'none')!r}):")
    for u in outside:
        row = catalogue.row(u)
        where = group_labels.get(cluster_of[u], "alone")
        print(f"  [{where}] {city_of[u]}: {catalogue.titles[row]!r} | {(descriptions.get(u) or '')[:80]!r} | "
              f"kind {'/'.join(catalogue.concept_lists[row]) or '-'} | best same-label score {best_same[u]:.2f}")


def real_catalogues(tmp: Path, sample: int) -> None:
    store = Store(tmp / "real.duckdb")
    http = fast_client()
    harvest_pod_2013(store, http)
    harvest_spellarbot(store, http)
    result = overlap.detect(store.con)
    overlap.save(store.con, result)
    c = result.catalogue
    sizes = [len(g.uids) for g in result.groups]
    print(f"\nreal catalogues (16 cities of 2013 + 33 Socrata domains of 2017): {len(c)} comparable datasets, "
          f"{result.candidates} candidate pairs, {len(result.pairs.total)} strong pairs, {len(result.groups)} groups "
          f"(median size {int(np.median(sizes)) if sizes else 0}, largest {max(sizes) if sizes else 0}), "
          f"{sum(result.seconds.values()):.1f} s")
    rng = np.random.default_rng(7)
    picked = sorted(rng.choice(len(result.groups), size=min(sample, len(result.groups)), replace=False))
    for index in picked:
        g = result.groups[index]
        titles = [f"{c.cities[c.row(u)]}: {c.titles[c.row(u)]}" for u in g.uids[:5]]
        print(f"  [{g.group_id}] {g.label} ({len(g.uids)} datasets, {len(g.cities)} places): " + " | ".join(titles))
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=25, help="groups of the real catalogues to print")
    parser.add_argument("--misses", default="", metavar="LABEL[,LABEL...]|all",
                        help="list each label's datasets outside its largest group (e.g. police:incidents)")
    args = parser.parse_args()
    if not GROUNDTRUTH.is_dir() or not FIXTURES.is_dir():
        sys.exit(f"needs ../shared/groundtruth and ../shared/fixtures beside the repository ({SHARED})")
    with tempfile.TemporaryDirectory() as tmp:
        labelled_benchmark(Path(tmp), [m for m in args.misses.split(",") if m])
        real_catalogues(Path(tmp), args.sample)


if __name__ == "__main__":
    main()
