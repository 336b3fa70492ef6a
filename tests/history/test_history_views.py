"""The history page: columns, filters, search, pagination, CSV and the missed calls."""

import re
from datetime import datetime, timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import AsyncClient, Client
from django.urls import reverse
from django.utils import timezone

from ctiboard.calls.models import CallAttempt, Outcome
from ctiboard.contacts.models import Contact
from ctiboard.history.forms import start_of
from ctiboard.history.views import PAGE_SIZE
from ctiboard.tenancy.models import Membership
from tests.conftest import Company
from tests.history.support import REMOTE, csv_of, extension, make_record

pytestmark = pytest.mark.django_db


def url(company: Company, name: str = "history") -> str:
    return reverse(name, args=[company.tenant.account])


def uuids(html: str) -> list[str]:
    return re.findall(r'data-uuid="([^"]+)"', html)


def page(client: Client, company: Company, **query: object) -> str:
    response = client.get(url(company), query)
    assert response.status_code == 200
    return response.content.decode()


def noon(days_ago: int) -> datetime:
    """Local noon, ``days_ago`` days before today: far from any day's boundary."""
    return start_of(timezone.localdate() - timedelta(days=days_ago)) + timedelta(hours=12)


@pytest.fixture
def calls(company: Company) -> None:
    """Three days of calls on 100, 101 and 103 (the latest first in the history)."""
    make_record(company, "100", "answered-in", ended_at=noon(0), ring=4, talk=75)
    make_record(
        company,
        "100",
        "missed-in",
        outcome=Outcome.MISSED,
        partner="4940555666",
        ended_at=noon(1),
        ring=21,
    )
    make_record(
        company,
        "101",
        "busy-out",
        outcome=Outcome.BUSY,
        direction="outbound",
        partner="4989777888",
        ended_at=noon(2),
        ring=2,
    )
    make_record(
        company,
        "103",
        "rejected-in",
        outcome=Outcome.REJECTED,
        partner="102",
        ended_at=noon(2) - timedelta(hours=1),
        ring=3,
    )
    Contact.objects.create(tenant=company.tenant, name="Acme Support", number="+49 30 123456")


def test_columns(client: Client, owner: User, company: Company, calls: None) -> None:
    client.force_login(owner)
    html = page(client, company)
    assert uuids(html) == ["answered-in", "missed-in", "busy-out", "rejected-in"]
    row = html[html.index('data-uuid="answered-in"') :].split("</tr>")[0]
    # Numbers of the tenant's country (Germany) the national way.
    for text in ("Acme Support", ">030 123456<", "Answered", "0:04", "1:15", "Person 0", "in"):
        assert text in row
    busy = html[html.index('data-uuid="busy-out"') :].split("</tr>")[0]
    assert "Busy" in busy and ">089 777888<" in busy and "out" in busy and "\u2013" in busy
    rejected = html[html.index('data-uuid="rejected-in"') :].split("</tr>")[0]
    # An extension stays as it is, named like the colleague's tile names him.
    assert "Rejected" in rejected and ">102<" in rejected and "Person 2" in rejected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"outcome": "missed"}, ["missed-in"]),
        ({"direction": "outbound"}, ["busy-out"]),
        ({"direction": "inbound", "outcome": "rejected"}, ["rejected-in"]),
        ({"q": "30123"}, ["answered-in"]),  # a fragment of the number
        ({"q": "030 123456"}, ["answered-in"]),  # as people write it
        ({"q": "+49 40 555"}, ["missed-in"]),
        ({"q": "acme"}, ["answered-in"]),  # the phonebook name
        ({"q": "person 3"}, ["rejected-in"]),  # the extension's name
        ({"q": "nobody"}, []),
        ({"outcome": "no-such-outcome"}, ["answered-in", "missed-in", "busy-out", "rejected-in"]),
    ],
)
def test_filters_and_search(
    client: Client,
    owner: User,
    company: Company,
    calls: None,
    query: dict[str, str],
    expected: list[str],
) -> None:
    client.force_login(owner)
    assert uuids(page(client, company, **query)) == expected


