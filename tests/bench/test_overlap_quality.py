"""The quality bench's catalogue entries: what it reads of a labelled dataset's own naming."""
import numpy as np
import pytest

import bench.overlap_quality as quality
from bench.overlap_quality import landing_page_title, words_of
from catalog.overlap import text


def test_a_portal_dataset_page_gives_its_title():
    """OpenPoliceData's `source_url` of real labelled datasets: Socrata, ArcGIS Hub and CKAN pages
    carry the portal's title in their path."""
    assert landing_page_title("https://data.lacity.org/Public-Safety/Crime-Data-from-2010-to-2019/63jg-8b9z") \
        == "Crime Data from 2010 to 2019"
    assert landing_page_title("https://fortlauderdale.data.socrata.com/en/Government/Incident/4gb7-f88q") == "Incident"
    assert landing_page_title("https://opendata.dc.gov/datasets/DCGIS::crime-incidents-in-2008/about") \
        == "crime incidents in 2008"
    assert landing_page_title("https://data.santamonica.gov/dataset/police-incidents/resource/"
                              "ff0f4877-3731-4476-b2ca-065f5819bf12") == "police incidents"


def test_other_pages_and_ids_give_no_title():
    """An item id, the labeller's own pages, a FOIA request and a city's web page name no dataset."""
    for url in ("https://gisdata.tucsonaz.gov/datasets/7b8a2a019e664a37bb7ff86685dda492_2/about",
                "https://live-durhamnc.opendata.arcgis.com/documents/fb3fec2dd387447b8c14968785c14ab2",
                "https://www.openpolicedata.com/CedarLakeIN/Arrests/",
                "https://www.muckrock.com/foi/boston-3/bpd-incident-reports-190347/",
                "http://www.bremertonwa.gov/991/Statistics", "https://openpolicing.stanford.edu/data/", "", None):
        assert landing_page_title(url) is None, url


def test_a_file_name_keeps_an_acronym_with_a_small_word_inside():
    assert words_of("UoF_Race_2022.xlsx") == "UOF Race 2022"
    assert words_of("CityOfChicagoCrimes") == "City Of Chicago Crimes"


def test_informative_title_words_are_read_plainly_not_by_the_detector():
    # an acronym counts as a word whether or not the detector has a reading of it ('CFS' has one,
    # 'FCC' none), ids and words that say nothing do not
    assert quality.informative_title_words("2014CFS") == ["cfs"]
    assert quality.informative_title_words("FCC") == ["fcc"]
    assert quality.informative_title_words("Crime Incidents") == ["crime", "incidents"]
    for says_nothing in ("Dataset", "Tables", "MPD", "yg821jf8611", "7b8a2a019e664a37bb7ff86685dda492_2"):
        assert quality.informative_title_words(says_nothing) == [], says_nothing
    assert quality.informative_title_words("sacramento report data 2020", frozenset({"sacramento"})) == []


def test_a_place_spelt_two_ways_is_one_jurisdiction_and_a_dataset_listed_twice_is_kept_once():
    rows = [
        {"jurisdiction": "Chicago", "state": "Illinois", "domain_or_url": "https://data.cityofchicago.org",
         "dataset_id": "ijzp-q8t2"},
        {"jurisdiction": "City of Chicago", "state": "", "domain_or_url": "data.cityofchicago.org",
         "dataset_id": "v6vf-nfxy"},
    ]
    states = quality.place_states(rows)
    assert states == {"chicago": "Illinois"}
    if not (quality.GROUNDTRUTH / "labelled_datasets_combined.csv").is_file():
        pytest.skip(f"../shared/groundtruth not found beside the repository: {quality.GROUNDTRUTH}")
    labels = quality.load_labels()
    cities = {r["city"] for r in labels}
    assert "Chicago, Illinois" in cities and "Chicago" not in cities and "City of Chicago" not in cities
    keys = [(quality.host_of(r["domain_or_url"]), r["dataset_id"]) for r in labels if r["dataset_id"]]
    assert len(keys) == len(set(keys))


