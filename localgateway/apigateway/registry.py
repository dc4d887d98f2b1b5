"""The open websocket connections: who they are, when they were last active, when they end.

Pure bookkeeping, no sockets and no clock reads (callers pass the time in
milliseconds), so that deadlines and close reasons are testable without
waiting. Each entry carries an opaque `socket` handle for the I/O adapter. A
connection is registered only once `$connect` has accepted it, which is why
posting to a connection from its own `$connect` handler finds it gone, as on AWS.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from localgateway.apigateway.events import Caller

# API Gateway's quotas for WebSocket APIs (not adjustable on AWS; settable here for tests).
MAX_PAYLOAD_BYTES = 128 * 1024
IDLE_TIMEOUT_SECONDS = 10 * 60
MAX_CONNECTION_SECONDS = 2 * 60 * 60
# This gateway's own mark, not API Gateway's: a connection with this many frames waiting
# for or in a handler is flooding, and its further frames may wait only so long
# (websocket.FRAME_QUEUE_SECONDS). A client that waits for its answers never gets here.
FLOOD_FRAMES = 10

Socket = TypeVar("Socket")


@dataclass(frozen=True)
class Limits:
    payload_bytes: int = MAX_PAYLOAD_BYTES
    idle_timeout_ms: int = IDLE_TIMEOUT_SECONDS * 1000
    max_duration_ms: int = MAX_CONNECTION_SECONDS * 1000
    flood_frames: int = FLOOD_FRAMES


@dataclass(frozen=True)
class Close:
    """How a connection ended: the close code and the reason `$disconnect` is told."""

    code: int
    reason: str


# API Gateway's own closes. DeleteConnection's is the one AWS logs show
# ("Connection Closed Normally", 1000); the others are this gateway's wording.
DELETED = Close(1000, "Connection Closed Normally")
IDLE = Close(1001, "Going away: idle timeout")
MAX_DURATION = Close(1001, "Going away: maximum connection duration")
SHUTDOWN = Close(1001, "Going away: gateway stopped")
NO_STATUS = Close(1005, "Client-side close frame status not set")
LOST = Close(1006, "Connection lost without a close frame")


def too_big(limit: int) -> Close:
    """A message over the payload limit (aiohttp's own wording names the limit plus one)."""
    return Close(1009, f"Message too big: the limit is {limit} bytes")


def client_close(code: int | None, reason: str = "") -> Close:
    """The close a client asked for; no status code in its close frame is 1005."""
    if not code or code == NO_STATUS.code:
        return NO_STATUS
    return Close(code, reason or f"Client-side close frame status code {code}")


@dataclass
class Connection(Generic[Socket]):
    caller: Caller
    last_active_at: int
    socket: Socket
    frames: int = 0  # waiting for or in a handler

    @property
    def connection_id(self) -> str:
        return self.caller.connection_id


class Registry(Generic[Socket]):
    """Open connections by id: O(1) lookups, since every PostToConnection needs one."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._connections: dict[str, Connection[Socket]] = {}

    def __len__(self) -> int:
        return len(self._connections)

    def __iter__(self) -> Iterator[Connection[Socket]]:
        """A snapshot: closing connections while iterating is safe."""
        return iter(list(self._connections.values()))

    def open(self, caller: Caller, socket: Socket) -> Connection[Socket]:
        if caller.connection_id in self._connections:
            raise ValueError(f"connection {caller.connection_id} is already open")
        connection = Connection(caller, caller.connected_at, socket)
        self._connections[caller.connection_id] = connection
        return connection

    def get(self, connection_id: str) -> Connection[Socket] | None:
        return self._connections.get(connection_id)

    def remove(self, connection_id: str) -> Connection[Socket] | None:
        return self._connections.pop(connection_id, None)

    def touch(self, connection: Connection[Socket], now_ms: int) -> None:
        """A message from the client: the idle timer starts again (pings do not count)."""
        connection.last_active_at = max(connection.last_active_at, now_ms)

    def frame_started(self, connection: Connection[Socket]) -> bool:
        """A frame goes to a handler: whether it is part of a flood (the connection has
        `flood_frames` others waiting for or in a handler)."""
        connection.frames += 1
        return connection.frames > self.limits.flood_frames

    def frame_done(self, connection: Connection[Socket]) -> None:
        """A frame counted by `frame_started` has its answer."""
        connection.frames -= 1

    def deadline(self, connection: Connection[Socket]) -> tuple[int, Close]:
        """When the connection ends if nothing happens, and why."""
        idle_at = connection.last_active_at + self.limits.idle_timeout_ms
        max_at = connection.caller.connected_at + self.limits.max_duration_ms
        return (idle_at, IDLE) if idle_at < max_at else (max_at, MAX_DURATION)

    def expired(self, connection: Connection[Socket], now_ms: int) -> Close | None:
        """The close that is due at `now_ms`, None when the connection may stay."""
        at, close = self.deadline(connection)
        return close if now_ms >= at else None
