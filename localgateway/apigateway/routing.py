"""Which route a websocket message goes to, decided the way API Gateway decides it.

Pure functions, no I/O: the gateway calls them for every frame and tests call
them with any input. API Gateway evaluates the API's route selection expression
(by default `$request.body.action`) against a JSON text frame; the value, as a
string, picks a custom route. No match, a frame that is not JSON or a missing
key goes to `$default`; without a `$default` the caller gets a `Forbidden`
error frame. Chalice apps only ever have `$default`, but other apps may route.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from typing import Any

DEFAULT_EXPRESSION = "$request.body.action"
CONNECT, DISCONNECT, DEFAULT = "$connect", "$disconnect", "$default"

FORBIDDEN = "Forbidden"
INTERNAL_SERVER_ERROR = "Internal server error"
# API Gateway's word for a throttled request (its HTTP 429).
TOO_MANY_REQUESTS = "Too Many Requests"

_EXPRESSION = re.compile(
    r"\$(?:request\.body\.(?P<bare>[^{}$]+)|\{request\.body\.(?P<braced>[^{}$]+)\})"
)


def parse_expression(expression: str) -> tuple[str, ...]:
    """The JSON path of `$request.body.a.b` (or `${request.body.a.b}`): ("a", "b")."""
    match = _EXPRESSION.fullmatch(expression.strip())
    if match is None:
        raise ValueError(
            f"unsupported route selection expression {expression!r}: "
            "use $request.body.KEY or ${request.body.KEY}"
        )
    return tuple((match["bare"] or match["braced"]).split("."))


def select_route(body: str, route_keys: Collection[str], path: tuple[str, ...]) -> str | None:
    """The route key for a text frame, `$default` when nothing matches, None without one.

    Keys that start with `$` are API Gateway's own and never match a frame's value.
    """
    value = _value_at(body, path)
    if value is not None and not value.startswith("$") and value in route_keys:
        return value
    return DEFAULT if DEFAULT in route_keys else None


def _value_at(body: str, path: tuple[str, ...]) -> str | None:
    if not body.lstrip().startswith("{"):
        return None
    try:
        node: Any = json.loads(body)
    except (ValueError, RecursionError):
        return None
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    if isinstance(node, str):
        return node
    if isinstance(node, bool | int | float):
        return json.dumps(node)
    return None


def error_frame(message: str, connection_id: str, request_id: str) -> str:
    """The frame API Gateway sends a caller when routing or the integration fails."""
    return json.dumps({"message": message, "connectionId": connection_id, "requestId": request_id})
