# No visibility row or own extension links two tenants (ctiboard/tenancy/integrity.py): the
# rows that do are logged and removed, then triggers refuse new ones on every write path.

from django.db import migrations

from ctiboard.tenancy.integrity import End, Link, Owned, operations

EXTENSION = End("extension_id", "pbx_extension")
GROUP = End("extensiongroup_id", "pbx_extensiongroup")
MEMBERSHIP = End("membership_id", "pbx_membership")

RULES = [
    Link("pbx_extensiongroup_extensions", GROUP, EXTENSION),
    Link("pbx_membership_extensions", MEMBERSHIP, EXTENSION),
    Link("pbx_membership_groups", MEMBERSHIP, GROUP),
    Link("pbx_membership", End("tenant_id"), End("own_extension_id", "pbx_extension"), clear=True),
    Owned("pbx_extension"),
    Owned("pbx_extensiongroup"),
    Owned("pbx_membership"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("pbx", "0008_worker_incarnation_unserved"),
    ]

    operations = operations(RULES)
