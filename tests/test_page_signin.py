"""The page's sign-in (issue 11) in Debian's Chromium, against real gateways.

The signed-in gateway runs the chat with AUTH=cognito: its user pool and app
client come from .chalice/resources.json, made in the gateway's embedded moto,
which is also the Cognito the page signs in with (`InitiateAuth` over fetch,
from the page itself). The tests watch that traffic from outside the page:
which flows the page asked for, and which websocket URLs it opened.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from playwright.sync_api import expect

from tests import test_page as shared
from tests.conftest import ROOT, RunningGateway, start_gateway
from tests.test_page import (
    DESKTOP,
    PHONE,
    fits_the_viewport,
    messages,
    relay_frames,
    say,
    screenshot,
    wait_online,
    wait_until,
)

pytestmark = pytest.mark.browser

# The browser and one browser context per person, as tests/test_page.py opens them.
browser = shared.browser
open_page = shared.open_page

USERS = {"demo": "Demo-password-1", "sam": "Sam-password-1"}
PASSWORD_FLOW = "USER_PASSWORD_AUTH"
REFRESH_FLOW = "REFRESH_TOKEN_AUTH"
# Keepalive pings every day: a test that moves the page's clock by an hour must not
# also set off a ping (its own reconnects are what such a test counts).
NO_PINGS = {"ping": "86400"}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    users = [flag for user, word in USERS.items() for flag in ("--cognito-user", f"{user}:{word}")]
    running = start_gateway(
        tmp_path_factory.mktemp("signin"), ROOT, "--no-autoreload", "--env", "AUTH=cognito", *users
    )
    yield running
    running.stop()


def cognito_endpoint(gateway: RunningGateway) -> str:
    return gateway.endpoints["cognito"]["endpoint"]


def signin_url(gateway: RunningGateway, room: str, **extra: str) -> str:
    """The page as the gateway's banner links it: its Cognito and app client, and a room."""
    about = gateway.endpoints["cognito"]
    query = {"cognito": about["endpoint"], "client": about["clients"]["ChatUserPoolClient"]}
    return gateway.endpoints["http"] + "?" + urlencode({**query, "room": room, **extra})


class Watch:
    """What a page asks of Cognito (the `AuthFlow` of each InitiateAuth, with its
    parameters) and the websocket URLs it opens, seen from outside the page."""

    def __init__(self, cognito: str) -> None:
        self.cognito = cognito
        self.calls: list[dict[str, Any]] = []
        self.headers: list[tuple[str | None, str | None]] = []
        self.sockets: list[str] = []

    def attach(self, page: Any) -> None:
        page.on("request", self._request)
        page.on("websocket", lambda socket: self.sockets.append(socket.url))

    def _request(self, request: Any) -> None:
        if request.method == "POST" and request.url.startswith(self.cognito):
            self.headers.append(
                (request.headers.get("content-type"), request.headers.get("x-amz-target"))
            )
            self.calls.append(json.loads(request.post_data))

    @property
    def flows(self) -> list[str]:
        return [call["AuthFlow"] for call in self.calls]

    def tokens(self) -> list[str]:
        """The `token` of each websocket URL opened, in order."""
        return [parse_qs(urlsplit(url).query)["token"][0] for url in self.sockets]


def sign_in(page: Any, user: str, password: str | None = None) -> None:
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(USERS[user] if password is None else password)
    page.get_by_label("Password").press("Enter")


def signed_in(
    open_page: Any, gateway: RunningGateway, user: str, room: str, **options: Any
) -> tuple[Any, Watch]:
    """A page of `user`'s, signed in and online in `room`; `before` runs before it loads."""
    watch = Watch(cognito_endpoint(gateway))
    before = options.pop("before", None)

    def prepare(page: Any) -> None:
        watch.attach(page)
        if before is not None:
            before(page)

    page = open_page(signin_url(gateway, room, **options.pop("query", {})), before=prepare)
    sign_in(page, user)
    wait_online(page)
    return page, watch


def sign_in_form(page: Any) -> Any:
    return page.get_by_role("heading", name="Sign in to chat")


def verified_marks(scope: Any) -> Any:
    return scope.get_by_role("img", name="verified", exact=True)


def connects_refused(gateway: RunningGateway) -> int:
    return len(re.findall(r"^.*CONNECT\s+\$connect\s+\S+\s+401 ", gateway.log(), re.M))


