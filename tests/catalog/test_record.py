import jsonschema
import pytest

from catalog import record as R
from catalog.record import Notes, RecordRejected, validate


def minimal(**fields):
    record = R.blank_record()
    record.update(uid="p:1", portal_id="p", city="City", portal_kind="socrata", source_id="1", title="T")
    record.update(fields)
    return record


def test_each_blank_record_has_lists_of_its_own():
    first = R.blank_record()
    for name in ("keywords", "themes", "distributions", "columns"):
        first[name].append("x")
    second = R.blank_record()
    assert all(value is None for name, value in second.items()
               if name not in ("keywords", "themes", "distributions", "columns"))
    assert [second[name] for name in ("keywords", "themes", "distributions", "columns")] == [[], [], [], []]
    second["title"] = "T"
    assert R.blank_record()["title"] is None


def test_schema_is_a_valid_draft7_schema():
    jsonschema.Draft7Validator.check_schema(R.SCHEMA)


def test_valid_record_passes_unchanged():
    record = minimal(keywords=["crime"], issued="2020-01-02T03:04:05Z", accrual_periodicity="R/P1D",
                     columns=[{"position": 0, "name": "A", "field_name": "a", "type": "text",
                               "source_type": "Text", "description": None}])
    notes = Notes()
    assert validate(dict(record), notes) == record
    assert notes.items == []


@pytest.mark.parametrize("field, value", [("title", None), ("title", ""), ("source_id", None), ("uid", 5)])
def test_missing_title_or_id_rejects(field, value):
    with pytest.raises(RecordRejected, match=field):
        validate(minimal(**{field: value}), Notes())


def test_invalid_optional_value_is_nulled_with_a_warning():
    notes = Notes()
    record = validate(minimal(landing_page="not a url", row_count=-3,
                              columns=[{"position": 0, "type": "weird"}, {"position": 1, "type": "text"}]), notes)
    assert record["landing_page"] is None and record["row_count"] is None
    assert record["columns"] == [{"position": 1, "type": "text"}]
    assert {f for f, _ in notes.items} == {"landing_page", "row_count", "columns"}


@pytest.mark.parametrize("value, expected", [
    ("2025-08-25T04:49:06.000Z", "2025-08-25T04:49:06Z"),
    ("2013-03-22", "2013-03-22T00:00:00Z"),
    ("2019", "2019-01-01T00:00:00Z"),
    ("2020-06-01T12:00:00-04:00", "2020-06-01T16:00:00Z"),
    ("2020-06-01 12:00:00", "2020-06-01T12:00:00Z"),
    (1286556817, "2010-10-08T16:53:37Z"),
    (1286556817123, "2010-10-08T16:53:37.123000Z"),
])
def test_timestamps_parse_to_utc(value, expected):
    assert R.timestamp(value) == expected


def test_impossible_dates_are_refused_on_the_fast_path_too():
    assert R.timestamp("2020-02-30T00:00:00Z") is None
    assert R.timestamp("2020-01-01T24:00:00.000Z") is None


def test_unparseable_timestamp_is_null_with_note():
    notes = Notes()
    assert R.timestamp("R/P1D", notes, "modified") is None
    assert notes.items == [("modified", "not a date/time: 'R/P1D'")]


def test_multilingual_text_prefers_english_then_first():
    assert R.text({"de": "Abstimmung", "fr": "Votation", "en": "Vote"}) == "Vote"
    assert R.text({"de": "Abstimmung", "fr": "Votation", "en": ""}) == "Abstimmung"
    notes = Notes()
    assert R.text(["a"], notes, "title") is None and notes.items


def test_html_description_becomes_plain_text():
    markup = '<DIV STYLE="x"><P><SPAN>Emplacement des v&eacute;los</SPAN></P><p>Line&nbsp;2</p><script>x()</script></DIV>'
    assert R.plain_text(markup) == "Emplacement des vélos\n\nLine 2"


@pytest.mark.parametrize("markup, expected", [
    ('Write to <a href="mailto:open@example.org">the team</a>', "Write to the team (open@example.org)"),
    ('Write to <a href="MAILTO:open@example.org">open@example.org</a>', "Write to open@example.org"),
    ('See <a href="https://www.example.org/">example.org</a>.', "See example.org."),     # its own address, once
    ('See <a href="https://example.org/a"></a> now', "See https://example.org/a now"),     # no text: the address
    ('See <a href="/d/abcd-1234">that</a>, <a href="javascript:x()">this</a>', "See that, this"),   # none to keep
    ('An <a href="https://example.org/x">open link', "An open link (https://example.org/x)"),   # never closed
    ('<a href="https://e.org/1"><b>One</b></a> and <a href="https://e.org/2">two</a>',
     "One (https://e.org/1) and two (https://e.org/2)"),
])
def test_a_link_keeps_its_address_after_its_text(markup, expected):
    assert R.plain_text(markup) == expected


