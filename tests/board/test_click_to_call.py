"""Click-to-call through the board's views against the running simulator."""

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import AsyncClient
from django.urls import reverse

from ctiboard.calls.models import CallAttempt, CallStatus
from ctiboard.tenancy.models import Membership
from tests.board.support import open_socket, receive_sync
from tests.conftest import Company, Pbx, make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def caller(pbx_company: Company) -> User:
    """Sees the first five extensions and calls from the first."""
    user = make_user("caller")
    membership = Membership.objects.create(
        user=user, tenant=pbx_company.tenant, own_extension=pbx_company.extensions[0]
    )
    membership.extensions.set(pbx_company.extensions[:5])
    return user


async def post_call(user: User, company: Company, extension_id: int | str) -> tuple[int, str]:
    client = AsyncClient()
    await client.aforce_login(user)
    response = await client.post(
        reverse("call", args=[company.tenant.account]),
        {"extension": extension_id},
        headers={"HX-Request": "true"},
    )
    return response.status_code, response.content.decode()


async def final_attempt(timeout: float = 10.0) -> CallAttempt:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        attempt = await CallAttempt.objects.order_by("-pk").afirst()
        if attempt is not None and attempt.finished:
            return attempt
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"call did not finish: {attempt and attempt.status}")
        await asyncio.sleep(0.05)


async def test_call_rings_own_extension_then_target_and_connects(
    caller: User, pbx: Pbx, pbx_company: Company
) -> None:
    own, target = pbx_company.extensions[0], pbx_company.extensions[3]
    status, html = await post_call(caller, pbx_company, target.pk)
    assert status == 200
    assert f"Call to {target.number} {target.name}" in html
    attempt = await final_attempt()
    assert (attempt.caller, attempt.callee, attempt.callee_context) == (
        own.number,
        target.number,
        pbx.account,
    )
    assert attempt.uuid and attempt.status == CallStatus.ENDED and attempt.error == ""
    assert attempt.progress_label == "Connected"
    assert attempt.describe("103") == "Connected with 103."


async def test_busy_target_ends_with_the_reason_in_words(
    caller: User, pbx: Pbx, pbx_company: Company
) -> None:
    target = pbx_company.extensions[2]
    await asyncio.to_thread(pbx.control.set_behaviour, pbx.account, target.number, "busy")
    status, _ = await post_call(caller, pbx_company, target.pk)
    assert status == 200
    attempt = await final_attempt()
    assert attempt.error == "busy" and attempt.progress_label == "Busy"
    assert attempt.side == "callee"
    page = await board_page(caller, pbx_company)
    assert f"{target.number} {target.name} is busy." in page
    assert "Your phone is busy" not in page


async def board_page(user: User, company: Company) -> str:
    client = AsyncClient()
    await client.aforce_login(user)
    response = await client.get(reverse("board", args=[company.tenant.account]))
    assert response.status_code == 200
    return response.content.decode()


async def test_the_callers_own_busy_phone_is_not_blamed_on_the_callee(
    caller: User, pbx: Pbx, pbx_company: Company
) -> None:
    """The PBX reports a busy caller as caller-dial, then end with error busy (the
    simulator, like NFON): the board says so, live and on the page, not "105 is busy"."""
    own, target = pbx_company.extensions[0], pbx_company.extensions[3]
    await asyncio.to_thread(pbx.control.set_behaviour, pbx.account, own.number, "busy")
    socket = await open_socket(caller, pbx_company)
    await receive_sync(socket)
    status, _ = await post_call(caller, pbx_company, target.pk)
    assert status == 200
    attempt = await final_attempt()
    assert (attempt.error, attempt.reached, attempt.side) == ("busy", "caller-dial", "caller")
    expected = f"Your phone is busy: the call to {target.number} {target.name} was not made."
    while True:  # the steps as the socket pushes them, up to the end
        pushed = await socket.receive_from(timeout=5)
        if 'id="call-status"' in pushed and "status-end" in pushed:
            break
    assert expected in pushed and f"{target.name} is busy" not in pushed
    assert "data-expires=" in pushed and "toast-close" in pushed
    assert expected in await board_page(caller, pbx_company)
    await socket.disconnect()


