"""The benchmark runs end to end (on tiny rooms) and writes its report."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest

from bench import measure, report
from bench.__main__ import write
from bench.report import read_json


@pytest.mark.parametrize("system", [measure.CHAT, measure.SEQUENTIAL, measure.FLOOR])
def test_every_system_delivers_every_message_to_every_member(system: str) -> None:
    # 25 messages back to back: past the frame limit a person meets (a burst of 10, then 5
    # a second), which the benchmark lifts.
    result = asyncio.run(measure.run_scenario(system, members=4, latency_ms=5, messages=25))
    assert result.lost == 0
    assert len(result.samples) == 25
    assert 0 < result.p50 <= result.p95 <= result.worst < 30
    assert result.fill_seconds > 0


def test_modelled_latency_shows_in_a_sequential_broadcast() -> None:
    slow = asyncio.run(measure.run_scenario(measure.SEQUENTIAL, 5, latency_ms=100, messages=2))
    # five sends one after another, each delayed 100 ms by the gateway
    assert slow.p50 >= 0.5


def test_the_report_keeps_the_analysis_and_replaces_the_results(tmp_path: Path) -> None:
    page = tmp_path / "benchmarks.md"
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    targets = "<!-- targets:start -->\nold targets\n<!-- targets:end -->"
    page.write_text(
        f"# Title\n\nAnalysis above.\n\n{start}\nold numbers\n{end}\n\n{targets}\n\nBelow.\n"
    )
    results = [
        measure.Result(system, 10, 20, 3, p50, p50, p50, 0, 1.0, 5.0, 2.0, [p50] * 3, refused)
        for system, p50, refused in (
            (measure.CHAT, 0.05, 2),
            (measure.SEQUENTIAL, 0.5, 0),
            (measure.FLOOR, 0.01, 0),
        )
    ]
    write(
        tmp_path,
        results,
        {
            "date": "d",
            "cpu": "c",
            "cores": 2,
            "python": "3",
            "os": "o",
            "commit": "x",
            "packages": {"boto3": "1"},
        },
        "python -m bench",
    )
    text = page.read_text()
    assert text.startswith("# Title\n\nAnalysis above.") and text.endswith("Below.\n")
    assert "old numbers" not in text and "old targets" not in text
    assert "- This run measured none of the target scenarios." in text
    assert "| 10.0× |" in text  # 0.5 s sequential against 0.05 s
    assert "| chat (ours) | 10 | 20 | 3 | 0.050 |" in text
    assert "| 0 | 1.0 (2 refused, tried again) |" in text  # a refused upgrade is not hidden
    assert "| sequential baseline | 10 | 20 | 3 | 0.500 | 0.500 | 0 | 1.0 |" in text
    document = json.loads((tmp_path / "benchmarks.json").read_text())
    assert {r["system"] for r in document["results"]} == {"chat", "sequential", "floor"}
    assert document["machine"]["cores"] == 2
    assert (tmp_path / "benchmarks.png").read_bytes().startswith(b"\x89PNG")
    again = tmp_path / "again"
    again.mkdir()
    (again / "benchmarks.json").write_text((tmp_path / "benchmarks.json").read_text())
    assert read_json(again / "benchmarks.json")[2] == results
    assert math.isclose(measure.percentile([1, 2, 3, 4], 0.5), 2)


def test_the_targets_say_what_the_run_measured_against_them() -> None:
    def result(system: str, latency: int, p50: float) -> measure.Result:
        return measure.Result(system, 1000, latency, 3, p50, p50, p50, 0, 42.0, 5.0, 2.0, [])

    lines = report.targets(
        [
            result(measure.CHAT, 20, 0.9),
            result(measure.SEQUENTIAL, 20, 22.5),
            result(measure.CHAT, 0, 0.8),
            result(measure.FLOOR, 0, 0.04),
        ]
    ).splitlines()
    assert lines == [
        "- 1,000 members at 20 ms: p50 0.900 s, p95 0.900 s, 0 lost (target: p50 at most "
        "1.0 s: met).",
        "- Filling that room of 1,000: 42 s.",
        "- The sequential baseline in the same run: 22.50 s, so the chat is 25.0 times faster "
        "(target: at least 20 times: met).",
        "- At 0 ms, 1,000 members: 0.800 s, against the floor's 0.040 s (20.0 times).",
    ]
    slow = report.targets([result(measure.CHAT, 20, 1.2), result(measure.SEQUENTIAL, 20, 12.0)])
    assert "1.0 s: missed" in slow and "at least 20 times: missed" in slow


def test_profile_samples_are_grouped_by_the_innermost_known_code(tmp_path: Path) -> None:
    from bench.profile import tally

    raw = tmp_path / "samples.txt"
    raw.write_text(
        "\n".join(
            [
                "main (/x/localgateway/worker.py:1);send (/x/botocore/client.py:9);"
                "digest (/usr/lib/python3.11/hmac.py:5) 7",
                "main (/x/localgateway/worker.py:1);read (/usr/lib/python3.11/ssl.py:3) 2",
                "serve (/x/moto/dynamodb/models/table.py:1) 1",
                "run (/usr/lib/python3.11/weird.py:1) 1",
            ]
        )
    )
    assert tally(raw) == {
        "botocore: serialise, sign, parse": 7,
        "socket and TLS": 2,
        "embedded DynamoDB (moto, werkzeug)": 1,
        "other": 1,
    }
