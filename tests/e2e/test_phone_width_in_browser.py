"""On a phone (390 by 844 CSS pixels) the board, the call history and the analytics fit the
screen's width: nothing makes the page scroll sideways. (Tables too wide for it scroll within
themselves.)"""

from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Demo

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def phone(browser: Any, demo: Demo) -> Any:
    context = browser.new_context(viewport=PHONE, device_scale_factor=3, is_mobile=True)
    page = context.new_page()
    page.goto(f"{demo.url}/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "demo")
    page.click("button[type=submit]")
    page.wait_for_selector("#socket-status[data-state=live]", timeout=10_000)
    yield page
    context.close()


def overflow(page: Any) -> dict[str, Any]:
    """The page's widths, and the elements reaching past the right edge of the screen."""
    return page.evaluate(
        """() => {
            const root = document.scrollingElement;
            const wide = [...document.querySelectorAll('body *')]
                .filter((el) => el.getBoundingClientRect().right > root.clientWidth + 0.5)
                .slice(0, 5)
                .map((el) => el.tagName.toLowerCase() + (el.className ? '.' + el.className : ''));
            return {scrollWidth: root.scrollWidth, clientWidth: root.clientWidth, wide};
        }"""
    )


@pytest.fixture(scope="module")
def history(demo: Demo) -> None:
    """Calls in the history, the widest rows: a phonebook name and an external number, one
    answered, one missed."""
    calls = f"{demo.control}/tenants/K1000/calls"
    for number, answered in (("105", True), ("106", False)):
        call = httpx.post(calls, json={"from": "498947110815", "to": number}).json()
        if answered:
            httpx.post(f"{calls}/{call['uuid']}/answer", json={}).raise_for_status()
        httpx.post(f"{calls}/{call['uuid']}/hangup").raise_for_status()


@pytest.mark.parametrize("path", ["/t/K1000/", "/t/K1000/history/", "/t/K1000/history/analytics/"])
def test_no_sideways_scrolling_on_a_phone(phone: Any, demo: Demo, history: None, path: str) -> None:
    phone.goto(f"{demo.url}{path}")
    if path.endswith("/history/"):
        phone.wait_for_selector("[data-uuid]", timeout=10_000)
    phone.wait_for_load_state("load")
    widths = overflow(phone)
    assert widths["clientWidth"] == PHONE["width"]
    assert widths["scrollWidth"] <= widths["clientWidth"], widths
