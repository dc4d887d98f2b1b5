"""Rooms and their subscriptions: who receives a room's frames, and how many people it has.

| item        | pk          | sk           | attributes                                      |
| ----------- | ----------- | ------------ | ----------------------------------------------- |
| membership  | ROOM#{room} | MEMBER#{id}  | nick, connected_at, expires_at, confirmed, user |
| room        | ROOMS       | {room}       | members (confirmed members), expires_at         |

A membership is a subscription: a connection has one in each of its `rooms`
(chalicelib/store/connections.py keeps the list). A room's members and
nicknames are one partition, so a broadcast is one strongly consistent Query
(never a Scan); its history is another (chalicelib/store/messages.py), so that
reading members never wades through messages. A pending member receives
broadcasts but is never listed, counted or announced. `expires_at` drives
DynamoDB's TTL; TTL deletes lag by hours, so every read drops expired items
itself.

Request counts: members one Query (as many pages as it takes, or with
`at_most` as few as tell the room is too big); the rooms list one Query of the
room items; a count one GetItem; a change of the count one UpdateItem.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from chalicelib.settings import Settings
from chalicelib.store.lifetime import Lifetime
from chalicelib.store.table import ConditionFailed, Item, Table

ROOMS_PK = "ROOMS"
MEMBER_PREFIX = "MEMBER#"


@dataclass(frozen=True)
class Member:
    room: str
    connection_id: str
    nick: str
    connected_at: int
    expires_at: int
    confirmed: bool = True
    user: str = ""


@dataclass(frozen=True)
class Departure:
    """A connection removed: who it was, and the room's confirmed members left (if known)."""

    member: Member
    count: int | None


def _member_key(room: str, connection_id: str) -> Item:
    return {"pk": {"S": f"ROOM#{room}"}, "sk": {"S": MEMBER_PREFIX + connection_id}}


def _room_key(room: str) -> Item:
    return {"pk": {"S": ROOMS_PK}, "sk": {"S": room}}


def _member_item(member: Member) -> Item:
    return {
        **_member_key(member.room, member.connection_id),
        "nick": {"S": member.nick},
        "connected_at": {"N": str(member.connected_at)},
        "expires_at": {"N": str(member.expires_at)},
        "confirmed": {"BOOL": member.confirmed},
        "user": {"S": member.user},
    }


def _member(room: str, item: Item) -> Member:
    return Member(
        room=room,
        connection_id=item["sk"]["S"][len(MEMBER_PREFIX) :],
        nick=item["nick"]["S"],
        connected_at=int(item["connected_at"]["N"]),
        expires_at=int(item["expires_at"]["N"]),
        confirmed=item.get("confirmed", {}).get("BOOL", True),
        user=item.get("user", {}).get("S", ""),
    )


class Rooms:
    """Memberships of rooms (subscriptions) and each room's count of confirmed members."""

    def __init__(self, table: Table, settings: Settings, lifetime: Lifetime) -> None:
        self._table = table
        self._settings = settings
        self._lifetime = lifetime

    def members(
        self, room: str, at_most: int | None = None
    ) -> tuple[list[Member], list[Member]] | None:
        """A room's members (pending ones too: they receive), live and expired, over as
        many pages as it takes.

        With `at_most`, None as soon as more than that many live members are
        seen: deciding that a room is too big for presence reads little of it.
        """
        live: list[Member] = []
        expired: list[Member] = []
        pages = {} if at_most is None else {"PaginationConfig": {"PageSize": at_most + 1}}
        for item in self._table.query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={
                ":pk": {"S": f"ROOM#{room}"},
                ":prefix": {"S": MEMBER_PREFIX},
            },
            ConsistentRead=True,
            **pages,
        ):
            member = _member(room, item)
            (expired if self._lifetime.expired(member.expires_at) else live).append(member)
            if at_most is not None and len(live) > at_most:
                return None
        return live, expired

    def count(self, room: str) -> int:
        """The room's confirmed members, as its room item counts them."""
        item = self._table.get(_room_key(room), ConsistentRead=True)
        return int(item.get("members", {"N": "0"})["N"]) if item else 0

    def correct_count(self, room: str, count: int) -> None:
        """Set the room's count to what a full read of its members found."""
        self._table.update(
            _room_key(room),
            UpdateExpression="SET members = :n",
            ExpressionAttributeValues={":n": {"N": str(count)}},
        )

    def listed(self, limit: int = 100) -> list[tuple[str, int]]:
        """The `limit` rooms with the most confirmed members: one Query of the room items."""
        rooms = [
            (item["sk"]["S"], int(item["members"]["N"]))
            for item in self._table.query(
                KeyConditionExpression="pk = :pk",
                FilterExpression="expires_at > :now AND members > :zero",
                ExpressionAttributeValues={
                    ":pk": {"S": ROOMS_PK},
                    ":now": {"N": str(self._lifetime.now_ms() // 1000)},
                    ":zero": {"N": "0"},
                },
            )
        ]
        rooms.sort(key=lambda room: (-room[1], room[0]))
        return rooms[:limit]

    def touch(self, room: str, change: int) -> int:
        """Add `change` to the room's count; it may hold members until the newest of
        them expires (now + connection TTL). Returns the new count."""
        expires_at = self._lifetime.now_ms() // 1000 + self._settings.connection_ttl_seconds
        attributes = self._table.update(
            _room_key(room),
            UpdateExpression="SET expires_at = :t ADD members :change",
            ExpressionAttributeValues={
                ":t": {"N": str(expires_at)},
                ":change": {"N": str(change)},
            },
            ReturnValues="ALL_NEW",
        )
        return max(0, int(attributes.get("members", {"N": "0"})["N"]))

    def add_member(self, member: Member) -> None:
        self._table.put(_member_item(member))

    def add_members(self, members: list[Member]) -> None:
        """Memberships of several rooms, 25 to a batch write."""
        self._table.batch_put([_member_item(member) for member in members])

    def remove_member(self, room: str, connection_id: str) -> Member | None:
        """Delete a membership; the member it was, or None if it was not there.

        Of concurrent deletes of one membership, exactly one gets the member.
        """
        try:
            old = self._table.delete(
                _member_key(room, connection_id),
                ConditionExpression="attribute_exists(pk)",
                ReturnValues="ALL_OLD",
            )
        except ConditionFailed:
            return None
        return _member(room, old)

    def rename_member(self, room: str, connection_id: str, nick: str) -> None:
        """A membership's nickname; a membership already cleaned away stays away."""
        with contextlib.suppress(ConditionFailed):
            self._table.update(
                _member_key(room, connection_id),
                UpdateExpression="SET nick = :new",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":new": {"S": nick}},
            )
