"""Shared fixtures: a tenant with extensions, and users who may see all, some or none of it."""

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User
from hypothesis import settings as hypothesis_settings

from ctiboard.pbx.models import Extension, Membership, Tenant

# Shared CI machines are slow and noisy: judge examples, not their speed.
hypothesis_settings.register_profile("ctiboard", deadline=None)
hypothesis_settings.load_profile("ctiboard")

PASSWORD = "correct horse battery staple"
_accounts = itertools.count(1)


def unique_account() -> str:
    return f"K{9000 + next(_accounts)}"


@dataclass
class Company:
    tenant: Tenant
    extensions: list[Extension]


def make_company(
    account: str | None = None, *, count: int = 6, base_url: str = "http://127.0.0.1:9/"
) -> Company:
    account = account or unique_account()
    tenant = Tenant.objects.create(
        name=f"Company {account}",
        account=account,
        api_base_url=base_url,
        api_username=f"{account}/api",
        api_password="api-secret",
    )
    extensions = [
        Extension.objects.create(
            tenant=tenant,
            number=str(100 + i),
            name=f"Person {i}",
            line="idle",
            presence="available",
        )
        for i in range(count)
    ]
    return Company(tenant, extensions)


def make_user(username: str) -> User:
    return User.objects.create_user(username=username, password=PASSWORD)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:  # type: ignore[no-untyped-def]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def company(db: None) -> Company:
    return make_company()


@pytest.fixture
def other_company(db: None) -> Company:
    return make_company()


@pytest.fixture
def owner(company: Company) -> User:
    """Sees every extension of the company and calls from extension 100."""
    user = make_user("owner")
    Membership.objects.create(
        user=user,
        tenant=company.tenant,
        sees_all_extensions=True,
        own_extension=company.extensions[0],
    )
    return user


@pytest.fixture
def member(company: Company) -> User:
    """Sees extensions 101 and 102 only; his own extension is 101."""
    user = make_user("member")
    membership = Membership.objects.create(
        user=user, tenant=company.tenant, own_extension=company.extensions[1]
    )
    membership.extensions.set(company.extensions[1:3])
    return user


@pytest.fixture
def stranger(other_company: Company) -> User:
    """Sees everything, but of another company."""
    user = make_user("stranger")
    Membership.objects.create(user=user, tenant=other_company.tenant, sees_all_extensions=True)
    return user


@pytest.fixture(scope="session")
def simulator() -> Iterator["SimulatorProcess"]:  # noqa: F821
    """The PBX simulator as a separate process on a free port, for the whole test session."""
    from ctiboard.simulator.testing import SimulatorProcess

    with SimulatorProcess() as process:
        yield process
