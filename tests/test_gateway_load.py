"""The gateway under pressure, with the chat and real clients: the suite's small versions of
`python -m bench.load` (docs/benchmarks.md has the full sizes and their figures).

Each scenario counts what a user would notice: messages lost or duplicated,
error frames, refused upgrades, items left in the table, handler processes
beyond the budget, and a bystander kept waiting by a flooder.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from bench import LIFTED, load

MAX_WORKERS = 4


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[load.Gateway]:
    running = load.Gateway(tmp_path_factory.mktemp("load"), MAX_WORKERS, LIFTED)
    yield running
    running.stop()


def test_a_burst_runs_on_at_most_the_budget_and_every_message_lands_once(
    gateway: load.Gateway,
) -> None:
    outcome = asyncio.run(load.burst(gateway, messages=300, timeout=120))
    assert (outcome.lost, outcome.duplicated, outcome.errors) == (0, 0, 0), outcome
    assert 1 <= outcome.peak_workers <= MAX_WORKERS, outcome


def test_a_connect_storm_is_accepted_and_leaves_nothing_behind(gateway: load.Gateway) -> None:
    outcome = asyncio.run(load.storm(gateway, clients=200, at_a_time=50))
    assert outcome.refused == 0, outcome.notes
    assert outcome.leaked == 0, outcome
    assert outcome.peak_workers <= MAX_WORKERS, outcome


def test_every_message_reaches_every_member_once_and_is_stored_once(
    gateway: load.Gateway,
) -> None:
    outcome = asyncio.run(load.chatter(gateway, clients=30, messages=5, timeout=180))
    assert (outcome.lost, outcome.duplicated, outcome.errors) == (0, 0, 0), outcome
    assert outcome.leaked == 0, outcome


def test_a_flooder_does_not_keep_a_bystander_waiting(gateway: load.Gateway) -> None:
    outcome = asyncio.run(load.flood(gateway, members=30, frames_sent=300, timeout=180))
    assert (outcome.lost, outcome.duplicated, outcome.errors) == (0, 0, 0), outcome
    assert outcome.worst_ping_ms < 2000, outcome
    assert outcome.peak_workers <= MAX_WORKERS, outcome
