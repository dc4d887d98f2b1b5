"""Conversation and moderation (issue 18) through the local gateway with real websocket
clients, started as `make run` starts it: AUTH=optional and the demo users alice, bob and
carol. Helpers and the way of waiting are tests/test_gateway_rooms.py's.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import ROOT, RunningGateway, start_gateway
from tests.test_gateway_rooms import USERS, everything, of_type, send, token, wait

ADMIN = ("dave", "Dave-password-1")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    users = [flag for pair in USERS.items() for flag in ("--cognito-user", ":".join(pair))]
    # dave, in the template's group `admins` (ChatAdmins), as make run puts alice there.
    users += ["--cognito-user", ":".join(ADMIN), "--cognito-group", f"admins:{ADMIN[0]}"]
    running = start_gateway(
        tmp_path_factory.mktemp("conversation"),
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


@contextlib.contextmanager
def open_as(gateway: RunningGateway, username: str, room: str) -> Iterator[Any]:
    """A signed-in connection in `room`, opened (its first frame, `join`, answered)."""
    with gateway.connect(f"?token={token(gateway, username)}&room={room}") as ws:
        send(ws, {"action": "join", "room": room})
        wait(ws, "mine", "joined")
        yield ws


def post(ws: Any, text: str, room: str) -> str:
    send(ws, {"action": "sendmessage", "data": text, "room": room})
    (message,) = of_type(wait(ws, "message"), "message")
    return message["id"]


def test_an_edit_and_a_delete_reach_every_client_and_a_later_joiner(
    gateway: RunningGateway,
) -> None:
    room = "edits"
    with (
        open_as(gateway, "alice", room) as alice,
        open_as(gateway, "alice", room) as tab,
        open_as(gateway, "bob", room) as bob,
        open_as(gateway, "carol", room) as carol,
    ):
        typo = post(alice, "teh plan", room)
        paste = post(alice, "password123", room)
        for ws in (tab, bob, carol):
            wait(ws, "message", "message")

        send(alice, {"action": "edit", "room": room, "id": typo, "text": "the plan"})
        send(alice, {"action": "delete", "room": room, "id": paste})
        for ws in (alice, tab, bob):
            frames = wait(ws, "edited", "deleted")
            (edited,) = of_type(frames, "edited")
            assert (edited["id"], edited["text"]) == (typo, "the plan")
            assert of_type(frames, "deleted") == [{"type": "deleted", "room": room, "id": paste}]
        wait(carol, "edited", "deleted")

        send(carol, {"action": "edit", "room": room, "id": typo, "text": "carol's plan"})
        send(carol, {"action": "delete", "room": room, "id": typo})
        refusals = of_type(wait(carol, "error", "error"), "error")
        assert [f["code"] for f in refusals] == ["forbidden", "forbidden"]
        for ws in (alice, tab, bob):
            assert everything(ws) == []

        with open_as(gateway, "bob", "elsewhere") as later:
            send(later, {"action": "join", "room": room})
            (joined,) = of_type(wait(later, "joined"), "joined")
        shown = {m["id"]: m for m in joined["history"]}
        assert (shown[typo]["text"], "edited" in shown[typo]) == ("the plan", True)
        assert shown[paste]["deleted"] is True and "text" not in shown[paste]
        assert shown[paste]["from"] == "alice"


def test_reactions_of_three_users_are_exact_in_every_client_and_history(
    gateway: RunningGateway,
) -> None:
    room = "reactions"
    with (
        open_as(gateway, "alice", room) as alice,
        open_as(gateway, "bob", room) as bob,
        open_as(gateway, "carol", room) as carol,
    ):
        message = post(alice, "ship it?", room)
        for ws in (bob, carol):
            wait(ws, "message")
        clients = (alice, bob, carol)
        for ws in clients:  # all at once: none of the three may be lost
            send(ws, {"action": "react", "room": room, "id": message, "emoji": "👍"})
        final = [{"emoji": "👍", "count": 3, "who": ["alice", "bob", "carol"]}]
        for ws in clients:
            frames = of_type(wait(ws, "reactions", "reactions", "reactions"), "reactions")
            assert sorted(f["reactions"][0]["count"] for f in frames) == [1, 2, 3]
            assert max(frames, key=lambda f: f["reactions"][0]["count"])["reactions"] == final

        send(bob, {"action": "react", "room": room, "id": message, "emoji": "👍"})  # toggled off
        for ws in clients:
            (frame,) = of_type(wait(ws, "reactions"), "reactions")
            assert frame["reactions"] == [{"emoji": "👍", "count": 2, "who": ["alice", "carol"]}]

        faces = [chr(0x1F600 + n) for n in range(19)]  # with 👍, 20 distinct
        for face in faces:
            send(carol, {"action": "react", "room": room, "id": message, "emoji": face})
        wait(carol, *["reactions"] * len(faces))
        for ws in (alice, bob):
            wait(ws, *["reactions"] * len(faces))
        send(carol, {"action": "react", "room": room, "id": message, "emoji": "🎉"})
        send(carol, {"action": "react", "room": room, "id": message, "emoji": "lol"})
        refusals = of_type(wait(carol, "error", "error"), "error")
        assert sorted(f["code"] for f in refusals) == ["bad_request", "too_many_reactions"]
        assert everything(alice) == [] and everything(bob) == []

        send(bob, {"action": "history", "room": room})
        (history,) = of_type(wait(bob, "history"), "history")
        (shown,) = history["messages"]
        emoji = [r["emoji"] for r in shown["reactions"]]  # in the order they came
        assert (emoji[0], sorted(emoji[1:])) == ("👍", faces)
        assert shown["reactions"][0] == {"emoji": "👍", "count": 2, "who": ["alice", "carol"]}
        assert all(r["who"] == ["carol"] for r in shown["reactions"][1:])


def test_ten_typing_frames_in_a_second_reach_bob_at_most_once_and_none_is_stored(
    gateway: RunningGateway,
) -> None:
    room = "typing"
    with open_as(gateway, "alice", room) as alice, open_as(gateway, "bob", room) as bob:
        started = time.monotonic()
        for _ in range(10):
            send(alice, json.dumps({"action": "typing", "room": room}))
            time.sleep(0.09)
        assert time.monotonic() - started < 1.5
        heard = of_type(everything(bob), "typing")
        assert heard == [{"type": "typing", "room": room, "nick": "alice", "verified": True}]
        assert of_type(everything(alice), "error") == []
        send(bob, {"action": "history", "room": room})
        (history,) = of_type(wait(bob, "history"), "history")
        assert history["messages"] == []
    (table,) = gateway.endpoints["tables"].values()
    items = gateway.dynamodb().scan(TableName=table)["Items"]
    assert not [i for i in items if i["pk"]["S"] == f"HIST#{room}"]


def test_a_moderator_deletes_and_bans_and_an_admin_moderates_a_room_not_theirs(
    gateway: RunningGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    room = "guild"
    with (
        open_as(gateway, "alice", "lobby") as alice,
        open_as(gateway, "bob", "lobby") as laptop,
        open_as(gateway, "bob", "lobby") as phone,
        open_as(gateway, "carol", "lobby") as carol,
    ):
        send(alice, {"action": "create", "room": room, "private": True})
        wait(alice, "joined")
        for user, ws in (("bob", laptop), ("carol", carol)):
            send(alice, {"action": "invite", "room": room, "user": user})
            wait(alice, "invited")
            wait(ws, "added")
        wait(phone, "added")
        abuse = post(laptop, "buy cheap watches", room)
        for ws in (alice, phone, carol):
            wait(ws, "message")

        send(carol, {"action": "ban", "room": room, "user": "bob"})  # not a moderator yet
        (refused,) = of_type(wait(carol, "error"), "error")
        assert refused["code"] == "forbidden"
        send(alice, {"action": "role", "room": room, "user": "carol", "role": "moderator"})
        for ws in (alice, laptop, phone, carol):
            wait(ws, "role")

        send(carol, {"action": "delete", "room": room, "id": abuse})
        for ws in (alice, laptop, phone, carol):
            (deleted,) = of_type(wait(ws, "deleted"), "deleted")
            assert (deleted["id"], deleted["by"]) == (abuse, "carol")
        send(carol, {"action": "ban", "room": room, "user": "bob"})
        for ws in (laptop, phone):
            frames = wait(ws, "error", "left")
            assert "banned from guild" in of_type(frames, "error")[0]["message"]
            assert of_type(frames, "left")[0]["room"] == room
        for ws in (alice, carol):
            (banned,) = of_type(wait(ws, "banned"), "banned")
            assert (banned["user"], banned["by"]) == ("bob", "carol")

        send(laptop, {"action": "join", "room": room})
        send(alice, {"action": "invite", "room": room, "user": "bob"})
        for ws in (laptop, alice):
            (refused,) = of_type(wait(ws, "error"), "error")
            assert refused["code"] == "forbidden" and "banned" in refused["message"]
        send(alice, {"action": "sendmessage", "data": "bob cannot read this", "room": room})
        wait(alice, "message")
        assert of_type(everything(laptop) + everything(phone), "message") == []

        send(carol, {"action": "unban", "room": room, "user": "bob"})
        wait(carol, "unbanned")
        send(alice, {"action": "invite", "room": room, "user": "bob"})
        wait(alice, "invited")
        send(laptop, {"action": "join", "room": room})
        (joined,) = of_type(wait(laptop, "joined"), "joined")
        assert joined["room"] == room

        monkeypatch.setitem(USERS, "dave", ADMIN[1])
        with open_as(gateway, "dave", room="lobby") as dave:
            send(dave, {"action": "join", "room": room})  # refused: private, not dave's
            wait(dave, "error")
            message = post(carol, "in the lobby", "lobby")
            send(dave, {"action": "delete", "room": "lobby", "id": message})
            (deleted,) = of_type(wait(alice, "deleted"), "deleted")
            assert (deleted["id"], deleted["by"]) == (message, "dave")
            send(dave, {"action": "ban", "room": "lobby", "user": "carol"})
            wait(dave, "banned")
            assert "banned from lobby" in of_type(wait(carol, "error"), "error")[0]["message"]


def joined_role(gateway: RunningGateway, room: str, username: str = "") -> str:
    """The role `joined` tells a new connection into `room` (signed in as `username`, or
    a guest) on its `join`."""
    query = f"?token={token(gateway, username)}&room={room}" if username else f"?room={room}"
    with gateway.connect(query) as ws:
        send(ws, {"action": "join", "room": room})
        (joined,) = of_type(wait(ws, "joined"), "joined")
    return joined["role"]


def test_joined_tells_owners_moderators_admins_members_and_guests_their_role(
    gateway: RunningGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    room = "ranks"
    monkeypatch.setitem(USERS, "dave", ADMIN[1])
    with open_as(gateway, "alice", "lobby") as alice:
        send(alice, {"action": "create", "room": room})
        (created,) = of_type(wait(alice, "joined"), "joined")
        assert (created["room"], created["role"]) == (room, "owner")
        assert joined_role(gateway, room, "bob") == "member"
        send(alice, {"action": "role", "room": room, "user": "bob", "role": "moderator"})
        wait(alice, "role")
        assert joined_role(gateway, room, "bob") == "moderator"  # bob reconnects
        assert joined_role(gateway, room, "carol") == "member"
        assert joined_role(gateway, room, "dave") == "moderator"  # an admin, not the owner
        assert joined_role(gateway, room) == "member"  # a guest
        assert joined_role(gateway, room, "alice") == "owner"
        send(alice, {"action": "dm", "to": "carol"})
        (dm,) = of_type(wait(alice, "joined"), "joined")
        assert dm["role"] == "member"


def only_in(ws: Any, room: str) -> None:
    """Leave every room but `room`, one at a time (a person's rooms outlive the
    connections of this module's other tests)."""
    send(ws, {"action": "mine"})
    (mine,) = of_type(wait(ws, "mine"), "mine")
    for other in [r["room"] for r in mine["rooms"] if r["room"] != room]:
        send(ws, {"action": "leave", "room": other})
        wait(ws, "left")


def until_closed(ws: Any) -> list[dict[str, Any]]:
    """Every frame until the server closes the socket."""
    frames = []
    with pytest.raises(ConnectionClosed):
        while True:
            frames.append(json.loads(ws.recv(timeout=20)))
    return frames


def test_a_kick_from_the_only_room_ends_with_one_forbidden_and_one_left_without_current(
    gateway: RunningGateway,
) -> None:
    room, other = "dock", "pier"
    with open_as(gateway, "alice", "lobby") as alice:
        send(alice, {"action": "create", "room": room})  # public, alice its owner
        wait(alice, "joined")
        with open_as(gateway, "bob", room) as laptop, open_as(gateway, "bob", room) as phone:
            only_in(laptop, room)
            for ws in (alice, laptop, phone):
                everything(ws)

            send(alice, {"action": "kick", "room": room, "user": "bob"})
            (kicked,) = of_type(wait(alice, "kicked"), "kicked")
            assert (kicked["user"], kicked["by"]) == ("bob", "alice")
            post(alice, "bob is gone", room)
            for ws in (laptop, phone):
                frames = until_closed(ws)  # then the server closes it (changed in issue 18)
                assert [f["type"] for f in frames] == ["error", "left"]
                assert frames[0]["code"] == "forbidden"
                assert "alice removed you from dock" in frames[0]["message"]
                assert frames[1] == {"type": "left", "room": room, "current": None}
                assert ws.close_code == 1000

        with open_as(gateway, "bob", other) as bob:  # dock is still among bob's rooms
            everything(alice)
            send(alice, {"action": "kick", "room": room, "user": "bob"})
            frames = wait(bob, "error", "left")
            post(alice, "bob is gone again", room)
            frames += everything(bob)
            assert [f["type"] for f in frames] == ["error", "left"]
            assert frames[1] == {"type": "left", "room": room, "current": other}


def test_banned_from_the_only_room_the_socket_closes_and_that_room_refuses_403(
    gateway: RunningGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18: bob banned from lobby, his only room, cannot go on as a guest on the same
    socket; lobby is the default room too, so a connection without `?room=` is refused."""
    monkeypatch.setitem(USERS, "dave", ADMIN[1])
    with open_as(gateway, "dave", "lobby") as dave:
        with open_as(gateway, "bob", "lobby") as bob:
            only_in(bob, "lobby")
            everything(bob)
            everything(dave)
            send(dave, {"action": "ban", "room": "lobby", "user": "bob"})
            frames = until_closed(bob)
            assert [f["type"] for f in frames] == ["error", "left"]
            assert frames[0]["code"] == "forbidden"
            assert "banned from lobby" in frames[0]["message"]
            assert frames[1] == {"type": "left", "room": "lobby", "current": None}
        wait(dave, "banned")
        try:
            for query in ("&room=lobby", ""):
                with pytest.raises(InvalidStatus) as refused:
                    gateway.connect(f"?token={token(gateway, 'bob')}{query}")
                assert refused.value.response.status_code == 403
                assert b"banned from lobby" in refused.value.response.body
            with open_as(gateway, "bob", "harbour") as elsewhere:  # another room lets him in
                send(elsewhere, "/who")
                assert of_type(wait(elsewhere, "members"), "members")[0]["room"] == "harbour"
        finally:
            send(dave, {"action": "unban", "room": "lobby", "user": "bob"})
            wait(dave, "unbanned")

        guest = gateway.connect("?nick=rowdy")  # a guest kicked from lobby, its only room
        with guest:
            send(guest, {"action": "ping"})
            wait(guest, "pong")
            send(dave, {"action": "kick", "room": "lobby", "nick": "rowdy"})
            frames = until_closed(guest)
            assert [f["type"] for f in frames] == ["error", "left"]
            assert frames[1] == {"type": "left", "room": "lobby", "current": None}
            assert guest.close_code == 1000
        with gateway.connect("?nick=rowdy") as again:  # a new connection may come back
            send(again, {"action": "join", "room": "lobby"})
            (joined,) = of_type(wait(again, "joined"), "joined")
            assert joined["room"] == "lobby"
