"""What the catalogue's features read off a dataset's title: a boundary file is a set of
shapes, a table of counts by area is not."""
import numpy as np

from catalog.overlap import features, text
from tests.catalog.overlap.test_groups import rows_catalogue


def test_a_table_of_counts_by_area_is_no_boundary_file():
    """'Police Districts' and 'Oakland City Council Districts' are shapes; Boston's 'Race
    Distribution By City Council Districts' and Seattle's 'Crime Stats by 1990 Census Tract'
    are tables of counts by those areas, records to compare with other counts, not with
    the shapes ('by' anywhere before the area, not only just before it)."""
    titles = [("Chicago", "Boundaries - Police Districts"), ("Oakland", "Oakland City Council Districts"),
              ("Boston", "Race Distribution By City Council Districts"),
              ("Seattle", "Seattle Crime Stats by 1990 Census Tract 1996-2007"),
              ("Los Angeles", "2010 Census Populations by Council District")]
    assert rows_catalogue(titles).is_boundary.tolist() == [True, True, False, False, False]


def test_a_table_of_values_for_all_areas_is_no_boundary_file():
    """Seattle's development capacity of each parcel and Boston's census data of each planning
    district or neighbourhood are tables about the areas, not their shapes (they had joined
    'Parcels' and 'Planning districts')."""
    titles = [("Seattle", "Capacity For All Parcels 2015"), ("Boston", "2010 Census data: all Boston planning districts"),
              ("Missouri", "Missouri Unemployment Rates For Various Regions"),
              ("Baltimore", "Planning Districts"), ("New Orleans", "NOLA Parcels")]
    assert rows_catalogue(titles).is_boundary.tolist() == [False, False, False, True, True]


def test_areas_named_before_their_publisher_are_a_boundary_file():
    """San Francisco's 'Bureau of Fire Prevention Districts - Fire Department' made a 'Fire prevention' group with
    Jackson's monthly fire prevention figures: the department after ' - ' publishes the districts."""
    titles = [("San Francisco", "Bureau of Fire Prevention Districts - Fire Department"),
              ("Jackson", "Fire Prevention (Monthly)"), ("Chicago", "Crimes - Police Department")]
    assert rows_catalogue(titles).is_boundary.tolist() == [True, False, False]


def test_areas_with_the_date_each_was_drawn_are_a_boundary_file_and_figures_over_time_are_not():
    """Chicago's 'Landmark Districts' (a name and a designation date) sat in the 'Landmarks' group of
    Seattle's landmarks, apart from its own map of them and SF's and NYC's in 'Landmark districts': its
    date column had read as records. Dates beside numbers are figures over time: NOLA's land area by
    year, Austin's traffic counts by study area."""
    def boundary(title, columns):
        rows = {"uid": ["c0:d0"], "city": ["A"], "portal_id": ["c0"], "title": [title], "description": [None],
                "keywords": [[]], "themes": [[]], "asset_type": ["dataset"]}
        return bool(features.build(rows, {"c0:d0": [(n, text.column_key(n), t) for n, t in columns]}, {}).is_boundary[0])

    assert boundary("Landmark Districts", [("DISTRICT NAME", "text"), ("DESIGNATION DATE", "datetime")])
    assert not boundary("Land Area (1985 - Present)", [("Date", "datetime"), ("Year", "number"),
                                                       ("County-Parish", "text"), ("LandArea_SqMi", "number")])
    assert not boundary("Traffic Count Study Area", [("24 HOUR VOLUME COUNT LOCATIONS", "text"),
                                                     ("TOTAL VOLUME", "number"), ("DATE", "datetime")])


def test_a_file_s_form_is_no_subject_and_no_boundary():
    """The real catalogues' map files: 'KML', 'KMZ', 'Shapefile' name a file's form, not what it
    holds, so the words before them say whether its shapes are areas (Baltimore's '2010 Census
    Tracts - KMZ', SF's '... Districts (Zipped Shapefile Format)') or points (Chicago's 'Ward
    Offices - KML' are the aldermen's offices, 'Fire Stations - KMZ' the stations), and a 'KML'
    file shares its subject with the table it draws ('Farmers Markets - KML' / 'Farmers Markets')."""
    titles = [("Baltimore", "2010 Census Tracts - KMZ"), ("Baltimore", "2010 Census Tracts - Shape"),
              ("San Francisco", "California State Senate Districts (Zipped Shapefile Format)"),
              ("Chicago", "Boundaries - Wards - KML"), ("Chicago", "Ward Offices - KML"), ("Chicago", "Ward Offices"),
              ("Chicago", "Ward Offices - Shapefiles"), ("Baltimore", "Fire Stations - KMZ")]
    assert rows_catalogue(titles).is_boundary.tolist() == [True, True, True, True, False, False, False, False]
    assert text.terms("Farmers Markets - KML") == text.terms("Farmers Markets")
    assert text.terms("CTA - Bus Routes - Shapefile") == text.terms("CTA - Bus Routes")

