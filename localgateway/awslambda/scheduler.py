"""Which invocation runs next, and on which handler process: the pools' decisions, without I/O.

Like Lambda, every function has its own execution environments, a pool of
handler processes. Unlike Lambda's thousand, a laptop has a few cores, so all
pools share one budget: never more than `max_workers` processes, counting
those starting and those being stopped. Invocations beyond it wait in their
pool's queue.

Fairness: a pool's queue takes turns between keys (a websocket connection's
id), one invocation per key per turn, and one key never runs on more than
`max_workers - 1` processes at once. A connection flooding the gateway gets
its turn like any other and leaves a process to the others, so another
connection's event waits behind at most one invocation of each busy key,
never behind the whole flood. Within a key, invocations start in the order
they came.

Capacity goes where work waits. A pool with queued invocations starts
processes while the budget allows; at the budget, it takes the slot of an
idle process of another pool (stopped, then replaced by one of its own). A
pool with work and no process at all is starving: the next process of any
other pool to finish its invocation gives up its slot to it, so one busy
function can never shut another out.

The adapter (`process_pool.py`) carries out the returned actions and reports what
happened (`started`, `start_failed`, `finished`, `exited`); time is passed in.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

# Lambda reclaims idle execution environments; so do we, above the warm ones.
IDLE_SECONDS = 60.0


@dataclass(eq=False)
class Job:
    """One invocation waiting for, or running on, a process of its pool."""

    pool: Hashable
    key: str
    payload: Any = None


@dataclass(frozen=True)
class Spawn:
    """Start a process for `pool`, once `after` (a process being stopped) has exited;
    report `started` or `start_failed`."""

    pool: Hashable
    after: Any = None


@dataclass(frozen=True)
class Run:
    """Run `job` on `worker`; report `finished` when it is done."""

    worker: Any
    job: Job


@dataclass(frozen=True)
class Stop:
    """Stop `worker`; report `exited` once the process is gone (its slot is held until then)."""

    worker: Any


@dataclass(frozen=True)
class Fail:
    """`job` cannot run: no process of its pool could start."""

    job: Job
    reason: str


Action = Spawn | Run | Stop | Fail


class FairQueue:
    """Jobs taken in turns between their keys, in arrival order within a key.

    `pop` and `runnable` skip the keys that `blocked` says are at their limit.
    """

    def __init__(self) -> None:
        # Insertion-ordered: the first key is the next to have its turn.
        self._by_key: dict[str, deque[Job]] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def push(self, job: Job) -> None:
        self._by_key.setdefault(job.key, deque()).append(job)
        self._size += 1

    def pop(self, blocked: Callable[[str], bool] = lambda key: False) -> Job | None:
        key = next((key for key in self._by_key if not blocked(key)), None)
        if key is None:
            return None
        waiting = self._by_key.pop(key)
        job = waiting.popleft()
        if waiting:
            self._by_key[key] = waiting  # back of the line
        self._size -= 1
        return job

    def remove(self, job: Job) -> bool:
        waiting = self._by_key.get(job.key)
        if waiting is None or job not in waiting:
            return False
        waiting.remove(job)
        if not waiting:
            del self._by_key[job.key]
        self._size -= 1
        return True

    def runnable(self, room: Callable[[str], int]) -> int:
        """How many jobs could start now, given how many more each key may run."""
        return sum(min(len(waiting), room(key)) for key, waiting in self._by_key.items())

    def drain(self) -> Iterator[Job]:
        while self._size:
            job = self.pop()
            assert job is not None
            yield job


@dataclass(eq=False)
class _Pool:
    name: Hashable
    warm: int
    queue: FairQueue = field(default_factory=FairQueue)
    # Idle processes with the time they became idle, oldest first.
    idle: list[tuple[Any, float]] = field(default_factory=list)
    # Busy processes, with the key of the job each runs.
    busy: dict[Any, str] = field(default_factory=dict)
    running: Counter[str] = field(default_factory=Counter)
    starting: int = 0
    retired: bool = False
    # Set by a failed start, cleared by a successful one (or by new work once the
    # queue has failed): meanwhile no further starts, so a broken app is not retried in a loop.
    failing: bool = False

    @property
    def live(self) -> int:
        return len(self.idle) + len(self.busy) + self.starting

    @property
    def starving(self) -> bool:
        return bool(self.queue) and self.live == 0


class Scheduler:
    def __init__(self, max_workers: int) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers = max_workers
        # The most processes one key may run on at once: one is always left to the others.
        self.key_limit = max(1, max_workers - 1)
        self._pools: dict[Hashable, _Pool] = {}
        self._owner: dict[Any, _Pool] = {}  # worker -> its pool, while it lives
        self._stopping: set[Any] = set()
        self.peak = 0  # the most processes ever held at once

    @property
    def processes(self) -> int:
        """Processes held: idle, busy, starting and stopping."""
        return sum(pool.live for pool in self._pools.values()) + len(self._stopping)

    def queued(self) -> int:
        """Invocations waiting, in all pools."""
        return sum(len(pool.queue) for pool in self._pools.values())

    def add_pool(self, name: Hashable, warm: int = 0) -> list[Action]:
        """A function's pool; `warm` processes are started when the budget allows."""
        if name in self._pools:
            raise ValueError(f"pool {name!r} exists")
        self._pools[name] = _Pool(name, warm)
        return self._dispatch()

    def keep_warm(self, name: Hashable, count: int) -> list[Action]:
        """Keep `count` processes of this pool started, budget allowing."""
        self._pools[name].warm = count
        return self._dispatch()

    def retire(self, name: Hashable) -> list[Action]:
        """No new work for this pool: idle processes stop now, busy ones when done.

        What is already queued still runs, on the pool's own processes.
        """
        pool = self._pools[name]
        pool.retired = True
        actions: list[Action] = [self._stop(worker) for worker, _ in pool.idle]
        pool.idle.clear()
        self._forget_if_empty(pool)
        return actions + self._dispatch()

    def submit(self, job: Job) -> list[Action]:
        pool = self._pools[job.pool]
        if pool.failing and pool.live == 0:
            pool.failing = False  # its queue failed: a new invocation tries again
        pool.queue.push(job)
        return self._dispatch()

    def cancel(self, job: Job) -> bool:
        """Take a job out of its queue; False if it has already started (or failed)."""
        pool = self._pools.get(job.pool)
        return pool is not None and pool.queue.remove(job)

    def started(self, name: Hashable, worker: Any, now: float) -> list[Action]:
        pool = self._pools[name]
        pool.starting -= 1
        pool.failing = False
        self._owner[worker] = pool
        if pool.retired and not pool.queue:
            return [self._stop(worker), *self._dispatch()]
        pool.idle.append((worker, now))
        return self._dispatch()

    def start_failed(self, name: Hashable, reason: str) -> list[Action]:
        """A process could not start; with none left in the pool, its queue fails."""
        pool = self._pools[name]
        pool.starting -= 1
        pool.failing = True
        actions: list[Action] = []
        if pool.live == 0:
            actions = [Fail(job, reason) for job in pool.queue.drain()]
        self._forget_if_empty(pool)
        return actions + self._dispatch()

    def finished(self, worker: Any, now: float, alive: bool = True) -> list[Action]:
        """`worker` ran its job; a dead one (crashed, or killed at its timeout) has exited."""
        pool = self._owner[worker]
        key = pool.busy.pop(worker)
        pool.running[key] -= 1
        if not pool.running[key]:
            del pool.running[key]
        if not alive:
            del self._owner[worker]
            self._forget_if_empty(pool)
            return self._dispatch()
        if pool.retired and not pool.queue:
            return [self._stop(worker), *self._dispatch()]
        starving = next((p for p in self._pools.values() if p is not pool and p.starving), None)
        if starving is not None:
            return [*self._hand_over(pool, worker, starving), *self._dispatch()]
        pool.idle.append((worker, now))
        return self._dispatch()

    def exited(self, worker: Any) -> list[Action]:
        """A stopped process is gone: its slot is free (unless it was handed over)."""
        self._stopping.discard(worker)
        return self._dispatch()

    def reclaim(self, now: float) -> list[Action]:
        """Stop processes idle for IDLE_SECONDS, beyond each pool's warm ones."""
        actions: list[Action] = []
        for pool in list(self._pools.values()):
            while pool.idle and pool.live > pool.warm and pool.idle[0][1] + IDLE_SECONDS <= now:
                worker, _ = pool.idle.pop(0)
                actions.append(self._stop(worker))
        return actions

    def close(self) -> list[Action]:
        """Stop every process and fail every queued job: the gateway is stopping."""
        actions: list[Action] = []
        for pool in self._pools.values():
            pool.retired = True
            actions += [Fail(job, "the gateway is stopping") for job in pool.queue.drain()]
            actions += [self._stop(worker) for worker, _ in pool.idle]
            actions += [self._stop(worker) for worker in list(pool.busy)]
            pool.idle.clear()
            pool.busy.clear()
            pool.running.clear()
        return actions

    # Decisions -----------------------------------------------------------------------

    def _dispatch(self) -> list[Action]:
        actions: list[Action] = []
        for pool in self._pools.values():
            while pool.queue and pool.idle:
                job = pool.queue.pop(blocked=lambda key, p=pool: p.running[key] >= self.key_limit)
                if job is None:
                    break
                worker, _ = pool.idle.pop()  # the newest idle: the oldest may be reclaimed
                pool.busy[worker] = job.key
                pool.running[job.key] += 1
                actions.append(Run(worker, job))
        # Starving pools first: they have no process to wait for.
        for pool in sorted(self._pools.values(), key=lambda p: not p.starving):
            # A pool whose last start failed waits for the starts under way, not more.
            while self._runnable(pool) > pool.starting and not (pool.failing and pool.live):
                if self.processes < self.max_workers:
                    actions.append(self._spawn(pool))
                    continue
                victim = self._idle_elsewhere(pool)
                if victim is None:
                    break
                worker, _ = victim.idle.pop(0)
                actions += self._hand_over(victim, worker, pool)
        for pool in self._pools.values():
            while (
                not pool.retired
                and not pool.failing
                and pool.live < pool.warm
                and self.processes < self.max_workers
            ):
                actions.append(self._spawn(pool))
        return actions

    def _runnable(self, pool: _Pool) -> int:
        """Queued jobs that could start on a new process (their key is under its limit)."""
        return pool.queue.runnable(lambda key: self.key_limit - pool.running[key])

    def _idle_elsewhere(self, pool: _Pool) -> _Pool | None:
        """The pool whose idle process `pool` may take: retired pools first, then the
        one with the process idle longest; never a pool with work waiting, and a pool's
        warm processes only for a pool that has none at all."""
        victims = [
            p
            for p in self._pools.values()
            if p is not pool
            and p.idle
            and not p.queue
            and (p.retired or p.live > p.warm or pool.starving)
        ]
        if not victims:
            return None
        return min(victims, key=lambda p: (not p.retired, p.idle[0][1]))

    def _hand_over(self, giver: _Pool, worker: Any, taker: _Pool) -> list[Action]:
        """`worker`'s slot goes to a new process of `taker`, started once it has exited."""
        self._owner.pop(worker, None)
        self._forget_if_empty(giver)
        return [Stop(worker), self._spawn(taker, after=worker)]

    def _spawn(self, pool: _Pool, after: Any = None) -> Spawn:
        pool.starting += 1
        self.peak = max(self.peak, self.processes)
        return Spawn(pool.name, after)

    def _stop(self, worker: Any) -> Stop:
        self._owner.pop(worker, None)
        self._stopping.add(worker)
        return Stop(worker)

    def _forget_if_empty(self, pool: _Pool) -> None:
        """A retired pool with nothing left is dropped."""
        if pool.retired and pool.live == 0 and not pool.queue:
            self._pools.pop(pool.name, None)
