"""Handler processes, managed like Lambda's execution environments.

Each worker (`worker.py`) runs one invocation at a time. A pool spawns workers
on demand, up to a maximum, when every worker is busy; keeps a few warm;
reclaims those idle for a minute; and kills a worker whose invocation outlives
the function's timeout. Functions whose environments are identical (the usual
case: config.json sets variables for all of them) share a pool.

The app's pure functions (`@app.lambda_function`) are known only once it has
been imported: a generation's first worker describes the app, then the
generation gives the pure functions their pools.

A `Generation` is one version of the app's code and settings. Autoreload
starts a new one and switches new invocations to it once a worker has imported
the app; the old one finishes what it has in flight, then its workers exit.
The event loop only ever waits on pipes: no handler code runs in the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localgateway import environment, ipc, project

log = logging.getLogger("localgateway")

PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); from localgateway import worker; "
    "worker.main(int(sys.argv[2]), int(sys.argv[3]), sys.argv[1])"
)
# Lambda reclaims idle execution environments; so do we, above the warm ones.
IDLE_WORKER_SECONDS = 60.0
START_TIMEOUT_SECONDS = 60.0


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
    """

    response: Any = None
    error: str | None = None
    duration_ms: float = 0.0
    failure: Failure | None = None
    log: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Launch:
    """Everything about starting workers that is the same for every generation."""

    base_environment: dict[str, str]
    endpoints: environment.Endpoints
    domain_name: str
    keep_credentials: bool = False
    allowed_hosts: tuple[str, ...] = ()
    max_workers: int = 8
    warm_workers: int = 2


@dataclass(frozen=True)
class WorkerSpec:
    cwd: Path
    env: dict[str, str]
    init: dict[str, Any]

    def key(self) -> str:
        return json.dumps([str(self.cwd), self.env, self.init], sort_keys=True)


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


class Pool:
    """The workers of one environment: spawned on demand, one invocation each at a time."""

    def __init__(self, spec: WorkerSpec, max_workers: int, keep_warm: int) -> None:
        self.spec = spec
        self.keep_warm = keep_warm
        self._max = max_workers
        self._workers: set[Worker] = set()
        self._idle: list[Worker] = []
        self._waiters: deque[asyncio.Future[Worker]] = deque()
        self._starting = 0
        self._retired = False
        self._spawns: set[asyncio.Task[None]] = set()
        self._reclaimer: asyncio.TimerHandle | None = None

    @property
    def size(self) -> int:
        return len(self._workers)

    async def start(self, count: int) -> dict[str, Any]:
        """Start `count` workers; return the app's description from the first one."""
        first, description = await self._start_one()
        self._offer(first)
        for _ in range(count - 1):
            self._spawn()
        return description

    async def acquire(self) -> Worker:
        while self._idle:
            worker = self._idle.pop()
            if worker.alive:
                return worker
            self._workers.discard(worker)
        waiter: asyncio.Future[Worker] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if self._starting < len(self._waiters) and self.size + self._starting < self._max:
            self._spawn()
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result())
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def release(self, worker: Worker) -> None:
        if not worker.alive:
            self._workers.discard(worker)
            if self._waiters and not self._retired and self.size + self._starting < self._max:
                self._spawn()
            self._fail_waiters_if_hopeless()
            return
        self._offer(worker)

    def _offer(self, worker: Worker) -> None:
        self._workers.add(worker)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(worker)
                return
        if self._retired:
            self._workers.discard(worker)
            worker.kill()
            return
        loop = asyncio.get_running_loop()
        worker.idle_since = loop.time()
        self._idle.append(worker)
        if self._reclaimer is None and len(self._idle) > self.keep_warm:
            self._reclaimer = loop.call_later(IDLE_WORKER_SECONDS, self._reclaim)

    def _reclaim(self) -> None:
        """Stop the workers idle for IDLE_WORKER_SECONDS, beyond those kept warm.

        The idle list is oldest first (acquire takes the newest), so one timer suffices.
        """
        loop = asyncio.get_running_loop()
        self._reclaimer = None
        while len(self._idle) > self.keep_warm:
            due = self._idle[0].idle_since + IDLE_WORKER_SECONDS
            if due > loop.time():
                self._reclaimer = loop.call_at(due, self._reclaim)
                return
            worker = self._idle.pop(0)
            self._workers.discard(worker)
            worker.kill()

    async def _start_one(self) -> tuple[Worker, dict[str, Any]]:
        self._starting += 1
        try:
            return await Worker.start(self.spec)
        finally:
            self._starting -= 1

    def _spawn(self) -> None:
        task = asyncio.create_task(self._spawn_one())
        self._spawns.add(task)
        task.add_done_callback(self._spawns.discard)

    async def _spawn_one(self) -> None:
        try:
            worker, _ = await self._start_one()
        except WorkerFailed as error:
            log.error("a handler process failed to start:\n%s", error)
            self._fail_waiters_if_hopeless(error)
            return
        self._offer(worker)

    def _fail_waiters_if_hopeless(self, error: Exception | None = None) -> None:
        """With no worker alive or starting, nobody would ever serve the waiters."""
        if self._workers or self._starting:
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error or WorkerFailed("no handler process is running"))

    def retire(self) -> None:
        """Take no new work: idle workers exit now, busy ones after their invocation."""
        self._retired = True
        for worker in self._idle:
            self._workers.discard(worker)
            worker.kill()
        self._idle.clear()

    def close(self) -> None:
        self.retire()
        if self._reclaimer is not None:
            self._reclaimer.cancel()
        for task in self._spawns:
            task.cancel()
        for worker in self._workers:
            worker.kill()
        self._workers.clear()


