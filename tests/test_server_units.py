"""Server pieces without a server: size/seconds/model mapping, keys, character prompts, the CLI's
refusal to serve openly beyond loopback."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from kinema.server.auth import KeyRing, is_loopback, owner_for
from kinema.server.characters import CharacterError, describe, substitute
from kinema.server.sizes import ModelNames, SizeError, frames_for, parse_seconds, parse_size


@pytest.mark.parametrize("size, scale, expected", [
    ("1280x720", 128, (224, 128)), ("720x1280", 128, (128, 224)),
    ("1792x1024", 128, (224, 128)), ("1024x1792", 128, (128, 224)),
    ("1280x720", 64, (112, 64)), (None, 128, (128, 224)),
    ("128x128", 128, (128, 128)), ("96x48", 128, (96, 48)), ("200X100", 128, (200, 100)),
])
def test_sizes(size, scale, expected):
    assert parse_size(size, scale) == expected


@pytest.mark.parametrize("size", ["wide", "16x16", "2000x100", "0x0", "1024x1024", "12"])
def test_bad_sizes(size):
    with pytest.raises(SizeError) as info:
        parse_size(size, 128, max_pixels=512 * 512)
    assert info.value.param == "size"


def test_seconds_and_frames():
    assert [parse_seconds(s) for s in ("4", "8", "12", None)] == [2.0, 4.0, 6.0, 2.0]
    assert parse_seconds("4", openai_scale=1.0) == 4.0
    assert parse_seconds("2") == 2.0 and parse_seconds("4.0") == 4.0 and parse_seconds(1.5) == 1.5
    for bad in ("soon", "-1", "0", "nan", "inf"):
        with pytest.raises(SizeError):
            parse_seconds(bad)
    assert frames_for(2.0, 12) == 24 and frames_for(0.01, 12) == 1


def test_model_names():
    names = ModelNames("kinema-tiny")
    assert names.resolve(None) == "kinema-tiny"
    assert names.resolve("sora-2") == "sora-2" and names.resolve("sora-2-pro-2025-10-06") == "sora-2-pro-2025-10-06"
    assert names.resolve("kinema") == "kinema"
    with pytest.raises(SizeError):
        names.resolve("gpt-image-1")


def test_keys(tmp_path, monkeypatch):
    monkeypatch.delenv("KINEMA_API_KEYS", raising=False)
    assert not KeyRing.load().enabled and KeyRing.load().lookup(None).owner == "local"
    f = tmp_path / "keys"
    f.write_text("# comment\nsk-one name=studio max_jobs=2\n\nsk-two   # trailing comment\n")
    ring = KeyRing.load("sk-env, ,", f)
    assert len(ring) == 3
    assert ring.lookup("sk-one").name == "studio" and ring.lookup("sk-one").max_jobs == 2
    assert ring.lookup("sk-two").max_jobs is None and ring.lookup("sk-env").owner == owner_for("sk-env")
    assert ring.lookup("sk-nope") is None and ring.lookup(None) is None
    assert "sk-one" not in ring.lookup("sk-one").owner
    f.write_text("sk-x colour=red\n")
    from kinema.errors import KinemaError

    with pytest.raises(KinemaError):
        KeyRing.load("", f)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")


def test_characters_substitution():
    looks = [("Bob", "a large red circle"), ("Bo", "a small blue star")]
    assert substitute("Bob moves left", looks) == "a large red circle moves left"
    assert substitute("the Bob and Bo meet; Bobby stays", looks) == \
        "a large red circle and a small blue star meet; Bobby stays"
    assert substitute("nobody here", looks) == "nobody here"
    facts = {"objects": [{"color": "red", "shape": "circle", "size": "large", "track": [[0, 0], None]},
                         {"color": "blue", "shape": "star", "size": "small", "track": [[0, 0], [0, 0]]}]}
    assert describe(facts) == "a small blue star"                       # seen in more frames
    with pytest.raises(CharacterError):
        describe({"objects": []})


def test_serve_refuses_open_non_loopback(tmp_path, monkeypatch, capsys):
    from kinema.cli import main

    monkeypatch.delenv("KINEMA_API_KEYS", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "without API keys" in err and "KINEMA_API_KEYS" in err
    assert main(["serve", "--model", str(tmp_path / "missing"), "--data", str(tmp_path)]) == 2
    assert "no such model folder" in capsys.readouterr().err


def test_app_routes_in_process(tmp_path):
    """The app without workers, through Starlette's test client: JSON create, 401, page and config."""
    from fastapi.testclient import TestClient

    from kinema.server.app import create_app
    from kinema.server.config import ServerConfig

    cfg = ServerConfig(data_dir=tmp_path, keys=KeyRing.load("sk-a"))
    client = TestClient(create_app(cfg))
    assert client.get("/").status_code == 200 and 'id="gallery"' in client.get("/").text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/v1/kinema/config").json()["sizes"]["1280x720"] == "224x128"
    assert client.post("/v1/videos", json={"prompt": "x"}).status_code == 401
    h = {"Authorization": "Bearer sk-a"}
    r = client.post("/v1/videos", json={"prompt": "a red circle", "seconds": "4", "size": "1280x720"}, headers=h)
    assert r.status_code == 200 and r.json()["status"] == "queued"
    assert r.headers["openai-poll-after-ms"] == "1000"
    assert r.json()["kinema"]["num_frames"] == 24 and r.json()["kinema"]["width"] == 224
    png = io.BytesIO()
    Image.new("RGB", (300, 200), (200, 10, 10)).save(png, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
    r = client.post("/v1/videos", json={"prompt": "it moves", "size": "64x64", "input_reference": {"image_url": url}},
                    headers=h)
    assert r.status_code == 200 and r.json()["kinema"]["mode"] == "image"
    saved = Image.open(tmp_path / "uploads" / r.json()["id"] / "image.png")
    assert saved.size == (64, 64)                     # centre-cropped to the aspect, resized
    r = client.post("/v1/videos", json={"prompt": "x", "input_reference": {"image_url": "https://example.com/a.png"}},
                    headers=h)
    assert r.status_code == 400 and r.json()["error"]["param"] == "input_reference"
    bad = client.post("/v1/videos", content=b"[1, 2]", headers={**h, "Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
    assert client.get("/v1/videos?order=sideways", headers=h).status_code == 400
    assert client.get("/v1/videos?after=video_x", headers=h).status_code == 400
    assert client.get("/v1/videos?limit=500", headers=h).status_code == 400


def test_body_limit_without_content_length(tmp_path):
    from fastapi.testclient import TestClient

    from kinema.server.app import create_app
    from kinema.server.config import ServerConfig

    client = TestClient(create_app(ServerConfig(data_dir=tmp_path, max_upload_bytes=1000)))
    chunks = (b"x" * 500 for _ in range(10))        # streamed: no Content-Length to check up front
    r = client.post("/v1/videos", content=chunks, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
