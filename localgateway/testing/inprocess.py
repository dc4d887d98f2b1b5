"""An in-process websocket test client for Chalice apps: what `chalice.test.Client` lacks.

No processes, no sockets: `connect`, `send` and `disconnect` call the app's
own `$connect`, `$default` and `$disconnect` handlers with the events API
Gateway would send (`apigateway.events`), and the app's `app.websocket_api`
talks to a real botocore @connections client whose requests are answered
here, before they leave the process. So a handler's `send` to another test
connection lands in that connection's frames, and a send to a closed one gets
a 410 from which botocore raises `GoneException` and Chalice
`WebsocketDisconnectedError`, as on AWS.

    with WebsocketTestClient(app) as client:
        alice = client.connect(query={"nick": "alice"})
        alice.send('{"action": "join"}')
        assert alice.receive() == ...

Handlers run one at a time, in the calling thread.
"""

from __future__ import annotations

import collections
import json
import time
import traceback
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

import boto3
from botocore.awsrequest import AWSResponse

from localgateway.apigateway import events, routing

API = events.Api(
    api_id="testclient",
    stage="api",
    domain_name="testclient.execute-api.us-east-1.amazonaws.com",
)
_REFUSAL_STATUS = 500  # what API Gateway answers when $connect raises


class ConnectRefused(Exception):
    """$connect did not answer 2xx: the client's upgrade fails with this status."""

    def __init__(self, status: int, response: Mapping[str, Any]) -> None:
        super().__init__(f"$connect refused the connection with status {status}: {response}")
        self.status = status
        self.response = response


class TestConnection:
    """One client's websocket: what it sends goes to the app, what the app posts waits here."""

    __test__ = False  # not a pytest test class

    def __init__(self, client: WebsocketTestClient, caller: events.Caller) -> None:
        self.client = client
        self.caller = caller
        self.frames: collections.deque[str] = collections.deque()
        self.open = True

    @property
    def connection_id(self) -> str:
        return self.caller.connection_id

    def send(self, body: str | Mapping[str, Any]) -> None:
        """A text frame (a mapping is sent as JSON), routed as API Gateway routes it."""
        if not self.open:
            raise RuntimeError(f"connection {self.connection_id} is closed")
        text = body if isinstance(body, str) else json.dumps(body)
        self.client._message(self, text)

    def receive(self) -> str:
        """The oldest frame the app sent to this connection; fails saying none came."""
        if not self.frames:
            raise AssertionError(
                f"expected a frame for connection {self.connection_id}; the app sent none"
            )
        return self.frames.popleft()

    def receive_json(self) -> Any:
        return json.loads(self.receive())

    def disconnect(self, status_code: int = 1000, reason: str = "Client-side close frame") -> None:
        """Close from the client side: the connection is gone, then $disconnect runs."""
        if self.open:
            self.open = False
            self.client._disconnect(self, status_code, reason)


