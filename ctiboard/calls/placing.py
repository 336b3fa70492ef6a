"""Starting a click-to-call for a member, whichever way he asks (the board, the gateway): the
one gate of every call path, the per-user rate limit and the call log (``CallAttempt``)."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from ctiboard.tenancy.models import CallRefusal, Extension, Membership

from . import originate
from .models import CallAttempt


class CallRefused(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message, self.status = message, status

    @classmethod
    def by(cls, refusal: CallRefusal) -> "CallRefused":
        return cls(refusal.reason, 403 if refusal.forbidden else 400)


def gate(membership: Membership, target: Extension | str | None = None) -> None:
    """Membership.call_refusal, the one gate of every call path, as an exception."""
    refusal = membership.call_refusal(target)
    if refusal is not None:
        raise CallRefused.by(refusal)


async def _over_call_limit(user: Any, attempt: CallAttempt) -> bool:
    """Per-user limit across all web processes, counted from the call log itself.

    The attempt is written first and counted with the ones before it, so parallel requests
    cannot all slip through one free place.
    """
    since = timezone.now() - timedelta(seconds=settings.CTIBOARD_CALL_RATE_WINDOW)
    earlier = await CallAttempt.objects.filter(
        user=user, created__gte=since, pk__lte=attempt.pk
    ).acount()
    return earlier > settings.CTIBOARD_CALL_RATE_LIMIT


async def place(user: Any, membership: Membership, callee: str, context: str) -> CallAttempt:
    """Call ``callee`` from the user's own extension, once ``gate`` let the target through."""
    own = membership.own_extension
    assert own is not None
    attempt = await CallAttempt.objects.acreate(
        tenant=membership.tenant,
        user=user,
        caller=own.number,
        callee=callee,
        callee_context=context,
    )
    if await _over_call_limit(user, attempt):
        await attempt.adelete()
        raise CallRefused(_("Too many calls in a short time. Please wait a minute."), 429)
    return await originate.place(attempt, membership.tenant)
