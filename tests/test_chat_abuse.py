"""The chat against abusers and faults, through its handlers (moto's DynamoDB, the fake
@connections API): rate limits and quotas, unique nicknames, clean text, no ghosts,
departures in O(n), allowed origins, and honest answers when DynamoDB fails.

The same behaviour through the local gateway with real clients, DynamoDB paused
included, is in tests/test_gateway_faults.py.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from typing import Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError

from chalicelib import budget, ids
from chalicelib.settings import DEFAULT_ALLOWED_ORIGINS, Settings
from tests.conftest import ChatHarness, dev_table_name


def message(chat: ChatHarness, sender: str, text: str, **fields: Any) -> None:
    chat.send(sender, {"action": "sendmessage", "data": text, **fields})


def frames_of(chat: ChatHarness, connection_id: str, kind: str) -> list[dict[str, Any]]:
    return [f for f in chat.take(connection_id) if f["type"] == kind]


def items(dynamodb: Any, prefix: str) -> list[dict[str, Any]]:
    """Every item whose pk starts with `prefix` (a scan: the test's view, not the chat's)."""
    pages = dynamodb.get_paginator("scan").paginate(TableName=dev_table_name())
    return [i for page in pages for i in page["Items"] if i["pk"]["S"].startswith(prefix)]


# Rate limits and quotas -----------------------------------------------------------------


def test_a_flood_is_cut_to_burst_and_rate_and_others_see_only_what_was_accepted(
    chat: ChatHarness, dynamodb: Any
) -> None:
    flooder, reader, other = chat.connect(), chat.connect(), chat.connect()
    chat.drain()
    settings = Settings(table_name="t")
    started = time.monotonic()
    for n in range(100):
        message(chat, flooder, f"flood {n}")
        if n % 25 == 0:
            chat.send(other, {"action": "ping"})
    elapsed = time.monotonic() - started
    answers = chat.take(flooder)
    accepted = [f["text"] for f in answers if f["type"] == "message"]
    refused = [f for f in answers if f["type"] == "error"]
    assert len(accepted) + len(refused) == 100
    assert (
        settings.rate_burst
        <= len(accepted)
        <= settings.rate_burst + (elapsed * settings.rate_per_second + 1)
    )
    assert {f["code"] for f in refused} == {"rate_limited"}
    assert all(0 < f["retry_after_ms"] <= 1000 // settings.rate_per_second for f in refused)
    # The reader got exactly the accepted ones, in order; the other client's pings were
    # answered (its own limit is untouched).
    assert [f["text"] for f in frames_of(chat, reader, "message")] == accepted
    assert [f["type"] for f in chat.take(other) if f["type"] != "message"] == ["pong"] * 4
    stored = [i["text"]["S"] for i in items(dynamodb, "HIST#lobby")]
    assert sorted(stored) == sorted(accepted)


def test_the_limit_refills_at_its_rate(chat: ChatHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_PER_SECOND", "1")
    monkeypatch.setenv("RATE_BURST", "2")
    alice = chat.connect()  # its first frame (a ping) took one of the two
    chat.drain()
    message(chat, alice, "one")
    message(chat, alice, "two")
    codes = [f.get("code") for f in chat.take(alice)]
    assert codes == [None, "rate_limited"]
    time.sleep(1.2)  # a token's worth at 1 a second
    message(chat, alice, "three")
    assert [f.get("text") for f in chat.take(alice)] == ["three"]


def test_frames_handled_at_once_within_the_limit_are_never_refused(dynamodb: Any) -> None:
    """A client's frames run in parallel Lambdas (or gateway workers): before each of this
    frame's token requests, another frame of the same connection takes a token. Within
    the burst every one is admitted; the burst counts them all; past it, refused."""
    from chalicelib import limits
    from chalicelib.store import Store
    from chalicelib.store.rates import RateLimited

    settings = Settings(table_name=dev_table_name())
    store = Store(dynamodb, settings)
    rival = Store(boto3.client("dynamodb"), settings)
    store.connections.add("conn1AAAAAAAAAA=", "ada", "lobby", confirmed=True)
    rate = limits.Rate.per_second(1, burst=40)
    rival_takes = 0

    def rival_frame(**_: Any) -> None:
        nonlocal rival_takes
        with contextlib.suppress(RateLimited):
            rival.connections.admit("conn1AAAAAAAAAA=", rate)
            rival_takes += 1

    dynamodb.meta.events.register("before-call.dynamodb.UpdateItem", rival_frame)
    admitted = 0
    with pytest.raises(RateLimited):
        while True:
            assert store.connections.admit("conn1AAAAAAAAAA=", rate) is not None
            admitted += 1
    # Every token of the burst went to one frame or the other, none was refused early.
    assert rate.burst <= admitted + rival_takes <= rate.burst + 2
    assert admitted >= rate.burst // 4


def test_room_changes_are_refused_past_the_quota_and_rooms_is_one_query(
    chat: ChatHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib import service

    monkeypatch.setenv("RATE_PER_SECOND", "10000")
    monkeypatch.setenv("RATE_BURST", "10000")
    hopper = chat.connect()
    chat.drain()
    quota = Settings(table_name="t").joins_per_minute
    for n in range(quota + 15):
        chat.send(hopper, {"action": "join", "room": f"room-{n}"})
    answers = chat.take(hopper)
    joined = [f for f in answers if f["type"] == "joined"]
    refused = [f for f in answers if f["type"] == "error"]
    assert len(joined) == quota and len(refused) == 15
    assert {f["code"] for f in refused} == {"rate_limited"}
    assert all("room changes" in f["message"] for f in refused)
    assert joined[-1]["room"] == f"room-{quota - 1}"

    queries: list[int] = []
    client = service.dynamodb_client()

    def count(parsed: dict[str, Any], **_: Any) -> None:
        queries.append(parsed.get("ScannedCount", 0))

    client.meta.events.register("after-call.dynamodb.Query", count)
    try:
        chat.send(hopper, {"action": "rooms"})
    finally:
        client.meta.events.unregister("after-call.dynamodb.Query", count)
    (rooms,) = frames_of(chat, hopper, "rooms")
    assert len(queries) == 1  # one Query of the room items, not one per room
    # `join` adds a room: the hopper is in the lobby and every room it was let into.
    names = sorted(["lobby", *(f"room-{n}" for n in range(quota))])
    assert rooms["rooms"] == [{"name": name, "members": 1} for name in names]


def test_the_21st_connection_from_one_address_is_refused_until_one_leaves(
    chat: ChatHarness,
) -> None:
    first = [chat.connect(ip="198.51.100.7") for _ in range(20)]
    refusal = chat.refusal(ip="198.51.100.7")
    assert refusal["status"] == 429 and refusal["code"] == "too_many_connections"
    chat.connect(ip="198.51.100.8")  # another address is not affected
    chat.disconnect(first[0])
    chat.connect(ip="198.51.100.7")
    assert chat.refusal(ip="198.51.100.7")["status"] == 429


def test_an_address_is_never_locked_out_past_the_connection_ttl(
    chat: ChatHarness, dynamodb: Any
) -> None:
    for _ in range(20):
        chat.connect(ip="198.51.100.9")  # they vanish: no $disconnect will come
    assert chat.refusal(ip="198.51.100.9")["status"] == 429
    past = {":t": {"N": str(int(time.time()) - 1)}}
    for slot in items(dynamodb, "IP#198.51.100.9"):
        dynamodb.update_item(
            TableName=dev_table_name(),
            Key={"pk": slot["pk"], "sk": slot["sk"]},
            UpdateExpression="SET expires_at = :t",
            ExpressionAttributeValues=past,
        )
    chat.connect(ip="198.51.100.9")


# Nicknames and text ---------------------------------------------------------------------


@pytest.mark.parametrize("clash", ["victim", "Victim", "VICTIM", "v\u0456ctim", "ｖｉｃｔｉｍ"])
def test_look_alike_nicknames_are_taken(chat: ChatHarness, clash: str) -> None:
    victim = chat.connect({"nick": "victim"})
    impostor = chat.connect({"nick": "someone"})
    chat.drain()
    chat.send(impostor, {"action": "nick", "name": clash})
    (error,) = chat.take(impostor)
    assert error["code"] == "nick_taken"
    assert chat.take(victim) == []
    refusal = chat.refusal({"nick": clash})
    assert refusal["status"] == 409 and refusal["code"] == "nick_taken"
    elsewhere = chat.connect({"nick": "roamer", "room": "elsewhere"})
    chat.send(elsewhere, {"action": "nick", "name": clash})
    assert frames_of(chat, elsewhere, "presence")[0]["nick"] == clash  # other rooms: fine
    chat.send(elsewhere, {"action": "join", "room": "lobby"})
    (refused,) = frames_of(chat, elsewhere, "error")
    assert refused["code"] == "nick_taken"
    chat.send(elsewhere, "/who")
    assert frames_of(chat, elsewhere, "members")[0]["room"] == "elsewhere"


@pytest.mark.parametrize("hidden", ["victim\u034f", "\u3164", "vic\u200btim", "\u202evictim"])
def test_nicknames_with_hidden_characters_are_refused_everywhere(
    chat: ChatHarness, hidden: str
) -> None:
    alice = chat.connect()
    chat.drain()
    chat.send(alice, {"action": "nick", "name": hidden})
    assert [f["code"] for f in chat.take(alice)] == ["invalid_nick"]
    refusal = chat.refusal({"nick": hidden})
    assert refusal["status"] == 400 and refusal["code"] == "invalid_nick"


def test_a_freed_nickname_can_be_taken(chat: ChatHarness) -> None:
    first = chat.connect({"nick": "ada"})
    chat.disconnect(first)
    chat.connect({"nick": "ada"})
    assert chat.refusal({"nick": "ADA"})["status"] == 409


def test_a_reconnecting_page_gets_its_name_back_from_its_gone_connection(
    chat: ChatHarness,
) -> None:
    bob = chat.connect({"nick": "bob"})
    old = chat.connect({"nick": "ada"})
    chat.drain()
    chat.lose(old)  # the link dropped; its $disconnect has not run (yet, or ever)
    again = chat.connect({"room": "elsewhere"})
    chat.send(again, {"action": "nick", "name": "ada"})
    chat.send(again, {"action": "join", "room": "lobby"})  # API Gateway: the holder is gone
    assert frames_of(chat, again, "joined")[0]["members"] == ["ada", "bob"]
    assert [(f["event"], f["nick"]) for f in frames_of(chat, bob, "presence")] == [
        ("leave", "ada"),  # the old connection, gone, gave the name up
        ("join", "ada"),
    ]


def nick_holder(room: str, nick: str) -> str | None:
    """The connection holding a nickname's claim in a room, if any."""
    from chalicelib.store.claims import NICK_PREFIX
    from chalicelib.text import nick_key

    key = {"pk": {"S": f"ROOM#{room}"}, "sk": {"S": NICK_PREFIX + nick_key(nick)}}
    item = boto3.client("dynamodb").get_item(TableName=dev_table_name(), Key=key).get("Item")
    return None if item is None else item["connection"]["S"]


