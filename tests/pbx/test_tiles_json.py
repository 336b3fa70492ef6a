"""The worker's tile messages: the JSON the web processes decode, byte for byte what
json.dumps makes of Extension.to_payload() (and the contact), however odd the values."""

import json
from datetime import date, datetime, timedelta, timezone
from typing import Any
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ctiboard.contacts.models import Contact
from ctiboard.pbx import events
from ctiboard.pbx.models import Extension


def _reference(extension: Extension, contact: Contact | None) -> str:
    payload = extension.to_payload()
    if contact is not None:
        payload["contact"] = [contact.name, contact.vip]
    return json.dumps(payload, separators=(",", ":"))


_TEXTS = (
    st.text()
    | st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=2)
    | st.sampled_from(["", "idle", 'a "quoted" \\ name', "Zoë Ärger", "\u2028\x00\x1f"])
)
_INSTANTS = st.none() | st.datetimes(
    timezones=st.none()
    | st.timezones()
    | st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)).map(timezone)
)
_INTS = st.integers(-(2**70), 2**70)
# What the template does not take: the dictionary and json.dumps must write it the same.
_ODD = st.none() | st.booleans() | st.integers() | st.floats() | st.dates() | st.just(date.max)


@st.composite
def _extensions(draw: st.DrawFn) -> Extension:
    def value(usual: st.SearchStrategy[Any]) -> Any:
        return draw(usual | _ODD) if draw(st.integers(0, 9)) == 0 else draw(usual)

    return Extension(
        pk=value(_INTS),
        tenant_id=value(_INTS),
        number=value(_TEXTS),
        name=value(_TEXTS),
        line=value(_TEXTS),
        presence=value(_TEXTS),
        line_since=value(_INSTANTS),
        presence_since=value(_INSTANTS),
        call_state=value(_TEXTS),
        call_partner=value(_TEXTS),
        call_direction=value(_TEXTS),
        call_since=value(_INSTANTS),
        seq=value(_INTS),
        active=value(st.booleans()),
    )


_CONTACTS = st.none() | st.builds(
    Contact, name=_TEXTS, vip=st.booleans() | st.just(None) | st.integers()
)


def _outcome(encode: Any, *args: Any) -> object:
    try:
        return encode(*args)
    except Exception as exc:  # the two must fail alike on what cannot be encoded
        return type(exc)


@given(extension=_extensions(), contact=_CONTACTS)
def test_a_tile_is_encoded_as_json_dumps_encodes_its_payload(
    extension: Extension, contact: Contact | None
) -> None:
    assert _outcome(events.tile_json, extension, contact) == _outcome(
        _reference, extension, contact
    )


def test_the_usual_tile() -> None:
    extension = Extension(
        pk=7,
        tenant_id=3,
        number="101",
        name="Zoë",
        line="in-use",
        presence="available",
        line_since=datetime(2026, 3, 1, 9, 30, 15, 123456, timezone(timedelta(hours=2))),
        presence_since=None,
        call_state="answer",
        call_partner="+4930123",
        call_direction="inbound",
        seq=12,
    )
    contact = Contact(name="Big Customer", vip=True)
    assert events.tile_json(extension, contact) == _reference(extension, contact)
    assert json.loads(events.tile_json(extension))["line_since"] == (
        "2026-03-01T09:30:15.123456+02:00"
    )


@pytest.mark.parametrize("tenants", [[1], [1, 2, 1]])
def test_a_batch_is_the_json_list_of_its_tiles_per_tenant(tenants: list[int]) -> None:
    extensions = [
        Extension(pk=i, tenant_id=tenant, number=str(100 + i), line="idle", seq=i)
        for i, tenant in enumerate(tenants)
    ]
    extensions[0].call_partner = "+4930123"
    contacts = {"+4930123": Contact(name="Customer", vip=False)}
    sent: list[tuple[str, dict[str, Any]]] = []
    with mock.patch.object(events, "_send_after_commit", lambda *a: sent.append(a)):
        events.extensions_changed(extensions, contacts)
    expected = {}
    for tenant in dict.fromkeys(tenants):
        payloads = []
        for extension in extensions:
            if extension.tenant_id == tenant:
                payload = extension.to_payload()
                contact = contacts.get(extension.call_partner)
                if contact is not None:
                    payload["contact"] = [contact.name, contact.vip]
                payloads.append(payload)
        expected[events.tenant_group(tenant)] = json.dumps(payloads, separators=(",", ":"))
    assert {group: message["tiles"] for group, message in sent} == expected
