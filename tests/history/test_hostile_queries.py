"""Whatever arrives in a query string, the board, the history, its CSV export and analytics
answer it without a server error: a value is used, ignored or refused with a 400."""

from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctiboard.calls.models import Outcome
from ctiboard.tenancy.models import ExtensionGroup
from tests.conftest import PASSWORD, Company
from tests.history.support import make_record

pytestmark = pytest.mark.django_db

# Each view's query parameters, as its forms and BoardView read them.
PARAMETERS = {
    "board": ["q", "line", "presence", "sort", "flat", "mode"],
    "history": ["q", "extension", "outcome", "direction", "date_from", "date_to", "page"],
    "history_csv": ["q", "extension", "outcome", "direction", "date_from", "date_to"],
    "analytics": ["date_from", "date_to", "group"],
}

# Strings a browser can send (no lone surrogates: they have no UTF-8 encoding).
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=300)
anything = st.one_of(
    texts,
    st.sampled_from(["", " ", "\x00", "null", "-1", "0", "1e309", "NaN", "²", "١٢", "\U0001d7d9"]),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["ringing", "available", "status", "compact", "answered", "inbound"]),
)
numbers = st.one_of(
    st.integers().map(str),
    st.integers(min_value=2**31 - 2, max_value=2**64 + 2).map(str),
    st.text("0123456789", min_size=20, max_size=6000),
    anything,
)
dates = st.one_of(
    st.dates().map(lambda day: day.isoformat()),
    # The calendar's ends (Python's dates run from 0001-01-01 to 9999-12-31) and beyond.
    st.sampled_from(["9999-12-31", "9999-12-30", "0001-01-01", "0001-01-02", "10000-01-01"]),
    st.integers(min_value=-99999, max_value=99999).map(lambda year: f"{year}-12-31"),
    st.sampled_from(["2024-02-30", "2024-13-01", "31.12.2024", "12/31/2024", "2024-W01"]),
    anything,
)
# Every parameter gets anything; dates and ids get more of what they might choke on.
KIND = {"date_from": dates, "date_to": dates, "extension": numbers, "group": numbers}
KIND["page"] = numbers


def queries(view: str) -> st.SearchStrategy[dict[str, list[str]]]:
    """Any of the view's parameters, once or repeated, with any value."""
    return st.fixed_dictionaries(
        {},
        optional={
            name: st.lists(KIND.get(name, anything), min_size=1, max_size=2)
            for name in PARAMETERS[view]
        },
    )


@pytest.fixture
def signed_in(company: Company, owner: User) -> Client:
    """The owner sees every extension and record: every code path of the filters runs."""
    for number, outcome in (("100", Outcome.ANSWERED), ("101", Outcome.MISSED)):
        make_record(
            company,
            number,
            f"uuid-{number}",
            outcome=outcome,
            ended_at=timezone.now() - timedelta(hours=2),
        )
    group = ExtensionGroup.objects.create(tenant=company.tenant, name="Sales")
    group.extensions.set(company.extensions[:3])
    client = Client()
    assert client.login(username=owner.username, password=PASSWORD)
    return client


def body(response: Any) -> bytes:
    # The CSV streams: an error in its generator shows only while it is read.
    if not response.streaming:
        return bytes(response.content)

    async def read() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(read)()


@pytest.mark.parametrize("view", PARAMETERS)
def test_no_query_string_makes_a_server_error(
    view: str, signed_in: Client, company: Company
) -> None:
    url = reverse(view, args=[company.tenant.account])

    @settings(
        max_examples=150,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(query=queries(view), htmx=st.booleans())
    def answers(query: dict[str, list[str]], htmx: bool) -> None:
        headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
        response = signed_in.get(url, query, **headers)
        body(response)
        assert response.status_code in (200, 400), (response.status_code, query)

    answers()
