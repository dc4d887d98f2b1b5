"""Lambda's Invoke API for the app's pure functions: which function, and what to answer.

No I/O: `server.py` passes in the request's parts and sends back the `Reply`,
which botocore's `lambda` client parses (rest-json: an error is its status,
the code in `x-amzn-ErrorType` and a JSON body, raised as the modelled
exception, `client.exceptions.ResourceNotFoundException`).

- FunctionName: the pure function's name (`fanout`), its deployed name
  (`chalice-chat-dev-fanout`), or an ARN or partial ARN of the deployed name,
  each with an optional `:qualifier`. Chalice publishes no versions and makes
  no aliases, so `$LATEST` is the only qualifier there is.
- RequestResponse (the default): 200 with the function's JSON result, or with
  `X-Amz-Function-Error: Unhandled` and Lambda's error document. Event: 202,
  and the function runs in the background. DryRun: 204.
- Payloads: 6 MB synchronous, 1 MB asynchronous (Lambda's quotas since
  October 2025, 256 KB before); results: 6 MB.
"""

from __future__ import annotations

import base64
import json
import math
import re
import uuid
from dataclasses import dataclass
from typing import Any

from localgateway.awslambda import ipc
from localgateway.awslambda.process_pool import Failure, Result
from localgateway.project import Function, Project

INVOKE_PATH = "/2015-03-31/functions/{function_name}/invocations"
REQUEST_RESPONSE, EVENT, DRY_RUN = "RequestResponse", "Event", "DryRun"
INVOCATION_TYPES = (EVENT, REQUEST_RESPONSE, DRY_RUN)
LOG_TYPES = ("None", "Tail")
LATEST = "$LATEST"
# moto's account, which STS answers with here too.
ACCOUNT_ID = "123456789012"

SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024
ASYNC_PAYLOAD_BYTES = 1024 * 1024
RESPONSE_PAYLOAD_BYTES = 6_291_556
LOG_TAIL_BYTES = 4096

REQUEST_ID_HEADER = "x-amzn-RequestId"
ERROR_TYPE_HEADER = "x-amzn-ErrorType"
FUNCTION_ERROR_HEADER = "X-Amz-Function-Error"
EXECUTED_VERSION_HEADER = "X-Amz-Executed-Version"
LOG_RESULT_HEADER = "X-Amz-Log-Result"
JSON = "application/json"

_FUNCTION_NAME = re.compile(
    r"(?:arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:\d{12}:function:|(?:\d{12}:)?function:)?"
    r"(?P<name>[a-zA-Z0-9_.-]+)(?::(?P<qualifier>\$LATEST|[a-zA-Z0-9_-]+))?"
)
_QUALIFIER = re.compile(r"\$LATEST|[a-zA-Z0-9_$-]+")
# The constraints as Lambda's validation errors quote them.
FUNCTION_NAME_CONSTRAINT = (
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?"
    r"([a-zA-Z0-9-_\.]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?"
)
QUALIFIER_CONSTRAINT = r"(|[a-zA-Z0-9$_-]+)"


@dataclass(frozen=True)
class Reply:
    """An HTTP answer, ready to send."""

    status: int
    headers: dict[str, str]
    body: bytes = b""


@dataclass(frozen=True)
class Invocation:
    """An accepted Invoke: the function, its event, and how the caller wants the answer."""

    function: Function
    invocation_type: str
    event: Any
    request_id: str
    invoked_arn: str
    log_tail: bool = False

    def worker_request(self) -> dict[str, Any]:
        """What a worker runs: the pure function with this event, under this request id."""
        return {
            "kind": "lambda",
            "handler": self.function.name,
            "event": self.event,
            "log": self.log_tail,
            "context": {"request_id": self.request_id, "invoked_function_arn": self.invoked_arn},
        }


def find(source: Project, name: str) -> Function | None:
    """A pure function by its own name or its deployed name."""
    for function in source.pure_functions.values():
        if name in (function.lambda_name, function.name):
            return function
    return None


