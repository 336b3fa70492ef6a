"""Tenants (K-Accounts), their extensions with live state, and who may see what."""

import copy
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator, URLValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ctiboard.cti.events import LINE_STATES, PRESENCES
from ctiboard.lib.secrets import EncryptedTextField

from . import states

NFON_API_URL = "https://providersupportdata.cloud-cfg.com/v1"


def validate_crm_url_template(value: str) -> None:
    if not value:
        return
    if "{number}" not in value and "{e164}" not in value:
        raise ValidationError(_("The link needs {number} or {e164} where the number goes."))
    URLValidator(schemes=["https", "http"])(value.replace("{number}", "1").replace("{e164}", "1"))


class ConnectionStatus(models.TextChoices):
    NEVER = "never", _("Not connected yet")
    CONNECTED = "connected", _("Connected")
    RECONNECTING = "reconnecting", _("Reconnecting")
    MISCONFIGURED = "misconfigured", _("Misconfigured")
    DISABLED = "disabled", _("Disabled")
    # Set by the surviving workers (or /readyz) when no live worker streams the tenant.
    UNSERVED = "unserved", _("No live ingest worker")


class Tenant(models.Model):
    name = models.CharField(_("name"), max_length=200)
    account = models.CharField(
        _("K-Account"),
        max_length=32,
        unique=True,
        validators=[RegexValidator(r"^K[A-Z0-9]+$", _("A K-Account looks like K1234."))],
        help_text=_("NFON customer account, e.g. K1234."),
    )
    api_base_url = models.URLField(_("CTI API base URL"), default=NFON_API_URL)
    api_username = models.CharField(_("API username"), max_length=200)
    api_password = EncryptedTextField(_("API password"))
    enabled = models.BooleanField(
        _("enabled"), default=True, help_text=_("Only enabled tenants are streamed.")
    )
    country_code = models.CharField(
        _("country code"),
        max_length=3,
        default="49",
        validators=[RegexValidator(r"^[1-9][0-9]{0,2}$", _("Digits only, e.g. 49 or 43."))],
        help_text=_("Dialled numbers starting with a single 0 are numbers of this country."),
    )
    crm_url_template = models.CharField(
        _("CRM link"),
        max_length=500,
        blank=True,
        validators=[validate_crm_url_template],
        help_text=_(
            "Offers “open in CRM” for call partners, e.g. "
            "https://crm.example/search?phone={number}. {number} is replaced by the number "
            "without + (4989123456 or an extension), {e164} by +4989123456."
        ),
    )
    history_days = models.PositiveIntegerField(
        _("keep call history (days)"),
        default=90,
        validators=[MinValueValidator(1)],
        help_text=_("Older call records are deleted by manage.py prune_history (daily)."),
    )
    # Incremented for every stored change; sockets use it to notice a lost message.
    event_seq = models.PositiveBigIntegerField(default=0, editable=False)
    connection_status = models.CharField(
        max_length=20,
        choices=ConnectionStatus.choices,
        default=ConnectionStatus.NEVER,
        editable=False,
    )
    status_since = models.DateTimeField(null=True, blank=True, editable=False)
    status_detail = models.CharField(max_length=500, blank=True, editable=False)
    last_event_at = models.DateTimeField(null=True, blank=True, editable=False)
    credentials_changed_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = _("tenant")
        verbose_name_plural = _("tenants")

    def __str__(self) -> str:
        return f"{self.name} ({self.account})"

    @property
    def group_name(self) -> str:
        return f"tenant.{self.pk}"

    # What the board's PBX status pill shows, sent with every status change.
    STATUS_FIELDS = ("connection_status", "status_since", "status_detail", "last_event_at")

    def status_payload(self) -> dict[str, Any]:
        return {
            "connection_status": self.connection_status,
            "status_detail": self.status_detail,
            "status_since": self.status_since.isoformat() if self.status_since else None,
            "last_event_at": self.last_event_at.isoformat() if self.last_event_at else None,
        }

    def with_status(self, payload: dict[str, Any]) -> "Tenant":
        """A copy of this tenant showing the status of a ``status_payload()``."""
        shown = copy.copy(self)
        shown.connection_status = payload["connection_status"]
        shown.status_detail = payload["status_detail"]
        shown.status_since = _when(payload["status_since"])
        shown.last_event_at = _when(payload["last_event_at"])
        return shown

    def crm_url(self, digits: str, *, external: bool) -> str:
        """The tenant's CRM link for a call partner's number, or "" without a template."""
        if not self.crm_url_template or not digits:
            return ""
        e164 = f"+{digits}" if external else digits
        return self.crm_url_template.replace("{number}", quote(digits, safe="")).replace(
            "{e164}", quote(e164, safe="")
        )


