"""Saving the gateway's state: the embedded tables and the disconnect journal, together.

Both are saved every `--save-every` seconds when something changed, and on stop,
so that a `kill -9` loses at most that interval. Each file is written atomically.
A save writes the items that changed since the last one (state/snapshot.py), so
it costs what changed, not what the tables hold; a periodic save then folds the
change files into the tables' bases when they weigh enough, and gives that up
as soon as a stop wants to save.
The two cannot be written at one instant, so the journal is written twice: first
holding the connections of both the last save and now, then the tables, then the
journal of now. Killed at any point, the files on disk never miss the
`$disconnect` of a connection the saved tables still hold (running one for a
connection that is already gone changes nothing).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from localgateway.apigateway.events import Caller
from localgateway.apigateway.registry import LOST, Close
from localgateway.state import journal
from localgateway.state.journal import DisconnectJournal
from localgateway.state.snapshot import Written

log = logging.getLogger("localgateway")

SAVE_SECONDS = 10.0


class Saver:
    def __init__(
        self,
        pending: DisconnectJournal,
        save_tables: Callable[[], dict[str, Written]],
        compact: Callable[[Callable[[], bool]], None],
        state_dir: Path,
        writes: Callable[[], int],
    ) -> None:
        self._pending = pending
        self._save_tables = save_tables
        self._compact = compact
        self._state_dir = state_dir
        self._writes = writes
        self._saved: list[Caller] = []
        self._seen: tuple[int, int] | None = None
        self._lock = threading.Lock()  # a save outlives its cancelled task: one at a time
        self._stopping = threading.Event()

    def changed(self) -> bool:
        return self._seen != (self._writes(), self._pending.version)

    async def save(self, close: Close, final: bool = False) -> dict[str, Written]:
        """Save the journal (its connections ended with `close`) and the tables; the
        `final` save (the stop's) does not wait for a compaction, and makes none."""
        if final:
            self._stopping.set()
        current = self._pending.pending()
        seen = (self._writes(), self._pending.version)
        written = await asyncio.to_thread(self._save, current, close, final)
        self._seen = seen
        return written

    def _save(self, current: list[Caller], close: Close, final: bool) -> dict[str, Written]:
        with self._lock:
            both = {caller.connection_id: caller for caller in [*self._saved, *current]}
            journal.save(list(both.values()), close, self._state_dir)
            written = self._save_tables()
            journal.save(current, close, self._state_dir)
            self._saved = current
            if not final:
                self._compact(self._stopping.is_set)
            return written

    async def run(self, seconds: float) -> None:
        """Save every `seconds` when something changed, until cancelled. Saved while the
        connections are open: if the gateway is killed, they were lost (1006)."""
        while True:
            await asyncio.sleep(seconds)
            if self.changed():
                try:
                    await self.save(LOST)
                except (BotoCoreError, ClientError, OSError) as error:
                    log.error("could not save the state to %s: %s", self._state_dir, error)
