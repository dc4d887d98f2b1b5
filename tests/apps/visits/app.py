"""Counts the messages it has ever stored, in its table: the plugin's tests read from it
whether the tables were emptied between tests."""

import os

import boto3
from chalice import Chalice

app = Chalice(app_name="visits")
app.experimental_feature_flags.update(["WEBSOCKETS"])
app.websocket_api.session = boto3.session.Session()

table = boto3.resource("dynamodb").Table(os.environ["TABLE"])


@app.on_ws_message()
def message(event):
    table.put_item(Item={"PK": "visits", "SK": event.connection_id + event.body})
    stored = table.scan()["Count"]
    app.websocket_api.send(event.connection_id, f'{{"type": "count", "count": {stored}}}')
