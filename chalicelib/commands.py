"""The chat itself: what each websocket event and each command does.

`Chat` ties the protocol (what a frame means), the store (what is true) and the
sender (who hears about it) together. Every failure a user can cause becomes an
`error` frame for that user alone; a DynamoDB failure, or DynamoDB too slow to
answer within the frame's budget (chalicelib/budget.py), becomes `unavailable`.

Abuse limits: a frame costs a token of the connection's rate limit (taken in
the same request that reads the connection), a room change one of its join
quota, a connection one of its address's slots; nicknames are unique in a room.
Departures cost at most one presence frame per member they are announced to,
and members found gone while announcing are removed without an announcement
of their own, so a wave of leaves costs O(n), not O(n^2).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from chalice.app import WebsocketEvent

from chalicelib import budget, origins, protocol
from chalicelib.attachments import Files, Refused
from chalicelib.auth import Unauthorized, Verifier
from chalicelib.conversation import Conversation
from chalicelib.fanout import Batch, FanOut
from chalicelib.ids import id_time_ms
from chalicelib.memberships import DM_PREFIX, PersonRoom, dm_room
from chalicelib.mentions import Mentions
from chalicelib.moderation import Moderation
from chalicelib.outage import STORAGE_ERRORS, log_storage_error
from chalicelib.protocol import Command, ProtocolError, Refusal
from chalicelib.roles import ADMIN_GROUP
from chalicelib.sending import Sender
from chalicelib.settings import Settings
from chalicelib.storage import (
    AddressFull,
    ChatStore,
    Connection,
    ConnectionChanged,
    Departure,
    IdInUse,
    Member,
    NickTaken,
    RateLimited,
    iso_timestamp,
)
from chalicelib.text import nick_key

log = logging.getLogger(__name__)

# Builds a frame from the number of members in the room (presence frames carry it).
FrameFor = Callable[[int], dict[str, Any]]

# Rebuilding a stale copy of a connection and trying again settles a race
# between two frames of the same client; more attempts would only hide a bug.
ATTEMPTS = 3

# How long after connecting a 410 from API Gateway may mean "not open yet"
# rather than "gone" (the $connect handler can still be running).
OPENING_GRACE_MS = 10_000

# A gone holder's name is freed by its $disconnect once the room has heard it left;
# taking the name over waits that long at most, then frees it (that $disconnect failed).
TAKEOVER_WAITS = 10
TAKEOVER_PAUSE_SECONDS = 0.05

# A client's own message id may be this far from the server's clock.
SKEW_MS = 60_000


def guest_nick(connection_id: str, digits: int = 4) -> str:
    """The nickname a connection starts with: stable for its id, no lookups needed."""
    return "guest-" + hashlib.blake2s(connection_id.encode()).hexdigest()[:digits]


def _confirmed_nicks(members: Iterable[Member]) -> list[str]:
    """Each person once: a signed-in person's tabs share their name."""
    return sorted({m.nick for m in members if m.confirmed}, key=str.casefold)


def _verified_nicks(members: Iterable[Member]) -> list[str]:
    return sorted({m.nick for m in members if m.confirmed and m.user}, key=str.casefold)


def _people(members: Iterable[Member]) -> int:
    """Confirmed members, a signed-in person counted once however many tabs they have."""
    return len({m.user or m.connection_id for m in members if m.confirmed})


def _other_tab(live: list[Member] | None, member: Member) -> Member | None:
    """Another confirmed connection of a signed-in member's person, in `live`."""
    if not member.user or not live:
        return None
    return next(
        (
            m
            for m in live
            if m.user == member.user and m.confirmed and m.connection_id != member.connection_id
        ),
        None,
    )


def _refusal(status: int, code: str, message: str) -> dict[str, Any]:
    """A `$connect` answer that rejects the upgrade; the body says why, for tools like wscat."""
    return {"statusCode": status, "body": protocol.encode({"code": code, "message": message})}


