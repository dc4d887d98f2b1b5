"""Rate limits kept on an item: a token taken in one conditional UpdateItem (GCRA).

The limits themselves (intervals, bursts, the arithmetic) are
chalicelib/limits.py; this is how a token is taken from a TAT (theoretical
arrival time, ms) stored as an attribute, atomically whatever else runs.
"""

from __future__ import annotations

from typing import Any

from chalicelib import limits
from chalicelib.store.table import ConditionFailed, Item, Table


class RateLimited(Exception):
    def __init__(self, retry_after_ms: int) -> None:
        super().__init__(f"retry after {retry_after_ms} ms")
        self.retry_after_ms = retry_after_ms


def take(
    table: Table,
    key: Item,
    attribute: str,
    rate: limits.Rate,
    now: int,
    also: str = "",
    also_values: dict[str, Any] | None = None,
) -> Item | None:
    """Take a token of the limit kept in `attribute` of the item at `key`, setting
    `also` in the same write; the item as it was, None if it is missing.

    GCRA moves the TAT to max(TAT, now) + interval. DynamoDB has no max, so
    one request covers each case, both atomic whatever else runs meanwhile:
    a TAT in the past (tokens to spare: one request, the usual case) is set
    to now + interval; a TAT ahead of now, within the burst's tolerance,
    is moved on by one interval. A TAT only grows, so once the first
    request found it ahead of now, the second's arithmetic is exact: frames
    of one connection handled at once never refuse each other spuriously.
    """
    also_setting = f", {also}" if also else ""
    attempts = (
        (
            "attribute_exists(pk) AND (attribute_not_exists(#t) OR #t <= :now)",
            "SET #t = :tat",
            {":now": {"N": str(now)}, ":tat": {"N": str(limits.idle_tat(now, rate))}},
        ),
        (
            "attribute_exists(pk) AND #t <= :ceiling",
            "SET #t = #t + :interval",
            {
                ":ceiling": {"N": str(now + rate.tolerance_ms)},
                ":interval": {"N": str(rate.interval_ms)},
            },
        ),
    )
    for condition, update, values in attempts:
        try:
            return table.update(
                key,
                UpdateExpression=update + also_setting,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#t": attribute},
                ExpressionAttributeValues={**values, **(also_values or {})},
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as failed:
            if failed.item is None:
                return None
            seen = int(failed.item[attribute]["N"]) if attribute in failed.item else None
            decision = limits.decide(seen, now, rate)
            if not decision.allowed:
                raise RateLimited(decision.retry_after_ms) from failed
    raise RateLimited(rate.interval_ms)
