"""Test set-up: fake AWS credentials, no network beyond loopback, moto's DynamoDB."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Before anything creates a boto3 client: fake credentials, a fixed region and
# no endpoint or profile from the developer's environment.
for _name in list(os.environ):
    if _name.startswith("AWS_"):
        del os.environ[_name]
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
    AWS_CONFIG_FILE=os.devnull,
    AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    AWS_EC2_METADATA_DISABLED="true",
    # Gateways started by the tests inherit it; their handlers must not see it (as on Lambda).
    ONLY_IN_THE_SHELL="set in the environment of the tests",
)

from localgateway.awslambda import netguard  # noqa: E402

netguard.install()

import json  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from typing import Any  # noqa: E402

import boto3  # noqa: E402
import pytest  # noqa: E402
from chalice.test import Client  # noqa: E402
from moto import mock_aws  # noqa: E402

from localgateway.apigateway import events  # noqa: E402
from localgateway.aws import tables  # noqa: E402
from localgateway.testing.gateway import RunningGateway, start_gateway  # noqa: E402
from tests.fakes import FakeConnections  # noqa: E402

# The plugin an installed package loads through its pytest11 entry point; this
# checkout loads it here, so `make test` needs nothing installed.
pytest_plugins = ["localgateway.testing.plugin", "pytester"]
__all__ = ["RunningGateway", "start_gateway"]

API = events.Api(
    api_id="abcdef1234",
    stage="api",
    domain_name="abcdef1234.execute-api.us-east-1.amazonaws.com",
)


def dev_table_name() -> str:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return config["stages"]["dev"]["environment_variables"]["TABLE_NAME"]


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    """moto's DynamoDB with the chat table created from .chalice/resources.json."""
    with mock_aws():
        client = boto3.client("dynamodb")
        template = tables.load_template(ROOT / ".chalice" / "resources.json")
        (properties,) = tables.table_definitions(template).values()
        tables.ensure_table(client, properties, dev_table_name())
        yield client


@pytest.fixture
def connections() -> Iterator[FakeConnections]:
    """The fake @connections API, wired into the app's own websocket session."""
    from app import app
    from chalicelib import service

    fake = FakeConnections()
    session = service.websocket_session()
    fake.install(session)
    original = app.websocket_api.session
    app.websocket_api.session = session
    app.websocket_api._client = None  # Chalice caches its client: drop it to use the new session
    yield fake
    app.websocket_api.session = original
    app.websocket_api._client = None


