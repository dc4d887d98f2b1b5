"""Messages between the gateway and its handler processes: one JSON document per line.

The channel is a pair of pipes of its own, never stdout or stderr, so that
whatever an app prints or logs goes to the terminal and cannot corrupt a
message. `json.dumps` escapes newlines inside strings, so a line is a message.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

# A message is an event or a response: Lambda caps both at 6 MB, API Gateway's
# REST payloads at 10 MB; base64 and JSON escapes make them longer on the pipe.
LINE_LIMIT = 32 * 1024 * 1024

# An answer's `failure.kind`: how an invocation failed, as facts that each API words its way.
EXCEPTION = "exception"  # the handler raised: `type`, `message` and `stack_trace`
MARSHAL = "marshal"  # its result is not JSON
TIMEOUT = "timeout"  # it outlived the function's timeout
EXITED = "exited"  # its process exited (sys.exit, os._exit, a crash, a kill)
TOO_LARGE = "too_large"  # its result is over what a pipe message may hold
NO_WORKER = "no_worker"  # no process could import the app
THROTTLED = "throttled"  # it waited too long for a free process (--queue-timeout)


def _lambda_default(value: Any) -> Any:
    """What Lambda's Python runtime does with a Decimal (boto3's DynamoDB numbers): a float."""
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), default=_lambda_default).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError(f"expected a JSON object, got {line[:80]!r}")
    return message
