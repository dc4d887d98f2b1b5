"""The baseline: a broadcast written the way the Chalice websocket tutorial writes it.

Same members, same strongly consistent paginated Query as the chat service, but
one `app.websocket_api.send` after another. bench/ runs it beside the chat to
show what sending sequentially costs.
"""

import json
import os
from typing import Any

import boto3
from boto3.dynamodb.conditions import Key
from chalice import Chalice, WebsocketDisconnectedError
from chalice.app import WebsocketEvent

app = Chalice(app_name="sequential-chat")
app.experimental_feature_flags.update(["WEBSOCKETS"])
app.websocket_api.session = boto3.session.Session()
ROOM = "lobby"


def table() -> Any:
    return boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])


@app.on_ws_connect()
def connect(event: WebsocketEvent) -> None:
    table().put_item(Item={"room": ROOM, "connection_id": event.connection_id})


@app.on_ws_disconnect()
def disconnect(event: WebsocketEvent) -> None:
    table().delete_item(Key={"room": ROOM, "connection_id": event.connection_id})


@app.on_ws_message()
def message(event: WebsocketEvent) -> None:
    body = event.json_body if event.body.startswith("{") else {"data": event.body}
    frame = json.dumps({"type": "message", "text": body.get("data", "")})
    members, query = [], {"KeyConditionExpression": Key("room").eq(ROOM), "ConsistentRead": True}
    while True:
        page = table().query(**query)
        members += [item["connection_id"] for item in page["Items"]]
        if "LastEvaluatedKey" not in page:
            break
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    for connection_id in members:
        try:
            app.websocket_api.send(connection_id, frame)
        except WebsocketDisconnectedError:
            table().delete_item(Key={"room": ROOM, "connection_id": connection_id})
