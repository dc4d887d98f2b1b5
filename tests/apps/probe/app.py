"""A second Chalice app, run unchanged by the local gateway in its tests.

Unlike the chat it reaches DynamoDB through a plain module-level
`boto3.resource("dynamodb")` (so only boto3's standard endpoint settings can
make it local), records every connect and disconnect event in its own table
(declared in its merge template), has REST routes, and answers text commands
that make each gateway behaviour observable: `echo TEXT`, `return TEXT`,
`fail`, `sleep SECONDS`, `env`, `getenv NAME`, `event`, `info`, `close`, `send ID TEXT`, `exit`,
`sts`, `outside`, `notify TEXT`.

Its pure functions, invoked through the gateway's Lambda Invoke API: `echo`
(answers with its event, context and environment), `fail` (raises) and
`notify` (posts to a connection, as a fan-out function would; `notify TEXT`
invokes it asynchronously from the message handler).
"""

import json
import os
import socket
import time

import boto3
from chalice import Chalice, WebsocketDisconnectedError

import chalicelib

app = Chalice(app_name="probe")
app.experimental_feature_flags.update(["WEBSOCKETS"])
app.websocket_api.session = boto3.session.Session()

table = boto3.resource("dynamodb").Table(os.environ["EVENTS_TABLE"])
SHOWN_VARIABLES = (
    "GREETING",
    "LEVEL",
    "ONLY_MESSAGE",
    "ONLY_ECHO",
    "NOTIFY_FUNCTION",
    "EVENTS_TABLE",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ACCESS_KEY_ID",
)


def record(kind, event):
    table.put_item(
        Item={"pk": event.connection_id, "sk": kind, "event": json.dumps(event.to_dict())}
    )


def environment():
    return {name: os.environ.get(name) for name in SHOWN_VARIABLES}


@app.on_ws_connect()
def connect(event):
    record("connect", event)
    query = event.to_dict().get("queryStringParameters") or {}
    try:
        app.websocket_api.send(event.connection_id, "too early")
        early = "sent"
    except WebsocketDisconnectedError:
        early = "gone"
    table.put_item(Item={"pk": event.connection_id, "sk": "early-send", "outcome": early})
    if "status" in query:
        return {"statusCode": int(query["status"]), "body": "refused by the app"}
    if "fail" in query:
        raise RuntimeError("connect failed on purpose")
    if "protocol" in query:
        return {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": query["protocol"]}}
    return None


@app.on_ws_message()
def message(event):
    command, _, argument = event.body.partition(" ")
    reply = None
    if command == "echo":
        app.websocket_api.send(event.connection_id, argument)
    elif command == "return":
        return {"statusCode": 200, "body": argument}
    elif command == "fail":
        raise RuntimeError("failed on purpose")
    elif command == "sleep":
        time.sleep(float(argument))
        reply = f"slept {argument}"
    elif command == "env":
        reply = json.dumps(environment())
    elif command == "getenv":
        reply = json.dumps(os.environ.get(argument))
    elif command == "event":
        reply = json.dumps(event.to_dict())
    elif command == "info":
        info = app.websocket_api.info(event.connection_id)
        reply = json.dumps(info, default=str)
    elif command == "close":
        app.websocket_api.close(event.connection_id)
    elif command == "send":
        target, _, text = argument.partition(" ")
        try:
            app.websocket_api.send(target, text)
            reply = "sent"
        except WebsocketDisconnectedError:
            reply = "gone"
    elif command == "exit":
        os._exit(3)
    elif command == "sts":
        reply = boto3.client("sts").get_caller_identity()["Account"]
    elif command == "notify":
        payload = {
            "connection_id": event.connection_id,
            "domain_name": event.domain_name,
            "stage": event.stage,
            "text": argument,
        }
        response = boto3.client("lambda").invoke(
            FunctionName=os.environ["NOTIFY_FUNCTION"],
            InvocationType="Event",
            Payload=json.dumps(payload),
        )
        reply = f"invoked: {response['StatusCode']}"
    elif command == "outside":
        try:
            socket.create_connection(("192.0.2.1", 443), timeout=2).close()
            reply = "reached the internet"
        except Exception as error:
            reply = f"blocked: {type(error).__name__}"
    else:
        reply = f"{chalicelib.UNKNOWN_PREFIX}: {event.body}"
    if reply is not None:
        app.websocket_api.send(event.connection_id, reply)
    return None


@app.on_ws_disconnect()
def disconnect(event):
    record("disconnect", event)


@app.lambda_function(name="echo")
def echo(event, context):
    print(f"echo was here: {json.dumps(event)}")
    app.log.error("echo logged this")  # app.log passes errors only, without app.debug
    if isinstance(event, dict) and "sleep" in event:
        time.sleep(float(event["sleep"]))
    if isinstance(event, dict) and "exit" in event:
        os._exit(int(event["exit"]))
    return {
        "event": event,
        "context": {
            "function_name": context.function_name,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "aws_request_id": context.aws_request_id,
            "invoked_function_arn": context.invoked_function_arn,
            "remaining_ms": context.get_remaining_time_in_millis(),
        },
        "environment": environment(),
        "pid": os.getpid(),
    }


@app.lambda_function(name="fail")
def fail(event, context):
    raise ValueError("failed on purpose")


@app.lambda_function(name="notify")
def notify(event, context):
    """Post `text` to a connection through the API the payload names, after `sleep` seconds."""
    time.sleep(float(event.get("sleep", 0)))
    app.websocket_api.configure(event["domain_name"], event["stage"])
    app.websocket_api.send(event["connection_id"], event["text"])


@app.route("/hello/{name}")
def hello(name):
    return {"hello": name}


@app.route("/env")
def rest_environment():
    return environment()


@app.route("/recorded/{connection_id}")
def recorded(connection_id):
    items = table.query(
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": connection_id},
        ConsistentRead=True,
    )["Items"]
    return {
        item["sk"]: json.loads(item["event"]) if "event" in item else item["outcome"]
        for item in items
    }
