"""Who a gateway request acts for: the API token named by its JWT, its user and his membership,
checked again on every request and whenever an open stream hears that something changed."""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from ctiboard.tenancy.models import Extension, Membership, Tenant

from .jwts import Claims
from .models import ApiToken

# last_used_at is written at most this often per token: not a write per request.
TOUCH_INTERVAL = timedelta(seconds=60)


@dataclass(frozen=True)
class Grant:
    token: ApiToken
    membership: Membership

    @property
    def user(self) -> Any:
        return self.token.user

    @property
    def tenant(self) -> Tenant:
        return self.membership.tenant


def grant_of(token: ApiToken | None) -> Grant | None:
    """The token's grant, if it is usable and its user still a member of its tenant."""
    if token is None or not token.active or not token.user.is_active:
        return None
    membership = token.membership()
    if membership is None:
        return None
    return Grant(token, membership)


def grant_for(claims: Claims) -> Grant | None:
    token = (
        ApiToken.objects.usable()
        .select_related("user", "tenant")
        .filter(pk=claims.api_token, tenant__account=claims.account)
        .first()
    )
    if token is None or token.user.get_username() != claims.username:
        return None
    return grant_of(token)


def touch(token: ApiToken) -> None:
    """Note the token's use (an update without signals: it changes nothing a stream shows)."""
    now = timezone.now()
    ApiToken.objects.filter(pk=token.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - TOUCH_INTERVAL)
    ).update(last_used_at=now)


@dataclass(frozen=True)
class View:
    """What of the tenant a grant sees now, by the one rule (``Extension.objects.visible_to``)."""

    extensions: list[Extension]  # visible, by number
    details: frozenset[int]  # ids of those whose call details it may see
    seq: int  # every change up to this sequence number is in ``extensions``
    known: frozenset[int]  # every extension id of the tenant, gone ones included
    inactive: frozenset[int]


def view_of(grant: Grant) -> View:
    tenant = Tenant.objects.only("event_seq").get(pk=grant.tenant.pk)
    rows = list(Extension.objects.filter(tenant=tenant).values_list("pk", "active", "seq"))
    visible = Extension.objects.visible_to(grant.user).filter(tenant=tenant)
    details = Extension.objects.visible_to(grant.user, details=True).filter(tenant=tenant)
    return View(
        extensions=list(visible.order_by("number")),
        details=frozenset(details.values_list("pk", flat=True)),
        # The counter was read before the rows: a row may be newer, never older.
        seq=max([tenant.event_seq, *(seq for _, _, seq in rows)]),
        known=frozenset(pk for pk, _, _ in rows),
        inactive=frozenset(pk for pk, active, _ in rows if not active),
    )
