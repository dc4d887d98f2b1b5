"""`python -m localgateway`: flags, start-up, the banner, and a clean Ctrl-C.

Start-up order matters for the errors a user sees first: the project is read
(missing app.py, broken config.json), the ports are bound (port in use), then
the embedded DynamoDB starts, the tables are created and a first worker
imports the app (broken app.py), all before the banner says it is ready.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from botocore.exceptions import BotoCoreError, ClientError

from localgateway import dynamodb, environment, events, netguard, project, registry, tls, workers
from localgateway.reload import Reloader
from localgateway.server import Gateway

log = logging.getLogger("localgateway")

BACKLOG = 1024


class StartupError(Exception):
    """Why the gateway cannot start, in words for the person who started it."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m localgateway",
        description="A local API Gateway WebSocket API for Chalice apps, DynamoDB included.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="HTTP and ws port (0: any free)")
    parser.add_argument("--stage", default="dev", help="Chalice stage of .chalice/config.json")
    parser.add_argument(
        "--autoreload",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="reload the app when app.py, chalicelib/ or the config change",
    )
    parser.add_argument("--project-dir", default=".", help="the Chalice project to run")
    parser.add_argument(
        "--merge-template",
        help="CloudFormation template with the app's tables (default: .chalice/resources.json)",
    )
    parser.add_argument(
        "--dynamodb-endpoint",
        metavar="URL",
        help="use this DynamoDB (DynamoDB Local, LocalStack, AWS) instead of the embedded one",
    )
    parser.add_argument(
        "--post-latency-ms",
        type=float,
        default=0.0,
        metavar="N",
        help="delay every @connections call by N ms, like API Gateway's latency",
    )
    parser.add_argument("--tls-port", type=int, default=0, help="HTTPS and wss port (0: any free)")
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=registry.IDLE_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help="close connections idle this long (API Gateway: 600)",
    )
    parser.add_argument(
        "--max-connection-duration",
        type=float,
        default=registry.MAX_CONNECTION_SECONDS,
        metavar="SECONDS",
        help="close connections open this long (API Gateway: 7200)",
    )
    parser.add_argument(
        "--max-workers", type=int, default=8, help="handler processes per function, at most"
    )
    parser.add_argument(
        "--warm-workers", type=int, default=2, help="handler processes started in advance"
    )
    parser.add_argument(
        "--endpoints-file",
        metavar="PATH",
        help="write the endpoints as JSON to PATH once ready (for scripts and tests)",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no line per connection and message; failures still shown",
    )
    args = parser.parse_args(argv)
    if args.max_workers < 1 or args.warm_workers < 0:
        parser.error("--max-workers must be at least 1 and --warm-workers at least 0")
    if args.idle_timeout <= 0 or args.max_connection_duration <= 0:
        parser.error("timeouts must be positive")
    return args


def main(argv: list[str] | None = None, started: float | None = None) -> int:
    args = parse_args(argv)
    _configure_logging(args.quiet)
    try:
        asyncio.run(serve(args, time.monotonic() if started is None else started))
    except StartupError as error:
        print(f"localgateway: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def _configure_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    if quiet:
        logging.getLogger("localgateway.access").setLevel(logging.WARNING)


def _load(args: argparse.Namespace) -> project.Project:
    return project.load(args.project_dir, args.stage, args.merge_template)


def _bind(host: str, port: int, what: str) -> socket.socket:
    try:
        # A broadcast opens many connections at once: a short backlog would drop some.
        return socket.create_server((host, port), backlog=BACKLOG)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise StartupError(
                f"port {port} on {host} is in use (another gateway, or chalice local?): "
                f"stop it or choose another with {what}"
            ) from None
        raise StartupError(f"cannot listen on {host}:{port}: {error.strerror}") from None


async def serve(args: argparse.Namespace, started: float) -> None:
    try:
        source = _load(args)
    except project.ProjectError as error:
        raise StartupError(str(error)) from None
    off_machine = bool(args.dynamodb_endpoint) and dynamodb.is_off_machine(args.dynamodb_endpoint)
    allowed = (urlsplit(args.dynamodb_endpoint).hostname or "",) if off_machine else ()
    netguard.install(allowed)
    async with contextlib.AsyncExitStack() as stack:
        main_socket = stack.enter_context(_bind(args.host, args.port, "--port"))
        tls_socket = stack.enter_context(_bind("127.0.0.1", args.tls_port, "--tls-port"))
        scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="localgateway-"))
        try:
            local_tls = tls.create(Path(scratch), os.environ.get("AWS_CA_BUNDLE"))
        except OSError as error:
            raise StartupError(f"cannot read the CA bundle in AWS_CA_BUNDLE: {error}") from None
        aws = await asyncio.to_thread(dynamodb.EmbeddedAws)
        aws_endpoint = aws.start()
        stack.callback(aws.stop)

        dynamodb_endpoint = args.dynamodb_endpoint or aws_endpoint
        domain_name = f"127.0.0.1:{tls_socket.getsockname()[1]}"
        main_host = _reachable_host(args.host)
        main_address = f"{main_host}:{main_socket.getsockname()[1]}"
        runtime = workers.Runtime(
            workers.Launch(
                base_environment=dict(os.environ),
                endpoints=environment.Endpoints(
                    aws=aws_endpoint,
                    dynamodb=dynamodb_endpoint,
                    connections=f"https://{domain_name}/{source.api_stage}",
                    ca_bundle=str(local_tls.bundle_file),
                    lambda_api=f"http://{main_address}",
                ),
                domain_name=domain_name,
                keep_credentials=off_machine,
                # The main port is on this machine even on a --host that is not loopback.
                allowed_hosts=allowed if netguard.is_local(main_host) else (*allowed, main_host),
                max_workers=args.max_workers,
                warm_workers=args.warm_workers,
            )
        )
        stack.callback(runtime.close)
        table_client = dynamodb.client(
            dynamodb_endpoint, environment.region(os.environ), use_own_credentials=off_machine
        )
        created: list[str] = []

        def prepare(current: project.Project) -> None:
            created.extend(dynamodb.create_tables(table_client, current.tables))

        await _start(runtime, source, prepare, dynamodb_endpoint)
        # Warnings about pure functions come once the app has been imported.
        for warning in runtime.current.project.warnings:
            log.warning("warning: %s", warning)

        gateway = Gateway(
            runtime,
            events.Api(events.api_id(source.app_name, source.stage), source.api_stage, domain_name),
            registry.Limits(
                idle_timeout_ms=int(args.idle_timeout * 1000),
                max_duration_ms=int(args.max_connection_duration * 1000),
            ),
            post_latency_ms=args.post_latency_ms,
        )
        runner = web.AppRunner(gateway.application(), access_log=None, handle_signals=False)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        await web.SockSite(runner, main_socket).start()
        await web.SockSite(runner, tls_socket, ssl_context=local_tls.server_context).start()

        stop = _stop_on_signals(runtime, stack)
        endpoints = _endpoints(main_address, source, domain_name, local_tls)
        endpoints.update(dynamodb=dynamodb_endpoint, aws=aws_endpoint)
        loaded = runtime.current.project
        print(_banner(loaded, endpoints, created, args, time.monotonic() - started), flush=True)
        if args.endpoints_file:
            _write_json(Path(args.endpoints_file), endpoints)
        if args.autoreload:
            await Reloader(runtime, lambda: _load(args), prepare).run(stop)
        else:
            await stop.wait()
        await gateway.close_all()


