"""The local gateway's pure parts: routing, the registry, @connections, Lambda's Invoke,
projects, events.

No sockets and no processes: these run in milliseconds, and hypothesis feeds
the route selection arbitrary frames.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.awsrequest import HeadersDict
from botocore.parsers import create_parser
from hypothesis import given
from hypothesis import strategies as st

from localgateway import project
from localgateway.apigateway import connections_models, connections_responses, events, routing
from localgateway.apigateway.registry import (
    DELETED,
    IDLE,
    LOST,
    MAX_DURATION,
    NO_STATUS,
    SHUTDOWN,
    Close,
    Limits,
    Registry,
    client_close,
)
from localgateway.awslambda import environment, invoke_models, ipc, process_pool
from localgateway.state import changes, journal, snapshot
from localgateway.state.saver import Saver
from tests.conftest import APPS, CONTEXT_KEYS, ROOT, dev_table_name

ROUTES = {"$connect", "$default", "sendmessage", "join", "1", "true"}
PATH = routing.parse_expression(routing.DEFAULT_EXPRESSION)


# Routing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "route"),
    [
        ('{"action": "sendmessage", "data": "hi"}', "sendmessage"),
        ('{"action": "join"}', "join"),
        ('{"action": "unknown"}', "$default"),
        ('{"action": "$connect"}', "$default"),  # API Gateway's own keys never match
        ('{"action": 1}', "1"),
        ('{"action": true}', "true"),
        ('{"action": {"nested": 1}}', "$default"),
        ('{"data": "no action"}', "$default"),
        ("plain text", "$default"),
        ('{"action": "join"', "$default"),
        ("[1, 2]", "$default"),
    ],
)
def test_route_selection_follows_request_body_action(body: str, route: str) -> None:
    assert routing.select_route(body, ROUTES, PATH) == route


def test_without_default_an_unmatched_frame_has_no_route() -> None:
    assert routing.select_route('{"action": "nope"}', {"join"}, PATH) is None
    assert routing.select_route('{"action": "join"}', {"join"}, PATH) == "join"


@pytest.mark.parametrize(
    ("expression", "path"),
    [
        ("$request.body.action", ("action",)),
        ("${request.body.action}", ("action",)),
        ("$request.body.message.type", ("message", "type")),
    ],
)
def test_route_selection_expressions_parse(expression: str, path: tuple[str, ...]) -> None:
    assert routing.parse_expression(expression) == path
    nested = {"action": "x", "message": {"type": "x"}}
    assert routing.select_route(json.dumps(nested), {"x"}, path) == "x"


@pytest.mark.parametrize("expression", ["$request.header.x", "action", "$request.body."])
def test_unsupported_expressions_are_refused(expression: str) -> None:
    with pytest.raises(ValueError, match="unsupported route selection expression"):
        routing.parse_expression(expression)


@given(st.text() | st.from_type(dict).map(json.dumps))
def test_route_selection_never_raises_and_always_falls_back(body: str) -> None:
    assert routing.select_route(body, {"$default", "join"}, PATH) in ("$default", "join")


def test_error_frames_are_aws_shaped() -> None:
    frame = json.loads(routing.error_frame(routing.FORBIDDEN, "cid=", "rid="))
    assert frame == {"message": "Forbidden", "connectionId": "cid=", "requestId": "rid="}


# Registry -----------------------------------------------------------------------------


def caller(connected_at: int = 1_000_000) -> events.Caller:
    return events.Caller(events.new_id(), connected_at, "127.0.0.1", "pytest")


def test_limits_default_to_api_gateways_quotas() -> None:
    limits = Limits()
    assert limits.payload_bytes == 131072
    assert limits.idle_timeout_ms == 600_000
    assert limits.max_duration_ms == 7_200_000


def test_the_idle_deadline_moves_with_client_activity_and_the_maximum_does_not() -> None:
    connections: Registry[str] = Registry(Limits(idle_timeout_ms=1000, max_duration_ms=2500))
    connection = connections.open(caller(10_000), "socket")
    assert connections.deadline(connection) == (11_000, IDLE)
    assert connections.expired(connection, 10_999) is None
    assert connections.expired(connection, 11_000) is IDLE
    connections.touch(connection, 10_900)
    assert connections.deadline(connection) == (11_900, IDLE)
    connections.touch(connection, 12_000)
    assert connections.deadline(connection) == (12_500, MAX_DURATION)
    connections.touch(connection, 11_000)  # a late clock reading never moves it back
    assert connection.last_active_at == 12_000


def test_connections_open_once_and_leave_once() -> None:
    connections: Registry[str] = Registry()
    first = caller()
    connection = connections.open(first, "socket")
    with pytest.raises(ValueError, match="already open"):
        connections.open(first, "other")
    assert connections.get(first.connection_id) is connection
    assert list(connections) == [connection] and len(connections) == 1
    assert connections.remove(first.connection_id) is connection
    assert connections.remove(first.connection_id) is None
    assert connections.get(first.connection_id) is None


@pytest.mark.parametrize(
    ("code", "reason", "close"),
    [
        (None, "", NO_STATUS),
        (0, "", NO_STATUS),
        (1005, "", NO_STATUS),
        (1000, "", Close(1000, "Client-side close frame status code 1000")),
        (4001, "bye", Close(4001, "bye")),
    ],
)
def test_client_closes_become_disconnect_codes_and_reasons(
    code: int | None, reason: str, close: Close
) -> None:
    assert client_close(code, reason) == close


def test_a_connection_with_10_frames_waiting_or_running_is_flooding() -> None:
    connections: Registry[str] = Registry(Limits(flood_frames=3))
    flooder, other = connections.open(caller(), "a"), connections.open(caller(), "b")
    assert [connections.frame_started(flooder) for _ in range(5)] == [False] * 3 + [True] * 2
    assert not connections.frame_started(other)  # a mark per connection, not for the stage
    for _ in range(3):
        connections.frame_done(flooder)
    assert not connections.frame_started(flooder)  # 3 again: back under the mark
    assert connections.frame_started(flooder)


# The disconnect journal and the saved state ------------------------------------------


def test_the_journal_holds_the_connections_whose_disconnect_has_not_run(tmp_path: Path) -> None:
    pending = journal.DisconnectJournal()
    first, second, third = caller(), caller(), caller()
    for opened in (first, second, third):
        pending.opened(opened)
    pending.done(second.connection_id)
    version = pending.version
    pending.done(second.connection_id)  # twice: nothing changes
    assert pending.version == version
    assert pending.pending() == [first, third]
    assert journal.load(tmp_path) == ([], Close(1006, ""))  # no file: nothing pending
    journal.save(pending.pending(), SHUTDOWN, tmp_path)
    assert journal.load(tmp_path) == ([first, third], SHUTDOWN)
    assert [path.name for path in tmp_path.iterdir()] == [journal.FILE]  # no .tmp left


def test_a_save_never_leaves_a_journal_missing_a_connection_the_saved_tables_hold(
    tmp_path: Path,
) -> None:
    """Killed while the tables are written, the journal on disk must hold the
    connections of both the last save (the tables on disk still have them) and now."""
    pending = journal.DisconnectJournal()
    old, new = caller(), caller()
    pending.opened(old)
    seen_while_saving: list[list[str]] = []

    def tables() -> dict[str, int]:
        callers, _ = journal.load(tmp_path)
        seen_while_saving.append([c.connection_id for c in callers])
        return {"Table": 1}

    writes = [0]
    compactions: list[bool] = []
    saver = Saver(
        pending,
        tables,
        lambda stopping: compactions.append(stopping()),
        tmp_path,
        lambda: writes[0],
    )
    assert saver.changed()
    assert asyncio.run(saver.save(LOST)) == {"Table": 1}
    assert compactions == [False]  # a periodic save folds the change files when due
    assert not saver.changed()
    pending.done(old.connection_id)
    pending.opened(new)
    assert saver.changed()
    asyncio.run(saver.save(LOST))
    assert seen_while_saving == [[old.connection_id], [old.connection_id, new.connection_id]]
    assert journal.load(tmp_path) == ([new], LOST)
    writes[0] += 1  # a table changed, the journal did not
    assert saver.changed()
    asyncio.run(saver.save(SHUTDOWN, final=True))
    assert compactions == [False, False]  # the stop's save makes none...
    asyncio.run(saver.save(LOST))
    assert compactions == [False, False, True]  # ...and any later one gives up at once


# Saving what changed ------------------------------------------------------------------

KEYS = ("pk", "sk")


def wire(operation: str, request: dict[str, Any]) -> changes.Touched:
    return changes.touched(operation, json.dumps(request).encode(), {"T": KEYS})


def test_writes_name_the_items_they_change_and_other_requests_the_tables() -> None:
    key = {"pk": {"S": "a"}, "sk": {"S": "1"}}
    item = {**key, "text": {"S": "hi"}}
    blob = {"pk": {"S": "b"}, "sk": {"B": "AAE="}}  # binary keys are base64 on the wire
    assert wire("PutItem", {"TableName": "T", "Item": item}).keys == (("T", key),)
    assert wire("UpdateItem", {"TableName": "T", "Key": key}).keys == (("T", key),)
    assert wire("DeleteItem", {"TableName": "T", "Key": blob}).keys == (
        ("T", {"pk": {"S": "b"}, "sk": {"B": b"\x00\x01"}}),
    )
    batch = {"T": [{"PutRequest": {"Item": item}}, {"DeleteRequest": {"Key": key}}]}
    assert len(wire("BatchWriteItem", {"RequestItems": batch}).keys) == 2
    transaction = [{"Put": {"TableName": "T", "Item": item}}, {"ConditionCheck": {}}]
    assert wire("TransactWriteItems", {"TransactItems": transaction}).keys == (("T", key),)
    assert wire("ExecuteStatement", {"Statement": " select * from T"}) == changes.Touched()
    assert wire("ExecuteStatement", {"Statement": "DELETE FROM T"}).everything
    assert wire("DeleteTable", {"TableName": "T"}).tables == {"T"}
    assert wire("Query", {"TableName": "T"}) == changes.Touched()
    for broken in (b"not json", b"[]", b'{"TableName": "T", "Item": {"pk": {"S": "a"}}}'):
        assert changes.touched("PutItem", broken, {"T": KEYS}).everything
    one, same = {"pk": {"S": "a"}, "sk": {"N": "1"}}, {"pk": {"S": "a"}, "sk": {"N": "1.0"}}
    assert changes.identity(one) == changes.identity(same)  # one item, as DynamoDB compares


def test_changes_are_taken_once_and_put_back_when_a_save_fails() -> None:
    noted = changes.Changes()
    noted.track({"T": KEYS})
    assert noted.take().full == {"T"}  # a table never saved is saved whole first
    key = {"pk": {"S": "a"}, "sk": {"S": "1"}}
    noted.mark(wire("PutItem", {"TableName": "T", "Item": key}))
    noted.mark(wire("PutItem", {"TableName": "Other", "Item": key}))  # not saved: ignored
    taken = noted.take()
    assert (list(taken.keys["T"].values()), taken.full) == ([key], set())
    assert noted.take() == changes.Taken()
    noted.put_back(taken)
    noted.mark(wire("ExecuteStatement", {"Statement": "UPDATE T SET x = 1"}))  # which items?
    again = noted.take()
    assert (list(again.keys["T"].values()), again.full) == ([key], {"T"})


def test_the_saved_files_restore_exactly_the_table_after_changes_a_reset_and_a_fold(
    dynamodb: Any, tmp_path: Path
) -> None:
    """What a restore writes back is the table as it was saved, whatever happened between:
    changed items, deleted ones, a whole-table save over a base, a fold of the change
    files into the base, and a kill between the fold's rename and its deletions."""
    table = dev_table_name()

    def key(n: int) -> dict[str, Any]:
        return {"pk": {"S": "HIST#r"}, "sk": {"S": f"{n:04d}"}}

    def put(n: int, text: str, expires: int = 2_000_000_000) -> None:
        item = {**key(n), "text": {"S": text}, "expires_at": {"N": str(expires)}}
        dynamodb.put_item(TableName=table, Item=item)

    def items() -> dict[str, dict[str, Any]]:
        pages = dynamodb.get_paginator("scan").paginate(TableName=table)
        return {item["sk"]["S"]: item for page in pages for item in page["Items"]}

    def restored() -> dict[str, dict[str, Any]]:
        for item in items().values():
            dynamodb.delete_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})
        count = snapshot.load(dynamodb, table, tmp_path, KEYS, "expires_at")
        assert count == len(items())
        return items()

    def keys(*numbers: int) -> dict[changes.Identity, changes.Key]:
        return {changes.identity(key(n)): key(n) for n in numbers}

    for n in range(30):
        put(n, f"message {n}")
    put(30, "expired", expires=1)
    assert snapshot.save(dynamodb, table, tmp_path) == snapshot.Written(31, whole=True)
    put(31, "new")
    put(3, "edited")
    dynamodb.delete_item(TableName=table, Key=key(4))
    written = snapshot.save_changes(dynamodb, table, keys(31, 3, 4), tmp_path)
    assert written == snapshot.Written(3, whole=False)
    assert str(written) == "3 changed items"
    before = items()
    del before["0030"]  # its TTL has passed: not brought back
    assert restored() == before and len(before) == 30
    assert before["0003"]["text"] == {"S": "edited"} and "0004" not in before
    dynamodb.delete_item(TableName=table, Key=key(5))
    assert snapshot.save(dynamodb, table, tmp_path).whole  # over a base: a reset
    before = items()
    assert restored() == before and len(before) == 29
    files = sorted(snapshot.changes_dir(tmp_path, table).iterdir())
    assert [path.name for path in files] == ["00000001.jsonl", "00000002.jsonl"]
    assert snapshot.due(tmp_path, table)  # the reset weighs as much as the base
    kept = {path: path.read_bytes() for path in files}
    assert not snapshot.compact(tmp_path, table, KEYS, "expires_at", lambda: True)
    assert sorted(snapshot.changes_dir(tmp_path, table).iterdir()) == files  # gave up
    assert snapshot.compact(tmp_path, table, KEYS, "expires_at", lambda: False)
    assert list(snapshot.changes_dir(tmp_path, table).iterdir()) == []
    assert restored() == before
    for path, content in kept.items():  # killed after the rename, before the deletions
        path.write_bytes(content)
    assert restored() == before
    assert not [path for path in tmp_path.rglob("*.tmp")]


