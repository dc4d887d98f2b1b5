"""`python -m bench.page_conversation`: how soon an edit, a reaction and a delete made
in one page show in the other two (issue 19: "within a second").

alice, bob and carol, signed in, in three contexts of Debian's Chromium against the
local gateway (AUTH=optional). Each round alice posts a message and edits it (Up, new
text, Enter), bob reacts to it from its menu, and alice deletes it; each time is from
the click or key until both other pages show the change (polled every frame). Times
include Playwright's round trips; numbers are this machine's, not AWS's.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from playwright.sync_api import expect, sync_playwright

from localgateway import launcher

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
FLAGS += ["--disable-component-update", "--no-first-run"]
USERS = {"alice": "Alice-password-1", "bob": "Bob-password-1", "carol": "Carol-password-1"}
ROOM = "bench"


def signed_in(browser: Any, gateway: Any, user: str) -> Any:
    about = gateway.endpoints["cognito"]
    query = {"cognito": about["endpoint"], "client": about["clients"]["ChatUserPoolClient"]}
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.goto(f"{gateway.endpoints['http']}?{urlencode({**query, 'room': ROOM})}")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(USERS[user])
    page.get_by_label("Password").press("Enter")
    expect(page.locator("#status")).to_have_attribute("data-state", "online")
    return page


def until(pages: list[Any], script: str, since: float) -> float:
    for page in pages:
        page.wait_for_function(script, polling="raf")
    return time.monotonic() - since


def one_round(alice: Any, bob: Any, carol: Any, index: int) -> dict[str, float]:
    composer = alice.get_by_label("Message (or /help)")
    composer.fill(f"round {index}")
    composer.press("Enter")
    # Stored and sent back: Up edits no message still on its way (pending).
    texts = "[...document.querySelectorAll('#log li.message:not(.pending) .text')]"
    shown = f"() => {texts}.some(text => text.textContent === 'round {index}')"
    until([alice, bob, carol], shown, time.monotonic())
    composer.press("ArrowUp")
    composer.fill(f"round {index} edited")
    started = time.monotonic()
    composer.press("Enter")
    edited = until([bob, carol], "() => document.querySelector('#log .edited') !== null", started)
    row = bob.locator("#log li.message").last
    row.hover()
    row.get_by_role("button", name="Message actions").click()
    started = time.monotonic()
    row.get_by_role("menuitem", name="React 👍").click()
    reaction = "() => document.querySelector('#log .reaction') !== null"
    reacted = until([alice, carol], reaction, started)
    row = alice.locator("#log li.message").last
    row.hover()
    row.get_by_role("button", name="Message actions").click()
    started = time.monotonic()
    row.get_by_role("menuitem", name="Delete").click()
    gone = "() => document.querySelector('#log .edited, #log .reaction') === null"
    deleted = until([bob, carol], gone, started)
    return {"edit": edited, "reaction": reacted, "delete": deleted}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    flags = ["--no-autoreload", "--quiet", "--fresh", "--env", "AUTH=optional"]
    flags += [flag for user, word in USERS.items() for flag in ("--cognito-user", f"{user}:{word}")]
    samples: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as workdir, sync_playwright() as playwright:
        gateway = launcher.start(Path(workdir), ROOT, *flags)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            alice, bob, carol = (signed_in(browser, gateway, user) for user in USERS)
            expect(alice.locator("#members")).to_contain_text("carol")
            for index in range(args.rounds):
                for key, value in one_round(alice, bob, carol, index).items():
                    samples.setdefault(key, []).append(value * 1000)
        finally:
            browser.close()
            gateway.stop()
    print(f"{args.rounds} rounds, ms (`python -m bench.page_conversation`)")
    print("| change | median | max |")
    print("| --- | --- | --- |")
    for key, values in samples.items():
        print(f"| {key} | {statistics.median(values):.0f} | {max(values):.0f} |")


if __name__ == "__main__":
    main()
