"""The gateway's log: one line per connect, message, disconnect, REST request and Invoke.

A failed handler is logged as a warning, so that `--quiet` (which hides the
INFO lines) still shows it.
"""

from __future__ import annotations

import logging

from localgateway.apigateway import registry
from localgateway.awslambda import process_pool

access_log = logging.getLogger("localgateway.access")
# An invocation that waited this long for a free worker says so on its line.
QUEUED_NOTE_MS = 100


def status_of(result: process_pool.Result) -> int:
    """The HTTP status a handler's result stands for: its statusCode, 200, or 500 if it failed."""
    if not result.ok:
        return 500
    response = result.response
    if isinstance(response, dict):
        try:
            return int(response.get("statusCode", 200))
        except (TypeError, ValueError):
            return 500
    return 200


def level(result: process_pool.Result | None) -> int:
    return logging.WARNING if result is not None and not result.ok else logging.INFO


def event(
    kind: str,
    route: str,
    connection_id: str,
    status: int | None,
    result: process_pool.Result | None,
    close: registry.Close | None = None,
) -> None:
    """A websocket event: route, connection, status, duration, and how it closed."""
    shown = "-" if status is None else str(status)
    duration = "no handler" if result is None else f"{result.duration_ms:6.0f} ms"
    details = []
    if result is not None and result.waited_ms >= QUEUED_NOTE_MS:
        details.append(f"queued {result.waited_ms:.0f} ms")
    if close is not None:
        details.append(f"close {close.code} {close.reason}")
    if result is not None and result.error:
        details.append(result.error)
    suffix = f"  ({'; '.join(details)})" if details else ""
    access_log.log(
        level(result),
        "%-10s %-12s %s %3s %s%s",
        kind,
        route,
        connection_id,
        shown,
        duration,
        suffix,
    )


def invoke(
    name: str,
    invocation_type: str,
    status: int,
    result: process_pool.Result | None,
    refusal: str | None = None,
) -> None:
    """A Lambda invocation: function, invocation type, status, duration."""
    duration = "not run" if result is None else f"{result.duration_ms:6.0f} ms"
    detail = refusal or (result.error if result is not None else None)
    suffix = f"  ({detail})" if detail else ""
    access_log.log(
        level(result),
        "%-10s %-12s %-15s %3s %s%s",
        "INVOKE",
        name,
        invocation_type,
        status,
        duration,
        suffix,
    )


def request(method: str, path: str, status: int, result: process_pool.Result) -> None:
    """A REST route's request."""
    suffix = f"  ({result.error})" if result.error else ""
    access_log.log(
        level(result), "%-10s %s %s %.0f ms%s", method, path, status, result.duration_ms, suffix
    )


def refused(api: str, method: str, path: str, code: str) -> None:
    """A request to a signed API without a valid signature."""
    access_log.warning("%-10s %s %s 403  (%s)", api, method, path, code)
