"""The page's side of conversation and moderation (issues 18 and 19) in a real browser:
edit, delete, reactions, typing, mentions and a moderator's delete and ban, between
alice, bob and carol, each signed in in a browser context of their own.

One gateway for the module (AUTH=optional, the demo users); each test uses rooms of its
own. Helpers and flags are those of tests/test_page.py and tests/test_page_rooms.py.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.sync_api import expect

from tests import test_page as shared
from tests.conftest import ROOT, RunningGateway, start_gateway
from tests.page_support import fill_room
from tests.test_page import (
    DESKTOP,
    PHONE,
    fits_the_viewport,
    join,
    messages,
    relay_frames,
    say,
    screenshot,
    set_nick,
    wait_online,
)
from tests.test_page_a11y import violations
from tests.test_page_rooms import USERS, badge, set_visibility, sign_in

pytestmark = pytest.mark.browser

browser = shared.browser
open_page = shared.open_page

# What "at once" means here: the change shows in the other pages within a second.
LIVE_MS = 1000


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    users = [flag for user, word in USERS.items() for flag in ("--cognito-user", f"{user}:{word}")]
    lifted = ["--env", "RATE_PER_SECOND=10000", "--env", "RATE_BURST=10000"]
    running = start_gateway(
        tmp_path_factory.mktemp("conversation"),
        ROOT,
        "--no-autoreload",
        "--env",
        "AUTH=optional",
        *lifted,
        *users,
    )
    yield running
    running.stop()


def person(
    open_page: Any,
    gateway: RunningGateway,
    user: str,
    room: str,
    viewport: Any = DESKTOP,
    script: str = "",
    rewrite: Callable[[Any, str], None] | None = None,
    routes: list[Any] | None = None,
    **options: Any,
) -> Any:
    """`user` signed in and online in `room`; every frame the page sends is kept in
    `page.sent`. `script` runs in the page before its own. With `rewrite` or `routes`, its
    websockets go through the test (tests/test_page.py, relay_frames)."""
    about = gateway.endpoints["cognito"]
    query = {"cognito": about["endpoint"], "client": about["clients"]["ChatUserPoolClient"]}
    url = f"{gateway.endpoints['http']}?{urlencode({**query, 'room': room})}"
    sent: list[str] = []

    def record(page: Any) -> None:
        page.on(
            "websocket", lambda socket: socket.on("framesent", lambda frame: sent.append(frame))
        )
        if script:
            page.add_init_script(script)
        if rewrite is not None or routes is not None:
            relay_frames(page, rewrite or (lambda route, frame: route.send(frame)), routes)

    page = open_page(url, viewport, before=record, reduced_motion="reduce", **options)
    page.sent = sent
    sign_in(page, user)
    expect(page.locator("#room-title")).to_have_text(f"#{room}")
    return page


def row(page: Any, text: str) -> Any:
    return page.locator("#log li.message", has_text=text)


def menu_of(page: Any, text: str) -> Any:
    """Open a message's menu from its hover button."""
    message = row(page, text)
    message.hover()
    message.get_by_role("button", name="Message actions").click()
    return message.get_by_role("menu")


def long_press(page: Any, text: str) -> Any:
    """Open a message's menu as a finger does: a press held past half a second."""
    held = row(page, text).locator(".text")
    held.dispatch_event("pointerdown", {"pointerType": "touch", "isPrimary": True})
    page.wait_for_timeout(700)
    held.dispatch_event("pointerup", {"pointerType": "touch", "isPrimary": True})
    return row(page, text).get_by_role("menu")


def typing_frames(page: Any) -> int:
    return sum(1 for frame in page.sent if json.loads(frame).get("action") == "typing")


