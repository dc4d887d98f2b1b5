"""The signature check in front of @connections and Lambda's Invoke, on aiohttp requests.

`sigv4` decides; this turns an aiohttp request into its parts and a refusal
into AWS's 403: a JSON `message` and the error code in `x-amzn-ErrorType`,
from which botocore raises `ClientError` with that code.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from aiohttp import web

from localgateway import accesslog
from localgateway.awslambda.environment import Credentials
from localgateway.signing import sigv4


class Signatures:
    """Which credentials the gateway's signed APIs accept, in which region."""

    def __init__(self, region: str, accepted: Mapping[str, Credentials]) -> None:
        self.region = region
        self._accepted = dict(accepted)

    def refuse(
        self, request: web.Request, body: bytes, service: str, api: str
    ) -> web.Response | None:
        """None for a request signed with an accepted key; otherwise AWS's 403."""
        raw_path, _, raw_query = request.raw_path.partition("?")
        parts = sigv4.Request(
            method=request.method,
            host=request.host,
            raw_path=raw_path,
            query=raw_query,
            headers=request.headers,
            body=body,
        )
        refusal = sigv4.verify(parts, service, self.region, self._accepted, datetime.now(UTC))
        if refusal is None:
            return None
        accesslog.refused(api, request.method, request.path, refusal.code)
        return web.Response(
            status=403,
            body=json.dumps({"message": refusal.message}).encode(),
            content_type="application/json",
            headers={"x-amzn-ErrorType": refusal.code, "x-amzn-RequestId": str(uuid.uuid4())},
        )