@pytest.mark.parametrize(
    "change",
    [{"action": "nick", "name": "rob"}, {"action": "leave", "room": "lobby"}, "disconnect"],
)
def test_a_name_given_up_is_free_only_once_the_room_has_been_told(
    chat: ChatHarness, change: dict[str, str] | str
) -> None:
    """So a page reconnecting under that name (a reload) is announced after the leave."""
    alice = chat.connect({"nick": "alice"})
    bob = chat.connect({"nick": "bob"})
    chat.send(bob, {"action": "join", "room": "elsewhere"})  # `join` adds: leave needs another
    chat.drain()
    holders_while_telling = []

    def look(connection_id: str, frame: dict[str, Any]) -> None:
        if connection_id == alice and frame["type"] == "presence":
            holders_while_telling.append(nick_holder("lobby", "bob"))

    chat.connections.before_post = look
    try:
        if change == "disconnect":
            chat.disconnect(bob)
        else:
            chat.send(bob, change)
    finally:
        chat.connections.before_post = None
    assert holders_while_telling == [bob]
    assert nick_holder("lobby", "bob") is None
    chat.connect({"nick": "bob"})  # free now


def test_a_name_held_by_a_connection_that_spoke_and_went_is_free_at_once(
    chat: ChatHarness,
) -> None:
    old = chat.connect({"nick": "ada", "room": "quiet"})  # it sent a frame: it had opened
    chat.lose(old, seconds_ago=1)  # and went a moment later, its $disconnect still to come
    chat.connect({"nick": "ada", "room": "quiet"})  # the page reconnecting: not a 409
    pending = chat.connect({"nick": "bo", "room": "quiet"}, opened=False)
    chat.lose(pending, seconds_ago=1)  # a 410 for one that never spoke may mean "opening"
    assert chat.refusal({"nick": "bo", "room": "quiet"})["status"] == 409


