"""API tokens: what a tool logs in to the gateway with instead of a user's password."""

import hashlib
import hmac
import secrets
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ctiboard.tenancy.models import Membership, Tenant

# `ctb_<prefix>_<secret>`: the prefix finds the row, the secret (256 bits) is checked against
# its SHA-256. A password hasher's slowness guards guessable passwords; this secret is not.
SECRET_PREFIX = "ctb_"  # noqa: S105 - the marker of a secret, not one
PREFIX_LENGTH = 12


class Scope(models.TextChoices):
    READ = "read", _("Read: extensions, states and calls")
    CALL = "call", _("Read and start calls")


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def usable(self) -> "ApiTokenQuerySet":
        """Not revoked, not expired, of an active user (his membership is checked per use)."""
        now = timezone.now()
        return self.filter(revoked_at__isnull=True, user__is_active=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(_("name"), max_length=100, help_text=_("What uses it, e.g. CRM."))
    scope = models.CharField(_("scope"), max_length=8, choices=Scope.choices, default=Scope.READ)
    prefix = models.CharField(max_length=PREFIX_LENGTH, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    created = models.DateTimeField(_("created"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True, editable=False)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.name} ({self.user} @ {self.tenant.account})"

    @classmethod
    def issue(cls, **fields: Any) -> tuple["ApiToken", str]:
        """A new token and its secret, which is shown once and never stored."""
        prefix = secrets.token_hex(PREFIX_LENGTH // 2)
        secret = f"{SECRET_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
        token = cls.objects.create(prefix=prefix, secret_hash=_digest(secret), **fields)
        return token, secret

    @property
    def may_call(self) -> bool:
        return self.scope == Scope.CALL

    @property
    def active(self) -> bool:
        return self.revoked_at is None and (
            self.expires_at is None or self.expires_at > timezone.now()
        )

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])

    def membership(self) -> Membership | None:
        """The user's membership of the token's tenant, if he still has one."""
        return (
            Membership.objects.of(self.user)
            .select_related("tenant", "own_extension")
            .filter(tenant=self.tenant_id)
            .first()
        )


def find(secret: str) -> ApiToken | None:
    """The usable token with this secret, or None (the same for every kind of wrong)."""
    if not secret.startswith(SECRET_PREFIX):
        return None
    prefix = secret[len(SECRET_PREFIX) :].split("_", 1)[0]
    token = ApiToken.objects.usable().select_related("user", "tenant").filter(prefix=prefix).first()
    if token is None or not hmac.compare_digest(token.secret_hash, _digest(secret)):
        return None
    return token


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
