"""The chat wire protocol: parse client frames into commands, build server frames.

Pure functions only, no I/O, so that every rule is testable on its own and no
input can make them raise (tests/test_protocol.py checks that with hypothesis).
docs/protocol.md is the contract this module implements.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from chalicelib import attachments
from chalicelib.emoji import is_emoji
from chalicelib.settings import Settings
from chalicelib.text import clean_message, nick_problem, normalize_nick

# API Gateway refuses PostToConnection bodies above 128 KiB (413).
MAX_FRAME_BYTES = 128 * 1024

ROOM_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
MESSAGE_ID_PATTERN = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")

BAD_REQUEST = "bad_request"
UNKNOWN_ACTION = "unknown_action"
INVALID_NICK = "invalid_nick"
INVALID_ROOM = "invalid_room"
TOO_LARGE = "too_large"
UNAVAILABLE = "unavailable"
RATE_LIMITED = "rate_limited"
NICK_TAKEN = "nick_taken"
FORBIDDEN = "forbidden"
# A message id that is not one of the room's messages (or has expired).
NOT_FOUND = "not_found"
# A `room` the connection is not in (join it first), and a connection in MAX_ROOMS rooms.
NOT_IN_ROOM = "not_in_room"
TOO_MANY_ROOMS = "too_many_rooms"
# A frame from a connection the chat no longer holds, where people sign in: the server
# closes it, and its client reconnects (with its token) rather than going on as a guest.
EXPIRED = "expired"
# An `attachment` that is not an upload of this room as announced (chalicelib/attachments.py).
INVALID_ATTACHMENT = attachments.INVALID_ATTACHMENT
# In the body of a refused $connect (HTTP 401) with AUTH=cognito.
UNAUTHORIZED = "unauthorized"
# Only in the body of a refused $connect (HTTP 429 and 403), never as a frame.
TOO_MANY_CONNECTIONS = "too_many_connections"
FORBIDDEN_ORIGIN = "forbidden_origin"

HELP = [
    {"command": "/nick NAME", "action": "nick", "help": "change your nickname"},
    {"command": "/join ROOM", "action": "join", "help": "add ROOM to your rooms and switch to it"},
    {"command": "/leave [ROOM]", "action": "leave", "help": "leave ROOM (this room if none)"},
    {"command": "/create ROOM [private]", "action": "create", "help": "make a (private) room"},
    {"command": "/invite USER [ROOM]", "action": "invite", "help": "invite USER to a private room"},
    {"command": "/dm USER", "action": "dm", "help": "open your direct conversation with USER"},
    {"command": "/mine", "action": "mine", "help": "your rooms, with unread counts"},
    {"command": "/edit ID TEXT", "action": "edit", "help": "change your message ID's text"},
    {
        "command": "/delete ID",
        "action": "delete",
        "help": "delete a message (yours, or as moderator)",
    },
    {"command": "/react ID EMOJI", "action": "react", "help": "add or take back a reaction"},
    {
        "command": "/role USER ROLE",
        "action": "role",
        "help": "owner: make USER moderator or member",
    },
    {"command": "/kick USER", "action": "kick", "help": "moderator: remove USER from this room"},
    {"command": "/ban USER", "action": "ban", "help": "moderator: keep USER out of this room"},
    {"command": "/unban USER", "action": "unban", "help": "moderator: let USER back in"},
    {"command": "/who", "action": "who", "help": "list the members of this room"},
    {"command": "/rooms", "action": "rooms", "help": "list rooms with members"},
    {"command": "/history [N]", "action": "history", "help": "show older messages"},
    {"command": "/help", "action": "help", "help": "show this help"},
    {"command": "//TEXT", "action": "sendmessage", "help": "send TEXT that starts with /"},
]


@dataclass(frozen=True)
class SendMessage:
    text: str
    # The client's own ULID for the message: sending again after `unavailable` with
    # the same id never stores it twice.
    id: str | None = None
    # One of the connection's rooms; None: its current room.
    room: str | None = None
    # An uploaded file's key, and an image's size in pixels as the client measured it.
    attachment: AttachmentRef | None = None


@dataclass(frozen=True)
class AttachmentRef:
    key: str
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class Upload:
    """Ask for a presigned POST: a file of `size` bytes and MIME `type` for `room`."""

    name: str
    type: str
    size: int
    room: str | None = None


@dataclass(frozen=True)
class Download:
    """Ask for a presigned GET of message `id`'s attachment."""

    id: str
    room: str | None = None


@dataclass(frozen=True)
class Join:
    room: str


@dataclass(frozen=True)
class Leave:
    room: str | None = None


@dataclass(frozen=True)
class Create:
    room: str
    private: bool = False


@dataclass(frozen=True)
class Invite:
    user: str
    room: str | None = None


@dataclass(frozen=True)
class Dm:
    to: str


@dataclass(frozen=True)
class Mine:
    pass


@dataclass(frozen=True)
class Read:
    room: str
    id: str


@dataclass(frozen=True)
class Nick:
    name: str


@dataclass(frozen=True)
class History:
    limit: int
    before: str | None = None
    room: str | None = None


@dataclass(frozen=True)
class Who:
    room: str | None = None


@dataclass(frozen=True)
class Rooms:
    pass


@dataclass(frozen=True)
class Ping:
    pass


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class Edit:
    id: str
    text: str
    room: str | None = None


@dataclass(frozen=True)
class Delete:
    id: str
    room: str | None = None


@dataclass(frozen=True)
class React:
    id: str
    emoji: str
    # None toggles; true or false sets the reaction (so repeating it changes nothing).
    on: bool | None = None
    room: str | None = None


@dataclass(frozen=True)
class Typing:
    room: str | None = None


@dataclass(frozen=True)
class Role:
    user: str
    role: str
    room: str | None = None


@dataclass(frozen=True)
class Kick:
    """Remove a signed-in `user`, or a guest by its `nick`, from the room."""

    user: str = ""
    nick: str = ""
    room: str | None = None


@dataclass(frozen=True)
class Ban:
    user: str
    room: str | None = None
    # False: unban.
    banned: bool = True


@dataclass(frozen=True)
class ProtocolError:
    """A frame the server refuses; becomes an `error` frame for the sender only.

    `details` are extra fields of the frame (`retry_after_ms`, a message's `id`).
    """

    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


Command = (
    SendMessage
    | Join
    | Leave
    | Create
    | Invite
    | Dm
    | Mine
    | Read
    | Nick
    | History
    | Who
    | Rooms
    | Ping
    | Help
    | Upload
    | Download
    | Edit
    | Delete
    | React
    | Typing
    | Role
    | Kick
    | Ban
)

# Roles an owner may give (the owner is the room's creator; admins come from Cognito).
ROLES = ("moderator", "member")

# Cognito usernames as the chat accepts them in `invite` and `dm`.
USER_PATTERN = re.compile(r"[\w.@+=,-]{1,128}")


def parse_frame(body: str | None, settings: Settings) -> Command | ProtocolError:
    """Turn one client text frame into a command, or say what is wrong with it."""
    if body is None:
        return ProtocolError(BAD_REQUEST, "empty frame: send a message or a JSON command")
    if body.startswith("/"):
        return _parse_slash(body, settings)
    document = _json_object(body)
    if document is None or "action" not in document:
        return _message(body, settings)
    return _parse_action(document, settings)


def _json_object(body: str) -> dict[str, Any] | None:
    if not body.lstrip().startswith("{"):
        return None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def _parse_action(document: dict[str, Any], settings: Settings) -> Command | ProtocolError:
    action = document["action"]
    if not isinstance(action, str):
        return ProtocolError(BAD_REQUEST, '"action" must be a string')
    target = _target_room(document, settings)
    if isinstance(target, ProtocolError):
        return target
    team = _parse_team(action, document, target, settings)
    if team is None:
        team = _parse_conversation(action, document, target, settings)
    if team is not None:
        return team
    files = _parse_files(action, document, target, settings)
    if files is not None:
        return files
    if action == "sendmessage":
        data = document.get("data")
        if "attachment" in document and data in (None, ""):
            data = None
        elif not isinstance(data, str):
            return ProtocolError(BAD_REQUEST, 'sendmessage needs "data", a string')
        message_id = document.get("id")
        if message_id is not None and (
            not isinstance(message_id, str) or not MESSAGE_ID_PATTERN.fullmatch(message_id)
        ):
            return ProtocolError(BAD_REQUEST, '"id" must be a ULID (26 characters)')
        message = SendMessage("") if data is None else _message(data, settings)
        if isinstance(message, ProtocolError):
            return message
        return replace(message, id=message_id, room=target, attachment=_attachment(document))
    if action == "join":
        return validate_room(document.get("room"), settings)
    if action == "nick":
        return validate_nick(document.get("name"), settings)
    if action == "history":
        history = _history(document.get("limit"), document.get("before"), settings)
        return history if isinstance(history, ProtocolError) else replace(history, room=target)
    if action == "who":
        return Who(target)
    simple = {"rooms": Rooms, "ping": Ping, "help": Help}.get(action)
    if simple is None:
        shown = action if len(action) <= 40 else action[:40] + "..."
        return ProtocolError(UNKNOWN_ACTION, f"unknown action {shown!r}; send /help")
    return simple()


def _target_room(document: dict[str, Any], settings: Settings) -> str | ProtocolError | None:
    """The `room` a frame targets (None: the current room); `join` and `create` name theirs."""
    raw = document.get("room")
    if raw is None or document["action"] in ("join", "create"):
        return None
    checked = validate_room(raw, settings)
    return checked if isinstance(checked, ProtocolError) else checked.room


def _parse_team(
    action: str, document: dict[str, Any], target: str | None, settings: Settings
) -> Command | ProtocolError | None:
    """The actions of many rooms, private rooms and direct messages; None for others."""
    if action == "leave":
        return Leave(target)
    if action == "create":
        room = validate_room(document.get("room"), settings)
        private = document.get("private", False)
        if not isinstance(private, bool):
            return ProtocolError(BAD_REQUEST, '"private" must be true or false')
        return room if isinstance(room, ProtocolError) else Create(room.room, private)
    if action == "invite":
        user = validate_user(document.get("user"))
        return user if isinstance(user, ProtocolError) else Invite(user, target)
    if action == "dm":
        user = validate_user(document.get("to"))
        return user if isinstance(user, ProtocolError) else Dm(user)
    if action == "mine":
        return Mine()
    if action == "read":
        message_id = document.get("id")
        if target is None or not isinstance(message_id, str):
            return ProtocolError(BAD_REQUEST, 'read needs "room" and "id", a message id')
        if not MESSAGE_ID_PATTERN.fullmatch(message_id):
            return ProtocolError(BAD_REQUEST, '"id" must be the id of a message')
        return Read(target, message_id)
    return None


def _parse_files(
    action: str, document: dict[str, Any], target: str | None, settings: Settings
) -> Command | ProtocolError | None:
    """`upload`, `download` and a message's `attachment`; None for other actions."""
    if action == "upload":
        name, kind, size = document.get("name"), document.get("type"), document.get("size")
        problem = attachments.upload_problem(name, kind, size, settings)
        if problem is not None:
            return ProtocolError(problem.code, problem.message)
        return Upload(attachments.clean_name(name), kind.lower(), size, target)
    if action == "download":
        message_id = document.get("id")
        if not isinstance(message_id, str) or not MESSAGE_ID_PATTERN.fullmatch(message_id):
            return ProtocolError(BAD_REQUEST, 'download needs "id", the id of a message')
        return Download(message_id, target)
    if action == "sendmessage" and "attachment" in document:
        width, height = document.get("width"), document.get("height")
        problem = attachments.reference_problem(document["attachment"], width, height)
        if problem is not None:
            return ProtocolError(problem.code, problem.message)
    return None


def _attachment(document: dict[str, Any]) -> AttachmentRef | None:
    """A checked `attachment` (see _parse_files), None without one."""
    if "attachment" not in document:
        return None
    return AttachmentRef(document["attachment"], document.get("width"), document.get("height"))


def _parse_conversation(
    action: str, document: dict[str, Any], target: str | None, settings: Settings
) -> Command | ProtocolError | None:
    """Edits, deletions, reactions, typing and moderation (issue 18); None for others."""
    if action == "typing":
        return Typing(target)
    if action in ("edit", "delete", "react"):
        message_id = document.get("id")
        if not isinstance(message_id, str) or not MESSAGE_ID_PATTERN.fullmatch(message_id):
            return ProtocolError(BAD_REQUEST, f'{action} needs "id", the id of a message')
        if action == "delete":
            return Delete(message_id, target)
        if action == "edit":
            text = document.get("text")
            if not isinstance(text, str):
                return ProtocolError(BAD_REQUEST, 'edit needs "text", a string')
            edited = _message(text, settings)
            return (
                edited
                if isinstance(edited, ProtocolError)
                else Edit(message_id, edited.text, target)
            )
        emoji = document.get("emoji")
        if not is_emoji(emoji):
            return ProtocolError(BAD_REQUEST, '"emoji" must be one emoji, not text')
        on = document.get("on")
        if on is not None and not isinstance(on, bool):
            return ProtocolError(BAD_REQUEST, '"on" must be true or false')
        return React(message_id, emoji, on, target)
    if action not in ("role", "kick", "ban", "unban"):
        return None
    if action == "kick" and document.get("nick") is not None and document.get("user") is None:
        nick = validate_nick(document["nick"], settings)
        return nick if isinstance(nick, ProtocolError) else Kick(nick=nick.name, room=target)
    user = validate_user(document.get("user"))
    if isinstance(user, ProtocolError):
        return user
    if action == "kick":
        return Kick(user=user, room=target)
    if action != "role":
        return Ban(user, target, banned=action == "ban")
    role = document.get("role")
    if role not in ROLES:
        return ProtocolError(BAD_REQUEST, '"role" must be "moderator" or "member"')
    return Role(user, role, target)


def validate_user(raw: Any) -> str | ProtocolError:
    if not isinstance(raw, str) or not USER_PATTERN.fullmatch(raw):
        return ProtocolError(BAD_REQUEST, "a user is a username (letters, digits, . @ + = , - _)")
    return raw


def _parse_slash(body: str, settings: Settings) -> Command | ProtocolError:
    if body.startswith("//"):
        return _message(body[1:], settings)
    name, _, argument = body[1:].partition(" ")
    argument = argument.strip()
    if name == "nick":
        return validate_nick(argument, settings)
    if name == "join":
        return validate_room(argument, settings)
    if name in ("leave", "create", "invite", "dm"):
        return _parse_team_slash(name, argument.split(), settings)
    if name in SLASH_CONVERSATION:
        return _parse_conversation_slash(name, argument, settings)
    if name == "history":
        return _history(_slash_limit(argument), None, settings)
    simple = {"who": Who, "rooms": Rooms, "ping": Ping, "help": Help, "mine": Mine}.get(name)
    if simple is None or argument:
        shown = name if len(name) <= 40 else name[:40] + "..."
        return ProtocolError(UNKNOWN_ACTION, f"unknown command /{shown}; send /help")
    return simple()


def _parse_team_slash(name: str, words: list[str], settings: Settings) -> Command | ProtocolError:
    """`/leave [ROOM]`, `/create ROOM [private]`, `/invite USER [ROOM]`, `/dm USER`."""
    usage = {
        "leave": "/leave [ROOM]",
        "create": "/create ROOM [private]",
        "invite": "/invite USER [ROOM]",
        "dm": "/dm USER",
    }[name]
    first, rest = (words[0], words[1:]) if words else (None, [])
    document: dict[str, Any] = {"action": name}
    if name == "leave" and len(words) <= 1:
        document["room"] = first
    elif name == "create" and first and rest in ([], ["private"]):
        document.update(room=first, private=bool(rest))
    elif name == "invite" and first and len(rest) <= 1:
        document.update(user=first, room=rest[0] if rest else None)
    elif name == "dm" and first and not rest:
        document["to"] = first
    else:
        return ProtocolError(BAD_REQUEST, f"usage: {usage}")
    return _parse_action(document, settings)


# The fields of `/edit ID TEXT`, `/delete ID`, `/react ID EMOJI`, `/role USER ROLE`,
# `/kick USER`, `/ban USER` and `/unban USER`, in order; the last takes the rest of the line.
SLASH_CONVERSATION = {
    "edit": ("id", "text"),
    "delete": ("id",),
    "react": ("id", "emoji"),
    "role": ("user", "role"),
    "kick": ("user",),
    "ban": ("user",),
    "unban": ("user",),
}


def _parse_conversation_slash(
    name: str, argument: str, settings: Settings
) -> Command | ProtocolError:
    fields = SLASH_CONVERSATION[name]
    values = argument.split(None, len(fields) - 1) if argument else []
    if len(values) != len(fields) or (name != "edit" and len(argument.split()) != len(fields)):
        usage = " ".join(f.upper() for f in fields)
        return ProtocolError(BAD_REQUEST, f"usage: /{name} {usage}")
    return _parse_action({"action": name, **dict(zip(fields, values, strict=True))}, settings)


def _slash_limit(argument: str) -> int | str | None:
    if not argument:
        return None
    if argument.isascii() and argument.isdigit() and len(argument) <= 9:
        return int(argument)
    return argument


def _message(raw: str, settings: Settings) -> SendMessage | ProtocolError:
    """Message text cleaned by chalicelib/text.py; the length limit counts what is left."""
    if not raw.strip():
        return ProtocolError(BAD_REQUEST, "message text is empty")
    if not _is_unicode(raw):
        return ProtocolError(BAD_REQUEST, "message text is not valid Unicode")
    text = clean_message(raw)
    if not text:
        return ProtocolError(BAD_REQUEST, "message text has no visible character")
    if len(text) > settings.max_text_chars:
        return ProtocolError(
            TOO_LARGE, f"message is {len(text)} characters, at most {settings.max_text_chars}"
        )
    return SendMessage(text)


def _history(limit: Any, before: Any, settings: Settings) -> History | ProtocolError:
    if limit is None:
        limit = settings.history_page_size
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        return ProtocolError(BAD_REQUEST, '"limit" must be a whole number of at least 1')
    if before is not None and (
        not isinstance(before, str) or not MESSAGE_ID_PATTERN.fullmatch(before)
    ):
        return ProtocolError(BAD_REQUEST, '"before" must be the id of a message')
    return History(limit=min(limit, settings.history_page_size), before=before)


def validate_nick(raw: Any, settings: Settings) -> Nick | ProtocolError:
    """A nickname is 1..max characters once normalized, none of them hidden, one visible.

    Uniqueness in a room is the storage's to check, with chalicelib.text.nick_key.
    """
    if not isinstance(raw, str):
        return ProtocolError(INVALID_NICK, "nickname must be a string")
    name = normalize_nick(raw)
    if not 1 <= len(name) <= settings.max_nick_chars:
        return ProtocolError(
            INVALID_NICK, f"nickname must be 1 to {settings.max_nick_chars} characters"
        )
    problem = nick_problem(name)
    if problem is not None:
        return ProtocolError(INVALID_NICK, problem)
    return Nick(name)


def validate_room(raw: Any, settings: Settings) -> Join | ProtocolError:
    """A room name is 1..max characters of letters, digits, '_', '.' and '-'."""
    if not isinstance(raw, str) or not (
        1 <= len(raw) <= settings.max_room_chars and ROOM_PATTERN.fullmatch(raw)
    ):
        return ProtocolError(
            INVALID_ROOM,
            f"room must be 1 to {settings.max_room_chars} of A-Z a-z 0-9 _ . -",
        )
    return Join(raw)


def _is_unicode(text: str) -> bool:
    """False for strings with lone surrogates (JSON can smuggle them in as escapes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def encode(frame: dict[str, Any]) -> str:
    """One compact JSON text frame; non-ASCII stays UTF-8 to keep frames small."""
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def frame_size(frame: dict[str, Any]) -> int:
    return len(encode(frame).encode("utf-8"))


def message_frame(message: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message", **message}


def edited_frame(message: dict[str, Any]) -> dict[str, Any]:
    """A message's new text: `id`, `room`, `text`, `edited` (when), `mentions`."""
    fields = ("id", "room", "text", "edited", "mentions")
    return {"type": "edited", **{key: message[key] for key in fields if key in message}}


def deleted_frame(room: str, message_id: str, by: str | None = None) -> dict[str, Any]:
    """A message became a tombstone; `by` names the moderator who deleted it."""
    frame = {"type": "deleted", "room": room, "id": message_id}
    return frame if by is None else {**frame, "by": by}


def reactions_frame(room: str, message_id: str, reactions: list[Any]) -> dict[str, Any]:
    return {"type": "reactions", "room": room, "id": message_id, "reactions": reactions}


def typing_frame(room: str, nick: str, verified: bool) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "typing", "room": room, "nick": nick}
    return {**frame, "verified": True} if verified else frame


class Refusal(Exception):
    """A command refused: its error goes to the sender alone, and nothing changed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.error = ProtocolError(code, message)


def error_frame(error: ProtocolError) -> dict[str, Any]:
    return {"type": "error", "code": error.code, "message": error.message, **error.details}


def presence_frame(
    room: str,
    event: str,
    nick: str,
    count: int,
    previous: str | None = None,
    verified: bool = False,
) -> dict[str, Any]:
    """`verified` (a signed-in member) appears only when true, as in `message` frames."""
    frame: dict[str, Any] = {
        "type": "presence",
        "room": room,
        "event": event,
        "nick": nick,
        "count": count,
    }
    if previous is not None:
        frame["previous"] = previous
    if verified:
        frame["verified"] = True
    return frame


def members_frame(room: str, nicks: list[str], verified: list[str] | None = None) -> dict[str, Any]:
    """The members' nicknames; `verified` lists those signed in, when any are."""
    frame = fit_list({"type": "members", "room": room, "count": len(nicks)}, "members", nicks)
    shown = set(frame["members"])
    if verified:
        fit_list(frame, "verified", [nick for nick in verified if nick in shown])
    return frame


def joined_frame(
    room: str,
    nick: str,
    nicks: list[str],
    history: list[dict[str, Any]],
    more: bool,
    verified: list[str] | None = None,
    server_time: str | None = None,
    *,
    role: str,
) -> dict[str, Any]:
    """`server_time` lets a client make message ids on the server's clock, not its own;
    `role` (owner, moderator, member) lets it offer only what the server will allow."""
    frame = members_frame(room, nicks, verified)
    frame.update(type="joined", nick=nick, role=role)
    if server_time is not None:
        frame["server_time"] = server_time
    return fit_history(frame, history, more)


def history_frame(room: str, messages: list[dict[str, Any]], more: bool) -> dict[str, Any]:
    return fit_history({"type": "history", "room": room}, messages, more)


def mine_frame(rooms: list[dict[str, Any]], current: str) -> dict[str, Any]:
    """The connection's rooms with unread counts (docs/protocol.md, `mine`)."""
    return fit_list({"type": "mine", "current": current}, "rooms", rooms)


def unread_label(count: int) -> int | str:
    """Exact up to 99, then "99+"."""
    return count if count <= 99 else "99+"


def rooms_frame(rooms: list[tuple[str, int]]) -> dict[str, Any]:
    entries = [{"name": name, "members": count} for name, count in rooms]
    return fit_list({"type": "rooms"}, "rooms", entries)


def fit_list(frame: dict[str, Any], key: str, items: list[Any]) -> dict[str, Any]:
    """Put as many of `items` under `key` as fit in one frame; say if some were left out."""
    kept = _fit(frame, items, keep_last=False)
    frame[key] = kept
    if len(kept) < len(items):
        frame["truncated"] = True
    return frame


def fit_history(
    frame: dict[str, Any], messages: list[dict[str, Any]], more: bool
) -> dict[str, Any]:
    """Keep the newest messages that fit; `more` tells the client to page for the rest."""
    kept = _fit({**frame, "more": True}, messages, keep_last=True)
    frame["history" if frame["type"] == "joined" else "messages"] = kept
    frame["more"] = more or len(kept) < len(messages)
    return frame


def _fit(frame: dict[str, Any], items: list[Any], keep_last: bool) -> list[Any]:
    budget = MAX_FRAME_BYTES - frame_size(frame) - 64
    ordered = reversed(items) if keep_last else iter(items)
    kept: list[Any] = []
    for item in ordered:
        budget -= frame_size(item) + 1
        if budget < 0:
            break
        kept.append(item)
    return kept[::-1] if keep_last else kept
