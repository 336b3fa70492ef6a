# A call leg (live or recorded) is of its extension's tenant (ctiboard/tenancy/integrity.py):
# the rows that are not are logged and removed, then triggers refuse new ones.

from django.db import migrations

from ctiboard.tenancy.integrity import End, Link, operations

TENANT = End("tenant_id")
EXTENSION = End("extension_id", "pbx_extension")

RULES = [
    Link("calls_activecall", TENANT, EXTENSION),
    Link("calls_callrecord", TENANT, EXTENSION),
]


class Migration(migrations.Migration):
    dependencies = [
        ("pbx", "0009_tenant_integrity"),
        ("calls", "0002_callattempt"),
    ]

    operations = operations(RULES)
