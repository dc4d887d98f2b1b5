"""The environment variables of a handler process: what Lambda would set, pointed at this machine.

A function's own variables (config.json and the merge template), then the
gateway's AWS settings, which win: fake credentials, a region, every AWS
client's endpoint on the embedded moto server, DynamoDB's on the chosen
DynamoDB, @connections and Lambda's Invoke on the gateway, and a CA bundle
that trusts the gateway's local certificate. With those, boto3's standard
configuration keeps an unchanged app on the machine. Only a
`--dynamodb-endpoint` that leaves the machine keeps the developer's own AWS
credentials, which it needs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_REGION = "us-east-1"
LOOPBACK = ("127.0.0.1", "localhost", "::1")

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    # No profile, credential process or instance metadata may answer instead.
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}

# Settings of the developer's shell that would send a client elsewhere.
_ENDPOINT_SETTINGS = ("AWS_ENDPOINT_URL", "AWS_CA_BUNDLE", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")


@dataclass(frozen=True)
class Endpoints:
    aws: str
    dynamodb: str
    connections: str
    ca_bundle: str
    # The gateway's main port, which serves Lambda's Invoke for the app's pure functions.
    lambda_api: str


def region(base: Mapping[str, str]) -> str:
    return base.get("AWS_REGION") or base.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def handler_environment(
    base: Mapping[str, str],
    function_environment: Mapping[str, str],
    endpoints: Endpoints,
    keep_credentials: bool = False,
) -> dict[str, str]:
    """`base` (the gateway's own environment) without its AWS settings, plus the rest."""
    environment = {
        key: value
        for key, value in base.items()
        if not key.startswith("AWS_")
        or (keep_credentials and not key.startswith(_ENDPOINT_SETTINGS))
    }
    environment.update(function_environment)
    name = region(base)
    environment.update(
        AWS_REGION=name,
        AWS_DEFAULT_REGION=name,
        AWS_ENDPOINT_URL=endpoints.aws,
        AWS_ENDPOINT_URL_DYNAMODB=endpoints.dynamodb,
        AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI=endpoints.connections,
        AWS_ENDPOINT_URL_LAMBDA=endpoints.lambda_api,
        AWS_CA_BUNDLE=endpoints.ca_bundle,
        # Lambda sends a function's output to CloudWatch as it comes; so do we, to the terminal.
        PYTHONUNBUFFERED="1",
    )
    # A developer's HTTP(S)_PROXY must not carry local calls (botocore honours NO_PROXY).
    for variable in ("NO_PROXY", "no_proxy"):
        environment[variable] = ",".join(filter(None, [base.get(variable), *LOOPBACK]))
    if not keep_credentials:
        environment.update(FAKE_CREDENTIALS)
    return environment