# The @connections model and its wire format -------------------------------------------


def test_post_get_and_delete_outcomes() -> None:
    connections: Registry[str] = Registry(Limits(payload_bytes=10))
    connection = connections.open(caller(), "socket")
    cid = connection.connection_id
    assert connections_models.post(connections, cid, b"0123456789") is connection
    assert connections_models.post(
        connections, cid, b"0123456789!"
    ) == connections_models.PayloadTooLarge(11, 10)
    assert connections_models.get(connections, cid) is connection
    assert connections_models.delete(connections, cid) is connection
    for call in (
        lambda: connections_models.post(connections, cid, b"x"),
        lambda: connections_models.get(connections, cid),
        lambda: connections_models.delete(connections, cid),
    ):
        assert call() == connections_models.Gone(cid)


def parse(operation: str, status: int, headers: dict[str, str], body: bytes) -> dict:
    """What botocore's own rest-json parser makes of a response, as the boto3 client would."""
    model = botocore.session.get_session().get_service_model("apigatewaymanagementapi")
    response = {"status_code": status, "headers": HeadersDict(headers), "body": body}
    return create_parser("rest-json").parse(response, model.operation_model(operation).output_shape)


def test_refusals_parse_as_the_modelled_exceptions() -> None:
    gone = connections_responses.refusal(connections_models.Gone("abc="))
    assert gone.status == 410
    parsed = parse("PostToConnection", gone.status, dict(gone.headers), gone.body)
    assert parsed["Error"]["Code"] == "GoneException"
    too_large = connections_responses.refusal(connections_models.PayloadTooLarge(200_000, 131072))
    parsed = parse("PostToConnection", 413, dict(too_large.headers), too_large.body)
    assert parsed["Error"]["Code"] == "PayloadTooLargeException"
    assert "131072" in parsed["Error"]["Message"]
    assert parsed["ResponseMetadata"]["RequestId"]


