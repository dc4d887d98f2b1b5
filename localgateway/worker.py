"""A handler process: one Lambda execution environment for the app.

It imports the app once (a cold start), then runs one invocation at a time,
as Lambda does, for as long as the gateway keeps it. Before any invocation it
points `app.websocket_api` at the gateway with `configure()`, the public call
a Lambda runtime's domain name would reach; the app's own functions are never
patched. The netguard is installed before the app is imported, so nothing the
app does can leave the machine.

The gateway starts it with `python -c` (see `workers.py`), passing two pipe
file descriptors: requests in, answers out (`ipc`). stdout and stderr stay the
app's, shared with the gateway's terminal, like a function's CloudWatch log.
"""

from __future__ import annotations

import base64
import importlib
import os
import sys
import traceback
from pathlib import Path
from typing import Any, BinaryIO

from localgateway import ipc, netguard

IMPORTLIB_DIR = os.path.dirname(importlib.__file__) + os.sep


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


def app_traceback(error: BaseException) -> str:
    """The traceback from the first frame that is not the gateway's or importlib's."""
    frames = error.__traceback__
    while frames is not None and _is_machinery(frames.tb_frame.f_code.co_filename):
        frames = frames.tb_next
    return "".join(traceback.format_exception(type(error), error, frames)).rstrip()


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
        data = ipc.encode({"error": f"Runtime.MarshalError: {error}"})
    outbox.write(data)
    outbox.flush()


class Runtime:
    """The imported app and how to call its handlers."""

    def __init__(self, init: dict[str, Any], package_root: str) -> None:
        project_dir = init["project_dir"]
        # The app sees its project first on sys.path, as in Lambda's task root,
        # and never the gateway's checkout (it may hold an app.py of its own).
        if package_root in sys.path:
            sys.path.remove(package_root)
        sys.path.insert(0, project_dir)
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
        """What the gateway needs to route: websocket route keys and REST paths."""
        return {
            "websocket": {key: config.name for key, config in self.app.websocket_handlers.items()},
            "routes": sorted(self.app.routes),
            "pid": os.getpid(),
        }

    def invoke(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            if request["kind"] == "http":
                return {"response": self._http(request)}
            return {"response": self._websocket(request)}
        except Exception as error:
            # Like Lambda's log: the error, then its traceback, in one write so that
            # workers failing at the same time do not interleave their lines.
            summary = f"{type(error).__name__}: {error}"
            sys.stderr.write(f"[ERROR] {summary}\n{app_traceback(error)}\n")
            return {"error": summary}

    def _context(self, request: dict[str, Any]) -> Any:
        from chalice.local import LambdaContext

        function = request["context"]
        return LambdaContext(
            function_name=function["function_name"],
            memory_size=function["memory_mb"],
            max_runtime_ms=function["timeout_ms"],
        )

    def _websocket(self, request: dict[str, Any]) -> Any:
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
