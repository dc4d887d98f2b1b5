"""Storage failures, as the chat sees them: what to catch, and how to log it.

A DynamoDB (or S3, or Cognito) failure becomes `unavailable` for the sender
(chalicelib/commands.py); this module names those failures in one place, so
the layers above the store catch one tuple and never decide for themselves
which botocore error means what.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError
from botocore.exceptions import ConnectionError as LostConnection

from chalicelib import budget

log = logging.getLogger(__name__)

STORAGE_ERRORS = (ClientError, BotoCoreError)
# DynamoDB too slow or not answering: expected during an outage, one line each in the log.
UNANSWERED = (budget.OutOfTime, budget.NotAnswering, ReadTimeoutError, LostConnection)


def log_storage_error(error: Exception, what: str, *args: Any) -> None:
    """An outage is one line per frame; anything else gets its traceback."""
    if isinstance(error, UNANSWERED):
        log.warning(f"{what}: storage unavailable: %s", *args, error)
    else:
        log.exception(f"{what}: storage unavailable", *args)