@pytest.mark.parametrize("value", [{"de": "Abstimmung", "en-GB": "Vote"}, {"fr": "Votation", "EN": "Vote"},
                                   {"de": "Abstimmung", "en_US": "Vote", "en": ""}, {"it": "Voto", "En-gb": "Vote"},
                                   {"fr": "Votation", "eng": "Vote"}])
def test_english_is_read_by_any_of_its_language_keys(value):
    """English named with its region, in capitals, with an underscore ("en-GB", "EN", "en_US", as
    CKAN's locales are) or by its three letters (ISO 639-2 "eng", as INSPIRE metadata names it) was
    taken for another language: the first language given was stored."""
    assert R.text(value) == "Vote"
    assert R.text({"de": "Abstimmung", "es": "Votación"}) == "Abstimmung"   # no English: the first language


def test_text_list_of_a_huge_keyword_list_takes_linear_time():
    """A dataset (or an Open311 endpoint's service names) with 200,000 keywords: each was
    looked for in the list kept so far, 200,000^2 / 2 comparisons (10^5 took a minute and a
    half of CPU, 10^6 hours); distinct in order, each keyword compared about once (counted,
    not timed: a timed assertion fails under load)."""
    keywords = [f"keyword {i}" for i in range(200_000)]
    assert R.text_lists([keywords, [" keyword 7 ", "keyword 199999", "new"]]) == keywords + ["new"]

    class Counted(str):
        comparisons = 0

        def strip(self):   # text() keeps it a Counted
            return self

        def __eq__(self, other):
            Counted.comparisons += 1
            return str.__eq__(self, other)

        __hash__ = str.__hash__

    counted = [Counted(f"keyword {i}") for i in range(2_000)]
    assert R.text_lists([counted, counted[::-1]]) == counted
    assert Counted.comparisons <= 2 * len(counted)     # a list's `in`: 4 million


def test_text_list_splits_keywords_but_not_categories():
    assert R.text_list("crime,violent, seattle,crime") == ["crime", "violent", "seattle"]
    assert R.text_list("Parks, Recreation", split=None) == ["Parks, Recreation"]
    assert R.text_list([{"name": "roads"}, "", None, "bus"]) == ["roads", "bus"]


@pytest.mark.parametrize("value, expected", [
    ("R/P1D", "R/P1D"), ("R/PT1H", "R/PT1H"), ("R/P0.5M", "R/P0.5M"), ("daily", "R/P1D"),
    ("Data are updated daily", "R/P1D"), ("Annually", "R/P1Y"), ("irregular", "irregular"),
    ("http://purl.org/cld/freq/monthly", "R/P1M"),
    ("http://publications.europa.eu/resource/authority/frequency/IRREG", "irregular"),
    ("unknown", "unknown"), ("Not planned", "unknown"), ("whenever we feel like it", None), (None, None),
    # as real Socrata portals word them (../shared/fixtures): punctuation, two words, "every N units"
    ("Data are updated daily.", "R/P1D"), ("Data are updated as needed", "irregular"), ("Semi-annually", "R/P6M"),
    ("Not updated (historical data)", "unknown"), ("Data is updated every 15 minutes", "R/PT15M"),
    ("Every 2 Minutes", "R/PT2M"), ("Updated every month", "R/P1M"), ("Bi-Weekly", "R/P2W"),
    ("sporadisch oder unregelmaessig", "irregular"), ("Daily beginning 7/1/19; twice weekly previously", "R/P1D"),
])
def test_periodicity(value, expected):
    assert R.periodicity(value) == expected


@pytest.mark.parametrize("value, expected", [
    # Chicago's, New York's (../shared/fixtures); "twice weekly" was read as "weekly", the rest not at all
    ("Data are updated multiple times per hour", "R/PT30M"), ("Twice weekly", "R/P3D"),
    ("Every weekday", "R/P1D"), ("To be determined", "unknown"),
    # at least twice is the period of twice (as udata's "plusieurs fois par jour"); a week's counts as the EU's
    ("several times a day", "R/PT12H"), ("Twice a month", "R/P0.5M"), ("twice yearly", "R/P6M"),
    ("Three times a week", "R/P2D"), ("updated four times per day", "R/PT6H"), ("once a week", "R/P1W"),
    # the first frequency named is read, two words before the first of them alone
    ("Weekly; twice daily in winter", "R/P1W"), ("Twice daily, weekly at weekends", "R/PT12H"),
    ("Semi annually", "R/P6M"),
    # how data are posted (Mesa's "Scheduled Data Update"), not how often: not read
    ("Manual Post", None),
])
def test_periodicity_counted_in_a_period(value, expected):
    assert R.periodicity(value) == expected


