"""DynamoDB storage of connections, room memberships, message history and rooms.

One table (defined once, in .chalice/resources.json), keys `pk` and `sk`:

| item        | pk            | sk             | attributes                          |
| ----------- | ------------- | -------------- | ----------------------------------- |
| connection  | CONN#{id}     | CONNECTION     | nick, room, connected_at, expires_at |
| membership  | ROOM#{room}   | MEMBER#{id}    | nick, expires_at                    |
| message     | ROOM#{room}   | MSG#{ulid}     | from, text, ts, expires_at          |
| room        | ROOMS         | {room}         | expires_at (last join + connection TTL) |

A room's members and its history share a partition, so a broadcast is one
strongly consistent Query and never a Scan. `expires_at` drives DynamoDB's TTL;
TTL deletes lag by hours, so every read drops expired items itself.
Changes that touch two items (connect, join, rename, disconnect) are
transactions, so a membership never outlives or precedes its connection.
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
MESSAGE_PREFIX = "MSG#"


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
    expires_at: int


class ConnectionChanged(Exception):
    """The connection changed (or went) while we acted on an older copy of it."""


def _conn_key(connection_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"CONN#{connection_id}"}, "sk": {"S": CONNECTION_SK}}


def _member_key(room: str, connection_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"ROOM#{room}"}, "sk": {"S": MEMBER_PREFIX + connection_id}}


def _is_condition_failure(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code")
    return code in ("TransactionCanceledException", "ConditionalCheckFailedException")


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
        self._client.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": self._table, "Item": self._connection_item(conn)}},
                {"Put": {"TableName": self._table, "Item": self._member_item(conn)}},
                self._touch_room(room),
            ]
        )
        return conn

    def get_connection(
        self, connection_id: str, include_expired: bool = False
    ) -> Connection | None:
        item = self._client.get_item(
            TableName=self._table, Key=_conn_key(connection_id), ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        conn = Connection(
            id=connection_id,
            nick=item["nick"]["S"],
            room=item["room"]["S"],
            connected_at=int(item["connected_at"]["N"]),
            expires_at=int(item["expires_at"]["N"]),
        )
        if not include_expired and self._expired(conn.expires_at):
            return None
        return conn

    def move(self, conn: Connection, room: str) -> Connection:
        """Leave `conn.room` and enter `room` at once; ConnectionChanged if conn is stale."""
        moved = Connection(conn.id, conn.nick, room, conn.connected_at, conn.expires_at)
        self._transact_or_changed(
            [
                self._update_connection(conn, "SET room = :new", {":new": {"S": room}}),
                {"Delete": {"TableName": self._table, "Key": _member_key(conn.room, conn.id)}},
                {"Put": {"TableName": self._table, "Item": self._member_item(moved)}},
                self._touch_room(room),
            ]
        )
        return moved

    def rename(self, conn: Connection, nick: str) -> Connection:
        """Change the nickname on the connection and on its membership together."""
        self._transact_or_changed(
            [
                self._update_connection(conn, "SET nick = :new", {":new": {"S": nick}}),
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": _member_key(conn.room, conn.id),
                        "UpdateExpression": "SET nick = :new",
                        "ConditionExpression": "attribute_exists(pk)",
                        "ExpressionAttributeValues": {":new": {"S": nick}},
                    }
                },
            ]
        )
        return Connection(conn.id, nick, conn.room, conn.connected_at, conn.expires_at)

    def remove_connection(self, connection_id: str, room_hint: str | None = None) -> Member | None:
        """Delete a connection and its membership; None when it was already gone.

        Safe to call twice or concurrently: only one caller gets the member back,
        so a departure is announced once. `room_hint` cleans a membership whose
        connection item is already gone (TTL deletes the two independently).
        """
        conn = self.get_connection(connection_id, include_expired=True)
        if conn is None:
            if room_hint is None:
                return None
            old = self._client.delete_item(
                TableName=self._table,
                Key=_member_key(room_hint, connection_id),
                ReturnValues="ALL_OLD",
            ).get("Attributes")
            return None if old is None else self._member(room_hint, old)
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Delete": {
                            "TableName": self._table,
                            "Key": _conn_key(connection_id),
                            "ConditionExpression": "attribute_exists(pk)",
                        }
                    },
                    {"Delete": {"TableName": self._table, "Key": _member_key(conn.room, conn.id)}},
                ]
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return None
            raise
        return Member(conn.room, conn.id, conn.nick, conn.expires_at)

    # Rooms -------------------------------------------------------------------------

    def members(self, room: str) -> tuple[list[Member], list[Member]]:
        """All members of a room, live and expired, over as many pages as it takes."""
        live: list[Member] = []
        expired: list[Member] = []
        for item in self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={
                ":pk": {"S": f"ROOM#{room}"},
                ":prefix": {"S": MEMBER_PREFIX},
            },
            ProjectionExpression="sk, nick, expires_at",
            ConsistentRead=True,
        ):
            member = self._member(room, item)
            (expired if self._expired(member.expires_at) else live).append(member)
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
                "pk": {"S": f"ROOM#{room}"},
                "sk": {"S": MESSAGE_PREFIX + message["id"]},
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
        values: dict[str, Any] = {":pk": {"S": f"ROOM#{room}"}}
        if before is None:
            condition = "pk = :pk AND begins_with(sk, :low)"
            values[":low"] = {"S": MESSAGE_PREFIX}
        else:
            condition = "pk = :pk AND sk BETWEEN :low AND :high"
            values[":low"] = {"S": MESSAGE_PREFIX}
            values[":high"] = {"S": MESSAGE_PREFIX + before}
        newest_first: list[dict[str, Any]] = []
        for item in self._query(
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ScanIndexForward=False,
            ConsistentRead=True,
            PaginationConfig={"PageSize": limit + 2},
        ):
            message_id = item["sk"]["S"][len(MESSAGE_PREFIX) :]
            if message_id == before:
                continue
            if self._expired(int(item["expires_at"]["N"])):
                break  # everything older expired too: retention is the same for all
            if len(newest_first) == limit:
                return newest_first[::-1], True
            newest_first.append(
                {
                    "id": message_id,
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

    def _expired(self, expires_at: int) -> bool:
        return expires_at <= self._clock()

    def _member(self, room: str, item: dict[str, Any]) -> Member:
        return Member(
            room=room,
            connection_id=item["sk"]["S"][len(MEMBER_PREFIX) :],
            nick=item["nick"]["S"],
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
            "expires_at": {"N": str(conn.expires_at)},
        }

    def _touch_room(self, room: str) -> dict[str, Any]:
        # A room may hold members until the newest of them expires: now + connection TTL.
        expires_at = self.now_ms() // 1000 + self._settings.connection_ttl_seconds
        return {
            "Update": {
                "TableName": self._table,
                "Key": {"pk": {"S": ROOMS_PK}, "sk": {"S": room}},
                "UpdateExpression": "SET expires_at = :t",
                "ExpressionAttributeValues": {":t": {"N": str(expires_at)}},
            }
        }

    def _update_connection(
        self, conn: Connection, expression: str, values: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self._table,
                "Key": _conn_key(conn.id),
                "UpdateExpression": expression,
                "ConditionExpression": "room = :room AND nick = :nick",
                "ExpressionAttributeValues": {
                    ":room": {"S": conn.room},
                    ":nick": {"S": conn.nick},
                    **values,
                },
            }
        }

    def _transact_or_changed(self, items: list[dict[str, Any]]) -> None:
        try:
            self._client.transact_write_items(TransactItems=items)
        except ClientError as error:
            if _is_condition_failure(error):
                raise ConnectionChanged from error
            raise
