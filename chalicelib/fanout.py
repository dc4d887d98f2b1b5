"""Splitting a big broadcast across parallel invocations of the `fanout` function.

One PostToConnection costs about a millisecond of CPU in botocore (serialising,
signing, parsing), so one Lambda, one Python process, sends roughly a thousand
frames a second however many threads it uses. Above `FANOUT_BATCH` recipients
the message handler keeps one batch for itself and hands each other batch to
an asynchronous invocation of `fanout` (`FANOUT_FUNCTION`); they all send at
once. A batch that cannot be handed over is sent by the handler itself, so a
failing invoke costs time, never a message. Lambda retries a failed
asynchronous invocation (twice by default), so a batch may reach some members
twice but never not at all; clients drop the copy by message id.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Batch:
    """One invocation's share of a broadcast: the frame and who gets it."""

    room: str
    data: str
    connection_ids: list[str]
    # Recipients still opening: a 410 from them does not mean gone (chat/broadcaster.py).
    opening: list[str]
    # The API to post through: the message handler's event says which.
    domain_name: str
    stage: str

    def to_payload(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_payload(cls, payload: Any) -> Batch:
        """The batch in an invocation's event; ValueError if it is not one."""
        if not isinstance(payload, dict):
            raise ValueError("a fan-out event is a JSON object")
        try:
            batch = cls(**payload)
        except TypeError as error:
            raise ValueError(f"not a fan-out event: {error}") from None
        strings = (batch.room, batch.data, batch.domain_name, batch.stage)
        lists = (batch.connection_ids, batch.opening)
        if not all(isinstance(value, str) for value in strings) or not all(
            isinstance(ids, list) and all(isinstance(cid, str) for cid in ids) for ids in lists
        ):
            raise ValueError("a fan-out event has strings and lists of connection ids")
        return batch


class FanOut:
    def __init__(
        self,
        client: Callable[[], Any],
        function_name: str,
        batch_size: int,
        executor: Executor,
    ) -> None:
        # A factory, called on the first hand-over: most invocations never need a client.
        self._client = client
        self._function = function_name
        self.batch_size = batch_size
        self._executor = executor

    def split(self, connection_ids: Sequence[str]) -> list[list[str]]:
        """Consecutive batches of at most `batch_size` ids."""
        size = self.batch_size
        return [list(connection_ids[i : i + size]) for i in range(0, len(connection_ids), size)]

    def dispatch(self, batches: list[Batch]) -> list[Batch]:
        """Invoke `fanout` asynchronously once per batch; return the batches that failed."""
        handed_over = self._executor.map(self._invoke, batches)
        return [batch for batch, ok in zip(batches, handed_over) if not ok]

    def _invoke(self, batch: Batch) -> bool:
        try:
            self._client().invoke(
                FunctionName=self._function,
                InvocationType="Event",
                Payload=batch.to_payload().encode("utf-8"),
            )
        except (ClientError, BotoCoreError) as error:
            log.warning("fan-out of %d sends not handed over: %s", len(batch.connection_ids), error)
            return False
        return True
