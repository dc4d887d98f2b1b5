"""The attachments' bucket (issue 20) in the packaged template and through make deploy/destroy.

The bucket is private (Block Public Access, ACLs off), encrypted, answers the
page's origins' CORS, and expires objects with the history; the functions'
policy grants GetObject and PutObject on its `files/` prefix and nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib.attachments import KEY_PREFIX
from chalicelib.settings import DEFAULT_ALLOWED_ORIGINS
from deploytools import deploy, policy
from deploytools.packaging import Package
from deploytools.project import load_stage, policy_values
from tests.conftest import ROOT
from tests.test_deploy import (
    ACCOUNT,
    REGION,
    guarded_chalice,
    moto_server,
    moto_update_stage,
    project,
)
from tests.test_deploy_package import STAGE_SETTINGS, clone, make_package, packaged, template_of

__all__ = ["clone", "make_package", "moto_server", "moto_update_stage", "packaged", "project"]

CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())
RETENTION_DAYS = int(CONFIG["environment_variables"]["HISTORY_RETENTION_DAYS"])


@pytest.mark.parametrize("stage", STAGE_SETTINGS)
def test_the_packaged_bucket_is_private_encrypted_with_the_pages_cors_and_the_history_lifecycle(
    packaged: dict[str, Package], stage: str
) -> None:
    assert "HISTORY_RETENTION_DAYS" not in CONFIG["stages"][stage]["environment_variables"]
    bucket = template_of(packaged, stage)["Resources"]["ChatFiles"]
    assert bucket["Type"] == "AWS::S3::Bucket"
    properties = bucket["Properties"]
    assert "BucketName" not in properties  # CloudFormation names it; the functions Ref it
    assert properties["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"], True
    )
    assert properties["OwnershipControls"] == {
        "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]
    }
    assert "AccessControl" not in properties
    (encryption,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    (cors,) = properties["CorsConfiguration"]["CorsRules"]
    assert tuple(cors["AllowedOrigins"]) == DEFAULT_ALLOWED_ORIGINS  # the chat's own origins
    assert sorted(cors["AllowedMethods"]) == ["GET", "HEAD", "POST"]
    (rule,) = properties["LifecycleConfiguration"]["Rules"]
    assert (rule["Status"], rule["Prefix"]) == ("Enabled", KEY_PREFIX)
    assert rule["ExpirationInDays"] == RETENTION_DAYS


@pytest.mark.parametrize("stage", STAGE_SETTINGS)
def test_the_policy_grants_get_and_put_on_the_buckets_prefix_and_nothing_more(
    packaged: dict[str, Package], stage: str
) -> None:
    document = template_of(packaged, stage)["Resources"]["ChatFunctionsPolicy"]["Properties"]
    s3 = [
        statement
        for statement in document["PolicyDocument"]["Statement"]
        if any(action.startswith("s3:") for action in statement["Action"])
    ]
    assert s3 == [
        {
            "Sid": "ChatFiles",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::${{ChatFiles}}/{KEY_PREFIX}*"},
        }
    ]
    values = policy_values(
        load_stage(stage), partition="aws", region=REGION, account=ACCOUNT, api_id="a1"
    )
    (resolved,) = policy.resolve(s3, values)
    bucket = f"chalice-chat-{stage}-files-{ACCOUNT}-{REGION}"
    assert resolved["Resource"] == f"arn:aws:s3:::{bucket}/files/*"
    assert policy.problems({"Statement": [resolved]}) == []
    committed = {**resolved, "Resource": f"arn:aws:s3:::chalice-chat-{stage}-files-*-*/files/*"}
    assert policy.problems({"Statement": [committed]}) == []  # account and region unknown
    broader = [
        ("s3:GetObject", f"arn:aws:s3:::{bucket}/*"),  # the whole bucket's objects
        ("s3:GetObject", f"arn:aws:s3:::{bucket}"),
        ("s3:GetObject", "arn:aws:s3:::*/files/*"),
        ("s3:*", f"arn:aws:s3:::{bucket}/files/*"),
        ("s3:GetObject", f"arn:aws:s3:::{bucket}/files*/*"),
        ("s3:GetObject", "arn:aws:s3:::chalice-chat-dev-files-12*-us-east-1/files/*"),
        ("s3:GetObject", "arn:aws:s3:::*-files-*-*/files/*"),
    ]
    for action, resource in broader:
        statement = {"Sid": "S", "Action": [action], "Resource": resource}
        assert policy.problems({"Statement": [statement]}), resource


def test_make_deploy_makes_the_bucket_and_destroy_empties_and_deletes_it_only_when_asked(
    project: Path, moto_server: str
) -> None:
    chalice = guarded_chalice(stub_api_deployment=True)
    printed: list[str] = []
    deploy.deploy("dev", project=project, chalice=chalice, say=printed.append)
    deploy.deploy("dev", project=project, chalice=chalice, say=printed.append)  # idempotent

    s3 = boto3.client("s3")
    bucket = f"chalice-chat-dev-files-{ACCOUNT}-{REGION}"
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [bucket]
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    (cors,) = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert tuple(cors["AllowedOrigins"]) == DEFAULT_ALLOWED_ORIGINS
    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rule["Expiration"] == {"Days": RETENTION_DAYS}
    encryption = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    variables = boto3.client("lambda").get_function_configuration(
        FunctionName="chalice-chat-dev-websocket_message"
    )["Environment"]["Variables"]
    assert variables["BUCKET_NAME"] == bucket
    committed = (ROOT / ".chalice" / "config.json").read_text()
    assert (project / ".chalice" / "config.json").read_text() == committed  # put back

    for n in range(3):
        s3.put_object(Bucket=bucket, Key=f"files/room/{n}", Body=b"x")
    deploy.destroy("dev", project=project, chalice=chalice, say=printed.append)
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [bucket]
    lines: list[str] = []
    deploy.destroy("dev", delete_table=True, project=project, chalice=chalice, say=lines.append)
    assert s3.list_buckets()["Buckets"] == []
    assert f"Emptied (3 objects) and deleted bucket {bucket}" in lines
    again: list[Any] = []
    deploy.destroy("dev", delete_table=True, project=project, chalice=chalice, say=again.append)
    assert f"No bucket {bucket} to delete" in again
