"""Attachments (issue 20) through the local gateway: real websocket clients, uploads with
`requests` to the presigned POST the chat answers, downloads with urllib from its
presigned GET, against the gateway's embedded S3 (moto, with the template's bucket).

Every refusal is counted: the sender gets exactly one `error` and the room hears
nothing (`everything` reads up to the pong of a ping, then half a second of quiet).
"""

from __future__ import annotations

import struct
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import boto3
import pytest
import requests

from chalicelib.attachments import room_prefix
from tests.conftest import ROOT, RunningGateway, start_gateway
from tests.test_gateway_rooms import USERS, everything, of_type, open_as, send, wait

PAGE = "http://127.0.0.1:8000"


def png(width: int, height: int) -> bytes:
    """A real PNG (grey pixels), so the first bytes are a PNG's."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\0" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PNG = png(3, 2)
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
EXE = b"MZ\x90\x00" + b"\x00" * 60 + b"PE\x00\x00" + b"\x90" * 100


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    users = [flag for pair in USERS.items() for flag in ("--cognito-user", ":".join(pair))]
    running = start_gateway(
        tmp_path_factory.mktemp("attachments"),
        ROOT,
        "--no-autoreload",
        "--env",
        "AUTH=optional",
        "--env",
        "RATE_PER_SECOND=1000",
        "--env",
        "RATE_BURST=1000",
        *users,
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def people(gateway: RunningGateway) -> Iterator[dict[str, Any]]:
    """alice's private room `design`, bob invited into it; carol signed in, not a member."""
    with (
        open_as(gateway, "alice") as alice,
        open_as(gateway, "bob") as bob,
        open_as(gateway, "carol") as carol,
    ):
        send(alice, {"action": "create", "room": "design", "private": True})
        wait(alice, "joined")
        send(alice, {"action": "invite", "user": "bob", "room": "design"})
        wait(alice, "invited")
        wait(bob, "added")
        everything(alice), everything(bob)
        yield {"alice": alice, "bob": bob, "carol": carol}


def ask_upload(ws: Any, name: str, kind: str, size: int, room: str = "design") -> dict[str, Any]:
    send(ws, {"action": "upload", "room": room, "name": name, "type": kind, "size": size})
    (answer,) = [f for f in wait(ws, "upload") if f["type"] == "upload"]
    return answer


def post(answer: dict[str, Any], data: bytes, fields: dict[str, str] | None = None) -> int:
    """The browser's upload: a multipart POST of the fields, then the file."""
    form = {**answer["fields"], **(fields or {})}
    files = {"file": (answer["name"], data, form.get("Content-Type", ""))}
    return requests.post(answer["url"], data=form, files=files, timeout=30).status_code


def http_get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        return error.code, error.read(), ""


def refused(ws: Any, frame: dict[str, Any], others: list[Any]) -> dict[str, Any]:
    """Send a frame that must be refused: its one error, and nothing for anyone else."""
    send(ws, frame)
    frames = everything(ws)
    assert [f["type"] for f in frames] == ["error"], frames
    for other in others:
        assert everything(other) == []
    return frames[0]


def test_a_png_and_a_pdf_go_up_reach_bob_and_come_down_byte_identical(
    gateway: RunningGateway, people: dict[str, Any]
) -> None:
    alice, bob = people["alice"], people["bob"]
    image = ask_upload(alice, "screen shot.png", "image/png", len(PNG))
    assert image["key"].startswith(room_prefix("design")) and "screen" not in image["key"]
    embedded = urlsplit(gateway.endpoints["aws"]).netloc
    assert urlsplit(image["url"]).netloc == embedded  # the gateway's S3, not AWS
    assert post(image, PNG) == 204
    send(alice, {"action": "sendmessage", "room": "design", "data": "the new header",
                 "attachment": image["key"], "width": 3, "height": 2})  # fmt: skip
    acknowledged = of_type(wait(alice, "message"), "message")
    document = ask_upload(alice, "spec.pdf", "application/pdf", len(PDF))
    assert post(document, PDF) == 204
    send(alice, {"action": "sendmessage", "room": "design", "attachment": document["key"]})
    acknowledged += of_type(wait(alice, "message"), "message")

    heard = of_type(wait(bob, "message", "message"), "message")
    assert [m["attachment"] for m in heard] == [
        {"name": "screen shot.png", "size": len(PNG), "type": "image/png", "width": 3, "height": 2},
        {"name": "spec.pdf", "size": len(PDF), "type": "application/pdf"},
    ]
    assert [m["text"] for m in heard] == ["the new header", ""]
    assert "key" not in heard[0]["attachment"]
    assert acknowledged == heard
    assert everything(alice) == []
    assert everything(bob) == []

    for message, body, kind in ((heard[0], PNG, "image/png"), (heard[1], PDF, "application/pdf")):
        send(bob, {"action": "download", "room": "design", "id": message["id"]})
        (answer,) = of_type(wait(bob, "download"), "download")
        assert answer["attachment"] == message["attachment"]
        assert http_get(answer["url"]) == (200, body, kind)

    send(bob, {"action": "history", "room": "design"})
    (history,) = of_type(wait(bob, "history"), "history")
    assert [m["attachment"]["name"] for m in history["messages"][-2:]] == [
        "screen shot.png",
        "spec.pdf",
    ]