def test_extension_and_date_range(
    client: Client, owner: User, company: Company, calls: None
) -> None:
    client.force_login(owner)
    ext = extension(company, "101")
    assert uuids(page(client, company, extension=ext.pk)) == ["busy-out"]
    today = timezone.localdate()
    yesterday = today - timedelta(days=1)
    recent = uuids(page(client, company, date_from=yesterday.isoformat()))
    assert recent == ["answered-in", "missed-in"]
    older = uuids(page(client, company, date_to=(today - timedelta(days=2)).isoformat()))
    assert older == ["busy-out", "rejected-in"]
    one_day = uuids(page(client, company, date_from=yesterday, date_to=yesterday))
    assert one_day == ["missed-in"]
    html = page(client, company, date_from=today.isoformat(), date_to=yesterday.isoformat())
    assert "The end lies before the start." in html


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "3000-01-01", "1899-12-31"])
def test_a_day_beyond_the_calendar_is_told_and_left_out(
    client: Client, owner: User, company: Company, calls: None, day: str
) -> None:
    """9999-12-31 answered 500: the day after it does not exist."""
    client.force_login(owner)
    for name in ("date_from", "date_to"):
        html = page(client, company, **{name: day})
        assert uuids(html) == ["answered-in", "missed-in", "busy-out", "rejected-in"]
        assert 'class="field-error" role="alert"' in html
        analytics = client.get(url(company, "analytics"), {name: day})
        assert analytics.status_code == 200
        assert 'class="field-error" role="alert"' in analytics.content.decode()
    assert 'min="1900-01-01" max="2999-12-31"' in page(client, company)


def test_the_csv_refuses_a_filter_it_cannot_apply(
    client: Client, owner: User, company: Company, calls: None
) -> None:
    """A file cannot show the error beside the field: it must not hold more than asked for."""
    client.force_login(owner)
    for query in ({"date_to": "9999-12-31"}, {"date_from": "yesterday"}, {"extension": "x"}):
        response = client.get(url(company, "history_csv"), query)
        assert response.status_code == 400, query
        assert response["Content-Type"].startswith("text/plain")
    refused = client.get(url(company, "history_csv"), {"date_to": "9999-12-31"})
    assert refused.content.decode().startswith("To: Ensure this value is less than or equal to")


def test_an_extension_out_of_sight_cannot_be_chosen(
    client: Client, member: User, company: Company, calls: None
) -> None:
    """The member sees 101 and 102: asking for 100 by id shows no record of it."""
    client.force_login(member)
    html = page(client, company, extension=extension(company, "100").pk)
    assert uuids(html) == ["busy-out"]
    assert "answered-in" not in html and "Acme" not in html


def test_pagination_and_fragment(client: Client, owner: User, company: Company) -> None:
    start = timezone.now() - timedelta(hours=1)
    for n in range(PAGE_SIZE * 2 + 20):
        make_record(company, "100", f"call-{n:03d}", ended_at=start - timedelta(minutes=n))
    client.force_login(owner)
    first = page(client, company, outcome="answered")
    assert uuids(first)[0] == "call-000" and len(uuids(first)) == PAGE_SIZE
    assert "120 calls" in first
    assert 'href="/t/' in first and "hx-get=" in first
    next_link = re.search(r'<a href="([^"]+)" hx-get="([^"]+)"[^>]*rel="next"', first)
    assert next_link is not None and next_link.group(1) == next_link.group(2)
    assert "outcome=answered" in next_link.group(1) and "page=2" in next_link.group(1)
    fragment = client.get(
        url(company), {"outcome": "answered", "page": 3}, headers={"HX-Request": "true"}
    ).content.decode()
    assert "<html" not in fragment and 'id="history-results"' in fragment
    assert uuids(fragment) == [f"call-{n:03d}" for n in range(100, 120)]
    assert 'rel="next"' not in fragment
    assert uuids(page(client, company, page="nonsense"))[0] == "call-000"


@pytest.mark.django_db(transaction=True)
async def test_csv_streams_the_filtered_history(owner: User, company: Company) -> None:
    await sync_to_async(make_record)(company, "100", "u1", ring=4.25, talk=61.5)
    await sync_to_async(make_record)(
        company, "100", "u2", outcome=Outcome.MISSED, partner="4940555666", ring=20
    )
    await Contact.objects.acreate(tenant=company.tenant, name="=HYPERLINK(1)", number="+4930123456")
    client = AsyncClient()
    await client.aforce_login(owner)
    response = await client.get(url(company, "history_csv"))
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    header, *rows = await csv_of(response)
    assert header[:9] == [
        "time",
        "direction",
        "extension",
        "extension_name",
        "partner",
        "contact",
        "outcome",
        "ring_seconds",
        "talk_seconds",
    ]
    answered = next(row for row in rows if row[-1] == "u1")
    assert answered[1:9] == [
        "inbound",
        "100",
        "Person 0",
        REMOTE,
        "'=HYPERLINK(1)",  # never a formula in a spreadsheet
        "answered",
        "4.250",
        "61.500",
    ]
    missed = await csv_of(await client.get(url(company, "history_csv"), {"outcome": "missed"}))
    assert [row[-1] for row in missed[1:]] == ["u2"] and missed[1][8] == ""


# --- missed calls and call back -----------------------------------------------------------