def test_a_member_found_gone_while_announcing_leaves_without_its_own_announcement(
    chat: ChatHarness,
) -> None:
    bob = chat.connect({"nick": "bob"})
    old = chat.connect({"nick": "ada"})
    chat.drain()
    chat.lose(old)
    again = chat.connect()  # its first frame announces it: the send to `old` finds it gone
    assert [(f["event"], f["nick"]) for f in frames_of(chat, bob, "presence")] == [
        ("join", guest(again))
    ]
    chat.send(bob, "/who")
    assert frames_of(chat, bob, "members")[0]["members"] == sorted(["bob", guest(again)])
    chat.send(again, {"action": "nick", "name": "ada"})  # its claim went with it
    assert frames_of(chat, again, "presence")[-1]["nick"] == "ada"


def guest(connection_id: str) -> str:
    from chalicelib.chat.nicknames import guest_nick

    return guest_nick(connection_id)


def test_a_pending_connections_nickname_may_be_taken_after_30_s(
    chat: ChatHarness, dynamodb: Any
) -> None:
    lurker = chat.connect({"nick": "ada"}, opened=False)
    assert chat.refusal({"nick": "ada"})["status"] == 409
    (claim,) = [i for i in items(dynamodb, "ROOM#lobby") if i["sk"]["S"].startswith("NICK#")]
    dynamodb.update_item(
        TableName=dev_table_name(),
        Key={"pk": claim["pk"], "sk": claim["sk"]},
        UpdateExpression="SET claimed_at = :t",
        ExpressionAttributeValues={":t": {"N": str(int(time.time() * 1000) - 31_000)}},
    )
    taker = chat.connect({"nick": "ada"})
    chat.send(lurker, {"action": "ping"})  # its first frame: its name is gone
    (error,) = frames_of(chat, lurker, "error")
    assert error["code"] == "nick_taken" and guest(lurker) in error["message"]
    chat.send(taker, "/who")
    assert frames_of(chat, taker, "members")[0]["members"] == sorted(["ada", guest(lurker)])


