"""The concept layer on real titles and descriptions of the fixture catalogues (2017
Socrata domains, 2013 city data.json): each wording of a kind of police or 311 record is
read as that kind, and titles that only look alike are not."""
import numpy as np
import pytest

from catalog.overlap import concepts, scoring, text
from tests.portals.catalogues import fixture_datasets, place_of, portal_id


def concept_of(domain: str, source_id: str) -> tuple[str, ...]:
    """The kind the detector reads, its own place's words dropped as the harvest names them."""
    title, description = fixture_datasets()[(domain, source_id)]
    return concepts.of_dataset(title, description, text.own_place_words(place_of(domain), portal_id(domain)))


KINDS = {   # real datasets, by the kind of record they hold, in each city's own words
    "crime_incident": [("data.cityofchicago.org", "ijzp-q8t2"),   # Crimes - 2001 to present
                       ("data.wa.gov", "jwyj-mg7x"),              # Juvenile Offense Referrals (a status offense's aside)
                       ("data.sfgov.org", "tmnf-yvry"),           # Police Department Incidents
                       ("data.seattle.gov", "m2gk-mysw"),         # Seattle Police Department Police Report Offense
                       ("data.austintexas.gov", "4c6h-tv2y"),     # APD Incident Extract 2010
                       ("data.cityofboston.gov", "7cdf-6fgx")],   # Crime Incident Reports
    "calls_for_service": [("data.sfgov.org", "hz9m-tj6z"),        # Police Department Calls for Service
                          ("data.cityofmadison.com", "4gss-84dk"),  # Madison Police Calls for Service
                          ("data.baltimorecity.gov", "xviu-ezkt"),  # 911 Calls for Service
                          ("data.seattle.gov", "3k2p-39jp"),      # Seattle Police Department 911 Incident Response
                          ("data.illinois.gov", "9zru-nvxs")],    # Rockford Police Department 72 Hour Dispatch Call Log
    "service_request": [("data.baltimorecity.gov", "9agw-sxsr"),  # 311 Customer Service Requests
                        ("data.cityofnewyork.us", "erm2-nwe9")],  # 311 Service Requests from 2010 to Present
    "use_of_force": [("data.austintexas.gov", "5pnt-e38e"),       # Response To Resistance 2014
                     ("data.seattle.gov", "ppi5-g2bj")],          # Use Of Force
    "officer_shooting": [("data.austintexas.gov", "63p6-iegi"),   # Officer Involved Shooting 2000-2014
                         ("data.austintexas.gov", "e9x2-49sw"),   # OIS Dataset 2006-15 - Subjects
                         ("data.seattle.gov", "mg5r-efcm")],      # SPD Officer Involved Shooting (OIS) Data
    "arrest": [("data.baltimorecity.gov", "3i3v-ibrt"),           # BPD Arrests
               ("data.kingcounty.gov", "j56h-zgnm")],             # Adult Jail Booking: Aug. 1, 2012 ...
    "pedestrian_stop": [("data.cityofnewyork.us", "ftxv-d5ix")],  # The Stop, Question and Frisk Data
    # stops of vehicles and of pedestrians together are all of a department's stops
    # (OpenPoliceData files LAPD's stop table under STOPS, not PEDESTRIAN STOPS)
    "police_stop": [("data.lacity.org", "fmpk-vq3h")],            # LAPD Vehicle and Pedestrian Stops 2015
    "traffic_stop": [("data.maryland.gov", "nq4v-y7m5")],         # MSP Traffic Stops 2014
    "field_contact": [("data.nola.gov", "kitu-f4uy")],            # Stop and Search (Field Interviews)
    "police_complaint": [("data.montgomerycountymd.gov", "usip-62e2"),  # Internal Affairs Allegations
                         ("data.cityofnewyork.us", "mtfg-8ayp")],  # CCRB: Disposition Of Abuse Of Authority Allegations
    "parking_citation": [("data.lacity.org", "wjz9-h9np"),        # Parking Citations
                         ("data.cityofnewyork.us", "yyiw-ypks")],  # Parking Tickets
    "crash": [("data.cityofnewyork.us", "h9gi-nx95")],            # NYPD Motor Vehicle Collisions
    "fire_ems_call": [("data.sfgov.org", "nuek-vuh3"),            # Fire Department Calls for Service
                      ("data.cityofnewyork.us", "76xm-jjuj"),     # EMS Incident Dispatch Data
                      ("data.seattle.gov", "kzjm-xkqj"),          # Seattle Real Time Fire 911 Calls
                      ("data.lacity.org", "cthf-nngn")],          # LAFD_ResponseMetrics_RawData
    "crime_statistics": [("data.maryland.gov", "jwfa-fdxs"),      # Violent Crime & Property Crime by County: 1975 ...
                         ("data.seattle.gov", "3xqu-vnum"),       # Seattle Crime Stats by Police Precinct 2008-Present
                         ("data.ny.gov", "ca8h-8gjq"),            # Index Crimes by County and Agency: Beginning 1990
                         ("data.maryland.gov", "3fys-ggpk"),      # Anne Arundel County Crime Rate By Type
                         ("data.baltimorecity.gov", "b7m7-y85s"),  # Crime 2010 Count By District
                         ("data.jacksonms.gov", "jiea-vc79")],    # Weekly Crime Statistics
}


@pytest.mark.parametrize("kind,domain,source_id", [(k, d, i) for k, ids in KINDS.items() for d, i in ids])
def test_each_wording_of_a_kind_is_read_as_that_kind(kind, domain, source_id):
    assert concept_of(domain, source_id) == (kind,), fixture_datasets()[(domain, source_id)][0]


