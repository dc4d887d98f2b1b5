"""The websocket event, read once at the edge into a frozen dataclass.

Chalice hands each handler a `WebsocketEvent`, whose raw dict has everything
API Gateway sent (../shared/reference/apigw-websocket.md lists the keys);
nothing below this module reads that dict. Keys API Gateway may leave out
(headers, a query string, a body) become None, never a KeyError: a hand-built
or odd event is answered like any other. A body is the frame's text; Chalice's
integration converts a binary frame to base64 text, which arrives as is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalice.app import WebsocketEvent


@dataclass(frozen=True)
class SocketEvent:
    connection_id: str
    route_key: str  # `$connect`, `$disconnect`, `$default`
    event_type: str  # CONNECT, MESSAGE, DISCONNECT
    # The API the event came through: where sends to its connections go.
    domain_name: str
    stage: str
    source_ip: str = ""
    request_time_ms: int | None = None
    # MESSAGE: the frame's text; None when the event has none.
    body: str | None = None
    # CONNECT: the upgrade request's Origin header and its `?nick=`, `?room=`, `?token=`.
    origin: str | None = None
    nick: str | None = None
    room: str | None = None
    token: str | None = None


def from_chalice(event: WebsocketEvent) -> SocketEvent:
    return parse(event.to_dict())


def parse(raw: Mapping[str, Any]) -> SocketEvent:
    """The event's fields; a missing or malformed part reads as absent."""
    context = _mapping(raw.get("requestContext"))
    headers = {str(key).lower(): value for key, value in _mapping(raw.get("headers")).items()}
    query = _mapping(raw.get("queryStringParameters"))
    epoch = context.get("requestTimeEpoch")
    return SocketEvent(
        connection_id=_text(context.get("connectionId")) or "",
        route_key=_text(context.get("routeKey")) or "",
        event_type=_text(context.get("eventType")) or "",
        domain_name=_text(context.get("domainName")) or "",
        stage=_text(context.get("stage")) or "",
        source_ip=_text(_mapping(context.get("identity")).get("sourceIp")) or "",
        request_time_ms=epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None,
        body=_text(raw.get("body")),
        origin=_text(headers.get("origin")),
        nick=_text(query.get("nick")),
        room=_text(query.get("room")),
        token=_text(query.get("token")),
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
