import contextlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ctiboard.cti.events import (
    MalformedEvent,
    _parse_timestamp_regex,
    parse_call,
    parse_state,
    parse_timestamp,
)


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


def _same(text: str) -> None:
    """parse_timestamp (fast path where it applies) gives exactly what the regex alone gives:
    the same instant, the same fields and the same offset, or None for both."""
    fast, regex = parse_timestamp(text), _parse_timestamp_regex(text.strip())
    assert repr(fast) == repr(regex), text
    if fast is not None and regex is not None:
        assert fast.utcoffset() == regex.utcoffset()


@pytest.mark.parametrize(
    "text",
    [
        "2025-09-23T16:51:22.954969226+02:00",
        "2025-09-23 16:51:22.954969226-05:30",
        "2025-09-23T16:51:22.1+0200",
        "2025-09-23T16:51:22.123456Z",
        "2025-09-23T16:51:22.9999999999999999999999999999Z",
        "2025-09-23T16:51:22",
        "2025-09-23T16:51:22z",
        "2025-09-23T16:51:22-00:00",
        "2025-09-23T16:51:22+05:99",
        "2025-09-23T16:51:22+23:59",
        "2025-09-23T16:51:22+24:00",
        "2025-09-23T16:51:22+99:99",
        "  2025-09-23T16:51:22Z\n",
        "2013-10-27T13:01:14:00.010Z",
        "2013-10-27T13:01:14:00.069620809+02:00",
        # read by datetime.fromisoformat, refused by the regex
        "2025-09-23",
        "2025-W39-2",
        "2025-W39-2T16:51:22",
        "2025-09-23T16",
        "2025-09-23T16:51",
        "20250923T165122",
        "2025-09-23t16:51:22",
        "2025-09-23x16:51:22",
        "2025-09-23T16:51:22,5",
        "2025-09-23T16:51:22.",
        "2025-09-23T16:51:22.+02:00",
        "2025-09-23T16:51:22 +02:00",
        "2025-09-23T16:51:22+02",
        "2025-09-23T16:51:22+02:00:30",
        "2025-09-23T16:51:22+0200:30",
        "2025-09-23T16:51:22.5+02:00:30.123456",
        # out of range
        "2025-09-23T24:00:00",
        "2025-09-23T16:51:60Z",
        "2025-02-30T16:51:22Z",
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59-01:00",
        # non-ASCII digits: \d and int() read them, fromisoformat does not
        "\u0662\u0660\u0662\u0665-09-23T16:51:22Z",
        "2025-09-23T16:51:22.\uff15Z",
        "2025-09-23T16:51:22+0\u0662:00",
        "2025-09-23T16:51:22\ud800",
        "",
        "yesterday",
    ],
)
def test_fast_timestamps_are_read_as_the_regex_reads_them(text: str) -> None:
    _same(text)


_DIGITS = st.text(st.sampled_from("0123456789"), min_size=1, max_size=3)
_TIMESTAMPISH = st.lists(
    st.sampled_from(["2025", "-", "09", "23", "T", "t", " ", ":", ".", ",", "Z", "z", "+", "W"])
    | _DIGITS
    | st.text(max_size=2),
    max_size=16,
).map("".join)


@given(
    st.tuples(
        st.integers(0, 10000).map("{:04d}".format),
        st.integers(0, 99).map("{:02d}".format),
        st.integers(0, 99).map("{:02d}".format),
        st.sampled_from(["T", " ", "t", "_"]),
        st.integers(0, 99).map("{:02d}".format),
        st.integers(0, 99).map("{:02d}".format),
        st.integers(0, 99).map("{:02d}".format),
        st.sampled_from(["", ":00", ":59"]),
        st.sampled_from(["", ".", ","]).flatmap(
            lambda dot: _DIGITS.map(dot.__add__) | st.just(dot)
        ),
        st.sampled_from(["", "Z", "z", "+", "-", " +"]).flatmap(
            lambda sign: st.tuples(_DIGITS, st.sampled_from(["", ":"]), _DIGITS).map(
                lambda parts: sign + "".join(parts) if sign not in ("", "Z", "z") else sign
            )
        ),
        st.sampled_from(["", " ", "\n", "x"]),
    ).map(lambda parts: "{}-{}-{}{}{}:{}:{}{}{}{}{}".format(*parts))
    | _TIMESTAMPISH
    | st.text()
)
def test_any_text_is_read_as_the_regex_reads_it(text: str) -> None:
    _same(text)


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
