from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from ctiboard.tenancy.admin_scope import TenantScopedAdmin

from .models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(TenantScopedAdmin):
    """Tenant administrators see and revoke their tenant's tokens; users create their own."""

    list_display = ["name", "user", "tenant", "scope", "created", "expires_at", "last_used_at"]
    list_filter = ["tenant", "scope", "revoked_at"]
    search_fields = ["name", "user__username", "prefix"]
    fields = ["name", "user", "tenant", "scope", "prefix", "created", "expires_at"]
    fields += ["last_used_at", "revoked_at"]
    readonly_fields = ["user", "tenant", "prefix", "created", "last_used_at", "revoked_at"]
    actions = ["revoke"]
    tenant_admin_can_add = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a token's secret is shown to its user only, on his own page

    @admin.action(description=_("Revoke selected API tokens"))
    def revoke(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for token in queryset:
            token.revoke()
