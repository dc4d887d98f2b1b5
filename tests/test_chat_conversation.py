"""Conversation (issue 18): edit and delete, reactions, typing, through the chat's handlers
against moto's Cognito and DynamoDB. alice, bob and carol sign in; others are guests.
"""

from __future__ import annotations

from typing import Any

import boto3

from chalicelib import service
from tests.conftest import ChatHarness, dev_table_name
from tests.test_chat import fill_room
from tests.test_chat_rooms import mine, of_type, person, say, team
from tests.test_chat_signin import Pool

__all__ = ["team"]

EMOJI = [chr(0x1F600 + n) for n in range(21)]  # 21 distinct faces


def posted(chat: ChatHarness, who: str, text: str, room: str | None = None) -> str:
    """Post a message; its id (the sender's own copy is the acknowledgement)."""
    say(chat, who, text, room)
    (message,) = [m for m in of_type(chat.take(who), "message") if m["text"] == text]
    return message["id"]


def history(chat: ChatHarness, who: str, room: str = "lobby") -> list[dict[str, Any]]:
    chat.send(who, {"action": "history", "room": room})
    return of_type(chat.take(who), "history")[0]["messages"]


def error(chat: ChatHarness, who: str, frame: dict[str, Any] | str) -> dict[str, Any]:
    chat.send(who, frame)
    return chat.take_one(who, "error")


def stored(room: str, message_id: str) -> dict[str, Any]:
    table = dev_table_name()
    key = {"pk": {"S": f"HIST#{room}"}, "sk": {"S": message_id}}
    return boto3.client("dynamodb").get_item(TableName=table, Key=key)["Item"]


def test_edit_and_delete_reach_everyone_and_history_keeps_the_latest(
    chat: ChatHarness, team: Pool
) -> None:
    alice = person(chat, team, "alice")
    tab = person(chat, team, "alice")
    bob = person(chat, team, "bob")
    chat.drain()
    first = posted(chat, alice, "helo @bob")
    second = posted(chat, alice, "wrong paste")
    chat.drain()

    chat.send(alice, {"action": "edit", "room": "lobby", "id": first, "text": "hello @bob"})
    for who in (alice, tab, bob):
        (edited,) = of_type(chat.take(who), "edited")
        assert (edited["id"], edited["text"], edited["room"]) == (first, "hello @bob", "lobby")
        assert edited["edited"].endswith("Z")
    chat.send(alice, f"/delete {second}")
    for who in (alice, tab, bob):
        assert of_type(chat.take(who), "deleted") == [
            {"type": "deleted", "room": "lobby", "id": second}
        ]

    shown = history(chat, bob)
    assert [m["id"] for m in shown] == [first, second]
    assert (shown[0]["text"], "edited" in shown[0]) == ("hello @bob", True)
    assert shown[1]["deleted"] is True and "text" not in shown[1]
    assert (shown[1]["from"], shown[1]["verified"]) == ("alice", True)
    assert "text" not in stored("lobby", second)
    carol = person(chat, team, "carol")  # a later joiner's `joined`
    chat.send(carol, {"action": "join", "room": "lobby"})
    joined = chat.take_one(carol, "joined")
    assert [(m.get("text"), m.get("deleted")) for m in joined["history"]] == [
        ("hello @bob", None),
        (None, True),
    ]


