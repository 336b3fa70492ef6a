"""The admin: superusers see everything, tenant administrators only their own tenant."""

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from ctiboard.tenancy.models import AuditEntry, ExtensionGroup, Membership, Tenant
from tests.conftest import PASSWORD, Company, make_user


@pytest.fixture
def superuser(db: None) -> User:
    return User.objects.create_superuser("root", password=PASSWORD)


def logged_in(user: User) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_tenant_admin_sees_only_his_tenant(
    tenant_admin: User, company: Company, other_company: Company
) -> None:
    client = logged_in(tenant_admin)
    tenants = client.get(reverse("admin:pbx_tenant_changelist")).content.decode()
    assert company.tenant.account in tenants and other_company.tenant.account not in tenants
    extensions = client.get(reverse("admin:pbx_extension_changelist") + "?q=Person")
    assert extensions.status_code == 200
    assert extensions.context["cl"].result_count == len(company.extensions)
    foreign = other_company.extensions[0]
    response = client.get(reverse("admin:pbx_extension_change", args=[foreign.pk]))
    assert response.status_code in (302, 404)  # the admin redirects on unknown objects
    response = client.get(reverse("admin:pbx_tenant_change", args=[other_company.tenant.pk]))
    assert response.status_code in (302, 404)


def test_tenant_admin_cannot_create_tenants_or_see_auth_admin(tenant_admin: User) -> None:
    client = logged_in(tenant_admin)
    assert client.get(reverse("admin:pbx_tenant_add")).status_code == 403
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 403


def test_plain_staff_without_tenant_sees_no_pbx_data(company: Company) -> None:
    user = make_user("staffonly")
    user.is_staff = True
    user.save()
    client = logged_in(user)
    assert client.get(reverse("admin:pbx_tenant_changelist")).status_code == 403
    assert client.get(reverse("admin:pbx_membership_changelist")).status_code == 403


def test_tenant_admin_creates_a_user_with_a_group_and_it_is_audited(
    tenant_admin: User, company: Company, other_company: Company
) -> None:
    group = ExtensionGroup.objects.create(tenant=company.tenant, name="Sales")
    group.extensions.set(company.extensions[:2])
    client = logged_in(tenant_admin)
    response = client.post(
        reverse("admin:pbx_membership_add"),
        {
            "new_username": "newbie",
            "new_password": "a-long-enough-password-42",
            "tenant": company.tenant.pk,
            "groups": [group.pk],
            "sees_call_details": "on",
            "can_call": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    newbie = User.objects.get(username="newbie")
    membership = Membership.objects.get(user=newbie)
    assert list(membership.groups.all()) == [group]
    entry = AuditEntry.objects.get(subject="newbie")
    assert entry.actor == tenant_admin and "Sales" in entry.detail


def test_tenant_admin_cannot_grant_another_tenants_extensions(
    tenant_admin: User, company: Company, other_company: Company
) -> None:
    client = logged_in(tenant_admin)
    response = client.post(
        reverse("admin:pbx_membership_add"),
        {
            "new_username": "sneaky",
            "new_password": "a-long-enough-password-42",
            "tenant": company.tenant.pk,
            "extensions": [other_company.extensions[0].pk],
        },
    )
    assert response.status_code == 200  # the form comes back with an error
    assert not User.objects.filter(username="sneaky").exists()
    response = client.post(
        reverse("admin:pbx_membership_add"),
        {
            "new_username": "sneaky",
            "new_password": "a-long-enough-password-42",
            "tenant": other_company.tenant.pk,
        },
    )
    assert response.status_code == 200
    assert not Membership.objects.filter(tenant=other_company.tenant).exists()


def test_bulk_action_gives_users_a_group(
    tenant_admin: User, member: User, company: Company
) -> None:
    group = ExtensionGroup.objects.create(tenant=company.tenant, name="Support")
    group.extensions.set(company.extensions[4:])
    membership = Membership.objects.get(user=member)
    client = logged_in(tenant_admin)
    changelist = reverse("admin:pbx_membership_changelist")
    chosen = {"action": "grant_group", "_selected_action": [membership.pk]}
    # First a page asking which group, naming the chosen users.
    page = client.post(changelist, chosen)
    assert page.status_code == 200 and "member" in page.content.decode()
    assert not membership.groups.exists()
    response = client.post(changelist, {**chosen, "group": group.pk, "apply": "1"})
    assert response.status_code == 302
    assert list(membership.groups.all()) == [group]
    entry = AuditEntry.objects.get(subject="member")
    assert entry.changes == [{"field": "groups", "from": [], "to": ["Support"]}]


def test_group_choice_of_the_bulk_action_lists_own_tenant_only(
    tenant_admin: User, member: User, company: Company, other_company: Company
) -> None:
    ExtensionGroup.objects.create(tenant=company.tenant, name="Ours")
    theirs = ExtensionGroup.objects.create(tenant=other_company.tenant, name="Theirs")
    membership = Membership.objects.get(user=member)
    client = logged_in(tenant_admin)
    changelist = reverse("admin:pbx_membership_changelist")
    chosen = {"action": "grant_group", "_selected_action": [membership.pk]}
    html = client.post(changelist, chosen).content
    assert b"Ours" in html and b"Theirs" not in html
    # Posted anyway: refused, nothing changes.
    refused = client.post(changelist, {**chosen, "group": theirs.pk, "apply": "1"})
    assert refused.status_code == 200 and not membership.groups.exists()


def test_api_password_is_encrypted_and_never_shown(superuser: User, company: Company) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("select api_password from pbx_tenant where id = %s", [company.tenant.pk])
        stored = cursor.fetchone()[0]
    assert "api-secret" not in stored
    assert Tenant.objects.get(pk=company.tenant.pk).api_password == "api-secret"
    html = (
        logged_in(superuser)
        .get(reverse("admin:pbx_tenant_change", args=[company.tenant.pk]))
        .content
    )
    assert b"api-secret" not in html and stored.encode() not in html


def test_empty_password_field_keeps_the_stored_password(superuser: User, company: Company) -> None:
    tenant = company.tenant
    response = logged_in(superuser).post(
        reverse("admin:pbx_tenant_change", args=[tenant.pk]),
        {
            "name": "Renamed",
            "account": tenant.account,
            "api_base_url": tenant.api_base_url,
            "api_username": tenant.api_username,
            "api_password": "",
            "enabled": "on",
            "history_days": 30,
        },
    )
    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.name == "Renamed" and tenant.api_password == "api-secret"
    assert tenant.history_days == 30
