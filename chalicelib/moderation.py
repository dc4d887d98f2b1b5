"""Moderating a room: roles, kicks and bans, every rule checked on the server.

The owner (chalicelib/store/roles.py) names moderators with `role`; admins (the
Cognito group) and moderators delete anyone's message
(chalicelib/conversation.py), `kick` and `ban`. Nobody kicks or bans
themselves or the owner, and only the owner or an admin a moderator. A DM has
no roles, kicks or bans (admins may delete its messages).

A kick takes the room from every connection of the person at once (and, in a
private room, the person's membership: an invitation brings them back); a
guest, having no identity, is kicked by nickname, for the life of its
connection. A ban does what a kick does and keeps the person out: no join, no
connection into the room, no invitation, until `unban`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib import protocol
from chalicelib.protocol import FORBIDDEN, NOT_FOUND, Refusal
from chalicelib.sending import Sender
from chalicelib.store import Store
from chalicelib.store.connections import Connection
from chalicelib.store.memberships import DM_PREFIX
from chalicelib.store.roles import MEMBER, MODERATOR, OWNER, Roles
from chalicelib.text import nick_key

# Broadcast a frame to the room (the sender always gets it).
Tell = Callable[[dict[str, Any]], None]
# Take a room from connections at once, telling each why (chalicelib/chat/rooms.py).
Expel = Callable[[str, list[str], str], None]


def role(roles: Roles, conn: Connection, room: str) -> str:
    """The connection's role in `room`, for `joined`. A DM has no roles and a guest no
    identity (`member`); an admin moderates every room (`moderator`, in rooms they own
    too: the group, read at $connect, answers without a read). Anyone else's costs one
    rank read."""
    if room.startswith(DM_PREFIX) or not conn.user:
        return MEMBER
    if conn.admin:
        return MODERATOR
    return roles.rank(room, conn.user) or MEMBER


def moderates(roles: Roles, conn: Connection, room: str) -> bool:
    """Admins moderate every room; otherwise its owner and moderators (a guest never)."""
    return conn.admin or roles.rank(room, conn.user) in (OWNER, MODERATOR)


class Moderation:
    def __init__(self, store: Store, roles: Roles, sender: Sender, expel: Expel) -> None:
        self._store = store
        self._roles = roles
        self._sender = sender
        self._expel = expel

    def moderates(self, conn: Connection, room: str) -> bool:
        return moderates(self._roles, conn, room)

    def run(self, conn: Connection, room: str, command: protocol.Command, tell: Tell) -> None:
        terms = self._store.memberships.terms(room)
        if terms is not None and terms.dm:
            raise Refusal(FORBIDDEN, "a direct conversation has no roles: nobody is kicked from it")
        rank = "admin" if conn.admin else self._roles.rank(room, conn.user)
        match command:
            case protocol.Role():
                self._role(conn, room, rank, command, tell)
            case protocol.Kick() | protocol.Ban() if rank not in ("admin", OWNER, MODERATOR):
                raise Refusal(FORBIDDEN, f"only moderators of {room} may kick, ban or unban")
            case protocol.Kick(nick=nick) if nick:
                self._kick_guest(conn, room, nick, tell)
            case protocol.Kick(user=user):
                self._check_target(conn, room, rank, user)
                if terms is not None:  # a private room: the invitation goes
                    self._store.memberships.remove(user, room)
                self._expel(room, self._connections(user), f"{conn.nick} removed you from {room}")
                tell({"type": "kicked", "room": room, "user": user, "by": conn.nick})
            case protocol.Ban(banned=True):
                self._check_target(conn, room, rank, command.user)
                self._ban(conn, room, command.user, tell)
            case protocol.Ban():
                self._roles.unban(room, command.user)
                self._sender.send(conn.id, {"type": "unbanned", "room": room, "user": command.user})

    def _role(
        self, conn: Connection, room: str, rank: str, command: protocol.Role, tell: Tell
    ) -> None:
        if rank not in ("admin", OWNER):
            raise Refusal(FORBIDDEN, f"only the owner of {room} names its moderators")
        if self._roles.rank(room, command.user) == OWNER:
            raise Refusal(FORBIDDEN, f"{command.user} owns {room}: the owner's role stays")
        self._roles.set_role(room, command.user, command.role, conn.user)
        tell({"type": "role", "room": room, "user": command.user, "role": command.role})

    def _check_target(self, conn: Connection, room: str, rank: str, user: str) -> None:
        if user == conn.user:
            raise Refusal(protocol.BAD_REQUEST, "you cannot kick or ban yourself")
        theirs = self._roles.rank(room, user)
        if theirs == OWNER:
            raise Refusal(FORBIDDEN, f"{user} owns {room}: nobody kicks or bans the owner")
        if theirs == MODERATOR and rank == MODERATOR:
            raise Refusal(FORBIDDEN, f"{user} moderates {room}: only the owner may remove them")

    def _ban(self, conn: Connection, room: str, user: str, tell: Tell) -> None:
        """Ban first, then remove: any join checked after the ban's write is refused."""
        if not self._roles.ban(room, user, conn.user or conn.nick):
            self._sender.send(
                conn.id, {"type": "banned", "room": room, "user": user, "by": conn.nick}
            )
            return
        self._roles.set_role(room, user, "member", conn.user)
        self._store.memberships.remove(user, room)
        words = f"you are banned from {room} (by {conn.nick}): you cannot rejoin it"
        self._expel(room, self._connections(user), words)
        tell({"type": "banned", "room": room, "user": user, "by": conn.nick})

    def _kick_guest(self, conn: Connection, room: str, nick: str, tell: Tell) -> None:
        """A guest by nickname, kept out for the life of its connection."""
        live, _ = self._store.rooms.members(room) or ([], [])
        guests = [m for m in live if not m.user and nick_key(m.nick) == nick_key(nick)]
        if not guests:
            signed_in = [m for m in live if m.user and nick_key(m.nick) == nick_key(nick)]
            hint = f": kick them as a user ({signed_in[0].user})" if signed_in else ""
            raise Refusal(NOT_FOUND, f"no guest called {nick} is in {room}{hint}")
        ids = [m.connection_id for m in guests]
        for connection_id in ids:
            self._store.connections.keep_out(connection_id, room)
        self._expel(room, ids, f"{conn.nick} removed you from {room}")
        tell({"type": "kicked", "room": room, "nick": guests[0].nick, "by": conn.nick})

    def _connections(self, user: str) -> list[str]:
        _, connections = self._store.memberships.rooms_of(user)
        return connections
