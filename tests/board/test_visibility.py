from django.contrib.auth.models import AnonymousUser, User

from ctiboard.tenancy.models import Extension, Membership
from tests.conftest import Company
from tests.tenancy.crafted import unchecked


def numbers(user: object) -> list[str]:
    return sorted(Extension.objects.visible_to(user).values_list("number", flat=True))


def test_owner_sees_every_extension_of_his_tenant(owner: User, company: Company) -> None:
    assert numbers(owner) == [e.number for e in company.extensions]


def test_member_sees_only_chosen_extensions(member: User) -> None:
    assert numbers(member) == ["101", "102"]


def test_stranger_sees_nothing_of_another_tenant(stranger: User, company: Company) -> None:
    visible = Extension.objects.visible_to(stranger)
    assert not visible.filter(tenant=company.tenant).exists()


def test_anonymous_and_inactive_users_see_nothing(owner: User) -> None:
    assert numbers(AnonymousUser()) == []
    owner.is_active = False
    owner.save()
    assert numbers(owner) == []


def test_extensions_gone_from_the_pbx_are_hidden(owner: User, company: Company) -> None:
    Extension.objects.filter(pk=company.extensions[0].pk).update(active=False)
    assert "100" not in numbers(owner)


def test_chosen_extensions_of_another_tenant_stay_invisible_without_membership(
    member: User, other_company: Company
) -> None:
    # A visibility row pointing into a tenant the user is no member of must not leak it. (The
    # database refuses such rows since tests/tenancy/test_integrity.py; one stored before.)
    membership = Membership.objects.get(user=member)
    with unchecked():
        membership.extensions.add(other_company.extensions[0])
    assert not Extension.objects.visible_to(member).filter(pk=other_company.extensions[0].pk)
    assert numbers(member) == ["101", "102"]
