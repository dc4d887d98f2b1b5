"""`python -m bench.dynamodb`: what a request to the embedded DynamoDB costs as its table grows.

The chat's requests touch one partition each (a room's members, its history,
a connection), so on DynamoDB they cost the same in an empty table and in a
full one. This measures, through boto3, the median of many requests of each
kind, on an empty table and on one holding `--items` items in 500 partitions:
a Query of an empty partition, a Query of a 20-item partition, a GetItem and
a PutItem. For each store:

- `moto`: moto 5.1's DynamoDB as it is (a Query lists and sorts the whole table);
- `moto + partition query`: the same with localgateway/aws/moto_query.py, as the
  gateway embeds it;
- any other DynamoDB named with `--endpoint NAME=URL`: dynalite
  (`npm install dynalite@4` then `node node_modules/dynalite/cli.js --port 4567`),
  DynamoDB Local, LocalStack.

`--write` puts the table into docs/benchmarks.md (between its `dynamodb` markers).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

from bench import report
from bench.markers import replace_block
from localgateway.aws import dynamodb, moto_query

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
PARTITIONS = 500


def client(endpoint: str) -> Any:
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    return session.client("dynamodb", endpoint_url=endpoint)


def create(dynamo: Any, name: str) -> None:
    dynamo.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
    )
    dynamo.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2})


def fill(dynamo: Any, name: str, count: int) -> None:
    """`count` items of a chat message's size, spread over PARTITIONS partitions."""
    for start in range(0, count, 25):
        batch = [
            {
                "PutRequest": {
                    "Item": {
                        "pk": {"S": f"ROOM#{n % PARTITIONS}"},
                        "sk": {"S": f"{n:08d}"},
                        "text": {"S": "x" * 100},
                    }
                }
            }
            for n in range(start, min(count, start + 25))
        ]
        pending: dict[str, Any] = {name: batch}
        while pending:
            pending = dynamo.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


def median_ms(call: Callable[[], Any], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def requests(dynamo: Any, name: str, repeats: int) -> dict[str, float]:
    def query(pk: str) -> Callable[[], Any]:
        return lambda: dynamo.query(
            TableName=name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
            ConsistentRead=True,
        )

    return {
        "Query, empty partition": median_ms(query("ROOM#none"), repeats),
        "Query, 20 items": median_ms(query("ROOM#7"), repeats),
        "GetItem": median_ms(
            lambda: dynamo.get_item(
                TableName=name, Key={"pk": {"S": "ROOM#7"}, "sk": {"S": "00000007"}}
            ),
            repeats,
        ),
        "PutItem": median_ms(
            lambda: dynamo.put_item(
                TableName=name, Item={"pk": {"S": "ROOM#none2"}, "sk": {"S": "a"}}
            ),
            repeats,
        ),
    }


def measure(dynamo: Any, name: str, items: int, repeats: int) -> dict[str, tuple[float, float]]:
    """Per request kind: (ms on an empty table, ms with `items` items)."""
    create(dynamo, name)
    empty = requests(dynamo, name, repeats)
    fill(dynamo, name, items)
    full = requests(dynamo, name, repeats)
    return {kind: (empty[kind], full[kind]) for kind in empty}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.dynamodb", description=__doc__)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--endpoint", action="append", default=[], metavar="NAME=URL")
    parser.add_argument("--write", action="store_true", help=f"write the table into {DOC}")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    embedded = dynamodb.EmbeddedAws()
    embedded.start()
    results: dict[str, dict[str, tuple[float, float]]] = {}
    try:
        local = client(embedded.endpoint)
        # Tables made before install() are moto's own; those made after are partitioned.
        results["moto"] = measure(local, "stock", args.items, args.repeats)
        moto_query.install()
        results["moto + partition query"] = measure(local, "partitioned", args.items, args.repeats)
    finally:
        embedded.stop()
    for named in args.endpoint:
        name, _, url = named.partition("=")
        results[name] = measure(client(url), f"bench{int(time.time())}", args.items, args.repeats)
    about = report.machine()
    lines = [
        f"Measured {about['date']} on {about['cpu']} ({about['cores']} cores), "
        f"commit {about['commit']}, with `python -m bench.dynamodb --items {args.items}"
        + "".join(f" --endpoint {named}" for named in args.endpoint)
        + "`: median ms per request, empty table / "
        f"{args.items:,} items (the ratio: 1.0 is a cost that does not grow).",
        "",
        "| store | " + " | ".join(next(iter(results.values()))) + " |",
        "| --- |" + " ---: |" * len(next(iter(results.values()))),
    ]
    for store, kinds in results.items():
        cells = [
            f"{empty:.1f} / {full:.1f} ({full / empty:.1f}x)" for empty, full in kinds.values()
        ]
        lines.append(f"| {store} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    if args.write:
        replace_block(DOC, "dynamodb", text)


if __name__ == "__main__":
    main()