def test_zero_width_text_is_refused_and_hidden_controls_never_reach_others(
    chat: ChatHarness,
) -> None:
    alice, bob = chat.connect(), chat.connect()
    chat.drain()
    message(chat, alice, "\u200b\u200d\u2060")
    assert frames_of(chat, alice, "error")[0]["code"] == "bad_request"
    assert chat.take(bob) == []
    message(chat, alice, "\x1b[2J\x1b[31m SYSTEM: server restarting\x00 \u202egnp.exe")
    (received,) = frames_of(chat, bob, "message")
    text = received["text"]
    assert "SYSTEM: server restarting" in text
    assert not any(ord(c) < 32 or c in "\u202e\x7f\x9b" for c in text), repr(text)
    assert "[2J" not in text and "[31m" not in text


# Ghosts, departures, origins --------------------------------------------------------


def test_a_connection_that_never_spoke_is_not_listed_counted_or_announced(
    chat: ChatHarness,
) -> None:
    alice = chat.connect({"nick": "alice"})
    chat.drain()
    ghost = chat.connect({"nick": "ghost"}, opened=False)  # say its upgrade then failed
    assert chat.take(alice) == []  # no join announced
    chat.send(alice, "/who")
    assert frames_of(chat, alice, "members")[0]["members"] == ["alice"]
    chat.send(alice, "/rooms")
    assert frames_of(chat, alice, "rooms")[0]["rooms"] == [{"name": "lobby", "members": 1}]
    chat.lose(ghost, seconds_ago=11)  # API Gateway: gone
    message(chat, alice, "anyone?")
    assert [f["type"] for f in chat.take(alice)] == ["message"]  # no "leave" for a ghost


