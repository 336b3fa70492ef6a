"""Every click-to-call attempt reaches a final state, also when the web process that placed it
is gone before the end (a deploy closed it): the ingest worker concludes it from the call
stream, or gives up on it, and the user's board hears of it."""

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from ctiboard.calls import attempts, originate
from ctiboard.calls.models import CallAttempt, CallStatus
from ctiboard.live.groups import user_group
from ctiboard.tenancy.models import Tenant
from tests.conftest import Company, Pbx, make_user
from tests.ingest.support import control, eventually, running

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    # The follower's head start, short: the test's follower is gone anyway.
    monkeypatch.setattr(attempts, "FOLLOWER_GRACE", 0.3)


async def _placed_then_orphaned(company: Company, callee: str) -> CallAttempt:
    """A call placed as the board places it, whose following web process then goes away."""
    user = await sync_to_async(make_user)("caller")
    tenant = await Tenant.objects.aget(pk=company.tenant.pk)
    attempt = await CallAttempt.objects.acreate(
        tenant=tenant,
        user=user,
        caller=company.extensions[0].number,
        callee=callee,
        callee_context=tenant.account,
    )
    attempt = await originate.place(attempt, tenant)
    assert attempt.uuid and not attempt.finished
    # What a deploy does to the web process: its tasks are cancelled mid-call.
    for follower in list(originate._followers):
        follower.cancel()
    await asyncio.gather(*originate._followers, return_exceptions=True)
    return attempt


async def _final(attempt: CallAttempt) -> CallAttempt:
    def final() -> bool:
        """the attempt is final"""
        return CallAttempt.objects.get(pk=attempt.pk).finished

    await eventually(final)
    return await CallAttempt.objects.aget(pk=attempt.pk)


async def test_an_answered_call_whose_web_process_died_ends_connected(
    pbx: Pbx, pbx_company: Company
) -> None:
    callee = pbx_company.extensions[3].number
    await control(pbx.control.set_behaviour, pbx.account, callee, "answer", hangup_after=20)
    layer = get_channel_layer()
    async with running(pbx_company, call_grace=0.5):
        attempt = await _placed_then_orphaned(pbx_company, callee)
        assert attempt.user_id is not None
        channel = await layer.new_channel()
        await layer.group_add(user_group(attempt.user_id), channel)

        ended = await _final(attempt)
        message: dict[str, Any] = await asyncio.wait_for(layer.receive(channel), 5)

    assert (ended.status, ended.error, ended.progress_label) == (CallStatus.ENDED, "", "Connected")
    assert message["type"] == "call.progress"
    assert (message["attempt"]["id"], message["attempt"]["status"]) == (attempt.pk, "end")


async def test_a_busy_callee_whose_caller_web_process_died_ends_not_connected(
    pbx: Pbx, pbx_company: Company
) -> None:
    callee = pbx_company.extensions[2].number
    await control(pbx.control.set_behaviour, pbx.account, callee, "busy")
    async with running(pbx_company, call_grace=0.5):
        attempt = await _placed_then_orphaned(pbx_company, callee)
        ended = await _final(attempt)

    assert ended.status == CallStatus.ENDED
    assert ended.progress_label != "Connected" and ended.error


def _attempt(company: Company, **fields: Any) -> CallAttempt:
    attempt = CallAttempt.objects.create(
        tenant=company.tenant, caller="100", callee="101", callee_context="K1", **fields
    )
    CallAttempt.objects.filter(pk=attempt.pk).update(
        updated=attempt.updated - attempts.STALE_AFTER - timedelta(seconds=1)
    )
    return attempt


def test_attempts_nobody_can_conclude_are_given_up(company: Company) -> None:
    lost = _attempt(company)  # the PBX never answered the request
    silent = _attempt(company, uuid="u-silent", status=CallStatus.CALLER_RING)
    live = _attempt(company, uuid="u-live", status=CallStatus.ANSWER)  # its leg goes on
    done = _attempt(company, uuid="u-done", status=CallStatus.ENDED)
    fresh = CallAttempt.objects.create(
        tenant=company.tenant, caller="100", callee="102", callee_context="K1"
    )

    attempts.give_up_stale(company.tenant.pk, live_uuids={"u-live"})

    statuses = dict(CallAttempt.objects.values_list("pk", "status"))
    assert statuses == {
        lost.pk: CallStatus.FAILED,
        silent.pk: CallStatus.FAILED,
        live.pk: CallStatus.ANSWER,
        done.pk: CallStatus.ENDED,
        fresh.pk: CallStatus.REQUESTED,
    }
    assert "lost track" in CallAttempt.objects.get(pk=lost.pk).error


def test_a_final_state_is_never_overwritten(company: Company) -> None:
    attempt = _attempt(company, uuid="u1", status=CallStatus.ENDED, error="busy")

    again = attempts.record(attempt.pk, status=CallStatus.FAILED, error="late news")

    assert (again.status, again.error) == (CallStatus.ENDED, "busy")
