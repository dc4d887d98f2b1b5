"""`python -m bench`: broadcast latency of the chat against the sequential baseline and the floor.

Writes docs/benchmarks.json, docs/benchmarks.png, and the results section of
docs/benchmarks.md (between its `results` markers; the analysis around them
is kept).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench import report
from bench.markers import replace_block
from bench.measure import CHAT, FLOOR, SEQUENTIAL, Result, run_scenario


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--members", type=int, nargs="+", default=[10, 100, 1000], help="room sizes to sweep"
    )
    parser.add_argument("--large", action="store_true", help="also sweep a room of 5,000")
    parser.add_argument(
        "--latencies", type=int, nargs="+", default=[0, 20], help="modelled @connections ms"
    )
    parser.add_argument("--messages", type=int, default=20, help="messages per scenario")
    parser.add_argument(
        "--sequential-messages",
        type=int,
        default=3,
        help="messages per sequential scenario of 1,000 members or more (each takes seconds)",
    )
    parser.add_argument(
        "--systems", nargs="+", default=[CHAT, SEQUENTIAL, FLOOR], choices=[CHAT, SEQUENTIAL, FLOOR]
    )
    parser.add_argument("--out", type=Path, default=Path("docs"), help="where results go")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing: write the Markdown and the chart again from OUT/benchmarks.json",
    )
    return parser.parse_args()


def scenarios(args: argparse.Namespace) -> list[tuple[str, int, int, int]]:
    sizes = sorted(set(args.members + ([5000] if args.large else [])))
    plan = []
    for members in sizes:
        if FLOOR in args.systems:
            plan.append((FLOOR, members, 0, args.messages))
        for latency in args.latencies:
            if CHAT in args.systems:
                plan.append((CHAT, members, latency, args.messages))
            if SEQUENTIAL in args.systems:
                count = args.sequential_messages if members >= 1000 else args.messages
                plan.append((SEQUENTIAL, members, latency, count))
    return plan


async def run(plan: list[tuple[str, int, int, int]]) -> list[Result]:
    results = []
    with tqdm(total=sum(messages for *_, messages in plan), unit="msg") as bar:
        for system, members, latency, messages in plan:
            bar.set_description(f"{system} M={members} {latency} ms")
            results.append(
                await run_scenario(system, members, latency, messages, lambda: bar.update())
            )
            last = results[-1]
            bar.write(
                f"{system:10} M={members:<5} {latency:>2} ms: p50 {last.p50:.3f} s, "
                f"p95 {last.p95:.3f} s, lost {last.lost}, fill {last.fill_seconds:.1f} s"
                + (f" ({last.refused} upgrades refused, tried again)" if last.refused else "")
            )
    return results


def write(
    out: Path, results: list[Result], about: dict[str, Any], command: str | None = None
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    report.write_json(out / "benchmarks.json", results, about, command or report.command_line())
    report.chart(out / "benchmarks.png", results)
    packages = ", ".join(f"{name} {version}" for name, version in about["packages"].items())
    section = "\n".join(
        [
            f"Measured {about['date']} on {about['cpu']} ({about['cores']} cores), "
            f"Python {about['python']}, {about['os']}, commit {about['commit']}; {packages}.",
            "",
            f"Command: `{command or report.command_line()}`",
            "",
            report.table(results),
            "",
            "![p50 latency against room size](benchmarks.png)",
        ]
    )
    replace_block(out / "benchmarks.md", "results", section)
    replace_block(out / "benchmarks.md", "targets", report.targets(results))


def main() -> None:
    args = arguments()
    if args.report_only:
        about, command, results = report.read_json(args.out / "benchmarks.json")
        write(args.out, results, about, command)
    else:
        write(args.out, asyncio.run(run(scenarios(args))), report.machine())
    print(f"wrote {args.out / 'benchmarks.md'}, benchmarks.json and benchmarks.png")


if __name__ == "__main__":
    main()