class ChatHarness:
    """Drives the app's three handlers with AWS-shaped events, like API Gateway would."""

    def __init__(self, client: Client, connections: FakeConnections) -> None:
        self.client = client
        self.connections = connections
        self.callers: dict[str, events.Caller] = {}

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def connect(
        self,
        query: dict[str, str] | None = None,
        expect: int = 200,
        opened: bool = True,
        ip: str = "203.0.113.9",
        headers: dict[str, str] | None = None,
    ) -> str:
        """$connect; then, `opened`, a first frame (a ping, its pong dropped), as a client
        that has opened and spoken does: it confirms the connection (store/connections.py)."""
        caller = events.Caller(events.new_id(), self.now_ms(), ip, "pytest")
        event = events.connect_event(
            API,
            caller,
            [("Host", API.domain_name), ("Sec-WebSocket-Version", "13"), *(headers or {}).items()],
            list((query or {}).items()),
            self.now_ms(),
        )
        response = self.client.lambda_.invoke("connect", event).payload
        assert response["statusCode"] == expect, response
        self.callers[caller.connection_id] = caller
        if expect == 200 and opened:
            self.send(caller.connection_id, {"action": "ping"})
            with self.connections._lock:
                frames = self.connections.frames[caller.connection_id]
                frames.remove({"type": "pong"})
        return caller.connection_id

    def refusal(self, query: dict[str, str] | None = None, **options: Any) -> dict[str, Any]:
        """A $connect that must fail: its status and the JSON body that says why."""
        caller = events.Caller(events.new_id(), self.now_ms(), options.get("ip", "203.0.113.9"))
        event = events.connect_event(
            API,
            caller,
            [("Host", API.domain_name), *options.get("headers", {}).items()],
            list((query or {}).items()),
            self.now_ms(),
        )
        response = self.client.lambda_.invoke("connect", event).payload
        return {"status": response["statusCode"], **json.loads(response["body"])}

    def send(self, connection_id: str, body: str | dict[str, Any]) -> Any:
        text = body if isinstance(body, str) else json.dumps(body)
        caller = self.callers[connection_id]
        event = events.message_event(API, caller, text, self.now_ms())
        return self.client.lambda_.invoke("message", event).payload

    def disconnect(self, connection_id: str, code: int = 1000) -> Any:
        caller = self.callers[connection_id]
        event = events.disconnect_event(API, caller, code, "Client-side close frame", self.now_ms())
        return self.client.lambda_.invoke("disconnect", event).payload

    def take(self, connection_id: str) -> list[dict[str, Any]]:
        return self.connections.take(connection_id)

    def lose(self, connection_id: str, seconds_ago: int = 60) -> None:
        """The connection went away (API Gateway now answers 410) without a $disconnect.

        It connected `seconds_ago`: a 410 for a connection younger than the
        app's grace period means "not open yet", not "gone".
        """
        self.connections.gone.add(connection_id)
        table = dev_table_name()
        client = boto3.client("dynamodb")
        conn_key = {"pk": {"S": f"CONN#{connection_id}"}, "sk": {"S": "CONNECTION"}}
        item = client.get_item(TableName=table, Key=conn_key)["Item"]
        connected_at = {":t": {"N": str(int(item["connected_at"]["N"]) - seconds_ago * 1000)}}
        room = client.query(
            TableName=table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"ROOM#{item['room']['S']}"}},
        )["Items"]
        held = [  # its membership and its nickname's claim
            {"pk": other["pk"], "sk": other["sk"]}
            for other in room
            if other["sk"]["S"] == f"MEMBER#{connection_id}"
            or other.get("connection", {}).get("S") == connection_id
        ]
        for key in (conn_key, *held):
            client.update_item(
                TableName=table,
                Key=key,
                UpdateExpression="SET connected_at = :t",
                ExpressionAttributeValues=connected_at,
            )

    def drain(self) -> None:
        """Forget every frame posted so far (the presence of a test's set-up, say)."""
        self.connections.frames.clear()

    def take_one(self, connection_id: str, frame_type: str) -> dict[str, Any]:
        frames = [f for f in self.take(connection_id) if f["type"] == frame_type]
        assert len(frames) == 1, frames
        return frames[0]


@pytest.fixture
def chat(dynamodb: Any, connections: FakeConnections) -> Iterator[ChatHarness]:
    from app import app
    from chalicelib import budget

    budget.reset()  # each test is a fresh container as far as DynamoDB's health goes

    with Client(app, stage_name="dev", project_dir=str(ROOT)) as client:
        yield ChatHarness(client, connections)


# The local gateway, run as `python -m localgateway` ------------------------------------

APPS = ROOT / "tests" / "apps"

# Lines for the end of the run's output (figures the suite measures, not asserts).
SUMMARY: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in SUMMARY:
        terminalreporter.write_line(line)


# The requestContext keys of every event, as ../shared/reference/apigw-websocket.md lists them.
CONTEXT_KEYS = {
    "routeKey",
    "eventType",
    "connectionId",
    "domainName",
    "stage",
    "apiId",
    "requestId",
    "extendedRequestId",
    "requestTime",
    "requestTimeEpoch",
    "connectedAt",
    "messageDirection",
    "identity",
}


@pytest.fixture(scope="module")
def probe_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """The second test app, run unchanged, with API Gateway's limits."""
    gateway = start_gateway(
        tmp_path_factory.mktemp("probe"), APPS / "probe", "--no-autoreload", "--warm-workers", "2"
    )
    yield gateway
    gateway.stop()