def test_the_strict_ceiling_reads_what_a_text_says_besides_its_containers_wording():
    """Real labelled entries: a container's wording (a records request's, a file format's, a portal layer's
    name) says nothing of the records, but what the text says besides it does, as the detector reads it."""
    fort_worth = text.own_place_words("Fort Worth, Texas", "gt-fort-worth-texas")
    muckrock = "FOIA data from MuckRock"
    assert quality.strict_signature("Use of force 2022", muckrock, fort_worth) == \
        quality.strict_signature("Use of Force", "", fort_worth) == (("force", "use"), ())
    assert quality.strict_signature("Arrest 2014 XLSX", "", frozenset()) == (("arrest",), ())
    tucson = text.own_place_words("Tucson, Arizona")
    assert quality.strict_signature("Open Data Public Safety", "", tucson) is None
    assert quality.strict_signature("Open Data Public Safety", "Open Data item contains calls for service events "
                                    "that were responded to by Tucson Police Department personnel", tucson) is not None
    for title, description in (
            ("evidence com case P008746 package 1 of 1 created 2024 05 28T12 58 42Z", muckrock),
            ("Records Request Download PRR 2024 111 2024 03 14 02 22 05", "FOIA data from muckrock.com"),
            ("RTKL 120 03 2023 Records sent 2", "Right-to-Know Request from MuckRock"),
            ("December 2017 XLSX", "NOTE: Bremerton data is stored in 1 file per month. OPD combines 12 months of "
                                   "data into a single annual dataset.")):
        assert quality.strict_signature(title, description, fort_worth) is None, title


def test_the_text_ceiling_puts_datasets_of_one_text_in_the_group_of_their_most_common_label():
    signature = {"a": ("stop",), "b": ("stop",), "c": ("stop",), "d": ("arrest",), "e": None}
    label = {"a": "traffic", "b": "traffic", "c": "stops", "d": "arrests", "e": "arrests"}
    city = {u: u for u in signature}
    scores, conflicting = quality.text_ceiling(list(signature), signature, label, city)
    assert conflicting == 3
    # 'c' shares the traffic group (precision 2/3 for a and b, 1/3 for c); 'e' stays alone (recall 1/2 for d, e)
    assert scores["b3_p"] == pytest.approx((2 / 3 + 2 / 3 + 1 / 3 + 1 + 1) / 5)
    assert scores["b3_r"] == pytest.approx((1 + 1 + 1 + 1 / 2 + 1 / 2) / 5)


def test_the_kind_signature_joins_datasets_of_one_kind_whatever_their_words():
    # Cedar Lake's '2014Citations' and Sacramento's 'sacramento citation data 2019' (labelled traffic citations
    # and citations) are one kind to the detector: a reader of its kinds puts them in one group
    cedar_lake, sacramento = text.own_place_words("Cedar Lake, Indiana"), text.own_place_words("Sacramento, California")
    assert quality.kind_signature(("citation",), "2014Citations", "", cedar_lake) == \
        quality.kind_signature(("citation",), "sacramento citation data 2019", "", sacramento) == ("kind", "citation")
    assert quality.kind_signature(("citation",), "2014Citations", "", cedar_lake) != \
        quality.kind_signature(("traffic_stop",), "2014Citations", "", cedar_lake)
    # no kind read: the strict signature, which leaves what says nothing alone
    assert quality.kind_signature((), "Open Data Public Safety", "", text.own_place_words("Tucson, Arizona")) is None
    assert quality.kind_signature((), "Incident", "", frozenset()) == quality.strict_signature("Incident", "", frozenset())


