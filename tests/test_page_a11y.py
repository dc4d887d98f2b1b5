"""Accessibility (issue 19): axe-core, injected into the page by the test, finds no serious
or critical violation in the page's main states on a desktop and a phone: the chat (with
files, an image and an error line), the drawer open on a phone, the sign-in form with its
error.

axe-core comes from the npm registry at `make test`'s setup (`make axe`, pinned, into the
git-ignored build/); the page never ships it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests import test_page as shared
from tests.conftest import ROOT, RunningGateway, start_gateway
from tests.test_gateway_attachments import PDF, png
from tests.test_page import DESKTOP, PHONE, say, wait_online
from tests.test_page_attachments import drop, paste
from tests.test_page_rooms import USERS

pytestmark = pytest.mark.browser

browser = shared.browser
open_page = shared.open_page

AXE = ROOT / "build" / "axe-core-4.10.3" / "axe.min.js"
# The rules' impacts that fail the test: axe's "serious" and "critical".
BLOCKING = ["serious", "critical"]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    users = [flag for user, word in USERS.items() for flag in ("--cognito-user", f"{user}:{word}")]
    running = start_gateway(
        tmp_path_factory.mktemp("a11y"), ROOT, "--no-autoreload", "--env", "AUTH=optional", *users
    )
    yield running
    running.stop()


def violations(page: Any) -> list[str]:
    """axe's serious and critical findings on the whole document, one line each."""
    if not AXE.exists():
        pytest.fail(f"{AXE.relative_to(ROOT)} is missing: run `make axe` (make test does)")
    page.add_script_tag(path=str(AXE))
    return page.evaluate(
        """async (blocking) => {
          const results = await axe.run(document, { resultTypes: ["violations"] });
          return results.violations
            .filter((rule) => blocking.includes(rule.impact))
            .flatMap((rule) => rule.nodes.map((node) =>
              `${rule.id} (${rule.impact}): ${node.target.join(" ")}: ${node.failureSummary}`));
        }""",
        BLOCKING,
    )


def test_axe_finds_nothing_serious_in_the_chat_the_drawer_and_the_sign_in_form(
    gateway: RunningGateway, open_page: Any
) -> None:
    url = f"{gateway.endpoints['http']}?room=a11y"
    desktop = open_page(url, viewport=DESKTOP)
    wait_online(desktop)
    say(desktop, "hello, accessible world")
    paste(desktop, "image.png", "image/png", png(320, 180))
    drop(desktop, "spec.pdf", "application/pdf", PDF)
    drop(desktop, "fake.png", "image/png", b"not a png at all")
    files = desktop.locator("#log li.message:not(.pending) .attachment")
    expect(files).to_have_count(2)
    expect(files.locator("img")).to_have_js_property("naturalWidth", 320)
    expect(desktop.locator("#log li.error")).to_have_count(1)
    found = {"chat, desktop": violations(desktop)}

    phone = open_page(url, viewport=PHONE, reduced_motion="reduce")
    wait_online(phone)
    expect(phone.locator("#log li.message .attachment")).to_have_count(2)
    found["chat, phone"] = violations(phone)
    phone.get_by_role("button", name="Rooms and people").click()
    expect(phone.get_by_role("button", name="Close")).to_be_visible()
    found["drawer, phone"] = violations(phone)

    desktop.get_by_role("button", name="Sign in").click()
    desktop.get_by_label("Username").fill("alice")
    desktop.get_by_label("Password").fill("not-her-password")
    desktop.get_by_label("Password").press("Enter")
    expect(desktop.locator("#signin-error")).to_have_text("Wrong username or password")
    found["sign-in form, desktop"] = violations(desktop)

    assert found == {state: [] for state in found}
