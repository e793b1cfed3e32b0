import json
import subprocess
import sys

import pytest

from kinema.cli import main
from kinema.video import Video


def run(*args):
    return subprocess.run([sys.executable, "-m", "kinema.cli", *args], capture_output=True, text=True)


def test_sample_writes_mp4_spec_and_caption(tmp_path):
    assert main(["world", "sample", "--n", "2", "--seed", "3", "--split", "heldout", "-o", str(tmp_path)]) == 0
    mp4s = sorted(tmp_path.glob("*.mp4"))
    assert len(mp4s) == 2
    for m in mp4s:
        spec = json.loads(m.with_suffix(".json").read_text())
        assert Video.read(m).num_frames == spec["num_frames"]
        assert m.with_suffix(".txt").read_text().strip()


def test_render_then_analyze_json(tmp_path, capsys):
    spec = {"width": 224, "height": 128, "fps": 12, "num_frames": 13, "background": "navy", "seed": 0,
            "objects": [{"shape": "circle", "color": "red", "size": "large", "motion": "right",
                         "start": [0.25, 0.5], "distance": 0.45}]}
    (tmp_path / "s.json").write_text(json.dumps(spec))
    assert main(["world", "render", str(tmp_path / "s.json"), "-o", str(tmp_path / "s.mp4")]) == 0
    capsys.readouterr()
    assert main(["analyze", str(tmp_path / "s.mp4"), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["background"] == "navy" and facts["num_frames"] == 13
    (obj,) = facts["objects"]
    assert (obj["color"], obj["shape"], obj["size"], obj["motion"]) == ("red", "circle", "large", "right")
    assert len(obj["track"]) == 13 and all(len(p) == 2 for p in obj["track"])


@pytest.mark.parametrize("content,needle", [
    ('{"objects": [{"shape": "hexagon", "color": "red"}]}', "objects[0].shape: unknown value 'hexagon'"),
    ('{"objects": [{"shape": "circle", "color": "red"}], "background": "teal"}', "background"),
    ("{not json", "not valid JSON"),
])
def test_bad_spec_is_one_line_exit_2(tmp_path, content, needle):
    (tmp_path / "bad.json").write_text(content)
    r = run("world", "render", str(tmp_path / "bad.json"), "-o", str(tmp_path / "x.mp4"))
    assert r.returncode == 2
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.parametrize("content", [b"", b"garbage bytes that are no video"])
def test_bad_video_is_one_line_exit_2(tmp_path, content):
    (tmp_path / "v.mp4").write_bytes(content)
    r = run("analyze", str(tmp_path / "v.mp4"), "--json")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    r = run("analyze", str(tmp_path / "missing.mp4"))
    assert r.returncode == 2 and "no such file" in r.stderr
