"""Calls as the CTI call stream reports them: the ones going on, and the finished ones.

The stream reports each *leg*: one extension's part of a call, keyed by the call uuid and the
extension (a hunt group rings several extensions under one uuid). The ingest worker is the only
writer (see ``tracking``); what a tile shows of the current call is copied onto the
``Extension`` so sockets render it without a query.
"""

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _

from ctiboard.tenancy.models import Extension, Tenant


class CallState(models.TextChoices):
    RINGING = "ringing", _("Ringing")  # not connected yet: the phone rings, or it dials out
    IN_CALL = "in-call", _("In a call")
    # Only undocumented states (e.g. "bridge") were seen: there is a call, its state is unknown.
    UNKNOWN = "unknown", _("Unknown")


class Outcome(models.TextChoices):
    ANSWERED = "answered", _("Answered")
    ANSWERED_ELSEWHERE = "answered-elsewhere", _("Answered elsewhere")
    MISSED = "missed", _("Missed")
    NOT_ANSWERED = "not-answered", _("Not answered")
    BUSY = "busy", _("Busy")
    REJECTED = "rejected", _("Rejected")
    CANCELLED = "cancelled", _("Cancelled")
    UNKNOWN = "unknown", _("Unknown")


class EndedBy(models.TextChoices):
    HANGUP = "hangup", _("Hangup event")
    # No hangup arrived (a stream gap): the extension's line went idle (or offline) after the
    # last event, as the state stream reported it on its current connection.
    LINE_IDLE = "line-idle", _("Line became idle")


class ActiveCall(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="active_calls")
    extension = models.ForeignKey(Extension, on_delete=models.CASCADE, related_name="active_calls")
    uuid = models.CharField(max_length=64)
    # As the PBX sent it (inbound/outbound, or an undocumented value); the partner is the
    # other party's number from the extension's point of view.
    direction = models.CharField(max_length=16, blank=True)
    partner = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=16, choices=CallState.choices)
    raw_state = models.CharField(max_length=40, blank=True)  # the last state received
    unknown_states = models.CharField(max_length=200, blank=True)  # undocumented, in order
    error = models.CharField(max_length=40, blank=True)
    # First ringing/dialling event; null if the stream joined after it (no history).
    started_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    last_event_at = models.DateTimeField()

    class Meta:
        ordering = ["tenant", "extension", "-last_event_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "uuid", "extension"], name="unique_active_call_leg"
            )
        ]
        verbose_name = _("active call")
        verbose_name_plural = _("active calls")

    def __str__(self) -> str:
        return f"{self.uuid} @ {self.extension_id} ({self.state})"

    @property
    def since(self) -> datetime:
        """What a tile's timer counts from: the answer, else the first ring, else any event."""
        return self.answered_at or self.started_at or self.last_event_at


class CallRecord(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="call_records")
    extension = models.ForeignKey(Extension, on_delete=models.CASCADE, related_name="call_records")
    uuid = models.CharField(max_length=64)
    direction = models.CharField(max_length=16, blank=True)
    partner = models.CharField(max_length=64, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    error = models.CharField(max_length=40, blank=True)  # the PBX's error value, raw
    unknown_states = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField()
    ended_by = models.CharField(max_length=16, choices=EndedBy.choices)
    # Null where the stream did not show the start (ringing) or the answer (talk).
    ring_seconds = models.FloatField(null=True, blank=True)
    talk_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-ended_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "uuid", "extension"], name="unique_call_record_leg"
            )
        ]
        indexes = [
            models.Index(fields=["tenant", "-ended_at"], name="call_record_recent"),
            # The history lists and filters by start (history.queries.STARTED).
            models.Index(
                F("tenant"), Coalesce("started_at", "ended_at").desc(), name="call_record_started"
            ),
        ]
        verbose_name = _("call record")
        verbose_name_plural = _("call records")

    def __str__(self) -> str:
        return f"{self.uuid} @ {self.extension_id}: {self.outcome}"


# --- click-to-call -----------------------------------------------------------------------


class CallStatus(models.TextChoices):
    REQUESTED = "requested", _("Requested")
    STARTED = "start", _("Started")
    CALLER_DIAL = "caller-dial", _("Dialling your phone")
    CALLER_RING = "caller-ring", _("Your phone is ringing")
    CALLER_ANSWER = "caller-answer", _("You answered")
    DIAL = "dial", _("Dialling")
    RING = "ring", _("Ringing")
    ANSWER = "answer", _("Connected")
    ENDED = "end", _("Ended")
    FAILED = "failed", _("Failed")


