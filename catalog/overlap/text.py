"""Normalising titles, descriptions, keywords and column names so that cities' different
wordings of the same thing meet: light stemming, a small civic vocabulary of synonyms and
phrases, and the abbreviations column names use.

Everything here is deterministic and needs no model. The vocabulary holds general civic
wording (licence/license, payroll/salaries, collision/crash, "calls for service"); it is
not fitted to any labelled set.
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

WORD = re.compile(r"[a-z]+|[0-9]+")  # "Arrests2018" and "FY2015" split
ANY_WORD = re.compile(r"[^\W\d_]+|[0-9]+")  # the same in any alphabet ('Café', where accents do not come off)
POSSESSIVE = re.compile(r"(?<=[^\W\d_])['’]s\b")   # "Women's Health" is women's health, not 'women', 's', 'health'
CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
YEARISH = re.compile(r"^(?:19|20)\d\d$|^fy\d+$|^\d{2,4}s?$|^q[1-4]$")
KEEP_NUMBERS = {"311", "911", "211", "511"}   # 511: a region's traffic information line ('511 NY Events')
# An identifier written where a name should be (an ArcGIS item id, a UUID, a repository's
# 'yg821jf8611'): its letter runs ('yg', 'efd') are no words, and two files that carry the
# same id share nothing but where they were stored.
UUID = re.compile(r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}", re.IGNORECASE)
# the path of an ArcGIS service some portals append to a layer's title
# ('Speed Humps [arcgis_rest_services_Services_OpenData_MapServer_7]'): where it is served, not what it holds
SERVICE_PATH = re.compile(r"arcgis[\W_]+rest[\W_]+services[\w/]*", re.IGNORECASE)


def _id_token(letters: str) -> str:
    return (rf"(?<![A-Za-z0-9])(?=[{letters}0-9]{{8}})"
            rf"(?:[{letters}]+[0-9]+[{letters}]+[0-9]|[0-9]+[{letters}]+[0-9]+[{letters}])[{letters}0-9]*(?![A-Za-z0-9])")


# letters and digits mixed in four runs or more over eight characters or more, all in one
# case: an id ('047a71ecb92c...', 'wb225bk3255'), not a word with a year ('Arrests2018',
# 'FY2015'), nor a file name whose capitals start its words ('Covid19Cases2020', 'K12Schools2019')
ID_TOKEN = re.compile(f"{_id_token('a-z')}|{_id_token('A-Z')}")

# Words that say nothing about what a dataset holds, in any city.
STOPWORDS = frozenset("""
a an and are as at be by for from in into is it its of on or per than that the their this to was among
were with within without all any each more most other over under via vs versus also only
data dataset datasets database file files table tables information info list listing lists
city cities county counties state states town village municipal government gov official public
new current historical historic present past recent latest updated update archive archived find
year years yearly annual annually month months monthly week weeks weekly day days daily
date dates through since beginning begin starting start end ending until thru
total totals summary summaries detail detailed details report reports reporting record records
department dept office division bureau agency agencies program programs
january february march april may june july august september october november december
jan feb mar apr jun jul aug sep sept oct nov dec ytd fy
csv xlsx xls txt pdf doc docx zip xml sheet spreadsheet copy copyof kml kmz shp shapefile shapefiles
""".split())

# 'by' and 'per' start a breakdown ('Permits by Ward'): what comes before says what the records are
BREAKDOWN = frozenset({"by", "per", "vs", "versus"})
# ... but not the word of a compound ('Drive-By Shootings', 'Stand-By Generators', 'By-Laws', 'Per-Capita')
BY_COMPOUNDS = "".join(rf"(?<!\b{word}-)" for word in ("drive", "stand", "fly", "pass", "walk", "lay"))
BREAKDOWN_WORD = re.compile(r"%s\b(?:%s)\b(?!-(?:laws?|products?|elections?|pass|capita)\b)"
                            % (BY_COMPOUNDS, "|".join(sorted(BREAKDOWN))), re.IGNORECASE)

# Words that name the form or the container of a dataset, not its subject: they count for
# little in a title, and a title of them alone ('Resources', 'Map Data', 'Codes') says
# nothing to compare ('Directory of City Resources' is not 'Historic Resources').
GENERIC = frozenset("""
map maps resource category categories source message template facility property project item type code
directory location site point feature layer test view export extract download web mercator spatial non
tool document page form index lookup reference master misc miscellaneous other various general
attachment gis format story featured tile public_safety home_page calendar_year
""".split())

# Single words to one spelling (applied after stemming).
SYNONYMS = {
    "licence": "license", "licens": "license", "offence": "offense", "offens": "offense",
    "wage": "salary", "payroll": "salary", "compensation": "salary", "earning": "salary",
    "appropriation": "budget", "appropriat": "budget", "expenditure": "spending", "expense": "spending",
    "collision": "crash", "accident": "crash", "wreck": "crash",
    "eatery": "restaurant", "website": "web", "place": "location", "usage": "consumption", "electric": "electricity",
    "felony": "crime", "criminal": "crime",
    "outline": "footprint",
    "facilty": "facility",   # 'Facilties' (stemmed), a misspelling titles share: no subject of its own
    "boundary": "boundary", "border": "boundary",
    "polygon": "boundary",
    "neighbourhood": "neighborhood", "centre": "center", "colour": "color",
    "staff": "employee", "personnel": "employee", "worker": "employee",
    "car": "vehicle", "auto": "vehicle",
    "bike": "bicycle",   # 'Bike Racks' / 'Bicycle Racks', 'Bike Routes' / 'Signed Bicycle Routes': the short word
    "towed": "tow", "towing": "tow",
    "ticket": "citation", "summons": "citation",
    "inspect": "inspection", "inspected": "inspection", "inspecting": "inspection",
    "permitting": "permit", "permitted": "permit",
    "violat": "violation",
    # acronyms of police open data
    "cfs": "calls_for_service", "cad": "calls_for_service", "uof": "use_of_force", "ois": "officer_shooting",
}

# Phrases (as stemmed words) that name one thing, replaced by one term. Longest first.
PHRASES = {
    ("call", "for", "service"): "calls_for_service", ("calls", "for", "service"): "calls_for_service",
    ("911", "call"): "calls_for_service", ("911", "incident", "response"): "calls_for_service",
    ("dispatch", "call"): "calls_for_service", ("computer", "aided", "dispatch"): "calls_for_service",
    ("311", "service", "request"): "service_request", ("311", "request"): "service_request",
    ("service", "request"): "service_request", ("311", "call"): "service_request",
    ("customer", "service", "request"): "service_request", ("311",): "service_request",
    # the 311 service's website and app (their availability, content, downloads), not the requests it takes
    ("311", "web"): "311_web", ("311", "app"): "311_app",
    ("use", "of", "force"): "use_of_force", ("response", "to", "resistance"): "use_of_force",
    ("use", "of", "control"): "use_of_force",
    ("stop", "data"): "stop_data",   # the term of art of police stop reporting (RIPA, 'Traffic Stop Data' aside)
    ("officer", "involved", "shooting"): "officer_shooting", ("police", "shooting"): "officer_shooting",
    ("police", "action", "shooting"): "officer_shooting",
    # a juvenile's act that is no crime for an adult (truancy, running away): no criminal offense
    ("status", "offense"): "status_offense", ("status", "offender"): "status_offense",
    ("juvenile", "detention"): "juvenile_detention",   # a facility for youth, no police stop's detention
    ("day", "care"): "day_care",   # care by day, of children or of adults: no health care ('day' is a stopword)
    ("death", "in", "custody"): "custody_death", ("in", "custody", "death"): "custody_death",
    ("custody", "death"): "custody_death",
    # a request for public records held ('Public Records Requests'), not for a dataset to be published
    # ('Dataset requests', 'Request a Data Set'): 'public' and 'records' alone are stopwords
    ("public", "record", "request"): "records_request", ("open", "record", "request"): "records_request",
    ("show", "of", "force"): "show_of_force",   # a weapon pointed at a person (Asheville's policy)
    ("food", "inspection"): "restaurant_inspection", ("restaurant", "inspection"): "restaurant_inspection",
    ("food", "establishment", "inspection"): "restaurant_inspection",
    ("health", "inspection"): "restaurant_inspection", ("restaurant", "score"): "restaurant_inspection",
    ("restaurant", "grade"): "restaurant_inspection",
    ("food", "establishment"): "restaurant", ("food", "service", "establishment"): "restaurant",
    ("food", "facility"): "restaurant", ("food", "vendor"): "food_vendor",
    ("business", "license"): "business_license", ("food", "license"): "restaurant_license",
    ("restaurant", "license"): "restaurant_license",
    ("building", "permit"): "building_permit", ("construction", "permit"): "building_permit",
    ("building", "violation"): "building_violation", ("code", "violation"): "code_violation",
    ("building", "footprint"): "building_footprint",
    ("street", "tree"): "street_tree", ("tree", "inventory"): "street_tree", ("urban", "forest"): "street_tree",
    ("traffic", "crash"): "crash", ("motor", "vehicle", "crash"): "crash", ("vehicle", "crash"): "crash",
    ("traffic", "stop"): "traffic_stop", ("vehicle", "stop"): "traffic_stop",
    ("pedestrian", "stop"): "pedestrian_stop", ("stop", "and", "frisk"): "pedestrian_stop",
    ("crime", "incident"): "crime", ("incident", "report"): "crime", ("police", "report"): "crime",
    ("police", "incident"): "crime", ("part", "1", "crime"): "crime", ("reported", "crime"): "crime",
    ("employee", "salary"): "salary", ("employee", "name"): "salary",
    ("operating", "budget"): "budget", ("capital", "budget"): "capital_budget",
    # a budget's two sides, its revenue and its spending, written either way round ('Jackson Revenue Budget', 'NYC
    # Budget Revenue'; 'Expense Budget', 'Budget Expenditures')
    ("revenue", "budget"): "budget_revenue", ("budget", "revenue"): "budget_revenue",
    ("spending", "budget"): "budget_spending", ("budget", "spending"): "budget_spending",
    # CIP: a capital improvement program (or plan, or its projects), as budget offices write it
    ("cip",): "capital_improvement", ("capital", "improvement"): "capital_improvement",
    ("parking", "citation"): "parking_citation", ("parking", "violation"): "parking_citation",
    # the marks surveyors measure from: no monuments to people or events, no benchmarks of performance
    # the area a school takes its pupils from, a centre for visitors: places, no figures of a service's use
    ("attendance", "boundary"): "attendance_area", ("attendance", "zone"): "attendance_area",
    ("attendance", "area"): "attendance_area", ("visitor", "center"): "visitor_center",
    ("visitor", "centre"): "visitor_center",
    ("survey", "monument"): "survey_control", ("survey", "control", "point"): "survey_control",
    ("survey", "control"): "survey_control", ("elevation", "benchmark"): "survey_control",
    # a category or a department's name ('Open Data Public Safety', 'Department of Public
    # Safety ...'), and a portal's own pages: form words (GENERIC), their parts not kept apart
    # a period, no calendar of events ('Violations of Probation Disposed by Calendar Year')
    ("calendar", "year"): "calendar_year",
    # a request that a dataset be published ('Dataset requests'), no service's request; 'dataset' and 'data'
    # alone are stopwords
    ("dataset", "request"): "dataset_request", ("data", "request"): "dataset_request",
    ("request", "a", "dataset"): "dataset_request", ("request", "for", "dataset"): "dataset_request",
    # how many vehicles pass ('Average Annual Weekday Traffic Volumes'), as counters measure it: traffic counts,
    # not the news of traffic ('Weekday Traffic Updates')
    ("traffic", "volume"): "traffic_count", ("traffic", "count"): "traffic_count",
    # a shelter's census counts the people it houses ('Daily Report of Homeless Shelter Census'): a population,
    # not the list of shelters
    ("shelter", "census"): "shelter_population",
    # the people a jail, a prison or a detention centre holds ('Jail Population By County', 'Iowa Prison Population',
    # 'Ethnic Distribution of Detention Population'): a population of its own, no city's residents
    ("jail", "population"): "custody_population", ("prison", "population"): "custody_population",
    ("inmate", "population"): "custody_population", ("detention", "population"): "custody_population",
    # a correctional facility is a prison or a jail ('Accused Pre-Trial Inmates in Correctional Facilities')
    ("correctional", "facility"): "prison",
    # a public body's art collection is its public art, the works it commissioned and sited in public ('City of Austin
    # Public Art Collection', "artworks commissioned through the Austin Art in Public Places Program"; 'SF Civic Art
    # Collection', "publicly-sited works"): one thing with 'Public Art' ('public' alone is a stopword)
    ("public", "art"): "public_art", ("art", "collection"): "public_art", ("civic", "art"): "public_art",
    ("public", "art", "collection"): "public_art", ("civic", "art", "collection"): "public_art",
    # racks are the parking a city puts up for bicycles ('Bike Racks', 'Bicycle Parking (Public)', described as
    # "bicycle parking racks"): one thing
    ("bicycle", "rack"): "bicycle_parking", ("bicycle", "parking"): "bicycle_parking",
    # a library system's branches are its libraries ('Library Branches', 'Public Libraries'); where a vehicle is
    # parked off the street, a lot or a garage ('Parking Facilities', 'Parking Garage and Lot Inventory')
    ("library", "branch"): "library",
    # the holds a library's patrons place on its items, and those it fills ('Libraries - 2012 Holds Filled by
    # Location'): figures of its use, as its circulation is (RECORD_FAMILIES), no list of the libraries
    ("hold", "placed"): "library_hold", ("hold", "filled"): "library_hold",
    # a city's zoning is the map of its zoning districts ('Zoning', 'Zoning Districts')
    ("zoning", "district"): "zoning",
    # a police precinct is a police district, the area one station patrols ('Police Precincts', 'Jackson Police
    # Department Precincts', 'Police Districts'): no precinct an election counts its votes in ('Election Precincts',
    # 'Ward Precincts', a county's 'Precincts'), nor a council's or a school's district
    ("police", "precinct"): "police_district", ("police", "department", "precinct"): "police_district",
    ("police", "district"): "police_district", ("police", "department", "district"): "police_district",
    ("parking", "facility"): "parking_facility", ("parking", "lot"): "parking_facility",
    ("parking", "garage"): "parking_facility",
    # what is reported and inventoried of a greenhouse gas is its emissions ('Greenhouse Gas Inventory', 'Greenhouse
    # Gas Emissions Estimates')
    ("greenhouse", "gas"): "greenhouse_gas", ("greenhouse", "gas", "emission"): "greenhouse_gas",
    ("ghg",): "greenhouse_gas", ("ghg", "emission"): "greenhouse_gas",
    # what a website's analytics count: its visits, page views and traffic ('Website Analytics', 'Website visits')
    ("web", "analytic"): "web_analytics", ("web", "visit"): "web_analytics", ("web", "traffic"): "web_analytics",
    ("page", "view"): "web_analytics",
    # the law buildings are built to ('City Building Codes for Missouri'), no building; a violation of it is one
    ("building", "code"): "building_code", ("building", "code", "violation"): "building_violation",
    # a city's code of laws ('Chapters of the City Code of Laws', a 'Municipal Code'): its laws, no list of codes
    ("code", "of", "law"): "legal_code", ("municipal", "code"): "legal_code",
    # how punctual a service runs ('On Time Performance' of buses and paratransit), not how fast a crew answers
    # a call ('EMS - Response Time Performance'): two measures that share only the word 'time'
    ("on", "time"): "on_time", ("response", "time"): "response_time",
    ("fee", "for", "service"): "fee_for_service",   # Medicare's payment model, no fees listed
    # care given on the spot and a device for the ear, no money given ('aid' alone: RECORD_FAMILIES)
    ("first", "aid"): "first_aid", ("hearing", "aid"): "hearing_aid", ("hearing", "aids"): "hearing_aid",
    ("worker", "compensation"): "workers_compensation",   # (kept so by _workers_compensation)
    ("public", "safety"): "public_safety", ("home", "page"): "home_page", ("homepage",): "home_page",
    # when results or a release are posted: a timetable, never the results ('Election Results Posting Schedule')
    ("result", "posting", "schedule"): "posting_schedule", ("posting", "schedule"): "posting_schedule",
    ("result", "schedule"): "posting_schedule", ("release", "schedule"): "posting_schedule",
    # what a lobbyist reports doing is lobbying ('Lobbyist Activity', 'Lobbyist Data - Lobbying Activity'): one term
    ("lobbyist", "activity"): "lobbying_activity", ("lobbying", "activity"): "lobbying_activity",
    # a building, place or district kept for its history is a heritage listing ('Historical Buildings', 'Historic
    # Landmarks', 'National Register of Historic Places'); 'historic' before any other word, or after, says when
    # ('Historic Zoning Districts', 'Historic Secured Property Tax Rolls', 'Lobbyist Data - Historical'): a stopword
    **{(historic, heritage): "heritage" for historic in ("historic", "historical")
       for heritage in ("building", "structure", "landmark", "location", "site", "district", "property", "resource")},
}
PHRASE_LENGTHS = sorted({len(p) for p in PHRASES}, reverse=True)
PHRASE_WORDS: dict[str, set[str]] = {}   # a phrase term's words, in any of its wordings
for _words, _term in PHRASES.items():
    PHRASE_WORDS.setdefault(_term, set()).update(_words)
PHRASE_STARTS = frozenset(p[0] for p in PHRASES)

# Title terms that name the records a dataset holds (money planned, spent or paid, agreements,
# authorisations, checks, requests, the dated events of a calendar) rather than the thing they
# are about: 'Special Event Permits' and 'FOIA Request Log - Special Events' are not 'Special
# Events' nor each other, 'Human Services Contracts' not 'Human Service Agencies', 'Cook County
# Budget' not 'Cook County - Facilities', 'Zilker Botanical Garden Sept-Nov 2015 events' not
# 'Botanical Gardens', an office's 'News And Events' nor its 'Calendar' the offices, the 'Circulation' or 'Visitors' of
# libraries and the 'Ridership' of bus routes (figures of a service's use) not the libraries nor the
# routes. Each term names a family of records, that of its record word: 'Building
# Permits', 'Permits Issued' and 'DOB Permit Issuance' all hold permits, 'Code Violations' and
# 'DOB Violations' violations, 'Capital Budget' and 'City Budget' a budget; what the records
# are of ('building', 'code', 'capital') is their subject, which the other signals weigh.
RECORD_FAMILIES = {
    "budget": "budget", "capital_budget": "budget", "spending": "spending", "revenue": "revenue",
    "budget_revenue": "revenue", "budget_spending": "spending",   # (PHRASES: a budget's sides)
    "contract": "contract", "payment": "payment", "salary": "salary", "grant": "grant",
    # money a programme gives its customers or applicants, as a grant does ('Electric Utility Discount Program',
    # 'Solar Rebate Program', 'Child Care Subsidies', 'Solar Incentive Program'): no list of the utilities
    "discount": "grant", "rebate": "grant", "subsidy": "grant", "incentive": "grant",
    # ... and aid, money a government gives a body or a person ('New York State School Aid', 'Aid to the Blind
    # Payments', 'College Aid Awards', 'Local Aid'): no list of the schools or the colleges (not 'first aid' nor a
    # 'hearing aid': PLACES_NAMED)
    "aid": "grant",
    # ... and a donation, money a person or a business gives a body ('Donations to Recreation and Parks Department',
    # 'Combined Fund Drive Donations 2014'): no list of the parks (a campaign's donations are its finance: CAMPAIGN_MONEY)
    "donation": "grant",
    "permit": "permit", "building_permit": "permit",
    "license": "license", "business_license": "license", "restaurant_license": "license",
    "inspection": "inspection", "restaurant_inspection": "inspection",
    "violation": "violation", "code_violation": "violation", "building_violation": "violation",
    # a scofflaw list names those who flout the law: the owners of the violations they never paid or fixed
    # (Chicago's 'Building Code Scofflaw List'), no law ('City Building Codes for Missouri')
    "scofflaw": "violation",
    "request": "request",
    "event": "event", "calendar": "event", "posting_schedule": "event",
    "ridership": "use", "circulation": "use", "attendance": "use", "visitor": "use", "library_hold": "use",
    # a school's graduates are counted, never listed (no open data names its students): figures, as 'Number of'
    "graduate": "figure",
    # full-time equivalents count a budget's positions, not its money ('2016 Adopted Budget FTEs', 'Budget - FTE')
    "fte": "position",
    # a schedule of what a service costs ('Directory Of Land Use Application Fees'): prices, not the land use they
    # are charged for; beside records of another family, the fees are theirs ('Building Permits - Waived Fees')
    "fee": "fee",
    # what a council passes ('Council Member Tovo Resolutions'): acts, not the members who sponsor them (not
    # 'ordinance': a 'Budget Ordinance - Appropriations' is a budget)
    "resolution": "legislation",
    # a building code is a law, the one buildings are built to ('City Building Codes for Missouri'), no building
    "building_code": "legislation", "legal_code": "legislation",
    # the people a jail, a prison, a detention centre or a shelter holds, counted: no city's residents, nor the places
    # ('Ethnic Distribution of Detention Population' / 'Racial And Ethnic Distribution By Wards')
    "custody_population": "population", "shelter_population": "population",
}
FEE = "fee"
# Words of an office whose records are of one family unless the title names which: 'Code
# Enforcement Cases' and 'Housing Code Enforcement' hold violations, NOLA's 'Code
# Enforcement All Inspections' inspections.
OFFICE_RECORDS = {"code+enforcement": "violation"}
# words that, heading a title before 'of', say it holds figures of what follows ('Percent of Short-term
# Rentals Issued by Census Tract', 'Total Number of High School Seniors'), not the things: a family of their own
FIGURE_HEADS = frozenset({"number", "percent", "percentage", "proportion", "share", "count", "rate"})
FIGURES = "figure"
GRANT = "grant"   # (money given: a description's 'financial assistance' too, features._money_given_listed)
# an economy's classifications: records broken down by them are its figures, since a payroll lists people and a
# ledger payees, never industries ('Employee Compensation by Industry in Iowa' estimates the state's economy)
ECONOMY_BREAKDOWNS = frozenset({"industry", "sector", "naics", "occupation"})
# whose money a title's money words count changes what its records are: the contributions, receipts, loans,
# disbursements and spending of an election, a campaign or its candidates are campaign finance ('2014 Elections -
# Total Disbursements', 'Other Receipts For Hawaii State and County Candidates'), not a treasury's ('IDOR January
# 2011 Disbursement Info', taxes paid out to local governments) nor a city's payments
CAMPAIGN_FINANCE = "campaign_finance"
CAMPAIGN_WORDS = frozenset({"campaign", "election", "candidate", "electioneering", "pac"})
CAMPAIGN_MONEY = frozenset({"contribution", "donation", "donor", "receipt", "loan", "disbursement", "disbursed",
                            "spending", "payment", "finance", "financing"})
# ... and a lobbyist's compensation is the fees its clients pay it ('Lobbyist Data - Compensation'), no employee's pay
FEES_NOT_PAY = frozenset({"lobbyist"})
FAMILY_BITS = {family: 1 << i for i, family in
               enumerate(sorted(set(RECORD_FAMILIES.values()) | {FIGURES, CAMPAIGN_FINANCE}))}
RECORD_BITS = {term: FAMILY_BITS[family] for term, family in RECORD_FAMILIES.items()}
OFFICE_BITS = {term: FAMILY_BITS[family] for term, family in OFFICE_RECORDS.items()}
# the record words of a phrase ('building_permit': 'permit'), which modify what it modifies
RECORD_PARTS = {phrase: {w for words, p in PHRASES.items() if p == phrase for w in words} & RECORD_BITS.keys()
                for phrase in RECORD_BITS if "_" in phrase}
# every term that can name a family (for explanations)
NAMING_BITS = OFFICE_BITS | RECORD_BITS | {head: FAMILY_BITS[FIGURES] for head in FIGURE_HEADS | ECONOMY_BREAKDOWNS}
for _word in CAMPAIGN_WORDS | CAMPAIGN_MONEY:
    NAMING_BITS[_word] = NAMING_BITS.get(_word, 0) | FAMILY_BITS[CAMPAIGN_FINANCE]
NAMING_BITS["salary"] |= FAMILY_BITS["payment"]   # a lobbyist's 'Compensation' names the payments it holds


# the names of budget transparency applications, which the records they serve follow (Seattle's
# 'Open Budget Application - Capital Project Details' lists capital projects; its 'Open Budget
# Application: Operating Budget' names a budget again, LA's 'Open Budget - Revenue' revenue)
APPLICATION_NAMES = {"open+budget": "budget"}
# places named by a record word ('Elementary School Attendance Boundaries', 'Visitor Centers'), a payment
# model ('Medicare Fee-for-Service Beneficiaries'), care and a device ('First Aid Stations', 'Hearing Aid Dealers'):
# no records of it
PLACES_NAMED = {"attendance_area": "attendance", "visitor_center": "visitor", "fee_for_service": "fee",
                "first_aid": "aid", "hearing_aid": "aid"}


def records_named(terms) -> int:
    """Which families of records a title's terms name, as bits of FAMILY_BITS ('Restaurant
    Scores' and 'Food Inspections' both name inspections; 'Code Enforcement Cases'
    violations). A record word right before one of another family says what those records
    are of, not a family of its own: 'Permit Inspections' are inspections, 'Alcoholic
    Beverage License Violations' violations; 'Permits and Inspections' names both."""
    terms = list(terms)
    present = set(terms)
    if present & CAMPAIGN_WORDS and present & CAMPAIGN_MONEY:
        return FAMILY_BITS[CAMPAIGN_FINANCE]
    named = present & RECORD_BITS.keys()
    if "salary" in named and present & FEES_NOT_PAY:
        named = (named - {"salary"}) | {"payment"}
    for name, word in APPLICATION_NAMES.items():   # 'Open Budget Application - Capital Project Details'
        if name in present and terms.count(word) == 1:
            named.discard(word)
    named -= {word for place, word in PLACES_NAMED.items() if place in present}
    # a phrase's own family, not that of a word of it ('Revenue Budget', a budget's revenue side: no budget)
    named -= {part for term in named & RECORD_PARTS.keys() for part in RECORD_PARTS[term]
              if RECORD_BITS[part] != RECORD_BITS[term]}
    if FEE in named and len(named) > 1:   # 'Building Permits - Waived Fees' lists permits
        named.discard(FEE)
    if not named:
        return sum({OFFICE_BITS[term] for term in present & OFFICE_BITS.keys()})
    if len({RECORD_BITS[term] for term in named}) > 1:   # then one may modify another
        modifiers = set()
        for term in present:
            first, joined, second = term.partition("+")   # a bigram: 'permit' right before 'inspection'
            if joined and first in named and RECORD_BITS.get(second, RECORD_BITS[first]) != RECORD_BITS[first]:
                modifiers |= {first} | RECORD_PARTS.get(first, set())
        named = (named - modifiers) or named
    return sum({RECORD_BITS[term] for term in named})


