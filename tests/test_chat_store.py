"""The store's table layer: botocore's errors become the chat's own, in one place.

Stubbed DynamoDB answers (botocore's Stubber, no network): a failed condition
is `ConditionFailed` with the item it found, any other error `Unavailable` with
the original as its cause, and an unanswered call is logged in one line.
"""

from __future__ import annotations

import logging
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.stub import Stubber

from chalicelib import budget
from chalicelib.outage import Unavailable, log_storage_error
from chalicelib.store.table import ConditionFailed, Table

KEY = {"pk": {"S": "CONN#a"}, "sk": {"S": "CONNECTION"}}
ITEM = {**KEY, "nick": {"S": "ada"}}


@pytest.fixture
def stubbed() -> Any:
    client = boto3.client("dynamodb", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield Table(client, "chat"), stubber
        stubber.assert_no_pending_responses()


def test_a_failed_condition_is_condition_failed_with_the_item_it_found(stubbed: Any) -> None:
    table, stubber = stubbed
    stubber.add_client_error(
        "put_item",
        "ConditionalCheckFailedException",
        http_status_code=400,
        modeled_fields={"Item": ITEM},
    )
    with pytest.raises(ConditionFailed) as failed:
        table.put(ITEM, ConditionExpression="attribute_not_exists(pk)")
    assert failed.value.item == ITEM


def test_any_other_error_is_unavailable_and_answered(stubbed: Any) -> None:
    table, stubber = stubbed
    stubber.add_client_error("get_item", "ProvisionedThroughputExceededException")
    with pytest.raises(Unavailable) as unavailable:
        table.get(KEY)
    assert isinstance(unavailable.value.__cause__, ClientError)
    assert not unavailable.value.unanswered


def test_a_query_that_fails_between_pages_is_unavailable(stubbed: Any) -> None:
    table, stubber = stubbed
    stubber.add_response("query", {"Items": [ITEM], "LastEvaluatedKey": KEY})
    stubber.add_client_error("query", "InternalServerError", http_status_code=500)
    read = table.query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={})
    assert next(read) == ITEM
    with pytest.raises(Unavailable):
        next(read)


def test_unprocessed_items_are_written_again_until_none_are_left(stubbed: Any) -> None:
    table, stubber = stubbed
    items = [{"pk": {"S": f"ROOM#{n}"}, "sk": {"S": "MEMBER#a"}} for n in range(30)]
    first = [{"PutRequest": {"Item": item}} for item in items[:25]]
    stubber.add_response(
        "batch_write_item",
        {"UnprocessedItems": {"chat": first[24:]}},
        {"RequestItems": {"chat": first}},
    )
    stubber.add_response("batch_write_item", {}, {"RequestItems": {"chat": first[24:]}})
    rest = [{"PutRequest": {"Item": item}} for item in items[25:]]
    stubber.add_response("batch_write_item", {}, {"RequestItems": {"chat": rest}})
    table.batch_put(items)  # three requests: the stubber fails on a fourth or a different one


class Silent:
    """A client whose every call times out, as botocore raises it."""

    def get_item(self, **_: Any) -> Any:
        raise ReadTimeoutError(endpoint_url="http://dynamodb")

    def put_item(self, **_: Any) -> Any:
        raise budget.OutOfTime()


def test_a_call_left_unanswered_is_one_warning_line(caplog: pytest.LogCaptureFixture) -> None:
    table = Table(Silent(), "chat")
    for call in (lambda: table.get(KEY), lambda: table.put(ITEM)):
        with pytest.raises(Unavailable) as unavailable:
            call()
        assert unavailable.value.unanswered
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="chalicelib.outage"):
            log_storage_error(unavailable.value, "message from %s", "conn")
        ((record,),) = [caplog.records]
        assert record.levelno == logging.WARNING and record.exc_info is None
        assert record.getMessage() == f"message from conn: storage unavailable: {unavailable.value}"


def test_an_error_answer_is_logged_with_its_traceback(
    stubbed: Any, caplog: pytest.LogCaptureFixture
) -> None:
    table, stubber = stubbed
    stubber.add_client_error("get_item", "ValidationException")
    try:
        table.get(KEY)
    except Unavailable as unavailable:
        with caplog.at_level(logging.WARNING, logger="chalicelib.outage"):
            log_storage_error(unavailable, "connect %s", "conn")
    ((record,),) = [caplog.records]
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert record.getMessage() == "connect conn: storage unavailable"
