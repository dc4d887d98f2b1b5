"""What S3 refuses on a private bucket and moto does not: anonymous and forged requests.

moto's server serves any request to any bucket: an unsigned GET lists it, a
presigned URL with another key in it reads that key, and a POST upload lands
whatever its policy says. S3 refuses all three on a bucket that blocks public
access. For the merge template's buckets the gateway checks, before moto sees
them, what S3 would:

- a presigned URL (`X-Amz-Signature` in the query): its SigV4 query signature,
  over the method, the path (so the bucket and the key) and the query, made
  with credentials the gateway accepts, and not expired;
- a browser upload (POST of a multipart form): the policy's signature, its
  expiration, and each of its conditions (the key, fields pinned with `eq` or
  `starts-with`, `content-length-range`), and that every form field is covered
  by a condition;
- anything else without an `Authorization` header: refused (Block Public Access).

Requests signed in their `Authorization` header (boto3 clients) and CORS
preflights pass to moto unchanged. Pure: the caller passes the request's parts
and the time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from localgateway.awslambda.environment import Credentials

ALGORITHM = "AWS4-HMAC-SHA256"
AMZ_DATE = "%Y%m%dT%H%M%SZ"
ACCESS_DENIED = "AccessDenied"
SIGNATURE_MISMATCH = "SignatureDoesNotMatch"
# Form fields a POST policy need not cover (S3's rules).
_UNCOVERED = {"policy", "x-amz-signature", "file"}


@dataclass(frozen=True)
class Refusal:
    """S3's 403: its error code and message."""

    code: str
    message: str


@dataclass(frozen=True)
class Upload:
    """A browser upload: its form fields (not the file) and the file's size."""

    fields: Mapping[str, str]
    size: int


def bucket_of(raw_path: str) -> str:
    """The bucket of a path-style request (`/bucket/key`)."""
    return unquote(raw_path.lstrip("/").split("/", 1)[0])


def check(
    method: str,
    host: str,
    raw_path: str,
    query: str,
    headers: Mapping[str, str],
    upload: Upload | None,
    accepted: Mapping[str, Credentials],
    region: str,
    now: datetime,
) -> Refusal | None:
    """None when S3 would serve this request to a private bucket; otherwise why not."""
    if method == "OPTIONS" or headers.get("Authorization"):
        return None
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(name == "X-Amz-Signature" for name, _ in pairs):
        return _presigned(method, host, raw_path, pairs, headers, accepted, region, now)
    if method == "POST" and upload is not None:
        return _form(bucket_of(raw_path), upload, accepted, region, now)
    return Refusal(ACCESS_DENIED, "Access Denied")


