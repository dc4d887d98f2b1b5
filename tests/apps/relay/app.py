"""A Chalice app for the in-process websocket client's tests: it refuses a connection
without `?nick=`, echoes a frame, relays `to ID: text` to another connection and tells
the sender when that connection has gone (WebsocketDisconnectedError)."""

from chalice import Chalice, Response, WebsocketDisconnectedError

app = Chalice(app_name="relay")
app.experimental_feature_flags.update(["WEBSOCKETS"])
nicks: dict[str, str] = {}


@app.on_ws_connect()
def connect(event):
    nick = (event.to_dict().get("queryStringParameters") or {}).get("nick")
    if not nick:
        return Response(body="nick required", status_code=403)
    nicks[event.connection_id] = nick
    return None


@app.on_ws_message()
def message(event):
    if event.body == "boom":
        raise RuntimeError("the handler failed")
    if event.body.startswith("to "):
        target, text = event.body[3:].split(": ", 1)
        try:
            app.websocket_api.send(target, f"{nicks[event.connection_id]}: {text}")
        except WebsocketDisconnectedError:
            app.websocket_api.send(event.connection_id, f"{target} has gone")
        return
    app.websocket_api.send(event.connection_id, f"echo {event.body}")


@app.on_ws_disconnect()
def disconnect(event):
    nicks.pop(event.connection_id, None)