# twelve cities' permit tables, each with its own mix of fifteen columns; the column
# signal of every pair, to the bit
COLUMN_SIGNAL = """
import numpy as np

from catalog.overlap import features, text
names = ["permit_no", "Issue Date", "Work Description", "Contractor Name", "Street Address", "Fee Paid", "Zip",
         "Valuation", "Applicant", "Status", "Latitude", "Longitude", "Permit Type", "Inspector", "Ward"]
n = 12
rows = {"uid": [f"c{i}:d{i}" for i in range(n)], "city": [f"C{i}" for i in range(n)],
        "portal_id": [f"c{i}" for i in range(n)], "title": ["Building Permits"] * n, "description": [None] * n,
        "keywords": [[]] * n, "themes": [[]] * n, "asset_type": ["dataset"] * n}
columns = {uid: [(x, features.text.column_key(x), "text") for j, x in enumerate(names) if (i * 7 + j * 3) % 5]
           for i, uid in enumerate(rows["uid"])}
c = features.build(rows, columns, {})
print((c.columns @ c.columns.T).toarray().tobytes().hex())
"""


def test_the_column_reading_does_not_depend_on_the_hash_seed():
    """Column keys came in a set's order, which changes with Python's hash seed; so did the
    order of the sums over them, and with it which of two tied candidates a run kept (the
    real catalogues gave 95,806 to 95,811 candidate pairs from one catalogue)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    # (the four at once: each is mostly its imports)
    runs = [subprocess.Popen([sys.executable, "-c", COLUMN_SIGNAL], stdout=subprocess.PIPE, text=True, cwd=root,
                             env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(root)})
            for seed in ("1", "2", "3", "4")]
    outputs = {run.communicate(timeout=300)[0] for run in runs}
    assert [run.returncode for run in runs] == [0] * 4
    assert len(outputs) == 1, outputs


def described_catalogue(entries):
    """(city, title, description) rows built as `features.load` builds them."""
    n = len(entries)
    rows = {"uid": [f"c{i}:d{i}" for i in range(n)], "city": [city for city, _, _ in entries],
            "portal_id": [f"c{i}" for i in range(n)], "title": [title for _, title, _ in entries],
            "description": [description for _, _, description in entries], "keywords": [[]] * n,
            "themes": [[]] * n, "asset_type": ["dataset"] * n}
    return features.build(rows, {}, {})


def test_a_title_of_an_acronym_alone_reads_as_its_description_spells_it():
    """Chicago's '2019 ISR' and NYPD's 'sqf 2010' files name their records by acronyms their
    descriptions spell out; Hawaii's 'CIP 2011-2012' is its capital improvement projects."""
    isr = "This page contains Chicago Police Department Investigatory Stop Report (ISR) data"
    sqf = "NYPD Stop Question and Frisk Data"
    cip = ". Capital Improvement Projects (CIP) are renovations, repairs, and major maintenance to existing facilities"
    assert features._with_acronyms_spelled("2019 ISR", isr) == "2019 ISR (Investigatory Stop Report)"
    assert features._with_acronyms_spelled("sqf 2010 csv", sqf) == "sqf 2010 csv (Stop Question and Frisk)"
    assert features._with_acronyms_spelled("CIP 2011-2012", cip) == "CIP 2011-2012 (Capital Improvement Projects)"
    c = described_catalogue([("Chicago", "2019 ISR", isr), ("New York City", "sqf 2010 csv", sqf)])
    # the kind is the title's own now, and the titles share 'stop'
    assert c.concept_lists == [("pedestrian_stop",), ("pedestrian_stop",)]
    assert c.concept_confidence.tolist() == [1.0, 1.0]
    assert (c.title[0] @ c.title[1].T).toarray()[0, 0] > 0
    assert c.titles == ["2019 ISR", "sqf 2010 csv"]   # shown as the publisher wrote them