def test_get_connection_parses_with_iso_8601_times_and_identity() -> None:
    connections: Registry[str] = Registry()
    connection = connections.open(caller(1_795_853_577_758), "socket")
    connections.touch(connection, 1_795_853_578_001)
    response = connections_responses.connection(connection)
    assert json.loads(response.body)["connectedAt"] == "2026-11-28T08:12:57.758Z"
    parsed = parse("GetConnection", 200, dict(response.headers), response.body)
    assert parsed["ConnectedAt"].isoformat() == "2026-11-28T08:12:57.758000+00:00"
    assert parsed["LastActiveAt"].isoformat() == "2026-11-28T08:12:58.001000+00:00"
    assert parsed["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "pytest"}


def test_success_statuses() -> None:
    assert connections_responses.posted().status == 200
    assert connections_responses.deleted().status == 204
    assert (DELETED.code, DELETED.reason) == (1000, "Connection Closed Normally")


# Events against the reference's key list -----------------------------------------------

API = events.Api(events.api_id("probe", "dev"), "ws", "127.0.0.1:8443")


def test_events_carry_every_key_of_the_reference() -> None:
    who = caller()
    connect = events.connect_event(API, who, [("Host", "h"), ("X-A", "1"), ("X-A", "2")], [], 5)
    assert set(connect["requestContext"]) == CONTEXT_KEYS
    assert connect["requestContext"]["identity"] == {"sourceIp": "127.0.0.1", "userAgent": "pytest"}
    assert connect["multiValueHeaders"]["X-A"] == ["1", "2"]
    assert "queryStringParameters" not in connect  # as AWS: absent without a query
    message = events.message_event(API, who, "hi", 6, "join")
    assert set(message["requestContext"]) == CONTEXT_KEYS | {"messageId"}
    assert (message["body"], message["requestContext"]["routeKey"]) == ("hi", "join")
    disconnect = events.disconnect_event(API, who, 1001, "Going away", 7)
    context = disconnect["requestContext"]
    assert set(context) == CONTEXT_KEYS | {"disconnectStatusCode", "disconnectReason"}
    assert (context["disconnectStatusCode"], context["disconnectReason"]) == (1001, "Going away")


def test_api_ids_are_stable_and_look_like_aws() -> None:
    assert events.api_id("probe", "dev") == events.api_id("probe", "dev")
    assert events.api_id("probe", "dev") != events.api_id("probe", "prod")
    assert len(events.api_id("x", "y")) == 10 and events.api_id("x", "y").isalnum()


# Projects -------------------------------------------------------------------------------


def test_the_probe_project_layers_settings_like_chalice() -> None:
    probe = project.load(APPS / "probe", "dev")
    assert (probe.app_name, probe.stage, probe.api_stage) == ("probe", "dev", "ws")
    (table,) = probe.tables
    assert (table.logical_id, table.name) == ("EventsTable", "probe-dev-EventsTable")
    message = probe.function_for_route("$default")
    assert message.name == project.WEBSOCKET_MESSAGE
    assert message.lambda_name == "probe-dev-websocket_message"
    assert message.timeout_s == 3 and message.memory_mb == 128
    assert message.environment == {
        "GREETING": "hello from config.json",
        "LEVEL": "stage dev",
        "EVENTS_TABLE": "probe-dev-EventsTable",
        "ONLY_MESSAGE": "yes",
    }
    connect = probe.function_for_route("$connect")
    assert "ONLY_MESSAGE" not in connect.environment and connect.timeout_s == 60
    assert probe.functions[project.API_HANDLER].lambda_name == "probe-dev"
    assert probe.function_for_route("custom").name == project.WEBSOCKET_MESSAGE


def test_pure_functions_get_their_settings_like_chalice_deploy_gives_them() -> None:
    """Known once the app is imported; environment global, stage, function; timeout, memory."""
    probe = project.load(APPS / "probe", "dev")
    assert probe.pure_functions == {}
    described = probe.with_pure_functions(["echo", "notify"])
    echo = described.pure_functions["echo"]
    assert (echo.name, echo.lambda_name) == ("echo", "probe-dev-echo")
    assert echo.timeout_s == 2  # stages.dev.lambda_functions.echo
    assert echo.memory_mb == 256  # lambda_functions.echo, for every stage
    assert echo.environment == {
        "GREETING": "hello from config.json",
        "LEVEL": "stage dev",
        "EVENTS_TABLE": "probe-dev-EventsTable",  # the merge template's Echo resource
        "ONLY_ECHO": "yes",
    }
    notify = described.pure_functions["notify"]
    assert (notify.timeout_s, notify.memory_mb) == (60, 128)  # Chalice's defaults
    assert notify.environment == described.functions[project.WEBSOCKET_CONNECT].environment


def test_a_template_ref_to_a_function_becomes_its_deployed_name_once_the_app_is_known() -> None:
    probe = project.load(APPS / "probe", "dev")
    message = probe.functions[project.WEBSOCKET_MESSAGE]
    assert "NOTIFY_FUNCTION" not in message.environment  # `notify` is not known yet
    assert any("NOTIFY_FUNCTION" in warning for warning in probe.warnings)
    described = probe.with_pure_functions(["echo", "fail", "notify"])
    message = described.functions[project.WEBSOCKET_MESSAGE]
    assert message.environment["NOTIFY_FUNCTION"] == "probe-dev-notify"
    assert described.warnings == ()


def test_a_pure_function_named_like_a_chalice_function_is_left_out(tmp_path: Path) -> None:
    loaded = project.load(write_project(tmp_path, {"app_name": "demo"}), "dev")
    described = loaded.with_pure_functions(["api_handler", "worker"])
    assert list(described.pure_functions) == ["worker"]
    assert described.pure_functions["worker"].lambda_name == "demo-dev-worker"
    assert "api_handler" in described.warnings[0]


def test_the_chat_projects_table_ref_gets_the_local_name() -> None:
    chat = project.load(ROOT, "dev")
    (table,) = chat.tables
    assert table.name == "chalice-chat-dev-ChatTable"
    for route in ("$connect", "$default", "$disconnect"):
        assert chat.function_for_route(route).environment["TABLE_NAME"] == table.name
    assert chat.merge_template == ROOT / ".chalice" / "resources.json"


def write_project(root: Path, config: object, template: object | None = None) -> Path:
    (root / ".chalice").mkdir(parents=True)
    (root / "app.py").write_text("")
    (root / ".chalice" / "config.json").write_text(json.dumps(config))
    if template is not None:
        (root / ".chalice" / "resources.json").write_text(json.dumps(template))
    return root


def test_table_names_and_template_variables(tmp_path: Path) -> None:
    template = {
        "Resources": {
            "Named": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": "fixed"}},
            "Unnamed": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
            "APIHandler": {
                "Properties": {
                    "Environment": {
                        "Variables": {
                            "A": {"Ref": "Named"},
                            "B": {"Ref": "Unnamed"},
                            "C": "literal",
                            "D": {"Fn::GetAtt": ["Named", "Arn"]},
                        }
                    }
                }
            },
        }
    }
    config = {"app_name": "demo", "environment_variables": {"D": "from config"}}
    loaded = project.load(write_project(tmp_path, config, template), "beta")
    assert [t.name for t in loaded.tables] == ["fixed", "demo-beta-Unnamed"]
    assert loaded.functions[project.API_HANDLER].environment == {
        "A": "fixed",
        "B": "demo-beta-Unnamed",
        "C": "literal",
        "D": "from config",
    }
    assert len(loaded.warnings) == 1 and "APIHandler: D" in loaded.warnings[0]
    assert loaded.api_stage == "api"  # Chalice's default


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: None, "no app.py in"),
        (lambda root: (root / "app.py").write_text(""), "config.json is missing"),
        (
            lambda root: (
                write_project(root, {"app_name": "x"})
                .joinpath(".chalice", "config.json")
                .write_text("{")
            ),
            "is not valid JSON",
        ),
        (lambda root: write_project(root, {"version": "2.0"}), "app_name is missing"),
    ],
)
def test_broken_projects_say_what_is_wrong(
    tmp_path: Path, setup: Callable[[Path], object], message: str
) -> None:
    root = tmp_path / "project"
    root.mkdir()
    setup(root)
    with pytest.raises(project.ProjectError, match=message):
        project.load(root)


