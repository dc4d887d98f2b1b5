"""The worker pools' decisions (`localgateway/awslambda/scheduler.py`), without processes or time.

A small model plays the adapter: it carries out the actions and reports back,
in whatever order hypothesis picks, and checks that the budget holds at every
step, that a process started in a slot handed over only forks once the old
one has exited, and that every invocation runs exactly once.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from localgateway.awslambda import scheduler
from localgateway.awslambda.scheduler import Fail, Job, Run, Scheduler, Spawn, Stop


class Model:
    """The adapter's side: processes that exist, invocations running, what ran."""

    def __init__(self, max_workers: int, pools: dict[str, int]) -> None:
        self.scheduler = Scheduler(max_workers)
        self.max_workers = max_workers
        self.spawns: list[Spawn] = []
        self.running: dict[Any, Job] = {}
        self.stopping: set[Any] = set()
        self.alive: set[Any] = set()
        self.ran: Counter[int] = Counter()
        self.failed: set[int] = set()
        self.order: list[Job] = []
        self.peak = 0
        self._names = itertools.count()
        self.now = 0.0
        for name, warm in pools.items():
            self.apply(self.scheduler.add_pool(name, warm))

    def apply(self, actions: list[scheduler.Action]) -> None:
        for action in actions:
            if isinstance(action, Spawn):
                self.spawns.append(action)
            elif isinstance(action, Run):
                assert action.worker in self.alive and action.worker not in self.running
                self.running[action.worker] = action.job
                self.ran[action.job.payload] += 1
                self.order.append(action.job)
            elif isinstance(action, Stop):
                assert action.worker in self.alive and action.worker not in self.running
                self.stopping.add(action.worker)
            else:
                assert isinstance(action, Fail)
                self.failed.add(action.job.payload)
        self.check()

    def forked(self, spawn: Spawn) -> bool:
        return spawn.after is None or spawn.after not in self.alive

    def processes(self) -> int:
        return len(self.alive) + sum(1 for spawn in self.spawns if self.forked(spawn))

    def check(self) -> None:
        self.peak = max(self.peak, self.processes())
        assert self.processes() <= self.max_workers

    # Events --------------------------------------------------------------------------

    def submit(self, pool: str, key: str, number: int) -> Job:
        job = Job(pool, key, number)
        self.apply(self.scheduler.submit(job))
        return job

    def start(self, index: int, ok: bool = True) -> bool:
        ready = [spawn for spawn in self.spawns if self.forked(spawn)]
        if not ready:
            return False
        spawn = ready[index % len(ready)]
        self.spawns.remove(spawn)
        if ok:
            worker = f"w{next(self._names)}"
            self.alive.add(worker)
            self.apply(self.scheduler.started(spawn.pool, worker, self.now))
        else:
            self.apply(self.scheduler.start_failed(spawn.pool, "broken"))
        return True

    def finish(self, index: int, alive: bool = True) -> bool:
        if not self.running:
            return False
        worker = sorted(self.running)[index % len(self.running)]
        del self.running[worker]
        if not alive:
            self.alive.discard(worker)
        self.apply(self.scheduler.finished(worker, self.now, alive))
        return True

    def exit(self, index: int) -> bool:
        if not self.stopping:
            return False
        worker = sorted(self.stopping)[index % len(self.stopping)]
        self.stopping.discard(worker)
        self.alive.discard(worker)
        self.apply(self.scheduler.exited(worker))
        return True

    def settle(self) -> None:
        """Let everything in flight complete successfully."""
        while self.start(0) or self.finish(0) or self.exit(0):
            pass


POOLS = {"message": 2, "connect": 0, "disconnect": 0, "fanout": 0}


@settings(max_examples=300, deadline=None)
@given(max_workers=st.integers(1, 6), data=st.data())
def test_the_budget_holds_and_every_invocation_runs_exactly_once(
    max_workers: int, data: st.DataObject
) -> None:
    model = Model(max_workers, POOLS)
    submitted = 0
    failures = False
    for _ in range(data.draw(st.integers(0, 120))):
        step = data.draw(st.sampled_from(["submit", "start", "fail", "finish", "die", "exit"]))
        index = data.draw(st.integers(0, 50))
        if step == "submit":
            pool = data.draw(st.sampled_from(sorted(POOLS)))
            model.submit(pool, f"c{data.draw(st.integers(0, 4))}", submitted)
            submitted += 1
        elif step == "start":
            model.start(index)
        elif step == "fail":
            failures |= model.start(index, ok=False)
        elif step == "finish":
            model.finish(index)
        elif step == "die":
            model.finish(index, alive=False)
        else:
            model.exit(index)
    model.settle()
    # Whatever is still queued now ran, unless its pool could not start a process.
    model.apply([action for action in model.scheduler.close() if isinstance(action, Fail)])
    assert not model.running
    assert all(count == 1 for count in model.ran.values())
    assert set(model.ran) | model.failed == set(range(submitted))
    assert not (set(model.ran) & model.failed)
    if not failures:
        assert not model.failed


def test_a_burst_never_starts_more_processes_than_the_budget() -> None:
    model = Model(4, {"message": 1})
    for number in range(1000):
        model.submit("message", f"client-{number % 10}", number)
    model.settle()
    assert model.peak == 4 and model.scheduler.peak == 4
    assert sum(model.ran.values()) == 1000


