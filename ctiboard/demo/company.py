"""The demo company around the simulated PBX: departments, a phonebook with VIPs and a CRM link.

Seeded once: what an administrator changes in the demo's admin stays changed on restart.
"""

from collections.abc import Sequence

from ctiboard.contacts.models import Contact
from ctiboard.tenancy.models import Extension, ExtensionGroup, Tenant

CRM_URL = "https://crm.example/search?phone={number}"

# In extension order: Sales first, so Bob's team of twelve (the first extensions) is Sales,
# Alice (the first extension) its head.
DEPARTMENTS = (("Sales", 12), ("Support", 14), ("Accounting", 8), ("Management", 4))
# The rest of the extensions: a department too, so no tile stands outside one.
REST = "Logistics"

# Callers the demo's opening scene uses (demo.scene); numbers as a CRM exports them.
PHONEBOOK = (
    ("Müller Maschinenbau AG", "+49 89 4711 0815", True),
    ("Stadtwerke Nordhafen", "+49 40 3344 5566", True),
    ("Schneider & Partner Steuerberatung", "+49 30 2233 4455", False),
    ("Bäckerei Hofmann", "+49 221 987 654", False),
    ("Alpen Logistik GmbH", "+43 1 234 5678", False),
    ("Zürcher Versicherung", "+41 44 555 66 77", False),
)


def company_settings(tenant: Tenant) -> None:
    """The tenant's CRM link, unless an administrator set another."""
    if not tenant.crm_url_template:
        tenant.crm_url_template = CRM_URL
        tenant.save(update_fields=["crm_url_template"])
    for name, number, vip in PHONEBOOK:
        Contact.objects.get_or_create(
            tenant=tenant, name=name, defaults={"number": number, "vip": vip}
        )


def departments(tenant: Tenant, extensions: Sequence[Extension]) -> None:
    """Groups of the extensions (in extension order), created once."""
    if ExtensionGroup.objects.filter(tenant=tenant).exists():
        return
    start = 0
    for name, size in (*DEPARTMENTS, (REST, len(extensions))):
        members = extensions[start : start + size]
        start += size
        if members:
            group = ExtensionGroup.objects.create(tenant=tenant, name=name)
            group.extensions.set(members)
