"""Who a connection is called: `nick` renames a guest in every room it is in.

A signed-in person's nickname is their username and stays. The new name is
claimed in every room before anything changes (a clash in one takes back the
others); the old one is freed only once each room has heard of the change, so
nobody is announced under it before its holder's rename.
"""

from __future__ import annotations

from dataclasses import replace

from chalicelib.chat.broadcaster import Broadcaster, presence
from chalicelib.protocol import FORBIDDEN, Refusal
from chalicelib.sending import Sender
from chalicelib.store import Store
from chalicelib.store.claims import NickTaken
from chalicelib.store.connections import Connection
from chalicelib.text import nick_key


class Identity:
    def __init__(self, store: Store, sender: Sender, broadcaster: Broadcaster) -> None:
        self._store = store
        self._sender = sender
        self._broadcaster = broadcaster

    def rename(self, conn: Connection, nick: str) -> None:
        if conn.user:
            message = f"you are signed in: your nickname is your username, {conn.user}"
            raise Refusal(FORBIDDEN, message)
        rooms = sorted(conn.rooms | {conn.room}, key=lambda r: r != conn.room)
        self._claim_everywhere(conn, nick, rooms)
        renamed = self._store.connections.rename(conn, nick)
        try:
            for room in rooms:
                frame = presence(replace(renamed, room=room), "nick", previous=conn.nick)
                told = self._broadcaster.announce_presence(room, frame, always=conn.id)
                # The renamer always gets the frame (of its current room): the acknowledgement.
                if told is None and room == conn.room:
                    self._sender.send(conn.id, frame(self._store.rooms.count(room)))
        finally:
            if nick_key(nick) != nick_key(conn.nick):  # see Broadcaster.depart
                for room in rooms:
                    self._store.claims.release_nick(room, conn.nick, conn.id)

    def _claim_everywhere(self, conn: Connection, nick: str, rooms: list[str]) -> None:
        """The new name in every room, or in none (NickTaken)."""
        held: list[str] = []
        try:
            for room in rooms:
                self._broadcaster.nicknames.hold(room, nick, conn.id, conn.connected_at)
                held.append(room)
        except NickTaken:
            if nick_key(nick) != nick_key(conn.nick):
                for room in held:
                    self._store.claims.release_nick(room, nick, conn.id)
            raise
