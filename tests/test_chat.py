"""The chat service end to end through its Lambda handlers, against moto's DynamoDB.

Frames the app posts go through the real `app.websocket_api` (boto3) into
tests/fakes.py, which answers like the @connections API, GoneException included.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from chalicelib import protocol
from chalicelib.chat.nicknames import guest_nick
from tests.conftest import ChatHarness, dev_table_name


def message(chat: ChatHarness, sender: str, text: str) -> None:
    chat.send(sender, {"action": "sendmessage", "data": text})


@pytest.fixture
def unlimited(monkeypatch: pytest.MonkeyPatch) -> None:
    """For tests that send more frames than a person types (the limits have their own)."""
    monkeypatch.setenv("RATE_PER_SECOND", "10000")
    monkeypatch.setenv("RATE_BURST", "10000")


def test_a_new_connection_can_post_at_once_like_the_aws_sample(chat: ChatHarness) -> None:
    alice = chat.connect()
    message(chat, alice, "hi")
    (frame,) = chat.take(alice)
    assert frame["type"] == "message"
    assert frame["text"] == "hi"
    assert frame["room"] == "lobby"
    assert frame["from"] == guest_nick(alice)
    assert frame["from"].startswith("guest-") and len(frame["from"]) == 10
    assert protocol.MESSAGE_ID_PATTERN.fullmatch(frame["id"])
    assert frame["ts"].endswith("Z") and "T" in frame["ts"]


def test_plain_text_and_json_without_action_are_messages(chat: ChatHarness) -> None:
    alice, bob = chat.connect(), chat.connect()
    chat.drain()
    chat.send(alice, "plain words")
    chat.send(alice, '{"text": "json without action"}')
    texts = [f["text"] for f in chat.take(bob)]
    assert texts == ["plain words", '{"text": "json without action"}']


def test_a_message_reaches_every_member_once_with_one_id(chat: ChatHarness) -> None:
    members = [chat.connect() for _ in range(5)]
    elsewhere = chat.connect({"room": "other"})
    chat.drain()
    message(chat, members[0], "to everyone")
    frames = [chat.take(m) for m in members]
    assert all(len(f) == 1 for f in frames)
    assert len({f[0]["id"] for f in frames}) == 1
    assert chat.take(elsewhere) == []


def test_join_adds_the_room_and_tells_it_while_the_old_room_keeps_the_member(
    chat: ChatHarness,
) -> None:
    """Changed with rooms per person (issue 17): `join` used to leave the old room."""
    alice = chat.connect({"nick": "alice"})
    bob = chat.connect({"nick": "bob"})
    carol = chat.connect({"nick": "carol", "room": "dev"})
    message(chat, carol, "earlier in dev")
    chat.drain()

    chat.send(alice, {"action": "join", "room": "dev"})

    joined = chat.take_one(alice, "joined")
    assert joined["room"] == "dev"
    assert joined["nick"] == "alice"
    assert joined["members"] == ["alice", "carol"]
    assert [m["text"] for m in joined["history"]] == ["earlier in dev"]
    assert joined["more"] is False
    assert chat.take(carol) == [
        {"type": "presence", "room": "dev", "event": "join", "nick": "alice", "count": 2}
    ]
    assert chat.take(bob) == []  # alice is still in the lobby
    message(chat, bob, "lobby only")
    ((heard,),) = [chat.take(alice)]
    assert (heard["room"], heard["text"]) == ("lobby", "lobby only")
    chat.drain()
    message(chat, alice, "to dev, the current room")
    assert [f["text"] for f in chat.take(carol)] == ["to dev, the current room"]
    assert chat.take(bob) == []
    chat.drain()

    chat.send(alice, {"action": "leave", "room": "lobby"})
    assert chat.take(alice) == [{"type": "left", "room": "lobby", "current": "dev"}]
    assert chat.take(bob) == [
        {"type": "presence", "room": "lobby", "event": "leave", "nick": "alice", "count": 1}
    ]
    message(chat, bob, "lobby only, again")
    assert chat.take(alice) == []


def test_slash_commands_work_like_the_chalice_tutorial(chat: ChatHarness) -> None:
    alice = chat.connect()
    chat.send(alice, "/nick Ada Lovelace")
    presence = chat.take_one(alice, "presence")
    assert presence["event"] == "nick"
    assert presence["nick"] == "Ada Lovelace"
    assert presence["previous"] == guest_nick(alice)
    chat.send(alice, "/join engines")
    assert chat.take_one(alice, "joined")["room"] == "engines"
    chat.send(alice, "/who")
    assert chat.take_one(alice, "members") == {
        "type": "members",
        "room": "engines",
        "count": 1,
        "members": ["Ada Lovelace"],
    }
    chat.send(alice, "/help")
    commands = chat.take_one(alice, "help")["commands"]
    assert {c["command"].split()[0] for c in commands} >= {
        "/nick",
        "/join",
        "/who",
        "/rooms",
        "/history",
        "/help",
    }


def test_nick_change_reaches_the_room_with_the_previous_name(chat: ChatHarness) -> None:
    alice, bob = chat.connect({"nick": "alice"}), chat.connect({"nick": "bob"})
    chat.drain()
    chat.send(alice, {"action": "nick", "name": "Alice"})
    expected = {
        "type": "presence",
        "room": "lobby",
        "event": "nick",
        "nick": "Alice",
        "previous": "alice",
        "count": 2,
    }
    assert chat.take(bob) == [expected]
    assert chat.take(alice) == [expected]
    message(chat, alice, "renamed")
    assert chat.take(bob)[0]["from"] == "Alice"


def test_rooms_lists_rooms_with_members_and_counts(chat: ChatHarness) -> None:
    alice = chat.connect()
    chat.connect({"room": "dev"})
    chat.connect({"room": "dev"})
    gone = chat.connect({"room": "empty"})
    chat.disconnect(gone)
    chat.send(alice, {"action": "rooms"})
    assert chat.take_one(alice, "rooms")["rooms"] == [
        {"name": "dev", "members": 2},
        {"name": "lobby", "members": 1},
    ]


def test_ping_gets_pong(chat: ChatHarness) -> None:
    alice = chat.connect()
    chat.send(alice, {"action": "ping"})
    assert chat.take(alice) == [{"type": "pong"}]


def test_history_pages_back_without_loss_or_duplicates(chat: ChatHarness, unlimited: None) -> None:
    alice = chat.connect()
    for i in range(120):
        message(chat, alice, f"m{i}")
    sent = [f["id"] for f in chat.take(alice)]
    assert len(sent) == len(set(sent)) == 120
    assert sent == sorted(sent)

    bob = chat.connect()
    chat.send(bob, {"action": "join", "room": "lobby"})
    joined = chat.take_one(bob, "joined")
    assert [m["text"] for m in joined["history"]] == [f"m{i}" for i in range(70, 120)]
    assert joined["more"] is True

    seen = [m["id"] for m in joined["history"]]
    before = seen[0]
    while True:
        chat.send(bob, {"action": "history", "before": before, "limit": 30})
        page = chat.take_one(bob, "history")
        seen = [m["id"] for m in page["messages"]] + seen
        if not page["more"]:
            break
        before = page["messages"][0]["id"]
    assert seen == sent


def test_big_messages_still_fit_history_in_one_frame(chat: ChatHarness, unlimited: None) -> None:
    alice = chat.connect()
    for _ in range(50):
        message(chat, alice, "𝄞" * 4000)  # 16 000 bytes of UTF-8 each
    chat.take(alice)
    chat.send(alice, "/join lobby")
    joined = chat.take_one(alice, "joined")
    assert 0 < len(joined["history"]) < 50
    assert joined["more"] is True
    assert len(json.dumps(joined, ensure_ascii=False).encode()) <= protocol.MAX_FRAME_BYTES


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("", "bad_request"),
        ('{"action": "sendmessage", "data": null}', "bad_request"),
        ('{"action": "fly"}', "unknown_action"),
        ("/fly", "unknown_action"),
        ('{"action": "nick", "name": ""}', "invalid_nick"),
        ('{"action": "join", "room": "a/b"}', "invalid_room"),
        ("x" * 4001, "too_large"),
    ],
)
def test_bad_frames_get_an_error_only_the_sender_sees(
    chat: ChatHarness, body: str, code: str
) -> None:
    alice, bob = chat.connect(), chat.connect()
    chat.drain()
    chat.send(alice, body)
    (error,) = chat.take(alice)
    assert error["type"] == "error"
    assert error["code"] == code
    assert error["message"]
    assert chat.take(bob) == []
    message(chat, alice, "still works")
    assert chat.take(bob)[0]["text"] == "still works"


def test_a_missing_body_is_a_bad_request(chat: ChatHarness) -> None:
    from localgateway.apigateway import events
    from tests.conftest import API

    alice = chat.connect()
    event = events.message_event(API, chat.callers[alice], "x", chat.now_ms())
    del event["body"]
    chat.client.lambda_.invoke("message", event)
    assert chat.take(alice)[0]["code"] == "bad_request"


def test_dynamodb_failure_gives_unavailable_not_a_crash(chat: ChatHarness, dynamodb: Any) -> None:
    alice = chat.connect()
    dynamodb.delete_table(TableName=dev_table_name())
    message(chat, alice, "into the void")
    (error,) = chat.take(alice)
    assert error["type"] == "error" and error["code"] == "unavailable"
    assert chat.disconnect(alice)["statusCode"] == 200


def test_connect_rejects_bad_query_and_storage_failure(chat: ChatHarness, dynamodb: Any) -> None:
    chat.connect({"room": "no/slashes"}, expect=400)
    chat.connect({"nick": ""}, expect=400)
    dynamodb.delete_table(TableName=dev_table_name())
    chat.connect(expect=503)


def test_a_gone_member_is_removed_and_the_room_told(chat: ChatHarness, dynamodb: Any) -> None:
    alice = chat.connect({"nick": "alice"})
    bob = chat.connect({"nick": "bob"})
    ghost = chat.connect({"nick": "ghost"})
    chat.drain()
    chat.lose(ghost)

    message(chat, alice, "anyone there?")

    assert [f["type"] for f in chat.take(bob)] == ["message", "presence"]
    frames = chat.take(alice)
    assert frames[0]["text"] == "anyone there?"
    assert frames[1] == {
        "type": "presence",
        "room": "lobby",
        "event": "leave",
        "nick": "ghost",
        "count": 2,
    }
    key = {"pk": {"S": f"CONN#{ghost}"}, "sk": {"S": "CONNECTION"}}
    assert "Item" not in dynamodb.get_item(TableName=dev_table_name(), Key=key)
    message(chat, alice, "again")
    assert ("PostToConnection", ghost) not in chat.connections.calls[-3:]


def test_a_410_from_a_connection_still_opening_does_not_evict_it(chat: ChatHarness) -> None:
    alice, newcomer = chat.connect(), chat.connect()
    chat.connections.gone.add(newcomer)  # API Gateway: its $connect has not returned yet
    message(chat, alice, "welcome?")
    chat.connections.gone.clear()
    chat.drain()
    message(chat, alice, "welcome!")
    assert [f["text"] for f in chat.take(newcomer)] == ["welcome!"]

    chat.lose(newcomer, seconds_ago=11)
    message(chat, alice, "gone now")
    assert ("PostToConnection", newcomer) in chat.connections.calls
    chat.connections.calls.clear()
    message(chat, alice, "not sent to the gone one")
    assert ("PostToConnection", newcomer) not in chat.connections.calls


def test_a_failing_member_never_stops_delivery_to_the_others(chat: ChatHarness) -> None:
    members = [chat.connect() for _ in range(6)]
    chat.connections.failing.add(members[2])
    chat.lose(members[4])
    chat.drain()
    message(chat, members[0], "through")
    for index, member in enumerate(members):
        texts = [f.get("text") for f in chat.take(member) if f["type"] == "message"]
        assert texts == ([] if index in (2, 4) else ["through"])
    chat.connections.failing.clear()
    message(chat, members[0], "failing one kept")
    assert chat.take(members[2])[0]["text"] == "failing one kept"


def test_the_sender_gone_is_no_reason_to_fail(chat: ChatHarness) -> None:
    alice, bob = chat.connect(), chat.connect()
    chat.lose(alice)
    message(chat, alice, "last words")
    assert chat.take(bob)[0]["text"] == "last words"


def test_disconnect_twice_announces_once(chat: ChatHarness) -> None:
    alice, bob = chat.connect({"nick": "alice"}), chat.connect()
    chat.drain()
    assert chat.disconnect(bob)["statusCode"] == 200
    assert chat.disconnect(bob)["statusCode"] == 200
    assert [f["event"] for f in chat.take(alice)] == ["leave"]
    chat.send(alice, "/who")
    assert chat.take_one(alice, "members")["members"] == ["alice"]


def test_concurrent_disconnects_announce_once(chat: ChatHarness) -> None:
    alice, bob = chat.connect(), chat.connect()
    chat.drain()
    threads = [threading.Thread(target=chat.disconnect, args=(bob,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [f["event"] for f in chat.take(alice)] == ["leave"]


def test_expired_connections_are_skipped_and_cleaned(chat: ChatHarness, dynamodb: Any) -> None:
    alice, stale = chat.connect(), chat.connect()
    chat.drain()
    chat.connections.calls.clear()
    table = dev_table_name()
    past = {":t": {"N": str(int(time.time()) - 60)}}
    for key in (
        {"pk": {"S": f"CONN#{stale}"}, "sk": {"S": "CONNECTION"}},
        {"pk": {"S": "ROOM#lobby"}, "sk": {"S": f"MEMBER#{stale}"}},
    ):
        dynamodb.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET expires_at = :t",
            ExpressionAttributeValues=past,
        )
    message(chat, alice, "hello")
    assert chat.take(stale) == []
    assert ("PostToConnection", stale) not in chat.connections.calls
    assert [f["type"] for f in chat.take(alice)] == ["message", "presence"]
    members = dynamodb.query(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "ROOM#lobby"}},
    )["Items"]
    assert [m["sk"]["S"] for m in members if m["sk"]["S"].startswith("MEMBER#")] == [
        f"MEMBER#{alice}"
    ]


def test_expired_history_is_not_served(chat: ChatHarness, dynamodb: Any) -> None:
    alice = chat.connect()
    chat.drain()
    message(chat, alice, "old")
    message(chat, alice, "new")
    old_id = chat.take(alice)[0]["id"]
    dynamodb.update_item(
        TableName=dev_table_name(),
        Key={"pk": {"S": "HIST#lobby"}, "sk": {"S": old_id}},
        UpdateExpression="SET expires_at = :t",
        ExpressionAttributeValues={":t": {"N": str(int(time.time()) - 1)}},
    )
    chat.send(alice, "/history")
    page = chat.take_one(alice, "history")
    assert [m["text"] for m in page["messages"]] == ["new"]
    assert page["more"] is False


def fill_room(dynamodb: Any, room: str, count: int, padding: int = 0) -> list[str]:
    """Members written straight into the table, as many connects would leave them."""
    expires = str(int(time.time()) + 3600)
    ids = [f"member{i:06d}AAAA=" for i in range(count)]
    for start in range(0, count, 25):
        requests = []
        for cid in ids[start : start + 25]:
            item = {
                "pk": {"S": f"ROOM#{room}"},
                "sk": {"S": f"MEMBER#{cid}"},
                "nick": {"S": cid},
                "connected_at": {"N": str(int(time.time() * 1000))},
                "expires_at": {"N": expires},
            }
            if padding:
                item["padding"] = {"S": "p" * padding}
            requests.append({"PutRequest": {"Item": item}})
        dynamodb.batch_write_item(RequestItems={dev_table_name(): requests})
    dynamodb.update_item(  # the room's count, as their first frames would have added
        TableName=dev_table_name(),
        Key={"pk": {"S": "ROOMS"}, "sk": {"S": room}},
        UpdateExpression="SET expires_at = :t ADD members :n",
        ExpressionAttributeValues={":t": {"N": expires}, ":n": {"N": str(count)}},
    )
    return ids


def test_broadcast_reaches_members_beyond_the_first_1mb_page(
    chat: ChatHarness, dynamodb: Any
) -> None:
    alice = chat.connect({"room": "big"})
    others = fill_room(dynamodb, "big", 2600, padding=400)
    pages = []
    dynamodb.meta.events.register(
        "after-call.dynamodb.Query", lambda parsed, **_: pages.append(parsed)
    )
    from chalicelib import service

    service.dynamodb_client().meta.events.register(
        "after-call.dynamodb.Query", lambda parsed, **_: pages.append(parsed)
    )
    message(chat, alice, "to the whole big room")

    member_pages = [p for p in pages if p.get("Count")]
    assert len(member_pages) >= 2 and "LastEvaluatedKey" in member_pages[0]
    received = {cid for cid in others if chat.take(cid)}
    assert received == set(others)
    assert chat.take(alice)[0]["text"] == "to the whole big room"


def test_presence_is_dropped_above_the_limit_but_counts_stay(
    chat: ChatHarness, dynamodb: Any
) -> None:
    crowd = fill_room(dynamodb, "crowd", 100)
    watcher = chat.connect({"room": "small"})
    chat.send(watcher, "/join crowd")
    joined = chat.take_one(watcher, "joined")
    assert joined["count"] == 101
    assert not any(chat.take(cid) for cid in crowd)
    chat.send(watcher, "/rooms")
    assert {"name": "crowd", "members": 101} in chat.take_one(watcher, "rooms")["rooms"]


def test_joining_a_big_room_reads_only_enough_to_know_it_is_big(
    chat: ChatHarness, dynamodb: Any
) -> None:
    from chalicelib import service

    crowd = fill_room(dynamodb, "crowd", 300)
    items_read = []
    client = service.dynamodb_client()

    def count(parsed: dict[str, Any], **_: Any) -> None:
        items_read.append(parsed.get("Count", 0))

    client.meta.events.register("after-call.dynamodb.Query", count)
    try:
        chat.connect({"room": "crowd", "nick": "late"})
    finally:
        client.meta.events.unregister("after-call.dynamodb.Query", count)
    assert sum(items_read) <= 101  # one page of PRESENCE_LIMIT + 1, not 300 members
    assert not any(chat.take(cid) for cid in crowd)


def test_renaming_in_a_big_room_is_acknowledged_with_the_count(
    chat: ChatHarness, dynamodb: Any
) -> None:
    fill_room(dynamodb, "crowd", 150)
    renamer = chat.connect({"room": "crowd", "nick": "before"})
    chat.drain()
    chat.send(renamer, "/nick after")
    assert chat.take(renamer) == [
        {
            "type": "presence",
            "room": "crowd",
            "event": "nick",
            "nick": "after",
            "previous": "before",
            "count": 151,
        }
    ]


def test_broadcast_sends_concurrently_on_the_sized_pool(chat: ChatHarness) -> None:
    from app import app
    from chalicelib import service

    members = [chat.connect() for _ in range(12)]
    chat.drain()
    in_flight, peak = [0], [0]
    lock = threading.Lock()

    def slow(model: Any, **_: Any) -> None:
        if model.name == "PostToConnection":
            with lock:
                in_flight[0] += 1
                peak[0] = max(peak[0], in_flight[0])
            time.sleep(0.05)
            with lock:
                in_flight[0] -= 1

    app.websocket_api.session.events.register_first("before-call.apigatewaymanagementapi", slow)
    app.websocket_api._client = None
    message(chat, members[0], "fan out")
    assert peak[0] > 1
    assert all(chat.take(m) for m in members)
    pool = app.websocket_api.session._session.get_default_client_config().max_pool_connections
    assert pool == service.SEND_CONCURRENCY == service.send_pool()._max_workers


def test_a_cold_container_builds_one_connections_client_not_one_per_thread(
    chat: ChatHarness,
) -> None:
    """Chalice builds its client on first use, without a lock: a first broadcast fanned
    out at once had every thread build its own (seconds of CPU in a room of 100)."""
    from chalice.app import WebsocketAPI

    from app import app
    from chalicelib import service
    from chalicelib.sending import Sender

    members = [chat.connect() for _ in range(12)]
    chat.drain()
    api = WebsocketAPI()
    api.session = app.websocket_api.session
    api.configure("example.com", "api")
    built = []

    def slow_build(**_: Any) -> None:
        built.append(1)
        time.sleep(0.05)

    event = "creating-client-class.apigatewaymanagementapi"
    api.session.events.register(event, slow_build)
    try:
        gone = Sender(api, service.send_pool()).broadcast(members, '{"type": "ping"}')
    finally:
        api.session.events.unregister(event, slow_build)
    assert gone == []
    assert len(built) == 1
    assert [chat.take(m) for m in members] == [[{"type": "ping"}]] * len(members)


@pytest.fixture
def invocations(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Fan-out batches of 3 members, the Invoke calls recorded instead of sent."""
    from chalicelib import service
    from tests.fakes import FakeLambdaInvoke

    monkeypatch.setenv("FANOUT_BATCH", "3")
    fake = FakeLambdaInvoke()
    fake.install(service.lambda_client())
    yield fake
    fake.uninstall(service.lambda_client())


