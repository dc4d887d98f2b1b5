"""Write the results: JSON for tools, a Markdown table and a PNG chart for people."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.measure import CHAT, FLOOR, SEQUENTIAL, Result

LABELS = {CHAT: "chat (ours)", SEQUENTIAL: "sequential baseline", FLOOR: "floor (asyncio)"}
PACKAGES = ("chalice", "boto3", "botocore", "moto", "aiohttp", "websockets")


def machine() -> dict[str, Any]:
    """Where the numbers come from: they mean little without it."""
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "os": platform.platform(),
        "commit": commit or "unknown",
        "packages": {name: metadata.version(name) for name in PACKAGES},
    }


def write_json(path: Path, results: list[Result], about: dict[str, Any], command: str) -> None:
    document = {
        "machine": about,
        "command": command,
        "results": [result.as_dict() for result in results],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def read_json(path: Path) -> tuple[dict[str, Any], str, list[Result]]:
    """What write_json wrote: the machine, the command and the results."""
    document = json.loads(path.read_text())
    results = [Result(**result) for result in document["results"]]
    return document["machine"], document["command"], results


def _seconds(value: float) -> str:
    return "—" if value != value else f"{value:.3f}"


def _fill(result: Result) -> str:
    refused = f" ({result.refused} refused, tried again)" if result.refused else ""
    return f"{result.fill_seconds:.1f}{refused}"


def table(results: list[Result]) -> str:
    """One row per scenario; the ratio columns compare with the same M and latency."""
    rows = [
        "| system | members | latency (ms) | messages | p50 (s) | p95 (s) | lost | fill (s) "
        "| handler CPU / msg (ms) | gateway CPU / msg (ms) | speed-up on sequential "
        "| times the floor |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    by_key = {(r.system, r.members, r.latency_ms): r for r in results}
    for r in results:
        sequential = by_key.get((SEQUENTIAL, r.members, r.latency_ms))
        floor = next((f for f in results if f.system == FLOOR and f.members == r.members), None)
        versus_sequential = (
            f"{sequential.p50 / r.p50:.1f}×"
            if r.system == CHAT and sequential and r.p50 > 0
            else ""
        )
        versus_floor = f"{r.p50 / floor.p50:.1f}×" if r.system != FLOOR and floor else ""
        rows.append(
            f"| {LABELS[r.system]} | {r.members:,} | {r.latency_ms} | {r.messages} "
            f"| {_seconds(r.p50)} | {_seconds(r.p95)} | {r.lost} | {_fill(r)} "
            f"| {r.handler_cpu_ms:.0f} | {r.gateway_cpu_ms:.0f} | {versus_sequential} "
            f"| {versus_floor} |"
        )
    return "\n".join(rows)


def chart(path: Path, results: list[Result]) -> None:
    """p50 latency against room size, one line per system and modelled latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5))
    lines = sorted({(r.system, r.latency_ms) for r in results})
    for system, latency in lines:
        points = sorted(
            (r.members, r.p50) for r in results if (r.system, r.latency_ms) == (system, latency)
        )
        label = LABELS[system] if system == FLOOR else f"{LABELS[system]}, {latency} ms"
        style = "--" if latency == 0 else "-"
        axes.plot(*zip(*points), style, marker="o", label=label)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("members in the room")
    axes.set_ylabel("p50 time until the last member has it (s)")
    axes.set_title("Broadcast latency against room size")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def command_line() -> str:
    return " ".join([Path(sys.executable).name, "-m", "bench", *sys.argv[1:]])


def targets(results: list[Result]) -> str:
    """The figures the project holds itself to, from this run (where it measured them)."""
    by = {(r.system, r.members, r.latency_ms): r for r in results}
    lines = []
    chat, sequential = by.get((CHAT, 1000, 20)), by.get((SEQUENTIAL, 1000, 20))
    if chat is not None:
        verdict = "met" if chat.p50 <= 1.0 else "missed"
        lines.append(
            f"- 1,000 members at 20 ms: p50 {chat.p50:.3f} s, p95 {chat.p95:.3f} s, "
            f"{chat.lost} lost (target: p50 at most 1.0 s: {verdict})."
        )
        lines.append(f"- Filling that room of 1,000: {chat.fill_seconds:.0f} s.")
    if chat is not None and sequential is not None:
        ratio = sequential.p50 / chat.p50
        verdict = "met" if ratio >= 20 else "missed"
        lines.append(
            f"- The sequential baseline in the same run: {sequential.p50:.2f} s, so the chat is "
            f"{ratio:.1f} times faster (target: at least 20 times: {verdict})."
        )
    fast, floor = by.get((CHAT, 1000, 0)), by.get((FLOOR, 1000, 0))
    if fast is not None and floor is not None:
        lines.append(
            f"- At 0 ms, 1,000 members: {fast.p50:.3f} s, against the floor's "
            f"{floor.p50:.3f} s ({fast.p50 / floor.p50:.1f} times)."
        )
    big = by.get((CHAT, 5000, 20))
    if big is not None:
        lines.append(
            f"- 5,000 members at 20 ms: p50 {big.p50:.2f} s, {big.lost} lost; "
            f"filling the room: {big.fill_seconds:.0f} s."
        )
    return "\n".join(lines) or "- This run measured none of the target scenarios."
