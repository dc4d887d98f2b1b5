"""A handler process: one Lambda execution environment for the app.

It imports the app once (a cold start), then runs one invocation at a time,
as Lambda does, for as long as the gateway keeps it. Before any invocation it
points `app.websocket_api` at the gateway with `configure()`, the public call
a Lambda runtime's domain name would reach; the app's own functions are never
patched. The netguard is installed before the app is imported, so nothing the
app does can leave the machine.

The gateway starts it with `python -c` (see `process_pool.py`), passing two pipe
file descriptors: requests in, answers out (`ipc`). stdout and stderr stay the
app's, shared with the gateway's terminal, like a function's CloudWatch log;
an invocation that asks for its log (Lambda's `LogType: Tail`) also gets what
it wrote to them.

Invocations are of three kinds: `websocket` (a route's handler), `http` (a
REST route, through Chalice's LocalGateway) and `lambda` (a pure function,
`@app.lambda_function`, called with the event and context as Lambda calls it).
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import importlib.machinery
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from localgateway.awslambda import ipc, netguard

IMPORTLIB_DIR = os.path.dirname(importlib.__file__) + os.sep
# Lambda's `LogType: Tail` returns the last 4 KB of an invocation's log; keep as many characters.
LOG_TAIL_CHARS = 4096


def main(read_fd: int, write_fd: int, package_root: str) -> None:
    inbox = os.fdopen(read_fd, "rb")
    outbox = os.fdopen(write_fd, "wb")
    init = _read(inbox)
    if init is None:
        return
    netguard.install(init["allowed_hosts"])
    try:
        runtime = Runtime(init, package_root)
    except BaseException as error:  # any failure of the import, SystemExit included
        _write(outbox, {"failed": app_traceback(error)})
        return
    _write(outbox, {"ready": runtime.description()})
    while (request := _read(inbox)) is not None:
        _write(outbox, runtime.invoke(request))


class _SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """Compiles the app's own modules from source, neither reading nor writing a .pyc.

    A .pyc is trusted when the source's size and mtime in whole seconds match, so an
    edit that keeps the size within the second (a digit changed, saved twice) would
    reload the previous code. The app is small; its libraries keep their caches.
    """

    def path_stats(self, path: str) -> dict[str, Any]:
        raise OSError("no bytecode cache for the app's own code")


def _import_from_source(project_dir: Path) -> None:
    """Load app.py and chalicelib/ (what Chalice deploys as the app's code) with
    `_SourceOnlyLoader`; everything else, vendor/ included, imports as usual."""
    library = project_dir / "chalicelib"

    def finder(entry: str) -> importlib.machinery.FileFinder:
        folder = Path(entry)
        if folder != project_dir and not folder.is_relative_to(library):
            raise ImportError("not the app's own code")
        suffixes = importlib.machinery.SOURCE_SUFFIXES
        return importlib.machinery.FileFinder(entry, (_SourceOnlyLoader, suffixes))

    sys.path_hooks.insert(0, finder)
    sys.path_importer_cache.pop(str(project_dir), None)


def app_traceback(error: BaseException) -> str:
    """The traceback from the first frame that is not the gateway's or importlib's."""
    frames = error.__traceback__
    while frames is not None and _is_machinery(frames.tb_frame.f_code.co_filename):
        frames = frames.tb_next
    return "".join(traceback.format_exception(type(error), error, frames)).rstrip()


def stack_trace(error: BaseException) -> list[str]:
    """The app's frames of a traceback, formatted as Lambda's `stackTrace` lists them."""
    frames = traceback.extract_tb(error.__traceback__)
    return traceback.format_list([frame for frame in frames if not _is_machinery(frame.filename)])


def _is_machinery(filename: str) -> bool:
    return (
        filename == __file__
        or filename.startswith("<frozen importlib")
        or filename.startswith(IMPORTLIB_DIR)
    )


def _read(inbox: BinaryIO) -> dict[str, Any] | None:
    line = inbox.readline()
    return ipc.decode(line) if line else None


def _write(outbox: BinaryIO, message: dict[str, Any]) -> None:
    try:
        data = ipc.encode(message)
    except (TypeError, ValueError) as error:
        sys.stderr.write(f"[ERROR] Runtime.MarshalError: {error}\n")
        failure = {"kind": ipc.MARSHAL, "message": str(error)}
        data = ipc.encode({"error": f"Runtime.MarshalError: {error}", "failure": failure})
    outbox.write(data)
    outbox.flush()


class _Tee:
    """A stream that also keeps what is written to it."""

    def __init__(self, stream: TextIO, kept: list[str]) -> None:
        self._stream = stream
        self._kept = kept

    def write(self, text: str) -> int:
        self._kept.append(text)
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def _keeping_output(kept: list[str]) -> Iterator[None]:
    """What the app prints and logs to stdout and stderr, kept as well.

    Logging handlers made at import (Chalice's `app.log`, `basicConfig`) hold
    the original streams: they write to the tees too while this lasts.
    """
    stdout, stderr = sys.stdout, sys.stderr
    tees = {id(stdout): _Tee(stdout, kept), id(stderr): _Tee(stderr, kept)}
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    handlers = [
        handler
        for logger in loggers
        for handler in getattr(logger, "handlers", ())
        if isinstance(handler, logging.StreamHandler) and id(handler.stream) in tees
    ]
    originals = [handler.setStream(tees[id(handler.stream)]) for handler in handlers]
    sys.stdout, sys.stderr = tees[id(stdout)], tees[id(stderr)]
    try:
        yield
    finally:
        sys.stdout, sys.stderr = stdout, stderr
        for handler, original in zip(handlers, originals):
            handler.setStream(original)


class Runtime:
    """The imported app and how to call its handlers."""

    def __init__(self, init: dict[str, Any], package_root: str) -> None:
        project_dir = init["project_dir"]
        # The app sees its project first on sys.path, as in Lambda's task root,
        # and never the gateway's checkout (it may hold an app.py of its own).
        if package_root in sys.path:
            sys.path.remove(package_root)
        sys.path.insert(0, project_dir)
        _import_from_source(Path(project_dir))
        vendor = Path(project_dir) / "vendor"
        if vendor.is_dir():
            sys.path.append(str(vendor))
        self._init = init
        module = importlib.import_module("app")
        app = getattr(module, "app", None)
        from chalice import Chalice

        if not isinstance(app, Chalice):
            raise TypeError(f"{module.__file__} defines no Chalice app named `app`")
        self.app = app
        app.websocket_api.configure(init["domain_name"], init["api_stage"])
        self._local_gateway: Any = None

    def description(self) -> dict[str, Any]:
        """What the gateway needs to route: websocket route keys, REST paths, pure functions."""
        return {
            "websocket": {key: config.name for key, config in self.app.websocket_handlers.items()},
            "routes": sorted(self.app.routes),
            "pure_functions": sorted(function.name for function in self.app.pure_lambda_functions),
            "pid": os.getpid(),
        }

    def invoke(self, request: dict[str, Any]) -> dict[str, Any]:
        if not request.get("log"):
            return self._run(request)
        kept: list[str] = []
        with _keeping_output(kept):
            answer = self._run(request)
        answer["log"] = "".join(kept)[-LOG_TAIL_CHARS:]
        return answer

    def _run(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            if request["kind"] == "http":
                return {"response": self._http(request)}
            # Websocket handlers and pure functions alike: Chalice's wrapped handler, which
            # runs the app's middleware, called with the event and a context.
            return {"response": self._handler(request)}
        except Exception as error:
            # Like Lambda's log: the error, then its traceback, in one write so that
            # workers failing at the same time do not interleave their lines.
            summary = f"{type(error).__name__}: {error}"
            sys.stderr.write(f"[ERROR] {summary}\n{app_traceback(error)}\n")
            failure = {
                "kind": ipc.EXCEPTION,
                "type": type(error).__name__,
                "message": str(error),
                "stack_trace": stack_trace(error),
            }
            return {"error": summary, "failure": failure}

    def _context(self, request: dict[str, Any]) -> Any:
        from chalice.local import LambdaContext

        function = request["context"]
        context = LambdaContext(
            function_name=function["function_name"],
            memory_size=function["memory_mb"],
            max_runtime_ms=function["timeout_ms"],
        )
        context.log_group_name = f"/aws/lambda/{function['function_name']}"
        # A Lambda Invoke names its request and the ARN it called, as the caller sees them.
        if "request_id" in function:
            context.aws_request_id = function["request_id"]
        if "invoked_function_arn" in function:
            context.invoked_function_arn = function["invoked_function_arn"]
        return context

    def _handler(self, request: dict[str, Any]) -> Any:
        handler = self.app.handler_map[request["handler"]]
        return handler(request["event"], self._context(request))

    def _http(self, request: dict[str, Any]) -> dict[str, Any]:
        """A REST route, through `chalice local`'s own LocalGateway."""
        from chalice.config import Config
        from chalice.local import LocalGateway, LocalGatewayException

        if self._local_gateway is None:
            function = request["context"]
            config = Config.create(
                chalice_stage=self._init["stage"],
                lambda_timeout=function["timeout_ms"] // 1000,
                lambda_memory_size=function["memory_mb"],
            )
            self._local_gateway = LocalGateway(self.app, config)
        body = request.get("body")
        try:
            response = self._local_gateway.handle_request(
                method=request["method"],
                path=request["path"],
                headers=request["headers"],
                body=None if body is None else base64.b64decode(body),
            )
        except LocalGatewayException as error:
            body = error.body.decode() if isinstance(error.body, bytes) else error.body
            response = {"statusCode": error.CODE, "headers": dict(error.headers), "body": body}
        return response
