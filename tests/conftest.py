"""Shared fixtures: a tenant with extensions, and users who may see all, some or none of it."""

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User
from django.test import Client
from hypothesis import settings as hypothesis_settings

from ctiboard.cti.client import CTIClient
from ctiboard.cti.events import ExtensionData
from ctiboard.ingest import writer
from ctiboard.tenancy.models import Extension, Membership, Tenant

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


def isolation_personas(company: "Company", other_company: "Company") -> dict[str, User | None]:
    """The isolation matrices' people: nobody, another tenant's user who sees all of it, a
    member granted nothing, one who sees every line but no call details (and may not call),
    and one who sees and may do everything."""
    stranger = make_user("stranger")
    Membership.objects.create(user=stranger, tenant=other_company.tenant, sees_all_extensions=True)
    outsider = make_user("outsider")
    Membership.objects.create(user=outsider, tenant=company.tenant)
    line_only = make_user("lineonly")
    Membership.objects.create(
        user=line_only,
        tenant=company.tenant,
        sees_all_extensions=True,
        sees_call_details=False,
        can_call=False,
        can_call_external=False,
        own_extension=company.extensions[5],
    )
    full = make_user("full")
    Membership.objects.create(
        user=full,
        tenant=company.tenant,
        sees_all_extensions=True,
        own_extension=company.extensions[0],
    )
    return {
        "anonymous": None,
        "stranger": stranger,
        "outsider": outsider,
        "line_only": line_only,
        "full": full,
    }


def make_tenant_admin(company: Company) -> User:
    """Staff and the company's tenant administrator: its admin, nothing of other tenants."""
    user = make_user("tenantadmin")
    user.is_staff = True
    user.save()
    Membership.objects.create(user=user, tenant=company.tenant, is_tenant_admin=True)
    return user


@pytest.fixture
def tenant_admin(company: Company) -> User:
    return make_tenant_admin(company)


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:  # type: ignore[no-untyped-def]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _plain_http(settings) -> None:  # type: ignore[no-untyped-def]
    """The test client speaks plain HTTP to a process that would redirect it to https (the
    settings' default outside DEBUG); tests/ops/test_headers.py turns the redirect back on."""
    settings.SECURE_SSL_REDIRECT = False


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


@dataclass
class Pbx:
    """A fresh K-Account in the running simulator."""

    account: str
    username: str
    password: str
    base_url: str
    control: "SimulatorControl"  # noqa: F821

    def client(self, **options: object) -> CTIClient:
        return CTIClient(self.base_url, self.username, self.password, self.account, **options)  # type: ignore[arg-type]

    def truth(self) -> dict[str, tuple[str, str]]:
        return {
            s["extension"]: (s["line"], s["presence"]) for s in self.control.states(self.account)
        }


@pytest.fixture
def pbx(simulator: "SimulatorProcess") -> Iterator[Pbx]:  # noqa: F821
    account = unique_account()
    pbx = Pbx(
        account=account,
        username=f"{account}/ctiboard",
        password=f"secret-{account}",
        base_url=simulator.api_url,
        control=simulator.control,
    )
    # time_scale shrinks every simulated ring and answer delay to milliseconds.
    pbx.control.create_tenant(
        account, pbx.username, pbx.password, extensions=8, seed=3, time_scale=0.02
    )
    yield pbx
    pbx.control.delete_tenant(account)


@pytest.fixture
def pbx_company(pbx: Pbx, db: None) -> Company:
    """A tenant whose extensions were synced from the simulator as the worker does it."""
    tenant = Tenant.objects.create(
        name=f"Company {pbx.account}",
        account=pbx.account,
        api_base_url=pbx.base_url,
        api_username=pbx.username,
        api_password=pbx.password,
    )

    async def listed() -> list[ExtensionData]:
        async with pbx.client() as client:
            return await client.extensions()

    state = writer.load_state(tenant.pk)
    writer.sync_extensions(state, asyncio.run(listed()))
    return Company(tenant, list(Extension.objects.filter(tenant=tenant).order_by("number")))


@pytest.fixture(scope="session")
def simulator() -> Iterator["SimulatorProcess"]:  # noqa: F821
    """The PBX simulator as a separate process on a free port, for the whole test session."""
    from ctiboard.simulator.testing import SimulatorProcess

    with SimulatorProcess() as process:
        yield process


@pytest.fixture(autouse=True)
def _staff_without_second_factor(settings) -> None:  # type: ignore[no-untyped-def]
    # The admin tests sign staff in with force_login; tests/accounts turn two-factor on.
    settings.CTIBOARD_STAFF_2FA = False
