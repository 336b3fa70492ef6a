from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from ctiboard.tenancy.admin_scope import TenantScopedAdmin

from .models import ActiveCall, CallAttempt, CallRecord


class _WrittenByTheWorker(TenantScopedAdmin):
    """Read-only: the ingest worker is the only writer. Tenant admins see their tenants'."""

    tenant_admin_can_add = False
    tenant_admin_can_delete = False
    list_select_related = ["tenant", "extension"]
    list_filter = [("tenant", admin.RelatedOnlyFieldListFilter), "direction"]
    search_fields = ["uuid", "partner", "extension__number", "extension__name"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ActiveCall)
class ActiveCallAdmin(_WrittenByTheWorker):
    list_display = [
        "extension",
        "tenant",
        "state",
        "raw_state",
        "direction",
        "partner",
        "started_at",
        "answered_at",
        "last_event_at",
    ]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The worker holds these in memory; it ends them itself (hangup or idle line).
        return False


@admin.register(CallRecord)
class CallRecordAdmin(_WrittenByTheWorker):
    list_display = [
        "ended_at",
        "extension",
        "tenant",
        "outcome",
        "direction",
        "partner",
        "ring_seconds",
        "talk_seconds",
        "ended_by",
    ]
    list_filter = [
        ("tenant", admin.RelatedOnlyFieldListFilter),
        "outcome",
        "direction",
        "ended_by",
    ]
    date_hierarchy = "ended_at"


@admin.register(CallAttempt)
class CallAttemptAdmin(TenantScopedAdmin):
    """The click-to-call log: who called whom from the board, the result, the request id."""

    tenant_admin_can_add = False
    tenant_admin_can_delete = False
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
    list_filter = [("tenant", admin.RelatedOnlyFieldListFilter), "status"]
    search_fields = ["caller", "callee", "uuid", "request_id", "user__username"]
    readonly_fields = [field.name for field in CallAttempt._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
