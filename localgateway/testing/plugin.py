"""The pytest plugin (entry point `pytest11`): the local gateway on the project under test.

    def test_echo(chalice_gateway):
        with chalice_gateway.connect("?nick=alice") as ws:
            ws.send("hello")
            assert wait_for_frame(ws, "echo")["text"] == "hello"

One gateway per session, on the Chalice project in `--chalice-project` (ini
`chalice_project`, default: pytest's rootdir), on free ports. Its tables are
emptied through the DynamoDB API before each test, or before each module's
first test, as `chalice_gateway_fresh` (ini, or `--chalice-gateway-fresh`)
says: `test` (the default), `module` or `session` (never). Extra gateway flags
go in the ini's `chalice_gateway_flags`.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from localgateway.testing.gateway import RunningGateway, start_gateway

FRESH = ("test", "module", "session")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chalice-local-ws", "the local websocket gateway")
    group.addoption("--chalice-project", help="the Chalice project the gateway runs")
    group.addoption("--chalice-gateway-fresh", choices=FRESH, help="when tables are emptied")
    parser.addini("chalice_project", "the Chalice project the gateway runs (default: rootdir)")
    parser.addini("chalice_gateway_fresh", "test, module or session: when tables are emptied")
    parser.addini("chalice_gateway_flags", "extra flags for the gateway, as on its command line")


def _setting(config: pytest.Config, name: str) -> str:
    return config.getoption(f"--{name.replace('_', '-')}") or config.getini(name) or ""


@pytest.fixture(scope="session")
def chalice_gateway_session(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    """The gateway for the whole session; most tests want `chalice_gateway` instead."""
    config = request.config
    project = Path(_setting(config, "chalice_project") or config.rootpath).resolve()
    flags = shlex.split(str(config.getini("chalice_gateway_flags") or ""))
    gateway = start_gateway(tmp_path_factory.mktemp("chalice-gateway"), project, *flags)
    yield gateway
    gateway.stop()


@pytest.fixture
def chalice_gateway(
    chalice_gateway_session: RunningGateway, request: pytest.FixtureRequest
) -> RunningGateway:
    """The session's gateway, its tables emptied as `chalice_gateway_fresh` says."""
    fresh = _setting(request.config, "chalice_gateway_fresh") or "test"
    if fresh not in FRESH:
        raise pytest.UsageError(f"chalice_gateway_fresh must be one of {FRESH}, not {fresh!r}")
    module = request.node.module.__name__ if request.node.module else ""
    last = getattr(chalice_gateway_session, "_fresh_for", None)
    if fresh == "test" or (fresh == "module" and last != module):
        chalice_gateway_session.empty_tables()
    chalice_gateway_session._fresh_for = module  # type: ignore[attr-defined]
    return chalice_gateway_session
