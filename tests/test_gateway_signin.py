"""Sign-in through the local gateway with real clients: the chat with AUTH=cognito, its user
pool and app client made from .chalice/resources.json in the gateway's embedded Cognito.

A browser cannot see why an upgrade failed, but wscat and scripts can: every
refusal is HTTP 401 with `{"code": "unauthorized", "message": ...}`.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from websockets.exceptions import InvalidStatus

from localgateway.testing.frames import ANY, wait_for_frame
from tests.conftest import ROOT, RunningGateway, start_gateway

USERS = {"demo": "Demo-password-1", "sam": "Sam-password-12"}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    users = [
        flag for name, secret in USERS.items() for flag in ("--cognito-user", f"{name}:{secret}")
    ]
    users += ["--cognito-group", "admins:sam"]
    running = start_gateway(
        tmp_path_factory.mktemp("signin"), ROOT, "--no-autoreload", "--env", "AUTH=cognito", *users
    )
    yield running
    running.stop()


def cognito(gateway: RunningGateway) -> Any:
    return boto3.client("cognito-idp", endpoint_url=gateway.endpoints["cognito"]["endpoint"])


def sign_in(gateway: RunningGateway, username: str, client_id: str | None = None) -> str:
    client_id = client_id or gateway.endpoints["cognito"]["clients"]["ChatUserPoolClient"]
    answer = cognito(gateway).initiate_auth(
        ClientId=client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": USERS[username]},
    )
    return answer["AuthenticationResult"]["AccessToken"]


def expired(token: str) -> str:
    """The same token with its expiry an hour in the past."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["exp"] = int(time.time()) - 3600
    encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{encoded}.{signature}"


def another_pools_token(gateway: RunningGateway) -> str:
    client = cognito(gateway)
    pool = client.create_user_pool(PoolName="somebody-elses")["UserPool"]["Id"]
    app = client.create_user_pool_client(
        UserPoolId=pool, ClientName="web", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"]
    )["UserPoolClient"]["ClientId"]
    client.admin_create_user(UserPoolId=pool, Username="demo", MessageAction="SUPPRESS")
    client.admin_set_user_password(
        UserPoolId=pool, Username="demo", Password=USERS["demo"], Permanent=True
    )
    return sign_in(gateway, "demo", app)


def test_the_upgrade_is_refused_with_401_without_a_valid_token(gateway: RunningGateway) -> None:
    queries = {
        "no token": "",
        "garbage": "?token=garbage",
        "expired": f"?token={expired(sign_in(gateway, 'demo'))}",
        "another pool": f"?token={another_pools_token(gateway)}",
    }
    for why, query in queries.items():
        with pytest.raises(InvalidStatus) as refused:
            gateway.connect(query)
        response = refused.value.response
        assert response.status_code == 401, why
        assert json.loads(response.body)["code"] == "unauthorized", why
    log = gateway.log()
    assert log.count(" 401 ") >= 4


def test_signed_in_users_chat_under_their_usernames_marked_verified(
    gateway: RunningGateway,
) -> None:
    with (
        gateway.connect(f"?token={sign_in(gateway, 'demo')}&nick=impostor") as demo,
        gateway.connect(f"?token={sign_in(gateway, 'sam')}") as sam,
    ):
        demo.send(json.dumps({"action": "join", "room": "lobby"}))
        sam.send(json.dumps({"action": "join", "room": "lobby"}))
        joined = wait_for_frame(sam, "joined", skipping=ANY)
        assert joined["nick"] == "sam"
        assert joined["members"] == joined["verified"] == ["demo", "sam"]
        demo.send(json.dumps({"action": "sendmessage", "data": "it is really me"}))
        heard = wait_for_frame(sam, "message", skipping=ANY)
        assert (heard["from"], heard["text"], heard["verified"]) == (
            "demo",
            "it is really me",
            True,
        )


def test_the_banner_gives_the_pool_the_client_the_users_and_a_sign_in_page(
    gateway: RunningGateway,
) -> None:
    about = gateway.endpoints["cognito"]
    assert set(about["user_pools"]) == {"ChatUserPool"}
    assert set(about["clients"]) == {"ChatUserPoolClient"}
    assert about["users"] == ["demo", "sam"]
    banner = gateway.log()
    assert "users: demo (Demo-password-1), sam (Sam-password-12, admins)" in banner
    assert f"client={about['clients']['ChatUserPoolClient']}" in banner