def test_two_signed_in_people_chat_with_verified_marks(
    gateway: RunningGateway, open_page: Any
) -> None:
    demo, demo_watch = signed_in(open_page, gateway, "demo", "verified")
    sam, _ = signed_in(open_page, gateway, "sam", "verified")

    # The access token went in the query string, and no nickname: the server names people.
    (url,) = demo_watch.sockets
    query = parse_qs(urlsplit(url).query)
    assert sorted(query) == ["room", "token"]
    assert query["room"] == ["verified"] and query["token"][0].count(".") == 2  # a JWT
    assert demo_watch.flows == [PASSWORD_FLOW]
    assert demo_watch.headers == [
        ("application/x-amz-json-1.1", "AWSCognitoIdentityProviderService.InitiateAuth")
    ]
    assert demo_watch.calls[0]["AuthParameters"] == {
        "USERNAME": "demo",
        "PASSWORD": "Demo-password-1",
    }

    # Everyone here is verified: a mark by each name, in the members list and the log.
    for page, me in ((demo, "demo"), (sam, "sam")):
        expect(page.locator("#members li")).to_have_text(
            [f"demo✓{' (you)' if me == 'demo' else ''}", f"sam✓{' (you)' if me == 'sam' else ''}"]
        )
        expect(verified_marks(page.locator("#members"))).to_have_count(2)
        expect(page.locator("#account-name")).to_have_text(f"{me}✓")
        expect(page.get_by_label("Nickname", exact=True)).to_be_hidden()
    expect(demo.locator("#log li.system").last).to_have_text("sam✓ joined")
    expect(verified_marks(demo.locator("#log li.system").last)).to_have_count(1)

    say(demo, "hello sam, it is really me")
    expect(messages(sam).last).to_have_text("hello sam, it is really me")
    say(sam, "hi demo, me too")
    expect(messages(demo).last).to_have_text("hi demo, me too")
    for page in (demo, sam):
        expect(page.locator("#log li.message .from")).to_have_text(["demo✓", "sam✓"])
        expect(verified_marks(page.locator("#log li.message"))).to_have_count(2)
    # Signed in, one's own messages are those verified under one's username.
    expect(demo.locator("#log li.message.own .text")).to_have_text(["hello sam, it is really me"])
    expect(sam.locator("#log li.message.own .text")).to_have_text(["hi demo, me too"])

    # The name is the username: the server refuses /nick, the page says why in words.
    say(demo, "/nick impostor")
    expect(demo.locator("#log li.error").last).to_have_text(
        "Signed in, your name is your username, demo: it can't be changed"
    )
    say(demo, "/who")
    expect(demo.locator("#log li.system").last).to_have_text("People in #verified: demo✓, sam✓")
    screenshot(demo, "signed-in.png")

    # The tokens live in the page's memory only.
    kept = demo.evaluate(
        "() => JSON.stringify([{...localStorage}, {...sessionStorage}, document.cookie])"
    )
    assert demo_watch.tokens()[0] not in kept
    assert "token" not in kept.lower() and "Demo-password-1" not in kept
    assert demo.context.cookies() == []


def test_verified_marks_are_text_and_only_for_true(gateway: RunningGateway, open_page: Any) -> None:
    """Frames the server cannot be made to send: verified names that look like HTML, a
    `verified` that is not `true`, an unverified sender of a verified member's name."""
    routes: list[Any] = []
    page, _ = signed_in(
        open_page,
        gateway,
        "demo",
        "marks",
        before=lambda page: relay_frames(page, lambda route, frame: route.send(frame), routes),
    )
    html = "<img src=x onerror=alert(1)>"
    routes[0].send(
        json.dumps(
            {
                "type": "members",
                "room": "marks",
                "members": ["demo", html, "plain"],
                "verified": ["demo", html, 7],
                "count": 3,
            }
        )
    )
    expect(page.locator("#members li")).to_have_text([f"{html}✓", "demo✓ (you)", "plain"])
    expect(verified_marks(page.locator("#members"))).to_have_count(2)
    base = {"type": "message", "room": "marks", "ts": "2026-11-30T07:00:00.000Z"}
    for index, (sender, verified) in enumerate(
        [("demo", True), ("demo", "true"), ("plain", None), (html, True)]
    ):
        frame = {**base, "id": f"01KB{index:022d}", "from": sender, "text": f"line {index}"}
        if verified is not None:
            frame["verified"] = verified
        routes[0].send(json.dumps(frame))
    expect(messages(page)).to_have_count(4)
    # A verified and an unverified "demo" are two people: never one group of lines.
    expect(page.locator("#log li.message:not(.continued) .from")).to_have_text(
        ["demo✓", "demo", "plain", f"{html}✓"]
    )
    expect(page.locator("#log li.message.own .text")).to_have_text(["line 0"])
    page.wait_for_timeout(200)
    assert page.dialogs == []
    assert page.locator("#log img, #members img").count() == 0


