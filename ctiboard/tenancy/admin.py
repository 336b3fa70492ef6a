import asyncio
import copy
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Now
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.text import smart_split, unescape_string_literal
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ctiboard.cti.client import CTIClient, CTIError

from . import (
    audit,
    user_admin,  # noqa: F401 - registers the user admin
)
from .admin_audit import AuditedAdmin
from .admin_scope import (
    ScopedRelatedOnlyFieldListFilter,
    TenantScopedAdmin,
    administered_tenants,
    form_tenant,
)
from .models import (
    NFON_API_URL,
    AuditEntry,
    Extension,
    ExtensionGroup,
    IngestWorker,
    Membership,
    Tenant,
)
from .signals import resync_requested

admin.site.site_header = admin.site.site_title = _("ctiboard administration")
admin.site.index_title = _("PBXs, people and their rights")

# Filters offer only values present in the (tenant-scoped) list, never other tenants' names.
TENANT_FILTER = ("tenant", ScopedRelatedOnlyFieldListFilter)
GROUP_FILTER = ("groups", ScopedRelatedOnlyFieldListFilter)


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
    # Left out (e.g. by a form that predates the field): the tenant keeps its country.
    country_code = forms.RegexField(
        label=_("country code"),
        regex=r"^[1-9][0-9]{0,2}$",
        required=False,
        max_length=3,
        error_messages={"invalid": _("Digits only, e.g. 49 or 43.")},
        help_text=_("Dialled numbers starting with a single 0 are numbers of this country."),
    )

    class Meta:
        model = Tenant
        fields = [
            "name",
            "account",
            "api_base_url",
            "api_username",
            "api_password",
            "enabled",
            "country_code",
            "crm_url_template",
            "history_days",
        ]

    def clean_country_code(self) -> str:
        code: str = self.cleaned_data["country_code"]
        return code or self.instance.country_code or "49"

    def clean_api_password(self) -> str:
        password: str = self.cleaned_data["api_password"]
        if not password and not self.instance.pk:
            raise forms.ValidationError(_("A new tenant needs the API password."))
        return password

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        # The stored password only ever goes where it went before: whoever points the tenant
        # at another server or user must know the password and type it again.
        moved = {"api_base_url", "api_username"} & set(self.changed_data)
        if self.instance.pk and moved and not data.get("api_password"):
            self.add_error(
                "api_password",
                _("Enter the API password again when you change the API URL or username."),
            )
        return data

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
class TenantAdmin(AuditedAdmin, TenantScopedAdmin):
    tenant_path = "pk"
    tenant_admin_can_add = False
    tenant_admin_can_delete = False
    form = TenantForm
    list_display = [
        "name",
        "account",
        "enabled",
        "connection_status",
        "status_since",
        "last_event_at",
        "served_by",
    ]
    list_filter = ["enabled", "connection_status"]
    search_fields = ["name", "account"]
    readonly_fields = [
        "connection_status",
        "status_since",
        "status_detail",
        "last_event_at",
        "served_by",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        live = IngestWorker.objects.filter(
            pk=OuterRef("ingest_lease__holder"), expires_at__gt=Now()
        )
        return (
            super()
            .get_queryset(request)
            .select_related("ingest_lease")
            .annotate(
                holder_live=Exists(live),
                lease_live=Q(ingest_lease__expires_at__gt=Now()),
            )
        )

    @admin.display(description=_("ingest worker"))
    def served_by(self, tenant: Tenant) -> str:
        """Which worker streams the tenant and since when (the lease table, leases.py)."""
        lease = getattr(tenant, "ingest_lease", None)
        if lease is None or not lease.holder or lease.holder.startswith("~"):
            return "—"
        when = lease.acquired_at
        since = timezone.localtime(when).strftime("%Y-%m-%d %H:%M:%S") if when else "?"
        if getattr(tenant, "holder_live", True) and getattr(tenant, "lease_live", True):
            return _("%(worker)s since %(since)s") % {"worker": lease.holder, "since": since}
        return _("%(worker)s since %(since)s (no heartbeat)") % {
            "worker": lease.holder,
            "since": since,
        }

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        if not request.user.is_superuser and "api_base_url" in form.base_fields:
            # Where a tenant's API lives is the operator's decision, not a tenant admin's: the
            # board's server would otherwise send requests (and credentials) where he says.
            # (A copy: base_fields share their Field objects with TenantForm itself.)
            field = copy.deepcopy(form.base_fields["api_base_url"])
            field.disabled = True
            form.base_fields["api_base_url"] = field
        return form

    actions = ["test_connection", "resync_extensions"]

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

    @admin.action(description=_("Re-sync extensions now"))
    def resync_extensions(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        # The worker streaming the tenant does it, so its writes stay the only ones.
        for tenant in queryset:
            if not tenant.enabled:
                self.message_user(
                    request,
                    _("%(account)s is disabled: nothing streams it.") % {"account": tenant.account},
                    messages.WARNING,
                )
                continue
            resync_requested.send(sender=Tenant, tenant_id=tenant.pk)
            self.message_user(
                request,
                _("%(account)s: the worker re-reads the extension list now.")
                % {"account": tenant.account},
                messages.SUCCESS,
            )


async def _probe(tenant: Tenant) -> int:
    async with CTIClient(
        tenant.api_base_url, tenant.api_username, tenant.api_password, tenant.account
    ) as client:
        await client.login()
        return len(await client.extensions())


@admin.register(Extension)
class ExtensionAdmin(TenantScopedAdmin):
    # Extensions come from the PBX; the admin shows them but does not invent or delete any.
    tenant_admin_can_add = False
    tenant_admin_can_delete = False
    list_display = ["number", "name", "tenant", "line", "presence", "line_since", "active"]
    list_filter = [TENANT_FILTER, "active", "line", "presence", GROUP_FILTER]
    search_fields = ["number", "name"]
    readonly_fields = [
        "number",
        "name",
        "tenant",
        "line",
        "presence",
        "line_since",
        "presence_since",
        "api_uuid",
        "seq",
    ]
    list_select_related = ["tenant"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class ExtensionGroupForm(forms.ModelForm):  # type: ignore[type-arg]
    # Who sees the group, chosen here for many people at once (each membership's "visible
    # groups" from the other side). The choices are narrowed to the admin's tenants per request.
    members = forms.ModelMultipleChoiceField(
        queryset=Membership.objects.none(),
        required=False,
        label=_("seen by"),
        widget=FilteredSelectMultiple(_("users"), is_stacked=False),
        help_text=_("The users who see this group's extensions on their board."),
    )

    class Meta:
        model = ExtensionGroup
        fields = ["tenant", "name", "extensions", "members"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["members"].initial = list(self.instance.memberships.all())

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        tenant = form_tenant(self, data)
        foreign = [e for e in data.get("extensions", []) if tenant and e.tenant_id != tenant.pk]
        if foreign:
            raise forms.ValidationError(
                _("These extensions belong to another tenant: %(numbers)s")
                % {"numbers": ", ".join(e.number for e in foreign)}
            )
        if tenant and any(m.tenant_id != tenant.pk for m in data.get("members", [])):
            self.add_error("members", _("Choose only users of this tenant."))
        return data

    def save_members(self) -> None:
        """Give the group to the chosen memberships and take it from the others: from the
        memberships' side, so each one's open boards are told (live.signals)."""
        group: ExtensionGroup = self.instance
        chosen = set(self.cleaned_data.get("members") or [])
        current = set(group.memberships.all())
        for membership in chosen - current:
            membership.groups.add(group)
        for membership in current - chosen:
            membership.groups.remove(group)


def _seen_by(group: ExtensionGroup) -> list[str]:
    members = group.memberships.filter(tenant=group.tenant_id).select_related("user")
    return sorted(str(m.user) for m in members)


@admin.register(ExtensionGroup)
class ExtensionGroupAdmin(AuditedAdmin, TenantScopedAdmin):
    form = ExtensionGroupForm
    tenant_fixed = True
    list_display = ["name", "tenant", "size", "seen_by"]
    list_filter = [TENANT_FILTER]
    # And the members' numbers and names: get_search_results.
    search_fields = ["name"]
    filter_horizontal = ["extensions"]
    audit_extra = {"members": _seen_by}

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        field: Any = copy.deepcopy(form.base_fields["members"])
        members = Membership.objects.filter(tenant__in=administered_tenants(request.user))
        if obj is not None:
            members = members.filter(tenant=obj.tenant_id)
        field.queryset = members.select_related("user", "tenant").order_by("user__username")
        field.label_from_instance = lambda m: f"{m.user} ({m.tenant.account})"
        form.base_fields["members"] = field
        return form

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[ExtensionGroup], search_term: str
    ) -> tuple[QuerySet[ExtensionGroup], bool]:
        # Members count only within the group's tenant: a stray link (the database refuses new
        # ones) must not tell a tenant admin whether another tenant has an extension so named.
        # Each word must match the name or a member, as in Django's own search.
        for word in smart_split(search_term):
            if word[:1] in ('"', "'") and word[-1:] == word[:1]:
                word = unescape_string_literal(word)
            members = Extension.objects.filter(
                Q(number__icontains=word) | Q(name__icontains=word),
                groups=OuterRef("pk"),
                tenant=OuterRef("tenant"),
            )
            queryset = queryset.filter(Q(name__icontains=word) | Exists(members))
        return queryset, False

    @admin.display(description=_("extensions"))
    def size(self, group: ExtensionGroup) -> int:
        return group.extensions.count()

    @admin.display(description=_("seen by"))
    def seen_by(self, group: ExtensionGroup) -> str:
        return ", ".join(_seen_by(group)) or "—"

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        form.save_members()
        super().save_related(request, form, formsets, change)


class MembershipForm(forms.ModelForm):  # type: ignore[type-arg]
    new_username = forms.CharField(
        label=_("or create a user"),
        required=False,
        help_text=_("Creates the user with this name and the password below."),
    )
    new_password = forms.CharField(
        label=_("password for the new user"),
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )

    class Meta:
        model = Membership
        fields = [
            "user",
            "tenant",
            "own_extension",
            "sees_all_extensions",
            "groups",
            "extensions",
            "sees_call_details",
            "can_call",
            "can_call_external",
            "is_tenant_admin",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["user"].required = False

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        user_model = get_user_model()
        if not data.get("user"):
            username = (data.get("new_username") or "").strip()
            if not username:
                raise forms.ValidationError(_("Choose a user or enter a name for a new one."))
            if user_model.objects.filter(username=username).exists():
                self.add_error("new_username", _("This username is taken."))
            password = data.get("new_password") or ""
            try:
                validate_password(password, user_model(username=username))
            except forms.ValidationError as exc:
                self.add_error("new_password", exc)
        tenant = form_tenant(self, data)
        if tenant is not None:
            own = data.get("own_extension")
            if own is not None and own.tenant_id != tenant.pk:
                self.add_error("own_extension", _("The own extension must be of this tenant."))
            for field in ("groups", "extensions"):
                if any(item.tenant_id != tenant.pk for item in data.get(field, [])):
                    self.add_error(field, _("Choose only items of this tenant."))
        return data

    def save(self, commit: bool = True) -> Membership:
        if not self.cleaned_data.get("user"):
            self.instance.user = get_user_model().objects.create_user(
                username=self.cleaned_data["new_username"].strip(),
                password=self.cleaned_data["new_password"],
            )
        result: Membership = super().save(commit)
        return result


class ChooseGroupForm(forms.Form):
    group = forms.ModelChoiceField(queryset=ExtensionGroup.objects.none(), label=_("Group"))

    def __init__(self, *args: Any, groups: QuerySet[ExtensionGroup], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field: Any = self.fields["group"]
        field.queryset = groups
        field.label_from_instance = lambda g: f"{g.name} ({g.tenant.account})"


def sync_staff(user: Any) -> None:
    """A tenant administrator needs staff status to open the admin, and nothing else (being
    one is his permission there, admin_scope). Whoever is one no more loses it, unless he is
    a superuser or has Django permissions of his own (made staff for another reason)."""
    if user.is_superuser:
        return
    administers = user.memberships.filter(is_tenant_admin=True).exists()
    if administers and not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    elif (
        not administers
        and user.is_staff
        and not user.user_permissions.exists()
        and not user.groups.exists()
    ):
        user.is_staff = False
        user.save(update_fields=["is_staff"])


@admin.register(Membership)
class MembershipAdmin(AuditedAdmin, TenantScopedAdmin):
    form = MembershipForm
    tenant_fixed = True
    list_display = [
        "user",
        "tenant",
        "own_extension",
        "sees_all_extensions",
        "visible_groups",
        "sees_call_details",
        "can_call",
        "can_call_external",
        "is_tenant_admin",
    ]
    list_filter = [
        TENANT_FILTER,
        "sees_all_extensions",
        "sees_call_details",
        "can_call",
        "can_call_external",
        "is_tenant_admin",
        GROUP_FILTER,
    ]
    search_fields = ["user__username", "user__first_name", "user__last_name", "tenant__account"]
    filter_horizontal = ["groups", "extensions"]
    # A search box instead of a list of a thousand extensions (ExtensionAdmin's search).
    autocomplete_fields = ["own_extension"]
    list_select_related = ["user", "tenant", "own_extension"]
    actions = ["grant_group", "revoke_group", "make_view_only"]
    audit_extra = {"admin_access": lambda m: m.user.is_staff}

    def audit_subject(self, obj: Membership) -> str:
        return str(obj.user)  # the entry names the tenant

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "user" and not request.user.is_superuser and field is not None:
            # A tenant admin picks among his tenants' people (new ones are created here).
            field.queryset = field.queryset.filter(
                memberships__tenant__in=administered_tenants(request.user)
            ).distinct()
        return field

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description=_("visible groups"))
    def visible_groups(self, membership: Membership) -> str:
        # Of its own tenant only: a stray link (integrity.py) must not name another's group.
        own = (g.name for g in membership.groups.all() if g.tenant_id == membership.tenant_id)
        return ", ".join(sorted(own)) or "—"

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # "Tenant administrator" is all it takes: the user can open the admin right away.
        sync_staff(obj.user)

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        super().delete_model(request, obj)
        sync_staff(obj.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        users = [m.user for m in queryset.select_related("user")]
        super().delete_queryset(request, queryset)
        for user in users:
            sync_staff(user)

    def _group_action(
        self, request: HttpRequest, queryset: QuerySet[Membership], *, grant: bool
    ) -> HttpResponse | None:
        """Asks which group on a page of its own (only the selected users' tenants' groups),
        then gives it to (or takes it from) the selected users of the group's tenant."""
        memberships = list(queryset.select_related("user", "tenant"))
        groups = (
            ExtensionGroup.objects.filter(
                tenant__in={m.tenant_id for m in memberships},
            )
            .filter(tenant__in=administered_tenants(request.user))
            .select_related("tenant")
        )
        form = ChooseGroupForm(request.POST if "apply" in request.POST else None, groups=groups)
        if not form.is_valid():
            context = {
                **self.admin_site.each_context(request),
                "title": _("Give a group") if grant else _("Take a group away"),
                "opts": self.model._meta,
                "form": form,
                "memberships": memberships,
                "action": "grant_group" if grant else "revoke_group",
                "grant": grant,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "media": self.media + form.media,
            }
            return TemplateResponse(request, "admin/pbx/membership/choose_group.html", context)
        group: ExtensionGroup = form.cleaned_data["group"]
        changed = 0
        with transaction.atomic():
            for membership in memberships:
                if membership.tenant_id != group.tenant_id:
                    continue
                if grant:
                    changed += self.audit_change(request, membership, lambda m: m.groups.add(group))
                else:
                    changed += self.audit_change(
                        request, membership, lambda m: m.groups.remove(group)
                    )
        message = (
            ngettext(
                "%(count)d user now sees the group %(group)s.",
                "%(count)d users now see the group %(group)s.",
                changed,
            )
            if grant
            else ngettext(
                "%(count)d user no longer sees the group %(group)s.",
                "%(count)d users no longer see the group %(group)s.",
                changed,
            )
        )
        self.message_user(request, message % {"count": changed, "group": group.name})
        return None

    @admin.action(description=_("Give the selected users a group …"))
    def grant_group(
        self, request: HttpRequest, queryset: QuerySet[Membership]
    ) -> HttpResponse | None:
        return self._group_action(request, queryset, grant=True)

    @admin.action(description=_("Take a group from the selected users …"))
    def revoke_group(
        self, request: HttpRequest, queryset: QuerySet[Membership]
    ) -> HttpResponse | None:
        return self._group_action(request, queryset, grant=False)

    @admin.action(description=_("Make the selected users view-only (no calls)"))
    def make_view_only(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        def view_only(membership: Membership) -> None:
            membership.can_call = membership.can_call_external = False
            membership.save(update_fields=["can_call", "can_call_external"])

        with transaction.atomic():
            changed = sum(
                self.audit_change(request, membership, view_only)
                for membership in queryset.select_related("user", "tenant")
            )
        self.message_user(request, _("%(count)d users are view-only now.") % {"count": changed})


@admin.register(AuditEntry)
class AuditEntryAdmin(TenantScopedAdmin):
    list_display = ["created", "tenant", "actor", "action", "kind_label", "subject", "what"]
    list_filter = [TENANT_FILTER, "action", "kind"]
    search_fields = ["subject", "detail", "actor__username"]
    list_select_related = ["tenant", "actor"]
    fields = ["created", "tenant", "actor", "action", "kind_label", "subject", "what"]
    readonly_fields = ["created", "tenant", "actor", "action", "kind_label", "subject", "what"]

    @admin.display(description=_("kind"))
    def kind_label(self, entry: AuditEntry) -> str:
        model = audit.model_of(entry.kind)
        return str(model._meta.verbose_name) if model else entry.kind

    @admin.display(description=_("changes"))
    def what(self, entry: AuditEntry) -> str:
        if not entry.changes:
            return entry.detail  # an entry of before field-level changes: its summary
        return render_to_string(
            "admin/pbx/auditentry/changes.html", {"changes": audit.readable(entry)}
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
