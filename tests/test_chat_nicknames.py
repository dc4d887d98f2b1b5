"""Taking over a gone holder's nickname (chalicelib/chat/nicknames.py), on an injected clock.

The store and API Gateway are stand-ins here: the rule under test is when the
name changes hands, how long it waits for the holder's own `$disconnect`, and
that the waiting costs no real time.
"""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.chat.clock import Clock
from chalicelib.chat.nicknames import (
    OPENING_GRACE_MS,
    TAKEOVER_PAUSE_SECONDS,
    TAKEOVER_WAITS,
    Nicknames,
)
from chalicelib.store.claims import NickTaken

NOW = 1_800_000_000.0
HOLDER, NEWCOMER = "old-connection", "new-connection"


class Claims:
    """A room's nickname claims: `ada` is held by HOLDER for its first `refusals` claims."""

    def __init__(self, refusals: int, holder_age_ms: int, holder_confirmed: bool) -> None:
        self.refusals = refusals
        self.holder_connected_at = int(NOW * 1000) - holder_age_ms
        self.holder_confirmed = holder_confirmed
        self.calls: list[tuple[str, str]] = []

    def nick(self, room: str, nick: str, connection_id: str, *_: Any) -> None:
        self.calls.append(("claim", connection_id))
        if self.refusals:
            self.refusals -= 1
            raise NickTaken(nick, room, HOLDER, self.holder_connected_at, self.holder_confirmed)

    def release_nick(self, room: str, nick: str, connection_id: str) -> None:
        self.calls.append(("release", connection_id))


class Gateway:
    def __init__(self, gone: bool) -> None:
        self.gone = gone
        self.asked: list[str] = []

    def is_gone(self, connection_id: str) -> bool:
        self.asked.append(connection_id)
        return self.gone


def nicknames(
    claims: Claims, gateway: Gateway, pauses: list[float], evicted: list[tuple[str, list[str]]]
) -> Nicknames:
    clock = Clock(now=lambda: NOW, sleep=pauses.append)
    return Nicknames(claims, gateway, clock, lambda room, ids: evicted.append((room, ids)))  # type: ignore[arg-type]


def hold(names: Nicknames) -> None:
    names.hold("lobby", "ada", NEWCOMER, int(NOW * 1000))


def test_a_gone_holders_name_is_taken_once_its_disconnect_frees_it() -> None:
    claims, pauses, evicted = Claims(1 + 3, 60_000, True), [], []
    hold(nicknames(claims, Gateway(gone=True), pauses, evicted))
    assert evicted == [("lobby", [HOLDER])]
    assert pauses == [TAKEOVER_PAUSE_SECONDS] * 3
    assert claims.calls == [("claim", NEWCOMER)] * 5


def test_a_name_its_gone_holders_disconnect_never_frees_is_freed_after_the_waits() -> None:
    claims, pauses, evicted = Claims(1 + TAKEOVER_WAITS, 60_000, True), [], []
    hold(nicknames(claims, Gateway(gone=True), pauses, evicted))
    assert pauses == [TAKEOVER_PAUSE_SECONDS] * TAKEOVER_WAITS
    assert claims.calls[-2:] == [("release", HOLDER), ("claim", NEWCOMER)]
    assert claims.calls.count(("claim", NEWCOMER)) == 2 + TAKEOVER_WAITS


def test_a_holder_still_opening_keeps_its_name_without_asking_api_gateway() -> None:
    """Within the grace after its $connect, a holder that never spoke may be opening."""
    claims, gateway, pauses, evicted = Claims(1, OPENING_GRACE_MS - 1, False), Gateway(True), [], []
    with pytest.raises(NickTaken):
        hold(nicknames(claims, gateway, pauses, evicted))
    assert (gateway.asked, evicted, pauses) == ([], [], [])


def test_a_holder_past_the_grace_is_asked_about() -> None:
    claims, gateway, pauses, evicted = Claims(1, OPENING_GRACE_MS + 1, False), Gateway(True), [], []
    hold(nicknames(claims, gateway, pauses, evicted))
    assert gateway.asked == [HOLDER]
    assert (evicted, pauses) == ([("lobby", [HOLDER])], [])


def test_a_holder_api_gateway_still_has_keeps_its_name() -> None:
    claims, gateway, pauses, evicted = Claims(1, 60_000, True), Gateway(gone=False), [], []
    with pytest.raises(NickTaken):
        hold(nicknames(claims, gateway, pauses, evicted))
    assert gateway.asked == [HOLDER]
    assert (evicted, pauses, claims.calls) == ([], [], [("claim", NEWCOMER)])
