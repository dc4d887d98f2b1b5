"""Rooms a connection is in: join, leave, create, the room list, who is in one, its history.

A connection receives every room it joined; one is current (where plain text
goes). A room change costs a token of the join quota; a private room or a DM
admits only its people (the same answer for one that exists and a DM name
guessed). A signed-in person's rooms are theirs on every connection: a room
joined or left on one reaches the others at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from chalicelib import protocol
from chalicelib.chat.broadcaster import Broadcaster, presence
from chalicelib.chat.clock import Clock
from chalicelib.chat.replies import room_of
from chalicelib.moderation import role
from chalicelib.protocol import FORBIDDEN, ProtocolError, Refusal
from chalicelib.sending import Sender
from chalicelib.settings import Settings
from chalicelib.store import Store
from chalicelib.store.connections import Connection
from chalicelib.store.memberships import DM_PREFIX, PersonRoom
from chalicelib.store.messages import iso_timestamp
from chalicelib.store.rooms import Member


def confirmed_nicks(members: Iterable[Member]) -> list[str]:
    """Each person once: a signed-in person's tabs share their name."""
    return sorted({m.nick for m in members if m.confirmed}, key=str.casefold)


def verified_nicks(members: Iterable[Member]) -> list[str]:
    return sorted({m.nick for m in members if m.confirmed and m.user}, key=str.casefold)


