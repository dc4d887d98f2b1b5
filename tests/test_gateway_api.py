"""The local gateway behaves like API Gateway, checked with real clients against a second app.

`tests/apps/probe` runs unchanged under `python -m localgateway`; the tests
use real `websockets` clients and the real boto3 `apigatewaymanagementapi`
and `lambda` clients, and read the events the app recorded in its own
DynamoDB table.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import CONTEXT_KEYS, RunningGateway

AWS_ID = re.compile(r"[A-Za-z0-9]{15}=")
REQUEST_TIME = re.compile(r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000")


def event_of(ws: Any) -> dict[str, Any]:
    ws.send("event")
    return json.loads(ws.recv(timeout=10))


def connection_id(ws: Any) -> str:
    return event_of(ws)["requestContext"]["connectionId"]


def recorded(gateway: RunningGateway, cid: str, kind: str, timeout: float = 10) -> Any:
    """What the app stored about a connection (through its REST route), once it is there."""
    deadline = time.monotonic() + timeout
    while True:
        status, items = gateway.get(f"/recorded/{cid}")
        assert status == 200, items
        if kind in items or time.monotonic() > deadline:
            return items.get(kind)
        time.sleep(0.05)


def closed(ws: Any, timeout: float = 10) -> ConnectionClosed:
    with pytest.raises(ConnectionClosed) as info:
        while True:
            ws.recv(timeout=timeout)
    return info.value


# Events -------------------------------------------------------------------------------


def test_connect_event_carries_headers_query_strings_and_every_context_key(
    probe_gateway: RunningGateway,
) -> None:
    with probe_gateway.connect("?room=a&tag=x&tag=y", additional_headers={"X-Probe": "1"}) as ws:
        cid = connection_id(ws)
        event = recorded(probe_gateway, cid, "connect")
    context = event["requestContext"]
    assert set(context) >= CONTEXT_KEYS
    assert context["eventType"] == "CONNECT" and context["routeKey"] == "$connect"
    assert context["stage"] == "ws" and context["messageDirection"] == "IN"
    assert context["identity"] == {
        "sourceIp": "127.0.0.1",
        "userAgent": ws.request.headers["User-Agent"],
    }
    assert context["domainName"] == probe_gateway.endpoints["connections_tls"].split("/")[2]
    assert REQUEST_TIME.fullmatch(context["requestTime"])
    assert event["isBase64Encoded"] is False
    assert event["queryStringParameters"] == {"room": "a", "tag": "y"}
    assert event["multiValueQueryStringParameters"] == {"room": ["a"], "tag": ["x", "y"]}
    headers = event["headers"]
    assert {"Host", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "X-Forwarded-For"} <= set(headers)
    assert headers["X-Probe"] == "1" and event["multiValueHeaders"]["X-Probe"] == ["1"]


def test_message_event_has_body_message_id_and_aws_like_ids(probe_gateway: RunningGateway) -> None:
    with probe_gateway.connect() as ws:
        event = event_of(ws)
    context = event["requestContext"]
    assert set(context) >= CONTEXT_KEYS
    assert context["eventType"] == "MESSAGE" and context["routeKey"] == "$default"
    assert event["body"] == "event"
    assert context["connectedAt"] <= context["requestTimeEpoch"]
    for key in ("connectionId", "messageId", "requestId"):
        assert AWS_ID.fullmatch(context[key]), context[key]
    assert re.fullmatch(r"[a-z0-9]{10}", context["apiId"])


def test_disconnect_event_reports_the_clients_close_code_and_reason(
    probe_gateway: RunningGateway,
) -> None:
    with probe_gateway.connect() as ws:
        cid = connection_id(ws)
        ws.close(4001, "done here")
    event = recorded(probe_gateway, cid, "disconnect")
    context = event["requestContext"]
    assert set(context) >= CONTEXT_KEYS
    assert context["eventType"] == "DISCONNECT" and context["routeKey"] == "$disconnect"
    assert context["disconnectStatusCode"] == 4001
    assert context["disconnectReason"] == "done here"


def test_disconnect_tells_the_close_the_gateway_made_for_invalid_utf8(
    probe_gateway: RunningGateway,
) -> None:
    with probe_gateway.connect() as ws:
        cid = connection_id(ws)
        ws.send(b"\xff\xfe not UTF-8", text=True)  # a text frame the gateway must refuse
        error = closed(ws)
    assert error.rcvd is not None and error.rcvd.code == 1007
    context = recorded(probe_gateway, cid, "disconnect")["requestContext"]
    assert context["disconnectStatusCode"] == 1007
    assert "UTF-8" in context["disconnectReason"]


# $connect -----------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "status"), [("?status=403", 403), ("?status=401", 401)])
def test_a_non_2xx_connect_response_rejects_the_upgrade_with_its_status(
    probe_gateway: RunningGateway, query: str, status: int
) -> None:
    with pytest.raises(InvalidStatus) as info:
        probe_gateway.connect(query)
    assert info.value.response.status_code == status
    assert info.value.response.body == b"refused by the app"


def test_a_failing_connect_handler_rejects_with_500(probe_gateway: RunningGateway) -> None:
    with pytest.raises(InvalidStatus) as info:
        probe_gateway.connect("?fail=1")
    assert info.value.response.status_code == 500
    assert "RuntimeError: connect failed on purpose" in probe_gateway.log()


def test_connect_runs_before_the_connection_exists(probe_gateway: RunningGateway) -> None:
    """A post to the connection from its own $connect handler finds it gone, as on AWS."""
    with probe_gateway.connect() as ws:
        cid = connection_id(ws)
        assert recorded(probe_gateway, cid, "early-send") == "gone"


def test_the_subprotocol_comes_from_the_connect_response(probe_gateway: RunningGateway) -> None:
    with probe_gateway.connect("?protocol=chat.v1", subprotocols=["chat.v1"]) as ws:
        assert ws.subprotocol == "chat.v1"


# Messages -----------------------------------------------------------------------------


def test_a_returned_body_goes_back_to_the_caller(probe_gateway: RunningGateway) -> None:
    with probe_gateway.connect() as ws:
        ws.send("return hello back")
        assert ws.recv(timeout=10) == "hello back"


@pytest.mark.parametrize("command", ["fail", "exit"])
def test_a_failing_handler_gives_the_caller_aws_internal_server_error_frame(
    probe_gateway: RunningGateway, command: str
) -> None:
    with probe_gateway.connect() as ws:
        cid = connection_id(ws)
        ws.send(command)
        frame = json.loads(ws.recv(timeout=10))
        assert frame["message"] == "Internal server error"
        assert frame["connectionId"] == cid
        assert AWS_ID.fullmatch(frame["requestId"])
        ws.send("return still here")  # a dead worker is replaced
        assert ws.recv(timeout=20) == "still here"


def test_a_handler_that_outlives_its_timeout_fails_like_lambda(
    probe_gateway: RunningGateway,
) -> None:
    """websocket_message has lambda_timeout 3 in the probe's config.json."""
    with probe_gateway.connect() as ws:
        started = time.monotonic()
        ws.send("sleep 10")
        frame = json.loads(ws.recv(timeout=15))
        assert frame["message"] == "Internal server error"
        assert 2.5 < time.monotonic() - started < 8
    assert "Task timed out after 3.00 seconds" in probe_gateway.log()


