"""Autoreload: a code or settings change starts a new generation of process_pool.

Like a Lambda redeploy, a reload keeps every websocket open (they live in
the gateway, not in the workers) and loses no message: the old generation
serves until a worker of the new one has imported the app, then new
invocations go to the new one while the old finishes what it has in flight.
A broken edit (a syntax error, a bad config.json) keeps the old generation
serving and prints why. A process the old generation starts after the edit
imports the files on disk (Python cannot import the previous version of a
file), so only the processes it already has are sure to run the old code.

Only the files that make up a deployment are watched (app.py, chalicelib/,
.chalice/config.json, the merge template), never a whole project tree with
its virtualenv, which would take a second to watch.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError
from watchfiles import awatch

from localgateway import project
from localgateway.awslambda import process_pool

log = logging.getLogger("localgateway")

# Changes are yielded once files have been quiet for STEP ms (at most DEBOUNCE ms).
DEBOUNCE_MS = 400
STEP_MS = 50


class Reloader:
    def __init__(
        self,
        runtime: process_pool.Runtime,
        load: Callable[[], project.Project],
        prepare: Callable[[project.Project], object],
        check: Callable[[process_pool.Generation], list[str]],
    ) -> None:
        self._runtime = runtime
        self._load = load
        self._prepare = prepare
        self._check = check
        self._changed = asyncio.Event()

    def is_watched(self, path: Path) -> bool:
        source = self._runtime.current.project
        if path in source.watched_files():
            return True
        library = source.root / "chalicelib"
        return path.is_relative_to(library) and "__pycache__" not in path.parts

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until `stop` is set, reloading after each burst of changes."""
        source = self._runtime.current.project
        folders = sorted({file.parent for file in source.watched_files()})
        watchers = [self._watch([d for d in folders if d.is_dir()], False, stop)]
        if (source.root / "chalicelib").is_dir():
            watchers.append(self._watch([source.root / "chalicelib"], True, stop))
        tasks = [asyncio.create_task(watcher) for watcher in watchers]
        stopped = asyncio.create_task(stop.wait())
        try:
            while True:
                changed = asyncio.create_task(self._changed.wait())
                await asyncio.wait({changed, stopped}, return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
                if stop.is_set():
                    return
                self._changed.clear()
                reloading = asyncio.create_task(self.reload())
                await asyncio.wait({reloading, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if stop.is_set():
                    reloading.cancel()
                    await asyncio.gather(reloading, return_exceptions=True)
                    return
        finally:
            stopped.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _watch(self, paths: list[Path], recursive: bool, stop: asyncio.Event) -> None:
        async for changes in awatch(
            *paths,
            recursive=recursive,
            debounce=DEBOUNCE_MS,
            step=STEP_MS,
            stop_event=stop,
            watch_filter=lambda _, path: self.is_watched(Path(path)),
        ):
            root = self._runtime.current.project.root
            names = sorted({os.path.relpath(path, root) for _, path in changes})
            log.info("changed: %s", ", ".join(names))
            self._changed.set()

    async def reload(self) -> bool:
        """Load the project again and switch to a new generation; False if the edit is broken."""
        started = time.monotonic()
        previous = self._runtime.current
        try:
            source = self._load()
        except project.ProjectError as error:
            log.error("not reloaded, still serving the previous version: %s", error)
            return False
        if source.api_stage != previous.project.api_stage:
            log.warning("api_gateway_stage changed: restart the gateway to serve the new stage")
        try:
            await asyncio.to_thread(self._prepare, source)
        except (BotoCoreError, ClientError) as error:
            log.error("not reloaded, could not create the tables: %s", error)
            return False
        try:
            generation = await self._runtime.load(source)
        except process_pool.WorkerFailed as error:
            log.error(
                "not reloaded, the app failed to import; still serving the previous version:\n%s",
                error,
            )
            return False
        try:
            unknown = await asyncio.to_thread(self._check, generation)
        except (BotoCoreError, ClientError):
            unknown = []
        for warning in [*generation.project.warnings, *unknown]:
            log.warning("warning: %s", warning)
        log.info(
            "reloaded in %.1f s (version %d); open connections kept",
            time.monotonic() - started,
            generation.number,
        )
        return True
