"""Claims: a connection's nickname in a room, and its slot of its source address.

| item      | pk          | sk          | attributes                                     |
| --------- | ----------- | ----------- | ---------------------------------------------- |
| nickname  | ROOM#{room} | NICK#{key}  | connection, connected_at, nick, claimed_at,    |
|           |             |             | confirmed, user, expires_at                    |
| address   | IP#{ip}     | SLOT#{n}    | connection, expires_at                         |

Nicknames are unique in a room by `chalicelib.text.nick_key`, claimed with a
conditional put; a signed-in user's (`user`, the Cognito username) is theirs in
every tab they open. Leaving, moving and renaming never free the old name: the
caller frees it (`release_nick`) once the room has been told, so nobody is
announced under a name before its last holder's departure. A pending
nickname may be taken by another connection after PENDING_CLAIM_MS.

Addresses have `connections_per_ip` slots, claimed the same way (one Query of
the address's slots, then a conditional put); a slot whose connection vanished
without `$disconnect` frees itself when it expires, so an address is never
locked out past the connection TTL. A claim is freed only by its holder.
"""

from __future__ import annotations

import contextlib
from typing import Any

from chalicelib.settings import Settings
from chalicelib.store.lifetime import Lifetime
from chalicelib.store.table import ConditionFailed, Item, Table
from chalicelib.text import nick_key

NICK_PREFIX = "NICK#"
ADDRESS_PREFIX = "IP#"
SLOT_PREFIX = "SLOT#"
# After this long a pending connection's nickname may be claimed by another.
PENDING_CLAIM_MS = 30_000


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


def _nick_key(room: str, nick: str) -> Item:
    return {"pk": {"S": f"ROOM#{room}"}, "sk": {"S": NICK_PREFIX + nick_key(nick)}}


def _slot_key(ip: str, slot: int) -> Item:
    return {"pk": {"S": ADDRESS_PREFIX + ip}, "sk": {"S": f"{SLOT_PREFIX}{slot}"}}


class Claims:
    """Nicknames and address slots, each held by one connection at a time."""

    def __init__(
        self,
        table: Table,
        settings: Settings,
        lifetime: Lifetime,
    ) -> None:
        self._table = table
        self._settings = settings
        self._lifetime = lifetime

    def slot(self, ip: str, connection_id: str) -> int:
        """One of the address's slots for this connection; AddressFull when none is free."""
        now = self._lifetime.now_ms() // 1000
        held = {
            int(item["sk"]["S"][len(SLOT_PREFIX) :])
            for item in self._table.query(
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": ADDRESS_PREFIX + ip}},
                ConsistentRead=True,
            )
            if int(item["expires_at"]["N"]) > now
        }
        for slot in (n for n in range(self._settings.connections_per_ip) if n not in held):
            try:
                self._table.put(
                    {
                        **_slot_key(ip, slot),
                        "connection": {"S": connection_id},
                        "expires_at": {"N": str(self._lifetime.expiry(False))},
                    },
                    ConditionExpression="attribute_not_exists(pk) OR expires_at <= :now",
                    ExpressionAttributeValues={":now": {"N": str(now)}},
                )
            except ConditionFailed:
                continue  # taken meanwhile: try the next
            return slot
        raise AddressFull()

    def confirm_slot(self, ip: str, slot: int, connection_id: str) -> None:
        """A confirmed connection's slot lives as long as the connection."""
        with contextlib.suppress(ConditionFailed):  # another holds it now: theirs stays as it is
            self._table.update(
                _slot_key(ip, slot),
                UpdateExpression="SET expires_at = :expires",
                **_held_by(connection_id, {":expires": {"N": str(self._lifetime.expiry(True))}}),
            )

    def release_slot(self, ip: str, slot: int, connection_id: str) -> None:
        self._release(_slot_key(ip, slot), connection_id)

    def nick(
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
        now_ms = self._lifetime.now_ms()
        try:
            self._table.put(
                {
                    **_nick_key(room, nick),
                    "connection": {"S": connection_id},
                    "connected_at": {"N": str(connected_at)},
                    "nick": {"S": nick},
                    "claimed_at": {"N": str(now_ms)},
                    "confirmed": {"BOOL": confirmed},
                    "user": {"S": user},
                    "expires_at": {"N": str(self._lifetime.expiry(confirmed))},
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
        except ConditionFailed as failed:
            held = failed.item or {}
            raise NickTaken(
                nick,
                room,
                held.get("connection", {}).get("S", ""),
                int(held.get("connected_at", {}).get("N", "0")),
                held.get("confirmed", {}).get("BOOL", False),
            ) from failed

    def release_nick(self, room: str, nick: str, connection_id: str) -> None:
        self._release(_nick_key(room, nick), connection_id)

    def _release(self, key: Item, connection_id: str) -> None:
        """Delete a claim if this connection still holds it."""
        with contextlib.suppress(ConditionFailed):  # another holds it now
            self._table.delete(key, **_held_by(connection_id))


def _held_by(connection_id: str, values: dict[str, Any] | None = None) -> dict[str, Any]:
    """The condition of a change to a claim: only its holder changes it."""
    return {
        "ConditionExpression": "#c = :me",
        "ExpressionAttributeNames": {"#c": "connection"},
        "ExpressionAttributeValues": {":me": {"S": connection_id}, **(values or {})},
    }