# Terms that show a dataset is a set of shapes (the areas others' records fall in).
BOUNDARY_TERMS = frozenset({"boundary", "footprint", "building_footprint", "map", "geojson", "gis"})
# a file's form at a title's end ('2010 Census Tracts - Shape'; 'KML', 'KMZ' and 'Shapefile' are
# stopwords, file formats): shapes, but of points ('Ward Offices') or of areas as the words before it say
SHAPE_FORMATS = frozenset({"shape", "format", "zipped"})   # '... Districts (Zipped Shapefile Format)'
# stopwords that name what a title lists when they end it after a word of its own, kept as title
# terms: 'Ward Offices' are offices, not wards, 'Fire Divisions' divisions, not fire ('Office of the
# Mayor' names a publisher)
HEAD_NOUNS = frozenset({"office", "division"})
# ... and, besides them, those a boundary file's title cannot end with ('School Progress Report')
HEAD_STOPWORDS = HEAD_NOUNS | {"report", "program", "official"}
# words before an area noun that make a title a table about the areas: counts by area, values for all of them
PER_AREA = frozenset({"by", "per", "for", "all"})
AREA_NOUNS = frozenset({"district", "ward", "zone", "neighborhood", "tract", "precinct", "beat", "area",
                        "parcel", "block", "region", "sector", "zip", "zipcode", "council", "community"})

