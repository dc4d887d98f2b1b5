"""The embedded DynamoDB's items, kept across restarts of the gateway.

The embedded DynamoDB lives in memory. Without this, stopping `make run`
empties the chat while an open page still shows its history, and two users
then see different histories. Each table declared in the merge template is
saved in `{state_dir}/{table}.jsonl`, one item per line in DynamoDB's JSON (the
base), and `{state_dir}/{table}.changes/`, numbered files of what changed since
(`{"put": item}`, `{"delete": key}`; `{"reset": true}` empties the table first).
A save writes only the items that changed since the last one (state/changes.py
says which), read back with BatchGetItem: a stop costs what changed, not what
the table holds. A table saved whole (its first save, or after a write whose
keys are unknown) is a paginated Scan, into the base when there is none, else
into a change file that resets. A periodic save folds the changes into the base
once they weigh as much as it (`compact`): files only, no DynamoDB call.

Every file is written to a temporary name and renamed: a kill leaves the old
file or the new, never half. Folding writes the new base, then deletes the
change files it holds; killed in between, those files are read again over the
new base, which changes nothing (each key ends as its last change left it).

On start the base and the changes are replayed in order and written back with
BatchWriteItem, except items whose TTL has passed (DynamoDB would have deleted
them). Everything goes through the DynamoDB API, so the files are independent of
moto's internals. `--fresh` starts with empty tables.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from localgateway.state.changes import Identity, Key, identity

# BatchWriteItem takes at most 25 items a call, BatchGetItem 100 keys; both may leave some.
BATCH = 25
GET_BATCH = 100
# Fold the changes into the base when they weigh this much of it, or are this many files.
COMPACT_RATIO = 1.0
COMPACT_FILES = 50


@dataclass(frozen=True)
class Written:
    """What a save wrote for one table."""

    items: int
    whole: bool  # the whole table (a Scan), or only the changed items

    def __str__(self) -> str:
        return f"{self.items} items" if self.whole else f"{self.items} changed items"


def path_for(state_dir: Path, table: str) -> Path:
    return state_dir / f"{table}.jsonl"


def changes_dir(state_dir: Path, table: str) -> Path:
    return state_dir / f"{table}.changes"


def has_files(state_dir: Path, table: str) -> bool:
    return path_for(state_dir, table).is_file() or bool(_change_files(state_dir, table))


def save(client: Any, table: str, state_dir: Path) -> Written:
    """Save every item of `table` (a Scan): the base if there is none, else a reset."""
    pages = client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
    items = (item for page in pages for item in page["Items"])
    if not has_files(state_dir, table):
        return Written(_write(path_for(state_dir, table), items), whole=True)
    records = ({"put": item} for item in items)
    count = _write(_next_change_file(state_dir, table), records, first={"reset": True})
    return Written(count, whole=True)


def save_changes(client: Any, table: str, keys: dict[Identity, Key], state_dir: Path) -> Written:
    """Save the items of these keys as they are now: present, or deleted."""
    if not keys:
        return Written(0, whole=False)
    names = tuple(next(iter(keys.values())))
    found = {identity(_key_of(item, names)): item for item in _get(client, table, [*keys.values()])}
    records = (
        {"put": found[ident]} if ident in found else {"delete": key} for ident, key in keys.items()
    )
    return Written(_write(_next_change_file(state_dir, table), records), whole=False)


def load(
    client: Any, table: str, state_dir: Path, key_names: tuple[str, ...], ttl_attribute: str | None
) -> int:
    """Write the saved items of `table` back, except expired ones; return how many."""
    now = time.time()
    items = [
        item
        for item in _replay(state_dir, table, key_names).values()
        if not _expired(item, ttl_attribute, now)
    ]
    for start in range(0, len(items), BATCH):
        _write_batch(client, table, items[start : start + BATCH])
    return len(items)


def due(state_dir: Path, table: str) -> bool:
    """Whether the changes weigh enough to fold them into the base."""
    files = _change_files(state_dir, table)
    base = path_for(state_dir, table)
    weight = sum(path.stat().st_size for path in files)
    size = base.stat().st_size if base.is_file() else 0
    return len(files) >= COMPACT_FILES or (bool(files) and weight >= COMPACT_RATIO * size)


def compact(
    state_dir: Path,
    table: str,
    key_names: tuple[str, ...],
    ttl_attribute: str | None,
    stopping: Callable[[], bool],
) -> bool:
    """Fold the change files into the base (dropping expired items); False if `stopping`
    said to give up first (nothing changed then)."""
    files = _change_files(state_dir, table)
    try:
        items = _replay(state_dir, table, key_names, files, stopping)
        now = time.time()
        kept = (item for item in items.values() if not _expired(item, ttl_attribute, now))
        _write(path_for(state_dir, table), kept, stopping)
    except _GaveUp:
        return False
    for path in files:
        path.unlink()
    return True


class _GaveUp(Exception):
    """A compaction stopped because the gateway is stopping."""


def _replay(
    state_dir: Path,
    table: str,
    key_names: tuple[str, ...],
    files: list[Path] | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> dict[Identity, dict[str, Any]]:
    """The items the base and the change files hold, by key."""
    items: dict[Identity, dict[str, Any]] = {}
    base = path_for(state_dir, table)
    for count, item in enumerate(_read(base) if base.is_file() else ()):
        if count % 1000 == 0 and stopping():
            raise _GaveUp
        items[identity(_key_of(item, key_names))] = item
    for path in _change_files(state_dir, table) if files is None else files:
        for record in _read(path):
            if "reset" in record:
                items.clear()
            elif "put" in record:
                items[identity(_key_of(record["put"], key_names))] = record["put"]
            else:
                items.pop(identity(record["delete"]), None)
    return items


def _key_of(item: dict[str, Any], names: Iterable[str]) -> Key:
    return {name: item[name] for name in names}


def _get(client: Any, table: str, keys: list[Key]) -> Iterator[dict[str, Any]]:
    for start in range(0, len(keys), GET_BATCH):
        request = {table: {"Keys": keys[start : start + GET_BATCH], "ConsistentRead": True}}
        while request:
            answer = client.batch_get_item(RequestItems=request)
            yield from answer["Responses"].get(table, [])
            request = answer.get("UnprocessedKeys") or {}


def _change_files(state_dir: Path, table: str) -> list[Path]:
    """The change files, oldest first (their names are their numbers)."""
    folder = changes_dir(state_dir, table)
    if not folder.is_dir():
        return []
    return sorted(
        (path for path in folder.iterdir() if path.suffix == ".jsonl" and path.stem.isdigit()),
        key=lambda path: int(path.stem),
    )


def _next_change_file(state_dir: Path, table: str) -> Path:
    files = _change_files(state_dir, table)
    number = int(files[-1].stem) + 1 if files else 1
    return changes_dir(state_dir, table) / f"{number:08d}.jsonl"


def _write(
    target: Path,
    lines: Iterable[dict[str, Any]],
    stopping: Callable[[], bool] = lambda: False,
    first: dict[str, Any] | None = None,
) -> int:
    """Write `lines` (after `first`) to `target` atomically; return how many (not `first`)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    count = 0
    try:
        with temporary.open("w", encoding="utf-8") as out:
            if first is not None:
                _line(out, first)
            for line in lines:
                if count % 1000 == 0 and stopping():
                    raise _GaveUp
                _line(out, line)
                count += 1
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    temporary.replace(target)
    return count


