"""Waiting for websocket frames in tests, with failures that say what was expected."""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from typing import Any

from websockets.exceptions import ConnectionClosed

ANY = True  # `skipping=ANY`: drop every frame until the expected one comes


def wait_for_frame(
    ws: Any,
    frame_type: str | None = None,
    *,
    skipping: Collection[str] | bool = (),
    timeout: float = 20.0,
    **fields: Any,
) -> dict[str, Any]:
    """The next JSON frame whose `type` is `frame_type` and that holds `fields`.

    Frames before it fail the test, unless their type is in `skipping` (or
    `skipping=ANY`). A timeout or a closed connection fails saying what was
    expected and what came instead.
    """
    wanted = f"a frame of type {frame_type!r}" if frame_type else "a frame"
    if fields:
        wanted += f" with {fields}"
    seen: list[Any] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError
            frame = json.loads(ws.recv(timeout=left))
        except TimeoutError:
            raise AssertionError(f"waited {timeout:g} s for {wanted}; got only {seen}") from None
        except ConnectionClosed as closed:
            raise AssertionError(
                f"expected {wanted}; the connection closed ({closed}) after {seen}"
            ) from None
        matches = frame_type is None or (
            isinstance(frame, dict) and frame.get("type") == frame_type
        )
        if matches:
            got = {key: frame.get(key) for key in fields}
            assert got == fields, f"expected {wanted}, got {frame}"
            return frame
        seen.append(frame)
        kind = frame.get("type") if isinstance(frame, dict) else None
        if not (skipping is True or (skipping and kind in skipping)):
            raise AssertionError(f"expected {wanted}, got {frame} first")


def answers(ws: Any, *frames: str, timeout: float = 20.0) -> set[str]:
    """Send frames at once and return their (text) answers, which may come in any order."""
    for frame in frames:
        ws.send(frame)
    got: set[str] = set()
    for _ in frames:
        try:
            got.add(ws.recv(timeout=timeout))
        except TimeoutError:
            raise AssertionError(
                f"waited {timeout:g} s for {len(frames)} answers to {frames}; got {got}"
            ) from None
    return got
