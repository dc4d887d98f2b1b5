"""The in-process websocket test client (`localgateway.testing.inprocess`) on real apps.

`tests/apps/relay` shows the contract (refusals, echo, relaying to another
connection, WebsocketDisconnectedError for a closed one, a failing handler);
`tests/apps/tutorial` (the Chalice tutorial's layout) runs against moto's
DynamoDB. A hundred connect/send/receive tests are timed in the suite's output.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from localgateway.testing.inprocess import ConnectRefused, WebsocketTestClient
from tests.conftest import APPS, SUMMARY


def load_app(name: str) -> ModuleType:
    """An app module of tests/apps, under its own name (they are all `app.py`)."""
    spec = importlib.util.spec_from_file_location(f"inprocess_{name}", APPS / name / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


relay = load_app("relay")


@pytest.fixture
def client() -> Iterator[WebsocketTestClient]:
    with WebsocketTestClient(relay.app) as client:
        yield client


def test_connect_refused_without_a_nick_with_the_handlers_status(
    client: WebsocketTestClient,
) -> None:
    with pytest.raises(ConnectRefused) as refused:
        client.connect()
    assert refused.value.status == 403
    assert client.connections == {}


def test_send_to_another_connection_reaches_it_and_only_it(client: WebsocketTestClient) -> None:
    alice = client.connect(query={"nick": "alice"})
    bob = client.connect(query={"nick": "bob"})
    carol = client.connect(query={"nick": "carol"})
    alice.send(f"to {bob.connection_id}: hi bob")
    assert bob.receive() == "alice: hi bob"
    assert (list(alice.frames), list(bob.frames), list(carol.frames)) == ([], [], [])


def test_send_to_a_closed_connection_raises_websocket_disconnected(
    client: WebsocketTestClient,
) -> None:
    alice = client.connect(query={"nick": "alice"})
    bob = client.connect(query={"nick": "bob"})
    bob.disconnect()
    assert bob.connection_id not in relay.nicks  # $disconnect ran
    alice.send(f"to {bob.connection_id}: still there?")
    assert alice.receive() == f"{bob.connection_id} has gone"
    assert list(bob.frames) == []


def test_a_failing_handler_answers_api_gateways_error_frame(client: WebsocketTestClient) -> None:
    alice = client.connect(query={"nick": "alice"})
    alice.send("boom")
    frame = alice.receive_json()
    assert frame["message"] == "Internal server error"
    assert frame["connectionId"] == alice.connection_id
    alice.send("still here")
    assert alice.receive() == "echo still here"


def test_receive_without_a_frame_says_what_was_expected(client: WebsocketTestClient) -> None:
    alice = client.connect(query={"nick": "alice"})
    with pytest.raises(
        AssertionError, match=f"expected a frame for connection {alice.connection_id}"
    ):
        alice.receive()


def test_leaving_the_block_disconnects_everyone_and_restores_the_app() -> None:
    before = relay.app.websocket_api._client
    with WebsocketTestClient(relay.app) as client:
        client.connect(query={"nick": "alice"})
        assert len(relay.nicks) == 1
    assert relay.nicks == {}
    assert relay.app.websocket_api._client is before


def test_the_tutorial_app_stores_in_moto_dynamodb(monkeypatch: pytest.MonkeyPatch) -> None:
    with mock_aws():
        boto3.client("dynamodb").create_table(
            TableName="tutorial-table",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "PK", "AttributeType": "S"},
                {"AttributeName": "SK", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "PK", "KeyType": "HASH"},
                {"AttributeName": "SK", "KeyType": "RANGE"},
            ],
        )
        monkeypatch.setitem(os.environ, "TABLE", "tutorial-table")
        tutorial = load_app("tutorial")
        with WebsocketTestClient(tutorial.app) as client:
            first, second = client.connect(), client.connect()
            first.send("one")
            first.send("two")
            second.send("three")
            assert [first.receive(), first.receive(), second.receive()] == [
                "stored 1",
                "stored 2",
                "stored 1",
            ]


# A hundred connect/send/receive tests, timed -------------------------------------------

_timing: dict[str, Any] = {"count": 0, "seconds": 0.0}


@pytest.fixture(scope="module")
def hundred() -> Iterator[dict[str, Any]]:
    yield _timing
    SUMMARY.append(
        f"in-process websocket client: {_timing['count']} connect/send/receive tests, "
        f"{_timing['seconds']:.2f} s in the tests, "
        f"{_timing['last'] - _timing['first']:.2f} s from the first's start to the last's end"
    )


@pytest.mark.parametrize("n", range(100))
def test_connect_send_receive(n: int, hundred: dict[str, Any]) -> None:
    started = time.perf_counter()
    hundred.setdefault("first", started)
    with WebsocketTestClient(relay.app) as client:
        alice = client.connect(query={"nick": f"alice{n}"})
        bob = client.connect(query={"nick": f"bob{n}"})
        alice.send(f"hello {n}")
        alice.send(f"to {bob.connection_id}: {n}")
        assert (alice.receive(), bob.receive()) == (f"echo hello {n}", f"alice{n}: {n}")
        bob.disconnect()
    hundred["seconds"] += time.perf_counter() - started
    hundred["count"] += 1
    hundred["last"] = time.perf_counter()
