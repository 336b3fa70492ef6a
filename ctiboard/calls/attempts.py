"""Every click-to-call attempt reaches a final state, whoever follows it.

The web process that placed a call follows its progress stream (``originate``); when that
process is gone before the end (a deploy closed it), the ingest worker concludes the attempt
from the call stream, where the caller's leg carries the attempt's uuid, and gives up on an
attempt nobody can conclude. The worker leaves the follower ``FOLLOWER_GRACE`` after the leg
ended to say it first (it knows more: a cancel, the callee's busy), and a final state is
never overwritten.
"""

from collections.abc import Collection, Iterable, Mapping
from datetime import timedelta

from django.utils import timezone
from django.utils.translation import gettext as _

from ctiboard.contacts.models import lookup as lookup_contacts
from ctiboard.live import publish
from ctiboard.tenancy.models import Extension

from .models import CallAttempt, CallRecord, CallStatus, Outcome
from .tracking import ENDED, Happened

FINAL = (CallStatus.ENDED, CallStatus.FAILED)
FOLLOWER_GRACE = 10.0
# The longest a click-to-dial request goes without a step: the caller's phone rings up to
# 120 s (the spec's largest timeout), then the callee's up to 60 s (the PBX's limit).
STALE_AFTER = timedelta(seconds=240)
# The caller's leg ended without the callee's answer: busy, offline, not answered, cancelled.
_ERRORS = {
    Outcome.ANSWERED: "",
    Outcome.BUSY: "busy",
    Outcome.REJECTED: "reject",
    Outcome.CANCELLED: "cancel",
}


def record(attempt_id: int, **fields: str) -> CallAttempt:
    """Apply ``fields`` unless the attempt is final already; the board hears of a change."""
    updated = (
        CallAttempt.objects.filter(pk=attempt_id)
        .exclude(status__in=FINAL)
        .update(**fields, updated=timezone.now())
    )
    attempt = CallAttempt.objects.select_related("tenant", "user").get(pk=attempt_id)
    if updated and attempt.user_id is not None:
        publish.call_progress(
            attempt.user_id, attempt.tenant_id, attempt.to_payload(), callee_name(attempt)
        )
    return attempt


def callee_name(attempt: CallAttempt) -> str:
    """The callee's name: a colleague's, as his tile names him to the user (who sees it: he
    called it), or the phonebook's for a number, shown only to viewers with call details."""
    if attempt.callee_context != "global":
        if attempt.user is None:
            return ""
        name = (
            Extension.objects.visible_to(attempt.user)
            .filter(tenant_id=attempt.tenant_id, number=attempt.callee)
            .values_list("name", flat=True)
            .first()
        )
        return name or ""
    contact = lookup_contacts(attempt.tenant, [attempt.callee]).get(attempt.callee)
    return contact.name if contact else ""


def ended_legs(happened: Iterable[Happened]) -> dict[str, str]:
    """Outbound legs that ended (a click-to-call's caller leg among them), by uuid: the error
    an attempt with that uuid ends with, if it is still open ``FOLLOWER_GRACE`` later."""
    return {
        fact.leg.uuid: _ERRORS.get(Outcome(fact.leg.outcome), "not-connected")
        for fact in happened
        if fact.event == ENDED
        and isinstance(fact.leg, CallRecord)
        and fact.leg.direction == "outbound"
    }


def conclude(tenant_id: int, ended: Mapping[str, str]) -> None:
    """The open attempts among these legs' (their followers are gone) end as the legs did."""
    if not ended:
        return
    open_attempts = CallAttempt.objects.filter(tenant_id=tenant_id, uuid__in=ended).exclude(
        status__in=FINAL
    )
    for attempt_id, call_uuid in open_attempts.values_list("pk", "uuid"):
        record(attempt_id, status=CallStatus.ENDED, error=ended[call_uuid])


def give_up_stale(tenant_id: int, live_uuids: Collection[str]) -> None:
    """Attempts without a step for ``STALE_AFTER`` and without a live leg: nobody follows
    them (their web process is gone and the call stream never reported their end)."""
    stale = (
        CallAttempt.objects.filter(tenant_id=tenant_id, updated__lt=timezone.now() - STALE_AFTER)
        .exclude(status__in=FINAL)
        .exclude(uuid__in=live_uuids)
    )
    for attempt_id in stale.values_list("pk", flat=True):
        record(
            attempt_id,
            status=CallStatus.FAILED,
            error=_("No news of this call request: the board lost track of it."),
        )