def test_a_missing_merge_template_flag_is_an_error(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", {"app_name": "x"})
    with pytest.raises(project.ProjectError, match="does not exist"):
        project.load(root, merge_template="nope.json")


def test_a_yaml_merge_template_works_like_chalice_package(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", {"app_name": "x"})
    (root / "extra.yaml").write_text(
        "Resources:\n"
        "  T:\n"
        "    Type: AWS::DynamoDB::Table\n"
        "    Properties: {}\n"
        "  WebsocketMessage:\n"
        "    Properties:\n"
        "      Environment:\n"
        "        Variables:\n"
        "          TABLE: !Ref T\n"
    )
    loaded = project.load(root, merge_template="extra.yaml")
    assert loaded.function_for_route("$default").environment == {"TABLE": "x-dev-T"}


# Handler environments and IPC ---------------------------------------------------------

ENDPOINTS = environment.Endpoints(
    aws="http://127.0.0.1:1",
    dynamodb="http://127.0.0.1:2",
    connections="https://c",
    ca_bundle="b",
    lambda_api="http://127.0.0.1:3",
)


def test_handler_environments_hold_lambdas_variables_and_nothing_from_the_shell(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ONLY_IN_MY_SHELL", "1")
    monkeypatch.setenv("AWS_PROFILE", "work")
    env = environment.handler_environment(
        "app-dev-message",
        1769,
        {"TABLE": "t", "AWS_REGION": "eu-west-9"},
        ROOT,
        "eu-west-1",
        ENDPOINTS,
    )
    assert "ONLY_IN_MY_SHELL" not in env and "AWS_PROFILE" not in env and "HOME" not in env
    assert env["TABLE"] == "t"
    # Lambda's own variables, which win over the function's.
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "app-dev-message"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "1769"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/app-dev-message"
    assert env["AWS_EXECUTION_ENV"].startswith("AWS_Lambda_python3.")
    assert env["LAMBDA_TASK_ROOT"] == str(ROOT) and env["TZ"] == ":UTC"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
    # Every client pointed at this machine, with the fake credentials.
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1"
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == "http://127.0.0.1:2"
    assert env["AWS_ENDPOINT_URL_LAMBDA"] == "http://127.0.0.1:3"  # boto3.client("lambda")
    assert env["AWS_ACCESS_KEY_ID"] == "testing" and env["AWS_SESSION_TOKEN"] == "testing"
    assert env["AWS_CONFIG_FILE"] == os.devnull and env["AWS_CA_BUNDLE"] == "b"


def test_an_off_machine_dynamodb_gets_the_developers_resolved_credentials() -> None:
    mine = environment.Credentials("AKIAREAL", "secret")
    env = environment.handler_environment("f", 128, {}, ROOT, "eu-west-1", ENDPOINTS, mine)
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("AKIAREAL", "secret")
    assert "AWS_SESSION_TOKEN" not in env
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1"


def test_every_function_gets_its_own_environment_as_chalice_deploys_it() -> None:
    launch = process_pool.Launch("us-east-1", ENDPOINTS, "127.0.0.1:1")
    chat = project.load(ROOT, "dev").with_pure_functions(["fanout"])
    specs = {
        name: process_pool.worker_spec(launch, chat, function).env
        for name, function in {**chat.functions, **chat.pure_functions}.items()
    }
    names = {name: env["AWS_LAMBDA_FUNCTION_NAME"] for name, env in specs.items()}
    assert names == {
        "websocket_connect": "chalice-chat-dev-websocket_connect",
        "websocket_message": "chalice-chat-dev-websocket_message",
        "websocket_disconnect": "chalice-chat-dev-websocket_disconnect",
        "api_handler": "chalice-chat-dev",
        "fanout": "chalice-chat-dev-fanout",
    }
    assert specs["websocket_message"]["TABLE_NAME"] == "chalice-chat-dev-ChatTable"
    assert specs["websocket_message"]["FANOUT_FUNCTION"] == "chalice-chat-dev-fanout"


def test_only_the_functions_in_use_are_checked_for_their_tables() -> None:
    chat = project.load(ROOT, "dev")
    in_use = {project.WEBSOCKET_CONNECT, project.WEBSOCKET_MESSAGE}
    assert chat.table_variables(in_use) == [
        ("websocket_connect", "TABLE_NAME", "chalice-chat-dev-ChatTable"),
        ("websocket_message", "TABLE_NAME", "chalice-chat-dev-ChatTable"),
    ]


def test_ipc_lines_round_trip_and_decimals_become_floats_as_in_lambda() -> None:
    from decimal import Decimal

    line = ipc.encode({"body": "two\nlines", "n": Decimal("1.5"), "m": Decimal(2)})
    assert line.count(b"\n") == 1
    assert ipc.decode(line) == {"body": "two\nlines", "n": 1.5, "m": 2.0}
    with pytest.raises(TypeError):
        ipc.encode({"x": object()})


# Lambda's Invoke API -------------------------------------------------------------------

REGION = "eu-west-1"
DESCRIBED = project.load(APPS / "probe", "dev").with_pure_functions(["echo", "fail", "notify"])
ECHO_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:probe-dev-echo"


def accept(
    function_name: str = "echo",
    payload: bytes | None = b"{}",
    qualifier: str | None = None,
    invocation_type: str | None = None,
    log_type: str | None = None,
) -> invoke_models.Invocation | invoke_models.Reply:
    return invoke_models.accept(
        DESCRIBED,
        REGION,
        function_name=function_name,
        qualifier=qualifier,
        invocation_type=invocation_type,
        log_type=log_type,
        payload=payload,
    )


def invocation(**options: Any) -> invoke_models.Invocation:
    outcome = accept(**options)
    assert isinstance(outcome, invoke_models.Invocation), outcome
    return outcome


def parse_invoke(reply: invoke_models.Reply) -> dict:
    """What botocore's `lambda` client makes of a reply to Invoke."""
    model = botocore.session.get_session().get_service_model("lambda")
    response = {
        "status_code": reply.status,
        "headers": HeadersDict(reply.headers),
        "body": reply.body,
    }
    shape = model.operation_model("Invoke").output_shape
    return create_parser("rest-json").parse(response, shape)


@functools.cache
def lambda_exceptions() -> Any:
    import boto3

    return boto3.client("lambda").exceptions


def refusal(outcome: object) -> tuple[int, str, str]:
    """A refused Invoke as boto3 sees it: status, error code, message."""
    assert isinstance(outcome, invoke_models.Reply), outcome
    error = parse_invoke(outcome)["Error"]
    # boto3 raises the modelled exception; Lambda's ValidationException has no model.
    raised = lambda_exceptions().from_code(error["Code"]).__name__
    assert raised == ("ClientError" if error["Code"] == "ValidationException" else error["Code"])
    return outcome.status, error["Code"], error["Message"]


@pytest.mark.parametrize(
    ("name", "qualifier", "arn"),
    [
        ("echo", None, ECHO_ARN),
        ("probe-dev-echo", None, ECHO_ARN),
        ("probe-dev-echo:$LATEST", None, ECHO_ARN + ":$LATEST"),
        ("echo", "$LATEST", ECHO_ARN + ":$LATEST"),
        ("123456789012:function:probe-dev-echo", None, ECHO_ARN),
        ("function:probe-dev-echo", None, ECHO_ARN),
        ("arn:aws:lambda:us-east-1:123456789012:function:probe-dev-echo", None, ECHO_ARN),
        (
            "arn:aws:lambda:eu-west-1:123456789012:function:probe-dev-echo:$LATEST",
            "$LATEST",
            ECHO_ARN + ":$LATEST",
        ),
    ],
)
def test_function_names_short_deployed_arns_and_qualifiers_resolve(
    name: str, qualifier: str | None, arn: str
) -> None:
    accepted = invocation(function_name=name, qualifier=qualifier)
    assert accepted.function is DESCRIBED.pure_functions["echo"]
    assert accepted.invoked_arn == arn
    request = accepted.worker_request()
    assert (request["kind"], request["handler"], request["event"]) == ("lambda", "echo", {})
    assert request["context"] == {"request_id": accepted.request_id, "invoked_function_arn": arn}


NOT_FOUND = (404, "ResourceNotFoundException")


@pytest.mark.parametrize(
    ("name", "qualifier", "expected"),
    [
        ("nope", None, NOT_FOUND),
        ("probe-dev-websocket_message", None, NOT_FOUND),  # only pure functions are invoked
        ("probe-dev", None, NOT_FOUND),
        ("echo", "live", NOT_FOUND),  # Chalice publishes no versions and makes no aliases
        ("echo:1", None, NOT_FOUND),
        ("echo:1", "2", (400, "InvalidParameterValueException")),
        ("bad name", None, (400, "ValidationException")),
        ("echo", "no spaces", (400, "ValidationException")),
    ],
)
def test_unknown_functions_versions_and_malformed_names_are_refused_like_lambda(
    name: str, qualifier: str | None, expected: tuple[int, str]
) -> None:
    assert refusal(accept(function_name=name, qualifier=qualifier))[:2] == expected


def test_refusals_say_what_lambda_says() -> None:
    nope = "Function not found: arn:aws:lambda:eu-west-1:123456789012:function:nope"
    assert refusal(accept(function_name="nope"))[2] == nope
    assert refusal(accept(qualifier="live"))[2] == f"Function not found: {ECHO_ARN}:live"
    mismatch = refusal(accept(function_name="echo:1", qualifier="2"))[2]
    assert mismatch.startswith("The derived qualifier from the function name does not match")
    invalid = refusal(accept(function_name="bad name"))[2]
    assert invalid.startswith("1 validation error detected: Value 'bad name' at 'functionName'")


def test_invocation_and_log_types_are_validated() -> None:
    for invocation_type in ("Event", "RequestResponse", "DryRun", None):
        invocation(invocation_type=invocation_type)
    status, code, message = refusal(accept(invocation_type="Later"))
    assert (status, code) == (400, "ValidationException")
    assert "Value 'Later' at 'invocationType'" in message
    assert invocation(log_type="Tail").log_tail and not invocation(log_type="None").log_tail
    assert refusal(accept(log_type="All"))[:2] == (400, "ValidationException")


def test_payloads_are_json_up_to_6_mb_synchronous_and_1_mb_asynchronous() -> None:
    assert invocation(payload=b"").event == {}  # no payload: an empty object, as Lambda passes
    assert invocation(payload=b'[1, "two"]').event == [1, "two"]
    status, code, message = refusal(accept(payload=b"{nope"))
    assert (status, code) == (400, "InvalidRequestContentException")
    assert message.startswith("Could not parse request body into json")
    assert refusal(accept(payload=b"\xff"))[1] == "InvalidRequestContentException"
    assert invocation(invocation_type="DryRun", payload=b"{nope").event is None  # not parsed

    sync, asynchronous = invoke_models.SYNC_PAYLOAD_BYTES, invoke_models.ASYNC_PAYLOAD_BYTES
    assert (sync, asynchronous) == (6 * 1024 * 1024, 1024 * 1024)
    fits = b'"' + b"x" * (asynchronous - 2) + b'"'
    assert invocation(invocation_type="Event", payload=fits).event == "x" * (asynchronous - 2)
    status, code, message = refusal(accept(invocation_type="Event", payload=fits + b" "))
    assert (status, code) == (413, "RequestTooLargeException")
    assert "smaller than 1048576 bytes" in message
    invocation(payload=b" " * (sync - 2) + b"{}")
    assert refusal(accept(payload=b" " * (sync + 1)))[:2] == (413, "RequestTooLargeException")
    assert refusal(accept(payload=None))[:2] == (413, "RequestTooLargeException")  # unread


def test_a_result_parses_with_status_version_and_payload() -> None:
    accepted = invocation()
    reply = invoke_models.completed(accepted, process_pool.Result({"ok": [1, 2]}, duration_ms=3))
    parsed = parse_invoke(reply)
    assert parsed["StatusCode"] == 200 and "FunctionError" not in parsed
    assert parsed["ExecutedVersion"] == "$LATEST"
    assert parsed["ResponseMetadata"]["RequestId"] == accepted.request_id
    assert json.loads(parsed["Payload"]) == {"ok": [1, 2]}
    assert "LogResult" not in parsed
    assert (
        json.loads(
            parse_invoke(invoke_models.completed(accepted, process_pool.Result()))["Payload"]
        )
        is None
    )


def test_queued_and_dry_run_answers_parse_as_202_and_204() -> None:
    event, dry = invocation(invocation_type="Event"), invocation(invocation_type="DryRun")
    assert parse_invoke(invoke_models.queued(event))["StatusCode"] == 202
    assert invoke_models.queued(event).body == b""
    assert parse_invoke(invoke_models.dry_run(dry))["StatusCode"] == 204


def failed(failure: process_pool.Failure) -> tuple[dict, dict]:
    """A failed RequestResponse: what botocore parses, and Lambda's error document in it."""
    accepted = invocation()
    result = process_pool.Result(error="a line for the log", failure=failure)
    parsed = parse_invoke(invoke_models.completed(accepted, result))
    assert parsed["StatusCode"] == 200 and parsed["FunctionError"] == "Unhandled"
    return parsed, json.loads(parsed["Payload"])


def test_a_raised_exception_answers_unhandled_with_lambdas_error_document() -> None:
    trace = ('  File "app.py", line 3, in fail\n    raise ValueError("no")\n',)
    parsed, document = failed(process_pool.Failure(ipc.EXCEPTION, "no", "ValueError", trace))
    assert document == {
        "errorMessage": "no",
        "errorType": "ValueError",
        "requestId": parsed["ResponseMetadata"]["RequestId"],
        "stackTrace": list(trace),
    }


PLATFORM_FAILURES = [
    (ipc.TIMEOUT, "Task timed out after 3.00 seconds", "Sandbox.Timedout", "Error: Task timed"),
    (ipc.EXITED, "exit status 3", "Runtime.ExitError", "Runtime exited with error: exit status 3"),
    (ipc.MARSHAL, "Object of type set", "Runtime.MarshalError", "Unable to marshal response: Obj"),
    (ipc.TOO_LARGE, "too big", "Function.ResponseSizeTooLarge", "size (6291556 bytes)."),
    (
        ipc.NO_WORKER,
        "Traceback\nKeyError: 'X'",
        "Runtime.ImportModuleError",
        "'app': KeyError: 'X'",
    ),
]


@pytest.mark.parametrize(("kind", "detail", "error_type", "message"), PLATFORM_FAILURES)
def test_platform_failures_answer_unhandled_as_lambda_words_them(
    kind: str, detail: str, error_type: str, message: str
) -> None:
    parsed, document = failed(process_pool.Failure(kind, detail))
    assert document["errorType"] == error_type
    assert message in document["errorMessage"]
    if kind in (ipc.TIMEOUT, ipc.EXITED):
        request_id = parsed["ResponseMetadata"]["RequestId"]
        assert document["errorMessage"].startswith(f"RequestId: {request_id} Error: ")


def test_a_result_over_6_mb_is_a_function_error() -> None:
    big = "x" * invoke_models.RESPONSE_PAYLOAD_BYTES
    parsed = parse_invoke(invoke_models.completed(invocation(), process_pool.Result(big)))
    assert parsed["FunctionError"] == "Unhandled"
    assert json.loads(parsed["Payload"])["errorType"] == "Function.ResponseSizeTooLarge"


def test_log_tail_is_the_base64_of_the_last_4_kb_with_start_end_and_report() -> None:
    import base64

    accepted = invocation(log_type="Tail")
    result = process_pool.Result({}, duration_ms=12.3, log="hello\n")
    parsed = parse_invoke(invoke_models.completed(accepted, result))
    log = base64.b64decode(parsed["LogResult"]).decode()
    rid = accepted.request_id
    assert log.startswith(f"START RequestId: {rid} Version: $LATEST\nhello\nEND RequestId: {rid}\n")
    assert f"REPORT RequestId: {rid}\tDuration: 12.30 ms\tBilled Duration: 13 ms" in log
    assert "Memory Size: 256 MB" in log
    long = process_pool.Result({}, log="y" * 10_000)
    tail = base64.b64decode(parse_invoke(invoke_models.completed(accepted, long))["LogResult"])
    assert len(tail) == invoke_models.LOG_TAIL_BYTES and tail.endswith(b"\t\n")


# The embedded DynamoDB's partition query ------------------------------------------------

QUERIES: list[dict[str, Any]] = [
    {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "P7"}}},
    {
        "KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
        "ExpressionAttributeValues": {":p": {"S": "P7"}, ":s": {"S": "S01"}},
    },
    {
        "KeyConditionExpression": "pk = :p AND sk BETWEEN :a AND :b",
        "ExpressionAttributeValues": {":p": {"S": "P3"}, ":a": {"S": "S05"}, ":b": {"S": "S22"}},
        "ScanIndexForward": False,
    },
    {
        "KeyConditionExpression": "pk = :p AND sk < :b",
        "FilterExpression": "n > :n",
        "ExpressionAttributeValues": {":p": {"S": "P3"}, ":b": {"S": "S30"}, ":n": {"N": "10"}},
        "PaginationConfig": {"PageSize": 7},
    },
    {
        "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": {"S": "P9"}},
        "ProjectionExpression": "sk",
        "ScanIndexForward": False,
        "PaginationConfig": {"PageSize": 4},
    },
    {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "nobody"}}},
]