# Column-name abbreviations and synonyms: cities' column names to one spelling.
COLUMN_WORDS = {
    "no": "number", "num": "number", "nbr": "number", "nmbr": "number", "numb": "number", "nr": "number",
    "dt": "date", "dte": "date", "tm": "time", "datetime": "date", "timestamp": "date",
    "desc": "description", "descr": "description", "dsc": "description",
    "addr": "address", "add": "address", "cd": "code", "ident": "id", "identifier": "id", "key": "id",
    "lat": "latitude", "lon": "longitude", "lng": "longitude", "long": "longitude",
    "zipcode": "zip", "postal": "zip", "postcode": "zip",
    "dept": "department", "yr": "year", "amt": "amount", "qty": "quantity", "tot": "total",
    "nm": "name", "typ": "type", "cat": "category", "loc": "location", "geom": "geometry",
    "shape": "geometry", "the": "", "of": "", "a": "", "st": "street", "stno": "street number",
    "ofns": "offense", "offence": "offense", "crm": "crime", "rpt": "report", "occ": "occurred",
    "occur": "occurred", "occurrence": "occurred", "boro": "borough", "nbhd": "neighborhood",
    "neighbourhood": "neighborhood", "insp": "inspection", "viol": "violation", "lic": "license",
    "licence": "license", "bldg": "building", "sal": "salary", "pos": "position", "emp": "employee",
    "fname": "first name", "lname": "last name",
}


