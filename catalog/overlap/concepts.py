"""What kind of civic record a dataset holds, from its title (or, when the title says
nothing of it, the opening of its description): a small hand-written layer of concept
classes, each a set of synonymous wordings.

Cities name one kind of record many ways: 'Crimes', 'BPD Offenses', 'Police Incident
Reports', 'RMS Crime', 'NIBRS' are all crime incident records; 'Calls for Service', 'CAD',
'Dispatched Calls' and '911 Calls' are all dispatch logs. Title words alone split them into
as many groups as there are wordings; the concept joins them, and two datasets of
*different* concepts (311 requests / calls for service / crime incidents) are told apart
even when they share words. The classes are general knowledge of police and 311 open
data (the table types cities publish), written by hand; they are not fitted to any
labelled set.

A trigger is a term as `text.terms` gives them: a stemmed word, a phrase term like
'calls_for_service', or a bigram of neighbouring words 'police+call'. A *weak* trigger
('incident', 'stop', 'complaint') counts only when no strong one did and the text is about
policing (a police word or a department acronym like 'LMPD' is near), because 'Fire
incidents', 'Bus stops' and 'Noise complaints' are other things.
"""
from __future__ import annotations

import re

from catalog.overlap import text

# concept -> (strong triggers, weak triggers)
CLASSES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "crime_incident": (("crime", "offense", "nibrs", "ucr", "police_report", "criminal+incident"), ("incident",)),
    "calls_for_service": (("calls_for_service", "dispatch", "cad", "police+call", "service+call", "emergency+call"),
                          ("call", "dispatched")),
    "service_request": (("service_request", "311", "customer+request", "constituent+request", "citizen+request"),
                        ()),
    "use_of_force": (("use_of_force", "resistance", "ursus", "force+incident"), ("force",)),
    # deadly force is an officer's firearm, nearly always: 'Officer Involved Deadly Force' tables list shootings
    "officer_shooting": (("officer_shooting", "involved+shooting", "officer+discharge", "firearm+discharge",
                          "deputy+shooting", "deadly+force"), ()),   # firearm+discharge, deputy+shooting: POLICE_ONLY
    "arrest": (("arrest", "arrestee", "jail+booking"), ("booking", "charge")),   # 'GPD Charges': charges brought
    "traffic_stop": (("traffic_stop",), ()),
    "pedestrian_stop": (("pedestrian_stop", "sqf", "terry+stop", "stop+question", "investigatory+stop", "stop+terry",
                         "pedestrian+investigation"), ()),   # 'Vehicle and pedestrian investigations': stops
    "field_contact": (("field+interview", "field+contact", "contact+card", "fi+card"), ()),
    "police_stop": (("ripa", "police+stop", "vehicle+stop", "stop_data", "policing+act"), ("stop", "detention")),
    "police_complaint": (("misconduct", "ccrb", "internal+affair", "civilian+review", "citizen+complaint",
                          "professional+standard", "civilian+complaint", "police+complaint", "ia+complaint"),
                         ("complaint", "allegation")),   # 'IA Complaints': internal affairs
    "citation": (("citation",), ()),
    "parking_citation": (("parking_citation",), ()),
    "warning": (("traffic+warning", "warning+citation"), ("warning",)),   # a warning citation warns
    "crash": (("crash", "traffic+incident"), ("mva",)),   # a police report's MVA: a motor vehicle accident
    "vehicle_pursuit": (("pursuit",), ()),
    "custody_death": (("custody_death",), ()),
    "weapon_pointing": (("show_of_force", "pointed+gun", "pointed+firearm", "pointed+weapon", "pointing+gun",
                         "pointing+firearm", "pointing+weapon", "gun+pointing", "firearm+pointing",
                         "weapon+pointing"), ()),
    "police_employee": (("police+employee", "officer+demographic", "sworn"),
                        ("roster", "employee+demographic", "employee")),
    "lawsuit": (("lawsuit", "litigation"), ("settlement", "claim")),
    # a log of public records requests: the kind of record after it names the office the
    # requests went to ('FOIA Request Log - 311' holds FOIA requests, not 311 requests)
    "records_request": (("request+log", "foia+log", "foia+request", "records_request"), ()),
    # kinds no trigger names: `_refined` reads them off calls and crimes (see there)
    "fire_ems_call": ((), ()),
    "fire_incident": ((), ()),
    "crime_statistics": ((), ()),
    "arrest_statistics": ((), ()),
    "crash_statistics": ((), ()),
    "citation_statistics": ((), ()),
}
RECORDS_REQUEST = "records_request"
# the words that name a kind on their own ('complaint', 'citation', 'pursuit'): a title's misspelling of one is read as
# it (text.respellings)
KIND_WORDS = frozenset(trigger for strong, weak in CLASSES.values() for trigger in strong + weak if trigger.isalpha())
# a concept that is a kind of another shares part of its vector with it
PARENTS = {"traffic_stop": "police_stop", "pedestrian_stop": "police_stop", "parking_citation": "citation",
           "officer_shooting": "use_of_force"}
