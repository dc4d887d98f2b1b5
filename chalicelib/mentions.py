"""Who a message mentions: `@name` of a signed-in member of the room.

A name is what follows `@` up to a character a username cannot hold (trailing
`.`, `,` and `-` are punctuation, not part of it). Only people with the room
among theirs count (one BatchGetItem of their room items, made only when the
text has an `@`): a guest has no unread counts to raise, and `@everyone`
names nobody. At most MAX_MENTIONS names are looked up per message.
"""

from __future__ import annotations

import re

from chalicelib.store.memberships import Memberships

MENTION = re.compile(r"(?<![\w@.+=,-])@([\w.@+=,-]{1,128})")
MAX_MENTIONS = 20


def mentioned_names(text: str) -> list[str]:
    """The distinct names after `@`, in order of appearance, at most MAX_MENTIONS."""
    names: dict[str, None] = {}
    for match in MENTION.finditer(text):
        name = match.group(1).rstrip(".,-")
        if name:
            names.setdefault(name)
    return list(names)[:MAX_MENTIONS]


class Mentions:
    def __init__(self, people: Memberships) -> None:
        self._people = people

    def __call__(self, room: str, text: str) -> list[str]:
        """The usernames `text` mentions among the room's people, sorted."""
        names = mentioned_names(text) if "@" in text else []
        return sorted(self._people.having(room, names)) if names else []
