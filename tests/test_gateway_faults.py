"""The chat through the local gateway with real clients, when users abuse it and DynamoDB
fails: limits and quotas, a crowd leaving at once, and DynamoDB paused mid-chat.

DynamoDB is paused by stopping its process (SIGSTOP): a moto server of its own,
which the gateway uses through --dynamodb-endpoint, as it would DynamoDB Local.
Every frame must be answered in time, never with `Internal server error`, and
afterwards the history must hold exactly the acknowledged messages, once each.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from bench import LIFTED, load
from bench.clients import connect_patiently
from chalicelib.ids import new_message_id
from tests.conftest import ROOT, SUMMARY, RunningGateway, start_gateway

LIFTED_ADDRESSES = ["--env", "CONNECTIONS_PER_IP=10000"]


@dataclass
class DynamoDBProcess:
    """A DynamoDB (moto's server) in a process of its own, so that it can be paused."""

    process: subprocess.Popen[bytes]
    url: str

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def client(self) -> Any:
        return boto3.client("dynamodb", endpoint_url=self.url)


@pytest.fixture(scope="module")
def dynamodb_process() -> Iterator[DynamoDBProcess]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "moto's server did not start"
            time.sleep(0.1)
    running = DynamoDBProcess(process, f"http://127.0.0.1:{port}")
    yield running
    running.resume()
    process.kill()
    process.wait()


@pytest.fixture(scope="module")
def paused_gateway(
    tmp_path_factory: pytest.TempPathFactory, dynamodb_process: DynamoDBProcess
) -> Iterator[RunningGateway]:
    gateway = start_gateway(
        tmp_path_factory.mktemp("faults"),
        ROOT,
        "--no-autoreload",
        "--dynamodb-endpoint",
        dynamodb_process.url,
        *LIFTED_ADDRESSES,
    )
    yield gateway
    gateway.stop()


CONNECT_RETRIES = 3


async def member(url: str, room: str, nick: str, quick: bool = False) -> ClientConnection:
    """A client that has sent its first frame: `join` (as the page does), and read its
    `joined`; or, `quick`, a ping (a `joined` reads the whole room)."""
    # 503: the chat could not finish within its budget and says "try again", as the page
    # then does (on a machine far busier than the test expects). No keepalive pings: on a
    # loaded machine a late pong would make the client itself close.
    client, _ = await connect_patiently(
        f"{url}?room={room}&nick={nick}",
        {503},
        CONNECT_RETRIES,
        open_timeout=30,
        ping_interval=None,
        proxy=None,
    )
    first, answer = (
        ({"action": "ping"}, "pong") if quick else ({"action": "join", "room": room}, "joined")
    )
    await client.send(json.dumps(first))
    while json.loads(await asyncio.wait_for(client.recv(), 60))["type"] != answer:
        pass
    return client


@dataclass
class Ledger:
    """What each client sent and what came back to it, by message id."""

    sent: dict[str, tuple[ClientConnection, float]] = field(default_factory=dict)
    acked: Counter[str] = field(default_factory=Counter)  # the sender's own copy
    delivered: Counter[str] = field(default_factory=Counter)  # the others' copies
    answered: dict[str, float] = field(default_factory=dict)
    unavailable: set[str] = field(default_factory=set)
    internal_errors: int = 0
    presence: list[dict[str, Any]] = field(default_factory=list)

    async def read(self, client: ClientConnection, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                frame = json.loads(await asyncio.wait_for(client.recv(), 0.2))
            except TimeoutError:
                continue
            self.note(client, frame)

    def note(self, client: ClientConnection, frame: dict[str, Any]) -> None:
        message_id = frame.get("id")
        mine = message_id in self.sent and self.sent[message_id][0] is client
        if "type" not in frame:
            self.internal_errors += 1  # API Gateway's own answer to a failed handler
        elif frame["type"] == "message" and message_id in self.sent:
            (self.acked if mine else self.delivered)[message_id] += 1
            if mine:
                self.answered.setdefault(message_id, time.monotonic())
        elif frame["type"] == "error" and frame["code"] == "unavailable" and mine:
            self.unavailable.add(message_id)
            self.answered.setdefault(message_id, time.monotonic())
        elif frame["type"] == "presence":
            self.presence.append(frame)

    async def post(self, client: ClientConnection, text: str, message_id: str | None = None) -> str:
        message_id = message_id or new_message_id(int(time.time() * 1000))
        self.sent.setdefault(message_id, (client, time.monotonic()))
        await client.send(json.dumps({"action": "sendmessage", "data": text, "id": message_id}))
        return message_id


def stored_ids(dynamodb: DynamoDBProcess, room: str) -> Counter[str]:
    pages = (
        dynamodb.client()
        .get_paginator("query")
        .paginate(
            TableName="chalice-chat-dev-ChatTable",
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"HIST#{room}"}},
            ConsistentRead=True,
        )
    )
    return Counter(item["sk"]["S"] for page in pages for item in page["Items"])


