"""`make deploy` and `make destroy`: the table, `chalice deploy`/`delete`, throttling.

`chalice deploy` creates roles, functions, log groups and the websocket API but
no table, and with `autogen_policy: false` it attaches the stage's policy file
as it is, to every function's role (the fan-out function's too). So deploy
creates the table from the merge template first (`create-table` does only that,
for a bare `chalice deploy`), then runs `chalice deploy` with the committed
policy file narrowed to this partition, account, region and API, and puts the
committed file back. The API id exists only after the first deploy: that
deploy goes out without the @connections statement, and a second one (seconds
later, before anybody has the URL) adds it scoped to the new API. Later deploys
run once. Last, the stage gets the merge template's default route throttling,
which `chalice deploy` knows nothing about.

The stage's bucket for attachments is made as the merge template describes it
(`ChatFiles`), named for the stage, account and region (bucket names are
global), and its name reaches the functions as BUCKET_NAME the same way as
the Cognito ids below.

A stage that signs users in (AUTH=cognito, or optional, the default) also
gets the merge template's user pool and app client (made if missing, by name,
with the code the local gateway uses), and
their ids reach the functions as COGNITO_USER_POOL_ID and COGNITO_CLIENT_ID:
written into the stage's environment in config.json while `chalice deploy`
reads it, and the committed file put back afterwards. The printed page links
carry the Cognito endpoint and the client id, for the page's sign-in form.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import boto3
from botocore.exceptions import NoCredentialsError

from deploytools import policy
from deploytools.project import (
    FILES_BUCKET,
    HANDLERS,
    ROOT,
    SIGNED_IN_MODES,
    WEBSOCKET_API,
    DeployError,
    Stage,
    WebsocketApi,
    chat_table,
    deployed_resources,
    deployed_websocket_api,
    load_stage,
    merge_template,
    policy_values,
    route_throttling,
)
from deploytools.runner import ChaliceRunner, run_chalice
from localgateway.aws import buckets, cognito, tables

# The merge template's user pool and app client, for stages that sign users in.
USER_POOL = "ChatUserPool"
USER_POOL_CLIENT = "ChatUserPoolClient"

# Where `make run` serves the chat page (the local gateway).
LOCAL_PAGE = "http://127.0.0.1:8000/"

Say = Callable[[str], None]


@dataclass(frozen=True)
class Account:
    partition: str
    region: str
    account_id: str


@dataclass(frozen=True)
class Deployment:
    websocket_url: str
    page_links: tuple[str, ...]


def aws_account(session: boto3.session.Session) -> Account:
    """Who and where we deploy; checked first so that a missing setting fails before any change."""
    if not session.region_name:
        raise DeployError(
            "no AWS region: export AWS_REGION=eu-west-1 (say), or use a profile that sets one"
        )
    try:
        arn = session.client("sts").get_caller_identity()["Arn"]
    except NoCredentialsError:
        raise DeployError(
            "no AWS credentials: run `aws configure` or `aws sso login`, or export AWS_PROFILE"
        ) from None
    _, partition, _, _, account_id, _ = arn.split(":", 5)
    return Account(partition, session.region_name, account_id)


def page_links(websocket_url: str, sign_in: dict[str, str] | None = None) -> tuple[str, ...]:
    """The chat page pointed at the deployed API, as `make page` (or `make run`) serves it:
    a page of ES modules does not run from a file://. With `sign_in` (its `cognito`
    endpoint and `client` id), the page offers sign-in."""
    query = "?" + urlencode({"ws": websocket_url.rstrip("/"), **(sign_in or {})}, safe=":/")
    return (LOCAL_PAGE + query,)


@contextmanager
def stage_variables(stage: Stage, variables: dict[str, str]) -> Iterator[None]:
    """The stage's environment in config.json with `variables` added while `chalice deploy`
    reads it; the committed file comes back afterwards, even on failure."""
    committed = stage.config_path.read_bytes()
    if variables:
        config = json.loads(committed)
        config["stages"][stage.name].setdefault("environment_variables", {}).update(variables)
        stage.config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    try:
        yield
    finally:
        stage.config_path.write_bytes(committed)


@contextmanager
def narrowed_policy(stage: Stage, values: dict[str, str]) -> Iterator[None]:
    """The stage's policy file resolved with `values` while `chalice deploy` reads it.

    Without an API id the @connections statement is left out. The committed
    file comes back afterwards, even on failure, so the checkout stays clean.
    """
    document = policy.policy_document(merge_template(stage))
    rendered = policy.render(document, values, defer=frozenset({WEBSOCKET_API}))
    committed = stage.policy_path.read_bytes() if stage.policy_path.exists() else None
    stage.policy_path.write_text(json.dumps(rendered, indent=2) + "\n", encoding="utf-8")
    try:
        yield
    finally:
        if committed is None:
            stage.policy_path.unlink()
        else:
            stage.policy_path.write_bytes(committed)


def create_table(
    stage_name: str,
    *,
    project: Path = ROOT,
    session: boto3.session.Session | None = None,
    say: Say = print,
) -> None:
    """The stage's table from the merge template's definition: on-demand, TTL on; idempotent.

    The first step of `make deploy`, and on its own the one step a bare
    `chalice deploy` needs before it (Chalice makes no tables).
    """
    stage = load_stage(stage_name, project)
    session = session or boto3.session.Session()
    aws_account(session)
    _ensure_table(stage, session, say)


def throttle(
    stage_name: str,
    *,
    project: Path = ROOT,
    session: boto3.session.Session | None = None,
    say: Say = print,
) -> None:
    """The last step of `make deploy`, on its own for a stage a bare `chalice deploy` made."""
    stage = load_stage(stage_name, project)
    api = deployed_websocket_api(stage)
    if api is None:
        raise DeployError(f"no websocket API recorded in {stage.deployed_path}: deploy first")
    session = session or boto3.session.Session()
    aws_account(session)
    _set_throttling(stage, session, api, say)


def deploy(
    stage_name: str,
    *,
    project: Path = ROOT,
    session: boto3.session.Session | None = None,
    chalice: ChaliceRunner = run_chalice,
    say: Say = print,
) -> Deployment:
    stage = load_stage(stage_name, project)
    session = session or boto3.session.Session()
    account = aws_account(session)
    say(f"Deploying stage {stage.name} to account {account.account_id} in {account.region}")
    _ensure_table(stage, session, say)
    bucket = _ensure_bucket(stage, session, account, say)
    identities = _ensure_identities(stage, session, say)
    variables = {"BUCKET_NAME": bucket}
    if identities:
        variables["COGNITO_USER_POOL_ID"] = identities.pools[USER_POOL]
        variables["COGNITO_CLIENT_ID"] = identities.clients[USER_POOL_CLIENT]

    api = deployed_websocket_api(stage)
    for _ in range(3):
        values = policy_values(
            stage,
            partition=account.partition,
            region=account.region,
            account=account.account_id,
            api_id=api.api_id if api else None,
        )
        with narrowed_policy(stage, values), stage_variables(stage, variables):
            chalice(stage.project, ["deploy", "--stage", stage.name])
        deployed = deployed_websocket_api(stage)
        if deployed is None:
            raise DeployError(f"chalice deploy recorded no websocket API in {stage.deployed_path}")
        if api is not None and deployed.api_id == api.api_id:
            break
        say(f"Websocket API {deployed.api_id} is new: deploying again to scope the policy to it")
        api = deployed
    else:
        raise DeployError("the websocket API id changed on every deploy; run make deploy again")

    _set_throttling(stage, session, deployed, say)
    sign_in = None
    if identities:
        endpoint = f"https://cognito-idp.{account.region}.amazonaws.com/"
        sign_in = {"cognito": endpoint, "client": variables["COGNITO_CLIENT_ID"]}
    return _report(stage, deployed, say, sign_in)


def _ensure_identities(
    stage: Stage, session: boto3.session.Session, say: Say
) -> cognito.Made | None:
    """For a stage that signs users in (AUTH cognito or optional), the merge template's
    user pool and app client."""
    if stage.auth not in SIGNED_IN_MODES:
        return None
    made = cognito.ensure(
        session.client("cognito-idp"), merge_template(stage), f"{stage.app_name}-{stage.name}"
    )
    say(
        f"User pool {made.pools[USER_POOL]}, app client {made.clients[USER_POOL_CLIENT]}: "
        "add users with `aws cognito-idp admin-create-user` (docs/signin.md)"
    )
    return made


def _ensure_table(stage: Stage, session: boto3.session.Session, say: Say) -> None:
    _, properties = chat_table(merge_template(stage))
    created = tables.ensure_table(session.client("dynamodb"), properties, stage.table_name)
    say(f"Table {stage.table_name}: {'created' if created else 'already there'}, active, TTL on")


def _ensure_bucket(stage: Stage, session: boto3.session.Session, account: Account, say: Say) -> str:
    """The stage's bucket for attachments, set up as the merge template says (private,
    encrypted, CORS for the page, expiring with the history); idempotent."""
    name = stage.bucket_name(account=account.account_id, region=account.region)
    properties = buckets.declared(merge_template(stage))[FILES_BUCKET]
    created = buckets.ensure_named(session.client("s3"), name, properties, account.region)
    say(f"Bucket {name}: {'created' if created else 'already there'}, private, CORS, lifecycle")
    return name


def _set_throttling(
    stage: Stage, session: boto3.session.Session, api: WebsocketApi, say: Say
) -> None:
    """Give the stage the merge template's default route throttling (UpdateStage)."""
    throttling = route_throttling(merge_template(stage))
    session.client("apigatewayv2").update_stage(
        ApiId=api.api_id, StageName=stage.api_gateway_stage, DefaultRouteSettings=throttling
    )
    say(
        f"Stage {stage.api_gateway_stage}: each route throttled to "
        f"{throttling['ThrottlingRateLimit']} requests a second, "
        f"bursts of {throttling['ThrottlingBurstLimit']}"
    )


