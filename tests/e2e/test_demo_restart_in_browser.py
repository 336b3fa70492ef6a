"""The demo killed (SIGKILL) and started again on the same port and database while a page is
open in real Chromium: within 5 s of the server answering again every tile equals the PBX
simulator's truth (the restarted demo's simulator starts afresh), and at no moment does the page
say "Live" while a tile differs from it."""

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from ctiboard.cti.events import LINE_STATES, PRESENCES
from ctiboard.simulator.control import SimulatorControl
from tests.e2e.conftest import Demo, free_port, start_demo, stop_demo, wait_for_js

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

ACCOUNT = "K1000"
BOUND = 5.0

# Every change of the page while it says "Live": when, and what each tile shows then (line and
# presence, as the tile's classes carry them).
LIVE_SAMPLES = """
window.__samples = [];
const shown = () => {
  const tiles = {};
  document.querySelectorAll("#tiles article.tile").forEach((t) => {
    const line = [...t.classList].find((c) => c.startsWith("line-"));
    const presence = [...t.classList].find((c) => c.startsWith("presence-"));
    tiles[t.dataset.number] = [line.slice(5), presence.slice(9)];
  });
  return tiles;
};
window.__shown = shown;
new MutationObserver(() => {
  const pill = document.getElementById("live-status");
  if (pill && pill.dataset.state === "live") {
    window.__samples.push({ at: Date.now(), tiles: shown() });
  }
}).observe(document, {
  subtree: true, childList: true, attributes: true, attributeFilter: ["data-state", "class"],
});
"""


def truth(sim: SimulatorControl) -> dict[str, list[str]]:
    """The simulator's states as the tiles show them (CSS tokens)."""
    return {
        s["extension"]: [
            s["line"] if s["line"] in LINE_STATES else "unknown",
            (s["presence"] or "null") if (s["presence"] or "null") in PRESENCES else "unknown",
        ]
        for s in sim.states(ACCOUNT)
    }


# Restarted at once, or after the page's reconnect backoff has reached its longest wait.
@pytest.mark.parametrize("down", [0.0, 12.0])
def test_a_killed_and_restarted_demo_is_live_only_with_the_new_truth(
    browser: Any, tmp_path: Path, down: float
) -> None:
    port = free_port()
    demo: Demo | None = start_demo(tmp_path, port, CTIBOARD_DEMO_TRAFFIC_RATE="0")
    assert demo is not None
    try:
        page = browser.new_context().new_page()
        page.add_init_script(LIVE_SAMPLES)
        page.goto(f"{demo.url}/")
        page.fill("#id_username", "alice")
        page.fill("#id_password", "demo")
        page.click(".login button[type=submit]")
        page.wait_for_selector("#live-status[data-state=live]", timeout=15_000)
        with SimulatorControl(f"{demo.url}/pbx-simulator") as sim:
            # Tiles the restarted simulator will not show: ringing and do-not-disturb.
            numbers = sorted(truth(sim))[5:9]
            for number in numbers:
                sim.set_state(ACCOUNT, number, line="ringing", presence="dnd")
        wait_for_js(
            page,
            "Object.values(window.__shown()).filter((t) => t[0] === 'ringing').length >= 4",
        )

        demo.process.send_signal(signal.SIGKILL)
        demo.process.wait(10)
        killed_at = page.evaluate("Date.now()")
        demo = None
        page.wait_for_timeout(down * 1000)
        demo = start_demo(tmp_path, port, CTIBOARD_DEMO_TRAFFIC_RATE="0")
        answered = time.monotonic()
        answered_at = page.evaluate("Date.now()")
        with SimulatorControl(f"{demo.url}/pbx-simulator") as sim:
            new_truth = truth(sim)
        assert [new_truth[n] for n in numbers] != [["ringing", "dnd"]] * 4

        def caught_up() -> bool:
            state = page.evaluate("document.getElementById('live-status').dataset.state")
            return state == "live" and page.evaluate("window.__shown()") == new_truth

        deadline = answered + 30
        while not caught_up():
            assert time.monotonic() < deadline, page.evaluate("window.__shown()")
            page.wait_for_timeout(50)
        repaired = time.monotonic() - answered
        page.wait_for_timeout(1000)  # and it stays so

        samples = page.evaluate("window.__samples")
        after = [s for s in samples if s["at"] >= killed_at]
        wrong = [
            (s["at"] - answered_at, {n: t for n, t in s["tiles"].items() if new_truth[n] != t})
            for s in after
            if s["tiles"] != new_truth
        ]
        print(
            f"server down {(answered_at - killed_at) / 1000:.2f}s;"
            f" the truth {repaired:.2f}s after it answered again"
        )
        assert not wrong, f"'Live' with tiles the PBX did not show (ms after answering): {wrong}"
        assert after, "never live after the restart"
        assert repaired < BOUND, repaired
        page.context.close()
    finally:
        if demo is not None:
            stop_demo(demo)
