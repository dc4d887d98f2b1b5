"""DynamoDB storage of connections, room memberships, message history and rooms.

One table (defined once, in .chalice/resources.json), keys `pk` and `sk`:

| item        | pk            | sk             | attributes                              |
| ----------- | ------------- | -------------- | --------------------------------------- |
| connection  | CONN#{id}     | CONNECTION     | nick, room, connected_at, expires_at    |
| membership  | ROOM#{room}   | MEMBER#{id}    | nick, connected_at, expires_at          |
| message     | HIST#{room}   | {ulid}         | from, text, ts, expires_at              |
| room        | ROOMS         | {room}         | expires_at (last join + connection TTL) |

A room's members are one partition, so a broadcast is one strongly consistent
Query (never a Scan); its history is another, so that reading members never
wades through messages. `expires_at` drives DynamoDB's TTL; TTL deletes lag by
hours, so every read drops expired items itself.

No transactions: every change is a sequence of single-item writes, ordered so
that an interruption leaves a harmless state (at worst a membership that the
next failed send or TTL removes), and made safe to repeat. Single-item
conditions settle races: deleting a connection returns its old attributes to
exactly one caller, so a departure is announced once. This also halves the
write cost, and keeps the chat fast on emulators that copy tables per transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.ids import new_message_id
from chalicelib.settings import Settings

CONNECTION_SK = "CONNECTION"
ROOMS_PK = "ROOMS"
MEMBER_PREFIX = "MEMBER#"
HISTORY_PREFIX = "HIST#"


@dataclass(frozen=True)
class Connection:
    id: str
    nick: str
    room: str
    connected_at: int
    expires_at: int


@dataclass(frozen=True)
class Member:
    room: str
    connection_id: str
    nick: str
    connected_at: int
    expires_at: int


class ConnectionChanged(Exception):
    """The connection changed (or went) while we acted on an older copy of it."""


def _conn_key(connection_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"CONN#{connection_id}"}, "sk": {"S": CONNECTION_SK}}


def _member_key(room: str, connection_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"ROOM#{room}"}, "sk": {"S": MEMBER_PREFIX + connection_id}}


def _is_condition_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def iso_timestamp(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


class ChatStore:
    """The chat's state in one DynamoDB table, through a low-level boto3 client."""

    def __init__(
        self,
        client: Any,
        settings: Settings,
        executor: Executor,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._table = settings.table_name
        self._settings = settings
        self._executor = executor
        self._clock = clock

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    # Connections -----------------------------------------------------------------

    def add_connection(self, connection_id: str, nick: str, room: str) -> Connection:
        now_ms = self.now_ms()
        conn = Connection(
            id=connection_id,
            nick=nick,
            room=room,
            connected_at=now_ms,
            expires_at=now_ms // 1000 + self._settings.connection_ttl_seconds,
        )
        # Membership first: a connection item never points at a room it is not in.
        self._put(self._member_item(conn))
        self._put(self._connection_item(conn))
        self._touch_room(room)
        return conn

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

    def move(self, conn: Connection, room: str) -> Connection:
        """Leave `conn.room` for `room`; ConnectionChanged if `conn` is no longer current."""
        moved = Connection(conn.id, conn.nick, room, conn.connected_at, conn.expires_at)
        self._put(self._member_item(moved))
        try:
            self._update_connection(conn, "SET room = :new", {":new": {"S": room}})
        except ConnectionChanged:
            current = self.get_connection(conn.id, include_expired=True)
            if current is None or current.room != room:
                self._delete(_member_key(room, conn.id))
            raise
        self._delete(_member_key(conn.room, conn.id))
        self._touch_room(room)
        return moved

    def rename(self, conn: Connection, nick: str) -> Connection:
        """Change the nickname; ConnectionChanged if `conn` is no longer current."""
        self._update_connection(conn, "SET nick = :new", {":new": {"S": nick}})
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_member_key(conn.room, conn.id),
                UpdateExpression="SET nick = :new",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":new": {"S": nick}},
            )
        except ClientError as error:
            if not _is_condition_failure(error):
                raise  # a membership already cleaned away stays away
        return Connection(conn.id, nick, conn.room, conn.connected_at, conn.expires_at)

    def remove_connection(self, connection_id: str, room_hint: str | None = None) -> Member | None:
        """Delete a connection and its membership; None when it was already gone.

        Safe to call twice or concurrently: only one caller gets the member back,
        so a departure is announced once. `room_hint` cleans a membership whose
        connection item is already gone (TTL deletes the two independently).
        """
        old = self._delete(_conn_key(connection_id))
        if old is not None:
            conn = self._connection(connection_id, old)
            self._delete(_member_key(conn.room, connection_id))
            return Member(conn.room, conn.id, conn.nick, conn.connected_at, conn.expires_at)
        if room_hint is None:
            return None
        member = self._delete(_member_key(room_hint, connection_id))
        return None if member is None else self._member(room_hint, member)

    # Rooms -------------------------------------------------------------------------

    def members(
        self, room: str, at_most: int | None = None
    ) -> tuple[list[Member], list[Member]] | None:
        """A room's members, live and expired, over as many pages as it takes.

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

    def rooms(self, limit: int = 100) -> list[tuple[str, int]]:
        """Rooms joined within a connection's lifetime that still have live members."""
        names = [
            item["sk"]["S"]
            for item in self._query(
                KeyConditionExpression="pk = :pk",
                FilterExpression="expires_at > :now",
                ExpressionAttributeValues={
                    ":pk": {"S": ROOMS_PK},
                    ":now": {"N": str(self.now_ms() // 1000)},
                },
            )
        ]
        counts = self._executor.map(self.count_members, names)
        rooms = [(name, count) for name, count in zip(names, counts) if count > 0]
        rooms.sort(key=lambda room: (-room[1], room[0]))
        return rooms[:limit]

    def count_members(self, room: str) -> int:
        total = 0
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            FilterExpression="expires_at > :now",
            ExpressionAttributeValues={
                ":pk": {"S": f"ROOM#{room}"},
                ":prefix": {"S": MEMBER_PREFIX},
                ":now": {"N": str(self.now_ms() // 1000)},
            },
            Select="COUNT",
            ConsistentRead=True,
        ):
            total += page["Count"]
        return total

    # Messages ----------------------------------------------------------------------

    def add_message(self, room: str, nick: str, text: str) -> dict[str, Any]:
        """Store a message once; the id is made here, so a retried write cannot duplicate."""
        now_ms = self.now_ms()
        message = {
            "id": new_message_id(now_ms),
            "room": room,
            "from": nick,
            "text": text,
            "ts": iso_timestamp(now_ms),
        }
        expires_at = now_ms // 1000 + self._settings.history_retention_seconds
        self._client.put_item(
            TableName=self._table,
            Item={
                "pk": {"S": HISTORY_PREFIX + room},
                "sk": {"S": message["id"]},
                "from": {"S": nick},
                "text": {"S": text},
                "ts": {"S": message["ts"]},
                "expires_at": {"N": str(expires_at)},
            },
            ConditionExpression="attribute_not_exists(pk)",
        )
        return message

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
            newest_first.append(
                {
                    "id": item["sk"]["S"],
                    "room": room,
                    "from": item["from"]["S"],
                    "text": item["text"]["S"],
                    "ts": item["ts"]["S"],
                }
            )
        return newest_first[::-1], False

    # Helpers -----------------------------------------------------------------------

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

    def _expired(self, expires_at: int) -> bool:
        return expires_at <= self._clock()

    def _connection(self, connection_id: str, item: dict[str, Any]) -> Connection:
        return Connection(
            id=connection_id,
            nick=item["nick"]["S"],
            room=item["room"]["S"],
            connected_at=int(item["connected_at"]["N"]),
            expires_at=int(item["expires_at"]["N"]),
        )

    def _member(self, room: str, item: dict[str, Any]) -> Member:
        return Member(
            room=room,
            connection_id=item["sk"]["S"][len(MEMBER_PREFIX) :],
            nick=item["nick"]["S"],
            connected_at=int(item["connected_at"]["N"]),
            expires_at=int(item["expires_at"]["N"]),
        )

    def _connection_item(self, conn: Connection) -> dict[str, Any]:
        return {
            **_conn_key(conn.id),
            "nick": {"S": conn.nick},
            "room": {"S": conn.room},
            "connected_at": {"N": str(conn.connected_at)},
            "expires_at": {"N": str(conn.expires_at)},
        }

    def _member_item(self, conn: Connection) -> dict[str, Any]:
        return {
            **_member_key(conn.room, conn.id),
            "nick": {"S": conn.nick},
            "connected_at": {"N": str(conn.connected_at)},
            "expires_at": {"N": str(conn.expires_at)},
        }

    def _touch_room(self, room: str) -> None:
        # A room may hold members until the newest of them expires: now + connection TTL.
        expires_at = self.now_ms() // 1000 + self._settings.connection_ttl_seconds
        self._client.update_item(
            TableName=self._table,
            Key={"pk": {"S": ROOMS_PK}, "sk": {"S": room}},
            UpdateExpression="SET expires_at = :t",
            ExpressionAttributeValues={":t": {"N": str(expires_at)}},
        )

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