def _report(
    stage: Stage, api: WebsocketApi, say: Say, sign_in: dict[str, str] | None = None
) -> Deployment:
    websocket_url = api.url.rstrip("/")
    links = page_links(websocket_url, sign_in)
    say("")
    say(f"Websocket URL: {websocket_url}")
    say(f"Chat page:     {links[0]}")
    say("  (while `make page` or `make run` serves static/ there)")
    say(f"From a terminal: wscat -c {websocket_url}")
    return Deployment(websocket_url, links)


def destroy(
    stage_name: str,
    *,
    delete_table: bool = False,
    project: Path = ROOT,
    session: boto3.session.Session | None = None,
    chalice: ChaliceRunner = run_chalice,
    say: Say = print,
) -> None:
    """Remove what deploy made. The table and the bucket go only when asked: they hold
    the history and its files (the bucket is emptied first: S3 deletes only empty ones).

    `chalice delete` keeps the functions' log groups (it only drops their
    retention, so they would be kept forever): they are deleted here.
    """
    stage = load_stage(stage_name, project)
    session = session or boto3.session.Session()
    account = aws_account(session)
    say(f"Destroying stage {stage.name} in account {account.account_id}, {account.region}")

    if deployed_resources(stage):
        chalice(stage.project, ["delete", "--stage", stage.name])
    else:
        say(f"Nothing recorded in {stage.deployed_path}: no Chalice resources to delete")

    logs = session.client("logs")
    for handler in HANDLERS:
        try:
            logs.delete_log_group(logGroupName=stage.log_group(handler))
            say(f"Deleted log group {stage.log_group(handler)}")
        except logs.exceptions.ResourceNotFoundException:
            pass

    dynamodb = session.client("dynamodb")
    bucket = stage.bucket_name(account=account.account_id, region=account.region)
    if not delete_table:
        say(
            f"Kept table {stage.table_name} and bucket {bucket} (chat history and its files). "
            f"`make destroy STAGE={stage.name} DELETE_TABLE=yes` deletes them too."
        )
        return
    if tables.delete_table(dynamodb, stage.table_name):
        say(f"Deleted table {stage.table_name}")
    else:
        say(f"No table {stage.table_name} to delete")
    removed = buckets.delete(session.client("s3"), bucket)
    if removed is None:
        say(f"No bucket {bucket} to delete")
    else:
        say(f"Emptied ({removed} objects) and deleted bucket {bucket}")
