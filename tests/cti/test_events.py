import contextlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ctiboard.cti.events import MalformedEvent, parse_call, parse_state, parse_timestamp


def test_state_keeps_undocumented_values_raw() -> None:
    event = parse_state('{"extension": "100", "customer": "K1", "line": "busy", "presence": "x"}')
    assert (event.extension, event.line, event.presence) == ("100", "busy", "x")


def test_state_with_missing_fields_is_still_usable() -> None:
    event = parse_state('{"extension": 2001}')
    assert event.extension == "2001"
    assert event.line is None and event.presence is None and event.updated is None


@pytest.mark.parametrize(
    "frame",
    ["", "not json", "[1, 2]", '"text"', '{"line": "idle"}', '{"extension": ""}', "{"],
)
def test_unusable_state_frames_are_refused(frame: str) -> None:
    with pytest.raises(MalformedEvent):
        parse_state(frame)


def test_call_event_keeps_unknown_state() -> None:
    event = parse_call('{"uuid": "u-1", "state": "bridge", "extension": "100"}')
    assert event.state == "bridge" and event.extension == "100"


def test_call_event_needs_uuid() -> None:
    with pytest.raises(MalformedEvent):
        parse_call('{"state": "ring"}')


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "2025-09-23T16:51:22.954969226+02:00",
            datetime(2025, 9, 23, 16, 51, 22, 954969, timezone(timedelta(hours=2))),
        ),
        ("2013-10-27T13:01:14:00.010Z", datetime(2013, 10, 27, 13, 1, 14, 10000, UTC)),
        ("2024-01-01T00:00:00Z", datetime(2024, 1, 1, tzinfo=UTC)),
    ],
)
def test_timestamps_in_rfc3339_and_nfon_example_forms(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "2024-13-45T99:00:00Z", 17, None])
def test_bad_timestamps_are_dropped(text: object) -> None:
    assert parse_timestamp(text) is None


@given(st.binary())
def test_arbitrary_bytes_never_crash_the_parsers(data: bytes) -> None:
    for parse in (parse_state, parse_call):
        with contextlib.suppress(MalformedEvent):
            parse(data)


@given(
    st.dictionaries(
        st.sampled_from(["extension", "uuid", "line", "presence", "state", "updated", "x"]),
        st.none() | st.booleans() | st.integers() | st.text() | st.lists(st.integers()),
    )
)
def test_arbitrary_objects_never_crash_the_parsers(obj: dict[str, object]) -> None:
    for parse in (parse_state, parse_call):
        with contextlib.suppress(MalformedEvent):
            parse(obj)
