"""The gateway's HTTP side (aiohttp): websockets, @connections, REST routes, static files.

- `/{stage}`: the websocket endpoint. `$connect` runs in a worker before the
  upgrade completes: a non-2xx status rejects it with that status, a failure
  with 500. Each text frame is routed (`routing`) and invoked concurrently.
- `/{stage}/@connections/{id}`: PostToConnection, GetConnection and
  DeleteConnection (`management`, `management_http`).
- `/2015-03-31/functions/{name}/invocations`: Lambda's Invoke, for the app's
  pure functions (`lambda_api`); an Event invocation runs in the background.
- Anything else: the app's REST routes, as `chalice local` serves them (no
  stage prefix), then the files of the project's `static/`, then API
  Gateway's 403 `Missing Authentication Token`.

The same application is served on the main port (plain HTTP) and on the TLS
port, where the app's own `app.websocket_api` reaches it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.http_websocket import WebSocketError
from chalice.local import RouteMatcher
from multidict import CIMultiDict

from localgateway import (
    environment,
    events,
    lambda_api,
    management,
    management_http,
    registry,
    routing,
    workers,
)
from localgateway.project import API_HANDLER, Project

access_log = logging.getLogger("localgateway.access")

# API Gateway gives up on an integration after 29 s (the function may run on).
INTEGRATION_TIMEOUT_SECONDS = 29.0
# REST payloads: API Gateway's 10 MB, so @connections can also answer 413 itself.
MAX_REQUEST_BYTES = 10 * 1024 * 1024
CLOSE_WAIT_SECONDS = 5.0


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Live:
    """The I/O side of an open connection, the registry's opaque handle."""

    ws: web.WebSocketResponse
    prepared: asyncio.Event = field(default_factory=asyncio.Event)
    close: registry.Close | None = None
    timer: asyncio.TimerHandle | None = None