def test_binary_frames_reach_the_app_as_base64_text(probe_gateway: RunningGateway) -> None:
    with probe_gateway.connect() as ws:
        ws.send(b"\x00\x01\xfe")
        assert ws.recv(timeout=10) == "unknown: AAH+"


def test_128_kb_pass_and_a_larger_message_closes_with_1009(probe_gateway: RunningGateway) -> None:
    with probe_gateway.connect(max_size=None) as ws:
        cid = connection_id(ws)
        reply = "x" * (128 * 1024 - len("return "))
        ws.send("return " + reply)
        assert ws.recv(timeout=10) == reply
        ws.send("x" * (128 * 1024 + 1))
        error = closed(ws)
    assert error.rcvd is not None and error.rcvd.code == 1009
    context = recorded(probe_gateway, cid, "disconnect")["requestContext"]
    assert context["disconnectStatusCode"] == 1009
    assert context["disconnectReason"] == "Message too big: the limit is 131072 bytes"


# The @connections API -----------------------------------------------------------------


def test_post_to_connection_delivers_and_refuses_more_than_128_kb(
    probe_gateway: RunningGateway,
) -> None:
    client = probe_gateway.management()
    with probe_gateway.connect(max_size=None) as ws:
        cid = connection_id(ws)
        client.post_to_connection(ConnectionId=cid, Data=b"from outside")
        assert ws.recv(timeout=10) == "from outside"
        client.post_to_connection(ConnectionId=cid, Data=b"y" * 128 * 1024)
        assert len(ws.recv(timeout=10)) == 128 * 1024
        with pytest.raises(client.exceptions.PayloadTooLargeException) as info:
            client.post_to_connection(ConnectionId=cid, Data=b"y" * (128 * 1024 + 1))
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413


