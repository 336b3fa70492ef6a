import re

from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from tests.board.support import login, tile_numbers
from tests.conftest import PASSWORD, Company


def test_anonymous_is_sent_to_login(client: Client, company: Company) -> None:
    response = client.get(reverse("board", args=[company.tenant.account]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_owner_sees_all_tiles_with_call_buttons(
    client: Client, owner: User, company: Company
) -> None:
    response = login(client, owner).get(reverse("board", args=[company.tenant.account]))
    html = response.content.decode()
    assert response.status_code == 200
    assert tile_numbers(html) == ["100", "101", "102", "103", "104", "105"]
    # Every tile but his own has a call button; his own is marked as his.
    assert html.count('data-form="call-form"') == 5
    assert 'class="tile line-idle presence-available mine"' in html
    # Tiles hold no form and no button tied to one (form="…"): swapped many times a second,
    # either costs the browser on every swap (see the tile partial).
    tiles = html[html.index('<div id="tiles"') : html.index('<span id="grid-version"')]
    assert "<form" not in tiles and ' form="' not in tiles
    assert html.count('<input type="hidden" name="extension">') == 2
    assert f'ws-connect="/ws/board/{company.tenant.account}/"' in html


def test_member_sees_exactly_his_extensions(client: Client, member: User, company: Company) -> None:
    html = login(client, member).get(reverse("board", args=[company.tenant.account])).content
    assert tile_numbers(html.decode()) == ["101", "102"]
    assert b"Person 3" not in html


def test_stranger_gets_404_not_a_hint(client: Client, stranger: User, company: Company) -> None:
    response = login(client, stranger).get(reverse("board", args=[company.tenant.account]))
    assert response.status_code == 404
    assert b"Person" not in response.content


def test_home_redirects_a_single_tenant_user_to_his_board(
    client: Client, member: User, company: Company
) -> None:
    response = login(client, member).get(reverse("home"))
    assert response["Location"] == reverse("board", args=[company.tenant.account])


def test_home_explains_when_user_has_no_tenant(client: Client, db: None) -> None:
    user = User.objects.create_user("lonely", password=PASSWORD)
    response = login(client, user).get(reverse("home"))
    assert response.status_code == 200
    assert b"not a member of any PBX" in response.content


def test_htmx_request_gets_only_the_grid(client: Client, owner: User, company: Company) -> None:
    response = login(client, owner).get(
        reverse("board", args=[company.tenant.account]), headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="tiles"')
    assert "<html" not in html


def test_undocumented_line_value_is_shown_as_unknown(
    client: Client, owner: User, company: Company
) -> None:
    ext = company.extensions[2]
    ext.line = "on-hold"
    ext.save()
    html = login(client, owner).get(reverse("board", args=[company.tenant.account])).content
    assert b"Unknown (on-hold)" in html
    assert b"line-unknown" in html


def test_a_busy_line_as_real_nfon_sends_it_is_shown_as_busy(
    client: Client, owner: User, company: Company
) -> None:
    ext = company.extensions[2]
    ext.line = "busy"
    ext.save()
    html = login(client, owner).get(reverse("board", args=[company.tenant.account])).content
    assert b"line-busy" in html
    assert b"Unknown (busy)" not in html


def test_user_without_own_extension_sees_no_call_buttons_and_why(
    client: Client, member: User, company: Company
) -> None:
    membership = member.memberships.get()
    membership.own_extension = None
    membership.save()
    html = login(client, member).get(reverse("board", args=[company.tenant.account])).content
    assert b'data-form="call-form"' not in html
    assert b"No own extension" in html


def test_healthz(client: Client, db: None) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.content == b"ok"


def test_pages_carry_a_csp_with_nonce(client: Client, owner: User, company: Company) -> None:
    response = login(client, owner).get(reverse("board", args=[company.tenant.account]))
    policy = response["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce and f'nonce="{nonce.group(1)}"' in response.content.decode()


def test_login_without_next_lands_on_the_board(
    client: Client, member: User, company: Company
) -> None:
    response = client.post(
        reverse("login"), {"username": member.username, "password": PASSWORD}, follow=True
    )
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == reverse("board", args=[company.tenant.account])


def test_wrong_password_is_refused_in_words(client: Client, member: User) -> None:
    response = client.post(reverse("login"), {"username": member.username, "password": "nope"})
    assert response.status_code == 200
    assert b'role="alert"' in response.content


def test_session_and_csrf_cookies_are_secure_outside_debug(
    client: Client, member: User, settings: object
) -> None:
    client.get(reverse("login"))
    response = client.post(reverse("login"), {"username": member.username, "password": PASSWORD})
    assert response.cookies["sessionid"]["secure"] is True
    assert response.cookies["csrftoken"]["secure"] is True
    assert response.cookies["sessionid"]["httponly"] is True


def test_pbx_status_says_since_when_and_the_last_event_when_down(
    client: Client, owner: User, company: Company
) -> None:
    from datetime import UTC, datetime

    from ctiboard.tenancy.models import ConnectionStatus, Tenant

    Tenant.objects.filter(pk=company.tenant.pk).update(
        connection_status=ConnectionStatus.RECONNECTING,
        status_since=datetime(2026, 1, 5, 9, 30, 0, tzinfo=UTC),
        last_event_at=datetime(2026, 1, 5, 9, 29, 58, tzinfo=UTC),
        status_detail="state stream broke",
    )
    html = login(client, owner).get(reverse("board", args=[company.tenant.account])).content
    assert b"PBX: Reconnecting since 10:30:00" in html  # Europe/Berlin
    assert b"last event 10:29:58" in html
    assert b'title="state stream broke"' in html
