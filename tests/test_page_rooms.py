"""The page as a team chat (issue 19) in a real browser: sign-in on the page with
AUTH=optional, and the demo users alice, bob and carol in their own browser contexts.

One gateway for the module (AUTH=optional, the demo users); each test uses rooms of its
own. Helpers and flags are those of tests/test_page.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from playwright.sync_api import expect

from tests import test_page as shared
from tests.conftest import ROOT, RunningGateway, start_gateway
from tests.page_support import conversation, fill_room
from tests.test_page import (
    DESKTOP,
    PHONE,
    fits_the_viewport,
    join,
    messages,
    say,
    screenshot,
    wait_online,
)

pytestmark = pytest.mark.browser

# The browser and one browser context per person, as tests/test_page.py opens them.
browser = shared.browser
open_page = shared.open_page

USERS = {"alice": "Alice-password-1", "bob": "Bob-password-1", "carol": "Carol-password-1"}
# This module's gateway has two more: dan, whose rooms are only those of the test that
# bans him, and eve, who moderates every room.
PASSWORDS = USERS | {"dan": "Dan-password-1", "eve": "Eve-password-1"}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    users = [
        flag for user, word in PASSWORDS.items() for flag in ("--cognito-user", f"{user}:{word}")
    ]
    lifted = ["--env", "RATE_PER_SECOND=10000", "--env", "RATE_BURST=10000"]
    running = start_gateway(
        tmp_path_factory.mktemp("rooms"),
        ROOT,
        "--no-autoreload",
        "--env",
        "AUTH=optional",
        *lifted,
        *users,
        "--cognito-group",
        "admins:eve",
    )
    yield running
    running.stop()


def sign_in(page: Any, user: str) -> None:
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(PASSWORDS[user])
    page.get_by_label("Password").press("Enter")
    expect(page.locator("#account-name")).to_have_text(f"{user}✓")
    wait_online(page)


def row_top(page: Any, text: str) -> float:
    return page.locator("#log li.message", has_text=text).bounding_box()["y"]


def test_a_guest_chats_at_once_and_signing_in_keeps_the_page_where_it_was(
    gateway: RunningGateway, open_page: Any
) -> None:
    fill_room(gateway, "upgrade", conversation(80))
    page = open_page(f"{gateway.endpoints['http']}?room=upgrade", viewport=DESKTOP)
    wait_online(page)
    expect(page.get_by_role("heading", name="Sign in to chat")).to_be_hidden()
    say(page, "hello as a guest")
    expect(messages(page).last).to_have_text("hello as a guest")
    # The reader goes back to message 040 and stays there.
    page.locator("#log li.message", has_text="040 ").scroll_into_view_if_needed()
    page.locator("#scroller").evaluate(
        "(view, row) => view.scrollTop += row.getBoundingClientRect().top"
        " - view.getBoundingClientRect().top",
        page.locator("#log li.message", has_text="040 ").element_handle(),
    )
    page.wait_for_timeout(300)
    before = row_top(page, "040 ")

    page.get_by_role("button", name="Sign in").click()
    form = page.get_by_role("heading", name="Sign in to chat")
    expect(form).to_be_visible()
    expect(page.locator("#log")).to_be_visible()  # over the chat, not instead of it
    screenshot(page, "signin-over-guest.png")
    sign_in(page, "alice")
    expect(form).to_be_hidden()
    expect(page.locator("#log li.system").last).to_have_text("you are now alice✓")
    expect(page.locator("#members")).to_contain_text("alice✓ (you)")
    assert abs(row_top(page, "040 ") - before) <= 2
    expect(messages(page).filter(has_text="hello as a guest")).to_have_count(1)
    say(page, "now signed in")
    expect(messages(page).last).to_have_text("now signed in")
    expect(page.locator("#log li.message").last.locator(".verified")).to_have_count(1)
    screenshot(page, "signed-in-after-guest.png")

    # Signed out, the page forgets what alice saw and offers to go on as a guest.
    page.get_by_role("button", name="Sign out").click()
    expect(form).to_be_visible()
    expect(page.locator("#log li")).to_have_count(0)
    page.get_by_role("button", name="Continue as a guest").click()
    wait_online(page)
    expect(page.locator("#room-title")).to_have_text("#upgrade")
    expect(page.locator("#members")).to_contain_text("guest-")
    expect(page.get_by_text("Chatting as a guest")).to_be_visible()
    expect(page.locator("#account")).to_be_hidden()


def person(
    open_page: Any,
    gateway: RunningGateway,
    user: str,
    room: str,
    viewport: Any = DESKTOP,
    before: Any = None,
) -> Any:
    """`user` signed in (the banner's `sign-in page` link: the form first) and online;
    `before(page)` runs before the page loads."""
    about = gateway.endpoints["cognito"]
    query = {"cognito": about["endpoint"], "client": about["clients"]["ChatUserPoolClient"]}
    url = f"{gateway.endpoints['http']}?{urlencode({**query, 'room': room})}"
    # No sliding drawer mid-way in a screenshot.
    page = open_page(url, viewport, before=before, reduced_motion="reduce")
    sign_in(page, user)
    expect(page.locator("#room-title")).to_have_text(f"#{room}")
    return page


def room_button(page: Any, room: str) -> Any:
    return page.locator(f'#rooms button[data-room="{room}"]')


def badge(page: Any, room: str) -> Any:
    return room_button(page, room).locator(".badge")


def open_room(page: Any, room: str, title: str | None = None) -> None:
    room_button(page, room).click()
    expect(page.locator("#room-title")).to_have_text(title or f"#{room}")


def set_visibility(page: Any, state: str) -> None:
    """The tab hidden or shown, as the browser tells the page (headless tabs never hide)."""
    page.evaluate(
        """(state) => {
            const visibility = { configurable: true, get: () => state };
            Object.defineProperty(document, "visibilityState", visibility);
            document.dispatchEvent(new Event("visibilitychange"));
        }""",
        state,
    )


def test_badges_count_what_each_missed_and_reading_clears_them_on_every_device(
    gateway: RunningGateway, open_page: Any
) -> None:
    room, desk = "badges", "desk"
    alice = person(open_page, gateway, "alice", room)
    say(alice, "earlier, before anyone else came")
    expect(messages(alice).last).to_have_text("earlier, before anyone else came")
    carol = person(open_page, gateway, "carol", room)
    bob = person(open_page, gateway, "bob", room)
    for page in (alice, carol):
        join(page, desk)  # both rooms are theirs; they read `desk`
    phone = person(open_page, gateway, "alice", desk, viewport=PHONE)  # alice's second device
    expect(room_button(phone, room)).to_have_count(1)  # her rooms, from `mine`

    missed = ["one for the room", "two for the room", "three for the room"]
    for text in missed:
        say(bob, text)
    expect(messages(bob).last).to_have_text(missed[-1])
    for page in (alice, carol, phone):
        expect(badge(page, room)).to_have_text("3")
        expect(room_button(page, room)).to_have_class("unread")
        expect(badge(page, desk)).to_have_count(0)
    expect(badge(bob, room)).to_have_count(0)  # his own, and he reads them
    # On the phone the drawer is closed: its button says what waits.
    expect(phone.get_by_role("button", name="Rooms and people, 3 unread")).to_be_visible()
    screenshot(alice, "rooms-badges.png")

    # carol opens the room: the view starts at its "new messages" line, above bob's first.
    open_room(carol, room)
    line = carol.locator("#log li.unread-line")
    expect(line).to_have_count(1)
    expect(carol.locator("#log li.unread-line ~ li.message .text").first).to_have_text(missed[0])
    expect(carol.locator("#log li.unread-line ~ li.message .text")).to_have_text(missed)
    expect(line).to_be_in_viewport()
    expect(badge(carol, room)).to_have_count(0)
    screenshot(carol, "rooms-new-messages-line.png")
    expect(badge(alice, room)).to_have_text("3")  # carol's reading is hers alone

    # alice reads on her desktop: her phone's badge goes too.
    open_room(alice, room)
    expect(badge(alice, room)).to_have_count(0)
    expect(badge(phone, room)).to_have_count(0)

    open_room(carol, desk)
    more = ["four while carol looks away", "five while carol looks away"]
    for text in more:
        say(bob, text)
    expect(messages(alice).last).to_have_text(more[-1])
    expect(badge(carol, room)).to_have_text("2")
    expect(badge(alice, room)).to_have_count(0)  # alice reads them as they come
    expect(badge(phone, room)).to_have_count(0)

    # alice's tab goes to the background: what comes meanwhile is unread, even in the room
    # on screen, until the tab is shown again.
    set_visibility(alice, "hidden")
    say(bob, "six while alice is away")
    expect(messages(alice).last).to_have_text("six while alice is away")
    expect(badge(alice, room)).to_have_text("1")
    expect(badge(phone, room)).to_have_text("1")
    set_visibility(alice, "visible")
    expect(badge(alice, room)).to_have_count(0)
    expect(badge(phone, room)).to_have_count(0)

    # The phone: everything through the drawer, nothing wider than the screen.
    menu = phone.get_by_role("button", name="Rooms and people")
    menu.click()
    expect(room_button(phone, room)).to_be_visible()
    fits_the_viewport(phone)
    screenshot(phone, "rooms-phone-drawer.png")
    # Create, leave and a DM from a member's name are in the drawer too, within reach.
    for control in (
        phone.get_by_role("button", name="Create"),
        phone.get_by_role("button", name=f"Leave #{desk}"),
        phone.locator("#members").get_by_role("button", name="carol"),
    ):
        control.scroll_into_view_if_needed()
        expect(control).to_be_in_viewport()
    fits_the_viewport(phone)
    room_button(phone, room).click()
    expect(phone.locator("#room-title")).to_have_text(f"#{room}")
    expect(messages(phone).last).to_have_text("six while alice is away")
    expect(messages(phone).last).to_be_in_viewport()
    expect(phone.get_by_label("Message (or /help)")).to_be_in_viewport()
    fits_the_viewport(phone)
    screenshot(phone, "rooms-phone.png")


def test_private_rooms_and_dms_stay_with_their_members_and_invites_arrive_live(
    gateway: RunningGateway, open_page: Any
) -> None:
    hall = "hall"
    alice = person(open_page, gateway, "alice", hall)
    bob = person(open_page, gateway, "bob", hall)
    carol = person(open_page, gateway, "carol", hall)

    alice.get_by_label("New room").fill("plans")
    alice.get_by_label("Private (signed in)").check()
    alice.get_by_role("button", name="Create").click()
    expect(alice.locator("#room-title")).to_have_text("#plans")
    expect(room_button(alice, "plans")).to_contain_text("(private)")
    say(alice, "the secret plan")
    expect(messages(alice).last).to_have_text("the secret plan")

    # A DM from bob's name among #hall's members.
    open_room(alice, hall)
    alice.locator("#members").get_by_role("button", name="bob").click()
    expect(alice.locator("#room-title")).to_have_text("@bob")
    say(alice, "just between us")
    expect(messages(alice).last).to_have_text("just between us")
    expect(bob.locator("#dms")).to_contain_text("@alice")
    (dm,) = bob.locator("#dms button").evaluate_all(
        "(buttons) => buttons.map((b) => b.dataset.room)"
    )
    expect(badge(bob, dm)).to_have_text("1")
    screenshot(bob, "rooms-dm-badge.png")

    def sees_neither(page: Any) -> None:
        page.get_by_role("button", name="Refresh rooms").click()
        page.wait_for_timeout(300)
        sidebar = page.locator("#side").inner_text()
        assert "plans" not in sidebar and "@" not in sidebar and "dm-" not in sidebar
        page.keyboard.press("Control+k")
        switcher = page.get_by_role("listbox", name="Rooms")
        expect(switcher).to_be_visible()
        options = switcher.get_by_role("option").all_inner_texts()
        assert "#hall" in options
        assert not [o for o in options if "plans" in o or "@" in o or "dm-" in o]
        page.keyboard.press("Escape")
        expect(switcher).to_be_hidden()

    sees_neither(carol)
    expect(room_button(bob, "plans")).to_have_count(0)

    # alice invites carol: the room appears in carol's sidebar at once.
    open_room(alice, "plans")
    alice.get_by_label("Invite to this room").fill("carol")
    alice.get_by_label("Invite to this room").press("Enter")
    expect(alice.locator("#log li.system").last).to_have_text("carol is invited to #plans")
    expect(room_button(carol, "plans")).to_contain_text("(private)")
    screenshot(carol, "rooms-invited.png")

    # carol goes there with the switcher, reads it, and leaves it.
    carol.keyboard.press("Control+k")
    carol.get_by_label("Go to room").fill("pla")
    carol.get_by_label("Go to room").press("Enter")
    expect(carol.locator("#room-title")).to_have_text("#plans")
    expect(messages(carol)).to_have_text(["the secret plan"])
    carol.keyboard.press("Alt+ArrowUp")
    expect(carol.locator("#room-title")).to_have_text("#hall")
    carol.keyboard.press("Alt+ArrowDown")
    expect(carol.locator("#room-title")).to_have_text("#plans")
    carol.get_by_role("button", name="Leave #plans").click()
    expect(room_button(carol, "plans")).to_have_count(0)
    # The page opens the room the server made current: one of hers.
    expect(carol.locator("#room-title")).not_to_have_text("#plans")
    expect(carol.locator("#rooms [aria-current=true]")).to_have_count(1)


def moderator(gateway: RunningGateway, user: str, room: str) -> Any:
    """`user` on a websocket of their own (not a page), in `room`."""
    about = gateway.endpoints["cognito"]
    answer = boto3.client("cognito-idp", endpoint_url=about["endpoint"]).initiate_auth(
        ClientId=about["clients"]["ChatUserPoolClient"],
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": user, "PASSWORD": PASSWORDS[user]},
    )
    token = answer["AuthenticationResult"]["AccessToken"]
    return gateway.connect(f"?{urlencode({'token': token, 'room': room})}")


def moderate(ws: Any, frame: dict[str, Any], answer: str) -> None:
    ws.send(json.dumps(frame))
    while json.loads(ws.recv(timeout=20))["type"] != answer:
        pass


def test_banned_from_the_only_room_the_page_goes_on_elsewhere_and_never_loops(
    gateway: RunningGateway, open_page: Any
) -> None:
    """Issue 18: the server closes a connection that lost its only room; the page reconnects
    to the default room, never the one it lost, and with the default room lost it waits for
    a room to be picked. Upgrade attempts are counted: no reconnect loop on a 403."""
    upgrades: list[str] = []
    dan = person(open_page, gateway, "dan", "moor")
    dan.on("websocket", lambda ws: upgrades.append(ws.url))
    with moderator(gateway, "alice", "lobby") as alice:
        moderate(alice, {"action": "create", "room": "moor"}, "joined")  # alice owns it
    with moderator(gateway, "eve", "moor") as eve:
        moderate(eve, {"action": "ping"}, "pong")
        moderate(eve, {"action": "ban", "room": "moor", "user": "dan"}, "banned")

        expect(dan.locator("#room-title")).to_have_text("#lobby")
        wait_online(dan)
        banned = "you are banned from moor (by eve): you cannot rejoin it"
        expect(dan.locator("#log li.system").first).to_have_text(banned)
        expect(dan.locator('#my-rooms button[data-room="moor"]')).to_have_count(0)
        dan.wait_for_timeout(10_000)
        assert len(upgrades) == 1 and "room=lobby" in upgrades[0]
        wait_online(dan)

        moderate(eve, {"action": "join", "room": "lobby"}, "joined")
        moderate(eve, {"action": "ban", "room": "lobby", "user": "dan"}, "banned")
        status = dan.locator("#status")
        expect(status).to_have_text("removed from your only room: join a room to go on")
        expect(status).to_have_attribute("data-state", "offline")
        expect(dan.locator("#log li.error").last).to_contain_text("banned from lobby")
        expect(dan.locator("#room-title")).to_have_text("")
        expect(dan.get_by_role("button", name="Leave #")).to_be_hidden()
        dan.wait_for_timeout(5_000)
        assert len(upgrades) == 1  # no socket into a room that refuses it
        screenshot(dan, "rooms-banned-from-the-only-room.png")

        join(dan, "heath")
        wait_online(dan)
        assert len(upgrades) == 2 and "room=heath" in upgrades[1]
        expect(dan.locator("#log li.system").first).to_contain_text("banned from lobby")
        say(dan, "here instead")
        expect(messages(dan).last).to_have_text("here instead")
        moderate(eve, {"action": "unban", "room": "lobby", "user": "dan"}, "unbanned")
