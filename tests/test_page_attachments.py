"""Files and images on the page (issue 20) in a real browser, against a real gateway whose
embedded S3 checks the presigned POSTs and GETs: alice pastes a PNG and drops a PDF in a
private room, bob sees both and downloads them byte-identical; a too-big file and an image
that is not one are refused in words; a phone keeps everything in reach.

One gateway for the module (AUTH=optional, the demo users alice and bob). Helpers and
flags are those of tests/test_page.py and tests/test_page_rooms.py.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests import test_page as shared
from tests.conftest import ROOT, RunningGateway, start_gateway
from tests.test_gateway_attachments import PDF, png
from tests.test_page import PHONE, fits_the_viewport, messages, say, screenshot
from tests.test_page_rooms import USERS, person, room_button

pytestmark = pytest.mark.browser

browser = shared.browser
open_page = shared.open_page

PNG = png(640, 400)
EXE = b"MZ\x90\x00" + b"\x00" * 60 + b"PE\x00\x00" + b"\x90" * 100


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    users = [flag for user, word in USERS.items() for flag in ("--cognito-user", f"{user}:{word}")]
    lifted = ["--env", "RATE_PER_SECOND=10000", "--env", "RATE_BURST=10000"]
    running = start_gateway(
        tmp_path_factory.mktemp("files"),
        ROOT,
        "--no-autoreload",
        "--env",
        "AUTH=optional",
        *lifted,
        *users,
    )
    yield running
    running.stop()


def a_file(page: Any, name: str, kind: str, data: bytes | int) -> Any:
    """A DataTransfer holding one file, made in the page (as a paste or a drop carries it);
    an int is a size: that many zero bytes."""
    content = list(data) if isinstance(data, bytes) else data
    return page.evaluate_handle(
        """([name, kind, content]) => {
          const bytes = new Uint8Array(content);
          const transfer = new DataTransfer();
          transfer.items.add(new File([bytes], name, { type: kind }));
          return transfer;
        }""",
        [name, kind, content],
    )


def paste(page: Any, name: str, kind: str, data: bytes | int) -> None:
    transfer = a_file(page, name, kind, data)
    page.get_by_label("Message (or /help)").evaluate(
        """(input, transfer) => input.dispatchEvent(
             new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true }))""",
        transfer,
    )


def drop(page: Any, name: str, kind: str, data: bytes | int) -> None:
    transfer = a_file(page, name, kind, data)
    page.dispatch_event("#scroller", "dragover", {"dataTransfer": transfer})
    page.dispatch_event("#scroller", "drop", {"dataTransfer": transfer})


def is_upload(request: Any) -> bool:
    """A browser's POST of a file to the file storage (not Cognito's JSON POSTs)."""
    kind = request.headers.get("content-type", "")
    return request.method == "POST" and kind.startswith("multipart/form-data")


def uploads_finished(page: Any) -> list[float]:
    """When each POST to the file storage ended (epoch seconds), as Chromium timed it."""
    ends: list[float] = []

    def finished(request: Any) -> None:
        if is_upload(request):
            timing = request.timing
            ends.append((timing["startTime"] + timing["responseEnd"]) / 1000)

    page.on("requestfinished", finished)
    return ends


def shown_at(page: Any, script: str) -> float:
    """When (epoch seconds, this process's clock: an upper bound, it includes the report's
    way back) the page first satisfies `script`, polled every frame. Not the page's own
    clock: Playwright's clock may be installed there."""
    page.wait_for_function(f"() => {script}", polling="raf")
    return time.time()


def attachment(page: Any, name: str) -> Any:
    return page.locator("#log li.message:not(.pending) .attachment", has_text=name)


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def private_room_with_bob(alice: Any, bob: Any, room: str) -> None:
    alice.get_by_label("New room").fill(room)
    alice.get_by_label("Private (signed in)").check()
    alice.get_by_role("button", name="Create").click()
    expect(alice.locator("#room-title")).to_have_text(f"#{room}")
    alice.get_by_label("Invite to this room").fill("bob")
    alice.get_by_label("Invite to this room").press("Enter")
    expect(room_button(bob, room)).to_be_visible()
    room_button(bob, room).click()
    expect(bob.locator("#room-title")).to_have_text(f"#{room}")


def watched(page: Any) -> None:
    """Before the page loads: Playwright's clock (to jump past a URL's lifetime), and the
    frames it sends, kept in `page.sent`."""
    page.sent = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda frame: page.sent.append(frame)))
    page.clock.install()


def downloads_asked(page: Any) -> int:
    return len([frame for frame in page.sent if '"download"' in frame])


