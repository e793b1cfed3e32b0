"""`kinema generate` end to end with a saved tiny model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kinema import Video
from kinema.cli import main
from kinema.models.dit import DiTConfig
from kinema.models.text import TextEncoder
from kinema.models.vae import VAEConfig
from kinema.pipeline import Pipeline

PROMPT = "a large red circle moves right on a navy background"


@pytest.fixture(scope="module")
def te():
    return TextEncoder.from_pretrained()


@pytest.fixture(scope="module")
def model_dir(te, tmp_path_factory):
    p = Pipeline.from_configs(VAEConfig(base_channels=8), DiTConfig(hidden_size=32, depth=2, num_heads=2),
                              text_encoder=te, seed=0, steps=2, size="32x32", fps=8.0, seconds=1.0,
                              model_name="tiny-cli")
    return str(p.save_pretrained(tmp_path_factory.mktemp("cli") / "tiny"))


@pytest.fixture
def fast_text(te, monkeypatch):
    """In-process runs reuse the module's text encoder instead of loading MiniLM again."""
    monkeypatch.setattr(TextEncoder, "from_pretrained", classmethod(lambda cls, *a, **k: te))


def _kinema_script():
    exe = Path(sys.executable).with_name("kinema")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "kinema.cli"]


def test_cli_writes_a_playable_mp4(model_dir, tmp_path):
    out = tmp_path / "shot.mp4"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(_kinema_script() + ["generate", PROMPT, "-o", str(out), "--model", model_dir,
                                           "--num-frames", "9", "--seed", "3"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == str(out)
    for stage in ("text", "denoise", "decode", "write"):
        assert stage in r.stderr
    v = Video.read(out)
    assert v.num_frames == 9 and v.size == (32, 32) and v.fps == pytest.approx(8)
    assert v.metadata["prompt"] == PROMPT and v.metadata["seed"] == 3 and v.metadata["model"] == "tiny-cli"


def test_cli_png_for_one_frame(model_dir, tmp_path, fast_text, capsys):
    out = tmp_path / "still.png"
    assert main(["generate", PROMPT, "-o", str(out), "--model", model_dir, "--num-frames", "1", "--quiet",
                 "--size", "48x40"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    v = Video.read(out)
    assert v.num_frames == 1 and v.size == (48, 40)
    out2 = tmp_path / "still2.png"  # a .png with no frame count makes one frame
    assert main(["generate", PROMPT, "-o", str(out2), "--model", model_dir, "--quiet"]) == 0
    assert Video.read(out2).num_frames == 1


def test_cli_says_when_a_negative_prompt_cannot_act(model_dir, tmp_path, fast_text, capsys):
    """At guidance 1 nothing reads the negative prompt: the command says so instead of ignoring it
    silently; with guidance it acts, and no note is printed."""
    base = ["generate", PROMPT, "--model", model_dir, "--num-frames", "1", "--quiet", "--negative", "a blue square"]
    assert main(base + ["-o", str(tmp_path / "a.png"), "--guidance", "1"]) == 0
    err = capsys.readouterr().err
    assert "--negative had no effect" in err and "--guidance 2" in err
    assert main(base + ["-o", str(tmp_path / "b.png"), "--guidance", "3"]) == 0
    assert "no effect" not in capsys.readouterr().err


def test_cli_modes_from_files(model_dir, tmp_path, fast_text, capsys):
    clip = tmp_path / "clip.mp4"
    Video(np.random.default_rng(0).integers(0, 255, (5, 32, 32, 3), dtype=np.uint8), fps=8).save(clip)
    out = tmp_path / "ext.gif"
    assert main(["generate", PROMPT, "-o", str(out), "--model", model_dir, "--video", str(clip), "--mode",
                 "extend", "--num-frames", "4", "--quiet", "--sampler", "heun", "--shift", "3"]) == 0
    assert Video.read(out).num_frames == 9
    img = tmp_path / "img.png"
    Video(np.full((40, 40, 3), 128, np.uint8)).save(img)
    out = tmp_path / "i2v.mp4"
    assert main(["generate", PROMPT, "-o", str(out), "--model", model_dir, "--image", str(img), "--seconds", "1",
                 "--quiet", "--loop", "--guidance-interval", "0,0.5"]) == 0
    v = Video.read(out)
    assert v.num_frames == 8 and v.metadata["mode"] == "loop"
    assert v.metadata["guidance_interval"] == [0.0, 0.5]


@pytest.mark.parametrize("args,word", [
    (["--size", "12x5000"], "12x5000"),
    (["--size", "big"], "big"),
    (["--image", "/no/such/file.png"], "does not exist"),
    (["--num-frames", "0"], "num_frames"),
    (["--mode", "warp"], "warp"),
    (["--shift", "0"], "shift"),
    (["--guidance-interval", "0.9,0.1"], "guidance_interval"),
])
def test_cli_bad_input_exits_2_with_one_line(model_dir, tmp_path, fast_text, capsys, args, word):
    rc = main(["generate", PROMPT, "-o", str(tmp_path / "x.mp4"), "--model", model_dir, "--quiet"] + args)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and word in err and err.startswith("kinema: error:") and len(err.splitlines()) == 1
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.parametrize("prompt,out,word", [
    ("   ", "x.mp4", "prompt is empty"),
    (PROMPT, "x.avi", ".mp4"),
    (PROMPT, "x.png", "one frame"),
])
def test_cli_other_errors(model_dir, tmp_path, capsys, prompt, out, word):
    extra = ["--num-frames", "5"] if out.endswith(".png") else []
    rc = main(["generate", prompt, "-o", str(tmp_path / out), "--model", model_dir] + extra)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and word in err and len(err.splitlines()) == 1


def test_cli_missing_model_exits_2(tmp_path, capsys):
    rc = main(["generate", PROMPT, "-o", str(tmp_path / "x.mp4"), "--model", str(tmp_path / "none")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "does not exist" in err and len(err.splitlines()) == 1


def test_default_model_generates_with_no_model_argument(tmp_path):
    """The shipped kinema-tiny loads from the package and writes a playable clip + contact sheet."""
    from kinema.cli import main as cli_main

    out, sheet = tmp_path / "shot.mp4", tmp_path / "sheet.png"
    assert cli_main(["generate", "a small white square stays still on a gray background", "-o", str(out),
                     "--steps", "2", "--num-frames", "9", "--quiet", "--contact-sheet", str(sheet)]) == 0
    v = Video.read(out)
    assert v.num_frames == 9 and v.size == (128, 128)
    assert v.metadata["model"] == "kinema-tiny"
    assert sheet.stat().st_size > 0


def test_timings_json_reports_every_stage(tmp_path):
    """--timings-json: the stage breakdown benchmarks/generate.py prints, from the real command."""
    from kinema.cli import main as cli_main

    out, timings = tmp_path / "shot.mp4", tmp_path / "t.json"
    assert cli_main(["generate", PROMPT, "-o", str(out), "--steps", "2", "--num-frames", "5", "--quiet",
                     "--timings-json", str(timings)]) == 0
    report = json.loads(timings.read_text())
    stages = report["stages"]
    assert {"startup", "load", "text", "denoise", "decode", "write", "total_in_process"} <= set(stages)
    assert all(v >= 0 for v in stages.values()) and stages["denoise"] > 0
    parts = sum(v for k, v in stages.items() if k != "total_in_process")
    assert parts <= stages["total_in_process"] + 1e-3
    assert report["frames"] == Video.read(out).num_frames == 5 and report["peak_rss_mb"] > 50


@pytest.mark.parametrize("launcher", ["script", "module"])
def test_generate_ends_without_teardown_once_written(model_dir, tmp_path, launcher):
    """After a successful generate the process skips the interpreter's teardown (atexit handlers
    do not run), with its output whole and stdout flushed; a failed one exits the ordinary way."""
    hook = "import atexit; atexit.register(lambda: print('TEARDOWN', flush=True)); "
    if launcher == "script":
        cmd = [sys.executable, "-c", hook + "from kinema.cli import entry; entry()"]
    else:  # python -m kinema.cli: the commands must reach the module that runs entry()
        cmd = [sys.executable, "-c", hook + "import runpy, sys; sys.argv[0] = 'kinema'; "
               "runpy.run_module('kinema.cli', run_name='__main__')"]
    out = tmp_path / "shot.mp4"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    ok = subprocess.run(cmd + ["generate", PROMPT, "-o", str(out), "--model", model_dir, "--num-frames", "5",
                               "--quiet"], capture_output=True, text=True, timeout=120, env=env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().splitlines() == [str(out)]
    assert Video.read(out).num_frames == 5
    bad = subprocess.run(cmd + ["generate", "   ", "-o", str(tmp_path / "x.mp4"), "--model", model_dir],
                         capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode == 2 and "prompt is empty" in bad.stderr
    assert "TEARDOWN" in bad.stdout


@pytest.mark.parametrize("value,word", [("colour", "'colour'"), (",", "non-empty")])
def test_eval_refuses_unknown_categories_in_one_line(tmp_path, capsys, value, word):
    rc = main(["eval", "--categories", value, "-o", str(tmp_path / "report")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and word in err and err.startswith("kinema: error:") and len(err.splitlines()) == 1
    assert not (tmp_path / "report").exists()
