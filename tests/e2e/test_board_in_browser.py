"""The board as people use it all day, in real Chromium against the real demo process:
live tiles, search and filters, click-to-call and the dial field, keyboard, restarts."""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from ctiboard.simulator.control import SimulatorControl
from tests.e2e.conftest import Demo, free_port, start_demo, stop_demo, wait_for_js

pytestmark = pytest.mark.browser

ACCOUNT = "K1000"


def log_in(
    browser: Any, demo: Demo, username: str = "alice", *, board: bool = True, **context: Any
) -> Any:
    page = browser.new_context(**context).new_page()
    page.goto(f"{demo.url}/")
    page.fill("#id_username", username)
    page.fill("#id_password", "demo")
    page.click(".login button[type=submit]")
    if board:
        page.wait_for_selector("#socket-status[data-state=live]", timeout=10_000)
    return page


@pytest.fixture
def sim(demo: Demo) -> Iterator[SimulatorControl]:
    with SimulatorControl(f"{demo.url}/pbx-simulator") as control:
        yield control


def idle_numbers(sim: SimulatorControl) -> list[str]:
    """Free extensions, available: what the simulator starts every extension as... mostly."""
    return [
        s["extension"]
        for s in sim.states(ACCOUNT)
        if s["line"] == "idle" and s["presence"] == "available"
    ]


# Tiles whose Call button calls (not the own tile, not an offline one).
CALLABLE = "#tiles article.tile:not(.mine):has(button.call[data-form])"


def tile(page: Any, number: str) -> Any:
    return page.locator(f'#tiles article.tile[data-number="{number}"]')


def test_a_state_change_reaches_the_tile_within_a_second(
    browser: Any, demo: Demo, sim: SimulatorControl
) -> None:
    page = log_in(browser, demo)
    number = idle_numbers(sim)[7]
    page.evaluate(
        """() => { window.__htmxTiles = 0; document.addEventListener('htmx:oobAfterSwap',
        (e) => { if (e.target.matches('article.tile')) window.__htmxTiles++; }); }"""
    )
    before = tile(page, number).element_handle()
    sim.set_state(ACCOUNT, number, line="in-use", presence="busy")
    expect(tile(page, number)).to_have_class(re.compile(r"\bline-in-use\b"), timeout=1_000)
    # board.js applied the pushed tile itself, not htmx: the tile on the page is the same
    # element with the new state, and carries no swap instruction.
    assert page.evaluate("(el) => el.isConnected && el.matches('.line-in-use')", before)
    assert page.evaluate("window.__htmxTiles") == 0
    assert tile(page, number).get_attribute("hx-swap-oob") is None
    expect(tile(page, number).locator(".line dd")).to_contain_text("On a call")
    expect(tile(page, number).locator(".presence dd")).to_contain_text("Busy")
    # The live timer counts (board.js fills <time data-since>).
    expect(tile(page, number).locator("time.timer")).to_have_text(re.compile(r"^\d+:\d\d$"))
    sim.set_state(ACCOUNT, number, line="idle", presence="available")
    expect(tile(page, number)).to_have_class(re.compile(r"\bline-idle\b"), timeout=1_000)
    page.context.close()