class ExtensionQuerySet(models.QuerySet["Extension"]):
    def visible_to(self, user: Any, *, details: bool = False) -> "ExtensionQuerySet":
        """The one rule for who may see an extension: board, sockets, calls and history alike.

        An extension is visible through a membership of its tenant that sees the whole
        tenant, chose it, or watches a group containing it. With ``details`` only memberships
        that may see call details (partner numbers, names, direction) count.
        """
        if user is None or not user.is_authenticated or not user.is_active:
            return self.none()
        memberships = Membership.objects.filter(user=user, tenant__enabled=True)
        if details:
            memberships = memberships.filter(sees_call_details=True)
        whole_tenants = memberships.filter(sees_all_extensions=True).values("tenant")
        # A chosen extension or group counts only inside the membership's own tenant.
        chosen = Membership.extensions.through.objects.filter(
            membership__in=memberships, extension__tenant=F("membership__tenant")
        ).values("extension")
        grouped = ExtensionGroup.extensions.through.objects.filter(
            extensiongroup__tenant=F("extension__tenant"),
            extensiongroup__memberships__in=memberships,
            extensiongroup__memberships__tenant=F("extension__tenant"),
        ).values("extension")
        return self.filter(active=True).filter(
            Q(tenant__in=whole_tenants) | Q(pk__in=chosen) | Q(pk__in=grouped)
        )


