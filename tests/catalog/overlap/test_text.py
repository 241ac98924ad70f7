"""Normalising titles and column names."""
import pytest

from catalog.overlap import text


@pytest.mark.parametrize("name", ["PermitNo", "permit_no", "Permit #", "PERMIT NUMBER", "permit-nbr"])
def test_column_spellings_meet(name):
    assert text.column_key(name) == "number permit"


@pytest.mark.parametrize("a,b", [("ZIP_CODE", "Zip"), ("Latitude", "LAT"), ("OFNS_DESC", "Offense Description"),
                                 ("the_geom", "Shape")])
def test_column_synonyms_and_abbreviations(a, b):
    assert text.column_key(a) == text.column_key(b)


def test_titles_lose_years_formats_and_own_city():
    drop = text.own_place_words("Chicago", "chicago")
    assert text.terms("Chicago Crimes - 2001 to present", drop) == ["crime"]
    assert text.terms("Arrests2018.xlsx") == ["arrest"]


def test_a_word_for_the_whole_of_the_own_place_is_dropped_like_its_name():
    # NYC's 'Citywide Payroll Data (Fiscal Year)' is the city's payroll, as Edmonton's
    # '... Population By Structure Type (Citywide)' is its population
    drop = text.own_place_words("data.cityofnewyork.us")
    assert text.terms("Citywide Payroll Data (Fiscal Year)", drop, bigrams=False) == \
        text.terms("Payroll Data (Fiscal Year)", drop, bigrams=False)
    assert "statewide" not in text.terms("IDES - Statewide Current Employment Statistics",
                                         text.own_place_words("data.illinois.gov"))


@pytest.mark.parametrize("title,concept", [
    ("311 Service Requests", "service_request"), ("311 Customer Service Requests", "service_request"),
    ("Police Calls for Service", "calls_for_service"), ("SPD 911 Incident Response", "calls_for_service"),
    ("Food Inspections", "restaurant_inspection"), ("Restaurant Inspection Results", "restaurant_inspection"),
    ("Business Licenses", "business_license"), ("Business Licences", "business_license"),
])
def test_phrases_become_one_term(title, concept):
    assert concept in text.terms(title)


def test_a_phrase_keeps_its_surface_for_labels():
    assert dict(text.terms_with_surface("311 Customer Service Requests"))["service_request"] == \
        "311 customer service requests"


def test_identifiers_in_titles_are_no_words():
    # file names of the Stanford Open Policing Project's two releases and an ArcGIS item id
    # (as in OpenPoliceData's source table): the ids' letter runs ('yg', 'wb', 'efd') are no words
    assert text.terms("yg821jf8611_ca_san_jose_2020_04_01.csv", bigrams=False) == \
        text.terms("wb225bk3255_ca_san_jose_2023_01_26.csv", bigrams=False) == ["ca", "san", "jose"]
    assert text.terms("a2365412f9624f79afa09efd7138ea37_28") == []
    assert text.terms("bd41992a-987a-4cca-8798-fbe1cd946b07") == []
    # a word with a year or a number glued on is still a word
    assert text.terms("Arrests2018 COVID19", bigrams=False) == ["arrest", "covid"]
    # a file name whose capitals start its words is no id, however its digits fall
    for title, word in (("Covid19Cases2020", "cases"), ("K12Schools2019", "schools"),
                        ("2020Census2010Tracts", "census"), ("I95Corridor2", "corridor")):
        assert word in text.split_words(title), title
    # an id in capitals is still an id; a service path in any case is still a path
    assert text.split_words("WB225BK3255 crime") == text.split_words("A2365412F9624F79AFA09EFD7138EA37 crime") == ["crime"]
    assert text.split_words("Speed Humps ArcGIS/rest/services/OpenData/MapServer/7") == ["speed", "humps"]