def test_a_wrong_password_is_told_in_words_and_opens_no_socket(
    gateway: RunningGateway, open_page: Any
) -> None:
    watch = Watch(cognito_endpoint(gateway))
    page = open_page(signin_url(gateway, "wrong"), before=watch.attach)
    error = page.locator("#signin-error")
    expect(sign_in_form(page)).to_be_visible()
    expect(page.get_by_label("Username")).to_be_focused()

    sign_in(page, "demo", "not-the-password")
    expect(error).to_have_text("Wrong username or password")
    expect(error).to_have_attribute("role", "alert")
    expect(page.get_by_label("Password")).to_be_focused()  # to type it again
    sign_in(page, "nobody", "whatever")
    expect(error).to_have_text("Wrong username or password")  # no hint that nobody exists
    page.get_by_label("Password").fill("")
    page.get_by_role("button", name="Sign in").click()
    expect(error).to_have_text("Enter your username and password")

    # Cognito out of reach is another sentence.
    page.route(f"{cognito_endpoint(gateway)}**", lambda route: route.abort())
    sign_in(page, "demo")
    expect(error).to_have_text(
        "Could not reach the sign-in service; check your connection and try again"
    )
    page.unroute(f"{cognito_endpoint(gateway)}**")

    assert watch.flows == [PASSWORD_FLOW] * 3  # the empty password asked nothing
    assert watch.sockets == []
    expect(page.locator("#status")).to_have_text("signed out")

    sign_in(page, "demo")
    wait_online(page)
    expect(error).to_be_hidden()
    assert len(watch.sockets) == 1


def test_sign_out_closes_the_socket_and_stays_signed_out(
    gateway: RunningGateway, open_page: Any
) -> None:
    demo, watch = signed_in(
        open_page, gateway, "demo", "leaving", before=lambda page: page.clock.install()
    )
    sam, _ = signed_in(open_page, gateway, "sam", "leaving")
    say(demo, "goodbye")
    expect(messages(sam).last).to_have_text("goodbye")
    expect(sam.locator("#member-count")).to_have_text("(2)")

    demo.get_by_role("button", name="Sign out").click()
    expect(sign_in_form(demo)).to_be_visible()
    expect(demo.locator("#signin-note")).to_have_text("You signed out")
    expect(demo.get_by_label("Username")).to_have_value("demo")
    expect(demo.get_by_label("Password")).to_be_focused()
    expect(demo.locator("#status")).to_have_text("signed out")
    # What was on screen is gone with the sign-in, not merely hidden.
    expect(demo.locator("#log li")).to_have_count(0)
    expect(demo.locator("#members li")).to_have_count(0)

    expect(sam.locator("#log li.system").last).to_have_text("demo✓ left")
    expect(sam.locator("#member-count")).to_have_text("(1)")
    wait_until(sam, lambda: "(close 1000 signed out)" in gateway.log())

    # A minute later (by the page's clock): no reconnect, no refresh.
    demo.clock.fast_forward("01:00")
    demo.wait_for_timeout(300)
    assert len(watch.sockets) == 1
    assert watch.flows == [PASSWORD_FLOW]


def test_tokens_are_refreshed_before_they_expire_and_the_page_reconnects(
    gateway: RunningGateway, open_page: Any
) -> None:
    page, watch = signed_in(
        open_page,
        gateway,
        "demo",
        "renewal",
        before=lambda page: page.clock.install(),
        query=NO_PINGS,
    )
    sam, _ = signed_in(open_page, gateway, "sam", "renewal")
    say(page, "before the refresh")
    expect(messages(sam).last).to_have_text("before the refresh")

    # moto's tokens live an hour; the page refreshes at 80 %: after 48 minutes.
    page.clock.fast_forward("47:00")
    page.wait_for_timeout(300)
    assert watch.flows == [PASSWORD_FLOW]
    page.clock.fast_forward("01:30")
    wait_until(page, lambda: len(watch.sockets) == 2)
    assert watch.flows == [PASSWORD_FLOW, REFRESH_FLOW]
    assert set(watch.calls[1]["AuthParameters"]) == {"REFRESH_TOKEN"}
    assert watch.calls[1]["ClientId"] == watch.calls[0]["ClientId"]
    assert len(set(watch.headers)) == 1
    first, second = watch.tokens()
    assert second != first
    wait_online(page)
    wait_until(page, lambda: "(close 1000 new token)" in gateway.log())
    # The room goes on over the new connection. (Only sam writes: the page's clock is now
    # 48 minutes ahead, and the chat refuses message ids that far from its own clock.)
    expect(page.locator("#members li")).to_have_text(["demo✓ (you)", "sam✓"])
    say(sam, "after the refresh")
    expect(messages(page)).to_have_text(["before the refresh", "after the refresh"])
    expect(page.locator("#log li.message.own .text")).to_have_text(["before the refresh"])

    # The next refresh is refused (the refresh token was revoked, say): the form again.
    def refused(route: Any) -> None:
        route.fulfill(
            status=400,
            headers={"access-control-allow-origin": "*"},
            content_type="application/x-amz-json-1.1",
            body=json.dumps(
                {"__type": "NotAuthorizedException", "message": "Refresh Token has been revoked"}
            ),
        )

    page.route(f"{cognito_endpoint(gateway)}**", refused)
    page.clock.fast_forward("49:00")
    expect(sign_in_form(page)).to_be_visible()
    expect(page.locator("#signin-note")).to_have_text(
        "Your sign-in has expired; please sign in again"
    )
    assert watch.flows == [PASSWORD_FLOW, REFRESH_FLOW, REFRESH_FLOW]
    expect(sam.locator("#log li.system").last).to_have_text("demo✓ left")
    assert len(watch.sockets) == 2