class Rooms:
    def __init__(
        self,
        store: Store,
        sender: Sender,
        settings: Settings,
        clock: Clock,
        broadcaster: Broadcaster,
    ) -> None:
        self._store = store
        self._sender = sender
        self._settings = settings
        self._clock = clock
        self._broadcaster = broadcaster

    def join(self, conn: Connection, room: str) -> None:
        """Add `room` to the connection's rooms (and its person's) and make it current;
        a private room or DM only for those it belongs to."""
        live = None
        added = None
        if room not in conn.rooms and room != conn.room:
            added = self._admission(conn, room)
            if len(conn.rooms) >= self._settings.max_rooms:
                limit = self._settings.max_rooms
                message = f"you are in {limit} rooms, the most there can be: leave one first"
                raise Refusal(protocol.TOO_MANY_ROOMS, message)
            self._store.connections.admit_join(conn, self._settings.join_rate)
            self._broadcaster.nicknames.hold(
                room, conn.nick, conn.id, conn.connected_at, user=conn.user
            )
            conn = self._store.connections.subscribe(conn, room)
            live = self._broadcaster.announce_presence(
                room, presence(conn, "join"), exclude=conn.id, person=conn.user
            )
        elif room != conn.room:
            conn = self._store.connections.set_current(conn, room)
        if live is None:  # a room already joined, or one too big for presence
            live = self._broadcaster.live_members(room)
        messages, more = self._store.messages.history(room, self._settings.history_page_size)
        if added is not None and conn.user:
            # What the `joined` frame shows is read (a marker they have is kept).
            read = messages[-1]["id"] if messages else ""
            self._store.memberships.add(conn.user, replace(added, read=read))
            self.spread(conn.user, room, added, skip=conn.id)
        joined = protocol.joined_frame(
            room,
            conn.nick,
            confirmed_nicks(live),
            messages,
            more,
            verified_nicks(live),
            iso_timestamp(self._clock.now_ms()),
            role=role(self._store.roles, conn, room),
        )
        self._sender.send(conn.id, joined)

    def leave(self, conn: Connection, room: str) -> None:
        """Take a room from the connection and its person (all their connections)."""
        room_of(conn, room)
        if len(conn.rooms | {conn.room}) == 1:
            message = "this is your only room: join another before you leave it"
            raise Refusal(protocol.BAD_REQUEST, message)
        conn, departure = self._store.connections.unsubscribe(conn, room)
        others = []
        if conn.user:
            self._store.memberships.remove(conn.user, room)
            _, connections = self._store.memberships.rooms_of(conn.user)
            for connection_id in connections:
                other = self._store.connections.get(connection_id)
                if (
                    other is not None
                    and other.id != conn.id
                    and room in other.rooms
                    and len(other.rooms | {other.room}) > 1
                ):
                    other, other_departure = self._store.connections.unsubscribe(other, room)
                    others.append(other_departure)
                    self._sender.send(
                        other.id, {"type": "left", "room": room, "current": other.room}
                    )
        if departure is not None:
            self._broadcaster.depart(departure)
        for other_departure in others:  # the person's leave is announced once, above
            if other_departure is not None:
                self._broadcaster.depart(other_departure, announce=False)
        self._sender.send(conn.id, {"type": "left", "room": room, "current": conn.room})

    def create(self, conn: Connection, command: protocol.Create) -> None:
        """A room and its owner: a public room's creator owns it if it had no members and
        no owner (chalicelib/store/roles.py); the default room and DMs have none."""
        room = command.room
        if not command.private:
            if (
                conn.user
                and room != self._settings.default_room
                and not room.startswith(DM_PREFIX)
                and self._store.memberships.terms(room) is None
                and self._store.rooms.count(room) == 0
            ):
                self._store.roles.claim_owner(room, conn.user)
            self.join(conn, room)
            return
        if not conn.user:
            raise Refusal(FORBIDDEN, "sign in to create private rooms")
        taken = (
            room.startswith(DM_PREFIX)
            or room == self._settings.default_room
            or self._store.rooms.count(room) > 0
        )
        if taken or not self._store.memberships.create(room, conn.user):
            raise Refusal(FORBIDDEN, f"{room} exists already: choose another name")
        self._store.memberships.add(conn.user, PersonRoom(room, private=True))
        self.join(conn, room)

    def expel(self, room: str, connection_ids: list[str], words: str) -> None:
        """Take `room` from these connections at once (a kick or a ban); each hears why
        (`forbidden`) and `left`. One left with no room leaves the chat: its `left` says
        so (`current` null) and the server closes it, so that it cannot start over on the
        same socket (a ban escaped, a kicked guest back); a new connection is checked
        like any other."""
        for connection_id in connection_ids:
            conn = self._store.connections.get(connection_id)
            if conn is None or room not in conn.rooms | {conn.room}:
                continue
            error = protocol.error_frame(ProtocolError(FORBIDDEN, words))
            self._sender.send(connection_id, error)
            current = None
            if len(conn.rooms | {conn.room}) == 1:
                departures = self._store.connections.remove(connection_id)
                self._broadcaster.gone(connection_id, departures)
            else:
                conn, departure = self._store.connections.unsubscribe(conn, room)
                if departure is not None:
                    self._broadcaster.depart(departure)
                current = conn.room
            self._sender.send(connection_id, {"type": "left", "room": room, "current": current})
            if current is None:
                self._sender.close(connection_id)

    def spread(self, user: str, room: str, entry: PersonRoom, skip: str = "") -> None:
        """A person's new room reaches their live connections at once: each subscribes
        (up to MAX_ROOMS) and hears `added`."""
        _, connections = self._store.memberships.rooms_of(user)
        for connection_id in connections:
            if connection_id == skip:
                continue
            other = self._store.connections.get(connection_id)
            if other is None or len(other.rooms) >= self._settings.max_rooms:
                continue
            if room not in other.rooms:
                other = self._store.connections.subscribe_many(other, [room])
                if other.confirmed:
                    self._broadcaster.announce_presence(
                        room,
                        presence(replace(other, room=room), "join"),
                        exclude=other.id,
                        person=user,
                    )
            frame = {"type": "added", "room": room, "private": entry.private, "dm": entry.dm}
            if entry.peer:
                frame["with"] = entry.peer
            self._sender.send(connection_id, frame)

    def history(self, conn: Connection, command: protocol.History) -> None:
        room = room_of(conn, command.room)
        messages, more = self._store.messages.history(room, command.limit, command.before)
        self._sender.send(conn.id, protocol.history_frame(room, messages, more))

    def who(self, conn: Connection, room: str | None) -> None:
        shown = room_of(conn, room)
        live = self._broadcaster.live_members(shown)
        frame = protocol.members_frame(shown, confirmed_nicks(live), verified_nicks(live))
        self._sender.send(conn.id, frame)

    def listing(self, conn: Connection) -> None:
        """Public rooms with members; private rooms and DMs never appear here."""
        rooms = self._store.rooms.listed()
        private = self._store.memberships.private_among([name for name, _ in rooms])
        listed = [(name, count) for name, count in rooms if name not in private]
        self._sender.send(conn.id, protocol.rooms_frame(listed))

    def _admission(self, conn: Connection, room: str) -> PersonRoom:
        """The person's entry for a room they may join; refused if they may not.
        The answer is the same for a private room that exists and a DM name guessed."""
        refused = Refusal(FORBIDDEN, f"{room} is private: only its members may join it")
        if room in conn.kicked:
            message = f"you were removed from {room}: you cannot rejoin it on this connection"
            raise Refusal(FORBIDDEN, message)
        if conn.user and self._store.roles.banned(room, conn.user):
            raise Refusal(FORBIDDEN, f"you are banned from {room}: a moderator may unban you")
        terms = self._store.memberships.terms(room)
        if terms is None:
            if room.startswith(DM_PREFIX):  # reserved for DMs, made only by `dm`
                raise refused
            return PersonRoom(room)
        if not conn.user:
            raise Refusal(FORBIDDEN, f"{room} is private: sign in to join private rooms and DMs")
        entry = self._store.memberships.room_of(conn.user, room)
        if entry is None and terms.owner == conn.user:  # an owner who left comes back
            return PersonRoom(room, private=True)
        if entry is None:
            raise refused
        return entry
