"""Which browser pages may open a connection: the `Origin` of the upgrade request.

A browser sends the page's origin with every websocket upgrade, and any page
on the web can open a websocket to any URL: without this check, a visitor of
an unrelated site could be made to chat, under their address's quota. Clients
that are not browsers (wscat, SDKs, scripts) send no Origin and are allowed:
they could send any Origin they like anyway. Patterns are exact origins, with
`*` allowed as the port (`http://127.0.0.1:*`); `null` is a page opened from a
file.
"""

from __future__ import annotations

from collections.abc import Iterable


def allowed(origin: str | None, patterns: Iterable[str]) -> bool:
    if origin is None:
        return True
    origin = origin.strip().rstrip("/").lower()
    for pattern in patterns:
        pattern = pattern.lower()
        if pattern == origin:
            return True
        if pattern.endswith(":*"):
            host, _, port = origin.rpartition(":")
            if host == pattern[:-2] and port.isdigit():
                return True
    return False
