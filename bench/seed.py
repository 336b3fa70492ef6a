"""Seed a ctiboard database for a measure; run as ``python -m bench.seed SPEC.json``.

It runs with the settings of the stack under test (its SECRET_KEY encrypts the API
passwords, its DATABASE_URL or CTIBOARD_DATA_DIR picks the database) and prints one JSON line:
``{"tenants": {account: pk}, "sessions": {username: sessionid}}``.

SPEC::

    {"migrate": true,
     "users": [{"username": "alice", "password": "pw"}],
     "tenants": [{"account": "K1000", "base_url": "http://...", "api_username": "K1000/x",
                  "api_password": "pw", "enabled": true,
                  "extensions": 1000 | [[number, name, uuid], ...], "states": true,
                  "members": [{"user": "alice", "all": true}]}],
     "sessions": ["alice"]}
"""

import json
import random
import sys
from datetime import timedelta
from typing import Any

FIRST_NAMES = ("Anna", "Ben", "Clara", "David", "Eva", "Felix", "Greta", "Hans", "Ida", "Jan")
LAST_NAMES = ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker")
LINES = ("idle", "idle", "idle", "in-use", "ringing", "offline")
PRESENCES = ("available", "available", "away", "busy", "dnd", "offline")


def directory(count: int) -> list[tuple[str, str]]:
    rng = random.Random(count)
    return [
        (str(100 + i), f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}") for i in range(count)
    ]


def main(spec: dict[str, Any]) -> dict[str, Any]:
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import transaction
    from django.test import Client
    from django.utils import timezone

    from ctiboard.tenancy.models import Extension, Membership, Tenant

    if spec.get("migrate", True):
        call_command("migrate", interactive=False, verbosity=0)
    out: dict[str, Any] = {"tenants": {}, "sessions": {}}
    rng = random.Random(7)
    now = timezone.now()
    with transaction.atomic():
        users = {}
        for entry in spec.get("users", []):
            user, _ = User.objects.get_or_create(username=entry["username"])
            user.set_password(entry["password"])
            user.is_staff = user.is_superuser = bool(entry.get("superuser"))
            user.save()
            users[user.username] = user
        for entry in spec.get("tenants", []):
            tenant = Tenant.objects.create(
                name=entry.get("name", f"Bench {entry['account']}"),
                account=entry["account"],
                api_base_url=entry.get("base_url", "http://127.0.0.1:9/"),
                api_username=entry.get("api_username", f"{entry['account']}/bench"),
                api_password=entry.get("api_password", "unused"),
                enabled=entry.get("enabled", True),
            )
            listed = entry.get("extensions", 0)
            rows = directory(listed) if isinstance(listed, int) else [tuple(r) for r in listed]
            extensions = []
            for seq, row in enumerate(rows, start=1):
                number, name = row[0], row[1]
                extension = Extension(tenant=tenant, number=number, name=name, seq=seq)
                if len(row) > 2:  # the API's uuid, so that the first extension sync is a no-op
                    extension.api_uuid = row[2]
                if entry.get("states", False):
                    extension.line = rng.choice(LINES)
                    extension.presence = rng.choice(PRESENCES)
                    extension.line_since = extension.presence_since = now - timedelta(
                        seconds=rng.randrange(5, 7200)
                    )
                extensions.append(extension)
            Extension.objects.bulk_create(extensions, batch_size=1000)
            Tenant.objects.filter(pk=tenant.pk).update(event_seq=len(rows))
            for member in entry.get("members", []):
                Membership.objects.create(
                    user=users[member["user"]],
                    tenant=tenant,
                    sees_all_extensions=bool(member.get("all", True)),
                )
            out["tenants"][tenant.account] = tenant.pk
    for username in spec.get("sessions", []):
        client = Client()
        client.force_login(User.objects.get(username=username))
        out["sessions"][username] = client.cookies["sessionid"].value
    return out


if __name__ == "__main__":
    with open(sys.argv[1]) as source:
        print(json.dumps(main(json.load(source))))
