"""The functions' IAM policy: written once in CloudFormation, rendered for `chalice deploy`.

`ChatFunctionsPolicy` in `.chalice/resources.json` refers to the table, the
websocket API, the fan-out function and the log groups of the same stack, so
the `make package` template grants exactly those. `chalice deploy` reads a
plain policy file and resolves nothing, so the same references are resolved
here: with wildcards for what is unknown before the first deploy (region,
account, API id) for the committed `.chalice/policy-STAGE.json`, and with the
deployed values by `make deploy`. Every path grants the same statements.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

POLICY_ID = "ChatFunctionsPolicy"

# A name that cannot be known before the first deploy: a region, an account, an API id.
UNKNOWN = "*"

# Resources that end in an open set, by service: connection ids, log streams, the objects
# under a bucket's prefix.
_OPEN_ENDS = {"execute-api": "/*", "logs": ":*", "s3": "/*"}

# `${Name}` and `${Resource.Attribute}` in Fn::Sub; `${!Name}` is a literal `${Name}`.
_SUB_VARIABLE = re.compile(r"\$\{([^!}][^}]*)\}")


class PolicyError(ValueError):
    """The policy cannot be rendered, or it grants more than least privilege allows."""


def policy_document(template: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return template["Resources"][POLICY_ID]["Properties"]["PolicyDocument"]
    except KeyError:
        raise PolicyError(f"the merge template declares no {POLICY_ID} policy") from None


def references(value: Any) -> Iterator[str]:
    """Every name a CloudFormation value refers to: `Ref`, `Fn::GetAtt` and `Fn::Sub`."""
    if isinstance(value, list):
        for item in value:
            yield from references(item)
    elif isinstance(value, dict):
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                yield argument
                return
            if key == "Fn::GetAtt":
                yield _getatt_name(argument)
                return
            if key == "Fn::Sub":
                yield from _SUB_VARIABLE.findall(_sub_text(argument))
                return
            if key.startswith("Fn::"):
                raise PolicyError(f"{key} is not supported in {POLICY_ID}")
        for item in value.values():
            yield from references(item)


def resolve(value: Any, values: Mapping[str, str]) -> Any:
    """`value` with every reference replaced by its entry in `values`."""
    if isinstance(value, list):
        return [resolve(item, values) for item in value]
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return _lookup(values, argument)
            if key == "Fn::GetAtt":
                return _lookup(values, _getatt_name(argument))
            if key == "Fn::Sub":
                text = _SUB_VARIABLE.sub(
                    lambda match: _lookup(values, match.group(1)), _sub_text(argument)
                )
                return text.replace("${!", "${")
        return {key: resolve(item, values) for key, item in value.items()}
    return value


def render(
    document: Mapping[str, Any], values: Mapping[str, str], defer: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The policy with concrete ARNs, checked for least privilege.

    A statement that refers to a name in `defer` that has no value yet is left
    out (the websocket API before the first deploy); any other missing name is
    an error, so that a typo never drops a statement silently.
    """
    statements = []
    for statement in document["Statement"]:
        missing = {name for name in references(statement) if name not in values}
        if missing - defer:
            raise PolicyError(f"no value for {', '.join(sorted(missing - defer))}")
        if not missing:
            statements.append(resolve(statement, values))
    rendered = {**document, "Statement": statements}
    ensure_least_privilege(rendered)
    return rendered


def problems(document: Mapping[str, Any]) -> list[str]:
    """What makes a rendered policy broader than least privilege (empty when nothing does).

    No wildcard in any action, and every resource is an ARN of its actions'
    service that names one thing. A wildcard may stand only for a whole
    region, a whole account or a whole API id (unknown before the first
    deploy, also as parts of a bucket's name), or end an @connections,
    log-group or S3 ARN (connection ids, log streams, the objects under a key
    prefix): a table, a function, a stage, a log group and a bucket's key prefix
    are always named.
    """
    found = []
    for statement in document["Statement"]:
        sid = statement.get("Sid", "?")
        actions = _as_list(statement.get("Action"))
        services = {action.split(":", 1)[0] for action in actions}
        for action in actions:
            if "*" in action or "?" in action:
                found.append(f"{sid}: wildcard action {action}")
        for resource in _as_list(statement.get("Resource")):
            found.extend(f"{sid}: {problem}" for problem in _resource_problems(resource, services))
        if "NotAction" in statement or "NotResource" in statement:
            found.append(f"{sid}: NotAction/NotResource grant more than they name")
    return found


def _resource_problems(resource: Any, services: set[str]) -> list[str]:
    if not isinstance(resource, str):
        return [f"unresolved resource {resource}"]
    parts = resource.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return [f"resource {resource} is not an ARN"]
    _, partition, service, region, account, name = parts
    found = []
    if services != {service}:
        found.append(f"actions of {sorted(services)} on a {service} resource {resource}")
    if _wild(partition) or _wild(service):
        found.append(f"wildcard partition or service in {resource}")
    if any(_wild(part) and part != UNKNOWN for part in (region, account)):
        found.append(f"partial wildcard region or account in {resource}")
    if service == "execute-api" and name.startswith(UNKNOWN + "/"):
        name = name[len(UNKNOWN) :]  # the API id
    open_end = _OPEN_ENDS.get(service)
    if open_end and name.endswith(open_end):
        name = name[: -len(open_end)]
    if service == "s3":
        found.extend(_s3_problems(resource, name))
    elif _wild(name):
        found.append(f"wildcard resource {resource} (it must name one resource)")
    return found


def _s3_problems(resource: str, name: str) -> list[str]:
    """An S3 object ARN names a bucket and a key prefix; the bucket's name may hold a
    wildcard only as a whole `-`-separated part (the account, the region: bucket names
    are global, so they are in it), and the prefix none."""
    bucket, _, prefix = name.partition("/")
    found = []
    if not prefix:
        found.append(f"{resource} is a whole bucket (it must name a key prefix)")
    if _wild(prefix) or any(_wild(part) and part != UNKNOWN for part in bucket.split("-")):
        found.append(f"wildcard resource {resource} (it must name one bucket and prefix)")
    if bucket.split("-")[0] == UNKNOWN:
        found.append(f"wildcard resource {resource} (the bucket's name must start named)")
    return found


def _wild(text: str) -> bool:
    return "*" in text or "?" in text


def ensure_least_privilege(document: Mapping[str, Any]) -> None:
    found = problems(document)
    if found:
        raise PolicyError("policy is broader than least privilege: " + "; ".join(found))


def _getatt_name(argument: Any) -> str:
    return argument if isinstance(argument, str) else ".".join(argument)


def _sub_text(argument: Any) -> str:
    if not isinstance(argument, str):
        raise PolicyError(f"only the string form of Fn::Sub is supported in {POLICY_ID}")
    return argument


def _lookup(values: Mapping[str, str], name: str) -> str:
    try:
        return values[name]
    except KeyError:
        raise PolicyError(f"no value for {name}") from None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