async def through_a_pause(
    gateway: RunningGateway, dynamodb: DynamoDBProcess, seconds: float
) -> dict[str, Any]:
    url = gateway.endpoints["websocket"]
    room = f"paused{int(seconds)}"
    alice, carol = await member(url, room, "alice"), await member(url, room, "carol")
    ledger, stop = Ledger(), asyncio.Event()
    readers = [asyncio.create_task(ledger.read(client, stop)) for client in (alice, carol)]
    refused_connect: dict[str, Any] = {}

    async def newcomer() -> None:
        await asyncio.sleep(1)
        started = time.monotonic()
        try:
            await connect(f"{url}?room={room}&nick=bob", open_timeout=30, proxy=None)
        except InvalidStatus as error:
            refused_connect["status"] = error.response.status_code
        refused_connect["seconds"] = time.monotonic() - started

    dynamodb.pause()
    paused_at = time.monotonic()
    joining = asyncio.create_task(newcomer())
    n = 0
    while time.monotonic() - paused_at < seconds:
        await ledger.post((alice, carol)[n % 2], f"during the pause {n}")
        n += 1
        await asyncio.sleep(1)
    await joining
    dynamodb.resume()
    await asyncio.sleep(2)  # DynamoDB is back: within 2 s the chat is too
    recovered = await ledger.post(alice, "after the pause")
    await asyncio.sleep(10)  # every frame sent has had its 10 s
    late = {
        message_id: ledger.answered.get(message_id, float("inf")) - sent
        for message_id, (_, sent) in ledger.sent.items()
    }
    # The page sends an unavailable message again with its id; so do these clients, at a
    # pace the frame limit allows, until each is acknowledged.
    deadline = time.monotonic() + 60
    while (waiting := [m for m in ledger.sent if not ledger.acked[m]]) and (
        time.monotonic() < deadline
    ):
        for message_id in waiting:
            await ledger.post(ledger.sent[message_id][0], "resent", message_id)
            await asyncio.sleep(0.25)
        await asyncio.sleep(1)
    stop.set()
    await asyncio.gather(*readers)
    await alice.send(json.dumps({"action": "who"}))
    who = None
    while who is None:
        frame = json.loads(await asyncio.wait_for(alice.recv(), 30))
        who = frame["members"] if frame.get("type") == "members" else None
    await alice.close()
    await carol.close()
    return {
        "ledger": ledger,
        "late": late,
        "recovered": ledger.acked[recovered],
        "connect": refused_connect,
        "who": who,
        "stored": stored_ids(dynamodb, room),
        "sent_during": n,
    }


