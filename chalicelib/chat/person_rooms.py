"""A signed-in person's rooms: invitations to private rooms, DMs, the list with unread
counts, and read markers.

A private room's owner, its moderators and admins invite (the rule of
chalicelib/moderation.py); only a person who has signed in here can be invited
or sent a DM, so a mistyped name is `not_found` and writes nothing.

These belong to the person, not the connection: an invitation or a DM reaches
every connection of theirs at once, and a read marker is the same on all of
them. Guests have none of it.
"""

from __future__ import annotations

from typing import Any

from chalicelib import protocol
from chalicelib.chat.rooms import Rooms
from chalicelib.moderation import moderates
from chalicelib.protocol import FORBIDDEN, NOT_FOUND, Refusal
from chalicelib.sending import Sender
from chalicelib.store import Store
from chalicelib.store.connections import Connection
from chalicelib.store.memberships import PersonRoom, dm_room


class PersonRooms:
    def __init__(self, store: Store, sender: Sender, rooms: Rooms) -> None:
        self._store = store
        self._sender = sender
        self._rooms = rooms

    def invite(self, conn: Connection, user: str, room: str) -> None:
        """The owner, a moderator or an admin adds a person who has signed in here to a
        private room; the room reaches them at once. Anyone else, or a name nobody
        has, changes nothing."""
        if not conn.user:
            raise Refusal(FORBIDDEN, "sign in to invite people to private rooms")
        terms = self._store.memberships.terms(room)
        if terms is None or terms.dm or not moderates(self._store.roles, conn, room):
            message = f"only the owner or a moderator of private room {room} may invite to it"
            raise Refusal(FORBIDDEN, message)
        if self._store.roles.banned(room, user):
            raise Refusal(FORBIDDEN, f"{user} is banned from {room}: unban them first")
        self._require_known(user)
        entry = PersonRoom(room, private=True)
        self._store.memberships.add(user, entry)
        self._rooms.spread(user, room, entry)
        self._sender.send(conn.id, {"type": "invited", "room": room, "user": user})

    def dm(self, conn: Connection, to: str) -> None:
        """Open (or reopen) the one conversation of two people; both have it at once."""
        if not conn.user:
            raise Refusal(FORBIDDEN, "sign in to send direct messages")
        if to == conn.user:
            raise Refusal(protocol.BAD_REQUEST, "a direct message needs another user")
        self._require_known(to)
        room = dm_room(conn.user, to)
        self._store.memberships.create(room, "", dm=True)
        self._store.memberships.add(conn.user, PersonRoom(room, private=True, dm=True, peer=to))
        theirs = PersonRoom(room, private=True, dm=True, peer=conn.user)
        self._store.memberships.add(to, theirs)
        self._rooms.spread(to, room, theirs)
        self._rooms.join(conn, room)

    def _require_known(self, user: str) -> None:
        """Only a person who has signed in here can be invited or DM'd: a typo must not
        make a membership or a DM for nobody."""
        if not self._store.memberships.known(user):
            raise Refusal(NOT_FOUND, f"nobody named {user} has signed in to this chat yet")

    def mine(self, conn: Connection) -> None:
        """`mine`: the connection's rooms; a person's with unread counts (one Query each)."""
        entries: dict[str, PersonRoom] = {}
        if conn.user:
            stored, _ = self._store.memberships.rooms_of(conn.user)
            entries = {entry.room: entry for entry in stored}
        rooms = []
        for room in sorted(conn.rooms | {conn.room}):
            entry = entries.get(room, PersonRoom(room))
            described: dict[str, Any] = {"room": room, "private": entry.private, "dm": entry.dm}
            if entry.peer:
                described["with"] = entry.peer
            if conn.user:
                unread = self._store.memberships.unread(room, entry.read, conn.user, entry.dm)
                described.update(
                    unread=protocol.unread_label(unread.count),
                    mentions=unread.mentions,
                    last=unread.last,
                )
            else:  # a guest has no read markers
                described.update(unread=0, mentions=0, last=None)
            rooms.append(described)
        self._sender.send(conn.id, protocol.mine_frame(rooms, conn.room))

    def read(self, conn: Connection, room: str, message_id: str) -> None:
        """Mark a person's room read up to a message, for all their connections."""
        if not conn.user:
            raise Refusal(FORBIDDEN, "sign in to keep read markers")
        if not self._store.memberships.mark_read(conn.user, room, message_id):
            raise Refusal(protocol.NOT_IN_ROOM, f"you are not in {room}: join it first")
        entry = self._store.memberships.room_of(conn.user, room)
        unread = self._store.memberships.unread(
            room, entry.read if entry else message_id, conn.user, bool(entry and entry.dm)
        )
        frame = {"type": "read", "room": room, "id": message_id}
        frame["unread"] = protocol.unread_label(unread.count)
        _, connections = self._store.memberships.rooms_of(conn.user)
        self._sender.broadcast(sorted(set(connections) | {conn.id}), protocol.encode(frame))