def test_a_pasted_png_and_a_dropped_pdf_reach_bob_at_once_and_download_byte_identical(
    gateway: RunningGateway, open_page: Any
) -> None:
    alice = person(open_page, gateway, "alice", "hall")
    bob = person(open_page, gateway, "bob", "hall", before=watched)
    private_room_with_bob(alice, bob, "design")
    ends = uploads_finished(alice)

    paste(alice, "image.png", "image/png", PNG)
    bob_saw_image = shown_at(
        bob,
        """(() => { const img = document.querySelector("#log li.message .attachment img");
             return img && img.complete && img.naturalWidth === 640; })()""",
    )
    drop(alice, "spec.pdf", "application/pdf", PDF)
    bob_saw_file = shown_at(
        bob,
        """[...document.querySelectorAll("#log li.message .attachment a[download]")]
             .some((a) => a.textContent === "spec.pdf" && a.href.startsWith("http"))""",
    )
    assert len(ends) == 2, ends
    delays = [bob_saw_image - ends[0], bob_saw_file - ends[1]]
    print(f"upload end to bob's preview: {delays[0]:.3f} s, to bob's file link: {delays[1]:.3f} s")
    assert all(0 < delay < 1.0 for delay in delays), delays

    # Exactly two messages, each once, for both; the preview was sized before it loaded.
    for page in (alice, bob):
        expect(page.locator("#log li.message:not(.pending) .attachment")).to_have_count(2)
    preview = attachment(bob, "KB").locator(".preview")
    assert preview.evaluate("(box) => [box.style.width, box.style.aspectRatio]") == [
        "320px",
        "320 / 200",
    ]
    assert attachment(bob, "spec.pdf").inner_text().startswith("spec.pdf")
    expect(attachment(bob, "spec.pdf")).to_contain_text("application/pdf")

    image_url = attachment(bob, "KB").locator("a").get_attribute("href")
    assert image_url == attachment(bob, "KB").locator("img").get_attribute("src")
    file_url = attachment(bob, "spec.pdf").locator("a").get_attribute("href")
    assert fetch(image_url) == PNG
    assert fetch(file_url) == PDF

    # A click on the preview opens the full image.
    with bob.context.expect_page() as opened:
        attachment(bob, "KB").locator("a").click()
    full = opened.value
    full.wait_for_load_state()
    assert full.url == image_url
    full.close()
    screenshot(bob, "files-desktop.png")

    # Download URLs live 5 minutes: 4.5 minutes on, bob's page asks again for both.
    assert downloads_asked(bob) == 2
    bob.clock.fast_forward("04:30")
    for _ in range(100):
        if downloads_asked(bob) == 4:
            break
        bob.wait_for_timeout(50)
    assert downloads_asked(bob) == 4
    assert fetch(attachment(bob, "spec.pdf").locator("a").get_attribute("href")) == PDF


def test_a_file_too_big_and_an_image_that_is_not_one_are_refused_in_words(
    gateway: RunningGateway, open_page: Any
) -> None:
    alice = person(open_page, gateway, "alice", "refusals")
    uploads = []
    alice.on("request", lambda r: uploads.append(r.url) if is_upload(r) else None)
    sent: list[str] = []
    alice.on("websocket", lambda ws: ws.on("framesent", lambda frame: sent.append(frame)))
    alice.reload()
    alice.get_by_label("Username").fill("alice")
    alice.get_by_label("Password").fill(USERS["alice"])
    alice.get_by_label("Password").press("Enter")
    expect(alice.locator("#status")).to_have_attribute("data-state", "online")

    drop(alice, "huge.png", "image/png", 11 * 1024 * 1024)
    errors = alice.locator("#log li.error")
    expect(errors).to_have_count(1)
    expect(errors.last).to_have_text(
        "huge.png is too big (11.0 MB): images can be up to 10.0 MB. Nothing was sent"
    )
    alice.get_by_role("button", name="Attach a file").wait_for()
    alice.locator("#file-input").set_input_files(
        files=[{"name": "holiday.png", "mimeType": "image/png", "buffer": EXE}]
    )
    expect(errors).to_have_count(2)
    expect(errors.last).to_have_text(
        "holiday.png is not the PNG image its type says: nothing was sent"
    )
    assert not [f for f in sent if '"upload"' in f], sent
    assert uploads == []

    # The file storage cannot be reached: the upload failed, in words, and nothing is posted.
    alice.route(
        "**/*", lambda route: route.abort() if is_upload(route.request) else route.continue_()
    )
    drop(alice, "notes.txt", "text/plain", b"minutes of the meeting\n")
    expect(errors).to_have_count(3)
    expect(errors.last).to_have_text(
        "Upload of notes.txt failed: the file storage could not be reached. "
        "Nothing was sent; try again"
    )
    expect(alice.locator(".upload-progress")).to_be_hidden()
    say(alice, "still here")
    expect(messages(alice).last).to_have_text("still here")
    expect(alice.locator("#log li.message")).to_have_count(1)
    assert len([f for f in sent if '"upload"' in f]) == 1, sent
    assert not [f for f in sent if '"attachment"' in f], sent
    assert len(uploads) == 1, uploads
    screenshot(alice, "files-refused.png")


def test_a_phone_reaches_the_attach_button_and_previews_fit(
    gateway: RunningGateway, open_page: Any
) -> None:
    alice = person(open_page, gateway, "alice", "phone-files", viewport=PHONE)
    attach = alice.get_by_role("button", name="Attach a file")
    expect(attach).to_be_in_viewport(ratio=1)
    held: list[Any] = []
    alice.route(
        "**/*", lambda route: held.append(route) if is_upload(route.request) else route.continue_()
    )
    with alice.expect_file_chooser() as chooser:
        attach.click()
    chooser.value.set_files(files=[{"name": "wide.png", "mimeType": "image/png", "buffer": PNG}])
    # While the file goes up: a progress bar with its name, above the composer.
    progress = alice.locator(".upload-progress")
    expect(progress).to_be_visible()
    expect(progress).to_have_text("Uploading wide.png…")
    expect(progress.get_by_role("progressbar", name="Uploading wide.png…")).to_be_in_viewport()
    fits_the_viewport(alice)
    screenshot(alice, "files-phone-uploading.png")
    while not held:
        alice.wait_for_timeout(50)
    expect(alice.locator("#log li.message")).to_have_count(0)
    held[0].continue_()
    expect(progress).to_be_hidden()
    preview = alice.locator("#log li.message:not(.pending) .attachment img")
    expect(preview).to_have_js_property("naturalWidth", 640)
    box = preview.bounding_box()
    assert box["x"] > 0 and box["x"] + box["width"] <= PHONE["width"], box
    assert abs(box["width"] / box["height"] - 640 / 400) < 0.02, box
    fits_the_viewport(alice)
    expect(attach).to_be_in_viewport(ratio=1)
    screenshot(alice, "files-phone.png")
