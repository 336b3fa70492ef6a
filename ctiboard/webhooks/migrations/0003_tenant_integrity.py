# A webhook chooses extensions and groups of its own tenant only, and a delivery reports an
# extension of its webhook's tenant (ctiboard/tenancy/integrity.py): the rows that do not are
# logged and removed, then triggers refuse new ones on every write path.

from django.db import migrations

from ctiboard.tenancy.integrity import End, Link, Owned, operations

TENANT = End("tenant_id")
EXTENSION = End("extension_id", "pbx_extension")
WEBHOOK = End("webhook_id", "webhooks_webhook")

RULES = [
    Link("webhooks_webhook_extensions", WEBHOOK, EXTENSION),
    Link("webhooks_webhook_groups", WEBHOOK, End("extensiongroup_id", "pbx_extensiongroup")),
    Link("webhooks_webhookdelivery", TENANT, WEBHOOK),
    Link("webhooks_webhookdelivery", TENANT, EXTENSION),
    Owned("webhooks_webhook"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("pbx", "0009_tenant_integrity"),
        ("webhooks", "0002_delivery_revision"),
    ]

    operations = operations(RULES)
