"""Who hears what: frames to a room's live members, and the clean-up of those gone.

Two intents: `send_to_room` (a message, an edit, a moderator's act: every
member, a big room's share handed to fan-out invocations) and
`announce_presence` (a join, a leave, a rename: only rooms within the presence
limit, so that filling a big room does not cost a send per member per arrival,
nor a read of the whole room). A member found gone by a message has its
departure announced once; one found gone while announcing leaves silently, so
a wave of leaves costs O(n) frames, not O(n^2). A departure frees the
member's nickname only after the room has been told.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

from chalicelib import protocol
from chalicelib.chat.clock import Clock
from chalicelib.chat.events import SocketEvent
from chalicelib.chat.nicknames import OPENING_GRACE_MS, Nicknames
from chalicelib.fanout import Batch, FanOut
from chalicelib.sending import Sender
from chalicelib.settings import Settings
from chalicelib.store import Store
from chalicelib.store.claims import NickTaken
from chalicelib.store.connections import Connection
from chalicelib.store.rooms import Departure, Member

# Builds a frame from the number of members in the room (presence frames carry it).
FrameFor = Callable[[int], dict[str, Any]]


def presence(who: Connection | Member, event: str, previous: str | None = None) -> FrameFor:
    """A presence frame of `who` in its room, for the room's count when it is known."""
    return lambda count: protocol.presence_frame(
        who.room, event, who.nick, count, previous, verified=bool(who.user)
    )


def _people(members: Iterable[Member]) -> int:
    """Confirmed members, a signed-in person counted once however many tabs they have."""
    return len({m.user or m.connection_id for m in members if m.confirmed})


def _other_tab(live: list[Member] | None, member: Member) -> Member | None:
    """Another confirmed connection of a signed-in member's person, in `live`."""
    if not member.user or not live:
        return None
    return next(
        (
            m
            for m in live
            if m.user == member.user and m.confirmed and m.connection_id != member.connection_id
        ),
        None,
    )