class WebsocketTestClient:
    """Drives a Chalice app's websocket handlers in this process; use it in a `with` block."""

    __test__ = False

    def __init__(self, app: Any, api: events.Api = API, source_ip: str = "203.0.113.9") -> None:
        self.app = app
        self.api = api
        self.source_ip = source_ip
        self.connections: dict[str, TestConnection] = {}
        self._saved: tuple[Any, Any, Any] | None = None

    def __enter__(self) -> WebsocketTestClient:
        ws = self.app.websocket_api
        self._saved = (ws.session, ws._client, ws._endpoint)
        ws.session = ws.session or _session()
        ws._client = _management_client(self)
        ws._endpoint = f"https://{self.api.domain_name}/{self.api.stage}"
        return self

    def __exit__(self, *_: object) -> None:
        for connection in list(self.connections.values()):
            connection.disconnect(1001, "Going away")
        ws = self.app.websocket_api
        assert self._saved is not None
        ws.session, ws._client, ws._endpoint = self._saved

    def connect(
        self,
        query: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> TestConnection:
        """Open a connection: $connect runs (if the app has one); ConnectRefused unless 2xx."""
        caller = events.Caller(events.new_id(), _now_ms(), self.source_ip, "testclient")
        pairs = list(query.items()) if isinstance(query, Mapping) else list(query)
        header_pairs = [("Host", self.api.domain_name), ("Sec-WebSocket-Version", "13")]
        header_pairs += list((headers or {}).items())
        event = events.connect_event(self.api, caller, header_pairs, pairs, _now_ms())
        handler = self._handler(routing.CONNECT)
        if handler is not None:
            try:
                response = handler(event, {})
            except Exception:
                traceback.print_exc()
                raise ConnectRefused(_REFUSAL_STATUS, {}) from None
            status = int(response.get("statusCode", 200))
            if not 200 <= status < 300:
                raise ConnectRefused(status, response)
        connection = TestConnection(self, caller)
        self.connections[caller.connection_id] = connection
        return connection

    def _message(self, connection: TestConnection, text: str) -> None:
        route = routing.select_route(
            text,
            list(self.app.websocket_handlers),
            routing.parse_expression("$request.body.action"),
        )
        handler = self._handler(route) if route is not None else None
        request_id = events.new_id()
        if handler is None:
            connection.frames.append(
                routing.error_frame(routing.FORBIDDEN, connection.connection_id, request_id)
            )
            return
        event = events.message_event(self.api, connection.caller, text, _now_ms(), route)
        try:
            handler(event, {})
        except Exception:
            traceback.print_exc()  # pytest shows it with the failing test, as Lambda logs it
            connection.frames.append(
                routing.error_frame(
                    routing.INTERNAL_SERVER_ERROR, connection.connection_id, request_id
                )
            )

    def _disconnect(self, connection: TestConnection, status_code: int, reason: str) -> None:
        self.connections.pop(connection.connection_id, None)
        handler = self._handler(routing.DISCONNECT)
        if handler is not None:
            event = events.disconnect_event(
                self.api, connection.caller, status_code, reason, _now_ms()
            )
            handler(event, {})

    def _handler(self, route_key: str) -> Any:
        config = self.app.websocket_handlers.get(route_key)
        return None if config is None else self.app.handler_map[config.name]

    def _answer(self, operation: str, connection_id: str, body: bytes) -> tuple[int, Any]:
        """The @connections API's answer to one call: (status, parsed response)."""
        connection = self.connections.get(connection_id)
        if connection is None or not connection.open:
            return 410, _error("GoneException", 410)
        if operation == "PostToConnection":
            connection.frames.append(body.decode() if isinstance(body, bytes) else body)
            return 200, {}
        if operation == "DeleteConnection":
            connection.disconnect(1000, "")
            return 204, {}
        return 200, {
            "ConnectedAt": connection.caller.connected_at / 1000,
            "Identity": {"SourceIp": connection.caller.source_ip, "UserAgent": "testclient"},
        }


_SESSION: Any = None
_CLIENT: Any = None
_ACTIVE: list[WebsocketTestClient] = []


def _session() -> Any:
    global _SESSION
    if _SESSION is None:
        _SESSION = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
    return _SESSION


def _management_client(owner: WebsocketTestClient) -> Any:
    """One real botocore client per process (making one takes tens of ms), answering for
    the test client that installed it last."""
    global _CLIENT
    if _CLIENT is None:
        _CLIENT = _session().client(
            "apigatewaymanagementapi", endpoint_url=f"https://{API.domain_name}/{API.stage}"
        )
        _CLIENT.meta.events.register("before-call.apigatewaymanagementapi", _before_call)
    _ACTIVE[:] = [owner]
    return _CLIENT


def _before_call(model: Any, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
    connection_id = unquote(params["url_path"].rsplit("/", 1)[1])
    status, parsed = _ACTIVE[0]._answer(model.name, connection_id, params.get("body") or b"")
    parsed.setdefault("ResponseMetadata", {})["HTTPStatusCode"] = status
    return AWSResponse(params["url"], status, {}, None), parsed


def _error(code: str, status: int) -> dict[str, Any]:
    return {
        "Error": {"Code": code, "Message": code},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }


def _now_ms() -> int:
    return int(time.time() * 1000)
