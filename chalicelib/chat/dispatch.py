"""The chat's entry points: the three websocket routes and the fan-out function.

`Chat` turns each frame into one command (chalicelib/protocol.py) and runs
the one action for it; every failure a user can cause becomes an `error` frame
for that user alone, and a storage failure, or storage too slow to answer
within the frame's budget (chalicelib/budget.py), becomes `unavailable`. Every
frame takes a token of the connection's rate limit first, bad frames too.
"""

from __future__ import annotations

import logging
from typing import Any

from chalicelib import budget, protocol
from chalicelib.attachments import Refused
from chalicelib.chat.broadcaster import Broadcaster
from chalicelib.chat.events import SocketEvent
from chalicelib.chat.identity import Identity
from chalicelib.chat.lifecycle import Lifecycle
from chalicelib.chat.person_rooms import PersonRooms
from chalicelib.chat.posting import Posting
from chalicelib.chat.replies import rate_limited, room_of, unavailable
from chalicelib.chat.rooms import Rooms
from chalicelib.conversation import Conversation
from chalicelib.fanout import Batch
from chalicelib.moderation import Moderation
from chalicelib.outage import STORAGE_ERRORS, log_storage_error
from chalicelib.protocol import Command, ProtocolError, Refusal
from chalicelib.sending import Sender
from chalicelib.settings import Settings
from chalicelib.store import Store
from chalicelib.store.claims import NickTaken
from chalicelib.store.connections import Connection, ConnectionChanged
from chalicelib.store.messages import IdInUse
from chalicelib.store.rates import RateLimited

log = logging.getLogger(__name__)

# Rebuilding a stale copy of a connection and trying again settles a race
# between two frames of the same client; more attempts would only hide a bug.
ATTEMPTS = 3


