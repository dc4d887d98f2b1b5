"""The pytest plugin, as another project uses it: its own pytest run on `tests/apps/visits`.

The project's tests count the items in its table through real websocket
clients; with `chalice_gateway_fresh = test` every test starts from an empty
table, with `module` only each module's first, with `session` none. One
gateway serves the whole run (its pid is the same in every test).
"""

from __future__ import annotations

import os
import re
import shutil

import pytest

from tests.conftest import APPS, ROOT

PROJECT_TESTS = """
from localgateway.testing.frames import wait_for_frame


def count(gateway, text):
    with gateway.connect() as ws:
        ws.send(text)
        return wait_for_frame(ws, "count", timeout=20)["count"]


def test_first(chalice_gateway):
    print("pid", chalice_gateway.endpoints["pid"])
    assert count(chalice_gateway, "a") == {first}


def test_second(chalice_gateway):
    print("pid", chalice_gateway.endpoints["pid"])
    assert count(chalice_gateway, "b") == {second}
"""


@pytest.mark.parametrize(
    ("fresh", "first", "second"), [("test", 1, 1), ("module", 1, 2), ("session", 1, 2)]
)
def test_the_fixture_empties_tables_as_the_project_chooses(
    pytester: pytest.Pytester, fresh: str, first: int, second: int
) -> None:
    shutil.copytree(APPS / "visits", pytester.path, dirs_exist_ok=True)
    pytester.makepyfile(test_visits=PROJECT_TESTS.format(first=first, second=second))
    pytester.makeini(f"[pytest]\nchalice_gateway_fresh = {fresh}\n")
    os.environ["PYTHONPATH"] = str(ROOT)  # this checkout's localgateway, not installed
    try:
        result = pytester.runpytest_subprocess("-p", "localgateway.testing.plugin", "-s")
    finally:
        del os.environ["PYTHONPATH"]
    result.assert_outcomes(passed=2)
    pids = re.findall(r"pid (\d+)", result.stdout.str())
    assert len(pids) == 2 and len(set(pids)) == 1, result.outlines


def test_a_frame_that_never_comes_fails_saying_what_was_expected(
    pytester: pytest.Pytester,
) -> None:
    shutil.copytree(APPS / "visits", pytester.path, dirs_exist_ok=True)
    pytester.makepyfile(
        test_visits="""
from localgateway.testing.frames import wait_for_frame

def test_wrong(chalice_gateway):
    with chalice_gateway.connect() as ws:
        ws.send("a")
        wait_for_frame(ws, "count", count=99, timeout=5)

def test_silent(chalice_gateway):
    with chalice_gateway.connect() as ws:
        wait_for_frame(ws, "count", timeout=1)
"""
    )
    os.environ["PYTHONPATH"] = str(ROOT)
    try:
        result = pytester.runpytest_subprocess("-p", "localgateway.testing.plugin")
    finally:
        del os.environ["PYTHONPATH"]
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*expected a frame of type 'count' with {'count': 99}, "
            "got {'type': 'count', 'count': 1}*",
            "*waited 1 s for a frame of type 'count'; got only*",
        ]
    )


def test_the_tutorial_layout_runs_under_the_fixture(pytester: pytest.Pytester) -> None:
    """The tutorial's table comes from a root-level resources.json `Ref`: the fixture's
    gateway creates it and empties it between tests as for any project."""
    shutil.copytree(APPS / "tutorial", pytester.path, dirs_exist_ok=True)
    pytester.makepyfile(
        test_tutorial="""
def stored(ws, text):
    ws.send(text)
    return ws.recv(timeout=20)

def test_counts_its_own_frames(chalice_gateway):
    with chalice_gateway.connect() as ws:
        assert [stored(ws, t) for t in "abc"] == ["stored 1", "stored 2", "stored 3"]

def test_starts_from_an_empty_table(chalice_gateway):
    client = chalice_gateway.dynamodb()
    (table,) = client.list_tables()["TableNames"]
    assert client.scan(TableName=table)["Count"] == 0
    with chalice_gateway.connect() as ws:
        assert stored(ws, "x") == "stored 1"
"""
    )
    os.environ["PYTHONPATH"] = str(ROOT)
    try:
        result = pytester.runpytest_subprocess("-p", "localgateway.testing.plugin")
    finally:
        del os.environ["PYTHONPATH"]
    result.assert_outcomes(passed=2)
