"""`make deploy`, `make destroy` and a bare `chalice deploy` in a fresh clone, without AWS.

The real `chalice deploy` and `chalice delete` run in a subprocess against
moto's server on loopback, with the network guard installed there too. Moto
5.1 has neither API Gateway v2's CreateDeployment nor its UpdateStage:
CreateDeployment is stubbed in the Chalice subprocess, and UpdateStage (the
throttling) is added to the moto server for these tests. Everything else (IAM
roles and their policies, Lambda functions, log groups, the websocket API and
its stage, the table) is created, read back and deleted.
"""

from __future__ import annotations

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
from urllib.parse import unquote

import boto3
import pytest
from chalice.cli.factory import CLIFactory
from chalice.deploy import models
from chalice.deploy.appgraph import ApplicationGraphBuilder, DependencyBuilder
from moto import mock_aws
from moto.apigatewayv2.responses import ApiGatewayV2Response
from moto.server import ThreadedMotoServer

from deploytools import deploy, policyfiles
from deploytools.project import FANOUT, HANDLERS, DeployError, load_stage, route_throttling
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

# The suite's network guard in a subprocess, importable from this checkout whatever
# the subprocess runs in (a project copy holds only what Chalice packages).
_GUARDED = """
import sys
sys.path.append({root!r})
from localgateway.awslambda import netguard
netguard.install()
{body}
"""
_CHALICE_MAIN = """
{stub}
from chalice.cli import main
sys.exit(main())
"""
_STUB_API_DEPLOYMENT = """
from unittest import mock
from chalice.awsclient import TypedAWSClient
mock.patch.object(TypedAWSClient, "deploy_websocket_api", return_value="stubbed").start()
"""
_DEPLOYTOOLS_MAIN = """
from deploytools.__main__ import main
sys.exit(main())
"""

# Rates and bursts as resources.json sets them on the websocket stage (docs/deploy.md).
THROTTLING = {"ThrottlingRateLimit": 50, "ThrottlingBurstLimit": 100}


