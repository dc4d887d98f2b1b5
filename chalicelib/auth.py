"""Who a connection is, when the chat runs with AUTH=cognito: its Cognito access token, checked.

Chalice has no authorizer for websocket APIs (aws/chalice#1457), so `$connect`
checks the token itself, before it writes anything. A browser cannot set
headers on a WebSocket, so the token comes in the query string (`?token=`).

No crypto is bundled: Cognito's own GetUser, called with the access token,
validates it server-side (signature, expiry, revocation) and returns the
username, and needs no IAM permission. What GetUser cannot say is which pool
and app client the token is for (any valid token of the region passes), so the
token's claims are read too, without checking the signature GetUser has
already checked: the issuer must be this stage's user pool, the client this
stage's app client, the use `access`, and the expiry in the future. A token
that passed is cached for the rest of its life, per container, so a page that
reconnects costs no second call.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.outage import translated

# Refusals Cognito gives for a token it does not accept (others are its outages).
REFUSED_BY_COGNITO = (
    "NotAuthorizedException",
    "UserNotFoundException",
    "InvalidParameterException",
)


@dataclass(frozen=True)
class Identity:
    username: str
    expires_at: int  # seconds since the epoch
    # The token's `cognito:groups` (chalicelib/moderation.py: `admins` moderate every room).
    groups: tuple[str, ...] = ()


class Unauthorized(Exception):
    """The token does not admit this connection; the message says why, for the client."""


class Verifier:
    def __init__(
        self,
        client: Callable[[], Any],
        user_pool_id: str,
        client_id: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._issuer_suffix = "/" + user_pool_id
        self._client_id = client_id
        self._clock = clock
        self._known: dict[str, Identity] = {}

    def identify(self, token: str | None) -> Identity:
        """The token's identity; Unauthorized if it admits nobody. An outage of Cognito
        raises `chalicelib.outage.Unavailable`, for the caller to answer 503."""
        if not token:
            raise Unauthorized("sign in: the connection needs ?token= (a Cognito access token)")
        claims = _claims(token)
        if claims is None:
            raise Unauthorized("the token is not a JWT")
        now = self._clock()
        if not str(claims.get("iss", "")).endswith(self._issuer_suffix):
            raise Unauthorized("the token is from another user pool")
        if claims.get("client_id") != self._client_id or claims.get("token_use") != "access":
            raise Unauthorized("the token is not an access token of this chat's app client")
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
            raise Unauthorized("the token has expired: sign in again")
        known = self._known.get(token)
        if known is not None:
            return known
        with translated():
            try:
                username = self._client().get_user(AccessToken=token)["Username"]
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in REFUSED_BY_COGNITO:
                    message = "Cognito does not accept the token: sign in again"
                    raise Unauthorized(message) from error
                raise
        groups = claims.get("cognito:groups")
        listed = tuple(g for g in groups if isinstance(g, str)) if isinstance(groups, list) else ()
        identity = Identity(username, claims["exp"], listed)
        self._forget_expired(now)
        self._known[token] = identity
        return identity

    def _forget_expired(self, now: float) -> None:
        for token in [t for t, known in self._known.items() if known.expires_at <= now]:
            del self._known[token]


def _claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT (header.payload.signature), its signature not checked."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None
