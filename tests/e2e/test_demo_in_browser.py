"""The issue's "done when": a newcomer runs the demo, logs in as alice, watches tiles change
live, clicks a tile and sees the call start. Real Chromium, real server process."""

from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Demo

pytestmark = pytest.mark.browser


def log_in(
    browser: Any, demo: Demo, username: str, sockets: list[dict[str, str]] | None = None
) -> Any:
    """A page of the board, live; ``sockets`` collects its WebSocket handshakes' response
    headers (names in lower case), as Chromium's network log reports them."""
    page = browser.new_page()
    if sockets is not None:
        cdp = page.context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.on(
            "Network.webSocketHandshakeResponseReceived",
            lambda event: sockets.append(
                {name.lower(): value for name, value in event["response"]["headers"].items()}
            ),
        )
    page.goto(f"{demo.url}/")
    page.fill("#id_username", username)
    page.fill("#id_password", "demo")
    page.click("button[type=submit]")  # the first one on the page must be "Log in"
    page.wait_for_selector("#socket-status[data-state=live]", timeout=10_000)
    return page


def test_alice_watches_tiles_change_live(browser: Any, demo: Demo) -> None:
    sockets: list[dict[str, str]] = []
    page = log_in(browser, demo, "alice", sockets)
    assert page.locator("#tiles article.tile").count() == 48
    # Chromium offers permessage-deflate and the board accepts it: what follows arrives
    # deflated (lib.wsframes) and is drawn as usual.
    assert "permessage-deflate" in sockets[0]["sec-websocket-extensions"]
    tile = page.locator("#tiles article.tile").nth(5)
    number = tile.get_attribute("data-number")

    httpx.put(
        f"{demo.control}/tenants/K1000/extensions/{number}/state",
        json={"line": "ringing", "presence": "dnd"},
    ).raise_for_status()
    updated = page.locator(f'#tiles article.tile[data-number="{number}"]')
    updated.locator(".line dd", has_text="Ringing").wait_for(timeout=5_000)
    assert "Do not disturb" in updated.locator(".presence dd").inner_text()
    assert "line-ringing" in (updated.get_attribute("class") or "")

    # Real NFON's `busy` line is shown as busy; a value nobody has seen is unknown, not guessed.
    httpx.put(
        f"{demo.control}/tenants/K1000/extensions/{number}/state", json={"line": "busy"}
    ).raise_for_status()
    updated.locator(".line dd", has_text="Busy").wait_for(timeout=5_000)
    assert "line-busy" in (updated.get_attribute("class") or "")
    httpx.put(
        f"{demo.control}/tenants/K1000/extensions/{number}/state", json={"line": "on-hold"}
    ).raise_for_status()
    updated.locator(".line dd", has_text="Unknown (on-hold)").wait_for(timeout=5_000)
    page.close()


def test_alice_clicks_a_tile_and_the_call_starts_and_connects(browser: Any, demo: Demo) -> None:
    page = log_in(browser, demo, "alice")
    target = page.locator("#tiles article.tile:not(.mine):has(button.call[data-form])").nth(2)
    target.locator("button.call").click()
    status = page.locator("#call-status")
    status.locator(".progress").wait_for(timeout=5_000)
    assert "Call " in status.inner_text()
    # Each step arrives over the socket until the PBX reports the call set up.
    status.locator(".progress", has_text="Connected").wait_for(timeout=20_000)
    page.close()


def test_a_ringing_call_can_be_cancelled(browser: Any, demo: Demo) -> None:
    page = log_in(browser, demo, "alice")
    own = page.locator("#tiles article.tile.mine").get_attribute("data-number")
    httpx.put(
        f"{demo.control}/tenants/K1000/extensions/{own}/behaviour", json={"mode": "never"}
    ).raise_for_status()
    try:
        callable_tiles = "#tiles article.tile:not(.mine):has(button.call[data-form])"
        page.locator(callable_tiles).nth(4).locator("button.call").click()
        page.get_by_role("button", name="Cancel call").click(timeout=5_000)
        page.locator("#call-status .progress", has_text="was cancelled").wait_for(timeout=10_000)
    finally:
        httpx.put(
            f"{demo.control}/tenants/K1000/extensions/{own}/behaviour",
            json={"mode": "answer", "answer_after": 1.0},
        ).raise_for_status()
    page.close()


def test_bob_sees_only_his_team(browser: Any, demo: Demo) -> None:
    page = log_in(browser, demo, "bob")
    assert page.locator("#tiles article.tile").count() == 12
    page.close()
