"""The team chat (issue 17) through the local gateway with real websocket clients, started
as `make run` starts it: AUTH=optional and the demo users alice, bob and carol.

The gateway runs a connection's frames concurrently, as API Gateway may, so each
step waits for the answers it expects (`wait`). To show that a client received
nothing it should not have, `rest` reads what it has after the sender's own
answer came (a broadcast is sent before the handler answers), up to the pong of a
ping and half a second of quiet.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from websockets.exceptions import InvalidStatus

from tests.conftest import ROOT, RunningGateway, start_gateway

# The Makefile's DEMO_USERS.
USERS = {"alice": "Alice-password-1", "bob": "Bob-password-1", "carol": "Carol-password-1"}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    users = [flag for pair in USERS.items() for flag in ("--cognito-user", ":".join(pair))]
    running = start_gateway(
        tmp_path_factory.mktemp("rooms"),
        ROOT,
        "--no-autoreload",
        "--env",
        "AUTH=optional",
        "--env",
        "RATE_PER_SECOND=1000",
        "--env",
        "RATE_BURST=1000",
        *users,
    )
    yield running
    running.stop()


def token(gateway: RunningGateway, username: str) -> str:
    client = boto3.client("cognito-idp", endpoint_url=gateway.endpoints["cognito"]["endpoint"])
    answer = client.initiate_auth(
        ClientId=gateway.endpoints["cognito"]["clients"]["ChatUserPoolClient"],
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": USERS[username]},
    )
    return answer["AuthenticationResult"]["AccessToken"]


@contextlib.contextmanager
def open_as(gateway: RunningGateway, username: str, room: str = "lobby") -> Iterator[Any]:
    """A signed-in connection, opened: its first frame answered, with `mine`."""
    with gateway.connect(f"?token={token(gateway, username)}&room={room}") as ws:
        send(ws, {"action": "ping"})
        wait(ws, "mine", "pong")
        yield ws


def send(ws: Any, frame: dict[str, Any] | str) -> None:
    ws.send(frame if isinstance(frame, str) else json.dumps(frame))


def wait(ws: Any, *kinds: str) -> list[dict[str, Any]]:
    """Read until frames of these types (one each; repeat a type for more) have come;
    every frame read, in order."""
    wanted = list(kinds)
    frames = []
    while wanted:
        frame = json.loads(ws.recv(timeout=20))
        frames.append(frame)
        if frame["type"] in wanted:
            wanted.remove(frame["type"])
    return frames


def everything(ws: Any) -> list[dict[str, Any]]:
    """Every frame the client has now: up to the pong of a ping, then until quiet."""
    send(ws, {"action": "ping"})
    frames = [f for f in wait(ws, "pong") if f["type"] != "pong"]
    while True:
        try:
            frames.append(json.loads(ws.recv(timeout=0.5)))
        except TimeoutError:
            return frames


def of_type(frames: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [frame for frame in frames if frame["type"] == kind]


def texts(frames: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(f["room"], f["text"]) for f in of_type(frames, "message")]


def mine(ws: Any) -> dict[str, dict[str, Any]]:
    send(ws, {"action": "mine"})
    (frame,) = of_type(wait(ws, "mine"), "mine")
    return {entry["room"]: entry for entry in frame["rooms"]}


def wait_history(ws: Any, room: str) -> list[dict[str, Any]]:
    send(ws, {"action": "history", "room": room})
    return wait(ws, "history")


def test_three_rooms_on_two_connections_and_unread_seven_then_zero(
    gateway: RunningGateway,
) -> None:
    with open_as(gateway, "bob") as bob:
        with open_as(gateway, "alice") as alice:
            for room in ("dev", "ops"):
                send(alice, {"action": "join", "room": room})
                wait(alice, "joined")
                send(bob, {"action": "join", "room": room})
                wait(bob, "joined")
            for room in ("lobby", "dev", "ops"):
                send(bob, {"action": "sendmessage", "data": f"in {room}", "room": room})
                wait(bob, "message")
            heard = texts(wait(alice, "message", "message", "message"))
            assert sorted(heard) == [("dev", "in dev"), ("lobby", "in lobby"), ("ops", "in ops")]
            assert texts(everything(alice)) == []
            for room in ("lobby", "dev", "ops"):  # what she saw, she marks read (as a page would)
                last = of_type(wait_history(alice, room), "history")[0]["messages"][-1]
                send(alice, {"action": "read", "room": room, "id": last["id"]})
                wait(alice, "read")
        said = []
        for n in range(7):
            send(bob, {"action": "sendmessage", "data": f"away {n}", "room": "dev"})
            said += of_type(wait(bob, "message"), "message")
        assert len(said) == 7
        with open_as(gateway, "alice") as laptop, open_as(gateway, "alice") as phone:
            for device in (laptop, phone):
                rooms = mine(device)
                assert sorted(rooms) == ["dev", "lobby", "ops"]
                assert (rooms["dev"]["unread"], rooms["ops"]["unread"]) == (7, 0)
            send(bob, {"action": "sendmessage", "data": "to both", "room": "ops"})
            wait(bob, "message")
            for device in (laptop, phone):
                assert texts(everything(device)) == [("ops", "to both")]
            send(laptop, {"action": "read", "room": "dev", "id": said[-1]["id"]})
            for device in (laptop, phone):  # every device is told
                (told,) = of_type(wait(device, "read"), "read")
                assert (told["room"], told["unread"]) == ("dev", 0)
                assert mine(device)["dev"]["unread"] == 0


def test_a_dm_and_a_private_room_keep_carol_out(gateway: RunningGateway) -> None:
    with (
        open_as(gateway, "alice") as alice,
        open_as(gateway, "bob") as bob,
        open_as(gateway, "carol") as carol,
    ):
        send(alice, {"action": "dm", "to": "bob"})
        (joined,) = of_type(wait(alice, "joined"), "joined")
        dm = joined["room"]
        assert of_type(wait(bob, "added"), "added")[0]["room"] == dm
        send(alice, {"action": "create", "room": "plans", "private": True})
        wait(alice, "joined")

        for room in (dm, "plans"):
            tries: list[dict[str, Any]] = [
                {"action": "join", "room": room},
                {"action": "history", "room": room},
                {"action": "who", "room": room},
                {"action": "sendmessage", "data": "let me in", "room": room},
                {"action": "invite", "room": room, "user": "carol"},
                {"action": "read", "room": room, "id": "01J00000000000000000000000"},
            ]
            for frame in tries:
                send(carol, frame)
            answers = wait(carol, *["error"] * len(tries))
            assert [f["type"] for f in answers] == ["error"] * len(tries)
            assert texts(everything(carol)) == []
            send(carol, {"action": "rooms"})
            (rooms,) = of_type(wait(carol, "rooms"), "rooms")
            assert room not in [entry["name"] for entry in rooms["rooms"]]
            with pytest.raises(InvalidStatus) as refused:
                gateway.connect(f"?token={token(gateway, 'carol')}&room={room}")
            assert refused.value.response.status_code == 403
            send(alice, {"action": "sendmessage", "data": f"secret in {room}", "room": room})
            wait(alice, "message")
            assert everything(carol) == []
        assert texts(everything(bob)) == [(dm, f"secret in {dm}")]

        send(alice, {"action": "invite", "room": "plans", "user": "carol"})
        wait(alice, "invited")
        assert of_type(wait(carol, "added"), "added")[0]["room"] == "plans"
        send(alice, {"action": "sendmessage", "data": "welcome", "room": "plans"})
        wait(alice, "message")
        assert texts(everything(carol)) == [("plans", "welcome")]


def in_tabs(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """bob is in the rooms of the earlier tests too: the frames of room `tabs`."""
    return [frame for frame in frames if frame["room"] == "tabs"]


def test_two_tabs_are_listed_once_and_leave_once(gateway: RunningGateway) -> None:
    with (
        open_as(gateway, "bob", room="tabs") as bob,
        open_as(gateway, "carol", room="tabs") as first,
        open_as(gateway, "carol", room="tabs") as second,
    ):
        presence = in_tabs(of_type(everything(bob), "presence"))
        assert [(p["event"], p["nick"]) for p in presence] == [("join", "carol")]
        send(bob, "/who")
        (members,) = of_type(wait(bob, "members"), "members")
        assert (members["members"], members["count"]) == (["bob", "carol"], 2)
        first.close()
        send(second, "still here")
        wait(second, "message")
        frames = wait(bob, "message") + everything(bob)
        assert in_tabs(of_type(frames, "presence")) == []
        assert texts(frames) == [("tabs", "still here")]
        second.close()
        while not (presence := in_tabs(of_type(wait(bob, "presence"), "presence"))):
            pass
        presence += in_tabs(of_type(everything(bob), "presence"))
        assert [(p["event"], p["nick"], p["count"]) for p in presence] == [("leave", "carol", 1)]


def test_a_guest_chats_beside_users_and_wscat_text_reaches_the_current_room(
    gateway: RunningGateway,
) -> None:
    with (
        open_as(gateway, "alice", room="mixed") as alice,
        gateway.connect("?nick=visitor&room=mixed") as guest,
    ):
        send(guest, "hello from wscat")
        wait(guest, "message")
        send(guest, {"action": "sendmessage", "data": "hi"})
        wait(guest, "message")
        heard = texts(wait(alice, "message", "message"))
        assert heard == [("mixed", "hello from wscat"), ("mixed", "hi")]
        send(guest, {"action": "dm", "to": "alice"})
        send(guest, {"action": "create", "room": "hideout", "private": True})
        errors = of_type(wait(guest, "error", "error"), "error")
        assert [f["code"] for f in errors] == ["forbidden"] * 2
        assert all("sign in" in f["message"] for f in errors)
        assert everything(alice) == []
    with pytest.raises(InvalidStatus) as refused:
        gateway.connect("?token=not-a-token")
    assert refused.value.response.status_code == 401


def test_a_moderator_invites_carol_live_and_a_dm_to_nobody_is_not_found(
    gateway: RunningGateway,
) -> None:
    """Issue 17: the owner's moderators invite too; an unknown name is `not_found`."""
    with (
        open_as(gateway, "alice", room="crafts") as alice,
        open_as(gateway, "bob", room="crafts") as bob,
        open_as(gateway, "carol", room="crafts") as carol,
    ):
        send(alice, {"action": "create", "room": "workshop", "private": True})
        wait(alice, "joined")
        send(alice, {"action": "invite", "room": "workshop", "user": "bob"})
        wait(alice, "invited")
        wait(bob, "added")
        send(alice, {"action": "role", "room": "workshop", "user": "bob", "role": "moderator"})
        wait(alice, "role")
        everything(carol)

        send(bob, {"action": "invite", "room": "workshop", "user": "carol"})
        (invited,) = of_type(wait(bob, "invited"), "invited")
        assert (invited["room"], invited["user"]) == ("workshop", "carol")
        added = of_type(wait(carol, "added"), "added")
        assert [(f["room"], f["private"]) for f in added] == [("workshop", True)]
        send(alice, {"action": "sendmessage", "data": "welcome, carol", "room": "workshop"})
        wait(alice, "message")
        assert texts(wait(carol, "message")) == [("workshop", "welcome, carol")]

        everything(alice)
        send(alice, {"action": "dm", "to": "nobody-here"})
        answers = wait(alice, "error") + everything(alice)
        assert [(f["type"], f.get("code")) for f in answers] == [("error", "not_found")]
        assert "nobody named nobody-here" in answers[0]["message"]
