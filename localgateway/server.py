"""The gateway's HTTP side: one aiohttp application made of one part per API.

- `/{stage}`: the websocket endpoint (`apigateway.websocket`).
- `/{stage}/@connections/{id}`: the @connections API (`apigateway.connections`), signed.
- `/2015-03-31/functions/{name}/invocations`: Lambda's Invoke (`awslambda.invoke`), signed.
- Anything else: REST routes, static files, or 403 (`apigateway.rest`).

The same application is served on the main port (plain HTTP) and on the TLS
port, where the app's own `app.websocket_api` reaches it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from localgateway.apigateway import events, registry
from localgateway.apigateway.connections import ConnectionsApi
from localgateway.apigateway.rest import RestApi
from localgateway.apigateway.websocket import FRAME_QUEUE_SECONDS, WebsocketApi
from localgateway.awslambda import process_pool
from localgateway.awslambda.invoke import InvokeApi
from localgateway.signing.signatures import Signatures

# REST payloads: API Gateway's 10 MB, so @connections can also answer 413 itself.
MAX_REQUEST_BYTES = 10 * 1024 * 1024


class Gateway:
    def __init__(
        self,
        runtime: process_pool.Runtime,
        api: events.Api,
        limits: registry.Limits,
        signatures: Signatures,
        post_latency_ms: float = 0.0,
        page_config: dict[str, Any] | None = None,
        frame_queue_timeout: float = FRAME_QUEUE_SECONDS,
    ) -> None:
        self.rest = RestApi(runtime, page_config)
        self.websockets = WebsocketApi(runtime, api, limits, self.rest.handle, frame_queue_timeout)
        self.connections = ConnectionsApi(self.websockets, signatures, post_latency_ms)
        self.invoke = InvokeApi(runtime, signatures)
        self._stage = api.stage

    def application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        self.connections.add_routes(app, self._stage)
        app.router.add_route("GET", f"/{self._stage}", self.websockets.handle)
        self.invoke.add_routes(app)
        self.rest.add_routes(app)
        return app

    async def close_all(self, timeout: float) -> int:
        """Close every websocket and wait for their `$disconnect`s; return those left."""
        return await self.websockets.close_all(timeout)
