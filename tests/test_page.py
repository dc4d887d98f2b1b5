"""The demo chat page in a real browser (Debian's Chromium, driven by Playwright).

The page talks to a real local gateway running the unchanged chat app. On a
machine without Chromium these tests fail with the command that installs it;
`make test` installs it when run as root, as CI does.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect, sync_playwright

from localgateway.testing.frames import wait_for_frame
from tests.conftest import ROOT, RunningGateway, start_gateway
from tests.page_support import conversation, fill_room, message_frame, week_of_history

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
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 800}
LONG_ROOM = 120


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
    # Rooms are filled faster than a person types: lift the chat's frame limit (the page's
    # wording of `rate_limited` is tested with frames of the test's own).
    lifted = ["--env", "RATE_PER_SECOND=10000", "--env", "RATE_BURST=10000"]
    running = start_gateway(tmp_path_factory.mktemp("page"), ROOT, "--no-autoreload", *lifted)
    yield running
    running.stop()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    """Open the chat page in a fresh browser context (its own storage, like another person)."""
    contexts = []

    def open_(
        url: str, viewport: dict[str, int] | None = None, before: Any = None, **options: Any
    ) -> Any:
        context = browser.new_context(
            viewport=viewport or {"width": 1100, "height": 700}, **options
        )
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
    """Messages the server has stored and sent back: one's own still on its way (pending,
    in the outbox) is not one of them yet."""
    return page.locator("#log li.message:not(.pending) .text")


@pytest.fixture(scope="module")
def long_room(gateway: RunningGateway) -> list[dict[str, Any]]:
    """Room `long`: 120 messages from three people, in id order. Tests only read it."""
    return fill_room(gateway, "long", conversation(LONG_ROOM))


def in_room(gateway: RunningGateway, room: str) -> str:
    return f"{gateway.endpoints['http']}?room={room}"


def rows(page: Any) -> list[str]:
    """The log as a reader sees it, day separators left out: a message's text, a line's text."""
    return page.eval_on_selector_all(
        "#log > li:not(.day)",
        "items => items.map(item => (item.querySelector('.text') || item).textContent)",
    )


def scroll_top(page: Any) -> float:
    return page.locator("#scroller").evaluate("view => view.scrollTop")


def at_bottom(page: Any) -> bool:
    return page.locator("#scroller").evaluate(
        "view => view.scrollHeight - view.scrollTop - view.clientHeight <= 1"
    )


def fits_the_viewport(page: Any) -> None:
    """The page itself never scrolls: only the message list does."""
    size = page.viewport_size
    document = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
    )
    assert document == [size["width"], size["height"]]
    expect(page.get_by_label("Message (or /help)")).to_be_in_viewport(ratio=1)
    expect(page.get_by_role("button", name="Send")).to_be_in_viewport(ratio=1)


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name))


def relay_frames(
    page: Any, rewrite: Callable[[Any, str], None], routes: list[Any] | None = None
) -> None:
    """Route the page's websockets through the test: `rewrite(route, frame)` decides what
    the page receives of each server frame. Each route lands in `routes`, for sending
    frames of the test's own with `route.send`."""

    def relay(route: Any) -> None:
        server = route.connect_to_server()
        server.on_message(lambda frame: rewrite(route, frame))
        if routes is not None:
            routes.append(route)

    page.route_web_socket(re.compile(r"^ws://"), relay)