# Civic words found inside a file or layer name written as one word ('pdicaseoffensesq',
# 'CMPDIncidents', 'dispatchedcallsopendata'): the name is cut around them.
GLUED_WORDS = sorted("""
offense offence incident arrest collision citation dispatch allegation complaint crime traffic pursuit
warning shooting officer employee calls service request violation permit inspection crash accident
police force parking stops subject demographic contact injuries budget salary salaries license licence
building restaurant property street useof data stop
""".split(), key=len, reverse=True)
GLUED = re.compile("|".join(GLUED_WORDS))
VOWEL = re.compile("[aeiouy]")
AFFIXES = frozenset("""
s es ed ing ings er ers or ors ee ees ment ments al king ion ions ies y ly ted ting ation ations ive
un re pre non sub en in dis ped ping per pers pable
""".split())


def _acronym(part: str) -> bool:
    return len(part) > 1 and part not in AFFIXES and (len(part) <= 3 or not VOWEL.search(part)
                                                      or part.endswith("pd"))


@lru_cache(maxsize=1 << 16)
def unglue(word: str) -> tuple[str, ...]:
    """A word of several civic words glued together, cut into them ('cmpdincidents' ->
    'cmpd', 'incidents'); a real word with a civic word inside ('enforcement', 'trafficking',
    'incidents') is left whole."""
    if len(word) < 7 or word.isdigit() or word in STOPWORDS:   # 'dataset' is not 'data' + 'set'
        return (word,)
    pieces: list[str] = []
    position, matched, leftovers = 0, 0, []
    for match in GLUED.finditer(word):
        if match.start() > position:
            leftovers.append(word[position:match.start()])
            pieces.append(word[position:match.start()])
        pieces.append("use of" if match.group() == "useof" else match.group())
        position, matched = match.end(), matched + 1
    if position < len(word):
        leftovers.append(word[position:])
        pieces.append(word[position:])
    # one civic word inside a longer word is a word of its own ('solicitations', 'workforce',
    # 'resuscitation') unless the rest looks like an acronym ('cmpd', 'apd', 'sq'); an 'e' before
    # it is 'electronic' ('2017ECitations': e-citations are citations)
    if pieces[0] == "e" and len(pieces) > 1:
        pieces = pieces[1:]
    elif not matched or (matched == 1 and not any(_acronym(part) for part in leftovers)):
        return (word,)
    return tuple(w for piece in pieces for w in piece.split()
                 if (len(w) > 1 and w not in AFFIXES) or w.isdigit() or w == "of")


