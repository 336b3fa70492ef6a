"""Tenant integrity in the database (ctiboard/tenancy/integrity.py): no write path links two
tenants, on SQLite (the default test database) and on PostgreSQL (a database of its own on
127.0.0.1, migrated like production, or skipped); the migration removes stored links first."""

import logging
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import IntegrityError, connections, transaction
from django.db.migrations.executor import MigrationExecutor
from pytest_django import DjangoDbBlocker

from bench.procs import postgres_admin
from ctiboard.calls.models import ActiveCall, CallRecord
from ctiboard.tenancy.models import Extension, ExtensionGroup, Membership, Tenant
from ctiboard.webhooks.models import Webhook, WebhookDelivery

PG_ALIAS = "integrity_postgresql"
WHEN = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
REFUSED = "tenant integrity"


# Every test runs in Django's test transaction on all databases, the PostgreSQL one included.
pytestmark = pytest.mark.django_db(databases="__all__")


@pytest.fixture(scope="module")
def postgresql(django_db_setup: None, django_db_blocker: DjangoDbBlocker) -> Iterator[str | None]:
    """An alias on a fresh PostgreSQL database that ``migrate`` built, triggers included, or
    None (and why, printed) without PostgreSQL. Module-scoped, so it exists before the test
    transaction that covers every alias starts."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    admin_dsn, why = postgres_admin()
    if admin_dsn is None:
        print(f"PostgreSQL at 127.0.0.1:5432 is unreachable ({why})")
        yield None
        return
    name = f"ctiboard_integrity_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    settings = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": conninfo_to_dict(admin_dsn)["user"],
        "HOST": "127.0.0.1",
        "PORT": "5432",
    }
    try:
        configured = connections.configure_settings({**connections.settings, PG_ALIAS: settings})
        connections.settings[PG_ALIAS] = configured[PG_ALIAS]
        with django_db_blocker.unblock():
            call_command("migrate", database=PG_ALIAS, verbosity=0, interactive=False)
            try:
                yield PG_ALIAS
            finally:
                connections[PG_ALIAS].close()
    finally:
        if PG_ALIAS in connections.settings:
            del connections[PG_ALIAS]
            del connections.settings[PG_ALIAS]
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["default", "postgresql"])
def alias(request: pytest.FixtureRequest, postgresql: str | None) -> str:
    """Each test once on the default database (SQLite) and once on PostgreSQL."""
    if request.param == "default":
        return "default"
    if postgresql is None:
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is unreachable")
    return postgresql


@dataclass
class World:
    """Tenant A (ours) and tenant B (theirs), each with extensions, a group, a membership
    and a webhook, on one database."""

    alias: str
    ours: Tenant
    theirs: Tenant
    ext: Extension
    their_ext: Extension
    group: ExtensionGroup
    their_group: ExtensionGroup
    membership: Membership
    hook: Webhook
    their_hook: Webhook


def build(alias: str) -> World:
    def tenant(account: str) -> Tenant:
        return Tenant.objects.using(alias).create(
            name=account, account=account, api_username="u", api_password="p"
        )

    ours, theirs = tenant("K7001"), tenant("K7002")
    ext = Extension.objects.using(alias).create(tenant=ours, number="100", name="Ours")
    their_ext = Extension.objects.using(alias).create(tenant=theirs, number="200", name="Theirs")
    user = User.objects.db_manager(alias).create_user("member")
    return World(
        alias=alias,
        ours=ours,
        theirs=theirs,
        ext=ext,
        their_ext=their_ext,
        group=ExtensionGroup.objects.using(alias).create(tenant=ours, name="Sales"),
        their_group=ExtensionGroup.objects.using(alias).create(tenant=theirs, name="Secret"),
        membership=Membership.objects.using(alias).create(user=user, tenant=ours),
        hook=Webhook.objects.using(alias).create(tenant=ours, name="CRM", url="https://a.example"),
        their_hook=Webhook.objects.using(alias).create(
            tenant=theirs, name="Their CRM", url="https://b.example"
        ),
    )


def through(field: object, w: World) -> object:
    return field.through.objects.using(w.alias)  # type: ignore[attr-defined]


def call_leg(model: type, w: World, **fields: object) -> object:
    common = {"tenant": w.ours, "extension": w.ext, "uuid": "u-1"}
    if model is ActiveCall:
        common |= {"state": "ringing", "last_event_at": WHEN}
    else:
        common |= {"outcome": "answered", "ended_at": WHEN, "ended_by": "hangup"}
    return model.objects.using(w.alias).create(**{**common, **fields})


def delivery(w: World, **fields: object) -> WebhookDelivery:
    common = {"tenant": w.ours, "webhook": w.hook, "extension": w.ext, "event": "ringing"}
    return WebhookDelivery.objects.using(w.alias).create(
        **{**common, "uuid": "u-1", "method": "POST", "url": "https://a.example", **fields}
    )


def raw_insert(w: World) -> None:
    with connections[w.alias].cursor() as cursor:
        cursor.execute(
            "INSERT INTO pbx_membership_extensions (membership_id, extension_id) VALUES (%s, %s)",
            [w.membership.pk, w.their_ext.pk],
        )


# Every way the isolation test (and a shell) made a cross-tenant link, by name.
WAYS: dict[str, Callable[[World], object]] = {
    # Membership.extensions: what a member sees, chosen one by one
    "membership.extensions.add": lambda w: w.membership.extensions.add(w.their_ext),
    "membership.extensions.set": lambda w: w.membership.extensions.set([w.ext, w.their_ext]),
    "reverse extension.visible_memberships.add": lambda w: w.their_ext.visible_memberships.add(
        w.membership
    ),
    "membership extensions through create": lambda w: through(Membership.extensions, w).create(
        membership=w.membership, extension=w.their_ext
    ),
    "membership extensions through bulk_create": lambda w: through(
        Membership.extensions, w
    ).bulk_create(
        [
            Membership.extensions.through(membership=w.membership, extension=w.ext),
            Membership.extensions.through(membership=w.membership, extension=w.their_ext),
        ]
    ),
    "membership extensions through bulk_create ignore_conflicts": lambda w: through(
        Membership.extensions, w
    ).bulk_create(
        [Membership.extensions.through(membership=w.membership, extension=w.their_ext)],
        ignore_conflicts=True,
    ),
    "membership extensions through update": lambda w: (
        w.membership.extensions.add(w.ext),
        through(Membership.extensions, w).update(extension=w.their_ext),
    ),
    "membership extensions by raw SQL": raw_insert,
    # Membership.groups
    "membership.groups.add": lambda w: w.membership.groups.add(w.their_group),
    "membership.groups.set": lambda w: w.membership.groups.set([w.group, w.their_group]),
    "membership groups through bulk_create": lambda w: through(Membership.groups, w).bulk_create(
        [Membership.groups.through(membership=w.membership, extensiongroup=w.their_group)]
    ),
    "membership groups through update": lambda w: (
        w.membership.groups.add(w.group),
        through(Membership.groups, w).update(extensiongroup=w.their_group),
    ),
    # ExtensionGroup.extensions
    "group.extensions.add": lambda w: w.group.extensions.add(w.their_ext),
    "group.extensions.set": lambda w: w.group.extensions.set([w.their_ext]),
    "reverse extension.groups.add": lambda w: w.their_ext.groups.add(w.group),
    "group extensions through bulk_create": lambda w: through(
        ExtensionGroup.extensions, w
    ).bulk_create(
        [ExtensionGroup.extensions.through(extensiongroup=w.group, extension=w.their_ext)]
    ),
    "group extensions through update": lambda w: (
        w.group.extensions.add(w.ext),
        through(ExtensionGroup.extensions, w).update(extensiongroup=w.their_group),
    ),
    # Membership.own_extension: the phone the board calls from
    "own extension on create": lambda w: Membership.objects.using(w.alias).create(
        user=User.objects.db_manager(w.alias).create_user("other"),
        tenant=w.ours,
        own_extension=w.their_ext,
    ),
    "own extension by save": lambda w: (
        setattr(w.membership, "own_extension", w.their_ext),
        w.membership.save(),
    ),
    "own extension by update": lambda w: Membership.objects.using(w.alias).update(
        own_extension=w.their_ext
    ),
    # A linked row moved into another tenant with its links
    "extension moved by update": lambda w: (
        Extension.objects.using(w.alias).filter(pk=w.ext.pk).update(tenant=w.theirs)
    ),
    "group moved by save": lambda w: (setattr(w.group, "tenant", w.theirs), w.group.save()),
    "membership moved by update": lambda w: Membership.objects.using(w.alias).update(
        tenant=w.theirs
    ),
    "webhook moved by update": lambda w: (
        Webhook.objects.using(w.alias).filter(pk=w.hook.pk).update(tenant=w.theirs)
    ),
    # Webhooks: which extensions and groups one reports, and its outbox
    "webhook.extensions.add": lambda w: w.hook.extensions.add(w.their_ext),
    "webhook.groups.set": lambda w: w.hook.groups.set([w.their_group]),
    "webhook extensions through bulk_create": lambda w: through(Webhook.extensions, w).bulk_create(
        [Webhook.extensions.through(webhook=w.hook, extension=w.their_ext)]
    ),
    "webhook groups through update": lambda w: (
        w.hook.groups.add(w.group),
        through(Webhook.groups, w).update(extensiongroup=w.their_group),
    ),
    "delivery of another tenant's extension": lambda w: delivery(w, extension=w.their_ext),
    "delivery through another tenant's webhook": lambda w: delivery(w, webhook=w.their_hook),
    "delivery moved by update": lambda w: (
        delivery(w),
        WebhookDelivery.objects.using(w.alias).update(tenant=w.theirs),
    ),
    # Call legs: live and recorded
    "active call of another tenant's extension": lambda w: call_leg(
        ActiveCall, w, extension=w.their_ext
    ),
    "active call moved by update": lambda w: (
        call_leg(ActiveCall, w),
        ActiveCall.objects.using(w.alias).update(tenant=w.theirs),
    ),
    "call record of another tenant's extension": lambda w: call_leg(
        CallRecord, w, extension=w.their_ext
    ),
    "call record moved by update": lambda w: (
        call_leg(CallRecord, w),
        CallRecord.objects.using(w.alias).update(tenant=w.theirs),
    ),
}


@pytest.mark.parametrize("way", WAYS)
def test_every_way_of_linking_two_tenants_is_refused(alias: str, way: str) -> None:
    w = build(alias)
    with pytest.raises(IntegrityError, match=REFUSED), transaction.atomic(using=alias):
        WAYS[way](w)


def test_links_within_one_tenant_are_written(alias: str) -> None:
    w = build(alias)
    other_ext = Extension.objects.using(alias).create(tenant=w.ours, number="101")
    w.group.extensions.set([w.ext, other_ext])
    w.membership.groups.add(w.group)
    w.membership.extensions.add(w.ext)
    through(Membership.extensions, w).update(extension=other_ext)
    w.membership.own_extension = w.ext
    w.membership.save()
    w.hook.extensions.add(w.ext)
    w.hook.groups.add(w.group)
    delivery(w)
    call_leg(ActiveCall, w)
    call_leg(CallRecord, w)
    # A save that keeps the tenant passes the "never moves" rule.
    Extension.objects.using(alias).filter(pk=w.ext.pk).update(tenant=w.ours, name="Renamed")
    assert list(w.membership.extensions.values_list("number", flat=True)) == ["101"]
    assert sorted(w.membership.groups.get().extensions.values_list("number", flat=True)) == [
        "100",
        "101",
    ]


# --- the migration: stored cross-tenant rows are reported and removed -------------------------

BEFORE = [
    ("pbx", "0008_worker_incarnation_unserved"),
    ("webhooks", "0002_delivery_revision"),
    ("calls", "0002_callattempt"),
]


def _migrate(alias: str, targets: list[tuple[str, str]] | None) -> None:
    executor = MigrationExecutor(connections[alias])
    executor.migrate(targets or executor.loader.graph.leaf_nodes())


@pytest.fixture
def migrated_alias(alias: str) -> Iterator[str]:
    """The database migrated back to before the integrity migrations for the test, and
    forward again after it, whatever happened."""
    try:
        _migrate(alias, BEFORE)
        yield alias
    finally:
        _migrate(alias, None)


# SQLite cannot alter its schema inside the test transaction: this test commits (and
# pytest-django empties every table after it).
@pytest.mark.django_db(transaction=True, databases="__all__")
def test_the_migration_reports_and_removes_stored_cross_tenant_rows(
    migrated_alias: str, caplog: pytest.LogCaptureFixture
) -> None:
    alias = migrated_alias
    w = build(alias)
    good = Extension.objects.using(alias).create(tenant=w.ours, number="101")
    # Ours, to be kept...
    w.group.extensions.add(w.ext)
    w.membership.extensions.add(w.ext)
    w.membership.groups.add(w.group)
    w.hook.extensions.add(good)
    w.hook.groups.add(w.group)
    kept_delivery = delivery(w)
    kept_leg = call_leg(CallRecord, w)
    # ...and every kind of row linking two tenants, as scripts wrote them before the triggers.
    w.group.extensions.add(w.their_ext)
    w.membership.extensions.add(w.their_ext)
    w.membership.groups.add(w.their_group)
    Membership.objects.using(alias).filter(pk=w.membership.pk).update(own_extension=w.their_ext)
    w.hook.extensions.add(w.their_ext)
    w.hook.groups.add(w.their_group)
    delivery(w, extension=w.their_ext, uuid="u-2")
    delivery(w, webhook=w.their_hook, uuid="u-3")
    call_leg(ActiveCall, w, extension=w.their_ext)
    call_leg(CallRecord, w, extension=w.their_ext, uuid="u-2")

    with caplog.at_level(logging.WARNING, logger="ctiboard.tenancy.integrity"):
        _migrate(alias, None)

    reports = [r.getMessage() for r in caplog.records if r.name == "ctiboard.tenancy.integrity"]
    assert len(reports) == 10, reports
    assert sum("clearing pbx_membership row" in report for report in reports) == 1
    assert all("tenant" in report for report in reports)
    membership = Membership.objects.using(alias).get(pk=w.membership.pk)
    assert membership.own_extension_id is None  # cleared, the membership stays
    assert list(w.group.extensions.all()) == [w.ext]
    assert list(membership.extensions.all()) == [w.ext]
    assert list(membership.groups.all()) == [w.group]
    assert list(w.hook.extensions.all()) == [good]
    assert list(w.hook.groups.all()) == [w.group]
    assert list(WebhookDelivery.objects.using(alias).all()) == [kept_delivery]
    assert not ActiveCall.objects.using(alias).exists()
    assert list(CallRecord.objects.using(alias).all()) == [kept_leg]
    # And the triggers are in place from now on.
    with pytest.raises(IntegrityError, match=REFUSED), transaction.atomic(using=alias):
        w.membership.extensions.add(w.their_ext)
