"""The admin names nothing of another tenant even where stored rows link two tenants (rows the
database refuses since the tenant-integrity migrations; stored here as before them)."""

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from ctiboard.tenancy.models import Extension, ExtensionGroup, Membership
from ctiboard.webhooks.models import WebhookDelivery
from tests.conftest import Company, logged_in
from tests.tenancy.crafted import unchecked
from tests.webhooks.support import webhook

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(tenant_admin: User) -> Client:
    return logged_in(tenant_admin)


@pytest.fixture
def stray(company: Company, other_company: Company, member: User) -> ExtensionGroup:
    """Our groups "Ours" and "Ours too" (a filter shows from two choices on) and the other
    tenant's "Theirs Secret", linked across the tenants: our member sees their group, their
    group holds our extension 100, ours holds their extension named Zebediah."""
    ours = ExtensionGroup.objects.create(tenant=company.tenant, name="Ours")
    ours.extensions.add(company.extensions[0])
    ours_too = ExtensionGroup.objects.create(tenant=company.tenant, name="Ours too")
    ours_too.extensions.add(company.extensions[1])
    theirs = ExtensionGroup.objects.create(tenant=other_company.tenant, name="Theirs Secret")
    their_ext = other_company.extensions[0]
    Extension.objects.filter(pk=their_ext.pk).update(name="Zebediah")
    membership = Membership.objects.get(user=member)
    membership.groups.add(ours, ours_too)
    with unchecked():
        membership.groups.add(theirs)
        theirs.extensions.add(company.extensions[0])
        ours.extensions.add(their_ext)
    return ours


def test_group_filters_list_only_own_tenants_groups(admin_client: Client, stray: object) -> None:
    for page in ("admin:pbx_membership_changelist", "admin:pbx_extension_changelist"):
        response = admin_client.get(reverse(page))
        assert response.status_code == 200
        specs = response.context["cl"].filter_specs
        groups = next(f for f in specs if getattr(f, "field_path", "") == "groups")
        assert [name for _, name in groups.lookup_choices] == ["Ours", "Ours too"], page
        assert "Theirs Secret" not in response.content.decode(), page


def test_group_search_matches_own_tenants_members_only(
    admin_client: Client, stray: ExtensionGroup
) -> None:
    def found(term: str) -> list[str]:
        response = admin_client.get(reverse("admin:pbx_extensiongroup_changelist"), {"q": term})
        return [group.name for group in response.context["cl"].result_list]

    assert found("Zebediah") == []  # another tenant's extension, linked to our group
    assert found("'Person 0'") == ["Ours"]  # our extension 100, by name
    assert found("100") == ["Ours"]
    assert found("'Ours' 100") == ["Ours"]  # every word must match, quoted as Django's search
    assert found("Ours Zebediah") == []


def test_delivery_log_filter_lists_only_own_tenants_webhooks(
    admin_client: Client, company: Company, other_company: Company
) -> None:
    ours = webhook(company.tenant, "https://crm.example/a", name="Our hook")
    ours_too = webhook(company.tenant, "https://crm.example/a", name="Our other hook")
    theirs = webhook(other_company.tenant, "https://crm.example/b", name="Their hook")
    fields = {"event": "ringing", "method": "POST", "url": "https://crm.example/a"}
    extension = company.extensions[0]
    for hook in (ours, ours_too):
        WebhookDelivery.objects.create(
            tenant=company.tenant, webhook=hook, extension=extension, uuid="u-1", **fields
        )
    with unchecked():
        WebhookDelivery.objects.create(
            tenant=company.tenant, webhook=theirs, extension=extension, uuid="u-2", **fields
        )
    response = admin_client.get(reverse("admin:webhooks_webhookdelivery_changelist"))
    specs = response.context["cl"].filter_specs
    hooks = next(f for f in specs if getattr(f, "field_path", "") == "webhook")
    assert sorted(name for _, name in hooks.lookup_choices) == ["Our hook", "Our other hook"]


def test_the_tenant_of_a_group_membership_or_webhook_is_read_only_once_saved(
    admin_client: Client, company: Company, other_company: Company, member: User
) -> None:
    # The database refuses the move (integrity.py); the form says so instead of failing.
    group = ExtensionGroup.objects.create(tenant=company.tenant, name="Sales")
    change = reverse("admin:pbx_extensiongroup_change", args=[group.pk])
    response = admin_client.post(
        change,
        {
            "tenant": other_company.tenant.pk,
            "name": "Sales 2",
            "extensions": [company.extensions[1].pk],
        },
    )
    assert response.status_code == 302
    group.refresh_from_db()
    assert (group.tenant, group.name) == (company.tenant, "Sales 2")
    assert list(group.extensions.all()) == [company.extensions[1]]
    # The tenant's check of the chosen extensions holds without the tenant in the form.
    response = admin_client.post(
        change, {"name": "Sales 3", "extensions": [other_company.extensions[1].pk]}
    )
    assert (
        response.status_code == 200
        and "name" not in response.context["adminform"].form.changed_data[:0]
    )
    group.refresh_from_db()
    assert group.name == "Sales 2"
    membership = Membership.objects.get(user=member)
    response = admin_client.post(
        reverse("admin:pbx_membership_change", args=[membership.pk]),
        {"user": member.pk, "groups": [], "extensions": [other_company.extensions[1].pk]},
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["extensions"]
    hook = webhook(company.tenant, "https://crm.example/a")
    response = admin_client.post(
        reverse("admin:webhooks_webhook_change", args=[hook.pk]),
        {"tenant": other_company.tenant.pk, "name": "CRM 2", "url": "https://crm.example/a"}
        | {"body_format": "json", "template": "", "secret": ""},
    )
    assert response.status_code == 302
    hook.refresh_from_db()
    assert (hook.tenant, hook.name) == (company.tenant, "CRM 2")
