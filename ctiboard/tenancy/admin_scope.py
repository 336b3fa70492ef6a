"""Tenant administrators: staff users who manage only their own tenants in the admin."""

from typing import Any

from django.contrib import admin
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest

from .models import Tenant


def administered_tenants(user: Any) -> QuerySet[Tenant]:
    if not user.is_active or not user.is_staff:
        return Tenant.objects.none()
    if user.is_superuser:
        return Tenant.objects.all()
    return Tenant.objects.filter(memberships__user=user, memberships__is_tenant_admin=True)


def in_tenants(model: type[Model], user: Any) -> Q:
    """Rows of ``model`` within the tenants the user administers (no condition for a model
    that belongs to no tenant)."""
    if model is Tenant:
        return Q(pk__in=administered_tenants(user))
    if any(f.name == "tenant" for f in model._meta.get_fields()):
        return Q(tenant__in=administered_tenants(user))
    return Q()


def form_tenant(form: Any, data: dict[str, Any]) -> Tenant | None:
    """The tenant a form's rows must share: the chosen one, or on a change form that shows it
    read-only (``tenant_fixed``) the stored one."""
    tenant: Tenant | None = data.get("tenant")
    if tenant is None and getattr(form.instance, "tenant_id", None) is not None:
        tenant = form.instance.tenant
    return tenant


class ScopedRelatedOnlyFieldListFilter(admin.RelatedOnlyFieldListFilter):
    """Offers the values present in the (tenant-scoped) list, and of those only the user's
    tenants': a row linking into another tenant (the database refuses new ones, integrity.py)
    must not show that tenant's names."""

    def field_choices(self, field: Any, request: HttpRequest, model_admin: Any) -> Any:
        present = (
            model_admin.get_queryset(request)
            .distinct()
            .values_list(f"{self.field_path}__pk", flat=True)
        )
        return field.get_choices(
            include_blank=False,
            limit_choices_to=Q(pk__in=present) & in_tenants(field.related_model, request.user),
            ordering=self.field_admin_ordering(field, request, model_admin),
        )


class TenantScopedAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Superusers see everything; tenant administrators their tenants' objects only.

    ``tenant_path`` is the lookup from the model to its tenant. Tenant administrators need
    no Django model permissions: being a tenant administrator is the permission.
    """

    tenant_path = "tenant"
    tenant_admin_can_add = True
    tenant_admin_can_delete = True
    # The database refuses to move the model's rows to another tenant (integrity.py): the
    # change form shows the tenant read-only instead of failing on save.
    tenant_fixed = False

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

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        fields = super().get_readonly_fields(request, obj)
        if self.tenant_fixed and obj is not None and "tenant" not in fields:
            return [*fields, "tenant"]
        return fields

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
        return queryset.filter(in_tenants(model, request.user))
