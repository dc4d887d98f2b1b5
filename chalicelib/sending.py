"""Sending frames to connections through Chalice's websocket client, many at once.

The Chalice tutorial sends to members one after another; here a broadcast
serialises the frame once and fans the PostToConnection calls out over a
bounded thread pool, whose size matches the boto3 session's connection pool
(see chalicelib/service.py). A member that is gone or failing never stops
delivery to the others: gone ones are reported back so the caller can clean up.

Chalice builds its boto3 client on first use, without a lock: a cold
container's first broadcast, fanned out at once, had every thread build its
own (a service model load and a TLS handshake each, seconds of CPU for a
room of a hundred). While Chalice has no client yet (its `_client`), the
first send is therefore made alone; every later broadcast fans out at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import Executor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from chalice import WebsocketDisconnectedError

from chalicelib.protocol import encode

log = logging.getLogger(__name__)

SENT, GONE, FAILED = "sent", "gone", "failed"


class Sender:
    def __init__(self, websocket_api: Any, executor: Executor) -> None:
        self._api = websocket_api
        self._executor = executor

    def send(self, connection_id: str, frame: dict[str, Any]) -> bool:
        """Send one frame; False when the connection is gone (or the send failed)."""
        return self._post(connection_id, encode(frame)) == SENT

    def is_gone(self, connection_id: str) -> bool:
        """Whether API Gateway says the connection is gone (GetConnection answers 410).
        A failure to ask is no answer: False."""
        try:
            self._api.info(connection_id)
        except WebsocketDisconnectedError:
            return True
        except (ClientError, BotoCoreError) as error:
            log.warning("could not ask about %s: %s", connection_id, error)
        return False

    def close(self, connection_id: str) -> None:
        """Close a connection from the server (DeleteConnection; its $disconnect runs).
        One gone already is closed; a failure to ask is logged: its TTL ends it anyway."""
        try:
            self._api.close(connection_id)
        except WebsocketDisconnectedError:
            pass
        except (ClientError, BotoCoreError) as error:
            log.warning("could not close %s: %s", connection_id, error)

    def use_endpoint(self, domain_name: str, stage: str) -> None:
        """Post through this API (Chalice sets it from websocket events; other
        functions, like the fan-out, must be told)."""
        self._api.configure(domain_name, stage)

    def broadcast(self, connection_ids: Iterable[str], data: str) -> list[str]:
        """Send one encoded frame to every connection concurrently; return the gone ones."""
        targets = list(connection_ids)
        alone = 1 if len(targets) == 1 or self._api._client is None else 0
        outcomes = [self._post(cid, data) for cid in targets[:alone]]
        outcomes += self._executor.map(lambda cid: self._post(cid, data), targets[alone:])
        return [cid for cid, outcome in zip(targets, outcomes) if outcome == GONE]

    def _post(self, connection_id: str, data: str) -> str:
        try:
            self._api.send(connection_id, data)
            outcome = SENT
        except WebsocketDisconnectedError:
            outcome = GONE
        except (ClientError, BotoCoreError) as error:
            log.warning("send to %s failed: %s", connection_id, error)
            outcome = FAILED
        return outcome
