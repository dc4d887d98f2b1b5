"""The one module that calls DynamoDB: the chat's table, its errors made the chat's own.

Every request of the store goes through `Table`, with the arguments DynamoDB
takes (the table name added here), so each aggregate module (connections.py,
claims.py, ...) costs exactly the requests it says. botocore's errors stop
here: a failed condition raises `ConditionFailed` (with the item as it was,
when the request asked for it with ReturnValuesOnConditionCheckFailure), and
every other error `chalicelib.outage.Unavailable`, the original as its cause.

Query follows `LastEvaluatedKey` (a page is at most 1 MB); BatchGetItem and
BatchWriteItem take at most 100 keys and 25 items a call, and their
unprocessed keys and items are sent again until none are left.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import outage

Item = dict[str, Any]

BATCH_GET = 100
BATCH_WRITE = 25


class ConditionFailed(Exception):
    """A conditional write found the item otherwise: `item` is what it held, when asked."""

    def __init__(self, item: Item | None) -> None:
        super().__init__("the condition of the write failed")
        self.item = item


@contextmanager
def _translated() -> Iterator[None]:
    """botocore's errors as the chat's: a failed condition, or the table unavailable."""
    with outage.translated():
        try:
            yield
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise ConditionFailed(error.response.get("Item")) from error
            raise


class Table:
    """One DynamoDB table through a low-level boto3 client."""

    def __init__(self, client: Any, name: str) -> None:
        self._client = client
        self._name = name

    def get(self, key: Item, **options: Any) -> Item | None:
        """The item at `key`, or None."""
        with _translated():
            response = self._client.get_item(TableName=self._name, Key=key, **options)
        item: Item | None = response.get("Item")
        return item

    def put(self, item: Item, **options: Any) -> None:
        with _translated():
            self._client.put_item(TableName=self._name, Item=item, **options)

    def update(self, key: Item, **options: Any) -> Item:
        """The attributes the request asked back (ReturnValues), or {}."""
        with _translated():
            response = self._client.update_item(TableName=self._name, Key=key, **options)
        attributes: Item = response.get("Attributes", {})
        return attributes

    def delete(self, key: Item, **options: Any) -> Item:
        """The attributes the request asked back (ReturnValues), or {}."""
        with _translated():
            response = self._client.delete_item(TableName=self._name, Key=key, **options)
        attributes: Item = response.get("Attributes", {})
        return attributes

    def query(self, **options: Any) -> Iterator[Item]:
        """Every item the query matches, page after page, as the caller reads them."""
        with _translated():
            paginator = self._client.get_paginator("query")
            for page in paginator.paginate(TableName=self._name, **options):
                yield from page["Items"]

    def query_page(self, **options: Any) -> list[Item]:
        """One page of a query (with `Limit`: at most that many items), one request."""
        with _translated():
            response = self._client.query(TableName=self._name, **options)
        items: list[Item] = response["Items"]
        return items

    def batch_get(self, keys: list[Item], **options: Any) -> list[Item]:
        """The items at `keys` that exist, in any order: one BatchGetItem per 100 keys."""
        found: list[Item] = []
        for start in range(0, len(keys), BATCH_GET):
            request: Any = {self._name: {"Keys": keys[start : start + BATCH_GET], **options}}
            while request:
                with _translated():
                    response = self._client.batch_get_item(RequestItems=request)
                found += response["Responses"].get(self._name, [])
                request = response.get("UnprocessedKeys") or {}
        return found

    def batch_put(self, items: list[Item]) -> None:
        """Put every item: one BatchWriteItem per 25 (not atomic)."""
        for start in range(0, len(items), BATCH_WRITE):
            batch = items[start : start + BATCH_WRITE]
            request: Any = {self._name: [{"PutRequest": {"Item": item}} for item in batch]}
            while request:
                with _translated():
                    response = self._client.batch_write_item(RequestItems=request)
                request = response.get("UnprocessedItems")