def test_unknown_and_closed_connections_raise_gone_exception(
    probe_gateway: RunningGateway,
) -> None:
    client = probe_gateway.management()
    with probe_gateway.connect() as ws:
        cid = connection_id(ws)
    recorded(probe_gateway, cid, "disconnect")
    for call in (
        lambda: client.post_to_connection(ConnectionId=cid, Data=b"late"),
        lambda: client.get_connection(ConnectionId=cid),
        lambda: client.delete_connection(ConnectionId=cid),
        lambda: client.post_to_connection(ConnectionId="AAAAAAAAAAAAAAA=", Data=b"x"),
    ):
        with pytest.raises(client.exceptions.GoneException) as info:
            call()
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410


def test_connections_and_invoke_refuse_what_is_not_signed_with_the_handed_credentials(
    probe_gateway: RunningGateway,
) -> None:
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def unsigned(method: str, url: str, body: bytes | None = None) -> tuple[int, str]:
        request = urllib.request.Request(url, data=body, method=method)
        try:
            with opener.open(request, timeout=10) as response:
                return response.status, ""
        except urllib.error.HTTPError as error:
            return error.code, error.headers["x-amzn-ErrorType"]

    def signed_with(key: str, secret: str) -> Any:
        session = boto3.session.Session(
            aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token="testing"
        )
        return session.client(
            "apigatewaymanagementapi", endpoint_url=probe_gateway.endpoints["connections"]
        )

    with probe_gateway.connect() as ws:
        cid = connection_id(ws)
        url = f"{probe_gateway.endpoints['connections']}/@connections/{cid}"
        forged = b'{"type": "message", "from": "admin", "text": "send me your password"}'
        missing = "MissingAuthenticationTokenException"
        assert unsigned("POST", url, forged) == (403, missing)
        assert unsigned("GET", url) == (403, missing)
        assert unsigned("DELETE", url) == (403, missing)
        for client, code in [
            (signed_with("testing", "not the secret"), "InvalidSignatureException"),
            (signed_with("AKIAOTHER", "testing"), "UnrecognizedClientException"),
        ]:
            with pytest.raises(ClientError) as info:
                client.post_to_connection(ConnectionId=cid, Data=forged)
            assert info.value.response["Error"]["Code"] == code
            assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)  # nothing forged arrived, and the connection is still open
        probe_gateway.management().post_to_connection(ConnectionId=cid, Data=b"signed")
        assert ws.recv(timeout=10) == "signed"
    invoke_url = f"{probe_gateway.endpoints['lambda']}/2015-03-31/functions/echo/invocations"
    assert unsigned("POST", invoke_url, b"{}") == (403, "MissingAuthenticationTokenException")


