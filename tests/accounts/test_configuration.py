"""Sign-in settings that cannot work stop the process with a message naming the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from ctiboard.lib.env import env_mapping

REPO = Path(__file__).resolve().parents[2]


def settings_error(**env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CTIBOARD_OIDC")}
    environment.update(env, DJANGO_SETTINGS_MODULE="ctiboard.settings")
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0, "the settings were accepted"
    return done.stderr


def test_password_login_off_needs_company_sign_in() -> None:
    assert "CTIBOARD_PASSWORD_LOGIN=0 needs CTIBOARD_OIDC_CLIENT_ID" in settings_error(
        CTIBOARD_PASSWORD_LOGIN="0"
    )


def test_a_client_id_needs_an_issuer_or_the_endpoints() -> None:
    error = settings_error(
        CTIBOARD_OIDC_CLIENT_ID="ctiboard",
        CTIBOARD_OIDC_AUTHORIZATION_ENDPOINT="https://id.example/authorize",
    )
    assert "CTIBOARD_OIDC_TOKEN_ENDPOINT, CTIBOARD_OIDC_JWKS_URI" in error


def test_tenant_domains_are_key_value_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_DOMAINS", " example.com=K1000, example.de = K2000 ,")
    assert env_mapping("X_DOMAINS") == {"example.com": "K1000", "example.de": "K2000"}
    monkeypatch.setenv("X_DOMAINS", "example.com:K1000")
    with pytest.raises(ImproperlyConfigured, match=r"X_DOMAINS: 'example\.com:K1000'"):
        env_mapping("X_DOMAINS")
