"""A websocket app with custom routes and no `$default`, `$connect` or `$disconnect`.

Chalice only declares `$default`, but API Gateway routes on
`$request.body.action`; this app registers two route keys through Chalice's own
registration machinery to check that the gateway routes like API Gateway and
answers `Forbidden` when nothing matches.
"""

import boto3
from chalice import Chalice

app = Chalice(app_name="routes")
app.experimental_feature_flags.update(["WEBSOCKETS"])
app.websocket_api.session = boto3.session.Session()


def on_route(route_key):
    return app._create_registration_function(
        handler_type="on_ws_message", registration_kwargs={"route_key": route_key}
    )


@on_route("echo")
def echo(event):
    return {"statusCode": 200, "body": "echo route: " + event.body}


@on_route("shout")
def shout(event):
    return {"statusCode": 200, "body": event.json_body["text"].upper()}
