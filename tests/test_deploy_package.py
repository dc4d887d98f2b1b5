"""`make package` and a bare `chalice package`: the CloudFormation/SAM template, offline.

Both run in a fresh `git clone` of the committed HEAD (what CI and a new user
have: no generated file), in a subprocess that cannot reach beyond loopback;
cfn-lint (with the SAM transform) must report nothing.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deploytools import packaging, policy
from deploytools.packaging import Package
from deploytools.project import load_stage, merge_template, policy_values, route_throttling
from localgateway.aws import tables
from tests.conftest import ROOT
from tests.test_deploy import (
    THROTTLING,
    TIMEOUTS,
    Recorder,
    fresh_clone,
    git_status,
    guarded_chalice,
)

FUNCTIONS = {
    "websocket_connect": "WebsocketConnect",
    "websocket_message": "WebsocketMessage",
    "websocket_disconnect": "WebsocketDisconnect",
    "fanout": "Fanout",
}
# What the merge template sets in each function's environment, over config.json's values.
SIGN_IN = {
    "COGNITO_USER_POOL_ID": {"Ref": "ChatUserPool"},
    "COGNITO_CLIENT_ID": {"Ref": "ChatUserPoolClient"},
}
STORES = {"TABLE_NAME": {"Ref": "ChatTable"}, "BUCKET_NAME": {"Ref": "ChatFiles"}}
ENVIRONMENT_WIRING = {
    "WebsocketConnect": {**STORES, **SIGN_IN},
    "WebsocketMessage": {**STORES, "FANOUT_FUNCTION": {"Ref": "Fanout"}, **SIGN_IN},
    "WebsocketDisconnect": {**STORES, **SIGN_IN},
    "Fanout": {**STORES, **SIGN_IN},
}
STAGE_SETTINGS = {"dev": (256, 7), "prod": (512, 30)}  # memory MB, log retention days
# Functions that send big broadcasts get a whole vCPU in prod (docs/benchmarks.md).
SENDERS_MEMORY = {"prod": {"websocket_message": 1769, "fanout": 1769}}

EXPECTED_POLICY = {
    "PolicyName": "chat-functions",
    "Roles": [{"Ref": f"{function}Role"} for function in FUNCTIONS.values()],
    "PolicyDocument": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ChatTableItems",
                "Effect": "Allow",
                "Action": [
                    "dynamodb:BatchGetItem",
                    "dynamodb:BatchWriteItem",
                    "dynamodb:DeleteItem",
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:Query",
                    "dynamodb:UpdateItem",
                ],
                "Resource": {"Fn::GetAtt": ["ChatTable", "Arn"]},
            },
            {
                "Sid": "PostToChatConnections",
                "Effect": "Allow",
                "Action": "execute-api:ManageConnections",
                "Resource": [
                    {
                        "Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:"
                        f"${{AWS::AccountId}}:${{WebsocketAPI}}/api/{method}/@connections/*"
                    }
                    for method in ("POST", "GET", "DELETE")
                ],
            },
            {
                "Sid": "InvokeFanout",
                "Effect": "Allow",
                "Action": "lambda:InvokeFunction",
                "Resource": {"Fn::GetAtt": ["Fanout", "Arn"]},
            },
            {
                "Sid": "OwnLogGroups",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [
                    {
                        "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:"
                        f"log-group:${{{function}LogGroup}}:*"
                    }
                    for function in FUNCTIONS.values()
                ],
            },
            {
                "Sid": "ChatFiles",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": {"Fn::Sub": "arn:${AWS::Partition}:s3:::${ChatFiles}/files/*"},
            },
        ],
    },
}


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fresh_clone(tmp_path_factory.mktemp("fresh") / "chalice-chat")


@dataclass(frozen=True)
class MakePackage:
    packages: dict[str, Package]
    chalice_calls: list[list[str]]
    outs: dict[str, Path]


@pytest.fixture(scope="module")
def make_package(clone: Path, tmp_path_factory: pytest.TempPathFactory) -> MakePackage:
    """`make package` for both stages in the clone, with no AWS region, credentials or network."""
    recorder = Recorder(guarded_chalice())
    outs = {stage: tmp_path_factory.mktemp(stage) / "out" for stage in STAGE_SETTINGS}
    config_files = ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")  # stay os.devnull
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("AWS_") and n not in config_files]:
            patch.delenv(name)
        packages = {
            stage: packaging.package(stage, out, project=clone, chalice=recorder)
            for stage, out in outs.items()
        }
    return MakePackage(packages, recorder.calls, outs)


@pytest.fixture(scope="module")
def packaged(make_package: MakePackage) -> dict[str, Package]:
    return make_package.packages


def template_of(packaged: dict[str, Package], stage: str) -> dict[str, Any]:
    return json.loads(packaged[stage].template.read_text())


def cfn_lint(template: Path) -> subprocess.CompletedProcess[str]:
    executable = Path(sys.executable).with_name("cfn-lint")
    return subprocess.run(
        [str(executable), "--format", "parseable", str(template)], capture_output=True, text=True
    )


@pytest.mark.parametrize("stage", STAGE_SETTINGS)
def test_cfn_lint_reports_nothing(packaged: dict[str, Package], stage: str) -> None:
    result = cfn_lint(packaged[stage].template)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_does_catch_a_broken_template(
    packaged: dict[str, Package], tmp_path: Path
) -> None:
    broken = template_of(packaged, "dev")
    broken["Resources"]["ChatFunctionsPolicy"]["Properties"]["Roles"] = [{"Ref": "NoSuchRole"}]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    result = cfn_lint(path)
    assert result.returncode & 2, "cfn-lint reports errors with bit 2 of its exit status"
    assert "NoSuchRole" in result.stdout


def test_bare_chalice_package_in_a_fresh_clone_is_one_stack_cfn_lint_passes(
    clone: Path, packaged: dict[str, Package], tmp_path: Path
) -> None:
    """What the README has a Chalice user type in a fresh clone; `make package` builds the same."""
    out = tmp_path / "out"
    guarded_chalice()(clone, ["package", "--merge-template", ".chalice/resources.json", str(out)])

    result = cfn_lint(out / "sam.json")
    assert result.returncode == 0, result.stdout + result.stderr
    template = json.loads((out / "sam.json").read_text())
    resources = template["Resources"]
    for name in ("ChatTable", "ChatFunctionsPolicy", "WebsocketAPI", *FUNCTIONS.values()):
        assert name in resources, name
    assert template == template_of(packaged, "dev")  # the default stage, as make package builds it
    assert git_status(clone) == ""  # .chalice/deployments, the zip cache, is ignored


def test_make_package_runs_exactly_the_bare_command(make_package: MakePackage) -> None:
    assert make_package.chalice_calls == [
        [
            "package",
            "--stage",
            stage,
            "--merge-template",
            ".chalice/resources.json",
            str(make_package.outs[stage].resolve()),
        ]
        for stage in STAGE_SETTINGS
    ]


def test_the_merge_template_is_what_makes_chatfunctionspolicy_the_only_grant(
    clone: Path, tmp_path: Path
) -> None:
    """Without it, Chalice puts the committed policy file inline in every role."""
    guarded_chalice()(clone, ["package", str(tmp_path)])
    resources = json.loads((tmp_path / "sam.json").read_text())["Resources"]
    committed = json.loads((clone / ".chalice" / "policy-dev.json").read_text())
    for function in FUNCTIONS.values():
        (inline,) = resources[f"{function}Role"]["Properties"]["Policies"]
        assert inline["PolicyDocument"] == committed
    merge = merge_template(load_stage("dev", clone))["Resources"]
    assert all(
        merge[f"{function}Role"]["Properties"]["Policies"] == [] for function in FUNCTIONS.values()
    )


@pytest.mark.parametrize("stage", STAGE_SETTINGS)
def test_the_websocket_stage_is_throttled_as_make_deploy_throttles_it(
    packaged: dict[str, Package], stage: str
) -> None:
    resources = template_of(packaged, stage)["Resources"]
    assert resources["WebsocketAPIStage"] == {
        "Type": "AWS::ApiGatewayV2::Stage",
        "Properties": {
            "ApiId": {"Ref": "WebsocketAPI"},
            "DeploymentId": {"Ref": "WebsocketAPIDeployment"},
            "StageName": "api",
            "DefaultRouteSettings": THROTTLING,
        },
    }
    # make deploy reads the same values for UpdateStage (test_deploy checks it against moto).
    assert route_throttling(merge_template(load_stage(stage))) == THROTTLING


@pytest.mark.parametrize("stage", STAGE_SETTINGS)
def test_the_table_is_the_one_of_the_merge_template_with_ttl(
    packaged: dict[str, Package], stage: str
) -> None:
    template = template_of(packaged, stage)
    merge = tables.load_template(ROOT / ".chalice" / "resources.json")
    assert tables.table_definitions(template) == tables.table_definitions(merge)
    table = template["Resources"]["ChatTable"]
    assert table["Properties"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["Properties"]["TimeToLiveSpecification"] == {
        "AttributeName": "expires_at",
        "Enabled": True,
    }
    assert "GlobalSecondaryIndexes" not in table["Properties"]  # else the policy needs /index/*
    assert "LocalSecondaryIndexes" not in table["Properties"]
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"


@pytest.mark.parametrize("stage", STAGE_SETTINGS)
def test_the_functions_find_the_table_and_the_fanout_function_through_their_environment(
    packaged: dict[str, Package], stage: str
) -> None:
    """CloudFormation names the stack's table and functions: the template refers to them."""
    template = template_of(packaged, stage)
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    memory, _ = STAGE_SETTINGS[stage]
    assert sorted(ENVIRONMENT_WIRING) == sorted(FUNCTIONS.values())
    for handler, function in FUNCTIONS.items():
        properties = template["Resources"][function]["Properties"]
        assert properties["Environment"]["Variables"] == {
            **config["environment_variables"],
            **config["stages"][stage]["environment_variables"],
            **ENVIRONMENT_WIRING[function],
        }
        assert properties["Role"] == {"Fn::GetAtt": [f"{function}Role", "Arn"]}
        assert properties["Timeout"] == TIMEOUTS[handler]
        assert properties["MemorySize"] == SENDERS_MEMORY.get(stage, {}).get(handler, memory)
        assert "Policies" not in properties  # SAM would make a policy of its own