def test_a_token_the_chat_refuses_gets_one_refresh_then_the_form(
    gateway: RunningGateway, open_page: Any
) -> None:
    """Cognito's answers are given an access token the chat refuses (401): the page
    refreshes once, is refused again, and shows the form, without trying forever."""

    def forged(route: Any) -> None:
        response = route.fetch()
        answer = response.json()
        if "AuthenticationResult" in answer:
            answer["AuthenticationResult"]["AccessToken"] = "forged.token.here"
        route.fulfill(response=response, json=answer)

    def prepare(page: Any) -> None:
        page.clock.install()
        page.route(f"{cognito_endpoint(gateway)}**", forged)

    watch = Watch(cognito_endpoint(gateway))
    refused_before = connects_refused(gateway)
    page = open_page(
        signin_url(gateway, "forged"), before=lambda page: (watch.attach(page), prepare(page))
    )
    sign_in(page, "demo")
    expect(page.locator("#signin-note")).to_have_text(
        "The chat refused the connection or could not be reached; please sign in again"
    )
    expect(sign_in_form(page)).to_be_visible()
    assert watch.flows == [PASSWORD_FLOW, REFRESH_FLOW]
    assert watch.tokens() == ["forged.token.here"] * 2
    wait_until(page, lambda: connects_refused(gateway) == refused_before + 2)
    page.clock.fast_forward("05:00")
    page.wait_for_timeout(300)
    assert len(watch.sockets) == 2
    assert len(watch.calls) == 2


def test_the_sign_in_form_on_a_phone_and_a_desktop(gateway: RunningGateway, open_page: Any) -> None:
    for viewport, name in ((PHONE, "signin-phone.png"), (DESKTOP, "signin-desktop.png")):
        page = open_page(signin_url(gateway, "lobby"), viewport=viewport)
        expect(sign_in_form(page)).to_be_visible()
        size = page.viewport_size
        document = page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
        )
        assert document == [size["width"], size["height"]]
        for control in (
            page.get_by_label("Username"),
            page.get_by_label("Password"),
            page.get_by_role("button", name="Sign in"),
        ):
            expect(control).to_be_in_viewport(ratio=1)
        expect(page.get_by_role("button", name="Rooms and people")).to_be_hidden()
        expect(page.get_by_label("Message (or /help)")).to_be_hidden()
        expect(page.get_by_label("Password")).to_have_attribute("type", "password")
        expect(page.get_by_label("Password")).to_have_attribute("autocomplete", "current-password")
        expect(page.get_by_label("Username")).to_have_attribute("autocomplete", "username")
        # By keyboard alone: Tab from the username to the password to the button.
        page.get_by_label("Username").fill("demo")
        page.keyboard.press("Tab")
        expect(page.get_by_label("Password")).to_be_focused()
        page.keyboard.type("not-the-password")
        page.keyboard.press("Tab")
        expect(page.get_by_role("button", name="Sign in")).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator("#signin-error")).to_have_text("Wrong username or password")
        expect(page.locator("#signin-error")).to_be_in_viewport(ratio=1)
        host = urlsplit(cognito_endpoint(gateway)).netloc
        expect(page.locator("#signin-service")).to_have_text(
            f"Your password goes only to Cognito at {host}"
        )
        screenshot(page, name)

    # Signed in on a phone: the drawer says who, and signs out.
    page, _ = signed_in(open_page, gateway, "demo", "pocket")
    page.set_viewport_size(PHONE)
    fits_the_viewport(page)
    page.get_by_role("button", name="Rooms and people").click()
    expect(page.locator("#side")).to_have_css("transform", "none")  # slid in
    expect(page.locator("#account-name")).to_have_text("demo✓")
    expect(page.get_by_role("button", name="Sign out")).to_be_in_viewport(ratio=1)
    screenshot(page, "signin-phone-drawer.png")
    page.get_by_role("button", name="Sign out").click()
    expect(sign_in_form(page)).to_be_visible()
    expect(page.get_by_role("button", name="Rooms and people")).to_be_hidden()
    expect(page.get_by_label("Password")).to_be_focused()


