"""A Chalice project as the gateway runs it: stage, functions, their environments, tables.

Read with Chalice's own `Config` so that environment variables layer exactly
as `chalice deploy` layers them (global, then the stage, then the stage's
`lambda_functions.<name>`), and with the CloudFormation template that
`chalice package --merge-template` merges: its DynamoDB tables are created
locally, and an environment variable that `Ref`s one of them gets the table's
local name, and one that `Ref`s a function its deployed name.

The websocket functions and the REST handler are known from the settings
alone. Pure functions (`@app.lambda_function`) are known only once the app
has been imported, so the project keeps its `Settings` and a generation adds
them with `with_pure_functions` after its first worker has described the app.

Local table name: the table's `TableName` property when it is a plain string,
otherwise `{app_name}-{stage}-{LogicalId}` (CloudFormation would generate a
name; a stable one keeps an existing `--dynamodb-endpoint` table across runs).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from chalice.config import Config
from chalice.constants import (
    DEFAULT_APIGATEWAY_STAGE_NAME,
    DEFAULT_LAMBDA_MEMORY_SIZE,
    DEFAULT_LAMBDA_TIMEOUT,
)
from chalice.utils import to_cfn_resource_name

from localgateway.apigateway import routing
from localgateway.aws import tables

CONFIG_FILE = Path(".chalice") / "config.json"
# Where a merge template is looked for: ours, then the Chalice tutorial's project root.
DEFAULT_MERGE_TEMPLATES = (Path(".chalice") / "resources.json", Path("resources.json"))
STATIC_DIR = "static"

# The Lambda functions `chalice deploy` makes for a websocket app and a REST API,
# by the names their settings have in config.json's `lambda_functions`.
WEBSOCKET_CONNECT = "websocket_connect"
WEBSOCKET_MESSAGE = "websocket_message"
WEBSOCKET_DISCONNECT = "websocket_disconnect"
API_HANDLER = "api_handler"
FUNCTION_NAMES = (WEBSOCKET_CONNECT, WEBSOCKET_MESSAGE, WEBSOCKET_DISCONNECT, API_HANDLER)


class ProjectError(Exception):
    """The project cannot run: the message says what is wrong and where."""


@dataclass(frozen=True)
class Table:
    logical_id: str
    name: str
    properties: dict[str, Any]


@dataclass(frozen=True)
class Function:
    name: str
    lambda_name: str
    environment: dict[str, str]
    timeout_s: int
    memory_mb: int


@dataclass(frozen=True)
class Settings:
    """How `chalice deploy` sets up a function of this app, whatever its name."""

    app_name: str
    stage: str
    config: Config
    template: dict[str, Any]
    table_names: dict[str, str]
    # Other resources of the template made locally (Cognito's), by logical id.
    resource_ids: dict[str, str] = field(default_factory=dict)

    def lambda_name(self, name: str) -> str:
        """The deployed name: `{app_name}-{stage}-{name}`, the REST handler's without `-{name}`."""
        prefix = f"{self.app_name}-{self.stage}"
        return prefix if name == API_HANDLER else f"{prefix}-{name}"

    def functions(
        self, names: Iterable[str], pure: Collection[str], warnings: list[str]
    ) -> dict[str, Function]:
        """The functions called `names` in config.json's `lambda_functions`.

        A merge template `Ref` to a function (`{"Ref": "Fanout"}`) becomes its
        deployed name, as CloudFormation's Ref does; `pure` says which pure
        functions the app has, when that is known.
        """
        refs = {**self.table_names, **self.resource_ids}
        refs.update({logical_id(name): self.lambda_name(name) for name in (*FUNCTION_NAMES, *pure)})
        functions = {}
        for name in names:
            scoped = self.config.scope(self.stage, name)
            environment = {key: str(value) for key, value in scoped.environment_variables.items()}
            environment.update(_template_variables(self.template, name, refs, warnings))
            functions[name] = Function(
                name=name,
                lambda_name=self.lambda_name(name),
                environment=environment,
                timeout_s=scoped.lambda_timeout or DEFAULT_LAMBDA_TIMEOUT,
                memory_mb=scoped.lambda_memory_size or DEFAULT_LAMBDA_MEMORY_SIZE,
            )
        return functions