def test_an_acronym_beside_other_words_or_naming_the_publisher_stays_as_it_is():
    """Oregon's 'Construction Contracts: ODOT: ...' says what the records are without 'ODOT';
    NYC's 'MTA Data' spells an authority, its publisher, and 'LMPD' is a police department;
    an acronym the description does not spell stays too."""
    cases = [("Construction Contracts: ODOT: Fiscal Year 2013",
              "Summary of Oregon Department of Transportation construction contracts that are not in ORPIN"),
             ("MTA Data", "Information pertaining to MTA (Metropolitan Transportation Authority of the State of New "
                          "York) subways, buses, commuter rail, bridges, and tunnels"),
             ("LMPD STOPS", "Louisville Metro Police Department stops"),
             ("R2R 2014", "Response to Resistance"), ("2019 ISR", "Stops made by Chicago police officers"),
             ("2019 ISR", None)]
    for title, description in cases:
        assert features._with_acronyms_spelled(title, description) == title


def test_a_title_its_description_says_the_records_of_reads_with_them():
    """Raleigh's budget lines are titled by the office ('Inspections', 'Human Service Agencies')
    and described as its budget: they hold a budget, not NYC's DCA 'Inspections'. A description
    that repeats its title and goes on to other things names no records of it."""
    raleigh = "Inspections FY13 Adopted And FY14 Proposed Budgets"
    assert features._with_records_described("Inspections", raleigh) == "Inspections (budgets)"
    assert features._with_records_described("Code Enforcement All Violations",
                                             "Code Enforcement All Violations. Connected to blightstatus") \
        == "Code Enforcement All Violations"
    assert features._with_records_described(
        "Wastewater Treatment Plants", "Wastewater Treatment Plants Visit the below link for info on SPEDES permits"
    ) == "Wastewater Treatment Plants"
    c = described_catalogue([("Raleigh", "Inspections", raleigh),
                             ("New York", "Inspections", "This data set features DCA inspections during the last "
                                                         "and current calendar year"),
                             ("Jackson", "Jackson Revenue Budget", None)])
    budget, inspection = text.FAMILY_BITS["budget"], text.FAMILY_BITS["inspection"]
    # (a revenue budget holds the budget's revenue, as a 'Budget Revenue' does)
    assert c.records_named.tolist() == [budget, inspection, text.FAMILY_BITS["revenue"]]
    assert c.titles[0] == "Inspections"
    from catalog.overlap import scoring   # the budget line and the inspections link no group
    assert scoring.told_apart(c, scoring.score_pairs(c, np.array([0]), np.array([1]))).tolist() == [True]


def test_records_a_description_says_the_records_come_with_are_not_what_the_title_holds():
    """Only the head of the title's own phrase counts: records named after a comma, a
    preposition or an article are what the title's records are of or come with (review 8,
    finding 5: the appended word made the title's own record word a modifier, so 'Food
    Inspections' became violations and left the food-inspections group)."""
    cases = [("Food Inspections", "Food inspections of restaurants, with the violations found."),
             ("Building Permits", "Building permits issued since 2010 and their inspections."),
             ("Building Permits", "Building Permits with related inspections and violations, updated daily"),
             ("Restaurant Inspections", "Restaurant inspections and the resulting violations for all food establishments"),
             ("Code Violations", "Code violations found during inspections by the code enforcement office"),
             ("Business Licenses", "Business licenses issued by the city, including permits"),
             ("Employee Salaries", "Employee salaries from the adopted budget"),
             ("311 Service Requests", "311 service requests, including permit requests"),
             ("Housing Code Enforcement", "Housing Code Enforcement data from 2013 to the present , including "
                                          "violations identified")]   # Montgomery County
    for title, description in cases:
        assert features._with_records_described(title, description) == title
    c = described_catalogue([("Chicago", "Food Inspections",
                              "Inspections of restaurants and other food establishments in Chicago"),
                             ("San Francisco", "Restaurant Inspections", "Health inspections of restaurants"),
                             ("Austin", "Food Establishment Inspections", "Inspection scores of food establishments"),
                             ("Seattle", "Food Inspections", "Food inspections of restaurants, with the violations found.")])
    assert c.records_named.tolist() == [text.FAMILY_BITS["inspection"]] * 4
    from catalog import overlap
    from catalog.overlap import scoring
    scored = scoring.score_pairs(c, np.array([3]), np.array([0]))
    assert scoring.told_apart(c, scored).tolist() == [False] and scored.total[0] > 0.8
    groups = overlap.detect_in(c).groups
    assert [sorted(g.uids) for g in groups] == [sorted(c.uids)]


