"""Connections: who is connected, their current room and rooms, and their rate limits.

| item        | pk          | sk           | attributes                                            |
| ----------- | ----------- | ------------ | ----------------------------------------------------- |
| connection  | CONN#{id}   | CONNECTION   | nick, room (current), rooms (all), connected_at, ip,  |
|             |             |              | expires_at, slot, user, confirmed, tat, jtat, ytat    |
|             |             |              | (limits), admin, kicked (rooms it may not rejoin)     |

A connection has a membership (chalicelib/store/rooms.py) in each of its
`rooms`; a signed-in person's rooms are also stored per person
(chalicelib/store/memberships.py), and every connection of theirs subscribes
to all of them. Its nickname and address slot are claims
(chalicelib/store/claims.py), claimed before the connection is written.
Pending and confirmed: chalicelib/store/lifetime.py.

No transactions: every change is a sequence of single-item conditional
writes, ordered so that an interruption leaves a harmless state and safe to
repeat. Deleting an item returns its old attributes to exactly one caller,
so a departure is announced once.

Request counts: a frame's token and the connection are one UpdateItem
(`admit`, two when the burst is in use); subscribing a signed-in person's
stored rooms one BatchWriteItem per 25 and one UpdateItem.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import Any

from chalicelib import limits
from chalicelib.store import rates
from chalicelib.store.claims import Claims
from chalicelib.store.lifetime import Lifetime
from chalicelib.store.rooms import Departure, Member, Rooms
from chalicelib.store.table import ConditionFailed, Item, Table
from chalicelib.text import nick_key

CONNECTION_SK = "CONNECTION"


@dataclass(frozen=True)
class Connection:
    id: str
    nick: str
    room: str
    connected_at: int
    expires_at: int
    ip: str = ""
    slot: int | None = None
    confirmed: bool = True
    user: str = ""  # the Cognito username, when signed in
    # Every room it receives (`room`, the current one, among them).
    rooms: frozenset[str] = frozenset()
    admin: bool = False  # in the Cognito group that moderates every room
    kicked: frozenset[str] = frozenset()  # rooms a guest was kicked from (moderation.py)

    def member(self, room: str) -> Member:
        """Its membership of `room`."""
        return Member(
            room, self.id, self.nick, self.connected_at, self.expires_at, self.confirmed, self.user
        )


class ConnectionChanged(Exception):
    """The connection changed (or went) while we acted on an older copy of it."""


def _conn_key(connection_id: str) -> Item:
    return {"pk": {"S": f"CONN#{connection_id}"}, "sk": {"S": CONNECTION_SK}}


def _connection(connection_id: str, item: Item) -> Connection:
    slot = item.get("slot")
    return Connection(
        id=connection_id,
        nick=item["nick"]["S"],
        room=item["room"]["S"],
        connected_at=int(item["connected_at"]["N"]),
        expires_at=int(item["expires_at"]["N"]),
        ip=item.get("ip", {}).get("S", ""),
        slot=None if slot is None else int(slot["N"]),
        confirmed=item.get("confirmed", {}).get("BOOL", True),
        user=item.get("user", {}).get("S", ""),
        rooms=frozenset(item.get("rooms", {}).get("SS", [])) | {item["room"]["S"]},
        admin=item.get("admin", {}).get("BOOL", False),
        kicked=frozenset(item.get("kicked", {}).get("SS", [])),
    )


def _connection_item(conn: Connection) -> Item:
    item = {
        **_conn_key(conn.id),
        "nick": {"S": conn.nick},
        "room": {"S": conn.room},
        "connected_at": {"N": str(conn.connected_at)},
        "expires_at": {"N": str(conn.expires_at)},
        "ip": {"S": conn.ip},
        "confirmed": {"BOOL": conn.confirmed},
        "user": {"S": conn.user},
        "admin": {"BOOL": conn.admin},
    }
    if conn.slot is not None:
        item["slot"] = {"N": str(conn.slot)}
    item["rooms"] = {"SS": sorted(conn.rooms | {conn.room})}
    return item


class Connections:
    """Connection items, kept in step with their memberships and claims."""

    def __init__(self, table: Table, lifetime: Lifetime, rooms: Rooms, claims: Claims) -> None:
        self._table = table
        self._lifetime = lifetime
        self._rooms = rooms
        self._claims = claims

    def add(
        self,
        connection_id: str,
        nick: str,
        room: str,
        ip: str = "",
        slot: int | None = None,
        connected_at: int | None = None,
        confirmed: bool = False,
        user: str = "",
        admin: bool = False,
    ) -> Connection:
        """The connection and its membership (its nickname and slot are claimed first)."""
        conn = Connection(
            id=connection_id,
            nick=nick,
            room=room,
            connected_at=self._lifetime.now_ms() if connected_at is None else connected_at,
            expires_at=self._lifetime.expiry(confirmed),
            ip=ip,
            slot=slot,
            confirmed=confirmed,
            user=user,
            rooms=frozenset({room}),
            admin=admin,
        )
        # Membership first: a connection item never points at a room it is not in.
        self._rooms.add_member(conn.member(room))
        self._table.put(_connection_item(conn))
        self._rooms.touch(room, +1 if confirmed else 0)
        return conn

    def admit(self, connection_id: str, rate: limits.Rate) -> Connection | None:
        """Take a frame token and read the connection, in one request when it can.

        The connection as it was (so `confirmed` says whether this is its first
        frame); None when there is no connection item. RateLimited when the
        frame is over the limit. The frame also confirms the connection.
        """
        old = rates.take(
            self._table,
            _conn_key(connection_id),
            "tat",
            rate,
            self._lifetime.now_ms(),
            "confirmed = :yes, expires_at = :expires",
            {":yes": {"BOOL": True}, ":expires": {"N": str(self._lifetime.expiry(True))}},
        )
        return None if old is None else _connection(connection_id, old)

    def admit_join(self, conn: Connection, rate: limits.Rate) -> None:
        """Take a room-change token; RateLimited when over the quota."""
        rates.take(self._table, _conn_key(conn.id), "jtat", rate, self._lifetime.now_ms())

    def admit_typing(self, conn: Connection, rate: limits.Rate) -> None:
        """Take a typing token (chalicelib/conversation.py); RateLimited when it has none."""
        rates.take(self._table, _conn_key(conn.id), "ytat", rate, self._lifetime.now_ms())

    def keep_out(self, connection_id: str, room: str) -> None:
        """A kicked guest's connection may not join `room` again (chalicelib/moderation.py)."""
        with contextlib.suppress(ConditionFailed):  # gone: nothing to keep out
            self._table.update(
                _conn_key(connection_id),
                UpdateExpression="ADD kicked :room",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":room": {"SS": [room]}},
            )

    def confirm(self, conn: Connection) -> int:
        """Make a pending connection's membership and slot confirmed (its nickname is
        claimed, confirmed, first); return the room's confirmed members."""
        if conn.slot is not None:
            self._claims.confirm_slot(conn.ip, conn.slot, conn.id)
        confirmed = replace(conn, confirmed=True, expires_at=self._lifetime.expiry(True))
        self._rooms.add_member(confirmed.member(conn.room))
        others = sorted(conn.rooms - {conn.room})
        if others:
            self._rooms.add_members([confirmed.member(room) for room in others])
            for room in others:
                self._rooms.touch(room, +1)
        return self._rooms.touch(conn.room, +1)

    def get(self, connection_id: str, include_expired: bool = False) -> Connection | None:
        item = self._table.get(_conn_key(connection_id), ConsistentRead=True)
        if item is None:
            return None
        conn = _connection(connection_id, item)
        if not include_expired and self._lifetime.expired(conn.expires_at):
            return None
        return conn

    def subscribe(self, conn: Connection, room: str, current: bool = True) -> Connection:
        """Add `room` to the connection's rooms (whose nickname the caller has claimed),
        and make it the current one; ConnectionChanged if `conn` is no longer current."""
        joined = replace(conn, room=room if current else conn.room, rooms=conn.rooms | {room})
        self._rooms.add_member(joined.member(room))
        try:
            self._update_if_current(
                conn,
                "SET room = :new ADD rooms :added",
                {":new": {"S": joined.room}, ":added": {"SS": [room]}},
            )
        except ConnectionChanged:
            current_conn = self.get(conn.id, include_expired=True)
            if current_conn is None or room not in current_conn.rooms:
                self._rooms.remove_member(room, conn.id)
                self._claims.release_nick(room, conn.nick, conn.id)
            raise
        if room not in conn.rooms and conn.confirmed:
            self._rooms.touch(room, +1)
        return joined

    def subscribe_many(self, conn: Connection, rooms: list[str]) -> Connection:
        """Subscribe to a signed-in person's stored rooms, in batch writes of 25: a person
        with 50 rooms costs three requests, not fifty."""
        added = [room for room in rooms if room not in conn.rooms]
        if not added:
            return conn
        self._rooms.add_members([conn.member(room) for room in added])
        try:
            self._table.update(
                _conn_key(conn.id),
                UpdateExpression="ADD rooms :added",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":added": {"SS": added}},
            )
        except ConditionFailed:
            # Gone meanwhile: its first send answers 410 and evicts what was written.
            return conn
        if conn.confirmed:
            for room in added:
                self._rooms.touch(room, +1)
        return replace(conn, rooms=conn.rooms | set(added))

    def unsubscribe(self, conn: Connection, room: str) -> tuple[Connection, Departure | None]:
        """Take `room` from the connection's rooms (the current one moves to another);
        the departure from it, if this call removed the membership."""
        rooms = conn.rooms - {room}
        current = conn.room if conn.room != room else min(rooms, default=conn.room)
        self._update_if_current(
            conn,
            "SET room = :new DELETE rooms :gone",
            {":new": {"S": current}, ":gone": {"SS": [room]}},
        )
        left = replace(conn, room=current, rooms=rooms)
        member = self._rooms.remove_member(room, conn.id)
        if member is None:
            return left, None
        count = self._rooms.touch(room, -1) if member.confirmed else None
        return left, Departure(member, count)

    def set_current(self, conn: Connection, room: str) -> Connection:
        self._update_if_current(conn, "SET room = :new", {":new": {"S": room}})
        return replace(conn, room=room)

    def rename(self, conn: Connection, nick: str) -> Connection:
        """Change the nickname, which the caller has claimed in the room (and frees
        the old one); ConnectionChanged if `conn` is no longer current."""
        try:
            self._update_if_current(conn, "SET nick = :new", {":new": {"S": nick}})
        except ConnectionChanged:
            if nick_key(nick) != nick_key(conn.nick):
                self._claims.release_nick(conn.room, nick, conn.id)
            raise
        for room in sorted(conn.rooms | {conn.room}):
            self._rooms.rename_member(room, conn.id, nick)
        return replace(conn, nick=nick)

    def remove(self, connection_id: str, room_hint: str | None = None) -> list[Departure]:
        """Delete a connection and what it holds but its nicknames: a departure from
        each of its rooms; none when it was already gone.

        Safe to call twice or concurrently: only one caller gets the departures,
        so a departure is announced once; that caller then frees the nicknames
        (`release_nick`). `room_hint` cleans a membership whose connection item
        is already gone (TTL deletes the two independently).
        """
        try:
            old = self._table.delete(
                _conn_key(connection_id),
                ConditionExpression="attribute_exists(pk)",
                ReturnValues="ALL_OLD",
            )
        except ConditionFailed:
            member = (
                None if room_hint is None else self._rooms.remove_member(room_hint, connection_id)
            )
            members = [] if member is None else [member]
        else:
            conn = _connection(connection_id, old)
            if conn.slot is not None:
                self._claims.release_slot(conn.ip, conn.slot, connection_id)
            members = [
                conn.member(room)
                for room in sorted(conn.rooms | {conn.room}, key=lambda r: r != conn.room)
            ]
            for member in members:
                self._rooms.remove_member(member.room, connection_id)
        return [
            Departure(m, self._rooms.touch(m.room, -1) if m.confirmed else None) for m in members
        ]

    def _update_if_current(self, conn: Connection, expression: str, values: dict[str, Any]) -> None:
        """Update the connection item only if it still is what `conn` says."""
        try:
            self._table.update(
                _conn_key(conn.id),
                UpdateExpression=expression,
                ConditionExpression="room = :room AND nick = :nick",
                ExpressionAttributeValues={
                    ":room": {"S": conn.room},
                    ":nick": {"S": conn.nick},
                    **values,
                },
            )
        except ConditionFailed as failed:
            raise ConnectionChanged from failed
