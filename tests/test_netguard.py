"""The suite cannot reach AWS: a request that would leave the machine fails loudly."""

from __future__ import annotations

import socket

import boto3
import pytest
from botocore.exceptions import HTTPClientError

from localgateway.awslambda.netguard import NetworkGuardError, is_local


def test_a_boto3_call_without_a_local_endpoint_is_blocked() -> None:
    client = boto3.client("sts", region_name="us-east-1")
    # botocore wraps the guard's error, keeping its message.
    with pytest.raises(HTTPClientError, match=r"blocked a connection to 'sts\.us-east-1"):
        client.get_caller_identity()


def test_raw_sockets_to_the_internet_are_blocked() -> None:
    with socket.socket() as sock, pytest.raises(NetworkGuardError):
        sock.connect(("192.0.2.1", 443))


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.3.2.1", None, b"127.0.0.1"])
def test_loopback_stays_allowed(host: object) -> None:
    assert is_local(host)


@pytest.mark.parametrize("host", ["8.8.8.8", "dynamodb.us-east-1.amazonaws.com", "10.0.0.1"])
def test_everything_else_is_not_local(host: str) -> None:
    assert not is_local(host)