def test_only_the_sender_edits_and_deletes_and_repeats_change_nothing(
    chat: ChatHarness, team: Pool
) -> None:
    alice = person(chat, team, "alice")
    bob = person(chat, team, "bob")
    carol = person(chat, team, "carol")
    guest = chat.connect({"nick": "visitor"})
    message = posted(chat, alice, "mine")
    chat.drain()

    for frame in (
        {"action": "edit", "id": message, "text": "theirs"},
        {"action": "delete", "id": message},
    ):
        refused = error(chat, carol, frame)
        assert refused["code"] == "forbidden" and "own" in refused["message"]
    assert error(chat, guest, {"action": "delete", "id": message})["code"] == "forbidden"
    assert chat.take(alice) == [] and chat.take(bob) == []
    assert [m["text"] for m in history(chat, bob)] == ["mine"]

    chat.send(alice, {"action": "edit", "id": message, "text": "mine, edited"})
    assert len(of_type(chat.take(bob), "edited")) == 1
    chat.send(alice, {"action": "edit", "id": message, "text": "mine, edited"})  # the same
    assert [f["type"] for f in chat.take(alice)] == ["edited", "edited"]
    assert chat.take(bob) == []  # nothing changed: nobody else hears of it
    chat.send(alice, {"action": "delete", "id": message})
    chat.send(alice, {"action": "delete", "id": message})
    assert len(of_type(chat.take(bob), "deleted")) == 1
    assert len(of_type(chat.take(alice), "deleted")) == 2
    after = error(chat, alice, {"action": "edit", "id": message, "text": "back"})
    assert after["code"] == "not_found"
    assert error(chat, alice, {"action": "react", "id": message, "emoji": "👍"})["code"] == (
        "not_found"
    )


def test_unknown_ids_other_rooms_and_bad_text_are_refused(chat: ChatHarness, team: Pool) -> None:
    alice = person(chat, team, "alice")
    bob = person(chat, team, "bob")
    chat.send(alice, {"action": "join", "room": "dev"})
    in_dev = posted(chat, alice, "in dev", "dev")
    chat.drain()
    unknown = "01J00000000000000000000000"
    assert error(chat, alice, {"action": "delete", "id": unknown})["code"] == "not_found"
    # The id of a message of another room, named as this room's, is not this room's.
    assert error(chat, alice, {"action": "delete", "room": "lobby", "id": in_dev})["code"] == (
        "not_found"
    )
    assert error(chat, bob, {"action": "delete", "room": "dev", "id": in_dev})["code"] == (
        "not_in_room"
    )
    for text, code in (("", "bad_request"), ("\u200b", "bad_request"), ("x" * 4001, "too_large")):
        frame = {"action": "edit", "room": "dev", "id": in_dev, "text": text}
        assert error(chat, alice, frame)["code"] == code
    assert error(chat, alice, {"action": "edit", "id": "nope", "text": "x"})["code"] == (
        "bad_request"
    )
    assert [m["text"] for m in history(chat, alice, "dev")] == ["in dev"]
    assert chat.take(bob) == []


def test_reactions_of_three_people_are_counted_and_named_everywhere(
    chat: ChatHarness, team: Pool
) -> None:
    alice = person(chat, team, "alice")
    bob = person(chat, team, "bob")
    carol = person(chat, team, "carol")
    message = posted(chat, alice, "ship it?")
    chat.drain()

    for who in (alice, bob, carol):
        chat.send(who, {"action": "react", "id": message, "emoji": "👍"})
    chat.send(bob, f"/react {message} 🎉")
    expected = [
        {"emoji": "👍", "count": 3, "who": ["alice", "bob", "carol"]},
        {"emoji": "🎉", "count": 1, "who": ["bob"]},
    ]
    for who in (alice, bob, carol):
        frames = of_type(chat.take(who), "reactions")
        assert len(frames) == 4
        assert frames[-1] == {
            "type": "reactions",
            "room": "lobby",
            "id": message,
            "reactions": expected,
        }
    assert history(chat, carol)[0]["reactions"] == expected

    chat.send(bob, {"action": "react", "id": message, "emoji": "👍"})  # a second toggle
    assert of_type(chat.take(alice), "reactions")[-1]["reactions"][0] == {
        "emoji": "👍",
        "count": 2,
        "who": ["alice", "carol"],
    }
    chat.drain()
    chat.send(carol, {"action": "react", "id": message, "emoji": "👍", "on": True})  # already on
    assert len(of_type(chat.take(carol), "reactions")) == 1
    assert chat.take(alice) == []
    chat.send(bob, {"action": "react", "id": message, "emoji": "🎉", "on": False})
    assert [r["emoji"] for r in history(chat, alice)[0]["reactions"]] == ["👍"]