def test_the_leave_of_the_pages_own_previous_connection_keeps_it_listed(
    gateway: RunningGateway, open_page: Any
) -> None:
    """A reload or a new token: the page's old connection leaves after the new one joined.
    Its name is unique in the room, so a leave under the page's own name is that old
    connection: the page stays listed once and says nothing of it."""
    routes: list[Any] = []
    page = open_page(
        in_room(gateway, "self"),
        before=lambda page: relay_frames(page, lambda route, frame: route.send(frame), routes),
    )
    wait_online(page)
    set_nick(page, "dora")

    def presence(event: str) -> str:
        return json.dumps(
            {"type": "presence", "room": "self", "event": event, "nick": "dora", "count": 1}
        )

    routes[0].send(presence("join"))  # the new connection listed beside the old one
    expect(page.locator("#members li")).to_have_text(["dora (you)", "dora"])
    routes[0].send(presence("leave"))
    expect(page.locator("#members li")).to_have_text(["dora (you)"])
    routes[0].send(presence("leave"))  # it came after the new connection's own list
    say(page, "still here")
    expect(messages(page).last).to_have_text("still here")
    expect(page.locator("#members li")).to_have_text(["dora (you)"])
    expect(page.locator("#log")).not_to_contain_text("dora left")


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
    # `join` adds a room (issue 17): robert stays in #garden until his page closes.
    join(bob, "lobby")
    expect(bob.locator("#room-title")).to_have_text("#lobby")
    expect(alice.locator("#member-count")).to_have_text("(2)")
    bob.context.close()
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


def test_load_older_keeps_the_message_under_the_readers_eye(
    gateway: RunningGateway, open_page: Any, long_room: list[dict[str, Any]]
) -> None:
    texts = [frame["text"] for frame in long_room]
    page = open_page(in_room(gateway, "long"))
    wait_online(page)
    expect(messages(page)).to_have_text(texts[-50:])
    assert at_bottom(page)

    say(page, "/history 10")
    expect(page.locator("#log li.system").last).to_have_text("10 older messages loaded above")
    expect(messages(page)).to_have_text(texts[-60:])
    assert at_bottom(page)

    older = page.get_by_role("button", name="Load older messages")
    for shown in (110, LONG_ROOM):
        page.locator("#scroller").evaluate("view => { view.scrollTop = 0; }")
        top = messages(page).first
        top_text = top.text_content()
        before = top.bounding_box()
        older.click()
        expect(messages(page)).to_have_count(shown)
        after = page.get_by_text(top_text, exact=True).bounding_box()
        assert abs(after["y"] - before["y"]) <= 2, (before, after)
        assert scroll_top(page) > 0
    expect(messages(page)).to_have_text(texts)
    expect(older).to_be_hidden()
    expect(page.locator("#history-start")).to_have_text("No older messages")
    expect(page.locator("#history-start")).to_be_visible()

    say(page, "/history")
    expect(page.locator("#log li.system").last).to_have_text("No older messages")
    expect(messages(page)).to_have_count(LONG_ROOM)


def test_a_phone_shows_a_long_room_and_its_drawer(
    gateway: RunningGateway, open_page: Any, long_room: list[dict[str, Any]]
) -> None:
    with gateway.connect("?room=long&nick=lurker") as lurker:
        # A first frame: until then the chat lists and counts it nowhere. Presence may come
        # first: the room's earlier visitors leaving (their $disconnect runs late).
        lurker.send(json.dumps({"action": "ping"}))
        assert wait_for_frame(lurker, "pong", skipping={"presence"}, timeout=30) == {"type": "pong"}
        phone_in_a_long_room(gateway, open_page, long_room[-1]["text"])