def test_edit_delete_reactions_and_typing_reach_the_others_at_once(
    gateway: RunningGateway, open_page: Any
) -> None:
    room = "talk"
    alice, bob, carol = (person(open_page, gateway, user, room) for user in USERS)
    for page in (alice, bob):
        expect(page.locator("#members")).to_contain_text("carol")
    everyone = (alice, bob, carol)

    # Typing: bob sees alice typing while she types, and not once her message arrives.
    composer = alice.get_by_label("Message (or /help)")
    composer.press_sequentially("helo everyone", delay=60)  # about a second of typing
    expect(bob.locator("#typing")).to_have_text("alice is typing…", timeout=LIVE_MS)
    expect(carol.locator("#typing")).to_have_text("alice is typing…", timeout=LIVE_MS)
    expect(alice.locator("#typing")).to_have_text("")  # not to herself
    carol.get_by_label("Message (or /help)").press_sequentially("me")
    expect(bob.locator("#typing")).to_have_text("alice and carol are typing…", timeout=LIVE_MS)
    screenshot(bob, "conversation-typing.png")
    assert typing_frames(alice) == 1  # one frame for a second of typing
    composer.press("Enter")
    for page in everyone:
        expect(messages(page).last).to_have_text("helo everyone")
    expect(bob.locator("#typing")).to_have_text("carol is typing…", timeout=LIVE_MS)
    carol.get_by_label("Message (or /help)").fill("")

    # Up in an empty composer edits alice's last message; Escape cancels.
    composer.press("ArrowUp")
    expect(alice.locator("#editing")).to_be_visible()
    expect(composer).to_have_value("helo everyone")
    composer.press("Escape")
    expect(alice.locator("#editing")).to_be_hidden()
    expect(composer).to_have_value("")
    composer.press("ArrowUp")
    composer.fill("hello everyone")
    composer.press("Enter")
    for page in everyone:
        expect(messages(page).last).to_have_text("hello everyone (edited)", timeout=LIVE_MS)
    expect(alice.locator("#editing")).to_be_hidden()
    assert typing_frames(alice) == 1  # an edit is not typing a message

    # Reactions: bob's from the picker, carol's by the reaction itself; names in the title.
    menu = menu_of(bob, "hello everyone")
    expect(menu.get_by_role("menuitem", name="Edit")).to_have_count(0)  # not his
    expect(menu.get_by_role("menuitem", name="Delete")).to_have_count(0)
    menu.get_by_role("menuitem", name="React 🎉").click()
    for page in everyone:
        reaction = row(page, "hello everyone").locator(".reaction")
        expect(reaction).to_have_text("🎉 1", timeout=LIVE_MS)
        expect(reaction).to_have_attribute("title", "bob")
    row(carol, "hello everyone").locator(".reaction").click()
    for page in everyone:
        reaction = row(page, "hello everyone").locator(".reaction")
        expect(reaction).to_have_text("🎉 2", timeout=LIVE_MS)
        expect(reaction).to_have_attribute("title", "bob, carol")
    expect(row(carol, "hello everyone").locator(".reaction")).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(row(alice, "hello everyone").locator(".reaction")).to_have_attribute(
        "aria-pressed", "false"
    )
    menu = menu_of(alice, "hello everyone")
    screenshot(alice, "conversation-menu.png")
    assert violations(alice) == []  # axe: the menu, reactions, the edited mark
    # The keys: focus starts on the first item, arrows move (and wrap), Escape closes.
    expect(menu.get_by_role("menuitem", name="React 👍")).to_be_focused()
    alice.keyboard.press("ArrowLeft")
    expect(menu.get_by_role("menuitem", name="Delete")).to_be_focused()
    alice.keyboard.press("Escape")
    expect(alice.get_by_role("menu")).to_have_count(0)
    expect(
        row(alice, "hello everyone").get_by_role("button", name="Message actions")
    ).to_be_focused()

    # alice deletes it: a quiet tombstone everywhere, its reactions gone.
    menu_of(alice, "hello everyone").get_by_role("menuitem", name="Delete").click()
    for page in everyone:
        expect(messages(page).last).to_have_text("message deleted", timeout=LIVE_MS)
        expect(page.locator("#log .reaction")).to_have_count(0)
    screenshot(carol, "conversation-deleted.png")
    # A page opened afterwards sees the tombstone in the history.
    carol.reload()
    sign_in(carol, "carol")
    expect(messages(carol).last).to_have_text("message deleted")


