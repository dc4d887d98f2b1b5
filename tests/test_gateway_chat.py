"""The chat, end to end: this project under `python -m localgateway`, three real clients.

Everything is real but AWS: the handlers run in the gateway's worker
processes, store in the embedded DynamoDB (the table from
.chalice/resources.json) and send through Chalice's `app.websocket_api` to the
gateway's HTTPS @connections endpoint. docs/protocol.md is the contract.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ROOT, RunningGateway, start_gateway


@pytest.fixture(scope="module")
def chat_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    gateway = start_gateway(tmp_path_factory.mktemp("chat"), ROOT, "--no-autoreload")
    yield gateway
    gateway.stop()


def expect(ws: Any, frame_type: str, **fields: Any) -> dict[str, Any]:
    """The next frame, which must be of `frame_type` and hold `fields`."""
    frame = json.loads(ws.recv(timeout=15))
    assert frame["type"] == frame_type, frame
    assert {key: frame.get(key) for key in fields} == fields, frame
    return frame


def send(ws: Any, action: str, **fields: Any) -> None:
    ws.send(json.dumps({"action": action, **fields}))


def test_join_nick_message_presence_and_history_with_three_clients(
    chat_gateway: RunningGateway,
) -> None:
    with chat_gateway.connect("?nick=alice") as alice, chat_gateway.connect("?nick=bob") as bob:
        send(alice, "join", room="lobby")  # a first frame, as the page sends
        # bob is connected but has not spoken: not listed, not announced yet.
        expect(alice, "joined", room="lobby", nick="alice", members=["alice"], history=[])
        # A pending member already receives the room's frames: alice's announcement.
        expect(bob, "presence", event="join", nick="alice", count=1, room="lobby")
        send(bob, "join", room="lobby")
        expect(alice, "presence", event="join", nick="bob", count=2, room="lobby")
        expect(bob, "joined", room="lobby", nick="bob", members=["alice", "bob"], history=[])

        send(bob, "sendmessage", data="hello, everyone")
        heard = expect(alice, "message", room="lobby", text="hello, everyone")
        said = expect(bob, "message", **{"from": "bob"})
        assert heard["id"] == said["id"]

        bob.send("/nick robert")
        for ws in (alice, bob):
            expect(ws, "presence", event="nick", nick="robert", previous="bob", count=2)

        with chat_gateway.connect("?nick=carol&room=dev") as carol:
            send(carol, "join", room="lobby")
            joined = expect(carol, "joined", room="lobby", members=["alice", "carol", "robert"])
            assert [(m["from"], m["text"]) for m in joined["history"]] == [
                ("bob", "hello, everyone")
            ]
            for ws in (alice, bob):
                expect(ws, "presence", event="join", nick="carol", count=3)

            send(carol, "history", limit=5)
            history = expect(carol, "history", room="lobby", more=False)
            assert [m["id"] for m in history["messages"]] == [heard["id"]]
            send(carol, "who")
            expect(carol, "members", members=["alice", "carol", "robert"], count=3)
            send(carol, "rooms")
            # `join` adds a room (issue 17): carol is in dev still, and in the lobby.
            expect(
                carol,
                "rooms",
                rooms=[{"name": "lobby", "members": 3}, {"name": "dev", "members": 1}],
            )

        for ws in (alice, bob):  # carol's $disconnect
            expect(ws, "presence", event="leave", nick="carol", count=2)
        send(alice, "ping")
        expect(alice, "pong")


def test_bad_frames_get_error_frames_and_bad_urls_are_refused(
    chat_gateway: RunningGateway,
) -> None:
    from websockets.exceptions import InvalidStatus

    with chat_gateway.connect("?nick=dora&room=errors") as dora:
        send(dora, "dance")
        expect(dora, "error", code="unknown_action")
        dora.send("/join no spaces allowed")
        expect(dora, "error", code="invalid_room")
    with pytest.raises(InvalidStatus) as info:
        chat_gateway.connect("?room=" + "x" * 65)
    assert info.value.response.status_code == 400


def test_the_chat_table_is_the_merge_templates(chat_gateway: RunningGateway) -> None:
    assert chat_gateway.endpoints["tables"] == {"ChatTable": "chalice-chat-dev-ChatTable"}
    assert chat_gateway.endpoints["websocket"].endswith(":" + _port(chat_gateway) + "/api")


def _port(gateway: RunningGateway) -> str:
    return gateway.endpoints["http"].rstrip("/").rsplit(":", 1)[1]