@pytest.fixture
def missed(company: Company) -> None:
    now = timezone.now()
    make_record(company, "100", "m-ext", outcome=Outcome.MISSED, partner="103")
    make_record(company, "100", "m-ext-in-2", outcome=Outcome.MISSED, partner="4940111222")
    make_record(
        company,
        "100",
        "m-returned",
        outcome=Outcome.MISSED,
        partner="4989000111",
        ended_at=now - timedelta(hours=3),
    )
    make_record(
        company,
        "100",
        "returned",
        direction="outbound",
        partner="4989000111",
        ended_at=now - timedelta(hours=2),
    )
    make_record(
        company,
        "100",
        "m-old",
        outcome=Outcome.MISSED,
        partner="4989222333",
        ended_at=now - timedelta(days=10),
    )
    make_record(company, "101", "m-other", outcome=Outcome.MISSED, partner="4989444555")


def missed_panel(html: str) -> str:
    if 'class="missed"' not in html:
        return ""
    return html[
        html.index('class="missed"') : html.index("</section>", html.index('class="missed"'))
    ]


def test_missed_calls_of_the_own_extension_with_call_back(
    client: Client, owner: User, company: Company, missed: None
) -> None:
    client.force_login(owner)
    panel = missed_panel(page(client, company))
    assert ">040 111222<" in panel and ">103<" in panel and "Person 3" in panel
    # Called back since, too old, or another's extension: not offered.
    assert "4989000111" not in panel and "4989222333" not in panel and "4989444555" not in panel
    assert f'action="{url(company, "dial")}"' in panel
    assert 'name="number" value="+4940111222"' in panel
    assert f'action="{url(company, "call")}"' in panel
    assert f'name="extension" value="{extension(company, "103").pk}"' in panel


def test_call_back_uses_the_boards_endpoints(
    client: Client, owner: User, company: Company, missed: None
) -> None:
    client.force_login(owner)
    board = reverse("board", args=[company.tenant.account])
    response = client.post(url(company, "call"), {"extension": extension(company, "103").pk})
    assert response.status_code == 302 and response["Location"] == board
    response = client.post(url(company, "dial"), {"number": "+4940111222"})
    assert response.status_code == 302 and response["Location"] == board
    attempts = {(a.callee, a.callee_context) for a in CallAttempt.objects.filter(user=owner)}
    assert attempts == {("103", company.tenant.account), ("4940111222", "global")}


def test_call_back_only_where_the_user_may_call(
    client: Client, owner: User, company: Company, missed: None
) -> None:
    Membership.objects.filter(user=owner).update(can_call_external=False)
    client.force_login(owner)
    panel = missed_panel(page(client, company))
    assert "040 111222" in panel and 'name="number"' not in panel  # listed, no button
    assert 'name="extension"' in panel
    Membership.objects.filter(user=owner).update(own_extension=None)
    assert missed_panel(page(client, company)) == ""


def test_the_board_links_the_history(client: Client, owner: User, company: Company) -> None:
    client.force_login(owner)
    board = client.get(reverse("board", args=[company.tenant.account])).content.decode()
    assert f'href="{url(company)}"' in board


# --- call partners: numbers as the tenant's country writes them, colleagues by name ------


def test_foreign_numbers_are_written_internationally(
    client: Client, owner: User, company: Company
) -> None:
    make_record(company, "100", "to-rome", direction="outbound", partner="390669821234")
    make_record(company, "100", "to-dresden", direction="outbound", partner="493519715048")
    client.force_login(owner)
    html = page(client, company)
    rome = html[html.index('data-uuid="to-rome"') :].split("</tr>")[0]
    dresden = html[html.index('data-uuid="to-dresden"') :].split("</tr>")[0]
    assert ">+39 06 6982 1234<" in rome and ">0351 9715048<" in dresden


@pytest.mark.django_db(transaction=True)
async def test_the_csv_keeps_the_numbers_machine_readable(owner: User, company: Company) -> None:
    await sync_to_async(make_record)(company, "100", "to-rome", partner="390669821234")
    await sync_to_async(make_record)(company, "100", "to-colleague", partner="102")
    client = AsyncClient()
    await client.aforce_login(owner)
    header, *rows = await csv_of(await client.get(url(company, "history_csv")))
    partners = {row[header.index("uuid")]: row[header.index("partner")] for row in rows}
    assert partners == {"to-rome": "390669821234", "to-colleague": "102"}


def test_a_colleague_is_named_only_to_who_sees_his_tile(
    client: Client, member: User, company: Company
) -> None:
    """member sees 101 (his own) and 102: a call with 102 names Person 2, one with 104 (not
    on his board) stays a number."""
    make_record(company, "101", "with-102", partner="102")
    make_record(company, "101", "with-104", partner="104")
    client.force_login(member)
    html = page(client, company)
    seen = html[html.index('data-uuid="with-102"') :].split("</tr>")[0]
    unseen = html[html.index('data-uuid="with-104"') :].split("</tr>")[0]
    assert "Person 2" in seen and ">102<" in seen
    assert ">104<" in unseen and "Person 4" not in unseen
