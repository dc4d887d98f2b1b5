"""The chat itself: what each websocket event and each command does.

`Chat` ties the protocol (what a frame means), the store (what is true) and the
sender (who hears about it) together. Every failure a user can cause becomes an
`error` frame for that user alone; a DynamoDB failure becomes `unavailable`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from chalice.app import WebsocketEvent

from chalicelib import protocol
from chalicelib.fanout import Batch, FanOut
from chalicelib.protocol import Command, ProtocolError
from chalicelib.sending import Sender
from chalicelib.settings import Settings
from chalicelib.storage import ChatStore, Connection, ConnectionChanged, Member

log = logging.getLogger(__name__)

# Builds a frame from the number of members in the room (presence frames carry it).
FrameFor = Callable[[int], dict[str, Any]]

# Rebuilding a stale copy of a connection and trying again settles a race
# between two frames of the same client; more attempts would only hide a bug.
ATTEMPTS = 3

# How long after connecting a 410 from API Gateway may mean "not open yet"
# rather than "gone" (the $connect handler can still be running).
OPENING_GRACE_MS = 10_000


def guest_nick(connection_id: str) -> str:
    """The nickname a connection starts with: stable for its id, no lookups needed."""
    return "guest-" + hashlib.blake2s(connection_id.encode()).hexdigest()[:4]


def _sorted_nicks(members: list[Member]) -> list[str]:
    return sorted((m.nick for m in members), key=str.casefold)


class Chat:
    def __init__(
        self,
        store: ChatStore,
        sender: Sender,
        settings: Settings,
        fanout: FanOut | None = None,
    ) -> None:
        self._store = store
        self._sender = sender
        self._settings = settings
        self._fanout = fanout

    # Events: the three websocket routes and the fan-out function ---------------------

    def connect(self, event: WebsocketEvent) -> dict[str, Any] | None:
        """Register the connection in its first room; a non-2xx answer rejects the upgrade.

        `?nick=` and `?room=` on the URL pick the first nickname and room.
        """
        query = event.to_dict().get("queryStringParameters") or {}
        nick = protocol.validate_nick(
            query.get("nick", guest_nick(event.connection_id)), self._settings
        )
        join = protocol.validate_room(
            query.get("room", self._settings.default_room), self._settings
        )
        for invalid in (nick, join):
            if isinstance(invalid, ProtocolError):
                return {"statusCode": 400, "body": invalid.message}
        try:
            conn = self._store.add_connection(event.connection_id, nick.name, join.room)
            # The new connection cannot receive yet (API Gateway refuses posts
            # to it until $connect returns), so only the others hear of it.
            self._tell_room(conn.room, self._presence(conn, "join"), presence=True, exclude=conn.id)
        except (ClientError, BotoCoreError):
            log.exception("connect %s: storage unavailable", event.connection_id)
            return {"statusCode": 503, "body": "chat storage unavailable"}
        return None

    def disconnect(self, event: WebsocketEvent) -> None:
        try:
            departed = self._store.remove_connection(event.connection_id)
            if departed is not None:
                self._tell_room(departed.room, self._presence(departed, "leave"), presence=True)
        except (ClientError, BotoCoreError):
            log.exception(
                "disconnect %s: storage unavailable; TTL will clean it", event.connection_id
            )

    def message(self, event: WebsocketEvent) -> None:
        connection_id = event.connection_id
        command = protocol.parse_frame(event.to_dict().get("body"), self._settings)
        if isinstance(command, ProtocolError):
            self._reply_error(connection_id, command)
            return
        try:
            for _ in range(ATTEMPTS):
                try:
                    self._run(self._connection(connection_id), command, event)
                    return
                except ConnectionChanged:
                    continue
            log.error("connection %s kept changing during %s", connection_id, command)
        except (ClientError, BotoCoreError):
            log.exception("message from %s failed", connection_id)
        error = ProtocolError(protocol.UNAVAILABLE, "the chat is unavailable, try again")
        self._reply_error(connection_id, error)

    def fan_out(self, payload: Any) -> None:
        """The `fanout` function: send one batch of a big broadcast (fanout.py)."""
        try:
            batch = Batch.from_payload(payload)
        except ValueError:
            log.exception("fan-out event refused")
            return
        self._sender.use_endpoint(batch.domain_name, batch.stage)
        try:
            self._deliver(batch.room, batch.connection_ids, batch.data, set(batch.opening))
        except (ClientError, BotoCoreError):
            log.exception("fan-out in %s: storage unavailable while cleaning up", batch.room)

    # Commands ------------------------------------------------------------------------

    def _run(self, conn: Connection, command: Command, origin: WebsocketEvent) -> None:
        if isinstance(command, protocol.SendMessage):
            frame = protocol.message_frame(
                self._store.add_message(conn.room, conn.nick, command.text)
            )
            self._tell_room(conn.room, lambda count: frame, always=conn.id, origin=origin)
        elif isinstance(command, protocol.Join):
            self._join(conn, command.room)
        elif isinstance(command, protocol.Nick):
            self._rename(conn, command.name)
        elif isinstance(command, protocol.History):
            messages, more = self._store.history(conn.room, command.limit, command.before)
            self._sender.send(conn.id, protocol.history_frame(conn.room, messages, more))
        elif isinstance(command, protocol.Who):
            live = self._live_members(conn.room)
            self._sender.send(conn.id, protocol.members_frame(conn.room, _sorted_nicks(live)))
        elif isinstance(command, protocol.Rooms):
            self._sender.send(conn.id, protocol.rooms_frame(self._store.rooms()))
        elif isinstance(command, protocol.Ping):
            self._sender.send(conn.id, {"type": "pong"})
        elif isinstance(command, protocol.Help):
            self._sender.send(conn.id, {"type": "help", "commands": protocol.HELP})

    def _connection(self, connection_id: str) -> Connection:
        """The sender's connection; one missing from the table (expired, or cleaned
        after a failed send while it was still open) is registered again."""
        conn = self._store.get_connection(connection_id)
        if conn is None:
            conn = self._store.add_connection(
                connection_id, guest_nick(connection_id), self._settings.default_room
            )
        return conn

    def _join(self, conn: Connection, room: str) -> None:
        live = None
        if room != conn.room:
            left = conn
            conn = self._store.move(conn, room)
            self._tell_room(left.room, self._presence(left, "leave"), presence=True)
            live = self._tell_room(
                room, self._presence(conn, "join"), presence=True, exclude=conn.id
            )
        if live is None:  # the same room, or one too big for presence
            live = self._live_members(room)
        messages, more = self._store.history(room, self._settings.history_page_size)
        joined = protocol.joined_frame(room, conn.nick, _sorted_nicks(live), messages, more)
        self._sender.send(conn.id, joined)

    def _rename(self, conn: Connection, nick: str) -> None:
        renamed = self._store.rename(conn, nick)
        frame = self._presence(renamed, "nick", previous=conn.nick)
        # The renamer always gets the frame: it is the acknowledgement.
        if self._tell_room(conn.room, frame, presence=True, always=conn.id) is None:
            self._sender.send(conn.id, frame(self._store.count_members(conn.room)))

    # Fan-out and clean-up ----------------------------------------------------------------

    def _presence(
        self, who: Connection | Member, event: str, previous: str | None = None
    ) -> FrameFor:
        return lambda count: protocol.presence_frame(who.room, event, who.nick, count, previous)

    def _live_members(self, room: str) -> list[Member]:
        live, expired = self._store.members(room)
        self._evict(room, [m.connection_id for m in expired])
        return live

    def _tell_room(
        self,
        room: str,
        frame: FrameFor,
        presence: bool = False,
        exclude: str | None = None,
        always: str | None = None,
        origin: WebsocketEvent | None = None,
    ) -> list[Member] | None:
        """Send a frame to the live members of `room`; return the members still there.

        Presence frames go only to rooms within the presence limit (None for a
        bigger room: nobody is told), so that filling a big room does not cost a
        send per member per arrival, nor a read of the whole room. `always`
        receives the frame even when the member list misses it (an
        acknowledgement must not depend on the index). With the `origin` event,
        a big room's broadcast is split across fan-out invocations.
        Members found expired or gone are removed, and the room is told they left.
        """
        limit = self._settings.presence_limit if presence else None
        members = self._store.members(room, at_most=limit)
        if members is None:
            return None
        live, expired = members
        targets = [m.connection_id for m in live if m.connection_id != exclude]
        if always is not None and always not in targets:
            targets.append(always)
        # API Gateway answers 410 for a connection whose $connect has not finished
        # yet, though its membership is already stored: such a 410 is no departure.
        opening_since = self._store.now_ms() - OPENING_GRACE_MS
        opening = {m.connection_id for m in live if m.connected_at > opening_since}
        data = protocol.encode(frame(len(live)))
        if origin is not None:
            targets = self._fan_out(room, targets, data, opening, origin)
        gone = self._deliver(room, targets, data, opening, [m.connection_id for m in expired])
        return [m for m in live if m.connection_id not in gone]

    def _fan_out(
        self,
        room: str,
        targets: list[str],
        data: str,
        opening: set[str],
        origin: WebsocketEvent,
    ) -> list[str]:
        """Hand all batches but the first to fan-out invocations; return what is left to send."""
        if self._fanout is None or len(targets) <= self._fanout.batch_size:
            return targets
        own, *others = self._fanout.split(targets)
        batches = [
            Batch(
                room=room,
                data=data,
                connection_ids=batch,
                opening=[cid for cid in batch if cid in opening],
                domain_name=origin.domain_name,
                stage=origin.stage,
            )
            for batch in others
        ]
        failed = self._fanout.dispatch(batches)
        return own + [cid for batch in failed for cid in batch.connection_ids]

    def _deliver(
        self,
        room: str,
        connection_ids: list[str],
        data: str,
        opening: set[str],
        stale: Iterable[str] = (),
    ) -> set[str]:
        """Send `data` to every connection; remove the gone and the `stale`; return the gone."""
        gone = set(self._sender.broadcast(connection_ids, data)) - opening
        self._evict(room, [*stale, *sorted(gone)])
        return gone

    def _evict(self, room: str, connection_ids: list[str]) -> None:
        """Remove connections that are gone and announce each departure once.

        Every round removes members for good, so announcing can find new gone
        members only a finite number of times.
        """
        for connection_id in dict.fromkeys(connection_ids):
            departed = self._store.remove_connection(connection_id, room_hint=room)
            if departed is not None:
                self._tell_room(room, self._presence(departed, "leave"), presence=True)

    def _reply_error(self, connection_id: str, error: ProtocolError) -> None:
        self._sender.send(connection_id, protocol.error_frame(error))
