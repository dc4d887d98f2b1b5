"""Running the Chalice CLI, replaceable in tests (which never reach AWS)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from deploytools.project import DeployError


class ChaliceRunner(Protocol):
    def __call__(
        self, project: Path, args: Sequence[str], env: Mapping[str, str] | None = None
    ) -> None: ...


def run_chalice(project: Path, args: Sequence[str], env: Mapping[str, str] | None = None) -> None:
    """`chalice --project-dir PROJECT ARGS...` from this virtualenv, run in PROJECT, `env` added.

    Run in the project, as a user types it, so relative paths in ARGS
    (`--merge-template .chalice/resources.json`) mean what they say. Its
    output goes to the terminal; a failure raises DeployError.
    """
    executable = Path(sys.executable).with_name("chalice")
    if not executable.exists():
        raise DeployError(f"{executable} is missing: `make deploy` installs it")
    result = subprocess.run(
        [str(executable), "--project-dir", str(project), *args],
        cwd=project,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if result.returncode != 0:
        raise DeployError(f"chalice {' '.join(args)} failed (exit status {result.returncode})")
