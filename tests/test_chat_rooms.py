"""A team chat (issue 17): rooms per person, private rooms, DMs, unread counts, one presence
per person, through the chat's handlers against moto's Cognito and DynamoDB.

The chat runs with AUTH=optional: alice, bob and carol sign in, anyone else is a guest.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from chalicelib import service
from chalicelib.store.memberships import dm_room
from tests.conftest import ChatHarness, dev_table_name
from tests.test_chat_signin import Pool, make_pool


@pytest.fixture
def team(chat: ChatHarness, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pool]:
    pool = make_pool("team", ["alice", "bob", "carol"])
    monkeypatch.setenv("AUTH", "optional")
    monkeypatch.setenv("COGNITO_USER_POOL_ID", pool.id)
    monkeypatch.setenv("COGNITO_CLIENT_ID", pool.client_id)
    monkeypatch.setenv("RATE_PER_SECOND", "10000")
    monkeypatch.setenv("RATE_BURST", "10000")
    service.verifier.cache_clear()
    yield pool
    service.verifier.cache_clear()


def person(chat: ChatHarness, pool: Pool, name: str, room: str = "lobby") -> str:
    return chat.connect({"token": pool.token(name), "room": room})


def of_type(frames: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [frame for frame in frames if frame["type"] == kind]


def texts(frames: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(f["room"], f["text"]) for f in of_type(frames, "message")]


def say(chat: ChatHarness, who: str, text: str, room: str | None = None) -> None:
    frame: dict[str, Any] = {"action": "sendmessage", "data": text}
    if room is not None:
        frame["room"] = room
    chat.send(who, frame)


def mine(chat: ChatHarness, who: str) -> dict[str, dict[str, Any]]:
    chat.send(who, {"action": "mine"})
    frame = of_type(chat.take(who), "mine")[-1]  # a first frame's answer may come before
    return {entry["room"]: entry for entry in frame["rooms"]}


def test_a_person_in_three_rooms_hears_all_three_on_every_connection(
    chat: ChatHarness, team: Pool
) -> None:
    alice = person(chat, team, "alice")
    for room in ("dev", "ops"):
        chat.send(alice, {"action": "join", "room": room})
    bob = person(chat, team, "bob")
    for room in ("dev", "ops"):
        chat.send(bob, {"action": "join", "room": room})
    chat.drain()

    for room in ("lobby", "dev", "ops"):
        say(chat, bob, f"in {room}", room)
    assert texts(chat.take(alice)) == [("lobby", "in lobby"), ("dev", "in dev"), ("ops", "in ops")]

    phone = person(chat, team, "alice")  # opened later: her rooms come with her
    first = chat.take(phone)
    (listed,) = of_type(first, "mine")  # the answer to its first frame
    assert sorted(entry["room"] for entry in listed["rooms"]) == ["dev", "lobby", "ops"]
    chat.drain()
    for room in ("lobby", "dev", "ops"):
        say(chat, bob, f"again {room}", room)
    expected = [("lobby", "again lobby"), ("dev", "again dev"), ("ops", "again ops")]
    assert texts(chat.take(alice)) == expected
    assert texts(chat.take(phone)) == expected

    # Plain text and the aws-samples frame without `room` go to the current room.
    chat.drain()
    chat.send(phone, "plain words")
    chat.send(phone, {"action": "sendmessage", "data": "hi"})
    assert texts(chat.take(bob)) == [("lobby", "plain words"), ("lobby", "hi")]


def test_unread_counts_what_came_while_away_and_read_on_one_device_clears_both(
    chat: ChatHarness, team: Pool
) -> None:
    alice = person(chat, team, "alice")
    chat.send(alice, {"action": "join", "room": "dev"})
    bob = person(chat, team, "bob", room="dev")
    chat.disconnect(alice)
    for n in range(7):
        say(chat, bob, f"while away {n} @alice" if n < 2 else f"while away {n}")

    laptop = person(chat, team, "alice")
    phone = person(chat, team, "alice")
    for device in (laptop, phone):
        rooms = mine(chat, device)
        assert (rooms["dev"]["unread"], rooms["dev"]["mentions"]) == (7, 2)
        assert rooms["lobby"]["unread"] == 0
    chat.send(bob, {"action": "history", "limit": 1})
    (newest,) = of_type(chat.take(bob), "history")[0]["messages"]
    assert rooms["dev"]["last"] == newest["id"]

    chat.send(phone, {"action": "read", "room": "dev", "id": newest["id"]})
    for device in (laptop, phone):
        (told,) = of_type(chat.take(device), "read")
        assert (told["room"], told["unread"]) == ("dev", 0)
        assert mine(chat, device)["dev"]["unread"] == 0


def test_unread_is_exact_to_99_then_99_plus(chat: ChatHarness, team: Pool) -> None:
    alice = person(chat, team, "alice", room="busy")
    bob = person(chat, team, "bob", room="busy")
    chat.disconnect(alice)
    for n in range(99):
        say(chat, bob, f"m{n}")
    alice = person(chat, team, "alice")
    assert mine(chat, alice)["busy"]["unread"] == 99
    say(chat, bob, "the hundredth")
    assert mine(chat, alice)["busy"]["unread"] == "99+"


def attempts_on(room: str) -> list[dict[str, Any]]:
    """Every way into a room a non-member has, as frames."""
    return [
        {"action": "join", "room": room},
        {"action": "history", "room": room},
        {"action": "who", "room": room},
        {"action": "sendmessage", "data": "let me in", "room": room},
        {"action": "invite", "room": room, "user": "carol"},
        {"action": "read", "room": room, "id": "01J00000000000000000000000"},
        {"action": "leave", "room": room},
        {"action": "create", "room": room, "private": True},
    ]


def assert_kept_out(
    chat: ChatHarness, pool: Pool, carol: str, room: str, members: list[str]
) -> None:
    """carol tries every way in: each is refused with an error, nothing else reaches her,
    and the members hear nothing of it. Connecting into it is refused too, guest or not."""
    chat.drain()
    for query in ({"token": pool.token("carol"), "room": room}, {"room": room}):
        refused = chat.refusal(query)
        assert (refused["status"], refused["code"]) == (403, "forbidden")
    tries = attempts_on(room)
    for frame in tries:
        chat.send(carol, frame)
    answers = chat.take(carol)
    assert [f["type"] for f in answers] == ["error"] * len(tries), answers
    assert {f["code"] for f in answers} <= {"forbidden", "not_in_room"}
    assert all(room not in str(f.get("history", "")) for f in answers)
    for member in members:
        assert chat.take(member) == []
    chat.send(carol, {"action": "rooms"})
    (rooms,) = of_type(chat.take(carol), "rooms")
    assert room not in [entry["name"] for entry in rooms["rooms"]]
    assert room not in mine(chat, carol)


def test_a_dm_is_the_two_peoples_alone(chat: ChatHarness, team: Pool) -> None:
    alice = person(chat, team, "alice")
    bob = person(chat, team, "bob")
    carol = person(chat, team, "carol")
    chat.drain()

    chat.send(alice, {"action": "dm", "to": "bob"})
    joined = chat.take_one(alice, "joined")
    room = joined["room"]
    assert room == dm_room("alice", "bob")
    (added,) = of_type(chat.take(bob), "added")
    assert (added["room"], added["dm"], added["with"]) == (room, True, "alice")
    chat.send(bob, {"action": "dm", "to": "alice"})  # reopening is idempotent
    assert chat.take_one(bob, "joined")["room"] == room
    say(chat, alice, "just us", room)
    say(chat, bob, "indeed", room)
    assert texts(chat.take(bob)) == [(room, "just us"), (room, "indeed")]
    assert mine(chat, alice)[room]["with"] == "bob"

    assert_kept_out(chat, team, carol, room, [alice, bob])
    chat.send(carol, {"action": "dm", "to": "alice"})  # her own DM with alice is another room
    assert chat.take_one(carol, "joined")["room"] != room
    say(chat, alice, "still just us", room)
    assert texts(chat.take(carol)) == []
    assert texts(chat.take(bob)) == [(room, "still just us")]


def test_a_private_room_before_and_after_an_invitation(chat: ChatHarness, team: Pool) -> None:
    alice = person(chat, team, "alice")
    bob = person(chat, team, "bob")
    carol = person(chat, team, "carol")
    chat.send(alice, {"action": "create", "room": "secret", "private": True})
    assert chat.take_one(alice, "joined")["room"] == "secret"
    chat.send(bob, {"action": "invite", "room": "secret", "user": "carol"})  # not the owner
    assert chat.take_one(bob, "error")["code"] == "forbidden"
    chat.send(alice, {"action": "invite", "room": "secret", "user": "bob"})
    assert chat.take_one(alice, "invited")["user"] == "bob"
    assert of_type(chat.take(bob), "added")[0]["room"] == "secret"  # live, at once
    say(chat, alice, "plans", "secret")
    assert texts(chat.take(bob)) == [("secret", "plans")]

    assert_kept_out(chat, team, carol, "secret", [alice, bob])
    say(chat, alice, "more plans", "secret")
    assert texts(chat.take(carol)) == []

    chat.send(alice, {"action": "invite", "room": "secret", "user": "carol"})
    assert of_type(chat.take(carol), "added")[0]["room"] == "secret"
    assert mine(chat, carol)["secret"]["private"] is True
    say(chat, alice, "welcome", "secret")
    assert texts(chat.take(carol)) == [("secret", "welcome")]
    chat.send(carol, {"action": "history", "room": "secret"})
    history = of_type(chat.take(carol), "history")[0]["messages"]
    assert [m["text"] for m in history] == ["plans", "more plans", "welcome"]


def test_two_tabs_are_one_person_listed_once_and_leaving_once(
    chat: ChatHarness, team: Pool
) -> None:
    bob = person(chat, team, "bob")
    first = person(chat, team, "alice")
    second = person(chat, team, "alice")
    presence = of_type(chat.take(bob), "presence")
    assert [(p["event"], p["nick"]) for p in presence] == [("join", "alice")]
    chat.send(bob, "/who")
    members = chat.take_one(bob, "members")
    assert (members["members"], members["count"]) == (["alice", "bob"], 2)

    chat.disconnect(first)
    assert of_type(chat.take(bob), "presence") == []
    say(chat, second, "still here")
    assert texts(chat.take(bob)) == [("lobby", "still here")]
    chat.disconnect(second)
    presence = of_type(chat.take(bob), "presence")
    assert [(p["event"], p["nick"], p["count"]) for p in presence] == [("leave", "alice", 1)]


def test_a_guest_chats_in_public_rooms_and_is_refused_private_ones_with_words(
    chat: ChatHarness, team: Pool
) -> None:
    alice = person(chat, team, "alice")
    chat.send(alice, {"action": "create", "room": "secret", "private": True})
    guest = chat.connect({"nick": "visitor"})
    chat.drain()
    say(chat, guest, "hello all")
    assert texts(chat.take(alice)) == [("lobby", "hello all")]
    for frame in (
        {"action": "dm", "to": "alice"},
        {"action": "create", "room": "mine", "private": True},
        {"action": "join", "room": "secret"},
        {"action": "read", "room": "lobby", "id": "01J00000000000000000000000"},
    ):
        chat.send(guest, frame)
        error = chat.take_one(guest, "error")
        assert error["code"] == "forbidden" and "sign in" in error["message"]
    assert chat.take(alice) == []


def test_a_bad_token_is_refused_not_a_guest(chat: ChatHarness, team: Pool) -> None:
    assert chat.refusal({"token": "not-a-jwt"})["status"] == 401


def test_a_connection_is_in_at_most_max_rooms(
    chat: ChatHarness, team: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_ROOMS", "3")
    alice = person(chat, team, "alice")
    for room in ("a", "b", "c"):
        chat.send(alice, {"action": "join", "room": room})
    answers = chat.take(alice)
    assert [f["room"] for f in of_type(answers, "joined")] == ["a", "b"]
    assert [f["code"] for f in of_type(answers, "error")] == ["too_many_rooms"]
    chat.send(alice, "/leave a")
    chat.send(alice, {"action": "join", "room": "c"})
    assert chat.take_one(alice, "joined")["room"] == "c"


def test_a_room_of_hundreds_is_one_query_per_broadcast(
    chat: ChatHarness, team: Pool, dynamodb: Any
) -> None:
    """300 messages and 150 members: the fan-out still reads the room with one Query."""
    alice = person(chat, team, "alice", room="big")
    members = [chat.connect({"room": "big"}, ip=f"198.51.100.{n // 10}") for n in range(150)]
    chat.disconnect(alice)
    for n in range(300):
        say(chat, members[n % 150], f"m{n}")
    chat.drain()
    alice = person(chat, team, "alice")
    assert mine(chat, alice)["big"]["unread"] == "99+"

    queries: list[str] = []
    client = service.dynamodb_client()

    def count(params: dict[str, Any], **_: Any) -> None:
        queries.append(params["ExpressionAttributeValues"][":pk"]["S"])

    client.meta.events.register("provide-client-params.dynamodb.Query", count)
    try:
        say(chat, members[0], "to all")
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb.Query", count)
    assert queries == ["ROOM#big"]
    assert sum(len(texts(chat.take(m))) for m in members) == 150
    assert texts(chat.take(alice)) == [("big", "to all")]


def test_leaving_takes_the_room_from_every_connection_of_the_person(
    chat: ChatHarness, team: Pool
) -> None:
    laptop = person(chat, team, "alice")
    phone = person(chat, team, "alice")
    chat.send(laptop, {"action": "create", "room": "mine-only", "private": True})
    assert of_type(chat.take(phone), "added")[0]["room"] == "mine-only"
    bob = person(chat, team, "bob")
    chat.drain()

    chat.send(phone, "/leave mine-only")
    told = [{"type": "left", "room": "mine-only", "current": "lobby"}]
    assert of_type(chat.take(laptop), "left") == told
    assert of_type(chat.take(phone), "left")[0]["current"] == "lobby"
    assert "mine-only" not in mine(chat, laptop)
    say(chat, bob, "after the leave")
    assert texts(chat.take(laptop)) == [("lobby", "after the leave")]
    chat.send(laptop, {"action": "join", "room": "mine-only"})  # the owner may come back
    assert chat.take_one(laptop, "joined")["room"] == "mine-only"
    chat.send(bob, {"action": "join", "room": "mine-only"})  # nobody else
    assert chat.take_one(bob, "error")["code"] == "forbidden"


def table_count() -> int:
    """Every item in the table (a scan: the test's view, not the chat's)."""
    pages = boto3.client("dynamodb").get_paginator("scan").paginate(TableName=dev_table_name())
    return sum(page["Count"] for page in pages)


def partition(user: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = boto3.client("dynamodb").query(
        TableName=dev_table_name(),
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"USER#{user}"}},
    )["Items"]
    return items


def test_inviting_or_messaging_a_name_nobody_has_is_not_found_and_writes_nothing(
    chat: ChatHarness, team: Pool
) -> None:
    """Issue 17: a typo (`bbo`) makes no membership and no DM for nobody."""
    alice = person(chat, team, "alice")
    chat.send(alice, {"action": "create", "room": "secret", "private": True})
    chat.drain()
    before = table_count()
    for frame in (
        {"action": "invite", "room": "secret", "user": "bbo"},
        {"action": "dm", "to": "bbo"},
    ):
        chat.send(alice, frame)
        (answer,) = chat.take(alice)
        assert (answer["type"], answer["code"]) == ("error", "not_found")
        assert "nobody named bbo has signed in" in answer["message"]
    assert table_count() == before
    assert partition("bbo") == []
    assert set(mine(chat, alice)) == {"lobby", "secret"}


def test_a_person_who_signed_in_once_is_invited_and_sent_a_dm_while_away(
    chat: ChatHarness, team: Pool
) -> None:
    carol = person(chat, team, "carol")
    chat.disconnect(carol)
    alice = person(chat, team, "alice")
    chat.send(alice, {"action": "create", "room": "secret", "private": True})
    chat.drain()
    chat.send(alice, {"action": "invite", "room": "secret", "user": "carol"})
    assert chat.take_one(alice, "invited")["user"] == "carol"
    chat.send(alice, {"action": "dm", "to": "carol"})
    room = chat.take_one(alice, "joined")["room"]
    assert room == dm_room("alice", "carol")

    carol = person(chat, team, "carol")
    rooms = mine(chat, carol)
    assert set(rooms) == {"lobby", "secret", room}
    assert (rooms["secret"]["private"], rooms[room]["with"]) == (True, "alice")