def test_where_a_layer_is_served_and_category_names_say_nothing():
    # Montgomery County's layer titles carry their ArcGIS service path
    drop = text.own_place_words("data.montgomerycountymd.gov")
    assert text.terms("Police District [arcgis_rest_services_GDX_police_district_MapServer_0]", drop) == \
        ["police_district", "police", "district"]   # (a police district one term: text.PHRASES)
    # a category or a department's name, and a portal's own pages, name no subject
    for title in ("Open Data Public Safety", "Home Page Stories", "Hartford GIS Data"):
        assert all(term in text.GENERIC for term in text.terms(title, text.own_place_words("Hartford"), bigrams=False)), title
    assert text.terms("Department of Public Safety Weekly Population Reports", bigrams=False) == \
        ["public_safety", "population"]


@pytest.mark.parametrize("title,families", [
    ("Building Permits", {"permit"}), ("DOB Permit Issuance", {"permit"}), ("Permits Issued", {"permit"}),
    ("Building and Safety Permit Information", {"permit"}),
    ("Code Violations", {"violation"}), ("Building Violations", {"violation"}), ("DOB Violations", {"violation"}),
    ("Business Licenses", {"license"}), ("Licenses", {"license"}), ("Liquor Licenses", {"license"}),
    ("Capital Budget", {"budget"}), ("City Budget", {"budget"}),
    ("Restaurant Scores", {"inspection"}), ("Food Inspections", {"inspection"}),
    ("Permit Inspections", {"inspection"}), ("Alcoholic Beverage License Violations", {"violation"}),
    ("Permits and Inspections", {"permit", "inspection"}), ("Building Permit Inspections", {"inspection"}),
    ("Budget - 2016 Budget Ordinance - Positions and Salaries", {"budget", "salary"}),
    ("Code Enforcement Cases", {"violation"}), ("Code Enforcement All Inspections", {"inspection"}),
    ("Special Events", {"event"}), ("Special Event Permits", {"permit"}), ("City Calendar of Events", {"event"}),
    ("Botanical Gardens", set()), ("Code Enforcement", {"violation"}),
    # a schedule of fees is prices; fees beside other records are theirs; Medicare's fee-for-service is a model
    ("Directory Of Land Use Application Fees", {"fee"}), ("Building Permits - Waived Fees", {"permit"}),
    ("Special Event Concession Fee Details", {"event"}),
    ("Percents of Chronic Conditions among Fee-for-Service Medicare Beneficiaries", set()),
])
def test_titles_name_families_of_records(title, families):
    named = text.records_named(text.terms(title))
    assert {family for family, bit in text.FAMILY_BITS.items() if named & bit} == families


def test_accents_and_possessives_do_not_break_words():
    assert text.terms("Sidewalk Café Regulations") == text.terms("Sidewalk Cafe Regulations") == \
        ["sidewalk", "cafe", "regulation", "sidewalk+cafe", "cafe+regulation"]
    assert text.terms("Women's Health") == text.terms("Women’s Health") == ["women", "health", "women+health"]
    assert text.column_key("Numéro de permis") == text.column_key("Numero de permis")
    # a word of another alphabet is a word, not nothing
    assert text.terms("Инспекции ресторанов", bigrams=False) == ["инспекции", "ресторанов"]


def test_an_office_or_division_ending_a_title_is_what_it_lists():
    # the real catalogues: Chicago's 'Ward Offices' (the aldermen's offices) had read as 'Wards' and
    # grouped with ward boundaries; NYC's 'Fire Divisions' as 'Fire', beside fire incident tables
    assert text.terms("Ward Offices") == ["ward", "office", "ward+office"]
    assert text.terms("Fire Divisions") == ["fire", "division", "fire+division"]
    # a publisher's office, or a division naming whose records follow, stays a stopword
    assert text.terms("Office of the Mayor") == ["mayor"]
    assert text.terms("Traffic Division Citations") == ["traffic", "citation"]
    assert text.terms("Ward Offices", bigrams=False) == ["ward"]   # descriptions: words only


