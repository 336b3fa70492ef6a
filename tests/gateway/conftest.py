"""Users of a tenant synced from the simulator, and the gateway serving it live."""

from collections.abc import AsyncIterator

import pytest
from django.contrib.auth.models import User

from ctiboard.ingest.stream import TenantIngest
from ctiboard.tenancy.models import Membership
from tests.conftest import Company, make_user
from tests.gateway.support import gateway_url, serving
from tests.ingest.support import running


@pytest.fixture
def bob(pbx_company: Company) -> User:
    """Sees three of the eight extensions, calls from the first of them."""
    user = make_user("bob")
    team = pbx_company.extensions[:3]
    membership = Membership.objects.create(
        user=user, tenant=pbx_company.tenant, own_extension=team[0]
    )
    membership.extensions.set(team)
    return user


@pytest.fixture
def line_only(pbx_company: Company) -> User:
    user = make_user("lineonly")
    Membership.objects.create(
        user=user, tenant=pbx_company.tenant, sees_all_extensions=True, sees_call_details=False
    )
    return user


@pytest.fixture
async def live(pbx_company: Company) -> AsyncIterator[tuple[str, TenantIngest]]:
    """The gateway's base URL for the tenant, with its worker streaming the simulator."""
    async with running(pbx_company) as ingest, serving() as host:
        yield gateway_url(host, pbx_company.tenant), ingest