def test_an_acronym_of_a_publisher_or_in_any_alphabet_is_spelled_right():
    """Review 8, finding 8: an acronym spelled after 'Department of', or as a police force, a
    patrol or a university, names the publisher, not the records; a word with an accent is one
    word ('CAFÉ', not 'CAF'); initials alone spell nothing; a huge description is read only
    for its opening."""
    publishers = [("HUD", "Data from the U.S. Department of Housing and Urban Development (HUD) on public housing"),
                  ("HHS", "U.S. Department of Health and Human Services grants"),
                  ("CHP 2015", "California Highway Patrol collision records"),
                  ("MSP", "Michigan State Police traffic crash reports"),
                  ("CUNY", "City University of New York enrollment"),
                  ("ISR", "I S R")]
    for title, description in publishers:
        assert features._with_acronyms_spelled(title, description) == title
    assert features._with_acronyms_spelled("CAFÉ", "Centre Alimentaire Français Écologique") \
        == "CAFÉ (Centre Alimentaire Français Écologique)"
    assert features._with_acronyms_spelled("RMS", "Records Management System incidents") \
        == "RMS (Records Management System)"
    # read for its opening only (DESCRIPTION_CHARS), whatever its length: record words past it are not
    # the title's, and a 5 MB description costs what its opening does
    opening = "Inspections" + " " * (features.DESCRIPTION_CHARS - len("Inspections"))
    assert features._with_records_described("Inspections", opening + "Proposed Budgets") == "Inspections"
    assert features._with_records_described("Inspections", opening[:40] + "Proposed Budgets") \
        == "Inspections (budgets)"
    assert features._with_records_described("Inspections", "Inspections " + "x" * 5_000_000) == "Inspections"


def test_explanations_and_labels_quote_the_publishers_title_words():
    """Review 8, finding 9: the words a description spells an acronym with, or names a title's
    records with, were quoted as title words ("titles share 'improvement projects'" of Hawaii's
    'CIP 2011-2012'; Hartford's 'CDBG 1998 to 2015' grouped as 'Development block'). They are
    said to be the description's; labels are built from the titles as written."""
    cip = (". Capital Improvement Projects (CIP) are renovations, repairs, and major maintenance to existing "
           "facilities, landscape improvements, new construction, land acquisition, and utility modifications.")
    c = described_catalogue([
        ("Hawaii", "CIP 2011-2012", cip),
        ("Illinois", "SSMMA Capital Improvement Project",
         "This dataset details Capital Improvement Projects in the Chicago Southland region."),
        ("Hartford", "CDBG 1998 to 2015", "Community Development Block Grant awards to community-based agencies FY "
                                          "1998 to current. Updated on a Yearly basis"),
        ("Maryland", "Community Development Block Grant Awards (CDBG)",
         "Community Development Block Grant Program funds help strengthen Maryland's communities"),
        ("Raleigh", "Inspections", "Inspections FY13 Adopted And FY14 Proposed Budgets"),
        ("New York", "Inspections", "This data set features DCA inspections during the last and current calendar year")])
    from catalog import overlap
    from catalog.overlap import scoring

    def explained(a, b):
        scored = scoring.score_pairs(c, np.array([a]), np.array([b]))
        return scoring.explain(c, a, b, {k: float(v[0]) for k, v in scored.signals.items()})

    # (CIP, a capital improvement program, is read so in any title; the description says which words it stands for)
    assert explained(0, 1).startswith("titles share 'cip' ↔ 'capital improvement', "
                                      "'cip (Capital Improvement Projects, per its description)'")
    assert "improvement projects'" not in explained(0, 1)
    assert "'cdbg (Community Development Block Grant, per its description)'" in explained(2, 3)
    assert "('Inspections (budgets, per its description)' vs 'inspections')" in explained(4, 5)
    # the titles as read still meet: the spelled acronym links the two capital improvement tables
    assert c.title_surfaces(0)["capital_improvement+project"] == \
        "cip (Capital Improvement Projects, per its description)"
    assert [term for term, _ in c.title_surface_lists[0]] == ["capital_improvement", "cip"]
    labels = {g.label: sorted(c.titles[c.row(u)] for u in g.uids) for g in overlap.detect_in(c).groups}
    assert labels["CDBG"] == ["CDBG 1998 to 2015", "Community Development Block Grant Awards (CDBG)"]
    assert not any("block" in label.lower() for label in labels)


