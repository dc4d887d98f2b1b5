"""Attachments: uploads straight from the client to S3, checked before a message points at them.

A websocket frame cannot carry a file (API Gateway's 128 KB), so `upload`
answers a presigned POST that the client sends the file with, and the message
names the object's key. The POST's policy pins the key, the content type, the
exact announced size and the announcement itself (object metadata), so on AWS
nothing else can land under that key. Emulators (moto) enforce none of that,
and a key in a frame is only a claim: before a message is stored, HeadObject
checks that the object is there, in the room's prefix, with the announced size
and type, and an image's first bytes are read to check that it is one. Keys are
random under a digest of the room's name: no user text reaches S3 but the
cleaned file name, in metadata.

The validation functions are pure (protocol.py calls them); `Files` makes the
S3 calls, and any failure of S3 that is not a refusal of the upload becomes
`chalicelib.outage.Unavailable` (the sender hears `unavailable`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from botocore.exceptions import ClientError

from chalicelib.outage import translated
from chalicelib.settings import Settings
from chalicelib.text import clean_message

# Objects live under this prefix (the functions' policy grants it and nothing else).
KEY_PREFIX = "files/"
KEY_PATTERN = re.compile(r"files/[0-9a-f]{32}/[0-9a-f]{32}")

# Images are previewed, so their first bytes must say what the type says.
IMAGE_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),  # and "WEBP" at offset 8
}
SNIFF_BYTES = 16

MIME_PATTERN = re.compile(r"[a-z0-9][a-z0-9.+-]{0,62}/[a-z0-9][a-z0-9.+-]{0,126}")
MAX_NAME_CHARS = 200
MAX_DIMENSION = 100_000

# Codes of the error frames (protocol.py's names for them).
TOO_LARGE = "too_large"
BAD_REQUEST = "bad_request"
INVALID_ATTACHMENT = "invalid_attachment"

# S3 answers HeadObject on a missing key with 404, or 403 without s3:ListBucket.
_MISSING = ("404", "403", "NoSuchKey", "NotFound", "AccessDenied")


class Refused(Exception):
    """An upload or attachment the server refuses; `code` and the message go to the sender."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Attachment:
    """A checked object, as a message stores it; `key` never leaves the server."""

    key: str
    name: str
    size: int
    type: str
    width: int | None = None
    height: int | None = None

    def shown(self) -> dict[str, Any]:
        """What message frames carry (width and height only for images that have them)."""
        shown: dict[str, Any] = {"name": self.name, "size": self.size, "type": self.type}
        if self.width is not None and self.height is not None:
            shown.update(width=self.width, height=self.height)
        return shown


def is_image(content_type: str) -> bool:
    return content_type in IMAGE_SIGNATURES


def max_bytes(content_type: str, settings: Settings) -> int:
    return settings.max_image_bytes if is_image(content_type) else settings.max_file_bytes


def room_prefix(room: str) -> str:
    """The room's prefix: a digest of its name, so no user text is in a key."""
    return f"{KEY_PREFIX}{hashlib.blake2s(room.encode(), digest_size=16).hexdigest()}/"


def new_key(room: str) -> str:
    return room_prefix(room) + secrets.token_hex(16)


def clean_name(raw: str) -> str:
    """A file name as others see it: message cleaning, one line, no path, at most 200
    characters (the extension kept); "" when nothing visible is left."""
    name = clean_message(raw).replace("\n", " ").replace("\t", " ")
    name = name.replace("/", "_").replace("\\", "_").strip(" .")
    if len(name) > MAX_NAME_CHARS:
        _, dot, extension = name.rpartition(".")
        keep = extension if dot and len(extension) <= 16 else ""
        name = name[: MAX_NAME_CHARS - len(keep) - 1] + ("." + keep if keep else "")
    return name


def upload_problem(name: Any, content_type: Any, size: Any, settings: Settings) -> Refused | None:
    """Why an `upload` is refused before anything is signed, or None."""
    if not isinstance(name, str) or not clean_name(name):
        return Refused(BAD_REQUEST, 'upload needs "name", a file name with a visible character')
    if not isinstance(content_type, str) or not MIME_PATTERN.fullmatch(content_type.lower()):
        return Refused(BAD_REQUEST, 'upload needs "type", a MIME type such as image/png')
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        return Refused(BAD_REQUEST, 'upload needs "size", the file\'s size in bytes (at least 1)')
    limit = max_bytes(content_type.lower(), settings)
    if size > limit:
        kind = "an image" if is_image(content_type.lower()) else "a file"
        message = f"{kind} may be at most {_megabytes(limit)}, this is {size} bytes"
        return Refused(TOO_LARGE, message)
    return None


