"""Checking AWS Signature Version 4 on the gateway's AWS APIs (@connections, Lambda's Invoke).

API Gateway answers 403 to a @connections call without a valid signature, and
Lambda to an unsigned Invoke. Without that check, any process on the machine
could post a forged frame to any client, read its address or disconnect it.
The gateway accepts the credentials it hands its handler processes (boto3
signs with them already), so apps, tests and scripts that use boto3 work
unchanged; a bare `curl` gets AWS's 403.

Pure: the caller passes the request's parts and the time. The signature is
recomputed with botocore's own SigV4 signer, from the headers the client says
it signed, so it is the same algorithm boto3 used to make it.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from localgateway.awslambda.environment import Credentials

ALGORITHM = "AWS4-HMAC-SHA256"
# AWS refuses a signature made more than 15 minutes away from its own clock.
MAX_SKEW = timedelta(minutes=15)
AMZ_DATE = "%Y%m%dT%H%M%SZ"

MISSING = "MissingAuthenticationTokenException"
INCOMPLETE = "IncompleteSignatureException"
UNRECOGNIZED = "UnrecognizedClientException"
INVALID = "InvalidSignatureException"

SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
BAD_TOKEN = "The security token included in the request is invalid."


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused (403), as AWS words it: error code and message."""

    code: str
    message: str


@dataclass(frozen=True)
class Request:
    """The parts of an HTTP request that a signature covers."""

    method: str
    host: str
    raw_path: str  # as sent, percent-encoded, without the query
    query: str  # as sent, without the "?"
    headers: Mapping[str, str]  # case-insensitive
    body: bytes


def verify(
    request: Request,
    service: str,
    region: str,
    accepted: Mapping[str, Credentials],
    now: datetime,
) -> Refusal | None:
    """None when `request` is signed for `service` in `region` by one of `accepted`
    (by access key id), within 15 minutes of `now`; otherwise why not."""
    header = request.headers.get("Authorization")
    if not header:
        return Refusal(MISSING, "Missing Authentication Token")
    fields = _authorization_fields(header)
    if fields is None:
        return Refusal(INCOMPLETE, f"Authorization header is not {ALGORITHM}: {header[:60]}")
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        return Refusal(INCOMPLETE, f"Credential is malformed: {fields['Credential']}")
    access_key, day, scope_region, scope_service, _ = scope
    credentials = accepted.get(access_key)
    if credentials is None:
        return Refusal(UNRECOGNIZED, BAD_TOKEN)
    if scope_service != service or scope_region != region:
        return Refusal(
            INVALID,
            f"Credential should be scoped to a valid region and service ('{region}', '{service}')",
        )
    token = request.headers.get("X-Amz-Security-Token")
    if (credentials.token or None) != (token or None):
        return Refusal(UNRECOGNIZED, BAD_TOKEN)
    stamp = request.headers.get("X-Amz-Date", "")
    try:
        signed_at = datetime.strptime(stamp, AMZ_DATE).replace(tzinfo=UTC)
    except ValueError:
        return Refusal(INCOMPLETE, "Authorization header requires existence of an 'X-Amz-Date'")
    if not stamp.startswith(day):
        return Refusal(INVALID, "Date in Credential scope does not match X-Amz-Date")
    if abs(now - signed_at) > MAX_SKEW:
        earliest = (now - MAX_SKEW).strftime(AMZ_DATE)
        return Refusal(
            INVALID,
            f"Signature expired: {stamp} is now earlier than {earliest} "
            f"({now.strftime(AMZ_DATE)} - 15 min.)",
        )
    names = [name for name in fields["SignedHeaders"].split(";") if name]
    if "host" not in names:
        return Refusal(INVALID, "'Host' must be a signed header")
    # The usual signing (payload hashed) first; the other only when that one differs:
    # a broadcast of 1,000 frames is 1,000 checks in the gateway's one process.
    expected = (
        _signature(request, names, service, region, credentials, stamp, signed_payload)
        for signed_payload in (True, False)
    )
    if not any(hmac.compare_digest(fields["Signature"], value) for value in expected):
        return Refusal(INVALID, SIGNATURE_MISMATCH)
    return None


def _authorization_fields(header: str) -> dict[str, str] | None:
    algorithm, _, rest = header.partition(" ")
    if algorithm != ALGORITHM:
        return None
    fields = {}
    for part in rest.split(","):
        name, _, value = part.strip().partition("=")
        fields[name] = value
    if not all(fields.get(name) for name in ("Credential", "SignedHeaders", "Signature")):
        return None
    return fields


def _signature(
    request: Request,
    names: list[str],
    service: str,
    region: str,
    credentials: Credentials,
    stamp: str,
    signed_payload: bool,
) -> str:
    """The signature botocore makes for this request and these signed headers.

    Without `signed_payload`, the body's hash is replaced by UNSIGNED-PAYLOAD,
    as botocore may do over HTTPS.
    """
    headers = {name: request.headers.get(name, "") for name in names}
    query = f"?{request.query}" if request.query else ""
    scheme = "http" if signed_payload else "https"  # botocore always hashes over http
    signed = AWSRequest(
        method=request.method,
        url=f"{scheme}://{request.host}{request.raw_path}{query}",
        headers=headers,
        data=request.body,
    )
    signed.context["timestamp"] = stamp
    signed.context["payload_signing_enabled"] = signed_payload
    auth = SigV4Auth(
        BotoCredentials(credentials.access_key, credentials.secret_key, credentials.token),
        service,
        region,
    )
    canonical = auth.canonical_request(signed)
    return auth.signature(auth.string_to_sign(signed, canonical), signed)
