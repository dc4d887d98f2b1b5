"""Time budgets: every frame gets an answer in time, whatever DynamoDB does.

botocore's defaults (60 s connect and read timeouts, retries) outlast the
handlers' own timeouts and API Gateway's 29 s: with DynamoDB stalled, a
handler was killed mid-call and the client got `Internal server error`, or
nothing, while the write it had sent landed later. Here every AWS client has
short timeouts (`CLIENT_TIMEOUTS`), and a handler runs `within(seconds)`: before
each HTTP attempt botocore asks `check`, which gives the attempt the time that
is left (its read timeout shrinks to it) and refuses it only when less than
`FLOOR_SECONDS` is left, too little for any answer. Refusing every attempt a
whole worst case (3 s) did not fit in made a healthy `$connect` answer 503 once
a second of its 4 s had gone, though DynamoDB answers in milliseconds. The
connect timeout does not shrink (botocore takes it per client): an attempt ends
at most `CONNECT_TIMEOUT` past the deadline, which the budgets leave room for
(4 s of API Gateway's 5, 8 of its 10). The handler then answers `unavailable`.

botocore reads a per-attempt read timeout from the request's context since
1.43.72; with an older one (a Lambda runtime's may be) an attempt must fit whole.

A breaker sheds load while DynamoDB does not answer: once an attempt has
timed out, the process makes no new attempt for `PROBE_SECONDS`, so frames
are answered `unavailable` at once instead of each waiting out its timeouts
(and holding a Lambda, or one of the local gateway's few workers, meanwhile).
The first attempt after that is the probe: an answer closes the breaker, so
the chat recovers within about a second of DynamoDB's return.

Lambda runs one invocation at a time per process, so the deadline and the
breaker are one value each for the process, shared by the threads that send
a broadcast.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import BotoCoreError, ReadTimeoutError
from botocore.exceptions import ConnectionError as LostConnection
from botocore.httpsession import URLLib3Session

# Seconds: a connect to DynamoDB's endpoint, then its answer. DynamoDB answers in
# milliseconds; a call that takes longer is stuck, and another attempt may not be.
CONNECT_TIMEOUT = 0.5
READ_TIMEOUT = 2
ATTEMPTS = 3
CLIENT_TIMEOUTS: dict[str, Any] = {
    "connect_timeout": CONNECT_TIMEOUT,
    "read_timeout": READ_TIMEOUT,
    "retries": {"mode": "standard", "total_max_attempts": ATTEMPTS},
}
# The longest one attempt may take.
ATTEMPT_SECONDS = CONNECT_TIMEOUT + READ_TIMEOUT
# Less than this left: no attempt starts. A healthy DynamoDB answers in milliseconds, a
# slow one in a few hundred; an attempt given less would time out and trip the breaker.
FLOOR_SECONDS = 0.5
# Whether this botocore takes a read timeout per attempt (see above).
SHRINKS = hasattr(URLLib3Session, "_get_request_timeout")

# After a timed-out attempt, no new attempt for this long.
PROBE_SECONDS = 1.0

# Budgets: API Gateway's clients should hear back within these (answer included).
CONNECT_SECONDS = 4.0  # $connect answered within 5 s
FRAME_SECONDS = 8.0  # every frame answered within 10 s
FANOUT_SECONDS = 20.0  # a fan-out batch, within its 28 s timeout
# Taking back what a failed $connect wrote: its own time, since the connect's budget is
# often what ran out, and a name left claimed would refuse the client's retry.
CLEANUP_SECONDS = 1.0

_deadline: float | None = None
_tripped_at: float | None = None


class OutOfTime(BotoCoreError):
    fmt = "the handler's time budget is spent: no AWS call may start now"


class NotAnswering(BotoCoreError):
    fmt = "DynamoDB did not answer a moment ago: not trying again yet"


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Run the block with `seconds` for its AWS calls."""
    global _deadline
    previous, _deadline = _deadline, time.monotonic() + seconds
    try:
        yield
    finally:
        _deadline = previous


def check(request: Any = None, **_: Any) -> None:
    """botocore's before-send hook: give the attempt what is left of the deadline as its
    read timeout; refuse it when too little is left, or when the breaker holds back."""
    now = time.monotonic()
    if _tripped_at is not None and now < _tripped_at + PROBE_SECONDS:
        raise NotAnswering()
    if _deadline is None:
        return
    timeout = read_timeout(_deadline - now, SHRINKS)
    if timeout is None:
        raise OutOfTime()
    context = getattr(request, "context", None)
    if SHRINKS and context is not None:
        context["read_timeout"] = timeout


def read_timeout(left: float, shrinks: bool = True) -> float | None:
    """The read timeout of an attempt that starts with `left` seconds to go, or None when
    it may not start. It ends by the deadline (its connect aside), never below the floor;
    where the timeout cannot shrink, the whole attempt must fit."""
    if not shrinks:
        return READ_TIMEOUT if left >= ATTEMPT_SECONDS else None
    if left < FLOOR_SECONDS:
        return None
    return max(FLOOR_SECONDS, min(READ_TIMEOUT, left - CONNECT_TIMEOUT))


def observe(caught_exception: Exception | None = None, response: Any = None, **_: Any) -> None:
    """botocore's needs-retry hook, after every attempt: a timeout or a lost connection
    trips the breaker, any answer (an error answer too) resets it. Returns None: the
    retry decision stays botocore's."""
    global _tripped_at
    if isinstance(caught_exception, ReadTimeoutError | LostConnection):
        _tripped_at = time.monotonic()
    elif response is not None:
        _tripped_at = None


def reset() -> None:
    """Forget a tripped breaker (a new container would start with none)."""
    global _tripped_at
    _tripped_at = None
