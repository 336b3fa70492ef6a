"""A login ends on every page of it: a board with the same session cookie (another browser
context) goes to the login page within seconds of a logout, while another login of the same
user stays live. Real Chromium against the real demo process."""

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Demo
from tests.e2e.test_board_in_browser import log_in

pytestmark = pytest.mark.browser


def test_a_logout_sends_the_sessions_other_page_to_the_login(browser: Any, demo: Demo) -> None:
    leaving = log_in(browser, demo)
    same_session = browser.new_context(storage_state=leaving.context.storage_state()).new_page()
    same_session.goto(f"{demo.url}/")
    expect(same_session.locator("#socket-status")).to_have_attribute("data-state", "live")
    other_login = log_in(browser, demo)

    leaving.get_by_role("button", name="Log out").click()
    expect(leaving.locator("#id_username")).to_be_visible()

    # The socket closed with 4403; board.js found the login gone and went to the login page.
    expect(same_session.locator("#id_username")).to_be_visible(timeout=5_000)
    assert "/login/" in same_session.url
    # The same user's other login is untouched.
    status = other_login.locator("#socket-status")
    expect(status).to_have_attribute("data-state", "live")
    other_login.wait_for_timeout(1_000)
    expect(status).to_have_attribute("data-state", "live")
    for page in (leaving, same_session, other_login):
        page.context.close()
