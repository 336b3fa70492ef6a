"""Corrections: a call record that changes after its ``ended`` was queued is queued again as
``ended`` with ``corrected`` and the next revision, through the worker's store and outbox."""

import json
import time
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from ctiboard.calls.models import CallRecord, EndedBy
from ctiboard.webhooks.models import WebhookDelivery
from tests.conftest import Company
from tests.webhooks.receiver import receiving
from tests.webhooks.support import (
    SECRET,
    all_delivered,
    call,
    dispatching,
    eventually,
    feed,
    line,
    webhook,
)

URL = "https://crm.example/hook"


def ended(**filters: object) -> list[dict[str, Any]]:
    """The bodies of the queued ``ended`` requests, oldest first, with their revision."""
    return [
        {**json.loads(d.body), "_revision": d.revision}
        for d in WebhookDelivery.objects.filter(event="ended", **filters).order_by("pk")
    ]


def summary(bodies: list[dict[str, Any]]) -> list[tuple[object, ...]]:
    return [
        (b["_revision"], b["revision"], b["corrected"], b["outcome"], b["talk_seconds"])
        for b in bodies
    ]


@pytest.mark.django_db
def test_the_hangup_after_an_idle_line_corrects_the_ended_sent(company: Company) -> None:
    webhook(company.tenant, URL)
    feed(company.tenant, call("u1", "ring", "100", 0), call("u1", "answer", "100", 2))
    feed(company.tenant, line("100", "idle", 20))  # the hangup fell into a gap
    assert summary(ended()) == [(0, 0, False, "answered", 18.0)]
    feed(company.tenant, call("u1", "hangup", "100", 19))  # ... and arrives after all
    assert summary(ended()) == [
        (0, 0, False, "answered", 18.0),
        (1, 1, True, "answered", 17.0),
    ]
    assert ended()[1]["ended_at"] == "2025-09-23T14:00:19+00:00"
    # The same hangup again (two call streams overlapping) corrects nothing.
    feed(company.tenant, call("u1", "hangup", "100", 19))
    assert len(ended()) == 2


@pytest.mark.django_db
def test_a_hangup_that_changes_nothing_reported_sends_no_correction(company: Company) -> None:
    webhook(company.tenant, URL)
    feed(company.tenant, call("u1", "ring", "100", 0), call("u1", "answer", "100", 2))
    feed(company.tenant, line("100", "idle", 20))
    feed(company.tenant, call("u1", "hangup", "100", 20))  # the same moment: only the cause
    assert CallRecord.objects.get(uuid="u1").ended_by == EndedBy.HANGUP
    assert summary(ended()) == [(0, 0, False, "answered", 18.0)]


@pytest.mark.django_db
def test_a_hangup_a_moment_after_the_idle_line_sends_no_correction(company: Company) -> None:
    # The usual order of the two streams: the line goes idle, its hangup follows milliseconds
    # later. The record takes the hangup's time; the receiver gets one "ended".
    webhook(company.tenant, URL)
    feed(company.tenant, call("u1", "ring", "100", 0), call("u1", "answer", "100", 2))
    feed(company.tenant, line("100", "idle", 20))
    feed(company.tenant, call("u1", "hangup", "100", 19.9))
    assert CallRecord.objects.get(uuid="u1").ended_by == EndedBy.HANGUP
    assert summary(ended()) == [(0, 0, False, "answered", 18.0)]


@pytest.mark.django_db
def test_a_late_ring_corrects_the_ring_time(company: Company) -> None:
    webhook(company.tenant, URL)
    feed(company.tenant, call("u1", "answer", "100", 2), call("u1", "hangup", "100", 10))
    assert ended()[0]["ring_seconds"] is None
    feed(company.tenant, call("u1", "ring", "100", 0))  # late, from an overlapping stream
    first, second = ended()
    assert (first["ring_seconds"], second["ring_seconds"], second["corrected"]) == (None, 2.0, True)


@pytest.mark.django_db
def test_a_hunt_group_leg_reported_missed_is_corrected_to_answered_elsewhere(
    company: Company,
) -> None:
    webhook(company.tenant, URL)
    feed(company.tenant, call("h1", "ring", "100", 0), call("h1", "ring", "101", 0))
    feed(company.tenant, call("h1", "hangup", "100", 5))  # before the answer reached us
    assert [b["outcome"] for b in ended()] == ["missed"]
    feed(company.tenant, call("h1", "answer", "101", 4))
    assert [(b["outcome"], b["corrected"]) for b in ended(extension__number="100")] == [
        ("missed", False),
        ("answered-elsewhere", True),
    ]


@pytest.mark.django_db
def test_a_webhook_that_never_had_the_end_gets_its_first(company: Company) -> None:
    early = webhook(company.tenant, URL, name="early")
    feed(company.tenant, call("u1", "ring", "100", 0), call("u1", "answer", "100", 2))
    feed(company.tenant, line("100", "idle", 20))
    late = webhook(company.tenant, URL, name="late")
    feed(company.tenant, call("u1", "hangup", "100", 19))
    assert summary(ended(webhook=early)) == [
        (0, 0, False, "answered", 18.0),
        (1, 1, True, "answered", 17.0),
    ]
    assert summary(ended(webhook=late)) == [(0, 0, False, "answered", 17.0)]


@pytest.mark.django_db
def test_form_bodies_spell_the_flag_like_json(company: Company) -> None:
    webhook(company.tenant, URL, body_format="form", template="c={corrected}&r={revision}")
    feed(company.tenant, call("u1", "ring", "100", 0), call("u1", "answer", "100", 2))
    feed(company.tenant, line("100", "idle", 20))
    feed(company.tenant, call("u1", "hangup", "100", 19))
    bodies = WebhookDelivery.objects.filter(event="ended").order_by("pk").values_list("body")
    assert [body for (body,) in bodies] == ["c=false&r=0", "c=true&r=1"]


@pytest.mark.django_db(transaction=True)
async def test_the_receiver_gets_the_correction_as_a_new_signed_delivery(
    company: Company,
) -> None:
    with receiving() as receiver:
        await sync_to_async(webhook)(company.tenant, receiver.url, on_ringing=False)
        await sync_to_async(feed)(
            company.tenant, call("u1", "ring", "100", 0), call("u1", "answer", "100", 2)
        )
        await sync_to_async(feed)(company.tenant, line("100", "idle", 20))
        async with dispatching():
            await eventually(all_delivered(2))
            await sync_to_async(feed)(company.tenant, call("u1", "hangup", "100", 19))
            await eventually(all_delivered(3))
        assert receiver.events() == ["answered", "ended", "ended"]
        first, correction = receiver.received[1:]
        assert first.delivery != correction.delivery
        assert correction.signature_valid(SECRET, now=time.time())
        bodies = [json.loads(r.body) for r in (first, correction)]
        assert [(b["corrected"], b["revision"], b["talk_seconds"]) for b in bodies] == [
            (False, 0, 18.0),
            (True, 1, 17.0),
        ]