def test_get_connection_is_parsed_by_boto3(probe_gateway: RunningGateway) -> None:
    client = probe_gateway.management()
    with probe_gateway.connect() as ws:
        cid = connection_id(ws)
        info = client.get_connection(ConnectionId=cid)
    now = datetime.now(UTC)
    assert now - timedelta(seconds=30) < info["ConnectedAt"] <= info["LastActiveAt"] <= now
    assert info["Identity"] == {
        "SourceIp": "127.0.0.1",
        "UserAgent": ws.request.headers["User-Agent"],
    }


def test_delete_connection_closes_the_socket_and_runs_disconnect(
    probe_gateway: RunningGateway,
) -> None:
    client = probe_gateway.management()
    with probe_gateway.connect() as ws:
        cid = connection_id(ws)
        response = client.delete_connection(ConnectionId=cid)
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
        error = closed(ws)
    assert error.rcvd is not None and error.rcvd.code == 1000
    context = recorded(probe_gateway, cid, "disconnect")["requestContext"]
    assert context["disconnectStatusCode"] == 1000
    assert context["disconnectReason"] == "Connection Closed Normally"
    with pytest.raises(client.exceptions.GoneException):
        client.delete_connection(ConnectionId=cid)


def test_the_apps_own_websocket_api_reaches_connections_over_https(
    probe_gateway: RunningGateway,
) -> None:
    """send, info and close of the unchanged app, through boto3 and the TLS port."""
    with probe_gateway.connect() as alice, probe_gateway.connect() as bob:
        bob_id = connection_id(bob)
        alice.send(f"send {bob_id} psst")
        assert bob.recv(timeout=10) == "psst"
        assert alice.recv(timeout=10) == "sent"
        alice.send("send AAAAAAAAAAAAAAA= lost")
        assert alice.recv(timeout=10) == "gone"  # WebsocketDisconnectedError from a 410
        bob.send("info")
        info = json.loads(bob.recv(timeout=10))
        assert info["Identity"]["SourceIp"] == "127.0.0.1" and "ConnectedAt" in info
        bob.send("close")
        assert closed(bob).rcvd.code == 1000


def test_other_processes_reach_connections_and_wss_on_the_tls_port(
    probe_gateway: RunningGateway,
) -> None:
    client = probe_gateway.management(tls=True)
    with probe_gateway.connect(tls=True) as ws:
        cid = connection_id(ws)
        client.post_to_connection(ConnectionId=cid, Data="über TLS".encode())
        assert ws.recv(timeout=10) == "über TLS"


# Concurrency --------------------------------------------------------------------------


def test_a_slow_handler_never_stalls_other_connections(probe_gateway: RunningGateway) -> None:
    client = probe_gateway.management()
    with probe_gateway.connect() as slow, probe_gateway.connect() as quick:
        quick_id = connection_id(quick)
        slow.send("sleep 2")
        time.sleep(0.2)
        started = time.monotonic()
        quick.send("return quick")
        assert quick.recv(timeout=10) == "quick"
        client.get_connection(ConnectionId=quick_id)
        assert time.monotonic() - started < 1.5
        assert slow.recv(timeout=10) == "slept 2"


def test_more_slow_handlers_than_warm_workers_run_at_once(probe_gateway: RunningGateway) -> None:
    """Workers spawn on demand, as Lambda scales: four 2 s handlers take far less than 8 s.

    (2 s, within the 3 s timeout: a worker's first send creates its boto3 client, which
    takes longer while the other workers start on a loaded machine.)
    """
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(probe_gateway.connect()) for _ in range(4)]
        started = time.monotonic()
        for ws in sockets:
            ws.send("sleep 2")
        assert [ws.recv(timeout=30) for ws in sockets] == ["slept 2"] * 4
        assert time.monotonic() - started < 7


# REST routes, settings, tables --------------------------------------------------------


