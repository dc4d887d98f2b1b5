"""A stand-in for API Gateway's @connections API, observed at the boto3 level.

Handler tests run the real `app.websocket_api` (Chalice's boto3 client); this
fake answers its calls through botocore's `before-call` event, so every frame
the app posts goes through botocore's serialisation and error handling, and a
`GoneException` is raised by botocore itself from a 410 response.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from botocore.awsrequest import AWSResponse


class FakeConnections:
    def __init__(self) -> None:
        self.frames: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.calls: list[tuple[str, str]] = []
        self.gone: set[str] = set()
        self.failing: set[str] = set()
        # Called with a post's connection id and frame before it is delivered (a test
        # holding one up, to let another handler run meanwhile).
        self.before_post: Callable[[str, dict[str, Any]], None] | None = None
        self._lock = threading.Lock()

    def install(self, session: Any) -> None:
        session.events.register("before-call.apigatewaymanagementapi", self._answer)

    def take(self, connection_id: str) -> list[dict[str, Any]]:
        """The frames posted to a connection since the last take, oldest first."""
        with self._lock:
            return self.frames.pop(connection_id, [])

    def _answer(self, model: Any, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        connection_id = unquote(params["url_path"].rsplit("/", 1)[1])
        if self.before_post is not None and model.name == "PostToConnection":
            self.before_post(connection_id, json.loads(params["body"]))
        with self._lock:
            self.calls.append((model.name, connection_id))
            if connection_id in self.gone:
                return _error(410, "GoneException")
            if connection_id in self.failing:
                return _error(500, "InternalServerErrorException")
            if model.name == "PostToConnection":
                body = params["body"]
                self.frames[connection_id].append(json.loads(body))
        return AWSResponse(params["url"], 200, {}, None), {
            "ResponseMetadata": {"HTTPStatusCode": 200}
        }


def _error(status: int, code: str) -> tuple[Any, dict[str, Any]]:
    parsed = {
        "Error": {"Code": code, "Message": code},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return AWSResponse("https://fake", status, {}, None), parsed


class FakeLambdaInvoke:
    """Records asynchronous Invoke calls of a boto3 Lambda client, or refuses them.

    Tests then run the recorded payloads through the real function handler,
    as Lambda would, in any order they like.
    """

    def __init__(self) -> None:
        self.payloads: list[tuple[str, dict[str, Any]]] = []
        self.refuse = False

    def install(self, client: Any) -> None:
        client.meta.events.register_first("before-call.lambda.Invoke", self._answer)

    def uninstall(self, client: Any) -> None:
        client.meta.events.unregister("before-call.lambda.Invoke", self._answer)

    def _answer(self, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        if self.refuse:
            return _error(429, "TooManyRequestsException")
        function = unquote(params["url_path"].split("/")[3])
        self.payloads.append((function, json.loads(params["body"])))
        return AWSResponse(params["url"], 202, {}, None), {
            "StatusCode": 202,
            "ResponseMetadata": {"HTTPStatusCode": 202},
        }