class Chat:
    def __init__(
        self,
        store: ChatStore,
        sender: Sender,
        settings: Settings,
        fanout: FanOut | None = None,
        verifier: Verifier | None = None,
        files: Files | None = None,
    ) -> None:
        self._store = store
        self._sender = sender
        self._settings = settings
        self._fanout = fanout
        # Set with AUTH=cognito: every connection signs in, and its nickname is its username.
        self._verifier = verifier
        # The stage's bucket for attachments (BUCKET_NAME); None: `upload` is refused.
        self._files = files
        self._mentions = Mentions(store.people)
        self._moderation = Moderation(store, store.roles, sender, self._expel)
        self._conversation = Conversation(
            store, sender, settings, self._moderation.moderates, self._mentions
        )

    # Events: the three websocket routes and the fan-out function ---------------------

    def connect(self, event: WebsocketEvent) -> dict[str, Any] | None:
        """Register the connection, pending, in its first room; a non-2xx answer rejects
        the upgrade. `?nick=` and `?room=` on the URL pick the first nickname and room."""
        raw = event.to_dict()
        headers = {key.lower(): value for key, value in (raw.get("headers") or {}).items()}
        origin = headers.get("origin")
        if not origins.allowed(origin, self._settings.allowed_origins):
            return _refusal(403, protocol.FORBIDDEN_ORIGIN, f"origin {origin} may not connect")
        query = raw.get("queryStringParameters") or {}
        nick = protocol.validate_nick(
            query.get("nick", guest_nick(event.connection_id)), self._settings
        )
        join = protocol.validate_room(
            query.get("room", self._settings.default_room), self._settings
        )
        for invalid in (nick, join):
            if isinstance(invalid, ProtocolError):
                return _refusal(400, invalid.code, invalid.message)
        ip = raw.get("requestContext", {}).get("identity", {}).get("sourceIp", "")
        with budget.within(budget.CONNECT_SECONDS):
            if self._settings.auth != "none" and self._verifier is None and "token" in query:
                return _refusal(401, protocol.UNAUTHORIZED, "this chat has no sign-in set up")
            guest = self._settings.auth == "optional" and "token" not in query
            if self._verifier is None or guest:
                chosen = "nick" in query
                return self._register(event.connection_id, nick.name, join.room, ip, chosen)
            # Checked before anything is written: a refused connection leaves no trace.
            try:
                identity = self._verifier.identify(query.get("token"))
            except Unauthorized as refused:
                return _refusal(401, protocol.UNAUTHORIZED, str(refused))
            except STORAGE_ERRORS as error:
                log_storage_error(error, "connect %s: Cognito", event.connection_id)
                return _refusal(503, protocol.UNAVAILABLE, "sign-in could not be checked")
            return self._register(
                event.connection_id,
                identity.username,
                join.room,
                ip,
                True,
                identity.username,
                ADMIN_GROUP in identity.groups,
            )

    def disconnect(self, event: WebsocketEvent) -> None:
        with budget.within(budget.FRAME_SECONDS):
            try:
                self._gone(event.connection_id, self._store.remove_connection(event.connection_id))
            except STORAGE_ERRORS as error:
                log_storage_error(error, "disconnect %s (TTL will clean it)", event.connection_id)

    def message(self, event: WebsocketEvent) -> None:
        """Every frame takes a token of the connection's limit (bad frames too), then runs."""
        connection_id = event.connection_id
        command = protocol.parse_frame(event.to_dict().get("body"), self._settings)
        with budget.within(budget.FRAME_SECONDS):
            try:
                conn = self._admit(connection_id)
            except RateLimited as limited:
                self._reply_error(connection_id, _rate_limited(limited, "frames"))
                return
            except STORAGE_ERRORS as error:
                log_storage_error(error, "message from %s", connection_id)
                self._reply_error(connection_id, _unavailable(command))
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
                gone = self._deliver(batch.connection_ids, batch.data, set(batch.opening))
                self._evict(batch.room, gone, announce=True)
            except STORAGE_ERRORS:
                log.exception("fan-out in %s: storage unavailable while cleaning up", batch.room)

    # Connecting and the first frame ----------------------------------------------------

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
        now = self._store.now_ms()
        try:
            if user and self._store.roles.banned(room, user):
                return _refusal(403, protocol.FORBIDDEN, f"you are banned from {room}")
            if not self._may_enter(room, user):
                message = f"{room} is private: only its members may join it"
                return _refusal(403, protocol.FORBIDDEN, message)
            slot = self._store.claim_slot(ip, connection_id)
            nick = self._claim(room, nick, connection_id, now, chosen, False, user)
            conn = self._store.add_connection(
                connection_id, nick, room, ip, slot, connected_at=now, user=user, admin=admin
            )
            if user:
                self._subscribe_person(conn)
        except AddressFull:
            limit = self._settings.connections_per_ip
            return _refusal(429, protocol.TOO_MANY_CONNECTIONS, f"at most {limit} per address")
        except NickTaken:
            assert slot is not None  # the nickname is claimed after the slot
            self._store.release_slot(ip, slot, connection_id)
            return _refusal(409, protocol.NICK_TAKEN, f"{nick} is taken in {room}")
        except STORAGE_ERRORS as error:
            log_storage_error(error, "connect %s", connection_id)
            self._forget(connection_id, room, nick, ip, slot)
            return _refusal(503, protocol.UNAVAILABLE, "chat storage unavailable")
        return None

    def _claim(
        self,
        room: str,
        nick: str,
        connection_id: str,
        connected_at: int,
        chosen: bool,
        confirmed: bool,
        user: str = "",
    ) -> str:
        """Claim `nick`, or for a guest name a longer one until one is free."""
        for digits in (4, 6, 8, 12) if not chosen else (0,):
            name = nick if chosen else guest_nick(connection_id, digits)
            try:
                self._hold(room, name, connection_id, connected_at, confirmed, user)
            except NickTaken:
                continue
            return name
        raise NickTaken(nick, room)

    def _hold(
        self,
        room: str,
        nick: str,
        connection_id: str,
        connected_at: int,
        confirmed: bool = True,
        user: str = "",
    ) -> None:
        """Claim a nickname; one held by a connection API Gateway says is gone (a page
        reconnecting before its old connection's $disconnect ran) is taken over."""
        try:
            self._store.claim_nick(room, nick, connection_id, connected_at, confirmed, user)
        except NickTaken as taken:
            # A 410 for a holder whose $connect may still be running means "not open yet";
            # one that has sent a frame has opened, and a 410 for it means gone.
            recent = taken.holder_connected_at > self._store.now_ms() - OPENING_GRACE_MS
            opening = recent and not taken.holder_confirmed
            if not taken.holder or opening or not self._sender.is_gone(taken.holder):
                raise
            self._evict(room, [taken.holder], announce=True)
            for _ in range(TAKEOVER_WAITS):
                try:
                    self._store.claim_nick(room, nick, connection_id, connected_at, confirmed, user)
                    return
                except NickTaken as again:
                    if again.holder != taken.holder:
                        raise
                # Its $disconnect removed it first and is telling the room it left.
                time.sleep(TAKEOVER_PAUSE_SECONDS)
            self._store.release_nick(room, nick, taken.holder)
            self._store.claim_nick(room, nick, connection_id, connected_at, confirmed, user)

    def _subscribe_person(self, conn: Connection) -> Connection:
        """A signed-in person's connection receives all their rooms (up to MAX_ROOMS):
        one Query of their rooms, batch writes of the subscriptions."""
        people = self._store.people
        people.add_connection(
            conn.user, conn.id, self._store.now_ms() // 1000 + self._settings.connection_ttl_seconds
        )
        rooms, _ = people.rooms_of(conn.user)
        if conn.room not in {r.room for r in rooms}:  # a new room: its past is not unread
            newest, _ = self._store.history(conn.room, 1)
            people.add(conn.user, PersonRoom(conn.room, read=newest[-1]["id"] if newest else ""))
        names = [r.room for r in rooms if r.room != conn.room][: self._settings.max_rooms - 1]
        return self._store.subscribe_many(conn, names)

    def _may_enter(self, room: str, user: str) -> bool:
        """`?room=` on $connect: a private room only for its members (the default room
        is never private: `create` refuses it, so connecting there costs no read)."""
        if room == self._settings.default_room:
            return True
        if room.startswith(DM_PREFIX) and not user:
            return False
        terms = self._store.people.terms(room)
        if terms is None:
            return not room.startswith(DM_PREFIX)
        return bool(user) and self._store.people.room_of(user, room) is not None

    def _forget(self, connection_id: str, room: str, nick: str, ip: str, slot: int | None) -> None:
        """Best effort after a failed $connect: what it wrote is pending and expires anyway."""
        try:
            with budget.within(budget.CLEANUP_SECONDS):
                self._store.remove_connection(connection_id, room_hint=room)
                self._store.release_nick(room, nick, connection_id)
                if slot is not None:
                    self._store.release_slot(ip, slot, connection_id)
        except STORAGE_ERRORS:
            log.warning("connect %s: left pending items to expire", connection_id)

    def _admit(self, connection_id: str) -> Connection | None:
        """The sender's connection, a frame token taken. Its first frame confirms it (and
        announces it). One missing from the table (expired, or cleaned after a failed
        send while it was still open) is registered again as a guest where nobody signs
        in; where people sign in it may have been a person, who must not go on as a
        guest: it is told `expired` and closed, to reconnect with its token (None)."""
        conn = self._store.admit(connection_id, self._settings.frame_rate)
        if conn is None and self._verifier is not None:
            message = "your connection expired: reconnect"
            self._reply_error(connection_id, ProtocolError(protocol.EXPIRED, message))
            self._sender.close(connection_id)
            return None
        if conn is None:
            room, now = self._settings.default_room, self._store.now_ms()
            nick = self._claim(room, "", connection_id, now, chosen=False, confirmed=True)
            return self._store.add_connection(
                connection_id, nick, room, connected_at=now, confirmed=True
            )
        if conn.confirmed:
            return conn
        try:
            self._hold(conn.room, conn.nick, conn.id, conn.connected_at, user=conn.user)
        except NickTaken:
            # Its nickname went to another while it was pending: it becomes a guest.
            guest = self._claim(
                conn.room, "", conn.id, conn.connected_at, chosen=False, confirmed=True
            )
            conn = self._store.rename(conn, guest)
            count = self._store.confirm(conn)
            message = f"your nickname went to another member; you are {guest}"
            self._reply_error(conn.id, ProtocolError(protocol.NICK_TAKEN, message))
        else:
            count = self._store.confirm(conn)
        confirmed = replace(conn, confirmed=True)
        for room in sorted(confirmed.rooms | {confirmed.room}, key=lambda r: r != conn.room):
            self._tell_room(
                room,
                self._presence(replace(confirmed, room=room), "join"),
                count=count if room == conn.room else None,
                presence=True,
                exclude=conn.id,
                person=conn.user,
            )
        if confirmed.user:  # a guest's only room is the one it asked for
            self._send_mine(confirmed)
        return confirmed

    # Commands ------------------------------------------------------------------------

    def _answer(self, conn: Connection, command: Command, origin: WebsocketEvent) -> None:
        """Run a command, trying again on a stale copy of the connection; errors become
        frames for the sender."""
        try:
            for _ in range(ATTEMPTS):
                try:
                    self._run(conn, command, origin)
                    return
                except ConnectionChanged:
                    conn = self._store.get_connection(conn.id) or conn
            log.error("connection %s kept changing during %s", conn.id, command)
        except NickTaken as taken:
            self._reply_error(conn.id, ProtocolError(protocol.NICK_TAKEN, str(taken)))
            return
        except RateLimited as limited:
            self._reply_error(conn.id, _rate_limited(limited, "room changes"))
            return
        except IdInUse:
            error = ProtocolError(protocol.BAD_REQUEST, '"id" is another message\'s id')
            self._reply_error(conn.id, error)
            return
        except Refusal as refusal:
            self._reply_error(conn.id, refusal.error)
            return
        except STORAGE_ERRORS as error:
            log_storage_error(error, "%s from %s", type(command).__name__, conn.id)
        self._reply_error(conn.id, _unavailable(command))

    def _run(self, conn: Connection, command: Command, origin: WebsocketEvent) -> None:
        match command:
            case protocol.SendMessage():
                self._post(conn, command, origin)
            case protocol.Join(room=room):
                self._join(conn, room)
            case protocol.Leave(room=room):
                self._leave(conn, room or conn.room)
            case protocol.Create():
                self._create(conn, command)
            case protocol.Invite():
                self._invite(conn, command.user, command.room or conn.room)
            case protocol.Dm(to=to):
                self._dm(conn, to)
            case protocol.Mine():
                self._send_mine(conn)
            case protocol.Read():
                self._read(conn, command.room, command.id)
            case protocol.Nick(name=name):
                self._rename(conn, name)
            case protocol.History(room=room):
                if self._in_room(conn, room):
                    shown = room or conn.room
                    messages, more = self._store.history(shown, command.limit, command.before)
                    self._sender.send(conn.id, protocol.history_frame(shown, messages, more))
            case protocol.Who(room=room):
                if self._in_room(conn, room):
                    live = self._live_members(room or conn.room)
                    frame = protocol.members_frame(
                        room or conn.room, _confirmed_nicks(live), _verified_nicks(live)
                    )
                    self._sender.send(conn.id, frame)
            case protocol.Rooms():
                self._send_rooms(conn)
            case protocol.Edit() | protocol.Delete() | protocol.React() | protocol.Typing():
                if self._in_room(conn, command.room):
                    room = command.room or conn.room
                    self._conversation.run(
                        conn,
                        room,
                        command,
                        lambda frame: self._tell_room(
                            room, lambda count: frame, always=conn.id, origin=origin
                        ),
                    )
            case protocol.Role() | protocol.Kick() | protocol.Ban():
                if self._in_room(conn, command.room):
                    room = command.room or conn.room
                    self._moderation.run(
                        conn,
                        room,
                        command,
                        lambda frame: self._tell_room(room, lambda count: frame, always=conn.id),
                    )
            case protocol.Ping():
                self._sender.send(conn.id, {"type": "pong"})
            case protocol.Help():
                self._sender.send(conn.id, {"type": "help", "commands": protocol.HELP})
            case protocol.Upload() | protocol.Download():
                self._file(conn, command)

    def _in_room(self, conn: Connection, room: str | None) -> bool:
        """Whether a frame's `room` is one of the connection's (None: the current one);
        if not, the sender is told, and nothing else happens."""
        if room is None or room in conn.rooms or room == conn.room:
            return True
        message = f"you are not in {room}: join it first"
        self._reply_error(conn.id, ProtocolError(protocol.NOT_IN_ROOM, message))
        return False

    def _send_rooms(self, conn: Connection) -> None:
        """Public rooms with members; private rooms and DMs never appear here."""
        rooms = self._store.rooms()
        private = self._store.people.private_among([name for name, _ in rooms])
        listed = [(name, count) for name, count in rooms if name not in private]
        self._sender.send(conn.id, protocol.rooms_frame(listed))

    def _post(
        self, conn: Connection, command: protocol.SendMessage, origin: WebsocketEvent
    ) -> None:
        """Store the message once, then tell the room (again, for a resend of a message
        that was stored while its sender heard `unavailable`: members drop copies by id)."""
        if command.id is not None and abs(id_time_ms(command.id) - self._store.now_ms()) > SKEW_MS:
            message = f'"id" is more than {SKEW_MS // 1000} s from the server\'s clock'
            self._reply_error(conn.id, ProtocolError(protocol.BAD_REQUEST, message))
            return
        if not self._in_room(conn, command.room):
            return
        room = command.room or conn.room
        attachment = None
        if command.attachment is not None:
            ref = command.attachment
            try:
                attachment = self._uploads().check(room, ref.key, ref.width, ref.height)
            except Refused as refused:
                self._reply_error(conn.id, ProtocolError(refused.code, refused.message))
                return
        mentions = self._mentions(room, command.text) if command.text else []
        message, _ = self._store.add_message(
            room, conn, command.text, command.id, mentions, attachment
        )
        frame = protocol.message_frame(message)
        self._tell_room(room, lambda count: frame, always=conn.id, origin=origin)

    def _uploads(self) -> Files:
        if self._files is None:
            raise Refused(protocol.BAD_REQUEST, "this chat has no file storage (BUCKET_NAME)")
        return self._files

    def _file(self, conn: Connection, command: protocol.Upload | protocol.Download) -> None:
        """`upload`: a presigned POST; `download`: a presigned GET of a message's file;
        for members of the room only."""
        if not self._in_room(conn, command.room):
            return
        room = command.room or conn.room
        try:
            files = self._uploads()
            if isinstance(command, protocol.Upload):
                post = files.presign_upload(room, command.name, command.type, command.size)
                answer = {"type": "upload", "room": room, "name": command.name, **post}
            else:
                attachment = self._store.attachment(room, command.id)
                if attachment is None:
                    raise Refused(protocol.NOT_FOUND, f"no message {command.id} with a file")
                url = files.presign_download(attachment)
                answer = {"type": "download", "room": room, "id": command.id, "url": url}
                answer["attachment"] = attachment.shown()
        except Refused as refused:
            self._reply_error(conn.id, ProtocolError(refused.code, refused.message))
            return
        self._sender.send(conn.id, answer)

    def _join(self, conn: Connection, room: str) -> None:
        """Add `room` to the connection's rooms (and its person's) and make it current;
        a private room or DM only for those it belongs to."""
        live = None
        added = None
        if room not in conn.rooms and room != conn.room:
            entry = self._admission(conn, room)
            if entry is None:
                return
            if len(conn.rooms) >= self._settings.max_rooms:
                limit = self._settings.max_rooms
                message = f"you are in {limit} rooms, the most there can be: leave one first"
                self._reply_error(conn.id, ProtocolError(protocol.TOO_MANY_ROOMS, message))
                return
            self._store.admit_join(conn, self._settings.join_rate)
            self._hold(room, conn.nick, conn.id, conn.connected_at, user=conn.user)
            conn = self._store.subscribe(conn, room)
            added = entry
            live = self._tell_room(
                room,
                self._presence(conn, "join"),
                presence=True,
                exclude=conn.id,
                person=conn.user,
            )
        elif room != conn.room:
            conn = self._store.set_current(conn, room)
        if live is None:  # a room already joined, or one too big for presence
            live = self._live_members(room)
        messages, more = self._store.history(room, self._settings.history_page_size)
        if added is not None and conn.user:
            # What the `joined` frame shows is read (a marker they have is kept).
            read = messages[-1]["id"] if messages else ""
            self._store.people.add(conn.user, replace(added, read=read))
            self._spread(conn.user, room, added, skip=conn.id)
        joined = protocol.joined_frame(
            room,
            conn.nick,
            _confirmed_nicks(live),
            messages,
            more,
            _verified_nicks(live),
            iso_timestamp(self._store.now_ms()),
            role=self._moderation.role(conn, room),
        )
        self._sender.send(conn.id, joined)

    def _admission(self, conn: Connection, room: str) -> PersonRoom | None:
        """The person's entry for a room they may join; None (the sender told why) if not.
        The answer is the same for a private room that exists and a DM name guessed."""
        refused = ProtocolError(
            protocol.FORBIDDEN, f"{room} is private: only its members may join it"
        )
        if room in conn.kicked:
            message = f"you were removed from {room}: you cannot rejoin it on this connection"
            self._reply_error(conn.id, ProtocolError(protocol.FORBIDDEN, message))
            return None
        if conn.user and self._store.roles.banned(room, conn.user):
            message = f"you are banned from {room}: a moderator may unban you"
            self._reply_error(conn.id, ProtocolError(protocol.FORBIDDEN, message))
            return None
        terms = self._store.people.terms(room)
        if terms is None:
            if room.startswith(DM_PREFIX):  # reserved for DMs, made only by `dm`
                self._reply_error(conn.id, refused)
                return None
            return PersonRoom(room)
        if not conn.user:
            message = f"{room} is private: sign in to join private rooms and DMs"
            self._reply_error(conn.id, ProtocolError(protocol.FORBIDDEN, message))
            return None
        entry = self._store.people.room_of(conn.user, room)
        if entry is None and terms.owner == conn.user:  # an owner who left comes back
            return PersonRoom(room, private=True)
        if entry is None:
            self._reply_error(conn.id, refused)
        return entry

    def _spread(self, user: str, room: str, entry: PersonRoom, skip: str = "") -> None:
        """A person's new room reaches their live connections at once: each subscribes
        (up to MAX_ROOMS) and hears `added`."""
        _, connections = self._store.people.rooms_of(user)
        for connection_id in connections:
            if connection_id == skip:
                continue
            other = self._store.get_connection(connection_id)
            if other is None or len(other.rooms) >= self._settings.max_rooms:
                continue
            if room not in other.rooms:
                other = self._store.subscribe_many(other, [room])
                if other.confirmed:
                    self._tell_room(
                        room,
                        self._presence(replace(other, room=room), "join"),
                        presence=True,
                        exclude=other.id,
                        person=user,
                    )
            frame = {"type": "added", "room": room, "private": entry.private, "dm": entry.dm}
            if entry.peer:
                frame["with"] = entry.peer
            self._sender.send(connection_id, frame)

    def _leave(self, conn: Connection, room: str) -> None:
        """Take a room from the connection and its person (all their connections)."""
        if not self._in_room(conn, room):
            return
        if len(conn.rooms | {conn.room}) == 1:
            message = "this is your only room: join another before you leave it"
            self._reply_error(conn.id, ProtocolError(protocol.BAD_REQUEST, message))
            return
        conn, departure = self._store.unsubscribe(conn, room)
        others = []
        if conn.user:
            self._store.people.remove(conn.user, room)
            _, connections = self._store.people.rooms_of(conn.user)
            for connection_id in connections:
                other = self._store.get_connection(connection_id)
                if (
                    other is not None
                    and other.id != conn.id
                    and room in other.rooms
                    and len(other.rooms | {other.room}) > 1
                ):
                    other, other_departure = self._store.unsubscribe(other, room)
                    others.append(other_departure)
                    self._sender.send(
                        other.id, {"type": "left", "room": room, "current": other.room}
                    )
        if departure is not None:
            self._depart(departure)
        for other_departure in others:  # the person's leave is announced once, above
            if other_departure is not None:
                self._depart(other_departure, announce=False)
        self._sender.send(conn.id, {"type": "left", "room": room, "current": conn.room})

    def _create(self, conn: Connection, command: protocol.Create) -> None:
        """A room and its owner: a public room's creator owns it if it had no members and
        no owner (chalicelib/roles.py); the default room and DMs have none."""
        if not command.private:
            if (
                conn.user
                and command.room != self._settings.default_room
                and not command.room.startswith(DM_PREFIX)
                and self._store.people.terms(command.room) is None
                and self._store.room_count(command.room) == 0
            ):
                self._store.roles.claim_owner(command.room, conn.user)
            self._join(conn, command.room)
            return
        if not conn.user:
            message = "sign in to create private rooms"
            self._reply_error(conn.id, ProtocolError(protocol.FORBIDDEN, message))
            return
        taken = (
            command.room.startswith(DM_PREFIX)
            or command.room == self._settings.default_room
            or self._store.room_count(command.room) > 0
        )
        if taken or not self._store.people.create(command.room, conn.user):
            message = f"{command.room} exists already: choose another name"
            self._reply_error(conn.id, ProtocolError(protocol.FORBIDDEN, message))
            return
        self._store.people.add(conn.user, PersonRoom(command.room, private=True))
        self._join(conn, command.room)

    def _invite(self, conn: Connection, user: str, room: str) -> None:
        """The owner adds a user to a private room; the room reaches them at once."""
        terms = self._store.people.terms(room)
        if terms is None or terms.dm or not conn.user or terms.owner != conn.user:
            message = f"only the owner of private room {room} may invite to it"
            self._reply_error(conn.id, ProtocolError(protocol.FORBIDDEN, message))
            return
        if self._store.roles.banned(room, user):
            message = f"{user} is banned from {room}: unban them first"
            self._reply_error(conn.id, ProtocolError(protocol.FORBIDDEN, message))
            return
        entry = PersonRoom(room, private=True)
        self._store.people.add(user, entry)
        self._spread(user, room, entry)
        self._sender.send(conn.id, {"type": "invited", "room": room, "user": user})

    def _dm(self, conn: Connection, to: str) -> None:
        """Open (or reopen) the one conversation of two people; both have it at once."""
        if not conn.user:
            message = "sign in to send direct messages"
            self._reply_error(conn.id, ProtocolError(protocol.FORBIDDEN, message))
            return
        if to == conn.user:
            message = "a direct message needs another user"
            self._reply_error(conn.id, ProtocolError(protocol.BAD_REQUEST, message))
            return
        room = dm_room(conn.user, to)
        self._store.people.create(room, "", dm=True)
        self._store.people.add(conn.user, PersonRoom(room, private=True, dm=True, peer=to))
        theirs = PersonRoom(room, private=True, dm=True, peer=conn.user)
        self._store.people.add(to, theirs)
        self._spread(to, room, theirs)
        self._join(conn, room)

    def _expel(self, room: str, connection_ids: list[str], words: str) -> None:
        """Take `room` from these connections at once (a kick or a ban); each hears why
        (`forbidden`) and `left`. One left with no room leaves the chat: its `left` says
        so (`current` null) and the server closes it, so that it cannot start over on the
        same socket (a ban escaped, a kicked guest back); a new connection is checked
        like any other."""
        for connection_id in connection_ids:
            conn = self._store.get_connection(connection_id)
            if conn is None or room not in conn.rooms | {conn.room}:
                continue
            self._reply_error(connection_id, ProtocolError(protocol.FORBIDDEN, words))
            current = None
            if len(conn.rooms | {conn.room}) == 1:
                self._gone(connection_id, self._store.remove_connection(connection_id))
            else:
                conn, departure = self._store.unsubscribe(conn, room)
                if departure is not None:
                    self._depart(departure)
                current = conn.room
            self._sender.send(connection_id, {"type": "left", "room": room, "current": current})
            if current is None:
                self._sender.close(connection_id)

    def _send_mine(self, conn: Connection) -> None:
        """`mine`: the connection's rooms; a person's with unread counts (one Query each)."""
        entries: dict[str, PersonRoom] = {}
        if conn.user:
            stored, _ = self._store.people.rooms_of(conn.user)
            entries = {entry.room: entry for entry in stored}
        rooms = []
        for room in sorted(conn.rooms | {conn.room}):
            entry = entries.get(room, PersonRoom(room))
            described: dict[str, Any] = {"room": room, "private": entry.private, "dm": entry.dm}
            if entry.peer:
                described["with"] = entry.peer
            if conn.user:
                unread = self._store.unread(room, entry.read, conn.user, entry.dm)
                described.update(
                    unread=protocol.unread_label(unread.count),
                    mentions=unread.mentions,
                    last=unread.last,
                )
            else:  # a guest has no read markers
                described.update(unread=0, mentions=0, last=None)
            rooms.append(described)
        self._sender.send(conn.id, protocol.mine_frame(rooms, conn.room))

    def _read(self, conn: Connection, room: str, message_id: str) -> None:
        """Mark a person's room read up to a message, for all their connections."""
        if not conn.user:
            message = "sign in to keep read markers"
            self._reply_error(conn.id, ProtocolError(protocol.FORBIDDEN, message))
            return
        if not self._store.people.mark_read(conn.user, room, message_id):
            message = f"you are not in {room}: join it first"
            self._reply_error(conn.id, ProtocolError(protocol.NOT_IN_ROOM, message))
            return
        entry = self._store.people.room_of(conn.user, room)
        unread = self._store.unread(
            room, entry.read if entry else message_id, conn.user, bool(entry and entry.dm)
        )
        frame = {"type": "read", "room": room, "id": message_id}
        frame["unread"] = protocol.unread_label(unread.count)
        _, connections = self._store.people.rooms_of(conn.user)
        self._sender.broadcast(sorted(set(connections) | {conn.id}), protocol.encode(frame))

    def _rename(self, conn: Connection, nick: str) -> None:
        if conn.user:
            message = f"you are signed in: your nickname is your username, {conn.user}"
            self._reply_error(conn.id, ProtocolError(protocol.FORBIDDEN, message))
            return
        rooms = sorted(conn.rooms | {conn.room}, key=lambda r: r != conn.room)
        held: list[str] = []
        try:
            for room in rooms:
                self._hold(room, nick, conn.id, conn.connected_at)
                held.append(room)
        except NickTaken:
            if nick_key(nick) != nick_key(conn.nick):
                for room in held:
                    self._store.release_nick(room, nick, conn.id)
            raise
        renamed = self._store.rename(conn, nick)
        try:
            for room in rooms:
                frame = self._presence(replace(renamed, room=room), "nick", previous=conn.nick)
                told = self._tell_room(room, frame, presence=True, always=conn.id)
                # The renamer always gets the frame (of its current room): the acknowledgement.
                if told is None and room == conn.room:
                    self._sender.send(conn.id, frame(self._store.room_count(room)))
        finally:
            if nick_key(nick) != nick_key(conn.nick):  # see _depart
                for room in rooms:
                    self._store.release_nick(room, conn.nick, conn.id)

    # Fan-out and clean-up ----------------------------------------------------------------

    def _presence(
        self, who: Connection | Member, event: str, previous: str | None = None
    ) -> FrameFor:
        return lambda count: protocol.presence_frame(
            who.room, event, who.nick, count, previous, verified=bool(who.user)
        )

    def _live_members(self, room: str) -> list[Member]:
        live, expired = self._store.members(room)
        self._evict(room, [m.connection_id for m in expired], announce=False)
        if expired:
            self._store.correct_count(room, sum(1 for m in live if m.confirmed))
        return live

    def _tell_room(
        self,
        room: str,
        frame: FrameFor,
        presence: bool = False,
        count: int | None = None,
        exclude: str | None = None,
        always: str | None = None,
        origin: WebsocketEvent | None = None,
        person: str = "",
    ) -> list[Member] | None:
        """Send a frame to the live members of `room`; return the members still there.

        Presence frames (`presence`, or `count` given: the room's count, known)
        go only to rooms within the presence limit (None for a bigger room:
        nobody is told), so that filling a big room does not cost a send per
        member per arrival, nor a read of the whole room. Members found gone
        while announcing are removed silently; found gone by a message, their
        departure is announced once. `always` receives the frame even when the
        member list misses it (an acknowledgement must not depend on the
        index). With the `origin` event, a big room's broadcast is split across
        fan-out invocations. With `person` (a signed-in user), nothing is sent
        when another of their connections is a member already: one presence per person.
        """
        announcing = presence or count is not None
        limit = self._settings.presence_limit if announcing else None
        if count is not None and count > self._settings.presence_limit:
            return None
        members = self._store.members(room, at_most=limit)
        if members is None:
            return None
        live, expired = members
        if person and any(
            m.user == person and m.confirmed and m.connection_id != exclude for m in live
        ):
            return live
        targets = [m.connection_id for m in live if m.connection_id != exclude]
        if always is not None and always not in targets:
            targets.append(always)
        # API Gateway answers 410 for a connection whose $connect has not finished
        # yet, though its membership is already stored: such a 410 is no departure.
        opening_since = self._store.now_ms() - OPENING_GRACE_MS
        opening = {m.connection_id for m in live if m.connected_at > opening_since}
        data = protocol.encode(frame(_people(live)))
        if origin is not None:
            targets = self._fan_out(room, targets, data, opening, origin)
        gone = self._deliver(targets, data, opening)
        stale = [m.connection_id for m in expired]
        self._evict(room, [*stale, *gone], announce=not announcing)
        remaining = [m for m in live if m.connection_id not in gone]
        if gone or stale:
            self._store.correct_count(room, sum(1 for m in remaining if m.confirmed))
        return remaining

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

    def _deliver(self, connection_ids: list[str], data: str, opening: set[str]) -> list[str]:
        """Send `data` to every connection; return the gone ones (not those still opening)."""
        return sorted(set(self._sender.broadcast(connection_ids, data)) - opening)

    def _evict(self, room: str, connection_ids: list[str], announce: bool) -> None:
        """Remove connections that are gone. With `announce`, each confirmed departure is
        announced once, and members found gone by those announcements leave silently."""
        for connection_id in dict.fromkeys(connection_ids):
            departures = self._store.remove_connection(connection_id, room_hint=room)
            self._gone(connection_id, departures, announce)

    def _gone(self, connection_id: str, departures: list[Departure], announce: bool = True) -> None:
        """A connection gone from each of its rooms, and from its person's connections."""
        for departure in departures:
            self._depart(departure, announce)
        for user in {d.member.user for d in departures if d.member.user}:
            self._store.people.remove_connection(user, connection_id)

    def _depart(self, departure: Departure, announce: bool = True) -> None:
        """Announce a departure, then free its nickname: a newcomer under that name (a
        page reconnecting) is announced after the leave, never before it, so every
        page's member list ends up with the name in it. A person still there on
        another connection is not announced, and keeps their name."""
        member = departure.member
        stays = None
        try:
            if announce and member.confirmed:
                leave = self._presence(member, "leave")
                live = self._tell_room(
                    member.room, leave, count=departure.count, person=member.user
                )
                stays = _other_tab(live, member)
            elif member.user:
                stays = _other_tab(self._live_members(member.room), member)
        finally:
            self._store.release_nick(member.room, member.nick, member.connection_id)
        if stays is not None:
            with contextlib.suppress(NickTaken):  # taken in between: the tab keeps its membership
                self._hold(
                    member.room,
                    stays.nick,
                    stays.connection_id,
                    stays.connected_at,
                    user=stays.user,
                )

    def _reply_error(self, connection_id: str, error: ProtocolError) -> None:
        self._sender.send(connection_id, protocol.error_frame(error))


def _unavailable(command: Command | ProtocolError) -> ProtocolError:
    """A message's answer carries its id, so that sending it again cannot duplicate it."""
    message_id = command.id if isinstance(command, protocol.SendMessage) else None
    if message_id is None:
        return ProtocolError(protocol.UNAVAILABLE, "the chat is unavailable, try again")
    return ProtocolError(
        protocol.UNAVAILABLE,
        "the chat is unavailable; send the message again with the same id: "
        "it is never stored twice",
        {"id": message_id},
    )


def _rate_limited(limited: RateLimited, what: str) -> ProtocolError:
    seconds = max(1, round(limited.retry_after_ms / 1000))
    return ProtocolError(
        protocol.RATE_LIMITED,
        f"too many {what}; try again in {seconds} s",
        {"retry_after_ms": limited.retry_after_ms},
    )