def test_search_and_filters_survive_reload_and_follow_pushed_tiles(
    browser: Any, demo: Demo, sim: SimulatorControl
) -> None:
    page = log_in(browser, demo)
    first = page.locator("#tiles article.tile").nth(10)
    name = first.locator(".name").inner_text()
    number = first.get_attribute("data-number")

    page.keyboard.press("/")
    expect(page.locator("#q")).to_be_focused()
    page.keyboard.type(name.split()[-1].lower())
    expect(page).to_have_url(re.compile(r"\?q="))
    expect(tile(page, number)).to_be_visible()
    visible = page.locator("#tiles article.tile:visible")
    expect(visible).not_to_have_count(48)
    for text in visible.locator(".name").all_inner_texts():
        assert name.split()[-1].lower() in text.lower()
    page.reload()
    expect(page.locator("#q")).to_have_value(name.split()[-1].lower())
    expect(page.locator("#tiles article.tile:visible")).to_have_count(visible.count())

    # Only ringing lines: none at first, then a tile the PBX reports ringing appears live,
    # and goes again when it stops ringing.
    page.goto(f"{demo.url}/t/{ACCOUNT}/")
    page.wait_for_selector("#socket-status[data-state=live]")
    page.locator("details.filters summary").click()
    page.locator('.chip input[name=line][value="ringing"]').check()
    expect(page).to_have_url(re.compile(r"line=ringing"))
    expect(page.locator("#tiles article.tile:visible")).to_have_count(0)
    expect(page.locator("#tiles .no-match")).to_be_visible()
    ringing = idle_numbers(sim)[3]
    sim.set_state(ACCOUNT, ringing, line="ringing")
    expect(page.locator("#tiles article.tile:visible")).to_have_count(1)
    expect(tile(page, ringing)).to_be_visible()
    expect(page.locator("#tiles .no-match")).to_be_hidden()
    sim.set_state(ACCOUNT, ringing, line="idle")
    expect(page.locator("#tiles article.tile:visible")).to_have_count(0)
    page.reload()
    expect(page.locator('.chip input[value="ringing"]')).to_be_checked()
    page.context.close()


def test_click_to_call_shows_progress_and_escape_cancels(
    browser: Any, demo: Demo, sim: SimulatorControl
) -> None:
    page = log_in(browser, demo)
    own = page.locator("#tiles article.tile.mine").get_attribute("data-number")
    sim.set_behaviour(ACCOUNT, own, "never")
    try:
        # Keyboard only: focus a colleague's tile, Enter calls, Escape cancels.
        target = page.locator(CALLABLE).nth(6)
        target.focus()
        page.keyboard.press("Enter")
        status = page.locator("#call-status")
        expect(status.locator(".progress")).to_have_text(
            re.compile("Calling your phone first|Your phone is ringing"), timeout=5_000
        )
        expect(status.get_by_role("button", name="Cancel call")).to_be_visible()
        page.keyboard.press("Escape")
        expect(status.locator(".progress")).to_contain_text("was cancelled", timeout=10_000)
        expect(status.get_by_role("button", name="Cancel call")).to_have_count(0)
    finally:
        sim.set_behaviour(ACCOUNT, own, "answer", answer_after=1.0)
    page.context.close()


def test_own_phone_ringing_shows_the_caller(
    browser: Any, demo: Demo, sim: SimulatorControl
) -> None:
    page = log_in(browser, demo)
    own = page.locator("#tiles article.tile.mine").get_attribute("data-number")
    call = sim.ring(ACCOUNT, "4930123456", own)
    banner = page.locator("#incoming")
    expect(banner).to_contain_text("Your phone is ringing", timeout=5_000)
    expect(banner).to_have_attribute("data-state", "ringing")
    sim.hangup(ACCOUNT, call["uuid"])
    expect(banner).to_be_hidden(timeout=5_000)
    page.context.close()


STUBS = """
window.__notes = []; window.__opened = []; window.__tones = 0;
window.Notification = class {
  constructor(title, options) { window.__notes.push({ title: title, body: options.body }); }
  static get permission() { return "granted"; }
  static requestPermission() { return Promise.resolve("granted"); }
  close() {}
};
window.open = function (url) { window.__opened.push(url); return null; };
const RealAudioContext = window.AudioContext;
window.AudioContext = class extends RealAudioContext {
  createOscillator() { window.__tones += 1; return super.createOscillator(); }
};
"""


