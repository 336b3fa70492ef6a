"""Click-to-call: place a call through the CTI API and follow its progress to the end."""

import asyncio
import contextvars
import logging
from collections.abc import AsyncGenerator

from asgiref.sync import sync_to_async
from django.utils.translation import gettext as _

from ctiboard.calls.attempts import record
from ctiboard.calls.models import CallAttempt, CallStatus
from ctiboard.cti.client import CTIClient, CTIError
from ctiboard.cti.events import CallEvent
from ctiboard.tenancy.models import Tenant

logger = logging.getLogger(__name__)

# How long the board waits for the PBX to accept a call request before giving up.
START_TIMEOUT = 15.0
# Progress streams end with the call set-up; this bounds one that never sends `end`.
FOLLOW_TIMEOUT = 300.0

_followers: set[asyncio.Task[None]] = set()


async def place(attempt: CallAttempt, tenant: Tenant) -> CallAttempt:
    """Request the call; returns once the PBX accepted it (uuid known) or refused it."""
    client = CTIClient(
        tenant.api_base_url, tenant.api_username, tenant.api_password, tenant.account
    )
    progress = client.originate_stream(
        attempt.caller,
        attempt.callee,
        caller_context=tenant.account,
        callee_context=attempt.callee_context,
        extension=attempt.caller,
    )
    try:
        first = await asyncio.wait_for(anext(progress), START_TIMEOUT)
    except (CTIError, TimeoutError, StopAsyncIteration) as exc:
        await progress.aclose()
        await client.aclose()
        return await _failed(attempt, exc)
    attempt = await sync_to_async(record)(attempt.pk, uuid=first.uuid, **_progress(first))
    if not attempt.finished:
        # A fresh context: the request's thread-sensitive executor ends with the request,
        # while the follower outlives it.
        task = asyncio.create_task(
            _follow(attempt.pk, client, progress), context=contextvars.Context()
        )
        _followers.add(task)
        task.add_done_callback(_followers.discard)
    else:
        await progress.aclose()
        await client.aclose()
    return attempt


async def _failed(attempt: CallAttempt, exc: BaseException) -> CallAttempt:
    if isinstance(exc, CTIError):
        message, request_id = str(exc), exc.request_id
    elif isinstance(exc, TimeoutError):
        message, request_id = _("The PBX did not answer the call request in time."), ""
    else:
        message, request_id = _("The PBX ended the call request without an answer."), ""
    logger.warning("call %s -> %s failed to start: %s", attempt.caller, attempt.callee, message)
    return await sync_to_async(record)(
        attempt.pk, status=CallStatus.FAILED, error=message, request_id=request_id
    )


async def _follow(
    attempt_id: int, client: CTIClient, progress: AsyncGenerator[CallEvent, None]
) -> None:
    try:
        async with asyncio.timeout(FOLLOW_TIMEOUT):
            async for event in progress:
                await sync_to_async(record)(attempt_id, **_progress(event))
                if event.state == "end":
                    return
        await sync_to_async(record)(
            attempt_id,
            status=CallStatus.FAILED,
            error=_("The PBX stopped reporting on this call."),
        )
    except (CTIError, TimeoutError) as exc:
        await sync_to_async(record)(attempt_id, status=CallStatus.FAILED, error=str(exc))
    finally:
        await progress.aclose()
        await client.aclose()


def _progress(event: CallEvent) -> dict[str, str]:
    fields = {"error": event.error or ""}
    if event.state in CallStatus.values:
        fields["status"] = str(event.state)
        if event.state != CallStatus.ENDED:
            # Kept when the call ends: whose phone an error is about.
            fields["reached"] = str(event.state)
    else:
        # A state outside the spec (e.g. "bridge"): keep the last known one, never guess.
        logger.info("call %s: undocumented state %r", event.uuid, event.state)
    return fields


async def cancel(attempt: CallAttempt, tenant: Tenant) -> None:
    async with CTIClient(
        tenant.api_base_url, tenant.api_username, tenant.api_password, tenant.account
    ) as client:
        await client.cancel(attempt.uuid)