@pytest.mark.parametrize("seconds", [10, 35])
def test_dynamodb_paused_every_frame_is_answered_and_nothing_is_stored_twice(
    paused_gateway: RunningGateway, dynamodb_process: DynamoDBProcess, seconds: int
) -> None:
    result = asyncio.run(through_a_pause(paused_gateway, dynamodb_process, seconds))
    ledger: Ledger = result["ledger"]
    assert result["sent_during"] >= seconds - 1
    # Every frame answered within 10 s: its message, or `unavailable`; never API Gateway's
    # Internal server error.
    assert max(result["late"].values()) < 10, result["late"]
    assert ledger.internal_errors == 0
    assert ledger.unavailable, "DynamoDB was paused: some frame should have been unavailable"
    assert result["recovered"] == 1  # 2 s after DynamoDB came back, messages go through
    # Afterwards: every message acknowledged exactly once and stored exactly once.
    assert set(ledger.acked) == set(ledger.sent)
    assert all(count == 1 for count in ledger.acked.values()), ledger.acked
    assert set(ledger.delivered) == set(ledger.sent)  # the other member has every one
    assert result["stored"] == Counter(set(ledger.sent))
    # The connect during the pause was refused in time and left no ghost.
    assert result["connect"]["status"] == 503 and result["connect"]["seconds"] < 5
    assert result["who"] == ["alice", "carol"]
    assert not [p for p in ledger.presence if p["nick"] == "bob"]


def test_a_flood_from_one_client_is_cut_and_the_room_hears_only_what_was_accepted(
    chalice_gateway: RunningGateway,
) -> None:
    async def scenario() -> tuple[int, list[str], list[str], int, int]:
        url = chalice_gateway.endpoints["websocket"]
        flooder = await member(url, "flooded", "flooder")
        reader = await member(url, "flooded", "reader")
        started = time.monotonic()
        for n in range(100):
            await flooder.send(json.dumps({"action": "sendmessage", "data": f"flood {n}"}))
            await asyncio.sleep(0.01)
        pings = 0
        for _ in range(3):
            await reader.send(json.dumps({"action": "ping"}))
        accepted, refused, heard = [], 0, []
        deadline = time.monotonic() + 30
        while len(accepted) + refused < 100 and time.monotonic() < deadline:
            frame = json.loads(await asyncio.wait_for(flooder.recv(), 30))
            if frame.get("message") == "Too Many Requests":  # the gateway's queue bound
                refused += 1
            elif frame["type"] == "message":
                accepted.append(frame["text"])
            elif frame["type"] == "error":
                assert frame["code"] == "rate_limited" and frame["retry_after_ms"] > 0
                refused += 1
        # Tokens refill while the frames are handled, which on a busy machine lasts
        # past the sending: the window is until the last answer.
        elapsed = time.monotonic() - started
        while pings < 3 or len(heard) < len(accepted):
            frame = json.loads(await asyncio.wait_for(reader.recv(), 30))
            pings += frame["type"] == "pong"
            if frame["type"] == "message":
                heard.append(frame["text"])
        await flooder.close()
        await reader.close()
        return refused, accepted, heard, pings, round(elapsed)

    refused, accepted, heard, pings, elapsed = asyncio.run(scenario())
    assert len(accepted) + refused == 100
    assert 10 <= len(accepted) <= 10 + 5 * (elapsed + 1)  # burst, then 5 a second
    assert Counter(heard) == Counter(accepted)  # each accepted one, once (frames run concurrently)
    assert pings == 3


