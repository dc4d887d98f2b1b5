"""The demo chat page in a real browser (Debian's Chromium, driven by Playwright).

The page talks to a real local gateway running the unchanged chat app. On a
machine without Chromium these tests fail with the command that installs it;
`make test` installs it when run as root, as CI does.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import ROOT, RunningGateway, start_gateway

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOTS = ROOT / "test-output" / "page"
TIMEOUT_MS = 15_000
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(
            "Debian's Chromium is missing: run `sudo apt-get install -y chromium` "
            "(make test does it when run as root)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    running = start_gateway(tmp_path_factory.mktemp("page"), ROOT, "--no-autoreload")
    yield running
    running.stop()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    """Open the chat page in a fresh browser context (its own storage, like another person)."""
    contexts = []

    def open_(url: str, viewport: dict[str, int] | None = None, before: Any = None) -> Any:
        context = browser.new_context(viewport=viewport or {"width": 1100, "height": 700})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        if before is not None:
            before(page)
        page.dialogs = []
        page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(url)
        return page

    yield open_
    for context in contexts:
        context.close()


def wait_online(page: Any) -> None:
    expect(page.locator("#status")).to_have_attribute("data-state", "online")


def say(page: Any, text: str) -> None:
    page.get_by_label("Message (or /help)").fill(text)
    page.get_by_label("Message (or /help)").press("Enter")


def set_nick(page: Any, nick: str) -> None:
    page.get_by_label("Nickname", exact=True).fill(nick)
    page.get_by_label("Nickname", exact=True).press("Enter")
    expect(page.locator("#members")).to_contain_text(f"{nick} (you)")


def join(page: Any, room: str) -> None:
    page.get_by_label("Room", exact=True).fill(room)
    page.get_by_label("Room", exact=True).press("Enter")
    expect(page.locator("#room-title")).to_have_text(f"#{room}")


def messages(page: Any) -> Any:
    return page.locator("#log li.message .text")


def test_two_people_chat_with_presence_history_and_a_screenshot(
    gateway: RunningGateway, open_page: Any
) -> None:
    alice = open_page(gateway.endpoints["http"])
    bob = open_page(gateway.endpoints["http"])
    wait_online(alice)
    wait_online(bob)
    set_nick(alice, "alice")
    set_nick(bob, "bob")
    join(bob, "garden")
    join(alice, "garden")

    expect(bob.locator("#log")).to_contain_text("alice joined")
    expect(bob.locator("#members")).to_contain_text("alice")
    expect(alice.locator("#members")).to_contain_text("bob")
    expect(alice.locator("#member-count")).to_have_text("(2)")

    say(alice, "Hello Bob, the roses are out")
    expect(messages(bob).last).to_have_text("Hello Bob, the roses are out")
    say(bob, "On my way!")
    expect(messages(alice).last).to_have_text("On my way!")
    expect(alice.locator("#log li.message.own .text")).to_have_text(
        ["Hello Bob, the roses are out"]
    )
    expect(bob.locator("#log li.message.own .text")).to_have_text(["On my way!"])
    stamp = alice.locator("#log li.message time").first
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp.get_attribute("datetime"))

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    alice.screenshot(path=str(SCREENSHOTS / "conversation.png"))

    bob.reload()
    wait_online(bob)
    expect(bob.locator("#room-title")).to_have_text("#garden")
    expect(bob.locator("#members")).to_contain_text("bob (you)")
    expect(messages(bob)).to_have_text(["Hello Bob, the roses are out", "On my way!"])

    bob.get_by_label("Nickname", exact=True).fill("robert")
    bob.get_by_label("Nickname", exact=True).press("Enter")
    expect(alice.locator("#log")).to_contain_text("bob is now robert")
    expect(alice.locator("#members")).to_contain_text("robert")
    join(bob, "lobby")
    expect(alice.locator("#log")).to_contain_text("robert left")
    expect(alice.locator("#member-count")).to_have_text("(1)")


def test_user_text_is_shown_as_text_and_never_run(gateway: RunningGateway, open_page: Any) -> None:
    page = open_page(gateway.endpoints["http"])
    wait_online(page)
    payloads = ["<img src=x onerror=alert(1)>", "<script>alert(2)</script>"]
    set_nick(page, "<b onmouseover=alert(3)>x</b>")
    for payload in payloads:
        say(page, payload)
    expect(messages(page)).to_have_text(payloads)
    page.locator("#log li.message").first.hover()
    page.wait_for_timeout(300)
    assert page.dialogs == []
    assert page.locator("#log img, #log script, #log b, #members b").count() == 0


def test_load_older_fetches_earlier_history(gateway: RunningGateway, open_page: Any) -> None:
    # Lambda runs the 65 frames concurrently: history is in id (time) order, not send order.
    in_order = [
        frame["text"] for frame in post(gateway, "archive", [f"note {i}" for i in range(65)])
    ]
    page = open_page(gateway.endpoints["http"])
    wait_online(page)
    join(page, "archive")
    expect(messages(page)).to_have_text(in_order[-50:])
    page.get_by_role("button", name="Load older messages").click()
    expect(messages(page)).to_have_text(in_order)
    expect(page.get_by_role("button", name="Load older messages")).to_be_hidden()


def test_commands_and_server_errors_show_inline(gateway: RunningGateway, open_page: Any) -> None:
    page = open_page(gateway.endpoints["http"])
    wait_online(page)
    say(page, "/help")
    expect(page.locator("#log")).to_contain_text("/join ROOM — leave this room and enter ROOM")
    say(page, "/join no spaces allowed")
    expect(page.locator("#log li.error[role=alert]")).to_contain_text("invalid_room")
    say(page, "/join terrace")
    expect(page.locator("#room-title")).to_have_text("#terrace")
    say(page, "/who")
    expect(page.locator("#log")).to_contain_text("in #terrace:")


def test_every_control_is_labelled_and_fits_a_phone(
    gateway: RunningGateway, open_page: Any
) -> None:
    page = open_page(gateway.endpoints["http"], viewport={"width": 375, "height": 700})
    wait_online(page)
    for label in ("Nickname", "Room", "Message (or /help)"):
        expect(page.get_by_label(label, exact=True)).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375
    say(page, "small screen, same chat")
    expect(messages(page).last).to_have_text("small screen, same chat")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.tagName") in ("BUTTON", "INPUT")


def test_the_ws_parameter_points_the_page_at_another_api(
    gateway: RunningGateway, open_page: Any
) -> None:
    page_file = (ROOT / "static" / "index.html").as_uri()
    page = open_page(f"{page_file}?ws={gateway.endpoints['websocket']}")
    wait_online(page)
    say(page, "from a file:// page")
    expect(messages(page).last).to_have_text("from a file:// page")


def post(gateway: RunningGateway, room: str, texts: list[str]) -> list[dict[str, Any]]:
    """Post messages from a plain websocket client; return them as the server stored them."""
    posted: list[dict[str, Any]] = []
    with gateway.connect(f"?room={room}&nick=writer") as writer:
        for text in texts:
            writer.send(json.dumps({"action": "sendmessage", "data": text}))
        while len(posted) < len(texts):
            frame = json.loads(writer.recv(timeout=30))
            if frame["type"] == "message":
                posted.append(frame)
    return sorted(posted, key=lambda frame: frame["id"])


def test_a_dead_link_is_noticed_and_everything_missed_is_fetched(
    gateway: RunningGateway, open_page: Any
) -> None:
    """The link goes silent without closing (a half-open TCP connection); 55 messages,
    more than one history page, go by; the page notices by its unanswered ping,
    reconnects and shows every message once, in order."""
    links = []

    def relay(route: Any) -> None:
        links.append((route, route.connect_to_server()))

    def intercept(page: Any) -> None:
        page.route_web_socket(re.compile(r"^ws://"), relay)

    page = open_page(gateway.endpoints["http"] + "?ping=1", before=intercept)
    wait_online(page)
    join(page, "flaky")
    before = post(gateway, "flaky", ["before the drop"])
    expect(messages(page)).to_have_text(["before the drop"])

    for route, server in links:
        route.on_message(lambda message: None)  # from now on, nothing gets through
        server.on_message(lambda message: None)
    page.evaluate("0")  # a round trip: the driver has the handlers before posting starts
    missed = post(gateway, "flaky", [f"missed {index}" for index in range(55)])

    everything = [frame["text"] for frame in before + missed]
    expect(messages(page)).to_have_text(everything)
    assert len(links) == 2  # the unanswered ping dropped the silent link: one reconnect
    wait_online(page)
    expect(page.locator("#members")).to_contain_text("(you)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_page_reconnects_after_the_gateway_restarts(tmp_path: Path, open_page: Any) -> None:
    port, tls_port = free_port(), free_port()
    flags = ("--no-autoreload", "--port", str(port), "--tls-port", str(tls_port))
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = start_gateway(tmp_path / "first", ROOT, *flags)
    try:
        page = open_page(first.endpoints["http"])
        wait_online(page)
        set_nick(page, "phoenix")
        join(page, "ashes")
    finally:
        first.stop()
    expect(page.locator("#status")).to_have_attribute("data-state", "reconnecting")
    second = start_gateway(tmp_path / "second", ROOT, *flags)
    try:
        wait_online(page)
        expect(page.locator("#room-title")).to_have_text("#ashes")
        expect(page.locator("#members")).to_contain_text("phoenix (you)")
        say(page, "back again")
        expect(messages(page).last).to_have_text("back again")
    finally:
        second.stop()


def wait_until(page: Any, condition: Callable[[], bool], seconds: float = 10) -> None:
    """Poll a condition outside the page, letting the page's events run meanwhile."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        page.wait_for_timeout(100)