def test_a_partition_query_answers_as_moto_does_and_reads_one_partition(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import boto3
    import moto.dynamodb.models as moto_models
    from moto import mock_aws

    from localgateway.aws import moto_query

    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        keys = {
            "AttributeDefinitions": [
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            "KeySchema": [
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            "BillingMode": "PAY_PER_REQUEST",
        }
        client.create_table(TableName="stock", **keys)
        monkeypatch.setattr(moto_models, "Table", moto_query.PartitionedTable)
        client.create_table(TableName="split", **keys)
        for table in ("stock", "split"):
            for start in range(0, 1200, 25):
                batch = [
                    {
                        "PutRequest": {
                            "Item": {
                                "pk": {"S": f"P{n % 30}"},
                                "sk": {"S": f"S{n // 30:02d}"},
                                "n": {"N": str(n % 17)},
                            }
                        }
                    }
                    for n in range(start, start + 25)
                ]
                client.batch_write_item(RequestItems={table: batch})
        read: list[int] = []
        listed = moto_query.PartitionedTable.all_items

        def counting(self: Any) -> Any:
            items = listed(self)
            read.append(len(items))
            return items

        monkeypatch.setattr(moto_query.PartitionedTable, "all_items", counting)

        def pages(table: str, query: dict[str, Any]) -> list[Any]:
            paginator = client.get_paginator("query")
            return [
                (page["Items"], page["Count"], page.get("LastEvaluatedKey"))
                for page in paginator.paginate(TableName=table, **query)
            ]

        for query in QUERIES:
            assert pages("split", query) == pages("stock", query), query
        assert read and max(read) <= 40  # one partition of 40, never the table's 1,200