def _line(out: IO[str], document: dict[str, Any]) -> None:
    out.write(json.dumps(document, default=_encode_bytes, ensure_ascii=False) + "\n")


def _read(source: Path) -> Iterator[dict[str, Any]]:
    with source.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line, object_hook=_decode_bytes)


def _expired(item: dict[str, Any], ttl_attribute: str | None, now: float) -> bool:
    if ttl_attribute is None or "N" not in item.get(ttl_attribute, {}):
        return False
    return float(item[ttl_attribute]["N"]) <= now


def _write_batch(client: Any, table: str, items: Iterable[dict[str, Any]]) -> None:
    requests = {table: [{"PutRequest": {"Item": item}} for item in items]}
    while requests:
        requests = client.batch_write_item(RequestItems=requests).get("UnprocessedItems") or {}


# Binary attributes (B, BS) arrive as bytes: kept in the file as base64.
_BYTES = "$base64"


def _encode_bytes(value: Any) -> Any:
    if isinstance(value, bytes):
        return {_BYTES: base64.b64encode(value).decode("ascii")}
    raise TypeError(f"cannot save a {type(value).__name__}")


def _decode_bytes(document: dict[str, Any]) -> Any:
    if len(document) == 1 and _BYTES in document:
        return base64.b64decode(document[_BYTES])
    return document