class Extension(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="extensions")
    number = models.CharField(_("number"), max_length=32)
    name = models.CharField(_("name"), max_length=200, blank=True)
    api_uuid = models.CharField(max_length=100, blank=True, editable=False)
    # Gone from the PBX's extension list: kept for history, hidden from the board.
    active = models.BooleanField(default=True, editable=False)
    # Raw values as the PBX sent them; unknown ones are shown as such, never guessed.
    line = models.CharField(max_length=40, default="unknown", editable=False)
    presence = models.CharField(max_length=40, blank=True, editable=False)
    line_since = models.DateTimeField(null=True, blank=True, editable=False)
    presence_since = models.DateTimeField(null=True, blank=True, editable=False)
    # The extension's current call, copied from ctiboard.calls.ActiveCall by the worker so a
    # tile renders without a query: "" (no call), "ringing", "in-call" or "unknown".
    call_state = models.CharField(max_length=16, blank=True, editable=False)
    call_partner = models.CharField(max_length=64, blank=True, editable=False)
    call_direction = models.CharField(max_length=16, blank=True, editable=False)
    call_since = models.DateTimeField(null=True, blank=True, editable=False)
    seq = models.PositiveBigIntegerField(default=0, editable=False)

    objects = ExtensionQuerySet.as_manager()

    class Meta:
        ordering = ["tenant", "number"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "number"], name="unique_extension_number")
        ]
        verbose_name = _("extension")
        verbose_name_plural = _("extensions")

    def __str__(self) -> str:
        return f"{self.number} {self.name}".strip()

    @property
    def dom_id(self) -> str:
        return f"ext-{self.pk}"

    @property
    def line_label(self) -> str:
        return states.line_label(self.line)

    @property
    def presence_label(self) -> str:
        return states.presence_label(self.presence)

    @property
    def line_css(self) -> str:
        return states.css_token(self.line, LINE_STATES)

    @property
    def presence_css(self) -> str:
        return states.css_token(self.presence or "null", PRESENCES)

    @property
    def line_is_known(self) -> bool:
        return self.line in LINE_STATES

    # The worker pushes this over the channel layer so that web processes can render the
    # tile without a database round trip per socket.
    def to_payload(self) -> dict[str, Any]:
        return {
            "id": self.pk,
            "tenant_id": self.tenant_id,
            "number": self.number,
            "name": self.name,
            "line": self.line,
            "presence": self.presence,
            "line_since": self.line_since.isoformat() if self.line_since else None,
            "presence_since": self.presence_since.isoformat() if self.presence_since else None,
            "call_state": self.call_state,
            "call_partner": self.call_partner,
            "call_direction": self.call_direction,
            "call_since": self.call_since.isoformat() if self.call_since else None,
            "seq": self.seq,
            "active": self.active,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> "Extension":
        from datetime import datetime

        def when(value: str | None) -> datetime | None:
            return datetime.fromisoformat(value) if value else None

        return cls(
            pk=payload["id"],
            tenant_id=payload["tenant_id"],
            number=payload["number"],
            name=payload["name"],
            line=payload["line"],
            presence=payload["presence"],
            line_since=when(payload["line_since"]),
            presence_since=when(payload["presence_since"]),
            # .get: a payload from a worker of the previous release has no call fields.
            call_state=payload.get("call_state", ""),
            call_partner=payload.get("call_partner", ""),
            call_direction=payload.get("call_direction", ""),
            call_since=when(payload.get("call_since")),
            seq=payload["seq"],
            active=payload["active"],
        )


class ExtensionGroup(models.Model):
    """A department or team: extensions shown together and granted together."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="groups")
    name = models.CharField(_("name"), max_length=100)
    extensions = models.ManyToManyField(
        Extension, verbose_name=_("extensions"), blank=True, related_name="groups"
    )

    class Meta:
        ordering = ["tenant", "name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="unique_group_name")]
        verbose_name = _("extension group")
        verbose_name_plural = _("extension groups")

    def __str__(self) -> str:
        return self.name


class MembershipQuerySet(models.QuerySet["Membership"]):
    def of(self, user: Any) -> "MembershipQuerySet":
        if user is None or not user.is_authenticated or not user.is_active:
            return self.none()
        return self.filter(user=user, tenant__enabled=True)


class Membership(models.Model):
    """A user's place in a tenant: his own extension, what he may see and do."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    own_extension = models.ForeignKey(
        Extension,
        verbose_name=_("own extension"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="owners",
        help_text=_("Calls started from the board ring this extension first."),
    )
    sees_all_extensions = models.BooleanField(
        _("sees all extensions"),
        default=False,
        help_text=_("Otherwise only the groups and extensions chosen below."),
    )
    groups = models.ManyToManyField(
        ExtensionGroup,
        verbose_name=_("visible groups"),
        blank=True,
        related_name="memberships",
    )
    extensions = models.ManyToManyField(
        Extension,
        verbose_name=_("visible extensions"),
        blank=True,
        related_name="visible_memberships",
    )
    sees_call_details = models.BooleanField(
        _("sees call details"),
        default=True,
        help_text=_(
            "Partner numbers, names and call direction. Without it only line state and "
            "presence are shown."
        ),
    )
    can_call = models.BooleanField(
        _("may call colleagues"),
        default=True,
        help_text=_("Call visible extensions from the own extension."),
    )
    can_call_external = models.BooleanField(
        _("may call external numbers"),
        default=True,
        help_text=_("Dial any number from the own extension."),
    )
    is_tenant_admin = models.BooleanField(
        _("tenant administrator"),
        default=False,
        help_text=_(
            "Manages this tenant's users, groups and rights in the admin (needs staff status)."
        ),
    )

    objects = MembershipQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant"], name="unique_membership"),
        ]
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant}"

    def clean(self) -> None:
        own = self.own_extension
        if own is not None and own.tenant_id != self.tenant_id:
            raise ValidationError(
                {"own_extension": _("The own extension must belong to the same tenant.")}
            )

    @property
    def may_call(self) -> bool:
        return self.can_call and self.own_extension_id is not None

    @property
    def may_call_external(self) -> bool:
        return self.can_call_external and self.own_extension_id is not None

    def call_refusal(self, target: "Extension | str | None" = None) -> "CallRefusal | None":
        """The one gate of every call path: why this member may not call ``target`` (an
        extension he sees, external digits, or None: any call at all), or None if he may."""
        if target is None:
            allowed = self.may_call or self.may_call_external
        else:
            allowed = self.may_call_external if isinstance(target, str) else self.may_call
        if not allowed:
            if self.own_extension_id is None:
                reason = gettext(
                    "You have no own extension on this PBX, so the board cannot call for you."
                )
            elif isinstance(target, str):
                reason = gettext("You are not allowed to call external numbers.")
            else:
                reason = gettext("You are not allowed to start calls.")
            return CallRefusal(reason, forbidden=True)
        if isinstance(target, Extension) and target.pk == self.own_extension_id:
            return CallRefusal(gettext("That is your own extension."), forbidden=False)
        return None

    def describe_rights(self) -> str:
        """A readable one-line summary, for the audit log."""
        parts = [
            "all extensions" if self.sees_all_extensions else "chosen extensions",
            f"own {self.own_extension.number}" if self.own_extension else "no own extension",
            "details" if self.sees_call_details else "line only",
            "calls" if self.can_call else "no calls",
            "external" if self.can_call_external else "no external",
        ]
        if self.is_tenant_admin:
            parts.append("tenant admin")
        if self.pk:
            parts.append("groups: " + (", ".join(g.name for g in self.groups.all()) or "none"))
            numbers = sorted(e.number for e in self.extensions.all())
            parts.append("extensions: " + (", ".join(numbers) or "none"))
        return "; ".join(parts)


