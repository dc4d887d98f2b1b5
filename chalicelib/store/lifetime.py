"""How long the items of a connection live: the clock, and pending versus confirmed.

`$connect` writes its items as pending: they expire with API Gateway's
10-minute idle timeout. The connection's first frame proves it is open and
confirms them, for the connection TTL (`connection_ttl_seconds`). So a
`$connect` that failed after (or while) writing, its writes landing late,
leaves no ghost anyone sees.
"""

from __future__ import annotations

from collections.abc import Callable

from chalicelib.settings import Settings

# API Gateway closes a connection that sends nothing for 10 minutes: a connection
# still pending after this long never opened, or has gone.
PENDING_TTL_SECONDS = 11 * 60


class Lifetime:
    def __init__(self, settings: Settings, clock: Callable[[], float]) -> None:
        self._settings = settings
        self.clock = clock

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def expiry(self, confirmed: bool) -> int:
        """When an item written now expires (epoch seconds, DynamoDB's TTL)."""
        lifetime = self._settings.connection_ttl_seconds if confirmed else PENDING_TTL_SECONDS
        return self.now_ms() // 1000 + lifetime

    def expired(self, expires_at: int) -> bool:
        return expires_at <= self.clock()
