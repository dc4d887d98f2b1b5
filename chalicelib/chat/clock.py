"""The chat's sense of time: the wall clock and the pause, injected so tests need no sleeps.

The store keeps its own clock (the same `time.time` by default); the chat reads
this one for what it decides itself: a connection still opening, a message id
too far from now, a nickname takeover's pauses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Clock:
    now: Callable[[], float] = time.time  # seconds since the epoch
    sleep: Callable[[float], None] = time.sleep

    def now_ms(self) -> int:
        return int(self.now() * 1000)