def phone_in_a_long_room(gateway: RunningGateway, open_page: Any, newest: str) -> None:
    page = open_page(in_room(gateway, "long"), viewport=PHONE)
    wait_online(page)
    expect(messages(page)).to_have_count(50)
    expect(messages(page).last).to_have_text(newest)
    expect(messages(page).last).to_be_in_viewport()
    expect(messages(page).first).not_to_be_in_viewport()
    fits_the_viewport(page)
    current = page.locator("#rooms [aria-current=true]")
    expect(current).to_have_text("#long (2)")

    nickname = page.get_by_label("Nickname", exact=True)
    menu = page.get_by_role("button", name="Rooms and people")
    expect(nickname).to_be_hidden()
    expect(menu).to_have_attribute("aria-expanded", "false")
    screenshot(page, "phone.png")

    # Someone opens a room after the page listed rooms: opening the drawer lists it.
    with gateway.connect("?room=pocket&nick=pal") as pal:
        # A first frame: until then the chat lists and counts it nowhere. Presence may come
        # first: the room's earlier visitors leaving (their $disconnect runs late).
        pal.send(json.dumps({"action": "ping"}))
        assert wait_for_frame(pal, "pong", skipping={"presence"}, timeout=30) == {"type": "pong"}
        menu.click()
        expect(menu).to_have_attribute("aria-expanded", "true")
        expect(nickname).to_be_visible()
        expect(page.locator("#rooms")).to_contain_text("#pocket (1)")
        set_nick(page, "phoebe")
        expect(page.locator("#members li")).to_have_text(["lurker", "phoebe (you)"])
        screenshot(page, "phone-drawer.png")
        join(page, "pocket")
        expect(page.locator("#members li")).to_have_text(["pal", "phoebe (you)"])
        expect(page.locator("#member-count")).to_have_text("(2)")
        expect(current).to_have_text("#pocket (2)")

        page.get_by_role("button", name="Close").click()
        expect(nickname).to_be_hidden()
        say(page, "typed on a phone")
        expect(messages(page).last).to_have_text("typed on a phone")
        expect(messages(page).last).to_be_in_viewport()
        fits_the_viewport(page)

        menu.click()
        expect(nickname).to_be_visible()
        page.keyboard.press("Escape")
        expect(nickname).to_be_hidden()
        expect(menu).to_be_focused()
        menu.click()
        expect(nickname).to_be_visible()
        page.mouse.click(PHONE["width"] - 10, PHONE["height"] // 2)  # beside the drawer
        expect(nickname).to_be_hidden()

    menu.click()
    page.locator("#rooms").get_by_role("button", name="#long").click()
    expect(nickname).to_be_hidden()  # picking a room gives the view back to the chat
    expect(page.locator("#room-title")).to_have_text("#long")
    expect(messages(page).last).to_have_text(newest)
    expect(messages(page).last).to_be_in_viewport()
    expect(current).to_have_text("#long (2)")

    page.set_viewport_size({"width": 320, "height": 568})
    fits_the_viewport(page)
    expect(messages(page).last).to_be_in_viewport()
    expect(page.locator("#room-title")).to_be_in_viewport(ratio=1)
    expect(page.locator("#status")).to_be_in_viewport(ratio=1)


def test_a_late_message_lands_in_id_order_after_you_joined_only_if_newer(
    gateway: RunningGateway, open_page: Any
) -> None:
    """The server runs frames concurrently, so a message can reach the page after a later
    one. Here the test holds the first back until the second is shown."""
    history = fill_room(gateway, "late", [("ann", "h1"), ("ann", "h2"), ("ann", "h3")])
    stored = [frame["text"] for frame in history]  # in id order, which need not be h1 h2 h3
    held: list[str] = []
    second_shown = []

    def hold_first(route: Any, frame: str) -> None:
        text = json.loads(frame).get("text")
        if text == "first" and not second_shown:
            held.append(frame)
            return
        route.send(frame)
        if text == "second":
            second_shown.append(True)
            for late in held:
                route.send(late)

    routes: list[Any] = []
    page = open_page(
        in_room(gateway, "late"),
        before=lambda page: relay_frames(page, hold_first, routes),
    )
    wait_online(page)
    expect(messages(page)).to_have_text(stored)
    with gateway.connect("?room=late&nick=writer") as writer:
        # A first frame: until then the chat lists and counts it nowhere. Presence may come
        # first: the room's earlier visitors leaving (their $disconnect runs late).
        writer.send(json.dumps({"action": "ping"}))
        assert wait_for_frame(writer, "pong", skipping={"presence"}, timeout=30) == {"type": "pong"}
        expect(page.locator("#log")).to_contain_text("writer joined")
        for text in ("first", "second"):
            writer.send(json.dumps({"action": "sendmessage", "data": text}))
            while json.loads(writer.recv(timeout=30)).get("text") != text:
                pass
        expect(messages(page)).to_have_count(5)
    assert held, "the first message was not held back"
    expect(page.locator("#log")).to_contain_text("writer left")

    # A message older than everything shown, arriving last, goes to the very top.
    oldest = datetime.fromisoformat(history[0]["ts"]) - timedelta(minutes=1)
    routes[0].send(json.dumps(message_frame("late", "ann", "h0", oldest)))
    expect(messages(page)).to_have_count(6)
    nick = page.get_by_label("Nickname", exact=True).input_value()
    assert rows(page) == [
        "h0",
        *stored,
        f"you joined #late as {nick}",
        "writer joined",
        "first",
        "second",
        "writer left",
    ]


def test_a_message_whose_answer_was_unavailable_is_sent_again_and_shown_once(
    gateway: RunningGateway, open_page: Any
) -> None:
    lost: list[str] = []

    def lose_the_first_answer(route: Any, frame: str) -> None:
        document = json.loads(frame)
        if document.get("text") == "stored, answer lost" and not lost:
            lost.append(document["id"])  # stored, but the sender hears it was unavailable
            error = {"type": "error", "code": "unavailable", "message": "x", "id": document["id"]}
            route.send(json.dumps(error))
            return
        route.send(frame)

    sender = open_page(
        in_room(gateway, "resend"), before=lambda page: relay_frames(page, lose_the_first_answer)
    )
    reader = open_page(in_room(gateway, "resend"))
    wait_online(sender)
    wait_online(reader)
    say(sender, "stored, answer lost")
    expect(sender.locator("#log")).to_contain_text("sending it again")
    expect(sender.locator("#log li.message.own .text")).to_have_text(["stored, answer lost"])
    expect(messages(reader)).to_have_text(["stored, answer lost"])
    assert len(lost) == 1
    sender.wait_for_timeout(500)  # the resend's broadcast reached the reader too: no copy shown
    expect(messages(reader)).to_have_text(["stored, answer lost"])
    expect(messages(sender)).to_have_text(["stored, answer lost"])


def test_a_computer_whose_clock_is_off_still_sends(gateway: RunningGateway, open_page: Any) -> None:
    behind = datetime.now(UTC) - timedelta(minutes=10)  # message ids carry a time
    page = open_page(
        in_room(gateway, "skewed"), before=lambda page: page.clock.install(time=behind)
    )
    wait_online(page)
    say(page, "my clock is ten minutes slow")
    expect(page.locator("#log li.message.own .text")).to_have_text(["my clock is ten minutes slow"])
    expect(page.locator("#log li.error")).to_have_count(0)


def test_reading_back_is_not_interrupted_by_new_messages(
    gateway: RunningGateway, open_page: Any
) -> None:
    fill_room(gateway, "reading", conversation(60))
    reader = open_page(in_room(gateway, "reading"))
    writer = open_page(in_room(gateway, "reading"))
    wait_online(reader)
    wait_online(writer)
    expect(messages(reader)).to_have_count(50)
    assert at_bottom(reader)
    new_messages = reader.locator("#new-messages")

    reader.locator("#scroller").evaluate("view => { view.scrollTop = 200; }")
    say(writer, "are you still reading?")
    expect(messages(reader).last).to_have_text("are you still reading?")
    expect(reader.get_by_role("button", name="1 new message")).to_be_visible()
    say(writer, "the end is down here")
    expect(reader.get_by_role("button", name="2 new messages")).to_be_visible()
    assert scroll_top(reader) == 200
    expect(messages(reader).last).not_to_be_in_viewport()

    new_messages.click()
    expect(new_messages).to_be_hidden()
    assert at_bottom(reader)
    expect(messages(reader).last).to_be_in_viewport()

    say(writer, "and one more")  # a reader at the bottom follows the conversation
    expect(messages(reader).last).to_have_text("and one more")
    expect(messages(reader).last).to_be_in_viewport()
    expect(new_messages).to_be_hidden()

    reader.locator("#scroller").evaluate("view => { view.scrollTop = 200; }")
    say(reader, "my own line takes me down")
    expect(messages(reader).last).to_have_text("my own line takes me down")
    expect(messages(reader).last).to_be_in_viewport()
    assert at_bottom(reader)
    expect(new_messages).to_be_hidden()


def test_ones_own_message_is_the_newest_even_when_the_servers_clock_was_learnt_late(
    gateway: RunningGateway, open_page: Any
) -> None:
    """Message ids come from the server's clock as `joined` told it, which is late by that
    frame's trip (seconds, under load: issue 23). Here it is 30 s late; the messages the
    page has seen are newer than that, and its own must still sort after them."""
    fill_room(gateway, "latejoin", conversation(10))

    def late_clock(route: Any, frame: str) -> None:
        document = json.loads(frame)
        if document.get("type") == "joined":
            told = datetime.fromisoformat(document["server_time"]) - timedelta(seconds=30)
            document["server_time"] = told.isoformat().replace("+00:00", "Z")
            frame = json.dumps(document)
        route.send(frame)

    page = open_page(
        in_room(gateway, "latejoin"), before=lambda page: relay_frames(page, late_clock)
    )
    reader = open_page(in_room(gateway, "latejoin"))
    wait_online(page)
    wait_online(reader)
    expect(messages(page)).to_have_count(10)
    say(page, "mine comes last")
    expect(page.locator("#log li.message.own:not(.pending) .text")).to_have_text(
        ["mine comes last"]
    )
    expect(messages(page).last).to_have_text("mine comes last")
    expect(messages(page).last).to_be_in_viewport()
    expect(messages(reader)).to_have_count(11)
    expect(messages(reader).last).to_have_text("mine comes last")
    expect(page.locator("#log li.error")).to_have_count(0)


def test_a_reader_following_the_bottom_keeps_following_when_the_layout_grows_late(
    gateway: RunningGateway, open_page: Any
) -> None:
    """Following is the reader's choice, kept by the page: a row that grows after it was
    laid out (a late font, an image) must not make a new message look unseen."""
    fill_room(gateway, "relayout", conversation(30))
    reader = open_page(in_room(gateway, "relayout"))
    writer = open_page(in_room(gateway, "relayout"))
    wait_online(reader)
    wait_online(writer)
    expect(messages(reader)).to_have_count(30)
    assert at_bottom(reader)
    reader.locator("#log li.message").first.evaluate("row => { row.style.paddingTop = '600px'; }")
    say(writer, "still following")
    expect(messages(reader).last).to_have_text("still following")
    expect(messages(reader).last).to_be_in_viewport()
    expect(reader.locator("#new-messages")).to_be_hidden()
    assert at_bottom(reader)


def relay_to_server(page: Any, forward: Callable[[Any, Any, str], None]) -> None:
    """Route the page's websockets through the test the other way: `forward(route, server,
    frame)` decides what the server receives of each frame the page sends."""

    def relay(route: Any) -> None:
        server = route.connect_to_server()
        route.on_message(lambda frame: forward(route, server, frame))

    page.route_web_socket(re.compile(r"^ws://"), relay)


def test_a_message_sent_as_the_link_drops_is_delivered_once_after_reconnecting(
    gateway: RunningGateway, open_page: Any
) -> None:
    dropped: list[str] = []

    def drop_the_link_with_it(route: Any, server: Any, frame: str) -> None:
        if not dropped and json.loads(frame).get("data") == "sent as the link drops":
            dropped.append(frame)  # lost on the way, and the link with it
            route.close()
            server.close()
            return
        server.send(frame)

    sender = open_page(
        in_room(gateway, "outbox"),
        before=lambda page: relay_to_server(page, drop_the_link_with_it),
    )
    reader = open_page(in_room(gateway, "outbox"))
    wait_online(sender)
    wait_online(reader)
    say(sender, "sent as the link drops")
    expect(messages(reader)).to_have_text(["sent as the link drops"])
    expect(sender.locator("#log li.message.own:not(.pending) .text")).to_have_text(
        ["sent as the link drops"]
    )
    assert len(dropped) == 1
    expect(sender.locator("#log li.pending")).to_have_count(0)
    say(sender, "and after it")
    expect(messages(reader)).to_have_text(["sent as the link drops", "and after it"])
    expect(messages(sender)).to_have_text(["sent as the link drops", "and after it"])


def test_a_message_never_acknowledged_says_not_sent_and_retry_delivers_it_once(
    gateway: RunningGateway, open_page: Any
) -> None:
    swallowed: list[str] = []
    passing: list[bool] = []

    def swallow_messages(route: Any, server: Any, frame: str) -> None:
        if not passing and json.loads(frame).get("action") == "sendmessage":
            swallowed.append(frame)  # the link stays up; the message goes nowhere
            return
        server.send(frame)

    sender = open_page(
        in_room(gateway, "retry") + "&ack=1",
        before=lambda page: relay_to_server(page, swallow_messages),
    )
    reader = open_page(in_room(gateway, "retry"))
    wait_online(sender)
    wait_online(reader)
    say(sender, "please arrive")
    pending = sender.locator("#log li.message.pending")
    expect(pending.locator(".text")).to_have_text(["please arrive"])
    expect(pending.locator(".delivery")).to_have_text("Not sent Retry")
    assert len(swallowed) == 1
    expect(messages(reader)).to_have_count(0)

    passing.append(True)
    pending.get_by_role("button", name="Retry").click()
    expect(messages(reader)).to_have_text(["please arrive"])
    expect(sender.locator("#log li.message.own:not(.pending) .text")).to_have_text(
        ["please arrive"]
    )
    expect(pending).to_have_count(0)
    sender.wait_for_timeout(1500)  # past the acknowledgement timeout: nothing says Not sent
    expect(sender.locator("#log")).not_to_contain_text("Not sent")
    expect(messages(reader)).to_have_text(["please arrive"])


def test_room_counts_match_the_members_list(gateway: RunningGateway, open_page: Any) -> None:
    watcher = open_page(in_room(gateway, "census"))
    wait_online(watcher)

    def counts_agree(count: int) -> None:
        expect(watcher.locator("#member-count")).to_have_text(f"({count})")
        expect(watcher.locator("#members li")).to_have_count(count)
        expect(watcher.locator("#rooms [aria-current=true]")).to_have_text(f"#census ({count})")
        expect(watcher.locator("#rooms [aria-current=true]")).to_have_count(1)

    counts_agree(1)
    ann = open_page(gateway.endpoints["http"])
    bea = open_page(gateway.endpoints["http"])
    wait_online(ann)
    wait_online(bea)
    join(ann, "census")
    counts_agree(2)
    join(bea, "census")
    counts_agree(3)
    expect(ann.locator("#rooms [aria-current=true]")).to_have_text("#census (3)")
    join(ann, "lobby")  # `join` adds a room (issue 17): ann is in #census still
    counts_agree(3)
    expect(ann.locator("#rooms [aria-current=true]")).to_contain_text("#lobby")
    bea.context.close()
    counts_agree(2)
    ann.context.close()
    counts_agree(1)


def test_a_weeks_history_has_day_separators_and_groups(
    gateway: RunningGateway, open_page: Any
) -> None:
    """The server's `joined` frame is given a week of history (the server stamps only
    now); days are the reader's, in Auckland, so some differ from the UTC date."""
    zone = ZoneInfo("Pacific/Auckland")
    now = datetime(2026, 3, 4, 22, 30, tzinfo=zone)
    week = week_of_history("week", now)

    def with_a_week(route: Any, frame: str) -> None:
        joined = json.loads(frame)
        if joined.get("type") == "joined" and joined["room"] == "week":
            joined["history"] = week
            frame = json.dumps(joined)
        route.send(frame)

    def prepare(page: Any) -> None:
        page.clock.set_fixed_time(now)
        relay_frames(page, with_a_week)

    page = open_page(
        in_room(gateway, "week"),
        viewport=DESKTOP,
        before=prepare,
        timezone_id="Pacific/Auckland",
        locale="en-US",
    )
    wait_online(page)
    expect(messages(page)).to_have_count(len(week))
    days = [now.date() - timedelta(days=ago) for ago in range(6, -1, -1)]
    labels = [f"{day:%A}, {day:%B} {day.day}" for day in days[:-2]] + ["Yesterday", "Today"]
    expect(page.locator("#log li.day")).to_have_text(labels)
    midnight = page.get_by_text("just after midnight", exact=True).locator("xpath=..")
    expect(midnight).to_have_class(re.compile(r"\bmessage\b"))
    expect(midnight).not_to_have_class(re.compile("continued"))
    expect(midnight.locator("xpath=preceding-sibling::li[1]")).to_have_text(labels[4])
    # Each day ada's second line joins her first; bob's, 17 minutes later, stands alone.
    continued = page.locator("#log li.message.continued .text")
    expect(continued).to_have_text([f"coffee? ({ago})" for ago in range(6, -1, -1)])
    expect(page.locator("#log li.message:not(.continued)")).to_have_count(len(week) - len(days))
    # A grouped line's name and time stay for screen readers, out of sight.
    assert page.locator("#log li.continued .head").first.bounding_box()["height"] <= 1
    you_joined = page.locator("#log li.system").last
    expect(you_joined).to_contain_text("you joined #week")
    quiet, loud = (
        page.locator(selector).first.evaluate("item => parseFloat(getComputedStyle(item).fontSize)")
        for selector in ("#log li.system", "#log li.message .text")
    )
    assert quiet < loud
    screenshot(page, "desktop.png")


def test_commands_and_errors_are_worded_for_people(gateway: RunningGateway, open_page: Any) -> None:
    routes: list[Any] = []
    page = open_page(
        in_room(gateway, "words"),
        before=lambda page: relay_frames(page, lambda route, frame: route.send(frame), routes),
    )
    wait_online(page)
    alerts = page.locator("#log li.error > [role=alert]")
    say(page, "/help")
    expect(page.locator("#log")).to_contain_text("/join ROOM — add ROOM to your rooms and switch")
    say(page, "/join no spaces allowed")
    expect(alerts.last).to_have_text(
        "Room names use only letters, digits, dots, dashes and underscores, at most 64. "
        "Usage: /join ROOM"
    )
    say(page, "/nick")
    expect(alerts.last).to_have_text("Usage: /nick NAME")
    expect(page.get_by_label("Message (or /help)")).to_have_value("/nick")  # to finish it
    say(page, "/join")
    expect(alerts.last).to_have_text("Usage: /join ROOM")
    say(page, "/history lots")
    expect(alerts.last).to_have_text("Usage: /history [N], N from 1 to 50")
    say(page, "/frobnicate")
    expect(alerts.last).to_have_text(
        "There is no command /frobnicate. Type /help to see the commands"
    )
    say(page, "/history")  # an empty room
    expect(page.locator("#log li.system").last).to_have_text("No older messages")

    # Codes of a newer server, and one this page has never heard of.
    newer = [
        (
            {"code": "rate_limited", "message": "slow down", "retry_after_ms": 2300},
            "You are sending too fast; try again in 3 s",
        ),
        ({"code": "nick_taken", "message": "taken"}, "That nickname is taken in this room"),
        ({"code": "teapot", "message": "The kettle is on"}, "The kettle is on"),
    ]
    for frame, words in newer:
        routes[0].send(json.dumps({"type": "error", **frame}))
        expect(alerts.last).to_have_text(words)
    expect(alerts).to_have_count(8)
    shown = page.locator("#log").text_content()
    for code in ("invalid_room", "unknown_action", "rate_limited", "nick_taken", "teapot"):
        assert code not in shown

    say(page, "/join terrace")
    expect(page.locator("#room-title")).to_have_text("#terrace")
    say(page, "/who")
    expect(page.locator("#log")).to_contain_text("People in #terrace:")
    say(page, "/rooms")
    expect(page.locator("#log li.system").last).to_contain_text("#terrace (1)")


def test_keyboard_focus_and_labels(gateway: RunningGateway, open_page: Any) -> None:
    page = open_page(in_room(gateway, "keys"))
    wait_online(page)
    composer = page.get_by_label("Message (or /help)")
    for line in ("first line", "second line"):
        composer.fill(line)
        composer.press("Enter")
    expect(messages(page)).to_have_text(["first line", "second line"])
    expect(composer).to_have_value("")
    # Up in an empty composer edits one's last message; Escape cancels.
    composer.press("ArrowUp")
    expect(composer).to_have_value("second line")
    expect(page.get_by_text("Editing your message")).to_be_visible()
    composer.press("Escape")
    expect(composer).to_have_value("")
    expect(page.get_by_text("Editing your message")).to_be_hidden()
    # With no message of one's own shown, Up and Down step through the lines sent.
    say(page, "/join keys2")
    expect(page.locator("#room-title")).to_have_text("#keys2")
    composer.press("ArrowUp")
    expect(composer).to_have_value("/join keys2")
    composer.press("ArrowUp")
    expect(composer).to_have_value("second line")
    composer.press("ArrowDown")
    expect(composer).to_have_value("/join keys2")
    composer.press("ArrowDown")
    expect(composer).to_have_value("")
    composer.fill("a draft")
    composer.press("ArrowUp")
    expect(composer).to_have_value("a draft")  # a draft is never replaced

    unnamed = page.evaluate(
        """() => [...document.querySelectorAll("button, input")].filter((control) => {
            const label = control.labels && control.labels.length
                ? control.labels[0].textContent : control.getAttribute("aria-label")
                  || control.textContent;
            return !label || !label.trim();
        }).map((control) => control.outerHTML)"""
    )
    assert unnamed == []
    for label in ("Nickname", "Room", "Message (or /help)"):
        expect(page.get_by_label(label, exact=True)).to_be_visible()

    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("Tab")
    focused = page.evaluate(
        """() => { const style = getComputedStyle(document.activeElement);
                   return [document.activeElement.id, style.outlineStyle,
                           parseFloat(style.outlineWidth)]; }"""
    )
    assert focused[0] == "nick-input"
    assert focused[1] != "none" and focused[2] >= 2


def test_the_ws_parameter_points_the_page_at_another_api(
    gateway: RunningGateway, open_page: Any
) -> None:
    # As `make page` serves static/ for a deployed stage: another origin than the API's.
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=ROOT / "static",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        served = f"http://127.0.0.1:{port}/"
        wait_until_serving(served)
        page = open_page(f"{served}?ws={gateway.endpoints['websocket']}")
        wait_online(page)
        say(page, "from a page served elsewhere")
        expect(messages(page).last).to_have_text("from a page served elsewhere")
    finally:
        server.terminate()
        server.wait(timeout=10)


def wait_until_serving(url: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            assert time.monotonic() < deadline, f"nothing serves {url}"
            time.sleep(0.1)


def test_a_page_opened_from_a_file_says_how_to_serve_it(
    gateway: RunningGateway, open_page: Any
) -> None:
    """Browsers load no ES modules from a file://: the page says so, with the link."""
    ws = gateway.endpoints["websocket"]
    page = open_page(f"{(ROOT / 'static' / 'index.html').as_uri()}?ws={ws}")
    expect(page.locator("#status")).to_have_text("cannot run from a file")
    notice = page.get_by_role("alert")
    expect(notice).to_contain_text("make page")
    expect(notice.get_by_role("link")).to_have_attribute("href", f"http://127.0.0.1:8000/?ws={ws}")


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
            assert frame["type"] != "error", f"refused after {len(posted)} posted: {frame}"
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
    # The unanswered ping dropped the silent link: a reconnect (on a loaded machine a late
    # pong can cost one more, which is what the page should do with a ping unanswered).
    assert len(links) >= 2
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