@pytest.mark.parametrize("stage", STAGE_SETTINGS)
def test_the_only_grant_is_the_exact_chat_functions_policy(
    packaged: dict[str, Package], stage: str
) -> None:
    resources = template_of(packaged, stage)["Resources"]
    iam = {name: r for name, r in resources.items() if r["Type"].startswith("AWS::IAM::")}
    assert sorted(iam) == sorted(["ChatFunctionsPolicy", *(f"{f}Role" for f in FUNCTIONS.values())])
    assert iam["ChatFunctionsPolicy"]["Type"] == "AWS::IAM::Policy"
    assert iam["ChatFunctionsPolicy"]["Properties"] == EXPECTED_POLICY
    for function in FUNCTIONS.values():
        role = iam[f"{function}Role"]["Properties"]
        assert role["Policies"] == []
        assert "ManagedPolicyArns" not in role
        (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}


@pytest.mark.parametrize("stage", STAGE_SETTINGS)
def test_the_policy_refers_to_resources_of_the_same_stack(
    packaged: dict[str, Package], stage: str
) -> None:
    resources = template_of(packaged, stage)["Resources"]
    document = resources["ChatFunctionsPolicy"]["Properties"]["PolicyDocument"]
    names = {name.split(".")[0] for name in policy.references(document)}
    assert names - set(resources) == {"AWS::Partition", "AWS::Region", "AWS::AccountId"}
    assert resources["WebsocketAPI"]["Type"] == "AWS::ApiGatewayV2::Api"
    assert resources["WebsocketAPIStage"]["Properties"]["StageName"] == "api"
    # Resolved as make deploy resolves it, the stack's form passes the deploy-time checks too.
    values = policy_values(
        load_stage(stage), partition="aws", region="eu-west-1", account="1", api_id="a1"
    )
    assert set(policy.references(document)) <= set(values)
    policy.ensure_least_privilege(policy.resolve(copy.deepcopy(document), values))