class Broadcaster:
    def __init__(
        self,
        store: Store,
        sender: Sender,
        settings: Settings,
        clock: Clock,
        fanout: FanOut | None,
    ) -> None:
        self._store = store
        self._sender = sender
        self._settings = settings
        self._clock = clock
        self._fanout = fanout
        # Nickname claims go with the broadcaster: a departure gives a staying tab its
        # name back, and taking over a gone holder's name evicts the holder through here.
        self.nicknames = Nicknames(
            store.claims, sender, clock, lambda room, gone: self.evict(room, gone, announce=True)
        )

    def send_to_room(
        self,
        room: str,
        frame: dict[str, Any],
        always: str | None = None,
        origin: SocketEvent | None = None,
    ) -> None:
        """Send a frame to every live member of `room`. `always` receives it even when
        the member list misses it (an acknowledgement must not depend on the index).
        With the `origin` event, a big room's broadcast is split across fan-out invocations."""
        self._tell(room, lambda count: frame, False, always=always, origin=origin)

    def announce_presence(
        self,
        room: str,
        frame: FrameFor,
        count: int | None = None,
        exclude: str | None = None,
        always: str | None = None,
        person: str = "",
    ) -> list[Member] | None:
        """Tell a room within the presence limit about a member; return the members still
        there (None for a bigger room: nobody is told). `count`, the room's count if
        known, spares the read of a big room. With `person` (a signed-in user), nothing
        is sent when another of their connections is a member already."""
        return self._tell(room, frame, True, count, exclude, always, person=person)

    def live_members(self, room: str) -> list[Member]:
        """The room's members, those expired removed silently."""
        live, expired = self._store.rooms.members(room)
        self.evict(room, [m.connection_id for m in expired], announce=False)
        if expired:
            self._store.rooms.correct_count(room, sum(1 for m in live if m.confirmed))
        return live

    def deliver_batch(self, batch: Batch) -> None:
        """A fan-out invocation's share of a broadcast, and the clean-up of those gone."""
        gone = self._deliver(batch.connection_ids, batch.data, set(batch.opening))
        self.evict(batch.room, gone, announce=True)

    def evict(self, room: str, connection_ids: list[str], announce: bool) -> None:
        """Remove connections that are gone. With `announce`, each confirmed departure is
        announced once, and members found gone by those announcements leave silently."""
        for connection_id in dict.fromkeys(connection_ids):
            departures = self._store.connections.remove(connection_id, room_hint=room)
            self.gone(connection_id, departures, announce)

    def gone(self, connection_id: str, departures: list[Departure], announce: bool = True) -> None:
        """A connection gone from each of its rooms, and from its person's connections."""
        for departure in departures:
            self.depart(departure, announce)
        for user in {d.member.user for d in departures if d.member.user}:
            self._store.memberships.remove_connection(user, connection_id)

    def depart(self, departure: Departure, announce: bool = True) -> None:
        """Announce a departure, then free its nickname: a newcomer under that name (a
        page reconnecting) is announced after the leave, never before it, so every
        page's member list ends up with the name in it. A person still there on
        another connection is not announced, and keeps their name."""
        member = departure.member
        stays = None
        try:
            if announce and member.confirmed:
                leave = presence(member, "leave")
                live = self.announce_presence(
                    member.room, leave, count=departure.count, person=member.user
                )
                stays = _other_tab(live, member)
            elif member.user:
                stays = _other_tab(self.live_members(member.room), member)
        finally:
            self._store.claims.release_nick(member.room, member.nick, member.connection_id)
        if stays is not None:
            with contextlib.suppress(NickTaken):  # taken in between: the tab keeps its membership
                self.nicknames.hold(
                    member.room,
                    stays.nick,
                    stays.connection_id,
                    stays.connected_at,
                    user=stays.user,
                )

    def _tell(
        self,
        room: str,
        frame: FrameFor,
        announcing: bool,
        count: int | None = None,
        exclude: str | None = None,
        always: str | None = None,
        origin: SocketEvent | None = None,
        person: str = "",
    ) -> list[Member] | None:
        """Send to the live members; evict those gone (announced unless `announcing`)."""
        limit = self._settings.presence_limit if announcing else None
        if count is not None and count > self._settings.presence_limit:
            return None
        members = self._store.rooms.members(room, at_most=limit)
        if members is None:
            return None
        live, expired = members
        if person and any(
            m.user == person and m.confirmed and m.connection_id != exclude for m in live
        ):
            return live
        targets = [m.connection_id for m in live if m.connection_id != exclude]
        if always is not None and always not in targets:
            targets.append(always)
        # API Gateway answers 410 for a connection whose $connect has not finished
        # yet, though its membership is already stored: such a 410 is no departure.
        opening_since = self._clock.now_ms() - OPENING_GRACE_MS
        opening = {m.connection_id for m in live if m.connected_at > opening_since}
        data = protocol.encode(frame(_people(live)))
        if origin is not None:
            targets = self._fan_out(room, targets, data, opening, origin)
        gone = self._deliver(targets, data, opening)
        stale = [m.connection_id for m in expired]
        self.evict(room, [*stale, *gone], announce=not announcing)
        remaining = [m for m in live if m.connection_id not in gone]
        if gone or stale:
            self._store.rooms.correct_count(room, sum(1 for m in remaining if m.confirmed))
        return remaining

    def _fan_out(
        self, room: str, targets: list[str], data: str, opening: set[str], origin: SocketEvent
    ) -> list[str]:
        """Hand all batches but the first to fan-out invocations; return what is left to send."""
        if self._fanout is None or len(targets) <= self._fanout.batch_size:
            return targets
        own, *others = self._fanout.split(targets)
        batches = [
            Batch(
                room=room,
                data=data,
                connection_ids=batch,
                opening=[cid for cid in batch if cid in opening],
                domain_name=origin.domain_name,
                stage=origin.stage,
            )
            for batch in others
        ]
        failed = self._fanout.dispatch(batches)
        return own + [cid for batch in failed for cid in batch.connection_ids]

    def _deliver(self, connection_ids: list[str], data: str, opening: set[str]) -> list[str]:
        """Send `data` to every connection; return the gone ones (not those still opening)."""
        return sorted(set(self._sender.broadcast(connection_ids, data)) - opening)
