"""`/2015-03-31/functions/{name}/invocations`: Lambda's Invoke for the app's pure functions.

What to run and what to answer is `invoke_models`'s; this module reads the
request, checks its signature (service `lambda`), runs the function on the
workers and sends the answer. An Event invocation is answered 202 at once and
runs in the background, waiting for a worker as long as it takes, as Lambda's
own queue keeps it; a RequestResponse one that waits past `--queue-timeout`
for a worker is throttled (429), as Lambda throttles at its concurrency limit.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from localgateway import accesslog
from localgateway.awslambda import invoke_models, ipc, process_pool
from localgateway.signing.signatures import Signatures

SERVICE = "lambda"


class InvokeApi:
    def __init__(self, runtime: process_pool.Runtime, signatures: Signatures) -> None:
        self._runtime = runtime
        self._signatures = signatures
        self._region = signatures.region
        self._tasks: set[asyncio.Task[Any]] = set()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("POST", invoke_models.INVOKE_PATH, self.invoke)

    async def invoke(self, request: web.Request) -> web.Response:
        generation = self._runtime.current
        payload: bytes | None = None  # left unread: larger than any payload Lambda takes
        if (request.content_length or 0) <= invoke_models.SYNC_PAYLOAD_BYTES:
            try:
                payload = await request.read()
            except web.HTTPRequestEntityTooLarge:  # a chunked body over the server's limit
                pass
            except ConnectionError:  # the caller hung up
                return web.Response(status=400)
        # A body too large to read is refused below (413) without running anything.
        refusal = (
            None
            if payload is None
            else self._signatures.refuse(request, payload, SERVICE, "INVOKE")
        )
        if refusal is not None:
            return refusal
        function_name = request.match_info["function_name"]
        invocation_type = request.headers.get("X-Amz-Invocation-Type")
        outcome = invoke_models.accept(
            generation.project,
            self._region,
            function_name=function_name,
            qualifier=request.query.get("Qualifier"),
            invocation_type=invocation_type,
            log_type=request.headers.get("X-Amz-Log-Type"),
            payload=payload,
        )
        if isinstance(outcome, invoke_models.Reply):
            refused = outcome.headers.get(invoke_models.ERROR_TYPE_HEADER)
            shown_type = invocation_type or invoke_models.REQUEST_RESPONSE
            accesslog.invoke(function_name, shown_type, outcome.status, None, refused)
            return _response(outcome)
        name = outcome.function.lambda_name
        if outcome.invocation_type == invoke_models.DRY_RUN:
            reply = invoke_models.dry_run(outcome)
            accesslog.invoke(name, invoke_models.DRY_RUN, reply.status, None)
            return _response(reply)
        if outcome.invocation_type == invoke_models.EVENT:
            reply = invoke_models.queued(outcome)
            task = asyncio.create_task(self._run_event(generation, outcome, reply.status))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return _response(reply)
        result = await generation.invoke(outcome.function, outcome.worker_request(), _key(outcome))
        if result.failure is not None and result.failure.kind == ipc.THROTTLED:
            reply = invoke_models.throttled(outcome)
        else:
            reply = invoke_models.completed(outcome, result)
        accesslog.invoke(name, invoke_models.REQUEST_RESPONSE, reply.status, result)
        return _response(reply)

    async def _run_event(
        self, generation: process_pool.Generation, invocation: invoke_models.Invocation, status: int
    ) -> None:
        """An Event invocation, after its 202: nobody waits for it, so errors go to the log."""
        result = await generation.invoke(
            invocation.function, invocation.worker_request(), _key(invocation), bounded_wait=False
        )
        accesslog.invoke(invocation.function.lambda_name, invoke_models.EVENT, status, result)


def _key(invocation: invoke_models.Invocation) -> str:
    """A pure function's invocations come from anywhere: its pool serves them in order."""
    return f"invoke:{invocation.function.name}"


def _response(reply: invoke_models.Reply) -> web.Response:
    return web.Response(status=reply.status, headers=reply.headers, body=reply.body)
