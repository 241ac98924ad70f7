"""What the catalogue's features read off a dataset's title: a boundary file is a set of
shapes, a table of counts by area is not."""
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
