"""What the board shows as live is live: in real Chromium against the demo, a broken link to
the PBX marks the page stale within seconds, and "Live" comes back only with the truth."""

import time
from typing import Any

import pytest
from playwright.sync_api import expect

from ctiboard.simulator.control import SimulatorControl
from tests.e2e.conftest import Demo, wait_for_js

pytestmark = pytest.mark.browser

ACCOUNT = "K1000"

# Whenever the page says "Live", what its tiles show then: a tile that differs from the PBX
# while the page says "Live" is the one thing the board must never do.
LIVE_SNAPSHOTS = """
window.__live = [];
new MutationObserver(() => {
  const pill = document.getElementById("live-status");
  if (!pill || pill.dataset.state === window.__lastState) return;
  window.__lastState = pill.dataset.state;
  const lines = {};
  document.querySelectorAll("#tiles article.tile").forEach((t) => {
    lines[t.dataset.number] = t.dataset.line;
  });
  window.__live.push({ state: pill.dataset.state, at: Date.now(), lines: lines });
}).observe(document, {
  subtree: true, childList: true, attributes: true, attributeFilter: ["data-state"],
});
"""


def _log_in(browser: Any, demo: Demo) -> Any:
    page = browser.new_context().new_page()
    page.add_init_script(LIVE_SNAPSHOTS)
    page.goto(f"{demo.url}/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "demo")
    page.click(".login button[type=submit]")
    page.wait_for_selector("#live-status[data-state=live]", timeout=15_000)
    return page


def _truth(sim: SimulatorControl) -> dict[str, str]:
    return {state["extension"]: state["line"] for state in sim.states(ACCOUNT)}


def test_a_broken_pbx_link_is_stale_within_seconds_and_live_again_only_with_the_truth(
    browser: Any, demo: Demo
) -> None:
    page = _log_in(browser, demo)
    with SimulatorControl(f"{demo.url}/pbx-simulator") as sim:
        number = next(n for n, line in _truth(sim).items() if line == "idle")
        # The PBX link breaks: streams cut, every request refused for a while.
        sim.inject_fault(ACCOUNT, "http_error", status=503, endpoint="*", count=100_000)
        sim.inject_fault(ACCOUNT, "drop", stream="all")
        broke = time.monotonic()
        expect(page.locator("#live-status")).to_have_attribute("data-state", "stale", timeout=3_000)
        stale_after = time.monotonic() - broke
        expect(page.locator("#tiles")).to_have_class("tiles stale")
        expect(page.locator("#stale-note")).to_contain_text("PBX")
        expect(page.locator("#live-status")).to_contain_text("Not live")

        # The truth moves on while the board cannot hear of it.
        sim.set_state(ACCOUNT, number, line="ringing")
        page.wait_for_timeout(500)
        expect(page.locator("#live-status")).to_have_attribute("data-state", "stale")

        sim.clear_faults(ACCOUNT)
        expect(page.locator("#live-status")).to_have_attribute("data-state", "live", timeout=30_000)
        truth = _truth(sim)

    shown = wait_for_js(
        page,
        "(() => { const l = {}; document.querySelectorAll('#tiles article.tile')"
        ".forEach((t) => { l[t.dataset.number] = t.dataset.line; }); return l; })()",
    )
    assert shown == truth
    assert shown[number] == "ringing"
    # Every moment the page said "Live" after the break, its tiles showed the new truth.
    snapshots = page.evaluate("window.__live")
    after = [s for s in snapshots if s["state"] == "live"][1:]
    assert after and all(s["lines"][number] == "ringing" for s in after), snapshots
    assert stale_after < 3.0
    page.context.close()