PARENT_SHARE = 0.5
# general kinds a description may make specific ('Stop Data' of vehicle stops); not use of force, whose
# tables say they include officer-involved shootings
CHILDREN = {parent: frozenset(c for c, p in PARENTS.items() if p == parent) for parent in ("police_stop", "citation")}
# words that make a trigger mean something else ('Cardiac arrest'; 'criminal justice' is not
# crime records, nor are a 'Crime Camera' layer, a gun offender registry ('required to register'), a
# prosecutor's records (a State's Attorney's cases and staff) or a juvenile's status offense
# (truancy, running away: no crime for an adult); animal control calls
# no police dispatch log, bus stop data no police stops)
# ('metro' is none: beside police words it is a city-county's government, 'Louisville Metro Police')
TRANSIT = frozenset({"bus", "transit", "rail", "train", "ferry", "shelter", "route"})
JUVENILE_JUSTICE = frozenset({"juvenile_detention", "status_offense"})
PROSECUTION = frozenset({"attorney", "prosecutor"})   # a prosecutor's office: its cases and staff, not the police's
# an environmental citation (dumping, sanitation, a building's upkeep) is a civil notice a board or an inspector
# issues, not a police ticket: Baltimore's 'ECB Citations', of its Environmental Control Board
ENVIRONMENTAL = frozenset({"environmental"})
NOT_WHEN = {"arrest": frozenset({"cardiac", "respiratory"}), "crash": frozenset({"pole", "plane", "aircraft", "cushion", "attenuator"}),
            "crime_incident": frozenset({"justice", "court", "grant", "camera", "registry", "register",
                                        "status_offense"}) | PROSECUTION,
            "police_employee": PROSECUTION, "citation": frozenset({"event", "festival"}) | ENVIRONMENTAL,
            # 'Bus Stop Terry Avenue' is no Terry stop, admissions to juvenile detention no police detention
            "police_stop": TRANSIT | JUVENILE_JUSTICE, "pedestrian_stop": TRANSIT,
            "calls_for_service": frozenset({"taxi", "taxis", "animal", "pet"}),
            # a police force's size ('Authorized Force', 'Force Strength') is its staffing, not force used
            "use_of_force": frozenset({"strength", "authorized", "staffing"})}
# description words that rule out a kind its title names (NOT_WHEN, read in the title, holds them too)
NOT_WHEN_DESCRIBED = {"citation": ENVIRONMENTAL}
# title words that rule a kind out of the description only: a title of the 311 service's website or app
# ('311 Website Availability'): the requests its description names are what they take; a title that names
# the requests itself holds them ('311 App Service Requests')
NOT_FROM_DESCRIPTION_WHEN = {"service_request": frozenset({"311_web", "311_app"})}
# strong triggers that name their kind only beside no other: 'Public Records Requests' are a log of them,
# 'IA Report 2016 2020 civilian complaints ... open records request' the complaints a request obtained
ONLY_KIND = frozenset({"records_request"})
# strong triggers that count only when the title or description is about policing, their own words
# aside, nor beside the words given: 'ShotSpotter Firearm Discharges', 'Illegal Firearm Discharge
# Complaints' and 'Deputy Shooting Range Schedule' are no officer-involved shootings; Cincinnati's
# 'Police Firearm Discharge Incidents', NYC's 'Firearms Discharge Report' (described as 'NYPD
# occurrence of firearm discharge') and Los Angeles County's 'Sheriff ... (Deputy Shootings)' are
# ('deputy' is a police word: a deputy's shooting is one unless it is practice at a range)
POLICE_ONLY = {"firearm+discharge": frozenset(),
               "deputy+shooting": frozenset({"range", "practice", "training", "qualification", "qualifying"})}
# where 'incident', 'stop', 'complaint' mean policing
POLICE_CONTEXT = frozenset({"police", "policing", "sheriff", "officer", "cop", "law+enforcement", "crime", "ripa",
                            "offense", "arrest", "patrol", "precinct", "deputy"})
DEPARTMENT = re.compile(r"^[a-z]{0,4}pd$|^[a-z]{0,3}so$")   # APD, LMPD, NYPD, SFPD; HCSO: departments
# a publisher that is a police agency ('Fort Lauderdale Police Department', "Orleans Parish Sheriff's
# Office", 'Maryland State Police'), named in words: an acronym is no evidence in a publisher's name
# ('Department of Housing Preservation and Development (HPD)'), nor is a fund or board of the police
# ('Police Pension Fund (NYCPPF)'), its union ('Fraternal Order of Police'), or a Louisiana parish's
# governing body ('Caddo Parish Police Jury'); 'Union' before a place's kind is a place ('Union County
# Sheriff's Office')
POLICE_AGENCY = re.compile(r"\b(?:police|sheriff'?s?|constabulary|highway patrol|state patrol)\b", re.IGNORECASE)
NOT_AGENCY = re.compile(r"\b(?:pension|fund|retirement|foundation|board|commission|association|jury|fraternal)\b"
                        r"|\bunion\b(?!\s+(?:county|city|township|twp|parish|borough|village))", re.IGNORECASE)