def test_a_moderator_deletes_and_bans_from_the_page_and_a_phone_has_the_long_press_menu(
    gateway: RunningGateway, open_page: Any
) -> None:
    room = "moderated"
    alice = person(open_page, gateway, "alice", "lobby")
    # alice creates the room on the page: she owns it, so she moderates it.
    alice.get_by_label("New room").fill(room)
    alice.get_by_role("button", name="Create").click()
    expect(alice.locator("#room-title")).to_have_text(f"#{room}")
    # bob, on a phone, has the lobby too: a ban takes him back there.
    bob = person(open_page, gateway, "bob", "lobby", PHONE, has_touch=True, is_mobile=True)
    say(bob, f"/join {room}")
    expect(bob.locator("#room-title")).to_have_text(f"#{room}")
    carol = person(open_page, gateway, "carol", room)
    expect(alice.locator("#members")).to_contain_text("bob")

    # bob on a phone: a long press on his message opens its menu; he edits from it.
    say(bob, "first from the phone")
    expect(messages(bob).last).to_have_text("first from the phone")
    menu = long_press(bob, "first from the phone")
    expect(menu).to_be_visible()
    expect(menu.get_by_role("menuitem", name="Edit")).to_be_in_viewport(ratio=1)
    expect(menu.get_by_role("menuitem", name="Delete")).to_be_in_viewport(ratio=1)
    fits_the_viewport(bob)
    screenshot(bob, "conversation-phone-menu.png")
    assert violations(bob) == []
    menu.get_by_role("menuitem", name="Edit").click()
    bob.get_by_label("Message (or /help)").fill("spam from the phone")
    bob.get_by_label("Message (or /help)").press("Enter")
    for page in (alice, bob, carol):
        expect(messages(page).last).to_have_text("spam from the phone (edited)", timeout=LIVE_MS)
    fits_the_viewport(bob)

    # carol is a member: nothing to do with bob's message but react.
    menu = menu_of(carol, "spam from the phone")
    expect(menu.get_by_role("menuitem")).to_have_count(8)  # the picker only
    carol.keyboard.press("Escape")

    # alice moderates: she deletes bob's message, then bans him.
    menu = menu_of(alice, "spam from the phone")
    expect(menu.get_by_role("menuitem", name="Kick bob")).to_be_visible()
    screenshot(alice, "conversation-moderator-menu.png")
    menu.get_by_role("menuitem", name="Delete").click()
    for page in (alice, bob, carol):
        expect(messages(page).last).to_have_text("message deleted by alice", timeout=LIVE_MS)
    say(bob, "and again")
    expect(messages(alice).last).to_have_text("and again")
    menu_of(alice, "and again").get_by_role("menuitem", name="Ban bob").click()
    expect(alice.locator("#log li.system").last).to_have_text(
        f"bob was banned from #{room} by alice"
    )
    expect(bob.locator("#room-title")).to_have_text("#lobby")
    expect(bob.locator("#log li.system", has_text="banned")).to_have_text(
        f"you are banned from {room} (by alice): you cannot rejoin it"
    )
    expect(alice.locator("#members")).not_to_contain_text("bob")
    screenshot(bob, "conversation-phone-banned.png")
    # He cannot come back.
    bob.get_by_role("button", name="Rooms and people").click()
    bob.get_by_label("Room", exact=True).fill(room)
    bob.get_by_label("Room", exact=True).press("Enter")
    expect(bob.locator("#log li.error").last).to_contain_text("banned")
    expect(bob.locator("#room-title")).to_have_text("#lobby")
    screenshot(bob, "conversation-phone-rejoin-refused.png")


# Every notification the page raises, kept in `window.raised` (the browser's own
# Notification still runs: the permission is the context's).
COUNT_NOTIFICATIONS = """
window.raised = [];
window.Notification = class extends window.Notification {
  constructor(title, options) {
    super(title, options);
    window.raised.push({ title, body: options && options.body });
  }
};
"""


