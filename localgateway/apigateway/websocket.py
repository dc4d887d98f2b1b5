"""The websocket endpoint, `/{stage}`: connect, frames, disconnect, as API Gateway runs them.

`$connect` runs in a worker before the upgrade completes: a non-2xx status
rejects it with that status, a failure with 500. Each text frame is routed
(`routing`) and invoked; invocations of one connection queue in turn with the
others' (`scheduler`). `$disconnect` gets the close code and reason the
client or the gateway actually used. Deadlines (idle, maximum duration) and
open connections are `registry`'s; this module moves the bytes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.http_websocket import WebSocketError
from multidict import CIMultiDict

from localgateway import accesslog
from localgateway.apigateway import events, registry, routing
from localgateway.awslambda import ipc, process_pool
from localgateway.state.journal import DisconnectJournal

# API Gateway gives up on an integration after 29 s (the function may run on).
INTEGRATION_TIMEOUT_SECONDS = 29.0
# How long a client has to answer the gateway's close frame before the socket is dropped.
CLOSE_HANDSHAKE_SECONDS = 1.0
# This gateway's own bound, not API Gateway's (--frame-queue-timeout): a frame of a
# flooding connection (registry.FLOOD_FRAMES) that waited this long for a free handler
# process is answered `Too Many Requests` (API Gateway's throttling answer) instead of
# running, so that a flood is answered within 10 s of its last frame, not after its own
# backlog (docs/local-gateway.md). Other frames wait up to --queue-timeout.
FRAME_QUEUE_SECONDS = 5.0


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(eq=False)
class Live:
    """The I/O side of an open connection, the registry's opaque handle."""

    ws: web.WebSocketResponse
    prepared: asyncio.Event = field(default_factory=asyncio.Event)
    close: registry.Close | None = None
    timer: asyncio.TimerHandle | None = None


