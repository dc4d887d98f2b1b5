"""A gateway subprocess for tests: real websocket, @connections and DynamoDB clients on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3

from localgateway import launcher


class RunningGateway(launcher.GatewayProcess):
    """A gateway subprocess on free ports, with clients for its endpoints."""

    def connect(self, query: str = "", tls: bool = False, **options: Any) -> Any:
        """A real websockets client (sync API); use it in a `with` block."""
        from websockets.sync.client import connect

        url = self.endpoints["websocket_tls" if tls else "websocket"] + query
        if tls:
            import ssl

            options["ssl"] = ssl.create_default_context(cafile=self.endpoints["ca_file"])
        options.setdefault("open_timeout", 20)
        return connect(url, proxy=None, **options)

    def management(self, tls: bool = False) -> Any:
        """The real boto3 @connections client, pointed at the gateway."""
        return boto3.session.Session().client(
            "apigatewaymanagementapi",
            endpoint_url=self.endpoints["connections_tls" if tls else "connections"],
            verify=self.endpoints["ca_file"] if tls else None,
        )

    def dynamodb(self) -> Any:
        """The real boto3 DynamoDB client on the gateway's DynamoDB."""
        return boto3.session.Session().client("dynamodb", endpoint_url=self.endpoints["dynamodb"])

    def empty_tables(self) -> int:
        """Delete every item of the project's tables, through the DynamoDB API; how many."""
        client = self.dynamodb()
        deleted = 0
        for name in self.endpoints["tables"].values():
            keys = [
                key["AttributeName"]
                for key in client.describe_table(TableName=name)["Table"]["KeySchema"]
            ]
            for page in client.get_paginator("scan").paginate(
                TableName=name,
                ProjectionExpression=", ".join(f"#k{i}" for i in range(len(keys))),
                ExpressionAttributeNames={f"#k{i}": key for i, key in enumerate(keys)},
            ):
                for item in page["Items"]:
                    client.delete_item(TableName=name, Key={key: item[key] for key in keys})
                    deleted += 1
        return deleted

    def get(self, path: str) -> tuple[int, Any]:
        """GET a path of the main port; (status, decoded JSON or text)."""
        import urllib.error
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(self.endpoints["http"] + path.lstrip("/"), timeout=30) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode()


def start_gateway(
    workdir: Path, project_dir: Path, *flags: str, expect_failure: bool = False
) -> RunningGateway:
    """Start `python -m localgateway` on free ports and wait until it says it is ready."""
    started = launcher.start(workdir, project_dir, *flags, expect_failure=expect_failure)
    gateway = RunningGateway(started.process, started.output)
    gateway.endpoints = started.endpoints
    return gateway
