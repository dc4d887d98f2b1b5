"""The websocket event read once at the edge (chalicelib/chat/events.py), without sockets.

Events are built the way API Gateway shapes them (localgateway/apigateway/events.py),
then bent the ways a hand-built or odd event may be.
"""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import pytest
from chalice.app import WebsocketEvent

from chalicelib.chat.events import SocketEvent, from_chalice, parse
from localgateway.apigateway import events

API = events.Api("abcdef1234", "api", "abcdef1234.execute-api.us-east-1.amazonaws.com")
CALLER = events.Caller("L0SM9cOFvHcCIhw=", 1_800_000_000_000, "198.51.100.7", "wscat")
NOW_MS = 1_800_000_000_500


def connect_event(headers: list[tuple[str, str]], query: list[tuple[str, str]]) -> dict[str, Any]:
    return events.connect_event(API, CALLER, headers, query, NOW_MS)


def test_a_connect_event_gives_its_origin_query_and_address() -> None:
    raw = connect_event(
        [("Host", API.domain_name), ("Origin", "http://localhost:8000")],
        [("nick", "ada"), ("room", "quiet"), ("token", "abc.def.ghi")],
    )
    assert parse(raw) == SocketEvent(
        connection_id=CALLER.connection_id,
        route_key="$connect",
        event_type="CONNECT",
        domain_name=API.domain_name,
        stage="api",
        source_ip="198.51.100.7",
        request_time_ms=NOW_MS,
        body=None,
        origin="http://localhost:8000",
        nick="ada",
        room="quiet",
        token="abc.def.ghi",
    )


def test_header_names_are_matched_whatever_their_case() -> None:
    raw = connect_event([("ORIGIN", "null")], [])
    assert parse(raw).origin == "null"


def test_missing_headers_and_query_read_as_absent_not_as_empty() -> None:
    raw = connect_event([], [])
    del raw["headers"], raw["multiValueHeaders"]
    event = parse(raw)
    assert (event.origin, event.nick, event.room, event.token) == (None, None, None, None)


def test_an_empty_query_value_is_present() -> None:
    """`?nick=` chooses an empty nickname (refused as invalid), unlike no `nick` at all."""
    event = parse(connect_event([], [("nick", ""), ("token", "")]))
    assert (event.nick, event.token, event.room) == ("", "", None)


def test_null_parts_read_as_absent() -> None:
    raw = connect_event([], [])
    raw.update(headers=None, queryStringParameters=None)
    raw["requestContext"]["identity"] = None
    event = parse(raw)
    assert (event.origin, event.nick, event.source_ip) == (None, None, "")


def test_a_message_without_a_body_has_none_where_chalice_says_the_string_none() -> None:
    raw = events.message_event(API, CALLER, "hi", NOW_MS)
    del raw["body"]
    assert WebsocketEvent(raw, None).body == "None"
    event = from_chalice(WebsocketEvent(raw, None))
    assert event.body is None
    assert (event.event_type, event.route_key) == ("MESSAGE", "$default")


def test_a_binary_frame_arrives_as_its_base64_text() -> None:
    """Chalice's integration converts binary to text; the chat sees that text."""
    text = base64.b64encode(bytes(range(256))).decode("ascii")
    assert parse(events.message_event(API, CALLER, text, NOW_MS)).body == text


@pytest.mark.parametrize("body", [b"\x00\xff", 42, ["a"], {"action": "ping"}])
def test_a_body_that_is_not_text_reads_as_none(body: object) -> None:
    raw = events.message_event(API, CALLER, "", NOW_MS)
    raw["body"] = body
    assert parse(raw).body is None


def test_a_huge_body_is_kept_whole() -> None:
    text = "x" * (1024 * 1024)
    assert parse(events.message_event(API, CALLER, text, NOW_MS)).body == text


def test_a_disconnect_event_names_its_connection_and_api() -> None:
    event = parse(events.disconnect_event(API, CALLER, 1001, "Going away", NOW_MS))
    assert (event.connection_id, event.event_type, event.route_key) == (
        CALLER.connection_id,
        "DISCONNECT",
        "$disconnect",
    )
    assert (event.domain_name, event.stage, event.source_ip) == (
        API.domain_name,
        "api",
        "198.51.100.7",
    )


@pytest.mark.parametrize("epoch", ["1800000000500", True, None, 1.5])
def test_a_request_time_that_is_not_whole_milliseconds_reads_as_absent(epoch: object) -> None:
    raw = events.message_event(API, CALLER, "hi", NOW_MS)
    raw["requestContext"]["requestTimeEpoch"] = epoch
    assert parse(raw).request_time_ms is None


def test_an_event_without_a_request_context_has_empty_names() -> None:
    event = parse({"body": "hi"})
    assert (event.connection_id, event.domain_name, event.stage, event.body) == ("", "", "", "hi")


def test_the_event_cannot_be_changed_below_the_edge() -> None:
    event = parse(events.message_event(API, CALLER, "hi", NOW_MS))
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.body = "changed"  # type: ignore[misc]
