"""The quality bench's catalogue entries: what it reads of a labelled dataset's own naming."""
import pytest

import bench.overlap_quality as quality
from bench.overlap_quality import landing_page_title, words_of


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