async def test_a_finished_result_is_not_shown_again_a_minute_later(
    caller: User, pbx: Pbx, pbx_company: Company
) -> None:
    target = pbx_company.extensions[3]
    await post_call(caller, pbx_company, target.pk)
    attempt = await final_attempt()
    assert f"Call to {target.number} {target.name}" in await board_page(caller, pbx_company)
    # update() leaves auto_now alone: the call ended a minute and a bit ago.
    await CallAttempt.objects.filter(pk=attempt.pk).aupdate(
        updated=attempt.updated - timedelta(seconds=61)
    )
    page = await board_page(caller, pbx_company)
    assert f"Call to {target.number}" not in page and 'id="call-status"' in page


async def test_call_can_be_cancelled_while_ringing(
    caller: User, pbx: Pbx, pbx_company: Company
) -> None:
    own = pbx_company.extensions[0]
    await asyncio.to_thread(pbx.control.set_behaviour, pbx.account, own.number, "never")
    status, html = await post_call(caller, pbx_company, pbx_company.extensions[1].pk)
    assert status == 200 and "Cancel call" in html
    attempt = await CallAttempt.objects.aget()
    client = AsyncClient()
    await client.aforce_login(caller)
    response = await client.post(
        reverse("cancel_call", args=[pbx_company.tenant.account, attempt.pk]),
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    attempt = await final_attempt()
    assert attempt.error == "cancel" and attempt.progress_label == "Cancelled"


async def test_invisible_extension_cannot_be_called(
    caller: User, pbx: Pbx, pbx_company: Company
) -> None:
    status, _ = await post_call(caller, pbx_company, pbx_company.extensions[6].pk)
    assert status == 404
    assert not await CallAttempt.objects.aexists()
    assert pbx.control.calls(pbx.account) == []


async def test_user_without_own_extension_gets_a_reason_and_no_call(
    caller: User, pbx: Pbx, pbx_company: Company
) -> None:
    await Membership.objects.filter(user=caller).aupdate(own_extension=None)
    status, html = await post_call(caller, pbx_company, pbx_company.extensions[1].pk)
    assert status == 403 and "No own extension" not in html
    assert "no own extension" in html
    assert pbx.control.calls(pbx.account) == []


async def test_stranger_cannot_call_into_another_tenant(
    stranger: User, pbx: Pbx, pbx_company: Company
) -> None:
    status, html = await post_call(stranger, pbx_company, pbx_company.extensions[1].pk)
    assert status == 404 and "Person" not in html
    assert pbx.control.calls(pbx.account) == []


async def test_garbage_extension_gets_a_clear_error(caller: User, pbx_company: Company) -> None:
    status, html = await post_call(caller, pbx_company, "'; drop table")
    assert status == 400 and "Choose an extension" in html


async def test_another_users_call_cannot_be_cancelled(
    caller: User, pbx: Pbx, pbx_company: Company
) -> None:
    own = pbx_company.extensions[0]
    await asyncio.to_thread(pbx.control.set_behaviour, pbx.account, own.number, "never")
    await post_call(caller, pbx_company, pbx_company.extensions[1].pk)
    attempt = await CallAttempt.objects.aget()
    intruder = await sync_to_async(make_user)("intruder")
    await Membership.objects.acreate(
        user=intruder, tenant=pbx_company.tenant, sees_all_extensions=True
    )
    client = AsyncClient()
    await client.aforce_login(intruder)
    response = await client.post(
        reverse("cancel_call", args=[pbx_company.tenant.account, attempt.pk])
    )
    assert response.status_code == 404
    assert len(pbx.control.calls(pbx.account)) == 1
