"""Tenant administrators: staff users who manage only their own tenants in the admin."""

from typing import Any

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from .models import Tenant


def administered_tenants(user: Any) -> QuerySet[Tenant]:
    if not user.is_active or not user.is_staff:
        return Tenant.objects.none()
    if user.is_superuser:
        return Tenant.objects.all()
    return Tenant.objects.filter(memberships__user=user, memberships__is_tenant_admin=True)


class TenantScopedAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Superusers see everything; tenant administrators their tenants' objects only.

    ``tenant_path`` is the lookup from the model to its tenant. Tenant administrators need
    no Django model permissions: being a tenant administrator is the permission.
    """

    tenant_path = "tenant"
    tenant_admin_can_add = True
    tenant_admin_can_delete = True

    def _tenants(self, request: HttpRequest) -> QuerySet[Tenant]:
        return administered_tenants(request.user)

    def _scoped(self, request: HttpRequest) -> bool:
        return not request.user.is_superuser

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        if self._scoped(request):
            queryset = queryset.filter(**{f"{self.tenant_path}__in": self._tenants(request)})
        return queryset

    def _in_scope(self, request: HttpRequest, obj: Model | None) -> bool:
        if obj is None:
            return self._tenants(request).exists()
        return self.get_queryset(request).filter(pk=obj.pk).exists()

    def has_module_permission(self, request: HttpRequest) -> bool:
        if not self._scoped(request):
            return super().has_module_permission(request)
        return self._tenants(request).exists()

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        if not self._scoped(request):
            return super().has_view_permission(request, obj)
        return self._in_scope(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        if not self._scoped(request):
            return super().has_change_permission(request, obj)
        return self._in_scope(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        if not self._scoped(request):
            return super().has_add_permission(request)
        return self.tenant_admin_can_add and self._tenants(request).exists()

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        if not self._scoped(request):
            return super().has_delete_permission(request, obj)
        return self.tenant_admin_can_delete and self._in_scope(request, obj)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if self._scoped(request) and field is not None:
            field.queryset = self._limit(db_field.related_model, field.queryset, request)
        return field

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        if self._scoped(request) and field is not None:
            field.queryset = self._limit(db_field.related_model, field.queryset, request)
        return field

    def _limit(self, model: type[Model], queryset: Any, request: HttpRequest) -> Any:
        tenants = self._tenants(request)
        if model is Tenant:
            return queryset.filter(pk__in=tenants)
        if any(f.name == "tenant" for f in model._meta.get_fields()):
            return queryset.filter(tenant__in=tenants)
        return queryset