def test_the_first_frame_announces_a_connection(chat: ChatHarness) -> None:
    alice = chat.connect({"nick": "alice"})
    bob = chat.connect({"nick": "bob"}, opened=False)
    chat.drain()
    chat.send(bob, {"action": "join", "room": "lobby"})
    assert chat.take(alice) == [
        {"type": "presence", "room": "lobby", "event": "join", "nick": "bob", "count": 2}
    ]
    assert frames_of(chat, bob, "joined")[0]["members"] == ["alice", "bob"]


def test_a_connect_that_fails_midway_leaves_no_ghost(chat: ChatHarness) -> None:
    from chalicelib import service

    alice = chat.connect({"nick": "alice"})
    chat.drain()
    client = service.dynamodb_client()

    def fail_the_connection_item(params: dict[str, Any], **_: Any) -> None:
        if params.get("Item", {}).get("sk", {}).get("S") == "CONNECTION":
            raise ReadTimeoutError(endpoint_url="http://dynamodb")

    event = "before-parameter-build.dynamodb.PutItem"
    client.meta.events.register_first(event, fail_the_connection_item)
    try:
        chat.connect({"nick": "bob"}, expect=503)
    finally:
        client.meta.events.unregister(event, fail_the_connection_item)
    chat.send(alice, "/who")
    assert frames_of(chat, alice, "members")[0]["members"] == ["alice"]
    assert chat.take(alice) == []
    chat.connect({"nick": "bob"})  # the nickname is free again at once


def test_a_connect_out_of_time_still_frees_its_name(chat: ChatHarness) -> None:
    """The budget is often why a $connect failed: taking back what it wrote gets time of
    its own, or the name would refuse the client's retry (409) until it expired."""
    from chalicelib import budget, service

    client = service.dynamodb_client()

    def spend_the_budget(params: dict[str, Any], **_: Any) -> None:
        if params.get("Item", {}).get("sk", {}).get("S") == "CONNECTION":
            budget._deadline = time.monotonic()  # as if DynamoDB had taken it all
            raise budget.OutOfTime()

    event = "before-parameter-build.dynamodb.PutItem"
    client.meta.events.register_first(event, spend_the_budget)
    try:
        chat.connect({"nick": "bob"}, expect=503)
    finally:
        client.meta.events.unregister(event, spend_the_budget)
    chat.connect({"nick": "bob"})  # its retry gets the name


