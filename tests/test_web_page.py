"""The web page at / in a real browser (Playwright driving Debian's chromium): enter a key, fill the
form, wait for the video in the gallery, check that it plays."""

from __future__ import annotations

import io
import shutil

import pytest
from PIL import Image

from conftest import SERVER_KEY_WEB

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]



@pytest.fixture()
def page():
    # `make test` installs Debian's chromium; without it this test fails rather than skipping.
    assert shutil.which(CHROMIUM), "Debian's chromium is missing at /usr/bin/chromium (make test installs it)"
    from playwright import sync_api
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            context = browser.new_context(accept_downloads=True)
            yield context.new_page()
        finally:
            browser.close()


def test_page_generates_plays_and_downloads(page, server_live):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server_live.base_url + "/")

    # without a key the server says so; with one, it is remembered across reloads
    page.wait_for_selector("#form-status.error")
    page.fill("#api-key", SERVER_KEY_WEB)
    page.click("#save-key")
    page.reload()
    assert page.input_value("#api-key") == SERVER_KEY_WEB
    assert page.evaluate("localStorage.getItem('kinema.apiKey')") == SERVER_KEY_WEB

    page.fill("#prompt", "a large red circle moves right on a navy background")
    page.select_option("#mode", "text")
    page.fill("#seconds", "1")
    page.wait_for_function("document.querySelector('#size option[value=\"64x64\"]') !== null")
    page.select_option("#size", "64x64")
    page.fill("#seed", "5")
    page.click("#generate")

    # live progress while it runs, then a playable <video> in the gallery
    page.wait_for_selector(".card[data-status]", timeout=30_000)
    video = page.wait_for_selector(".card[data-status='completed'] video", timeout=120_000)
    page.wait_for_function("v => v.readyState >= 2 && v.duration > 0", arg=video, timeout=30_000)
    duration = video.evaluate("v => v.duration")
    assert duration == pytest.approx(1.0, abs=0.3)           # 8 frames at 8 fps
    video.evaluate("v => v.play()")
    page.wait_for_function("v => v.currentTime > 0", arg=video, timeout=30_000)
    assert video.evaluate("v => [v.videoWidth, v.videoHeight]") == [64, 64]

    with page.expect_download() as info:
        page.click(".card[data-status='completed'] a.download")
    download = info.value
    assert download.suggested_filename.endswith(".mp4")
    assert (open(download.path(), "rb").read(12))[4:8] == b"ftyp"

    # image -> video through the file input
    buf = io.BytesIO()
    Image.new("RGB", (96, 96), (40, 170, 60)).save(buf, format="PNG")
    page.select_option("#mode", "image")
    page.set_input_files("#file", files=[{"name": "green.png", "mimeType": "image/png", "buffer": buf.getvalue()}])
    page.fill("#prompt", "a green picture")
    page.click("#generate")
    page.wait_for_function("document.querySelectorAll(\".card[data-status='completed'] video\").length >= 2",
                           timeout=120_000)
    assert errors == []
