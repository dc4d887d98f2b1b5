"""Start-up and shut-down of the gateway, from parsed flags (`cli.py` parses them).

Start-up order matters for the errors a user sees first: the project is read
(missing app.py, broken config.json), the ports are bound (port in use), then
the embedded DynamoDB starts, the tables are created and filled with the
items saved at the last stop, and a first worker imports the app (broken
app.py), all before the banner says it is ready.

Ctrl-C closes every websocket with 1001, waits (briefly) for their
`$disconnect`s, stops the workers, saves what changed in the embedded tables
(state/changes.py) and the `$disconnect`s that could not run (state/journal.py),
and exits. The next start
runs those before it accepts a websocket; the state is also saved every
`--save-every` seconds (state/saver.py), so a `kill -9` loses at most that.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import ipaddress
import json
import logging
import os
import resource
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import boto3
import botocore.session
from aiohttp import web
from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound

from localgateway import project, tls
from localgateway.apigateway import events, registry
from localgateway.aws import buckets, cognito, dynamodb, moto_query
from localgateway.awslambda import environment, netguard, process_pool
from localgateway.reload import Reloader
from localgateway.server import Gateway
from localgateway.signing.signatures import Signatures
from localgateway.state import journal, snapshot
from localgateway.state.changes import Changes
from localgateway.state.saver import Saver

log = logging.getLogger("localgateway")

BACKLOG = 1024
# Ctrl-C: how long the $disconnects of the closed websockets may take, in all.
SHUTDOWN_DISCONNECT_SECONDS = 2.0
STATE_DIR = ".localgateway"


class StartupError(Exception):
    """Why the gateway cannot start, in words for the person who started it."""


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
    _check_profile()
    off_machine = bool(args.dynamodb_endpoint) and dynamodb.is_off_machine(args.dynamodb_endpoint)
    allowed = (urlsplit(args.dynamodb_endpoint).hostname or "",) if off_machine else ()
    netguard.install(allowed)
    _raise_file_limit()
    if not _loopback_only(args.host):
        log.warning(_exposure_warning(args.host))
    async with contextlib.AsyncExitStack() as stack:
        main_socket = stack.enter_context(_bind(args.host, args.port, "--port"))
        tls_socket = stack.enter_context(_bind("127.0.0.1", args.tls_port, "--tls-port"))
        scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="localgateway-"))
        try:
            local_tls = tls.create(Path(scratch), os.environ.get("AWS_CA_BUNDLE"))
        except OSError as error:
            raise StartupError(f"cannot read the CA bundle in AWS_CA_BUNDLE: {error}") from None
        moto_query.install()
        aws = await asyncio.to_thread(dynamodb.EmbeddedAws)
        aws_endpoint = aws.start()
        stack.callback(aws.stop)
        region = environment.region(os.environ)
        credentials = _developer_credentials() if off_machine else environment.FAKE_CREDENTIALS
        accepted = {key.access_key: key for key in {environment.FAKE_CREDENTIALS, credentials}}
        identities = _Identities(aws, region, args.cognito_user, args.cognito_group, accepted)
        source = await asyncio.to_thread(identities.resolve, source)

        dynamodb_endpoint = args.dynamodb_endpoint or aws_endpoint
        domain_name = f"127.0.0.1:{tls_socket.getsockname()[1]}"
        main_host = _reachable_host(args.host)
        main_address = f"{main_host}:{main_socket.getsockname()[1]}"
        runtime = process_pool.Runtime(
            process_pool.Launch(
                region=region,
                endpoints=environment.Endpoints(
                    aws=aws_endpoint,
                    dynamodb=dynamodb_endpoint,
                    connections=f"https://{domain_name}/{source.api_stage}",
                    ca_bundle=str(local_tls.bundle_file),
                    lambda_api=f"http://{main_address}",
                ),
                domain_name=domain_name,
                credentials=credentials,
                # The main port is on this machine even on a --host that is not loopback.
                allowed_hosts=allowed if netguard.is_local(main_host) else (*allowed, main_host),
                max_workers=args.max_workers,
                warm_workers=args.warm_workers,
                queue_timeout=args.queue_timeout,
                overrides=tuple(args.env),
            )
        )
        stack.callback(runtime.close)
        state_dir = _state_dir(args, source)
        tables = _Tables(
            dynamodb.client(dynamodb_endpoint, region, use_own_credentials=off_machine),
            dynamodb_endpoint,
            # Only the embedded DynamoDB forgets: any other keeps its own items.
            None if args.dynamodb_endpoint else state_dir,
            aws.changes,
            # The restore writes what the files hold already: no change to save again.
            dynamodb.untracked(dynamodb.aws_client("dynamodb", aws_endpoint, region)),
        )
        await _start(runtime, source, tables, fresh=args.fresh)
        loaded = runtime.current.project
        warnings = [*loaded.warnings, *await asyncio.to_thread(tables.unknown, runtime.current)]
        for warning in warnings:
            log.warning("warning: %s", warning)

        gateway = Gateway(
            runtime,
            events.Api(events.api_id(source.app_name, source.stage), source.api_stage, domain_name),
            registry.Limits(
                idle_timeout_ms=int(args.idle_timeout * 1000),
                max_duration_ms=int(args.max_connection_duration * 1000),
            ),
            Signatures(region, accepted),
            post_latency_ms=args.post_latency_ms,
            page_config=_page_config(source.api_stage, identities.about()),
            frame_queue_timeout=args.frame_queue_timeout,
        )
        runner = web.AppRunner(
            gateway.application(), access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        await web.SockSite(runner, main_socket).start()
        await web.SockSite(runner, tls_socket, ssl_context=local_tls.server_context).start()

        stop = _stop_on_signals(runtime, stack)
        await _finish_last_run(gateway, state_dir, args.fresh)
        saver = Saver(
            gateway.websockets.journal,
            tables.save,
            tables.compact,
            state_dir,
            (lambda: 0) if args.dynamodb_endpoint else (lambda: aws.writes),
        )
        saving = asyncio.create_task(saver.run(args.save_every))
        stack.callback(saving.cancel)
        endpoints = _endpoints(main_address, source, domain_name, local_tls)
        endpoints.update(
            dynamodb=dynamodb_endpoint,
            aws=aws_endpoint,
            cognito=identities.about(),
            buckets=identities.buckets,
        )
        banner = _banner(loaded, endpoints, tables, warnings, args, time.monotonic() - started)
        print(banner, flush=True)
        if args.endpoints_file:
            _write_json(Path(args.endpoints_file), endpoints)
        if args.autoreload:
            reload = Reloader(
                runtime, lambda: identities.resolve(_load(args)), tables.prepare, tables.unknown
            )
            await reload.run(stop)
        else:
            await stop.wait()
        saving.cancel()
        await _shut_down(gateway, runtime, saver, tables.state_dir)


class _Identities:
    """The template's resources made in the embedded moto: Cognito pools and clients with
    the `--cognito-user` users in them, and S3 buckets (served as private ones)."""

    def __init__(
        self,
        aws: dynamodb.EmbeddedAws,
        region: str,
        users: list[tuple[str, str]],
        groups: list[tuple[str, str]],
        accepted: dict[str, environment.Credentials],
    ) -> None:
        self.endpoint = aws.endpoint
        self.users = users
        self.groups = groups
        self.made = cognito.Made({}, {})
        self.buckets: dict[str, str] = {}
        self._aws = aws
        self._region = region
        self._accepted = accepted
        self._client = dynamodb.aws_client("cognito-idp", aws.endpoint, region)
        self._s3 = dynamodb.aws_client("s3", aws.endpoint, region)

    def resolve(self, source: project.Project) -> project.Project:
        """`source` with its `Ref`s to the pools, clients and buckets resolved (made if
        missing)."""
        prefix = f"{source.app_name}-{source.stage}"
        self.made = cognito.ensure(self._client, source.settings.template, prefix)
        cognito.add_users(self._client, self.made.pools.values(), self.users)
        cognito.add_to_groups(self._client, self.made.pools.values(), self.groups)
        self.buckets = buckets.ensure(self._s3, source.settings.template, prefix)
        self._aws.protect(self.buckets.values(), self._region, self._accepted)
        ids = {**self.made.ids, **self.buckets}
        return source.with_resources(ids) if ids else source

    def about(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "user_pools": self.made.pools,
            "clients": self.made.clients,
            "users": [name for name, _ in self.users],
            # Shown in the banner: they are demo users, made from the command line.
            "passwords": dict(self.users),
            "groups": {
                name: [g for g, user in self.groups if user == name] for name, _ in self.users
            },
        }


class _Tables:
    """The merge template's tables: created, checked, and (embedded) saved and restored."""

    def __init__(
        self, client: Any, endpoint: str, state_dir: Path | None, changes: Changes, restorer: Any
    ) -> None:
        self.client = client
        self.endpoint = endpoint
        self.state_dir = state_dir
        self.changes = changes
        self.created: list[str] = []
        self.restored: dict[str, int] = {}
        self._declared: tuple[project.Table, ...] = ()
        self._restorer = restorer

    def prepare(self, current: project.Project) -> None:
        """Create the tables that are missing (at start, and after a reload)."""
        self._declared = current.tables
        self.created.extend(dynamodb.create_tables(self.client, current.tables))
        self.changes.track({table.name: _key_names(table) for table in current.tables})

    def restore(self) -> None:
        if self.state_dir is None:
            return
        for table in self._declared:
            if not snapshot.has_files(self.state_dir, table.name):
                continue
            self.restored[table.name] = snapshot.load(
                self._restorer, table.name, self.state_dir, _key_names(table), _ttl(table)
            )
            self.changes.on_disk(table.name)

    def save(self) -> dict[str, snapshot.Written]:
        """Write what changed since the last save (whole tables where that is unknown)."""
        if self.state_dir is None:
            return {}
        taken = self.changes.take()
        try:
            return {
                table.name: snapshot.save(self.client, table.name, self.state_dir)
                if table.name in taken.full
                else snapshot.save_changes(
                    self.client, table.name, taken.keys.get(table.name, {}), self.state_dir
                )
                for table in self._declared
            }
        except BaseException:
            self.changes.put_back(taken)
            raise

    def compact(self, stopping: Callable[[], bool]) -> None:
        """Fold the tables' change files into their bases where they weigh enough."""
        if self.state_dir is None:
            return
        for table in self._declared:
            if snapshot.due(self.state_dir, table.name):
                snapshot.compact(
                    self.state_dir, table.name, _key_names(table), _ttl(table), stopping
                )

    def unknown(self, generation: process_pool.Generation) -> list[str]:
        """Warnings for handler variables that name a table this DynamoDB does not have."""
        existing = set(dynamodb.table_names(self.client))
        return [
            f"{function}: {variable}={value!r} names no table in the DynamoDB at {self.endpoint} "
            f"(tables: {', '.join(sorted(existing)) or 'none'}); the merge template "
            f"({' or '.join(str(path) for path in project.DEFAULT_MERGE_TEMPLATES)}) "
            "defines the tables the gateway creates"
            for function, variable, value in generation.project.table_variables(
                generation.functions_in_use
            )
            if value not in existing
        ]


