"""benchmarks/direction_escape.py: its scenes, its pair batch and its training steps."""

import subprocess
import sys

import torch
from conftest import load_script


def _module():
    return load_script("benchmarks/direction_escape.py")


def _tiny_pipeline():
    from kinema.models.dit import DiTConfig
    from kinema.models.text import TextEncoder
    from kinema.models.vae import VAEConfig
    from kinema.pipeline import Pipeline

    return Pipeline.from_configs(VAEConfig(base_channels=8), DiTConfig(hidden_size=32, depth=2, num_heads=2),
                                 text_encoder=TextEncoder.from_pretrained(), seed=0, steps=2, fps=8.0, seconds=1.0)


def test_pair_scenes_move_left_keep_to_the_train_split_and_differ_from_the_probe_scenes():
    from kinema.world.mirror import has_heldout_object, mirror_spec

    mod = _module()
    specs = mod.pair_scenes(6, seed=0, width=64, height=64, frames=9)
    assert len(specs) == 6 and all(s.objects[0].motion == "left" and s.num_frames == 9 for s in specs)
    assert not any(has_heldout_object(s) or has_heldout_object(mirror_spec(s)) for s in specs)
    probe = load_script("benchmarks/motion_words.py").scenes(48, 0, 64, 64)
    starts = {tuple(s.objects[0].start) for s in probe}
    assert not any(tuple(s.objects[0].start) in starts for s in specs)


def test_pair_batch_holds_each_scene_then_its_mirror_with_the_other_word():
    from kinema.world.captions import canonical_caption
    from kinema.world.render import render

    mod = _module()
    pipe = _tiny_pipeline()
    specs = mod.pair_scenes(2, seed=1, width=32, height=32, frames=5)
    latents, states, mask = mod.pair_batch(pipe, specs)
    assert latents.shape[0] == 4 and states.shape[0] == 4
    clip = torch.from_numpy(render(specs[1]).transpose(3, 0, 1, 2).copy()).float()[None] / 127.5 - 1.0
    with torch.no_grad():
        torch.testing.assert_close(latents[3:4], pipe.vae.encode(clip.flip(-1)).float())
        torch.testing.assert_close(latents[1:2], pipe.vae.encode(clip).float())
    caption = canonical_caption(specs[1])
    assert " left " in f" {caption} "
    mirrored, _ = pipe.text_encoder.encode([caption.replace("left", "right")])
    torch.testing.assert_close(states[3:4], mirrored)


def test_training_steps_change_the_transformer_and_report_on_schedule():
    mod = _module()
    pipe = _tiny_pipeline()
    specs = mod.pair_scenes(2, seed=2, width=32, height=32, frames=5)
    batch = mod.pair_batch(pipe, specs)
    before = [p.detach().clone() for p in pipe.transformer.parameters()]
    reports = []
    losses = mod.train(pipe, *batch, steps=4, t=0.9, lr=1e-3, seed=0, report=reports.append, report_every=2)
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
    assert reports == [2, 4]
    assert any(not torch.equal(a, b) for a, b in zip(before, pipe.transformer.parameters()))
    assert not pipe.transformer.training


def test_bad_arguments_are_refused_with_a_message():
    for args, message in ((["--t", "0"], "--t must be in (0, 1]"), (["--scenes", "0"], "must be at least 1"),
                          (["--size", "64"], "direction_escape")):
        r = subprocess.run([sys.executable, "benchmarks/direction_escape.py", "--model", "shipped", *args],
                           capture_output=True, text=True)
        assert r.returncode != 0 and message in r.stderr, (args, r.stderr[-300:])