@pytest.mark.parametrize("domain,source_id", [
    ("data.ny.gov", "dp6s-fups"),             # Taxis Dispatched at Port Authority of NY NJ Airports
    ("data.austintexas.gov", "p2us-27sn"),    # EMS - Quarterly Cardiac Arrest Measures
    ("data.ny.gov", "gugp-n5ip"),             # Directory of Criminal Justice Agencies
    ("data.oaklandnet.com", "az7b-di6w"),     # Coliseum Event Ticket Distribution List
    ("data.austintexas.gov", "vwcu-h3qu"),    # Utility Contact Center Calls Answered
    ("data.kingcounty.gov", "eb63-bj8b"),     # Pet Data - 2016 Animal Control Officer Service Calls
    ("data.honolulu.gov", "yczt-gks6"),       # Bus Stop Locations
    ("data.cityofchicago.org", "5cq6-qygt"),  # CTA - System Information - Bus Stop Locations in Digital Sign Project
    ("data.seattle.gov", "83ak-hryt"),        # SDOT Crash Cushions (road hardware that takes a crash)
    # the 311 service's website and app, not its requests (they were in the real catalogues' '311 service requests')
    ("data.cityofchicago.org", "tqmn-3v6t"),  # Performance Metrics - Innovation & Technology - 311 Website Availability
    ("data.cityofnewyork.us", "vwpc-kje2"),   # 311 Web Content - Services
    ("data.lacity.org", "tsrc-szkh"),         # ITA- Monthly Downloads My LA 311 App
    # a juvenile's status offense (truancy, running away) is no crime, juvenile detention no police stop: they
    # were in the real catalogues' 'Crime incidents' and 'Crime statistics'
    ("data.wa.gov", "qsd2-yxis"),   # Admissions to Juvenile Detention Related to a Status Offense
    ("data.wa.gov", "w3vm-igsk"),   # ... Related to a Status Offense By Status Offender Contempt Charge
    ("data.wa.gov", "mg62-47yg"),   # ARY, CHINS, Dependency & Truancy -- Detention Admissions for Status Offenses ...
    # the civil citations of an Environmental Control Board, no police tickets: in the real catalogues' 'Citations'
    ("data.baltimorecity.gov", "ywty-nmtg"),   # ECB Citations
])
def test_look_alike_titles_are_no_police_record(domain, source_id):
    assert concept_of(domain, source_id) == (), fixture_datasets()[(domain, source_id)][0]


def test_kinds_of_the_near_misses_differ():
    found = {kind: {concept_of(d, i) for d, i in ids} for kind, ids in KINDS.items()}
    assert found["service_request"] != found["calls_for_service"] != found["crime_incident"]
    assert found["use_of_force"] != found["officer_shooting"]
    assert found["fire_ems_call"] != found["calls_for_service"]
    assert found["crime_statistics"] != found["crime_incident"]


@pytest.mark.parametrize("title,kind", [   # publishers' own titles of the labelled police tables
    ("Stop Data 2019 Public Release", "police_stop"),          # Oakland: RIPA 'stop data', the term of art
    ("2016 Stop Data for Website and PRRs", "police_stop"),
    ("LPD Use of Control 2022", "use_of_force"),               # Lincoln: 'use of control' is its use of force
    ("2013-2019 Officer Discharges", "officer_shooting"),      # Boston: officers' firearm discharges
    ("Racial Profiling Prohibition Project Traffic Stop Data", "traffic_stop"),   # the specific kind still wins
    ("Police Incidents by Year", "crime_statistics"),
    ("Police Calls for Service - Fire and EMS excluded", "calls_for_service"),   # a police word keeps it police
    ("2016 vehicle a pedestrian stops", "police_stop"),   # Wallkill's files: vehicle and pedestrian stops are all stops
    ("Stop, Question and Frisk Data", "pedestrian_stop"),
    # tables of counts of arrests and crashes (real titles of the 2017 catalogues), apart from the records
    ("Adult Arrests by County: Beginning 1970", "arrest_statistics"),
    ("Percentage of Juvenile Arrests by Race 2002 - 2012", "arrest_statistics"),
    ("County Traffic Crash Statistics (SICL)", "crash_statistics"),
    ("Intersection Collision Summary (2010 - 2011)", "crash_statistics"),
    # tickets counted by department or ranked by violation, apart from the tickets (the real 'Citations' group)
    ("Administrative Hearings - Ticket Summary Report - September 2011 to March 2012", "citation_statistics"),
    ("City of Champaign Most Common Violation Tickets 1999-2011", "citation_statistics"),
    ("Police - Motor Vehicle Citations", "citation"),
    ("Traffic Tickets Issued: Four Year Window", "citation"),
    ("2012 Vehicle Collisions Investigated by State Police", "crash"),   # 'by' an agent groups nothing
    ("BPD Arrests", "arrest"),
    ("Police Firearm Discharge Incidents", "officer_shooting"),   # Cincinnati: its officers' discharges
    # Los Angeles County: its deputies' shootings, not shooting crimes
    ("Sheriff Hit and Non-Hit Shooting Incidents 2010 to Present (Deputy Shootings)", "officer_shooting"),
    ("2017ECitations", "citation"),                               # Charleston: electronic citations
    ("UOF Race 2022", "use_of_force"),                            # Denver
    # Louisville Metro is the city-county's government, not a transit line
    ("Louisville Metro KY - LMPD Stops Data 2021", "police_stop"),
])
def test_wordings_of_police_tables(title, kind):
    assert concepts.of_dataset(title, "") == (kind,)


def test_records_geocoded_by_an_area_are_not_counted_by_it():
    """Albany's 'APD Traffic Citations by Neighborhood' and 'APD Reported Crimes by Neighborhood' are records
    "geocoded by Neighborhood" (one row per ticket, per crime): the 'by' says where each lies, not what a table
    counts by. Without the description's word, 'by Neighborhood' still groups a table of counts."""
    opening = "Dataset highlighting {} for the past year to date geocoded by Neighborhood."
    assert concepts.of_dataset("APD Traffic Citations by Neighborhood",
                               opening.format("traffic citations issued Albany PD Officers")) == ("citation",)
    assert concepts.of_dataset("APD Reported Crimes by Neighborhood",
                               opening.format("crimes reported to the Albany Police Department")) == ("crime_incident",)
    assert concepts.of_dataset("Traffic Citations by Neighborhood", "") == ("citation_statistics",)
    assert concepts.of_dataset("Reported Crimes by Neighborhood", "Counts by district.") == ("crime_statistics",)


