import asyncio

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ctiboard.cti.client import CTIClient, CTIError

from . import events
from .models import NFON_API_URL, CallAttempt, Extension, Membership, Tenant


class TenantForm(forms.ModelForm):  # type: ignore[type-arg]
    api_base_url = forms.URLField(
        label=_("CTI API base URL"),
        assume_scheme="https",
        initial=NFON_API_URL,
        help_text=_("NFON's production API is %(url)s.") % {"url": NFON_API_URL},
    )
    # The stored password is never sent back to the browser; leaving the field empty
    # keeps it, typing a new one replaces it.
    api_password = forms.CharField(
        label=_("API password"),
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Stored encrypted. Leave empty to keep the current password."),
    )

    class Meta:
        model = Tenant
        fields = ["name", "account", "api_base_url", "api_username", "api_password", "enabled"]

    def clean_api_password(self) -> str:
        password: str = self.cleaned_data["api_password"]
        if not password and not self.instance.pk:
            raise forms.ValidationError(_("A new tenant needs the API password."))
        return password

    def save(self, commit: bool = True) -> Tenant:
        tenant: Tenant = super().save(commit=False)
        new_password = self.cleaned_data["api_password"]
        if new_password:
            tenant.api_password = new_password
        elif tenant.pk:
            tenant.api_password = Tenant.objects.get(pk=tenant.pk).api_password
        if {"api_base_url", "api_username", "api_password"} & set(self.changed_data):
            tenant.credentials_changed_at = timezone.now()
        if commit:
            tenant.save()
        return tenant


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = TenantForm
    list_display = [
        "name",
        "account",
        "enabled",
        "connection_status",
        "status_since",
        "last_event_at",
    ]
    list_filter = ["enabled", "connection_status"]
    search_fields = ["name", "account"]
    readonly_fields = ["connection_status", "status_since", "status_detail", "last_event_at"]
    actions = ["test_connection"]

    @admin.action(description=_("Test connection to the CTI API"))
    def test_connection(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            try:
                count = asyncio.run(_probe(tenant))
            except CTIError as exc:
                self.message_user(request, f"{tenant.account}: {exc}", messages.ERROR)
            else:
                self.message_user(
                    request,
                    ngettext(
                        "%(account)s: logged in, %(count)d extension listed.",
                        "%(account)s: logged in, %(count)d extensions listed.",
                        count,
                    )
                    % {"account": tenant.account, "count": count},
                    messages.SUCCESS,
                )


async def _probe(tenant: Tenant) -> int:
    async with CTIClient(
        tenant.api_base_url, tenant.api_username, tenant.api_password, tenant.account
    ) as client:
        await client.login()
        return len(await client.extensions())


@admin.register(Extension)
class ExtensionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["number", "name", "tenant", "line", "presence", "line_since", "active"]
    list_filter = ["tenant", "active", "line", "presence"]
    search_fields = ["number", "name"]
    readonly_fields = ["line", "presence", "line_since", "presence_since", "api_uuid", "seq"]
    list_select_related = ["tenant"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["user", "tenant", "own_extension", "sees_all_extensions", "can_call"]
    list_filter = ["tenant", "sees_all_extensions", "can_call"]
    search_fields = ["user__username", "user__first_name", "user__last_name", "tenant__account"]
    autocomplete_fields = ["user", "own_extension"]
    filter_horizontal = ["extensions"]
    list_select_related = ["user", "tenant", "own_extension"]

    def save_related(
        self, request: HttpRequest, form: forms.ModelForm, formsets, change: bool
    ) -> None:  # type: ignore[no-untyped-def,type-arg]
        super().save_related(request, form, formsets, change)
        # After the many-to-many rows are written, so open boards recompute from the truth.
        events.visibility_changed(form.instance.user_id)

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        user_id = obj.user_id
        super().delete_model(request, obj)
        events.visibility_changed(user_id)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        user_ids = set(queryset.values_list("user_id", flat=True))
        super().delete_queryset(request, queryset)
        for user_id in user_ids:
            events.visibility_changed(user_id)


@admin.register(CallAttempt)
class CallAttemptAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = [
        "created",
        "tenant",
        "user",
        "caller",
        "callee",
        "status",
        "error",
        "request_id",
    ]
    list_filter = ["tenant", "status"]
    search_fields = ["caller", "callee", "uuid", "request_id", "user__username"]
    readonly_fields = [field.name for field in CallAttempt._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