def test_a_flood_of_1000_frames_in_a_second_is_answered_within_10_s_of_its_last_frame(
    chalice_gateway: RunningGateway,
) -> None:
    """The flooder's own frames are answered in time too: on a machine too slow for the
    flood, a frame that waited 5 s for a handler process gets API Gateway's `Too Many
    Requests` instead of running (tests/test_gateway_lifecycle.py forces that case)."""

    async def scenario() -> tuple[Counter[str], float, float]:
        url = chalice_gateway.endpoints["websocket"]
        flooder = await member(url, "deluge", "flooder", quick=True)
        bystander = await member(url, "deluge", "bystander", quick=True)
        answers: Counter[str] = Counter()
        last_answer = 0.0

        async def read() -> None:
            nonlocal last_answer
            while sum(answers.values()) < 1000:
                try:
                    frame = json.loads(await asyncio.wait_for(flooder.recv(), 15))
                except TimeoutError:
                    return
                if frame.get("type") == "presence":
                    continue
                answers[frame.get("code") or frame.get("type") or frame["message"]] += 1
                last_answer = time.monotonic()

        reading = asyncio.create_task(read())
        started = time.monotonic()
        for n in range(1000):
            await flooder.send(json.dumps({"action": "sendmessage", "data": f"flood {n}"}))
            await asyncio.sleep(max(0.0, started + (n + 1) / 1000 - time.monotonic()))
        last_frame = time.monotonic()
        await bystander.send(json.dumps({"action": "ping"}))
        while json.loads(await asyncio.wait_for(bystander.recv(), 10))["type"] != "pong":
            pass
        pong = time.monotonic() - last_frame
        await reading
        await flooder.close()
        await bystander.close()
        return answers, last_answer - last_frame, pong

    answers, late, pong = asyncio.run(scenario())
    SUMMARY.append(f"1000-frame flood: last answer {late:.2f} s after the last frame")
    assert sum(answers.values()) == 1000, answers  # every frame answered, once
    assert set(answers) <= {"message", "rate_limited", "Too Many Requests"}, answers
    assert answers["message"] >= 10, answers
    assert late < 10
    assert pong < 10


def test_the_21st_connection_from_one_address_is_refused_and_the_next_after_a_close_is_not(
    chalice_gateway: RunningGateway,
) -> None:
    async def scenario() -> None:
        url = chalice_gateway.endpoints["websocket"]
        clients = [await member(url, "crowded", f"c{n}") for n in range(20)]
        with pytest.raises(InvalidStatus) as refused:
            await connect(f"{url}?room=crowded", open_timeout=30, proxy=None)
        assert refused.value.response.status_code == 429
        assert json.loads(refused.value.response.body)["code"] == "too_many_connections"
        await clients.pop().close()
        deadline = time.monotonic() + 10
        while True:  # its $disconnect frees the slot
            try:
                clients.append(await connect(f"{url}?room=crowded", open_timeout=30, proxy=None))
                break
            except InvalidStatus:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
        await asyncio.gather(*(client.close() for client in clients))

    asyncio.run(scenario())


def test_room_changes_past_the_quota_are_refused(chalice_gateway: RunningGateway) -> None:
    async def scenario() -> tuple[int, int, float]:
        client = await member(chalice_gateway.endpoints["websocket"], "hopping", "hopper")
        joined = refused = 0
        started = time.monotonic()
        for n in range(60):
            await client.send(json.dumps({"action": "join", "room": f"hop-{n}"}))
            frame = json.loads(await asyncio.wait_for(client.recv(), 30))
            while frame["type"] not in ("joined", "error"):
                frame = json.loads(await asyncio.wait_for(client.recv(), 30))
            joined += frame["type"] == "joined"
            refused += frame.get("code") == "rate_limited"
            await asyncio.sleep(0.21)  # under the frame limit: only the room quota counts
        await client.close()
        return joined, refused, time.monotonic() - started

    joined, refused, seconds = asyncio.run(scenario())
    assert joined + refused == 60
    # The quota's burst of 20, plus one a 3 s (20 a minute) over the time the joins took.
    assert 20 <= joined <= 20 + int(seconds / 3) + 1, seconds


def test_180_of_200_leaving_at_once_leave_nothing_behind_within_10_s(tmp_path: Path) -> None:
    gateway = load.Gateway(tmp_path, 8, {**LIFTED, "CONNECTIONS_PER_IP": "1000"})
    try:

        async def scenario() -> tuple[int, int]:
            url = gateway.url
            gate = asyncio.Semaphore(50)

            async def join(n: int) -> ClientConnection:
                async with gate:
                    return await member(url, "crowd", f"m{n}", quick=True)

            clients = await asyncio.gather(*(join(n) for n in range(200)))
            await asyncio.gather(*(client.close() for client in clients[20:]))
            deadline = time.monotonic() + 10
            while (left := await asyncio.to_thread(gateway.presence_items)) > 2 * 20:
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            await asyncio.gather(*(client.close() for client in clients[:20]))
            return left, await gateway.items_left_after(10)

        left, at_the_end = asyncio.run(scenario())
    finally:
        gateway.stop()
    assert left == 2 * 20  # the stayers' connection and membership items, nobody else's
    assert at_the_end == 0
    log = gateway.process.log()
    assert "timed out" not in log and "no free handler process" not in log, log[-3000:]