def test_a_big_broadcast_is_split_across_fan_out_invocations(
    chat: ChatHarness, invocations: Any
) -> None:
    members = [chat.connect() for _ in range(10)]
    chat.drain()
    message(chat, members[0], "to all ten")

    # The handler sent the first batch itself and handed three batches over.
    direct = [m for m in members if chat.take(m)]
    assert len(direct) == 3
    assert [name for name, _ in invocations.payloads] == ["chalice-chat-dev-fanout"] * 3
    handed = [cid for _, payload in invocations.payloads for cid in payload["connection_ids"]]
    assert sorted(direct + handed) == sorted(members)
    _, first = invocations.payloads[0]
    assert first["domain_name"] == "abcdef1234.execute-api.us-east-1.amazonaws.com"
    assert first["stage"] == "api"
    assert json.loads(first["data"])["text"] == "to all ten"
    # All ten connected a moment ago: a 410 from them would mean "still opening".
    assert first["opening"] == first["connection_ids"]

    for _, payload in invocations.payloads:
        chat.client.lambda_.invoke("fanout", payload)
    received = {m: [f["text"] for f in chat.take(m)] for m in members if m not in direct}
    assert received == {m: ["to all ten"] for m in received}
    assert len(received) == 7


def test_a_fan_out_batch_evicts_its_gone_members(chat: ChatHarness, invocations: Any) -> None:
    members = sorted(chat.connect({"nick": f"m{i}"}) for i in range(6))
    # Members come in connection id order: the last one is in the handed-over batch.
    sender, lost = members[0], members[-1]
    chat.lose(lost)
    chat.drain()
    message(chat, sender, "hello")
    ((_, payload),) = invocations.payloads
    assert lost in payload["connection_ids"]
    chat.client.lambda_.invoke("fanout", payload)
    leaves = [f for f in chat.take(sender) if f["type"] == "presence"]
    assert [f["event"] for f in leaves] == ["leave"]
    chat.send(sender, "/who")
    assert len(chat.take_one(sender, "members")["members"]) == 5


