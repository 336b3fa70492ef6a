"""Company sign-in in real Chromium: the demo with password login off, pointed at the test
OpenID provider; "Sign in with …" goes there and back onto the board."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Demo, free_port, start_demo, stop_demo
from tests.support.oidc_provider import OpenIDProvider

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def idp() -> Iterator[OpenIDProvider]:
    provider = OpenIDProvider().start()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def sso_demo(tmp_path_factory: pytest.TempPathFactory, idp: OpenIDProvider) -> Iterator[Demo]:
    running = start_demo(
        Path(tmp_path_factory.mktemp("sso-demo")),
        free_port(),
        CTIBOARD_DEMO_TRAFFIC_RATE="0",
        **idp.environment(
            CTIBOARD_OIDC_PROVIDER_NAME="Example ID",
            CTIBOARD_OIDC_TENANT_DOMAINS="example.com=K1000",
            CTIBOARD_PASSWORD_LOGIN="0",
        ),
    )
    yield running
    stop_demo(running)


def test_sign_in_with_the_company_provider_lands_on_the_board(
    browser: Any, sso_demo: Demo, idp: OpenIDProvider
) -> None:
    idp.sign_in_as("Carol@example.com")
    page = browser.new_page()
    page.goto(f"{sso_demo.url}/")
    # Password login is off: the page offers the provider alone.
    assert page.locator("#id_password").count() == 0
    page.get_by_role("link", name="Sign in with Example ID").click()
    page.wait_for_url(f"{sso_demo.url}/t/K1000/", timeout=10_000)
    page.wait_for_selector("#socket-status[data-state=live]", timeout=10_000)
    assert page.locator(".account .who").inner_text() == "carol@example.com"
    # A new member sees no extension until a tenant admin grants them.
    assert page.locator("#tiles article.tile").count() == 0
    assert [params["code_challenge_method"] for params in idp.authorize_requests] == ["S256"]
    page.close()
