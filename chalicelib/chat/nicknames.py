"""Nicknames claimed in rooms, and a gone holder's name taken over.

A nickname is unique in a room (the store's conditional claim). A page that
reconnects before its old connection's `$disconnect` ran finds its own name
held by that connection: when API Gateway says the holder is gone, the holder
is evicted (its room hears it left) and the name changes hands. A holder whose
`$connect` may still be running is not gone: a 410 then means "not open yet".
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from chalicelib.chat.clock import Clock
from chalicelib.sending import Sender
from chalicelib.store.claims import Claims, NickTaken

# How long after connecting a 410 from API Gateway may mean "not open yet"
# rather than "gone" (the $connect handler can still be running).
OPENING_GRACE_MS = 10_000

# A gone holder's name is freed by its $disconnect once the room has heard it left;
# taking the name over waits that long at most, then frees it (that $disconnect failed).
TAKEOVER_WAITS = 10
TAKEOVER_PAUSE_SECONDS = 0.05

# Remove gone connections from a room, announcing their departures (broadcaster.py).
Evict = Callable[[str, list[str]], None]


def guest_nick(connection_id: str, digits: int = 4) -> str:
    """The nickname a connection starts with: stable for its id, no lookups needed."""
    return "guest-" + hashlib.blake2s(connection_id.encode()).hexdigest()[:digits]


class Nicknames:
    def __init__(self, claims: Claims, sender: Sender, clock: Clock, evict: Evict) -> None:
        self._claims = claims
        self._sender = sender
        self._clock = clock
        self._evict = evict

    def claim(
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
                self.hold(room, name, connection_id, connected_at, confirmed, user)
            except NickTaken:
                continue
            return name
        raise NickTaken(nick, room)

    def hold(
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
            self._claims.nick(room, nick, connection_id, connected_at, confirmed, user)
        except NickTaken as taken:
            # A 410 for a holder whose $connect may still be running means "not open yet";
            # one that has sent a frame has opened, and a 410 for it means gone.
            recent = taken.holder_connected_at > self._clock.now_ms() - OPENING_GRACE_MS
            opening = recent and not taken.holder_confirmed
            if not taken.holder or opening or not self._sender.is_gone(taken.holder):
                raise
            self._take_over(taken.holder, room, nick, connection_id, connected_at, confirmed, user)

    def _take_over(
        self,
        holder: str,
        room: str,
        nick: str,
        connection_id: str,
        connected_at: int,
        confirmed: bool,
        user: str,
    ) -> None:
        """Evict the gone holder, then claim; its own $disconnect may be freeing the name
        at the same time, so wait for it a little before freeing the name here."""
        self._evict(room, [holder])
        for _ in range(TAKEOVER_WAITS):
            try:
                self._claims.nick(room, nick, connection_id, connected_at, confirmed, user)
                return
            except NickTaken as again:
                if again.holder != holder:
                    raise
            # Its $disconnect removed it first and is telling the room it left.
            self._clock.sleep(TAKEOVER_PAUSE_SECONDS)
        self._claims.release_nick(room, nick, holder)
        self._claims.nick(room, nick, connection_id, connected_at, confirmed, user)
