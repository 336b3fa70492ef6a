"""Cache-Control on every personal page and export; the https redirect and its exemptions."""

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from ctiboard.calls.models import CallAttempt
from tests.conftest import PASSWORD, Company, make_user

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def signed_in(user: User) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def finished_attempt(company: Company, user: User) -> CallAttempt:
    return CallAttempt.objects.create(
        tenant=company.tenant,
        user=user,
        caller="100",
        callee="103",
        callee_context=company.tenant.account,
        status="failed",
    )


# name -> (client, company, user) -> response; every one of them shows personal data.
Request = Callable[[Client, Company, User], object]
PERSONAL: dict[str, Request] = {
    "home": lambda c, co, u: c.get(reverse("home")),
    "board": lambda c, co, u: c.get(reverse("board", args=[co.tenant.account])),
    "board fragment": lambda c, co, u: c.get(
        reverse("board", args=[co.tenant.account]), {"q": "1"}, **HTMX
    ),
    "history": lambda c, co, u: c.get(reverse("history", args=[co.tenant.account])),
    "history fragment": lambda c, co, u: c.get(
        reverse("history", args=[co.tenant.account]), {"q": "1"}, **HTMX
    ),
    "csv export": lambda c, co, u: c.get(reverse("history_csv", args=[co.tenant.account])),
    "analytics": lambda c, co, u: c.get(reverse("analytics", args=[co.tenant.account])),
    "analytics fragment": lambda c, co, u: c.get(
        reverse("analytics", args=[co.tenant.account]), **HTMX
    ),
    "dial": lambda c, co, u: c.post(
        reverse("dial", args=[co.tenant.account]), {"number": "not a number"}, **HTMX
    ),
    "call status": lambda c, co, u: c.post(
        reverse("cancel_call", args=[co.tenant.account, finished_attempt(co, u).pk]), **HTMX
    ),
    "favourites": lambda c, co, u: c.post(
        reverse("favourite", args=[co.tenant.account]),
        {"extension": co.extensions[2].pk},
        **HTMX,
    ),
    "preferences": lambda c, co, u: c.post(
        reverse("preferences", args=[co.tenant.account]), {"notify": "on"}, **HTMX
    ),
}


def assert_no_store(response: object) -> None:
    cache_control = response["Cache-Control"]  # type: ignore[index]
    assert "no-store" in cache_control and "private" in cache_control, cache_control


@pytest.mark.parametrize("name", PERSONAL)
def test_personal_responses_are_never_stored(name: str, company: Company, owner: User) -> None:
    response = PERSONAL[name](signed_in(owner), company, owner)
    assert response.status_code < 500  # type: ignore[attr-defined]
    assert_no_store(response)


def test_admin_pages_are_never_stored(company: Company) -> None:
    admin = make_user("root")
    admin.is_staff = admin.is_superuser = True
    admin.save()
    client = signed_in(admin)
    for url in (
        reverse("admin:index"),
        reverse("admin:pbx_tenant_changelist"),
        reverse("admin:pbx_tenant_change", args=[company.tenant.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        assert_no_store(response)


def test_the_login_page_is_never_stored() -> None:
    assert_no_store(Client().get(reverse("login")))


def test_static_files_stay_cacheable() -> None:
    response = Client().get("/static/board/board.css")
    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")


# The redirect as the settings module configures it, in a process of its own: the test
# client's requests, with and without a proxy's X-Forwarded-Proto.
PROBE = """
import json
import django
django.setup()
from django.test import Client
out = {}
for path, proto in [("/t/K1/?q=1", None), ("/login/", "https"), ("/login/", "http"),
                    ("/healthz", None), ("/readyz", None), ("/metrics", None)]:
    headers = {"HTTP_X_FORWARDED_PROTO": proto} if proto else {}
    response = Client().get(path, **headers)
    out[f"{path} {proto}"] = [response.status_code, response.get("Location")]
print(json.dumps(out))
"""


def redirects(tmp_path: Path, **env: str) -> dict[str, list[object]]:
    clean = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "HTTPS", "DATABASE_URL")}
    done = subprocess.run(  # noqa: S603 - our own interpreter and settings
        [sys.executable, "-c", PROBE],
        env={
            **clean,
            "DJANGO_SETTINGS_MODULE": "ctiboard.settings",
            "CTIBOARD_DATA_DIR": str(tmp_path),
            "SECRET_KEY": "redirect-test",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_with_https_plain_http_is_redirected_but_probes_are_not(tmp_path: Path) -> None:
    seen = redirects(tmp_path)  # HTTPS is on by default outside DEBUG
    assert seen["/t/K1/?q=1 None"] == [301, "https://testserver/t/K1/?q=1"]
    # What the proxy received over TLS is served; what it received as http is redirected.
    assert seen["/login/ https"] == [200, None]
    assert seen["/login/ http"] == [301, "https://testserver/login/"]
    # Container health checks and Prometheus speak plain HTTP to the process itself.
    for probe in ("/healthz", "/readyz", "/metrics"):
        assert seen[f"{probe} None"][0] in (200, 401, 503), (probe, seen)


@pytest.mark.parametrize("env", [{"HTTPS": "0"}, {"SECURE_SSL_REDIRECT": "0"}])
def test_the_redirect_is_off_without_https_or_when_switched_off(
    tmp_path: Path, env: dict[str, str]
) -> None:
    seen = redirects(tmp_path, **env)
    assert seen["/login/ http"] == [200, None]
