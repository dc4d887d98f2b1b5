"""Handler processes, managed like Lambda's execution environments.

Each worker (`handler_process.py`) runs one invocation at a time. Every function has
its own pool of workers, as every Lambda function has its own execution
environments; `scheduler.py` decides, without I/O, which invocation runs next
on which worker, when a worker starts or stops, and keeps the total under
`--max-workers`. This module carries those decisions out: it starts and
stops processes, runs invocations on them within the function's timeout, and
reports back.

Two waits are bounded separately, as on AWS they are different things: the
wait for a free worker (`queue_timeout`; Lambda would throttle instead, this
gateway queues and says so in the log when the wait is too long) and the
invocation itself (the function's timeout, and API Gateway's 29 s
integration timeout, counted from the moment a worker takes the invocation).

The app's pure functions (`@app.lambda_function`) are known only once it has
been imported: a generation's first worker describes the app, then the
generation gives the pure functions their pools.

A `Generation` is one version of the app's code and settings. Autoreload
starts a new one and switches new invocations to it once a worker has imported
the app; the old one finishes what it has queued and in flight, then its
workers exit. The event loop only ever waits on pipes: no handler code runs in
the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Hashable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from localgateway import project
from localgateway.apigateway import routing
from localgateway.awslambda import environment, ipc, scheduler

log = logging.getLogger("localgateway")

PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from localgateway.awslambda import handler_process; "
    "handler_process.main(int(sys.argv[2]), int(sys.argv[3]), sys.argv[1])"
)
START_TIMEOUT_SECONDS = 60.0
# How often idle workers beyond the warm ones are looked for (scheduler.IDLE_SECONDS).
RECLAIM_EVERY_SECONDS = 5.0
# How long an invocation may wait for a free worker before it is refused.
QUEUE_TIMEOUT_SECONDS = 60.0


class WorkerFailed(Exception):
    """A worker could not import the app; the message is the traceback."""


class WorkerDied(Exception):
    """A worker exited during an invocation (sys.exit, a crash, a kill)."""

    def __init__(self, code: int) -> None:
        self.status = f"exit status {code}" if code >= 0 else f"signal: {_signal_name(-code)}"
        super().__init__(f"the handler process exited ({self.status})")


def _signal_name(number: int) -> str:
    try:
        return (signal.strsignal(number) or str(number)).lower()
    except ValueError:
        return str(number)


@dataclass(frozen=True)
class Failure:
    """Why an invocation failed: `kind` is one of ipc's, `type` and `stack_trace` an exception's."""

    kind: str
    message: str
    type: str = ""
    stack_trace: tuple[str, ...] = ()


@dataclass(frozen=True)
class Result:
    """An invocation's outcome: the handler's return value, or an error.

    `error` is one line for the log; `failure` says what happened in detail,
    and `log` is what the function printed when the invocation asked for it.
    `waited_ms` is how long it queued for a free worker before it ran.
    """

    response: Any = None
    error: str | None = None
    duration_ms: float = 0.0
    failure: Failure | None = None
    log: str | None = None
    waited_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Launch:
    """Everything about starting workers that is the same for every generation."""

    region: str
    endpoints: environment.Endpoints
    domain_name: str
    credentials: environment.Credentials = environment.FAKE_CREDENTIALS
    allowed_hosts: tuple[str, ...] = ()
    max_workers: int = 8
    warm_workers: int = 2
    queue_timeout: float = QUEUE_TIMEOUT_SECONDS
    # --env NAME=VALUE: set for every function, over config.json (like SAM's --env-vars).
    overrides: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class WorkerSpec:
    cwd: Path
    env: dict[str, str]
    init: dict[str, Any]


class Worker:
    def __init__(
        self, process: asyncio.subprocess.Process, reader: asyncio.StreamReader, writer: Any
    ) -> None:
        self.process = process
        self._reader = reader
        self._writer = writer
        self.idle_since = 0.0

    @classmethod
    async def start(cls, spec: WorkerSpec) -> tuple[Worker, dict[str, Any]]:
        """Spawn a worker and wait until it has imported the app; WorkerFailed if it cannot."""
        loop = asyncio.get_running_loop()
        parent_read, child_write = os.pipe()
        child_read, parent_write = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                BOOT,
                PACKAGE_ROOT,
                str(child_read),
                str(child_write),
                pass_fds=(child_read, child_write),
                cwd=spec.cwd,
                env=spec.env,
                stdin=asyncio.subprocess.DEVNULL,
                # Out of the terminal's process group: Ctrl-C is for the gateway,
                # which stops its workers itself (and they exit when it dies).
                start_new_session=True,
            )
        except BaseException:
            os.close(parent_read)
            os.close(parent_write)
            raise
        finally:
            os.close(child_read)
            os.close(child_write)
        reader = asyncio.StreamReader(limit=ipc.LINE_LIMIT)
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(parent_read, "rb", 0)
        )
        writer, _ = await loop.connect_write_pipe(
            asyncio.Protocol, os.fdopen(parent_write, "wb", 0)
        )
        worker = cls(process, reader, writer)
        writer.write(ipc.encode(spec.init))
        try:
            line = await asyncio.wait_for(reader.readline(), START_TIMEOUT_SECONDS)
        except TimeoutError:
            worker.kill()
            raise WorkerFailed(
                f"the app took over {START_TIMEOUT_SECONDS:.0f} s to import"
            ) from None
        except BaseException:  # cancelled: the gateway is stopping
            worker.kill()
            raise
        answer = ipc.decode(line) if line else {"failed": "the handler process exited at start"}
        if "ready" not in answer:
            worker.kill()
            raise WorkerFailed(answer.get("failed", "the handler process did not start"))
        return worker, answer["ready"]

    @property
    def alive(self) -> bool:
        return self.process.returncode is None and not self._writer.is_closing()

    async def call(self, request: dict[str, Any]) -> dict[str, Any]:
        self._writer.write(ipc.encode(request))
        line = await self._reader.readline()
        if not line:
            raise WorkerDied(await self.process.wait())
        return ipc.decode(line)

    def kill(self) -> None:
        """Stop at once; closing our ends of the pipes also lets it exit on its own."""
        self._writer.close()
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    async def stop(self) -> None:
        """Kill, and return once the process is gone."""
        self.kill()
        await self.process.wait()


@dataclass(eq=False)
class _Call:
    """A job's payload: the request for the worker, and where its outcome goes."""

    request: dict[str, Any]
    timeout: float
    # Set when a worker takes the call, or when it cannot run at all (`never_ran`).
    started: asyncio.Event = field(default_factory=asyncio.Event)
    never_ran: bool = False
    queued_at: float = field(default_factory=lambda: asyncio.get_running_loop().time())
    outcome: asyncio.Future[Result] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Workers:
    """Carries out the scheduler's decisions: processes started, invocations run, stopped."""

    def __init__(self, max_workers: int) -> None:
        self.scheduler = scheduler.Scheduler(max_workers)
        self._specs: dict[Hashable, WorkerSpec] = {}
        # A pool's first start, awaited by a generation that needs the app described.
        self._first: dict[Hashable, asyncio.Future[dict[str, Any]]] = {}
        self._exits: dict[Worker, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reclaimer: asyncio.Task[None] | None = None
        self._closed = False

    def add_pool(
        self, name: Hashable, spec: WorkerSpec, warm: int
    ) -> asyncio.Future[dict[str, Any]]:
        """A pool for one function; the future is the app's description from its first worker."""
        if self._reclaimer is None:
            self._reclaimer = asyncio.create_task(self._reclaim())
        self._specs[name] = spec
        self._first[name] = asyncio.get_running_loop().create_future()
        self._apply(self.scheduler.add_pool(name, warm))
        return self._first[name]

    def retire(self, name: Hashable) -> None:
        self._apply(self.scheduler.retire(name))

    def keep_warm(self, name: Hashable, count: int) -> None:
        self._apply(self.scheduler.keep_warm(name, count))

    async def run(
        self,
        pool: Hashable,
        key: str,
        request: dict[str, Any],
        timeout: float,
        queue_timeout: float | None,
    ) -> tuple[_Call, Result | None]:
        """Queue an invocation; wait until a worker takes it (or it cannot run).

        Returns the call, whose `outcome` the caller awaits, and a Result when it
        never started: refused after `queue_timeout` or failed.
        """
        call = _Call(request, timeout)
        job = scheduler.Job(pool, key, call)
        self._apply(self.scheduler.submit(job))
        try:
            await asyncio.wait_for(asyncio.shield(call.started.wait()), queue_timeout)
        except TimeoutError:
            if self.scheduler.cancel(job):
                return call, _throttled(queue_timeout or 0.0, self.scheduler)
        if call.never_ran:
            return call, call.outcome.result()
        return call, None

    def close(self) -> None:
        """Kill every worker now (the gateway is stopping)."""
        self._closed = True
        for action in self.scheduler.close():
            if isinstance(action, scheduler.Stop):
                action.worker.kill()
            elif isinstance(action, scheduler.Fail):
                self._fail(action.job, action.reason)
        for task in [*self._tasks, *([self._reclaimer] if self._reclaimer else [])]:
            task.cancel()

    # Carrying out the scheduler's actions --------------------------------------------

    def _apply(self, actions: list[scheduler.Action]) -> None:
        for action in actions:
            if isinstance(action, scheduler.Run):
                action.job.payload.started.set()
                self._background(self._run(action.worker, action.job.payload))
            elif isinstance(action, scheduler.Spawn):
                self._background(self._spawn(action.pool, action.after))
            elif isinstance(action, scheduler.Stop):
                self._exits[action.worker] = self._background(self._stop(action.worker))
            else:
                self._fail(action.job, action.reason)

    def _background(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _spawn(self, pool: Hashable, after: Worker | None) -> None:
        if after is not None:
            await asyncio.shield(self._exits[after])
        first = self._first[pool]
        try:
            worker, description = await Worker.start(self._specs[pool])
        except WorkerFailed as error:
            log.error("a handler process failed to start:\n%s", error)
            if not first.done():
                first.set_exception(error)
            self._apply(self.scheduler.start_failed(pool, str(error)))
            return
        if self._closed:
            worker.kill()
            return
        if not first.done():
            first.set_result(description)
        self._apply(self.scheduler.started(pool, worker, _now()))

    async def _stop(self, worker: Worker) -> None:
        await worker.stop()
        self._exits.pop(worker, None)
        self._apply(self.scheduler.exited(worker))

    async def _run(self, worker: Worker, call: _Call) -> None:
        started = _now()
        alive = False
        try:
            answer = await asyncio.wait_for(worker.call(call.request), call.timeout)
            alive = True
        except TimeoutError:
            message = f"Task timed out after {call.timeout:.2f} seconds"
            answer = _failed(message, ipc.TIMEOUT, message)
        except WorkerDied as error:
            answer = _failed(str(error), ipc.EXITED, error.status)
        except ValueError:  # a line over ipc.LINE_LIMIT
            message = "Response payload size exceeded the gateway's limit"
            answer = _failed(message, ipc.TOO_LARGE, message)
        finally:
            if not alive:
                await worker.stop()  # timed out, died or cancelled: its state is unknown
        if not call.outcome.done():
            result = _result(answer, (_now() - started) * 1000)
            call.outcome.set_result(replace(result, waited_ms=(started - call.queued_at) * 1000))
        if not self._closed:
            self._apply(self.scheduler.finished(worker, _now(), alive))

    def _fail(self, job: scheduler.Job, reason: str) -> None:
        call: _Call = job.payload
        if not call.outcome.done():
            answer = _failed(f"no handler process: {reason}", ipc.NO_WORKER, reason)
            call.outcome.set_result(_result(answer, 0.0))
            call.never_ran = True
            call.started.set()

    async def _reclaim(self) -> None:
        while True:
            await asyncio.sleep(RECLAIM_EVERY_SECONDS)
            self._apply(self.scheduler.reclaim(_now()))


def _now() -> float:
    return asyncio.get_running_loop().time()


def _throttled(waited: float, state: scheduler.Scheduler) -> Result:
    message = (
        f"no free handler process for {waited:.0f} s "
        f"(--max-workers {state.max_workers}, {state.queued()} invocations queued)"
    )
    return _result(_failed(message, ipc.THROTTLED, message), waited * 1000)


def _failed(error: str, kind: str, message: str) -> dict[str, Any]:
    """A worker's answer for an invocation that the gateway, not the handler, ended."""
    return {"error": error, "failure": {"kind": kind, "message": message}}


def _result(answer: dict[str, Any], duration_ms: float) -> Result:
    failure = answer.get("failure")
    return Result(
        answer.get("response"),
        answer.get("error"),
        duration_ms,
        None if failure is None else _failure(failure),
        answer.get("log"),
    )


def _failure(document: dict[str, Any]) -> Failure:
    return Failure(
        kind=document["kind"],
        message=document.get("message", ""),
        type=document.get("type", ""),
        stack_trace=tuple(document.get("stack_trace", ())),
    )


def worker_spec(launch: Launch, source: project.Project, function: project.Function) -> WorkerSpec:
    """How to start a handler process of `function`: its folder, its whole environment, and
    what the worker needs to know to import and configure the app."""
    env = environment.handler_environment(
        function.lambda_name,
        function.memory_mb,
        {**function.environment, **dict(launch.overrides)},
        source.root,
        launch.region,
        launch.endpoints,
        launch.credentials,
    )
    init = {
        "project_dir": str(source.root),
        "stage": source.stage,
        "api_stage": source.api_stage,
        "domain_name": launch.domain_name,
        "allowed_hosts": list(launch.allowed_hosts),
    }
    return WorkerSpec(source.root, env, init)


class Generation:
    """One version of the app: its project settings and the pools that run its functions."""

    def __init__(self, number: int, source: project.Project, launch: Launch, pool: Workers) -> None:
        self.number = number
        self.project = source
        self.description: dict[str, Any] = {}
        self._launch = launch
        self._workers = pool
        self._pools: set[str] = set()
        self._round = 0

    def _spec(self, function: project.Function) -> WorkerSpec:
        return worker_spec(self._launch, self.project, function)

    def _pool_name(self, function_name: str) -> tuple[int, int, str]:
        return (self.number, self._round, function_name)

    def _add_pools(self, source: project.Project, warm: int) -> asyncio.Future[dict[str, Any]]:
        """A pool for every function; the future describes the app (from the messages' pool)."""
        self.project = source
        first: asyncio.Future[dict[str, Any]] | None = None
        for name, function in {**source.functions, **source.pure_functions}.items():
            primary = name == project.WEBSOCKET_MESSAGE
            future = self._workers.add_pool(
                self._pool_name(name), self._spec(function), warm if primary else 0
            )
            self._pools.add(name)
            if primary:
                first = future
        assert first is not None, "every project has the message function"
        return first

    @property
    def websocket_routes(self) -> dict[str, str]:
        """Route key to handler name, e.g. {"$connect": "connect", "$default": "message"}."""
        return self.description.get("websocket", {})

    @property
    def rest_routes(self) -> list[str]:
        return self.description.get("routes", [])

    @property
    def functions_in_use(self) -> set[str]:
        """The functions `chalice deploy` would make for this app: those with a route, and
        the pure ones (config.json may set up others, which are never run)."""
        used = {self.project.function_for_route(route).name for route in self.websocket_routes}
        if self.rest_routes:
            used.add(project.API_HANDLER)
        return used | set(self.project.pure_functions)

    async def start(self) -> None:
        """Import the app in a first worker (WorkerFailed if it cannot), warm the others,
        and set up the pure functions that the imported app has."""
        warm = max(1, self._launch.warm_workers)
        description = await self._add_pools(self.project, warm)
        described = self.project.with_pure_functions(description.get("pure_functions", ()))
        if _environments(described) != _environments(self.project):
            # A merge template Ref to a pure function changed an environment: the
            # workers started so far have the old one.
            self.retire()
            self._round += 1
            self._pools.clear()
            description = await self._add_pools(described, warm)
        else:
            self.project = described
            for name, function in described.pure_functions.items():
                self._workers.add_pool(self._pool_name(name), self._spec(function), 0)
                self._pools.add(name)
        self.description = description
        # Every client connects, and Ctrl-C disconnects them all at once: one process
        # each for the app's $connect and $disconnect is kept ready too.
        if self._launch.warm_workers:
            for route in (routing.CONNECT, routing.DISCONNECT):
                if route in self.websocket_routes:
                    name = self.project.function_for_route(route).name
                    self._workers.keep_warm(self._pool_name(name), 1)

    async def invoke(
        self,
        function: project.Function,
        request: dict[str, Any],
        key: str,
        integration_timeout: float | None = None,
        bounded_wait: bool = True,
        queue_timeout: float | None = None,
    ) -> Result:
        """Run one invocation on a worker of the function's pool, within its timeout.

        `key` is whose turn it is (the fairness key: a connection id). With
        `integration_timeout`, the answer is a timeout after that many seconds of
        running, while the function runs on, as API Gateway gives up on Lambda.
        The wait for a free worker is bounded by `--queue-timeout` (or a shorter
        `queue_timeout`, whose caller answers the refusal itself), unless not
        `bounded_wait` (an Event invocation, which Lambda's own queue keeps).
        """
        request["context"] = {
            **request.get("context", {}),
            "function_name": function.lambda_name,
            "memory_mb": function.memory_mb,
            "timeout_ms": function.timeout_s * 1000,
        }
        waited = self._launch.queue_timeout if bounded_wait else None
        if waited is not None and queue_timeout is not None:
            waited = min(waited, queue_timeout)
        call, refused = await self._workers.run(
            self._pool_name(function.name), key, request, function.timeout_s, waited
        )
        if refused is not None:
            throttled = refused.failure is not None and refused.failure.kind == ipc.THROTTLED
            if throttled and queue_timeout is None:
                log.warning("%s: %s", function.lambda_name, refused.error)
            return refused
        if integration_timeout is None:
            return await call.outcome
        try:
            return await asyncio.wait_for(asyncio.shield(call.outcome), integration_timeout)
        except TimeoutError:
            return Result(
                error="Endpoint request timed out", duration_ms=integration_timeout * 1000
            )

    def retire(self) -> None:
        for name in self._pools:
            self._workers.retire(self._pool_name(name))


def _environments(source: project.Project) -> dict[str, dict[str, str]]:
    return {name: function.environment for name, function in source.functions.items()}


class Runtime:
    """The generation that takes new invocations, and the workers every generation shares."""

    def __init__(self, launch: Launch) -> None:
        self.launch = launch
        self._current: Generation | None = None
        self._count = 0
        self._workers: Workers | None = None

    @property
    def workers(self) -> Workers:
        if self._workers is None:  # made in the event loop, which its futures need
            self._workers = Workers(self.launch.max_workers)
        return self._workers

    @property
    def current(self) -> Generation:
        if self._current is None:
            raise RuntimeError("no generation has started")
        return self._current

    async def load(self, source: project.Project) -> Generation:
        """Start a generation for `source` and switch to it once the app imported;
        WorkerFailed (and the previous generation still serving) if it cannot."""
        self._count += 1
        generation = Generation(self._count, source, self.launch, self.workers)
        try:
            await generation.start()
        except BaseException:
            generation.retire()
            raise
        previous, self._current = self._current, generation
        if previous is not None:
            previous.retire()
        return generation

    def close(self) -> None:
        if self._workers is not None:
            self._workers.close()