def test_a_link_cannot_send_the_password_elsewhere(gateway: RunningGateway, open_page: Any) -> None:
    """`cognito=` comes from a link: only Amazon Cognito's endpoints and this computer's
    are taken, so that a doctored link to this page cannot collect passwords."""
    asked: list[str] = []
    page_origin = gateway.endpoints["http"]  # the page and its files: nothing else
    query = {"cognito": "https://cognito-idp.example.net/", "client": "abc", "room": "x"}
    page = open_page(
        gateway.endpoints["http"] + "?" + urlencode(query),
        before=lambda page: page.on("request", lambda request: asked.append(request.url)),
    )
    error = page.locator("#signin-error")
    expect(error).to_have_text(
        "This page sends passwords only to Amazon Cognito or this computer, "
        "not to cognito-idp.example.net"
    )
    sign_in(page, "demo")
    expect(error).to_be_visible()
    page.wait_for_timeout(200)
    assert asked and [url for url in asked if not url.startswith(page_origin)] == []


@pytest.fixture(scope="module")
def open_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """The chat without sign-in (AUTH=none, the dev default)."""
    running = start_gateway(tmp_path_factory.mktemp("open"), ROOT, "--no-autoreload")
    yield running
    running.stop()


def test_a_page_without_client_shows_no_sign_in(
    open_gateway: RunningGateway, open_page: Any
) -> None:
    watch = Watch(open_gateway.endpoints["aws"])
    cognito_calls: list[str] = []
    page = open_page(
        f"{open_gateway.endpoints['http']}?room=open",
        before=lambda page: (
            watch.attach(page),
            page.on(
                "request",
                lambda request: (
                    "x-amz-target" in request.headers and cognito_calls.append(request.url)
                ),
            ),
        ),
    )
    wait_online(page)
    expect(sign_in_form(page)).to_be_hidden()
    expect(page.get_by_label("Username")).to_be_hidden()
    expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
    expect(page.get_by_label("Nickname", exact=True)).to_be_visible()
    page.get_by_label("Nickname", exact=True).fill("guest")
    page.get_by_label("Nickname", exact=True).press("Enter")
    expect(page.locator("#members li")).to_have_text(["guest (you)"])
    say(page, "nobody signs in here")
    expect(messages(page)).to_have_text(["nobody signs in here"])
    expect(page.locator("#log li.message .from")).to_have_text(["guest"])
    expect(verified_marks(page)).to_have_count(0)
    (url,) = watch.sockets
    assert "token" not in parse_qs(urlsplit(url).query)
    assert cognito_calls == []


def test_the_gateways_plain_page_link_finds_sign_in_when_the_chat_refuses_guests(
    gateway: RunningGateway, open_page: Any
) -> None:
    """`make run AUTH=cognito`'s banner `page` link: no `client` in it. The page reads the
    gateway's local-gateway.json, tries as a guest, is refused, and shows the form."""
    watch = Watch(cognito_endpoint(gateway))
    page = open_page(f"{gateway.endpoints['http']}?room=plain", before=watch.attach)
    expect(sign_in_form(page)).to_be_visible()
    expect(page.locator("#signin-note")).to_have_text("This chat asks you to sign in")
    expect(page.locator("#status")).to_have_text("signed out")
    refused_before = connects_refused(gateway)
    page.wait_for_timeout(1500)
    assert len(watch.sockets) == 1 and connects_refused(gateway) == refused_before
    sign_in(page, "demo")
    wait_online(page)
    expect(page.locator("#account-name")).to_have_text("demo✓")
    guest, signed = watch.sockets
    assert "token" not in parse_qs(urlsplit(guest).query)
    assert "token" in parse_qs(urlsplit(signed).query) and watch.flows == [PASSWORD_FLOW]
