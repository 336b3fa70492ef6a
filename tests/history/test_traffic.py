"""Calls made in the simulator end up in the history with the simulator's outcomes and
durations (measured on its own event stamps, as a second client receives them)."""

from datetime import datetime

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import AsyncClient, Client
from django.urls import reverse

from ctiboard.calls.models import CallRecord, CallState
from ctiboard.cti.events import CallEvent
from ctiboard.tenancy.models import Extension, Membership
from tests.conftest import Company, Pbx, make_user
from tests.history.support import csv_of
from tests.ingest.support import call_log, control, converged, eventually, running

pytestmark = pytest.mark.django_db(transaction=True)

REMOTE = "4930123456"


def stamp(log: list[CallEvent], uuid: str, extension: str, state: str) -> datetime:
    [event] = [e for e in log if (e.uuid, e.extension, e.state) == (uuid, extension, state)]
    assert event.updated is not None
    return event.updated


def seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


def viewer(company: Company) -> User:
    user = make_user("viewer")
    Membership.objects.create(user=user, tenant=company.tenant, sees_all_extensions=True)
    return user


async def test_simulated_calls_in_history_and_csv(
    pbx: Pbx, pbx_company: Company, tracebacks: list[object]
) -> None:
    answered_ext, missed_ext, rejected_ext = [e.number for e in pbx_company.extensions[:3]]
    async with running(pbx_company), call_log(pbx) as log:
        answered = (await control(pbx.control.ring, pbx.account, REMOTE, answered_ext))["uuid"]
        missed = (await control(pbx.control.ring, pbx.account, REMOTE, missed_ext))["uuid"]
        rejected = (await control(pbx.control.ring, pbx.account, REMOTE, rejected_ext))["uuid"]

        def all_ringing() -> bool:
            """the three phones ring"""
            states = Extension.objects.filter(
                tenant=pbx_company.tenant, number__in=[answered_ext, missed_ext, rejected_ext]
            ).values_list("call_state", flat=True)
            return set(states) == {CallState.RINGING}

        await eventually(all_ringing)
        await control(pbx.control.answer, pbx.account, answered)
        await control(pbx.control.hangup, pbx.account, missed)  # the caller gives up
        await control(pbx.control.reject, pbx.account, rejected)
        await control(pbx.control.hangup, pbx.account, answered)
        await eventually(lambda: CallRecord.objects.filter(tenant=pbx_company.tenant).count() == 3)
        await converged(pbx, pbx_company)

    user = await sync_to_async(viewer)(pbx_company)
    client = Client()
    await sync_to_async(client.force_login)(user)
    html = (
        await sync_to_async(client.get)(reverse("history", args=[pbx_company.tenant.account]))
    ).content.decode()

    def outcome_in_row(uuid: str) -> str:
        row = html[html.index(f'data-uuid="{uuid}"') :].split("</tr>")[0]
        return row.split('class="outcome">')[1].split("<")[0]

    # The rejected leg's hangup carries `error: reject` on the call stream.
    assert [outcome_in_row(u) for u in (answered, missed, rejected)] == [
        "Answered",
        "Missed",
        "Rejected",
    ]

    async_client = AsyncClient()
    await async_client.aforce_login(user)
    rows = await csv_of(
        await async_client.get(reverse("history_csv", args=[pbx_company.tenant.account]))
    )
    by_uuid = {row[-1]: row for row in rows[1:]}
    ring = stamp(log, answered, answered_ext, "ring")
    answer = stamp(log, answered, answered_ext, "answer")
    hangup = stamp(log, answered, answered_ext, "hangup")
    row = by_uuid[answered]
    assert row[1:7] == ["inbound", answered_ext, row[3], REMOTE, "", "answered"]
    assert float(row[7]) == pytest.approx(seconds(answer, ring), abs=1e-3)
    assert float(row[8]) == pytest.approx(seconds(hangup, answer), abs=1e-3)
    for uuid, number, outcome in (
        (missed, missed_ext, "missed"),
        (rejected, rejected_ext, "rejected"),
    ):
        row = by_uuid[uuid]
        expected = seconds(stamp(log, uuid, number, "hangup"), stamp(log, uuid, number, "ring"))
        assert row[6] == outcome and row[8] == ""
        assert float(row[7]) == pytest.approx(expected, abs=1e-3)
