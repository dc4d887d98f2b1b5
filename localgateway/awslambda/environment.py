"""The environment variables of a handler process: what Lambda sets, pointed at this machine.

A Lambda function sees its own variables (config.json and the merge
template), the variables Lambda's runtime sets (function name, memory, log
group, region, credentials, TZ, ...) and nothing else: not the deployer's
shell. Handler processes get the same, so an app that relies on a variable
only the developer's shell has fails here as it would on Lambda, with a
KeyError, instead of passing locally and failing deployed.

The gateway's own settings win over the function's: fake credentials, a
region, every AWS client's endpoint on the embedded moto server (S3's named
too: the URLs it presigns must point there), DynamoDB's on the chosen
DynamoDB, @connections and Lambda's Invoke on the gateway, and
a CA bundle that trusts the gateway's local certificate. With those, boto3's
standard configuration keeps an unchanged app on the machine. Only a
`--dynamodb-endpoint` that leaves the machine gets the developer's real
credentials (resolved by the gateway, passed as the three variables), which
it needs.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None


# What handlers sign with, and what the gateway's signed APIs accept.
FAKE_CREDENTIALS = Credentials("testing", "testing", "testing")

# No profile, credential process or instance metadata may answer instead.
_NO_OTHER_CREDENTIALS = {
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


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


def lambda_variables(
    function_name: str, memory_mb: int, task_root: Path, region_name: str
) -> dict[str, str]:
    """The variables Lambda's Python runtime sets for every function."""
    stream = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{secrets.token_hex(16)}"
    python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return {
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": stream,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{python}",
        "AWS_REGION": region_name,
        "AWS_DEFAULT_REGION": region_name,
        "LAMBDA_TASK_ROOT": str(task_root),
        "LAMBDA_RUNTIME_DIR": str(Path(__file__).resolve().parent),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        # The virtualenv's scripts first, as a layer's /opt/bin would be, then the system's.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin:/usr/bin:/bin"]),
    }


def handler_environment(
    function_name: str,
    memory_mb: int,
    function_environment: Mapping[str, str],
    task_root: Path,
    region_name: str,
    endpoints: Endpoints,
    credentials: Credentials = FAKE_CREDENTIALS,
) -> dict[str, str]:
    """The whole environment of a function's handler processes; nothing comes from os.environ."""
    environment = dict(function_environment)
    environment.update(lambda_variables(function_name, memory_mb, task_root, region_name))
    environment.update(
        AWS_ACCESS_KEY_ID=credentials.access_key,
        AWS_SECRET_ACCESS_KEY=credentials.secret_key,
        AWS_ENDPOINT_URL=endpoints.aws,
        AWS_ENDPOINT_URL_DYNAMODB=endpoints.dynamodb,
        # Presigned URLs a handler makes point here, where browsers and scripts reach them.
        AWS_ENDPOINT_URL_S3=endpoints.aws,
        AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI=endpoints.connections,
        AWS_ENDPOINT_URL_LAMBDA=endpoints.lambda_api,
        AWS_CA_BUNDLE=endpoints.ca_bundle,
        # Lambda sends a function's output to CloudWatch as it comes; so do we, to the terminal.
        PYTHONUNBUFFERED="1",
        **_NO_OTHER_CREDENTIALS,
    )
    if credentials.token:
        environment["AWS_SESSION_TOKEN"] = credentials.token
    else:
        environment.pop("AWS_SESSION_TOKEN", None)
    return environment