def test_rest_routes_are_served_like_chalice_local(probe_gateway: RunningGateway) -> None:
    assert probe_gateway.get("/hello/world") == (200, {"hello": "world"})
    assert probe_gateway.get("/no/such/route") == (403, {"message": "Missing Authentication Token"})


def test_environment_variables_layer_like_chalice_deploy(probe_gateway: RunningGateway) -> None:
    with probe_gateway.connect() as ws:
        ws.send("env")
        message_env = json.loads(ws.recv(timeout=10))
    _, rest_env = probe_gateway.get("/env")
    table = probe_gateway.endpoints["tables"]["EventsTable"]
    for env in (message_env, rest_env):
        assert env["GREETING"] == "hello from config.json"  # global
        assert env["LEVEL"] == "stage dev"  # the stage's wins
        assert env["EVENTS_TABLE"] == table == "probe-dev-EventsTable"  # the template's Ref
        assert env["AWS_ENDPOINT_URL_DYNAMODB"] == probe_gateway.endpoints["dynamodb"]
    assert message_env["ONLY_MESSAGE"] == "yes"  # stages.dev.lambda_functions.websocket_message
    assert rest_env["ONLY_MESSAGE"] is None


def test_nothing_leaves_the_machine(probe_gateway: RunningGateway) -> None:
    """Fake credentials; any AWS client lands on the embedded moto; raw sockets are refused."""
    with probe_gateway.connect() as ws:
        ws.send("env")
        assert json.loads(ws.recv(timeout=10))["AWS_ACCESS_KEY_ID"] == "testing"
        ws.send("sts")
        assert ws.recv(timeout=20) == "123456789012"  # moto's account, not a real one
        ws.send("outside")
        assert ws.recv(timeout=10) == "blocked: NetworkGuardError"


