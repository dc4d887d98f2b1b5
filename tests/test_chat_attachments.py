"""Attachments (issue 20) without a gateway: the protocol's rules for `upload`, `download`
and `attachment`, file names, and the gateway's private-bucket checks (s3guard) on
URLs and forms boto3 presigns. The whole flow runs in tests/test_gateway_attachments.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config

from chalicelib import protocol
from chalicelib.attachments import clean_name, room_prefix
from chalicelib.settings import Settings
from localgateway.aws import s3guard
from localgateway.awslambda.environment import FAKE_CREDENTIALS, Credentials
from tests.conftest import ChatHarness

SETTINGS = Settings(table_name="t")
MB = 1024 * 1024
KEY = room_prefix("design") + "ab" * 16
ENDPOINT = "http://127.0.0.1:9"  # presigning makes no request
BUCKET = "chalice-chat-dev-chatfiles"
ACCEPTED = {FAKE_CREDENTIALS.access_key: FAKE_CREDENTIALS}


def parse(frame: dict[str, Any], settings: Settings = SETTINGS) -> Any:
    return protocol.parse_frame(protocol.encode(frame), settings)


def upload(**fields: Any) -> Any:
    return parse({"action": "upload", "name": "a.png", "type": "image/png", "size": 1, **fields})


def test_an_upload_is_checked_before_anything_is_signed() -> None:
    assert upload(name="Plan.PDF", type="Application/PDF", size=25 * MB) == protocol.Upload(
        "Plan.PDF", "application/pdf", 25 * MB
    )
    assert upload(room="design") == protocol.Upload("a.png", "image/png", 1, "design")
    for limit, kind in ((10 * MB, "image/webp"), (25 * MB, "application/zip")):
        assert upload(type=kind, size=limit).size == limit
        assert upload(type=kind, size=limit + 1).code == protocol.TOO_LARGE
    assert upload(size=30 * MB).message == "an image may be at most 10 MB, this is 31457280 bytes"
    for bad in ({"type": "png"}, {"type": 7}, {"size": 0}, {"size": True}, {"size": "9"},
                {"name": "\u200b"}, {"name": None}, {"room": "no room!"}):  # fmt: skip
        assert isinstance(upload(**bad), protocol.ProtocolError), bad
    smaller = Settings(table_name="t", max_file_bytes=100)
    assert parse({"action": "upload", "name": "n", "type": "text/plain", "size": 101}, smaller).code
    assert parse({"action": "download", "id": "x"}).code == protocol.BAD_REQUEST


def test_file_names_are_one_visible_line_without_paths_or_escapes() -> None:
    assert clean_name("../../etc/passwd") == "_.._etc_passwd"
    assert clean_name("\x1b[31mred\u202e.png") == "red.png"
    assert clean_name("two\nlines\t.pdf") == "two lines .pdf"
    long = clean_name("x" * 300 + ".pdf")
    assert len(long) == 200 and long.endswith("x.pdf")
    assert clean_name("\u200b \u2800") == ""


def test_a_message_may_be_only_an_attachment_whose_key_an_upload_gave() -> None:
    sent = parse({"action": "sendmessage", "attachment": KEY, "width": 640, "height": 480})
    assert (sent.text, sent.attachment) == ("", protocol.AttachmentRef(KEY, 640, 480))
    sent = parse({"action": "sendmessage", "data": " hi ", "attachment": KEY})
    assert (sent.text, sent.attachment) == ("hi", protocol.AttachmentRef(KEY))
    for bad in ({"attachment": "../" + KEY}, {"attachment": KEY, "width": 0},
                {"attachment": KEY, "height": 1.5}, {"attachment": None}, {}):  # fmt: skip
        refused = parse({"action": "sendmessage", **bad})
        assert refused.code == protocol.BAD_REQUEST, bad
    assert parse({"action": "sendmessage", "data": "plain"}).attachment is None


@pytest.fixture
def s3() -> Any:
    """SigV4, as the chat's client (chalicelib/service.py); boto3's default presigns SigV2."""
    return boto3.client("s3", endpoint_url=ENDPOINT, config=Config(signature_version="s3v4"))


def check_get(url: str, now: datetime, accepted: dict[str, Credentials] = ACCEPTED) -> Any:
    parts = urlsplit(url)
    return s3guard.check(
        "GET", parts.netloc, parts.path, parts.query, {}, None, accepted, "us-east-1", now
    )


def test_a_presigned_url_is_good_for_its_key_until_it_expires(s3: Any) -> None:
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": KEY}, ExpiresIn=300
    )
    now = datetime.now(UTC)
    assert check_get(url, now) is None
    assert check_get(url.replace(KEY, KEY[:-1] + "c"), now).code == "SignatureDoesNotMatch"
    assert check_get(url, now + timedelta(seconds=301)).message == "Request has expired"
    other = {"AKIAOTHER": Credentials("AKIAOTHER", "x", "testing")}
    assert check_get(url, now, other).code == "InvalidAccessKeyId"
    anonymous = s3guard.check("GET", "h", f"/{BUCKET}", "", {}, None, ACCEPTED, "us-east-1", now)
    assert anonymous.code == "AccessDenied"


def test_a_browser_upload_must_keep_to_its_policy(s3: Any) -> None:
    post = s3.generate_presigned_post(
        Bucket=BUCKET,
        Key=KEY,
        Fields={"Content-Type": "image/png"},
        Conditions=[{"Content-Type": "image/png"}, ["content-length-range", 10, 10]],
        ExpiresIn=300,
    )
    now = datetime.now(UTC)

    def form(size: int = 10, at: datetime = now, **changed: str) -> Any:
        upload = s3guard.Upload({**post["fields"], **changed}, size)
        path = urlsplit(post["url"]).path
        return s3guard.check("POST", "h", path, "", {}, upload, ACCEPTED, "us-east-1", at)

    assert form() is None
    assert "size range" in form(size=11).message
    assert "$content-type" in form(**{"Content-Type": "application/x-msdownload"}).message
    assert "$key" in form(key=room_prefix("design") + "cd" * 16).message
    assert "Extra input fields: x-amz-meta-evil" in form(**{"x-amz-meta-evil": "1"}).message
    assert "expired" in form(at=now + timedelta(minutes=6)).message
    assert form(policy=post["fields"]["policy"][:-4] + "AAA=").code == "SignatureDoesNotMatch"


def test_a_chat_without_a_bucket_says_so_and_posts_nothing(chat: ChatHarness) -> None:
    """A bare `chalice deploy` sets no BUCKET_NAME: files are refused in words."""
    ann, bob = chat.connect({"nick": "ann"}), chat.connect({"nick": "bob"})
    chat.drain()
    frames = [
        {"action": "upload", "name": "a.png", "type": "image/png", "size": 5},
        {
            "action": "sendmessage",
            "attachment": KEY.replace(room_prefix("design"), room_prefix("lobby")),
        },
    ]
    for frame in frames:
        chat.send(ann, frame)
        (error,) = chat.take(ann)
        assert (error["code"], error["message"]) == (
            protocol.BAD_REQUEST,
            "this chat has no file storage (BUCKET_NAME)",
        )
    assert chat.take(bob) == []