def test_a_long_title_s_last_word_cut_short_is_completed():
    assert text.split_words("Richmond Police Department Citywide Traffic Crashe")[-1] == "crash"
    assert text.split_words("Long title here about the Chicago Police Department Compl")[-1] == "complaint"
    # a word of its own (a civic word less an ending), a word not at the end, a short title: as written
    assert text.split_words("Chicago Department of Transportation Design Build")[-1] == "build"
    assert text.split_words("Richmond Police Department Citywide Crashe Reports")[-2] == "crashe"
    assert text.split_words("Traffic Crashe") == ["traffic", "crashe"]
    assert text.completed("servic") == "service" and text.completed("build") == "build"
    assert text.completed("dept") == "dept" and text.completed("stops") == "stops"


def test_a_place_is_a_location_and_a_website_the_web():
    # Madison's 'Polling Places' and Baltimore's 'Polling Locations' list the same sites; NYC's
    # 'NYC.gov Web Analytics' and Baton Rouge's 'Website Analytics' count the same visits
    assert text.terms("Polling Places") == text.terms("Polling Locations")
    assert text.terms("Polling Place Locations April 21, 2012")[:1] == ["polling"]
    assert text.terms("Website Analytics") == text.terms("Web Analytics")
    # both are form words: what is listed or measured is the subject
    assert {"location", "web"} <= text.GENERIC


def test_usage_is_consumption_and_electric_electricity():
    # LA's 'Residential Water Usage by Month' and 'Municipal Building Electricity Usage' count what
    # Austin's 'Residential Water Consumption' and Hawaii's 'Electricity Consumption' do; NYC's
    # 'Electric Consumption And Cost' is Hawaii's kind
    assert text.terms("Residential Water Usage") == text.terms("Residential Water Consumption")
    assert {"electricity", "consumption", "electricity+consumption"} <= \
        set(text.terms("Municipal Building Electricity Usage")) & set(text.terms("DBEDT Hawaii Electricity Consumption"))
    assert text.terms("Electric Consumption") == text.terms("Electricity Consumption")
    # the phrases that start with 'use' are not read as usage
    assert "use_of_force" in text.terms("Use of Force")


def test_a_school_s_attendance_area_and_a_visitor_centre_are_places_no_figures_of_use():
    # 'Elementary School Attendance Boundaries' is a boundary file of schools, 'Visitor Centers' a list of
    # places; a library's visitors and a school's attendance are figures of a service's use
    use = text.FAMILY_BITS["use"]
    assert not text.records_named(text.terms("Elementary School Attendance Boundaries")) & use
    assert not text.records_named(text.terms("Visitor Centers")) & use
    assert text.records_named(text.terms("Libraries - 2015 Visitors by Location")) & use
    assert text.records_named(text.terms("School Attendance")) & use


def test_workers_compensation_is_an_insurance_not_employees_pay():
    """'Workers' Compensation' insures injured workers; its words, read one by one, are the synonyms of an employee's
    salary (Oregon's 'Workers' Compensation System' was most like Boston's 'Employee Earnings Report')."""
    insurance = text.terms("Oregon Workers' Compensation System, Summary Statistics")
    assert "workers_compensation" in insurance and "salary" not in insurance and "employee" not in insurance
    assert "workers_compensation" in text.terms("Assembled Workers? Compensation Claims: Beginning 2000")
    assert "workers_compensation" in text.terms("workers comp claims")
    assert "salary" in text.terms("Employee Compensation") and "salary" in text.terms("Workers Earnings")
    assert text.records_named(insurance) == 0


def test_a_budget_s_revenue_and_spending_sides_read_alike_either_way_round():
    """The real catalogues split one kind in two: 'Revenue budget' (Jackson, Somerville) beside 'Budget revenue'
    (New York, Cook County, ...), 'Expense budget' beside 'Budget expenditures': the order of the words told the
    records' family (the first word read as a modifier of the second)."""
    def families(title):
        named = text.records_named(text.terms(title))
        return {family for family, bit in text.FAMILY_BITS.items() if named & bit}

    for revenue in ["Jackson Revenue Budget", "NYC Budget Revenue", "Cook County Budget - 2013 - Preliminary Budget "
                    "Revenues", "Revenue Budget - 2010 thru 2013"]:
        assert families(revenue) == {"revenue"}, revenue
        assert "budget_revenue" in text.terms(revenue)
    for spending in ["Expense Budget", "Jackson Operating Expenses Budget", "Suffolk County Budget Expenditures: 2013"]:
        assert families(spending) == {"spending"}, spending
        assert "budget_spending" in text.terms(spending)
    assert families("Capital Budget") == {"budget"}