def membership_for(user: Any, account: str) -> Membership | None:
    """The user's membership of the tenant with this account, or None."""
    return (
        Membership.objects.of(user)
        .select_related("tenant", "own_extension")
        .filter(tenant__account=account)
        .first()
    )


@dataclass(frozen=True)
class CallRefusal:
    """Why a call is refused; ``forbidden``: by the member's rights (else the request makes
    no sense, e.g. calling one's own extension)."""

    reason: str
    forbidden: bool


class AuditAction(models.TextChoices):
    ADDED = "added", _("Added")
    CHANGED = "changed", _("Changed")
    DELETED = "deleted", _("Deleted")
    # Entries written before field-level changes were recorded (their detail is a summary).
    RIGHTS = "rights", _("Rights changed")
    RIGHTS_REMOVED = "rights-removed", _("Membership removed")
    GROUP = "group", _("Group changed")


class AuditEntry(models.Model):
    """Who changed which configuration (tenant, memberships, groups, webhooks, phonebook),
    each field from what to what (``tenancy.audit``), for the tenant's administrators.

    Click-to-call has its own log: every ``CallAttempt`` records who called whom, the result
    and the PBX's request id.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="audit_entries")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    action = models.CharField(_("action"), max_length=20, choices=AuditAction.choices)
    # The changed row's model ("pbx.membership"), and each changed field:
    # {"field": name, "from": value, "to": value} or {"field": name, "secret": true}.
    kind = models.CharField(_("kind"), max_length=100, blank=True)
    subject = models.CharField(_("subject"), max_length=200)
    changes = models.JSONField(_("changes"), default=list, blank=True)
    detail = models.TextField(_("detail"), blank=True)
    created = models.DateTimeField(_("when"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created", "-pk"]
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit entries")

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M} {self.get_action_display()} {self.subject}"


class IngestWorker(models.Model):
    """A running ingest worker process, alive while its heartbeat is renewed (see leases.py)."""

    worker_id = models.CharField(max_length=100, primary_key=True)
    hostname = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(default=0)
    # New at every process start: tells a restarted worker from a second live one (leases.py).
    incarnation = models.CharField(max_length=32, blank=True, default="")
    started_at = models.DateTimeField()
    # Database time, like every lease expiry: the clocks of the workers' hosts never count.
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = _("ingest worker")
        verbose_name_plural = _("ingest workers")

    def __str__(self) -> str:
        return self.worker_id


class IngestLease(models.Model):
    """Which worker consumes a tenant's streams, and until when unless it renews."""

    tenant = models.OneToOneField(
        Tenant, on_delete=models.CASCADE, primary_key=True, related_name="ingest_lease"
    )
    holder = models.CharField(max_length=100, blank=True, db_index=True)
    expires_at = models.DateTimeField()
    acquired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("ingest lease")
        verbose_name_plural = _("ingest leases")

    def __str__(self) -> str:
        return f"{self.tenant_id} → {self.holder or '-'}"


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