@pytest.mark.parametrize("title", [   # gunfire and ordinances, no officer's shooting (review 8, finding 4)
    "ShotSpotter Firearm Discharges", "Illegal Firearm Discharge Complaints", "Shots Fired - Firearm Discharge Calls",
    "Firearm Discharge Ordinance Violations", "Deputy Shooting Range Schedule",
])
def test_firearm_discharges_and_deputy_shootings_without_policing_are_no_officer_shootings(title):
    assert "officer_shooting" not in concepts.of_dataset(title, "")
    assert "officer_shooting" not in concepts.of_dataset(title, "Gunfire detected by acoustic sensors")


def test_a_firearm_discharge_described_as_the_police_s_is_an_officer_shooting():
    # NYC's title names no police; its description does
    assert concepts.of_dataset("Firearms Discharge Report",
                               "Report detailing NYPD occurrence of firearm discharge") == ("officer_shooting",)
    assert concepts.of_dataset("Deputy Shooting Incidents", "") == ("officer_shooting",)


def test_stop_data_of_buses_and_policing_described():
    assert concepts.of_dataset("Bus Stop Data", "") == ()
    assert concepts.of_dataset("Madison Metro Transit Bus Stops", "") == ()
    # 'policing' is a police word: a weak 'stop' in a description is read near it
    assert concepts.of_dataset("yg821jf8611 ar little rock 2020 04 01",
                               "Standardized stop data from the Stanford Open Policing Project") == ("police_stop",)


@pytest.mark.parametrize("glued,parts", [
    ("pdicaseoffensesq", ("pdicase", "offense", "sq")), ("cmpdincidents", ("cmpd", "incident")),
    ("dispatchedcallsopendata", ("dispatch", "calls", "open", "data")), ("solicitations", ("solicitations",)), ("useofforce", ("use", "of", "force")),
    ("enforcement", ("enforcement",)), ("trafficking", ("trafficking",)), ("incidents", ("incidents",)),
    ("ecitations", ("citation",)),   # an e-citation is a citation
])
def test_glued_file_names_are_cut_around_civic_words(glued, parts):
    assert text.unglue(glued) == parts


def test_a_description_speaks_for_a_title_that_names_nothing():
    assert concepts.of_dataset("Dataset", "Reported crimes") == ("crime_incident",)
    assert concepts.of_dataset("iaincidentstypestatusq 2016", "The Complaints and Inquiries data set includes "
                               "all complaints received by the Norman Police Department") == ("police_complaint",)
    # 'incident' alone is police only near police; beside a fire word the fire department's (session 43)
    assert concepts.of_dataset("Fire Incidents", "") == ("fire_incident",)
    assert concepts.of_dataset("cpd incidents", "") == ("crime_incident",)


def test_the_concept_signal_joins_wordings_and_parts_near_misses(real_catalogue):
    c = real_catalogue
    chicago_crimes, austin_crimes = c.row("data-cityofchicago-org:ijzp-q8t2"), c.row("data-austintexas-gov:7g8v-xxja")
    sf_calls = c.row("data-sfgov-org:hz9m-tj6z")
    scored = scoring.score_pairs(c, np.array([chicago_crimes, chicago_crimes]), np.array([austin_crimes, sf_calls]))
    assert scored.signals["concept"][0] == pytest.approx(1.0) and scored.signals["concept"][1] == 0.0
    signals = {k: float(v[1]) for k, v in scored.signals.items()}
    assert "but kinds differ (crime incident vs calls for service)" in scoring.explain(c, chicago_crimes, sf_calls,
                                                                                          signals)


def test_the_concept_score_is_stored_with_its_pair(real_store, real_result):
    rows = real_store.con.execute("""SELECT concept_score, explanation FROM overlap_pairs
                                     WHERE concept_score IS NOT NULL""").fetchall()
    assert rows and all(0.0 <= score <= 1.0 for score, _ in rows)
    assert any("both are calls for service records" in why for _, why in rows)


def test_a_description_naming_staff_or_warning_citations_does_not_change_the_kind():
    # publishers' own titles and descriptions (OpenPoliceData's source table): complaints
    # *against* police staff are complaints, and a warning citation is a warning
    assert concepts.of_dataset("Indiana South Bend COMPLAINTS MULTIPLE HISTORIC", "Complaints filed by members "
                               "of the public against South Bend Police Department staff") == ("police_complaint",)
    assert concepts.of_dataset("2022 Warning Data", "Fairfax County Police ArcGIS Dashboard issued warning "
                               "citation data report.") == ("warning",)
    assert concepts.of_dataset("96a91b69b1884cb2b1d5d01512c35c35", "Complaints filed by members of the public "
                               "against South Bend Police Department staff") == ("police_complaint",)
    assert concepts.of_dataset("Law Enforcement Employees", "") == ("police_employee",)
    assert concepts.of_dataset("Dataset", "Police Department employees roster") == ("police_employee",)
    assert concepts.of_dataset("2022 Citation Data", "Traffic Citations issued by Fairfax County Police") == \
        ("citation",)


def test_a_description_makes_a_general_title_kind_specific():
    # publishers' own titles and descriptions: Louisville's stop data are of vehicles, traffic stops
    assert concepts.of_dataset("LMPD STOPS DATA 2", "The data includes vehicle stops. Not included in the data are "
                               "vehicle collisions; stranded motorists; or non-moving vehicles.") == ("traffic_stop",)
    assert concepts.of_dataset("Citations", "Parking tickets issued by the Department of Transportation") == \
        ("parking_citation",)
    # traffic *and* pedestrian stops are all stops; a description naming no narrower kind leaves the title's
    assert concepts.of_dataset("Stop Data", "Traffic and pedestrian stop records collected by the Lincoln Police "
                               "Department") == ("police_stop",)
    assert concepts.of_dataset("Police Stop Data", "Stop Data for the Minneapolis Police Department.") == \
        ("police_stop",)
    # a use-of-force table says it includes shootings: still use of force, not officer-involved shootings
    assert concepts.of_dataset("Use of Force", "All uses of force by officers, including officer involved "
                               "shootings") == ("use_of_force",)


def test_a_state_stop_data_law_names_police_stops():
    # Virginia's Community Policing Act is its stop-data law, as RIPA is California's
    assert concepts.of_dataset("showpublisheddocument", "Virginia Community Policing Act data") == ("police_stop",)
    assert concepts.of_dataset("Community Policing Plan", "") == ()


