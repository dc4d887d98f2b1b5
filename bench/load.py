"""`python -m bench.load`: the chat under load through the local gateway, counting what broke.

Each scenario starts a gateway on the chat (its frame limit lifted: a burst is
meant to exceed it), drives it with real websocket clients in this process,
ten to a loopback address (127.0.x.y: the chat counts connections per
address, and a crowd does not come from one machine), then reads the chat's
table directly to count what was stored and what was left behind:

- burst: one client sends N messages back to back (`--max-workers 4`). Handler
  processes are sampled every 20 ms. Every message must be acknowledged once,
  stored once, and never answered with an error frame.
- storm: C clients connect, K at a time. Every upgrade must be accepted; once
  they all close, the table must lose their items (within 10 s up to 200
  clients, within 120 s for a bigger crowd: the embedded DynamoDB takes one
  request at a time).
- chatter: C clients send M messages each. Every message must reach every
  client once and be in the history once; once all clients close, no
  connection or membership item may be left after 10 s.
- flood: in a room of R members that has talked (a few members' first
  messages, timed: a handler process's first broadcast opens its connections,
  the slowest of these is noted), one client floods F frames while another
  pings every 250 ms: the slowest pong.

The suite (tests/test_gateway_load.py) runs each with small numbers; the full
sizes are the defaults here. `--write` puts the results into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import boto3
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bench import LIFTED, report
from bench.markers import replace_block
from localgateway import launcher

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
BLOCK = "load"
OPEN_TIMEOUT = 120
# How long the table may take to lose every item of clients that closed (the issue's
# bound for a room of 200), and how long a bigger crowd is given before what is left
# counts as left behind.
CLEANUP_SECONDS = 10.0
CROWD_CLEANUP_SECONDS = 120.0
CLIENTS_PER_ADDRESS = 10


@dataclass
class Outcome:
    """What one scenario counted. Every count but `seconds` and the peaks should be 0."""

    scenario: str
    size: str
    seconds: float = 0.0
    lost: int = 0
    duplicated: int = 0
    errors: int = 0
    refused: int = 0
    leaked: int = 0
    peak_workers: int = 0
    worst_ping_ms: float = 0.0
    notes: list[str] = field(default_factory=list)


class Gateway:
    """A gateway running the chat for one scenario, with clients for its table."""

    def __init__(self, workdir: Path, max_workers: int, env: dict[str, str]) -> None:
        # A flood is meant to queue: let it wait (the refusals after --queue-timeout and
        # --frame-queue-timeout are the gateway's, tested in tests/test_gateway_*.py).
        flags = ["--no-autoreload", "--quiet", "--fresh", "--queue-timeout", "900"]
        flags += ["--frame-queue-timeout", "900"]
        flags += ["--max-workers", str(max_workers)]
        for name, value in env.items():
            flags += ["--env", f"{name}={value}"]
        self.process = launcher.start(workdir, ROOT, *flags)
        self.url = self.process.endpoints["websocket"]
        self.table = next(iter(self.process.endpoints["tables"].values()))
        self.dynamodb = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        ).client("dynamodb", endpoint_url=self.process.endpoints["dynamodb"])

    def stop(self) -> None:
        self.process.stop()

    def workers(self) -> int:
        """Handler processes alive now (not counting exited ones not yet reaped)."""
        return len(self.process.children(alive_only=True))

    def history(self, room: str) -> list[str]:
        """The texts of the room's stored messages, over every page."""
        pages = self.dynamodb.get_paginator("query").paginate(
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"HIST#{room}"}},
            ConsistentRead=True,
        )
        return [item["text"]["S"] for page in pages for item in page["Items"]]

    def presence_items(self) -> int:
        """Connection and membership items in the table (a scan: the check, not the chat)."""
        pages = self.dynamodb.get_paginator("scan").paginate(
            TableName=self.table,
            FilterExpression="begins_with(pk, :conn) OR begins_with(sk, :member)",
            ExpressionAttributeValues={":conn": {"S": "CONN#"}, ":member": {"S": "MEMBER#"}},
            ConsistentRead=True,
        )
        return sum(page["Count"] for page in pages)

    async def items_left_after(self, seconds: float) -> int:
        """Presence items left once `seconds` have passed (0 as soon as there are none)."""
        deadline = time.monotonic() + seconds
        while True:
            left = await asyncio.to_thread(self.presence_items)
            if left == 0 or time.monotonic() > deadline:
                return left
            await asyncio.sleep(0.5)  # a scan of the whole table: not too often


