"""`python -m bench.stop`: a stop with many chat clients open, then a restart.

Issue 22's promise: on Ctrl-C the gateway exits within 5 s, every open
connection's `$disconnect` runs (at the stop, or at the next start before a
websocket is accepted), and after the restart a newcomer's `joined`, `who`
and `rooms` list nobody from before; after a `kill -9` the next start runs
them all. tests/test_gateway_lifecycle.py runs this with 40 clients; this
runs it with 300 (`--clients`) and prints the figures, one line per way of
stopping.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.clients import RETRIES, connect_patiently
from localgateway import launcher

ROOT = Path(__file__).resolve().parent.parent

CONNECTED = re.compile(r"CONNECT\s+\$connect\s+(\S+)\s+200 ")
DISCONNECTED = re.compile(r"DISCONNECT\s+\$disconnect\s+(\S+)\s+200 ")
READY = re.compile(r"ready in ([0-9.]+) s")
CTRL_C, KILL = "ctrl-c", "kill -9"


@dataclass
class Outcome:
    stop: str
    clients: int
    exit_seconds: float  # from the signal to the exit
    exit_code: int | None
    opened: int  # $connects answered 200
    at_stop: int  # $disconnects that ran before the exit
    at_start: int  # of the rest, those the next start ran
    missed: int  # opened, and their $disconnect ran nowhere
    restart_seconds: float  # the next start's "ready in"
    joined: list[str]
    who: list[str]
    rooms: list[Any]

    def line(self) -> str:
        return (
            f"{self.stop}: {self.clients} clients, exit after {self.exit_seconds:.1f} s "
            f"(code {self.exit_code}); $disconnects {self.at_stop} at the stop + "
            f"{self.at_start} at the next start of {self.opened} ({self.missed} missed); "
            f"restart ready in {self.restart_seconds:.1f} s; newcomer: joined {self.joined}, "
            f"who {self.who}, rooms {self.rooms}"
        )


async def join_crowd(url: str, clients: int) -> list[ClientConnection]:
    """`clients` chat members of the room `before`, each having sent its first frame."""
    gate = asyncio.Semaphore(10)

    async def one(n: int) -> ClientConnection:
        async with gate:
            client, _ = await connect_patiently(  # 503: the page tries again, so do these
                f"{url}?room=before",
                {503},
                RETRIES,
                open_timeout=60,
                ping_interval=None,
                proxy=None,
            )
            for _ in range(5):  # `unavailable` (a machine too busy for the budget): again
                await client.send(json.dumps({"action": "join", "room": "before"}))
                while (frame := json.loads(await asyncio.wait_for(client.recv(), 60))).get(
                    "type"
                ) not in ("joined", "error"):
                    pass
                if frame.get("code") != "unavailable":
                    break
            assert frame["type"] == "joined", frame
            return client

    return list(await asyncio.gather(*(one(n) for n in range(clients))))


async def what_a_newcomer_sees(url: str) -> tuple[list[str], list[str], list[Any]]:
    async with connect(f"{url}?room=before&nick=newcomer", proxy=None) as client:
        seen: dict[str, Any] = {}
        for action, answer in (("join", "joined"), ("who", "members"), ("rooms", "rooms")):
            await client.send(json.dumps({"action": action, "room": "before"}))
            while (frame := json.loads(await asyncio.wait_for(client.recv(), 60))).get(
                "type"
            ) != answer:
                pass
            seen[answer] = frame
    return seen["joined"]["members"], seen["members"]["members"], seen["rooms"]["rooms"]


def stop_and_restart(workdir: Path, clients: int, stop: str) -> Outcome:
    """Start the chat, open `clients` members, stop it (`stop`), restart on the same state."""
    state = ["--state-dir", str(workdir / "state"), "--save-every", "0.5"]
    flags = ["--no-autoreload", "--env", f"CONNECTIONS_PER_IP={clients + 10}", *state]
    first = launcher.start(workdir / "first", ROOT, *flags, timeout=120)

    async def crowd_then_stop() -> float:
        """The clients stay open and answer the gateway's closes, as real ones do."""
        crowd = await join_crowd(first.endpoints["websocket"], clients)
        if stop == KILL:
            await asyncio.sleep(1.5)  # a periodic save after the last join
            first.process.kill()
        else:
            first.process.send_signal(signal.SIGINT)
        signalled = time.monotonic()

        def wait() -> float:
            """The exit's moment, taken here: the loop may be busy with the closes."""
            first.process.wait(60)
            return time.monotonic()

        exited = await asyncio.to_thread(wait) - signalled
        await asyncio.gather(*(client.close() for client in crowd))
        return exited

    try:
        exited = asyncio.run(crowd_then_stop())
    finally:
        first.stop()
    second = launcher.start(workdir / "second", ROOT, *flags, timeout=300)
    try:
        joined, who, rooms = asyncio.run(what_a_newcomer_sees(second.endpoints["websocket"]))
    finally:
        second.stop()
    opened = set(CONNECTED.findall(first.log()))
    at_stop = opened & set(DISCONNECTED.findall(first.log()))
    at_start = (opened - at_stop) & set(DISCONNECTED.findall(second.log()))
    ready = READY.search(second.log())
    return Outcome(
        stop,
        clients,
        exited,
        first.process.returncode,
        len(opened),
        len(at_stop),
        len(at_start),
        len(opened - at_stop - at_start),
        float(ready.group(1)) if ready else float("nan"),
        joined,
        who,
        rooms,
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stop", description=__doc__)
    parser.add_argument("--clients", type=int, default=300)
    args = parser.parse_args()
    for stop in (CTRL_C, KILL):
        with tempfile.TemporaryDirectory(prefix="bench-stop-") as workdir:
            print(stop_and_restart(Path(workdir), args.clients, stop).line(), flush=True)


if __name__ == "__main__":
    main()