def test_at_most_20_distinct_reactions_and_never_free_text(chat: ChatHarness, team: Pool) -> None:
    alice = person(chat, team, "alice")
    bob = person(chat, team, "bob")
    message = posted(chat, alice, "react away")
    for emoji in EMOJI[:20]:
        chat.send(bob, {"action": "react", "id": message, "emoji": emoji})
    chat.drain()
    refused = error(chat, bob, {"action": "react", "id": message, "emoji": EMOJI[20]})
    assert refused["code"] == "too_many_reactions" and "20" in refused["message"]
    chat.send(alice, {"action": "react", "id": message, "emoji": EMOJI[0]})  # an existing one
    assert of_type(chat.take(alice), "reactions")[0]["reactions"][0]["count"] == 2
    assert len(of_type(chat.take(bob), "reactions")) == 1
    for text in ("lol", "👍 nice", "👍👍", "", " ", "<b>", 5, None, "a\u20e3"):
        frame = {"action": "react", "id": message, "emoji": text}
        refused = error(chat, alice, frame)
        assert refused["code"] == "bad_request" and "emoji" in refused["message"]
    reactions = history(chat, alice)[0]["reactions"]
    assert [r["emoji"] for r in reactions] == EMOJI[:20]
    assert chat.take(bob) == []


def test_typing_reaches_the_others_once_per_three_seconds_and_is_never_stored(
    chat: ChatHarness, team: Pool
) -> None:
    alice = person(chat, team, "alice")
    tab = person(chat, team, "alice")
    bob = person(chat, team, "bob")
    chat.drain()
    for _ in range(10):
        chat.send(alice, {"action": "typing", "room": "lobby"})
    assert of_type(chat.take(bob), "typing") == [
        {"type": "typing", "room": "lobby", "nick": "alice", "verified": True}
    ]
    assert chat.take(alice) == []  # no answer, no error for the ones dropped
    assert chat.take(tab) == []  # her own other tab is not told
    assert history(chat, bob) == []
    items = boto3.client("dynamodb").scan(TableName=dev_table_name())["Items"]
    assert not [i for i in items if i["pk"]["S"].startswith("HIST#")]


def test_typing_is_not_sent_in_rooms_over_the_presence_limit(
    chat: ChatHarness, team: Pool, dynamodb: Any
) -> None:
    crowd = fill_room(dynamodb, "crowd", 99)
    alice = person(chat, team, "alice", room="crowd")
    chat.drain()
    chat.send(alice, {"action": "typing"})
    assert sum(len(chat.take(cid)) for cid in crowd) == 99  # 100 members: within the limit
    bob = person(chat, team, "bob", room="crowd")  # 101: over it
    chat.drain()
    chat.send(bob, {"action": "typing"})
    assert not any(chat.take(cid) for cid in [alice, *crowd])


HOSTILE = [
    {"action": "edit"},
    {"action": "edit", "id": None, "text": None},
    {"action": "edit", "id": "01J00000000000000000000000", "text": ["x"]},
    {"action": "delete", "id": {"$ne": ""}},
    {"action": "delete", "id": "01J00000000000000000000000", "room": "../etc"},
    {"action": "react", "id": "01J00000000000000000000000", "emoji": "x" * 10_000},
    {"action": "react", "id": "01J00000000000000000000000", "emoji": "\ud800"},
    {"action": "react", "id": "01J00000000000000000000000", "emoji": "👍", "on": 1},
    {"action": "typing", "room": 5},
    {"action": "role", "user": "bob", "role": ["moderator"]},
    {"action": "role", "user": "bob", "role": "owner"},
    {"action": "kick", "user": "", "nick": ""},
    {"action": "ban", "user": "x" * 200},
    {"action": "unban"},
    "/edit",
    "/react 01J00000000000000000000000",
    "/role bob",
    "/kick a b",
]