def _presigned(
    method: str,
    host: str,
    raw_path: str,
    pairs: list[tuple[str, str]],
    headers: Mapping[str, str],
    accepted: Mapping[str, Credentials],
    region: str,
    now: datetime,
) -> Refusal | None:
    params = dict(pairs)
    if params.get("X-Amz-Algorithm") != ALGORITHM:
        return Refusal(ACCESS_DENIED, "Only AWS4-HMAC-SHA256 presigned URLs are accepted")
    scope = _scope(params.get("X-Amz-Credential", ""), accepted, region)
    if isinstance(scope, Refusal):
        return scope
    credentials, day = scope
    if (credentials.token or None) != (params.get("X-Amz-Security-Token") or None):
        return Refusal("InvalidToken", "The provided token is malformed or otherwise invalid.")
    stamp = params.get("X-Amz-Date", "")
    try:
        signed_at = datetime.strptime(stamp, AMZ_DATE).replace(tzinfo=UTC)
        expires = int(params.get("X-Amz-Expires", ""))
    except ValueError:
        return Refusal(ACCESS_DENIED, "X-Amz-Date and X-Amz-Expires are required")
    if now > signed_at + timedelta(seconds=expires):
        return Refusal(ACCESS_DENIED, "Request has expired")
    names = [name for name in params.get("X-Amz-SignedHeaders", "").split(";") if name]
    lowered = {key.lower(): value for key, value in headers.items()}
    lowered["host"] = host
    canonical = "\n".join(
        [
            method,
            raw_path,
            _canonical_query([(k, v) for k, v in pairs if k != "X-Amz-Signature"]),
            "".join(f"{name}:{lowered.get(name, '').strip()}\n" for name in names),
            ";".join(names),
            "UNSIGNED-PAYLOAD",
        ]
    )
    to_sign = "\n".join(
        [
            ALGORITHM,
            stamp,
            f"{day}/{region}/s3/aws4_request",
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    expected = _sign(credentials, day, region, to_sign)
    if not hmac.compare_digest(expected, params["X-Amz-Signature"]):
        return Refusal(
            SIGNATURE_MISMATCH,
            "The request signature we calculated does not match the signature you provided.",
        )
    return None


def _form(
    bucket: str,
    upload: Upload,
    accepted: Mapping[str, Credentials],
    region: str,
    now: datetime,
) -> Refusal | None:
    fields = {key.lower(): value for key, value in upload.fields.items()}
    scope = _scope(fields.get("x-amz-credential", ""), accepted, region)
    if isinstance(scope, Refusal):
        return scope
    credentials, day = scope
    encoded = fields.get("policy", "")
    if not hmac.compare_digest(
        _sign(credentials, day, region, encoded), fields.get("x-amz-signature", "")
    ):
        return Refusal(SIGNATURE_MISMATCH, "The POST policy's signature does not match")
    try:
        document = json.loads(base64.b64decode(encoded, validate=True))
        expiration = datetime.strptime(document["expiration"], "%Y-%m-%dT%H:%M:%SZ")
        conditions = list(document["conditions"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        return Refusal(ACCESS_DENIED, "Invalid Policy: the policy is not a POST policy")
    if now > expiration.replace(tzinfo=UTC):
        return Refusal(ACCESS_DENIED, "Invalid according to Policy: Policy expired.")
    values = {**fields, "bucket": bucket}
    covered = set()
    for condition in conditions:
        problem = _condition_problem(condition, values, upload.size)
        if problem:
            return Refusal(ACCESS_DENIED, f"Invalid according to Policy: {problem}")
        covered.add(_condition_field(condition))
    for name in fields:
        if name not in _UNCOVERED and name not in covered and not name.startswith("x-ignore-"):
            return Refusal(
                ACCESS_DENIED, f"Invalid according to Policy: Extra input fields: {name}"
            )
    return None


def _condition_field(condition: Any) -> str:
    if isinstance(condition, dict) and len(condition) == 1:
        return str(next(iter(condition))).lower()
    if isinstance(condition, list) and len(condition) == 3 and isinstance(condition[1], str):
        return condition[1].lstrip("$").lower()
    return ""


def _condition_problem(condition: Any, values: Mapping[str, str], size: int) -> str | None:
    ranged = isinstance(condition, list) and len(condition) == 3
    if ranged and condition[0] == "content-length-range":
        low, high = int(condition[1]), int(condition[2])
        return None if low <= size <= high else "Your proposed upload exceeds the size range"
    field = _condition_field(condition)
    if isinstance(condition, dict):
        operator, wanted = "eq", str(next(iter(condition.values())))
    elif isinstance(condition, list) and len(condition) == 3:
        operator, wanted = str(condition[0]).lower(), str(condition[2])
    else:
        return "Policy Condition failed: unreadable condition"
    actual = values.get(field)
    if actual is None:
        return f'Policy Condition failed: ["{operator}", "${field}", "{wanted}"]'
    matched = actual == wanted if operator == "eq" else actual.startswith(wanted)
    return None if matched else f'Policy Condition failed: ["{operator}", "${field}", "{wanted}"]'


def _scope(
    credential: str, accepted: Mapping[str, Credentials], region: str
) -> tuple[Credentials, str] | Refusal:
    parts = credential.split("/")
    if len(parts) != 5 or parts[3] != "s3" or parts[4] != "aws4_request":
        return Refusal(ACCESS_DENIED, f"Credential is malformed: {credential[:80]}")
    access_key, day, scope_region, _, _ = parts
    credentials = accepted.get(access_key)
    if credentials is None:
        return Refusal(
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
        )
    if scope_region != region:
        return Refusal("AuthorizationQueryParametersError", f"the region must be {region}")
    return credentials, day


def _canonical_query(pairs: list[tuple[str, str]]) -> str:
    encoded = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def _sign(credentials: Credentials, day: str, region: str, text: str) -> str:
    key = ("AWS4" + credentials.secret_key).encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def error_body(refusal: Refusal, resource: str) -> bytes:
    """S3's XML error document."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{refusal.code}</Code><Message>{_xml(refusal.message)}</Message>"
        f"<Resource>{_xml(resource)}</Resource></Error>"
    ).encode()


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