def test_carol_is_refused_upload_and_download_and_alices_url_reads_only_its_key(
    gateway: RunningGateway, people: dict[str, Any]
) -> None:
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    image = ask_upload(alice, "secret.png", "image/png", len(PNG))
    assert post(image, PNG) == 204
    send(alice, {"action": "sendmessage", "room": "design", "attachment": image["key"]})
    (message,) = of_type(wait(bob, "message"), "message")
    everything(alice)

    upload = {"action": "upload", "room": "design", "name": "x.png", "type": "image/png", "size": 9}
    assert refused(carol, upload, [alice, bob])["code"] == "not_in_room"
    download = {"action": "download", "room": "design", "id": message["id"]}
    assert refused(carol, download, [alice, bob])["code"] == "not_in_room"

    send(alice, download)
    url = of_type(wait(alice, "download"), "download")[0]["url"]
    assert http_get(url)[0] == 200
    scheme, netloc, path, query, _ = urlsplit(url)
    bucket = "/" + path.split("/")[1]
    listing = urlunsplit((scheme, netloc, bucket, query, ""))
    other_key = urlunsplit((scheme, netloc, path[: -len("0123")] + "0123", query, ""))
    for forged in (listing, urlunsplit((scheme, netloc, bucket, "", "")), other_key):
        status, body, _ = http_get(forged)
        assert status == 403 and b"<Code>" in body, forged
    assert http_get(urlunsplit((scheme, netloc, path, "", "")))[0] == 403  # no signature


def test_too_big_files_an_exe_posing_as_a_png_and_unknown_keys_are_refused(
    gateway: RunningGateway, people: dict[str, Any]
) -> None:
    alice, bob = people["alice"], people["bob"]
    big = {"action": "upload", "room": "design", "name": "movie.mov", "type": "video/quicktime"}
    error = refused(alice, {**big, "size": 30 * 1024 * 1024}, [bob])
    assert error["code"] == "too_large" and "25 MB" in error["message"]
    photo = {**big, "name": "huge.png", "type": "image/png", "size": 10 * 1024 * 1024 + 1}
    assert refused(alice, photo, [bob])["code"] == "too_large"

    # The presigned POST is enforced as S3 enforces it: another size or type is refused.
    fake = ask_upload(alice, "setup.exe", "image/png", len(EXE))
    assert post(fake, EXE + b"more") == 403
    assert post(fake, EXE, {"Content-Type": "application/x-msdownload"}) == 403
    # Within its policy, the exe lands, and the check reads its first bytes: no PNG.
    assert post(fake, EXE) == 204
    attach = {"action": "sendmessage", "room": "design", "attachment": fake["key"]}
    assert refused(alice, attach, [bob])["code"] == "invalid_attachment"

    # An emulator (moto) enforces no policy for a signed PutObject: HeadObject catches it.
    other = ask_upload(alice, "notes.txt", "text/plain", 5)
    s3 = boto3.client("s3", endpoint_url=gateway.endpoints["aws"])
    bucket = urlsplit(other["url"]).path.strip("/")
    announced = {"size": "5", "type": "text/plain", "name": "notes.txt"}
    s3.put_object(
        Bucket=bucket,
        Key=other["key"],
        Body=b"1234567",
        ContentType="text/plain",
        Metadata=announced,
    )
    attach = {"action": "sendmessage", "room": "design", "attachment": other["key"]}
    assert refused(alice, attach, [bob])["code"] == "invalid_attachment"

    never = room_prefix("design") + "0" * 32
    error = refused(alice, {**attach, "attachment": never}, [bob])
    assert error["code"] == "invalid_attachment" and "nothing was uploaded" in error["message"]
    lobby = ask_upload(alice, "a.pdf", "application/pdf", len(PDF), room="lobby")
    assert post(lobby, PDF) == 204
    assert refused(alice, {**attach, "attachment": lobby["key"]}, [bob])["code"] == (
        "invalid_attachment"
    )