def _key_names(table: project.Table) -> tuple[str, ...]:
    return tuple(key["AttributeName"] for key in table.properties.get("KeySchema") or ())


def _ttl(table: project.Table) -> str | None:
    ttl = table.properties.get("TimeToLiveSpecification") or {}
    return ttl.get("AttributeName") if ttl.get("Enabled") else None


async def _start(
    runtime: process_pool.Runtime, source: project.Project, tables: _Tables, fresh: bool
) -> None:
    """Create (and fill) the tables and import the app in a first worker, at the same time."""

    def prepare() -> None:
        tables.prepare(source)
        if not fresh:
            tables.restore()

    ready = asyncio.create_task(asyncio.to_thread(prepare))
    try:
        await runtime.load(source)
    except process_pool.WorkerFailed as error:
        ready.cancel()
        raise StartupError(f"{source.root / 'app.py'} failed to import:\n{error}") from None
    try:
        await ready
    except (BotoCoreError, ClientError) as error:
        raise StartupError(f"cannot create the tables at {tables.endpoint}: {error}") from None
    except (OSError, ValueError) as error:
        raise StartupError(f"cannot restore the tables from {tables.state_dir}: {error}") from None


async def _finish_last_run(gateway: Gateway, state_dir: Path, fresh: bool) -> None:
    """Run the $disconnects the last run could not (state/journal.py), then accept
    websockets: no connection of a previous run outlives it in the app's tables."""
    try:
        pending, close = journal.load(state_dir) if not fresh else ([], registry.LOST)
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise StartupError(f"cannot read {state_dir / journal.FILE}: {error}") from None
    if pending:
        left = await gateway.websockets.run_pending(pending, close)
        log.info(
            "ran the $disconnect of %d connections the last run left open%s",
            len(pending) - left,
            f" ({left} could not run: kept for the next start)" if left else "",
        )
    gateway.websockets.accepting.set()