@pytest.mark.parametrize("one,other", [
    ("Parking Facilties", "Parking Facilities"),                        # Honolulu's misspelling, Baltimore's
    ("Library Branches", "Libraries"),                                   # Los Angeles', Baltimore's
    ("Oakland Public Library Branch Locations And Hours", "Austin Public Library Locations"),
    ("Average Annual Weekday Traffic Volumes (2006-2011)", "Average Daily Traffic Counts"),   # Edmonton, Chicago
    ("Request a Data Set", "Dataset requests"),                          # Austin, King County
    ("Oahu State Public Parking Lots", "Parking Facilities"),            # Hawaii, Baltimore
    ("Public Parking Garages and Lots", "Parking Facilities"),           # Seattle, Baltimore
])
def test_wordings_of_one_thing_share_its_term(one, other):
    shared = {t for t in text.terms(one, bigrams=False)} & {t for t in text.terms(other, bigrams=False)}
    assert shared - text.GENERIC, (one, other)
    assert shared & {"parking_facility", "library", "traffic_count", "dataset_request"}, (one, other)


@pytest.mark.parametrize("title,unlike", [
    ("Weekday Traffic Updates", "Average Annual Weekday Traffic Volumes (2006-2011)"),   # news, counts
    ("Daily Report of Homeless Shelter Census", "Homeless Shelters"),                     # a head count, the list
    ("311 Customer Service Requests", "Dataset requests"),
])
def test_wordings_of_different_things_keep_their_own_terms(title, unlike):
    own = set(text.terms(unlike, bigrams=False)) - set(text.terms(title, bigrams=False))
    assert own & {"traffic_count", "dataset_request"} or set(text.terms(title)) & {"shelter_population"}, title


def test_a_council_s_resolutions_are_records_of_their_own_not_its_members():
    """Austin's 'Council Member Tovo Resolutions' grouped with New York's 'Council Members' as 'Council members'."""
    named = text.records_named(text.terms("Council Member Tovo Resolutions"))
    assert named == text.FAMILY_BITS["legislation"]
    assert text.records_named(text.terms("Council Members")) == 0
    # a budget enacted as an ordinance is a budget
    assert text.records_named(text.terms("Budget - 2016 Budget Ordinance - Appropriations")) == text.FAMILY_BITS["budget"]


def test_a_building_or_place_kept_for_its_history_is_heritage_and_historic_alone_says_when():
    """Real titles: a heritage listing is one term however it is worded; 'historic' before another word, or
    after the subject, dates the records ('Historic Zoning Districts' are past zoning maps) and stays a stopword."""
    for title in ("Historical Buildings", "State Historic Sites", "Historic Resources", "Historic Landmarks – CHAP",
                  "National Register of Historic Places", "SSMMA Blue Island Historic Properties"):
        assert "heritage" in text.terms(title), title
    for title in ("Historic Zoning Districts - 2012", "Historic Secured Property Tax Rolls",
                  "Lobbyist Data - Historical - Lobbyist Registry - 2010", "NYPD Complaint Data Historic",
                  "Enrollment Capacity And Utilization Reports - Historical by Building"):
        assert not any("heritage" in term or "histor" in term for term in text.terms(title)), title


