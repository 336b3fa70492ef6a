import asyncio
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.db.models.functions import Now
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ctiboard.tenancy.admin_audit import AuditedAdmin
from ctiboard.tenancy.admin_scope import (
    ScopedRelatedOnlyFieldListFilter,
    TenantScopedAdmin,
    form_tenant,
)

from . import dispatch, outbox
from .models import DeliveryStatus, Webhook, WebhookDelivery

TENANT_FILTER = ("tenant", ScopedRelatedOnlyFieldListFilter)


class WebhookForm(forms.ModelForm):  # type: ignore[type-arg]
    url = forms.URLField(label=_("URL"), max_length=500, assume_scheme="https")
    # Like the CTI API password: never sent back to the browser; empty keeps the stored one.
    secret = forms.CharField(
        label=_("shared secret"),
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=Webhook._meta.get_field("secret").help_text,
    )

    class Meta:
        model = Webhook
        fields = [
            "tenant",
            "name",
            "url",
            "enabled",
            "on_ringing",
            "on_answered",
            "on_ended",
            "extensions",
            "groups",
            "body_format",
            "template",
            "secret",
        ]

    def clean_secret(self) -> str:
        secret: str = self.cleaned_data["secret"]
        if not secret and not self.instance.pk:
            raise forms.ValidationError(_("A new webhook needs a shared secret."))
        if secret and len(secret) < 16:
            raise forms.ValidationError(_("Use at least 16 characters."))
        return secret

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        tenant = form_tenant(self, cleaned)
        for name in ("extensions", "groups"):
            chosen = cleaned.get(name)
            if tenant is not None and any(item.tenant_id != tenant.pk for item in chosen or []):
                self.add_error(name, _("Choose only those of the webhook's tenant."))
        return cleaned

    def save(self, commit: bool = True) -> Webhook:
        webhook: Webhook = super().save(commit=False)
        if self.cleaned_data["secret"]:
            webhook.secret = self.cleaned_data["secret"]
        elif webhook.pk:
            webhook.secret = Webhook.objects.get(pk=webhook.pk).secret
        if commit:
            webhook.save()
            self.save_m2m()
        return webhook


@admin.register(Webhook)
class WebhookAdmin(AuditedAdmin, TenantScopedAdmin):
    form = WebhookForm
    tenant_fixed = True
    list_display = ["name", "tenant", "url", "enabled", "events", "body_format"]
    list_filter = [TENANT_FILTER, "enabled", "body_format"]
    list_select_related = ["tenant"]
    search_fields = ["name", "url"]
    filter_horizontal = ["extensions", "groups"]
    actions = ["send_test"]

    @admin.display(description=_("events"))
    def events(self, webhook: Webhook) -> str:
        return ", ".join(webhook.events)

    @admin.action(description=_("Send a test event now"))
    def send_test(self, request: HttpRequest, queryset: QuerySet[Webhook]) -> None:
        """A signed ``test`` event to each chosen webhook, through the delivery worker's own
        request path, and what its URL answered."""
        allow_private = settings.CTIBOARD_WEBHOOKS_ALLOW_PRIVATE_NETWORKS
        for webhook in queryset.select_related("tenant"):
            delivery = outbox.test_delivery(webhook)
            result = asyncio.run(dispatch.send_test(delivery, allow_private_networks=allow_private))
            if result.ok:
                self.message_user(
                    request,
                    _("%(name)s: %(url)s answered HTTP %(status)d.")
                    % {"name": webhook.name, "url": delivery.url, "status": result.status},
                    messages.SUCCESS,
                )
            else:
                self.message_user(
                    request,
                    _("%(name)s: the test event failed: %(error)s")
                    % {
                        "name": webhook.name,
                        "error": f"HTTP {result.status} {result.error}".strip()
                        if result.status
                        else result.error,
                    },
                    messages.ERROR,
                )


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(TenantScopedAdmin):
    """The delivery log: written by the ingest and delivery workers, read-only here."""

    tenant_admin_can_add = False
    tenant_admin_can_delete = False
    list_display = [
        "created",
        "webhook",
        "event",
        "revision",
        "extension",
        "uuid",
        "status",
        "attempts",
        "response_status",
        "last_error",
        "delivered_at",
    ]
    list_filter = [
        TENANT_FILTER,
        ("webhook", ScopedRelatedOnlyFieldListFilter),
        "status",
        "event",
    ]
    list_select_related = ["webhook", "extension", "tenant"]
    search_fields = ["uuid", "extension__number", "body", "url"]
    date_hierarchy = "created"
    actions = ["retry_now"]
    readonly_fields = [
        "tenant",
        "webhook",
        "event",
        "revision",
        "uuid",
        "extension",
        "occurred_at",
        "method",
        "url",
        "content_type",
        "body",
        "status",
        "attempts",
        "created",
        "next_attempt_at",
        "last_attempt_at",
        "delivered_at",
        "response_status",
        "last_error",
    ]
    exclude = ["claim_token", "claimed_until"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description=_("Send again now (failed or waiting for a retry)"))
    def retry_now(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        count = queryset.filter(status__in=[DeliveryStatus.FAILED, DeliveryStatus.PENDING]).update(
            status=DeliveryStatus.PENDING, next_attempt_at=Now(), attempts=0
        )
        self.message_user(
            request,
            ngettext(
                "%(count)d delivery will be sent again.",
                "%(count)d deliveries will be sent again.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )
