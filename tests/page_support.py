"""Rooms and frames for the page's browser tests (tests/test_page.py).

Rooms are filled through the real path, websocket clients of a running gateway,
several messages in flight per client. Frames the server cannot be made to send
on demand (a week-old history, error codes of a newer server) are built here and
handed to the page through Playwright's websocket routing.
"""

from __future__ import annotations

import itertools
import json
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.ids import new_message_id

SENTENCES = [
    "morning all",
    "has anyone tried the new build on a phone?",
    "yes, the list scrolls now and the composer stays put",
    "ok",
    "I'll look at the logs after lunch",
    "the deploy went through; nothing lost in the fan-out",
    "can you share the screenshot?",
    "sure, one moment",
    "that is a long line on purpose, to see how the page wraps a message that does not fit on "
    "one line of a narrow screen without cutting any of it off",
]
# Frames a fill keeps in flight: enough to keep the gateway's workers busy, few enough
# that a cold gateway answers each well within API Gateway's 29 s.
IN_FLIGHT = 8
# Runs of lines from one person, then another: as people talk.
SPEAKERS = ["ada", "ada", "bob", "cy", "cy", "cy", "bob", "ada", "bob", "bob"]


def conversation(count: int) -> list[tuple[str, str]]:
    """`count` (nick, text) lines; each text starts with its number, zero-padded."""
    speakers = itertools.cycle(SPEAKERS)
    sentences = itertools.cycle(SENTENCES)
    return [(next(speakers), f"{index:03d} {next(sentences)}") for index in range(count)]


def fill_room(gateway: Any, room: str, lines: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Post `lines` from one websocket client per nick, a few in flight at a time; return
    the stored messages in id order (the server runs frames concurrently, so that is not
    always the order sent)."""
    nicks = list(dict.fromkeys(nick for nick, _ in lines))
    with ExitStack() as stack:
        # Every client hears every message: an unbounded queue, or its unread frames would
        # push back on the gateway's sends and stall its close.
        clients = {
            nick: stack.enter_context(gateway.connect(f"?room={room}&nick={nick}", max_queue=None))
            for nick in nicks
        }
        # The first client joined before anyone sent: it hears every message.
        listener = clients[nicks[0]]
        posted: list[dict[str, Any]] = []
        for sent, (nick, text) in enumerate(lines):
            while sent - len(posted) >= IN_FLIGHT:
                posted += _next_message(listener)
            clients[nick].send(json.dumps({"action": "sendmessage", "data": text}))
        while len(posted) < len(lines):
            posted += _next_message(listener)
    return sorted(posted, key=lambda frame: frame["id"])


def _next_message(listener: Any) -> list[dict[str, Any]]:
    frame = json.loads(listener.recv(timeout=30))
    assert "type" in frame, frame  # the gateway's answer to a handler that failed
    return [frame] if frame["type"] == "message" else []


def message_frame(room: str, nick: str, text: str, at: datetime) -> dict[str, Any]:
    """A `message` frame as the server builds it, for a message sent at `at` (aware)."""
    millis = int(at.timestamp() * 1000)
    moment = datetime.fromtimestamp(millis / 1000, tz=UTC)
    return {
        "type": "message",
        "id": new_message_id(millis),
        "room": room,
        "from": nick,
        "text": text,
        "ts": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}Z",
    }


# A day's talk, in the reader's local time: ada twice within a minute (one group), bob
# twice 17 minutes apart (two), cy just before midnight.
DAY = [(9, 0, "ada", "morning"), (9, 1, "ada", "coffee?"), (9, 3, "bob", "yes please")]
DAY += [(9, 20, "bob", "back at my desk"), (23, 58, "cy", "still up")]


def week_of_history(room: str, now: datetime) -> list[dict[str, Any]]:
    """Messages over the seven days up to `now` (aware, in the reader's zone), oldest
    first. Two days ago cy writes again three minutes after midnight: same person,
    minutes apart, yet a new day."""
    frames = []
    for days_ago in range(6, -1, -1):
        day = (now - timedelta(days=days_ago)).replace(second=0, microsecond=0)
        for hour, minute, nick, text in DAY:
            at = day.replace(hour=hour, minute=minute)
            if at < now:
                frames.append(message_frame(room, nick, f"{text} ({days_ago})", at))
        if days_ago == 2:
            at = day.replace(hour=0, minute=1)
            frames.append(message_frame(room, "cy", "just after midnight", at))
    return sorted(frames, key=lambda frame: frame["id"])