class Chat:
    def __init__(
        self,
        store: Store,
        sender: Sender,
        settings: Settings,
        broadcaster: Broadcaster,
        lifecycle: Lifecycle,
        rooms: Rooms,
        person_rooms: PersonRooms,
        posting: Posting,
        identity: Identity,
        conversation: Conversation,
        moderation: Moderation,
    ) -> None:
        self._store = store
        self._sender = sender
        self._settings = settings
        self._broadcaster = broadcaster
        self._lifecycle = lifecycle
        self._rooms = rooms
        self._person_rooms = person_rooms
        self._posting = posting
        self._identity = identity
        self._conversation = conversation
        self._moderation = moderation

    def connect(self, event: SocketEvent) -> dict[str, Any] | None:
        return self._lifecycle.connect(event)

    def disconnect(self, event: SocketEvent) -> None:
        self._lifecycle.disconnect(event.connection_id)

    def message(self, event: SocketEvent) -> None:
        """Every frame takes a token of the connection's limit (bad frames too), then runs."""
        connection_id = event.connection_id
        command = protocol.parse_frame(event.body, self._settings)
        with budget.within(budget.FRAME_SECONDS):
            try:
                conn = self._lifecycle.admit(connection_id)
            except RateLimited as limited:
                self._reply_error(connection_id, rate_limited(limited, "frames"))
                return
            except STORAGE_ERRORS as error:
                log_storage_error(error, "message from %s", connection_id)
                self._reply_error(connection_id, unavailable(command))
                return
            if conn is None:  # told `expired` and closed
                return
            if isinstance(command, ProtocolError):
                self._reply_error(connection_id, command)
                return
            self._answer(conn, command, event)

    def fan_out(self, payload: Any) -> None:
        """The `fanout` function: send one batch of a big broadcast (fanout.py)."""
        try:
            batch = Batch.from_payload(payload)
        except ValueError:
            log.exception("fan-out event refused")
            return
        self._sender.use_endpoint(batch.domain_name, batch.stage)
        with budget.within(budget.FANOUT_SECONDS):
            try:
                self._broadcaster.deliver_batch(batch)
            except STORAGE_ERRORS:
                log.exception("fan-out in %s: storage unavailable while cleaning up", batch.room)

    def _answer(self, conn: Connection, command: Command, origin: SocketEvent) -> None:
        """Run a command, trying again on a stale copy of the connection; errors become
        frames for the sender."""
        try:
            for _ in range(ATTEMPTS):
                try:
                    self._run(conn, command, origin)
                    return
                except ConnectionChanged:
                    conn = self._store.connections.get(conn.id) or conn
            log.error("connection %s kept changing during %s", conn.id, command)
        except NickTaken as taken:
            self._reply_error(conn.id, ProtocolError(protocol.NICK_TAKEN, str(taken)))
            return
        except RateLimited as limited:
            self._reply_error(conn.id, rate_limited(limited, "room changes"))
            return
        except IdInUse:
            error = ProtocolError(protocol.BAD_REQUEST, '"id" is another message\'s id')
            self._reply_error(conn.id, error)
            return
        except Refusal as refusal:
            self._reply_error(conn.id, refusal.error)
            return
        except Refused as refused:
            self._reply_error(conn.id, ProtocolError(refused.code, refused.message))
            return
        except STORAGE_ERRORS as error:
            log_storage_error(error, "%s from %s", type(command).__name__, conn.id)
        self._reply_error(conn.id, unavailable(command))

    def _run(self, conn: Connection, command: Command, origin: SocketEvent) -> None:
        """The one action for a command."""
        match command:
            case protocol.SendMessage():
                self._posting.post(conn, command, origin)
            case protocol.Upload():
                self._posting.upload(conn, command)
            case protocol.Download():
                self._posting.download(conn, command)
            case protocol.Join(room=room):
                self._rooms.join(conn, room)
            case protocol.Leave(room=room):
                self._rooms.leave(conn, room or conn.room)
            case protocol.Create():
                self._rooms.create(conn, command)
            case protocol.History():
                self._rooms.history(conn, command)
            case protocol.Who(room=room):
                self._rooms.who(conn, room)
            case protocol.Rooms():
                self._rooms.listing(conn)
            case protocol.Invite():
                self._person_rooms.invite(conn, command.user, command.room or conn.room)
            case protocol.Dm(to=to):
                self._person_rooms.dm(conn, to)
            case protocol.Mine():
                self._person_rooms.mine(conn)
            case protocol.Read():
                self._person_rooms.read(conn, command.room, command.id)
            case protocol.Nick(name=name):
                self._identity.rename(conn, name)
            case protocol.Edit() | protocol.Delete() | protocol.React() | protocol.Typing():
                self._converse(conn, command, origin)
            case protocol.Role() | protocol.Kick() | protocol.Ban():
                self._moderate(conn, command)
            case protocol.Ping():
                self._sender.send(conn.id, {"type": "pong"})
            case protocol.Help():
                self._sender.send(conn.id, {"type": "help", "commands": protocol.HELP})

    def _converse(
        self,
        conn: Connection,
        command: protocol.Edit | protocol.Delete | protocol.React | protocol.Typing,
        origin: SocketEvent,
    ) -> None:
        """Edit, delete, react, typing (conversation.py); what changes reaches the room."""
        room = room_of(conn, command.room)
        self._conversation.run(
            conn,
            room,
            command,
            lambda frame: self._broadcaster.send_to_room(room, frame, conn.id, origin),
        )

    def _moderate(
        self, conn: Connection, command: protocol.Role | protocol.Kick | protocol.Ban
    ) -> None:
        """Roles, kicks and bans (moderation.py); what changes reaches the room."""
        room = room_of(conn, command.room)
        self._moderation.run(
            conn, room, command, lambda frame: self._broadcaster.send_to_room(room, frame, conn.id)
        )

    def _reply_error(self, connection_id: str, error: ProtocolError) -> None:
        self._sender.send(connection_id, protocol.error_frame(error))