def test_handlers_see_lambdas_variables_and_nothing_from_the_shell(
    probe_gateway: RunningGateway,
) -> None:
    with probe_gateway.connect() as ws:
        for name, expected in [
            ("ONLY_IN_THE_SHELL", None),  # set for the gateway by tests/conftest.py
            ("HOME", None),
            ("AWS_LAMBDA_FUNCTION_NAME", "probe-dev-websocket_message"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
            ("TZ", ":UTC"),
        ]:
            ws.send(f"getenv {name}")
            assert json.loads(ws.recv(timeout=10)) == expected, name


def test_merge_template_tables_exist_in_the_embedded_dynamodb(
    probe_gateway: RunningGateway,
) -> None:
    dynamodb = boto3.client("dynamodb", endpoint_url=probe_gateway.endpoints["dynamodb"])
    assert dynamodb.list_tables()["TableNames"] == ["probe-dev-EventsTable"]


def test_one_log_line_per_connect_message_and_disconnect(probe_gateway: RunningGateway) -> None:
    with probe_gateway.connect() as ws:
        cid = connection_id(ws)
    recorded(probe_gateway, cid, "disconnect")
    time.sleep(0.2)
    lines = [line for line in probe_gateway.log().splitlines() if f" {cid} " in line]
    # The app answers "event" with a PostToConnection before its handler returns, so the
    # client may close (and $disconnect run) before the MESSAGE line is written.
    assert lines[0].split()[1:3] == ["CONNECT", "$connect"]
    assert sorted(line.split()[1:3] for line in lines[1:]) == [
        ["DISCONNECT", "$disconnect"],
        ["MESSAGE", "$default"],
    ]
    assert all(re.search(r" 200 +\d+ ms", line) for line in lines), lines


# Lambda's Invoke API, for the app's pure functions -------------------------------------

ECHO_ARN = "arn:aws:lambda:us-east-1:123456789012:function:probe-dev-echo"


def lambda_client(gateway: RunningGateway) -> Any:
    """The real boto3 `lambda` client, pointed at the gateway, without retries."""
    return boto3.session.Session().client(
        "lambda",
        endpoint_url=gateway.endpoints["lambda"],
        config=Config(retries={"total_max_attempts": 1}, read_timeout=30),
    )


def invoke(gateway: RunningGateway, name: str = "echo", event: Any = None, **options: Any) -> Any:
    """A RequestResponse invocation: the response and its decoded payload."""
    payload = json.dumps({} if event is None else event)
    response = lambda_client(gateway).invoke(FunctionName=name, Payload=payload, **options)
    return response, json.loads(response["Payload"].read())


def test_the_banner_and_endpoints_file_name_the_invoke_endpoint(
    probe_gateway: RunningGateway,
) -> None:
    endpoint = probe_gateway.endpoints["lambda"]
    assert endpoint == probe_gateway.endpoints["http"].rstrip("/")
    functions = "probe-dev-echo, probe-dev-fail, probe-dev-notify"
    assert f"Lambda        {endpoint}  (Invoke: {functions})" in probe_gateway.log()


def test_request_response_runs_the_function_with_its_context_and_settings(
    probe_gateway: RunningGateway,
) -> None:
    response, result = invoke(probe_gateway, event={"hello": "world"})
    assert response["StatusCode"] == 200 and "FunctionError" not in response
    assert response["ExecutedVersion"] == "$LATEST"
    assert result["event"] == {"hello": "world"}
    context = result["context"]
    assert context["function_name"] == "probe-dev-echo"
    assert context["memory_limit_in_mb"] == 256  # lambda_functions.echo
    assert context["aws_request_id"] == response["ResponseMetadata"]["RequestId"]
    assert context["invoked_function_arn"] == ECHO_ARN
    assert 0 < context["remaining_ms"] <= 2000  # stages.dev.lambda_functions.echo
    env = result["environment"]
    assert env["GREETING"] == "hello from config.json" and env["LEVEL"] == "stage dev"
    assert env["ONLY_ECHO"] == "yes" and env["ONLY_MESSAGE"] is None
    assert env["EVENTS_TABLE"] == "probe-dev-EventsTable"  # the merge template's Echo


@pytest.mark.parametrize(
    "name",
    [
        "echo",
        "probe-dev-echo",
        "probe-dev-echo:$LATEST",
        "123456789012:function:probe-dev-echo",
        ECHO_ARN,
        f"{ECHO_ARN}:$LATEST",
    ],
)
def test_the_short_name_the_deployed_name_and_arns_reach_the_function(
    probe_gateway: RunningGateway, name: str
) -> None:
    _, result = invoke(probe_gateway, name)
    assert result["context"]["function_name"] == "probe-dev-echo"
    assert result["context"]["invoked_function_arn"].startswith(ECHO_ARN)


def test_a_raising_function_answers_unhandled_with_its_error(
    probe_gateway: RunningGateway,
) -> None:
    response, error = invoke(probe_gateway, "fail")
    assert response["StatusCode"] == 200 and response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "ValueError" and error["errorMessage"] == "failed on purpose"
    assert error["requestId"] == response["ResponseMetadata"]["RequestId"]
    assert 'raise ValueError("failed on purpose")' in error["stackTrace"][-1]


def test_a_function_that_outlives_its_timeout_or_exits_fails_like_lambda(
    probe_gateway: RunningGateway,
) -> None:
    started = time.monotonic()
    response, error = invoke(probe_gateway, event={"sleep": 10})
    assert 1.5 < time.monotonic() - started < 6
    assert response["FunctionError"] == "Unhandled" and error["errorType"] == "Sandbox.Timedout"
    assert error["errorMessage"].endswith("Error: Task timed out after 2.00 seconds")
    response, error = invoke(probe_gateway, event={"exit": 3})
    assert response["FunctionError"] == "Unhandled" and error["errorType"] == "Runtime.ExitError"
    assert error["errorMessage"].endswith("Runtime exited with error: exit status 3")
    assert invoke(probe_gateway, event={"again": 1})[1]["event"] == {"again": 1}  # replaced


def test_log_type_tail_returns_the_end_of_the_invocations_log(
    probe_gateway: RunningGateway,
) -> None:
    response, _ = invoke(probe_gateway, event={"tail": 1}, LogType="Tail")
    request_id = response["ResponseMetadata"]["RequestId"]
    log = base64.b64decode(response["LogResult"]).decode()
    assert log.startswith(f"START RequestId: {request_id} Version: $LATEST\n")
    assert 'echo was here: {"tail": 1}\n' in log
    assert "ERROR - echo logged this\n" in log  # Chalice's app.log, whose handler predates the call
    assert f"END RequestId: {request_id}\nREPORT RequestId: {request_id}\tDuration: " in log


def test_a_message_handler_invokes_a_function_that_posts_back_to_the_caller(
    probe_gateway: RunningGateway,
) -> None:
    """The whole path: a message, an Event invocation by the app's unchanged boto3 client
    (NOTIFY_FUNCTION is the merge template's Ref), `notify` in another worker, @connections."""
    with probe_gateway.connect() as ws:
        ws.send("notify through lambda")
        assert {ws.recv(timeout=20), ws.recv(timeout=20)} == {"invoked: 202", "through lambda"}
    deadline = time.monotonic() + 10  # logged once the function has returned
    while not re.search(r"INVOKE +probe-dev-notify +Event +202 +\d+ ms", probe_gateway.log()):
        assert time.monotonic() < deadline, probe_gateway.log()
        time.sleep(0.05)


def test_event_answers_202_at_once_and_invocations_run_concurrently(
    probe_gateway: RunningGateway,
) -> None:
    client = lambda_client(probe_gateway)
    with probe_gateway.connect() as ws:
        context = event_of(ws)["requestContext"]
        started = time.monotonic()
        for text in ("first", "second"):
            payload = {
                "connection_id": context["connectionId"],
                "domain_name": context["domainName"],
                "stage": context["stage"],
                "text": text,
                "sleep": 3,
            }
            response = client.invoke(
                FunctionName="probe-dev-notify", InvocationType="Event", Payload=json.dumps(payload)
            )
            assert response["StatusCode"] == 202
        assert time.monotonic() - started < 1  # answered before the functions ran
        assert {ws.recv(timeout=20), ws.recv(timeout=20)} == {"first", "second"}
        assert time.monotonic() - started < 5.5  # one after the other: over 6 s


def test_dry_run_answers_204_without_running_the_function(probe_gateway: RunningGateway) -> None:
    response = lambda_client(probe_gateway).invoke(
        FunctionName="echo", InvocationType="DryRun", Payload=b'{"dry": "run"}'
    )
    assert response["StatusCode"] == 204
    assert '"dry": "run"' not in probe_gateway.log()


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("nope", {}),
        ("probe-dev-websocket_message", {}),  # only pure functions are served
        ("echo", {"Qualifier": "live"}),  # Chalice makes no aliases
    ],
)
def test_unknown_functions_raise_resource_not_found(
    probe_gateway: RunningGateway, name: str, options: dict[str, str]
) -> None:
    client = lambda_client(probe_gateway)
    with pytest.raises(client.exceptions.ResourceNotFoundException) as info:
        client.invoke(FunctionName=name, **options)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert "Function not found: arn:aws:lambda:us-east-1:123456789012:function:" in str(info.value)