def test_a_mention_while_the_tab_is_hidden_notifies_once_and_badges(
    gateway: RunningGateway, open_page: Any
) -> None:
    room = "mentions"
    bob = person(
        open_page,
        gateway,
        "bob",
        room,
        script=COUNT_NOTIFICATIONS,
        permissions=["notifications"],
    )
    carol = person(open_page, gateway, "carol", room)
    alice = person(open_page, gateway, "alice", room)
    expect(bob.locator("#members")).to_contain_text("alice")
    # Never asked on load: carol's page offers a button, and the browser was not asked.
    expect(carol.get_by_role("button", name="Notify me of mentions and DMs")).to_be_visible()
    assert carol.evaluate("Notification.permission") == "default"
    expect(bob.get_by_role("button", name="Notify me of mentions and DMs")).to_be_hidden()

    set_visibility(bob, "hidden")
    # `@` offers the room's signed-in members; arrows move, Enter picks.
    composer = alice.get_by_label("Message (or /help)")
    composer.press_sequentially("lunch? @")
    options = alice.get_by_role("listbox", name="Members to mention").get_by_role("option")
    expect(options).to_have_text(["@bob", "@carol"])
    screenshot(alice, "conversation-mention-list.png")
    assert violations(alice) == []  # axe: the composer as a combobox, its list open
    composer.press("ArrowDown")
    expect(options.nth(1)).to_have_attribute("aria-selected", "true")
    composer.press("ArrowUp")
    composer.press("Enter")
    expect(composer).to_have_value("lunch? @bob ")
    composer.press_sequentially("at noon")
    composer.press("Enter")
    expect(messages(alice).last).to_have_text("lunch? @bob at noon")

    expect(messages(bob).last).to_have_text("lunch? @bob at noon")
    mention = bob.locator("#log li.message.mentions-me mark.mention.me")
    expect(mention).to_have_text("@bob")
    expect(badge(bob, room)).to_have_text("1")
    expect(bob.locator(f'#rooms button[data-room="{room}"] .mention-count')).to_have_text("@1")
    expect(bob).to_have_title("(1) chalice-chat")
    say(alice, "and a plain one")
    expect(badge(bob, room)).to_have_text("2")
    expect(bob.locator(f'#rooms button[data-room="{room}"] .mention-count')).to_have_text("@1")
    raised = bob.evaluate("window.raised")
    assert raised == [{"title": "alice in #mentions", "body": "lunch? @bob at noon"}]
    # carol was not mentioned: her row is plain.
    expect(carol.locator("#log li.message.mentions-me")).to_have_count(0)
    screenshot(bob, "conversation-mention-badge.png")

    set_visibility(bob, "visible")
    expect(badge(bob, room)).to_have_count(0)
    expect(bob.locator("#rooms .mention-count")).to_have_count(0)
    expect(bob).to_have_title("chalice-chat")


# Every typing frame the page sends, when it went (`window.typingSent`, ms), and every
# text its typing line shows in turn (`window.typingShown`).
WATCH_TYPING = """
window.typingSent = [];
const sendFrame = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) {
  let action = "";
  try {
    action = JSON.parse(data).action;
  } catch {}
  if (action === "typing") window.typingSent.push(Date.now());
  return sendFrame.call(this, data);
};
window.typingShown = [];
document.addEventListener("DOMContentLoaded", () => {
  const line = document.getElementById("typing");
  new MutationObserver(() => {
    const shown = window.typingShown;
    if (shown[shown.length - 1] !== line.textContent) shown.push(line.textContent);
  }).observe(line, { childList: true, characterData: true, subtree: true });
});
"""
# Steady typing, as long as it lasts: the page's typing frames go 4 s apart.
STEADY_S = 10
# Someone is typing for 5 s after their last typing frame (typing.js).
SHOWN_MS = 5000


def type_for(page: Any, seconds: float) -> None:
    """Type into the composer, a key every tenth of a second, for `seconds`."""
    composer = page.get_by_label("Message (or /help)")
    started = time.monotonic()
    for key in itertools.cycle("typing along steadily "):
        if time.monotonic() - started >= seconds:
            return
        composer.press(key if key != " " else "Space")
        page.wait_for_timeout(100)