def function_arn(region: str, name: str, qualifier: str | None = None) -> str:
    arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}"
    return f"{arn}:{qualifier}" if qualifier else arn


def accept(
    source: Project,
    region: str,
    *,
    function_name: str,
    qualifier: str | None,
    invocation_type: str | None,
    log_type: str | None,
    payload: bytes | None,
) -> Invocation | Reply:
    """The invocation an Invoke request asks for, or Lambda's refusal.

    `payload` is None when the request body was too large to read at all.
    """
    request_id = str(uuid.uuid4())
    invocation_type = invocation_type or REQUEST_RESPONSE
    if invocation_type not in INVOCATION_TYPES:
        return _invalid(request_id, invocation_type, "invocationType", _enum(INVOCATION_TYPES))
    if (log_type or "None") not in LOG_TYPES:
        return _invalid(request_id, log_type or "", "logType", _enum(LOG_TYPES))
    limit = ASYNC_PAYLOAD_BYTES if invocation_type == EVENT else SYNC_PAYLOAD_BYTES
    if payload is None or len(payload) > limit:
        operation = "InvokeAsync" if invocation_type == EVENT else "InvokeFunction"
        message = f"Request must be smaller than {limit} bytes for the {operation} operation"
        return error(request_id, 413, "RequestTooLargeException", message)
    name = _FUNCTION_NAME.fullmatch(function_name)
    if name is None:
        constraint = _pattern(FUNCTION_NAME_CONSTRAINT)
        return _invalid(request_id, function_name, "functionName", constraint)
    if qualifier is not None and not _QUALIFIER.fullmatch(qualifier):
        return _invalid(request_id, qualifier, "qualifier", _pattern(QUALIFIER_CONSTRAINT))
    derived = name["qualifier"]
    if derived and qualifier and derived != qualifier:
        message = (
            "The derived qualifier from the function name does not match the specified qualifier."
        )
        return error(request_id, 400, "InvalidParameterValueException", message)
    qualifier = derived or qualifier
    function = find(source, name["name"])
    arn = function_arn(region, function.lambda_name if function else name["name"], qualifier)
    if function is None or qualifier not in (None, LATEST):
        return error(request_id, 404, "ResourceNotFoundException", f"Function not found: {arn}")
    event = None
    if invocation_type != DRY_RUN:
        try:
            event = json.loads(payload) if payload.strip() else {}
        except ValueError as problem:
            message = (
                "Could not parse request body into json: Could not parse payload into json: "
                f"{problem}"
            )
            return error(request_id, 400, "InvalidRequestContentException", message)
    return Invocation(function, invocation_type, event, request_id, arn, log_type == "Tail")


def dry_run(invocation: Invocation) -> Reply:
    return Reply(204, _headers(invocation.request_id))


def queued(invocation: Invocation) -> Reply:
    """An Event invocation's answer, given before the function runs."""
    return Reply(202, _headers(invocation.request_id))


def throttled(invocation: Invocation) -> Reply:
    """No worker was free in time: Lambda's answer at its concurrency limit."""
    reply = error(invocation.request_id, 429, "TooManyRequestsException", "Rate Exceeded.")
    document = json.loads(reply.body)
    document["Reason"] = "ConcurrentInvocationLimitExceeded"
    return Reply(reply.status, reply.headers, json.dumps(document).encode())


def completed(invocation: Invocation, result: Result) -> Reply:
    """A RequestResponse invocation's answer: 200 with the result or Lambda's error document."""
    headers = _headers(invocation.request_id, **{EXECUTED_VERSION_HEADER: LATEST})
    headers["Content-Type"] = JSON
    if invocation.log_tail:
        headers[LOG_RESULT_HEADER] = log_result(invocation, result)
    if result.ok:
        body = json.dumps(result.response).encode()
        if len(body) <= RESPONSE_PAYLOAD_BYTES:
            return Reply(200, headers, body)
        failure = Failure(ipc.TOO_LARGE, f"{len(body)} bytes")
    else:
        failure = result.failure or Failure("", result.error or "")
    headers[FUNCTION_ERROR_HEADER] = "Unhandled"
    document = error_document(failure, invocation.request_id)
    return Reply(200, headers, json.dumps(document).encode())