def test_stops_under_terry_are_pedestrian_stops_and_a_bus_stop_is_not():
    # Seattle's own description of its Terry stops, under a title that names nothing
    assert concepts.of_dataset("Dataset", "This data represents records of police reported stops under Terry v. "
                               "Ohio; 392 U.S. 1 (1968).") == ("pedestrian_stop",)
    assert concepts.of_dataset("Terry Stops", "") == ("pedestrian_stop",)
    assert concepts.of_dataset("Bus Stop Terry Avenue", "") == ()


def _reading(title: str, description: str) -> tuple[tuple[str, ...], bool]:
    return concepts.of_dataset_terms(text.terms(title), text.terms(description, bigrams=False, glued=False), title)


def test_a_title_s_ambiguous_word_the_description_places_in_policing_is_the_title_s_own_kind():
    # publishers' own titles and descriptions (OpenPoliceData's source table): the title says
    # 'Complaints' or 'Stop', the description only whose they are or which stops: full weight
    assert _reading("Indiana South Bend COMPLAINTS MULTIPLE HISTORIC", "Complaints filed by members of the public "
                    "against South Bend Police Department staff") == (("police_complaint",), True)
    assert _reading("City Of Urbana IDOT Stop Sheet Police Data", "Pedestrian Stop records from the City of "
                    "Urbana, since the IDOT Pedestrian Stop data collection began") == (("pedestrian_stop",), True)
    # a title whose police word is ambiguous, and a description that says which records those are:
    # the title names records, the description their kind (NYPD's complaints are crimes), full weight
    assert _reading("NYPD Complaint Data Historic", "This dataset includes all valid felony, misdemeanor, and "
                    "violation crimes reported to the New York City Police Department") == (("crime_incident",), True)
    # a kind the title does not name at all, nor any police word, stays the description's, at half weight
    assert _reading("Dataset", "Reported crimes") == (("crime_incident",), False)
    assert _reading("Complaint Data Historic", "All valid felony, misdemeanor, and violation crimes reported to "
                    "the Police Department") == (("crime_incident",), False)


def test_police_wordings_of_complaints_charges_and_shootings():
    # publishers' own titles (OpenPoliceData's source table): internal affairs complaints, the charges
    # a department brought, and Indiana's term for an officer-involved shooting
    assert concepts.of_dataset("2021 IA Complaints", "") == ("police_complaint",)
    assert concepts.of_dataset("gpd charges", "") == ("arrest",)
    assert concepts.of_dataset("Police Action Shooting Investigations Log", "FOIA data from muckrock.com") == \
        ("officer_shooting",)
    # Philadelphia's stops of vehicles and of pedestrians together: all of its stops
    assert concepts.of_dataset("vehicle pedestrian investigations", "Police investigations of pedestrians and "
                               "vehicles from the Philadelphia Police Department") == ("police_stop",)
    # charges of no police department are fees; a complaint of no police wording is no police complaint
    assert concepts.of_dataset("Water and Sewer Charges", "") == ()
    assert concepts.of_dataset("Consumer Complaints", "") == ()


def test_a_title_cut_at_a_field_s_length_keeps_its_last_word_s_kind():
    # Richmond's title, cut at 50 characters
    assert concepts.of_dataset("Richmond Police Department Citywide Traffic Crashe", "") == ("crash",)
    assert concepts.of_dataset("Crashe", "") == ()   # a short title is not cut


def test_kinds_a_title_names_after_with_are_what_each_record_includes():
    # Colorado Springs's title (cut at 50 characters): arrests, each with its offenses
    assert concepts.of_dataset("Arrest Data with all Offenses and Demographic Deta",
                               "This dataset includes all arrests with all offenses listed for each arrest") == ("arrest",)
    assert concepts.of_dataset("Arrests and Offenses", "") == ("arrest", "crime_incident")
    # a title that names no kind before 'with' keeps what it names after it
    assert concepts.of_dataset("How Complaints Filed With The NYPD Were Reported 2005 - 2009", "") == \
        ("police_complaint",)


def test_the_stops_of_a_state_wide_agency_are_traffic_stops():
    # the Stanford Open Policing Project's state files (the name of the file; one description for all of
    # its files): a state's patrol stops drivers on its highways
    stanford = "Standardized stop data from the Stanford Open Policing Project"
    assert concepts.of_dataset("yg821jf8611_wa_statewide_2020_04_01.csv", stanford,
                               text.own_place_words("State Patrol, Washington")) == ("traffic_stop",)
    assert concepts.of_dataset("Highway Patrol Stop Data", "") == ("traffic_stop",)
    # 'state' is a stopword: the agency is read in the title as written
    assert concepts.of_dataset("Washington State Patrol Stops", "") == ("traffic_stop",)
    assert concepts.of_dataset("State Police Stop Data", "") == ("traffic_stop",)
    assert concepts.of_dataset("State-wide Stop Data", "") == ("traffic_stop",)
    # a city's file of the same project stays all of its stops; so do a state's pedestrian and vehicle
    # stops named together, and its pedestrian stops stay pedestrian stops
    assert concepts.of_dataset("yg821jf8611_ca_san_diego_2020_04_01.csv", stanford,
                               text.own_place_words("San Diego, California")) == ("police_stop",)
    assert concepts.of_dataset("Statewide Vehicle and Pedestrian Stops", "") == ("police_stop",)
    assert concepts.of_dataset("Statewide Pedestrian Stops", "") == ("pedestrian_stop",)
    assert concepts.of_dataset("Statewide Bus Stops", "") == ()


def test_a_stop_laws_statewide_data_stays_all_stops():
    # California's RIPA and Virginia's Community Policing Act require every agency of the state to report
    # every stop, of pedestrians as of drivers: their statewide files are not a highway patrol's traffic stops
    assert concepts.of_dataset("Statewide RIPA Stop Data", "") == ("police_stop",)
    assert concepts.of_dataset("RIPA Stop Data 2022 (Statewide)", "") == ("police_stop",)
    assert concepts.of_dataset("Statewide Community Policing Act Data", "") == ("police_stop",)
    # the rule stands for a state's own stop data without a law's name
    assert concepts.of_dataset("Statewide Stop Data", "") == ("traffic_stop",)


