"""Acting on a room's messages: edit and delete, reactions, and typing.

The caller (chalicelib/chat/dispatch.py) has checked that the room is one of the
sender's; every other rule is checked here, on the server, against the stored
message: only its sender edits it, its sender or a moderator deletes it, a
deleted message takes no edit or reaction, an unknown id is `not_found`.
Repeating a change changes nothing and answers the sender alone: a second
`delete` its `deleted`, an edit to the same text its `edited`, a reaction set
to what it is its `reactions`.

Typing is never stored: at most one frame per connection every TYPING_MS
(a token on the connection item, like the frame limit), the others dropped
without an answer, and none in a room over the presence limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib import protocol
from chalicelib.limits import Rate
from chalicelib.protocol import NOT_FOUND, Refusal
from chalicelib.sending import Sender
from chalicelib.settings import Settings
from chalicelib.store import Store
from chalicelib.store.connections import Connection
from chalicelib.store.messages import (
    ATTEMPTS,
    MAX_REACTIONS,
    Conflict,
    Stored,
    iso_timestamp,
    reactor_key,
    summary,
)
from chalicelib.store.rates import RateLimited

TYPING_MS = 3000
TYPING_RATE = Rate(TYPING_MS, 1)
TOO_MANY_REACTIONS = "too_many_reactions"

# Broadcast a frame to the room the command acts on (the sender always gets it).
Tell = Callable[[dict[str, Any]], None]
# Whether a connection moderates a room (chalicelib/moderation.py).
Moderates = Callable[[Connection, str], bool]
# The usernames a text mentions in a room (chalicelib/mentions.py).
Mentions = Callable[[str, str], list[str]]


class Conversation:
    def __init__(
        self,
        store: Store,
        sender: Sender,
        settings: Settings,
        moderates: Moderates,
        mentions: Mentions,
    ) -> None:
        self._store = store
        self._changes = store.messages
        self._sender = sender
        self._settings = settings
        self._moderates = moderates
        self._mentions = mentions

    def run(self, conn: Connection, room: str, command: protocol.Command, tell: Tell) -> None:
        match command:
            case protocol.Edit():
                self._retry(lambda: self._edit(conn, room, command, tell))
            case protocol.Delete():
                self._retry(lambda: self._delete(conn, room, command.id, tell))
            case protocol.React():
                self._retry(lambda: self._react(conn, room, command, tell))
            case protocol.Typing():
                self._typing(conn, room)

    def _retry(self, change: Callable[[], None]) -> None:
        """Run a read-check-write again when another change came in between."""
        for _ in range(ATTEMPTS):
            try:
                change()
                return
            except Conflict:
                continue
        raise Refusal(protocol.UNAVAILABLE, "the message is changing a lot: try again")

    def _message(self, room: str, message_id: str, alive: bool = True) -> Stored:
        message = self._changes.get(room, message_id)
        if message is None:
            raise Refusal(NOT_FOUND, f"{room} has no message {message_id}")
        if alive and message.deleted:
            raise Refusal(NOT_FOUND, f"message {message_id} was deleted")
        return message

    def _edit(self, conn: Connection, room: str, command: protocol.Edit, tell: Tell) -> None:
        message = self._message(room, command.id)
        if not message.is_by(conn.user, conn.id):
            raise Refusal(protocol.FORBIDDEN, "you can only edit your own messages")
        if message.text == command.text:
            self._sender.send(conn.id, protocol.edited_frame(message.shown))
            return
        mentions = self._mentions(room, command.text)
        now = iso_timestamp(self._store.now_ms())
        tell(protocol.edited_frame(self._changes.edit(message, command.text, now, mentions)))

    def _delete(self, conn: Connection, room: str, message_id: str, tell: Tell) -> None:
        message = self._message(room, message_id, alive=False)
        own = message.is_by(conn.user, conn.id)
        if not own and not self._moderates(conn, room):
            raise Refusal(
                protocol.FORBIDDEN,
                "you can only delete your own messages: moderators delete others'",
            )
        if message.deleted:
            self._sender.send(conn.id, protocol.deleted_frame(room, message_id))
            return
        self._changes.delete(message)
        tell(protocol.deleted_frame(room, message_id, None if own else conn.nick))

    def _react(self, conn: Connection, room: str, command: protocol.React, tell: Tell) -> None:
        message = self._message(room, command.id)
        key = reactor_key(conn.user, conn.id)
        reactions = [(emoji, dict(who)) for emoji, who in message.reactions]
        entry = next((who for emoji, who in reactions if emoji == command.emoji), None)
        present = entry is not None and key in entry
        wanted = not present if command.on is None else command.on
        if wanted == present:
            frame = protocol.reactions_frame(room, message.id, summary(reactions))
            self._sender.send(conn.id, frame)
            return
        if entry is None:
            if len([who for _, who in reactions if who]) >= MAX_REACTIONS:
                raise Refusal(
                    TOO_MANY_REACTIONS,
                    f"a message has at most {MAX_REACTIONS} different reactions: "
                    "add one of those it has",
                )
            entry = {}
            reactions.append((command.emoji, entry))
        if wanted:
            entry[key] = conn.nick
        else:
            del entry[key]
        shown = self._changes.react(message, reactions)
        tell(protocol.reactions_frame(room, message.id, shown.get("reactions", [])))

    def _typing(self, conn: Connection, room: str) -> None:
        """Tell the room's other members (not the typist's other tabs), if within the limits."""
        try:
            self._store.connections.admit_typing(conn, TYPING_RATE)
        except RateLimited:
            return  # dropped silently: a typing indicator is no request
        members = self._store.rooms.members(room, at_most=self._settings.presence_limit)
        if members is None:
            return
        live, _ = members
        targets = [
            m.connection_id
            for m in live
            if m.connection_id != conn.id and not (conn.user and m.user == conn.user)
        ]
        frame = protocol.typing_frame(room, conn.nick, bool(conn.user))
        self._sender.broadcast(targets, protocol.encode(frame))
