"""Run one scenario: start a server, fill a room with M clients, time K broadcasts.

A scenario is a system (the chat service, the sequential baseline or the floor),
a room size M and a modelled @connections latency. Each message is sent from
one member; its latency is the time until the last member has it. Messages go
one at a time, so each is measured on an idle system.
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import LIFTED
from localgateway import launcher

ROOT = Path(__file__).resolve().parent.parent
SEQUENTIAL_APP = ROOT / "bench" / "apps" / "sequential"
CLIENTS_PER_PROCESS = 500
IDLE_TIMEOUT_SECONDS = 3600
# Connects in flight at once, over all load processes: more only queue for the
# gateway's workers and its one DynamoDB, and past 29 s API Gateway answers 500.
CONNECTS_IN_FLIGHT = 16
CHAT, SEQUENTIAL, FLOOR = "chat", "sequential", "floor"


@dataclass
class Result:
    system: str
    members: int
    latency_ms: int
    messages: int
    p50: float
    p95: float
    worst: float
    lost: int
    fill_seconds: float
    handler_cpu_ms: float  # per message, all handler processes
    gateway_cpu_ms: float  # per message, the gateway process (with its DynamoDB)
    samples: list[float] = field(default_factory=list)
    refused: int = 0  # upgrades refused while filling the room (then tried again)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class LoadProcess:
    """One bench.clients process, driven over its stdin and stdout."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls) -> LoadProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.clients",
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**20,
        )
        return cls(process)

    async def command(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(command) + "\n").encode())
        await self.process.stdin.drain()

    async def event(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError("a load process ended early")
        return json.loads(line)

    async def until(self, name: str, timeout: float, k: int | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            event = await self.event(max(0.001, deadline - time.monotonic()))
            if event["event"] == name and (k is None or event.get("k") == k):
                return event

    async def close(self) -> None:
        try:
            await self.command(cmd="close")
            await self.until("closed", 60)
        finally:
            if self.process.returncode is None:
                self.process.kill()
            await self.process.wait()


def cpu_seconds(pids: list[int], exited_children: bool = False) -> float:
    """User plus system CPU time of processes, from /proc (Linux).

    With `exited_children`, each process's children that have exited count too
    (the gateway reclaims idle handler processes during a run).
    """
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, then cutime, cstime: fields 14 to 17 of proc(5), counted from 1.
        total += sum(int(value) for value in fields[11 : 15 if exited_children else 13])
    return total / 100  # clock ticks; Linux uses 100 a second


class Server:
    """What the clients talk to: a gateway running an app, or the floor server."""

    def __init__(self, system: str, latency_ms: int, workdir: Path) -> None:
        self.system = system
        self.workdir = workdir
        self.gateway: launcher.GatewayProcess | None = None
        self.floor: Any = None
        self.latency_ms = latency_ms

    async def start(self) -> str:
        if self.system == FLOOR:
            port_file = self.workdir / "floor.port"
            self.floor = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.floor", str(port_file), cwd=ROOT
            )
            while not port_file.exists() or not port_file.read_text():
                await asyncio.sleep(0.02)
            return f"ws://127.0.0.1:{port_file.read_text()}/"
        project = ROOT if self.system == CHAT else SEQUENTIAL_APP
        # Filling a room of 5,000 in moto takes longer than API Gateway's 10-minute
        # idle timeout, which would close the first, silent, members meanwhile.
        flags = ["--no-autoreload", "--quiet", "--post-latency-ms", str(self.latency_ms)]
        flags += ["--idle-timeout", str(IDLE_TIMEOUT_SECONDS)]
        # Every member comes from this machine's one address, and a small room takes
        # messages faster than a person types: lift the chat's per-address quota and
        # its frame limit, which are for abusers, not for this measure.
        for name, value in {**LIFTED, "CONNECTIONS_PER_IP": "100000"}.items():
            flags += ["--env", f"{name}={value}"]
        flags.append("--fresh")
        self.gateway = await asyncio.to_thread(launcher.start, self.workdir, project, *flags)
        return self.gateway.endpoints["websocket"] + "?room=bench"

    def cpu(self) -> tuple[float, float]:
        """(handler processes, gateway process) CPU seconds so far."""
        if self.gateway is None:
            return 0.0, cpu_seconds([self.floor.pid])
        gateway = self.gateway.process.pid
        own = cpu_seconds([gateway])
        handlers = cpu_seconds(self.gateway.children()) + cpu_seconds([gateway], True) - own
        return handlers, own

    def log_tail(self, lines: int = 30) -> str:
        """The end of the gateway's log: why connects or handlers failed."""
        if self.gateway is None:
            return ""
        return "\n".join(self.gateway.log().splitlines()[-lines:])

    async def stop(self) -> None:
        if self.gateway is not None:
            await asyncio.to_thread(self.gateway.stop)
        if self.floor is not None:
            self.floor.terminate()
            await self.floor.wait()


def client_shares(members: int) -> list[int]:
    """How many of the room's clients each load process holds."""
    shares = [CLIENTS_PER_PROCESS] * (members // CLIENTS_PER_PROCESS)
    if members % CLIENTS_PER_PROCESS:
        shares.append(members % CLIENTS_PER_PROCESS)
    return shares


def fill_timeout(members: int) -> float:
    """Seconds a room may take to fill.

    moto's Query sorts the whole table, so each join costs more than the last:
    a room of 1,000 fills in about a minute, one of 5,000 in about 15.
    """
    return max(600, members * 0.5)


def connect_concurrency(processes: int) -> int:
    """Connects in flight per load process, so that all of them have CONNECTS_IN_FLIGHT."""
    return max(1, CONNECTS_IN_FLIGHT // processes)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


async def run_scenario(
    system: str,
    members: int,
    latency_ms: int,
    messages: int,
    progress: Callable[[], None] = lambda: None,
) -> Result:
    with tempfile.TemporaryDirectory(prefix=f"bench-{system}-") as workdir:
        server = Server(system, latency_ms, Path(workdir))
        url = await server.start()
        loads: list[LoadProcess] = []
        try:
            shares = client_shares(members)
            loads = [await LoadProcess.start() for _ in shares]
            started = time.monotonic()
            # The sender's process first, then the rest together.
            concurrency = connect_concurrency(len(loads))
            await loads[0].command(cmd="connect", url=url, count=shares[0], concurrency=concurrency)
            first = await loads[0].until("connected", fill_timeout(members))
            for load, share in zip(loads[1:], shares[1:]):
                await load.command(cmd="connect", url=url, count=share, concurrency=concurrency)
            rest = await asyncio.gather(
                *(load.until("connected", fill_timeout(members)) for load in loads[1:])
            )
            refused = sum(event["refused"] for event in [first, *rest])
            fill = time.monotonic() - started
            timeout = 30 + members * (latency_ms + 5) / 1000 * (2 if system == SEQUENTIAL else 0.2)
            await broadcast(loads, 0, timeout)  # warm-up: first-call costs are not broadcast
            handler_cpu, gateway_cpu = server.cpu()
            samples, lost = [], 0
            for k in range(1, messages + 1):
                latency, missing = await broadcast(loads, k, timeout, members)
                lost += missing
                if latency is not None:
                    samples.append(latency)
                progress()
            handler_after, gateway_after = server.cpu()
        except Exception:
            print(
                f"{system} M={members}: the gateway's log ends with:\n{server.log_tail()}",
                file=sys.stderr,
            )
            raise
        finally:
            await asyncio.gather(*(load.close() for load in loads), return_exceptions=True)
            await server.stop()
    return Result(
        system=system,
        members=members,
        latency_ms=latency_ms,
        messages=messages,
        p50=statistics.median(samples) if samples else math.nan,
        p95=percentile(samples, 0.95) if samples else math.nan,
        worst=max(samples, default=math.nan),
        lost=lost,
        fill_seconds=fill,
        handler_cpu_ms=1000 * (handler_after - handler_cpu) / messages,
        gateway_cpu_ms=1000 * (gateway_after - gateway_cpu) / messages,
        samples=samples,
        refused=refused,
    )


async def broadcast(
    loads: list[LoadProcess], k: int, timeout: float, members: int = 0
) -> tuple[float | None, int]:
    """Send message k; (seconds until the last member had it, members that never did)."""
    await loads[0].command(cmd="send", k=k)
    sent = await loads[0].until("sent", 30, k=k)
    try:
        got = await asyncio.gather(*(load.until("got", timeout, k=k) for load in loads))
    except TimeoutError:
        for load in loads:
            await load.command(cmd="count", k=k)
        counts = await asyncio.gather(*(load.until("count", 30, k=k) for load in loads))
        return None, members - sum(count["received"] for count in counts)
    return max(event["last"] for event in got) - sent["at"], 0
