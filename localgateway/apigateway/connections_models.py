"""The @connections API's decisions: PostToConnection, GetConnection, DeleteConnection.

What each call does to the registry and what it answers, with no HTTP in
sight; `connections_responses` turns the outcomes into API Gateway's wire format.
Every call is one dictionary lookup: a broadcast to a thousand members is a
thousand of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from localgateway.apigateway.registry import Connection, Registry

Socket = TypeVar("Socket")


@dataclass(frozen=True)
class Gone:
    """410 GoneException: no open connection has this id (never was, closed, or connecting)."""

    connection_id: str


@dataclass(frozen=True)
class PayloadTooLarge:
    """413 PayloadTooLargeException: the data is over API Gateway's 128 KB."""

    size: int
    limit: int


def post(
    registry: Registry[Socket], connection_id: str, data: bytes
) -> Connection[Socket] | Gone | PayloadTooLarge:
    """The connection to deliver `data` to, or why not. Posting is not client activity."""
    connection = registry.get(connection_id)
    if connection is None:
        return Gone(connection_id)
    if len(data) > registry.limits.payload_bytes:
        return PayloadTooLarge(len(data), registry.limits.payload_bytes)
    return connection


def get(registry: Registry[Socket], connection_id: str) -> Connection[Socket] | Gone:
    connection = registry.get(connection_id)
    return Gone(connection_id) if connection is None else connection


def delete(registry: Registry[Socket], connection_id: str) -> Connection[Socket] | Gone:
    """Remove the connection at once (a second DELETE or a POST is already Gone);
    the caller closes its socket and runs `$disconnect`."""
    connection = registry.remove(connection_id)
    return Gone(connection_id) if connection is None else connection
