"""Wiring: build the chat from the environment, reusing clients across invocations.

A Lambda container runs many invocations; boto3 clients and the send pool are
made once per container (client creation costs tens of milliseconds), while
settings are read per invocation, since they come from the environment.

Every client has short timeouts, and the DynamoDB and Lambda clients ask
`budget.check` before each attempt, so that a stalled DynamoDB costs a handler
its budget, never its timeout. Sends are not budgeted: the answer that says
`unavailable` must still go out.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

import boto3
import botocore.session
from botocore.config import Config

from chalicelib import budget
from chalicelib.attachments import Files
from chalicelib.auth import Verifier
from chalicelib.chat.broadcaster import Broadcaster
from chalicelib.chat.clock import Clock
from chalicelib.chat.dispatch import Chat
from chalicelib.chat.identity import Identity
from chalicelib.chat.lifecycle import Lifecycle
from chalicelib.chat.person_rooms import PersonRooms
from chalicelib.chat.posting import Posting
from chalicelib.chat.rooms import Rooms
from chalicelib.conversation import Conversation
from chalicelib.fanout import FanOut
from chalicelib.mentions import Mentions
from chalicelib.moderation import Moderation
from chalicelib.sending import Sender
from chalicelib.settings import Settings, positive_int
from chalicelib.store import Store

# Concurrent PostToConnection calls per broadcast. The send pool and the HTTP
# connection pool of the websocket client get the same size: a thread without
# a pooled connection would wait for one (and urllib3 would warn).
SEND_CONCURRENCY = positive_int(os.environ, "SEND_CONCURRENCY", 32)
# API Gateway answers a PostToConnection in milliseconds; one stuck this long is dropped.
SEND_READ_TIMEOUT = 5


def websocket_session() -> boto3.session.Session:
    """The session for `app.websocket_api`, its client pool sized for concurrent sends.

    Parameter validation is off: the only call is PostToConnection with a
    connection id and a string this code made, and validating them costs a
    tenth of each send's CPU time (bench/ measures it).
    """
    core = botocore.session.get_session()
    core.set_default_client_config(
        Config(
            max_pool_connections=SEND_CONCURRENCY,
            connect_timeout=budget.CONNECT_TIMEOUT,
            read_timeout=SEND_READ_TIMEOUT,
            retries={"mode": "standard"},
            parameter_validation=False,
        )
    )
    return boto3.session.Session(botocore_session=core)


@lru_cache(maxsize=1)
def send_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=SEND_CONCURRENCY, thread_name_prefix="send")


def _within_budgets(client: Any) -> Any:
    """A client that asks the handler's budget before each attempt (chalicelib/budget.py)."""
    client.meta.events.register("before-send", budget.check)
    return client


@lru_cache(maxsize=1)
def dynamodb_client() -> Any:
    """From boto3's standard configuration (AWS_ENDPOINT_URL_DYNAMODB works); its timeouts
    trip the breaker."""
    config = Config(**budget.CLIENT_TIMEOUTS)
    client = boto3.session.Session().client("dynamodb", config=config)
    client.meta.events.register("needs-retry", budget.observe)
    return _within_budgets(client)


@lru_cache(maxsize=1)
def lambda_client() -> Any:
    """For handing broadcast batches to the fan-out function (AWS_ENDPOINT_URL_LAMBDA works)."""
    config = Config(**budget.CLIENT_TIMEOUTS)
    return _within_budgets(boto3.session.Session().client("lambda", config=config))


@lru_cache(maxsize=1)
def cognito_client() -> Any:
    """For checking access tokens with GetUser (AWS_ENDPOINT_URL_COGNITO_IDP works)."""
    config = Config(**budget.CLIENT_TIMEOUTS)
    return _within_budgets(boto3.session.Session().client("cognito-idp", config=config))


@lru_cache(maxsize=1)
def s3_client() -> Any:
    """For presigning and checking attachments (AWS_ENDPOINT_URL_S3 works: presigned URLs
    then point there). SigV4, as every region wants for presigned POSTs; virtual-hosted
    style names the bucket's region in its URLs (the global name answers a new bucket of
    another region with a redirect, which a browser's CORS upload does not follow)."""
    config = Config(
        signature_version="s3v4", s3={"addressing_style": "virtual"}, **budget.CLIENT_TIMEOUTS
    )
    return _within_budgets(boto3.session.Session().client("s3", config=config))


@lru_cache(maxsize=4)
def verifier(user_pool_id: str, client_id: str) -> Verifier:
    """One per container and pool, so that a token checked once is not checked again."""
    return Verifier(cognito_client, user_pool_id, client_id)


def chat(websocket_api: Any) -> Chat:
    settings = Settings.from_env()
    clock = Clock()
    store = Store(dynamodb_client(), settings, clock.now)
    fanout = None
    if settings.fanout_function:
        fanout = FanOut(lambda_client, settings.fanout_function, settings.fanout_batch, send_pool())
    checks = None
    if settings.auth != "none" and settings.user_pool_id and settings.client_id:
        checks = verifier(settings.user_pool_id, settings.client_id)
    files = Files(s3_client, settings) if settings.bucket_name else None
    sender = Sender(websocket_api, send_pool())
    return build_chat(store, sender, settings, clock, fanout, checks, files)


def build_chat(
    store: Store,
    sender: Sender,
    settings: Settings,
    clock: Clock,
    fanout: FanOut | None = None,
    verifier: Verifier | None = None,
    files: Files | None = None,
) -> Chat:
    """The object graph of one invocation's chat: each action's module over the
    broadcaster, which every change that others must hear goes through."""
    broadcaster = Broadcaster(store, sender, settings, clock, fanout)
    rooms = Rooms(store, sender, settings, clock, broadcaster)
    person_rooms = PersonRooms(store, sender, rooms)
    mentions = Mentions(store.memberships)
    moderation = Moderation(store, store.roles, sender, rooms.expel)
    return Chat(
        store,
        sender,
        settings,
        broadcaster,
        Lifecycle(store, sender, settings, clock, broadcaster, person_rooms.mine, verifier),
        rooms,
        person_rooms,
        Posting(store, sender, clock, broadcaster, mentions, files),
        Identity(store, sender, broadcaster),
        Conversation(store, sender, settings, moderation.moderates, mentions),
        moderation,
    )
