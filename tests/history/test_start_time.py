"""The history goes by when a call started: its order, its periods, the missed calls and the
analytics' periods. A long call that ended last started first, and is listed so."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from ctiboard.calls.models import Outcome
from ctiboard.history.forms import start_of
from tests.conftest import Company
from tests.history.support import make_record

pytestmark = pytest.mark.django_db


def uuids(html: str) -> list[str]:
    return re.findall(r'data-uuid="([^"]+)"', html)


def history(client: Client, company: Company, **query: object) -> str:
    response = client.get(reverse("history", args=[company.tenant.account]), query)
    assert response.status_code == 200
    return response.content.decode()


def test_listed_by_start_not_by_end(client: Client, owner: User, company: Company) -> None:
    now = timezone.now()
    # Started two hours ago, talked until a minute ago: it ended last but started first.
    make_record(company, "100", "long-talk", ended_at=now - timedelta(minutes=1), talk=7140)
    make_record(company, "101", "short", ended_at=now - timedelta(minutes=30), talk=60)
    make_record(company, "102", "shorter", ended_at=now - timedelta(minutes=10), talk=30)
    client.force_login(owner)
    assert uuids(history(client, company)) == ["shorter", "short", "long-talk"]


def test_a_call_belongs_to_the_day_it_started(
    client: Client, owner: User, company: Company
) -> None:
    today = timezone.localdate()
    midnight = start_of(today)
    # From 23:50 yesterday until 00:20 today.
    make_record(
        company, "100", "over-midnight", ended_at=midnight + timedelta(minutes=20), talk=1800
    )
    make_record(company, "101", "this-morning", ended_at=midnight + timedelta(hours=9))
    client.force_login(owner)
    yesterday = (today - timedelta(days=1)).isoformat()
    assert uuids(history(client, company, date_from=yesterday, date_to=yesterday)) == [
        "over-midnight"
    ]
    assert uuids(history(client, company, date_from=today.isoformat())) == ["this-morning"]


def test_missed_calls_are_listed_by_start_too(
    client: Client, owner: User, company: Company
) -> None:
    now = timezone.now()
    # A missed call that rang long (ended last) and one that rang briefly later.
    make_record(
        company,
        "100",
        "rang-long",
        outcome=Outcome.MISSED,
        partner="4940111111",
        ended_at=now - timedelta(minutes=1),
        ring=600,
    )
    make_record(
        company,
        "100",
        "rang-short",
        outcome=Outcome.MISSED,
        partner="4940222222",
        ended_at=now - timedelta(minutes=5),
        ring=5,
    )
    client.force_login(owner)
    html = history(client, company)
    panel = html[html.index('class="missed"') :]
    assert panel.index("+4940222222") < panel.index("+4940111111")


def test_analytics_count_a_call_on_the_day_it_started(
    client: Client, owner: User, company: Company
) -> None:
    midnight = start_of(timezone.localdate())
    make_record(
        company, "100", "over-midnight", ended_at=midnight + timedelta(minutes=20), talk=1800
    )
    client.force_login(owner)
    yesterday = (timezone.localdate() - timedelta(days=1)).isoformat()
    url = reverse("analytics", args=[company.tenant.account])
    context = client.get(url, {"date_from": yesterday, "date_to": yesterday}).context
    assert context["total"].inbound == 1
    today = timezone.localdate().isoformat()
    assert client.get(url, {"date_from": today, "date_to": today}).context["total"].inbound == 0
