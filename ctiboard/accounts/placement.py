"""Which tenant a user signing in through the company's provider belongs to."""

import logging
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User

from ctiboard.tenancy.models import AuditAction, AuditEntry, Membership, Tenant

log = logging.getLogger(__name__)


def tenant_for(claims: Mapping[str, Any], email: str) -> Tenant | None:
    """The tenant the K-Account claim names; without the claim, the e-mail domain's.

    A claim naming no tenant places nobody: falling back to the domain could put a user of
    one company into another that shares it.
    """
    claim = settings.CTIBOARD_OIDC_TENANT_CLAIM
    if claim and claim in claims:
        account = claims[claim]
        tenant = (
            Tenant.objects.filter(account__iexact=account.strip()).first()
            if isinstance(account, str) and account.strip()
            else None
        )
        if tenant is None:
            log.warning("sign-in of %s: claim %s=%r names no tenant", email, claim, account)
        return tenant
    domain = email.rpartition("@")[2].lower()
    account = settings.CTIBOARD_OIDC_TENANT_DOMAINS.get(domain)
    if account is None:
        return None
    tenant = Tenant.objects.filter(account__iexact=account).first()
    if tenant is None:
        log.warning("CTIBOARD_OIDC_TENANT_DOMAINS: %s=%s names no tenant", domain, account)
    return tenant


def place(user: User, claims: Mapping[str, Any]) -> Membership | None:
    """Make the user a member of his tenant, seeing nothing until a tenant admin grants it.

    An existing membership is left as it is: its rights are the tenant admin's.
    """
    tenant = tenant_for(claims, user.email)
    if tenant is None:
        return None
    membership, created = Membership.objects.get_or_create(
        user=user, tenant=tenant, defaults={"sees_all_extensions": False}
    )
    if created:
        AuditEntry.objects.create(
            tenant=tenant,
            actor=None,
            action=AuditAction.RIGHTS,
            subject=user.get_username(),
            detail="joined through company sign-in; " + membership.describe_rights(),
        )
    return membership
