"""Everything else on the main port: the app's REST routes, then `static/`, then AWS's 403.

REST routes are served as `chalice local` serves them (no stage prefix),
through Chalice's own LocalGateway in a worker; files come from the project's
`static/` folder (the chat page); anything else gets API Gateway's 403
`Missing Authentication Token`. Beside the files, `/local-gateway.json` tells a page
what it cannot find out by itself: the stage's websocket path and, when the template
has a Cognito app client, where and with which client to sign in.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from aiohttp import web
from chalice.local import RouteMatcher
from multidict import CIMultiDict

from localgateway import accesslog
from localgateway.awslambda import process_pool
from localgateway.project import API_HANDLER, Project

# Served beside static/: a page's settings (docs/local-gateway.md, Static files).
PAGE_CONFIG_PATH = "/local-gateway.json"


class RestApi:
    def __init__(
        self, runtime: process_pool.Runtime, page_config: dict[str, Any] | None = None
    ) -> None:
        self._runtime = runtime
        self._page_config = page_config or {}
        self._matcher: tuple[process_pool.Generation | None, RouteMatcher | None] = (None, None)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        generation = self._runtime.current
        if self._matches_route(generation, request.raw_path):
            return await self._rest(generation, request)
        if request.method in ("GET", "HEAD"):
            if request.path == PAGE_CONFIG_PATH:
                return web.json_response(self._page_config, headers={"Cache-Control": "no-cache"})
            path = _static_file(generation.project, request.path)
            if path is not None:
                return web.FileResponse(path, headers={"Cache-Control": "no-cache"})
        return web.json_response(
            {"message": "Missing Authentication Token"},
            status=403,
            headers={"x-amzn-ErrorType": "MissingAuthenticationTokenException"},
        )

    def _matches_route(self, generation: process_pool.Generation, raw_path: str) -> bool:
        cached, matcher = self._matcher
        if cached is not generation:
            matcher = RouteMatcher(generation.rest_routes) if generation.rest_routes else None
            self._matcher = (generation, matcher)
        if matcher is None:
            return False
        try:
            matcher.match_route(raw_path)
        except ValueError:
            return False
        return True

    async def _rest(
        self, generation: process_pool.Generation, request: web.Request
    ) -> web.Response:
        body = await request.read()
        invocation = {
            "kind": "http",
            "method": request.method,
            "path": request.raw_path,
            "headers": dict(request.headers),
            "body": base64.b64encode(body).decode("ascii") if body else None,
        }
        function = generation.project.functions[API_HANDLER]
        result = await generation.invoke(function, invocation, f"rest:{request.remote}")
        status = accesslog.status_of(result) if result.ok else 502
        accesslog.request(request.method, request.path, status, result)
        if not result.ok:
            return web.json_response({"message": "Internal server error"}, status=502)
        return _rest_response(result.response)


def _rest_response(response: Any) -> web.Response:
    if not isinstance(response, dict):
        return web.json_response({"message": "Internal server error"}, status=502)
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in (response.get("headers") or {}).items():
        headers[name] = str(value)
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers.popall(name, None)
        for value in values:
            headers.add(name, str(value))
    headers.setdefault("Content-Type", "application/json")
    body = response.get("body")
    if body is None:
        data = b""
    elif response.get("isBase64Encoded"):
        data = base64.b64decode(body)
    else:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return web.Response(status=int(response.get("statusCode", 200)), headers=headers, body=data)


def _static_file(source: Project, path: str) -> Path | None:
    root = source.static_dir.resolve()
    if not root.is_dir():
        return None
    candidate = (root / path.lstrip("/")).resolve()
    if not candidate.is_relative_to(root):
        return None
    if candidate.is_dir():
        candidate = candidate / "index.html"
    return candidate if candidate.is_file() else None