def test_the_publisher_stored_with_a_dataset_tells_whether_its_words_are_about_policing(tmp_path):
    from catalog.store import Store
    store = Store(tmp_path / "c.duckdb")
    for uid, title, publisher in [("a:1", "Incident", "Fort Lauderdale Police Department"),
                                  ("b:1", "Incident", "Parks and Recreation"), ("c:1", "Crimes", None)]:
        portal_id, source_id = uid.split(":")
        store.con.execute("""INSERT INTO datasets (uid, portal_id, city, portal_kind, source_id, title, publisher,
                             asset_type, first_seen, last_seen, last_changed, raw_hash)
                             VALUES (?, ?, ?, 'dcat-us', ?, ?, ?, 'dataset', now(), now(), now(), 'h')""",
                          [uid, portal_id, portal_id.upper(), source_id, title, publisher])
    c = features.load(store.con)
    assert c.concept_lists[c.row("a:1")] == ("crime_incident",)
    assert c.concept_lists[c.row("b:1")] == ()
    assert c.concept_lists[c.row("c:1")] == ("crime_incident",)
    store.close()


def test_a_data_disclaimer_s_numbered_caveats_say_nothing_of_what_the_data_holds():
    """Austin's 'R2R 2010' (its description's own words cut to 'Respons') sat in 'Crime incidents' by its police
    data disclaimer, "may differ from official APD crime data", and held New York's 'School Safety Report' there;
    a description after its caveats, or under a heading that says 'Disclaimer', is read as before."""
    caveats = ("AUSTIN POLICE DEPARTMENT DATA DISCLAIMER\n1. The data provided are for informational use only and "
               "may differ from official APD crime data.\n2. APD's crime database is continuously updated, so "
               "reports run at different times may produce different results.")
    rows = {"uid": ["a:1", "a:2", "b:3"], "city": ["Austin", "Austin", "New Orleans"], "portal_id": ["a", "a", "b"],
            "title": ["R2R 2010", "R2R 2015", "Calls for Service 2011"],
            "description": ["Respons" + caveats, "Response to Resistance dataset for 2015.\n" + caveats,
                            "Data Description and Disclaimer\nThis dataset reflects incidents that have been reported "
                            "to the New Orleans Police Department in 2011."],
            "keywords": [[]] * 3, "themes": [[]] * 3, "asset_type": ["dataset"] * 3}
    c = features.build(rows, {}, {})
    assert c.concept_lists == [(), ("use_of_force",), ("calls_for_service",)]


def test_an_accident_a_description_names_off_the_road_is_no_traffic_crash():
    """Missouri's 'First Reports of Injury by County' (workplace injuries, "based on accident site location") and
    Maryland's 'DGS Personnel Report' ("... sick leave, and accident leave") are no crashes; a description that
    puts its accidents on the road, and a police department's title 'Accidents', still name them."""
    from tests.portals.catalogues import fixture_datasets
    fixtures = fixture_datasets()
    entries = [("Missouri", *fixtures[("data.mo.gov", "p7xr-4mcb")]),
               ("Maryland", *fixtures[("data.maryland.gov", "pz8k-gpmz")]),
               ("New York State", *fixtures[("data.ny.gov", "q7iu-6j5f")]),
               ("Bloomington, Indiana", "Accidents", "Bloomington Police Department Calls for Service that reported "
                                                     "an accident.")]
    assert "accident" in entries[0][2] and "accident" in entries[1][2]
    c = described_catalogue(entries)
    assert c.concept_lists[:2] == [(), ()]
    assert c.concept_lists[2:] == [("crash",), ("crash",)]   # CDTA's transit metrics count its buses' accidents


def test_a_title_s_misspelling_of_a_kind_word_names_the_kind_and_is_quoted_as_written():
    c = described_catalogue([("Springfield", "Police Compliants 2021", None)]
                            + [(f"City {n}", "Police Complaints", None) for n in range(10)])
    assert c.concept_lists[0] == ("police_complaint",) and c.concept_confidence[0] == 1.0
    assert (c.title[0] @ c.title[1].T).toarray()[0, 0] > 0.9
    assert c.titles[0] == "Police Compliants 2021"   # shown as the publisher wrote it
    assert c.title_surfaces(0)["complaint"] == "compliants"
    assert c.title_surfaces(0)["police+complaint"] == "police compliants"


