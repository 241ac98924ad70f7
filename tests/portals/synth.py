"""Synthetic catalogues shaped like real ones, deterministic per seed and fast
enough for 100k-entry benchmarks.

``make_socrata_entries`` copies the key structure of the Discovery API results in
../shared/fixtures/socrata-catalog/; ``make_data_json`` builds an ArcGIS-Hub-style
DCAT-US 1.1 catalog object.
"""

from __future__ import annotations

import gc
import math
import random
import re
import string
import time

ID_ALPHABET = string.ascii_lowercase + string.digits

SUBJECTS = [
    "Building Permits", "Building Violations", "311 Service Requests", "Crimes", "Food Inspections",
    "Business Licenses", "Traffic Crashes", "Red Light Camera Violations", "Speed Camera Violations",
    "Street Trees", "Parking Citations", "Affordable Rental Housing Developments", "Bike Racks",
    "Bus Stops", "Libraries", "Police Stations", "Fire Incidents", "Vacant and Abandoned Buildings",
    "Graffiti Removal", "Pothole Repairs", "Tree Trims", "Lobbyist Registrations",
    "Current Employee Names, Salaries, and Position Titles", "Contracts", "Payments",
    "Budget Appropriations", "Sidewalk Cafe Permits", "Beach Water Quality", "Energy Benchmarking",
    "Census Data - Selected Socioeconomic Indicators", "COVID-19 Cases, Tests, and Deaths",
    "Community Areas", "Ward Boundaries", "Zoning Districts", "Landmark Districts", "Street Names",
    "Towed Vehicles", "Taxi Trips", "Transportation Network Providers - Trips", "Divvy Trips",
    "CTA - Ridership - Daily Boarding Totals", "Election Results", "Procurement Awards", "Public Art",
    "Park Facilities", "Schools Progress Reports", "Homeless Shelter Census", "Rodent Baiting",
    "Abandoned Vehicles", "Sanitation Code Complaints", "Alley Lights Out", "Restaurant Grades",
]
QUALIFIERS = [
    "", "", "", " - 2001 to Present", " - {year}", " - Current", " - Historical", " by Community Area",
    " by Ward", " - Daily Totals", " - Monthly Totals", " ({year}-{year2})", ": Beginning {year}",
    " - No Duplicates", " - Map", " FY{year}",
]
AGENCY_PREFIXES = ["", "", "", "", "CDPH - ", "CDOT - ", "CPD - ", "DOB - ", "OEMC - ", "BACP - "]
CATEGORIES = [
    "Administration & Finance", "Buildings", "Community & Economic Development", "Education",
    "Environment & Sustainable Development", "Ethics", "Facilities & Geographic Boundaries",
    "Health & Human Services", "Historic Preservation", "Public Safety", "Sanitation",
    "Service Requests", "Transportation", "Parks & Recreation",
]
DEPARTMENTS = [
    "Department of Buildings", "Chicago Police Department", "Department of Public Health",
    "Department of Transportation", "Department of Finance", "Department of Streets and Sanitation",
    "Office of Emergency Management and Communications", "Department of Water Management",
    "Department of Business Affairs and Consumer Protection", "Department of Planning and Development",
    "Board of Ethics", "Department of Human Resources", "Chicago Park District",
]
TAGS = ["permits", "311", "public safety", "crime", "health", "inspections", "transportation", "budget",
        "personnel", "gis", "boundaries", "housing", "environment", "covid-19", "trees", "traffic"]
CATEGORY_SLUGS = {category: re.sub(r"[^A-Za-z0-9]+", "-", category) for category in CATEGORIES}
FREQUENCIES = ["Data are updated daily", "Weekly", "Monthly", "Annually", "As needed",
               "Historical - not updated"]
LICENSES = ["See Terms of Use", "Public Domain", "Creative Commons Attribution 4.0",
            "Open Data Commons Public Domain Dedication and License"]
USERS = ["cocadmin", "Open Data Team", "Jonathan Levy", "Maria Gonzalez", "GIS Services",
         "Data Portal Admin", "Tom Schenk", "Priya Natarajan"]