def test_own_phone_rings_with_notification_tone_and_crm(
    browser: Any, demo: Demo, sim: SimulatorControl
) -> None:
    # The administrator sets the CRM link and puts a VIP into the phonebook.
    admin = log_in(browser, demo, "admin", board=False)
    admin.goto(f"{demo.url}/admin/pbx/tenant/")
    admin.get_by_role("link", name="Demo GmbH").click()
    admin.fill("#id_crm_url_template", "https://crm.example/search?phone={number}")
    admin.click("input[name=_save]")
    admin.goto(f"{demo.url}/admin/contacts/contact/add/")
    admin.select_option("#id_tenant", label="Demo GmbH (K1000)")
    admin.fill("#id_name", "Vera Wichtig")
    admin.fill("#id_number", "+49 30 5550000")
    admin.check("#id_vip")
    admin.click("input[name=_save]")
    expect(admin.locator(".messagelist")).to_contain_text("Vera Wichtig")
    admin.context.close()

    context = browser.new_context()
    context.add_init_script(STUBS)
    page = context.new_page()
    page.goto(f"{demo.url}/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "demo")
    page.click(".login button[type=submit]")
    page.wait_for_selector("#socket-status[data-state=live]")
    page.locator("details.settings summary").click()
    page.get_by_label("Show a notification with the caller").check()
    expect(page.locator("#prefs .saved")).to_be_visible()
    page.get_by_label("Play a ring tone").check()
    expect(page.locator("#prefs [data-sound]")).to_be_checked()
    page.get_by_label("Open the caller in the CRM").select_option("ring")
    expect(page.get_by_label("Open the caller in the CRM")).to_have_value("ring")

    own = page.locator("#tiles article.tile.mine").get_attribute("data-number")
    call = sim.ring(ACCOUNT, "49305550000", own)
    try:
        banner = page.locator("#incoming")
        expect(banner).to_have_attribute("data-kind", "vip", timeout=5_000)
        expect(banner).to_contain_text("Vera Wichtig")
        expect(banner.get_by_role("link", name="Open in CRM")).to_have_attribute(
            "href", "https://crm.example/search?phone=49305550000"
        )
        wait_for_js(page, "window.__notes.length === 1")
        note = page.evaluate("window.__notes[0]")
        assert note == {"title": "Your phone is ringing", "body": "Vera Wichtig · 030 5550000"}
        assert page.evaluate("window.__opened") == ["https://crm.example/search?phone=49305550000"]
        wait_for_js(page, "window.__tones > 0")
        # The caller's tile shows who it is too.
        expect(tile(page, own).locator(".call-info")).to_contain_text("Vera Wichtig")
    finally:
        sim.hangup(ACCOUNT, call["uuid"])
    expect(page.locator("#incoming")).to_be_hidden(timeout=5_000)
    assert page.evaluate("window.__notes.length") == 1
    context.close()


def test_dial_field_explains_a_bad_number_and_calls_a_good_one(
    browser: Any, demo: Demo, sim: SimulatorControl
) -> None:
    sim.set_remote_behaviour(ACCOUNT, "49891234567", answer_after=0.5, hangup_after=0.5)
    page = log_in(browser, demo)
    field = page.get_by_label("Call a number")
    field.fill("0800-FLOWERS")
    field.press("Enter")
    error = page.locator("#dial-error")
    expect(error).to_contain_text("only digits")
    expect(page.locator("#dial-number")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#dial-number")).to_have_value("0800-FLOWERS")
    expect(page.locator("#dial-number")).to_be_focused()

    page.locator("#dial-number").fill("+49 (0)89 1234-567")
    page.locator("#dial-number").press("Enter")
    status = page.locator("#call-status")
    # The demo tenant is German: its numbers are written the national way.
    expect(status).to_contain_text("Call to 089 1234567", timeout=5_000)
    expect(page.locator("#dial-error")).to_have_count(0)
    expect(page.locator("#dial-number")).to_have_value("")
    expect(status.locator(".progress")).to_have_text("Connected with 089 1234567.", timeout=20_000)
    page.context.close()


def test_a_call_result_floats_over_the_grid_closes_by_keyboard_and_fades(
    browser: Any, demo: Demo, sim: SimulatorControl
) -> None:
    context = browser.new_context()
    context.clock.install()  # the page's clock: a minute passes at once
    page = context.new_page()
    page.goto(f"{demo.url}/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "demo")
    page.click(".login button[type=submit]")
    page.wait_for_selector("#socket-status[data-state=live]", timeout=10_000)
    grid_top = page.locator("#tiles").bounding_box()["y"]
    targets = page.locator(CALLABLE)
    first, second = (targets.nth(n).get_attribute("data-number") for n in (10, 11))
    for number in (first, second):
        sim.set_behaviour(ACCOUNT, number, "busy")
    try:
        toast = page.locator("#call-status .toast")
        tile(page, first).locator("button.call").click()
        expect(toast.locator(".progress")).to_contain_text(f"{first} ", timeout=10_000)
        expect(toast.locator(".progress")).to_contain_text("is busy.", timeout=15_000)
        expect(toast.locator("time.at")).to_have_text(re.compile(r"^\d\d:\d\d$"))
        # An overlay in a live region: the grid did not move for it.
        expect(page.locator(".toasts")).to_have_attribute("aria-live", "polite")
        assert page.locator("#tiles").bounding_box()["y"] == grid_top

        # Keyboard: the close button is reachable and closes it; the focus goes back home.
        close = toast.get_by_role("button", name="Dismiss")
        close.focus()
        page.keyboard.press("Enter")
        expect(toast).to_have_count(0)
        expect(tile(page, first)).to_be_focused()

        tile(page, second).locator("button.call").click()
        expect(toast.locator(".progress")).to_contain_text("is busy.", timeout=15_000)
        page.mouse.move(0, 0)  # a toast under the pointer waits
        page.clock.run_for(30_000)
        expect(toast).to_have_count(1)
        page.clock.run_for(35_000)
        expect(toast).to_have_count(0)
    finally:
        for number in (first, second):
            sim.set_behaviour(ACCOUNT, number, "answer", answer_after=1.0)
    context.close()


def test_favourite_star_pins_a_tile_and_keeps_focus(browser: Any, demo: Demo) -> None:
    page = log_in(browser, demo)
    target = page.locator("#tiles article.tile").nth(20)
    number = target.get_attribute("data-number")
    star = target.locator("button.star")
    star.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#tiles section.section").first.locator("h2")).to_contain_text("Favourites")
    expect(page.locator("#tiles article.tile").first).to_have_attribute("data-number", number)
    expect(tile(page, number).locator("button.star")).to_be_focused()
    tile(page, number).locator("button.star").click()
    expect(page.locator("#tiles h2", has_text="Favourites")).to_have_count(0)
    page.context.close()


def test_german_and_the_phone_layout(browser: Any, demo: Demo) -> None:
    page = log_in(
        browser, demo, locale="de-DE", viewport={"width": 390, "height": 844}, is_mobile=True
    )
    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page.locator("#live-status")).to_have_text("Live")
    expect(page.get_by_label("Nummer anrufen")).to_be_visible()
    # One column, nothing wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # An earlier test's call result is shown for a minute, over the foot of a phone's page:
    # closed as a user would, with its button.
    for close in page.locator(".toast-close").all():
        close.click()
    page.get_by_role("button", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.context.close()


def test_after_a_server_restart_the_page_reconnects_and_resyncs(
    browser: Any, tmp_path: Path
) -> None:
    port = free_port()
    environment = {"CTIBOARD_DEMO_TRAFFIC_RATE": "0"}
    demo = start_demo(tmp_path, port, **environment)
    try:
        page = log_in(browser, demo)
        with SimulatorControl(f"{demo.url}/pbx-simulator") as sim:
            number = idle_numbers(sim)[5]
            sim.set_state(ACCOUNT, number, line="ringing", presence="dnd")
        expect(tile(page, number)).to_have_class(re.compile(r"\bline-ringing\b"))

        stop_demo(demo)
        status = page.locator("#socket-status")
        expect(status).to_have_attribute("data-state", "reconnecting", timeout=10_000)
        expect(page.locator("#tiles")).to_have_class(re.compile(r"\bstale\b"))
        # Nothing says "Live" or "connected" without saying it is the last known state.
        expect(page.locator("#live-status")).to_have_attribute("data-state", "stale")
        expect(page.locator("#pbx-status")).to_have_attribute("data-note", re.compile("last"))
        expect(page.locator("#stale-note")).to_contain_text("server")

        # Same port, same data: the simulator inside starts afresh, so the extension that
        # was ringing is idle now; the old tile must not survive the reconnect.
        demo = start_demo(tmp_path, port, **environment)
        expect(status).to_have_attribute("data-state", "live", timeout=30_000)
        expect(page.locator("#live-status")).to_have_attribute("data-state", "live", timeout=15_000)
        # "Live" again means the restarted PBX's truth: the tile is idle by then already.
        expect(tile(page, number)).to_have_class(re.compile(r"\bline-idle\b"), timeout=1)
        expect(tile(page, number).locator(".presence dd")).not_to_contain_text("Do not disturb")
        expect(page.locator("#tiles")).not_to_have_class(re.compile(r"\bstale\b"))
        assert httpx.get(f"{demo.url}/healthz").text == "ok"
        page.context.close()
    finally:
        stop_demo(demo)


# Every message the page's sockets receive: its length in characters.
MESSAGE_SIZES = """
window.__messages = [];
const NativeSocket = window.WebSocket;
window.WebSocket = class extends NativeSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", (e) => window.__messages.push(e.data.length));
  }
};
"""

# #tiles as the user sees it, minus what moves by itself: the running timers and the classes
# htmx and board.js set for a moment or for the socket's state.
GRID_AS_SHOWN = """() => {
  const tiles = document.getElementById("tiles").cloneNode(true);
  tiles.querySelectorAll("time.timer").forEach((el) => { el.textContent = ""; });
  tiles.querySelectorAll("*").forEach((el) => el.classList.remove("htmx-added", "htmx-settling"));
  tiles.classList.remove("stale", "htmx-added", "htmx-settling");
  return tiles.outerHTML;
}"""


def test_a_large_board_goes_live_and_its_grid_arrives_in_parts(
    browser: Any, tmp_path: Path
) -> None:
    # 1,500 tiles are ~1.4 MB of HTML: in one message more than Daphne sends by default.
    demo = start_demo(
        tmp_path, free_port(), CTIBOARD_DEMO_TRAFFIC_RATE="0", CTIBOARD_DEMO_EXTENSIONS="1500"
    )
    try:
        context = browser.new_context()
        context.add_init_script(MESSAGE_SIZES)
        page = context.new_page()
        page.goto(f"{demo.url}/")
        page.fill("#id_username", "alice")
        page.fill("#id_password", "demo")
        page.click(".login button[type=submit]")
        # A view with hidden tiles, counts and a sort order of its own.
        view = "?q=2&sort=name"
        page.goto(f"{demo.url}/t/{ACCOUNT}/{view}")
        page.wait_for_selector("#socket-status[data-state=live]")
        expect(page.locator("#tiles article.tile")).to_have_count(1500)
        # However large the board, tiles off screen are not rendered (board.css).
        assert (
            page.evaluate(
                "getComputedStyle(document.querySelector('#tiles article.tile')).contentVisibility"
            )
            == "auto"
        )
        # Right after the page's render nothing changed: the socket sends no grid again.
        wait_for_js(page, "window.__messages.length >= 1")
        assert max(page.evaluate("window.__messages")) < 10_000

        # A star pinned in another tab: this board gets the whole grid over its socket.
        other = context.new_page()
        other.goto(f"{demo.url}/t/{ACCOUNT}/")
        pinned = other.locator("#tiles article.tile").nth(700)
        number = pinned.get_attribute("data-number")
        pinned.locator("button.star").click()
        expect(other.locator("#tiles h2", has_text="Favourites")).to_have_count(1, timeout=20_000)
        other.close()
        favourites = page.locator('#tiles section[data-section="favourites"]')
        expect(favourites).to_have_count(1, timeout=10_000)
        # The skeleton came first, without a version: the version comes with the last part.
        page.wait_for_selector("#grid-version[data-grid]", state="attached")
        expect(favourites.locator("article.tile")).to_have_count(1)
        expect(tile(page, number)).to_have_count(1)
        sizes = page.evaluate("window.__messages")
        assert sum(size > 100_000 for size in sizes) >= 3
        assert max(sizes) < 2**20
        wait_for_js(page, "!document.querySelector('#tiles .htmx-added, #tiles .htmx-settling')")
        from_socket = page.evaluate(GRID_AS_SHOWN)

        # The same as the page renders it: sections, counts, hidden flags, order, version.
        page.reload()
        page.wait_for_selector("#socket-status[data-state=live]")
        assert page.evaluate(GRID_AS_SHOWN) == from_socket
        assert from_socket.count('<article id="ext-') == 1500
        assert (
            'hidden=""' in from_socket
            and '<span id="grid-version" hidden="" data-seq=' in from_socket
        )
        context.close()
    finally:
        stop_demo(demo)
