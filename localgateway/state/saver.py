"""Saving the gateway's state: the embedded tables and the disconnect journal, together.

Both are saved every `--save-every` seconds when something changed, and on stop,
so that a `kill -9` loses at most that interval. Each file is written atomically.
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

log = logging.getLogger("localgateway")

SAVE_SECONDS = 10.0


class Saver:
    def __init__(
        self,
        pending: DisconnectJournal,
        save_tables: Callable[[], dict[str, int]],
        state_dir: Path,
        writes: Callable[[], int],
    ) -> None:
        self._pending = pending
        self._save_tables = save_tables
        self._state_dir = state_dir
        self._writes = writes
        self._saved: list[Caller] = []
        self._seen: tuple[int, int] | None = None
        self._lock = threading.Lock()  # a save outlives its cancelled task: one at a time

    def changed(self) -> bool:
        return self._seen != (self._writes(), self._pending.version)

    async def save(self, close: Close) -> dict[str, int]:
        """Save the journal (its connections ended with `close`) and the tables."""
        current = self._pending.pending()
        seen = (self._writes(), self._pending.version)
        counts = await asyncio.to_thread(self._save, current, close)
        self._seen = seen
        return counts

    def _save(self, current: list[Caller], close: Close) -> dict[str, int]:
        with self._lock:
            both = {caller.connection_id: caller for caller in [*self._saved, *current]}
            journal.save(list(both.values()), close, self._state_dir)
            counts = self._save_tables()
            journal.save(current, close, self._state_dir)
            self._saved = current
            return counts

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
