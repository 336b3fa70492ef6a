"""Staff two-factor: a TOTP code before the admin, for staff who signed in with a password."""

import re
from base64 import b32decode
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import AsyncClient, Client
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.conftest import PASSWORD

from .conftest import sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _two_factor_on(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CTIBOARD_STAFF_2FA = True  # production's default


@pytest.fixture
def staff(db: None) -> User:
    return User.objects.create_user(
        "root", email="root@example.com", password=PASSWORD, is_staff=True, is_superuser=True
    )


def password_login(client: Client, user: User) -> None:
    response = client.post("/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302, response


def code_for(device: TOTPDevice, *, steps_ahead: int = 0) -> str:
    """What the authenticator app shows now (RFC 6238, django-otp's own arithmetic)."""
    value = totp(device.bin_key, device.step, device.t0, device.digits, device.drift + steps_ahead)
    return f"{value:0{device.digits}d}"


def test_staff_without_a_device_is_sent_to_set_one_up(client: Client, staff: User) -> None:
    password_login(client, staff)
    response = client.get("/admin/pbx/tenant/")
    assert response.status_code == 302
    assert response["Location"] == "/account/two-factor/?next=%2Fadmin%2Fpbx%2Ftenant%2F"

    page = client.get(response["Location"])
    html = page.content.decode()
    assert 'src="data:image/svg+xml' in html  # the QR code
    secret = re.search(r'<code class="secret">([A-Z2-7]+)</code>', html)
    assert secret is not None
    device = TOTPDevice.objects.get(user=staff)
    assert not device.confirmed
    assert b32decode(secret.group(1)) == device.bin_key
    # Reloading keeps the secret the app may have scanned already.
    client.get(response["Location"])
    assert TOTPDevice.objects.filter(user=staff).count() == 1

    response = client.post(
        "/account/two-factor/", {"token": code_for(device), "next": "/admin/pbx/tenant/"}
    )
    assert response.status_code == 302 and response["Location"] == "/admin/pbx/tenant/"
    assert TOTPDevice.objects.get(user=staff).confirmed
    assert client.get("/admin/pbx/tenant/").status_code == 200


def test_the_qr_code_names_the_key_of_the_device(client: Client, staff: User) -> None:
    password_login(client, staff)
    html = client.get("/account/two-factor/").content.decode()
    # The data URI holds an SVG; the otpauth URL itself is the device's config_url.
    device = TOTPDevice.objects.get(user=staff)
    query = parse_qs(urlsplit(unquote(device.config_url)).query)
    assert query["secret"] == [re.search(r'class="secret">([A-Z2-7]+)<', html).group(1)]  # type: ignore[union-attr]
    assert query["issuer"] == ["ctiboard"]


def test_with_a_device_he_enters_its_code_to_reach_the_admin(client: Client, staff: User) -> None:
    device = TOTPDevice.objects.create(user=staff, name="phone", confirmed=True)
    password_login(client, staff)
    response = client.get("/admin/")
    assert response["Location"] == "/account/two-factor/?next=%2Fadmin%2F"
    html = client.get(response["Location"]).content.decode()
    assert "data:image/svg" not in html  # no new secret to a mere password holder
    response = client.post("/account/two-factor/", {"token": code_for(device), "next": "/admin/"})
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    # Verified for the session: the next admin page asks no more.
    assert client.get("/admin/pbx/tenant/").status_code == 200


def test_a_wrong_code_is_refused(client: Client, staff: User) -> None:
    device = TOTPDevice.objects.create(user=staff, name="phone", confirmed=True)
    password_login(client, staff)
    wrong = code_for(device, steps_ahead=20)  # ten minutes from now
    response = client.post("/account/two-factor/", {"token": wrong, "next": "/admin/"})
    assert response.status_code == 400
    assert "That code is not valid" in response.content.decode()
    assert client.get("/admin/").status_code == 302
    # Nor does a wrong code confirm a device being set up.
    other = User.objects.create_user("ops", password=PASSWORD, is_staff=True)
    second = Client()
    password_login(second, other)
    second.get("/account/two-factor/")
    pending = TOTPDevice.objects.get(user=other)
    second.post("/account/two-factor/", {"token": code_for(pending, steps_ahead=20)})
    assert not TOTPDevice.objects.get(user=other).confirmed
    assert second.get("/admin/").status_code == 302


def test_a_code_from_another_users_app_is_refused(client: Client, staff: User) -> None:
    TOTPDevice.objects.create(user=staff, name="phone", confirmed=True)
    other = User.objects.create_user("ops", password=PASSWORD, is_staff=True)
    others = TOTPDevice.objects.create(user=other, name="phone", confirmed=True)
    password_login(client, staff)
    response = client.post("/account/two-factor/", {"token": code_for(others)})
    assert response.status_code == 400


def test_reset_makes_him_set_up_a_new_app(client: Client, staff: User) -> None:
    device = TOTPDevice.objects.create(user=staff, name="phone", confirmed=True)
    password_login(client, staff)
    client.post("/account/two-factor/", {"token": code_for(device)})
    assert client.get("/admin/").status_code == 200

    call_command("reset_two_factor", "root")
    assert not TOTPDevice.objects.filter(user=staff).exists()
    # Even the verified session: its device is gone.
    response = client.get("/admin/")
    assert response["Location"] == "/account/two-factor/?next=%2Fadmin%2F"
    assert 'src="data:image/svg+xml' in client.get(response["Location"]).content.decode()


def test_staff_signed_in_by_the_company_provider_is_not_asked(
    client: Client, staff: User, oidc
) -> None:
    oidc.sign_in_as("Root@example.com")
    sign_in(client)
    assert client.get("/admin/").status_code == 200
    assert not TOTPDevice.objects.exists()


def test_off_the_admin_lets_staff_in_with_the_password_alone(
    client: Client, staff: User, settings
) -> None:
    settings.CTIBOARD_STAFF_2FA = False
    password_login(client, staff)
    assert client.get("/admin/").status_code == 200


def test_other_users_and_pages_are_not_affected(client: Client, staff: User) -> None:
    password_login(client, staff)
    assert client.get("/").status_code == 200  # the board side needs no code
    client.post("/logout/")
    User.objects.create_user("alice", password=PASSWORD)
    client.post("/login/", {"username": "alice", "password": PASSWORD})
    # Not staff: the admin's own login answer, not the code page.
    assert client.get("/admin/")["Location"].startswith("/admin/login/")


@pytest.mark.django_db(transaction=True)
async def test_under_asgi_the_middleware_detours_too(staff: User) -> None:
    # Daphne runs the middleware chain async: the admin check runs in a thread there.
    client = AsyncClient()
    await client.aforce_login(staff)
    response = await client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"] == "/account/two-factor/?next=%2Fadmin%2F"
    assert (await client.get("/healthz")).status_code == 200


def test_without_a_code_he_can_still_log_out_of_the_admin(client: Client, staff: User) -> None:
    password_login(client, staff)
    response = client.post("/admin/logout/")
    assert response["Location"] == "/login/"  # LOGOUT_REDIRECT_URL, not the code page
    assert "_auth_user_id" not in client.session


def test_the_code_page_sends_away_who_needs_no_code(client: Client, staff: User) -> None:
    User.objects.create_user("alice", password=PASSWORD)
    client.post("/login/", {"username": "alice", "password": PASSWORD})
    response = client.get("/account/two-factor/?next=/t/K1/")
    assert response["Location"] == "/t/K1/"
    assert not TOTPDevice.objects.exists()