def test_a_batch_that_cannot_be_handed_over_is_sent_directly(
    chat: ChatHarness, invocations: Any
) -> None:
    invocations.refuse = True
    members = [chat.connect() for _ in range(8)]
    chat.drain()
    message(chat, members[0], "no fan-out today")
    assert all([f["text"] for f in chat.take(m)] == ["no fan-out today"] for m in members)


@pytest.mark.parametrize(
    "payload", [None, [], {"room": "lobby"}, {"room": 1, "data": "x", "connection_ids": "abc"}]
)
def test_a_malformed_fan_out_event_is_refused_without_a_crash(
    chat: ChatHarness, payload: Any
) -> None:
    assert chat.client.lambda_.invoke("fanout", payload).payload is None


def test_a_change_from_a_stale_copy_is_refused_and_leaves_no_trace(dynamodb: Any) -> None:
    """Two frames of one client run concurrently; the loser retries with fresh state."""
    from chalicelib.settings import Settings
    from chalicelib.store import Store
    from chalicelib.store.connections import ConnectionChanged

    store = Store(dynamodb, Settings(table_name=dev_table_name()))
    stale = store.connections.add("conn1AAAAAAAAAA=", "ada", "a", confirmed=True)
    store.connections.subscribe(stale, "b")
    with pytest.raises(ConnectionChanged):
        store.connections.subscribe(stale, "c")
    with pytest.raises(ConnectionChanged):
        store.connections.rename(stale, "grace")
    assert store.rooms.members("c") == ([], [])
    for room in ("a", "b"):  # `join` adds a room: "a" is still one of its rooms
        ((member,), _) = store.rooms.members(room)
        assert (member.connection_id, member.nick) == ("conn1AAAAAAAAAA=", "ada")
    assert store.connections.get("conn1AAAAAAAAAA=").rooms == {"a", "b"}
