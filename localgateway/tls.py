"""A throwaway certificate authority and a certificate for 127.0.0.1, for the TLS port.

Chalice always builds `https://{domain_name}/{stage}` for @connections, so the
gateway must speak HTTPS there. trustme makes a CA per run; handler processes
trust it through AWS_CA_BUNDLE, a bundle that also holds the roots boto3 would
have used (the developer's own AWS_CA_BUNDLE, else botocore's), so that a real
`--dynamodb-endpoint` over HTTPS still verifies.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme
from botocore.httpsession import where as default_ca_bundle

HOSTS = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class LocalTls:
    server_context: ssl.SSLContext
    ca_file: Path
    bundle_file: Path


def create(directory: Path, usual_roots: str | None = None) -> LocalTls:
    """Write `ca.pem` (the CA alone) and `ca-bundle.pem` (it and `usual_roots`)."""
    authority = trustme.CA(organization_name="localgateway")
    certificate = authority.issue_cert(*HOSTS)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    ca_file = directory / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    bundle_file = directory / "ca-bundle.pem"
    bundle_file.write_bytes(
        Path(usual_roots or default_ca_bundle()).read_bytes() + b"\n" + authority.cert_pem.bytes()
    )
    return LocalTls(context, ca_file, bundle_file)
