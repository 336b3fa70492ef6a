"""Admin pages whose saves and deletes go into the audit log, field by field (tenancy.audit)."""

from typing import Any

from django.contrib import admin
from django.db import models, transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from . import audit
from .models import AuditAction

# Per request: the snapshots taken before the admin saved each row (by model and pk).
_BEFORE = "_ctiboard_audit_before"


class AuditedAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Every add, change (change form, list editing) and delete writes one audit entry."""

    # Pseudo-fields recorded besides the model's own: name -> (label, value of the row).
    audit_extra: audit.Extra = {}

    def audit_snapshot(self, obj: models.Model) -> dict[str, audit.Value]:
        return audit.snapshot(obj, self.audit_extra)

    def audit_subject(self, obj: Any) -> str:
        return str(obj)

    def _record(self, request: HttpRequest, obj: Any, action: str, before: Any, after: Any) -> bool:
        entry = audit.record(
            request.user, obj, action, before, after, subject=self.audit_subject(obj)
        )
        return entry is not None

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change and obj.pk is not None:
            # The stored row (``obj`` already holds the form's values).
            stored = type(obj)._default_manager.get(pk=obj.pk)
            befores = request.__dict__.setdefault(_BEFORE, {})
            befores[(type(obj), obj.pk)] = self.audit_snapshot(stored)
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        # After the many-to-many rows are written, so the entry shows the row as saved.
        obj = form.instance
        before = getattr(request, _BEFORE, {}).pop((type(obj), obj.pk), None)
        action = AuditAction.CHANGED if change else AuditAction.ADDED
        self._record(request, obj, action, before, self.audit_snapshot(obj))

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with transaction.atomic():
            self._record(request, obj, AuditAction.DELETED, self.audit_snapshot(obj), None)
            super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        with transaction.atomic():
            for obj in queryset:
                self._record(request, obj, AuditAction.DELETED, self.audit_snapshot(obj), None)
            super().delete_queryset(request, queryset)

    def audit_change(self, request: HttpRequest, obj: Any, change: Any) -> bool:
        """Apply ``change(obj)`` (a bulk action's work) and log what it changed; True if so."""
        before = self.audit_snapshot(obj)
        change(obj)
        return self._record(request, obj, AuditAction.CHANGED, before, self.audit_snapshot(obj))
