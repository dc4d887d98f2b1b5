"""What deploy, destroy and package read from the project: stage settings, the table, state.

Names follow Chalice 1.34's own rules (functions `{app}-{stage}-{handler}`, the
resource names of `chalice package`), so that the policy rendered for
`chalice deploy` names exactly what Chalice creates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalice.utils import to_cfn_resource_name

from localgateway import project as chalice_project
from localgateway.aws import tables

ROOT = Path(__file__).resolve().parent.parent

# The function app.py declares with `@app.lambda_function(name=...)`: the message handler
# hands shares of big broadcasts to it (chalicelib/fanout.py, FANOUT_FUNCTION).
FANOUT = "fanout"

# Every Lambda function Chalice makes for app.py: on_ws_connect, on_ws_message,
# on_ws_disconnect and the fan-out function. Roles, log groups and the policy's
# values all follow from this one list (tests check it against Chalice's own view).
HANDLERS = ("websocket_connect", "websocket_message", "websocket_disconnect", FANOUT)

# The logical ids `chalice package` gives the websocket API and its stage.
WEBSOCKET_API = "WebsocketAPI"
WEBSOCKET_STAGE = "WebsocketAPIStage"

# The merge template's bucket for attachments (chalicelib/attachments.py).
FILES_BUCKET = "ChatFiles"

# The stage's default route throttling, as the merge template sets it on WEBSOCKET_STAGE.
THROTTLING = ("ThrottlingRateLimit", "ThrottlingBurstLimit")


# The chat's sign-in mode when a stage sets no AUTH (chalicelib/settings.py): "cognito" and
# "optional" stages get the merge template's user pool.
AUTH_DEFAULT = "optional"
SIGNED_IN_MODES = ("cognito", "optional")


class DeployError(Exception):
    """Something the person deploying has to fix; the message says what."""


@dataclass(frozen=True)
class Stage:
    project: Path
    name: str
    app_name: str
    api_gateway_stage: str
    table_name: str
    iam_policy_file: str
    auth: str = "optional"  # AUTH, as chalicelib/settings.py reads it
    template: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def chalice_dir(self) -> Path:
        return self.project / ".chalice"

    @property
    def policy_path(self) -> Path:
        return self.chalice_dir / self.iam_policy_file

    @property
    def deployed_path(self) -> Path:
        return self.chalice_dir / "deployed" / f"{self.name}.json"

    @property
    def merge_template_path(self) -> Path:
        return self.chalice_dir / "resources.json"

    @property
    def config_path(self) -> Path:
        return self.chalice_dir / "config.json"

    def function_name(self, handler: str) -> str:
        return f"{self.app_name}-{self.name}-{handler}"

    def function_arn(self, handler: str, *, partition: str, region: str, account: str) -> str:
        """The unqualified ARN, as CloudFormation's `Fn::GetAtt Function.Arn` gives it."""
        return f"arn:{partition}:lambda:{region}:{account}:function:{self.function_name(handler)}"

    def table_arn(self, *, partition: str, region: str, account: str) -> str:
        return f"arn:{partition}:dynamodb:{region}:{account}:table/{self.table_name}"

    def bucket_name(self, *, account: str, region: str) -> str:
        """`make deploy`'s bucket: bucket names are global, so the account and region are in it."""
        return f"{self.app_name}-{self.name}-files-{account}-{region}"

    def log_group(self, handler: str) -> str:
        return f"/aws/lambda/{self.function_name(handler)}"


@dataclass(frozen=True)
class WebsocketApi:
    api_id: str
    url: str