# Discovery display datatypes -> column names a city portal uses for them.
COLUMNS = {
    "Text": ["ID", "Case Number", "Permit Type", "Status", "Description", "Address", "Street Name",
             "Department", "Name", "Business Name", "License Type", "Inspection Type", "Results",
             "Violations", "Primary Type", "Block", "IUCR", "Zip Code", "Contact Name",
             "Work Description", "Vendor Name", "Contract Type", "Route", "Station Name", "Day Type",
             "Category", "Sub Category", "Agency", "Source", "Notes"],
    "Number": ["Ward", "Community Area", "Latitude", "Longitude", "X Coordinate", "Y Coordinate",
               "Total Fee", "Reported Cost", "Amount", "Count", "Year", "Beat", "District", "Rides",
               "Boardings", "Square Feet", "Units", "Score", "Population", "Injuries Total"],
    "Calendar date": ["Application Start Date", "Issue Date", "Creation Date", "Completion Date",
                      "Inspection Date", "Updated On", "Start Date", "End Date", "Service Date",
                      "Crash Date"],
    "Point": ["Location", "Geocoded Location", "Point"],
    "Checkbox": ["Arrest", "Domestic", "Active", "Is Public", "Duplicate"],
    "URL": ["Website", "Link", "Document URL"],
    "Location": ["Address Location", "Mailing Location"],
}
COLUMN_POOL = [(name, datatype) for datatype, names in COLUMNS.items() for name in names]
FIELD_NAMES = {name: re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") for name, _ in COLUMN_POOL}
# Real columns_format values seen in the fixtures, per datatype.
FORMATS = {
    "Text": [{}, {"align": "left"}, {"displayStyle": "plain", "align": "left"}],
    "Number": [{}, {"align": "right", "precisionStyle": "standard"},
               {"precisionStyle": "standard", "noCommas": "true", "align": "left"},
               {"precision": "2", "align": "right", "currencyStyle": "USD", "humane": "false",
                "precisionStyle": "currency"}],
    "Calendar date": [{"align": "left", "view": "date"}, {}, {"view": "date_time"}],
    "Point": [{}, {"align": "left", "view": "coords"}],
    "Checkbox": [{}, {"displayStyle": "yesno"}],
    "URL": [{"aggregate": "count", "align": "left"}],
    "Location": [{"view": "address_coords", "align": "left"}],
}

# (type, cumulative probability, lens_view_type, lens_display_type)
ASSET_TYPES = [
    ("dataset", 0.72, "tabular", "table"),
    ("filter", 0.82, "tabular", "table"),
    ("chart", 0.89, "tabular", "chart"),
    ("map", 0.93, "tabular", "map"),
    ("story", 0.96, "story", "story"),
    ("href", 0.98, "href", "href"),
    ("file", 1.00, "blobby", "blob"),
]
FILTER_SUFFIXES = ["Last 30 Days", "Current Year", "Open Requests", "Dashboard", "Ward 3", "Active Only"]

T_2011 = 1293840000  # 2011-01-01
T_2025 = 1735689600  # 2025-01-01


def _iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(epoch))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")


def unique_ids(rng: random.Random, n: int) -> list[str]:
    """n distinct Socrata 4x4 ids ("ab12-cd34") in random order."""
    seen: set[str] = set()
    ids = []
    while len(ids) < n:
        raw = "".join(rng.choices(ID_ALPHABET, k=8))
        fxf = f"{raw[:4]}-{raw[4:]}"
        if fxf not in seen:
            seen.add(fxf)
            ids.append(fxf)
    return ids


def _title(rng: random.Random) -> str:
    year = rng.randint(2008, 2024)
    qualifier = rng.choice(QUALIFIERS).format(year=year, year2=year + rng.randint(1, 6))
    return rng.choice(AGENCY_PREFIXES) + rng.choice(SUBJECTS) + qualifier


def _column_set(rng: random.Random) -> dict:
    picked = rng.sample(COLUMN_POOL, rng.randint(5, 20))
    return {
        "columns_name": [name for name, _ in picked],
        "columns_field_name": [FIELD_NAMES[name] for name, _ in picked],
        "columns_datatype": [datatype for _, datatype in picked],
        "columns_description": ["" if rng.random() < 0.6 else f"The {name.lower()} of the record."
                                for name, _ in picked],
        "columns_format": [rng.choice(FORMATS[datatype]) for _, datatype in picked],
    }


