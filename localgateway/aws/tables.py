"""DynamoDB tables declared in a CloudFormation template, created through boto3.

The chat's table is defined once, in `.chalice/resources.json` (the template
that `chalice package --merge-template` merges). Tests, the local gateway and
`make deploy` all create tables from that definition with this module, so the
three can never disagree about keys, billing or TTL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

TABLE_TYPE = "AWS::DynamoDB::Table"

# CreateTable takes these template properties unchanged.
_PASSTHROUGH = (
    "AttributeDefinitions",
    "KeySchema",
    "BillingMode",
    "ProvisionedThroughput",
    "LocalSecondaryIndexes",
    "StreamSpecification",
    "TableClass",
)


def load_template(path: str | Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        template = json.load(handle)
    if not isinstance(template, dict):
        raise ValueError(f"{path}: a CloudFormation template must be a JSON object")
    return template


def table_definitions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The `Properties` of every AWS::DynamoDB::Table, by logical id."""
    resources = template.get("Resources") or {}
    return {
        logical_id: resource.get("Properties") or {}
        for logical_id, resource in resources.items()
        if isinstance(resource, dict) and resource.get("Type") == TABLE_TYPE
    }


def create_table_request(properties: dict[str, Any], name: str) -> dict[str, Any]:
    """CreateTable arguments for a table's template properties."""
    request: dict[str, Any] = {"TableName": name}
    for key in _PASSTHROUGH:
        if key in properties:
            request[key] = properties[key]
    indexes = properties.get("GlobalSecondaryIndexes")
    if indexes:
        request["GlobalSecondaryIndexes"] = [
            {
                key: value
                for key, value in index.items()
                if key != "ContributorInsightsSpecification"
            }
            for index in indexes
        ]
    if properties.get("SSESpecification", {}).get("SSEEnabled"):
        request["SSESpecification"] = {"Enabled": True}
    if "BillingMode" not in request and "ProvisionedThroughput" not in request:
        request["BillingMode"] = "PAY_PER_REQUEST"
    return request


def ensure_table(client: Any, properties: dict[str, Any], name: str) -> bool:
    """Create the table if it is missing, wait until it is active, switch TTL on.

    Idempotent: running it against an existing table only checks TTL. Returns
    whether the table was created.
    """
    created = False
    try:
        client.describe_table(TableName=name)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        try:
            client.create_table(**create_table_request(properties, name))
            created = True
        except ClientError as create_error:
            if create_error.response["Error"]["Code"] != "ResourceInUseException":
                raise
    client.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 300}
    )
    ttl = properties.get("TimeToLiveSpecification") or {}
    if ttl.get("Enabled"):
        current = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            client.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
    return created


def delete_table(client: Any, name: str) -> bool:
    """Delete the table and wait until it is gone; False when there was none.

    Idempotent like ensure_table, so that a teardown that failed half-way can run again.
    """
    try:
        client.delete_table(TableName=name)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        return False
    client.get_waiter("table_not_exists").wait(
        TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 300}
    )
    return True
