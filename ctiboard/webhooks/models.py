"""Action-URL webhooks: URLs a tenant's administrators want called when calls ring, are answered
and end, and the outbox of requests the ingest worker wrote for them (``outbox.enqueue``) that
the delivery worker sends (``dispatch``)."""

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Now
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from ctiboard.lib.secrets import EncryptedTextField
from ctiboard.tenancy.models import Extension, ExtensionGroup, Tenant

from . import payloads


class Event(models.TextChoices):
    RINGING = "ringing", _("Ringing")
    ANSWERED = "answered", _("Answered")
    ENDED = "ended", _("Ended")


class BodyFormat(models.TextChoices):
    JSON = "json", _("POST with a JSON body")
    FORM = "form", _("POST with a form-encoded body")
    QUERY = "query", _("GET with a query string")


TEMPLATE_HELP = format_lazy(
    "{}{}.",
    _(
        "Empty: every value. JSON: a JSON document whose strings may contain placeholders "
        "(a string that is just one placeholder becomes the value: number or null). "
        "Form and query: e.g. caller={caller}&event={event}. Placeholders: "
    ),
    ", ".join("{" + name + "}" for name in payloads.PLACEHOLDERS),
)


class Webhook(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="webhooks")
    name = models.CharField(_("name"), max_length=100)
    url = models.URLField(_("URL"), max_length=500)
    enabled = models.BooleanField(_("enabled"), default=True)
    on_ringing = models.BooleanField(_("when a call rings"), default=True)
    on_answered = models.BooleanField(_("when a call is answered"), default=True)
    on_ended = models.BooleanField(_("when a call ends"), default=True)
    extensions = models.ManyToManyField(
        Extension,
        verbose_name=_("only these extensions"),
        blank=True,
        related_name="+",
        help_text=_("With neither extensions nor groups chosen: every extension."),
    )
    groups = models.ManyToManyField(
        ExtensionGroup, verbose_name=_("only these groups"), blank=True, related_name="+"
    )
    body_format = models.CharField(
        _("request"), max_length=10, choices=BodyFormat.choices, default=BodyFormat.JSON
    )
    template = models.TextField(_("template"), blank=True, help_text=TEMPLATE_HELP)
    secret = EncryptedTextField(
        _("shared secret"),
        help_text=_(
            "Signs every request: X-Ctiboard-Signature: sha256=HMAC-SHA256(secret, "
            "X-Ctiboard-Timestamp + '.' + body or query string)."
        ),
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant", "name"]
        verbose_name = _("webhook")
        verbose_name_plural = _("webhooks")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        try:
            payloads.check(self.body_format, self.template)
        except payloads.TemplateError as exc:
            raise ValidationError({"template": str(exc)}) from None

    @property
    def events(self) -> list[str]:
        flags = {
            Event.RINGING: self.on_ringing,
            Event.ANSWERED: self.on_answered,
            Event.ENDED: self.on_ended,
        }
        return [str(event.label) for event, on in flags.items() if on]


EVENT_FLAGS = {Event.RINGING: "on_ringing", Event.ANSWERED: "on_answered", Event.ENDED: "on_ended"}


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SENDING = "sending", _("Sending")
    DELIVERED = "delivered", _("Delivered")
    FAILED = "failed", _("Failed")


class WebhookDelivery(models.Model):
    """One request of the outbox, written in the transaction that stored the call state it
    reports; sent by one delivery worker, which claims it first (``dispatch``)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(_("event"), max_length=10, choices=Event.choices)
    # 0 for the first request of an event; an ended leg whose record was corrected afterwards
    # is sent again with the next revision (receivers keep the highest).
    revision = models.PositiveIntegerField(_("revision"), default=0)
    uuid = models.CharField(max_length=64)
    extension = models.ForeignKey(Extension, on_delete=models.CASCADE, related_name="+")
    occurred_at = models.DateTimeField(_("event time"), null=True, blank=True)
    # The request as rendered when the event happened: retries send exactly the same.
    method = models.CharField(max_length=8)
    url = models.TextField()
    content_type = models.CharField(max_length=100, blank=True)
    body = models.TextField(blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    # Database time throughout (like the ingest leases): the workers' clocks never compare.
    created = models.DateTimeField(_("created"), db_default=Now())
    next_attempt_at = models.DateTimeField(db_default=Now())
    # The claim of the worker sending it: it owns the row until claimed_until.
    claim_token = models.CharField(max_length=32, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(_("last attempt"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=500, blank=True)

    class Meta:
        ordering = ["-created", "-pk"]
        constraints = [
            # Once per event and revision: repeated events of a leg report nothing new.
            models.UniqueConstraint(
                fields=["webhook", "uuid", "extension", "event", "revision"],
                name="unique_webhook_delivery_revision",
            )
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due"),
            models.Index(fields=["tenant", "created"], name="webhook_delivery_log"),
        ]
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")

    def __str__(self) -> str:
        return f"{self.webhook_id} {self.event} {self.uuid} ({self.status})"