PUBLISHER_POLICE_CONTEXT = frozenset({"police"})
# a dispatch log of the fire department or EMS is not the police's calls for service
FIRE_EMS = frozenset({"fire", "ems", "ambulance", "medical", "rescue", "paramedic", "firefighter", "afd", "fdny"})
FIRE = frozenset({"fire", "firefighter", "afd", "fdny"})   # (an EMS crew's incidents are medical, no fire's)
# a table of counts or rates ('Violent Crime Statistics', 'Crime Rate By Type', 'Index Crimes
# by County') is not the incident records it counts
STATISTICS = frozenset({"statistic", "stat", "rate", "count", "total", "summary", "summarized", "cumulative", "trend",
                        "indicator", "percent", "percentage"})
GROUPED_BY = frozenset({"county", "municipality", "city", "precinct", "district", "beat", "agency", "department",
                        "type", "state", "town", "ward", "zip", "neighborhood", "region", "month", "year", "race",
                        "age", "sex", "gender", "category", "jurisdiction", "offense", "crime"})
# the kinds of record whose counts and rates cities publish as tables of their own
# ('Adult Arrests by County', 'County Traffic Crash Statistics', 'Intersection Collision Rate'; tickets counted
# by department or ranked by violation: 'Administrative Hearings - Ticket Summary Report', 'Most Common Violation
# Tickets', no citations to compare with a police department's)
STATISTICS_OF = {"crime_incident": "crime_statistics", "arrest": "arrest_statistics", "crash": "crash_statistics",
                 "citation": "citation_statistics"}
# a description's word for records placed in an area, as it names the area: 'geocoded by Neighborhood'
GEOCODED = frozenset({"geocoded", "geocode"})
# a ranking counts what it ranks ('Most Common Violation Tickets', 'Most Frequent Offenses')
RANKED = frozenset({"common", "frequent", "frequently"})
# 'by' an agent, not a grouping ('Vehicle Collisions Investigated by State Police')
AGENT = frozenset({"police", "patrol", "trooper", "sheriff"})
VEHICLE = frozenset({"vehicle", "traffic", "motorist", "driver"})
# a state's police patrols its highways: the stops of a state-wide agency are traffic stops (the
# Stanford Open Policing Project's 'wa statewide' files, a 'Highway Patrol Stop Data' table)
STATE_AGENCY = frozenset({"highway+patrol", "trooper"})
# ... read in the title as written ('statewide' is no term: a word for the whole of the own place; 'state'
# is a stopword, so 'State Police' and 'State-wide' make no bigram)
STATE_WIDE = frozenset({("state", "police"), ("state", "patrol"), ("state", "wide")})
# ... but a stop law's data holds every stop the law covers, of every agency of the state, pedestrians' too:
# California's RIPA, Virginia's Community Policing Act (a 'Statewide RIPA Stop Data' file is all stops)
STOP_LAWS = frozenset({"ripa", "policing+act"})
DESCRIPTION_TERMS = 20    # a description's first sentence or two say what the dataset is
DESCRIPTION_CONFIDENCE = 0.5   # the concept signal's weight when a kind is read in a description


def _triggers() -> dict[str, list[tuple[str, bool]]]:
    """Term -> the concepts it triggers, and whether strongly."""
    out: dict[str, list[tuple[str, bool]]] = {}
    for concept, (strong, weak) in CLASSES.items():
        for trigger, is_strong in [(t, True) for t in strong] + [(t, False) for t in weak]:
            out.setdefault(trigger, []).append((concept, is_strong))
    return out


TRIGGERS = _triggers()
TRIGGER_WORDS = frozenset(word for trigger in TRIGGERS for word in trigger.split("+"))   # (a bigram's words too)


def is_police_agency(publisher: str | None) -> bool:
    return bool(publisher and POLICE_AGENCY.search(publisher) and not NOT_AGENCY.search(publisher))


# a publisher that spells out its own acronym ('Department of Housing Preservation and Development (HPD)') says what
# the acronym is where its text writes it: 'an HPD issued violation' is no police department's, though it is spelt
# as one (DEPARTMENT); an acronym of another shape keeps its reading (the 'Civilian Complaint Review Board (CCRB)')
SPELLED_ACRONYM = re.compile(r"\(\s*([A-Za-z]{2,6})\s*\)")


def _publishers_own_acronyms(publisher: str | None) -> frozenset[str]:
    """The acronyms spelt as a department's that a publisher, no police agency, gives itself, as terms ('hpd')."""
    if not publisher or "(" not in publisher or is_police_agency(publisher):
        return frozenset()
    return frozenset(a.lower() for a in SPELLED_ACRONYM.findall(publisher) if DEPARTMENT.match(a.lower()))