class SlowRelay:
    """A TCP relay in front of DynamoDB that holds every HTTP request 300 ms: a slow but
    healthy DynamoDB. Only a chunk that starts a request waits (a body sent apart from its
    headers does not wait twice); answers pass at once."""

    DELAY = 0.3
    METHODS = (b"POST ", b"GET ", b"PUT ", b"HEAD ", b"DELETE ")

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.requests = 0
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self.thread.start()
        assert started.wait(10), "the relay did not start"

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._relay, "127.0.0.1", 0)
        )
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        started.set()
        self.loop.run_forever()
        # Stopped: end the open relays here, in the loop's own thread, before it closes.
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return

        async def pipe(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, slow: bool
        ) -> None:
            try:
                while chunk := await source.read(65536):
                    if slow and chunk.startswith(self.METHODS):
                        self.requests += 1
                        await asyncio.sleep(self.DELAY)
                    sink.write(chunk)
                    await sink.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, upstream, True), pipe(upstream_reader, writer, False))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_a_slow_but_healthy_dynamodb_is_never_answered_503_or_unavailable(
    tmp_path: Path, dynamodb_process: DynamoDBProcess
) -> None:
    """Every DynamoDB call 300 ms late: 50 connects and 100 messages all go through. The
    budgets refuse only what cannot finish, and a $connect's calls take over a second."""
    relay = SlowRelay(dynamodb_process.url)
    gateway = start_gateway(
        tmp_path, ROOT, "--no-autoreload", "--dynamodb-endpoint", relay.url, *LIFTED_ADDRESSES
    )

    async def scenario() -> tuple[Counter[int], Counter[str], float]:
        url = gateway.endpoints["websocket"]
        statuses: Counter[int] = Counter()
        gate = asyncio.Semaphore(10)

        async def open_one(n: int) -> ClientConnection | None:
            async with gate:
                try:
                    client = await connect(
                        f"{url}?room=slow{n % 5}&nick=s{n}",
                        open_timeout=30,
                        ping_interval=None,
                        proxy=None,
                    )
                except InvalidStatus as refused:
                    statuses[refused.response.status_code] += 1
                    return None
                statuses[101] += 1
                return client

        opened = await asyncio.gather(*(open_one(n) for n in range(50)))
        clients = [client for client in opened if client is not None]
        answers: Counter[str] = Counter()
        slowest = 0.0

        async def speak(client: ClientConnection, n: int) -> None:
            nonlocal slowest
            for k in range(2):
                text = f"slow {n}.{k}"
                sent = time.monotonic()
                await client.send(json.dumps({"action": "sendmessage", "data": text}))
                while True:
                    frame = json.loads(await asyncio.wait_for(client.recv(), 30))
                    if frame.get("type") == "error" or frame.get("text") == text:
                        break
                answers[frame.get("code", frame["type"])] += 1
                slowest = max(slowest, time.monotonic() - sent)

        await asyncio.gather(*(speak(client, n) for n, client in enumerate(clients)))
        await asyncio.gather(*(client.close() for client in clients))
        return statuses, answers, slowest

    try:
        statuses, answers, slowest = asyncio.run(asyncio.wait_for(scenario(), 240))
    finally:
        gateway.stop()
        relay.close()
    SUMMARY.append(f"slow DynamoDB (300 ms a call): slowest message answered in {slowest:.1f} s")
    assert relay.requests > 300  # the calls went through the slow relay
    assert statuses == Counter({101: 50})
    assert answers == Counter({"message": 100})
