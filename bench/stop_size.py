"""`python -m bench.stop_size`: what a stop and a start cost as the chat's table grows.

Issue 22: a Ctrl-C must stop the gateway within a few seconds whatever the size
of the saved tables. For each `--items` size this starts the chat on an empty
state folder, fills its table with that many message items (clones of a message
the chat itself stored, written with BatchWriteItem through the embedded
DynamoDB's endpoint), stops it (the first save of those items), then measures
the usual case twice over: a start on the saved state ("ready in"), a short
conversation (`--messages` messages), a Ctrl-C (from the signal to the exit),
and the next start. `--save-every 3600`: no periodic save helps the stop.

    python -m bench.stop_size                       # 13,000 and 100,000 items
    python -m bench.stop_size --items 2000 --write  # --write: into docs/local-gateway.md

`--write` puts the lines between the `stop-size` markers of docs/local-gateway.md.
"""

from __future__ import annotations

import argparse
import json
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

from bench import report
from bench.dynamodb import client
from bench.markers import replace_block
from localgateway import launcher

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "local-gateway.md"
BATCH = 25


@dataclass
class Sizes:
    items: int  # in the table when stopped
    fill_stop_seconds: float  # the stop right after writing them all (every item changed)
    start_seconds: float  # the start on the saved items ("ready in")
    stop_seconds: float  # the stop after a short conversation
    restart_seconds: float  # the next start ("ready in")
    saved: str  # what the stop's log says it saved

    def line(self) -> str:
        return (
            f"{self.items:,} items: start {self.start_seconds:.1f} s; Ctrl-C after "
            f"a conversation: exit after {self.stop_seconds:.1f} s ({self.saved}); "
            f"next start {self.restart_seconds:.1f} s (the stop right after writing them "
            f"all: {self.fill_stop_seconds:.1f} s)"
        )


def start(workdir: Path, state: Path) -> launcher.GatewayProcess:
    flags = ["--no-autoreload", "--state-dir", str(state), "--save-every", "3600"]
    return launcher.start(workdir, ROOT, *flags, timeout=900)


def ready_seconds(gateway: launcher.GatewayProcess) -> float:
    for line in gateway.log().splitlines():
        if line.startswith("ready in "):
            return float(line.split()[2])
    raise RuntimeError(f"no 'ready in' line:\n{gateway.log()}")


def talk(gateway: launcher.GatewayProcess, messages: int) -> None:
    """`messages` messages from one member, each stored before the next is sent."""
    with connect(f"{gateway.endpoints['websocket']}?nick=bench&room=big", proxy=None) as ws:
        for n in range(messages):
            text = f"message {n} at {time.time()}"
            ws.send(json.dumps({"action": "sendmessage", "data": text}))
            while (frame := json.loads(ws.recv(timeout=60))).get("text") != text:
                if frame.get("code") == "rate_limited":  # faster than a person types
                    time.sleep(1)
                    ws.send(json.dumps({"action": "sendmessage", "data": text}))


def stop_seconds(gateway: launcher.GatewayProcess) -> float:
    """From SIGINT to the exit."""
    signalled = time.monotonic()
    gateway.process.send_signal(signal.SIGINT)
    code = gateway.process.wait(900)
    if code != 0:
        raise RuntimeError(f"the gateway exited with {code}:\n{gateway.log()}")
    return time.monotonic() - signalled


def fill(gateway: launcher.GatewayProcess, items: int) -> None:
    """Clone the message the chat stored until its table holds `items` items."""
    dynamo = client(gateway.endpoints["dynamodb"])
    (table,) = dynamo.list_tables()["TableNames"]
    stored = dynamo.scan(TableName=table)["Items"]
    message = next(item for item in stored if item["pk"]["S"].startswith("HIST#"))
    ulid = message["sk"]["S"]
    clones: list[dict[str, Any]] = [
        {**message, "sk": {"S": f"{ulid[:-8]}{n:08d}"}} for n in range(items - len(stored))
    ]
    for first in range(0, len(clones), BATCH):
        requests = {table: [{"PutRequest": {"Item": c}} for c in clones[first : first + BATCH]]}
        while requests:
            requests = dynamo.batch_write_item(RequestItems=requests).get("UnprocessedItems")


def saved_line(gateway: launcher.GatewayProcess) -> str:
    lines = [line for line in gateway.log().splitlines() if "saved the tables" in line]
    return "saved " + lines[-1].split(" (", 1)[1].rstrip(")") if lines else "nothing saved"


def measure(workdir: Path, items: int, messages: int) -> Sizes:
    state = workdir / "state"
    first = start(workdir / "fill", state)
    try:
        talk(first, 1)
        fill(first, items)
        fill_stop = stop_seconds(first)
    finally:
        first.stop()
    second = start(workdir / "second", state)
    try:
        talk(second, messages)
        stop = stop_seconds(second)
    finally:
        second.stop()
    third = start(workdir / "third", state)
    third.stop()
    return Sizes(
        items,
        fill_stop,
        ready_seconds(second),
        stop,
        ready_seconds(third),
        saved_line(second),
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stop_size", description=__doc__)
    parser.add_argument("--items", type=int, action="append", help="default: 13000 and 100000")
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--write", action="store_true", help=f"write the figures into {DOC}")
    args = parser.parse_args()
    lines = []
    for items in args.items or [13_000, 100_000]:
        with tempfile.TemporaryDirectory(prefix="bench-stop-size-") as workdir:
            lines.append(measure(Path(workdir), items, args.messages).line())
            print(lines[-1], flush=True)
    if args.write:
        about = report.machine()
        command = "python -m bench.stop_size" + "".join(
            f" --items {items}" for items in args.items or []
        )
        header = (
            f"Measured {about['date']} on {about['cpu']} ({about['cores']} cores), "
            f"commit {about['commit']}, with `{command}`:"
        )
        replace_block(DOC, "stop-size", "\n".join([header, "", *(f"- {line}" for line in lines)]))


if __name__ == "__main__":
    main()
