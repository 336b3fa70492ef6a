"""What one user may see and do on one tenant's board."""

from dataclasses import dataclass, field
from typing import Any

from ctiboard.pbx.models import Extension, Membership, Tenant


@dataclass(frozen=True)
class Viewer:
    user_id: int
    tenant: Tenant
    own_extension_id: int | None
    may_call: bool
    may_call_external: bool
    # Partner numbers, names and direction of calls; otherwise line state and presence only.
    details: bool
    # Extensions the user pinned to the top of his board.
    favourites: frozenset[int] = field(default_factory=frozenset)

    @classmethod
    def of(cls, membership: Membership) -> "Viewer":
        from .models import Favourite

        favourites = Favourite.objects.filter(
            user_id=membership.user_id, extension__tenant_id=membership.tenant_id
        ).values_list("extension_id", flat=True)
        return cls(
            user_id=membership.user_id,
            tenant=membership.tenant,
            own_extension_id=membership.own_extension_id,
            may_call=membership.may_call,
            may_call_external=membership.may_call_external,
            details=membership.sees_call_details,
            favourites=frozenset(favourites),
        )

    def can_call(self, extension: Extension) -> bool:
        return self.may_call and extension.pk != self.own_extension_id

    def variant(self, extension: Extension) -> tuple[bool, bool, bool, bool]:
        """Everything per-user in a tile; tiles of equal variant render identically."""
        return (
            extension.pk == self.own_extension_id,
            self.can_call(extension),
            self.details,
            extension.pk in self.favourites,
        )


def membership_for(user: Any, account: str) -> Membership | None:
    return (
        Membership.objects.of(user)
        .select_related("tenant", "own_extension")
        .filter(tenant__account=account)
        .first()
    )


def visible_extensions(user: Any, tenant: Tenant) -> list[Extension]:
    return list(Extension.objects.visible_to(user).filter(tenant=tenant).order_by("number"))