def _without_ids(text: str) -> str:
    """`text` without ids, in its own case (capitals tell an id from a file name's words)."""
    if "-" in text:
        text = UUID.sub(" ", text)
    if "arcgis" in text.lower():
        text = SERVICE_PATH.sub(" ", text)
    return ID_TOKEN.sub(" ", text)


def fold(text: str) -> str:
    """`text` in lower case without accents: 'Café' and 'CAFE' meet."""
    text = text.lower()
    if text.isascii():
        return text
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


def find_words(text: str) -> list[str]:
    """The words and numbers of `text` (lower case, no possessives): ASCII text, nearly all
    of it, by the cheaper pattern."""
    text = fold(text)
    if "'" in text or "’" in text:
        text = POSSESSIVE.sub("", text)
    return (WORD if text.isascii() else ANY_WORD).findall(text)


# A title cut at a catalogue field's length ('Richmond Police Department Citywide Traffic Crashe',
# 50 characters): its last word is a civic word's start. Only a long title is cut.
CUT_TITLE_LENGTH = 40
CUT_WORD_LENGTH = 5


@lru_cache(maxsize=1 << 12)
def completed(word: str) -> str:
    """A title's last word cut short, completed when it starts one civic word only (its plural
    too: 'crashe' -> 'crash'); a word of its own, or a known one, stays as it is ('Design Build':
    a civic word less an ending, 'building', is a word)."""
    if len(word) < CUT_WORD_LENGTH or not word.isalpha() or word in STOPWORDS or word in GENERIC \
            or stem(word) in GLUED_WORDS or stem(word) in SYNONYMS \
            or any(civic.startswith(word) and civic[len(word):] in AFFIXES for civic in GLUED_WORDS):
        return word
    found = {_stem_word(civic) for civic in GLUED_WORDS
             if any(form.startswith(word) and form != word for form in (civic, civic + "s", civic + "es"))}
    return found.pop() if len(found) == 1 else word


def split_words(text: str, glued: bool = True) -> list[str]:
    """Lowercased words of `text` (accents off, possessives one word), glued civic words cut
    apart (`glued`: a title may be a file name; a description is prose, where
    'resuscitation' is one word); a long title's last word cut short is completed."""
    found = find_words(_without_ids(text))
    if glued:
        found = [part for word in found for part in (unglue(word) if len(word) >= 7 else (word,))]
        if len(text) >= CUT_TITLE_LENGTH and found and text.rstrip()[-len(found[-1]):].lower() == found[-1]:
            found[-1] = completed(found[-1])
    if "open" in found or "opendata" in found:   # 'Open Data ...' says where a file was published
        found = [w for i, w in enumerate(found) if not (w == "open" and found[i + 1:i + 2] == ["data"])
                 and w != "opendata"]
    if "set" in found:   # a 'Data Set' is a dataset: 'Request a Data Set' names no set
        found = [("dataset" if w == "data" and found[i + 1:i + 2] == ["set"] else w) for i, w in enumerate(found)
                 if not (w == "set" and i and found[i - 1] == "data")]
    return found


# words ending as a plural that are none: 'AIDS' is the disease ('HIV/AIDS Diagnoses by Neighborhood', 'DOHMH HIV/AIDS
# Annual Report'), no plural of 'aid' (money given: RECORD_FAMILIES), and aids in the plural are devices ('Hearing
# Aids', 'Aids to Navigation'), no money either
NOT_PLURALS = frozenset({"aids"})


def stem(word: str) -> str:
    """Plural and possessive endings off: enough to meet 'permits'/'permit', 'licenses'/'license'."""
    if len(word) <= 3 or word.isdigit() or word in NOT_PLURALS:
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("sses") or word.endswith("xes") or word.endswith("ches") or word.endswith("shes"):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


@lru_cache(maxsize=1 << 16)
def _stem_word(word: str) -> str:
    stemmed = stem(word)
    return SYNONYMS.get(stemmed, stemmed)


@lru_cache(maxsize=1 << 16)
def _is_content(word: str) -> bool:
    return (word not in STOPWORDS and len(word) > 1
            and (word in KEEP_NUMBERS or not YEARISH.match(word)))


def words(text: str | None, glued: bool = True) -> list[str]:
    """Lowercased, stemmed, synonym-mapped words of `text`, in order (stopwords kept, for phrases)."""
    if not text:
        return []
    return [_stem_word(w) for w in split_words(text, glued)]


def terms(text: str | None, drop: frozenset[str] = frozenset(), bigrams: bool = True,
          glued: bool = True) -> list[str]:
    """Index terms of a title or description: phrases joined into one term, stopwords,
    years and the dataset's own city name dropped, then the words and their bigrams."""
    return [term for term, _surface in terms_with_surface(text, drop, bigrams, glued)]


def terms_with_surface(text: str | None, drop: frozenset[str] = frozenset(),
                       bigrams: bool = True, glued: bool = True) -> list[tuple[str, str]]:
    """Like `terms`, each with the words of `text` it came from (for labels and explanations)."""
    if not text:
        return []
    return terms_read(*read_words(text, bigrams, glued), drop, bigrams)