def test_hostile_conversation_frames_get_one_error_each_and_nobody_else_hears(
    chat: ChatHarness, team: Pool
) -> None:
    alice = person(chat, team, "alice")
    bob = person(chat, team, "bob")
    posted(chat, bob, "a message")
    chat.drain()
    for frame in HOSTILE:
        chat.send(alice, frame)
        answers = chat.take(alice)
        assert [f["type"] for f in answers] == ["error"], (frame, answers)
        assert answers[0]["code"] in {"bad_request", "invalid_room", "invalid_nick"}
    assert chat.take(bob) == []
    assert [m["text"] for m in history(chat, bob)] == ["a message"]


def test_mentions_name_members_and_count_unread_and_a_dm_counts_every_message(
    chat: ChatHarness, team: Pool
) -> None:
    alice = person(chat, team, "alice", room="dev")
    bob = person(chat, team, "bob", room="dev")
    chat.send(alice, {"action": "dm", "to": "bob"})
    dm = chat.take_one(alice, "joined")["room"]
    chat.disconnect(bob)
    chat.drain()
    say(chat, alice, "@bob, @carol and @nobody: look", "dev")  # carol is not in dev
    (message,) = of_type(chat.take(alice), "message")
    assert message["mentions"] == ["bob"]
    say(chat, alice, "no one named", "dev")
    say(chat, alice, "one @bob more", "dev")
    ids = [m["id"] for m in of_type(chat.take(alice), "message")]
    chat.send(alice, {"action": "edit", "room": "dev", "id": ids[-1], "text": "no more"})
    assert "mentions" not in chat.take_one(alice, "edited")
    for text in ("hi", "are you there?"):
        say(chat, alice, text, dm)
    chat.drain()

    bob = person(chat, team, "bob", room="dev")
    rooms = mine(chat, bob)
    assert (rooms["dev"]["unread"], rooms["dev"]["mentions"]) == (3, 1)
    assert (rooms[dm]["unread"], rooms[dm]["mentions"]) == (2, 2)
    assert history(chat, bob, "dev")[0]["mentions"] == ["bob"]
    chat.send(alice, {"action": "delete", "room": "dev", "id": message["id"]})
    rooms = mine(chat, bob)
    assert (rooms["dev"]["unread"], rooms["dev"]["mentions"]) == (2, 0)  # tombstones don't count


def test_each_change_reads_the_room_once_and_the_message_once(
    chat: ChatHarness, team: Pool
) -> None:
    """The DynamoDB requests of edit, react, delete and typing, by operation."""
    alice = person(chat, team, "alice")
    bob = person(chat, team, "bob")
    message = posted(chat, alice, "count me")
    client = service.dynamodb_client()
    calls: list[str] = []

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        target = params.get("Key", {}).get("pk") or params.get("ExpressionAttributeValues", {}).get(
            ":pk"
        )
        calls.append(f"{model.name} {target['S'] if target else ''}".strip())

    frames: list[dict[str, Any]] = [
        {"action": "edit", "id": message, "text": "counted"},
        {"action": "react", "id": message, "emoji": "👍"},
        {"action": "delete", "id": message},
        {"action": "typing"},
    ]
    seen = {}
    client.meta.events.register("provide-client-params.dynamodb", record)
    try:
        for frame in frames:
            calls.clear()
            chat.send(alice, frame)
            seen[frame["action"]] = [c for c in calls if not c.endswith("CONNECTION")]
            seen[frame["action"]] = [c for c in seen[frame["action"]] if "CONN#" not in c]
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb", record)
    for action in ("edit", "react", "delete"):
        assert seen[action] == ["GetItem HIST#lobby", "UpdateItem HIST#lobby", "Query ROOM#lobby"]
    assert seen["typing"] == ["Query ROOM#lobby"]
    assert len(of_type(chat.take(bob), "typing")) == 1