async def _shut_down(
    gateway: Gateway, runtime: process_pool.Runtime, saver: Saver, tables_dir: Path | None
) -> None:
    """Close every websocket (1001), let their $disconnects run for a bounded time, save
    the tables and what could not run."""
    left = await gateway.close_all(SHUTDOWN_DISCONNECT_SECONDS)
    runtime.close()
    if left:
        log.warning(
            "stopped before %d $disconnect handlers finished: the next start runs them", left
        )
    try:
        saved = await saver.save(registry.SHUTDOWN, final=True)
    except (BotoCoreError, ClientError, OSError) as error:
        log.error("could not save the state to %s: %s", tables_dir, error)
        return
    if saved:
        counts = ", ".join(f"{name}: {count}" for name, count in saved.items())
        log.info("saved the tables to %s (%s)", tables_dir, counts)


def _state_dir(args: argparse.Namespace, source: project.Project) -> Path:
    return Path(args.state_dir).resolve() if args.state_dir else source.root / STATE_DIR


def _check_profile() -> None:
    """AWS_PROFILE (or AWS_DEFAULT_PROFILE) must name a profile: the embedded AWS, and the
    developer's credentials for a DynamoDB off the machine, read it."""
    try:
        botocore.session.Session().get_scoped_config()
    except ProfileNotFound as error:
        variable = "AWS_PROFILE" if os.environ.get("AWS_PROFILE") else "AWS_DEFAULT_PROFILE"
        raise StartupError(
            f"{variable}={error.kwargs['profile']} names no profile in ~/.aws/config or "
            f"~/.aws/credentials: create it (aws configure --profile NAME) or unset {variable}"
        ) from None