def reference_problem(key: Any, width: Any, height: Any) -> Refused | None:
    """Why a message's `attachment` (and `width`, `height`) cannot be an attachment, or None."""
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        return Refused(BAD_REQUEST, '"attachment" must be the key an upload answer gave')
    for value in (width, height):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DIMENSION
        ):
            return Refused(BAD_REQUEST, f'"width" and "height" are 1 to {MAX_DIMENSION} pixels')
    return None


def looks_like(content_type: str, head: bytes) -> bool:
    """Whether an image's first bytes are those of its type."""
    signatures = IMAGE_SIGNATURES.get(content_type, ())
    if content_type == "image/webp":
        return head.startswith(b"RIFF") and head[8:12] == b"WEBP"
    return any(head.startswith(signature) for signature in signatures)


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):g} MB"


class Files:
    """Presigned uploads and downloads in the stage's bucket, and the check of an upload."""

    def __init__(self, client: Callable[[], Any], settings: Settings) -> None:
        self._client = client  # made on first use: most frames never touch S3
        self._settings = settings
        self._bucket = settings.bucket_name

    def presign_upload(self, room: str, name: str, content_type: str, size: int) -> dict[str, Any]:
        """A presigned POST for one object of exactly `size` bytes and `content_type`,
        under a new random key in the room's prefix; the announcement rides along as
        metadata the policy pins, for the check."""
        key = new_key(room)
        announced = {
            "Content-Type": content_type,
            "x-amz-meta-name": quote(name, safe=""),
            "x-amz-meta-size": str(size),
            "x-amz-meta-type": content_type,
        }
        conditions: list[Any] = [{field: value} for field, value in announced.items()]
        conditions.append(["content-length-range", size, size])
        with translated():
            post = self._client().generate_presigned_post(
                Bucket=self._bucket,
                Key=key,
                Fields=announced,
                Conditions=conditions,
                ExpiresIn=self._settings.upload_seconds,
            )
        return {"key": key, "url": post["url"], "fields": post["fields"]}

    def check(self, room: str, key: str, width: int | None, height: int | None) -> Attachment:
        """The uploaded object behind `key`, if it is what its upload announced; else Refused."""
        if not key.startswith(room_prefix(room)):
            raise Refused(INVALID_ATTACHMENT, "that attachment was not uploaded to this room")
        with translated():
            try:
                head = self._client().head_object(Bucket=self._bucket, Key=key)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in _MISSING:
                    message = "nothing was uploaded under that key"
                    raise Refused(INVALID_ATTACHMENT, message) from None
                raise
        metadata = head.get("Metadata") or {}
        announced_type = metadata.get("type", "")
        announced_size = metadata.get("size", "")
        stored_type = (head.get("ContentType") or "").lower()
        size = int(head.get("ContentLength", -1))
        if (
            not announced_type
            or stored_type != announced_type
            or announced_size != str(size)
            or size > max_bytes(announced_type, self._settings)
        ):
            raise Refused(
                INVALID_ATTACHMENT,
                "the uploaded file is not what its upload announced (size or type differ)",
            )
        if is_image(announced_type):
            with translated():
                part = self._client().get_object(
                    Bucket=self._bucket, Key=key, Range=f"bytes=0-{SNIFF_BYTES - 1}"
                )
                start = part["Body"].read()
            if not looks_like(announced_type, start):
                raise Refused(INVALID_ATTACHMENT, f"the uploaded file is not an {announced_type}")
        else:
            width = height = None
        name = clean_name(unquote(metadata.get("name", ""))) or "file"
        return Attachment(key, name, size, announced_type, width, height)

    def presign_download(self, attachment: Attachment) -> str:
        """A presigned GET of the object; images inline (previews), other files as downloads
        under their name."""
        disposition = "inline" if is_image(attachment.type) else "attachment"
        with translated():
            url: str = self._client().generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self._bucket,
                    "Key": attachment.key,
                    "ResponseContentType": attachment.type,
                    "ResponseContentDisposition": (
                        f"{disposition}; filename*=UTF-8''{quote(attachment.name, safe='')}"
                    ),
                },
                ExpiresIn=self._settings.download_seconds,
            )
        return url
