"""The connections whose `$disconnect` has not run yet, kept across restarts of the gateway.

API Gateway runs every connection's `$disconnect`. A gateway that stops (Ctrl-C with
hundreds of clients, or `kill -9`) cannot always run them all before it exits; the
app's items for those connections would then outlive them, and a restarted chat would
list members nobody can reach. So every connection is in the journal from its
`$connect` until its `$disconnect` has run; the journal is saved with the tables (on
stop, and periodically), and the next start runs what it holds before it accepts
traffic. How the connections ended is saved with them: a clean stop's close (1001), or
for a journal saved while they were open, a lost connection (1006: the gateway was
killed).

`DisconnectJournal` is bookkeeping only; `save` and `load` are its file.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from localgateway.apigateway.events import Caller
from localgateway.apigateway.registry import Close

FILE = "connections.json"


class DisconnectJournal:
    """Connections opened and not yet disconnected, in the order they opened."""

    def __init__(self) -> None:
        self._callers: dict[str, Caller] = {}
        self.version = 0  # changes with every change: whether there is anything to save

    def __len__(self) -> int:
        return len(self._callers)

    def opened(self, caller: Caller) -> None:
        self._callers[caller.connection_id] = caller
        self.version += 1

    def done(self, connection_id: str) -> None:
        """Its `$disconnect` has run."""
        if self._callers.pop(connection_id, None) is not None:
            self.version += 1

    def pending(self) -> list[Caller]:
        return list(self._callers.values())


def save(callers: list[Caller], close: Close, state_dir: Path) -> None:
    """Write the journal atomically: a reader, or a start after a kill, never sees half."""
    state_dir.mkdir(parents=True, exist_ok=True)
    document = {"close": asdict(close), "connections": [asdict(caller) for caller in callers]}
    target = state_dir / FILE
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(json.dumps(document), encoding="utf-8")
    temporary.replace(target)


def load(state_dir: Path) -> tuple[list[Caller], Close]:
    """The saved journal, and how its connections ended; none without a file."""
    source = state_dir / FILE
    if not source.is_file():
        return [], Close(1006, "")
    document = json.loads(source.read_text(encoding="utf-8"))
    close = Close(**document["close"])
    return [Caller(**fields) for fields in document["connections"]], close