def test_typing_names_one_two_then_several_and_each_name_goes_on_its_own(
    gateway: RunningGateway, open_page: Any
) -> None:
    room = "typists"
    alice, bob, carol = (
        person(open_page, gateway, user, room, script=WATCH_TYPING) for user in USERS
    )
    dave = open_page(
        f"{gateway.endpoints['http']}?room={room}",
        DESKTOP,
        before=lambda page: page.add_init_script(WATCH_TYPING),
        reduced_motion="reduce",
    )
    wait_online(dave)
    set_nick(dave, "dave")  # the fourth, a guest
    expect(bob.locator("#member-count")).to_have_text("(4)")

    # alice types steadily for 10 s: one frame at once, then one every 4 s, and not
    # one dropped by the server (3 s apart per connection): bob's line never lapses.
    bob.evaluate("window.typingShown = []")
    type_for(alice, STEADY_S)
    sent = alice.evaluate("window.typingSent")
    assert 2 <= len(sent) <= 3, sent
    assert bob.evaluate("window.typingShown") == ["alice is typing…"]
    # It goes within 5 s of her last frame, so of her last keystroke.
    expect(bob.locator("#typing")).to_have_text("", timeout=SHOWN_MS + LIVE_MS)
    alice.get_by_label("Message (or /help)").fill("")

    # One, two, then several; never oneself.
    alice.get_by_label("Message (or /help)").press_sequentially("so")
    expect(bob.locator("#typing")).to_have_text("alice is typing…", timeout=LIVE_MS)
    carol.get_by_label("Message (or /help)").press_sequentially("me")
    expect(bob.locator("#typing")).to_have_text("alice and carol are typing…", timeout=LIVE_MS)
    dave.get_by_label("Message (or /help)").press_sequentially("me too")
    expect(bob.locator("#typing")).to_have_text("several people are typing…", timeout=LIVE_MS)
    expect(alice.locator("#typing")).to_have_text("carol and dave are typing…", timeout=LIVE_MS)
    screenshot(bob, "conversation-typing-several.png")
    # alice sends: her name leaves at once, the others' stay.
    alice.get_by_label("Message (or /help)").press_sequentially(" here")
    alice.get_by_label("Message (or /help)").press("Enter")
    expect(messages(bob).last).to_have_text("so here")
    expect(bob.locator("#typing")).to_have_text("carol and dave are typing…")
    # carol and dave stopped: their names go within 5 s of their last keystroke.
    expect(bob.locator("#typing")).to_have_text("", timeout=SHOWN_MS + LIVE_MS)
    # Every line bob saw since the steady typing, in turn: carol stopped first.
    assert bob.evaluate("window.typingShown")[2:] == [
        "alice is typing…",
        "alice and carol are typing…",
        "several people are typing…",
        "carol and dave are typing…",
        "dave is typing…",
        "",
    ]


def moderator_items(menu: Any, author: str) -> None:
    expect(menu.get_by_role("menuitem", name="Delete")).to_be_visible()
    expect(menu.get_by_role("menuitem", name=f"Kick {author}")).to_be_visible()
    expect(menu.get_by_role("menuitem", name=f"Ban {author}")).to_be_visible()


def test_an_owner_and_a_moderator_keep_the_moderator_menu_after_a_reload(
    gateway: RunningGateway, open_page: Any
) -> None:
    """Needs the server's `joined.role`: without it a reloaded page cannot know."""
    room = "kept-roles"
    alice = person(open_page, gateway, "alice", "lobby")
    alice.get_by_label("New room").fill(room)
    alice.get_by_role("button", name="Create").click()
    expect(alice.locator("#room-title")).to_have_text(f"#{room}")
    bob = person(open_page, gateway, "bob", room)
    carol = person(open_page, gateway, "carol", room)
    expect(alice.locator("#members")).to_contain_text("carol")
    say(alice, "/role bob moderator")
    for page in (alice, bob, carol):
        expect(page.locator("#log li.system", has_text="moderator")).to_have_text(
            f"bob is now a moderator of #{room}", timeout=LIVE_MS
        )
    say(carol, "carol was here")
    say(bob, "bob moderates")
    for page in (alice, bob, carol):
        expect(messages(page).last).to_have_text("bob moderates")

    for page, user in ((alice, "alice"), (bob, "bob")):
        page.reload()
        sign_in(page, user)
        if page is alice:
            join(alice, room)  # her page opens at ?room=lobby
        expect(messages(page).last).to_have_text("bob moderates")
        moderator_items(menu_of(page, "carol was here"), "carol")
        page.keyboard.press("Escape")
    menu = menu_of(carol, "bob moderates")
    expect(menu.get_by_role("menuitem")).to_have_count(8)  # the picker only