async def _start(
    runtime: workers.Runtime,
    source: project.Project,
    prepare: Callable[[project.Project], None],
    dynamodb_endpoint: str,
) -> None:
    """Create the tables and import the app in a first worker, at the same time."""
    tables = asyncio.create_task(asyncio.to_thread(prepare, source))
    try:
        await runtime.load(source)
    except workers.WorkerFailed as error:
        tables.cancel()
        raise StartupError(f"{source.root / 'app.py'} failed to import:\n{error}") from None
    try:
        await tables
    except (BotoCoreError, ClientError) as error:
        raise StartupError(f"cannot create the tables at {dynamodb_endpoint}: {error}") from None


def _stop_on_signals(runtime: workers.Runtime, stack: contextlib.AsyncExitStack) -> asyncio.Event:
    """Ctrl-C (or SIGTERM) stops gracefully; a second one stops at once."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            runtime.close()
            os._exit(130)
        log.info("stopping")
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
        stack.callback(loop.remove_signal_handler, signum)
    return stop


def _reachable_host(host: str) -> str:
    """Where clients on this machine reach the main port (any address: loopback)."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host


def _endpoints(
    main_address: str, source: project.Project, domain_name: str, local_tls: tls.LocalTls
) -> dict[str, Any]:
    stage = source.api_stage
    return {
        "http": f"http://{main_address}/",
        "websocket": f"ws://{main_address}/{stage}",
        "websocket_tls": f"wss://{domain_name}/{stage}",
        "connections": f"http://{main_address}/{stage}",
        "connections_tls": f"https://{domain_name}/{stage}",
        "lambda": f"http://{main_address}",
        "ca_file": str(local_tls.ca_file),
        "tables": {table.logical_id: table.name for table in source.tables},
        "app_name": source.app_name,
        "stage": source.stage,
        "pid": os.getpid(),
    }


def _banner(
    source: project.Project,
    endpoints: dict[str, Any],
    created: list[str],
    args: argparse.Namespace,
    seconds: float,
) -> str:
    index = source.static_dir / "index.html"
    page = "static/index.html" if index.is_file() else "no static/index.html yet"
    embedded = endpoints["dynamodb"] == endpoints["aws"]
    tables = ", ".join(
        f"{table.name}{' (created)' if table.name in created else ''}" for table in source.tables
    )
    functions = (
        ", ".join(function.lambda_name for function in source.pure_functions.values())
        or "no @app.lambda_function yet"
    )
    lines = [
        f"localgateway: {source.app_name}, stage {source.stage}, from {source.root}",
        f"  page          {endpoints['http']}  ({page})",
        f"  websocket     {endpoints['websocket']}",
        f"  @connections  {endpoints['connections']}/@connections/{{connection_id}}",
        f"  for the app   {endpoints['connections_tls']}  (HTTPS and wss)",
        f"  CA            {endpoints['ca_file']}",
        f"  DynamoDB      {endpoints['dynamodb']}"
        + (" (embedded)" if embedded else "")
        + (f"; tables: {tables}" if tables else "; no tables in a merge template"),
        f"  Lambda        {endpoints['lambda']}  (Invoke: {functions})",
        f"  other AWS     {endpoints['aws']} (embedded moto, for every other client)",
        "  autoreload    "
        + ("on: app.py, chalicelib/, .chalice/config.json" if args.autoreload else "off")
        + (f", {source.merge_template.name}" if args.autoreload and source.merge_template else ""),
    ]
    if args.post_latency_ms:
        lines.append(f"  latency       {args.post_latency_ms:g} ms per @connections call")
    lines.append(f"ready in {seconds:.1f} s; Ctrl-C stops")
    return "\n".join(lines)


def _write_json(path: Path, document: dict[str, Any]) -> None:
    """Write atomically, so that a reader never sees half a file."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(document, indent=2))
    temporary.replace(path)
