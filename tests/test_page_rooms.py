"""The page as a team chat (issue 19) in a real browser: sign-in on the page with
AUTH=optional, and the demo users alice, bob and carol in their own browser contexts.

One gateway for the module (AUTH=optional, the demo users); each test uses rooms of its
own. Helpers and flags are those of tests/test_page.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests import test_page as shared
from tests.conftest import ROOT, RunningGateway, start_gateway
from tests.page_support import conversation, fill_room
from tests.test_page import (
    DESKTOP,
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


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    users = [flag for user, word in USERS.items() for flag in ("--cognito-user", f"{user}:{word}")]
    lifted = ["--env", "RATE_PER_SECOND=10000", "--env", "RATE_BURST=10000"]
    running = start_gateway(
        tmp_path_factory.mktemp("rooms"),
        ROOT,
        "--no-autoreload",
        "--env",
        "AUTH=optional",
        *lifted,
        *users,
    )
    yield running
    running.stop()


def sign_in(page: Any, user: str) -> None:
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(USERS[user])
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
