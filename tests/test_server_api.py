"""The unchanged `openai` client against a live `kinema serve` (tiny random model, 64x64, 2 steps)."""

from __future__ import annotations

import io
import struct
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import openai
import pytest
from PIL import Image

from conftest import (SERVER_KEY_A, SERVER_KEY_B, SERVER_KEY_C, SERVER_KEY_D, SERVER_KEY_ENV)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SMALL = {"size": "64x64", "seconds": "0.5"}   # 4 frames at the test server's 8 fps


def world_clip(tmp_path, name="clip.mp4", color="red", shape="circle", motion="right", frames=9):
    from kinema.world.render import render_video
    from kinema.world.spec import ObjectSpec, SceneSpec

    spec = SceneSpec(width=64, height=64, fps=8, num_frames=frames, background="navy",
                     objects=[ObjectSpec(shape=shape, color=color, size="large", motion=motion, start=(0.3, 0.5))])
    path = tmp_path / name
    render_video(spec).save(path)
    return path


def wait_done(client, video_id, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = client.videos.retrieve(video_id)
        if v.status in ("completed", "failed"):
            return v
        time.sleep(0.1)
    raise AssertionError(f"{video_id} not done after {timeout} s: {v}")


@pytest.fixture(scope="module")
def client(server_client_factory):
    return server_client_factory(SERVER_KEY_A)


@pytest.fixture(scope="module")
def done_video(client):
    """A completed video made with OpenAI's own values, shared by several tests."""
    return client.videos.create_and_poll(prompt="a large red circle moves right on a navy background",
                                         model="sora-2", seconds="4", size="1280x720")


def test_create_and_poll_with_openai_values(done_video):
    v = done_video
    assert v.status == "completed", v.error
    assert v.object == "video" and v.id.startswith("video_")
    assert v.progress == 100 and v.model == "sora-2"
    assert v.seconds == "4" and v.size == "1280x720"
    assert v.created_at <= v.completed_at < v.expires_at
    assert v.error is None and v.remixed_from_video_id is None
    k = v.model_extra["kinema"]
    # 1280x720 keeps its aspect at the server's scale (64): 112x64; "4" OpenAI seconds x 0.125 = 0.5 s at 8 fps.
    assert (k["width"], k["height"], k["num_frames"]) == (112, 64, 4)


def test_download_content_all_variants(client, done_video, tmp_path):
    from kinema.video import Video

    mp4 = client.videos.download_content(done_video.id)
    path = tmp_path / "out.mp4"
    mp4.write_to_file(path)
    clip = Video.read(path)
    assert (clip.width, clip.height, clip.num_frames) == (112, 64, 4)
    thumb = client.videos.download_content(done_video.id, variant="thumbnail")
    img = Image.open(io.BytesIO(thumb.content))
    assert img.format == "WEBP" and img.size == (112, 64)
    sheet = client.videos.download_content(done_video.id, variant="spritesheet")
    img = Image.open(io.BytesIO(sheet.content))
    assert img.format == "JPEG" and img.size == (112 * 4, 64)
    with pytest.raises(openai.BadRequestError):
        client.videos.download_content(done_video.id, variant="poster")


def test_poll_header_and_progress_from_0_to_100(client):
    raw = client.videos.with_raw_response.create(prompt="a small blue square moves up", extra_body={
        "size": "64x64", "seconds": "1", "steps": 40})
    assert raw.headers["openai-poll-after-ms"] == "100"
    video = raw.parse()
    assert video.status == "queued" and video.progress == 0
    seen = []
    deadline = time.time() + 120
    while time.time() < deadline:
        r = client.videos.with_raw_response.retrieve(video.id)
        v = r.parse()
        seen.append(v.progress)
        if v.status in ("queued", "in_progress"):
            assert r.headers["openai-poll-after-ms"] == "100"
        else:
            assert "openai-poll-after-ms" not in r.headers
            break
        time.sleep(0.03)
    assert v.status == "completed" and seen[-1] == 100
    assert seen == sorted(seen), "progress never goes back"
    assert any(0 < p < 100 for p in seen), seen
    assert v.model_extra["kinema"]["steps"] == 40
    # poll() follows the header and returns the finished object
    assert client.videos.poll(video.id).status == "completed"


def test_json_body_and_image_to_video(client, server_live, tmp_path):
    r = httpx.post(server_live.base_url + "/v1/videos", headers={"Authorization": f"Bearer {SERVER_KEY_A}"},
                   json={"prompt": "a large green square", "size": "64x64", "seconds": "0.5", "seed": 7})
    assert r.status_code == 200, r.text
    assert r.json()["kinema"]["seed"] == 7
    img = Image.new("RGB", (200, 100), (240, 220, 40))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    v = client.videos.create_and_poll(prompt="a yellow picture comes alive", input_reference=("still.png", buf.getvalue(),
                                      "image/png"), size="64x64", seconds="1", poll_interval_ms=100)
    assert v.status == "completed", v.error
    assert v.model_extra["kinema"]["mode"] == "image"
    from kinema.video import Video

    client.videos.download_content(v.id).write_to_file(tmp_path / "i2v.mp4")
    frames = Video.read(tmp_path / "i2v.mp4").frames
    assert frames.shape[0] == 8
    assert np.abs(frames[0].astype(int).mean(axis=(0, 1)) - np.array([240, 220, 40])).max() < 12
    assert wait_done(client, r.json()["id"]).status == "completed"


def test_list_paging_and_key_isolation(server_client_factory, done_video):
    c = server_client_factory(SERVER_KEY_C)
    ids = [c.videos.create(prompt=f"a white star number {i}", **SMALL).id for i in range(3)]
    page = c.videos.list(limit=2)
    assert [v.id for v in page.data] == ids[::-1][:2]
    assert page.has_more and page.last_id == ids[1]
    nxt = c.videos.list(limit=2, after=page.last_id)
    assert [v.id for v in nxt.data] == [ids[0]] and not nxt.has_more
    assert [v.id for v in c.videos.list(limit=2)] == ids[::-1]            # auto-pagination
    assert [v.id for v in c.videos.list(order="asc", limit=10).data] == ids
    # another key sees none of these, and none of key A's
    other = server_client_factory(SERVER_KEY_ENV)
    assert other.videos.list().data == []
    with pytest.raises(openai.NotFoundError):
        other.videos.retrieve(done_video.id)
    with pytest.raises(openai.NotFoundError):
        other.videos.download_content(done_video.id)
    for i in ids:
        assert wait_done(c, i).status == "completed"


def test_delete(client):
    v = client.videos.create_and_poll(prompt="a purple triangle", **SMALL)
    d = client.videos.delete(v.id)
    assert (d.id, d.deleted, d.object) == (v.id, True, "video.deleted")
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(v.id)
    with pytest.raises(openai.NotFoundError):
        client.videos.download_content(v.id)
    with pytest.raises(openai.NotFoundError):
        client.videos.delete(v.id)
    assert v.id not in [x.id for x in client.videos.list(limit=100).data]


def test_remix(client, done_video):
    r = client.videos.remix(done_video.id, prompt="a large blue circle moves right on a navy background")
    assert r.remixed_from_video_id == done_video.id and r.status == "queued"
    r = client.videos.poll(r.id)
    assert r.status == "completed", r.error
    assert (r.size, r.seconds, r.model) == (done_video.size, done_video.seconds, done_video.model)
    k = r.model_extra["kinema"]
    assert k["mode"] == "edit" and (k["width"], k["height"], k["num_frames"]) == (112, 64, 4)


def test_edits_by_id_and_upload(client, done_video, tmp_path):
    # This client's edit() cannot send video={"id": ...} itself (it insists on a file), so the
    # reference goes in extra_body, as OpenAI's API shape `video[id]`.
    e = client.videos.edit(prompt="make it green", video=openai.omit, extra_body={"video": {"id": done_video.id}})
    assert e.remixed_from_video_id == done_video.id
    e = client.videos.poll(e.id)
    assert e.status == "completed", e.error
    assert e.model_extra["kinema"]["mode"] == "edit" and e.model_extra["kinema"]["num_frames"] == 4
    clip = world_clip(tmp_path, frames=9)
    with open(clip, "rb") as f:
        u = client.videos.edit(prompt="a large orange circle moves right", video=f)
    u = client.videos.poll(u.id)
    assert u.status == "completed", u.error
    assert u.size == "64x64" and u.model_extra["kinema"]["num_frames"] == 9


def test_extensions(client, done_video):
    x = client.videos.extend(prompt="it keeps going", seconds="4", video=openai.omit,
                             extra_body={"video": done_video.id})      # a bare id works too
    x = client.videos.poll(x.id)
    assert x.status == "completed", x.error
    assert x.seconds == "8"                      # the stitched total, in the request's units
    k = x.model_extra["kinema"]
    assert k["mode"] == "extend" and k["num_frames"] == 4 + 4 and (k["width"], k["height"]) == (112, 64)


def test_characters(client, tmp_path, server_client_factory):
    clip = world_clip(tmp_path, color="red", shape="circle")
    with open(clip, "rb") as f:
        ch = client.videos.create_character(name="Bob", video=f)
    assert ch.id.startswith("char_") and ch.name == "Bob" and ch.created_at > 0
    got = client.videos.get_character(ch.id)
    assert (got.id, got.name) == (ch.id, "Bob")
    assert got.model_extra["look"] == "a large red circle"
    v = client.videos.create_and_poll(prompt="Bob moves left", **SMALL)
    assert v.status == "completed", v.error
    assert v.prompt == "Bob moves left"
    assert v.model_extra["kinema"]["effective_prompt"] == "a large red circle moves left"
    assert v.model_extra["kinema"]["characters"] == [{"id": ch.id, "name": "Bob"}]
    with pytest.raises(openai.NotFoundError):
        server_client_factory(SERVER_KEY_C).videos.get_character(ch.id)
    with pytest.raises(openai.NotFoundError):
        client.videos.get_character("char_nope")
    blank = tmp_path / "blank.png"
    Image.new("RGB", (64, 64), (20, 28, 70)).save(blank)
    with open(blank, "rb") as f, pytest.raises(openai.BadRequestError):
        client.videos.create_character(name="Nobody", video=f)


def _bomb_png(width=60000, height=60000) -> bytes:
    """A PNG whose header claims a huge image; its few bytes decompress to nothing like that."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")


def test_errors_are_openai_shaped(client, server_client_factory, server_live):
    cases = [
        dict(prompt="x", size="12x4000"),
        dict(prompt="x", size="wide"),
        dict(prompt="x", seconds="-3"),
        dict(prompt="x", model="dall-e-2"),
        dict(prompt="   "),
        dict(prompt="x" * 3001),
        dict(prompt="x", extra_body={"steps": 0}),
        dict(prompt="x", extra_body={"seed": "abc"}),
    ]
    for kwargs in cases:
        with pytest.raises(openai.BadRequestError) as info:
            client.videos.create(**kwargs)
        err = info.value
        assert err.status_code == 400 and err.type == "invalid_request_error", kwargs
        assert err.message and err.param, kwargs
    with pytest.raises(openai.BadRequestError) as info:
        client.videos.create(prompt="x", size="64x64", input_reference=("bomb.png", _bomb_png(), "image/png"))
    assert info.value.code == "image_too_large" and info.value.param == "input_reference"
    with pytest.raises(openai.AuthenticationError) as info:
        server_client_factory("sk-wrong").videos.list()
    assert info.value.status_code == 401 and info.value.code == "invalid_api_key"
    r = httpx.get(server_live.base_url + "/v1/videos")
    assert r.status_code == 401 and set(r.json()["error"]) == {"message", "type", "param", "code"}
    with pytest.raises(openai.NotFoundError) as info:
        client.videos.retrieve("video_does_not_exist")
    assert info.value.status_code == 404 and info.value.code == "not_found"
    with pytest.raises(openai.APIStatusError) as info:
        client.videos.create(prompt="x", size="64x64", input_reference=("big.png", b"\0" * (1024 * 1024 + 10),
                                                                         "image/png"))
    assert info.value.status_code == 413 and info.value.code == "request_too_large"
    r = httpx.get(server_live.base_url + "/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error"


def test_over_quota_is_429(server_client_factory):
    b = server_client_factory(SERVER_KEY_B)            # max_jobs=1 in the keys file
    first = b.videos.create(prompt="a slow one", size="64x64", seconds="1", extra_body={"steps": 60})
    with pytest.raises(openai.RateLimitError) as info:
        b.videos.create(prompt="one too many", **SMALL)
    assert info.value.status_code == 429 and info.value.code == "too_many_active_jobs"
    assert wait_done(b, first.id).status == "completed"
    assert b.videos.create_and_poll(prompt="now there is room", **SMALL).status == "completed"


def test_failed_generation_is_recorded_and_server_lives_on(client):
    # The server allows 3000 prompt characters, the pipeline 1000: the job fails in the worker.
    v = client.videos.create_and_poll(prompt="a red circle " * 100, **SMALL)
    assert v.status == "failed"
    assert v.error.code == "invalid_request" and "1000" in v.error.message
    with pytest.raises(openai.BadRequestError):
        client.videos.download_content(v.id)
    assert client.videos.create_and_poll(prompt="still alive", **SMALL).status == "completed"


def test_twenty_concurrent_creates_all_complete(server_client_factory):
    c = server_client_factory(SERVER_KEY_D)
    with ThreadPoolExecutor(max_workers=20) as pool:
        created = list(pool.map(lambda i: c.videos.create(prompt=f"a small pink star moves down {i}", **SMALL),
                                range(20)))
    assert len({v.id for v in created}) == 20
    done = [wait_done(c, v.id, timeout=300) for v in created]
    assert [v.status for v in done] == ["completed"] * 20
    assert {v.id for v in c.videos.list(limit=100)} == {v.id for v in created}
