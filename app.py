"""Realtime chat over API Gateway WebSocket APIs. The handlers delegate to chalicelib."""

from typing import Any

from chalice import Chalice
from chalice.app import WebsocketEvent

from chalicelib import service
from chalicelib.chat.events import from_chalice

app = Chalice(app_name="chalice-chat")
app.experimental_feature_flags.update(["WEBSOCKETS"])
app.websocket_api.session = service.websocket_session()


@app.on_ws_connect()
def connect(event: WebsocketEvent) -> dict | None:
    return service.chat(app.websocket_api).connect(from_chalice(event))


@app.on_ws_message()
def message(event: WebsocketEvent) -> None:
    service.chat(app.websocket_api).message(from_chalice(event))


@app.on_ws_disconnect()
def disconnect(event: WebsocketEvent) -> None:
    service.chat(app.websocket_api).disconnect(from_chalice(event))


@app.lambda_function(name="fanout")
def fanout(event: dict, context: Any) -> None:
    service.chat(app.websocket_api).fan_out(event)