def test_one_connection_leaves_a_process_to_the_others() -> None:
    model = Model(4, {"message": 1})
    for number in range(100):
        model.submit("message", "flooder", number)
    model.settle()
    assert model.peak == 3  # one of the four is never the flooder's
    model = Model(4, {"message": 4})
    model.settle()
    for number in range(100):
        model.submit("message", "flooder", number)
    assert len(model.running) == 3
    ping = model.submit("message", "bystander", 999)
    assert ping in model.running.values()  # at once, on the process left free


def test_a_flood_delays_another_connection_by_one_turn_not_by_the_flood() -> None:
    model = Model(4, {"message": 4})
    model.settle()  # four warm workers
    for number in range(200):
        model.submit("message", f"flooder-{number % 2}", number)
    assert len(model.running) == 4  # two flooders, two processes each
    ping = model.submit("message", "bystander", 999)
    before = len(model.order)
    for _ in range(3):  # each flooder's turn (they were in line first), then the bystander's
        model.finish(0)
    assert model.order[before:][-1] is ping
    assert [job.key for job in model.order[before:-1]] == ["flooder-0", "flooder-1"]
    model.settle()
    # Within a key, invocations start in the order they came.
    for flooder in ("flooder-0", "flooder-1"):
        started = [job.payload for job in model.order if job.key == flooder]
        assert started == sorted(started) and len(started) == 100


def test_an_idle_process_of_another_function_makes_room_at_the_budget() -> None:
    model = Model(2, {"message": 1, "connect": 0})
    model.settle()
    model.submit("connect", "x", 0)
    model.settle()  # connect now has an idle process beyond its warm ones (none)
    assert model.scheduler.processes == 2
    model.submit("message", "a", 1)
    model.submit("message", "b", 2)  # the message worker is busy; connect's is idle
    (stopped,) = model.stopping
    assert model.running and stopped not in model.running
    (spawn,) = model.spawns
    assert (spawn.pool, spawn.after) == ("message", stopped)
    assert not model.start(0)  # it forks only once the old process has exited
    model.exit(0)
    assert model.start(0)
    assert sum(model.ran.values()) == 3


def test_a_warm_process_is_kept_for_its_own_function() -> None:
    model = Model(2, {"message": 1, "connect": 1})
    model.settle()
    model.submit("message", "a", 1)
    model.submit("message", "b", 2)  # waits: connect's one warm process is not taken
    assert not model.stopping and not model.spawns
    connect = model.submit("connect", "newcomer", 3)
    assert connect in model.running.values()  # at once
    model.settle()
    assert sum(model.ran.values()) == 3


def test_a_starving_function_gets_the_next_process_to_finish() -> None:
    model = Model(2, {"message": 2, "connect": 0})
    model.settle()
    for number in range(10):
        model.submit("message", "flooder", number)
    connect = model.submit("connect", "newcomer", 99)
    assert not model.spawns  # no slot: both processes are busy with messages
    model.finish(0)  # that process gives its slot to connect, though messages still wait
    model.exit(0)
    model.start(0)
    assert connect in model.order
    assert model.order.index(connect) <= 2


def test_idle_processes_beyond_the_warm_ones_are_reclaimed_after_a_minute() -> None:
    model = Model(4, {"message": 1})
    for number in range(4):
        model.submit("message", f"c{number}", number)
    model.settle()
    assert len(model.alive) == 4
    model.apply(model.scheduler.reclaim(model.now + scheduler.IDLE_SECONDS - 1))
    assert not model.stopping
    model.apply(model.scheduler.reclaim(model.now + scheduler.IDLE_SECONDS))
    assert len(model.stopping) == 3
    model.settle()
    assert len(model.alive) == 1


def test_a_retired_pool_finishes_its_queue_then_stops() -> None:
    model = Model(1, {"old": 1, "new": 0})
    model.settle()
    model.submit("old", "a", 1)
    model.submit("old", "a", 2)
    model.apply(model.scheduler.retire("old"))
    model.settle()
    assert model.ran == Counter({1: 1, 2: 1})
    assert not model.alive and model.scheduler.processes == 0
    model.submit("new", "a", 3)
    model.settle()
    assert model.ran[3] == 1


def test_an_app_that_cannot_start_fails_the_waiting_invocations() -> None:
    model = Model(2, {"message": 0})
    model.submit("message", "a", 1)
    model.submit("message", "b", 2)
    model.start(0, ok=False)
    assert not model.failed  # another start is still under way
    model.start(0, ok=False)
    assert model.failed == {1, 2} and not model.ran
    model.submit("message", "c", 3)  # a later invocation tries again
    model.start(0)
    model.settle()
    assert model.ran[3] == 1


def test_a_cancelled_invocation_leaves_the_queue() -> None:
    model = Model(1, {"message": 1})
    model.settle()
    model.submit("message", "a", 1)
    waiting = model.submit("message", "b", 2)
    assert model.scheduler.cancel(waiting)
    assert not model.scheduler.cancel(waiting)
    model.settle()
    assert model.ran == Counter({1: 1})
