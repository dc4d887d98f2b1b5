"""Whether a reaction is one emoji: a single emoji grapheme, never free text.

No Unicode emoji data ships with Python, and the Lambda package carries no
dependencies, so the grammar of UTS #51's emoji sequences is written out here
over the blocks that hold the pictographs. A reaction is one of:

- a keycap: `0`-`9`, `#` or `*`, an optional VS16 (U+FE0F), U+20E3;
- a flag: two regional indicators, or a tag sequence (U+1F3F4, tags, U+E007F);
- pictographs joined by ZWJ (U+200D), at most MAX_JOINED of them, each
  optionally followed by VS16 or a skin-tone modifier.

Pictographs are taken from the blocks of symbols and pictographs (some symbols
there are not emoji, like arrows; they are still one symbol, not text):
letters, digits, punctuation and spaces are never one.
"""

from __future__ import annotations

import re

# The emoji-bearing ranges of the BMP and the pictograph planes, regional indicators
# (U+1F1E6-1F1FF) and skin-tone modifiers (U+1F3FB-1F3FF) left out: they only combine.
_PICTOGRAPHS = (
    "\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u21aa\u231a-\u23ff\u24c2"
    "\u25aa-\u25fe\u2600-\u27bf\u2934\u2935\u2b05-\u2b55\u3030\u303d\u3297\u3299"
    "\U0001f000-\U0001f0ff\U0001f170-\U0001f1ad\U0001f200-\U0001f3fa"
    "\U0001f400-\U0001faff\U0001fc00-\U0001fffd"
)
MAX_JOINED = 10
_ELEMENT = f"[{_PICTOGRAPHS}](?:\ufe0f|[\U0001f3fb-\U0001f3ff])?"
EMOJI = re.compile(
    "|".join(
        (
            "[0-9#*]\ufe0f?\u20e3",
            "[\U0001f1e6-\U0001f1ff]{2}",
            "\U0001f3f4[\U000e0020-\U000e007e]{1,30}\U000e007f",
            f"{_ELEMENT}(?:\u200d{_ELEMENT}){{0,{MAX_JOINED - 1}}}",
        )
    )
)


def is_emoji(value: object) -> bool:
    """Whether `value` is exactly one emoji (see the module's grammar)."""
    return isinstance(value, str) and EMOJI.fullmatch(value) is not None
