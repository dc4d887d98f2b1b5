"""The answers a user's own mistakes and the chat's failures get, built in one place.

A `$connect` refusal is an HTTP status with a body that says why (for tools
like wscat); everything later is an `error` frame for the sender alone, raised
as `Refusal` by the action that refuses and sent by the dispatcher.
"""

from __future__ import annotations

from typing import Any

from chalicelib import protocol
from chalicelib.protocol import Command, ProtocolError, Refusal
from chalicelib.store.connections import Connection
from chalicelib.store.rates import RateLimited


def connect_refusal(status: int, code: str, message: str) -> dict[str, Any]:
    """A `$connect` answer that rejects the upgrade; the body says why, for tools like wscat."""
    return {"statusCode": status, "body": protocol.encode({"code": code, "message": message})}


def room_of(conn: Connection, room: str | None) -> str:
    """The room a frame names, if it is one of the connection's (None: the current one);
    if not, the sender is told, and nothing else happens."""
    if room is None:
        return conn.room
    if room in conn.rooms or room == conn.room:
        return room
    raise Refusal(protocol.NOT_IN_ROOM, f"you are not in {room}: join it first")


def unavailable(command: Command | ProtocolError) -> ProtocolError:
    """A message's answer carries its id, so that sending it again cannot duplicate it."""
    message_id = command.id if isinstance(command, protocol.SendMessage) else None
    if message_id is None:
        return ProtocolError(protocol.UNAVAILABLE, "the chat is unavailable, try again")
    return ProtocolError(
        protocol.UNAVAILABLE,
        "the chat is unavailable; send the message again with the same id: "
        "it is never stored twice",
        {"id": message_id},
    )


def rate_limited(limited: RateLimited, what: str) -> ProtocolError:
    seconds = max(1, round(limited.retry_after_ms / 1000))
    return ProtocolError(
        protocol.RATE_LIMITED,
        f"too many {what}; try again in {seconds} s",
        {"retry_after_ms": limited.retry_after_ms},
    )
