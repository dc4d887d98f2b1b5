"""S3 buckets of the merge template, made in the embedded moto with their settings.

An app that keeps files in S3 declares its bucket in the template `chalice
package --merge-template` merges and `Ref`s it in its functions' environment.
Locally the gateway makes the bucket in its embedded moto before the handler
processes start (named `{app}-{stage}-{logicalid}` unless the template names
it), with the template's CORS rules, lifecycle, encryption, public access block
and ownership controls, so that presigned URLs the app makes work from a
browser and from scripts. moto stores these settings and answers CORS
preflights by them; what it does not enforce for anonymous and presigned
requests, `s3guard` does.

Idempotent: a reload finds the bucket it made at start and sets its settings again.
`make deploy` makes the stage's bucket on AWS with the same code, and `make
destroy` empties and deletes it.
"""

from __future__ import annotations

from typing import Any

BUCKET_TYPE = "AWS::S3::Bucket"


def declared(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The `Properties` of every AWS::S3::Bucket, by logical id."""
    resources = template.get("Resources") or {}
    return {
        logical_id: resource.get("Properties") or {}
        for logical_id, resource in resources.items()
        if isinstance(resource, dict) and resource.get("Type") == BUCKET_TYPE
    }


def bucket_name(logical_id: str, properties: dict[str, Any], prefix: str) -> str:
    name = properties.get("BucketName")
    return name if isinstance(name, str) and name else f"{prefix}-{logical_id}".lower()


def ensure(client: Any, template: dict[str, Any], prefix: str) -> dict[str, str]:
    """Make the template's buckets that are missing and set their settings; names by
    logical id, for the template's `Ref`s."""
    names = {}
    for logical_id, properties in declared(template).items():
        name = bucket_name(logical_id, properties, prefix)
        ensure_named(client, name, properties)
        names[logical_id] = name
    return names


def ensure_named(
    client: Any, name: str, properties: dict[str, Any], region: str = "us-east-1"
) -> bool:
    """Make bucket `name` if this account lacks it, then give it the template's settings;
    whether it was made."""
    existing = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
    if name not in existing:
        where = {} if region == "us-east-1" else {"LocationConstraint": region}
        client.create_bucket(Bucket=name, **({"CreateBucketConfiguration": where} if where else {}))
    _configure(client, name, properties)
    return name not in existing


def delete(client: Any, name: str) -> int | None:
    """Empty the bucket (every version), then delete it; the objects removed, None when
    there was no bucket. Safe to run again after a failure half-way."""
    removed = 0
    try:
        pages = client.get_paginator("list_object_versions").paginate(Bucket=name)
        for page in pages:
            batch = [
                {"Key": item["Key"], "VersionId": item["VersionId"]}
                for kind in ("Versions", "DeleteMarkers")
                for item in page.get(kind, [])
            ]
            if batch:
                client.delete_objects(Bucket=name, Delete={"Objects": batch, "Quiet": True})
                removed += len(batch)
        client.delete_bucket(Bucket=name)
    except client.exceptions.NoSuchBucket:
        return None
    return removed


def _configure(client: Any, name: str, properties: dict[str, Any]) -> None:
    cors = properties.get("CorsConfiguration")
    if cors:
        client.put_bucket_cors(
            Bucket=name, CORSConfiguration={"CORSRules": [_cors_rule(r) for r in cors["CorsRules"]]}
        )
    block = properties.get("PublicAccessBlockConfiguration")
    if block:
        client.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=block)
    ownership = properties.get("OwnershipControls")
    if ownership:
        client.put_bucket_ownership_controls(Bucket=name, OwnershipControls=ownership)
    encryption = properties.get("BucketEncryption")
    if encryption:
        rules = [
            {
                "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
                **(
                    {"BucketKeyEnabled": rule["BucketKeyEnabled"]}
                    if "BucketKeyEnabled" in rule
                    else {}
                ),
            }
            for rule in encryption["ServerSideEncryptionConfiguration"]
        ]
        client.put_bucket_encryption(
            Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules}
        )
    lifecycle = properties.get("LifecycleConfiguration")
    if lifecycle:
        client.put_bucket_lifecycle_configuration(
            Bucket=name,
            LifecycleConfiguration={"Rules": [_lifecycle_rule(r) for r in lifecycle["Rules"]]},
        )


def _cors_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's CorsRule in the S3 API's words."""
    words = {
        "AllowedOrigins": "AllowedOrigins",
        "AllowedMethods": "AllowedMethods",
        "AllowedHeaders": "AllowedHeaders",
        "ExposedHeaders": "ExposeHeaders",
        "MaxAge": "MaxAgeSeconds",
        "Id": "ID",
    }
    return {words[key]: value for key, value in rule.items() if key in words}


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's lifecycle Rule in the S3 API's words (the parts the template uses)."""
    converted: dict[str, Any] = {
        "ID": rule.get("Id", "rule"),
        "Status": rule["Status"],
        "Filter": {"Prefix": rule.get("Prefix", "")},
    }
    if "ExpirationInDays" in rule:
        converted["Expiration"] = {"Days": rule["ExpirationInDays"]}
    if "AbortIncompleteMultipartUpload" in rule:
        converted["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
    return converted