@contextmanager
def sampling(gateway: Gateway) -> Iterator[list[int]]:
    """The most handler processes seen at once, sampled every 20 ms while inside."""
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], gateway.workers())
            stop.wait(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()


def address(n: int) -> str:
    """Client n's own loopback address, ten clients to an address: the chat counts
    connections per source address, and a crowd does not come from one machine."""
    index = n // CLIENTS_PER_ADDRESS
    return f"127.0.{1 + index // 250}.{1 + index % 250}"


async def open_client(url: str, n: int = 0) -> ClientConnection:
    return await connect(
        url,
        open_timeout=OPEN_TIMEOUT,
        max_queue=None,
        ping_interval=None,
        proxy=None,
        local_addr=(address(n), 0),
    )


def message(text: str) -> str:
    return json.dumps({"action": "sendmessage", "data": text})


async def is_pong(client: ClientConnection, timeout: float) -> bool:
    return json.loads(await asyncio.wait_for(client.recv(), timeout)).get("type") == "pong"


def is_error(frame: dict[str, Any]) -> bool:
    """The chat's error frame, or API Gateway's own ("Internal server error", "Forbidden")."""
    return frame.get("type") == "error" or ("type" not in frame and "message" in frame)


async def frames(client: ClientConnection, until: float) -> list[dict[str, Any]]:
    """Every frame the client gets until the monotonic time `until`."""
    got = []
    try:
        while (left := until - time.monotonic()) > 0:
            got.append(json.loads(await asyncio.wait_for(client.recv(), left)))
    except (TimeoutError, ConnectionClosed):
        pass
    return got


async def send_and_count(
    client: ClientConnection,
    texts: list[str],
    acks: Counter[str],
    outcome: Outcome,
    deadline: float,
) -> None:
    """Send every text back to back, then count its acknowledgements (the room's copy of
    each message) and error frames until every text has one or the other."""
    for text in texts:
        await client.send(message(text))
    wanted = set(texts)
    while len(acks) + outcome.errors < len(texts) and time.monotonic() < deadline:
        for frame in await frames(client, min(deadline, time.monotonic() + 1)):
            if frame.get("type") == "message" and frame["text"] in wanted:
                acks[frame["text"]] += 1
            elif is_error(frame):
                outcome.errors += 1


def cleanup_note(left: int, seconds: float) -> str:
    if left:
        return f"{left} items still there {seconds:.0f} s after the last close"
    return f"table clean {seconds:.0f} s after the last close"


# Scenarios ---------------------------------------------------------------------------


async def burst(gateway: Gateway, messages: int, timeout: float) -> Outcome:
    """One client sends `messages` messages back to back into its own room."""
    outcome = Outcome("burst", f"{messages} messages from one client")
    room = "burst"
    client = await open_client(f"{gateway.url}?room={room}")
    texts = [f"burst {n}" for n in range(messages)]
    acks: Counter[str] = Counter()
    started = time.monotonic()
    with sampling(gateway) as peak:
        await send_and_count(client, texts, acks, outcome, time.monotonic() + timeout)
    outcome.seconds = time.monotonic() - started
    outcome.peak_workers = peak[0]
    await client.close()
    stored = Counter(await asyncio.to_thread(gateway.history, room))
    outcome.lost = sum(1 for text in texts if not acks[text] or not stored[text])
    outcome.duplicated = sum(acks[t] - 1 for t in texts if acks[t] > 1) + sum(
        stored[t] - 1 for t in texts if stored[t] > 1
    )
    return outcome


async def storm(gateway: Gateway, clients: int, at_a_time: int) -> Outcome:
    """`clients` connect, `at_a_time` in flight; every upgrade must be accepted."""
    outcome = Outcome("storm", f"{clients} clients, {at_a_time} at a time")
    gate = asyncio.Semaphore(at_a_time)
    statuses: Counter[int] = Counter()
    opened: list[ClientConnection] = []

    async def one(n: int) -> None:
        async with gate:
            try:
                opened.append(await open_client(f"{gateway.url}?room=storm&nick=storm-{n}", n))
            except InvalidStatus as error:
                statuses[error.response.status_code] += 1

    started = time.monotonic()
    with sampling(gateway) as peak:
        await asyncio.gather(*(one(n) for n in range(clients)))
    outcome.seconds = time.monotonic() - started
    outcome.peak_workers = peak[0]
    outcome.refused = sum(statuses.values())
    outcome.notes = [f"HTTP {status}: {count}" for status, count in sorted(statuses.items())]
    await asyncio.gather(*(client.close() for client in opened))
    closed = time.monotonic()
    bound = CLEANUP_SECONDS if clients <= 200 else CROWD_CLEANUP_SECONDS
    outcome.leaked = await gateway.items_left_after(bound)
    outcome.notes.append(cleanup_note(outcome.leaked, time.monotonic() - closed))
    return outcome


async def chatter(gateway: Gateway, clients: int, messages: int, timeout: float) -> Outcome:
    """`clients` in one room send `messages` each; everyone must get everything once."""
    outcome = Outcome("chatter", f"{clients} clients x {messages} messages")
    room = "chatter"
    gate = asyncio.Semaphore(50)

    async def join(n: int) -> ClientConnection:
        async with gate:
            return await open_client(f"{gateway.url}?room={room}&nick=talker-{n}", n)

    members = await asyncio.gather(*(join(n) for n in range(clients)))
    texts = [f"chatter {c}-{m}" for m in range(messages) for c in range(clients)]
    expected = set(texts)
    received = [Counter[str]() for _ in members]
    errors = [0]
    started = time.monotonic()
    deadline = started + timeout

    async def listen(n: int) -> None:
        client = members[n]
        while len(received[n]) < len(expected) and time.monotonic() < deadline:
            for frame in await frames(client, min(deadline, time.monotonic() + 1)):
                if frame.get("type") == "message" and frame["text"] in expected:
                    received[n][frame["text"]] += 1
                elif is_error(frame):
                    errors[0] += 1

    async def talk(n: int) -> None:
        for m in range(messages):
            await members[n].send(message(f"chatter {n}-{m}"))
            await asyncio.sleep(0.05)

    with sampling(gateway) as peak:
        await asyncio.gather(
            *(listen(n) for n in range(clients)), *(talk(n) for n in range(clients))
        )
    outcome.seconds = time.monotonic() - started
    outcome.peak_workers = peak[0]
    outcome.errors = errors[0]
    outcome.lost = sum(len(expected - set(counts)) for counts in received)
    outcome.duplicated = sum(count - 1 for counts in received for count in counts.values())
    stored = Counter(await asyncio.to_thread(gateway.history, room))
    outcome.lost += sum(1 for text in texts if not stored[text])
    outcome.duplicated += sum(stored[text] - 1 for text in texts if stored[text] > 1)
    await asyncio.gather(*(client.close() for client in members))
    closed = time.monotonic()
    outcome.leaked = await gateway.items_left_after(CLEANUP_SECONDS)
    outcome.notes.append(cleanup_note(outcome.leaked, time.monotonic() - closed))
    return outcome


async def say_hello(clients: list[ClientConnection], timeout: float) -> float:
    """Each client says hello at once and reads until it has every hello; returns the
    slowest wait for one's own."""
    hellos = {f"hello from {n}" for n in range(len(clients))}

    async def one(n: int, client: ClientConnection) -> float:
        sent = time.monotonic()
        await client.send(message(f"hello from {n}"))
        seen: set[str] = set()
        answered = 0.0
        while seen != hellos:
            frame = json.loads(await asyncio.wait_for(client.recv(), timeout))
            if frame.get("type") == "message" and frame["text"] in hellos:
                seen.add(frame["text"])
                if frame["text"] == f"hello from {n}":
                    answered = time.monotonic() - sent
        return answered

    return max(await asyncio.gather(*(one(n, c) for n, c in enumerate(clients))))


async def flood(gateway: Gateway, members: int, frames_sent: int, timeout: float) -> Outcome:
    """One client floods a room of `members` while another pings every 250 ms,
    until the flooder has every acknowledgement back."""
    outcome = Outcome("flood", f"{frames_sent} frames into a room of {members}")
    room = "flood"
    others = await asyncio.gather(
        *(open_client(f"{gateway.url}?room={room}&nick=reader-{n}", n) for n in range(members - 2))
    )
    flooder = await open_client(f"{gateway.url}?room={room}&nick=flooder", members - 2)
    bystander = await open_client(f"{gateway.url}?room={room}&nick=bystander", members - 1)
    first = await say_hello([flooder, bystander, *others[:2]], timeout=timeout)
    outcome.notes.append(f"the room's first messages answered within {first * 1000:.0f} ms")
    texts = [f"flood {n}" for n in range(frames_sent)]
    acks: Counter[str] = Counter()
    waits: list[float] = []
    done = asyncio.Event()
    started = time.monotonic()
    deadline = started + timeout

    async def pour() -> None:
        await send_and_count(flooder, texts, acks, outcome, deadline)
        done.set()

    async def ping() -> None:
        while not done.is_set():
            sent = time.monotonic()
            await bystander.send(json.dumps({"action": "ping"}))
            while (
                json.loads(await asyncio.wait_for(bystander.recv(), timeout)).get("type") != "pong"
            ):
                pass
            waits.append(time.monotonic() - sent)
            await asyncio.sleep(0.25)

    with sampling(gateway) as peak:
        await asyncio.gather(pour(), ping())
    outcome.seconds = time.monotonic() - started
    outcome.peak_workers = peak[0]
    outcome.worst_ping_ms = round(max(waits) * 1000)
    outcome.notes.append(f"{len(waits)} pings")
    outcome.lost = sum(1 for text in texts if not acks[text])
    outcome.duplicated = sum(count - 1 for count in acks.values() if count > 1)
    await asyncio.gather(*(client.close() for client in [*others, flooder, bystander]))
    return outcome


# The command ---------------------------------------------------------------------------


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("--scenarios", nargs="+", default=["burst", "storm", "chatter", "flood"])
    parser.add_argument("--burst", type=int, default=1000, help="messages in the burst")
    parser.add_argument("--storm", type=int, default=1000, help="clients in the storm")
    parser.add_argument("--storm-at-once", type=int, default=50)
    parser.add_argument("--chatter-clients", type=int, default=200)
    parser.add_argument("--chatter-messages", type=int, default=10)
    parser.add_argument("--flood-members", type=int, default=100)
    parser.add_argument("--flood-frames", type=int, default=1000)
    parser.add_argument("--max-workers", type=int, default=4)
    parser.add_argument("--write", action="store_true", help="write the results into " + str(DOC))
    return parser.parse_args()


async def run(args: argparse.Namespace) -> list[Outcome]:
    plans = {
        "burst": lambda g: burst(g, args.burst, timeout=600),
        "storm": lambda g: storm(g, args.storm, args.storm_at_once),
        "chatter": lambda g: chatter(g, args.chatter_clients, args.chatter_messages, timeout=1800),
        "flood": lambda g: flood(g, args.flood_members, args.flood_frames, timeout=1800),
    }
    outcomes = []
    for name in args.scenarios:
        with tempfile.TemporaryDirectory(prefix=f"load-{name}-") as workdir:
            # Clients come from many addresses (`address`): the per-address quota stays.
            gateway = await asyncio.to_thread(Gateway, Path(workdir), args.max_workers, LIFTED)
            try:
                outcome = await plans[name](gateway)
            finally:
                await asyncio.to_thread(gateway.stop)
        print(table([outcome]).splitlines()[-1], flush=True)
        outcomes.append(outcome)
    return outcomes


def table(outcomes: list[Outcome]) -> str:
    rows = [
        "| scenario | size | seconds | lost | duplicated | error frames | refused | "
        "items left | peak workers | worst ping |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for o in outcomes:
        ping = f"{o.worst_ping_ms:.0f} ms" if o.scenario == "flood" else "-"
        notes = f" ({'; '.join(o.notes)})" if o.notes else ""
        rows.append(
            f"| {o.scenario} | {o.size}{notes} | {o.seconds:.1f} | {o.lost} | {o.duplicated} | "
            f"{o.errors} | {o.refused} | {o.leaked} | {o.peak_workers} | {ping} |"
        )
    return "\n".join(rows)


def main() -> None:
    args = arguments()
    outcomes = asyncio.run(run(args))
    command = "python -m bench.load " + " ".join(
        f"--{key.replace('_', '-')} {value}"
        for key, value in vars(args).items()
        if key not in ("scenarios", "write")
    )
    about = report.machine()
    text = "\n".join(
        [
            f"Measured {about['date']} on {about['cpu']} ({about['cores']} cores), "
            f"Python {about['python']}, commit {about['commit']}, with `{command}`:",
            "",
            table(outcomes),
        ]
    )
    print(text)
    if args.write:
        replace_block(DOC, BLOCK, text)
        document = [asdict(outcome) for outcome in outcomes]
        (ROOT / "docs" / "load.json").write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
