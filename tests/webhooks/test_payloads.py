"""Templates are filled by substitution only, and every request is signed over what is sent."""

import json
from datetime import UTC, datetime
from urllib.parse import parse_qs

import pytest

from ctiboard.webhooks import payloads

T0 = datetime(2025, 9, 23, 14, 0, 0, tzinfo=UTC)


def values(**overrides: object) -> dict[str, payloads.Value]:
    base = payloads.values_of(
        "ended",
        account="K1",
        uuid="u-1",
        extension="100",
        extension_name='Anna "AJ" Jones & Co',
        direction="inbound",
        partner="4930123456",
        outcome="answered",
        timestamp=T0,
        started_at=T0,
        answered_at=T0,
        ended_at=T0,
        ring_seconds=4.0,
        talk_seconds=61.5,
    )
    return {**base, **overrides}  # type: ignore[dict-item]


def test_values_from_the_extensions_point_of_view() -> None:
    inbound = values()
    assert (inbound["caller"], inbound["callee"]) == ("4930123456", "100")
    outbound = payloads.values_of(
        "ringing",
        account="K1",
        uuid="u",
        extension="100",
        extension_name="",
        direction="outbound",
        partner="4930123456",
        outcome="",
        timestamp=T0,
        started_at=T0,
        answered_at=None,
        ended_at=None,
        ring_seconds=None,
        talk_seconds=None,
    )
    assert (outbound["caller"], outbound["callee"]) == ("100", "4930123456")
    assert outbound["timestamp"] == "2025-09-23T14:00:00+00:00"
    assert outbound["answered_at"] is None


def test_default_json_carries_every_value_typed_and_escaped() -> None:
    rendered = payloads.render("json", "", "https://crm.example/hook", values())
    assert (rendered.method, rendered.content_type) == ("POST", "application/json")
    body = json.loads(rendered.body)
    assert body["extension_name"] == 'Anna "AJ" Jones & Co'
    assert body["talk_seconds"] == 61.5 and body["event"] == "ended"
    assert set(body) == set(payloads.PLACEHOLDERS)


def test_json_template_mixes_text_and_values() -> None:
    template = '{"text": "{caller} called {extension}", "n": "{ring_seconds}", "k": [1, "{{x}}"]}'
    body = json.loads(payloads.render("json", template, "https://x.example/", values()).body)
    assert body == {"text": "4930123456 called 100", "n": 4.0, "k": [1, "{x}"]}


def test_query_and_form_values_are_percent_encoded() -> None:
    template = "name={extension_name}&from={caller}"
    get = payloads.render("query", template, "https://x.example/h?token=a", values())
    assert get.method == "GET" and get.body == ""
    assert get.url.startswith("https://x.example/h?token=a&name=")
    query = get.url.split("?", 1)[1]
    assert parse_qs(query) == {
        "token": ["a"],
        "name": ['Anna "AJ" Jones & Co'],
        "from": ["4930123456"],
    }
    form = payloads.render("form", template, "https://x.example/h", values())
    assert form.method == "POST" and form.content_type == "application/x-www-form-urlencoded"
    assert parse_qs(form.body)["name"] == ['Anna "AJ" Jones & Co']


@pytest.mark.parametrize(
    "template",
    [
        "a={caller.__class__}",
        "a={caller[0]}",
        "a={caller!r}",
        "a={caller:>99999}",
        "a={}",
        "a={0}",
        "a={secret}",
        "a={caller",
        "a=}",
    ],
)
def test_only_plain_known_placeholders(template: str) -> None:
    with pytest.raises(payloads.TemplateError):
        payloads.check("query", template)


def test_json_template_must_be_json() -> None:
    with pytest.raises(payloads.TemplateError):
        payloads.check("json", "caller={caller}")
    payloads.check("json", '{"a": "{caller}"}')


def test_signature_covers_timestamp_and_exact_payload() -> None:
    signature = payloads.sign("s3cret-s3cret-s3cret", 1_700_000_000, b'{"a":1}')
    assert signature.startswith("sha256=") and len(signature) == 7 + 64

    def ok(timestamp: str, payload: bytes, key: str = "s3cret-s3cret-s3cret") -> bool:
        return payloads.verify(key, timestamp, payload, signature, now=1_700_000_100, tolerance=300)

    assert ok("1700000000", b'{"a":1}')
    assert not ok("1700000000", b'{"a":2}')  # another body
    assert not ok("1700000001", b'{"a":1}')  # another timestamp
    assert not ok("1700000000", b'{"a":1}', key="other-secret-other")
    assert not payloads.verify(
        "s3cret-s3cret-s3cret",
        "1700000000",
        b'{"a":1}',
        signature,
        now=1_700_000_000 + 301,
        tolerance=300,
    )  # a replay after the tolerance
