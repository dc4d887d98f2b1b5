"""A Chalice app laid out like the Chalice websocket chat tutorial: its merge template,
`resources.json`, sits at the project root, and its table name comes from that
template (a Ref), so the handlers read it from the environment with no default.

The message handler stores each frame and answers how many it has stored for
this connection, which only works if the gateway found the template, created
the table and gave the handlers its name.
"""

import os

import boto3
from boto3.dynamodb.conditions import Key
from chalice import Chalice

app = Chalice(app_name="tutorial")
app.experimental_feature_flags.update(["WEBSOCKETS"])
app.websocket_api.session = boto3.session.Session()

table = boto3.resource("dynamodb").Table(os.environ["TABLE"])


@app.on_ws_message()
def message(event):
    table.put_item(Item={"PK": event.connection_id, "SK": event.body})
    stored = table.query(KeyConditionExpression=Key("PK").eq(event.connection_id))["Count"]
    app.websocket_api.send(event.connection_id, f"stored {stored}")