def test_deaths_in_custody_and_weapon_pointing_are_kinds_of_their_own():
    # California DOJ's and Boston's tables of deaths in custody were read as arrests (the description's
    # 'law enforcement') or as nothing; a death in custody is no arrest record
    assert concepts.of_dataset("death in custody 2005 062024", "State and local law enforcement agencies and "
                               "correctional facilities report deaths in custody") == ("custody_death",)
    assert concepts.of_dataset("in custody deaths", "The Boston Police Department's Homicide Investigation Unit") == \
        ("custody_death",)
    assert concepts.of_dataset("Deaths in Custody", "") != concepts.of_dataset("Arrests", "")
    # Phoenix's 'pgp' ("a Phoenix police officer pointed a gun at a person") and Asheville's 'Show Of Force'
    # (its policy: "a gesture with a lethal and/or less-lethal weapon directed at a person") are one kind,
    # not crime incidents, and not the force used
    assert concepts.of_dataset("pgp", "Incidents where a Phoenix police officer pointed a gun at a person (PGP) "
                               "from July 2020 forward") == ("weapon_pointing",)
    assert concepts.of_dataset("APD Show Of Force", "As of November 2020, the Asheville Police Department updated "
                               "the department's use of force policy") == ("weapon_pointing",)
    assert concepts.of_dataset("Use of Force Incidents", "Includes each show of force") == ("use_of_force",)
    assert concepts.label("custody_death") == "Deaths in custody"


def test_a_title_naming_its_family_of_records_takes_no_kind_of_another_from_its_description():
    # Somerville's payroll is described by a disclosure exemption for "a victim of an adjudicated crime",
    # King County's spending by its departments, NYC's probation violation filings "in response to
    # misconduct": salaries, spending and violations, not crime incidents, dispatch logs or police complaints
    assert concept_of("data.somervillema.gov", "vfqx-2vkk") == ()   # 2011 Gross Wages Over 50 K
    assert concept_of("data.kingcounty.gov", "36w9-7hpi") == ()     # Total Expenditures By Fund
    assert concept_of("data.cityofnewyork.us", "fve3-eee8") == ()   # DOP Adult Violations of Probation Filed ...
    assert concept_of("data.illinois.gov", "bcsw-x3k4") == ()       # ... Projected Total Compensation for All ...
    # a kind of the title's own family still speaks: code violation citations, a log of record requests
    assert concept_of("data.montgomerycountymd.gov", "qdey-wt67") == ("citation",)   # OCA Code Enforcement
    assert concept_of("data.hawaii.gov", "gf4v-varx") == ("records_request",)   # OIP Master UIPA Record Request ...
    # a title that names no family is still read through its description
    assert concepts.of_dataset("2011 Gross Wages Over 50 K", "") == ()
    assert concepts.of_dataset("Open Data Public Safety", "Calls for service received by the police") == \
        ("calls_for_service",)


def test_a_kind_named_only_after_by_is_a_breakdown_not_the_records():
    # New York's parole decisions and prison population counted by the crime of the person held
    assert concept_of("data.ny.gov", "cgk2-twzc") == ()   # Parole Board Decisions ... by Crime Type
    assert concept_of("data.ny.gov", "7whc-b5e4") == ()   # Security Level and Facility by Crime Group, ...
    # the records named before 'by' keep their kind, counted
    assert concept_of("data.ny.gov", "ca8h-8gjq") == ("crime_statistics",)   # Index Crimes by County and Agency
    assert concept_of("data.ny.gov", "rikd-mt35") == ("arrest_statistics",)  # Adult Arrests by County
    assert concepts.of_dataset("Police Incidents by Crime Type", "") == ("crime_statistics",)
    assert concepts.of_dataset("Arrests by Offense Type", "") == ("arrest_statistics",)
    # a grouping by year of the CCRB's referral: the dispositions of complaints
    assert concept_of("data.cityofnewyork.us", "88ds-ti7k") == ("police_complaint",)
    assert concepts.of_dataset("Number of Drug and Alcohol-Related Intoxication Deaths by County of Incident", "") == ()
    # the own place before 'by' is no subject of its own
    assert concepts.of_dataset("Boston by Crime Type", "", frozenset({"boston"})) == ("crime_statistics",)


def test_a_word_of_counting_before_by_is_no_subject_that_makes_the_kind_a_breakdown():
    # 'Statistics by Crime Type' counts crimes by their type: session 12's breakdown rule read the
    # statistics word as a subject of its own and left it no kind (the tables of Seattle's 'Crime Stats by
    # Police Precinct', Jackson's 'Weekly Crime Statistics', in the words that put the kind after 'by')
    assert concepts.of_dataset("Statistics by Crime Type", "") == ("crime_statistics",)
    assert concepts.of_dataset("Stats by Crime Type and District", "") == ("crime_statistics",)
    assert concepts.of_dataset("Counts by Offense Category", "") == ("crime_statistics",)
    assert concepts.of_dataset("Statistics by Arrest Type", "") == ("arrest_statistics",)
    # ... while a subject before 'by' still makes it a breakdown: parole decisions, prisoners, a population
    assert concept_of("data.ny.gov", "cgk2-twzc") == ()   # Parole Board Decisions ... by Crime Type
    assert concept_of("data.ny.gov", "7whc-b5e4") == ()   # Security Level and Facility by Crime Group, ...
    assert concepts.of_dataset("Population by Crime Type", "") == ()


def test_a_kind_in_the_name_of_a_department_s_unit_is_not_its_records():
    # NYC's CCRB tables of complaints against the officers of its Organized Crime Control Bureau
    assert concept_of("data.cityofnewyork.us", "v3a6-muuw") == ("police_complaint",)
    assert concept_of("data.cityofnewyork.us", "xt3u-h44z") == ("police_complaint",)
    # Connecticut's arrests reported to the Uniform Crime Reporting System are arrests; its offenses, crimes
    assert concept_of("data.ct.gov", "y6ag-cr8s") == ("arrest",)   # Uniform Crime Reporting System Arrests 2011
    assert concepts.of_dataset("Uniform Crime Reporting System Offenses 2011", "") == ("crime_incident",)
    # a unit's name alone still says what its records are
    assert concepts.of_dataset("Crime Analysis Unit Reports", "") == ("crime_incident",)
    assert concepts.of_dataset("Traffic Division Crash Reports", "") == ("crash",)


