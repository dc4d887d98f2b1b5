"""`python -m bench.attachments`: what sharing a file costs through the local gateway.

The issue's target: the other member has the message (and can fetch the file)
within a second of the upload finishing. For PNGs of a few sizes, `--rounds`
times each, two websocket clients in one room measure the median of:

- `upload`: the `upload` frame until its presigned POST comes back;
- `POST`: the multipart upload to the embedded S3 (`requests`, as a script would);
- `to bob`: from the upload's 204 until the other member has the `message`
  (sendmessage, HeadObject, the image's first bytes, PutItem, broadcast);
- `download`: the `download` frame until its URL comes back, then the GET.

A plain text message's `to bob` is the baseline. Numbers are the local
gateway's (moto on this machine), not AWS's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from websockets.sync.client import connect

from localgateway import launcher

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"10 KB": 10 * 1024, "1 MB": 1024 * 1024, "9 MB": 9 * 1024 * 1024}


def png_of(size: int) -> bytes:
    """A PNG signature and padding: the chat reads only an image's first bytes."""
    return (b"\x89PNG\r\n\x1a\n" + b"\0" * size)[:size]


def wait(ws: Any, kind: str) -> dict[str, Any]:
    while True:
        frame = json.loads(ws.recv(timeout=60))
        if frame["type"] in (kind, "error"):
            assert frame["type"] == kind, frame
            return frame


def one_round(alice: Any, bob: Any, data: bytes) -> dict[str, float]:
    started = time.perf_counter()
    alice.send(json.dumps({"action": "upload", "name": "a.png", "type": "image/png",
                           "size": len(data)}))  # fmt: skip
    answer = wait(alice, "upload")
    asked = time.perf_counter()
    files = {"file": ("a.png", data, "image/png")}
    status = requests.post(answer["url"], data=answer["fields"], files=files, timeout=60)
    assert status.status_code == 204, status.text
    posted = time.perf_counter()
    alice.send(json.dumps({"action": "sendmessage", "attachment": answer["key"]}))
    message = wait(bob, "message")
    heard = time.perf_counter()
    wait(alice, "message")
    bob.send(json.dumps({"action": "download", "id": message["id"]}))
    url = wait(bob, "download")["url"]
    body = requests.get(url, timeout=60).content
    assert body == data
    return {
        "upload": asked - started,
        "POST": posted - asked,
        "to bob": heard - posted,
        "download": time.perf_counter() - heard,
    }


def text_round(alice: Any, bob: Any) -> float:
    started = time.perf_counter()
    alice.send(json.dumps({"action": "sendmessage", "data": "hello"}))
    wait(bob, "message")
    heard = time.perf_counter()
    wait(alice, "message")
    return heard - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    flags = ["--no-autoreload", "--quiet", "--fresh"]
    flags += ["--env", "RATE_PER_SECOND=1000", "--env", "RATE_BURST=1000"]
    with tempfile.TemporaryDirectory() as workdir:
        gateway = launcher.start(Path(workdir), ROOT, *flags)
        try:
            url = gateway.endpoints["websocket"]
            with connect(url + "?nick=alice") as alice, connect(url + "?nick=bob") as bob:
                for ws in (alice, bob):
                    ws.send(json.dumps({"action": "ping"}))
                    wait(ws, "pong")
                rows = [
                    ("text only", {"to bob": [text_round(alice, bob) for _ in range(args.rounds)]})
                ]
                for label, size in SIZES.items():
                    samples: dict[str, list[float]] = {}
                    for _ in range(args.rounds):
                        for key, value in one_round(alice, bob, png_of(size)).items():
                            samples.setdefault(key, []).append(value)
                    rows.append((f"PNG {label}", samples))
        finally:
            gateway.stop()
    print(f"median of {args.rounds} rounds, ms (`python -m bench.attachments`)")
    print("| file | upload | POST | to bob | download |")
    print("| --- | --- | --- | --- | --- |")
    for label, samples in rows:
        cells = [
            f"{statistics.median(samples[key]) * 1000:.0f}" if key in samples else "-"
            for key in ("upload", "POST", "to bob", "download")
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
