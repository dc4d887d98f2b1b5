"""Messages: a room's history, each message's later life, and how frames show them.

| item     | pk          | sk     | attributes                                            |
| -------- | ----------- | ------ | ----------------------------------------------------- |
| message  | HIST#{room} | {ulid} | from, text, ts, conn, user, verified, expires_at,     |
|          |             |        | mentions, attachment (key, name, size, type, width,   |
|          |             |        | height); edits, reactions: below                      |

A room's history is its own partition, apart from its members
(chalicelib/store/rooms.py). Storing a message is one conditional PutItem, so a
message sent again with its id is never stored twice; a page of history one
strongly consistent Query, newest first, that stops at the first expired item
(retention is the same for all). What happens to a message afterwards is
attributes of its item, so `history` and `joined` read the latest state with
the same one Query:

| attribute  | meaning                                                             |
| ---------- | ------------------------------------------------------------------- |
| text       | the latest text (removed when deleted)                              |
| edited     | when it was last edited (ISO 8601)                                  |
| deleted    | true: a tombstone (id, author, time, no text, no reactions)         |
| reactions  | a list, in order of first use, of {e: emoji, who: {key: name}}      |
| mentions   | the usernames its text mentions (chalicelib/mentions.py)            |
| rev        | how many changes it has had                                         |

Every change is a read (GetItem) and a write conditioned on `rev` being what
was read: concurrent reactions of several people never lose one, and the limit
of MAX_REACTIONS distinct emoji holds. A reactor's key is `u:{username}`, or a
guest's `c:{connection id}` (a guest's reactions are its connection's), and the
name shown is their nickname at the time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.attachments import Attachment
from chalicelib.ids import new_message_id
from chalicelib.settings import Settings
from chalicelib.store.connections import Connection
from chalicelib.store.lifetime import Lifetime
from chalicelib.store.table import ConditionFailed, Item, Table

HISTORY_PREFIX = "HIST#"
# Distinct emoji on one message.
MAX_REACTIONS = 20
# Writes lost to concurrent changes of the same message before giving up (then `unavailable`).
ATTEMPTS = 8


class Conflict(Exception):
    """The message kept changing under us; the command may be sent again."""


class IdInUse(Exception):
    """A client-chosen message id that another message already has."""


def iso_timestamp(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


@dataclass
class Stored:
    """A message item as the rules need it."""

    id: str
    room: str
    author: str  # the sender's username, or "" for a guest
    conn: str  # the sender's connection
    text: str
    deleted: bool
    rev: int
    reactions: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    shown: dict[str, Any] = field(default_factory=dict)  # as frames show it

    def is_by(self, user: str, connection_id: str) -> bool:
        """Whether the person (or, for a guest, the connection) sent it."""
        return self.author == user if user else self.conn == connection_id and not self.author


def reactor_key(user: str, connection_id: str) -> str:
    return f"u:{user}" if user else f"c:{connection_id}"


def view(room: str, item: dict[str, Any]) -> dict[str, Any]:
    """A stored message as frames carry it: `verified` only when its sender was; a
    tombstone has `deleted: true` and no text; `edited`, `mentions` and `reactions`
    only when there are any."""
    message: dict[str, Any] = {"id": item["sk"]["S"], "room": room, "from": item["from"]["S"]}
    if item.get("deleted", {}).get("BOOL"):
        message.update(ts=item["ts"]["S"], deleted=True)
    else:
        message.update(text=item["text"]["S"], ts=item["ts"]["S"])
        if "edited" in item:
            message["edited"] = item["edited"]["S"]
        if item.get("mentions", {}).get("SS"):
            message["mentions"] = sorted(item["mentions"]["SS"])
        reactions = summary(_reactions(item))
        if reactions:
            message["reactions"] = reactions
        if "attachment" in item:
            message["attachment"] = attachment_of(item["attachment"]["M"]).shown()
    if item.get("verified", {}).get("BOOL"):
        message["verified"] = True
    return message


def summary(reactions: list[tuple[str, dict[str, str]]]) -> list[dict[str, Any]]:
    """Counts and names per emoji, in order of first use."""
    return [
        {"emoji": emoji, "count": len(who), "who": sorted(who.values(), key=str.casefold)}
        for emoji, who in reactions
        if who
    ]


class Messages:
    """A room's history: storing, reading and changing its messages."""

    def __init__(self, table: Table, settings: Settings, lifetime: Lifetime) -> None:
        self._table = table
        self._settings = settings
        self._lifetime = lifetime

    def add(
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
        now_ms = self._lifetime.now_ms()
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
            **_key(room, message["id"]),
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
            self._table.put(
                item,
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as failed:
            stored = failed.item or {}
            if stored.get("conn", {}).get("S") != conn.id:
                raise IdInUse(message["id"]) from failed
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
        for item in self._table.query(
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ScanIndexForward=False,
            ConsistentRead=True,
            PaginationConfig={"PageSize": limit + 1},
        ):
            if self._lifetime.expired(int(item["expires_at"]["N"])):
                break  # everything older expired too: retention is the same for all
            if len(newest_first) == limit:
                return newest_first[::-1], True
            newest_first.append(view(room, item))
        return newest_first[::-1], False

    def attachment(self, room: str, message_id: str) -> Attachment | None:
        """The attachment of a message of `room` still in its history, or None."""
        item = self._table.get(_key(room, message_id), ConsistentRead=True)
        if (
            item is None
            or self._lifetime.expired(int(item["expires_at"]["N"]))
            or "attachment" not in item
            or item.get("deleted", {}).get("BOOL")  # a deleted message's file is gone with it
        ):
            return None
        return attachment_of(item["attachment"]["M"])

    def get(self, room: str, message_id: str) -> Stored | None:
        """The message, or None if the room has no such message (or it expired)."""
        item = self._table.get(_key(room, message_id), ConsistentRead=True)
        if item is None or self._lifetime.expired(int(item["expires_at"]["N"])):
            return None
        return Stored(
            id=message_id,
            room=room,
            author=item.get("user", {}).get("S", ""),
            conn=item.get("conn", {}).get("S", ""),
            text=item.get("text", {}).get("S", ""),
            deleted=item.get("deleted", {}).get("BOOL", False),
            rev=int(item.get("rev", {}).get("N", "0")),
            reactions=_reactions(item),
            shown=view(room, item),
        )

    def edit(self, message: Stored, text: str, edited: str, mentions: list[str]) -> dict[str, Any]:
        """Set the text; the message as frames show it now."""
        sets = ["#t = :text", "edited = :edited"]
        values: dict[str, Any] = {":text": {"S": text}, ":edited": {"S": edited}}
        if mentions:
            sets.append("mentions = :mentions")
            values[":mentions"] = {"SS": mentions}
        return self._write(message, sets, [] if mentions else ["mentions"], values)

    def delete(self, message: Stored) -> dict[str, Any]:
        """Make it a tombstone: the text, mentions and reactions go."""
        removed = ["#t", "mentions", "reactions"]
        return self._write(message, ["deleted = :yes"], removed, {":yes": {"BOOL": True}})

    def react(self, message: Stored, reactions: list[tuple[str, dict[str, str]]]) -> dict[str, Any]:
        listed = [
            {"M": {"e": {"S": emoji}, "who": {"M": {k: {"S": n} for k, n in who.items()}}}}
            for emoji, who in reactions
            if who
        ]
        if not listed:
            return self._write(message, [], ["reactions"], {})
        return self._write(message, ["reactions = :r"], [], {":r": {"L": listed}})

    def _write(
        self, message: Stored, sets: list[str], removes: list[str], values: dict[str, Any]
    ) -> dict[str, Any]:
        """Change the message if nobody changed it since it was read (Conflict if somebody
        did: the caller reads it again); the message as frames show it now."""
        update = "SET " + ", ".join([*sets, "rev = :rev"])
        if removes:
            update += " REMOVE " + ", ".join(removes)
        values = {**values, ":rev": {"N": str(message.rev + 1)}}
        if message.rev:
            condition = "attribute_exists(pk) AND rev = :seen"
            values[":seen"] = {"N": str(message.rev)}
        else:
            condition = "attribute_exists(pk) AND attribute_not_exists(rev)"
        names = {"ExpressionAttributeNames": {"#t": "text"}} if "#t" in update else {}
        try:
            attributes = self._table.update(
                _key(message.room, message.id),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                **names,
            )
        except ConditionFailed as failed:
            raise Conflict(message.id) from failed
        return view(message.room, attributes)


def _key(room: str, message_id: str) -> Item:
    return {"pk": {"S": HISTORY_PREFIX + room}, "sk": {"S": message_id}}


def _reactions(item: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    return [
        (entry["M"]["e"]["S"], {k: v["S"] for k, v in entry["M"]["who"]["M"].items()})
        for entry in item.get("reactions", {}).get("L", [])
    ]


def attachment_item(attachment: Attachment) -> dict[str, Any]:
    """A message's attachment as its item stores it (the key never leaves the server)."""
    item: dict[str, Any] = {
        "key": {"S": attachment.key},
        "name": {"S": attachment.name},
        "size": {"N": str(attachment.size)},
        "type": {"S": attachment.type},
    }
    if attachment.width is not None and attachment.height is not None:
        item.update(width={"N": str(attachment.width)}, height={"N": str(attachment.height)})
    return item


def attachment_of(item: dict[str, Any]) -> Attachment:
    width, height = item.get("width"), item.get("height")
    return Attachment(
        key=item["key"]["S"],
        name=item["name"]["S"],
        size=int(item["size"]["N"]),
        type=item["type"]["S"],
        width=int(width["N"]) if width else None,
        height=int(height["N"]) if height else None,
    )
