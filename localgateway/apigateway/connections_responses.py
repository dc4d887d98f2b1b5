"""The @connections API's wire format, as botocore's `apigatewaymanagementapi` client reads it.

The service speaks rest-json: an error is its HTTP status, the error code in
the `x-amzn-ErrorType` header and a JSON body, from which botocore raises the
modelled exception (`client.exceptions.GoneException`). GetConnection answers
`connectedAt` and `lastActiveAt` in ISO 8601 and the caller's `identity`.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from localgateway.apigateway.connections_models import Gone, PayloadTooLarge
from localgateway.apigateway.registry import Connection

ERROR_TYPE_HEADER = "x-amzn-ErrorType"
REQUEST_ID_HEADER = "x-amzn-RequestId"
JSON = "application/json"


def iso8601(epoch_ms: int) -> str:
    """`2026-11-28T07:10:00.123Z`: the timestamp format of GetConnection."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def connection_document(connection: Connection[Any]) -> dict[str, Any]:
    caller = connection.caller
    return {
        "connectedAt": iso8601(caller.connected_at),
        "lastActiveAt": iso8601(connection.last_active_at),
        "identity": {"sourceIp": caller.source_ip, "userAgent": caller.user_agent},
    }


def _headers(**extra: str) -> dict[str, str]:
    return {REQUEST_ID_HEADER: str(uuid.uuid4()), **extra}


def error(status: int, code: str, message: str | None) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps({"message": message}).encode(),
        content_type=JSON,
        headers=_headers(**{ERROR_TYPE_HEADER: code}),
    )


def refusal(outcome: Gone | PayloadTooLarge) -> web.Response:
    if isinstance(outcome, Gone):
        return error(410, "GoneException", None)
    return error(
        413,
        "PayloadTooLargeException",
        f"Message size {outcome.size} exceeds the limit of {outcome.limit} bytes",
    )


def posted() -> web.Response:
    return web.Response(status=200, headers=_headers())


def deleted() -> web.Response:
    return web.Response(status=204, headers=_headers())


def connection(connection: Connection[Any]) -> web.Response:
    return web.Response(
        status=200,
        body=json.dumps(connection_document(connection)).encode(),
        content_type=JSON,
        headers=_headers(),
    )