# Cook County's 'Facilities Management - Elecricity Usage, All Facilities, by Month ...' among other places'
# electricity use and consumption (whose titles and descriptions write 'electricity' 12 times), beside the
# module's other datasets
ELECTRICITY_SOCRATA = {"electricity": [("datacatalog.cookcountyil.gov", "q6pg-yrhf"), ("data.hawaii.gov", "biet-37vh"),
                                       ("data.hawaii.gov", "qs2r-yxun"), ("data.hawaii.gov", "xpcc-ct2d"),
                                       ("data.lacity.org", "w7j2-5kjf"), ("data.maryland.gov", "9x8y-nux4")]}
ELECTRICITY_POD_2013 = {"electricity": [("data.sfgov.org", "r59p-g4dk"), ("data.cityofnewyork.us", "74cu-ncm4")]}


def test_a_real_title_s_misspelt_word_meets_its_subject(tmp_path):
    """Cook County's misspelt 'Elecricity Usage' shared only 'usage' with the others' electricity use and
    consumption (best pair 0.19); read as 'electricity' it pairs with New York's 'Electric Consumption by ZIP Code',
    and the explanation quotes Cook County's own spelling. (In the real catalogues it joins 'Electricity
    consumption'.)"""
    from catalog import overlap
    from catalog.store import Store
    from tests.catalog.overlap.conftest import POD_2013, SOCRATA, harvest_selection, uid_of

    store = Store(tmp_path / "catalog.duckdb")
    try:
        harvest_selection(store, {**SOCRATA, **ELECTRICITY_SOCRATA}, {**POD_2013, **ELECTRICITY_POD_2013})
        result = overlap.detect(store.con)
    finally:
        store.close()
    c, p = result.catalogue, result.pairs
    cook, new_york = c.row(uid_of("datacatalog.cookcountyil.gov", "q6pg-yrhf")), \
        c.row(uid_of("data.cityofnewyork.us", "74cu-ncm4", pod=True))
    assert "Elecricity" in c.titles[cook]
    assert c.title_surfaces(cook)["electricity"] == "elecricity"
    (index,) = [i for i, pair in enumerate(zip(p.a.tolist(), p.b.tolist())) if set(pair) == {cook, new_york}]
    assert p.total[index] >= result.min_score
    assert "titles share 'elecricity usage'" in result.explanations()[index]   # the publisher's spelling


def test_a_dataset_made_with_the_portal_s_home_page_is_a_page_of_it(tmp_path):
    """Baltimore's and Raleigh's 'Applications' (no description, no keyword; issued in August 2013 on the day their
    portals issued 'Home Page Featured Story', 'Messages' and 'Templates', Socrata's set-up of a site's home page) were
    a group with New York's 'Application for State Aid' (0.63) and its grant 'Applications Tracking Table' (0.38)."""
    from catalog import overlap
    from catalog.store import Store
    from tests.catalog.overlap.conftest import harvest_selection, uid_of

    set_up = [("data.baltimorecity.gov", "k5ut-2ted"), ("data.baltimorecity.gov", "xama-rukp"),
              ("data.raleighnc.gov", "rs6t-bbmx"), ("data.raleighnc.gov", "jdxn-nsdq")]
    store = Store(tmp_path / "catalog.duckdb")
    try:
        harvest_selection(store, {"applications": [("data.cityofnewyork.us", "8gpu-s594"),
                                                   ("data.cityofnewyork.us", "97zg-4p9t")]},
                          {"set_up": set_up, "data": [("data.baltimorecity.gov", "g244-i383")]})   # Fire Stations
        result = overlap.detect(store.con)
    finally:
        store.close()
    c = result.catalogue
    pages = {c.uids[row] for row in np.flatnonzero(c.is_site_page)}
    assert pages == {uid_of(d, i, pod=True) for d, i in set_up}, pages
    assert not [g.label for g in result.groups if set(g.uids) & pages]
    # none is made with a page of another portal, of another day, or with a description or a keyword
    made_with = features._set_up_with_the_home_page(
        {"uid": list("abcde"), "portal_id": ["p", "q", "p", "p", "p"],
         "issued_day": ["2013-08-22", "2013-08-22", "2013-08-23", "2013-08-22", "2013-08-22"],
         "description": [None, None, None, "Permit applications received", None],
         "keywords": [[], [], [], [], ["permits"]]}, np.array([True, False, False, False, False]))
    assert made_with.tolist()[1:] == [False, False, False, False]