def _police_context(terms: set[str]) -> bool:
    return bool(terms & POLICE_CONTEXT) or any(DEPARTMENT.match(t) for t in terms if "+" not in t and len(t) <= 6)


def _found(terms: list[str], also: frozenset[str] = frozenset(),
           context: list[str] | tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """Concepts of strong and of weak triggers, in the order their first term appears (a
    word of `also`, the title, can rule a trigger out; `also` and `context`, a description's
    terms, can say a trigger of POLICE_ONLY is about policing)."""
    blocking = set(terms) | also
    strong: list[str] = []
    weak: list[str] = []
    named_alone = set()   # kinds only a trigger of ONLY_KIND named
    for term in terms:
        if term in POLICE_ONLY and not _about_policing(term, blocking | set(context)):
            continue
        for concept, is_strong in TRIGGERS.get(term, ()):
            if not (blocking & NOT_WHEN.get(concept, frozenset())) and \
                    not (also & NOT_FROM_DESCRIPTION_WHEN.get(concept, frozenset())) and \
                    not NOT_WHEN_DESCRIBED.get(concept, frozenset()).intersection(context):
                found = strong if is_strong else weak
                if concept not in found:
                    found.append(concept)
                    if term in ONLY_KIND:
                        named_alone.add(concept)
                elif term not in ONLY_KIND:
                    named_alone.discard(concept)
    if named_alone and len(strong) > len(named_alone):
        strong = [concept for concept in strong if concept not in named_alone]
    return strong, weak


def _about_policing(trigger: str, terms: set[str]) -> bool:
    """A trigger of POLICE_ONLY among `terms`: a police word other than its own other words
    ('firearm', 'discharge') and none of the words that make it something else."""
    own = set(trigger.split("+")) - POLICE_CONTEXT
    if terms & POLICE_ONLY[trigger]:
        return False
    return _police_context({t for t in terms if not (own & set(t.split("+")))})


def _strongest(found: list[str]) -> list[str]:
    """A concept and its parent both named ('Parking citations': parking_citation, citation):
    the specific one speaks, its vector adds the parent. A log of records requests holds
    requests, whatever office or records they asked for."""
    if RECORDS_REQUEST in found:
        return [RECORDS_REQUEST]
    parents = {PARENTS[c] for c in found if c in PARENTS}
    return [c for c in found if c not in parents]


# kinds a description names as the object of another kind's records ('complaints against
# Police Department staff'): the title's own word ('Complaints') says what the dataset is
OBJECT_KINDS = frozenset({"police_employee"})


def of_terms(title_terms: list[str], description_terms: list[str] = (),
             context: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """The concepts of a dataset: every strong one its title names; else the first strong
    one the opening of its description names; else a weak one of the description, then of
    the title, when the text (or `context`, its publisher's words) is about policing
    ('iaincidentstypestatusq 2016', described as 'The Complaints and Inquiries data set
    includes all complaints received by ...')."""
    strong, title_weak = _found(title_terms, context=description_terms)
    if strong:
        return tuple(_strongest(strong))
    strong, description_weak = (_found(list(description_terms), frozenset(title_terms)) if description_terms
                                else ([], []))
    policing = _police_context(set(title_terms) | set(description_terms) | context)
    if strong and strong[0] in OBJECT_KINDS and policing:
        # the title's word, or the description's own before it ('Complaints filed ... against
        # ... Police Department staff'), says what the dataset is
        before = description_weak and _first_position(description_terms, description_weak[0], weak=True) < \
            _first_position(description_terms, strong[0], weak=False)
        if title_weak or before:
            return tuple((title_weak or description_weak)[:1])
    if strong:
        return tuple(_strongest(strong)[:1])
    weak = description_weak or title_weak   # 'iaincidentsq' described as 'all complaints received by ...'
    if weak and policing:
        return tuple(weak[:1])
    return ()


def _first_position(terms: list[str], concept: str, weak: bool) -> int:
    """Where the first term triggering `concept` (weakly or strongly) stands in `terms`."""
    return next((i for i, term in enumerate(terms)
                 if (concept, not weak) in TRIGGERS.get(term, ())), len(terms))


def of_dataset_terms(title_terms: list[str], description_terms: list[str],
                     title: str | None = None, publisher: str | None = None) -> tuple[tuple[str, ...], bool]:
    """`of_terms` from a title's terms and a description's (unigram) terms in order, its
    opening read only when the title names no strong concept; and whether the concepts are
    the title's own (else the description's). `title`, the title as written, tells a table
    of counts from the records it counts. A police agency as `publisher` makes the text about
    policing: 'Incident' and '2021Warnings' of a police department's portal are its records."""
    if own_acronyms := _publishers_own_acronyms(publisher):
        title_terms = [t for t in title_terms if t not in own_acronyms]
        description_terms = [t for t in description_terms if t not in own_acronyms]
    opening = description_terms[:DESCRIPTION_TERMS]
    strong, weak = _found(title_terms, context=opening)
    located = _located_by(opening)
    if title and (strong or weak) and _named_only_as_breakdown(title, title_terms, opening):
        return (), True
    if len(strong) > 1 and title:
        strong = _named_before(_named_before(strong, title, opening), title, opening, text.BREAKDOWN_WORD)
        strong = _outside_unit_names(strong, title, opening)
    if strong:
        kinds = _specialised(tuple(_strongest(strong)), title_terms, opening)
        kinds = _refined(kinds, title_terms + (opening if kinds != tuple(_strongest(strong)) else []), title, located)
        if (_counted_in(opening, kinds, RATES) or INDICATOR in opening) and not _listed(title, kinds):
            # ('Crime & Safety 2010', "... crime rates"; 'Crime & Safety (2010-2012)', "Most indicators ...")
            kinds = tuple(STATISTICS_OF.get(k, k) for k in kinds)
        return kinds, True
    context = PUBLISHER_POLICE_CONTEXT if is_police_agency(publisher) else frozenset()
    own = tuple(weak[:1]) if weak and _police_context(set(title_terms) | context) else ()
    own = own or _own_records(title_terms, context) or _traffic_contacts(title, title_terms, opening, context)
    if not own and "crime_incident" in weak and set(title_terms) & FIRE and _fire_incidents(title):
        # the incidents a title names beside a fire word are the fire department's, neither crimes nor of no kind
        # ('Fire Department Incident Data', 'AFD Fire Incidents'): no police department's incidents
        own = ("fire_incident",)
    if not opening:
        return _refined(own, title_terms, title, located), True
    found = of_terms(title_terms, _inline(opening), context) or own
    if found and not own and not _of_title_family(found, title_terms):
        return (), True
    if found and not own and _counted_in(opening, found):
        found = tuple(STATISTICS_OF.get(k, k) for k in found)
    # a title that names its records by an ambiguous police word ('NYPD Complaint Data') says what
    # it is as much as the description that tells which records those are ("all valid felony,
    # misdemeanor, and violation crimes reported to the ... Police Department"): full weight
    return (_refined(found, title_terms + opening, title, located),
            bool(found) and (bool(own) or _named_by(weak, found)))


# a fire department's acronym names whose incidents a title holds wherever it stands ('FDNY Community Board Incident
# Count'); a fire word, right before them or after 'by' ('Fire Department Incidents', 'Incidents Responded to by Fire
# Companies', not past it: 'Incidents Responded to by Police by Fire District' are the police's)
FIRE_DEPARTMENTS = frozenset({"afd", "fdny"})


def _fire_incidents(title: str | None) -> bool:
    """Whether the incidents a title names beside a fire word are the fire department's: the fire word names them
    (the word before them, but stopwords such as 'department', or the agent after 'by'), or the department's acronym
    does. A word between them names what else the incidents are of: 'Fire Hydrant/Inspection Incidents' are a
    hydrant's or an inspection's, no fire department's response."""
    if title is None:
        return True
    words = text.words(title, glued=False)
    if FIRE_DEPARTMENTS.intersection(words):
        return True
    for i, word in enumerate(words):
        if word == "incident":
            before = next((w for w in reversed(words[:i]) if w not in text.STOPWORDS), None)
            # (the agent after a verb: 'by' right after the incidents starts a breakdown, 'Incidents by Fire District')
            agent = words.index("by", i + 2) if "by" in words[i + 2:] else None
            if before in FIRE or (agent and FIRE.intersection(_agent_words(words, agent + 1))):
                return True
    return False


# where the agent named after 'by' ends: another 'by' starts a breakdown ('Incidents Responded to by Police by Fire
# District'), 'in', 'for' or 'during' a place or a time
AGENT_ENDS = text.BREAKDOWN | {"in", "for", "during", "since"}


def _agent_words(words: list[str], start: int) -> list[str]:
    """The words of the agent a title names from `start`, right after its 'by': up to AGENT_ENDS."""
    end = next((j for j in range(start, len(words)) if words[j] in AGENT_ENDS), len(words))
    return words[start:end]


# a word that, as the whole of a police agency's title, names its records of one kind: a department's
# 'Demographics' are its workforce's, its 'Contacts' the people its officers stopped and talked to, its
# 'FCC' its field contact cards (a 'Police Radio FCC Licenses' title names more: the Federal Communications
# Commission's)
OWN_RECORDS = {"demographic": "police_employee", "contact": "field_contact", "fcc": "field_contact"}
PERIOD_WORDS = frozenset({"full", "partial", "quarter", "q1", "q2", "q3", "q4", "fy"})
# the words of a title that name the agency or its members, not whose demographics or contacts they are: a
# precinct's or a beat's demographics are its residents', a crime's or an arrest's of the people involved
AGENCY_WORDS = frozenset({"police", "policing", "sheriff", "officer", "cop", "deputy"})


def _own_records(title_terms: list[str], context: frozenset[str]) -> tuple[str, ...]:
    """The kind a police agency's title names by one word of OWN_RECORDS and nothing else but its
    own name and the period ('Department Demographics 2019', 'Ferndale Police Department Demographics',
    '2017 Full Year Contacts'); whose else a title names ('Complainant Demographics', 'Police Pension
    Fund Contact Numbers', 'DMO Contacts', 'Precinct Demographics') is another thing."""
    subject = {t for t in title_terms if "+" not in t and t not in AGENCY_WORDS and t not in PERIOD_WORDS
               and not DEPARTMENT.match(t)}
    if len(subject) == 1 and (word := next(iter(subject))) in OWN_RECORDS \
            and _police_context(set(title_terms) | context):
        return (OWN_RECORDS[word],)
    return ()


def _traffic_contacts(title: str | None, title_terms: list[str], opening: list[str],
                      context: frozenset[str]) -> tuple[str, ...]:
    """A police agency's contacts of traffic are its traffic stops: Norman's 'Traffic and parking contacts',
    'Vehicle Contacts'. The title is read as written ('Traffic Division Contacts' is a unit's phone list), the
    description's opening as terms, where 'and' and generic words are gone."""
    if not _police_context(set(title_terms) | set(opening) | context):
        return ()
    words = text.words(title, glued=False)

    def of_vehicles(i: int) -> bool:   # 'traffic contacts', 'traffic and parking contacts'
        return words[i - 1] in VEHICLE or (i > 2 and words[i - 2] == "and" and words[i - 3] in VEHICLE)
    in_title = any(word == "contact" and of_vehicles(i) for i, word in enumerate(words) if i)
    in_opening = any(term == "contact" and set(opening[max(0, i - 2):i]) & VEHICLE for i, term in enumerate(opening))
    return ("traffic_stop",) if in_title or in_opening else ()


# the family of records (text.RECORD_FAMILIES) a kind's records are of, where they are of one: a
# log of requests holds requests, a citation is a notice of a violation
KIND_FAMILIES = {RECORDS_REQUEST: "request", "citation": "violation", "parking_citation": "violation",
                 "warning": "violation"}


def _of_title_family(kinds: tuple[str, ...], title_terms: list[str]) -> bool:
    """Whether kinds read in a description may be the records of a title that names no kind: a title
    that names its family of records says what it holds ('Gross Wages Over 50K' salaries, 'Total
    Expenditures By Fund' spending, 'DOP Adult Violations of Probation Filed' violations), and a kind
    of another family in its description is what the records mention, not what they are (an
    exemption for "a victim of an adjudicated crime", "dispatch" of the funds' departments); a
    'UIPA Record Request Year-End Log' described as the requests it lists is a request log."""
    family = text.records_named(title_terms)
    return not family or all(text.FAMILY_BITS.get(KIND_FAMILIES.get(kind, ""), 0) & family for kind in kinds)


def _named_only_as_breakdown(title: str, title_terms: list[str], opening: list[str]) -> bool:
    """A title that names a kind in the grouping after 'by', after words of a subject that name
    none: 'Parole Board Decisions for Initial Interviews by Crime Type' are parole decisions counted
    by the crime of the person paroled, not crimes ('Incidents by Crime Type' names its kind before
    'by'; 'Disposition Of Substantiated Cases By Year Of CCRB Referral' counts by year). A word of counting
    before 'by' is no subject of its own: 'Statistics by Crime Type' counts crimes."""
    head = text.BREAKDOWN_WORD.split(title, maxsplit=1)
    if len(head) == 1 or not any(_found(text.terms(GROUPING_END.split(head[1], maxsplit=1)[0]), context=opening)):
        return False
    head_terms = text.terms(head[0])
    own = set(title_terms)   # the own place's name is no subject ('Boston by the Numbers')
    return not any(_found(head_terms, context=opening)) and \
        any(t in own and t not in text.GENERIC and t not in STATISTICS and "+" not in t for t in head_terms)


# where the grouping after 'by' ends: 'by Year Of CCRB Referral' counts by year (the cases are the CCRB's)
GROUPING_END = re.compile(r"\b(?:of|for|in|and|from)\b|[,:;(\[]| - ", re.IGNORECASE)


# a unit of a department or a reporting system, named by what it deals with ('Organized Crime Control
# Bureau', 'Uniform Crime Reporting System')
UNIT_NAME = re.compile(r"(?:\b[^\W\d_]+ +){1,3}(?:bureau|division|unit|squad|section|task +force|system|program)\b",
                       re.IGNORECASE)


def _outside_unit_names(strong: list[str], title: str, opening: list[str]) -> list[str]:
    """The kinds a title names outside the name of a department's unit, when it names one there:
    'CCRB: Attribution of Complaints to the Organized Crime Control Bureau' holds complaints
    against that bureau's officers, not crimes; 'Uniform Crime Reporting System Arrests' the
    arrests reported to that system."""
    if len(strong) < 2 or not UNIT_NAME.search(title):
        return strong
    named, _ = _found(text.terms(UNIT_NAME.sub(" - ", title)), context=opening)
    return [kind for kind in strong if kind in named] or strong


WITH = re.compile(r"\bwith\b", re.IGNORECASE)


def _named_before(strong: list[str], title: str, opening: list[str], word: re.Pattern = WITH) -> list[str]:
    """The kinds a title names before 'with' (or another `word`), when it names one there: what
    follows 'with' says what each record includes ('Arrest Data with all Offenses and Demographic
    Details' are arrests), what follows 'by' how they are counted ('Arrests by Offense Type')."""
    head = word.split(title, maxsplit=1)
    if len(head) == 1:
        return strong
    named, _ = _found(text.terms(head[0]), context=opening)
    return named or strong


def _named_by(title_weak: list[str], found: tuple[str, ...]) -> bool:
    """The kinds read with the description are those the title's own ambiguous word names, or
    narrower ones: South Bend's 'COMPLAINTS MULTIPLE HISTORIC', described as "Complaints filed ...
    against South Bend Police Department staff", names police complaints itself (the description
    only says whose); Urbana's 'IDOT Stop Sheet Police Data', described as "Pedestrian Stop
    records", names stops, which the description makes pedestrian stops. The title speaks, so
    the kind counts at full weight."""
    return all(k in title_weak or PARENTS.get(k) in title_weak for k in found)


def _inline(opening: list[str]) -> list[str]:
    """Neighbouring words as bigrams, each right after its first word ('police', 'police+call', 'call')."""
    return [x for a, b in zip(opening, opening[1:] + [""]) for x in (a, f"{a}+{b}" if b else "") if x]


def _specialised(kinds: tuple[str, ...], title_terms: list[str], opening: list[str]) -> tuple[str, ...]:
    """A title's general kind made specific by its description: 'LMPD STOPS DATA' described as 'The data
    includes vehicle stops' holds traffic stops. Only when the description names one kind of the general
    one (traffic *and* pedestrian stops are all stops)."""
    if not opening or not any(k in CHILDREN for k in kinds):
        return kinds
    named, _ = _found(_inline(opening), frozenset(title_terms))
    out = []
    for kind in kinds:
        children = [c for c in named if c in CHILDREN.get(kind, ())]
        out.append(children[0] if len(children) == 1 else kind)
    return tuple(dict.fromkeys(out))


def _refined(found: tuple[str, ...], terms: list[str], title: str | None,
             located: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """Calls of the fire department or EMS (no police word near) are their own kind, and so
    are the statistics of crimes, arrests and crashes: a title that counts ('Crime Rate', 'Totals')
    or groups ('by County').
    Stops of vehicles and of pedestrians together ('Vehicle & Pedestrian Stops') are all of a
    department's stops, not its pedestrian stops; the stops of a state-wide agency are its troopers'
    traffic stops, unless a stop law names them (a statewide RIPA file holds every agency's stops)."""
    if "police_stop" in found and not set(terms) & STOP_LAWS and (set(terms) & STATE_AGENCY or _state_wide(title)):
        found = tuple(dict.fromkeys("traffic_stop" if k == "police_stop" else k for k in found))
    if "pedestrian_stop" in found and ("traffic_stop" in found or set(terms) & VEHICLE):
        found = tuple(dict.fromkeys("police_stop" if k in ("pedestrian_stop", "traffic_stop") else k for k in found))
    if "calls_for_service" in found and set(terms) & FIRE_EMS and not _police_context(set(terms)):
        found = tuple("fire_ems_call" if k == "calls_for_service" else k for k in found)
    if title and any(k in STATISTICS_OF for k in found) and _counts(text.words(title, glued=False), located):
        found = tuple(STATISTICS_OF.get(k, k) for k in found)
    return found


# the words of counting no record can be: a description that names a title's kind beside one says the title holds
# its rates (Baltimore's 'Crime & Safety 2010', "BNIA-JFI normalizes this data by population to establish crime
# rates"); not 'statistics', which a records file's description may call itself (Montgomery County's 'Crime', "crime
# statistic databases - including raw data")
RATES = frozenset({"rate", "percent", "percentage"})
# ... and so does one that says the dataset is made of indicators, a measure of an area by definition (Baltimore's
# Vital Signs 'Crime & Safety (2010-2012)', "Most indicators throughout Vital Signs are created by ...")
INDICATOR = "indicator"
# an example a description gives is a sort of what it names before it, not what the dataset holds: Vital Signs'
# "... data collected from governmental agencies for some public administration purpose, such as 311 calls or
# housing inspections" describes 13 Baltimore tables of neighbourhood indicators, none of them 311 requests
EXAMPLES = re.compile(r"\b(?:such as|e\.g\.|for example|for instance)[^.;:()]*", re.IGNORECASE)


def without_examples(description: str) -> str:
    """A description less the examples it gives, each to the end of its clause (itself when it gives none)."""
    # (looked for as plain text first: the pattern on each of 100,000 descriptions costs some 1 s, this 0.1 s)
    if not ("uch as" in description or "e.g." in description or "or example" in description
            or "or instance" in description):
        return description
    return EXAMPLES.sub(" ", description)


def _listed(title: str | None, kinds: tuple[str, ...]) -> bool:
    """Whether a title names records of one of `kinds` in the plural, as a list names what it lists ('Crimes - 2001
    to present'); a title naming the kind in the singular names a subject ('Crime & Safety 2010')."""
    for word in text.split_words(title or "", glued=False):
        stemmed = text.stem(word)
        if stemmed != word and any(kind in STATISTICS_OF and (kind, strong) in TRIGGERS.get(stemmed, ())
                                   for kind in kinds for strong in (True, False)):
            return True
    return False


def _counted_in(opening: list[str], kinds: tuple[str, ...], counting: frozenset[str] = STATISTICS) -> bool:
    """A description that names the records of a kind right beside a word of counting ('rate of criminal
    incidents (property and personal) on Transit property ... per 100,000 trips', 'crime rate'): its table counts
    them, as a title that says so does."""
    counted = [kind for kind in kinds if kind in STATISTICS_OF]
    return any(set(opening[max(0, i - 1):i + 2]) & counting for i, term in enumerate(opening)
               if any((kind, True) in TRIGGERS.get(term, ()) or (kind, False) in TRIGGERS.get(term, ())
                      for kind in counted))


def _state_wide(title: str | None) -> bool:
    """A title naming a state-wide agency or file: 'statewide', 'State Police', 'Washington State Patrol'."""
    words = text.words(title, glued=False)
    return "statewide" in words or any(pair in STATE_WIDE for pair in zip(words, words[1:]))


def _located_by(opening: list[str]) -> frozenset[str]:
    """The areas a description says each record is placed in ('... geocoded by Neighborhood'): a title's 'by'
    one of them says where its records lie, not what it counts by ('APD Traffic Citations by Neighborhood')."""
    return frozenset(opening[i + 1] for i, term in enumerate(opening[:-1]) if term in GEOCODED)


def _counts(words: list[str], located: frozenset[str] = frozenset()) -> bool:
    """A title of a table of counts: a statistics word, 'by' a grouping ('by County', 'by Type') its
    records are not geocoded by, or a ranking ('Most Common')."""
    return any(w in STATISTICS or (w == "by" and any(g in GROUPED_BY and text.stem(g) not in located
                                                     for g in words[i + 1:i + 3])
                                   and not (len(words) > i + 2 and words[i + 2] in AGENT))
               or (w == "most" and words[i + 1:i + 2] and words[i + 1] in RANKED)
               for i, w in enumerate(words))


def of_dataset(title: str | None, description: str | None, drop: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """The concepts of one dataset from its title and description (as `features.build` reads them)."""
    return of_dataset_terms(text.terms(title, drop),
                            text.terms(without_examples(description or ""), drop, bigrams=False, glued=False), title)[0]


def vector(concepts: tuple[str, ...]) -> dict[str, float]:
    """Concept -> weight (parents at PARENT_SHARE), not normalised."""
    out: dict[str, float] = {}
    for concept in concepts:
        out[concept] = 1.0
        parent = PARENTS.get(concept)
        if parent:
            out[parent] = max(out.get(parent, 0.0), PARENT_SHARE)
    return out


def describe(concept: str) -> str:
    return {"fire_ems_call": "fire or EMS call", RECORDS_REQUEST: "public records request"}.get(
        concept, concept.replace("_", " "))


LABELS = {"crime_incident": "Crime incidents", "calls_for_service": "Calls for service",
          "service_request": "311 service requests", "use_of_force": "Use of force",
          "officer_shooting": "Officer-involved shootings", "arrest": "Arrests", "traffic_stop": "Traffic stops",
          "pedestrian_stop": "Pedestrian stops", "field_contact": "Field contacts", "police_stop": "Police stops",
          "police_complaint": "Police complaints", "citation": "Citations", "parking_citation": "Parking citations",
          "warning": "Traffic warnings", "crash": "Traffic crashes", "vehicle_pursuit": "Vehicle pursuits",
          "police_employee": "Police employees", "custody_death": "Deaths in custody", "weapon_pointing": "Weapon pointing",
          "lawsuit": "Lawsuits", "fire_ems_call": "Fire and EMS calls", "fire_incident": "Fire incidents",
          "crime_statistics": "Crime statistics", "arrest_statistics": "Arrest statistics",
          "crash_statistics": "Traffic crash statistics", "citation_statistics": "Citation statistics", "records_request": "Records request logs"}


def label(concept: str) -> str:
    """A group's label when a kind of record is what its cities share."""
    return LABELS.get(concept) or describe(concept).capitalize()