def _copy_columns(columns: dict) -> dict:
    # Fresh lists and format dicts, so a test editing one entry changes no other.
    copied = {key: list(values) for key, values in columns.items()}
    copied["columns_format"] = [dict(f) for f in columns["columns_format"]]
    return copied


COLUMN_KEYS = ("columns_name", "columns_field_name", "columns_datatype", "columns_description",
               "columns_format")


def make_socrata_entries(n: int, domain: str = "data.example.org", seed: int = 0) -> list[dict]:
    """n Discovery ``results[]`` items for ``domain``, most-viewed first (the
    Discovery default order, hence not id order). About 72% datasets; filters,
    charts and maps name their dataset in ``parent_fxf`` and share its columns;
    stories, links and files carry no columns, as on real portals."""
    # Cyclic GC passes over millions of fresh containers cost more than building them.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _socrata_entries(n, domain, seed)
    finally:
        if gc_was_enabled:
            gc.enable()


def _socrata_entries(n: int, domain: str, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rand = rng.random  # random.choice/randrange are ~10x slower than indexing with random()

    def pick(seq):
        return seq[int(rand() * len(seq))]

    # Banks drawn once per call keep 100k entries within seconds.
    titles = [_title(rng) for _ in range(min(n, 4096) or 1)]
    column_sets = [_column_set(rng) for _ in range(min(n, 1024) or 1)]
    stamps = sorted(_iso(rng.randrange(T_2011, T_2025)) for _ in range(4096))
    slugs: dict[str, str] = {}
    users = [{"id": uid, "user_type": "interactive", "display_name": name}
             for uid, name in zip(unique_ids(rng, len(USERS)), USERS)]
    ids = unique_ids(rng, n)
    datasets: list[tuple[str, str, dict]] = []  # (id, title, columns) of datasets so far
    entries = []
    for fxf in ids:
        draw = rand() if datasets else 0.0  # the first asset must be a dataset
        kind, _, view_type, display_type = next(t for t in ASSET_TYPES if draw < t[1])
        parent_fxf: list[str] = []
        if kind == "dataset":
            title, columns = pick(titles), _copy_columns(pick(column_sets))
            datasets.append((fxf, title, columns))
        elif kind in ("filter", "chart", "map"):
            parent_id, parent_title, parent_columns = pick(datasets)
            parent_fxf, columns = [parent_id], _copy_columns(parent_columns)
            title = {"filter": f"{parent_title} - {pick(FILTER_SUFFIXES)}",
                     "chart": f"{parent_title} by {pick(parent_columns['columns_name'])}",
                     "map": f"Map of {parent_title}"}[kind]
        else:
            title = pick(titles) + {"story": " Dashboard", "href": " (External Link)", "file": " Report (PDF)"}[kind]
            columns = {key: [] for key in COLUMN_KEYS}

        # Indexes into the sorted stamps keep created <= published <= updated.
        created = int(rand() * len(stamps))
        metadata_updated = created + int(rand() * (len(stamps) - created))
        data_updated = metadata_updated + int(rand() * (len(stamps) - metadata_updated))
        published = created + int(rand() * (metadata_updated - created + 1))
        total_views = int(40 / (1.0 - rand()) ** 1.25)  # Pareto: a few assets get most views
        month_views = total_views // (20 + int(rand() * 380))
        week_views = month_views // 4
        category, department, owner = pick(CATEGORIES), pick(DEPARTMENTS), pick(users)
        if kind == "story":
            permalink = link = f"https://{domain}/stories/s/{fxf}"
        else:
            permalink = f"https://{domain}/d/{fxf}"
            slug = slugs.get(title) or slugs.setdefault(title, _slug(title)[:50])
            link = f"https://{domain}/{CATEGORY_SLUGS[category]}/{slug}/{fxf}"

        entries.append({
            "resource": {
                "name": title,
                "id": fxf,
                "resource_name": None,
                "parent_fxf": parent_fxf,
                "description": f"{title}. Published by the {department}; see the portal for methodology.",
                "attribution": department,
                "attribution_link": None if rand() < 0.5 else "http://www.example.gov",
                "contact_email": None,
                "type": kind,
                "updatedAt": stamps[data_updated],
                "createdAt": stamps[created],
                "metadata_updated_at": stamps[metadata_updated],
                "data_updated_at": stamps[data_updated],
                "page_views": {
                    "page_views_last_week": week_views,
                    "page_views_last_month": month_views,
                    "page_views_total": total_views,
                    "page_views_last_week_log": math.log2(week_views + 1),
                    "page_views_last_month_log": math.log2(month_views + 1),
                    "page_views_total_log": math.log2(total_views + 1),
                },
                **columns,
                "download_count": int(rand() * total_views) if kind == "dataset" else 0,
                "provenance": "official",
                "lens_view_type": view_type,
                "lens_display_type": display_type,
                "locked": False,
                "blob_mime_type": "application/pdf" if kind == "file" else None,
                "hide_from_data_json": False,
                "publication_date": stamps[published],
            },
            "classification": {
                "categories": [],
                "tags": [],
                "domain_category": category,
                "domain_tags": TAGS[int(rand() * 14):][: int(rand() * 4)],
                "domain_metadata": [
                    {"key": "Metadata_Frequency", "value": pick(FREQUENCIES)},
                    {"key": "Metadata_Data-Owner", "value": department},
                ],
            },
            "metadata": {"domain": domain, "license": pick(LICENSES)},
            "permalink": permalink,
            "link": link,
            "owner": dict(owner),
            "creator": dict(owner),
        })
    entries.sort(key=lambda e: -e["resource"]["page_views"]["page_views_total"])
    return entries


def make_data_json(n: int, hub_url: str = "https://data-example.hub.arcgis.com",
                   services_url: str = "https://services.arcgis.com/Xy12AbCdEf34/arcgis/rest/services",
                   seed: int = 0) -> dict:
    """A DCAT-US 1.1 catalog object of n datasets as ArcGIS Hub publishes it:
    identifiers are item URLs, about 70% of datasets have an "ArcGIS GeoService"
    distribution naming a FeatureServer layer under ``services_url``, the rest
    (e.g. uploaded CSVs) name none."""
    rng = random.Random(seed)
    datasets = []
    for index in range(n):
        item = "%032x" % rng.getrandbits(128)
        layer = rng.randint(0, 5)
        title = _title(rng)
        landing = f"{hub_url}/datasets/{item}_{layer}"
        issued = rng.randrange(T_2011, T_2025)
        service = re.sub(r"[^A-Za-z0-9]+", "_", title).strip("_")
        distributions = [
            {"@type": "dcat:Distribution", "title": "ArcGIS Hub Dataset", "format": "Web Page",
             "mediaType": "text/html", "accessURL": landing},
        ]
        if rng.random() < 0.7:
            distributions.append({
                "@type": "dcat:Distribution", "title": "ArcGIS GeoService",
                "format": "ArcGIS GeoServices REST API", "mediaType": "application/json",
                "accessURL": f"{services_url}/{service}_{index}/FeatureServer/{layer}",
            })
        distributions += [
            {"@type": "dcat:Distribution", "title": fmt, "format": fmt, "mediaType": media,
             "accessURL": f"{hub_url}/api/download/v1/items/{item}/{fmt.lower()}?layers={layer}"}
            for fmt, media in (("CSV", "text/csv"), ("GeoJSON", "application/vnd.geo+json"))
        ]
        datasets.append({
            "@type": "dcat:Dataset",
            "identifier": f"https://www.arcgis.com/home/item.html?id={item}&sublayer={layer}",
            "landingPage": landing,
            "title": title,
            "description": f"{title}, maintained by the {rng.choice(DEPARTMENTS)}.",
            "keyword": rng.sample(TAGS, rng.randint(1, 4)),
            "issued": _iso(issued),
            "modified": _iso(rng.randrange(issued, T_2025 + 1)),
            "publisher": {"name": "City of Example"},
            "contactPoint": {"@type": "vcard:Contact", "fn": rng.choice(USERS),
                             "hasEmail": "mailto:opendata@example.gov"},
            "accessLevel": "public",
            "spatial": "-87.9401,41.6445,-87.5240,42.0230",
            "license": rng.choice(LICENSES),
            "distribution": distributions,
            "theme": ["geospatial"],
        })
    return {
        "@context": "https://project-open-data.cio.gov/v1.1/schema/catalog.jsonld",
        "@type": "dcat:Catalog",
        "conformsTo": "https://project-open-data.cio.gov/v1.1/schema",
        "describedBy": "https://project-open-data.cio.gov/v1.1/schema/catalog.json",
        "dataset": datasets,
    }
