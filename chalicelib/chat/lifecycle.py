"""A connection's life: `$connect` registers it, its first frame confirms it, `$disconnect`
removes it.

`$connect` claims a slot of the source address and the nickname in the first
room, then writes the connection, all pending; a refused connection leaves no
trace (sign-in is checked before anything is written, and what a failure left
is taken back). Every frame takes a token of the connection's rate limit in
the same request that reads it. The first frame proves the connection open:
it confirms the connection and announces it in its rooms.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from chalicelib import budget, origins, protocol
from chalicelib.auth import Unauthorized, Verifier
from chalicelib.chat.broadcaster import Broadcaster, presence
from chalicelib.chat.clock import Clock
from chalicelib.chat.events import SocketEvent
from chalicelib.chat.nicknames import guest_nick
from chalicelib.chat.replies import connect_refusal
from chalicelib.outage import STORAGE_ERRORS, log_storage_error
from chalicelib.protocol import ProtocolError
from chalicelib.sending import Sender
from chalicelib.settings import Settings
from chalicelib.store import Store
from chalicelib.store.claims import AddressFull, NickTaken
from chalicelib.store.connections import Connection
from chalicelib.store.memberships import DM_PREFIX, PersonRoom
from chalicelib.store.roles import ADMIN_GROUP

log = logging.getLogger(__name__)

# Tell a signed-in connection its rooms (`mine`, person_rooms.py).
ShowRooms = Callable[[Connection], None]


class Lifecycle:
    def __init__(
        self,
        store: Store,
        sender: Sender,
        settings: Settings,
        clock: Clock,
        broadcaster: Broadcaster,
        show_rooms: ShowRooms,
        verifier: Verifier | None = None,
    ) -> None:
        self._store = store
        self._sender = sender
        self._settings = settings
        self._clock = clock
        self._broadcaster = broadcaster
        self._nicknames = broadcaster.nicknames
        self._show_rooms = show_rooms
        # Set with AUTH=cognito: every connection signs in, and its nickname is its username.
        self._verifier = verifier

    def connect(self, event: SocketEvent) -> dict[str, Any] | None:
        """Register the connection, pending, in its first room; a non-2xx answer rejects
        the upgrade. `?nick=` and `?room=` on the URL pick the first nickname and room."""
        settings = self._settings
        if not origins.allowed(event.origin, settings.allowed_origins):
            message = f"origin {event.origin} may not connect"
            return connect_refusal(403, protocol.FORBIDDEN_ORIGIN, message)
        chosen = event.nick is not None
        nick = protocol.validate_nick(
            event.nick if chosen else guest_nick(event.connection_id), settings
        )
        join = protocol.validate_room(
            event.room if event.room is not None else settings.default_room, settings
        )
        for invalid in (nick, join):
            if isinstance(invalid, ProtocolError):
                return connect_refusal(400, invalid.code, invalid.message)
        cid, ip = event.connection_id, event.source_ip
        with budget.within(budget.CONNECT_SECONDS):
            if settings.auth != "none" and self._verifier is None and event.token is not None:
                message = "this chat has no sign-in set up"
                return connect_refusal(401, protocol.UNAUTHORIZED, message)
            guest = settings.auth == "optional" and event.token is None
            if self._verifier is None or guest:
                return self._register(cid, nick.name, join.room, ip, chosen)
            # Checked before anything is written: a refused connection leaves no trace.
            try:
                identity = self._verifier.identify(event.token)
            except Unauthorized as refused:
                return connect_refusal(401, protocol.UNAUTHORIZED, str(refused))
            except STORAGE_ERRORS as error:
                log_storage_error(error, "connect %s: Cognito", cid)
                return connect_refusal(503, protocol.UNAVAILABLE, "sign-in could not be checked")
            admin = ADMIN_GROUP in identity.groups
            username = identity.username
            return self._register(cid, username, join.room, ip, True, username, admin)

    def disconnect(self, connection_id: str) -> None:
        with budget.within(budget.FRAME_SECONDS):
            try:
                departures = self._store.connections.remove(connection_id)
                self._broadcaster.gone(connection_id, departures)
            except STORAGE_ERRORS as error:
                log_storage_error(error, "disconnect %s (TTL will clean it)", connection_id)

    def admit(self, connection_id: str) -> Connection | None:
        """The sender's connection, a frame token taken. Its first frame confirms it (and
        announces it). One missing from the table (expired, or cleaned after a failed
        send while it was still open) is registered again as a guest where nobody signs
        in; where people sign in it may have been a person, who must not go on as a
        guest: it is told `expired` and closed, to reconnect with its token (None)."""
        conn = self._store.connections.admit(connection_id, self._settings.frame_rate)
        if conn is None and self._verifier is not None:
            message = "your connection expired: reconnect"
            error = ProtocolError(protocol.EXPIRED, message)
            self._sender.send(connection_id, protocol.error_frame(error))
            self._sender.close(connection_id)
            return None
        if conn is None:
            room, now = self._settings.default_room, self._clock.now_ms()
            nick = self._nicknames.claim(room, "", connection_id, now, chosen=False, confirmed=True)
            return self._store.connections.add(
                connection_id, nick, room, connected_at=now, confirmed=True
            )
        if conn.confirmed:
            return conn
        try:
            self._nicknames.hold(conn.room, conn.nick, conn.id, conn.connected_at, user=conn.user)
        except NickTaken:
            # Its nickname went to another while it was pending: it becomes a guest.
            guest = self._nicknames.claim(
                conn.room, "", conn.id, conn.connected_at, chosen=False, confirmed=True
            )
            conn = self._store.connections.rename(conn, guest)
            count = self._store.connections.confirm(conn)
            message = f"your nickname went to another member; you are {guest}"
            error = ProtocolError(protocol.NICK_TAKEN, message)
            self._sender.send(conn.id, protocol.error_frame(error))
        else:
            count = self._store.connections.confirm(conn)
        confirmed = replace(conn, confirmed=True)
        for room in sorted(confirmed.rooms | {confirmed.room}, key=lambda r: r != conn.room):
            self._broadcaster.announce_presence(
                room,
                presence(replace(confirmed, room=room), "join"),
                count=count if room == conn.room else None,
                exclude=conn.id,
                person=conn.user,
            )
        if confirmed.user:  # a guest's only room is the one it asked for
            self._show_rooms(confirmed)
        return confirmed

    def _register(
        self,
        connection_id: str,
        nick: str,
        room: str,
        ip: str,
        chosen: bool,
        user: str = "",
        admin: bool = False,
    ) -> dict[str, Any] | None:
        """Claim a slot of the address and the nickname in the room, then write the
        connection; on failure, take back what was written (pending items expire anyway)."""
        slot = None
        now = self._clock.now_ms()
        try:
            if user and self._store.roles.banned(room, user):
                return connect_refusal(403, protocol.FORBIDDEN, f"you are banned from {room}")
            if not self._may_enter(room, user):
                message = f"{room} is private: only its members may join it"
                return connect_refusal(403, protocol.FORBIDDEN, message)
            slot = self._store.claims.slot(ip, connection_id)
            nick = self._nicknames.claim(room, nick, connection_id, now, chosen, False, user)
            conn = self._store.connections.add(
                connection_id, nick, room, ip, slot, connected_at=now, user=user, admin=admin
            )
            if user:
                self._subscribe_person(conn)
        except AddressFull:
            message = f"at most {self._settings.connections_per_ip} per address"
            return connect_refusal(429, protocol.TOO_MANY_CONNECTIONS, message)
        except NickTaken:
            assert slot is not None  # the nickname is claimed after the slot
            self._store.claims.release_slot(ip, slot, connection_id)
            return connect_refusal(409, protocol.NICK_TAKEN, f"{nick} is taken in {room}")
        except STORAGE_ERRORS as error:
            log_storage_error(error, "connect %s", connection_id)
            self._forget(connection_id, room, nick, ip, slot)
            return connect_refusal(503, protocol.UNAVAILABLE, "chat storage unavailable")
        return None

    def _subscribe_person(self, conn: Connection) -> Connection:
        """A signed-in person's connection receives all their rooms (up to MAX_ROOMS):
        one Query of their rooms, batch writes of the subscriptions."""
        people = self._store.memberships
        expires_at = self._clock.now_ms() // 1000 + self._settings.connection_ttl_seconds
        people.add_connection(conn.user, conn.id, expires_at)
        rooms, _ = people.rooms_of(conn.user)
        if conn.room not in {r.room for r in rooms}:  # a new room: its past is not unread
            newest, _ = self._store.messages.history(conn.room, 1)
            people.add(conn.user, PersonRoom(conn.room, read=newest[-1]["id"] if newest else ""))
        names = [r.room for r in rooms if r.room != conn.room][: self._settings.max_rooms - 1]
        return self._store.connections.subscribe_many(conn, names)

    def _may_enter(self, room: str, user: str) -> bool:
        """`?room=` on $connect: a private room only for its members (the default room
        is never private: `create` refuses it, so connecting there costs no read)."""
        if room == self._settings.default_room:
            return True
        if room.startswith(DM_PREFIX) and not user:
            return False
        terms = self._store.memberships.terms(room)
        if terms is None:
            return not room.startswith(DM_PREFIX)
        return bool(user) and self._store.memberships.room_of(user, room) is not None

    def _forget(self, connection_id: str, room: str, nick: str, ip: str, slot: int | None) -> None:
        """Best effort after a failed $connect: what it wrote is pending and expires anyway."""
        try:
            with budget.within(budget.CLEANUP_SECONDS):
                self._store.connections.remove(connection_id, room_hint=room)
                self._store.claims.release_nick(room, nick, connection_id)
                if slot is not None:
                    self._store.claims.release_slot(ip, slot, connection_id)
        except STORAGE_ERRORS:
            log.warning("connect %s: left pending items to expire", connection_id)
