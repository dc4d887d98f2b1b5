"""Lambda events shaped like the ones API Gateway's WebSocket API sends.

Pure functions of their inputs (no sockets, no clock reads) so that tests and
the gateway build identical events; ../shared/reference/apigw-websocket.md and
the AWS documentation list the keys. Ids look like AWS's: 16 characters of
base64 of 11 random bytes, such as `L0SM9cOFvHcCIhw=`.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

CONNECT, MESSAGE, DISCONNECT = "CONNECT", "MESSAGE", "DISCONNECT"


def new_id() -> str:
    """A connection, request or message id in AWS's format, safe in URL paths."""
    while True:
        value = base64.b64encode(os.urandom(11)).decode("ascii")
        if "/" not in value and "+" not in value:
            return value


def api_id(app_name: str, stage: str) -> str:
    """A 10-character API id like AWS's (`abcdef1234`), stable for an app and stage.

    Stable so that logs and stored connection records of one project look alike
    from run to run; derived, not random, so it needs no state.
    """
    digest = hashlib.sha256(f"{app_name}/{stage}".encode()).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:10]


@dataclass(frozen=True)
class Api:
    """Where the events come from: the API id, its stage and its domain name."""

    api_id: str
    stage: str
    domain_name: str


@dataclass(frozen=True)
class Caller:
    """The client side of one websocket connection."""

    connection_id: str
    connected_at: int
    source_ip: str = "127.0.0.1"
    user_agent: str = ""


def request_time(epoch_ms: int) -> str:
    """API Gateway's requestTime, in Common Log Format: 28/Nov/2026:07:10:00 +0000."""
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def _request_context(
    api: Api, caller: Caller, route_key: str, event_type: str, now_ms: int
) -> dict[str, Any]:
    request_id = new_id()
    identity: dict[str, Any] = {"sourceIp": caller.source_ip}
    if event_type == CONNECT:
        identity["userAgent"] = caller.user_agent
    return {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": request_time(now_ms),
        "messageDirection": "IN",
        "stage": api.stage,
        "connectedAt": caller.connected_at,
        "requestTimeEpoch": now_ms,
        "identity": identity,
        "requestId": request_id,
        "domainName": api.domain_name,
        "connectionId": caller.connection_id,
        "apiId": api.api_id,
    }


def _single_and_multi(
    pairs: Iterable[tuple[str, str]],
) -> tuple[dict[str, str], dict[str, list[str]]]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key, value in pairs:
        single[key] = value
        multi.setdefault(key, []).append(value)
    return single, multi


def connect_event(
    api: Api,
    caller: Caller,
    headers: Iterable[tuple[str, str]],
    query: Iterable[tuple[str, str]],
    now_ms: int,
) -> dict[str, Any]:
    """$connect: the upgrade request's headers and query string, as API Gateway passes them."""
    event: dict[str, Any] = {
        "requestContext": _request_context(api, caller, "$connect", CONNECT, now_ms),
        "isBase64Encoded": False,
    }
    single, multi = _single_and_multi(headers)
    event["headers"] = single
    event["multiValueHeaders"] = multi
    query_single, query_multi = _single_and_multi(query)
    if query_single:
        event["queryStringParameters"] = query_single
        event["multiValueQueryStringParameters"] = query_multi
    return event


def message_event(
    api: Api, caller: Caller, body: str, now_ms: int, route_key: str = "$default"
) -> dict[str, Any]:
    """A text frame from the client, routed to `route_key`."""
    context = _request_context(api, caller, route_key, MESSAGE, now_ms)
    context["messageId"] = new_id()
    return {"requestContext": context, "body": body, "isBase64Encoded": False}


def disconnect_event(
    api: Api, caller: Caller, status_code: int, reason: str, now_ms: int
) -> dict[str, Any]:
    """$disconnect, with the close code and reason API Gateway reports."""
    context = _request_context(api, caller, "$disconnect", DISCONNECT, now_ms)
    context["disconnectStatusCode"] = status_code
    context["disconnectReason"] = reason
    return {
        "requestContext": context,
        "headers": {"Host": api.domain_name, "X-Forwarded-For": caller.source_ip},
        "multiValueHeaders": {"Host": [api.domain_name], "X-Forwarded-For": [caller.source_ip]},
        "isBase64Encoded": False,
    }
