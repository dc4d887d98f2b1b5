"""A load process: many real websocket clients in one asyncio loop.

The benchmark starts several of these and drives them over stdin/stdout, one
JSON object per line. Every client records when each benchmark message reaches
it; the process reports, per message, the moment its last client had it.
Times are `time.monotonic()`, which on Linux is one clock for all processes.

Commands (stdin)                    Events (stdout)
{"cmd": "connect", "url", "count",  {"event": "connected", "count", "seconds", "refused"}
 "concurrency"}
{"cmd": "send", "k"}                {"event": "sent", "k", "at"}  (from the first client)
                                    {"event": "got", "k", "last"} (all clients have k)
{"cmd": "count", "k"}               {"event": "count", "k", "received"}
{"cmd": "close"}                    {"event": "closed"}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
import time
from collections import defaultdict
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

MARKER = re.compile(r'"text":\s*"bench (\d+)"')
# A busy server may refuse an upgrade (503 when the chat's $connect ran out of time, 500
# or 429 when the gateway had no handler free): a client tries again after a pause, as
# the page does. Every refusal is counted and reported.
RETRIED_STATUSES = {429, 500, 503}
RETRIES = 5


async def connect_patiently(
    url: str,
    statuses: set[int],
    retries: int,
    gate: asyncio.Semaphore | None = None,
    **options: Any,
) -> tuple[ClientConnection, int]:
    """Open a websocket, trying an upgrade refused with one of `statuses` again after
    0.5 s, doubling, at most `retries` times; the client and the refusals it met.
    `gate` is held while an upgrade is in flight, not during the pauses."""
    for attempt in range(retries):
        try:
            async with gate or contextlib.nullcontext():
                return await connect(url, **options), attempt
        except InvalidStatus as refusal:
            if refusal.response.status_code not in statuses:
                raise
        await asyncio.sleep(0.5 * 2**attempt)
    async with gate or contextlib.nullcontext():
        return await connect(url, **options), retries


class Load:
    def __init__(self) -> None:
        self.clients: list[ClientConnection] = []
        self.received: dict[int, int] = defaultdict(int)
        self.last: dict[int, float] = {}
        self.readers: list[asyncio.Task[None]] = []
        self.refused = 0

    def emit(self, **event: Any) -> None:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()

    async def connect(self, url: str, count: int, concurrency: int) -> None:
        started = time.monotonic()
        gate = asyncio.Semaphore(concurrency)

        async def one() -> None:
            client, refused = await connect_patiently(
                url,
                RETRIED_STATUSES,
                RETRIES,
                gate,
                open_timeout=120,
                max_queue=None,
                ping_interval=None,
                proxy=None,
            )
            self.refused += refused
            self.clients.append(client)
            self.readers.append(asyncio.create_task(self.read(client)))

        await asyncio.gather(*(one() for _ in range(count)))
        seconds = time.monotonic() - started
        self.emit(event="connected", count=count, seconds=seconds, refused=self.refused)

    async def read(self, client: ClientConnection) -> None:
        async for frame in client:
            found = MARKER.search(frame) if isinstance(frame, str) else None
            if found is None:
                continue
            k = int(found.group(1))
            self.received[k] += 1
            self.last[k] = time.monotonic()
            if self.received[k] == len(self.clients):
                self.emit(event="got", k=k, last=self.last[k])

    async def send(self, k: int) -> None:
        at = time.monotonic()
        await self.clients[0].send(json.dumps({"action": "sendmessage", "data": f"bench {k}"}))
        self.emit(event="sent", k=k, at=at)

    async def close(self) -> None:
        await asyncio.gather(*(client.close() for client in self.clients), return_exceptions=True)
        self.emit(event="closed")


async def main() -> None:
    load = Load()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = json.loads(line)
        if command["cmd"] == "connect":
            await load.connect(command["url"], command["count"], command["concurrency"])
        elif command["cmd"] == "send":
            await load.send(command["k"])
        elif command["cmd"] == "count":
            load.emit(event="count", k=command["k"], received=load.received[command["k"]])
        elif command["cmd"] == "close":
            await load.close()
            return


if __name__ == "__main__":
    asyncio.run(main())