def test_pings_keep_an_idle_page_open_and_a_forced_close_reconnects(
    tmp_path: Path, open_page: Any
) -> None:
    gateway = start_gateway(
        tmp_path,
        ROOT,
        "--no-autoreload",
        "--idle-timeout",
        "3",
        "--max-connection-duration",
        "8",
    )
    try:
        pinging = open_page(gateway.endpoints["http"] + "?ping=1")
        wait_online(pinging)
        online = time.monotonic()  # it connected just before: the 8 s run from about here
        silent = open_page(gateway.endpoints["http"] + "?ping=60")
        wait_online(silent)
        set_nick(pinging, "awake")
        reconnects = []
        pinging.on("websocket", lambda ws: reconnects.append(ws.url))
        pinging.wait_for_timeout(max(0.0, online + 4.5 - time.monotonic()) * 1000)
        assert reconnects == []  # pings kept it open past the 3 s idle timeout
        expect(pinging.locator("#status")).to_have_attribute("data-state", "online")
        wait_until(pinging, lambda: gateway.log().count("(close 1001") >= 1)  # silent idled out
        wait_until(pinging, lambda: len(reconnects) >= 1)  # the 8 s maximum: a forced close
        wait_online(pinging)
        expect(pinging.locator("#members")).to_contain_text("awake (you)")
        say(pinging, "still here")
        expect(messages(pinging).last).to_have_text("still here")
    finally:
        gateway.stop()
