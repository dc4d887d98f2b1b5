"""Posting to a room: `sendmessage`, and the files a message may carry (`upload`, `download`).

A message is stored once, then told to the room; a resend of one that was
stored while its sender heard `unavailable` is told again (members drop copies
by id), never stored twice. A client's own id must be near the server's clock.
Files go straight between the browser and S3 on presigned requests, for
members of the room only; a refused file raises `attachments.Refused`, which
the dispatcher answers like any refusal.
"""

from __future__ import annotations

from chalicelib import protocol
from chalicelib.attachments import Files, Refused
from chalicelib.chat.broadcaster import Broadcaster
from chalicelib.chat.clock import Clock
from chalicelib.chat.events import SocketEvent
from chalicelib.chat.replies import room_of
from chalicelib.ids import id_time_ms
from chalicelib.mentions import Mentions
from chalicelib.protocol import Refusal
from chalicelib.sending import Sender
from chalicelib.store import Store
from chalicelib.store.connections import Connection

# A client's own message id may be this far from the server's clock.
SKEW_MS = 60_000


class Posting:
    def __init__(
        self,
        store: Store,
        sender: Sender,
        clock: Clock,
        broadcaster: Broadcaster,
        mentions: Mentions,
        files: Files | None = None,
    ) -> None:
        self._store = store
        self._sender = sender
        self._clock = clock
        self._broadcaster = broadcaster
        self._mentions = mentions
        # The stage's bucket for attachments (BUCKET_NAME); None: `upload` is refused.
        self._files = files

    def post(self, conn: Connection, command: protocol.SendMessage, origin: SocketEvent) -> None:
        """Store the message once, then tell the room (again, for a resend)."""
        if command.id is not None and abs(id_time_ms(command.id) - self._clock.now_ms()) > SKEW_MS:
            message = f'"id" is more than {SKEW_MS // 1000} s from the server\'s clock'
            raise Refusal(protocol.BAD_REQUEST, message)
        room = room_of(conn, command.room)
        attachment = None
        if command.attachment is not None:
            ref = command.attachment
            attachment = self._uploads().check(room, ref.key, ref.width, ref.height)
        mentions = self._mentions(room, command.text) if command.text else []
        message, _ = self._store.messages.add(
            room, conn, command.text, command.id, mentions, attachment
        )
        frame = protocol.message_frame(message)
        self._broadcaster.send_to_room(room, frame, always=conn.id, origin=origin)

    def upload(self, conn: Connection, command: protocol.Upload) -> None:
        """A presigned POST of a file to the room's part of the bucket."""
        room = room_of(conn, command.room)
        post = self._uploads().presign_upload(room, command.name, command.type, command.size)
        self._sender.send(conn.id, {"type": "upload", "room": room, "name": command.name, **post})

    def download(self, conn: Connection, command: protocol.Download) -> None:
        """A presigned GET of the file a message of the room carries."""
        room = room_of(conn, command.room)
        files = self._uploads()
        attachment = self._store.messages.attachment(room, command.id)
        if attachment is None:
            raise Refused(protocol.NOT_FOUND, f"no message {command.id} with a file")
        url = files.presign_download(attachment)
        answer = {"type": "download", "room": room, "id": command.id, "url": url}
        answer["attachment"] = attachment.shown()
        self._sender.send(conn.id, answer)

    def _uploads(self) -> Files:
        if self._files is None:
            raise Refused(protocol.BAD_REQUEST, "this chat has no file storage (BUCKET_NAME)")
        return self._files
