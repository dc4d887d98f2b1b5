"""The functions' IAM policy: the committed files, `make deploy`'s narrowing, least privilege.

Each committed `.chalice/policy-STAGE.json` must be what resources.json
renders, and each of its statements must grant exactly what the code calls
(read from the code itself) on this stage's resources (read from config.json).
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from deploytools import policy, policyfiles
from deploytools.__main__ import main
from deploytools.project import HANDLERS, load_stage, merge_template, policy_values
from tests.conftest import ROOT
from tests.test_deploy import ACCOUNT, REGION, expected_statements

STAGES = ("dev", "prod")
CHALICELIB = ROOT / "chalicelib"
# The one module that calls DynamoDB (through its `self._client`): the store's table layer.
TABLE_MODULE = CHALICELIB / "store" / "table.py"
# The modules that may import botocore's exceptions: the table layer and outage.py turn
# them into the chat's own; budget.py defines its own; the edges of the other services
# pick out the answers that mean something (Cognito's refusal, S3's missing object) or
# handle their own failures (PostToConnection, the fan-out's Invoke).
BOTOCORE_ERRORS_MODULES = {
    "store/table.py",
    "outage.py",
    "budget.py",
    "auth.py",
    "attachments.py",
    "sending.py",
    "fanout.py",
}

# What the Lambda runtime itself needs to write the functions' logs (not a call of the code).
LOG_ACTIONS = ["logs:CreateLogStream", "logs:PutLogEvents"]

# Chalice's websocket client methods and the @connections HTTP method each one is.
CONNECTIONS_METHODS = {"send": "POST", "close": "DELETE", "info": "GET"}


def calls_on(path: Path, receiver: str) -> list[tuple[str, ast.Call]]:
    """Each method call on `receiver` (its source text, e.g. `self._client`): name and call."""
    tree = ast.parse(path.read_text())
    return [
        (node.func.attr, node)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and ast.unparse(node.func.value) == receiver
    ]


def dynamodb_actions() -> list[str]:
    """The IAM actions for the DynamoDB calls of the store (chalicelib/store/table.py)."""
    path = TABLE_MODULE
    operations: set[str] = set()
    for name, call in calls_on(path, "self._client"):
        if name == "get_paginator":
            name = ast.literal_eval(call.args[0])
        operations.add("".join(part.title() for part in name.split("_")))
    if "TransactWriteItems" in operations:
        # IAM authorises each item of a transaction by its own action.
        operations.remove("TransactWriteItems")
        kinds = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem"}
        kinds["ConditionCheck"] = "ConditionCheckItem"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Dict):
                for key in node.keys:
                    if isinstance(key, ast.Constant) and key.value in kinds:
                        operations.add(kinds[key.value])
    return sorted(f"dynamodb:{operation}" for operation in operations)


def chalicelib_modules() -> list[Path]:
    return sorted(CHALICELIB.rglob("*.py"))


def test_only_the_table_layer_calls_dynamodb() -> None:
    """A module that called DynamoDB besides store/table.py would escape the check below."""
    callers = [path for path in chalicelib_modules() if calls_on(path, "self._client")]
    assert callers == [TABLE_MODULE]
    assert dynamodb_actions() == [
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
    ]


def imports_botocore_errors(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "botocore.exceptions":
            return True
        if isinstance(node, ast.Import) and any(
            alias.name.startswith("botocore.exceptions") for alias in node.names
        ):
            return True
    return False


def test_no_module_above_the_store_handles_botocores_errors() -> None:
    """The store's aggregates, the commands and the wiring see `ConditionFailed` and
    `Unavailable`, never botocore's errors: those stop at the table layer (and at the
    edges of the other services)."""
    importers = {
        str(path.relative_to(CHALICELIB))
        for path in chalicelib_modules()
        if imports_botocore_errors(path)
    }
    assert importers == BOTOCORE_ERRORS_MODULES


def lambda_actions() -> list[str]:
    """The fan-out code calls one Lambda API: Invoke, which IAM authorises as InvokeFunction."""
    assert {name for name, _ in calls_on(CHALICELIB / "fanout.py", "self._client()")} == {"invoke"}
    return ["lambda:InvokeFunction"]


def connections_methods() -> set[str]:
    """The @connections methods of the sends in chalicelib/sending.py (Chalice's client)."""
    calls = calls_on(CHALICELIB / "sending.py", "self._api")
    return {CONNECTIONS_METHODS[name] for name, _ in calls if name in CONNECTIONS_METHODS}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def committed(stage: str) -> dict[str, Any]:
    return json.loads((ROOT / ".chalice" / f"policy-{stage}.json").read_text())


# The committed files ----------------------------------------------------------------------


def test_the_code_makes_clients_only_for_the_services_the_policy_covers() -> None:
    """A client for a new service (and its calls) needs statements: this fails until then."""
    services = set()
    for path in CHALICELIB.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "client"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                services.add(node.args[0].value)
    # @connections goes through Chalice's own client (app.websocket_api), checked below.
    # Cognito's GetUser is authorised by the access token it checks, not by IAM: it needs
    # no statement, and it is the only Cognito call the code makes.
    assert services == {"dynamodb", "lambda", "cognito-idp", "s3"}
    # S3: HeadObject and a ranged GetObject (both s3:GetObject), and the presigned POST
    # and GET that clients send with the functions' signature (s3:PutObject, s3:GetObject):
    # the ChatFiles statement, checked in test_deploy_files.
    s3_calls = {name for name, _ in calls_on(CHALICELIB / "attachments.py", "self._client()")}
    assert s3_calls == {
        "generate_presigned_post",
        "generate_presigned_url",
        "head_object",
        "get_object",
    }
    cognito_calls = {name for name, _ in calls_on(CHALICELIB / "auth.py", "self._client()")}
    assert cognito_calls == {"get_user"}
    assert connections_methods() == {"POST", "GET", "DELETE"}


@pytest.mark.parametrize("stage", STAGES)
def test_each_committed_statement_grants_what_the_code_calls_on_this_stages_resources(
    stage: str,
) -> None:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    variables = config["stages"][stage]["environment_variables"]
    api_stage = config["api_gateway_stage"]
    document = committed(stage)
    statements = {statement["Sid"]: statement for statement in document["Statement"]}
    assert list(statements) == [
        "ChatTableItems",
        "PostToChatConnections",
        "InvokeFanout",
        "OwnLogGroups",
        "ChatFiles",
    ]
    assert all(statement["Effect"] == "Allow" for statement in statements.values())

    table = statements["ChatTableItems"]
    assert sorted(as_list(table["Action"])) == dynamodb_actions()
    # The table alone: it has no indexes (test_deploy_package checks the template for that).
    assert table["Resource"] == f"arn:aws:dynamodb:*:*:table/{variables['TABLE_NAME']}"

    connections = statements["PostToChatConnections"]
    assert as_list(connections["Action"]) == ["execute-api:ManageConnections"]
    assert sorted(as_list(connections["Resource"])) == sorted(
        f"arn:aws:execute-api:*:*:*/{api_stage}/{method}/@connections/*"
        for method in connections_methods()
    )

    fanout = statements["InvokeFanout"]
    assert as_list(fanout["Action"]) == lambda_actions()
    assert fanout["Resource"] == f"arn:aws:lambda:*:*:function:{variables['FANOUT_FUNCTION']}"

    logs = statements["OwnLogGroups"]
    assert as_list(logs["Action"]) == LOG_ACTIONS
    assert logs["Resource"] == [
        f"arn:aws:logs:*:*:log-group:/aws/lambda/chalice-chat-{stage}-{handler}:*"
        for handler in HANDLERS
    ]
    files = statements["ChatFiles"]  # what attachments.py calls: see test_deploy_files
    assert files["Action"] == ["s3:GetObject", "s3:PutObject"]
    assert files["Resource"] == f"arn:aws:s3:::chalice-chat-{stage}-files-*-*/files/*"
    assert policy.problems(document) == []


def test_the_committed_files_differ_from_make_deploys_only_in_region_account_and_api_id() -> None:
    """The wildcards stand for nothing but what is unknown before the first deploy."""
    text = json.dumps(committed("dev")).replace(":*:*:", f":{REGION}:{ACCOUNT}:")
    text = text.replace(f":{ACCOUNT}:*/api/", f":{ACCOUNT}:a1b2c3d4e5/api/")
    text = text.replace("-files-*-*/", f"-files-{ACCOUNT}-{REGION}/")  # the bucket's name
    assert json.loads(text)["Statement"] == expected_statements("a1b2c3d4e5")


def test_the_committed_files_are_what_resources_json_renders(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert policyfiles.stage_names() == list(STAGES)
    assert policyfiles.stale() == []
    assert main(["policy-files", "--check"]) == 0
    for stage in STAGES:
        assert committed(stage) == policyfiles.committed_policy(load_stage(stage))
    assert capsys.readouterr().out == ""


def test_a_change_to_the_policy_in_resources_json_makes_the_committed_files_stale(
    tmp_path: Path,
) -> None:
    (tmp_path / ".chalice").mkdir()
    for name in ("config.json", "resources.json", "policy-dev.json", "policy-prod.json"):
        shutil.copy2(ROOT / ".chalice" / name, tmp_path / ".chalice" / name)
    shutil.copy2(ROOT / "app.py", tmp_path / "app.py")
    template = json.loads((tmp_path / ".chalice" / "resources.json").read_text())
    document = template["Resources"]["ChatFunctionsPolicy"]["Properties"]["PolicyDocument"]
    document["Statement"][0]["Action"].remove("dynamodb:DeleteItem")
    (tmp_path / ".chalice" / "resources.json").write_text(json.dumps(template))

    files = [tmp_path / ".chalice" / f"policy-{stage}.json" for stage in STAGES]
    assert policyfiles.stale(tmp_path) == files
    assert policyfiles.write(tmp_path) == files
    assert policyfiles.stale(tmp_path) == []
    assert "dynamodb:DeleteItem" not in (tmp_path / ".chalice" / "policy-dev.json").read_text()


# make deploy's narrowing --------------------------------------------------------------------


def render_for(api_id: str | None) -> dict[str, Any]:
    stage = load_stage("dev")
    values = policy_values(stage, partition="aws", region=REGION, account=ACCOUNT, api_id=api_id)
    document = policy.policy_document(merge_template(stage))
    return policy.render(document, values, defer=frozenset({"WebsocketAPI"}))


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


def test_the_policy_stage_is_the_api_gateway_stage_of_the_config() -> None:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    assert all(load_stage(name).api_gateway_stage == "api" for name in config["stages"])
    assert config["api_gateway_stage"] == "api"  # the literal in ChatFunctionsPolicy


# Least privilege --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("dynamodb:*", "arn:aws:dynamodb:us-east-1:1:table/t"),
        ("dynamodb:Get*", "arn:aws:dynamodb:us-east-1:1:table/t"),
        ("dynamodb:GetIte?", "arn:aws:dynamodb:us-east-1:1:table/t"),
        ("*", "arn:aws:dynamodb:us-east-1:1:table/t"),
        ("dynamodb:GetItem", "arn:aws:dynamodb:us-east-1:1:table/*"),
        ("dynamodb:GetItem", "arn:aws:dynamodb:*:*:table/chat-?"),
        ("dynamodb:GetItem", "arn:aws:dynamodb:*:*:table/t/index/*"),
        ("dynamodb:GetItem", "arn:aws:dynamodb:eu-*:1:table/t"),
        ("dynamodb:GetItem", "arn:aws:dynamodb:*:12*:table/t"),
        ("dynamodb:GetItem", "arn:*:dynamodb:*:*:table/t"),
        ("dynamodb:GetItem", "arn:aws:*:*:*:table/t"),
        ("dynamodb:GetItem", "*"),
        ("dynamodb:GetItem", "arn:aws:lambda:*:*:function:f"),
        ("execute-api:ManageConnections", "arn:aws:execute-api:*:*:*/api/*/@connections/*"),
        ("execute-api:ManageConnections", "arn:aws:execute-api:*:*:*/*/POST/@connections/*"),
        ("execute-api:ManageConnections", "arn:aws:execute-api:*:*:ab*/api/POST/@connections/*"),
        ("execute-api:ManageConnections", "arn:aws:execute-api:*:*:*"),
        ("logs:PutLogEvents", "arn:aws:logs:*:*:*"),
        ("logs:PutLogEvents", "arn:aws:logs:*:*:log-group:/aws/lambda/*:*"),
        ("lambda:*", "arn:aws:lambda:us-east-1:1:function:chalice-chat-dev-fanout"),
        ("lambda:InvokeFunction", "arn:aws:lambda:us-east-1:1:function:*"),
        ("lambda:InvokeFunction", "arn:aws:lambda:us-east-1:1:function:chalice-chat-dev-*"),
        ("lambda:InvokeFunction", "arn:aws:lambda:us-east-1:1:function:chalice-chat-dev-fanout:*"),
        ("lambda:InvokeFunction", "arn:aws:lambda:*:*:function:*"),
    ],
)
def test_wildcards_are_refused(action: str, resource: str) -> None:
    document = {"Statement": [{"Sid": "S", "Action": [action], "Resource": resource}]}
    assert policy.problems(document)
    with pytest.raises(policy.PolicyError, match="broader than least privilege"):
        policy.ensure_least_privilege(document)


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("dynamodb:GetItem", "arn:aws:dynamodb:*:*:table/chalice-chat-dev"),
        ("dynamodb:GetItem", "arn:aws:dynamodb:us-east-1:1:table/chalice-chat-dev"),
        ("execute-api:ManageConnections", "arn:aws:execute-api:*:*:*/api/POST/@connections/*"),
        (
            "execute-api:ManageConnections",
            "arn:aws:execute-api:eu-west-1:1:ab1/api/POST/@connections/*",
        ),
        ("lambda:InvokeFunction", "arn:aws:lambda:*:*:function:chalice-chat-dev-fanout"),
        ("logs:PutLogEvents", "arn:aws:logs:*:*:log-group:/aws/lambda/chalice-chat-dev-fanout:*"),
    ],
)
def test_wildcards_for_region_account_and_api_id_are_allowed(action: str, resource: str) -> None:
    document = {"Statement": [{"Sid": "S", "Action": [action], "Resource": resource}]}
    assert policy.problems(document) == []
