"""The chat, end to end: this project under `python -m localgateway`, three real clients.

Everything is real but AWS: the handlers run in the gateway's worker
processes, store in the embedded DynamoDB (the table from
.chalice/resources.json) and send through Chalice's `app.websocket_api` to the
gateway's HTTPS @connections endpoint. docs/protocol.md is the contract.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from localgateway.testing.frames import wait_for_frame
from tests.conftest import RunningGateway


def send(ws: Any, action: str, **fields: Any) -> None:
    ws.send(json.dumps({"action": action, **fields}))


def test_join_nick_message_presence_and_history_with_three_clients(
    chalice_gateway: RunningGateway,
) -> None:
    with (
        chalice_gateway.connect("?nick=alice") as alice,
        chalice_gateway.connect("?nick=bob") as bob,
    ):
        send(alice, "join", room="lobby")  # a first frame, as the page sends
        # bob is connected but has not spoken: not listed, not announced yet.
        wait_for_frame(alice, "joined", room="lobby", nick="alice", members=["alice"], history=[])
        # A pending member already receives the room's frames: alice's announcement.
        wait_for_frame(bob, "presence", event="join", nick="alice", count=1, room="lobby")
        send(bob, "join", room="lobby")
        wait_for_frame(alice, "presence", event="join", nick="bob", count=2, room="lobby")
        wait_for_frame(
            bob, "joined", room="lobby", nick="bob", members=["alice", "bob"], history=[]
        )

        send(bob, "sendmessage", data="hello, everyone")
        heard = wait_for_frame(alice, "message", room="lobby", text="hello, everyone")
        said = wait_for_frame(bob, "message", **{"from": "bob"})
        assert heard["id"] == said["id"]

        bob.send("/nick robert")
        for ws in (alice, bob):
            wait_for_frame(ws, "presence", event="nick", nick="robert", previous="bob", count=2)

        with chalice_gateway.connect("?nick=carol&room=dev") as carol:
            send(carol, "join", room="lobby")
            joined = wait_for_frame(
                carol, "joined", room="lobby", members=["alice", "carol", "robert"]
            )
            assert [(m["from"], m["text"]) for m in joined["history"]] == [
                ("bob", "hello, everyone")
            ]
            for ws in (alice, bob):
                wait_for_frame(ws, "presence", event="join", nick="carol", count=3)

            send(carol, "history", limit=5)
            history = wait_for_frame(carol, "history", room="lobby", more=False)
            assert [m["id"] for m in history["messages"]] == [heard["id"]]
            send(carol, "who")
            wait_for_frame(carol, "members", members=["alice", "carol", "robert"], count=3)
            send(carol, "rooms")
            # `join` adds a room (issue 17): carol is in dev still, and in the lobby.
            wait_for_frame(
                carol,
                "rooms",
                rooms=[{"name": "lobby", "members": 3}, {"name": "dev", "members": 1}],
            )

        for ws in (alice, bob):  # carol's $disconnect
            wait_for_frame(ws, "presence", event="leave", nick="carol", count=2)
        send(alice, "ping")
        wait_for_frame(alice, "pong")


def test_bad_frames_get_error_frames_and_bad_urls_are_refused(
    chalice_gateway: RunningGateway,
) -> None:
    from websockets.exceptions import InvalidStatus

    with chalice_gateway.connect("?nick=dora&room=errors") as dora:
        send(dora, "dance")
        wait_for_frame(dora, "error", code="unknown_action")
        dora.send("/join no spaces allowed")
        wait_for_frame(dora, "error", code="invalid_room")
    with pytest.raises(InvalidStatus) as info:
        chalice_gateway.connect("?room=" + "x" * 65)
    assert info.value.response.status_code == 400


def test_the_chat_table_is_the_merge_templates(chalice_gateway: RunningGateway) -> None:
    assert chalice_gateway.endpoints["tables"] == {"ChatTable": "chalice-chat-dev-ChatTable"}
    assert chalice_gateway.endpoints["websocket"].endswith(":" + _port(chalice_gateway) + "/api")


def _port(gateway: RunningGateway) -> str:
    return gateway.endpoints["http"].rstrip("/").rsplit(":", 1)[1]