@pytest.mark.parametrize("value, expected", [
    # "X or as needed": a schedule, with updates between (a user asking for daily datasets wants it);
    # "as needed" alone, or named first, is no schedule
    ("Daily or as needed", "R/P1D"), ("Weekly, or as needed", "R/P1W"), ("Monthly or as-needed", "R/P1M"),
    ("As needed", "irregular"), ("As needed or daily", "irregular"),
])
def test_a_frequency_or_as_needed_is_the_frequency(value, expected):
    """A guard (main reads these so since session 35; before, "Daily or as needed" was irregular): the
    first frequency named is the one read, as in any "X or Y" phrase."""
    assert R.periodicity(value) == expected


def test_a_repeating_duration_is_told_from_a_date():
    """DCAT-US 1.1's `modified` may be a repeating interval (Project Open Data: "R/P1D" for daily):
    only the form civicat stores as a frequency (`R/P…`) is one; a bare duration, a repeat count or an
    interval of dates is not."""
    assert [R.repeating_duration(v) for v in ("R/P1D", " R/PT5M ", "R/P0.5M", "R/P1Y2M")] == \
        ["R/P1D", "R/PT5M", "R/P0.5M", "R/P1Y2M"]
    assert [R.repeating_duration(v) for v in ("P1D", "R5/P1D", "R/P", "R/PT", "R/2020-01-01/P1D", "2020-01-01",
                                              None, 20200101, "daily")] == [None] * 9


def test_an_update_frequency_that_does_not_parse_is_null_with_a_warning_not_taken_for_unknown():
    """SPEC: a value that does not parse as its type is stored as null with a warning, the raw
    record keeping it; `unknown` is what a portal says (unknown, never, not planned), not a
    word civicat could not read."""
    notes = Notes()
    assert R.periodicity("whenever we feel like it", notes) is None
    assert notes.items == [("accrual_periodicity", "unrecognised update frequency 'whenever we feel like it'; "
                                                   "stored as null")]


@pytest.mark.parametrize("value, expected", [
    ("22.09.2004", "2004-09-22T00:00:00Z"), ("1.2.2020", "2020-02-01T00:00:00Z"),
    ("14.12.2025 08:30", "2025-12-14T08:30:00Z"), ("14.12.2025 08:30:15", "2025-12-14T08:30:15Z"),
    ("31.02.2020", None), ("13.13.2020", None), ("22.09.04", None),
    # slashes say nothing of the order: 03/04/2024 is 4 March in the US, 3 April in Europe
    ("03/04/2024", None), ("22/09/2004", None),
])
def test_a_date_written_day_first_with_dots_is_read(value, expected):
    """Stadt Zürich's dates ("22.09.2004"; its own DCAT export reads them day first) were not a
    date/time; dots are written day first only. Slashes are not read either way."""
    notes = Notes()
    assert R.timestamp(value, notes, "modified") == expected
    assert notes.items == ([] if expected else [("modified", f"not a date/time: {value!r}")])


def test_temporal_interval():
    assert R.temporal("2010-01-01/2012-12-31") == ("2010-01-01T00:00:00Z", "2012-12-31T00:00:00Z")
    assert R.temporal("2010-01-01/P1Y")[1] == "2011-01-01T00:00:00Z"
    assert R.temporal(None) == (None, None)


def test_email_url_access_level_integer():
    assert R.email("mailto:maps@phila.gov") == "maps@phila.gov"
    assert R.email("nobody") is None
    assert R.url("//example.org/x") == "https://example.org/x"
    assert R.url("javascript:alert(1)") is None
    assert R.access_level("Public") == "public" and R.access_level("non public") == "non-public"
    assert R.integer("12") == 12 and R.integer("x") is None


def test_column_type_mapping_falls_back_to_other():
    table = {"calendar_date": "datetime", "number": "number"}
    assert R.column_type("Calendar date", table) == "datetime"
    assert R.column_type("NUMBER", table) == "number"
    assert R.column_type("hologram", table) == "other"
    assert R.column_type(None, table) == "other"
