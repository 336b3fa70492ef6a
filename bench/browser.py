"""Real Chromium through Playwright, with an in-page recorder of tile swaps.

The init script runs before any page script. It wraps ``WebSocket`` to note when each socket
opens and closes, and a MutationObserver notes, with ``performance.timeOrigin +
performance.now()`` (this machine's wall clock, sub-millisecond), every element with an
``ext-…`` id that is swapped into the DOM or renewed in place (its ``data-seq`` changes: board.js
applies pushed tiles so), together with the ``datetime`` of its ``<time>``:
the tile shows when its line changed, which is the simulator's emission time (``updated`` of the
state event, ``time.time_ns()`` when the simulator published it). A swapped-in ``#pbx-status``
ends a sync (initial or resync): the socket sends the PBX status last, after the whole grid (in
one message or several) or after the tiles changed since the page's grid.
"""

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # A background tab must not be throttled while it is measured.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]

INIT_SCRIPT = """
(() => {
  const now = () => performance.timeOrigin + performance.now();
  const bench = window.__bench = {swaps: [], grids: [], opens: [], closes: [], recording: false};
  const Native = window.WebSocket;
  class Recorded extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('open', () => bench.opens.push(now()));
      this.addEventListener('close', (e) => bench.closes.push([now(), e.code]));
    }
  }
  window.WebSocket = Recorded;
  // The line's "since": the time the tile's line state last changed.
  const lineTime = window.__benchLineTime = (node) =>
    node.querySelector('.since time[datetime]') ||
    node.querySelector('.signal.line time[datetime]') || node.querySelector('time[datetime]');
  const observer = new MutationObserver((records) => {
    const t = now();
    for (const record of records) {
      // board.js renews a pushed tile in place: its data-seq changes, no element is added.
      if (record.type === 'attributes') {
        const node = record.target;
        if (bench.recording && node.id && node.id.startsWith('ext-')) {
          const time = lineTime(node);
          bench.swaps.push([t, node.id, time ? time.getAttribute('datetime') : null]);
        }
        continue;
      }
      for (const node of record.addedNodes) {
        if (node.nodeType !== 1 || !node.id) continue;
        if (node.id === 'pbx-status') { bench.grids.push(t); continue; }
        if (bench.recording && node.id.startsWith('ext-')) {
          const time = lineTime(node);
          bench.swaps.push([t, node.id, time ? time.getAttribute('datetime') : null]);
        }
      }
    }
  });
  const start = () => observer.observe(document.documentElement,
    {childList: true, subtree: true, attributes: true, attributeFilter: ['data-seq']});
  if (document.documentElement) start(); else document.addEventListener('DOMContentLoaded', start);
})();
"""

SNAPSHOT = """() => Object.fromEntries(Array.from(document.querySelectorAll('[id^="ext-"]')).map(
  (e) => [e.id, (window.__benchLineTime(e) || {getAttribute: () => null})
    .getAttribute('datetime')]))"""

_FRACTION = re.compile(r"\.(\d+)")


def available() -> str:
    """'' when Playwright and Chromium are there, else why not."""
    if not Path(CHROMIUM).exists():
        return f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return f"Playwright is not installed: {exc}"
    return ""


@contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Any, url: str, cookies: dict[str, str] | None = None) -> tuple[Any, Any]:
    context = browser.new_context(bypass_csp=True, viewport={"width": 1600, "height": 1000})
    if cookies:
        context.add_cookies(
            [{"name": k, "value": v, "url": url.split("/t/")[0] + "/"} for k, v in cookies.items()]
        )
    context.add_init_script(INIT_SCRIPT)
    page = context.new_page()
    return context, page


def wait_live(page: Any, grids: int = 1, opens: int = 1, timeout: float = 60) -> None:
    """Until the page's socket is open and the grid it sends on connect was swapped in."""
    page.wait_for_function(
        f"() => window.__bench && window.__bench.opens.length >= {opens}"
        f" && window.__bench.grids.length >= {grids}",
        timeout=timeout * 1000,
    )


def parse_time(value: str) -> float | None:
    """Epoch milliseconds of an RFC 3339 / ISO time with any number of fraction digits."""
    try:
        text = _FRACTION.sub(lambda m: "." + m[1][:6].ljust(6, "0"), value.strip(), count=1)
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000
    except (ValueError, AttributeError):
        return None


class Recorder:
    """Latency samples of one measuring window on one page."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.seen: dict[str, str | None] = {}

    def start(self) -> None:
        self.seen = dict(self.page.evaluate(SNAPSHOT))
        self.page.evaluate("() => { window.__bench.swaps = []; window.__bench.recording = true; }")

    def stop(self, since_ms: float) -> dict[str, Any]:
        swaps = self.page.evaluate(
            "() => { window.__bench.recording = false; return window.__bench.swaps; }"
        )
        latencies = []
        # The slowest swaps, to tell a stall (late swaps arriving together) from a slow path.
        slowest: list[tuple[float, float, str]] = []
        presence_only = unparsable = stale = 0
        for arrived, dom_id, stamp in swaps:
            if stamp is None:
                unparsable += 1
                continue
            if self.seen.get(dom_id) == stamp:
                presence_only += 1  # same line_since: not a line change, no emission time
                continue
            self.seen[dom_id] = stamp
            emitted = parse_time(stamp)
            if emitted is None:
                unparsable += 1
                continue
            if emitted < since_ms:
                stale += 1
                continue
            latencies.append(arrived - emitted)
            slowest.append((arrived - emitted, arrived, dom_id))
        slowest.sort(reverse=True)
        first = min((arrived for arrived, _, _ in swaps), default=since_ms)
        return {
            "swaps": len(swaps),
            "samples": latencies,
            # (latency ms, arrival in ms after the window's first swap, tile)
            "slowest": [
                (round(latency), round(arrived - first), dom_id)
                for latency, arrived, dom_id in slowest[:8]
            ],
            "presence_only": presence_only,
            "unparsable": unparsable,
            "stale": stale,
        }
