"""Start `python -m localgateway` as a child process and wait until it is ready.

For programs that drive a gateway: the test suite and the benchmark. The
gateway writes its endpoints to `--endpoints-file` once it serves; that file,
not a guessed delay, says when it is ready.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


class GatewayProcess:
    """A running gateway: its endpoints (from --endpoints-file), its log, stop()."""

    def __init__(self, process: subprocess.Popen[bytes], output: Path) -> None:
        self.process = process
        self.output = output
        self.endpoints: dict[str, Any] = {}

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def children(self, alive_only: bool = False) -> list[int]:
        """The gateway's child processes (its handler workers), from /proc.

        With `alive_only`, not those that have exited and wait to be reaped (zombies).
        """
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid and not (alive_only and fields[0] == "Z"):
                pids.append(int(stat.parent.name))
        return pids

    def stop(self, timeout: float = 20) -> int:
        """Ctrl-C, as a user would; kill only if it does not stop in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def start(
    workdir: Path,
    project_dir: Path,
    *flags: str,
    expect_failure: bool = False,
    timeout: float = 60,
) -> GatewayProcess:
    """Start a gateway for `project_dir` (on free ports unless `flags` name some).

    Its output goes to `workdir/gateway.log`, and its saved tables to
    `workdir/state` (never into the project, unless `flags` say otherwise).
    With `expect_failure`, a gateway that exits instead of starting is
    returned rather than reported.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    endpoints = workdir / "endpoints.json"
    endpoints.unlink(missing_ok=True)
    output = workdir / "gateway.log"
    command = [sys.executable, "-m", "localgateway", "--project-dir", str(project_dir)]
    command += ["--port", "0", "--endpoints-file", str(endpoints)]
    if "--state-dir" not in flags:
        command += ["--state-dir", str(workdir / "state")]
    command += flags
    with output.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=Path(__file__).resolve().parent.parent, stdout=sink, stderr=sink
        )
    gateway = GatewayProcess(process, output)
    deadline = time.monotonic() + timeout
    while not endpoints.exists():
        if process.poll() is not None:
            if expect_failure:
                return gateway
            raise RuntimeError(f"the gateway exited with {process.returncode}:\n{gateway.log()}")
        if time.monotonic() > deadline:
            gateway.stop()
            raise RuntimeError(f"the gateway did not start in {timeout} s:\n{gateway.log()}")
        time.sleep(0.02)
    gateway.endpoints = json.loads(endpoints.read_text())
    return gateway