@dataclass(frozen=True)
class Project:
    root: Path
    app_name: str
    stage: str
    api_stage: str
    functions: dict[str, Function]
    settings: Settings
    tables: tuple[Table, ...] = ()
    merge_template: Path | None = None
    warnings: tuple[str, ...] = ()
    # Every stage config.json declares (a stage not among them runs on the global settings).
    stages: tuple[str, ...] = ()
    # The app's `@app.lambda_function`s by name, once a worker has imported it.
    pure_functions: dict[str, Function] = field(default_factory=dict)

    def with_pure_functions(self, names: Iterable[str]) -> Project:
        """This project set up again knowing the app's pure functions.

        Every function is set up again, not only the pure ones: a merge
        template `Ref` to a pure function resolves only now.
        """
        warnings: list[str] = []
        pure = []
        for name in names:
            if name in FUNCTION_NAMES:
                warnings.append(
                    f"@app.lambda_function(name={name!r}) has the name of a function that "
                    "Chalice makes itself; it cannot be invoked"
                )
            else:
                pure.append(name)
        functions = self.settings.functions(FUNCTION_NAMES, pure, warnings)
        return replace(
            self,
            functions=functions,
            pure_functions=self.settings.functions(pure, pure, warnings),
            warnings=tuple(warnings),
        )

    def with_resources(self, ids: dict[str, str]) -> Project:
        """This project with `Ref`s to other resources of its template (ids by logical id)
        resolved: every function is set up again."""
        settings = replace(self.settings, resource_ids=dict(ids))
        again = replace(self, settings=settings)
        warnings: list[str] = []
        functions = settings.functions(FUNCTION_NAMES, list(self.pure_functions), warnings)
        pure = settings.functions(list(self.pure_functions), list(self.pure_functions), warnings)
        return replace(again, functions=functions, pure_functions=pure, warnings=tuple(warnings))

    def function_for_route(self, route_key: str) -> Function:
        """The function that serves a websocket route, as Chalice deploys them."""
        name = {routing.CONNECT: WEBSOCKET_CONNECT, routing.DISCONNECT: WEBSOCKET_DISCONNECT}
        return self.functions[name.get(route_key, WEBSOCKET_MESSAGE)]

    @property
    def static_dir(self) -> Path:
        return self.root / STATIC_DIR

    def table_variables(self, in_use: Collection[str]) -> list[tuple[str, str, str]]:
        """(function, variable, value) for every variable of the functions `in_use`
        whose name says it holds a table name (TABLE_NAME, USERS_TABLE, ...)."""
        return [
            (name, key, value)
            for name, function in {**self.functions, **self.pure_functions}.items()
            if name in in_use
            for key, value in sorted(function.environment.items())
            if "TABLE" in key.upper()
        ]

    def watched_files(self) -> list[Path]:
        """Files whose change means new code or settings: a reload."""
        files = [self.root / "app.py", self.root / CONFIG_FILE]
        if self.merge_template is not None:
            files.append(self.merge_template)
        return files


def logical_id(function_name: str) -> str:
    """The CloudFormation logical id `chalice package` gives a function."""
    return "APIHandler" if function_name == API_HANDLER else to_cfn_resource_name(function_name)


def load(root: str | Path, stage: str = "dev", merge_template: str | Path | None = None) -> Project:
    """Read a project; ProjectError when it is missing or broken."""
    root = Path(root).resolve()
    if not (root / "app.py").is_file():
        raise ProjectError(
            f"no app.py in {root}: not a Chalice project (run in one, or pass --project-dir)"
        )
    config_from_disk = _read_config(root / CONFIG_FILE)
    app_name = config_from_disk.get("app_name")
    if not isinstance(app_name, str) or not app_name:
        raise ProjectError(f"{root / CONFIG_FILE}: app_name is missing")
    template_path = _template_path(root, merge_template)
    template = _read_template(template_path) if template_path else {}
    table_list = tuple(
        Table(logical, _table_name(properties, logical, app_name, stage), properties)
        for logical, properties in tables.table_definitions(template).items()
    )
    table_names = {table.logical_id: table.name for table in table_list}
    config = Config(
        chalice_stage=stage,
        config_from_disk=config_from_disk,
        default_params={
            "project_dir": str(root),
            "api_gateway_stage": DEFAULT_APIGATEWAY_STAGE_NAME,
        },
    )
    settings = Settings(app_name, stage, config, template, table_names)
    warnings: list[str] = []
    functions = settings.functions(FUNCTION_NAMES, (), warnings)
    return Project(
        root=root,
        app_name=app_name,
        stage=stage,
        api_stage=config.api_gateway_stage,
        functions=functions,
        settings=settings,
        tables=table_list,
        merge_template=template_path,
        warnings=tuple(warnings),
        stages=tuple(config_from_disk.get("stages") or ()),
    )


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProjectError(f"{path} is missing: not a Chalice project") from None
    except ValueError as error:
        raise ProjectError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(config, dict):
        raise ProjectError(f"{path} must hold a JSON object")
    return config


def _template_path(root: Path, merge_template: str | Path | None) -> Path | None:
    if merge_template is None:
        found = [root / path for path in DEFAULT_MERGE_TEMPLATES if (root / path).is_file()]
        return found[0] if found else None
    path = Path(merge_template)
    path = path if path.is_absolute() else root / path
    if not path.is_file():
        raise ProjectError(f"merge template {path} does not exist")
    return path.resolve()


def _read_template(path: Path) -> dict[str, Any]:
    """JSON or YAML, as `chalice package --merge-template` accepts them."""
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            from chalice.package import YAMLTemplateSerializer

            template = YAMLTemplateSerializer().load_template(path.read_text(encoding="utf-8"))
        else:
            template = tables.load_template(path)
    except (OSError, ValueError, RuntimeError) as error:
        raise ProjectError(f"merge template {path}: {error}") from None
    if not isinstance(template, dict):
        raise ProjectError(f"merge template {path} must hold an object")
    return template


def _table_name(properties: dict[str, Any], logical: str, app_name: str, stage: str) -> str:
    name = properties.get("TableName")
    return name if isinstance(name, str) and name else f"{app_name}-{stage}-{logical}"


def _template_variables(
    template: dict[str, Any], function: str, refs: dict[str, str], warnings: list[str]
) -> dict[str, str]:
    """The environment variables the merge template sets on a function's resource;
    `refs` holds what a `Ref` to a table or a function stands for."""
    resource = (template.get("Resources") or {}).get(logical_id(function)) or {}
    variables = ((resource.get("Properties") or {}).get("Environment") or {}).get("Variables")
    result: dict[str, str] = {}
    for key, value in (variables or {}).items():
        if isinstance(value, str | int | float | bool):
            result[key] = str(value)
        elif isinstance(value, dict) and value.get("Ref") in refs:
            result[key] = refs[value["Ref"]]
        else:
            warnings.append(
                f"{logical_id(function)}: {key} = {json.dumps(value)} is neither a value nor a "
                "Ref to a table, a Cognito pool or client, a bucket, or a function of the app; "
                "config.json's value stays"
            )
    return result
