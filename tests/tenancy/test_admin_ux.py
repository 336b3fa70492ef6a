"""The admin for people who are not Django experts: the audit log says what changed from what to
what, rights are given in bulk, a tenant administrator is made in one step, and an administrator
without a board lands on a page that shows the way."""

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from ctiboard.contacts.models import Contact
from ctiboard.tenancy.models import AuditAction, AuditEntry, ExtensionGroup, Membership
from ctiboard.webhooks.models import Webhook
from tests.conftest import PASSWORD, Company, logged_in, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser(db: None) -> User:
    return User.objects.create_superuser("root", password=PASSWORD)


def membership_form(membership: Membership, **overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "user": membership.user_id,
        "own_extension": membership.own_extension_id or "",
        "groups": [g.pk for g in membership.groups.all()],
        "extensions": [e.pk for e in membership.extensions.all()],
    }
    for flag in (
        "sees_all_extensions",
        "sees_call_details",
        "can_call",
        "can_call_external",
        "is_tenant_admin",
    ):
        if getattr(membership, flag):
            data[flag] = "on"
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def changes(entry: AuditEntry) -> dict[str, object]:
    return {
        c["field"]: "secret" if c.get("secret") else (c["from"], c["to"]) for c in entry.changes
    }


# --- the audit log --------------------------------------------------------------------------


def test_a_membership_change_is_logged_field_by_field(
    tenant_admin: User, member: User, company: Company
) -> None:
    sales = ExtensionGroup.objects.create(tenant=company.tenant, name="Sales")
    membership = Membership.objects.get(user=member)
    response = logged_in(tenant_admin).post(
        reverse("admin:pbx_membership_change", args=[membership.pk]),
        membership_form(
            membership,
            groups=[sales.pk],
            extensions=[company.extensions[2].pk],
            can_call=None,
            own_extension=company.extensions[2].pk,
        ),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.action, entry.subject) == (tenant_admin, "changed", "member")
    assert entry.kind == "pbx.membership" and entry.tenant == company.tenant
    assert changes(entry) == {
        "own_extension": ("101 Person 1", "102 Person 2"),
        "groups": ([], ["Sales"]),
        "extensions": (["101 Person 1", "102 Person 2"], ["102 Person 2"]),
        "can_call": (True, False),
    }
    # Saving again without a change writes nothing.
    membership.refresh_from_db()
    logged_in(tenant_admin).post(
        reverse("admin:pbx_membership_change", args=[membership.pk]), membership_form(membership)
    )
    assert AuditEntry.objects.count() == 1


def test_the_log_shows_the_changes_in_the_readers_language(
    tenant_admin: User, member: User, company: Company
) -> None:
    membership = Membership.objects.get(user=member)
    logged_in(tenant_admin).post(
        reverse("admin:pbx_membership_change", args=[membership.pk]),
        membership_form(membership, can_call=None),
    )
    entry = AuditEntry.objects.get()
    client = logged_in(tenant_admin)
    html = client.get(reverse("admin:pbx_auditentry_changelist")).content.decode()
    assert '<th scope="row">may call colleagues</th><td>yes</td><td>no</td>' in html
    german = client.get(
        reverse("admin:pbx_auditentry_change", args=[entry.pk]), headers={"accept-language": "de"}
    ).content.decode()
    assert "<td>ja</td><td>nein</td>" in german


