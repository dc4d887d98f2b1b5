"""Moderation (issue 18): owners, moderators, Cognito admins, kicks and bans, through the
chat's handlers against moto's Cognito and DynamoDB. alice, bob and carol sign in; dave
is in the Cognito group `admins`; others are guests.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib import service
from chalicelib.store.memberships import dm_room
from tests.conftest import ChatHarness, dev_table_name
from tests.test_chat_conversation import error, posted
from tests.test_chat_rooms import mine, of_type, person
from tests.test_chat_signin import Pool, guest_items, make_pool


@pytest.fixture
def crew(chat: ChatHarness, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pool]:
    pool = make_pool("crew", ["alice", "bob", "carol", "dave"])
    pool.client.create_group(GroupName="admins", UserPoolId=pool.id)
    pool.client.admin_add_user_to_group(UserPoolId=pool.id, Username="dave", GroupName="admins")
    monkeypatch.setenv("AUTH", "optional")
    monkeypatch.setenv("COGNITO_USER_POOL_ID", pool.id)
    monkeypatch.setenv("COGNITO_CLIENT_ID", pool.client_id)
    monkeypatch.setenv("RATE_PER_SECOND", "10000")
    monkeypatch.setenv("RATE_BURST", "10000")
    service.verifier.cache_clear()
    yield pool
    service.verifier.cache_clear()


def private_room(chat: ChatHarness, owner: str, room: str, *invited: str) -> None:
    chat.send(owner, {"action": "create", "room": room, "private": True})
    chat.take_one(owner, "joined")
    for user in invited:
        chat.send(owner, {"action": "invite", "room": room, "user": user})
        chat.take_one(owner, "invited")


def test_a_moderator_deletes_and_bans_and_unban_lets_back(chat: ChatHarness, crew: Pool) -> None:
    alice = person(chat, crew, "alice")
    laptop = person(chat, crew, "bob")
    phone = person(chat, crew, "bob")
    carol = person(chat, crew, "carol")
    private_room(chat, alice, "team", "bob", "carol")
    abuse = posted(chat, laptop, "spam spam spam", "team")
    chat.drain()

    # Members who are not moderators: refused with words, nothing changes.
    refused = error(chat, carol, {"action": "ban", "room": "team", "user": "bob"})
    assert refused["code"] == "forbidden" and "moderators" in refused["message"]
    assert error(chat, carol, {"action": "delete", "room": "team", "id": abuse})["code"] == (
        "forbidden"
    )
    assert error(chat, carol, "/role bob moderator")["code"] in {"forbidden", "not_in_room"}
    chat.send(carol, {"action": "role", "room": "team", "user": "carol", "role": "moderator"})
    assert "owner" in chat.take_one(carol, "error")["message"]
    assert all(chat.take(who) == [] for who in (alice, laptop, phone))

    chat.send(alice, {"action": "role", "room": "team", "user": "carol", "role": "moderator"})
    told = {"type": "role", "room": "team", "user": "carol", "role": "moderator"}
    for who in (alice, laptop, phone, carol):
        assert of_type(chat.take(who), "role") == [told]

    chat.send(carol, {"action": "delete", "room": "team", "id": abuse})
    for who in (alice, laptop, phone, carol):
        deleted = of_type(chat.take(who), "deleted")
        assert deleted == [{"type": "deleted", "room": "team", "id": abuse, "by": "carol"}]
    chat.send(carol, {"action": "ban", "room": "team", "user": "bob"})
    for tab in (laptop, phone):
        frames = chat.take(tab)
        (why,) = of_type(frames, "error")
        assert why["code"] == "forbidden" and "banned from team" in why["message"]
        assert of_type(frames, "left") == [{"type": "left", "room": "team", "current": "lobby"}]
    for who in (alice, carol):
        frames = chat.take(who)
        assert of_type(frames, "banned") == [
            {"type": "banned", "room": "team", "user": "bob", "by": "carol"}
        ]
        leaves = [p for p in of_type(frames, "presence") if p["room"] == "team"]
        assert [(p["event"], p["nick"]) for p in leaves] == [("leave", "bob")]
    assert "team" not in mine(chat, laptop)

    chat.send(alice, {"action": "sendmessage", "data": "after the ban", "room": "team"})
    assert of_type(chat.take(laptop), "message") == []
    refused = error(chat, laptop, {"action": "join", "room": "team"})
    assert refused["code"] == "forbidden" and "banned" in refused["message"]
    refused = error(chat, alice, {"action": "invite", "room": "team", "user": "bob"})
    assert refused["code"] == "forbidden" and "banned" in refused["message"]
    assert chat.refusal({"token": crew.token("bob"), "room": "team"})["status"] == 403
    chat.send(carol, {"action": "ban", "room": "team", "user": "bob"})  # again: nothing new
    assert len(of_type(chat.take(carol), "banned")) == 1
    assert chat.take(alice) == []

    chat.send(carol, {"action": "unban", "room": "team", "user": "bob"})
    assert chat.take_one(carol, "unbanned") == {"type": "unbanned", "room": "team", "user": "bob"}
    chat.send(alice, {"action": "invite", "room": "team", "user": "bob"})
    assert chat.take_one(alice, "invited")["user"] == "bob"
    chat.send(laptop, {"action": "join", "room": "team"})
    assert [m.get("deleted") for m in chat.take_one(laptop, "joined")["history"]] == [True, None]


def test_an_admin_moderates_a_room_they_do_not_own(chat: ChatHarness, crew: Pool) -> None:
    alice = person(chat, crew, "alice")
    bob = person(chat, crew, "bob")
    dave = person(chat, crew, "dave")
    chat.send(alice, {"action": "create", "room": "cafe"})  # public, alice its owner
    chat.take_one(alice, "joined")
    for who in (bob, dave):
        chat.send(who, {"action": "join", "room": "cafe"})
    message = posted(chat, bob, "rude words", "cafe")
    chat.drain()

    chat.send(dave, {"action": "delete", "room": "cafe", "id": message})
    assert of_type(chat.take(alice), "deleted")[0]["by"] == "dave"
    chat.send(dave, {"action": "role", "room": "cafe", "user": "bob", "role": "moderator"})
    assert of_type(chat.take(alice), "role")[0]["role"] == "moderator"
    chat.send(dave, {"action": "ban", "room": "cafe", "user": "alice"})
    assert "owns cafe" in chat.take_one(dave, "error")["message"]
    chat.send(dave, {"action": "role", "room": "cafe", "user": "bob", "role": "member"})
    chat.send(dave, {"action": "ban", "room": "cafe", "user": "bob"})
    assert of_type(chat.take(alice), "banned")[0]["user"] == "bob"
    assert "banned from cafe" in chat.take_one(bob, "error")["message"]
    assert "banned" in error(chat, bob, {"action": "join", "room": "cafe"})["message"]
    # The default room has no owner: only admins moderate it.
    chat.send(alice, {"action": "ban", "room": "lobby", "user": "bob"})
    assert chat.take_one(alice, "error")["code"] == "forbidden"
    chat.send(dave, {"action": "kick", "room": "lobby", "user": "bob"})
    assert of_type(chat.take(alice), "kicked") == [
        {"type": "kicked", "room": "lobby", "user": "bob", "by": "dave"}
    ]


def test_who_may_kick_or_ban_whom(chat: ChatHarness, crew: Pool) -> None:
    alice = person(chat, crew, "alice")
    bob = person(chat, crew, "bob")
    person(chat, crew, "carol")
    private_room(chat, alice, "den", "bob", "carol")
    for user in ("bob", "carol"):
        chat.send(alice, {"action": "role", "room": "den", "user": user, "role": "moderator"})
    chat.drain()
    cases = [
        (bob, {"action": "ban", "room": "den", "user": "alice"}, "owns den"),
        (bob, {"action": "kick", "room": "den", "user": "carol"}, "moderates den"),
        (bob, {"action": "ban", "room": "den", "user": "bob"}, "yourself"),
        (alice, {"action": "role", "room": "den", "user": "alice", "role": "member"}, "owner"),
    ]
    for who, frame, words in cases:
        assert words in error(chat, who, frame)["message"]
    chat.send(alice, {"action": "dm", "to": "bob"})
    dm = chat.take_one(alice, "joined")["room"]
    chat.send(alice, {"action": "ban", "room": dm, "user": "bob"})
    assert "direct conversation" in chat.take_one(alice, "error")["message"]


def test_a_kick_from_a_private_room_lasts_until_the_next_invitation(
    chat: ChatHarness, crew: Pool
) -> None:
    alice = person(chat, crew, "alice")
    bob = person(chat, crew, "bob")
    private_room(chat, alice, "club", "bob")
    chat.drain()
    chat.send(alice, "/kick bob")
    assert of_type(chat.take(bob), "left")[0]["room"] == "club"
    assert "club" not in mine(chat, bob)
    assert error(chat, bob, {"action": "join", "room": "club"})["code"] == "forbidden"
    chat.send(alice, {"action": "invite", "room": "club", "user": "bob"})
    assert of_type(chat.take(bob), "added")[0]["room"] == "club"


def test_a_guest_is_kicked_for_the_life_of_its_connection(chat: ChatHarness, crew: Pool) -> None:
    dave = person(chat, crew, "dave", room="hall")
    guest = chat.connect({"nick": "troll", "room": "hall"})
    chat.send(guest, {"action": "join", "room": "lobby"})
    chat.drain()
    refused = error(chat, dave, {"action": "kick", "room": "hall", "nick": "nobody"})
    assert refused["code"] == "not_found"
    chat.send(dave, {"action": "kick", "room": "hall", "nick": "TROLL"})
    assert of_type(chat.take(dave), "kicked") == [
        {"type": "kicked", "room": "hall", "nick": "troll", "by": "dave"}
    ]
    frames = chat.take(guest)
    assert of_type(frames, "error")[0]["code"] == "forbidden"
    assert of_type(frames, "left")[0]["room"] == "hall"
    refused = error(chat, guest, {"action": "join", "room": "hall"})
    assert refused["code"] == "forbidden" and "removed" in refused["message"]
    again = chat.connect({"nick": "troll2", "room": "hall"})  # a new connection may come in
    chat.send(again, {"action": "join", "room": "hall"})
    assert chat.take_one(again, "joined")["room"] == "hall"


def test_banned_from_the_only_room_leaves_the_chat(chat: ChatHarness, crew: Pool) -> None:
    dave = person(chat, crew, "dave")
    bob = person(chat, crew, "bob")
    chat.drain()
    chat.connections.calls.clear()
    chat.send(dave, {"action": "ban", "room": "lobby", "user": "bob"})
    why, left = chat.take(bob)
    assert why["code"] == "forbidden" and "banned from lobby" in why["message"]
    assert left == {"type": "left", "room": "lobby", "current": None}
    # Then the server closes it (changed in issue 18): no frame of it starts it over.
    assert [call for call in chat.connections.calls if call[0] == "DeleteConnection"] == [
        ("DeleteConnection", bob)
    ]
    leaves = of_type(chat.take(dave), "presence")
    assert [(p["event"], p["nick"]) for p in leaves] == [("leave", "bob")]
    assert chat.refusal({"token": crew.token("bob")})["status"] == 403  # lobby: the default
    assert chat.refusal({"token": crew.token("bob"), "room": "lobby"})["status"] == 403
    chat.send(bob, {"action": "join", "room": "lobby"})  # had it raced the close
    assert [(f["type"], f["code"]) for f in chat.take(bob)] == [("error", "expired")]
    chat.send(dave, "/who")
    assert chat.take_one(dave, "members")["members"] == ["dave"]


def joined_role(chat: ChatHarness, who: str, room: str) -> tuple[str, int]:
    """The role `joined` tells `who` joining `room`, and the BatchGetItem calls it took."""
    batch_gets: list[str] = []
    client = service.dynamodb_client()

    def count(**_: Any) -> None:
        batch_gets.append("BatchGetItem")

    client.meta.events.register("provide-client-params.dynamodb.BatchGetItem", count)
    try:
        chat.send(who, {"action": "join", "room": room})
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb.BatchGetItem", count)
    return chat.take_one(who, "joined")["role"], len(batch_gets)


def test_joined_tells_the_joiner_their_role_for_at_most_one_read(
    chat: ChatHarness, crew: Pool
) -> None:
    alice = person(chat, crew, "alice")
    bob = person(chat, crew, "bob")
    carol = person(chat, crew, "carol")
    dave = person(chat, crew, "dave")
    guest = chat.connect({"nick": "visitor"})
    chat.send(alice, {"action": "create", "room": "cafe"})  # public, alice its owner
    assert chat.take_one(alice, "joined")["role"] == "owner"
    chat.send(carol, {"action": "create", "room": "den", "private": True})
    assert chat.take_one(carol, "joined")["role"] == "owner"
    chat.send(carol, {"action": "invite", "room": "den", "user": "bob"})
    chat.drain()

    assert joined_role(chat, bob, "cafe") == ("member", 1)
    chat.send(alice, {"action": "role", "room": "cafe", "user": "bob", "role": "moderator"})
    chat.drain()
    assert joined_role(chat, bob, "cafe") == ("moderator", 1)
    assert joined_role(chat, alice, "cafe") == ("owner", 1)
    assert joined_role(chat, carol, "cafe") == ("member", 1)
    assert joined_role(chat, carol, "den") == ("owner", 1)  # a private room's creator
    assert joined_role(chat, bob, "den") == ("member", 1)
    assert joined_role(chat, dave, "cafe") == ("moderator", 0)  # an admin, by the group
    assert joined_role(chat, dave, "lobby") == ("moderator", 0)
    assert joined_role(chat, guest, "cafe") == ("member", 0)
    chat.send(alice, {"action": "role", "room": "cafe", "user": "bob", "role": "member"})
    chat.drain()
    assert joined_role(chat, bob, "cafe") == ("member", 1)

    chat.send(alice, {"action": "dm", "to": "dave"})  # a DM has no roles, for anyone
    dm = chat.take_one(alice, "joined")
    assert dm["role"] == "member"
    assert joined_role(chat, dave, dm["room"]) == ("member", 0)
    assert joined_role(chat, alice, dm["room"]) == ("member", 0)


def test_a_kick_from_the_only_room_ends_with_left_and_no_current_then_a_close(
    chat: ChatHarness, crew: Pool, dynamodb: Any
) -> None:
    """Each of the person's connections hears `forbidden` then `left`, nothing more of the
    room, and is closed: a frame that raced the close is answered `expired`, never a
    guest in the default room (changed in issue 18)."""
    alice = person(chat, crew, "alice", room="cafe")
    laptop = person(chat, crew, "bob", room="cafe")
    phone = person(chat, crew, "bob", room="cafe")
    chat.drain()
    chat.send(alice, {"action": "kick", "room": "cafe", "user": "bob"})
    assert "only moderators" in chat.take_one(alice, "error")["message"]  # no owner: admins
    dave = person(chat, crew, "dave", room="cafe")
    chat.drain()
    chat.connections.calls.clear()

    chat.send(dave, {"action": "kick", "room": "cafe", "user": "bob"})
    closed = [call for call in chat.connections.calls if call[0] == "DeleteConnection"]
    assert sorted(closed) == sorted([("DeleteConnection", laptop), ("DeleteConnection", phone)])
    for tab in (laptop, phone):
        why, left = chat.take(tab)
        assert (why["type"], why["code"]) == ("error", "forbidden")
        assert "dave removed you from cafe" in why["message"]
        assert left == {"type": "left", "room": "cafe", "current": None}
    assert of_type(chat.take(alice), "kicked") == [
        {"type": "kicked", "room": "cafe", "user": "bob", "by": "dave"}
    ]
    chat.send(alice, {"action": "sendmessage", "data": "after the kick", "room": "cafe"})
    assert chat.take(laptop) == [] and chat.take(phone) == []
    chat.send(dave, "/who")
    assert chat.take_one(dave, "members")["members"] == ["alice", "dave"]
    chat.send(laptop, {"action": "ping"})
    assert [(f["type"], f["code"]) for f in chat.take(laptop)] == [("error", "expired")]
    assert guest_items(dynamodb) == []  # no guest came of it
    again = person(chat, crew, "bob", room="cafe")  # a kick is no ban: bob may come back
    chat.send(again, "/who")
    assert chat.take_one(again, "members")["members"] == ["alice", "bob", "dave"]


def test_a_guest_kicked_from_its_only_room_is_closed(chat: ChatHarness, crew: Pool) -> None:
    dave = person(chat, crew, "dave", room="yard")
    guest = chat.connect({"nick": "troll", "room": "yard"})
    chat.drain()
    chat.connections.calls.clear()
    chat.send(dave, {"action": "kick", "room": "yard", "nick": "troll"})
    why, left = chat.take(guest)
    assert (why["code"], left) == ("forbidden", {"type": "left", "room": "yard", "current": None})
    closed = [call for call in chat.connections.calls if call[0] == "DeleteConnection"]
    assert closed == [("DeleteConnection", guest)]
    chat.send(guest, {"action": "join", "room": "yard"})  # had it raced the close
    assert [(f["type"], f["code"]) for f in chat.take(guest)] == [("error", "expired")]
    chat.send(dave, "/who")
    assert chat.take_one(dave, "members")["members"] == ["dave"]


def test_a_kick_from_one_of_two_rooms_leaves_the_other_current(
    chat: ChatHarness, crew: Pool
) -> None:
    dave = person(chat, crew, "dave", room="cafe")
    bob = person(chat, crew, "bob", room="cafe")
    chat.send(bob, {"action": "join", "room": "hall"})
    chat.drain()
    chat.send(dave, {"action": "kick", "room": "cafe", "user": "bob"})
    why, left = chat.take(bob)
    assert (why["code"], left) == ("forbidden", {"type": "left", "room": "cafe", "current": "hall"})
    chat.send(dave, {"action": "sendmessage", "data": "after the kick", "room": "cafe"})
    assert chat.take(bob) == []
    assert list(mine(chat, bob)) == ["hall"]


def test_the_owner_moderators_and_admins_invite_and_a_plain_member_may_not(
    chat: ChatHarness, crew: Pool
) -> None:
    """Issue 17: `invite` is for the owner or a moderator of the room, and admins."""
    alice = person(chat, crew, "alice")
    bob = person(chat, crew, "bob")
    carol = person(chat, crew, "carol")
    dave = person(chat, crew, "dave")
    private_room(chat, alice, "team", "bob")
    chat.send(alice, {"action": "role", "room": "team", "user": "bob", "role": "moderator"})
    chat.drain()

    chat.send(bob, {"action": "invite", "room": "team", "user": "carol"})  # a moderator
    assert chat.take_one(bob, "invited")["user"] == "carol"
    assert [f["room"] for f in of_type(chat.take(carol), "added")] == ["team"]  # live
    assert mine(chat, carol)["team"]["private"] is True

    private_room(chat, alice, "den")  # dave, an admin, is not in it
    chat.drain()
    chat.send(dave, {"action": "invite", "room": "den", "user": "carol"})
    assert chat.take_one(dave, "invited")["user"] == "carol"
    assert [f["room"] for f in of_type(chat.take(carol), "added")] == ["den"]
    assert "den" in mine(chat, carol)

    before = mine(chat, dave)
    refused = error(chat, carol, {"action": "invite", "room": "team", "user": "dave"})
    assert refused["code"] == "forbidden" and "owner or a moderator" in refused["message"]
    assert chat.take(carol) == []
    assert chat.take(dave) == []  # no `added`
    assert mine(chat, dave) == before and "team" not in before


def test_a_person_banned_from_their_only_room_can_still_be_sent_a_dm(
    chat: ChatHarness, crew: Pool, dynamodb: Any
) -> None:
    """Their room items and tab are gone; the SEEN mark says they have signed in."""
    dave = person(chat, crew, "dave")
    bob = person(chat, crew, "bob")
    chat.send(dave, {"action": "ban", "room": "lobby", "user": "bob"})
    chat.drain()
    items = dynamodb.query(
        TableName=dev_table_name(),
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "USER#bob"}},
    )["Items"]
    assert [item["sk"]["S"] for item in items] == ["SEEN"]
    chat.send(dave, {"action": "dm", "to": "bob"})
    assert chat.take_one(dave, "joined")["room"] == dm_room("bob", "dave")
    assert chat.take(bob) == []  # closed: the DM waits in bob's rooms
