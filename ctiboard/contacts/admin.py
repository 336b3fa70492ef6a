from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ctiboard.lib.phonenumbers import normalise
from ctiboard.tenancy.admin_audit import AuditedAdmin
from ctiboard.tenancy.admin_scope import TenantScopedAdmin, administered_tenants
from ctiboard.tenancy.models import Tenant

from .importing import decode, import_csv
from .models import Contact

# Errors listed after an import; the rest are counted.
SHOWN_ERRORS = 20


class ImportForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.none(), label=_("Tenant"))
    file = forms.FileField(
        label=_("CSV file"),
        help_text=_(
            "First row: column names. Required: name, number; optional: vip (yes/no). "
            "Comma, semicolon or tab separated. Numbers already in the phonebook are updated."
        ),
    )

    def __init__(self, *args: Any, tenants: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        tenant_field: Any = self.fields["tenant"]
        tenant_field.queryset = tenants
        if tenants.count() == 1:
            tenant_field.initial = tenants.first()


@admin.register(Contact)
class ContactAdmin(AuditedAdmin, TenantScopedAdmin):
    list_display = ["name", "number", "vip", "tenant"]
    list_display_links = ["name"]
    list_editable = ["vip"]
    list_filter = ["vip", ("tenant", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "number", "number_key"]
    list_select_related = ["tenant"]
    fields = ["tenant", "name", "number", "vip"]
    actions = ["mark_vip", "unmark_vip"]
    change_list_template = "admin/contacts/contact/change_list.html"

    def get_search_results(self, request: HttpRequest, queryset: Any, search_term: str) -> Any:
        # "089 1234567" also finds the contact written "+49 89 1234567".
        results, duplicates = super().get_search_results(request, queryset, search_term)
        key = normalise(search_term)
        if len(key) >= 3:
            results = results | queryset.filter(number_key__endswith=key[-9:])
        return results, duplicates

    def _set_vip(self, request: HttpRequest, queryset: Any, vip: bool) -> None:
        def mark(contact: Contact) -> None:
            contact.vip = vip
            contact.save(update_fields=["vip", "number_key", "updated"])

        with transaction.atomic():
            for contact in queryset.exclude(vip=vip).select_related("tenant"):
                self.audit_change(request, contact, mark)

    @admin.action(description=_("Mark as VIP"))
    def mark_vip(self, request: HttpRequest, queryset: Any) -> None:
        self._set_vip(request, queryset, True)

    @admin.action(description=_("Remove the VIP mark"))
    def unmark_vip(self, request: HttpRequest, queryset: Any) -> None:
        self._set_vip(request, queryset, False)

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="contacts_contact_import",
            ),
            *super().get_urls(),
        ]

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        tenants = (
            Tenant.objects.all()
            if request.user.is_superuser
            else administered_tenants(request.user)
        )
        form = ImportForm(request.POST or None, request.FILES or None, tenants=tenants)
        if request.method == "POST" and form.is_valid():
            try:
                text = decode(form.cleaned_data["file"].read())
            except ValueError as exc:
                form.add_error("file", str(exc))
            else:
                result = import_csv(form.cleaned_data["tenant"], text, actor=request.user)
                level = messages.WARNING if result.errors else messages.SUCCESS
                self.message_user(
                    request,
                    ngettext(
                        "%(created)d contact added, %(updated)d updated.",
                        "%(created)d contacts added, %(updated)d updated.",
                        result.created,
                    )
                    % {"created": result.created, "updated": result.updated},
                    level,
                )
                for error in result.errors[:SHOWN_ERRORS]:
                    self.message_user(request, error, messages.ERROR)
                if len(result.errors) > SHOWN_ERRORS:
                    self.message_user(
                        request,
                        _("… and %(count)d more rows with errors.")
                        % {"count": len(result.errors) - SHOWN_ERRORS},
                        messages.ERROR,
                    )
                return HttpResponseRedirect(reverse("admin:contacts_contact_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "title": _("Import contacts from CSV"),
        }
        return TemplateResponse(request, "admin/contacts/contact/import.html", context)
