"""Login throttling (django-axes): five failures lock a user name or an address, the right
password included, on the board's login and the admin's; a clear page says until when; an
admin unlocks; a success clears the count. Each test's users and addresses are its own."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.conftest import PASSWORD, make_user

pytestmark = pytest.mark.django_db

ATTACKER = "203.0.113.5"
ELSEWHERE = "198.51.100.7"
LOCKED = "Too many failed logins for this user or from this address."


def log_in(client: Client, username: str, password: str) -> object:
    return client.post(reverse("login"), {"username": username, "password": password})


def signed_in(client: Client) -> bool:
    return client.get(reverse("home")).status_code != 302


def fail(client: Client, username: str, times: int) -> list[int]:
    return [
        log_in(client, username, "wrong").status_code  # type: ignore[attr-defined]
        for _ in range(times)
    ]


def test_the_sixth_try_is_refused_even_with_the_right_password() -> None:
    user = make_user("carol")
    client = Client(REMOTE_ADDR=ATTACKER)
    # Four failures are told as ever; the fifth locks.
    assert fail(client, user.username, 5) == [200, 200, 200, 200, 429]

    response = log_in(client, user.username, PASSWORD)
    assert response.status_code == 429  # type: ignore[attr-defined]
    assert not signed_in(client)
    html = response.content.decode()  # type: ignore[attr-defined]
    assert LOCKED in html and 'role="alert"' in html
    last = AccessAttempt.objects.get(username=user.username).attempt_time
    until = timezone.localtime(last + timedelta(minutes=15))
    assert f"Try again after {until:%H:%M}" in html
    assert "(in about 15 minutes)" in html
    assert 0 < int(response["Retry-After"]) <= 15 * 60  # type: ignore[index]
    assert "no-store" in response["Cache-Control"]  # type: ignore[index]


def test_the_user_is_locked_from_any_address_and_the_address_for_any_user() -> None:
    carol, dave = make_user("carol"), make_user("dave")
    fail(Client(REMOTE_ADDR=ATTACKER), carol.username, 5)

    # Carol from elsewhere: her name is locked.
    elsewhere = Client(REMOTE_ADDR=ELSEWHERE)
    assert log_in(elsewhere, carol.username, PASSWORD).status_code == 429  # type: ignore[attr-defined]
    # Dave from the attacker's address: the address is locked.
    assert log_in(Client(REMOTE_ADDR=ATTACKER), dave.username, PASSWORD).status_code == 429  # type: ignore[attr-defined]
    # Dave from elsewhere is not affected.
    assert log_in(elsewhere, dave.username, PASSWORD).status_code == 302  # type: ignore[attr-defined]


def test_the_admin_signs_in_on_the_throttled_login_page() -> None:
    staff = make_user("erin")
    staff.is_staff = True
    staff.save()
    client = Client(REMOTE_ADDR=ATTACKER)
    # The admin's login is the one login page (ctiboard.accounts.login.admin_login) ...
    redirect = client.get(reverse("admin:login"))
    assert redirect.status_code == 302 and redirect["Location"].startswith(reverse("login"))
    assert client.post(reverse("admin:login"), {"username": staff.username}).status_code == 405
    # ... so its lock is that page's.
    assert fail(client, staff.username, 5) == [200, 200, 200, 200, 429]
    response = log_in(client, staff.username, PASSWORD)
    assert response.status_code == 429  # type: ignore[attr-defined]
    assert LOCKED in response.content.decode()  # type: ignore[attr-defined]
    assert client.get(reverse("admin:index")).status_code == 302  # not logged in


def test_an_admin_unlocks_in_the_admin() -> None:
    carol = make_user("carol")
    fail(Client(REMOTE_ADDR=ATTACKER), carol.username, 5)
    assert log_in(Client(REMOTE_ADDR=ATTACKER), carol.username, PASSWORD).status_code == 429  # type: ignore[attr-defined]

    root = User.objects.create_superuser("root", password=PASSWORD)
    admin = Client(REMOTE_ADDR=ELSEWHERE)
    assert log_in(admin, root.username, PASSWORD).status_code == 302  # type: ignore[attr-defined]
    changelist = reverse("admin:axes_accessattempt_changelist")
    assert carol.username in admin.get(changelist).content.decode()
    attempts = list(
        AccessAttempt.objects.filter(username=carol.username).values_list("pk", flat=True)
    )
    confirmed = admin.post(
        changelist,
        {"action": "delete_selected", "_selected_action": attempts, "post": "yes"},
    )
    assert confirmed.status_code == 302
    assert not AccessAttempt.objects.filter(username=carol.username).exists()

    client = Client(REMOTE_ADDR=ATTACKER)
    assert log_in(client, carol.username, PASSWORD).status_code == 302  # type: ignore[attr-defined]
    assert signed_in(client)


def test_the_lock_ends_after_the_cool_off() -> None:
    carol = make_user("carol")
    client = Client(REMOTE_ADDR=ATTACKER)
    fail(client, carol.username, 5)
    assert log_in(client, carol.username, PASSWORD).status_code == 429  # type: ignore[attr-defined]
    # The last failure 15 minutes and a second ago (not a wait for the clock).
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=15, seconds=1))
    assert log_in(client, carol.username, PASSWORD).status_code == 302  # type: ignore[attr-defined]


def test_a_success_clears_the_count() -> None:
    carol = make_user("carol")
    client = Client(REMOTE_ADDR=ATTACKER)
    assert fail(client, carol.username, 4) == [200] * 4
    assert log_in(client, carol.username, PASSWORD).status_code == 302  # type: ignore[attr-defined]
    client.post(reverse("logout"))
    assert fail(client, carol.username, 4) == [200] * 4
    assert log_in(client, carol.username, PASSWORD).status_code == 302  # type: ignore[attr-defined]


def test_the_limit_and_cool_off_are_settings(settings) -> None:  # type: ignore[no-untyped-def]
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = timedelta(minutes=90)
    carol = make_user("carol")
    client = Client(REMOTE_ADDR=ATTACKER)
    assert fail(client, carol.username, 2) == [200, 429]
    response = log_in(client, carol.username, PASSWORD)
    assert "(in about 90 minutes)" in response.content.decode()  # type: ignore[attr-defined]


def test_the_locked_page_speaks_german_too() -> None:
    carol = make_user("carol")
    client = Client(REMOTE_ADDR=ATTACKER, headers={"accept-language": "de"})
    fail(client, carol.username, 5)
    html = log_in(client, carol.username, PASSWORD).content.decode()  # type: ignore[attr-defined]
    assert "Anmeldung gesperrt" in html and "in etwa 15 Minuten" in html