def read_words(text: str, bigrams: bool = True, glued: bool = True) -> tuple[list[str], list[str], int]:
    """What `terms_with_surface` reads of a text before it drops a dataset's own place words: its words as
    written and stemmed (the words a place word is looked for among) and how many of them head a title."""
    if "fy" in text.lower():
        text = FISCAL_YEAR_INSIDE.sub(" ", text)
    raw = split_words(text, glued)
    stemmed = [_stem_word(w) for w in raw]
    if "compensation" in raw or "comp" in raw:
        stemmed = _workers_compensation(raw, stemmed)
    if NEGATION in raw:
        raw, stemmed = _negated(raw, stemmed)
    if "use" in raw:
        stemmed = [CONSUMPTION if w == "use" and i and stemmed[i - 1] in RESOURCES else w for i, w in enumerate(stemmed)]
    if "population" in stemmed and CORRECTIONS.intersection(stemmed):
        stemmed = _correctional_population(stemmed)
    # (the words of a title's head, before a ':' or a ' - ', may name the bodies it lists: not a description's)
    head_words = len(split_words(TITLE_PARTS.split(text, 1)[0], glued)) if bigrams and LISTED_BODIES & set(raw) else 0
    return raw, stemmed, head_words


def terms_read(raw: list[str], stemmed: list[str], head_words: int, drop: frozenset[str],
               bigrams: bool = True) -> list[tuple[str, str]]:
    """`terms_with_surface` of the words `read_words` read, less the words of `drop`."""
    units: list[tuple[str, str]] = []
    parts: list[tuple[str, str]] = []
    i, n, last_phrase_end = 0, len(stemmed), -1
    while i < n:
        word = stemmed[i]
        if word in PHRASE_STARTS:
            for length in PHRASE_LENGTHS:
                phrase = PHRASES.get(tuple(stemmed[i:i + length])) if i + length <= n else None
                if phrase:
                    surface = " ".join(raw[i:i + length])
                    if units and units[-1][0] == phrase and last_phrase_end == i:
                        units[-1] = (phrase, f"{units[-1][1]} {surface}")  # '311' + 'customer service requests'
                    else:
                        units.append((phrase, surface))
                    last_phrase_end = i + length
                    # its words too, so 'building permits' still shares 'building' with 'building safety'
                    parts += [(w, r) for w, r in zip(stemmed[i:i + length], raw[i:i + length])
                              if w not in STOPWORDS and w not in KEEP_NUMBERS and len(w) > 2
                              and phrase not in GENERIC and w not in PARTS_NOT_KEPT.get(phrase, ())]
                    i += length
                    break
            else:
                phrase = None
            if phrase:
                continue
        # (titles are read with their bigrams, descriptions without: a head noun is a title's)
        if ((_is_content(word) or _heads_a_title(stemmed, i, bigrams)
             or (i < head_words and _lists_bodies(raw, stemmed, i)))
                and word not in drop and raw[i] not in drop
                and not (raw[i] in STATE_CODES and _beside_own_place(raw, i, drop))):
            units.append((word, raw[i]))
        elif units and units[-1][0]:
            units.append(("", ""))  # a dropped word breaks bigrams
        i += 1
    out = [(term, surface) for term, surface in units if term] + parts
    if bigrams:
        out += [(f"{a}+{b}", f"{sa} {sb}") for (a, sa), (b, sb) in zip(units, units[1:]) if a and b and a != b]
    return out


# words of a phrase not kept beside it: a police precinct shares no 'precinct' with an election's ('precinct' alone is
# a voting precinct: a county's 'Precincts', 'Ward Precincts'); its 'police' kept ('Police District Stations' are police
# stations), and a police district's 'district', a word of every kind of district as before
PARTS_NOT_KEPT = {"police_district": frozenset({"precinct"})}


# a fiscal year written between two words of a phrase says when, and the phrase runs across it: 'Proposed FY14
# Budget' is a proposed budget (a year is not read so: 'Payroll 2012 Qtr1', 'Raleigh Buildings 2011 Roofs' end a phrase)
FISCAL_YEAR_INSIDE = re.compile(r"(?<=[^\W\d_]) +FY ?\d{2,4}(?:[-/]\d{2,4})? +(?=[^\W\d_])", re.IGNORECASE)
# the use of a resource a utility supplies is its consumption, as its usage is (SYNONYMS): 'Residential Water Use',
# 'Residential Water Usage', 'Residential Water Consumption' ('Land Use' is none)
RESOURCES = frozenset({"water", "energy", "electricity", "gas", "fuel", "power"})
CONSUMPTION = SYNONYMS["usage"]
# the population a corrections agency counts is the people it holds or supervises, what the Bureau of Justice Statistics
# calls the correctional population: Connecticut's 'Correctional Facility Daily Population Count By Facility' and
# 'Department of Corrections Quarterly Average Facilty Population' are a prison's population, words apart ('jail
# population', 'prison population' are phrases: PHRASES)
CORRECTIONS = frozenset({"correction", "correctional"})
CUSTODY_POPULATION = PHRASES[("prison", "population")]


def _correctional_population(stemmed: list[str]) -> list[str]:
    """`stemmed` with a title's 'population' that no custody word heads read as the custody population."""
    return [CUSTODY_POPULATION if w == "population" and not (i and (stemmed[i - 1], w) in PHRASES) else w
            for i, w in enumerate(stemmed)]


# a part of a title that is a body's name ('Department of Budget & Management (DBM)', 'Bureau of Sanitation', 'Board
# of Review'), parted from the rest by a dash, a colon or a bracket, says whose the records are, not what they are:
# Maryland's 'Managing for Results - Department of Budget & Management (DBM)' holds performance measures, no budget,
# Connecticut's 'Department of Revenue Services - Tax Credits Claimed For 2010' tax credits, no revenue
BODIES = ("department", "dept", "office", "bureau", "division", "board", "commission", "administration")
BODY_NAME = re.compile(rf"^\s*(?:the\s+)?(?:[^\W\d_][\w.'’]*\s+){{0,3}}?(?:{'|'.join(BODIES)})\.?\s+(?:of|for|on)\s+\S",
                       re.IGNORECASE)
# the words of a period, which say when, not what ('... Expenditures: Beginning Fiscal Year 2009')
PERIOD = frozenset({"fiscal", "quarter", "qtr", "q1", "q2", "q3", "q4", "fy"})
ACRONYM_PART = re.compile(r"\s*[A-Z]{2,8}\s*")
BODY_PARTS = re.compile(r"\s[-–—?]|[-–—?]\s|[:()\[\]]")


def body_name_words(title: str | None, drop: frozenset[str] = frozenset()) -> frozenset[str]:
    """The terms a title names only in the part of it that is a body's name (BODY_NAME), when another part says what
    it holds; none for a title that is a body's name alone or has no such part."""
    if not title or not any(w in title.lower() for w in BODIES):
        return frozenset()
    parts = [p for p in BODY_PARTS.split(title) if p.strip()]
    named = [p for p in parts if BODY_NAME.match(p)]
    # (a part of one word in capitals beside a body's name is its acronym: 'OACE (Office of Adult and Continuing
    # Education) Sites')
    rest = [p for p in parts if not BODY_NAME.match(p) and not (named and ACRONYM_PART.fullmatch(p))]
    # ... and a title whose other words are the body's offices or sites, or a period, lists the body's own places:
    # its name is the subject ('Department of Motor Vehicle (DMV) Office Locations')
    if not named or not any(_is_content(w) and w not in drop and w not in PERIOD and w not in GENERIC
                            for p in rest for w in words(p)):
        return frozenset()
    return frozenset(terms(" - ".join(named), drop)) - frozenset(terms(" - ".join(rest), drop))