def test_the_bucket_passes_the_pages_cors_preflight_and_fails_another_origins(
    gateway: RunningGateway, people: dict[str, Any]
) -> None:
    answer = ask_upload(people["alice"], "a.png", "image/png", len(PNG))
    headers = {"Access-Control-Request-Method": "POST"}
    allowed = requests.options(answer["url"], headers={**headers, "Origin": PAGE}, timeout=30)
    assert allowed.status_code == 200
    assert allowed.headers.get("Access-Control-Allow-Origin") == PAGE
    assert "POST" in allowed.headers.get("Access-Control-Allow-Methods", "")
    other = requests.options(
        answer["url"], headers={**headers, "Origin": "https://evil.example"}, timeout=30
    )
    assert other.status_code == 403  # a failed preflight: the browser sends nothing


UPLOAD_FROM_PAGE = """async ({url, fields, bytes}) => {
    const form = new FormData();
    for (const [name, value] of Object.entries(fields)) form.append(name, value);
    const file = new Blob([new Uint8Array(bytes)], {type: fields["Content-Type"]});
    form.append("file", file, "shot.png");
    return await new Promise((resolve) => {
        const xhr = new XMLHttpRequest();
        let progress = 0;
        xhr.upload.onprogress = (event) => { progress = event.loaded; };  // forces a preflight
        xhr.onload = () => resolve({status: xhr.status, progress});
        xhr.onerror = () => resolve({status: 0, progress});
        xhr.open("POST", url);
        xhr.send(form);
    });
}"""
PREVIEW_IN_PAGE = """async (url) => {
    const image = new Image();
    image.src = url;
    await image.decode();
    const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
    return {width: image.naturalWidth, height: image.naturalHeight, bytes: Array.from(bytes)};
}"""


@pytest.mark.browser
def test_chromium_on_the_chat_pages_origin_uploads_and_previews_through_the_urls(
    gateway: RunningGateway, people: dict[str, Any]
) -> None:
    """The page's origin (CORS) posts the form with upload progress and shows the image."""
    from playwright.sync_api import sync_playwright

    from tests.test_page import CHROMIUM, CHROMIUM_FLAGS

    alice, bob = people["alice"], people["bob"]
    image = ask_upload(alice, "shot.png", "image/png", len(PNG))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            # A document served from the chat's origin (the gateway's 403 for an unknown
            # path will do): Chromium lets loopback documents, not fulfilled ones, reach the
            # loopback address space where the embedded S3 listens.
            page.goto(gateway.endpoints["http"] + "blank")
            sent = page.evaluate(UPLOAD_FROM_PAGE, {**image, "bytes": list(PNG)})
            assert sent["status"] == 204 and sent["progress"] > len(PNG), sent  # form and file
            send(alice, {"action": "sendmessage", "room": "design", "attachment": image["key"]})
            (message,) = of_type(wait(bob, "message"), "message")
            send(bob, {"action": "download", "room": "design", "id": message["id"]})
            (answer,) = of_type(wait(bob, "download"), "download")
            shown = page.evaluate(PREVIEW_IN_PAGE, answer["url"])
        finally:
            browser.close()
    assert (shown["width"], shown["height"]) == (3, 2)
    assert bytes(shown["bytes"]) == PNG
    everything(alice)


def test_a_file_can_mention_and_once_deleted_cannot_be_downloaded(
    gateway: RunningGateway, people: dict[str, Any]
) -> None:
    """Attachments with conversation (issue 18): mentions and delete apply to them too."""
    alice, bob = people["alice"], people["bob"]
    image = ask_upload(alice, "mock.png", "image/png", len(PNG))
    assert post(image, PNG) == 204
    send(alice, {"action": "sendmessage", "room": "design", "data": "@bob look",
                 "attachment": image["key"]})  # fmt: skip
    (message,) = of_type(wait(bob, "message"), "message")
    assert message["mentions"] == ["bob"] and message["attachment"]["name"] == "mock.png"
    everything(alice)
    send(alice, {"action": "delete", "room": "design", "id": message["id"]})
    for ws in (alice, bob):
        (deleted,) = of_type(wait(ws, "deleted"), "deleted")
        assert deleted["id"] == message["id"]
    error = refused(bob, {"action": "download", "room": "design", "id": message["id"]}, [alice])
    assert error["code"] == "not_found"
    send(bob, {"action": "history", "room": "design"})
    (history,) = of_type(wait(bob, "history"), "history")
    (tombstone,) = [m for m in history["messages"] if m["id"] == message["id"]]
    assert tombstone["deleted"] is True and "attachment" not in tombstone