def test_a_wave_of_departures_costs_a_bounded_number_of_sends(chat: ChatHarness) -> None:
    stay = [chat.connect({"nick": f"stay{n}"}) for n in range(5)]
    leave = [chat.connect({"nick": f"leave{n}"}) for n in range(15)]
    chat.drain()
    for connection_id in leave:
        chat.connections.gone.add(connection_id)  # they all closed at once...
    chat.connections.calls.clear()
    for connection_id in leave:  # ...and their $disconnects run
        chat.disconnect(connection_id)
    posts = [cid for name, cid in chat.connections.calls if name == "PostToConnection"]
    # Each leave is sent to the members still there (20 at most), never cascading.
    assert len(posts) <= len(leave) * 20
    for connection_id in stay:
        leaves = Counter(f["nick"] for f in frames_of(chat, connection_id, "presence"))
        assert leaves == Counter({f"leave{n}": 1 for n in range(15)})
    chat.send(stay[0], "/rooms")
    assert frames_of(chat, stay[0], "rooms")[0]["rooms"] == [{"name": "lobby", "members": 5}]


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),
        ("null", True),
        ("http://127.0.0.1:8000", True),
        ("http://localhost:51234", True),
        ("https://evil.example", False),
        ("http://127.0.0.1.evil.example:8000", False),
    ],
)
def test_browsers_connect_only_from_allowed_origins(
    chat: ChatHarness, origin: str | None, allowed: bool
) -> None:
    headers = {} if origin is None else {"Origin": origin}
    if allowed:
        chat.connect(headers=headers)
    else:
        refusal = chat.refusal(headers=headers)
        assert refusal["status"] == 403 and refusal["code"] == "forbidden_origin"
    assert set(DEFAULT_ALLOWED_ORIGINS) == {"null", "http://127.0.0.1:*", "http://localhost:*"}