def test_tenant_credentials_changed_never_their_value(superuser: User, company: Company) -> None:
    tenant = company.tenant
    response = logged_in(superuser).post(
        reverse("admin:pbx_tenant_change", args=[tenant.pk]),
        {
            "name": "Renamed GmbH",
            "account": tenant.account,
            "api_base_url": tenant.api_base_url,
            "api_username": tenant.api_username,
            "api_password": "the-new-api-secret",
            "enabled": "on",
            "country_code": "49",
            "crm_url_template": "https://crm.example/?q={number}",
            "history_days": 90,
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    entry = AuditEntry.objects.get(kind="pbx.tenant")
    assert changes(entry) == {
        "name": (f"Company {tenant.account}", "Renamed GmbH"),
        "api_password": "secret",
        "crm_url_template": ("", "https://crm.example/?q={number}"),
    }
    assert "the-new-api-secret" not in str(entry.changes) + entry.detail
    assert "api-secret" not in str(entry.changes) + entry.detail
    assert "api_password: changed" in entry.detail


def test_who_sees_a_group_is_chosen_on_the_group(
    tenant_admin: User, member: User, owner: User, company: Company, other_company: Company
) -> None:
    group = ExtensionGroup.objects.create(tenant=company.tenant, name="Support")
    foreign = Membership.objects.create(user=make_user("foreigner"), tenant=other_company.tenant)
    client = logged_in(tenant_admin)
    url = reverse("admin:pbx_extensiongroup_change", args=[group.pk])
    page = client.get(url).content.decode()
    assert "member (" in page and "foreigner" not in page  # only his tenant's people
    mine = Membership.objects.get(user=member)
    refused = client.post(url, {"name": "Support", "members": [foreign.pk]})
    assert refused.status_code == 200 and not foreign.groups.exists()
    extensions = [e.pk for e in company.extensions[3:5]]
    response = client.post(url, {"name": "Support", "extensions": extensions, "members": [mine.pk]})
    assert response.status_code == 302, response.content.decode()[:3000]
    assert list(mine.groups.all()) == [group]
    entry = AuditEntry.objects.get(kind="pbx.extensiongroup")
    assert changes(entry) == {
        "extensions": ([], ["103 Person 3", "104 Person 4"]),
        "members": ([], ["member"]),
    }
    # And taken away the same way.
    client.post(url, {"name": "Support", "extensions": extensions, "members": []})
    assert not mine.groups.exists()


def test_webhook_changes_are_logged_the_secret_only_as_changed(
    tenant_admin: User, company: Company
) -> None:
    hook = Webhook.objects.create(
        tenant=company.tenant, name="CRM", url="https://crm.example/a", secret="s" * 20
    )
    response = logged_in(tenant_admin).post(
        reverse("admin:webhooks_webhook_change", args=[hook.pk]),
        {
            "name": "CRM",
            "url": "https://crm.example/b",
            "enabled": "on",
            "on_ringing": "on",
            "on_answered": "on",
            "body_format": "json",
            "template": "",
            "secret": "t" * 20,
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    entry = AuditEntry.objects.get(kind="webhooks.webhook")
    assert changes(entry) == {
        "url": ("https://crm.example/a", "https://crm.example/b"),
        "on_ended": (True, False),
        "secret": "secret",
    }
    assert "t" * 20 not in str(entry.changes) + entry.detail


def test_phonebook_changes_are_logged(tenant_admin: User, company: Company) -> None:
    client = logged_in(tenant_admin)
    response = client.post(
        reverse("admin:contacts_contact_add"),
        {"tenant": company.tenant.pk, "name": "Acme", "number": "+49 30 123456"},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    contact = Contact.objects.get()
    client.post(
        reverse("admin:contacts_contact_changelist"),
        {"action": "mark_vip", "_selected_action": [contact.pk]},
    )
    added, marked = AuditEntry.objects.filter(kind="contacts.contact").order_by("pk")
    assert added.action == AuditAction.ADDED and changes(added)["name"] == (None, "Acme")
    assert marked.action == AuditAction.CHANGED and changes(marked) == {"vip": (False, True)}
    client.post(reverse("admin:contacts_contact_delete", args=[contact.pk]), {"post": "yes"})
    deleted = AuditEntry.objects.filter(kind="contacts.contact").latest("pk")
    assert deleted.action == AuditAction.DELETED and changes(deleted)["name"] == ("Acme", None)


def test_the_log_is_called_audit_entries(superuser: User) -> None:
    html = logged_in(superuser).get(reverse("admin:index")).content.decode()
    assert "Audit entries" in html and "Audit log" not in html


# --- bulk rights and tenant administrators ----------------------------------------------------


def test_a_tenant_admin_is_made_in_one_step(superuser: User, company: Company) -> None:
    response = logged_in(superuser).post(
        reverse("admin:pbx_membership_add"),
        {
            "new_username": "boss",
            "new_password": "a-long-enough-password-42",
            "tenant": company.tenant.pk,
            "is_tenant_admin": "on",
            "sees_all_extensions": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    boss = User.objects.get(username="boss")
    assert boss.is_staff and not boss.is_superuser
    # That is all he needs: the admin of his tenant opens for him at once.
    client = Client()
    assert client.login(username="boss", password="a-long-enough-password-42")
    assert client.get(reverse("admin:pbx_membership_changelist")).status_code == 200
    assert client.get(reverse("admin:pbx_extensiongroup_add")).status_code == 200
    assert client.get(reverse("admin:webhooks_webhook_changelist")).status_code == 200
    assert client.get(reverse("admin:contacts_contact_changelist")).status_code == 200
    entry = AuditEntry.objects.get(subject="boss")
    assert changes(entry)["admin_access"] == (None, True)
    # No longer a tenant administrator: no longer staff.
    membership = Membership.objects.get(user=boss)
    logged_in(superuser).post(
        reverse("admin:pbx_membership_change", args=[membership.pk]),
        membership_form(membership, is_tenant_admin=None),
    )
    boss.refresh_from_db()
    assert not boss.is_staff
    assert changes(AuditEntry.objects.latest("pk"))["admin_access"] == (True, False)


def test_staff_for_another_reason_keeps_it(superuser: User, member: User) -> None:
    from django.contrib.auth.models import Permission

    member.is_staff = True
    member.save()
    member.user_permissions.add(Permission.objects.get(codename="view_user"))
    membership = Membership.objects.get(user=member)
    logged_in(superuser).post(
        reverse("admin:pbx_membership_change", args=[membership.pk]), membership_form(membership)
    )
    member.refresh_from_db()
    assert member.is_staff


def test_taking_a_group_away_in_bulk(
    tenant_admin: User, member: User, owner: User, company: Company
) -> None:
    group = ExtensionGroup.objects.create(tenant=company.tenant, name="Support")
    chosen = [Membership.objects.get(user=u) for u in (member, owner)]
    for membership in chosen:
        membership.groups.add(group)
    response = logged_in(tenant_admin).post(
        reverse("admin:pbx_membership_changelist"),
        {
            "action": "revoke_group",
            "_selected_action": [m.pk for m in chosen],
            "group": group.pk,
            "apply": "1",
        },
        follow=True,
    )
    assert "2 users no longer see the group Support." in response.content.decode()
    assert not group.memberships.exists()
    assert AuditEntry.objects.filter(kind="pbx.membership").count() == 2


# --- the landing page and the favicon ---------------------------------------------------------


def test_an_administrator_without_a_board_is_shown_the_way(
    superuser: User, company: Company
) -> None:
    response = logged_in(superuser).get(reverse("home"))
    html = response.content.decode()
    assert response.status_code == 200 and "No board for you yet" not in html
    assert f'href="{reverse("admin:index")}"' in html
    assert f'href="{reverse("admin:pbx_tenant_add")}"' in html
    add_me = f"{reverse('admin:pbx_membership_add')}?tenant={company.tenant.pk}&amp;user="
    assert add_me + str(superuser.pk) in html
    assert company.tenant.account in html
    # The link opens the membership form with him and the tenant chosen.
    form = logged_in(superuser).get(
        f"{reverse('admin:pbx_membership_add')}?tenant={company.tenant.pk}&user={superuser.pk}"
    )
    assert form.context["adminform"].form.initial == {
        "tenant": str(company.tenant.pk),
        "user": str(superuser.pk),
    }


def test_a_user_without_a_board_is_told_to_ask(client: Client, company: Company) -> None:
    client.force_login(make_user("nobody"))
    html = client.get(reverse("home")).content.decode()
    assert "No board for you yet" in html and reverse("admin:index") not in html


def test_a_tenant_admin_lands_on_his_board(tenant_admin: User, company: Company) -> None:
    response = logged_in(tenant_admin).get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"] == reverse("board", args=[company.tenant.account])


def test_the_favicon(client: Client, owner: User, company: Company) -> None:
    response = client.get("/favicon.ico", follow=True)
    assert response.status_code == 200
    assert b"".join(response.streaming_content)[:4] == b"\x00\x00\x01\x00"  # an ICO
    client.force_login(owner)
    page = client.get(reverse("board", args=[company.tenant.account])).content.decode()
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page
    svg = client.get("/static/favicon.svg")
    assert svg.status_code == 200 and svg["Content-Type"].startswith("image/svg")