def test_a_title_s_terms_rank_heaviest_first_and_alike_weights_in_the_title_s_order():
    """Explanations quote the heaviest title terms two datasets share: each title's terms are ranked once (not
    sorted again for each of its pairs), the heaviest first, terms of one weight in the order the title has them."""
    from catalog.overlap import scoring
    c = rows_catalogue([("A", "Bridge Inspections"), ("B", "Inspections Bridge"), ("C", "Bridge Ratings"),
                        ("D", "Inspections Ratings")])
    assert c.title_weights(0)["bridge"] == c.title_weights(0)["inspection"]
    assert list(c.title_ranks(0)) == ["bridge+inspection", "bridge", "inspection"]
    assert list(c.title_ranks(1)) == ["inspection+bridge", "inspection", "bridge"]
    assert list(c.title_ranks(2)) == ["bridge+rating", "rating", "bridge"]   # 'ratings' the rarer word
    assert c.title_ranks(0) == {"bridge+inspection": 0, "bridge": 1, "inspection": 2}
    assert c.title_ranks(0) is c.title_ranks(0)   # kept, not ranked again
    assert scoring.shared_title_phrases(c, 0, 1) == ["'bridge'", "'inspections'"]
    assert scoring.shared_title_phrases(c, 1, 0) == ["'inspections'", "'bridge'"]


def test_a_description_many_datasets_share_drops_each_one_s_own_place_words_alone():
    """A catalogue repeats descriptions (a dataset two portals of a city list, a publisher's boilerplate): each
    distinct one is read once (features._description_terms), but a place's words are dropped from its own
    datasets' description only: Chicago's copy loses 'chicago', Boston's keeps it and loses 'boston'."""
    described = "Permits issued by the Chicago and Boston building departments, citywide"
    places = [text.own_place_words("Chicago", "c0"), text.own_place_words("Boston", "c1"),
              text.own_place_words("Seattle", "c2"), text.own_place_words("Seattle", "c3")]
    found = features._description_terms([described] * 4, places)
    assert found == [text.terms(described, drop, bigrams=False, glued=False) for drop in places]
    assert "chicago" not in found[0] and "boston" in found[0] and "chicago" in found[1] and "boston" not in found[1]
    assert found[2] is found[3]   # one reading for the places it holds none of


def test_the_columns_and_keywords_explanations_quote_are_kept_in_each_row_s_order():
    """What explanations quote of shared columns and keywords is found for all pairs at once
    (Catalogue.shown_in_order): each row's first column name of each key in its columns' order, its keywords in
    alphabetical order; a pair's first four in the first dataset's order, with the second's name where it differs."""
    from catalog.overlap import scoring
    c = rows_catalogue([("A", "Permits"), ("B", "Permits"), ("C", "Permits")])
    c.column_names = [[("PermitNo", "number permit", "text"), ("Issued", "issued", "date"),
                       ("PERMIT_NUMBER", "number permit", "text"), ("Ward", "ward", "text")],
                      [("ward", "ward", "text"), ("permit_no", "number permit", "text"), ("Fee", "fee", "number")],
                      []]
    c.keyword_lists = [["permit", "building"], ["zoning", "building", "permit"], []]
    matrix, shown = c.shown_in_order("columns")
    assert [shown[i - 1] for i in sorted(matrix[0].data)] == ["PermitNo", "Issued", "Ward"]
    assert c.shown_in_order("columns") is c.shown_in_order("columns")   # built once
    a, b = np.array([0, 1, 0]), np.array([1, 0, 2])
    assert scoring._shared_in_order(c, "columns", a, b, 4) == ([2, 2, 0], ["PermitNo ↔ permit_no, Ward ↔ ward",
                                                                            "ward ↔ Ward, permit_no ↔ PermitNo", ""])
    assert scoring.aligned_columns(c, 0, 1) == [("PermitNo", "permit_no"), ("Ward", "ward")]   # (one pair's way)
    assert scoring._shared_in_order(c, "columns", a, b, 1)[1][0] == "PermitNo ↔ permit_no"
    assert scoring._shared_in_order(c, "keywords", a, b, 4) == ([2, 2, 0], ["'building', 'permit'"] * 2 + [""])