def test_payloads_over_lambdas_quotas_and_bad_json_are_refused(
    probe_gateway: RunningGateway,
) -> None:
    client = lambda_client(probe_gateway)
    over_async = b'"' + b"x" * 1024 * 1024 + b'"'
    with pytest.raises(client.exceptions.RequestTooLargeException) as info:
        client.invoke(FunctionName="echo", InvocationType="Event", Payload=over_async)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    with pytest.raises(client.exceptions.RequestTooLargeException):
        client.invoke(FunctionName="echo", Payload=b" " * (6 * 1024 * 1024 + 1))
    with pytest.raises(client.exceptions.InvalidRequestContentException):
        client.invoke(FunctionName="echo", Payload=b"{not json")
    _, result = invoke(probe_gateway, event="x" * (1024 * 1024))  # synchronous: up to 6 MB
    assert len(result["event"]) == 1024 * 1024


def test_one_log_line_per_invocation(probe_gateway: RunningGateway) -> None:
    invoke(probe_gateway, event={"logged": 1})
    invoke(probe_gateway, "fail")
    with contextlib.suppress(Exception):
        invoke(probe_gateway, "missing-function")
    log = probe_gateway.log()
    assert re.search(r"INVOKE +probe-dev-echo +RequestResponse +200 +\d+ ms\n", log)
    failure = r"INVOKE +probe-dev-fail +RequestResponse +200 +\d+ ms  \(ValueError: failed on"
    assert re.search(failure, log)
    missing = r"INVOKE +missing-function +RequestResponse +404 not run  \(ResourceNotFound"
    assert re.search(missing, log)