def test_allowed_origins_are_a_setting(chat: ChatHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://chat.example.com")
    chat.connect(headers={"Origin": "https://chat.example.com"})
    assert chat.refusal(headers={"Origin": "http://127.0.0.1:8000"})["status"] == 403


# Honest answers -------------------------------------------------------------------------


def test_a_message_stored_while_its_sender_heard_unavailable_is_not_stored_twice(
    chat: ChatHarness, dynamodb: Any
) -> None:
    from chalicelib import service

    alice, bob = chat.connect(), chat.connect()
    chat.drain()
    client = service.dynamodb_client()
    lost = []

    def lose_the_answer(http_response: Any, model: Any, **_: Any) -> None:
        if model.name == "PutItem" and not lost:
            lost.append(http_response)  # stored, but the answer never arrives
            raise ReadTimeoutError(endpoint_url="http://dynamodb")

    message_id = ids.new_message_id(int(time.time() * 1000))
    client.meta.events.register_first("after-call.dynamodb.PutItem", lose_the_answer)
    try:
        message(chat, alice, "only once", id=message_id)
    finally:
        client.meta.events.unregister("after-call.dynamodb.PutItem", lose_the_answer)
    (error,) = chat.take(alice)
    assert error["code"] == "unavailable" and error["id"] == message_id
    assert chat.take(bob) == []
    message(chat, alice, "only once", id=message_id)  # the page sends it again, same id
    (ack,) = chat.take(alice)
    assert (ack["type"], ack["id"], ack["text"]) == ("message", message_id, "only once")
    assert [f["id"] for f in chat.take(bob)] == [message_id]
    stored = [i for i in items(dynamodb, "HIST#lobby") if i["sk"]["S"] == message_id]
    assert len(stored) == 1
    message(chat, bob, "not mine", id=message_id)  # nobody else may use that id
    assert chat.take(bob)[0]["code"] == "bad_request"


def test_a_stalled_dynamodb_is_answered_unavailable_within_the_budget(
    chat: ChatHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib import service

    alice = chat.connect()
    chat.drain()
    monkeypatch.setattr(budget, "FRAME_SECONDS", 1.0)
    monkeypatch.setattr(budget, "PROBE_SECONDS", 0.5)
    client = service.dynamodb_client()

    def stall(**_: Any) -> None:
        time.sleep(0.3)  # as long as an attempt may take, then the read times out
        raise ReadTimeoutError(endpoint_url="http://dynamodb")

    client.meta.events.register_last("before-send", stall)  # after budget.check
    started = time.monotonic()
    try:
        message(chat, alice, "into the stall")
        elapsed = time.monotonic() - started
        (error,) = chat.take(alice)
        assert error["code"] == "unavailable"
        assert elapsed < 1.0  # one timed-out attempt: the breaker held back the retries
        started = time.monotonic()
        message(chat, alice, "while it is down")  # answered at once, no attempt made
        assert chat.take(alice)[0]["code"] == "unavailable"
        assert time.monotonic() - started < 0.3
    finally:
        client.meta.events.unregister("before-send", stall)
    time.sleep(0.5)  # then the next attempt probes, and DynamoDB is back
    message(chat, alice, "back")
    assert chat.take(alice)[0]["text"] == "back"


def test_an_attempt_gets_the_time_left_and_is_refused_only_below_the_floor() -> None:
    assert budget.read_timeout(8.0) == budget.READ_TIMEOUT  # never more than the client's
    assert budget.read_timeout(1.5) == 1.5 - budget.CONNECT_TIMEOUT  # ends by the deadline
    assert budget.read_timeout(budget.FLOOR_SECONDS) == budget.FLOOR_SECONDS
    assert budget.read_timeout(budget.FLOOR_SECONDS - 0.01) is None
    # A botocore that cannot shrink the read timeout: the whole attempt must fit.
    assert budget.read_timeout(budget.ATTEMPT_SECONDS, shrinks=False) == budget.READ_TIMEOUT
    assert budget.read_timeout(budget.ATTEMPT_SECONDS - 0.01, shrinks=False) is None


def test_a_slow_but_healthy_dynamodb_is_never_answered_unavailable(
    chat: ChatHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every attempt 300 ms late: connects of many calls outlast a second of their 4 s and
    still go through; each attempt's read timeout is what is left of the budget."""
    from chalicelib import service

    client = service.dynamodb_client()
    timeouts: list[float] = []

    def slow(request: Any, **_: Any) -> None:
        timeouts.append(request.context["read_timeout"])
        time.sleep(0.3)

    monkeypatch.setattr(budget, "CONNECT_SECONDS", 2.5)  # the old rule refused any call
    client.meta.events.register_last("before-send", slow)  # after budget.check
    try:
        started = time.monotonic()
        alice, bob = chat.connect(), chat.connect()
        connecting = time.monotonic() - started
        for n in range(2):
            message(chat, alice, f"slow {n}")
    finally:
        client.meta.events.unregister("before-send", slow)
    assert connecting > 2 * 1.0  # over a second each, where no call could start before
    answers = chat.take(alice)
    assert [f["text"] for f in answers if f["type"] == "message"] == ["slow 0", "slow 1"]
    assert not [f for f in answers if f["type"] == "error"]
    assert len(frames_of(chat, bob, "message")) == 2
    assert len(timeouts) > 10 and max(timeouts) == budget.READ_TIMEOUT
    assert (
        min(timeouts) < 2.5 - budget.CONNECT_TIMEOUT - 0.3
    )  # shrunk to what the $connect had left


def test_every_new_error_code_is_in_the_protocol_document() -> None:
    from chalicelib import protocol
    from tests.conftest import ROOT

    page = (ROOT / "docs" / "protocol.md").read_text()
    for code in (
        protocol.RATE_LIMITED,
        protocol.NICK_TAKEN,
        protocol.TOO_MANY_CONNECTIONS,
        protocol.FORBIDDEN_ORIGIN,
    ):
        assert f"`{code}`" in page, code