def error_document(failure: Failure, request_id: str) -> dict[str, Any]:
    """What Lambda answers for a failed invocation, by how it failed."""
    if failure.kind == ipc.EXCEPTION:
        return {
            "errorMessage": failure.message,
            "errorType": failure.type,
            "requestId": request_id,
            "stackTrace": list(failure.stack_trace),
        }
    if failure.kind == ipc.MARSHAL:
        return {
            "errorMessage": f"Unable to marshal response: {failure.message}",
            "errorType": "Runtime.MarshalError",
            "requestId": request_id,
            "stackTrace": [],
        }
    if failure.kind == ipc.TIMEOUT:
        message = f"RequestId: {request_id} Error: {failure.message}"
        return {"errorType": "Sandbox.Timedout", "errorMessage": message}
    if failure.kind == ipc.EXITED:
        message = f"RequestId: {request_id} Error: Runtime exited with error: {failure.message}"
        return {"errorType": "Runtime.ExitError", "errorMessage": message}
    if failure.kind == ipc.TOO_LARGE:
        message = (
            "Response payload size exceeded maximum allowed payload size "
            f"({RESPONSE_PAYLOAD_BYTES} bytes)."
        )
        return {"errorType": "Function.ResponseSizeTooLarge", "errorMessage": message}
    if failure.kind == ipc.NO_WORKER:
        last_line = (failure.message.strip().splitlines() or [""])[-1]
        message = f"Unable to import module 'app': {last_line}"
        return {"errorType": "Runtime.ImportModuleError", "errorMessage": message}
    return {"errorType": "Runtime.Unknown", "errorMessage": failure.message}


def log_result(invocation: Invocation, result: Result) -> str:
    """`X-Amz-Log-Result`: the base64 of the invocation's last 4 KB of log, as Lambda's."""
    request_id = invocation.request_id
    output = result.log or ""
    if output and not output.endswith("\n"):
        output += "\n"
    report = (
        f"REPORT RequestId: {request_id}\tDuration: {result.duration_ms:.2f} ms\t"
        f"Billed Duration: {math.ceil(result.duration_ms)} ms\t"
        f"Memory Size: {invocation.function.memory_mb} MB\t\n"
    )
    log = f"START RequestId: {request_id} Version: {LATEST}\n{output}END RequestId: {request_id}\n"
    return base64.b64encode((log + report).encode()[-LOG_TAIL_BYTES:]).decode("ascii")


def error(request_id: str, status: int, code: str, message: str) -> Reply:
    """A refused request, shaped as Lambda's: its members' case follows the model's shapes."""
    key = "Message" if code == "ResourceNotFoundException" else "message"
    headers = _headers(request_id, **{ERROR_TYPE_HEADER: code})
    headers["Content-Type"] = JSON
    return Reply(status, headers, json.dumps({"Type": "User", key: message}).encode())


def _invalid(request_id: str, value: str, member: str, constraint: str) -> Reply:
    """Lambda's input validation error (ValidationException, which botocore does not model)."""
    message = (
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy "
        f"constraint: {constraint}"
    )
    return error(request_id, 400, "ValidationException", message)


def _enum(values: tuple[str, ...]) -> str:
    return f"Member must satisfy enum value set: [{', '.join(values)}]"


def _pattern(pattern: str) -> str:
    return f"Member must satisfy regular expression pattern: {pattern}"


def _headers(request_id: str, **extra: str) -> dict[str, str]:
    return {REQUEST_ID_HEADER: request_id, **extra}