class WebsocketApi:
    def __init__(
        self,
        runtime: process_pool.Runtime,
        api: events.Api,
        limits: registry.Limits,
        fallback: Callable[[web.Request], Awaitable[web.StreamResponse]],
        frame_queue_timeout: float = FRAME_QUEUE_SECONDS,
    ) -> None:
        self.runtime = runtime
        self._frame_queue_timeout = frame_queue_timeout
        self.api = api
        self.registry: registry.Registry[Live] = registry.Registry(limits)
        self._fallback = fallback  # a plain GET of the stage path is a REST request
        self._route_path = routing.parse_expression(routing.DEFAULT_EXPRESSION)
        self._tasks: set[asyncio.Task[Any]] = set()
        # What a shutdown waits for: open sockets, sockets being closed, their $disconnects.
        self._open: set[Live] = set()
        self._ending: set[asyncio.Task[Any]] = set()
        # Connections whose $disconnect has not run (state/journal.py); once stopping, a
        # $disconnect that could not run stays in it, for the next start.
        self.journal = DisconnectJournal()
        self._stopping = False
        # Upgrades wait until the last run's pending $disconnects have run.
        self.accepting = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        # Offering the client's own subprotocols only silences aiohttp's warning: the
        # one the upgrade answers with comes from the $connect response below.
        offered = request.headers.get("Sec-WebSocket-Protocol", "").replace(",", " ").split()
        if not web.WebSocketResponse(protocols=offered).can_prepare(request).ok:
            return await self._fallback(request)
        await self.accepting.wait()
        generation = self.runtime.current
        connected_at = now_ms()
        caller = events.Caller(
            events.new_id(),
            connected_at,
            request.remote or "127.0.0.1",
            request.headers.get("User-Agent", ""),
        )
        protocols: tuple[str, ...] = ()
        if routing.CONNECT in generation.websocket_routes:
            event = events.connect_event(
                self.api, caller, _upgrade_headers(request), request.query.items(), connected_at
            )
            result = await self._invoke(generation, routing.CONNECT, event, caller.connection_id)
            status = accesslog.status_of(result)
            accesslog.event("CONNECT", routing.CONNECT, caller.connection_id, status, result)
            if not 200 <= status < 300:
                return _rejection(status, result)
            protocol = _header(result.response, "Sec-WebSocket-Protocol")
            protocols = (protocol,) if protocol else ()
        else:
            accesslog.event("CONNECT", routing.CONNECT, caller.connection_id, 200, None)
        ws = web.WebSocketResponse(
            protocols=protocols,
            # aiohttp refuses an uncompressed message of max_msg_size bytes or more;
            # API Gateway takes one of exactly 128 KB.
            max_msg_size=self.registry.limits.payload_bytes + 1,
            autoping=True,
            timeout=CLOSE_HANDSHAKE_SECONDS,
            # API Gateway does not negotiate permessage-deflate: neither do we (and
            # compressing every frame of a broadcast costs the gateway's CPU).
            compress=False,
        )
        live = Live(ws)
        connection = self.registry.open(caller, live)
        self.journal.opened(caller)
        self._open.add(live)
        self._schedule_expiry(connection)
        try:
            await ws.prepare(request)
            live.prepared.set()
            close = await self._receive(connection)
        except ConnectionError:  # the client left while $connect ran
            close = registry.LOST
        finally:
            live.prepared.set()
        self.registry.remove(caller.connection_id)
        if live.timer is not None:
            live.timer.cancel()
        close = live.close or close
        self._background(self._disconnect(connection.caller, close), ending=True)
        self._open.discard(live)
        if ws.prepared and not ws.closed:
            await ws.close(code=close.code)
        return ws

    async def _receive(self, connection: registry.Connection[Live]) -> registry.Close:
        """Read frames until the connection ends; return how it ended."""
        ws = connection.socket.ws
        while True:
            message = await ws.receive()
            if message.type is WSMsgType.TEXT:
                body = message.data
            elif message.type is WSMsgType.BINARY:
                # Chalice's integration converts binary frames to text: base64.
                body = base64.b64encode(message.data).decode("ascii")
            elif message.type is WSMsgType.CLOSE:
                return registry.client_close(message.data, message.extra or "")
            elif message.type is WSMsgType.ERROR:
                return _protocol_error(message.data, self.registry.limits.payload_bytes)
            else:
                return registry.LOST
            self.registry.touch(connection, now_ms())
            flooding = self.registry.frame_started(connection)
            self._background(self._message(connection, body, flooding))

    async def _message(
        self, connection: registry.Connection[Live], body: str, flooding: bool
    ) -> None:
        try:
            await self._route(connection, body, self._frame_queue_timeout if flooding else None)
        finally:
            self.registry.frame_done(connection)

    async def _route(
        self, connection: registry.Connection[Live], body: str, queue_timeout: float | None
    ) -> None:
        generation = self.runtime.current
        connection_id = connection.connection_id
        route = routing.select_route(body, generation.websocket_routes, self._route_path)
        if route is None:
            accesslog.event("MESSAGE", "-", connection_id, 403, None)
            frame = routing.error_frame(routing.FORBIDDEN, connection_id, events.new_id())
            await self.send(connection, frame)
            return
        event = events.message_event(self.api, connection.caller, body, now_ms(), route)
        result = await self._invoke(generation, route, event, connection_id, queue_timeout)
        if result.failure is not None and result.failure.kind == ipc.THROTTLED:
            accesslog.event("MESSAGE", route, connection_id, 429, None)
            frame = routing.error_frame(routing.TOO_MANY_REQUESTS, connection_id, events.new_id())
            await self.send(connection, frame)
            return
        accesslog.event("MESSAGE", route, connection_id, accesslog.status_of(result), result)
        if not result.ok:
            request_id = event["requestContext"]["requestId"]
            frame = routing.error_frame(routing.INTERNAL_SERVER_ERROR, connection_id, request_id)
            await self.send(connection, frame)
            return
        reply = _body(result.response)
        if reply:
            await self.send(connection, reply)

    async def _disconnect(self, caller: events.Caller, close: registry.Close) -> None:
        generation = self.runtime.current
        connection_id = caller.connection_id
        if routing.DISCONNECT not in generation.websocket_routes:
            accesslog.event("DISCONNECT", routing.DISCONNECT, connection_id, None, None, close)
            self.journal.done(connection_id)
            return
        event = events.disconnect_event(self.api, caller, close.code, close.reason, now_ms())
        result = await self._invoke(generation, routing.DISCONNECT, event, connection_id)
        status = accesslog.status_of(result)
        accesslog.event("DISCONNECT", routing.DISCONNECT, connection_id, status, result, close)
        if result.ok or not self._stopping:
            self.journal.done(connection_id)

    async def run_pending(self, callers: list[events.Caller], close: registry.Close) -> int:
        """Run the $disconnects a previous run left (before any upgrade is accepted);
        return how many did not run."""
        for caller in callers:
            self.journal.opened(caller)
        await asyncio.gather(*(self._disconnect(caller, close) for caller in callers))
        left = {caller.connection_id for caller in self.journal.pending()}
        return sum(caller.connection_id in left for caller in callers)

    async def _invoke(
        self,
        generation: process_pool.Generation,
        route_key: str,
        event: dict[str, Any],
        connection_id: str,
        queue_timeout: float | None = None,
    ) -> process_pool.Result:
        function = generation.project.function_for_route(route_key)
        request = {
            "kind": "websocket",
            "handler": generation.websocket_routes[route_key],
            "event": event,
        }
        return await generation.invoke(
            function,
            request,
            connection_id,
            integration_timeout=INTEGRATION_TIMEOUT_SECONDS,
            queue_timeout=queue_timeout,
        )

    async def send(self, connection: registry.Connection[Live], data: str | bytes) -> bool:
        """Deliver a frame; False when the connection is closing or gone."""
        live = connection.socket
        if not live.prepared.is_set():
            await live.prepared.wait()
        if live.ws.closed or live.close is not None:
            return False
        try:
            if isinstance(data, str):
                await live.ws.send_str(data)
            else:
                await live.ws.send_bytes(data)
        except (ConnectionError, RuntimeError):
            return False
        return True

    def _schedule_expiry(self, connection: registry.Connection[Live]) -> None:
        """One timer per connection, moved on lazily: a message costs nothing here."""
        deadline, _ = self.registry.deadline(connection)
        delay = max(0.0, (deadline - now_ms()) / 1000)
        loop = asyncio.get_running_loop()
        connection.socket.timer = loop.call_later(delay, self._check_expiry, connection)

    def _check_expiry(self, connection: registry.Connection[Live]) -> None:
        if self.registry.get(connection.connection_id) is not connection:
            return
        close = self.registry.expired(connection, now_ms())
        if close is None:
            self._schedule_expiry(connection)
        else:
            self.close(connection, close)

    def close(self, connection: registry.Connection[Live], close: registry.Close) -> None:
        """Close from the gateway's side; the socket's handler then runs `$disconnect`."""
        self.registry.remove(connection.connection_id)
        live = connection.socket
        if live.close is None:
            live.close = close
            self._background(self._close_socket(live, close), ending=True)

    async def _close_socket(self, live: Live, close: registry.Close) -> None:
        await live.prepared.wait()  # a DELETE may come while the upgrade completes
        if live.ws.prepared:
            await live.ws.close(code=close.code, message=close.reason.encode())

    async def close_all(self, timeout: float) -> int:
        """Close every connection (Going away) and wait up to `timeout` s for their
        `$disconnect`s; return how many did not finish."""
        self._stopping = True
        for connection in self.registry:
            self.close(connection, registry.SHUTDOWN)
        deadline = time.monotonic() + timeout
        # Sockets close, then their handlers add the $disconnects: wait for both.
        while (self._open or self._ending) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return len(self._open) + len(self._ending)

    def _background(
        self, coroutine: Coroutine[Any, Any, Any], ending: bool = False
    ) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine)
        for group in (self._tasks, self._ending) if ending else (self._tasks,):
            group.add(task)
            task.add_done_callback(group.discard)
        return task


