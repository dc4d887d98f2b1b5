"""`make deploy` and `make destroy`, checked without AWS.

The real `chalice deploy` and `chalice delete` run in a subprocess against
moto's server on loopback, with the network guard installed there too. Moto
has no API Gateway CreateDeployment, so that one call is stubbed in the
subprocess; everything else (IAM roles and their policies, Lambda functions,
log groups, the websocket API, the table) is created, read back and deleted.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest
from chalice.cli.factory import CLIFactory
from chalice.deploy import models
from chalice.deploy.appgraph import ApplicationGraphBuilder, DependencyBuilder
from moto import mock_aws
from moto.server import ThreadedMotoServer

from deploytools import deploy, policy
from deploytools.project import (
    FANOUT,
    HANDLERS,
    DeployError,
    load_stage,
    merge_template,
    policy_values,
)
from deploytools.runner import ChaliceRunner, run_chalice
from tests.conftest import ROOT

ACCOUNT = "123456789012"  # moto's
REGION = "us-east-1"  # conftest's
TIMEOUTS = {
    "websocket_connect": 10,
    "websocket_message": 28,
    "websocket_disconnect": 10,
    "fanout": 28,
}

_CHALICE_MAIN = """
import sys
from localgateway import netguard
netguard.install()
from chalice.cli import main
{stub}
sys.exit(main())
"""
_STUB_API_DEPLOYMENT = """
from unittest import mock
from chalice.awsclient import TypedAWSClient
mock.patch.object(TypedAWSClient, "deploy_websocket_api", return_value="stubbed").start()
"""


def guarded_chalice(stub_api_deployment: bool = False) -> ChaliceRunner:
    """The Chalice CLI in a subprocess that cannot reach beyond loopback."""
    code = _CHALICE_MAIN.format(stub=_STUB_API_DEPLOYMENT if stub_api_deployment else "")

    def run(project: Path, args: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        command = [sys.executable, "-c", code, "--project-dir", str(project), *args]
        subprocess.run(command, check=True, cwd=ROOT, env={**os.environ, **(env or {})})

    return run


def expected_statements(api_id: str | None, stage: str = "dev") -> list[dict[str, Any]]:
    """The exact policy `make deploy` must attach, for moto's account and region."""
    logs = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/chalice-chat-{stage}"
    fanout = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:chalice-chat-{stage}-fanout"
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ChatTableItems",
            "Effect": "Allow",
            "Action": [
                "dynamodb:DeleteItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:Query",
                "dynamodb:UpdateItem",
            ],
            "Resource": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/chalice-chat-{stage}",
        },
        {
            "Sid": "PostToChatConnections",
            "Effect": "Allow",
            "Action": "execute-api:ManageConnections",
            "Resource": f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api_id}/api/POST/@connections/*",
        },
        {
            "Sid": "InvokeFanout",
            "Effect": "Allow",
            "Action": "lambda:InvokeFunction",
            "Resource": fanout,
        },
        {
            "Sid": "OwnLogGroups",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [
                f"{logs}-websocket_connect:*",
                f"{logs}-websocket_message:*",
                f"{logs}-websocket_disconnect:*",
                f"{logs}-fanout:*",
            ],
        },
    ]
    if api_id:
        return statements
    return [s for s in statements if s["Sid"] != "PostToChatConnections"]


def render_for(api_id: str | None) -> dict[str, Any]:
    stage = load_stage("dev")
    values = policy_values(
        stage,
        partition="aws",
        region=REGION,
        account=ACCOUNT,
        table_arn=f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/chalice-chat-dev",
        api_id=api_id,
    )
    document = policy.policy_document(merge_template(stage))
    return policy.render(document, values, defer=frozenset({"WebsocketAPI"}))


# The policy ---------------------------------------------------------------------------


def test_the_rendered_policy_names_the_table_the_api_and_the_log_groups_exactly() -> None:
    assert render_for("a1b2c3d4e5") == {
        "Version": "2012-10-17",
        "Statement": expected_statements("a1b2c3d4e5"),
    }


def test_before_the_api_exists_only_the_connections_statement_is_left_out() -> None:
    assert render_for(None)["Statement"] == expected_statements(None)


def test_a_missing_value_that_is_not_deferred_is_an_error() -> None:
    document = {"Statement": [{"Action": "dynamodb:GetItem", "Resource": {"Ref": "Nope"}}]}
    with pytest.raises(policy.PolicyError, match="no value for Nope"):
        policy.render(document, {}, defer=frozenset({"WebsocketAPI"}))


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("dynamodb:*", "arn:aws:dynamodb:us-east-1:1:table/t"),
        ("dynamodb:Get*", "arn:aws:dynamodb:us-east-1:1:table/t"),
        ("*", "arn:aws:dynamodb:us-east-1:1:table/t"),
        ("dynamodb:GetItem", "arn:aws:dynamodb:us-east-1:1:table/*"),
        ("dynamodb:GetItem", "arn:aws:dynamodb:*:*:table/t"),
        ("dynamodb:GetItem", "*"),
        ("execute-api:ManageConnections", "arn:aws:execute-api:*:*:*/api/*/@connections/*"),
        ("logs:PutLogEvents", "arn:aws:logs:*:*:*"),
        ("lambda:*", "arn:aws:lambda:us-east-1:1:function:chalice-chat-dev-fanout"),
        ("lambda:InvokeFunction", "arn:aws:lambda:us-east-1:1:function:*"),
        ("lambda:InvokeFunction", "arn:aws:lambda:us-east-1:1:function:chalice-chat-dev-*"),
        ("lambda:InvokeFunction", "arn:aws:lambda:us-east-1:1:function:chalice-chat-dev-fanout:*"),
    ],
)
def test_wildcards_are_refused(action: str, resource: str) -> None:
    document = {"Statement": [{"Sid": "S", "Action": [action], "Resource": resource}]}
    assert policy.problems(document)
    with pytest.raises(policy.PolicyError, match="broader than least privilege"):
        policy.ensure_least_privilege(document)


def test_the_policy_grants_exactly_the_dynamodb_actions_the_storage_code_calls() -> None:
    """A new client call in chalicelib/storage.py without its IAM action fails here, not in AWS."""
    tree = ast.parse((ROOT / "chalicelib" / "storage.py").read_text())
    operations: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and ast.unparse(node.func.value) == "self._client"
        ):
            name = node.func.attr
            if name == "get_paginator":
                name = node.args[0].value  # type: ignore[attr-defined]
            operations.add("".join(part.title() for part in name.split("_")))
    if "TransactWriteItems" in operations:
        # IAM authorises each item of a transaction by its own action.
        operations.remove("TransactWriteItems")
        kinds = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem"}
        kinds["ConditionCheck"] = "ConditionCheckItem"
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict):
                for key in node.keys:
                    if isinstance(key, ast.Constant) and key.value in kinds:
                        operations.add(kinds[key.value])
    granted = expected_statements("x")[0]["Action"]
    assert sorted(f"dynamodb:{operation}" for operation in operations) == granted


def test_the_policy_grants_exactly_the_lambda_action_the_fanout_code_calls() -> None:
    """The fan-out code calls one Lambda API: Invoke, for the fan-out function."""
    tree = ast.parse((ROOT / "chalicelib" / "fanout.py").read_text())
    calls = {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and ast.unparse(node.func.value) == "self._client()"
    }
    assert calls == {"invoke"}  # the Invoke API, which IAM authorises as lambda:InvokeFunction
    granted = set()
    for statement in expected_statements("x"):
        action = statement["Action"]
        granted.update(action if isinstance(action, list) else [action])
    assert {action for action in granted if action.startswith("lambda:")} == {
        "lambda:InvokeFunction"
    }


def test_handlers_are_the_functions_chalice_makes_for_the_app() -> None:
    """HANDLERS, the function and log group names, and the policy file all match Chalice's plan.

    A handler added to app.py without being added to HANDLERS fails here, before
    a deploy leaves its log group out of the policy.
    """
    stage = load_stage("dev")
    config = CLIFactory(str(ROOT)).create_config_obj(chalice_stage_name="dev")
    planned = DependencyBuilder().build_dependencies(ApplicationGraphBuilder().build(config, "dev"))
    functions = {r.resource_name: r for r in planned if isinstance(r, models.LambdaFunction)}
    assert sorted(functions) == sorted(HANDLERS)
    for handler, function in functions.items():
        assert function.function_name == stage.function_name(handler)
        assert function.timeout == TIMEOUTS[handler]
        assert function.log_group is not None
        assert function.log_group.log_group_name == stage.log_group(handler)
        role = function.role
        assert isinstance(role, models.ManagedIAMRole)
        assert role.role_name == stage.function_name(handler)
        assert isinstance(role.policy, models.FileBasedIAMPolicy)
        assert role.policy.filename == str(stage.policy_path)
    assert functions[FANOUT].handler == "app.fanout"


def test_each_stage_names_its_own_fanout_function(tmp_path: Path) -> None:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    for name, settings in config["stages"].items():
        fanout = settings["environment_variables"]["FANOUT_FUNCTION"]
        assert fanout == load_stage(name).function_name(FANOUT) == f"chalice-chat-{name}-fanout"

    config["stages"]["qa"] = copy.deepcopy(config["stages"]["dev"])
    (tmp_path / ".chalice").mkdir()
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(config))
    copied = r"FANOUT_FUNCTION to 'chalice-chat-dev-fanout'.*is 'chalice-chat-qa-fanout'"
    with pytest.raises(DeployError, match=copied):
        load_stage("qa", tmp_path)


def test_the_policy_stage_is_the_api_gateway_stage_of_the_config() -> None:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    assert all(load_stage(name).api_gateway_stage == "api" for name in config["stages"])
    assert config["api_gateway_stage"] == "api"  # the literal in ChatFunctionsPolicy


# Deploy and destroy against moto -----------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the app to deploy, so that `.chalice/deployed` never lands in the checkout."""
    for name in ("app.py", "requirements.txt"):
        shutil.copy2(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "chalicelib", tmp_path / "chalicelib")
    (tmp_path / ".chalice").mkdir()
    for name in ("config.json", "resources.json"):
        shutil.copy2(ROOT / ".chalice" / name, tmp_path / ".chalice" / name)
    return tmp_path


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)  # this process and the chalice subprocess
    try:
        yield endpoint
    finally:
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))
        server.stop()


class Recorder:
    def __init__(self, runner: ChaliceRunner) -> None:
        self.runner = runner
        self.calls: list[list[str]] = []

    def __call__(
        self, project: Path, args: Sequence[str], env: Mapping[str, str] | None = None
    ) -> None:
        self.calls.append(list(args))
        self.runner(project, args, env)


def role_policy(iam: Any, role: str) -> dict[str, Any]:
    document = iam.get_role_policy(RoleName=role, PolicyName=role)["PolicyDocument"]
    return json.loads(document) if isinstance(document, str) else document


def test_first_deploy_creates_the_table_and_scopes_the_policy_to_the_new_api(
    project: Path, moto_server: str
) -> None:
    chalice = Recorder(guarded_chalice(stub_api_deployment=True))
    printed: list[str] = []

    result = deploy.deploy("dev", project=project, chalice=chalice, say=printed.append)

    assert chalice.calls == [["deploy", "--stage", "dev"]] * 2
    session = boto3.session.Session()
    dynamodb = session.client("dynamodb")
    table = dynamodb.describe_table(TableName="chalice-chat-dev")["Table"]
    assert table["TableStatus"] == "ACTIVE"
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert dynamodb.describe_time_to_live(TableName="chalice-chat-dev")[
        "TimeToLiveDescription"
    ] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}

    api_id = session.client("apigatewayv2").get_apis()["Items"][0]["ApiId"]
    url = f"wss://{api_id}.execute-api.{REGION}.amazonaws.com/api"
    assert result.websocket_url == url
    page = (project / "static" / "index.html").resolve().as_uri()
    assert result.page_links == (f"{page}?ws={url}", f"http://127.0.0.1:8000/?ws={url}")
    assert any(url in line for line in printed)
    assert any(f"?ws={url}" in line for line in printed)

    iam = session.client("iam")
    lambda_ = session.client("lambda")
    logs = session.client("logs")
    rendered = json.loads((project / ".chalice" / "policy-dev.json").read_text())
    assert rendered["Statement"] == expected_statements(api_id)
    fanout = lambda_.get_function_configuration(FunctionName="chalice-chat-dev-fanout")
    (invoke,) = [s for s in rendered["Statement"] if s["Sid"] == "InvokeFanout"]
    assert invoke["Resource"] == fanout["FunctionArn"]
    assert fanout["Handler"] == "app.fanout"
    assert {f["FunctionName"] for f in lambda_.list_functions()["Functions"]} == {
        f"chalice-chat-dev-{handler}" for handler in TIMEOUTS
    }
    for handler in TIMEOUTS:
        name = f"chalice-chat-dev-{handler}"
        assert role_policy(iam, name) == rendered
        function = lambda_.get_function_configuration(FunctionName=name)
        assert function["Timeout"] == TIMEOUTS[handler]
        assert function["MemorySize"] == 256
        variables = function["Environment"]["Variables"]
        assert variables["TABLE_NAME"] == "chalice-chat-dev"
        assert variables["FANOUT_FUNCTION"] == "chalice-chat-dev-fanout"
        (group,) = logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}")["logGroups"]
        assert group["retentionInDays"] == 7


def test_redeploy_runs_once_and_destroy_keeps_the_table_unless_asked(
    project: Path, moto_server: str
) -> None:
    chalice = Recorder(guarded_chalice(stub_api_deployment=True))
    quiet = [].append
    deploy.deploy("dev", project=project, chalice=chalice, say=quiet)
    chalice.calls.clear()

    deploy.deploy("dev", project=project, chalice=chalice, say=quiet)
    assert chalice.calls == [["deploy", "--stage", "dev"]]

    printed: list[str] = []
    deploy.destroy("dev", project=project, chalice=chalice, say=printed.append)
    session = boto3.session.Session()
    assert chalice.calls[-1] == ["delete", "--stage", "dev"]
    assert session.client("apigatewayv2").get_apis()["Items"] == []
    assert session.client("lambda").list_functions()["Functions"] == []
    assert session.client("iam").list_roles()["Roles"] == []
    assert session.client("logs").describe_log_groups()["logGroups"] == []
    assert not (project / ".chalice" / "policy-dev.json").exists()
    dynamodb = session.client("dynamodb")
    assert dynamodb.list_tables()["TableNames"] == ["chalice-chat-dev"]
    assert any("DELETE_TABLE=yes" in line for line in printed)

    chalice.calls.clear()
    deploy.destroy("dev", delete_table=True, project=project, chalice=chalice, say=quiet)
    assert chalice.calls == []  # nothing recorded any more: a second destroy is harmless
    assert dynamodb.list_tables()["TableNames"] == []


def test_an_api_recreated_with_a_new_id_gets_the_policy_rescoped(project: Path) -> None:
    """deployed/dev.json names API `old`, but `chalice deploy` makes `new` (deleted by hand)."""
    deployed = project / ".chalice" / "deployed" / "dev.json"
    deployed.parent.mkdir()
    policies: list[dict[str, Any]] = []

    def record(api_id: str) -> None:
        url = f"wss://{api_id}.execute-api.{REGION}.amazonaws.com/api/"
        resource = {"name": "websocket_api", "resource_type": "websocket_api"}
        resource |= {"websocket_api_id": api_id, "websocket_api_url": url}
        deployed.write_text(json.dumps({"resources": [resource]}))

    def fake_chalice(
        project: Path, args: Sequence[str], env: Mapping[str, str] | None = None
    ) -> None:
        policies.append(json.loads((project / ".chalice" / "policy-dev.json").read_text()))
        record("new")

    record("old")
    with mock_aws():
        result = deploy.deploy("dev", project=project, chalice=fake_chalice, say=[].append)

    assert [p["Statement"] for p in policies] == [
        expected_statements("old"),
        expected_statements("new"),
    ]
    assert result.websocket_url == f"wss://new.execute-api.{REGION}.amazonaws.com/api"


def test_deploy_without_a_region_stops_before_changing_anything(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION")

    def never(project: Path, args: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        raise AssertionError("chalice must not run")

    with mock_aws(), pytest.raises(DeployError, match="AWS_REGION"):
        deploy.deploy("dev", project=project, chalice=never, say=[].append)


def test_an_unknown_stage_is_named_with_the_known_ones() -> None:
    with pytest.raises(DeployError, match=r"no stage 'qa'.*\['dev', 'prod'\]"):
        load_stage("qa")


def test_the_makefile_deletes_the_table_only_with_the_confirmation_flag() -> None:
    def destroy_line(*variables: str) -> str:
        dry_run = subprocess.run(
            ["make", "-n", "destroy", *variables], cwd=ROOT, capture_output=True, text=True
        )
        (line,) = [x for x in dry_run.stdout.splitlines() if "deploytools destroy" in x]
        return line

    assert "--delete-table" not in destroy_line()
    assert "--delete-table" not in destroy_line("DELETE_TABLE=y")
    assert destroy_line("STAGE=prod", "DELETE_TABLE=yes").endswith(
        "destroy --stage prod --delete-table"
    )


def test_the_real_runner_finds_this_virtualenvs_chalice(tmp_path: Path) -> None:
    run_chalice(tmp_path, ["--version"])
    with pytest.raises(DeployError, match="chalice no-such-command failed"):
        run_chalice(tmp_path, ["no-such-command"])