def test_recall_lost_to_a_dataset_left_alone_counts_its_grouped_peers_loss_too():
    """B-cubed recall is lost on both sides of a missed pair: 'd', left alone, loses 3 of its 4 peers (its own
    0.75 / 7 of recall) and costs 'a', 'b' and 'c' one peer each (0.25 / 7 each), so grouping it gains 1.5 / 7,
    twice its own loss. 'f' sits in another label's group: a class joining its label's largest group is
    measured alone and after the classes before it."""
    label = {"a": "x", "b": "x", "c": "x", "d": "x", "e": "y", "f": "y", "g": "y"}
    cluster = {"a": 1, "b": 1, "c": 1, "d": "single:d", "e": 2, "f": 1, "g": 2}
    city = {u: u for u in label}
    kind = {"d": "nothing", "f": "informative"}
    rows = {row["class"]: row for row in quality.recall_lost_by_class(list(label), cluster, label, city, kind,
                                                                      ["informative", "nothing"])}
    before = quality.clustering_scores(list(label), cluster, label, city)["b3_r"]
    assert rows["nothing"]["datasets"] == 1 and rows["informative"]["datasets"] == 1
    # 'f' joins 'e' and 'g': it gains two peers (1/3 -> 1), they one each (2/3 -> 1)
    assert rows["informative"]["alone"]["b3_r"] - before == pytest.approx((2 / 3 + 1 / 3 + 1 / 3) / 7)
    assert rows["nothing"]["alone"]["b3_r"] - before == pytest.approx(1.5 / 7)
    assert rows["nothing"]["own_loss"] == pytest.approx(0.75 / 7)
    assert rows["nothing"]["cumulative"]["b3_r"] == pytest.approx(1.0)
    assert rows["nothing"]["cumulative"]["b3_p"] == pytest.approx(1.0)


def test_map_ranks_a_dataset_s_group_first_as_similar_lists_it():
    """'a' scores 'c' (another label) above 'b' (its own), but 'b' is in its group: ranked as `civicat similar`
    lists them, 'b' comes first (AP 1); by score alone it comes second (AP 1/2). A method without groups ranks
    by score."""
    uids = ["a", "b", "c"]
    label = {"a": "x", "b": "x", "c": "y"}
    city = {u: u for u in uids}
    similarity = np.array([[0, 0.4, 0.6], [0.4, 0, 0.1], [0.6, 0.1, 0]])
    grouped = {"a": 1, "b": 1, "c": "single:c"}
    # 'c' has no peer of its label and is not counted; 'b' ranks 'a' first either way
    assert quality.mean_average_precision(similarity, uids, label, city, grouped) == pytest.approx(1.0)
    assert quality.mean_average_precision(similarity, uids, label, city) == pytest.approx((0.5 + 1) / 2)


def test_precision_lost_is_counted_by_group_and_label_and_sums_to_the_b_cubed_loss():
    """'Police stops' holds 'a' and 'b' (stops, of one city) with 'c' (traffic stops, of another, as the Stanford
    files labelled so): 'a' and 'b' each have one other-city peer, of another label (1/2 lost each), 'c' two of two
    (2/3 lost); 'd' and 'e', alone, lose nothing. Each (group, label) row carries its datasets' loss over all the
    datasets, worst first, and the rows sum to 1 - B-cubed precision."""
    label = {"a": "stops", "b": "stops", "c": "traffic", "d": "traffic", "e": "arrests"}
    cluster = {"a": 1, "b": 1, "c": 1, "d": "single:d", "e": "single:e"}
    city = {"a": "x", "b": "x", "c": "y", "d": "z", "e": "w"}
    rows = quality.precision_lost_by_group(list(label), cluster, label, city, {1: "Police stops"})
    assert rows == [("Police stops", "stops", pytest.approx((1 / 2 + 1 / 2) / 5)),
                    ("Police stops", "traffic", pytest.approx((2 / 3) / 5))]
    precision = quality.clustering_scores(list(label), cluster, label, city)["b3_p"]
    assert sum(loss for _, _, loss in rows) == pytest.approx(1 - precision)


def test_recall_lost_by_class_says_which_half_of_the_jurisdictions_each_dataset_is_in():
    """A dataset moved into its label's group moves only its own half's figure (the halves split jurisdictions):
    the rows count each class's datasets per half."""
    label = {"a": "x", "b": "x", "c": "x"}
    cluster = {"a": 1, "b": 1, "c": "single:c"}
    city = {u: u for u in label}
    half = {"a": 0, "b": 1, "c": 1}
    (row,) = quality.recall_lost_by_class(list(label), cluster, label, city, {"c": "nothing"}, ["nothing"], half)
    assert row["per_half"] == [0, 1]


