"""The quality bench's catalogue entries: what it reads of a labelled dataset's own naming."""
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