def with_role(role: str) -> Callable[[Any, str], None]:
    """A relay that adds `role` to every `joined`, as a server that tells it does."""

    def rewrite(route: Any, frame: str) -> None:
        data = json.loads(frame)
        if data.get("type") == "joined":
            data["role"] = role
        route.send(json.dumps(data))

    return rewrite


def test_the_role_in_joined_and_role_frames_decide_the_moderator_menu(
    gateway: RunningGateway, open_page: Any
) -> None:
    room = "told-roles"
    routes: list[Any] = []
    carol = person(open_page, gateway, "carol", room, rewrite=with_role("moderator"), routes=routes)
    bob = person(open_page, gateway, "bob", room)
    say(bob, "moderate me")
    expect(messages(carol).last).to_have_text("moderate me")
    moderator_items(menu_of(carol, "moderate me"), "bob")
    carol.keyboard.press("Escape")

    # Live: no longer a moderator, said in the log, and the menu follows.
    routes[-1].send(json.dumps({"type": "role", "room": room, "user": "carol", "role": "member"}))
    expect(carol.locator("#log li.system").last).to_have_text(
        f"carol is no longer a moderator of #{room}"
    )
    expect(menu_of(carol, "moderate me").get_by_role("menuitem")).to_have_count(8)
    carol.keyboard.press("Escape")
    routes[-1].send(
        json.dumps({"type": "role", "room": room, "user": "carol", "role": "moderator"})
    )
    expect(carol.locator("#log li.system").last).to_have_text(
        f"carol is now a moderator of #{room}"
    )
    moderator_items(menu_of(carol, "moderate me"), "bob")


def on_screen(page: Any, menu: Any) -> None:
    """The menu is whole on screen, and nothing scrolls sideways, the page nor the log."""
    width = page.viewport_size["width"]
    box = menu.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width, box
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert page.locator("#scroller").evaluate("view => view.scrollWidth <= view.clientWidth")
    fits_the_viewport(page)
    expect(messages(page).last).to_be_in_viewport()


# Long names, as a person may choose them (at most 32 characters).
LONG_NAMES = ["alexandra-writes-a-long-one", "bartholomew-types-slowly", "cy"]


def test_a_phone_keeps_the_typing_line_on_one_line_and_the_menu_on_screen(
    gateway: RunningGateway, open_page: Any
) -> None:
    room = "narrow"
    guest = "W" * 32  # the longest nickname, in the widest letter
    routes: list[Any] = []
    bob = person(
        open_page,
        gateway,
        "bob",
        room,
        PHONE,
        rewrite=with_role("owner"),
        routes=routes,
        has_touch=True,
        is_mobile=True,
    )
    fill_room(gateway, room, [(guest, "ok")])
    say(bob, "mine, on the right")
    expect(messages(bob).last).to_have_text("mine, on the right")
    line = bob.locator("#typing")

    def typing(*names: str) -> None:
        for name in names:
            routes[-1].send(json.dumps({"type": "typing", "room": room, "nick": name}))

    empty = line.bounding_box()["height"]
    # Two long names: cut short with an ellipsis, on the one line the empty line takes.
    typing(*LONG_NAMES[:2])
    expect(line).to_have_text(f"{LONG_NAMES[0]} and {LONG_NAMES[1]} are typing…")
    assert line.bounding_box()["height"] == empty
    assert line.evaluate("line => line.scrollWidth > line.clientWidth")  # cut, not wrapped
    screenshot(bob, "conversation-phone-typing-two.png")

    # Three: "several people", and a menu open on his own message at the right edge.
    typing(*LONG_NAMES)
    expect(line).to_have_text("several people are typing…")
    menu = long_press(bob, "mine, on the right")
    expect(menu.get_by_role("menuitem", name="Edit")).to_be_visible()
    on_screen(bob, menu)
    assert line.bounding_box()["height"] == empty
    expect(line).to_have_text("several people are typing…")
    screenshot(bob, "conversation-phone-typing-menu.png")
    bob.keyboard.press("Escape")

    # The owner's menu on the guest's message: the widest, Kick and a long name.
    typing(*LONG_NAMES)
    menu = long_press(bob, "ok")
    expect(menu.get_by_role("menuitem", name=f"Kick {guest}")).to_be_visible()
    on_screen(bob, menu)
    screenshot(bob, "conversation-phone-moderator-menu.png")