class CallAttempt(models.Model):
    """A click-to-call request made from the board, and what became of it."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="call_attempts")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    caller = models.CharField(max_length=64)
    callee = models.CharField(max_length=64)
    callee_context = models.CharField(max_length=32)
    uuid = models.CharField(max_length=64, blank=True, db_index=True)
    status = models.CharField(
        max_length=20, choices=CallStatus.choices, default=CallStatus.REQUESTED
    )
    error = models.CharField(max_length=200, blank=True)
    # The last step before the end: whose phone an error is about (``side``).
    reached = models.CharField(max_length=20, choices=CallStatus.choices, blank=True)
    request_id = models.CharField(max_length=100, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        # The model moved here from the tenancy app (label pbx); its table kept its name.
        db_table = "pbx_callattempt"
        ordering = ["-created"]
        verbose_name = _("call attempt")
        verbose_name_plural = _("call attempts")

    def __str__(self) -> str:
        return f"{self.caller} → {self.callee} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (CallStatus.ENDED, CallStatus.FAILED)

    @property
    def cancellable(self) -> bool:
        return bool(self.uuid) and not self.finished

    def to_payload(self) -> dict[str, Any]:
        """What the board's call-progress banner shows, sent with every change."""
        return {
            "id": self.pk,
            "caller": self.caller,
            "callee": self.callee,
            "callee_context": self.callee_context,
            "uuid": self.uuid,
            "status": self.status,
            "error": self.error,
            "reached": self.reached,
            "updated": self.updated.isoformat() if self.updated else None,
        }

    @classmethod
    def from_payload(cls, tenant_id: int, user_id: int, payload: dict[str, Any]) -> "CallAttempt":
        attempt = cls(
            pk=payload["id"],
            tenant_id=tenant_id,
            user_id=user_id,
            caller=payload["caller"],
            callee=payload["callee"],
            callee_context=payload["callee_context"],
            uuid=payload["uuid"],
            status=payload["status"],
            error=payload["error"],
            # A web process of the previous release sends neither.
            reached=payload.get("reached", ""),
        )
        updated = parse_datetime(payload.get("updated") or "")
        if updated is not None:
            attempt.updated = updated
        return attempt

    @property
    def side(self) -> str:
        """Whose phone the call set-up was at when it ended: "caller" (the user's own, rung
        first), "callee", or "" when unknown (it never started, or nobody followed it)."""
        if self.reached in CALLER_STEPS:
            return "caller"
        if self.reached in CALLEE_STEPS:
            return "callee"
        return ""

    def describe(self, callee: str) -> str:
        """What the board says of the call to ``callee`` (as the board names it): the step it
        is at, or how it ended, worded for the phone it is about."""
        if self.status == CallStatus.FAILED:
            return str(_("The call could not be made: %(error)s") % {"error": self.error})
        if self.status != CallStatus.ENDED:
            return str(STEP_TEXTS.get(self.status, STEP_TEXTS[CallStatus.REQUESTED])) % {
                "callee": callee
            }
        texts = OUTCOME_TEXTS.get(self.error)
        if texts is None:
            return str(_("The call failed (%(error)s).") % {"error": self.error})
        text = texts.get(self.side) or texts[""]
        return str(text) % {"callee": callee}

    @property
    def progress_label(self) -> str:
        if self.status == CallStatus.ENDED:
            if not self.error:
                return str(_("Connected"))
            return str(
                CALL_ERROR_LABELS.get(self.error, _("Failed (%(error)s)") % {"error": self.error})
            )
        if self.status == CallStatus.FAILED:
            return str(_("Failed: %(error)s") % {"error": self.error})
        return str(self.get_status_display())


CALL_ERROR_LABELS = {
    "timeout": _("Not answered in time"),
    "busy": _("Busy"),
    "cancel": _("Cancelled"),
    "reject": _("Rejected"),
    "unspecified": _("Failed for an unspecified reason"),
    # Concluded from the call stream: the caller's leg ended without the callee's answer.
    "not-connected": _("Not connected"),
}


# The steps of a click-to-call (NFON's originate events): the user's own phone is dialled
# and must answer first, then the callee's. An error at the first steps is about the caller.
CALLER_STEPS = frozenset(
    {CallStatus.REQUESTED, CallStatus.STARTED, CallStatus.CALLER_DIAL, CallStatus.CALLER_RING}
)
CALLEE_STEPS = frozenset(
    {CallStatus.CALLER_ANSWER, CallStatus.DIAL, CallStatus.RING, CallStatus.ANSWER}
)
STEP_TEXTS: dict[str, Any] = {
    CallStatus.REQUESTED: _("Asking the PBX to call %(callee)s…"),
    CallStatus.STARTED: _("The PBX is setting up the call to %(callee)s…"),
    CallStatus.CALLER_DIAL: _("Calling your phone first…"),
    CallStatus.CALLER_RING: _("Your phone is ringing: pick it up to call %(callee)s."),
    CallStatus.CALLER_ANSWER: _("You answered; now calling %(callee)s…"),
    CallStatus.DIAL: _("Dialling %(callee)s…"),
    CallStatus.RING: _("%(callee)s is ringing…"),
    CallStatus.ANSWER: _("Connected with %(callee)s."),
}
# The end's error (NFON's enum, and ours) by side: "" words it for when the side is unknown.
OUTCOME_TEXTS: dict[str, dict[str, Any]] = {
    "": {"": _("Connected with %(callee)s.")},
    "busy": {
        "caller": _("Your phone is busy: the call to %(callee)s was not made."),
        "callee": _("%(callee)s is busy."),
        "": _("Busy: the call to %(callee)s was not made."),
    },
    "timeout": {
        "caller": _("You did not answer your phone in time: the call to %(callee)s was not made."),
        "callee": _("%(callee)s did not answer."),
        "": _("Not answered in time."),
    },
    "reject": {
        "caller": _("Your phone rejected the call: the call to %(callee)s was not made."),
        "callee": _("%(callee)s rejected the call."),
        "": _("The call to %(callee)s was rejected."),
    },
    "unspecified": {
        "caller": _("Your phone could not be reached: the call to %(callee)s was not made."),
        "callee": _("%(callee)s could not be reached."),
        "": _("The call to %(callee)s failed for an unspecified reason."),
    },
    "cancel": {"": _("The call to %(callee)s was cancelled.")},
    # Concluded from the call stream: the caller's leg ended without the callee's answer.
    "not-connected": {"": _("The call to %(callee)s was not connected.")},
}
