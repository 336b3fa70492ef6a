"""Call analytics: calls in and out, answer rate, average ring and talk time, busiest hours."""

import re
from datetime import datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from ctiboard.calls.models import Outcome
from ctiboard.history.forms import start_of
from ctiboard.tenancy.models import ExtensionGroup
from tests.conftest import Company
from tests.history.support import extension, make_record

pytestmark = pytest.mark.django_db


def today_at(hour: int, minute: int = 0) -> datetime:
    return start_of(timezone.localdate()) + timedelta(hours=hour, minutes=minute)


@pytest.fixture
def traffic(company: Company) -> ExtensionGroup:
    """On 100: two answered calls, one missed, one outbound, one hunt-group call answered by
    101; on 104 (outside the group) one answered call; all today between 10 and 11."""
    at = today_at(10, 30)
    make_record(company, "100", "a1", ended_at=at, ring=4, talk=60)
    make_record(company, "100", "a2", ended_at=at, ring=6, talk=120)
    make_record(company, "100", "m1", outcome=Outcome.MISSED, ended_at=at, ring=20)
    make_record(company, "100", "o1", direction="outbound", ended_at=at, ring=3, talk=30)
    make_record(company, "100", "h1", outcome=Outcome.ANSWERED_ELSEWHERE, ended_at=at, ring=5)
    make_record(company, "101", "h1", ended_at=at, ring=5, talk=10)
    make_record(company, "104", "x1", ended_at=today_at(15, 10), ring=2, talk=20)
    group = ExtensionGroup.objects.create(tenant=company.tenant, name="Sales")
    group.extensions.set([extension(company, "100"), extension(company, "101")])
    return group


def analytics(client: Client, company: Company, **query: object):  # type: ignore[no-untyped-def]
    response = client.get(reverse("analytics", args=[company.tenant.account]), query)
    assert response.status_code == 200
    return response


def test_per_extension_group_and_total(
    client: Client, owner: User, company: Company, traffic: ExtensionGroup
) -> None:
    client.force_login(owner)
    context = analytics(client, company).context
    by_extension = {s.label.split()[0]: s for s in context["by_extension"]}
    ext = by_extension["100"]
    # h1 was answered by 101: it does not count against 100's answer rate.
    assert (ext.inbound, ext.answered, ext.answer_rate, ext.outbound) == (3, 2, 67, 1)
    assert ext.avg_ring == pytest.approx((4 + 6 + 20 + 5) / 4)  # inbound legs only
    assert ext.avg_talk == pytest.approx((60 + 120 + 30) / 3)
    assert (by_extension["101"].answered, by_extension["101"].answer_rate) == (1, 100)
    assert by_extension["102"].total == 0 and by_extension["102"].answer_rate is None
    [sales] = context["by_group"]
    # Calls, not legs: h1 rang 100 and 101 and counts once, answered.
    assert (sales.label, sales.inbound, sales.answered, sales.answer_rate) == ("Sales", 4, 3, 75)
    total = context["total"]
    assert (total.inbound, total.answered, total.outbound) == (5, 4, 1)


def test_busiest_hours(client: Client, owner: User, company: Company, traffic: object) -> None:
    client.force_login(owner)
    heat = analytics(client, company).context["heat"]
    weekday = timezone.localdate().isoweekday()
    counts = {(w + 1, c.hour): c.count for w, row in enumerate(heat.rows) for c in row.cells}
    assert counts[(weekday, 10)] == 5  # a1 a2 m1 o1 h1: h1 once
    assert counts[(weekday, 15)] == 1
    assert sum(counts.values()) == 6
    assert heat.busiest[0][1:] == (10, 5)


def test_rendered_as_tables_and_svg_also_in_german(
    client: Client, owner: User, company: Company, traffic: object
) -> None:
    client.force_login(owner)
    response = client.get(
        reverse("analytics", args=[company.tenant.account]), headers={"accept-language": "de"}
    )
    html = response.content.decode()
    assert '<svg class="heatmap"' in html and html.count("<rect") >= 7 * 24
    assert "<script" not in html.split("<main>")[1]  # no chart framework
    # SVG numbers are never localised (0,5 would break them).
    opacities = re.findall(r'fill-opacity="([^"]+)"', html)
    assert opacities and all(re.fullmatch(r"[01]\.[0-9]{2}", value) for value in opacities)
    assert re.search(r"<th scope=\"row\">100 Person 0</th>", html)
    assert "67 %" in html and "75 %" in html


def test_period_and_group(
    client: Client, owner: User, company: Company, traffic: ExtensionGroup
) -> None:
    client.force_login(owner)
    yesterday = (timezone.localdate() - timedelta(days=1)).isoformat()
    empty = analytics(client, company, date_from=yesterday, date_to=yesterday).context
    assert empty["total"].total == 0 and empty["heat"].empty
    grouped = analytics(client, company, group=traffic.pk).context
    assert [s.label.split()[0] for s in grouped["by_extension"]] == ["100", "101"]
    assert grouped["by_group"] == [] and grouped["total"].inbound == 4
    fragment = client.get(
        reverse("analytics", args=[company.tenant.account]),
        {"group": traffic.pk},
        headers={"HX-Request": "true"},
    ).content.decode()
    assert "<html" not in fragment and 'id="analytics-results"' in fragment


def test_a_group_out_of_sight_cannot_be_chosen(
    client: Client, member: User, company: Company, traffic: ExtensionGroup
) -> None:
    """The member sees 101 and 102: the group counts only 101 for him; a group of 104 and
    105 is no choice at all."""
    hidden = ExtensionGroup.objects.create(tenant=company.tenant, name="Back office")
    hidden.extensions.set([extension(company, "104"), extension(company, "105")])
    client.force_login(member)
    context = analytics(client, company).context
    assert [s.label for s in context["by_group"]] == ["Sales"]
    assert context["by_group"][0].inbound == 1  # h1, as 101 saw it
    chosen_hidden = analytics(client, company, group=hidden.pk).context
    assert "group" in chosen_hidden["form"].errors
    assert chosen_hidden["total"].inbound == 1
    assert "Back office" not in analytics(client, company).content.decode()
