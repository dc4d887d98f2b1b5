"""`python -m bench.profile`: where a broadcast's CPU time goes, process by process.

Fills a room, then samples the gateway and every handler process with py-spy
(200 Hz, only the thread holding the GIL: where each process spends its CPU)
while messages are broadcast, and
groups the samples by the code they were in: botocore, the HTTP client, the
socket and TLS layer, the thread pool, the chat's own code, the gateway's
aiohttp server, the embedded DynamoDB. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import signal
import sys
import tempfile
from pathlib import Path

from bench import report
from bench.markers import replace_block
from bench.measure import (
    CHAT,
    LoadProcess,
    Server,
    broadcast,
    client_shares,
    connect_concurrency,
    fill_timeout,
)

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"

# Which code a frame belongs to, by a fragment of its file name.
GROUPS = (
    ("/botocore/", "botocore: serialise, sign, parse"),
    ("/boto3/", "botocore: serialise, sign, parse"),
    ("/urllib3/", "HTTP client (urllib3, http.client)"),
    ("/http/client.py", "HTTP client (urllib3, http.client)"),
    ("/email/", "HTTP client (urllib3, http.client)"),
    ("/ssl.py", "socket and TLS"),
    ("/socket.py", "socket and TLS"),
    ("/selectors.py", "socket and TLS"),
    ("/concurrent/", "thread pool and locks"),
    ("/threading.py", "thread pool and locks"),
    ("/queue.py", "thread pool and locks"),
    ("/chalicelib/", "chat code (chalicelib)"),
    ("/chalice/", "Chalice"),
    ("/json/", "JSON"),
    ("/moto/", "embedded DynamoDB (moto, werkzeug)"),
    ("/werkzeug/", "embedded DynamoDB (moto, werkzeug)"),
    ("/flask/", "embedded DynamoDB (moto, werkzeug)"),
    ("/aiohttp/", "gateway HTTP server (aiohttp, asyncio)"),
    ("/asyncio/", "gateway HTTP server (aiohttp, asyncio)"),
    ("/localgateway/", "gateway code"),
)


def group(stack: list[str]) -> str:
    """The group of the innermost frame that belongs to one (stdlib helpers such as
    hmac count for their caller: botocore's signing, say)."""
    for frame in reversed(stack):
        for fragment, name in GROUPS:
            if fragment in frame:
                return name
    return "other"


def tally(raw: Path) -> collections.Counter[str]:
    """Samples per group, from py-spy's `raw` (folded stacks) output."""
    counts: collections.Counter[str] = collections.Counter()
    if not raw.exists():
        return counts
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[group(stack.split(";"))] += int(count)
    return counts


async def record(pid: int, output: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("py-spy")),
        "record",
        "--pid",
        str(pid),
        "--rate",
        "200",
        "--format",
        "raw",
        "--nonblocking",
        "--gil",
        "--full-filenames",
        "--output",
        str(output),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def profile(members: int, messages: int, latency_ms: int) -> str:
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as workdir:
        server = Server(CHAT, latency_ms, Path(workdir))
        url = await server.start()
        assert server.gateway is not None
        shares = client_shares(members)
        loads = [await LoadProcess.start() for _ in shares]
        try:
            for load, share in zip(loads, shares):
                await load.command(
                    cmd="connect", url=url, count=share, concurrency=connect_concurrency(len(loads))
                )
                await load.until("connected", fill_timeout(members))
            await broadcast(loads, 0, 120)
            handlers = server.gateway.children()
            targets = {"gateway": [server.gateway.process.pid], "handlers": handlers}
            spies = []
            for role, pids in targets.items():
                for pid in pids:
                    output = Path(workdir) / f"{role}-{pid}.txt"
                    spies.append((role, output, await record(pid, output)))
            await asyncio.sleep(1)  # py-spy attaches
            for k in range(1, messages + 1):
                await broadcast(loads, k, 120, members)
            for _, _, spy in spies:
                spy.send_signal(signal.SIGINT)
            for _, _, spy in spies:
                await spy.wait()
            totals: dict[str, collections.Counter[str]] = {
                role: collections.Counter() for role in targets
            }
            for role, output, _ in spies:
                totals[role] += tally(output)
        finally:
            await asyncio.gather(*(load.close() for load in loads), return_exceptions=True)
            await server.stop()
    return table(totals, members, messages, latency_ms)


def table(
    totals: dict[str, collections.Counter[str]], members: int, messages: int, latency: int
) -> str:
    lines = [
        f"CPU samples (200 Hz) during {messages} broadcasts to {members:,} members, "
        f"{latency} ms modelled latency:",
        "",
        "| process | code | share of the process's samples | samples |",
        "| --- | --- | ---: | ---: |",
    ]
    for role, counts in totals.items():
        total = sum(counts.values()) or 1
        for name, count in counts.most_common():
            lines.append(f"| {role} | {name} | {100 * count / total:.0f}% | {count} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="write the table into " + str(DOC))
    args = parser.parse_args()
    text = asyncio.run(profile(args.members, args.messages, args.latency_ms))
    about = report.machine()
    text = (
        f"Measured {about['date']} on {about['cpu']} ({about['cores']} cores), commit "
        f"{about['commit']}, with `python -m bench.profile --members {args.members} "
        f"--messages {args.messages} --latency-ms {args.latency_ms}`. {text}"
    )
    print(text)
    if args.write:
        replace_block(DOC, "profile", text)


if __name__ == "__main__":
    main()
