"""Which items of the saved tables changed since the last save, from the requests that did it.

Scanning every table at every save makes a stop as slow as the tables are big
(issue 22: 7.1 s with 13,200 items). The embedded DynamoDB's front sees every
request before moto does (aws/dynamodb.py), so it hands each write here, and
the keys it names are noted: a save then reads back only those items
(snapshot.save_changes). A write whose keys cannot be read (PartiQL other than
SELECT, a table operation, a body that is not DynamoDB's JSON) marks its table,
or every table, for a full save instead. Only DynamoDB's wire format is read,
nothing of moto.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

# A key as boto3's low-level client takes it: {"pk": {"S": "ROOM#a"}, ...}, B as bytes.
Key = dict[str, dict[str, Any]]
# The same key, hashable, numbers compared by value: the identity of an item.
Identity = tuple[tuple[str, str, Any], ...]

ITEM_WRITES = frozenset(
    {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
)
PARTIQL = frozenset({"ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction"})
READ_PREFIXES = ("Get", "BatchGet", "Describe", "List", "Query", "Scan", "TransactGet")


@dataclass(frozen=True)
class Touched:
    """What one request may have changed: items by key, whole tables, or anything."""

    keys: tuple[tuple[str, Key], ...] = ()
    tables: frozenset[str] = frozenset()
    everything: bool = False


@dataclass
class Taken:
    """The changes a save writes: keys by table, and the tables to save whole."""

    keys: dict[str, dict[Identity, Key]] = field(default_factory=dict)
    full: set[str] = field(default_factory=set)


def identity(key: Key) -> Identity:
    """Two spellings of one key (`1` and `1.0`) are one item, as DynamoDB compares them."""
    return tuple(
        (name, kind, Decimal(value).normalize() if kind == "N" else value)
        for name, typed in sorted(key.items())
        for kind, value in typed.items()
    )


def touched(operation: str, body: bytes, schemas: Mapping[str, tuple[str, ...]]) -> Touched:
    """What the DynamoDB request `operation` with this JSON `body` may have changed."""
    if operation.startswith(READ_PREFIXES):
        return Touched()
    try:
        request = json.loads(body)
        if operation in ITEM_WRITES:
            return Touched(keys=tuple(_item_writes(operation, request, schemas)))
        if operation in PARTIQL:
            return Touched(everything=not all(_is_select(s) for s in _statements(request)))
        named = request.get("TableName") or request.get("TargetTableName")
    except (ValueError, TypeError, KeyError, AttributeError, InvalidOperation, binascii.Error):
        return Touched(everything=True)
    return (
        Touched(tables=frozenset({named})) if isinstance(named, str) else Touched(everything=True)
    )


def _item_writes(
    operation: str, request: dict[str, Any], schemas: Mapping[str, tuple[str, ...]]
) -> Iterator[tuple[str, Key]]:
    """(table, key) of every item the write names; KeyError when one cannot be read."""
    if operation == "BatchWriteItem":
        for table, writes in request["RequestItems"].items():
            for write in writes:
                if "PutRequest" in write:
                    yield table, _key(write["PutRequest"]["Item"], schemas.get(table))
                else:
                    yield table, _key(write["DeleteRequest"]["Key"], schemas.get(table))
    elif operation == "TransactWriteItems":
        for entry in request["TransactItems"]:
            (kind, write), *_ = entry.items()
            if kind == "Put":
                yield write["TableName"], _key(write["Item"], schemas.get(write["TableName"]))
            elif kind in ("Update", "Delete"):
                yield write["TableName"], _key(write["Key"], schemas.get(write["TableName"]))
    else:
        record = request["Item"] if operation == "PutItem" else request["Key"]
        yield request["TableName"], _key(record, schemas.get(request["TableName"]))


def _key(record: dict[str, Any], names: tuple[str, ...] | None) -> Key:
    """The key attributes of an item or key in wire format, for boto3 (B decoded)."""
    if names is None:  # a table nobody saves
        return {}
    key: Key = {}
    for name in names:
        ((kind, value),) = record[name].items()
        if kind not in ("S", "N", "B") or not isinstance(value, str):
            raise KeyError(name)
        if kind == "N":
            Decimal(value)  # InvalidOperation: not a number
        key[name] = {kind: base64.b64decode(value, validate=True) if kind == "B" else value}
    return key


def _statements(request: dict[str, Any]) -> Iterator[str]:
    if "Statement" in request:
        yield request["Statement"]
    for entry in request.get("Statements") or request.get("TransactStatements") or ():
        yield entry["Statement"]


def _is_select(statement: str) -> bool:
    return statement.lstrip().upper().startswith("SELECT")


class Changes:
    """The changes since the last save, of the tables being saved (`track`).

    `touched` runs outside the embedded DynamoDB's lock, `mark` inside it, just
    before moto applies the request: a save that takes the changes after that
    reads what the request wrote, and one that took them before will see the key
    at the next save.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._schemas: dict[str, tuple[str, ...]] = {}
        self._taken = Taken()

    def track(self, schemas: Mapping[str, tuple[str, ...]]) -> None:
        """Save these tables (name: key attribute names); new ones are saved whole first."""
        with self._lock:
            self._taken.full.update(set(schemas) - set(self._schemas))
            self._schemas = dict(schemas)

    def on_disk(self, table: str) -> None:
        """The saved files of `table` hold what it holds now (it was just restored from them)."""
        with self._lock:
            self._taken.full.discard(table)

    def touched(self, operation: str, body: bytes) -> Touched:
        return touched(operation, body, self._schemas)

    def mark(self, touched: Touched) -> None:
        with self._lock:
            if touched.everything:
                self._taken.full.update(self._schemas)
            self._taken.full.update(touched.tables & set(self._schemas))
            for table, key in touched.keys:
                if table not in self._schemas:
                    continue
                if key:
                    self._taken.keys.setdefault(table, {})[identity(key)] = key
                else:  # tracked since the request was read: its key was not
                    self._taken.full.add(table)

    def take(self) -> Taken:
        """The changes to save now; the next ones start empty."""
        with self._lock:
            taken, self._taken = self._taken, Taken()
        return taken

    def put_back(self, taken: Taken) -> None:
        """A save failed: its changes are still to be saved."""
        with self._lock:
            self._taken.full.update(taken.full)
            for table, keys in taken.keys.items():
                self._taken.keys.setdefault(table, {}).update(keys)
