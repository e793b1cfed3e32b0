"""scripts/gpu_round_configs.py writes v9's recipe (the configs kept with v9's report)."""

import functools
import json

import pytest
from conftest import ROOT, load_script

KEPT = ROOT / "benchmarks" / "results" / "kinema-tiny"


@functools.lru_cache(maxsize=1)
def _module():
    return load_script("scripts/gpu_round_configs.py")


REAL_LAYOUT_CHANNELS = _module()._init_layout_channels


@pytest.fixture(autouse=True)
def _init_without_layout(monkeypatch):
    """These tests reproduce v9's recipe, whose init (v9) had no layout channels; the shipped folder
    they name now holds v10, which has them (the last test reads it as it is)."""
    monkeypatch.setattr(_module(), "_init_layout_channels", lambda init: 0)


def test_round_configs_reproduce_v9s_teacher_and_distillation():
    teacher, distill = _module().round_configs(
        batch=256, cache_batches=200, teacher_s=345, distill_s=105, init="src/kinema/weights/kinema-tiny",
        text_encoder="/tmp/te/minilm-world", workers=14, cache_dir="/tmp/lcache_b256", teacher_out="/tmp/runs/teacher")
    for written, kept in ((teacher, "train_dit_gpu_b256_config_override.json"),
                          (distill, "train_dit_gpu_b256_distill_config_override.json")):
        v9 = json.loads((KEPT / kept).read_text())
        # the kept files carry a placeholder time limit; the round sets its own
        assert {k: v for k, v in written.items() if k != "time_limit_s"} == \
               {k: v for k, v in v9.items() if k != "time_limit_s"}
    assert teacher["time_limit_s"] == 345 and distill["time_limit_s"] == 105


def test_round_configs_load_as_training_configs(tmp_path):
    from kinema.train.config import resolve

    teacher, distill = _module().round_configs(
        batch=8, cache_batches=4, teacher_s=30, distill_s=10, init="src/kinema/weights/kinema-tiny",
        text_encoder=None, workers=0, cache_dir=str(tmp_path / "cache"), teacher_out=str(tmp_path / "teacher"),
        buckets=[[32, 32, 5], [32, 32, 1, 16]])
    for name, cfg in (("teacher", teacher), ("distill", distill)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(cfg))
        resolved = resolve("dit", "tiny", str(path))
        assert resolved.optim.batch_size == 8 and resolved.data.latent_cache_batches == 4
    assert resolved.guidance_distill == 5.0 and resolved.init == str(tmp_path / "teacher" / "final")


def test_frame_position_goes_to_both_runs_and_only_when_asked(tmp_path):
    from kinema.train.config import resolve

    kw = dict(batch=8, cache_batches=4, teacher_s=30, distill_s=10, init="src/kinema/weights/kinema-tiny",
              text_encoder=None, workers=0, cache_dir=str(tmp_path / "cache"), teacher_out=str(tmp_path / "t"))
    plain = _module().round_configs(**kw)
    placed = _module().round_configs(**kw, frame_position=True)
    assert all("model" not in cfg for cfg in plain)
    for cfg in placed:
        path = tmp_path / "c.json"
        path.write_text(json.dumps(cfg))
        assert resolve("dit", "tiny", str(path)).model["frame_position"] is True


def test_cross_position_text_refiner_and_grounding_go_to_both_runs_and_only_when_asked(tmp_path):
    from kinema.train.config import resolve

    kw = dict(batch=8, cache_batches=4, teacher_s=30, distill_s=10, init="src/kinema/weights/kinema-tiny",
              text_encoder=None, workers=0, cache_dir=str(tmp_path / "cache"), teacher_out=str(tmp_path / "t"))
    plain = _module().round_configs(**kw)
    assert all("grounding_loss_weight" not in cfg for cfg in plain)
    both = _module().round_configs(**kw, frame_position=True, cross_position=True, grounding=0.5, text_refiner=2)
    for cfg in both:
        path = tmp_path / "c.json"
        path.write_text(json.dumps(cfg))
        resolved = resolve("dit", "tiny", str(path))
        assert resolved.model == {**resolved.model, "frame_position": True, "cross_position": True,
                                  "text_refiner": 2}
        assert resolved.grounding_loss_weight == 0.5


def test_relation_captions_off_and_a_teacher_from_scratch(tmp_path):
    import subprocess
    import sys

    from kinema.train.config import resolve

    out = tmp_path / "cfg"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_round_configs.py"), str(out), "--teacher-s", "30",
                    "--distill-s", "10", "--init", "none", "--no-relation-captions"], check=True)
    teacher = resolve("dit", "tiny", str(out / "teacher.json"))
    distill = resolve("dit", "tiny", str(out / "distill.json"))
    assert teacher.init == "" and distill.init == "/tmp/runs/teacher/final"
    assert teacher.data.relation_captions is False and distill.data.relation_captions is False
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_round_configs.py"), str(out), "--teacher-s", "30",
                    "--distill-s", "10"], check=True)
    teacher = resolve("dit", "tiny", str(out / "teacher.json"))
    assert teacher.init == "src/kinema/weights/kinema-tiny" and teacher.data.relation_captions is True
    assert "relation_captions" not in json.loads((out / "teacher.json").read_text())["data"]


def test_teacher_lr_and_mirror_pairs_reach_the_runs_they_name(tmp_path):
    from kinema.train.config import resolve

    kw = dict(batch=8, cache_batches=4, teacher_s=30, distill_s=10, init="src/kinema/weights/kinema-tiny",
              text_encoder=None, workers=0, cache_dir=str(tmp_path / "cache"), teacher_out=str(tmp_path / "t"),
              buckets=[[32, 32, 5], [32, 32, 1, 16]])
    plain_teacher, plain_distill = _module().round_configs(**kw)
    teacher, distill = _module().round_configs(**kw, teacher_lr=5e-5, mirror_pairs=True)
    assert plain_teacher["optim"]["lr"] == 3e-4 and "mirror_pairs" not in plain_teacher["data"]
    resolved = {}
    for name, cfg in (("teacher", teacher), ("distill", distill)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(cfg))
        resolved[name] = resolve("dit", "tiny", str(path))
        assert resolved[name].data.mirror_pairs is True
    assert resolved["teacher"].optim.lr == 5e-5
    assert resolved["distill"].optim.lr == plain_distill["optim"]["lr"] == 1e-4


def test_a_layout_init_trains_on_as_a_layout_transformer(tmp_path, monkeypatch):
    monkeypatch.setattr(_module(), "_init_layout_channels", REAL_LAYOUT_CHANNELS)
    teacher, distill = _module().round_configs(
        batch=8, cache_batches=4, teacher_s=30, distill_s=10, init=str(ROOT / "src/kinema/weights/kinema-tiny"),
        text_encoder=None, workers=1, cache_dir=str(tmp_path / "c"), teacher_out=str(tmp_path / "t"))
    shipped = json.loads((ROOT / "src/kinema/weights/kinema-tiny/transformer/config.json").read_text())
    assert shipped["layout_channels"] in (26, 42)  # the base layout, or with the 4 x 4 outline
    want = shipped["layout_channels"]
    assert teacher["model"]["layout_channels"] == want and distill["model"]["layout_channels"] == want
