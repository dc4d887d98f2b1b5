"""The embedded DynamoDB's items, kept across restarts of the gateway.

The embedded DynamoDB lives in memory. Without this, stopping `make run`
empties the chat while an open page still shows its history, and two users
then see different histories. On a clean stop (Ctrl-C, SIGTERM), after every
`$disconnect` has run, each table declared in the merge template is read with
a paginated Scan and written to `{state_dir}/{table}.jsonl`, one item per
line in DynamoDB's JSON; on start, the items are written back with
BatchWriteItem. Items whose TTL has passed are not brought back (DynamoDB
would have deleted them). Everything goes through the DynamoDB API, so the
files are independent of moto's internals. `--fresh` starts with empty tables.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

# BatchWriteItem takes at most 25 items a call, and may leave some unprocessed.
BATCH = 25


def path_for(state_dir: Path, table: str) -> Path:
    return state_dir / f"{table}.jsonl"


def save(client: Any, table: str, state_dir: Path) -> int:
    """Write every item of `table` to its file (atomically); return how many."""
    state_dir.mkdir(parents=True, exist_ok=True)
    target = path_for(state_dir, table)
    temporary = target.with_name(target.name + ".tmp")
    count = 0
    with temporary.open("w", encoding="utf-8") as out:
        for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            for item in page["Items"]:
                out.write(json.dumps(item, default=_encode_bytes, ensure_ascii=False) + "\n")
                count += 1
    temporary.replace(target)
    return count


def load(client: Any, table: str, state_dir: Path, ttl_attribute: str | None) -> int:
    """Write the saved items of `table` back, except expired ones; return how many."""
    source = path_for(state_dir, table)
    if not source.is_file():
        return 0
    now = time.time()
    items = [item for item in _read(source) if not _expired(item, ttl_attribute, now)]
    for start in range(0, len(items), BATCH):
        _write_batch(client, table, items[start : start + BATCH])
    return len(items)


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