@pytest.mark.parametrize("stage", STAGE_SETTINGS)
def test_log_groups_are_made_with_the_stage_retention(
    packaged: dict[str, Package], stage: str
) -> None:
    resources = template_of(packaged, stage)["Resources"]
    _, retention = STAGE_SETTINGS[stage]
    for function in FUNCTIONS.values():
        group = resources[f"{function}LogGroup"]
        assert group["Type"] == "AWS::Logs::LogGroup"
        assert group["Properties"] == {
            "LogGroupName": {"Fn::Sub": f"/aws/lambda/${{{function}}}"},
            "RetentionInDays": retention,
        }


@pytest.mark.parametrize("stage", STAGE_SETTINGS)
def test_only_the_functions_roles_may_invoke_the_fanout_function(
    packaged: dict[str, Package], stage: str
) -> None:
    """No route, event source or resource policy reaches `fanout`: only ChatFunctionsPolicy."""
    resources = template_of(packaged, stage)["Resources"]
    fanout = resources["Fanout"]
    assert fanout["Type"] == "AWS::Serverless::Function"
    assert fanout["Properties"]["Handler"] == "app.fanout"
    assert "Events" not in fanout["Properties"]
    permissions = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Permission"]
    # Resource policies: API Gateway may invoke the three websocket handlers, nothing more.
    assert sorted(p["Properties"]["FunctionName"]["Ref"] for p in permissions) == [
        "WebsocketConnect",
        "WebsocketDisconnect",
        "WebsocketMessage",
    ]
    assert not [r for r in resources.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]


def test_the_stack_outputs_the_websocket_url(packaged: dict[str, Package]) -> None:
    outputs = template_of(packaged, "prod")["Outputs"]
    assert outputs["WebsocketConnectEndpointURL"]["Value"] == {
        "Fn::Sub": "wss://${WebsocketAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}/api/"
    }


@pytest.mark.parametrize("stage", STAGE_SETTINGS)
def test_the_deployment_package_holds_only_the_app_and_chalices_runtime(
    packaged: dict[str, Package], stage: str
) -> None:
    result = packaged[stage]
    app_files = sorted(
        path.relative_to(ROOT).as_posix() for path in (ROOT / "chalicelib").rglob("*.py")
    )
    assert result.names == tuple(
        sorted(["app.py", "chalice/__init__.py", "chalice/app.py", *app_files])
    )
    assert "chalicelib/fanout.py" in result.names  # the fan-out handler's module
    # The app, Chalice's runtime and Unicode's confusables data are tens of KB; a vendored
    # dependency (boto3 is megabytes, and Lambda has it) would blow through this.
    assert result.size < 128 * 1024, f"deployment.zip grew to {result.size} bytes"
    print(f"{stage} deployment.zip: {result.size} bytes, {len(result.names)} files")