def test_a_layer_of_crime_cameras_and_a_registry_of_offenders_are_no_crime_incidents():
    # Baltimore's 'Crime Camera' layer and its gun offender registry had joined 'Crime incidents'
    assert concepts.of_dataset("Crime Camera", "Shape file displaying the Baltimore Police Department's crime "
                               "cameras.") == ()
    assert concept_of("data.baltimorecity.gov", "aivj-4x23") == ()   # Gun Offenders ("BPD Gun Offender Registry")
    assert concepts.of_dataset("Crimes Captured", "Crime incidents reported to the police") == ("crime_incident",)


def _published(title: str, description: str, publisher: str | None,
               place: frozenset[str] = frozenset()) -> tuple[tuple[str, ...], bool]:
    return concepts.of_dataset_terms(text.terms(title, place), text.terms(description, place, bigrams=False,
                                                                          glued=False), title, publisher)


def test_a_police_agency_as_publisher_makes_its_titles_ambiguous_words_its_records():
    # OpenPoliceData's layers of Fort Lauderdale's and Johns Creek's police, and the Indiana towns' yearly files
    assert _published("Incident", "", "Fort Lauderdale Police Department") == (("crime_incident",), True)
    assert _published("2021Warnings", "", "Griffith Police Department") == (("warning",), True)
    assert _published("Incident", "", "Orleans Parish Sheriff's Office") == (("crime_incident",), True)
    # a police report's MVA is a motor vehicle accident, Maryland's the Motor Vehicle Administration
    assert _published("MVA 2024 XLSX", "", "Pittsfield Police Department") == (("crash",), True)
    assert _published("MVA VEHICLE REGISTRATION-BY-COUNTY-FY-2010-FY2016", "MVA Vehicle Registration by County",
                      "Motor Vehicle Administration")[0] == ()
    # the same words of another publisher, or of none, say nothing of policing
    assert _published("Incident", "", None) == ((), True)
    assert _published("Incident", "", "Fire Department") == ((), True)
    # an acronym or a police fund or board is no police agency ('HPD': Housing Preservation and Development)
    assert not concepts.is_police_agency("Department of Housing Preservation and Development (HPD)")
    assert not concepts.is_police_agency("Police Pension Fund (NYCPPF)")
    assert concepts.is_police_agency("Maryland State Police, Field Operations Bureau")


def test_a_police_agency_s_demographics_or_contacts_alone_are_its_employees_or_its_field_contacts():
    # Menlo Park's, Ferndale's and Norman's own titles (OpenPoliceData's source table)
    assert _published("department demographics 2019", "", "Menlo Park Police Department") == \
        (("police_employee",), True)
    assert _published("ferndale police department demographics", "Ferndale Police Department demographics",
                      None, frozenset({"ferndale"})) == (("police_employee",), True)
    assert _published("2017 full year contacts", "The Contacts data set includes information from our records "
                      "system regarding the demographic breakdown of both community members who interact with "
                      "police", "Norman Police Department") == (("field_contact",), True)
    # whose else the title names is another thing: complainants, stops, a pension fund, a medical officer
    assert _published("Complainant Demographics", "", "Philadelphia Police Department")[0] != ("police_employee",)
    assert _published("Stop Data Demographics", "", "Richmond Police Department") == (("police_stop",), True)
    assert _published("Directory Of New York City Police Pension Fund Contact Numbers", "", None)[0] == ()
    assert _published("FY2015 Annual Report DMO Contacts", "This table shows Designated Medical Officer (DMO) "
                      "crew contacts", "Austin-Travis County EMS")[0] == ()
    # nor are a city's demographics
    assert _published("Census Demographics", "", None)[0] == ()
    assert _published("Demographics", "", "City of Austin")[0] == ()


def test_a_precincts_demographics_or_contacts_are_no_police_agencys_own_records():
    # the population of a precinct or a beat, a precinct's phone list: 'precinct' and 'patrol' name
    # whose they are, as 'police' and 'department' do not
    assert _published("Precinct Demographics", "", None)[0] == ()
    assert _published("Police Precinct Demographics", "", None)[0] == ()
    assert _published("Precinct Contacts", "", "Police Department (NYPD)")[0] == ()
    assert _published("Patrol Demographics", "", "Seattle Police Department")[0] == ()
    assert _published("Police Demographics", "", None) == (("police_employee",), True)
    assert _published("Sheriff Contacts", "", None) == (("field_contact",), True)


def test_a_police_jury_or_union_is_no_police_agency_and_a_union_county_s_sheriff_is_one():
    # a Louisiana parish's governing body: its drainage 'Complaints' are no complaints against officers
    assert not concepts.is_police_agency("Caddo Parish Police Jury")
    assert _published("Complaints", "", "Caddo Parish Police Jury")[0] == ()
    assert not concepts.is_police_agency("Fraternal Order of Police Lodge 7")
    assert not concepts.is_police_agency("Police Officers Union")
    # 'Union' as a place's name
    assert concepts.is_police_agency("Union County Sheriff's Office")
    assert concepts.is_police_agency("Union City Police Department")
    assert _published("Incident", "", "Union County Sheriff's Office") == (("crime_incident",), True)


def test_the_size_of_a_police_force_is_no_use_of_force():
    # a police department's staffing tables, under a police publisher that makes 'force' a police word
    assert _published("Authorized Force", "", "Chicago Police Department")[0] == ()
    assert _published("Police Force Strength", "", None)[0] == ()
    assert _published("Force", "", "Chicago Police Department")[0] == ("use_of_force",)
    assert _published("Use of Force", "", None)[0] == ("use_of_force",)