def test_recall_lost_by_mechanism_tells_a_dataset_left_alone_from_a_split_label_and_a_mixed_group():
    """'x' has its largest group 1 ('a', 'b', 'c'); 'd' is in no group (alone), 'e' in group 2 beside no other
    label (the label split in two), 'f' in group 3, mostly of 'y' (another label's group). 'y' is whole in group 3.
    A group where two labels tie ('g' of 'z' and 'h' of 'w', group 4) splits each label: 'split', not 'other'."""
    label = {"a": "x", "b": "x", "c": "x", "d": "x", "e": "x", "f": "x", "p": "y", "q": "y", "g": "z", "i": "z",
             "j": "z", "h": "w", "k": "w", "m": "w"}
    cluster = {"a": 1, "b": 1, "c": 1, "d": "single:d", "e": 2, "f": 3, "p": 3, "q": 3, "g": 4, "h": 4,
               "i": 5, "j": 5, "k": 6, "m": 6}
    assert quality.recall_lost_by_mechanism(list(label), cluster, label) == {
        "d": "alone", "e": "split", "f": "other", "g": "split", "h": "split"}
    # every dataset outside its label's largest group has a mechanism, and no other has one
    largest = quality.largest_group_of_label(list(label), cluster, label)
    assert set(quality.recall_lost_by_mechanism(list(label), cluster, label)) == {
        u for u in label if cluster[u] != largest[label[u]]}


def test_best_same_label_scores_reads_only_other_cities_of_the_same_label():
    """'a' scores 0.9 against 'b' (its own city) and 0.8 against 'c' (another label): its best is 'd', 0.3. 'c' has
    no peer of its label in another city: 0."""
    uids = ["a", "b", "c", "d"]
    label = {"a": "x", "b": "x", "c": "y", "d": "x"}
    city = {"a": "one", "b": "one", "c": "two", "d": "three"}
    similarity = np.array([[0, 0.9, 0.8, 0.3], [0.9, 0, 0.1, 0.2], [0.8, 0.1, 0, 0.5], [0.3, 0.2, 0.5, 0]])
    best = quality.best_same_label_scores(similarity, uids, label, city)
    assert best == pytest.approx({"a": 0.3, "b": 0.2, "c": 0.0, "d": 0.3})


def test_mixed_pairs_count_each_group_s_pairs_of_other_labels_and_those_the_labels_cut_where_a_text_is_one():
    """'Police stops' holds 'a' (stops, city x) and 'c' (traffic stops, city y), both of the Stanford text 'T', 'r'
    (stops, city z, a RIPA text 'R') and 'b' (stops, city x again): the cross-city pairs of other labels are a–c,
    b–c and c–r, each with a side that reads as a dataset of the other label does ('c' reads as 'a', a stops
    dataset, though 'b' and 'r' do not read as 'c'); 'd' (traffic stops, text 'U') and 'e' (arrests, 'V'), in
    another group, read as no dataset of the other's label: their pair counts, the detector's own; 'f' alone
    counts nothing, nor does the same-city pair a–b."""
    label = {"a": "stops", "b": "stops", "c": "traffic", "r": "stops", "d": "traffic", "e": "arrests", "f": "stops"}
    city = {"a": "x", "b": "x", "c": "y", "r": "z", "d": "x", "e": "y", "f": "w"}
    cluster = {"a": 1, "b": 1, "c": 1, "r": 1, "d": 2, "e": 2, "f": "single:f"}
    text_of = {"a": "T", "b": "B", "c": "T", "r": "R", "d": "U", "e": "V", "f": None}
    rows = quality.mixed_pairs(list(label), cluster, label, city, text_of)
    assert [(row["group"], row["labels"], sorted(row["pairs"]), row["one_text"]) for row in rows] == [
        (1, ("stops", "traffic"), [("a", "c"), ("b", "c"), ("r", "c")], 3),
        (2, ("arrests", "traffic"), [("e", "d")], 0)]