def run_guarded(
    cwd: Path, body: str, args: Sequence[str], env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -c BODY ARGS...` in `cwd`, unable to reach beyond loopback."""
    code = _GUARDED.format(root=str(ROOT), body=body)
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )


def guarded_chalice(stub_api_deployment: bool = False) -> ChaliceRunner:
    """The Chalice CLI, run in the project like `run_chalice`, that cannot reach beyond loopback."""
    body = _CHALICE_MAIN.format(stub=_STUB_API_DEPLOYMENT if stub_api_deployment else "")

    def run(project: Path, args: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        result = run_guarded(project, body, ["--project-dir", str(project), *args], env)
        assert result.returncode == 0, result.stdout + result.stderr

    return run


def fresh_clone(destination: Path) -> Path:
    """A `git clone` of this checkout's committed HEAD: nothing generated, nothing uncommitted."""
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(destination)], check=True)
    subprocess.run(["git", "checkout", "--quiet", head], cwd=destination, check=True)
    return destination


def git_status(checkout: Path) -> str:
    """What git sees changed or added in a checkout (ignored files are not shown)."""
    return subprocess.run(
        ["git", "status", "--porcelain"], cwd=checkout, capture_output=True, text=True, check=True
    ).stdout


def expected_statements(api_id: str | None, stage: str = "dev") -> list[dict[str, Any]]:
    """The exact policy `make deploy` must attach, for moto's account and region."""
    logs = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/chalice-chat-{stage}"
    fanout = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:chalice-chat-{stage}-fanout"
    statements: list[dict[str, Any]] = [
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
            "Resource": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/chalice-chat-{stage}",
        },
        {
            "Sid": "PostToChatConnections",
            "Effect": "Allow",
            "Action": "execute-api:ManageConnections",
            "Resource": [
                f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api_id}/api/{method}/@connections/*"
                for method in ("POST", "GET", "DELETE")
            ],
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
        {
            "Sid": "ChatFiles",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": f"arn:aws:s3:::chalice-chat-{stage}-files-{ACCOUNT}-{REGION}/files/*",
        },
    ]
    if api_id:
        return statements
    return [s for s in statements if s["Sid"] != "PostToChatConnections"]


# Chalice's plan and the stage settings ------------------------------------------------------


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
    shutil.copy(ROOT / "app.py", tmp_path / "app.py")
    copied = r"FANOUT_FUNCTION to 'chalice-chat-dev-fanout'.*is 'chalice-chat-qa-fanout'"
    with pytest.raises(DeployError, match=copied):
        load_stage("qa", tmp_path)


# Deploy and destroy against moto -----------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the app to deploy, so that `.chalice/deployed` never lands in the checkout."""
    for name in ("app.py", "requirements.txt"):
        shutil.copy2(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "chalicelib", tmp_path / "chalicelib")
    (tmp_path / ".chalice").mkdir()
    for name in ("config.json", "resources.json", "policy-dev.json", "policy-prod.json"):
        shutil.copy2(ROOT / ".chalice" / name, tmp_path / ".chalice" / name)
    return tmp_path


def _update_stage(self: ApiGatewayV2Response) -> tuple[int, dict[str, str], str]:
    """API Gateway v2's UpdateStage, which moto 5.1 lacks: DefaultRouteSettings only."""
    _, _, _, api_id, _, stage_name = self.path.split("/")  # /v2/apis/{apiId}/stages/{stageName}
    stage = self.apigatewayv2_backend.get_stage(api_id, unquote(stage_name))
    stage.default_route_settings.update(json.loads(self.body).get("defaultRouteSettings", {}))
    return 200, {}, json.dumps(stage.to_json())


@pytest.fixture
def moto_update_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ApiGatewayV2Response, "update_stage", _update_stage, raising=False)


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch, moto_update_stage: None) -> Iterator[str]:
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
    # dev is AUTH=optional (the chat's default): guests chat, and the pool signs people in.
    (pool,) = session.client("cognito-idp").list_user_pools(MaxResults=10)["UserPools"]
    assert pool["Name"] == "chalice-chat-dev-ChatUserPool"
    sign_in = f"&cognito=https://cognito-idp.{REGION}.amazonaws.com/&client="
    assert [link.split(sign_in)[0] for link in result.page_links] == [
        f"http://127.0.0.1:8000/?ws={url}"
    ]
    assert all(sign_in in link for link in result.page_links)
    assert any(url in line for line in printed)
    assert any(f"?ws={url}" in line for line in printed)

    stage = session.client("apigatewayv2").get_stage(ApiId=api_id, StageName="api")
    assert {key: stage["DefaultRouteSettings"].get(key) for key in THROTTLING} == THROTTLING
    assert any("throttled to 50 requests a second, bursts of 100" in line for line in printed)

    iam = session.client("iam")
    lambda_ = session.client("lambda")
    logs = session.client("logs")
    rendered = role_policy(iam, "chalice-chat-dev-websocket_message")
    assert rendered["Statement"] == expected_statements(api_id)
    committed = (ROOT / ".chalice" / "policy-dev.json").read_text()
    assert (project / ".chalice" / "policy-dev.json").read_text() == committed  # put back
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


def test_a_signed_in_stage_gets_its_user_pool_and_the_functions_its_ids(
    project: Path, moto_server: str
) -> None:
    chalice = Recorder(guarded_chalice(stub_api_deployment=True))
    printed: list[str] = []
    result = deploy.deploy("prod", project=project, chalice=chalice, say=printed.append)

    session = boto3.session.Session()
    idp = session.client("cognito-idp")
    (pool,) = idp.list_user_pools(MaxResults=10)["UserPools"]
    assert pool["Name"] == "chalice-chat-prod-ChatUserPool"
    (client,) = idp.list_user_pool_clients(UserPoolId=pool["Id"])["UserPoolClients"]
    details = idp.describe_user_pool_client(UserPoolId=pool["Id"], ClientId=client["ClientId"])
    flows = details["UserPoolClient"]["ExplicitAuthFlows"]
    assert sorted(flows) == ["ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_USER_PASSWORD_AUTH"]
    groups = idp.list_groups(UserPoolId=pool["Id"])["Groups"]
    assert [group["GroupName"] for group in groups] == ["admins"]  # ChatAdmins: moderate all
    variables = session.client("lambda").get_function_configuration(
        FunctionName="chalice-chat-prod-websocket_connect"
    )["Environment"]["Variables"]
    assert variables["AUTH"] == "cognito"
    assert variables["COGNITO_USER_POOL_ID"] == pool["Id"]
    assert variables["COGNITO_CLIENT_ID"] == client["ClientId"]
    committed = (ROOT / ".chalice" / "config.json").read_text()
    assert (project / ".chalice" / "config.json").read_text() == committed  # put back
    cognito = f"https://cognito-idp.{REGION}.amazonaws.com/"
    assert all(
        f"&cognito={cognito}&client={client['ClientId']}" in link for link in result.page_links
    )
    # Deploying again finds them: still one pool, one client.
    deploy.deploy("prod", project=project, chalice=chalice, say=printed.append)
    assert len(idp.list_user_pools(MaxResults=10)["UserPools"]) == 1


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
    committed = (ROOT / ".chalice" / "policy-dev.json").read_text()
    assert (project / ".chalice" / "policy-dev.json").read_text() == committed  # never deleted
    dynamodb = session.client("dynamodb")
    assert dynamodb.list_tables()["TableNames"] == ["chalice-chat-dev"]
    assert any("DELETE_TABLE=yes" in line for line in printed)

    chalice.calls.clear()
    deploy.destroy("dev", delete_table=True, project=project, chalice=chalice, say=quiet)
    assert chalice.calls == []  # nothing recorded any more: a second destroy is harmless
    assert dynamodb.list_tables()["TableNames"] == []


def test_an_api_recreated_with_a_new_id_gets_the_policy_rescoped(
    project: Path, moto_update_stage: None
) -> None:
    """deployed/dev.json names API `old`, but `chalice deploy` makes a new one (deleted by hand)."""
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
        if not created:
            apis = boto3.client("apigatewayv2")
            api = apis.create_api(Name="chalice-chat", ProtocolType="WEBSOCKET")
            apis.create_stage(ApiId=api["ApiId"], StageName="api")
            created.append(api["ApiId"])
        record(created[0])

    created: list[str] = []
    record("old")
    with mock_aws():
        result = deploy.deploy("dev", project=project, chalice=fake_chalice, say=[].append)

    (new,) = created
    assert [p["Statement"] for p in policies] == [
        expected_statements("old"),
        expected_statements(new),
    ]
    assert result.websocket_url == f"wss://{new}.execute-api.{REGION}.amazonaws.com/api"


def test_bare_chalice_deploy_works_in_a_fresh_clone_once_the_table_exists(
    tmp_path: Path, moto_server: str
) -> None:
    """The Chalice way, as the README gives it: create-table, `chalice deploy`, throttle.

    No `make deploy` runs first: the roles get the committed policy file as it
    is, and the clone is left as git checked it out.
    """
    clone = fresh_clone(tmp_path / "clone")
    table = run_guarded(clone, _DEPLOYTOOLS_MAIN, ["create-table", "--stage", "dev"])
    assert table.returncode == 0, table.stderr
    assert "Table chalice-chat-dev: created, active, TTL on" in table.stdout

    guarded_chalice(stub_api_deployment=True)(clone, ["deploy", "--stage", "dev"])

    session = boto3.session.Session()
    committed = json.loads((clone / ".chalice" / "policy-dev.json").read_text())
    assert committed == policyfiles.committed_policy(load_stage("dev"))
    iam = session.client("iam")
    lambda_ = session.client("lambda")
    for handler in HANDLERS:
        name = f"chalice-chat-dev-{handler}"
        assert role_policy(iam, name) == committed
        variables = lambda_.get_function_configuration(FunctionName=name)["Environment"]
        assert variables["Variables"]["TABLE_NAME"] == "chalice-chat-dev"
    assert len(lambda_.list_functions()["Functions"]) == len(HANDLERS)
    dynamodb = session.client("dynamodb")
    assert dynamodb.describe_time_to_live(TableName="chalice-chat-dev")[
        "TimeToLiveDescription"
    ] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}

    apis = session.client("apigatewayv2")
    (api,) = apis.get_apis()["Items"]
    settings = apis.get_stage(ApiId=api["ApiId"], StageName="api")["DefaultRouteSettings"]
    assert "ThrottlingRateLimit" not in settings  # chalice deploy sets none
    throttled = run_guarded(clone, _DEPLOYTOOLS_MAIN, ["throttle", "--stage", "dev"])
    assert throttled.returncode == 0, throttled.stderr
    settings = apis.get_stage(ApiId=api["ApiId"], StageName="api")["DefaultRouteSettings"]
    assert {key: settings.get(key) for key in THROTTLING} == THROTTLING

    assert git_status(clone) == ""  # .chalice/deployed and deployments are ignored


def test_the_readme_gives_the_commands_these_tests_run() -> None:
    readme = (ROOT / "README.md").read_text()
    for command in (
        "python -m deploytools create-table --stage dev",
        "chalice deploy --stage dev",
        "python -m deploytools throttle --stage dev",
        "chalice package --stage prod --merge-template .chalice/resources.json out/",
        "aws cloudformation package --template-file",
        "aws cloudformation deploy --template-file",
    ):
        assert command in readme, command


def test_create_table_alone_is_idempotent_and_needs_a_region(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    printed: list[str] = []
    with mock_aws():
        deploy.create_table("prod", say=printed.append)
        deploy.create_table("prod", say=printed.append)
        assert boto3.client("dynamodb").list_tables()["TableNames"] == ["chalice-chat-prod"]
    assert printed == [
        "Table chalice-chat-prod: created, active, TTL on",
        "Table chalice-chat-prod: already there, active, TTL on",
    ]
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION")
    with mock_aws(), pytest.raises(DeployError, match="no AWS region"):
        deploy.create_table("prod", say=printed.append)


def test_throttle_alone_needs_a_deployed_api(project: Path) -> None:
    with pytest.raises(DeployError, match=r"no websocket API recorded.*deploy first"):
        deploy.throttle("dev", project=project)


def test_the_committed_policy_file_comes_back_when_chalice_deploy_fails(project: Path) -> None:
    committed = (project / ".chalice" / "policy-dev.json").read_bytes()
    read: list[dict[str, Any]] = []

    def failing(project: Path, args: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        read.append(json.loads((project / ".chalice" / "policy-dev.json").read_text()))
        raise DeployError("chalice deploy --stage dev failed (exit status 2)")

    with mock_aws(), pytest.raises(DeployError, match="exit status 2"):
        deploy.deploy("dev", project=project, chalice=failing, say=[].append)
    assert [policy["Statement"] for policy in read] == [expected_statements(None)]
    assert (project / ".chalice" / "policy-dev.json").read_bytes() == committed


def test_throttling_must_be_set_in_the_merge_template() -> None:
    template = json.loads((ROOT / ".chalice" / "resources.json").read_text())
    assert route_throttling(template) == THROTTLING
    del template["Resources"]["WebsocketAPIStage"]["Properties"]["DefaultRouteSettings"][
        "ThrottlingBurstLimit"
    ]
    with pytest.raises(DeployError, match="no ThrottlingBurstLimit in WebsocketAPIStage"):
        route_throttling(template)


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
