"""Cognito user pools and app clients of the merge template, made in the embedded moto.

An app that signs its users in with Cognito declares its pool and app client in
the template `chalice package --merge-template` merges, and `Ref`s them in its
functions' environment. Locally the gateway makes them in its embedded moto
(which answers Cognito's API, InitiateAuth and GetUser included) before the
handler processes start, so that those `Ref`s have ids to resolve to, and
creates the users `--cognito-user NAME:PASSWORD` asks for, with a permanent
password, so that the whole sign-in works offline.

Idempotent by name: a reload finds the pool and client it made at start.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

POOL_TYPE = "AWS::Cognito::UserPool"
CLIENT_TYPE = "AWS::Cognito::UserPoolClient"
GROUP_TYPE = "AWS::Cognito::UserPoolGroup"

# Template properties CreateUserPool and CreateUserPoolClient take unchanged.
_POOL_PROPERTIES = (
    "Policies",
    "UsernameAttributes",
    "UsernameConfiguration",
    "AutoVerifiedAttributes",
    "MfaConfiguration",
    "AccountRecoverySetting",
    "AdminCreateUserConfig",
)
_CLIENT_PROPERTIES = (
    "ExplicitAuthFlows",
    "GenerateSecret",
    "AccessTokenValidity",
    "IdTokenValidity",
    "RefreshTokenValidity",
    "TokenValidityUnits",
    "PreventUserExistenceErrors",
    "EnableTokenRevocation",
)


@dataclass(frozen=True)
class Made:
    """What was made: ids by logical id, for the template's `Ref`s."""

    pools: dict[str, str]
    clients: dict[str, str]

    @property
    def ids(self) -> dict[str, str]:
        return {**self.pools, **self.clients}


def declared(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    resources = template.get("Resources") or {}
    return {
        logical_id: resource.get("Properties") or {}
        for logical_id, resource in resources.items()
        if isinstance(resource, dict) and resource.get("Type") == kind
    }


def ensure(client: Any, template: dict[str, Any], prefix: str) -> Made:
    """Make the template's pools and clients that are missing (named `{prefix}-{LogicalId}`
    unless the template names them); return their ids."""
    pools: dict[str, str] = {}
    for logical_id, properties in declared(template, POOL_TYPE).items():
        name = properties.get("UserPoolName") or f"{prefix}-{logical_id}"
        pools[logical_id] = _pool(client, name, properties)
    clients: dict[str, str] = {}
    for logical_id, properties in declared(template, CLIENT_TYPE).items():
        reference = properties.get("UserPoolId")
        pool_id = pools.get(reference.get("Ref")) if isinstance(reference, dict) else reference
        if not isinstance(pool_id, str):
            continue  # a pool from outside the template: nothing to make locally
        name = properties.get("ClientName") or f"{prefix}-{logical_id}"
        clients[logical_id] = _client(client, pool_id, name, properties)
    for logical_id, properties in declared(template, GROUP_TYPE).items():
        reference = properties.get("UserPoolId")
        pool_id = pools.get(reference.get("Ref")) if isinstance(reference, dict) else reference
        if isinstance(pool_id, str):
            _group(client, pool_id, properties.get("GroupName") or logical_id)
    return Made(pools, clients)


def add_users(client: Any, pool_ids: Iterable[str], users: Iterable[tuple[str, str]]) -> None:
    """Users with permanent passwords, in every pool (again and again: idempotent)."""
    for pool_id in pool_ids:
        for username, password in users:
            with contextlib.suppress(client.exceptions.UsernameExistsException):
                client.admin_create_user(
                    UserPoolId=pool_id, Username=username, MessageAction="SUPPRESS"
                )
            client.admin_set_user_password(
                UserPoolId=pool_id, Username=username, Password=password, Permanent=True
            )


def add_to_groups(
    client: Any, pool_ids: Iterable[str], memberships: Iterable[tuple[str, str]]
) -> None:
    """(group, user) pairs: the user in the group of every pool, the group made if missing."""
    for pool_id in pool_ids:
        for group, username in memberships:
            _group(client, pool_id, group)
            client.admin_add_user_to_group(UserPoolId=pool_id, Username=username, GroupName=group)


def _group(client: Any, pool_id: str, name: str) -> None:
    with contextlib.suppress(client.exceptions.GroupExistsException):
        client.create_group(UserPoolId=pool_id, GroupName=name)


def _pool(client: Any, name: str, properties: dict[str, Any]) -> str:
    for page in client.get_paginator("list_user_pools").paginate(MaxResults=60):
        for pool in page["UserPools"]:
            if pool["Name"] == name:
                return str(pool["Id"])
    settings = {key: properties[key] for key in _POOL_PROPERTIES if key in properties}
    return str(client.create_user_pool(PoolName=name, **settings)["UserPool"]["Id"])


def _client(client: Any, pool_id: str, name: str, properties: dict[str, Any]) -> str:
    for page in client.get_paginator("list_user_pool_clients").paginate(UserPoolId=pool_id):
        for app_client in page["UserPoolClients"]:
            if app_client["ClientName"] == name:
                return str(app_client["ClientId"])
    settings = {key: properties[key] for key in _CLIENT_PROPERTIES if key in properties}
    created = client.create_user_pool_client(UserPoolId=pool_id, ClientName=name, **settings)
    return str(created["UserPoolClient"]["ClientId"])
