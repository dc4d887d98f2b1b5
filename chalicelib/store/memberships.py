"""A person's rooms, private rooms and read markers: what outlives a connection.

Items, in the chat's one table (the other modules of chalicelib/store/ have the rest):

| item            | pk          | sk           | attributes                                  |
| --------------- | ----------- | ------------ | ------------------------------------------- |
| a person's room | USER#{user} | ROOM#{room}  | private, dm, peer (a DM's other user),      |
|                 |             |              | read (the last message read), added_at      |
| a live tab      | USER#{user} | CONN#{id}    | expires_at                                  |
| signed in once  | USER#{user} | SEEN         | at (the last sign-in)                       |
| a room's terms  | ROOM#{room} | META         | private, dm, owner, created_at              |

Only signed-in people have items here: a guest's rooms are its connection's
`rooms` (chalicelib/store/connections.py) and die with it, so a guest costs no write more than
before. A public room has no META item; a private room or DM has one, and only
people with a room item for it may join it, read it or post into it (the room
item is the invitation). Room items leave room for what comes next: roles and
bans as ROOM#{room} ROLE#/BAN#{user} items beside META, and per-person settings
as attributes of the room item.

Request counts: a person's rooms are one Query (their partition, at most
MAX_ROOMS room items and their live connections); joining a private room one
GetItem for META and one for the room item; an unread count one Query of the
room's history after the read marker, Limit 100 (`unread`); `read` one
conditional UpdateItem (a marker only moves forward); whether anyone by a name has
ever signed in (`known`, before an invitation or a DM) one Query, Limit 1.

SEEN is written with each live tab (one BatchWriteItem, as many requests as the
tab alone) and never removed: room items are not enough to tell, since a person
banned or kicked from their only room loses that room item and, at $disconnect,
their tab, which would leave the partition empty.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from chalicelib.store.messages import HISTORY_PREFIX
from chalicelib.store.table import ConditionFailed, Item, Table

USER_PREFIX = "USER#"
ROOM_PREFIX = "ROOM#"
CONN_PREFIX = "CONN#"
SEEN_SK = "SEEN"
META_SK = "META"
DM_PREFIX = "dm-"
# Unread counts are exact up to 99; one more tells "99+".
UNREAD_CAP = 100


@dataclass(frozen=True)
class RoomTerms:
    """Who may be in a room that is not public."""

    room: str
    private: bool
    dm: bool
    owner: str


@dataclass(frozen=True)
class PersonRoom:
    room: str
    private: bool = False
    dm: bool = False
    peer: str = ""
    read: str = ""


@dataclass(frozen=True)
class Unread:
    count: int
    mentions: int
    last: str | None


def dm_room(user: str, other: str) -> str:
    """The one DM room of two users: the same whoever opens it, not guessable into access
    (membership is checked), and within the room-name rules."""
    pair = "\n".join(sorted((user, other)))
    return DM_PREFIX + hashlib.blake2s(pair.encode()).hexdigest()[:24]


class Memberships:
    """What a signed-in person has: rooms, read markers, live tabs; and rooms' terms."""

    def __init__(self, table: Table, clock: Callable[[], float]) -> None:
        self._table = table
        self._clock = clock

    # Room terms ----------------------------------------------------------------------

    def terms(self, room: str) -> RoomTerms | None:
        """The room's terms; None for a public room."""
        item = self._table.get(
            {"pk": {"S": ROOM_PREFIX + room}, "sk": {"S": META_SK}}, ConsistentRead=True
        )
        return None if item is None else _terms(room, item)

    def private_among(self, rooms: list[str]) -> set[str]:
        """Which of `rooms` are private: one BatchGetItem per 100."""
        keys = [{"pk": {"S": ROOM_PREFIX + room}, "sk": {"S": META_SK}} for room in rooms]
        items = self._table.batch_get(keys, ProjectionExpression="pk")
        return {item["pk"]["S"][len(ROOM_PREFIX) :] for item in items}

    def having(self, room: str, users: list[str]) -> set[str]:
        """Which of `users` (at most 100) have `room` among theirs: one BatchGetItem."""
        keys = [_person_room_key(user, room) for user in dict.fromkeys(users)][:100]
        items = self._table.batch_get(keys, ProjectionExpression="pk")
        return {item["pk"]["S"][len(USER_PREFIX) :] for item in items}

    def create(self, room: str, owner: str, dm: bool = False) -> bool:
        """Make `room` private with this owner; False when it already has terms."""
        try:
            self._table.put(
                {
                    "pk": {"S": ROOM_PREFIX + room},
                    "sk": {"S": META_SK},
                    "private": {"BOOL": True},
                    "dm": {"BOOL": dm},
                    "owner": {"S": owner},
                    "created_at": {"N": str(int(self._clock() * 1000))},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ConditionFailed:
            return False
        return True

    # A person's rooms ----------------------------------------------------------------

    def rooms_of(self, user: str) -> tuple[list[PersonRoom], list[str]]:
        """A person's rooms and live connections: one Query of their partition."""
        rooms: list[PersonRoom] = []
        connections: list[str] = []
        now = self._clock()
        for item in self._partition(user):
            sk = item["sk"]["S"]
            if sk.startswith(ROOM_PREFIX):
                rooms.append(_person_room(sk[len(ROOM_PREFIX) :], item))
            elif sk.startswith(CONN_PREFIX) and int(item["expires_at"]["N"]) > now:
                connections.append(sk[len(CONN_PREFIX) :])
        return rooms, connections

    def room_of(self, user: str, room: str) -> PersonRoom | None:
        item = self._table.get(_person_room_key(user, room), ConsistentRead=True)
        return None if item is None else _person_room(room, item)

    def add(self, user: str, entry: PersonRoom) -> None:
        """Give a person a room; a read marker they have already is kept."""
        values: dict[str, Any] = {
            ":p": {"BOOL": entry.private},
            ":d": {"BOOL": entry.dm},
            ":peer": {"S": entry.peer},
            ":t": {"N": str(int(self._clock() * 1000))},
        }
        names = {"#p": "private", "#d": "dm", "#peer": "peer", "#t": "added_at"}
        update = "SET #p = :p, #d = :d, #peer = :peer, #t = if_not_exists(#t, :t)"
        if entry.read:
            update += ", #r = if_not_exists(#r, :read)"
            values[":read"] = {"S": entry.read}
            names["#r"] = "read"
        self._table.update(
            _person_room_key(user, entry.room),
            UpdateExpression=update,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def remove(self, user: str, room: str) -> None:
        self._table.delete(_person_room_key(user, room))

    def mark_read(self, user: str, room: str, message_id: str) -> bool:
        """Move the person's marker forward to `message_id`; False if it is not their room
        (a marker further on stays where it is, and is no failure)."""
        try:
            self._table.update(
                _person_room_key(user, room),
                UpdateExpression="SET #r = :id",
                ConditionExpression="attribute_exists(pk) AND "
                "(attribute_not_exists(#r) OR #r < :id)",
                ExpressionAttributeNames={"#r": "read"},
                ExpressionAttributeValues={":id": {"S": message_id}},
            )
        except ConditionFailed:
            return self.room_of(user, room) is not None
        return True

    # A person's connections ----------------------------------------------------------

    def add_connection(self, user: str, connection_id: str, expires_at: int) -> None:
        """A live tab, and the mark that `user` has signed in (what `known` finds even
        after every room is gone): one BatchWriteItem."""
        pk = {"S": USER_PREFIX + user}
        self._table.batch_put(
            [
                {
                    "pk": pk,
                    "sk": {"S": CONN_PREFIX + connection_id},
                    "expires_at": {"N": str(expires_at)},
                },
                {"pk": pk, "sk": {"S": SEEN_SK}, "at": {"N": str(int(self._clock() * 1000))}},
            ]
        )

    def remove_connection(self, user: str, connection_id: str) -> None:
        self._table.delete(
            {"pk": {"S": USER_PREFIX + user}, "sk": {"S": CONN_PREFIX + connection_id}}
        )

    def known(self, user: str) -> bool:
        """Whether `user` has signed in to this chat at least once: any item in their
        partition (SEEN, a room, a tab), one Query with Limit 1. Only such a person may
        be invited or sent a DM, so a mistyped name creates nothing."""
        found = self._table.query_page(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": USER_PREFIX + user}},
            ProjectionExpression="pk",
            ConsistentRead=True,
            Limit=1,
        )
        return bool(found)

    # Unread counts -------------------------------------------------------------------

    def unread(self, room: str, read: str, user: str, dm: bool = False) -> Unread:
        """Messages after the marker, not the person's own nor deleted: one Query, newest
        first, at most UNREAD_CAP items; `mentions` counts those whose `mentions` name the
        user (in a DM, every one of them)."""
        condition = "pk = :pk"
        values: dict[str, Any] = {":pk": {"S": HISTORY_PREFIX + room}}
        if read:
            condition += " AND sk > :read"
            values[":read"] = {"S": read}
        found = self._table.query_page(
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ExpressionAttributeNames={"#u": "user"},
            ProjectionExpression="sk, #u, mentions, deleted, expires_at",
            ScanIndexForward=False,
            ConsistentRead=True,
            Limit=UNREAD_CAP,
        )
        now = self._clock()
        items = [i for i in found if int(i["expires_at"]["N"]) > now]
        last = items[0]["sk"]["S"] if items else (read or None)
        theirs = [
            i
            for i in items
            if (i.get("user", {}).get("S") != user or not user)
            and not i.get("deleted", {}).get("BOOL")
        ]
        mentions = sum(
            1 for i in theirs if user and (dm or user in i.get("mentions", {}).get("SS", []))
        )
        return Unread(len(theirs), mentions, last)

    def _partition(self, user: str) -> Iterator[Item]:
        return self._table.query(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": USER_PREFIX + user}},
            ConsistentRead=True,
        )


def _person_room_key(user: str, room: str) -> dict[str, Any]:
    return {"pk": {"S": USER_PREFIX + user}, "sk": {"S": ROOM_PREFIX + room}}


def _person_room(room: str, item: dict[str, Any]) -> PersonRoom:
    return PersonRoom(
        room=room,
        private=item.get("private", {}).get("BOOL", False),
        dm=item.get("dm", {}).get("BOOL", False),
        peer=item.get("peer", {}).get("S", ""),
        read=item.get("read", {}).get("S", ""),
    )


def _terms(room: str, item: dict[str, Any]) -> RoomTerms:
    return RoomTerms(
        room=room,
        private=item.get("private", {}).get("BOOL", True),
        dm=item.get("dm", {}).get("BOOL", False),
        owner=item.get("owner", {}).get("S", ""),
    )