# 'non-' makes its word the complement: a 'Non-General Fund' is every fund but the general fund
NEGATION = "non"


def _negated(raw: list[str], stemmed: list[str]) -> tuple[list[str], list[str]]:
    """`raw` and `stemmed` with 'non' and the word after it one word ('nongeneral', as 'nonprofit' is written)."""
    out_raw, out_stemmed, i = [], [], 0
    while i < len(raw):
        if raw[i] == NEGATION and i + 1 < len(raw) and raw[i + 1].isalpha():
            out_raw.append(f"non-{raw[i + 1]}")
            out_stemmed.append(NEGATION + stemmed[i + 1])
            i += 2
        else:
            out_raw.append(raw[i])
            out_stemmed.append(stemmed[i])
            i += 1
    return out_raw, out_stemmed


def negated_words(text: str | None) -> frozenset[str]:
    """The words a title negates ('general' of 'Non-General Fund Expenditures'), stemmed; not one it names
    besides, which it holds both sides of ('Hit and Non Hit Shooting Incidents')."""
    raw = split_words(text) if text else []
    negated = {_stem_word(w) for w, before in zip(raw[1:], raw) if before == NEGATION and w.isalpha()}
    if not negated:   # (nearly every title)
        return frozenset()
    return frozenset(negated - {_stem_word(w) for w, before in zip(raw, [""] + raw) if before != NEGATION})


@lru_cache(maxsize=1 << 12)
def broken_down_by(text: str | None) -> frozenset[str]:
    """The words a title names only after 'by' or 'per', in what it breaks its records down by, stemmed
    ('hispanic' of Connecticut's '... Selected Causes of Death by Age, Sex, Race and Hispanic Ethnicity'). A
    breakdown holds every value of what it breaks down by, the Hispanic and the non-Hispanic alike: it names no side
    a complement could leave out."""
    if not text or not BREAKDOWN_WORD.search(text):
        return frozenset()
    head, *after = BREAKDOWN_WORD.split(text)
    return frozenset(words(" ".join(after))) - frozenset(words(head))


def _workers_compensation(raw: list[str], stemmed: list[str]) -> list[str]:
    """`stemmed` with 'workers compensation' kept in its own words, which PHRASES read as one: the insurance of
    injured workers ('Oregon Workers' Compensation System'), no employees' pay, as the synonyms would read it."""
    out = list(stemmed)
    for i in range(len(raw) - 1):
        if raw[i] in ("worker", "workers", "workmen") and raw[i + 1] in ("compensation", "comp"):
            out[i:i + 2] = ["worker", "compensation"]
    return out


def _heads_a_title(stemmed: list[str], i: int, title: bool) -> bool:
    """Whether the stopword at `i` of a title is the last noun of a phrase, after a content word, or of what a
    directory lists ('Directory of Criminal Justice Agencies', '... Child Care and Day Care Information Offices')."""
    return (title and i > 0 and (i + 1 == len(stemmed) or (not _is_content(stemmed[i + 1]) and stemmed[i + 1] != "of"))
            and ((stemmed[i] in HEAD_NOUNS and _is_content(stemmed[i - 1]))
                 or (stemmed[i] in LISTED_NOUNS and _in_directory(stemmed, i))))


# stopwords that name what a directory lists, the last of its words: offices, agencies, programs
LISTED_NOUNS = HEAD_NOUNS | {"agency", "program"}
# departments in the plural, ending a title after a word of their own, are what it lists, as a directory's are:
# 'Missouri Fire Departments', Connecticut's 'Police Departments' (in the singular a department names the publisher:
# 'Seattle Police Department Police Report Incident'; after 'for', 'by' or 'per' departments own or break down the
# records: 'Employees by Department'). Not agencies: many are providers, listed beside providers titled otherwise
# ('Hospice Agencies' / 'Hospice Facilities', 'Home Health Care Agencies' / 'Home Health Agencies': benchmarks.md) —
# but law enforcement agencies are police departments and sheriffs' offices, bodies, never providers or records
# ('Missouri Law Enforcement Agencies', 'Currently Accredited Law Enforcement Agencies')
LISTED_PLURALS = frozenset({"departments"})
LAW_ENFORCEMENT_AGENCIES = ("law", "enforcement", "agencies")
# ... and a department right before 'Directory' is what the directory lists ('Fire Department Directory for New
# York State')
DIRECTORY_OF_BODIES = frozenset({"department"})
OWNED_BY = frozenset({"for", "by", "per"})
LISTED_BODIES = LISTED_PLURALS | {"directory", LAW_ENFORCEMENT_AGENCIES[-1]}
# a title's head ends at a colon or a dash between spaces: past it, 'Expenditures: Agencies: As of June 30, 2010'
# says whose records, 'Appropriations - Proprietary Departments' which part of a budget
TITLE_PARTS = re.compile(r":| [-–] ")


def _lists_bodies(raw: list[str], stemmed: list[str], i: int) -> bool:
    """Whether the stopword at `i` of a title names the bodies it lists (LISTED_PLURALS, DIRECTORY_OF_BODIES),
    after a word of the title's own subject."""
    if i == 0 or not _is_content(stemmed[i - 1]):
        return False
    if stemmed[i] in DIRECTORY_OF_BODIES and i + 1 < len(stemmed) and stemmed[i + 1] == "directory":
        return True
    listed = raw[i] in LISTED_PLURALS or tuple(raw[i - 2:i + 1]) == LAW_ENFORCEMENT_AGENCIES
    return (listed and not OWNED_BY & set(raw[:i])
            and all(not _is_content(w) or w.isdigit() for w in stemmed[i + 1:]))


def _in_directory(stemmed: list[str], i: int) -> bool:
    """Whether word `i` follows 'directory of' ('Directory Of DCP Offices')."""
    return any(stemmed[j] == "directory" and stemmed[j + 1] == "of" for j in range(i - 1))


def bodies_listed(title: str | None) -> frozenset[str]:
    """The bodies a directory title lists, as its last word names them ('agency' of 'Directory of Criminal Justice
    Agencies'); none for other titles."""
    if not title or "director" not in title.lower():
        return frozenset()
    stemmed = words(title)
    return frozenset(w for i, w in enumerate(stemmed) if w in LISTED_NOUNS and _heads_a_title(stemmed, i, True)
                     and _in_directory(stemmed, i))


@lru_cache(maxsize=1 << 12)
def body_words(title: str | None) -> frozenset[str]:
    """The body words (agency, office, program, division) a title names anywhere, stemmed."""
    return frozenset(words(title)) & LISTED_NOUNS


# a title's word for the whole of its own place: 'Citywide Traffic Crashes' are the city's 'Traffic Crashes'
WHOLE_PLACE = frozenset({"citywide", "countywide", "statewide"})


