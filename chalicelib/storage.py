"""DynamoDB storage of connections, memberships, nicknames, history, rooms and address slots.

One table (defined once, in .chalice/resources.json), keys `pk` and `sk`:

| item        | pk          | sk           | attributes                                            |
| ----------- | ----------- | ------------ | ----------------------------------------------------- |
| connection  | CONN#{id}   | CONNECTION   | nick, room (current), rooms (all), connected_at, ip,  |
|             |             |              | expires_at, slot, user, confirmed, tat, jtat, ytat    |
|             |             |              | (limits), admin, kicked (rooms it may not rejoin)     |
| membership  | ROOM#{room} | MEMBER#{id}  | nick, connected_at, expires_at, confirmed, user       |
| nickname    | ROOM#{room} | NICK#{key}   | connection, connected_at, nick, claimed_at,           |
|             |             |              | confirmed, user, expires_at                           |
| message     | HIST#{room} | {ulid}       | from, text, ts, conn, user, verified, expires_at,     |
|             |             |              | mentions, attachment (key, name, size, type, width,   |
|             |             |              | height); edits, reactions: chalicelib/messages.py     |
| room        | ROOMS       | {room}       | members (confirmed members), expires_at               |
| address     | IP#{ip}     | SLOT#{n}     | connection, expires_at                                |

A membership is a subscription: a connection has one in each of its `rooms`
(a signed-in person's rooms are also stored per person, chalicelib/memberships.py,
and every connection of theirs subscribes to all of them). A room's members and
nicknames are one partition, so a broadcast is one
strongly consistent Query (never a Scan); its history is another, so that
reading members never wades through messages. `expires_at` drives DynamoDB's
TTL; TTL deletes lag by hours, so every read drops expired items itself.

Pending and confirmed. `$connect` writes its items as pending: they expire
with API Gateway's 10-minute idle timeout, a pending member receives
broadcasts but is never listed, counted or announced, and a pending nickname
may be taken by another connection after 30 s. The connection's first frame
proves it is open and confirms them. So a `$connect` that failed after (or
while) writing, its writes landing late, leaves no ghost anyone sees.

Nicknames are unique in a room by `chalicelib.text.nick_key`, claimed with a
conditional put; a signed-in user's (`user`, the Cognito username) is theirs in
every tab they open. Leaving, moving and renaming never free the old name: the
caller frees it (`release_nick`) once the room has been told, so nobody is
announced under a name before its last holder's departure. Addresses have
`connections_per_ip` slots, claimed the same way; a slot whose connection
vanished without `$disconnect` frees itself when it expires, so an address is
never locked out past the connection TTL.

No transactions: every change is a sequence of single-item conditional
writes, ordered so that an interruption leaves a harmless state and safe to
repeat. Deleting an item returns its old attributes to exactly one caller,
so a departure is announced once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import limits
from chalicelib.attachments import Attachment
from chalicelib.ids import new_message_id
from chalicelib.memberships import Memberships, Unread
from chalicelib.messages import (
    HISTORY_PREFIX,
    MessageChanges,
    attachment_item,
    attachment_of,
    view,
)
from chalicelib.roles import Roles
from chalicelib.settings import Settings
from chalicelib.text import nick_key

CONNECTION_SK = "CONNECTION"
ROOMS_PK = "ROOMS"
MEMBER_PREFIX = "MEMBER#"
NICK_PREFIX = "NICK#"
ADDRESS_PREFIX = "IP#"
SLOT_PREFIX = "SLOT#"

# API Gateway closes a connection that sends nothing for 10 minutes: a connection
# still pending after this long never opened, or has gone.
PENDING_TTL_SECONDS = 11 * 60
# After this long a pending connection's nickname may be claimed by another.
PENDING_CLAIM_MS = 30_000


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


class ConnectionChanged(Exception):
    """The connection changed (or went) while we acted on an older copy of it."""


class NickTaken(Exception):
    """Another connection of the room holds a nickname that clashes with this one:
    `holder`, connected at `holder_connected_at` (ms), confirmed or still pending."""

    def __init__(
        self,
        nick: str,
        room: str = "",
        holder: str = "",
        holder_connected_at: int = 0,
        holder_confirmed: bool = False,
    ) -> None:
        super().__init__(f"{nick} is taken in {room}" if room else nick)
        self.nick = nick
        self.room = room
        self.holder = holder
        self.holder_connected_at = holder_connected_at
        self.holder_confirmed = holder_confirmed


class AddressFull(Exception):
    """The source address holds its `connections_per_ip` connections already."""


class RateLimited(Exception):
    def __init__(self, retry_after_ms: int) -> None:
        super().__init__(f"retry after {retry_after_ms} ms")
        self.retry_after_ms = retry_after_ms


class IdInUse(Exception):
    """A client-chosen message id that another message already has."""


def _conn_key(connection_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"CONN#{connection_id}"}, "sk": {"S": CONNECTION_SK}}


def _member_key(room: str, connection_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"ROOM#{room}"}, "sk": {"S": MEMBER_PREFIX + connection_id}}


def _nick_key(room: str, nick: str) -> dict[str, Any]:
    return {"pk": {"S": f"ROOM#{room}"}, "sk": {"S": NICK_PREFIX + nick_key(nick)}}


def _slot_key(ip: str, slot: int) -> dict[str, Any]:
    return {"pk": {"S": ADDRESS_PREFIX + ip}, "sk": {"S": f"{SLOT_PREFIX}{slot}"}}


def _room_key(room: str) -> dict[str, Any]:
    return {"pk": {"S": ROOMS_PK}, "sk": {"S": room}}


def _is_condition_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def iso_timestamp(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


class ChatStore:
    """The chat's state in one DynamoDB table, through a low-level boto3 client."""

    def __init__(
        self, client: Any, settings: Settings, clock: Callable[[], float] = time.time
    ) -> None:
        self._client = client
        self._table = settings.table_name
        self._settings = settings
        self._clock = clock
        self.people = Memberships(client, settings.table_name, clock)
        self.messages = MessageChanges(client, settings.table_name, clock)
        self.roles = Roles(client, settings.table_name, clock)

    def unread(self, room: str, read: str, user: str, dm: bool = False) -> Unread:
        return self.people.unread(room, read, user, HISTORY_PREFIX + room, dm)

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _expiry(self, confirmed: bool) -> int:
        lifetime = self._settings.connection_ttl_seconds if confirmed else PENDING_TTL_SECONDS
        return self.now_ms() // 1000 + lifetime

    # Addresses ---------------------------------------------------------------------

    def claim_slot(self, ip: str, connection_id: str) -> int:
        """One of the address's slots for this connection; AddressFull when none is free."""
        now = self.now_ms() // 1000
        held = {
            int(item["sk"]["S"][len(SLOT_PREFIX) :])
            for item in self._query(
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": ADDRESS_PREFIX + ip}},
                ConsistentRead=True,
            )
            if int(item["expires_at"]["N"]) > now
        }
        for slot in (n for n in range(self._settings.connections_per_ip) if n not in held):
            try:
                self._client.put_item(
                    TableName=self._table,
                    Item={
                        **_slot_key(ip, slot),
                        "connection": {"S": connection_id},
                        "expires_at": {"N": str(self._expiry(confirmed=False))},
                    },
                    ConditionExpression="attribute_not_exists(pk) OR expires_at <= :now",
                    ExpressionAttributeValues={":now": {"N": str(now)}},
                )
            except ClientError as error:
                if not _is_condition_failure(error):
                    raise
                continue  # taken meanwhile: try the next
            return slot
        raise AddressFull()

    def release_slot(self, ip: str, slot: int, connection_id: str) -> None:
        self._delete_if_held(_slot_key(ip, slot), connection_id)

    # Nicknames ---------------------------------------------------------------------

    def claim_nick(
        self,
        room: str,
        nick: str,
        connection_id: str,
        connected_at: int,
        confirmed: bool,
        user: str = "",
    ) -> None:
        """Hold `nick` in `room` for this connection (connected at `connected_at`, ms);
        NickTaken when another holds a clash. A signed-in `user` takes their own name
        over from another tab of theirs."""
        now_ms = self.now_ms()
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    **_nick_key(room, nick),
                    "connection": {"S": connection_id},
                    "connected_at": {"N": str(connected_at)},
                    "nick": {"S": nick},
                    "claimed_at": {"N": str(now_ms)},
                    "confirmed": {"BOOL": confirmed},
                    "user": {"S": user},
                    "expires_at": {"N": str(self._expiry(confirmed))},
                },
                ConditionExpression=(
                    "attribute_not_exists(pk) OR expires_at <= :now OR #c = :me "
                    "OR (confirmed = :pending AND claimed_at < :stale) OR #u = :user"
                ),
                ExpressionAttributeNames={"#c": "connection", "#u": "user"},
                ExpressionAttributeValues={
                    ":now": {"N": str(now_ms // 1000)},
                    ":me": {"S": connection_id},
                    ":pending": {"BOOL": False},
                    ":stale": {"N": str(now_ms - PENDING_CLAIM_MS)},
                    # A user that is never anyone's: "" must not match guests' "".
                    ":user": {"S": user or f"guest {connection_id}"},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if _is_condition_failure(error):
                held = error.response.get("Item") or {}
                raise NickTaken(
                    nick,
                    room,
                    held.get("connection", {}).get("S", ""),
                    int(held.get("connected_at", {}).get("N", "0")),
                    held.get("confirmed", {}).get("BOOL", False),
                ) from error
            raise

    def release_nick(self, room: str, nick: str, connection_id: str) -> None:
        self._delete_if_held(_nick_key(room, nick), connection_id)

    # Connections -------------------------------------------------------------------

    def add_connection(
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
            connected_at=self.now_ms() if connected_at is None else connected_at,
            expires_at=self._expiry(confirmed),
            ip=ip,
            slot=slot,
            confirmed=confirmed,
            user=user,
            rooms=frozenset({room}),
            admin=admin,
        )
        # Membership first: a connection item never points at a room it is not in.
        self._put(self._member_item(conn))
        self._put(self._connection_item(conn))
        self._touch_room(room, +1 if confirmed else 0)
        return conn

    def admit(self, connection_id: str, rate: limits.Rate) -> Connection | None:
        """Take a frame token and read the connection, in one request when it can.

        The connection as it was (so `confirmed` says whether this is its first
        frame); None when there is no connection item. RateLimited when the
        frame is over the limit. The frame also confirms the connection.
        """
        return self._take(
            _conn_key(connection_id),
            "tat",
            rate,
            "confirmed = :yes, expires_at = :expires",
            {":yes": {"BOOL": True}, ":expires": {"N": str(self._expiry(confirmed=True))}},
            lambda item: self._connection(connection_id, item),
        )

    def admit_join(self, conn: Connection, rate: limits.Rate) -> None:
        """Take a room-change token; RateLimited when over the quota."""
        self._take(_conn_key(conn.id), "jtat", rate, "", {}, lambda item: None)

    def admit_typing(self, conn: Connection, rate: limits.Rate) -> None:
        """Take a typing token (chalicelib/conversation.py); RateLimited when it has none."""
        self._take(_conn_key(conn.id), "ytat", rate, "", {}, lambda item: None)

    def keep_out(self, connection_id: str, room: str) -> None:
        """A kicked guest's connection may not join `room` again (chalicelib/moderation.py)."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_conn_key(connection_id),
                UpdateExpression="ADD kicked :room",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":room": {"SS": [room]}},
            )
        except ClientError as error:
            if not _is_condition_failure(error):
                raise

    def confirm(self, conn: Connection) -> int:
        """Make a pending connection's membership and slot confirmed (its nickname is
        claimed, confirmed, first); return the room's confirmed members."""
        expires = {":expires": {"N": str(self._expiry(confirmed=True))}}
        if conn.slot is not None:
            self._update_if_held(
                _slot_key(conn.ip, conn.slot), conn.id, "SET expires_at = :expires", expires
            )
        confirmed = replace(conn, confirmed=True, expires_at=self._expiry(confirmed=True))
        self._put(self._member_item(confirmed))
        others = sorted(conn.rooms - {conn.room})
        if others:
            self._write_members(confirmed, others)
            for room in others:
                self._touch_room(room, +1)
        return self._touch_room(conn.room, +1)

    def get_connection(
        self, connection_id: str, include_expired: bool = False
    ) -> Connection | None:
        item = self._client.get_item(
            TableName=self._table, Key=_conn_key(connection_id), ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        conn = self._connection(connection_id, item)
        if not include_expired and self._expired(conn.expires_at):
            return None
        return conn

    def subscribe(self, conn: Connection, room: str, current: bool = True) -> Connection:
        """Add `room` to the connection's rooms (whose nickname the caller has claimed),
        and make it the current one; ConnectionChanged if `conn` is no longer current."""
        joined = replace(conn, room=room if current else conn.room, rooms=conn.rooms | {room})
        self._put(self._member_item(replace(joined, room=room)))
        try:
            self._update_connection(
                conn,
                "SET room = :new ADD rooms :added",
                {":new": {"S": joined.room}, ":added": {"SS": [room]}},
            )
        except ConnectionChanged:
            current_conn = self.get_connection(conn.id, include_expired=True)
            if current_conn is None or room not in current_conn.rooms:
                self._delete(_member_key(room, conn.id))
                self.release_nick(room, conn.nick, conn.id)
            raise
        if room not in conn.rooms and conn.confirmed:
            self._touch_room(room, +1)
        return joined

    def subscribe_many(self, conn: Connection, rooms: list[str]) -> Connection:
        """Subscribe to a signed-in person's stored rooms, in batch writes of 25: a person
        with 50 rooms costs three requests, not fifty."""
        added = [room for room in rooms if room not in conn.rooms]
        if not added:
            return conn
        self._write_members(conn, added)
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_conn_key(conn.id),
                UpdateExpression="ADD rooms :added",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":added": {"SS": added}},
            )
        except ClientError as error:
            if not _is_condition_failure(error):
                raise
            # Gone meanwhile: its first send answers 410 and evicts what was written.
            return conn
        if conn.confirmed:
            for room in added:
                self._touch_room(room, +1)
        return replace(conn, rooms=conn.rooms | set(added))

    def _write_members(self, conn: Connection, rooms: list[str]) -> None:
        """The connection's memberships of `rooms`, 25 to a batch write."""
        items = [self._member_item(replace(conn, room=room)) for room in rooms]
        for start in range(0, len(items), 25):
            batch = items[start : start + 25]
            request: Any = {self._table: [{"PutRequest": {"Item": item}} for item in batch]}
            while request:
                response = self._client.batch_write_item(RequestItems=request)
                request = response.get("UnprocessedItems")

    def unsubscribe(self, conn: Connection, room: str) -> tuple[Connection, Departure | None]:
        """Take `room` from the connection's rooms (the current one moves to another);
        the departure from it, if this call removed the membership."""
        rooms = conn.rooms - {room}
        current = conn.room if conn.room != room else min(rooms, default=conn.room)
        self._update_connection(
            conn,
            "SET room = :new DELETE rooms :gone",
            {":new": {"S": current}, ":gone": {"SS": [room]}},
        )
        left = replace(conn, room=current, rooms=rooms)
        old = self._delete(_member_key(room, conn.id))
        if old is None:
            return left, None
        member = self._member(room, old)
        count = self._touch_room(room, -1) if member.confirmed else None
        return left, Departure(member, count)

    def set_current(self, conn: Connection, room: str) -> Connection:
        self._update_connection(conn, "SET room = :new", {":new": {"S": room}})
        return replace(conn, room=room)

    def rename(self, conn: Connection, nick: str) -> Connection:
        """Change the nickname, which the caller has claimed in the room (and frees
        the old one); ConnectionChanged if `conn` is no longer current."""
        try:
            self._update_connection(conn, "SET nick = :new", {":new": {"S": nick}})
        except ConnectionChanged:
            if nick_key(nick) != nick_key(conn.nick):
                self.release_nick(conn.room, nick, conn.id)
            raise
        for room in sorted(conn.rooms | {conn.room}):
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key=_member_key(room, conn.id),
                    UpdateExpression="SET nick = :new",
                    ConditionExpression="attribute_exists(pk)",
                    ExpressionAttributeValues={":new": {"S": nick}},
                )
            except ClientError as error:
                if not _is_condition_failure(error):
                    raise  # a membership already cleaned away stays away
        return replace(conn, nick=nick)

    def remove_connection(
        self, connection_id: str, room_hint: str | None = None
    ) -> list[Departure]:
        """Delete a connection and what it holds but its nicknames: a departure from
        each of its rooms; none when it was already gone.

        Safe to call twice or concurrently: only one caller gets the departures,
        so a departure is announced once; that caller then frees the nicknames
        (`release_nick`). `room_hint` cleans a membership whose connection item
        is already gone (TTL deletes the two independently).
        """
        old = self._delete(_conn_key(connection_id))
        if old is not None:
            conn = self._connection(connection_id, old)
            if conn.slot is not None:
                self.release_slot(conn.ip, conn.slot, connection_id)
            members = [
                Member(
                    room,
                    conn.id,
                    conn.nick,
                    conn.connected_at,
                    conn.expires_at,
                    conn.confirmed,
                    conn.user,
                )
                for room in sorted(conn.rooms | {conn.room}, key=lambda r: r != conn.room)
            ]
            for member in members:
                self._delete(_member_key(member.room, connection_id))
        elif room_hint is not None:
            item = self._delete(_member_key(room_hint, connection_id))
            if item is None:
                return []
            members = [self._member(room_hint, item)]
        else:
            return []
        return [
            Departure(m, self._touch_room(m.room, -1) if m.confirmed else None) for m in members
        ]

    # Rooms -------------------------------------------------------------------------

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
        for item in self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={
                ":pk": {"S": f"ROOM#{room}"},
                ":prefix": {"S": MEMBER_PREFIX},
            },
            ConsistentRead=True,
            **pages,
        ):
            member = self._member(room, item)
            (expired if self._expired(member.expires_at) else live).append(member)
            if at_most is not None and len(live) > at_most:
                return None
        return live, expired

    def room_count(self, room: str) -> int:
        """The room's confirmed members, as its room item counts them."""
        item = self._client.get_item(
            TableName=self._table, Key=_room_key(room), ConsistentRead=True
        ).get("Item")
        return int(item.get("members", {"N": "0"})["N"]) if item else 0

    def correct_count(self, room: str, count: int) -> None:
        """Set the room's count to what a full read of its members found."""
        self._client.update_item(
            TableName=self._table,
            Key=_room_key(room),
            UpdateExpression="SET members = :n",
            ExpressionAttributeValues={":n": {"N": str(count)}},
        )

    def rooms(self, limit: int = 100) -> list[tuple[str, int]]:
        """The `limit` rooms with the most confirmed members: one Query of the room items."""
        rooms = [
            (item["sk"]["S"], int(item["members"]["N"]))
            for item in self._query(
                KeyConditionExpression="pk = :pk",
                FilterExpression="expires_at > :now AND members > :zero",
                ExpressionAttributeValues={
                    ":pk": {"S": ROOMS_PK},
                    ":now": {"N": str(self.now_ms() // 1000)},
                    ":zero": {"N": "0"},
                },
            )
        ]
        rooms.sort(key=lambda room: (-room[1], room[0]))
        return rooms[:limit]

    # Messages ----------------------------------------------------------------------

    def add_message(
        self,
        room: str,
        conn: Connection,
        text: str,
        message_id: str | None = None,
        mentions: list[str] | None = None,
        attachment: Attachment | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Store a message once: (the message, whether this call stored it).

        With the client's own `message_id`, sending again after `unavailable` never
        stores twice: the second call finds this connection's message and returns it.
        IdInUse when another connection's message has the id.
        """
        now_ms = self.now_ms()
        message = {
            "id": message_id or new_message_id(now_ms),
            "room": room,
            "from": conn.nick,
            "text": text,
            "ts": iso_timestamp(now_ms),
            **({"mentions": mentions} if mentions else {}),
            **({"verified": True} if conn.user else {}),
            **({"attachment": attachment.shown()} if attachment else {}),
        }
        expires_at = now_ms // 1000 + self._settings.history_retention_seconds
        item = {
            "pk": {"S": HISTORY_PREFIX + room},
            "sk": {"S": message["id"]},
            "from": {"S": conn.nick},
            "text": {"S": text},
            "ts": {"S": message["ts"]},
            "conn": {"S": conn.id},
            "user": {"S": conn.user},
            "verified": {"BOOL": bool(conn.user)},
            "expires_at": {"N": str(expires_at)},
        }
        if attachment is not None:
            item["attachment"] = {"M": attachment_item(attachment)}
        if mentions:
            item["mentions"] = {"SS": mentions}
        try:
            self._client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not _is_condition_failure(error):
                raise
            stored = error.response.get("Item") or {}
            if stored.get("conn", {}).get("S") != conn.id:
                raise IdInUse(message["id"]) from error
            return view(room, stored), False
        return message, True

    def history(
        self, room: str, limit: int, before: str | None = None
    ) -> tuple[list[dict[str, Any]], bool]:
        """Up to `limit` messages older than `before` (oldest first) and whether more exist."""
        condition = "pk = :pk"
        values: dict[str, Any] = {":pk": {"S": HISTORY_PREFIX + room}}
        if before is not None:
            condition += " AND sk < :before"
            values[":before"] = {"S": before}
        newest_first: list[dict[str, Any]] = []
        for item in self._query(
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ScanIndexForward=False,
            ConsistentRead=True,
            PaginationConfig={"PageSize": limit + 1},
        ):
            if self._expired(int(item["expires_at"]["N"])):
                break  # everything older expired too: retention is the same for all
            if len(newest_first) == limit:
                return newest_first[::-1], True
            newest_first.append(view(room, item))
        return newest_first[::-1], False

    def attachment(self, room: str, message_id: str) -> Attachment | None:
        """The attachment of a message of `room` still in its history, or None."""
        item = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": HISTORY_PREFIX + room}, "sk": {"S": message_id}},
            ConsistentRead=True,
        ).get("Item")
        if (
            item is None
            or self._expired(int(item["expires_at"]["N"]))
            or "attachment" not in item
            or item.get("deleted", {}).get("BOOL")  # a deleted message's file is gone with it
        ):
            return None
        return attachment_of(item["attachment"]["M"])

    # Helpers -----------------------------------------------------------------------

    def _take(
        self,
        key: dict[str, Any],
        attribute: str,
        rate: limits.Rate,
        also: str,
        also_values: dict[str, Any],
        read: Callable[[dict[str, Any]], Any],
    ) -> Any:
        """Take a token of the limit kept in `attribute` of the item at `key`, setting
        `also` in the same write; `read` of the item as it was, None if it is missing.

        GCRA moves the TAT to max(TAT, now) + interval. DynamoDB has no max, so
        one request covers each case, both atomic whatever else runs meanwhile:
        a TAT in the past (tokens to spare: one request, the usual case) is set
        to now + interval; a TAT ahead of now, within the burst's tolerance,
        is moved on by one interval. A TAT only grows, so once the first
        request found it ahead of now, the second's arithmetic is exact: frames
        of one connection handled at once never refuse each other spuriously.
        """
        now = self.now_ms()
        also_setting = f", {also}" if also else ""
        attempts = (
            (
                "attribute_exists(pk) AND (attribute_not_exists(#t) OR #t <= :now)",
                "SET #t = :tat",
                {":now": {"N": str(now)}, ":tat": {"N": str(limits.idle_tat(now, rate))}},
            ),
            (
                "attribute_exists(pk) AND #t <= :ceiling",
                "SET #t = #t + :interval",
                {
                    ":ceiling": {"N": str(now + rate.tolerance_ms)},
                    ":interval": {"N": str(rate.interval_ms)},
                },
            ),
        )
        for condition, update, values in attempts:
            try:
                response = self._client.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression=update + also_setting,
                    ConditionExpression=condition,
                    ExpressionAttributeNames={"#t": attribute},
                    ExpressionAttributeValues={**values, **also_values},
                    ReturnValues="ALL_OLD",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as error:
                if not _is_condition_failure(error):
                    raise
                item = error.response.get("Item")
                if item is None:
                    return None
                seen = int(item[attribute]["N"]) if attribute in item else None
                decision = limits.decide(seen, now, rate)
                if not decision.allowed:
                    raise RateLimited(decision.retry_after_ms) from error
                continue
            return read(response["Attributes"])
        raise RateLimited(rate.interval_ms)

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(TableName=self._table, **kwargs):
            yield from page["Items"]

    def _put(self, item: dict[str, Any]) -> None:
        self._client.put_item(TableName=self._table, Item=item)

    def _delete(self, key: dict[str, Any]) -> dict[str, Any] | None:
        """Delete an item; its old attributes, or None if it was not there.

        Of concurrent deletes of one item, exactly one gets the attributes.
        """
        try:
            response = self._client.delete_item(
                TableName=self._table,
                Key=key,
                ConditionExpression="attribute_exists(pk)",
                ReturnValues="ALL_OLD",
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return None
            raise
        return response["Attributes"]

    def _delete_if_held(self, key: dict[str, Any], connection_id: str) -> None:
        """Delete a claim (nickname, slot) if this connection still holds it."""
        try:
            self._client.delete_item(
                TableName=self._table,
                Key=key,
                ConditionExpression="#c = :me",
                ExpressionAttributeNames={"#c": "connection"},
                ExpressionAttributeValues={":me": {"S": connection_id}},
            )
        except ClientError as error:
            if not _is_condition_failure(error):
                raise

    def _update_if_held(
        self, key: dict[str, Any], connection_id: str, expression: str, values: dict[str, Any]
    ) -> None:
        try:
            self._client.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression=expression,
                ConditionExpression="#c = :me",
                ExpressionAttributeNames={"#c": "connection"},
                ExpressionAttributeValues={":me": {"S": connection_id}, **values},
            )
        except ClientError as error:
            if not _is_condition_failure(error):
                raise

    def _expired(self, expires_at: int) -> bool:
        return expires_at <= self._clock()

    def _connection(self, connection_id: str, item: dict[str, Any]) -> Connection:
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

    def _member(self, room: str, item: dict[str, Any]) -> Member:
        return Member(
            room=room,
            connection_id=item["sk"]["S"][len(MEMBER_PREFIX) :],
            nick=item["nick"]["S"],
            connected_at=int(item["connected_at"]["N"]),
            expires_at=int(item["expires_at"]["N"]),
            confirmed=item.get("confirmed", {}).get("BOOL", True),
            user=item.get("user", {}).get("S", ""),
        )

    def _connection_item(self, conn: Connection) -> dict[str, Any]:
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

    def _member_item(self, conn: Connection) -> dict[str, Any]:
        return {
            **_member_key(conn.room, conn.id),
            "nick": {"S": conn.nick},
            "connected_at": {"N": str(conn.connected_at)},
            "expires_at": {"N": str(conn.expires_at)},
            "confirmed": {"BOOL": conn.confirmed},
            "user": {"S": conn.user},
        }

    def _touch_room(self, room: str, change: int) -> int:
        """Add `change` to the room's count; it may hold members until the newest of
        them expires (now + connection TTL). Returns the new count."""
        expires_at = self.now_ms() // 1000 + self._settings.connection_ttl_seconds
        response = self._client.update_item(
            TableName=self._table,
            Key=_room_key(room),
            UpdateExpression="SET expires_at = :t ADD members :change",
            ExpressionAttributeValues={
                ":t": {"N": str(expires_at)},
                ":change": {"N": str(change)},
            },
            ReturnValues="ALL_NEW",
        )
        return max(0, int(response["Attributes"].get("members", {"N": "0"})["N"]))

    def _update_connection(self, conn: Connection, expression: str, values: dict[str, Any]) -> None:
        """Update the connection item only if it still is what `conn` says."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_conn_key(conn.id),
                UpdateExpression=expression,
                ConditionExpression="room = :room AND nick = :nick",
                ExpressionAttributeValues={
                    ":room": {"S": conn.room},
                    ":nick": {"S": conn.nick},
                    **values,
                },
            )
        except ClientError as error:
            if _is_condition_failure(error):
                raise ConnectionChanged from error
            raise
