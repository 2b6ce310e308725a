"""Validation: every raw record becomes an Event or a Rejection with a reason, never an error."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imdb_tui.events import (
    FIELDS,
    MAX_RAW_CHARS,
    Event,
    Located,
    Rejection,
    _event,
    _Invalid,
    _quick_any,
    _validate,
    validate,
    validate_many,
)
from tests.conftest import DROP, NOW, event


def test_a_valid_event_is_accepted_as_is() -> None:
    result = validate(event(1, event_type="rate", rating=8))
    assert result == Event(
        "evt-00000001",
        "2026-11-23T10:00:00.000Z",
        "u0000001",
        "s000000000001",
        "tt1000001",
        "rate",
        8,
    )
    assert result.ts == NOW


def test_json_lines_as_text_and_bytes_are_accepted() -> None:
    line = json.dumps(event(2))
    assert validate(line) == validate(line.encode()) == validate(event(2))


def test_other_time_zones_are_stored_in_utc() -> None:
    result = validate(event(3, event_time="2026-11-23T11:00:00+01:00"))
    assert isinstance(result, Event)
    assert result.event_time == "2026-11-23T10:00:00.000Z"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty line"),
        ("   ", "empty line"),
        ("{not json", "invalid JSON"),
        ("[1, 2]", "JSON is an array, not an object"),
        ("42", "JSON is a number, not an object"),
        (b"\xff\xfe{}", "invalid UTF-8"),
        ('{"event_id": "a\x00b"}', "invalid JSON"),
        ("[" * 100_000, "invalid JSON"),
        ("x" * (1024 * 1024 + 1), "line longer than 1 MiB"),
        (event(event_type="purchase"), "unknown event_type 'purchase'"),
        (event(event_type=DROP), "missing field 'event_type'"),
        (event(user_id=DROP), "missing field 'user_id'"),
        (event(user_id=12), "user_id must be a str, not a number"),
        (event(user_id=True), "user_id must be a str, not a boolean"),
        (event(user_id="u" * 65), "user_id longer than 64 characters"),
        (event(user_id="[bold]x[/]"), "user_id must be letters, digits"),
        (event(session_id="\x1b[31mred"), "session_id must be letters, digits"),
        (event(movie_id="nm0000001"), "movie_id must be tt followed by 7 to 10 digits"),
        (event(movie_id="tt١٢٣٤٥٦٧"), "movie_id must be tt followed by 7 to 10 digits"),
        (event(event_time="yesterday"), "not an ISO-8601 time"),
        (event(event_time="2026-11-23T10:00:00.12٣Z"), "not an ISO-8601 time"),
        (event(event_time="2026-11-23T10:00:00"), "no time zone"),
        (event(event_time=1795428000), "event_time must be a str"),
        # canonical in shape, but no real time: as mappings and as a file's lines
        (event(event_time="2026-13-23T10:00:00.000Z"), "not an ISO-8601 time"),
        (event(event_time="2026-02-30T10:00:00.000Z"), "not an ISO-8601 time"),
        (event(event_time="2026-11-23T24:00:00.000Z"), "not an ISO-8601 time"),
        (event(event_time="2026-11-23T10:00:60.000Z"), "not an ISO-8601 time"),
        (json.dumps(event(event_time="2026-02-29T10:00:00.000Z")).encode(), "not an ISO-8601"),
        (json.dumps(event(event_time="2026-11-23T10:61:00.000Z")).encode(), "not an ISO-8601"),
        (event(event_time="1969-12-31T23:59:59.999Z"), "before 1970"),
        (event(event_type="rate"), "missing field 'rating'"),
        (event(event_type="rate", rating=11), "rating must be an integer from 1 to 10"),
        (event(event_type="rate", rating=0), "rating must be an integer from 1 to 10"),
        (event(event_type="rate", rating=7.5), "rating must be an integer from 1 to 10"),
        (event(event_type="rate", rating=True), "rating must be an integer from 1 to 10"),
        (event(rating=5), "rating is only allowed on rate events, not view"),
        (event(extra="x"), "unknown field 'extra'"),
    ],
)
def test_bad_records_are_rejected_with_a_reason(raw: object, reason: str) -> None:
    result = validate(raw)  # type: ignore[arg-type]
    assert isinstance(result, Rejection)
    assert reason in result.reason


def test_a_rejection_keeps_the_raw_payload_cut_to_size() -> None:
    line = json.dumps(event(user_id="u" * 10_000))
    result = validate(line)
    assert isinstance(result, Rejection)
    assert result.raw == line[:MAX_RAW_CHARS]
    assert result.raw_size == len(line)


def test_nul_bytes_in_a_raw_payload_are_kept_visible() -> None:
    result = validate("bad\x00line")
    assert isinstance(result, Rejection)
    assert result.raw == "bad\\x00line"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)


@given(st.binary(max_size=300))
def test_any_bytes_give_an_event_or_a_rejection(raw: bytes) -> None:
    assert isinstance(validate(raw), Event | Rejection)


@given(json_values)
def test_any_json_gives_an_event_or_a_rejection(value: object) -> None:
    assert isinstance(validate(json.dumps(value)), Event | Rejection)


field_values = st.one_of(
    st.none(),
    st.lists(st.integers(), max_size=2),  # JSON's other shapes: unhashable, so no keys
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.integers(-5, 15),
    st.booleans(),
    st.floats(allow_nan=False),
    st.sampled_from(["view", "click", "rate", "watchlist_add", "tt1234567", "u1", ""]),
    st.sampled_from(
        [
            "2026-11-23T10:00:00.000Z",
            "2026-11-23T09:59:59.999Z",
            "2030-01-01T00:00:00.000Z",
            "2026-11-23T10:05:00.000Z",  # the latest accepted: 5 minutes ahead
            "2026-11-23T10:05:00.001Z",
            "2026-13-23T10:00:00.000Z",  # canonical in shape only
            "2026-02-30T10:00:00.000Z",
            "2026-11-23T24:00:00.000Z",
            "2026-11-23T10:60:00.000Z",
            "1969-12-31T23:59:59.999Z",
            "2026-11-23T10:00:00Z",  # not canonical: the careful way makes it so
        ]
    ),
    st.text(max_size=70),
)


@settings(max_examples=500)
@given(
    st.fixed_dictionaries(
        {},
        optional={name: field_values for name in (*FIELDS, "other")},
    )
)
def test_the_fast_path_agrees_with_the_careful_one(record: dict[str, object]) -> None:
    try:
        careful: Event | None = _event(record)
    except _Invalid:
        careful = None
    for raw in (record, json.dumps(record).encode()):  # a mapping, and a file's line
        result = validate(raw)
        assert result == careful if careful else isinstance(result, Rejection)


@given(st.integers(0, 10**6), st.sampled_from(["view", "click", "watchlist_add"]))
def test_an_event_survives_its_own_json_form(n: int, event_type: str) -> None:
    first = validate(event(n, event_type=event_type))
    assert isinstance(first, Event)
    assert validate(json.dumps(first.to_json())) == first


def test_a_chunk_is_split_into_events_and_rejections_in_order() -> None:
    chunk: list[object] = [event(1), "{bad", event(2), event(3, rating=4), json.dumps(event(4))]
    events, rejections, blank = validate_many(chunk)  # type: ignore[arg-type]
    assert blank == 0
    assert [e.event_id for e in events] == ["evt-00000001", "evt-00000002", "evt-00000004"]
    assert [r.raw for r in rejections] == ["{bad", json.dumps(event(3, rating=4))]
    assert [validate(raw) for raw in chunk] == [  # type: ignore[arg-type]
        events[0],
        rejections[0],
        events[1],
        rejections[1],
        events[2],
    ]


@pytest.mark.parametrize(
    "moment", ["2026-11-23T10:06:00.000Z", "2026-11-24T10:00:00.000Z", "2027-06-01T00:00:00Z"]
)
def test_an_event_ahead_of_this_clock_is_valid(moment: str) -> None:
    """This machine's clock may be the one that is wrong: no event is turned away for
    its time (the metrics say how many are ahead of the clock)."""
    assert isinstance(validate(event(1, event_time=moment)), Event)
    assert isinstance(validate(json.dumps(event(2, event_time=moment))), Event)


@settings(max_examples=500)
@given(
    st.fixed_dictionaries(
        {},
        optional={name: field_values for name in (*FIELDS, "other")},
    )
)
def test_the_fast_path_for_json_lines_agrees_with_the_careful_one(
    record: dict[str, object],
) -> None:
    line = json.dumps(record)
    careful = _validate(line)  # text takes the careful way only
    assert validate(line.encode()) == careful
    blank = int(not line.strip())
    assert validate_many([line.encode()]) == (
        ([careful], [], 0) if isinstance(careful, Event) else ([], [careful] * (1 - blank), blank)
    )


def test_blank_lines_are_skipped_and_counted_not_dead_letters() -> None:
    events, rejections, blank = validate_many([b"", b"   ", b"\t\r", json.dumps(event(1)).encode()])
    assert (len(events), rejections, blank) == (1, [], 3)


def test_a_located_record_takes_the_fast_path_and_is_rejected_with_its_origin() -> None:
    line = json.dumps(event(1)).encode()
    located = Located.at(line, "shardId-000000000001, sequence 7")
    assert _quick_any(located) == validate(line)
    rejection = validate(Located.at(b"{broken", "shardId-000000000001, sequence 8"))
    assert isinstance(rejection, Rejection)
    assert rejection.reason.endswith("(shardId-000000000001, sequence 8)")
    assert rejection.raw == "{broken"
