"""Text rules of the chat: what message text and nicknames may hold, and when nicks clash.

Pure functions with no I/O that never raise on any str, lone surrogates included
(tests/test_text.py checks that with hypothesis). docs/protocol.md states the rules.

- Messages are cleaned, not refused, for stray control characters: terminal escape
  sequences, C0/C1 controls other than newline and tab, and bidi controls are removed,
  so a pasted text with one stray control still posts while nothing reaches another
  client that a terminal would execute or that reorders what others see. What is left
  needs a visible character.
- Nicknames are refused, not cleaned, for the same characters and for every invisible
  one: a name is an identity, and a silently changed one misleads.
- Nicknames clash when their `nick_key`s are equal: NFKC, case folding, invisible
  characters removed, and the confusable skeleton of Unicode TS #39.
"""

from __future__ import annotations

import re
import unicodedata

from chalicelib.confusables import PROTOTYPES

# Unicode's Bidi_Control characters: marks, embeddings, overrides and isolates.
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)

# Unicode's Default_Ignorable_Code_Point ranges (DerivedCoreProperties.txt): characters
# that render as nothing, such as zero-width spaces and joiners, the combining grapheme
# joiner, variation selectors, Hangul fillers and tags.
_DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
# Graphic characters that are not ignorable but still show as blank.
_BLANKS = "\u2800\U00016fe4\U0001d159"  # braille blank, Khitan filler, null notehead

INVISIBLE = frozenset(
    chr(code) for first, last in _DEFAULT_IGNORABLE for code in range(first, last + 1)
) | frozenset(_BLANKS)

# What message cleaning deletes once escape sequences are gone: C0 and C1 controls but
# newline and tab, and bidi controls.
_REMOVED_FROM_MESSAGES = {
    code: None for code in [*range(0x00, 0x20), *range(0x7F, 0xA0)] if chr(code) not in "\n\t"
} | {ord(c): None for c in BIDI_CONTROLS}

# Line breaks other than "\n" (CR LF, CR, NEL, line and paragraph separators) become "\n".
_LINE_BREAK = re.compile("\r\n|[\r\x85\u2028\u2029]")

# ECMA-48 escape and control sequences, 7-bit (ESC ...) and 8-bit (C1) forms. A terminal
# executes them, and removing only the ESC would leave their bytes behind as text.
_ESCAPE_SEQUENCE = re.compile(
    r"""
    (?:\x1b\[|\x9b) [\x30-\x3f]* [\x20-\x2f]* [\x40-\x7e]   # CSI: parameters, final byte
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])               # OSC, DCS, SOS, PM, APC:
      .*? (?:\x07|\x1b\\|\x9c|\Z)                           # up to BEL, ST or the end
    | \x1b [\x20-\x2f]* [\x30-\x7e]                         # any other escape sequence
    """,
    re.VERBOSE | re.DOTALL,
)

# `nick_key` repeats its folding until nothing changes. A single code point settles
# after at most 3 changes (tests/test_text.py checks that every character's key is stable);
# the bound keeps any other string from looping.
_KEY_ROUNDS = 8


def is_visible(char: str) -> bool:
    """A letter, number, punctuation mark or symbol that shows as something."""
    return unicodedata.category(char)[0] in "LNPS" and char not in INVISIBLE


def has_visible(text: str) -> bool:
    return any(is_visible(c) for c in text)


def clean_message(text: str) -> str:
    """Message text without what could mislead or act on other clients.

    Line breaks become "\\n"; escape sequences, then C0/C1 controls other than newline
    and tab, then bidi controls are removed; a line with no visible character is
    emptied and of several such lines in a row only one is kept (so no wall of blank
    lines); surrounding whitespace goes. Never longer than `text`, and idempotent.
    """
    text = _LINE_BREAK.sub("\n", text)
    text = _ESCAPE_SEQUENCE.sub("", text).translate(_REMOVED_FROM_MESSAGES)
    lines: list[str] = []
    for line in text.split("\n"):
        if has_visible(line):
            lines.append(line)
        elif not lines or lines[-1]:
            lines.append("")
    return "\n".join(lines).strip()


def normalize_nick(raw: str) -> str:
    """The nickname as shown: NFC, surrounding whitespace trimmed, inner runs of spaces one."""
    return re.sub(" {2,}", " ", unicodedata.normalize("NFC", raw).strip())


def nick_problem(name: str) -> str | None:
    """Why a normalized nickname is refused, or None; the length limit is the caller's.

    A name is refused if it holds a control, format, bidi, private-use, unassigned or
    invisible character or a space other than U+0020, or has nothing visible in it.
    """
    if not name.isprintable() or any(c in INVISIBLE for c in name):
        return "nickname may not contain control, bidi, invisible or special space characters"
    if not has_visible(name):
        return "nickname needs a visible letter, number or symbol"
    return None


def _skeleton(text: str) -> str:
    """The TS #39 skeleton (NFD, each character to its prototype, NFD) of case-folded NFKC
    text: PROTOTYPES holds only the sources such text can contain (tools/gen_confusables.py).
    """
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFD", decomposed.translate(PROTOTYPES))


def nick_key(name: str) -> str:
    """The comparison key of a nickname: two nicknames clash exactly when keys are equal.

    NFKC, case folding, invisible and control characters removed, whitespace runs as
    one space, then the TS #39 skeleton, repeated until stable because a prototype can
    be upper case or fold further. So "Victim", "VICTIM", "victim\\u034f",
    "v\\u0456ctim" and "\\uff56\\uff49\\uff43\\uff54\\uff49\\uff4d" all clash with "victim";
    "vic tim" does not, a visible gap being a visible difference. A key is its own key:
    nick_key(nick_key(x)) == nick_key(x).
    """
    key = name
    for _ in range(_KEY_ROUNDS):
        folded = _fold(key)
        if folded == key:
            break
        key = folded
    return key


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    words = "".join(c for c in text if not _is_hidden(c)).split()
    return _skeleton(" ".join(words))


def _is_hidden(char: str) -> bool:
    if char in INVISIBLE:
        return True
    category = unicodedata.category(char)
    return category == "Cf" or (category == "Cc" and not char.isspace())
