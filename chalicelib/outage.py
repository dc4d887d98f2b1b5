"""Storage failures, as the chat sees them: what to catch, and how to log it.

A DynamoDB (or S3, or Cognito) failure becomes `unavailable` for the sender
(chalicelib/chat/dispatch.py). The modules that call those services turn every
botocore error that is not the chat's own into `Unavailable` at their edge
(chalicelib/store/table.py, auth.py, attachments.py), so the layers above
catch one exception and never decide for themselves which botocore error
means what.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError
from botocore.exceptions import ConnectionError as LostConnection

from chalicelib import budget

log = logging.getLogger(__name__)

# Too slow or not answering: expected during an outage, one line each in the log.
UNANSWERED = (budget.OutOfTime, budget.NotAnswering, ReadTimeoutError, LostConnection)


class Unavailable(Exception):
    """A service failed or did not answer; the original error is the `__cause__`.

    `unanswered` tells an outage (expected, one log line) from an error answer
    (a bug or a misconfiguration, worth its traceback).
    """

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.unanswered = isinstance(error, UNANSWERED)


STORAGE_ERRORS = (Unavailable,)


@contextmanager
def translated() -> Iterator[None]:
    """Run AWS calls whose every botocore error, answered or not, is `Unavailable`; the
    caller picks out the errors that mean something else inside the block."""
    try:
        yield
    except (ClientError, BotoCoreError) as error:
        raise Unavailable(error) from error


def log_storage_error(error: Exception, what: str, *args: Any) -> None:
    """An outage is one line per frame; anything else gets its traceback."""
    if isinstance(error, Unavailable) and error.unanswered:
        log.warning(f"{what}: storage unavailable: %s", *args, error)
    else:
        log.exception(f"{what}: storage unavailable", *args)