class Generation:
    """One version of the app: its project settings and the pools that run it."""

    def __init__(self, number: int, source: project.Project, launch: Launch) -> None:
        self.number = number
        self.project = source
        self.description: dict[str, Any] = {}
        self._launch = launch
        self._init = {
            "project_dir": str(source.root),
            "stage": source.stage,
            "api_stage": source.api_stage,
            "domain_name": launch.domain_name,
            "allowed_hosts": list(launch.allowed_hosts),
        }
        self._pools: dict[str, Pool] = {}
        self._pools_by_key: dict[str, Pool] = {}
        self._build(source)

    def _spec(self, function: project.Function) -> WorkerSpec:
        launch = self._launch
        env = environment.handler_environment(
            launch.base_environment, function.environment, launch.endpoints, launch.keep_credentials
        )
        return WorkerSpec(self.project.root, env, self._init)

    def _build(self, source: project.Project) -> None:
        """Give every function the pool of its environment; messages' is the one kept warm."""
        self.project = source
        primary_key = self._spec(source.functions[project.WEBSOCKET_MESSAGE]).key()
        for name, function in {**source.functions, **source.pure_functions}.items():
            spec = self._spec(function)
            key = spec.key()
            if key not in self._pools_by_key:
                keep = self._launch.warm_workers if key == primary_key else 0
                self._pools_by_key[key] = Pool(spec, self._launch.max_workers, keep)
            self._pools[name] = self._pools_by_key[key]
        self._primary = self._pools_by_key[primary_key]

    def _keys(self, source: project.Project) -> dict[str, str]:
        return {name: self._spec(function).key() for name, function in source.functions.items()}

    def pool_for(self, function_name: str) -> Pool:
        return self._pools[function_name]

    @property
    def websocket_routes(self) -> dict[str, str]:
        """Route key to handler name, e.g. {"$connect": "connect", "$default": "message"}."""
        return self.description.get("websocket", {})

    @property
    def rest_routes(self) -> list[str]:
        return self.description.get("routes", [])

    async def start(self) -> None:
        """Import the app in a first worker (WorkerFailed if it cannot), warm the others,
        and set up the pure functions that the imported app has."""
        warm = max(1, self._launch.warm_workers)
        description = await self._primary.start(warm)
        described = self.project.with_pure_functions(description.get("pure_functions", ()))
        if self._keys(described) == self._keys(self.project):
            self._build(described)
        else:
            # A merge template Ref to a pure function changed an environment: the
            # workers started so far have the old one.
            self.close()
            self._pools, self._pools_by_key = {}, {}
            self._build(described)
            description = await self._primary.start(warm)
        self.description = description

    async def invoke(self, function: project.Function, request: dict[str, Any]) -> Result:
        """Run one invocation on a free worker of the function's pool, within its timeout."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        request["context"] = {
            **request.get("context", {}),
            "function_name": function.lambda_name,
            "memory_mb": function.memory_mb,
            "timeout_ms": function.timeout_s * 1000,
        }
        answer = await self._call(self.pool_for(function.name), request, function.timeout_s)
        duration = (loop.time() - started) * 1000
        failure = answer.get("failure")
        return Result(
            answer.get("response"),
            answer.get("error"),
            duration,
            None if failure is None else _failure(failure),
            answer.get("log"),
        )

    async def _call(self, pool: Pool, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        try:
            worker = await pool.acquire()
        except WorkerFailed as error:
            return _failed(f"no handler process: {error}", ipc.NO_WORKER, str(error))
        finished = False
        try:
            answer = await asyncio.wait_for(worker.call(request), timeout)
            finished = True
        except TimeoutError:
            message = f"Task timed out after {timeout:.2f} seconds"
            return _failed(message, ipc.TIMEOUT, message)
        except WorkerDied as error:
            return _failed(str(error), ipc.EXITED, error.status)
        except ValueError:  # a line over ipc.LINE_LIMIT
            message = "Response payload size exceeded the gateway's limit"
            return _failed(message, ipc.TOO_LARGE, message)
        finally:
            if not finished:
                worker.kill()  # timed out, died or cancelled: its state is unknown
            pool.release(worker)
        return answer

    def retire(self) -> None:
        for pool in set(self._pools.values()):
            pool.retire()

    def close(self) -> None:
        for pool in set(self._pools.values()):
            pool.close()

    @property
    def workers(self) -> int:
        return sum(pool.size for pool in set(self._pools.values()))


def _failed(error: str, kind: str, message: str) -> dict[str, Any]:
    """A worker's answer for an invocation that the gateway, not the handler, ended."""
    return {"error": error, "failure": {"kind": kind, "message": message}}


def _failure(document: dict[str, Any]) -> Failure:
    return Failure(
        kind=document["kind"],
        message=document.get("message", ""),
        type=document.get("type", ""),
        stack_trace=tuple(document.get("stack_trace", ())),
    )


class Runtime:
    """The generation that takes new invocations, and retired ones still finishing theirs."""

    def __init__(self, launch: Launch) -> None:
        self.launch = launch
        self._current: Generation | None = None
        self._retired: list[Generation] = []
        self._count = 0

    @property
    def current(self) -> Generation:
        if self._current is None:
            raise RuntimeError("no generation has started")
        return self._current

    async def load(self, source: project.Project) -> Generation:
        """Start a generation for `source` and switch to it once the app imported;
        WorkerFailed (and the previous generation still serving) if it cannot."""
        self._count += 1
        generation = Generation(self._count, source, self.launch)
        try:
            await generation.start()
        except BaseException:
            generation.close()
            raise
        previous, self._current = self._current, generation
        if previous is not None:
            previous.retire()
            self._retired.append(previous)
        self._retired = [old for old in self._retired if old.workers]
        return generation

    def close(self) -> None:
        for generation in [*self._retired, *([self._current] if self._current else [])]:
            generation.close()
