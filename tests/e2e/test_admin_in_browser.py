"""An administrator gives Bob a department in the admin, clicking as anyone would, and Bob's
open board (another browser) shows its tiles at once. Real Chromium, the real demo process."""

from typing import Any

import pytest

from tests.e2e.conftest import Demo, wait_for_js

pytestmark = pytest.mark.browser


def log_in(browser: Any, demo: Demo, username: str) -> Any:
    page = browser.new_context().new_page()
    page.goto(f"{demo.url}/")
    page.fill("#id_username", username)
    page.fill("#id_password", "demo")
    page.click("button[type=submit]")
    return page


def test_a_group_given_in_the_admin_appears_on_the_open_board(browser: Any, demo: Demo) -> None:
    bob = log_in(browser, demo, "bob")
    bob.wait_for_selector("#socket-status[data-state=live]", timeout=10_000)
    assert bob.locator("#tiles article.tile").count() == 12

    admin = log_in(browser, demo, "admin")
    # No board of his own: the landing page shows him the way.
    admin.get_by_role("heading", name="Welcome, administrator").wait_for()
    admin.get_by_role("link", name="Give rights").click()
    row = admin.locator("#result_list tbody tr", has_text="bob")
    row.locator("input.action-select").check()
    admin.select_option("select[name=action]", "grant_group")
    admin.get_by_role("button", name="Go").click()
    admin.get_by_label("Group").select_option(label="Support (K1000)")
    admin.get_by_role("button", name="Give the group").click()
    admin.locator(".messagelist", has_text="1 user now sees the group Support.").wait_for()

    # Bob's board, never reloaded, gains the fourteen tiles of Support.
    wait_for_js(bob, "document.querySelectorAll('#tiles article.tile').length === 26")
    assert bob.locator("#tiles h2", has_text="Support").count() == 1
    admin.goto(f"{demo.url}/admin/pbx/auditentry/")
    assert "Support" in admin.locator("#result_list").inner_text()
    bob.context.close()
    admin.context.close()