def _developer_credentials() -> environment.Credentials:
    """The developer's own AWS credentials, for a DynamoDB that leaves the machine."""
    found = boto3.session.Session().get_credentials()
    if found is None:
        raise StartupError(
            "--dynamodb-endpoint leaves the machine, and no AWS credentials were found "
            "(aws configure, AWS_PROFILE, or the AWS_* variables)"
        )
    frozen = found.get_frozen_credentials()
    return environment.Credentials(frozen.access_key, frozen.secret_key, frozen.token)


def _raise_file_limit() -> None:
    """A connect storm holds a socket per client: allow as many open files as the system does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _loopback_only(host: str) -> bool:
    """Whether listening on `host` keeps the gateway to this machine (0.0.0.0 does not)."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _exposure_warning(host: str) -> str:
    return (
        f"warning: --host {host} listens beyond this machine. Anyone who reaches it can "
        "open websockets (running $connect), call the app's REST routes and read static/; "
        "@connections and Lambda's Invoke need a signature, but with the published local "
        "credentials (testing/testing) anyone can make one: post to, inspect and disconnect "
        "any client, and invoke the app's functions. Use it on a network you trust."
    )


def _stop_on_signals(
    runtime: process_pool.Runtime, stack: contextlib.AsyncExitStack
) -> asyncio.Event:
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
    tables: _Tables,
    warnings: list[str],
    args: argparse.Namespace,
    seconds: float,
) -> str:
    index = source.static_dir / "index.html"
    page = "static/index.html" if index.is_file() else "no static/index.html yet"
    embedded = endpoints["dynamodb"] == endpoints["aws"]
    names = ", ".join(_table_note(table.name, tables) for table in source.tables)
    functions = (
        ", ".join(function.lambda_name for function in source.pure_functions.values())
        or "no @app.lambda_function yet"
    )
    saving = f"; saved on stop to {tables.state_dir}" if tables.state_dir else ""
    lines = [
        f"localgateway: {source.app_name}, stage {source.stage}, from {source.root}",
        "  (chalice local serves no websockets: this is its stand-in, with the same "
        "--host, --port, --stage and --autoreload)",
        f"  page          {endpoints['http']}  ({page})",
        f"  websocket     {endpoints['websocket']}",
        f"  @connections  {endpoints['connections']}/@connections/{{connection_id}}  (SigV4)",
        f"  for the app   {endpoints['connections_tls']}  (HTTPS and wss)",
        f"  CA            {endpoints['ca_file']}",
        f"  DynamoDB      {endpoints['dynamodb']}"
        + (" (embedded)" if embedded else "")
        + (f"; tables: {names}{saving}" if names else "; no tables in a merge template"),
        f"  Lambda        {endpoints['lambda']}  (Invoke: {functions})",
        f"  other AWS     {endpoints['aws']} (embedded moto, for every other client)"
        + "".join(f"; bucket {name}" for name in endpoints["buckets"].values()),
        f"  workers       at most {args.max_workers} handler processes ({args.warm_workers} kept "
        f"for messages); an invocation waits at most {args.queue_timeout:g} s for one",
        "  autoreload    "
        + ("on: app.py, chalicelib/, .chalice/config.json" if args.autoreload else "off")
        + (f", {source.merge_template.name}" if args.autoreload and source.merge_template else ""),
    ]
    if args.post_latency_ms:
        lines.append(f"  latency       {args.post_latency_ms:g} ms per @connections call")
    lines += _cognito_lines(endpoints)
    lines += [f"  warning       {warning}" for warning in warnings]
    lines.append(f"ready in {seconds:.1f} s; Ctrl-C stops")
    return "\n".join(lines)