class Gateway:
    def __init__(
        self,
        runtime: workers.Runtime,
        api: events.Api,
        limits: registry.Limits,
        post_latency_ms: float = 0.0,
    ) -> None:
        self.runtime = runtime
        self.api = api
        self.registry: registry.Registry[Live] = registry.Registry(limits)
        self._post_latency = post_latency_ms / 1000
        self._route_path = routing.parse_expression(routing.DEFAULT_EXPRESSION)
        self._region = environment.region(runtime.launch.base_environment)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._matcher: tuple[workers.Generation | None, RouteMatcher | None] = (None, None)

    def application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        stage = self.api.stage
        connections = f"/{stage}/@connections/{{connection_id}}"
        app.router.add_route("POST", connections, self.post_to_connection)
        app.router.add_route("GET", connections, self.get_connection)
        app.router.add_route("DELETE", connections, self.delete_connection)
        app.router.add_route("GET", f"/{stage}", self.websocket)
        app.router.add_route("POST", lambda_api.INVOKE_PATH, self.invoke)
        app.router.add_route("*", "/{tail:.*}", self.http)
        return app

    # Websockets ----------------------------------------------------------------------

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        # Offering the client's own subprotocols only silences aiohttp's warning: the
        # one the upgrade answers with comes from the $connect response below.
        offered = request.headers.get("Sec-WebSocket-Protocol", "").replace(",", " ").split()
        if not web.WebSocketResponse(protocols=offered).can_prepare(request).ok:
            return await self.http(request)
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
            result = await self._invoke(generation, routing.CONNECT, event)
            status = _status(result)
            _log_event("CONNECT", routing.CONNECT, caller.connection_id, status, result)
            if not 200 <= status < 300:
                return _rejection(status, result)
            protocol = _header(result.response, "Sec-WebSocket-Protocol")
            protocols = (protocol,) if protocol else ()
        else:
            _log_event("CONNECT", routing.CONNECT, caller.connection_id, 200, None)
        ws = web.WebSocketResponse(
            protocols=protocols, max_msg_size=self.registry.limits.payload_bytes, autoping=True
        )
        live = Live(ws)
        connection = self.registry.open(caller, live)
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
        self._background(self._disconnect(connection, close))
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
                error = message.data
                too_big = isinstance(error, WebSocketError) and error.code == registry.TOO_BIG.code
                return registry.TOO_BIG if too_big else registry.LOST
            else:
                return registry.LOST
            self.registry.touch(connection, now_ms())
            self._background(self._message(connection, body))

    async def _message(self, connection: registry.Connection[Live], body: str) -> None:
        generation = self.runtime.current
        connection_id = connection.connection_id
        route = routing.select_route(body, generation.websocket_routes, self._route_path)
        if route is None:
            _log_event("MESSAGE", "-", connection_id, 403, None)
            frame = routing.error_frame(routing.FORBIDDEN, connection_id, events.new_id())
            await self._send(connection, frame)
            return
        event = events.message_event(self.api, connection.caller, body, now_ms(), route)
        result = await self._invoke(generation, route, event)
        _log_event("MESSAGE", route, connection_id, _status(result), result)
        if not result.ok:
            request_id = event["requestContext"]["requestId"]
            frame = routing.error_frame(routing.INTERNAL_SERVER_ERROR, connection_id, request_id)
            await self._send(connection, frame)
            return
        reply = _body(result.response)
        if reply:
            await self._send(connection, reply)

    async def _disconnect(
        self, connection: registry.Connection[Live], close: registry.Close
    ) -> None:
        generation = self.runtime.current
        connection_id = connection.connection_id
        if routing.DISCONNECT not in generation.websocket_routes:
            _log_event("DISCONNECT", routing.DISCONNECT, connection_id, None, None, close)
            return
        event = events.disconnect_event(
            self.api, connection.caller, close.code, close.reason, now_ms()
        )
        result = await self._invoke(generation, routing.DISCONNECT, event)
        _log_event("DISCONNECT", routing.DISCONNECT, connection_id, _status(result), result, close)

    async def _invoke(
        self, generation: workers.Generation, route_key: str, event: dict[str, Any]
    ) -> workers.Result:
        function = generation.project.function_for_route(route_key)
        request = {
            "kind": "websocket",
            "handler": generation.websocket_routes[route_key],
            "event": event,
        }
        invocation = asyncio.ensure_future(generation.invoke(function, request))
        try:
            return await asyncio.wait_for(asyncio.shield(invocation), INTEGRATION_TIMEOUT_SECONDS)
        except TimeoutError:
            self._tasks.add(invocation)
            invocation.add_done_callback(self._tasks.discard)
            return workers.Result(
                error="Endpoint request timed out", duration_ms=INTEGRATION_TIMEOUT_SECONDS * 1000
            )

    async def _send(self, connection: registry.Connection[Live], data: str | bytes) -> bool:
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
            self._close(connection, close)

    def _close(self, connection: registry.Connection[Live], close: registry.Close) -> None:
        """Close from the gateway's side; the socket's handler then runs `$disconnect`."""
        self.registry.remove(connection.connection_id)
        live = connection.socket
        if live.close is None:
            live.close = close
            self._background(self._close_socket(live, close))

    async def _close_socket(self, live: Live, close: registry.Close) -> None:
        await live.prepared.wait()  # a DELETE may come while the upgrade completes
        if live.ws.prepared:
            await live.ws.close(code=close.code, message=close.reason.encode())

    async def close_all(self) -> None:
        """Close every connection (Going away) and wait for their `$disconnect`s."""
        for connection in self.registry:
            self._close(connection, registry.SHUTDOWN)
        deadline = time.monotonic() + CLOSE_WAIT_SECONDS
        while self._tasks and time.monotonic() < deadline:
            await asyncio.wait(list(self._tasks), timeout=deadline - time.monotonic())

    def _background(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # The @connections API ----------------------------------------------------------

    async def _latency(self) -> None:
        """--post-latency-ms: a sleep, not a lock, so that concurrent calls overlap."""
        if self._post_latency:
            await asyncio.sleep(self._post_latency)

    async def post_to_connection(self, request: web.Request) -> web.Response:
        await self._latency()
        try:
            data = await request.read()
        except ConnectionError:  # the caller hung up (a handler killed at its timeout)
            return web.Response(status=400)
        outcome = management.post(self.registry, request.match_info["connection_id"], data)
        if isinstance(outcome, management.Gone | management.PayloadTooLarge):
            return management_http.refusal(outcome)
        try:
            frame: str | bytes = data.decode("utf-8")
        except UnicodeDecodeError:
            frame = data
        if not await self._send(outcome, frame):
            return management_http.refusal(management.Gone(outcome.connection_id))
        return management_http.posted()

    async def get_connection(self, request: web.Request) -> web.Response:
        await self._latency()
        outcome = management.get(self.registry, request.match_info["connection_id"])
        if isinstance(outcome, management.Gone):
            return management_http.refusal(outcome)
        return management_http.connection(outcome)

    async def delete_connection(self, request: web.Request) -> web.Response:
        await self._latency()
        outcome = management.delete(self.registry, request.match_info["connection_id"])
        if isinstance(outcome, management.Gone):
            return management_http.refusal(outcome)
        self._close(outcome, registry.DELETED)
        return management_http.deleted()

    # Lambda's Invoke API -------------------------------------------------------------

    async def invoke(self, request: web.Request) -> web.Response:
        generation = self.runtime.current
        payload: bytes | None = None  # left unread: larger than any payload Lambda takes
        if (request.content_length or 0) <= lambda_api.SYNC_PAYLOAD_BYTES:
            try:
                payload = await request.read()
            except web.HTTPRequestEntityTooLarge:  # a chunked body over the server's limit
                pass
            except ConnectionError:  # the caller hung up
                return web.Response(status=400)
        function_name = request.match_info["function_name"]
        invocation_type = request.headers.get("X-Amz-Invocation-Type")
        outcome = lambda_api.accept(
            generation.project,
            self._region,
            function_name=function_name,
            qualifier=request.query.get("Qualifier"),
            invocation_type=invocation_type,
            log_type=request.headers.get("X-Amz-Log-Type"),
            payload=payload,
        )
        if isinstance(outcome, lambda_api.Reply):
            refusal = outcome.headers.get(lambda_api.ERROR_TYPE_HEADER)
            shown_type = invocation_type or lambda_api.REQUEST_RESPONSE
            _log_invoke(function_name, shown_type, outcome.status, None, refusal)
            return _response(outcome)
        name = outcome.function.lambda_name
        if outcome.invocation_type == lambda_api.DRY_RUN:
            reply = lambda_api.dry_run(outcome)
            _log_invoke(name, lambda_api.DRY_RUN, reply.status, None)
            return _response(reply)
        if outcome.invocation_type == lambda_api.EVENT:
            reply = lambda_api.queued(outcome)
            self._background(self._run_event(generation, outcome, reply.status))
            return _response(reply)
        result = await generation.invoke(outcome.function, outcome.worker_request())
        reply = lambda_api.completed(outcome, result)
        _log_invoke(name, lambda_api.REQUEST_RESPONSE, reply.status, result)
        return _response(reply)

    async def _run_event(
        self, generation: workers.Generation, invocation: lambda_api.Invocation, status: int
    ) -> None:
        """An Event invocation, after its 202: nobody waits for it, so errors go to the log."""
        result = await generation.invoke(invocation.function, invocation.worker_request())
        _log_invoke(invocation.function.lambda_name, lambda_api.EVENT, status, result)

    # REST routes and static files ------------------------------------------------------

    async def http(self, request: web.Request) -> web.StreamResponse:
        generation = self.runtime.current
        if self._matches_route(generation, request.raw_path):
            return await self._rest(generation, request)
        if request.method in ("GET", "HEAD"):
            path = _static_file(generation.project, request.path)
            if path is not None:
                return web.FileResponse(path, headers={"Cache-Control": "no-cache"})
        return web.json_response(
            {"message": "Missing Authentication Token"},
            status=403,
            headers={"x-amzn-ErrorType": "MissingAuthenticationTokenException"},
        )

    def _matches_route(self, generation: workers.Generation, raw_path: str) -> bool:
        cached, matcher = self._matcher
        if cached is not generation:
            matcher = RouteMatcher(generation.rest_routes) if generation.rest_routes else None
            self._matcher = (generation, matcher)
        if matcher is None:
            return False
        try:
            matcher.match_route(raw_path)
        except ValueError:
            return False
        return True

    async def _rest(self, generation: workers.Generation, request: web.Request) -> web.Response:
        body = await request.read()
        invocation = {
            "kind": "http",
            "method": request.method,
            "path": request.raw_path,
            "headers": dict(request.headers),
            "body": base64.b64encode(body).decode("ascii") if body else None,
        }
        function = generation.project.functions[API_HANDLER]
        result = await generation.invoke(function, invocation)
        status = _status(result) if result.ok else 502
        access_log.log(
            _level(result),
            "%-10s %s %s %.0f ms%s",
            request.method,
            request.path,
            status,
            result.duration_ms,
            f"  ({result.error})" if result.error else "",
        )
        if not result.ok:
            return web.json_response({"message": "Internal server error"}, status=502)
        return _rest_response(result.response)


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


def _status(result: workers.Result) -> int:
    if not result.ok:
        return 500
    response = result.response
    if isinstance(response, dict):
        try:
            return int(response.get("statusCode", 200))
        except (TypeError, ValueError):
            return 500
    return 200


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


def _rejection(status: int, result: workers.Result) -> web.Response:
    if not result.ok:
        return web.json_response({"message": routing.INTERNAL_SERVER_ERROR}, status=500)
    return web.Response(status=status, text=_body(result.response))


def _rest_response(response: Any) -> web.Response:
    if not isinstance(response, dict):
        return web.json_response({"message": "Internal server error"}, status=502)
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in (response.get("headers") or {}).items():
        headers[name] = str(value)
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers.popall(name, None)
        for value in values:
            headers.add(name, str(value))
    headers.setdefault("Content-Type", "application/json")
    body = response.get("body")
    if body is None:
        data = b""
    elif response.get("isBase64Encoded"):
        data = base64.b64decode(body)
    else:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return web.Response(status=int(response.get("statusCode", 200)), headers=headers, body=data)


def _response(reply: lambda_api.Reply) -> web.Response:
    return web.Response(status=reply.status, headers=reply.headers, body=reply.body)


def _static_file(source: Project, path: str) -> Path | None:
    root = source.static_dir.resolve()
    if not root.is_dir():
        return None
    candidate = (root / path.lstrip("/")).resolve()
    if not candidate.is_relative_to(root):
        return None
    if candidate.is_dir():
        candidate = candidate / "index.html"
    return candidate if candidate.is_file() else None


def _log_event(
    kind: str,
    route: str,
    connection_id: str,
    status: int | None,
    result: workers.Result | None,
    close: registry.Close | None = None,
) -> None:
    """One line per connect, message and disconnect: route, connection, status, duration."""
    shown = "-" if status is None else str(status)
    duration = "no handler" if result is None else f"{result.duration_ms:6.0f} ms"
    details = []
    if close is not None:
        details.append(f"close {close.code} {close.reason}")
    if result is not None and result.error:
        details.append(result.error)
    suffix = f"  ({'; '.join(details)})" if details else ""
    access_log.log(
        _level(result),
        "%-10s %-12s %s %3s %s%s",
        kind,
        route,
        connection_id,
        shown,
        duration,
        suffix,
    )


def _log_invoke(
    name: str,
    invocation_type: str,
    status: int,
    result: workers.Result | None,
    refusal: str | None = None,
) -> None:
    """One line per Lambda invocation: function, invocation type, status, duration."""
    duration = "not run" if result is None else f"{result.duration_ms:6.0f} ms"
    detail = refusal or (result.error if result is not None else None)
    suffix = f"  ({detail})" if detail else ""
    access_log.log(
        _level(result),
        "%-10s %-12s %-15s %3s %s%s",
        "INVOKE",
        name,
        invocation_type,
        status,
        duration,
        suffix,
    )


def _level(result: workers.Result | None) -> int:
    """A failed handler is a warning, so that `--quiet` still shows it."""
    return logging.WARNING if result is not None and not result.ok else logging.INFO
