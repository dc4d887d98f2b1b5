"""The DynamoDB the handlers use: moto's server embedded in the gateway, or one the user names.

The embedded server (moto's server, on 127.0.0.1 and a free port, in a
thread of the gateway) answers every AWS service, so it is also
the endpoint of any other client an app makes. Tables come from the project's
merge template through `tables.ensure_table`, the same code tests and
deployment use.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import boto3
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.formparser import parse_form_data
from werkzeug.serving import make_server

from localgateway.aws import s3guard, tables
from localgateway.awslambda import environment, netguard
from localgateway.project import Table
from localgateway.state.changes import Changes

# The X-Amz-Target prefix of DynamoDB's API (its streams API has another).
DYNAMODB_TARGET = "DynamoDB_20120810."
# DynamoDB requests that change nothing; any other may (state/saver.py saves after one).
READS = frozenset(
    DYNAMODB_TARGET + name
    for name in (
        "GetItem",
        "BatchGetItem",
        "Query",
        "Scan",
        "DescribeTable",
        "DescribeTimeToLive",
        "ListTables",
        "ListTagsOfResource",
        "DescribeContinuousBackups",
    )
)


# A request with this header is not noted in `EmbeddedAws.changes`: the restore's own writes.
UNTRACKED_HEADER = "X-Localgateway-Untracked"
UNTRACKED_ENVIRON = "HTTP_" + UNTRACKED_HEADER.upper().replace("-", "_")


class EmbeddedAws:
    """moto's server on 127.0.0.1 and a free port, in a thread; stop() ends it.

    Built like moto's `ThreadedMotoServer` (its WSGI app on werkzeug's threaded
    server) with two differences. Requests reach moto one at a time: moto's
    models are not thread-safe (TransactWriteItems deep-copies a table while
    other threads write to it, which fails with "dictionary changed size during
    iteration"), and handler processes do call concurrently. And DynamoDB's
    requests, recognised by their X-Amz-Target, go straight to moto's DynamoDB
    app: moto's dispatcher lists its own package directory on every request to
    find the service, a millisecond each. Connections are still served by
    threads, so keep-alive clients do not wait on each other's sockets. And
    requests to the buckets `protect` names are refused as a private S3 bucket
    refuses them (`s3guard`), before moto sees them. `writes` counts the requests
    that may have changed something, and `changes` notes the items DynamoDB's
    writes name (state/changes.py), except those of an `untracked` client.
    """

    def __init__(self) -> None:
        # werkzeug logs every request at INFO: the gateway's log is for the app's traffic.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        application = DomainDispatcherApplication(create_backend_app)
        dynamodb = create_backend_app("dynamodb")
        lock = threading.Lock()
        self.writes = 0
        self.changes = Changes()

        def one_at_a_time(environ: dict[str, Any], start_response: Any) -> Any:
            target = environ.get("HTTP_X_AMZ_TARGET", "")
            touched = None
            if target.startswith(DYNAMODB_TARGET):
                app = dynamodb
                if target not in READS and UNTRACKED_ENVIRON not in environ:
                    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
                    environ["wsgi.input"] = io.BytesIO(body)
                    touched = self.changes.touched(target[len(DYNAMODB_TARGET) :], body)
            else:
                app = application
                refused = self._guard(environ)
                if refused is not None:
                    return refused(environ, start_response)
            with lock:
                self.writes += target not in READS
                if touched is not None:
                    self.changes.mark(touched)
                return app(environ, start_response)

        self._server = make_server("127.0.0.1", 0, one_at_a_time, threaded=True)
        # Polled for a stop every 0.1 s (werkzeug's 0.5 s is most of a Ctrl-C's wait).
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self.endpoint = f"http://127.0.0.1:{self._server.server_port}"
        self._buckets: frozenset[str] = frozenset()
        self._accepted: Mapping[str, environment.Credentials] = {}
        self._region = environment.DEFAULT_REGION

    def protect(
        self, buckets: Iterable[str], region: str, accepted: Mapping[str, environment.Credentials]
    ) -> None:
        """Serve these buckets as private: anonymous and badly signed requests get 403."""
        self._buckets = frozenset(buckets)
        self._region = region
        self._accepted = dict(accepted)

    def _guard(self, environ: dict[str, Any]) -> Any:
        """A WSGI app answering S3's 403, or None to let moto serve the request."""
        raw_path, _, query = environ.get("RAW_URI", environ.get("PATH_INFO", "")).partition("?")
        if s3guard.bucket_of(raw_path) not in self._buckets:
            return None
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        upload = None
        if environ["REQUEST_METHOD"] == "POST" and environ.get("CONTENT_TYPE", "").startswith(
            "multipart/form-data"
        ):
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            _, form, files = parse_form_data({**environ, "wsgi.input": io.BytesIO(body)})
            size = len(files["file"].read()) if "file" in files else 0
            upload = s3guard.Upload(dict(form.items()), size)
        refusal = s3guard.check(
            environ["REQUEST_METHOD"],
            environ.get("HTTP_HOST", ""),
            raw_path,
            query,
            headers,
            upload,
            self._accepted,
            self._region,
            datetime.now(UTC),
        )
        if refusal is None:
            return None
        body = s3guard.error_body(refusal, raw_path)

        def forbidden(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            start_response("403 Forbidden", [("Content-Type", "application/xml")])
            return [body]

        return forbidden

    def start(self) -> str:
        self._thread.start()
        return self.endpoint

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()


def is_off_machine(endpoint: str) -> bool:
    return not netguard.is_local(urlsplit(endpoint).hostname)


def client(endpoint: str, region: str, use_own_credentials: bool) -> Any:
    """A client for creating tables: fake credentials, unless the endpoint needs real ones."""
    if use_own_credentials:
        return boto3.session.Session(region_name=region).client("dynamodb", endpoint_url=endpoint)
    return aws_client("dynamodb", endpoint, region)


def aws_client(service: str, endpoint: str, region: str) -> Any:
    """A client of the embedded moto (or another local endpoint), with the fake credentials."""
    fake = environment.FAKE_CREDENTIALS
    session = boto3.session.Session(
        region_name=region,
        aws_access_key_id=fake.access_key,
        aws_secret_access_key=fake.secret_key,
        aws_session_token=fake.token,
    )
    return session.client(service, endpoint_url=endpoint)


def untracked(client: Any) -> Any:
    """`client`, its requests marked as changing nothing a save must write (a restore's)."""

    def mark(request: Any, **_: Any) -> None:
        request.headers[UNTRACKED_HEADER] = "1"

    client.meta.events.register("before-sign.dynamodb", mark)
    return client


def create_tables(dynamodb: Any, declared: Iterable[Table]) -> list[str]:
    """Create the tables that are missing; return the names of those created."""
    return [
        table.name
        for table in declared
        if tables.ensure_table(dynamodb, table.properties, table.name)
    ]


def table_names(dynamodb: Any) -> list[str]:
    """Every table this DynamoDB has, over as many pages as it takes."""
    return [
        name
        for page in dynamodb.get_paginator("list_tables").paginate()
        for name in page["TableNames"]
    ]