def test_a_police_agency_s_traffic_contacts_are_traffic_stops_and_its_fcc_field_contact_cards():
    # Norman's yearly 'pditrafficparkingq' files and Charleston's '2018FCC YTD' (OpenPoliceData's source table)
    assert _published("pditrafficparkingq 2016", "Traffic and parking contacts dataset",
                      "Norman Police Department") == (("traffic_stop",), True)
    assert _published("Traffic and Parking Contacts", "", "Norman Police Department") == (("traffic_stop",), True)
    assert _published("Police Vehicle Contacts 2020", "", None) == (("traffic_stop",), True)
    assert _published("2018FCC YTD", "", "Charleston Police Department") == (("field_contact",), True)
    # a unit's phone list, contacts of no police, and the Federal Communications Commission are none
    assert _published("Traffic Division Contacts", "Phone numbers", "Norman Police Department")[0] == ()
    assert _published("Traffic and Parking Contacts", "", "Department of Transportation")[0] == ()
    assert _published("FCC wireline broadband service", "Form 477 wireline service data from FCC.", "FCC")[0] == ()
    assert _published("Police Radio FCC Licenses", "", "Norman Police Department")[0] == ()


def test_a_records_request_is_a_log_s_kind_only_beside_no_other():
    """'Public Records Requests' lists requests; a copy of an internal affairs report of civilian complaints,
    obtained by an 'open records request', holds the complaints."""
    assert concepts.of_dataset("Public Records Requests", None) == ("records_request",)
    assert concepts.of_dataset("Copy of IA Report 2016 2020 civilian complaints 06 13 2022 open records request",
                               None) == ("police_complaint",)


def test_deadly_force_is_an_officer_s_shooting_and_other_force_use_of_force():
    # Greensboro's 'Officer Involved Deadly Force' files list its officers' shootings (OpenPoliceData's source table)
    assert _published("PIRT11666Officer Involved Deadly Force20132019", "", "Greensboro Police Department") == \
        (("officer_shooting",), True)
    # Baltimore's use of force stays use of force, and officer-involved shootings are still shootings
    assert concepts.of_dataset("BPD Officer Involved Use Of Force", "This data set contains the date, incident #, "
                               "and location of officer involved use of force incidents") == ("use_of_force",)
    assert concepts.of_dataset("SPD Officer Involved Shooting (OIS) Data", "") == ("officer_shooting",)


@pytest.mark.parametrize("title", ["311 App Service Requests", "311 Service Requests Submitted by Web and App",
                                   "311 Web Service Requests"])
def test_a_title_naming_311_requests_and_the_app_or_website_they_came_by_holds_requests(title):
    """The 311 website's and app's own tables ('311 Website Availability', described as the site
    where residents submit service requests) take no requests from their description; a title
    that names the requests itself holds them, whatever channel it also names."""
    assert concepts.of_dataset(title, "", frozenset()) == ("service_request",)
    assert concepts.of_dataset("311 Website Availability", "The 311 website allows residents to submit service "
                               "requests", frozenset()) == ()


def test_an_offender_registry_and_a_prosecutor_s_staff_are_no_crime_records():
    """Baltimore's 'Gun Offenders' ("Persons convicted of at least one gun-related offense that are required to
    register ...") and Cook County's "State's Attorney--Staff Using Crimes As Role Types" sat in 'Crime incidents'."""
    assert concept_of("data.baltimorecity.gov", "aivj-4x23") == ()
    assert concept_of("datacatalog.cookcountyil.gov", "xe52-c6ij") == ()
    assert concept_of("data.cityofchicago.org", "ijzp-q8t2") == ("crime_incident",)   # Crimes - 2001 to present


def test_a_description_that_counts_the_records_it_names_holds_their_statistics():
    """Edmonton's 'Transit System and Security', described by "rate of criminal incidents ... per 100,000 trips",
    sat in 'Crime incidents': a rate of crimes is a figure of them, as a title that says so ('Crime Rate') is."""
    assert concepts.of_dataset("Transit System and Security",
                               "Overall System Ridership and rate of criminal incidents (property and personal) on "
                               "Transit property and vehicles per 100,000 trips") == ("crime_statistics",)
    assert concepts.of_dataset("Crimes - 2001 to present",   # its title names them: no statistics for a word after
                               "This dataset reflects reported incidents of crime ... rate") == ("crime_incident",)


def test_a_publisher_s_own_acronym_is_no_police_department():
    """New York's 'Handyman Work Order (HWO) Charges', of the Department of Housing Preservation and Development (HPD),
    read as arrests: its 'charges' beside "an HPD issued violation", an acronym spelt as a police department's (APD,
    NYPD). The publisher spells it out."""
    title, description = fixture_datasets()[("data.cityofnewyork.us", "sbnd-xujn")]
    title_terms, description_terms = text.terms(title), text.terms(description, bigrams=False, glued=False)
    hpd = "Department of Housing Preservation and Development (HPD)"
    assert concepts.of_dataset_terms(title_terms, description_terms, title, hpd)[0] == ()
    # a police department of that acronym, or none named, reads them as the department's charges, its arrests
    for publisher in ("Houston Police Department (HPD)", None):
        assert concepts.of_dataset_terms(title_terms, description_terms, title, publisher)[0] == ("arrest",)
    # a publisher's acronym of another shape keeps its reading: the CCRB's complaints are police complaints
    assert concepts.of_dataset_terms(text.terms("CCRB Complaints"), [], "CCRB Complaints",
                                     "Civilian Complaint Review Board (CCRB)")[0] == ("police_complaint",)