def _page_config(stage: str, cognito: dict[str, Any]) -> dict[str, Any]:
    """What `/local-gateway.json` tells the page: the stage, and the sign-in the banner's
    `sign-in page` link carries (the template's first app client), if any."""
    config: dict[str, Any] = {"stage": stage}
    if cognito["clients"]:
        client = next(iter(cognito["clients"].values()))
        config["cognito"] = {"endpoint": cognito["endpoint"], "client": client}
    return config


def _cognito_lines(endpoints: dict[str, Any]) -> list[str]:
    """The template's user pools and app clients, the users made in them, and the page
    link that signs in through them (the page reads `cognito` and `client`)."""
    about = endpoints["cognito"]
    if not about["clients"]:
        return []
    pools = ", ".join(f"{pool} ({logical})" for logical, pool in about["user_pools"].items())
    clients = ", ".join(f"{client} ({logical})" for logical, client in about["clients"].items())
    passwords = about.get("passwords", {})
    groups = about.get("groups", {})
    users = ", ".join(
        f"{name} ({', '.join([passwords[name], *groups.get(name, [])])})" for name in about["users"]
    ) or ("none yet (--cognito-user NAME:PASSWORD)")
    query = urlencode(
        {"cognito": about["endpoint"], "client": next(iter(about["clients"].values()))}
    )
    return [
        f"  Cognito       pool {pools}, client {clients}; users: {users}",
        f"  sign-in page  {endpoints['http']}?{query}",
    ]


def _table_note(name: str, tables: _Tables) -> str:
    if name in tables.created and tables.restored.get(name):
        return f"{name} (created, {tables.restored[name]} items restored)"
    return f"{name} (created)" if name in tables.created else name


def _write_json(path: Path, document: dict[str, Any]) -> None:
    """Write atomically, so that a reader never sees half a file."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(document, indent=2))
    temporary.replace(path)