def _protocol_error(error: object, payload_bytes: int) -> registry.Close:
    """The close the gateway made for a frame it could not take (1009 too big, 1007
    invalid UTF-8, 1002 protocol error): aiohttp has sent it to the client."""
    if isinstance(error, WebSocketError) and error.code == WSCloseCode.MESSAGE_TOO_BIG:
        return registry.too_big(payload_bytes)
    if isinstance(error, WebSocketError):
        return registry.Close(int(error.code), str(error) or f"close code {error.code}")
    return registry.LOST


def _upgrade_headers(request: web.Request) -> list[tuple[str, str]]:
    """The upgrade request's headers as sent, plus the X-Forwarded-* API Gateway adds."""
    headers = [
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in request.raw_headers
    ]
    present = {name.lower() for name, _ in headers}
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    forwarded = {
        "X-Forwarded-For": request.remote or "127.0.0.1",
        "X-Forwarded-Port": str(sockname[1]) if sockname else "",
        "X-Forwarded-Proto": "https" if request.secure else "http",
    }
    headers.extend(
        (name, value) for name, value in forwarded.items() if name.lower() not in present
    )
    return headers


def _header(response: Any, name: str) -> str | None:
    if not isinstance(response, dict):
        return None
    headers = CIMultiDict((k, str(v)) for k, v in (response.get("headers") or {}).items())
    return headers.get(name)


def _body(response: Any) -> str | None:
    """A handler's `body`, which API Gateway sends back to the caller."""
    if not isinstance(response, dict) or response.get("body") is None:
        return None
    body = response["body"]
    return body if isinstance(body, str) else json.dumps(body)


def _rejection(status: int, result: process_pool.Result) -> web.Response:
    if not result.ok:
        return web.json_response({"message": routing.INTERNAL_SERVER_ERROR}, status=500)
    return web.Response(status=status, text=_body(result.response))
