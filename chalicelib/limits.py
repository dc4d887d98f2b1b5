"""Rate limits as a generic cell rate algorithm (GCRA): one number per limit, no I/O.

A limit of R events a second with bursts of B is a token bucket; GCRA keeps
it as a single "theoretical arrival time" (TAT) instead of a token count and a
refill time. An event at `now` is allowed when TAT <= now + (B - 1) / R, and
moves TAT to max(TAT, now) + 1 / R. One number suits DynamoDB: it lives on the
connection item, and the conditional UpdateItem that reads the connection for
each frame also takes the token (chalicelib/store/connections.py, rates.py).

Times are integer milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    """At most `burst` events at once, then one every `interval_ms`."""

    interval_ms: int
    burst: int

    @classmethod
    def per_second(cls, events: float, burst: int) -> Rate:
        return cls(max(1, round(1000 / events)), max(1, burst))

    @classmethod
    def per_minute(cls, events: float, burst: int) -> Rate:
        return cls(max(1, round(60_000 / events)), max(1, burst))

    @property
    def tolerance_ms(self) -> int:
        """How far ahead of now the TAT may be and still allow an event."""
        return (self.burst - 1) * self.interval_ms


@dataclass(frozen=True)
class Decision:
    """Allowed (with the TAT to store) or refused (with how long until allowed)."""

    allowed: bool
    tat: int
    retry_after_ms: int = 0


def decide(tat: int | None, now_ms: int, rate: Rate) -> Decision:
    """Whether an event at `now_ms` fits the limit, given the stored TAT (None: never used)."""
    current = now_ms if tat is None else max(tat, now_ms)
    if current - now_ms > rate.tolerance_ms:
        return Decision(False, current, current - now_ms - rate.tolerance_ms)
    return Decision(True, current + rate.interval_ms)


def idle_tat(now_ms: int, rate: Rate) -> int:
    """The TAT after an event that found the bucket full (TAT in the past, or none)."""
    return now_ms + rate.interval_ms