# Routing, with an app that has custom routes and no $default -------------------------


@pytest.fixture(scope="module")
def routes_gateway(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.conftest import APPS, start_gateway

    gateway = start_gateway(
        tmp_path_factory.mktemp("routes"), APPS / "routes", "--no-autoreload", "--warm-workers", "1"
    )
    yield gateway
    gateway.stop()


def test_messages_route_on_request_body_action(routes_gateway: RunningGateway) -> None:
    with routes_gateway.connect() as ws:
        ws.send(json.dumps({"action": "shout", "text": "hi"}))
        assert ws.recv(timeout=10) == "HI"
        ws.send('{"action": "echo"}')
        assert ws.recv(timeout=10) == 'echo route: {"action": "echo"}'


@pytest.mark.parametrize("frame", ['{"action": "nope"}', "plain text", '{"no": "action"}'])
def test_without_a_match_or_default_the_caller_gets_forbidden(
    routes_gateway: RunningGateway, frame: str
) -> None:
    with routes_gateway.connect() as ws:
        ws.send(frame)
        reply = json.loads(ws.recv(timeout=10))
    assert reply["message"] == "Forbidden"
    assert AWS_ID.fullmatch(reply["connectionId"]) and AWS_ID.fullmatch(reply["requestId"])


# Idle and maximum duration, with small limits ----------------------------------------


@pytest.fixture(scope="module")
def short_gateway(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.conftest import APPS, start_gateway

    gateway = start_gateway(
        tmp_path_factory.mktemp("short"),
        APPS / "probe",
        "--no-autoreload",
        "--warm-workers",
        "1",
        "--idle-timeout",
        "1",
        "--max-connection-duration",
        "2.5",
    )
    yield gateway
    gateway.stop()


def test_an_idle_connection_is_closed_with_going_away(short_gateway: RunningGateway) -> None:
    with short_gateway.connect() as ws:
        cid = connection_id(ws)
        started = time.monotonic()
        error = closed(ws)
        assert 0.5 < time.monotonic() - started < 5
    assert error.rcvd is not None and error.rcvd.code == 1001
    context = recorded(short_gateway, cid, "disconnect")["requestContext"]
    assert context["disconnectStatusCode"] == 1001
    assert "idle" in context["disconnectReason"]


def test_messages_keep_a_connection_open_until_its_maximum_duration(
    short_gateway: RunningGateway,
) -> None:
    stop = threading.Event()
    with short_gateway.connect() as ws:
        started = time.monotonic()

        def keep_alive() -> None:
            while not stop.is_set():
                try:
                    ws.send("return ping")
                except ConnectionClosed:
                    return
                time.sleep(0.3)

        sender = threading.Thread(target=keep_alive)
        sender.start()
        try:
            error = closed(ws)
        finally:
            stop.set()
            sender.join()
        lifetime = time.monotonic() - started
    assert 2.0 < lifetime < 6, lifetime  # past the idle timeout, ended by the 2.5 s maximum
    assert error.rcvd is not None and error.rcvd.code == 1001
    assert "maximum" in error.rcvd.reason