def test_a_place_s_own_state_is_its_own_place_by_its_code_too():
    """A US state's two-letter code says where, not what: the code of the state a place's name ends with, and a
    code written beside a word of the place's own name, as an address writes it, are dropped as the name is."""
    from tests.portals.catalogues import fixture_datasets, place_of, portal_id
    assert text.own_state_code("Anaheim, California") == "ca"
    assert text.own_state_code("New York State") == "ny"
    assert text.own_state_code("Washington D.C., District of Columbia") == "dc"
    assert text.own_state_code("Kansas City") is None and text.own_state_code("Chicago") is None
    fixtures = fixture_datasets()

    def title_terms(domain: str, source_id: str) -> list[str]:
        return text.terms(fixtures[(domain, source_id)][0], text.own_place_words(place_of(domain), portal_id(domain)),
                          bigrams=False)
    # Connecticut's portal writes its state by code, San Francisco its city's address
    assert title_terms("data.ct.gov", "337d-73fs")[:2] == ["dcf", "abuse"]
    assert title_terms("data.sfgov.org", "dduv-erzw") == ["pedestrian", "injury", "count"]
    assert title_terms("data.sfgov.org", "p2n6-q8bk") == title_terms("data.ct.gov", "qkcc-8trv") == ["farmer", "market"]
    # a code where no name of the place says which state it is stays a word: Hartford's 'CT Transit'
    assert "ct" in text.terms("CT Transit Bus Stops", text.own_place_words("Hartford", "data-hartford-gov"))
    # a code beside a portal's own 'data' is no address ('Parcel ID Data' of Hawaii's)
    assert "id" in text.terms("Parcel ID Data", text.own_place_words("Hawaii", "data-hawaii-gov"))


def test_a_word_misspelt_by_two_letters_swapped_or_one_left_out_inside_is_a_slip_of_it():
    from catalog.overlap import features
    found = text.slips(features.VOCABULARY)
    assert found["compliants"] == "complaints"      # two neighbouring letters swapped
    assert found["boundries"] == "boundaries"       # one left out inside
    assert found["elecricity"] == "electricity"
    # a letter changed makes other words ('warming', 'raster'), and so does a first or a last letter left out
    # ('pending' of 'spending', 'capita' of 'capital'); a word is no slip of itself, nor a short one of anything
    for word in ("warming", "raster", "cooking", "pending", "capita", "complaint", "citation", "arest"):
        assert word not in found, word


def test_a_title_s_slip_is_read_as_its_word_only_where_the_catalogue_s_own_text_says_it_is_no_word():
    titles = ["Police Compliants 2021"] + [f"Police Complaints {year}" for year in range(2010, 2020)]
    descriptions = [None] * len(titles)
    vocabulary = frozenset({"complaint"})
    assert text.respellings(titles, descriptions, vocabulary) == {"compliants": "complaints"}
    assert text.respelled("GPD External COMPLIANTS", {"compliants": "complaints"}) == "GPD External COMPLAINTS"
    assert text.respelled("Police Compliants 2021", {"compliants": "complaints"}) == "Police Complaints 2021"
    # a word a description writes is a word ('ADA compliant'), and so is one titles write as often as the word
    assert text.respellings(titles, ["Ramps the ADA calls compliants"] + descriptions[1:], vocabulary) == {}
    assert text.respellings(titles[:10], descriptions[:10], vocabulary) == {}   # 9 'complaints' to 1
    assert text.respellings(["ADA Compliant Ramps"] + titles[1:], ["Ramps that are ADA compliant"] + descriptions[1:],
                            vocabulary) == {}


def test_a_bike_is_a_bicycle():
    """The real catalogues had 'Bike routes' (Chicago, Salt Lake City) apart from 'Bicycle routes' (New York State,
    Seattle), and Seattle's 'City of Seattle Bicycle Racks' outside 'Bike racks': the short word is the word."""
    assert text.terms("Bike Racks") == text.terms("Bicycle Racks") == ["bicycle_parking", "bicycle", "rack"]
    assert text.terms("SLC Bike Routes", text.own_place_words("Salt Lake City", "slc")) == \
        text.terms("Signed Bicycle Routes")[1:2] + ["route", "bicycle+route"]