def test_the_grouping_step_tells_the_threshold_from_the_cohesion_a_split_and_a_reading_into_another_group():
    """A dataset left alone whose best pair with its label is under the minimum score is lost to the threshold; at
    the minimum or more, to the groups' centroids that refused the pair. One in a second group of its label is a
    split; one in another label's group went there by the kind its text reads, or by its words when it reads none."""
    assert quality.grouping_step("alone", 0.22, 0.35, has_kind=True) == "threshold"
    assert quality.grouping_step("alone", 0.35, 0.35, has_kind=False) == "cohesion"
    assert quality.grouping_step("alone", 0.43, 0.35, has_kind=False) == "cohesion"
    assert quality.grouping_step("split", 0.69, 0.35, has_kind=False) == "split"
    assert quality.grouping_step("other", 1.0, 0.35, has_kind=True) == "kind"
    assert quality.grouping_step("other", 0.2, 0.35, has_kind=False) == "words"
    assert set(quality.STEPS) == {"threshold", "cohesion", "split", "kind", "words"}


def test_gains_if_joined_measure_each_dataset_alone_against_the_figures_now():
    """'d' (left alone) and 'f' (in 'y''s group) are each moved alone into their label's largest group: the gain is
    the B-cubed F1 of that move less today's, and the two moves are measured apart (neither counts the other). 'h',
    of a label none of whose datasets is grouped, joins a group of its label's own name: alone there it gains
    nothing until its peer 'i' joins too."""
    label = {"a": "x", "b": "x", "c": "x", "d": "x", "e": "y", "f": "y", "g": "y", "h": "z", "i": "z"}
    cluster = {"a": 1, "b": 1, "c": 1, "d": "single:d", "e": 2, "f": 1, "g": 2, "h": "single:h", "i": "single:i"}
    city = {u: u for u in label}
    uids = list(label)
    gains = quality.gains_if_joined(uids, cluster, label, city, ["d", "f", "h"])
    now = quality.clustering_scores(uids, cluster, label, city)["b3_f1"]
    for moved, into in (("d", 1), ("f", 2)):
        assert gains[moved] == pytest.approx(
            quality.clustering_scores(uids, dict(cluster, **{moved: into}), label, city)["b3_f1"] - now)
        assert gains[moved] > 0
    assert gains["h"] == pytest.approx(0.0)
    both = dict(cluster, h="label:z", i="label:z")
    assert quality.clustering_scores(uids, both, label, city)["b3_f1"] > now


def test_minority_split_gains_cost_each_label_where_it_sits_and_tell_the_labels_cut_from_other_text():
    """Group 1 holds 'stops' of cities a, b, g (text 'T') beside 'traffic' of cities c (text 'T': the labels' cut of
    one text) and d (text 'V': it says something else); group 2 is of one label and costs nothing. Splitting
    'traffic' off group 1 gains what the figures say it gains, one of its two of one text with 'stops'."""
    label = {"c": "traffic", "a": "stops", "b": "stops", "g": "stops", "d": "traffic", "e": "x", "f": "x"}
    cluster = {"a": 1, "b": 1, "c": 1, "d": 1, "e": 2, "f": 2, "g": 1}
    city = {u: u for u in label}
    text_of = {"a": ("T",), "b": ("T",), "c": ("T",), "d": ("V",), "e": None, "f": None, "g": ("T",)}
    (row,) = quality.minority_split_gains(list(label), cluster, label, city, text_of)
    assert (row["group"], row["label"], row["majority"]) == (1, "traffic", "stops")
    assert sorted(row["datasets"]) == ["c", "d"] and row["one_text"] == 1 and row["other_text"] == ["d"]
    split = dict(cluster, c=(1, "traffic"), d=(1, "traffic"))
    now = quality.clustering_scores(list(label), cluster, label, city)["b3_f1"]
    assert row["gain"] == pytest.approx(quality.clustering_scores(list(label), split, label, city)["b3_f1"] - now)
    assert row["gain"] > 0
    # a text that says nothing (None) is never of one text with anything
    (row,) = quality.minority_split_gains(list(label), cluster, label, city, dict(text_of, c=None))
    assert row["one_text"] == 0 and sorted(row["other_text"]) == ["c", "d"]
