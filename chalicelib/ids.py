"""Message ids that sort by time: ULIDs (48-bit milliseconds + 80 random bits).

Sortable ids let history pages use DynamoDB sort-key ranges (`before` an id)
and let clients order and de-duplicate messages without a clock of their own.
"""

from __future__ import annotations

import secrets

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base 32


def new_message_id(now_ms: int) -> str:
    """A 26-character id; ids made in a later millisecond sort after earlier ones."""
    value = (now_ms & (2**48 - 1)) << 80 | secrets.randbits(80)
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def id_time_ms(message_id: str) -> int:
    """The millisecond a ULID was made in (its first 10 characters)."""
    value = 0
    for char in message_id[:10]:
        value = value * 32 + _ALPHABET.index(char)
    return value
