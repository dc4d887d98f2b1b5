"""Sign-in (AUTH=cognito) through the chat's handlers, against moto's Cognito and DynamoDB.

`$connect` wants `?token=`, a Cognito access token of this stage's user pool and
app client; anything else is refused with 401 before a single item is written.
A signed-in connection's nickname is its username, and members and messages
carry `verified`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from chalicelib import service
from chalicelib.auth import Verifier
from chalicelib.settings import Settings
from chalicelib.store import Store
from tests.conftest import ChatHarness, dev_table_name


@dataclass
class Pool:
    id: str
    client_id: str
    client: Any

    def token(self, username: str, password: str = "Pass-word-1234") -> str:
        answer = self.client.initiate_auth(
            ClientId=self.client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": username, "PASSWORD": password},
        )
        return answer["AuthenticationResult"]["AccessToken"]


def make_pool(name: str, users: list[str]) -> Pool:
    client = boto3.client("cognito-idp")
    pool_id = client.create_user_pool(PoolName=name)["UserPool"]["Id"]
    client_id = client.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName="web",
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]["ClientId"]
    for username in users:
        client.admin_create_user(UserPoolId=pool_id, Username=username, MessageAction="SUPPRESS")
        client.admin_set_user_password(
            UserPoolId=pool_id, Username=username, Password="Pass-word-1234", Permanent=True
        )
    return Pool(pool_id, client_id, client)


@pytest.fixture
def pool(chat: ChatHarness, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pool]:
    """The chat with AUTH=cognito, its pool holding ada and bob."""
    chat_pool = make_pool("chat", ["ada", "bob"])
    monkeypatch.setenv("AUTH", "cognito")
    monkeypatch.setenv("COGNITO_USER_POOL_ID", chat_pool.id)
    monkeypatch.setenv("COGNITO_CLIENT_ID", chat_pool.client_id)
    cached = service.verifier  # a test may put another in its place
    cached.cache_clear()
    yield chat_pool
    cached.cache_clear()


def table_items(dynamodb: Any) -> int:
    return dynamodb.scan(TableName=dev_table_name(), Select="COUNT")["Count"]


def test_without_a_valid_token_connect_is_refused_with_401_and_writes_nothing(
    chat: ChatHarness, pool: Pool, dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = make_pool("another", ["ada"])
    before = table_items(dynamodb)
    refusals = {
        "no token": chat.refusal(),
        "garbage": chat.refusal({"token": "not-a-jwt"}),
        "forged claims": chat.refusal({"token": "e30.eyJpc3MiOiJ4In0.c2ln"}),
        "another pool": chat.refusal({"token": other.token("ada")}),
    }
    # Two hours later, the same real token has expired.
    token = pool.token("ada")
    later = Verifier(service.cognito_client, pool.id, pool.client_id, lambda: time.time() + 7200)
    monkeypatch.setattr(service, "verifier", lambda *_: later)
    refusals["expired"] = chat.refusal({"token": token})
    assert {why: (r["status"], r["code"]) for why, r in refusals.items()} == {
        why: (401, "unauthorized") for why in refusals
    }
    assert "another user pool" in refusals["another pool"]["message"]
    assert "expired" in refusals["expired"]["message"]
    assert table_items(dynamodb) == before  # not a slot, not a claim, not a member


def test_a_valid_token_admits_with_the_username_as_nickname_and_verified_marks(
    chat: ChatHarness, pool: Pool
) -> None:
    ada = chat.connect({"token": pool.token("ada"), "nick": "mallory"})  # ?nick= is ignored
    bob = chat.connect({"token": pool.token("bob")})
    chat.drain()
    chat.send(ada, {"action": "join", "room": "lobby"})
    joined = chat.take(ada)[-1]
    assert joined["type"] == "joined" and joined["nick"] == "ada"
    assert joined["members"] == joined["verified"] == ["ada", "bob"]
    chat.send(ada, {"action": "sendmessage", "data": "signed, ada"})
    (heard,) = chat.take(bob)
    assert (heard["from"], heard["verified"]) == ("ada", True)
    chat.send(bob, "/nick ada2")
    (refused,) = chat.take(bob)
    assert refused["code"] == "forbidden" and "username" in refused["message"]


def test_one_user_in_two_tabs_keeps_one_name(chat: ChatHarness, pool: Pool) -> None:
    first = chat.connect({"token": pool.token("ada")})
    second = chat.connect({"token": pool.token("ada")})
    chat.drain()
    chat.send(first, "/who")
    (members,) = [frame for frame in chat.take(first) if frame["type"] == "members"]
    assert members["members"] == ["ada"]  # one person, listed once
    assert members["count"] == 1
    chat.disconnect(second)
    chat.send(first, {"action": "sendmessage", "data": "still me"})
    (mine,) = [frame for frame in chat.take(first) if frame["type"] == "message"]
    assert mine["from"] == "ada"


def test_a_token_checked_once_is_not_checked_again(chat: ChatHarness, pool: Pool) -> None:
    calls: list[str] = []

    def count(**_: Any) -> None:
        calls.append("GetUser")

    client = service.cognito_client()
    client.meta.events.register("before-call.cognito-identity-provider.GetUser", count)
    token = pool.token("ada")
    try:
        for _ in range(3):
            chat.disconnect(chat.connect({"token": token}))
    finally:
        client.meta.events.unregister("before-call.cognito-identity-provider.GetUser", count)
    assert len(calls) == 1


def test_cognito_unreachable_is_503_not_401(
    chat: ChatHarness, pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import EndpointConnectionError

    token = pool.token("ada")

    def unreachable(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://cognito-idp.us-east-1.amazonaws.com")

    client = service.cognito_client()
    client.meta.events.register_first("before-send.cognito-identity-provider", unreachable)
    try:
        refusal = chat.refusal({"token": token})
    finally:
        client.meta.events.unregister("before-send.cognito-identity-provider", unreachable)
    assert (refusal["status"], refusal["code"]) == (503, "unavailable")


def test_without_auth_a_token_is_ignored_and_nobody_is_verified(
    chat: ChatHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTH", "none")  # the default is `optional` since issue 17
    guest = chat.connect({"token": "anything", "nick": "ada"})
    chat.drain()
    chat.send(guest, {"action": "sendmessage", "data": "hi"})
    (frame,) = chat.take(guest)
    assert frame["from"] == "ada" and "verified" not in frame


def forget(dynamodb: Any, connection_id: str) -> None:
    """The connection's items gone from the table while its socket is open, as after
    its TTL or a clean-up that took a failed send for a departure."""
    Store(dynamodb, Settings(table_name=dev_table_name())).connections.remove(connection_id)


def guest_items(dynamodb: Any) -> list[dict[str, Any]]:
    items = dynamodb.scan(TableName=dev_table_name())["Items"]
    return [item for item in items if "guest-" in str(item)]


def test_a_signed_in_connection_the_table_lost_is_closed_never_a_guest(
    chat: ChatHarness, pool: Pool, dynamodb: Any
) -> None:
    """Issue 18/17: re-registered as a guest, an expired connection would skip sign-in."""
    ada = chat.connect({"token": pool.token("ada"), "room": "dev"})
    bob = chat.connect({"token": pool.token("bob"), "room": "dev"})
    forget(dynamodb, ada)
    chat.drain()
    before = table_items(dynamodb)
    chat.connections.calls.clear()

    chat.send(ada, {"action": "sendmessage", "data": "as whom?"})
    (expired,) = chat.take(ada)
    assert expired["type"] == "error" and expired["code"] == "expired"
    assert "reconnect" in expired["message"]
    assert chat.connections.calls.count(("DeleteConnection", ada)) == 1
    assert table_items(dynamodb) == before  # no connection, membership or nickname
    assert guest_items(dynamodb) == []
    assert chat.take(bob) == []  # nothing posted, nobody announced

    again = chat.connect({"token": pool.token("ada"), "room": "dev"})  # what the client does
    chat.send(again, "/who")
    assert chat.take_one(again, "members")["members"] == ["ada", "bob"]


def test_without_sign_in_a_connection_the_table_lost_starts_over_as_a_guest(
    chat: ChatHarness, dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTH", "none")
    ada = chat.connect({"nick": "ada", "room": "dev"})
    forget(dynamodb, ada)
    chat.drain()
    chat.connections.calls.clear()
    chat.send(ada, {"action": "sendmessage", "data": "still here"})
    (message,) = chat.take(ada)
    assert message["room"] == "lobby" and message["from"].startswith("guest-")
    assert ("DeleteConnection", ada) not in chat.connections.calls
    keys = sorted((i["pk"]["S"], i["sk"]["S"].split("#")[0]) for i in guest_items(dynamodb))
    assert keys == [  # the guest, its membership and name, and its message
        (f"CONN#{ada}", "CONNECTION"),
        ("HIST#lobby", message["id"]),
        ("ROOM#lobby", "MEMBER"),
        ("ROOM#lobby", "NICK"),
    ]
