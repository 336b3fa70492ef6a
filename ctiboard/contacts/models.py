"""The tenant's phonebook: names for the numbers that call in and are called."""

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from ctiboard.lib import phonenumbers
from ctiboard.tenancy.models import Tenant


class Contact(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="contacts")
    name = models.CharField(_("name"), max_length=200)
    number = models.CharField(
        _("number"),
        max_length=40,
        help_text=_("As you like to write it: +49 89 1234567, 089 1234567 or an extension."),
    )
    # The number as the PBX reports it (E.164 digits without + or an extension number):
    # what calls are looked up by.
    number_key = models.CharField(max_length=20, db_index=True, editable=False)
    vip = models.BooleanField(_("VIP"), default=False, help_text=_("Rings with its own tone."))
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant", "name"]
        indexes = [models.Index(fields=["tenant", "number_key"], name="contact_lookup")]
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")

    def __str__(self) -> str:
        return f"{self.name} ({self.number})"

    def save(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.number_key = key_for(self.number, self.tenant)
        super().save(*args, **kwargs)

    def clean(self) -> None:
        if self.tenant_id is None:
            return
        try:
            phonenumbers.parse(self.number, self.tenant.country_code)
        except phonenumbers.InvalidNumber as exc:
            raise ValidationError({"number": str(exc)}) from None

    @property
    def display_number(self) -> str:
        return phonenumbers.display(
            self.number_key,
            external=is_external_key(self.number_key),
            country_code=self.tenant.country_code,
        )


def key_for(number: str, tenant: Tenant) -> str:
    return phonenumbers.normalise(number, tenant.country_code)


def is_external_key(key: str) -> bool:
    """Keys of external numbers are E.164 digits, longer than any extension we dial."""
    return len(key) >= phonenumbers.E164_MIN


def lookup(tenant: Tenant, numbers: Iterable[str]) -> dict[str, Contact]:
    """Contacts for call partners' numbers (as the PBX reports them), keyed by that number.

    One query for any number of partners; VIPs win when a number is in the book twice.
    """
    keys = {number: key_for(number, tenant) for number in numbers if number}
    wanted = {key for key in keys.values() if key}
    if not wanted:
        return {}
    found: dict[str, Contact] = {}
    for contact in Contact.objects.filter(tenant=tenant, number_key__in=wanted).order_by(
        "vip", "-name"
    ):
        found[contact.number_key] = contact  # the last one wins: VIP, then first by name
    return {number: found[key] for number, key in keys.items() if key in found}