# the two-letter codes of the 50 US states and DC, by name: a place's own state is written by its code too ('San
# Francisco, CA', 'yg821jf8611 tx austin 2020 04 01 csv', 'CT Department of Labor' of Connecticut's portal)
US_STATE_CODES = {
    "alabama": "al", "alaska": "ak", "arizona": "az", "arkansas": "ar", "california": "ca", "colorado": "co",
    "connecticut": "ct", "delaware": "de", "florida": "fl", "georgia": "ga", "hawaii": "hi", "idaho": "id",
    "illinois": "il", "indiana": "in", "iowa": "ia", "kansas": "ks", "kentucky": "ky", "louisiana": "la",
    "maine": "me", "maryland": "md", "massachusetts": "ma", "michigan": "mi", "minnesota": "mn", "mississippi": "ms",
    "missouri": "mo", "montana": "mt", "nebraska": "ne", "nevada": "nv", "new hampshire": "nh", "new jersey": "nj",
    "new mexico": "nm", "new york": "ny", "north carolina": "nc", "north dakota": "nd", "ohio": "oh", "oklahoma": "ok",
    "oregon": "or", "pennsylvania": "pa", "rhode island": "ri", "south carolina": "sc", "south dakota": "sd",
    "tennessee": "tn", "texas": "tx", "utah": "ut", "vermont": "vt", "virginia": "va", "washington": "wa",
    "west virginia": "wv", "wisconsin": "wi", "wyoming": "wy", "district of columbia": "dc"}


STATE_CODES = frozenset(US_STATE_CODES.values())


def _beside_own_place(raw: list[str], i: int, drop: frozenset[str]) -> bool:
    """A state's code written beside a word of the dataset's own place is that place's state, as an address
    writes it ('Households with Children, San Francisco, CA'; 'arrests in evanston il 2016 to 2021')."""
    # (a portal's 'data' or 'gov' is no place: 'Parcel ID Data')
    return any(0 <= j < len(raw) and raw[j] in drop and raw[j] not in STOPWORDS for j in (i - 1, i + 1))


def own_state_code(name: str | None) -> str | None:
    """The code of the state a place's name ends with, as places are written ('Anaheim, California',
    'Connecticut', 'New York State', 'Washington D.C., District of Columbia'); not a state's name inside a city's
    ('Kansas City', 'Washington D.C.' alone)."""
    if not name:
        return None
    last = " ".join(find_words(name.rsplit(",", 1)[-1]))
    return US_STATE_CODES.get(last.removesuffix(" state"))


def own_place_words(*names: str | None) -> frozenset[str]:
    """Words of a dataset's own city and portal id, its state's code, and the words for the whole of it: 'Chicago
    Crimes', 'Citywide Crimes' and 'Crimes' are the same subject, as Austin's 'tx austin' and Garland's 'tx
    garland' files share no subject by their state."""
    found: set[str] = set(WHOLE_PLACE)
    for name in names:
        if name:
            found.update(w for w in find_words(name) if not w.isdigit())
            if code := own_state_code(name):
                found.add(code)
    return frozenset(found - {"of", "the", "and"})


@lru_cache(maxsize=1 << 18)
def column_key(name: str | None) -> str:
    """One spelling for a column name: 'PermitNo', 'permit_no', 'Permit #' -> 'number permit'
    (words split on case and separators, abbreviations expanded, stemmed, sorted)."""
    if not name:
        return ""
    spaced = CAMEL.sub(" ", name.replace("#", " number "))
    parts: list[str] = []
    for word in find_words(spaced):
        expanded = COLUMN_WORDS.get(word, word)
        for part in expanded.split():
            part = stem(part)
            part = COLUMN_WORDS.get(part, part)
            if part:
                parts.append(part)
    if "zip" in parts and "code" in parts:
        parts.remove("code")
    return " ".join(sorted(set(parts)))


def normal_value(value: str | None) -> str:
    """Top values compared case- and spacing-blind: 'THEFT ' and 'Theft' meet."""
    return " ".join(find_words(value)) if value else ""


def keyword_terms(values) -> list[str]:
    """Keywords and themes, each normalised to its stemmed words."""
    out = []
    for value in values or ():
        joined = " ".join(w for w in words(value, glued=False) if w not in STOPWORDS)
        if joined:
            out.append(joined)
    return out


# A title word misspelt from a word of the detector's vocabulary by the commonest slips of typing, two neighbouring
# letters swapped or one left out, inside the word ('Compliants': complaints; 'Boundries', 'Elecricity'), is read as
# that word. Not a substituted or an added letter, which make other words ('warming' / 'warning', 'raster' / 'roster',
# 'cooking' / 'booking'), nor a first or a last letter left out, which do too ('pending' / 'spending', 'capita' /
# 'capital'; a title cut at a field's length is `completed`). Guards: the word is long (SLIP_LENGTH letters: a short
# word is one slip from too many others), no description of the catalogue writes it (a word prose uses is a word:
# 'compliant', 'offices', 'insects'), and the catalogue's titles and descriptions write the word it misspells
# SLIP_RARITY times as often as its titles write the misspelling (a misspelling is rare beside its word).
SLIP_LENGTH = 6
SLIP_RARITY = 10
# the words this module reads (the concepts add theirs: features.VOCABULARY)
VOCABULARY = frozenset(word for word in (*GLUED_WORDS, *RECORD_FAMILIES, *SYNONYMS, *SYNONYMS.values(),
                                         *(w for phrase in PHRASES for w in phrase)) if word.isalpha())
LETTERS = re.compile(r"[^\W\d_]+")


def _forms(word: str) -> set[str]:
    """A vocabulary word (stemmed) as titles write it: itself and its plural ('complaint', 'complaints'; 'injury',
    'injuries'; 'address', 'addresses')."""
    forms = {word, word + "s"}
    if word.endswith("y"):
        forms.add(word[:-1] + "ies")
    if word.endswith(("s", "x", "ch", "sh")):
        forms.add(word + "es")
    return forms


@lru_cache(maxsize=8)
def slips(vocabulary: frozenset[str]) -> dict[str, str]:
    """Each misspelling of a form of a `vocabulary` word by two neighbouring letters swapped or one left out, inside
    the word, SLIP_LENGTH letters or more -> the form it misspells (none that is itself a form, nor one that two forms
    are a slip from)."""
    forms = {form for word in vocabulary for form in _forms(word)}
    found: dict[str, set[str]] = {}
    for form in forms:
        inside = range(1, len(form) - 1)
        swapped = {form[:i] + form[i + 1] + form[i] + form[i + 2:] for i in inside[:-1] if form[i] != form[i + 1]}
        dropped = {form[:i] + form[i + 1:] for i in inside}
        for slip in swapped | dropped:
            if len(slip) >= SLIP_LENGTH and slip not in forms:
                found.setdefault(slip, set()).add(form)
    return {slip: next(iter(meant)) for slip, meant in found.items() if len(meant) == 1}


def respellings(titles: list[str | None], descriptions: list[str | None], vocabulary: frozenset[str]) -> dict[str, str]:
    """The misspellings of `vocabulary` words the catalogue's titles write -> the word each misspells, as a title
    writes it ('compliants' -> 'complaints'), by the guards above."""
    known = slips(vocabulary)
    titled = "\n".join(t for t in titles if t).lower()
    written = set(LETTERS.findall(titled)) & known.keys()
    if not written:
        return {}
    # (counted as text, not as words: a misspelling inside a word, 'noncompliant', counts as written, which spares it)
    described = "\n".join(d for d in descriptions if d).lower()
    return {slip: known[slip] for slip in sorted(written) if slip not in described
            and titled.count(known[slip]) + described.count(known[slip]) >= SLIP_RARITY * titled.count(slip)}


def respelled(title: str | None, found: dict[str, str]) -> str | None:
    """`title` with its misspelt words (`found`, from `respellings`) written as meant, in the title's case."""
    if not title or not found or not any(slip in title.lower() for slip in found):
        return title

    def meant(match: re.Match) -> str:
        word = match.group()
        right = found.get(fold(word))
        if not right:
            return word
        return right.upper() if word.isupper() else right.capitalize() if word[:1].isupper() else right

    return LETTERS.sub(meant, title)
