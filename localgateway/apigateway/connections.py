"""`/{stage}/@connections/{id}`: PostToConnection, GetConnection and DeleteConnection over HTTP.

The decisions are `connections_models`'s, the wire format `connections_responses`'s; this
module reads requests, checks their signature (service `execute-api`, as API
Gateway does) and hands frames and closes to the websocket side.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from localgateway.apigateway import connections_models, connections_responses, registry
from localgateway.apigateway.websocket import WebsocketApi
from localgateway.signing.signatures import Signatures

SERVICE = "execute-api"


class ConnectionsApi:
    def __init__(
        self, websockets: WebsocketApi, signatures: Signatures, post_latency_ms: float = 0.0
    ) -> None:
        self._websockets = websockets
        self._registry = websockets.registry
        self._signatures = signatures
        self._latency = post_latency_ms / 1000

    def add_routes(self, app: web.Application, stage: str) -> None:
        path = f"/{stage}/@connections/{{connection_id}}"
        app.router.add_route("POST", path, self.post)
        app.router.add_route("GET", path, self.get)
        app.router.add_route("DELETE", path, self.delete)

    async def _admitted(self, request: web.Request, body: bytes) -> web.Response | None:
        """AWS's 403 for an unsigned request; otherwise None, after --post-latency-ms."""
        refusal = self._signatures.refuse(request, body, SERVICE, "CONNECTIONS")
        if refusal is None and self._latency:
            await asyncio.sleep(self._latency)  # a sleep, not a lock: concurrent calls overlap
        return refusal

    async def post(self, request: web.Request) -> web.Response:
        try:
            data = await request.read()
        except ConnectionError:  # the caller hung up (a handler killed at its timeout)
            return web.Response(status=400)
        refusal = await self._admitted(request, data)
        if refusal is not None:
            return refusal
        outcome = connections_models.post(self._registry, request.match_info["connection_id"], data)
        if isinstance(outcome, connections_models.Gone | connections_models.PayloadTooLarge):
            return connections_responses.refusal(outcome)
        try:
            frame: str | bytes = data.decode("utf-8")
        except UnicodeDecodeError:
            frame = data
        if not await self._websockets.send(outcome, frame):
            return connections_responses.refusal(connections_models.Gone(outcome.connection_id))
        return connections_responses.posted()

    async def get(self, request: web.Request) -> web.Response:
        refusal = await self._admitted(request, b"")
        if refusal is not None:
            return refusal
        outcome = connections_models.get(self._registry, request.match_info["connection_id"])
        if isinstance(outcome, connections_models.Gone):
            return connections_responses.refusal(outcome)
        return connections_responses.connection(outcome)

    async def delete(self, request: web.Request) -> web.Response:
        refusal = await self._admitted(request, b"")
        if refusal is not None:
            return refusal
        outcome = connections_models.delete(self._registry, request.match_info["connection_id"])
        if isinstance(outcome, connections_models.Gone):
            return connections_responses.refusal(outcome)
        self._websockets.close(outcome, registry.DELETED)
        return connections_responses.deleted()