def test_departments_a_title_ends_with_are_what_it_lists_and_a_department_is_its_publisher():
    """Missouri's 'Missouri Fire Departments' and New York State's 'Fire Department Directory for New York State'
    read as 'fire' alone and sat among the fire incidents ('department' is a stopword: a publisher's word), as
    Connecticut's 'Police Departments' paired with police incident records at 0.46-0.52."""
    assert "department" in text.terms("Missouri Fire Departments")
    assert "department" in text.terms("Police Departments")
    assert "fire+department" in text.terms("Fire Department Directory for New York State")
    # in the singular a department names the publisher, and so do departments that own or break down the records
    for title in ("Seattle Police Department Police Report Incident", "Connecticut Fire Department Incidents - 2014",
                  "Fire Department Incident Data", "Employees by Department, FY05 - FY09",
                  "Administrative Hearings - Top 5 Violations Report, all Departments - Fiscal Year 2011 Incomplete",
                  "Appropriations - Proprietary Departments"):
        assert "department" not in text.terms(title), title
    # a description's departments are prose, not what it lists
    assert "department" not in text.terms("Budgets of all city departments", bigrams=False)


def test_bike_racks_and_bicycle_parking_are_one_thing():
    """Chicago's and Seattle's 'Bike Racks' and San Francisco's and New York's 'Bicycle Parking' ("bicycle parking
    racks") were two groups: their titles shared 'bicycle' alone."""
    for title in ("Bike Racks", "SDOT Bike Racks", "Bike Rack Locations By Area", "Bicycle Parking (Public)",
                  "Bicycle Parking", "City of Seattle Bicycle Racks"):
        assert "bicycle_parking" in text.terms(title), title
    assert "bicycle_parking" not in text.terms("Bike Lanes")
    assert "bicycle_parking" not in text.terms("SFMTA Bicycle Route Network")


def test_a_corrections_agency_s_population_is_the_people_it_holds():
    """Connecticut's correctional facility populations read as a city's population (and paired with King County's
    census counts at 0.42), not as the people a prison holds."""
    for title in ("Correctional Facility Daily Population Count By Facility",
                  "Department of Corrections Quarterly Average Facilty Population",
                  "Community Based Corrections Population - Year End"):
        assert "custody_population" in text.terms(title), title
    assert "prison" in text.terms("Correctional Facility Daily Population Count By Facility")
    assert "prison" in text.terms("Accused Pre-Trial Inmates in Correctional Facilities")
    # a phrase of its own keeps its reading, once; a population no corrections word is near stays a population
    assert text.terms("Iowa Prison Population - Year End").count("custody_population") == 1
    for title in ("Population corrected for undercount", "2010 U.S. Census Population Counts, King County and its Cities"):
        assert "custody_population" not in text.terms(title), title


def test_law_enforcement_agencies_are_what_a_title_lists():
    """'Missouri Law Enforcement Agencies' read as 'law enforcement' alone and grouped with the Port of Los Angeles'
    activity counts ('Public Safety and Law Enforcement'): police departments and sheriffs' offices, as Connecticut's
    'Police Departments' are. Providers called agencies stay unread ('Hospice Agencies'), and so do agencies that
    break down the records."""
    assert "agency" in text.terms("Missouri Law Enforcement Agencies")
    assert "enforcement+agency" in text.terms("Currently Accredited Law Enforcement Agencies")
    for title in ("Hospice Agencies", "Law Enforcement Personnel by Agency: Beginning 2007",
                  "Expenditures: State Agencies: Fiscal Year 2011"):
        assert "agency" not in text.terms(title), title


def test_a_public_body_s_art_collection_is_its_public_art():
    """'City of Austin Public Art Collection', Oakland's and San Francisco's ('SF Civic Art Collection') and Washington's
    'State Art Collection' were a group of their own beside 'Public Art' ('public' a stopword: 'art' against 'art
    collection'); 'Parks - Public Art' paired with parks and 'Baltimore Arts Organizations' with the art."""
    for title in ("Public Art", "Parks - Public Art", "City of Austin Public Art Collection", "SF Civic Art Collection",
                  "State Art Collection Published 2016-05-25", "Public Art Inventory"):
        assert "public_art" in text.terms(title), title
    for title in ("Baltimore Arts Organizations", "Arts and Culture (2010-2013)", "Parks"):
        assert "public_art" not in text.terms(title), title