def load_stage(name: str, project: Path = ROOT) -> Stage:
    """The stage as `chalice deploy` sees it, read by the gateway's public project reader
    (localgateway.project), so that deploying and running locally layer settings alike."""
    try:
        source = chalice_project.load(project, name)
    except chalice_project.ProjectError as error:
        raise DeployError(str(error)) from None
    if name not in source.stages:
        raise DeployError(
            f"no stage {name!r} in .chalice/config.json (stages: {sorted(source.stages)})"
        )
    # As `chalice deploy` sets it: config.json's layers (the merge template is `package`'s).
    scoped = source.settings.config.scope(name, chalice_project.WEBSOCKET_CONNECT)
    environment = {key: str(value) for key, value in scoped.environment_variables.items()}
    if not environment.get("TABLE_NAME"):
        raise DeployError(f"stage {name!r} sets no TABLE_NAME in .chalice/config.json")
    stage = Stage(
        project=source.root,
        name=name,
        app_name=source.app_name,
        api_gateway_stage=source.api_stage,
        table_name=environment["TABLE_NAME"],
        iam_policy_file=source.settings.config.iam_policy_file or f"policy-{name}.json",
        auth=environment.get("AUTH", AUTH_DEFAULT).strip().lower() or AUTH_DEFAULT,
        template=source.settings.template,
    )
    # `chalice deploy` passes FANOUT_FUNCTION as written, and the policy lets the
    # functions invoke only this stage's fan-out function: any other name would be
    # refused at every big broadcast (the sender then posts everything itself).
    fanout = environment.get("FANOUT_FUNCTION", "").strip()
    if fanout and fanout != stage.function_name(FANOUT):
        raise DeployError(
            f"stage {name!r} sets FANOUT_FUNCTION to {fanout!r} in .chalice/config.json, "
            f"but its fan-out function is {stage.function_name(FANOUT)!r}"
        )
    return stage


def merge_template(stage: Stage) -> dict[str, Any]:
    return stage.template


def chat_table(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The logical id and properties of the template's one table."""
    definitions = tables.table_definitions(template)
    if len(definitions) != 1:
        raise DeployError(
            f"expected one DynamoDB table in resources.json, found {len(definitions)}"
        )
    ((logical_id, properties),) = definitions.items()
    return logical_id, properties


def deployed_resources(stage: Stage) -> list[dict[str, Any]]:
    """What `chalice deploy` recorded for the stage; empty when nothing is deployed."""
    if not stage.deployed_path.exists():
        return []
    return json.loads(stage.deployed_path.read_text(encoding="utf-8")).get("resources", [])


def deployed_websocket_api(stage: Stage) -> WebsocketApi | None:
    for resource in deployed_resources(stage):
        if resource.get("resource_type") == "websocket_api":
            return WebsocketApi(resource["websocket_api_id"], resource["websocket_api_url"])
    return None


def route_throttling(template: dict[str, Any]) -> dict[str, float | int]:
    """The stage's default route throttling (rate and burst) from the merge template.

    The packaged stack sets it through the template; `make deploy` sets the
    same values on the stage `chalice deploy` made.
    """
    stage = template.get("Resources", {}).get(WEBSOCKET_STAGE, {})
    settings = stage.get("Properties", {}).get("DefaultRouteSettings", {})
    missing = [name for name in THROTTLING if name not in settings]
    if missing:
        raise DeployError(
            f"resources.json sets no {', '.join(missing)} in {WEBSOCKET_STAGE}'s "
            "DefaultRouteSettings: the stage would be limited only by the account"
        )
    return {name: settings[name] for name in THROTTLING}


def policy_values(
    stage: Stage, *, partition: str, region: str, account: str, api_id: str | None
) -> dict[str, str]:
    """What each name in the policy stands for once `chalice deploy` has made it.

    Region, account and API id may be `policy.UNKNOWN` (the committed policy
    files, where the bucket's name then holds them as wildcards); without an API
    id the @connections statement is left out.
    """
    table_id, _ = chat_table(merge_template(stage))
    values = {
        "AWS::Partition": partition,
        "AWS::Region": region,
        "AWS::AccountId": account,
        f"{table_id}.Arn": stage.table_arn(partition=partition, region=region, account=account),
    }
    for handler in HANDLERS:
        values[f"{to_cfn_resource_name(handler)}.Arn"] = stage.function_arn(
            handler, partition=partition, region=region, account=account
        )
        values[to_cfn_resource_name(f"{handler}-log-group")] = stage.log_group(handler)
    if api_id is not None:
        values[WEBSOCKET_API] = api_id
    values[FILES_BUCKET] = stage.bucket_name(account=account, region=region)
    return values
