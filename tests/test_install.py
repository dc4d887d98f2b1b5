"""The gateway as another project gets it: a wheel, installed into a fresh virtualenv.

A project made with `chalice new-project`, plus websocket handlers, runs under
the `chalice-local-ws` console script with a real websocket client, and its own
pytest suite uses the plugin's fixture (loaded through the wheel's `pytest11`
entry point). No file of this repository is on that project's path: it runs
from its own directory, without PYTHONPATH, and checks where `localgateway`
was imported from.

Lean on purpose: the wheel is built without build isolation and installed with
`--no-deps`, and the virtualenv reaches its dependencies through a `.pth` file
naming this suite's site-packages (which holds no `localgateway`). The full
install, dependencies from the registry, is the same with pip resolving them;
docs/local-gateway.md gives the commands (about 90 s here).
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.conftest import ROOT

HANDLERS = """
app.experimental_feature_flags.update(["WEBSOCKETS"])
app.websocket_api.session = __import__("boto3").session.Session()


@app.on_ws_message()
def message(event):
    app.websocket_api.send(event.connection_id, '{"type": "echo", "text": "%s"}' % event.body)
"""

PROJECT_TESTS = """
import localgateway
from localgateway.testing.frames import wait_for_frame


def test_echo(chalice_gateway):
    print("localgateway from", localgateway.__file__)
    with chalice_gateway.connect() as ws:
        ws.send("hello")
        assert wait_for_frame(ws, "echo", text="hello")
"""


IGNORED = shutil.ignore_patterns("__pycache__")


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 120) -> str:
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A fresh virtualenv with the wheel installed; (its bin directory, an environment)."""
    base = tmp_path_factory.mktemp("install")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    # Built from a copy: a build leaves egg-info behind, which would register the
    # plugin for every pytest run in this checkout.
    source = base / "source"
    shutil.copytree(ROOT / "localgateway", source / "localgateway", ignore=IGNORED)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(base / "dist"),
            str(source),
        ],
        base,
        env,
    )
    (wheel,) = (base / "dist").glob("chalice_local_ws-*.whl")
    venv = base / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], base, env)
    (purelib,) = venv.glob("lib/python*/site-packages")
    (purelib / "suite-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "-q",
            "--no-deps",
            "--disable-pip-version-check",
            str(wheel),
        ],
        base,
        env,
    )
    return venv / "bin", env


@pytest.fixture(scope="module")
def project(installed: tuple[Path, dict[str, str]]) -> Path:
    """`chalice new-project`, with websocket handlers added to its app.py."""
    bin_dir, env = installed
    parent = bin_dir.parent.parent
    chalice = "import sys; from chalice.cli import main; sys.argv[0] = 'chalice'; main()"
    run([str(bin_dir / "python"), "-c", chalice, "new-project", "newapp"], parent, env)
    project = parent / "newapp"
    (project / "app.py").write_text((project / "app.py").read_text() + HANDLERS)
    (project / "tests").mkdir(exist_ok=True)
    (project / "tests" / "test_ws.py").write_text(PROJECT_TESTS)
    return project


def test_the_console_script_serves_a_new_project(
    installed: tuple[Path, dict[str, str]], project: Path
) -> None:
    bin_dir, env = installed
    endpoints = project.parent / "endpoints.json"
    log = (project.parent / "gateway.log").open("wb")
    gateway = subprocess.Popen(
        [
            str(bin_dir / "chalice-local-ws"),
            "--port",
            "0",
            "--endpoints-file",
            str(endpoints),
            "--no-autoreload",
            "--state-dir",
            str(project.parent / "state"),
        ],
        cwd=project,
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 60
        while not endpoints.exists():
            assert gateway.poll() is None, (project.parent / "gateway.log").read_text()
            assert time.monotonic() < deadline, (project.parent / "gateway.log").read_text()
            time.sleep(0.05)
        url = json.loads(endpoints.read_text())["websocket"]
        with connect(url, proxy=None, open_timeout=20) as first, connect(url, proxy=None) as second:
            first.send("one")
            second.send("two")
            assert json.loads(first.recv(timeout=20)) == {"type": "echo", "text": "one"}
            assert json.loads(second.recv(timeout=20)) == {"type": "echo", "text": "two"}
    finally:
        gateway.terminate()
        gateway.wait(20)
        log.close()


def test_the_new_projects_own_tests_use_the_plugin(
    installed: tuple[Path, dict[str, str]], project: Path
) -> None:
    bin_dir, env = installed
    out = run(
        [str(bin_dir / "python"), "-m", "pytest", "-s", "-q", "-p", "no:cacheprovider"],
        project,
        env,
        timeout=180,
    )
    assert "1 passed" in out, out
    (origin,) = [line for line in out.splitlines() if "localgateway from" in line]
    assert str(bin_dir.parent) in origin and str(ROOT) not in origin, origin
