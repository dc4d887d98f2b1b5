"""A Query that reads only the queried partition, for moto's DynamoDB.

moto 5.1's `Table.query` finds a base-table partition by listing and sorting
every item of the table (`all_items()`), then keeping those with the queried
hash key: a Query of an empty room costs as much as the whole table, and the
chat slows down as its history grows (3 ms on an empty table, 85 ms at
10,000 items). On DynamoDB a Query costs what it reads.

The fix is the one we would send upstream: on a base-table Query, `all_items`
yields the items of the one partition `query` filters for. `query` still
sorts, pages, filters and projects them itself, so its results are unchanged.
Index queries keep moto's own path (an index is not partitioned in moto).

It is applied through the one place moto makes tables, `create_table`, which
builds `moto.dynamodb.models.Table`: tables created after `install()` are
`PartitionedTable`s. `tests/test_gateway_units.py` checks both the results
and that a Query touches no other partition, so a moto upgrade that changes
this path fails loudly.
"""

from __future__ import annotations

from typing import Any

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table


class PartitionedTable(Table):
    """moto's Table, with base-table queries that read one partition."""

    # The hash key of the base-table Query being answered; None otherwise.
    _queried_partition: DynamoType | None = None

    def query(  # type: ignore[override]
        self,
        hash_key: DynamoType | None,
        range_comparison: str | None,
        range_objs: list[DynamoType],
        limit: int,
        exclusive_start_key: dict[str, Any],
        scan_index_forward: bool,
        projection_expressions: list[list[str]] | None,
        index_name: str | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> tuple[list[Item], int, dict[str, Any] | None]:
        self._queried_partition = hash_key if index_name is None else None
        try:
            return super().query(
                hash_key,
                range_comparison,
                range_objs,
                limit,
                exclusive_start_key,
                scan_index_forward,
                projection_expressions,
                index_name,
                *args,
                **kwargs,
            )
        finally:
            self._queried_partition = None

    def all_items(self) -> list[Item]:
        if self._queried_partition is None:
            return super().all_items()
        # `get`, not `[]`: `items` is a defaultdict, and a lookup must not add a partition.
        partition = self.items.get(self._queried_partition)
        if partition is None:
            return []
        return list(partition.values()) if self.range_key_attr else [partition]  # type: ignore[list-item]


def install() -> None:
    """Make moto create `PartitionedTable`s. moto serves one request at a time here
    (see dynamodb.py), so the per-table `_queried_partition` is never shared."""
    dynamodb_models.Table = PartitionedTable  # type: ignore[misc]
