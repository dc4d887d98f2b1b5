"""`python -m localgateway` and `chalice-local-ws`: the flags, then `startup.serve`.

`chalice local` serves REST routes only; this is its websocket-capable
stand-in, with the same --host, --port, --stage and --autoreload flags.
Argument parsing and logging set-up only: start-up, the banner and a clean
Ctrl-C are `startup.py`'s.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from typing import NoReturn

from localgateway.apigateway import registry, websocket
from localgateway.awslambda import process_pool
from localgateway.startup import STATE_DIR, StartupError, serve
from localgateway.state import saver

log = logging.getLogger("localgateway")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m localgateway",
        description=(
            "A local API Gateway WebSocket API for Chalice apps, DynamoDB included: "
            "the websocket-capable stand-in for `chalice local`, with its flags."
        ),
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
        "--max-workers",
        type=int,
        default=8,
        help="handler processes in all, at most; more invocations wait their turn",
    )
    parser.add_argument(
        "--warm-workers",
        type=int,
        default=2,
        help="handler processes kept ready for messages ($connect and $disconnect get one each)",
    )
    parser.add_argument(
        "--queue-timeout",
        type=float,
        default=process_pool.QUEUE_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help="refuse an invocation that waited this long for a free handler process",
    )
    parser.add_argument(
        "--frame-queue-timeout",
        type=float,
        default=websocket.FRAME_QUEUE_SECONDS,
        metavar="SECONDS",
        help="a flooding connection's frame that waited this long: 'Too Many Requests'",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        type=_variable,
        help="set a variable for every function, over config.json (repeat for more)",
    )
    parser.add_argument(
        "--cognito-user",
        action="append",
        default=[],
        metavar="NAME:PASSWORD",
        type=_user,
        help="a user, with this permanent password, in every Cognito user pool of the template",
    )
    parser.add_argument(
        "--cognito-group",
        action="append",
        default=[],
        metavar="GROUP:NAME",
        type=_membership,
        help="put a --cognito-user in a group of every pool, e.g. admins:alice (repeat for more)",
    )
    parser.add_argument(
        "--state-dir",
        metavar="PATH",
        help=f"where the tables and pending $disconnects are saved (default: PROJECT/{STATE_DIR})",
    )
    parser.add_argument(
        "--save-every",
        type=float,
        default=saver.SAVE_SECONDS,
        metavar="SECONDS",
        help="save the state this often when it changed (a kill -9 loses at most that)",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="start with empty tables instead of the ones saved at the last stop",
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
    durations = (args.idle_timeout, args.max_connection_duration, args.queue_timeout)
    if min(*durations, args.frame_queue_timeout, args.save_every) <= 0:
        parser.error("timeouts and --save-every must be positive")
    return args


def _user(text: str) -> tuple[str, str]:
    name, colon, password = text.partition(":")
    if not colon or not name or not password:
        raise argparse.ArgumentTypeError(f"expected NAME:PASSWORD, got {text!r}")
    return name, password


def _membership(text: str) -> tuple[str, str]:
    group, colon, name = text.partition(":")
    if not colon or not group or not name:
        raise argparse.ArgumentTypeError(f"expected GROUP:NAME, got {text!r}")
    return group, name


def _variable(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def main(argv: list[str] | None = None, started: float | None = None) -> NoReturn:
    # Until the gateway serves (and handles them itself), Ctrl-C and SIGTERM stop start-up:
    # asyncio.run cancels it, and what was started is stopped on the way out.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    args = parse_args(argv)
    _configure_logging(args.quiet)
    try:
        asyncio.run(serve(args, time.monotonic() if started is None else started))
    except StartupError as error:
        print(f"localgateway: {error}", file=sys.stderr)
        _exit(1)
    except KeyboardInterrupt:
        _exit(130)
    _exit(0)


def _exit(code: int) -> NoReturn:
    """Exit now: everything is stopped and saved. The interpreter's own teardown of what
    the gateway loaded (moto's models, the app's clients) took 3-4 s after a stop with
    300 clients, more than the rest of the stop (bench/stop.py)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _configure_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    if quiet:
        logging.getLogger("localgateway.access").setLevel(logging.WARNING)