def test_incidents_a_title_names_beside_a_fire_word_are_the_fire_department_s():
    """Raleigh's 'Fire Department Incident Data' ("All calls logged by the fire department ... This excludes EMS
    calls.") read as no kind ('incident' counts for the police only near a police word) and paired San Francisco's
    and Santa Rosa's 'Police Department Incidents' at 0.417 on the titles' 'department incident' alone. The incidents
    a title names beside a fire word are the fire department's: a kind of their own, no crime incidents and no fire
    or EMS dispatch log ('Fire Incident Dispatch Data'); an EMS crew's incidents are no fire's."""
    from tests.catalog.overlap.test_groups import rows_catalogue

    raleigh = ("Fire Department Incident Data",
               "All calls logged by the fire department from 2007 to 2012. This excludes EMS calls.")
    assert concepts.of_dataset(*raleigh) == ("fire_incident",)
    for title in ("Fire Incidents", "AFD Fire Incidents 2014 January Thru December", "Incidents Responded to by "
                  "Fire Companies", "Connecticut Fire Department Incidents - 2014"):
        assert concepts.of_dataset(title, None) == ("fire_incident",), title
    assert concepts.of_dataset("Police Department Incidents", None) == ("crime_incident",)
    assert concepts.of_dataset("Fire Incident Dispatch Data", None) == ("fire_ems_call",)
    assert concepts.of_dataset("EMS Incidents", None) == ()
    c = rows_catalogue([("Raleigh", raleigh[0]), ("San Francisco", "Police Department Incidents"),
                        ("Santa Rosa", "Santa Rosa Police Department Incidents"), ("San Francisco", "Fire Incidents")])
    scored = scoring.score_pairs(c, np.array([0, 0, 0]), np.array([1, 2, 3]))
    assert (scored.total[:2] < 0.35).all() and scored.total[2] >= 0.35, scored.total


def test_incidents_of_a_thing_named_between_them_and_the_fire_word_are_no_fire_incidents():
    """r43 read 'Fire Hydrant/Inspection Incidents' as fire incidents: the fire word names the incidents only right
    before them (stopwords such as 'department' aside) or as the agent after 'by', and a fire department's acronym
    wherever it stands; a hydrant or an inspection between names what the incidents are of. A breakdown by a fire
    district names no agent. The real fire-incident titles keep their kind."""
    for title in ("Fire Hydrant/Inspection Incidents", "Hydrant Incidents by Fire District"):
        assert concepts.of_dataset(title, None) == (), title
    for title in ("Fire Incidents", "Daily Fire Incidents 01012012 Current", "FDNY Community Board Incident Count",
                  "GISADMIN.SOCRATA_FIRE_INCIDENTS_01012012_12312013", "Incidents Responded to by Fire Companies",
                  "Connecticut Fire Department Incidents - 2014", "Map of Fire Incidents"):
        assert concepts.of_dataset(title, None) == ("fire_incident",), title


def test_a_breakdown_by_a_fire_district_names_no_fire_incidents_whatever_follows_it():
    """(r44) 'by' right after the incidents starts a breakdown, no agent ('Hydrant Incidents by Fire District': no
    fire incidents), but the agent was looked for from that 'by' wherever another 'by' followed: a breakdown by a
    fire district and by a month, a year or a station read as the fire department's incidents."""
    for title in ("Hydrant Incidents by Fire District by Month", "EMS Incidents by Fire Station by Month",
                  "Incidents by Fire District by Year"):
        assert not concepts._fire_incidents(title), title
        assert concepts.of_dataset(title, None) != ("fire_incident",), title
    for title in ("Incidents by Station Responded to by Fire Companies", "Fire Incidents by Month by District"):
        assert concepts.of_dataset(title, None) == ("fire_incident",), title


def test_the_agent_after_by_ends_where_a_breakdown_starts():
    """(r44) the agent after 'by' was every word after it: 'Incidents Responded to by Police by Fire District'
    (the police's, broken down by the fire district they fall in) read as the fire department's. The agent ends at
    another 'by', or at an 'in', 'for' or 'during'; New York's 'Incidents Responded to by Fire Companies' keeps its
    kind."""
    for title in ("Incidents Responded to by Police by Fire District", "Incidents Responded to by Police in Fire "
                  "District 3", "Incidents Responded to by Police per Fire Station"):
        assert not concepts._fire_incidents(title), title
        assert concepts.of_dataset(title, None) != ("fire_incident",), title
    for title in ("Incidents Responded to by Fire Companies", "Incidents Responded to by Fire Companies by Month",
                  "Incidents Responded to by Fire Companies in 2015"):
        assert concepts.of_dataset(title, None) == ("fire_incident",), title


def test_a_title_s_kind_its_description_gives_rates_of_is_its_statistics():
    """Baltimore's 'Crime & Safety 2010' (the Vital Signs crime indicators by neighbourhood: "BNIA-JFI normalizes this
    data by population to establish crime rates") sat in 'Crime incidents' beside Austin's and Chicago's crimes (0.55
    to 0.63): a rate is no record. A description calling a records file statistics keeps its kind (Montgomery
    County's 'Crime', "direct access to crime statistic databases - including raw data"), and so does a title that
    lists its records in the plural ('Crimes - 2001 to present')."""
    assert concept_of("data.baltimorecity.gov", "yhtd-6cjz") == ("crime_statistics",)
    assert concept_of("data.baltimorecity.gov", "qmw9-b8ep") == ("crime_statistics",)
    assert concept_of("data.montgomerycountymd.gov", "icn6-v9z3") == ("crime_incident",)
    assert concepts.of_dataset("Crimes - 2001 to present", "Reported crimes, used to establish crime rates") == (
        "crime_incident",)


def test_a_kind_a_description_gives_as_an_example_is_not_the_dataset_s():
    """Baltimore's Vital Signs tables share a description: "Most indicators throughout Vital Signs are created by
    acquiring and analyzing data collected from governmental agencies for some public administration purpose, such as
    311 calls or housing inspections". Its example read as the kind of 13 tables of neighbourhood indicators ('Housing
    and Community Development (2010-2012)', 'Census Demographics 2010-2012'): 311 requests, at half weight. A dataset
    of indicators is statistics of the kind its title names as a subject: 'Crime & Safety (2010-2012)' sat in 'Crime
    incidents' (0.44 to 0.60 with Honolulu's, Chicago's, Boston's crimes). Kinds named outside an example keep
    their reading."""
    assert concept_of("data.baltimorecity.gov", "m3z4-c8pp") == ()
    assert concept_of("data.baltimorecity.gov", "ieq6-dzfz") == ("crime_statistics",)
    assert concepts.of_dataset("Open Data", "Police incidents reported, such as thefts or burglaries.") == (
        "crime_incident",)
    assert concepts.of_dataset("Data", "Records of 311 calls, e.g. potholes and graffiti") == ("service_request",)
    assert concepts.of_dataset("Data", "Work orders, e.g. from 311 calls") == ()
