"""benchmarks/motion_words.py: its outcomes, scenes, prompts and the lines it prints."""

import numpy as np
import torch
from conftest import load_script

from kinema.world.spec import SceneSpec


def _module():
    return load_script("benchmarks/motion_words.py")


def _record(motion: str, color: str, detected: list[dict]) -> dict:
    return {"category": "single", "split": "seen", "detected": detected,
            "spec": {"objects": [{"shape": "star", "color": color, "size": "large", "motion": motion}]}}


def test_outcomes_per_axis_from_eval_samples():
    mod = _module()
    seen = lambda c, m, n=24: {"color": c, "motion": m, "frames_seen": n}  # noqa: E731
    records = [
        _record("left", "red", [seen("red", "left")]),
        _record("left", "red", [seen("red", "still", 3), seen("red", "right")]),  # the longest-seen one counts
        _record("right", "red", [seen("blue", "right")]),  # no object of the asked colour
        _record("up", "red", [seen("red", "left")]),  # the other axis
        _record("still", "red", [seen("red", "still")]),  # asks for no motion: not counted
        {"category": "count", "split": "seen", "detected": [], "spec": {"objects": []}},
    ]
    tally = mod.tally_samples(records)
    assert dict(tally["left/right"]) == {"asked": 1, "reversed": 1, "none": 1}
    assert dict(tally["up/down"]) == {"other": 1}
    line = mod.axis_line("left/right", tally["left/right"])
    assert "3 videos" in line and "asked of asked or reversed 1 (50.0%" in line


def test_scenes_keep_every_motion_word_in_the_train_split():
    mod = _module()
    specs = mod.scenes(12, seed=3, width=64, height=64)
    assert specs == mod.scenes(12, seed=3, width=64, height=64)
    assert len(specs) == 12 and all(len(s.objects) == 1 for s in specs)
    for s in specs:
        for m in mod.DIRECTIONS:
            assert not mod._with_motion(s.objects[0], m).is_heldout()
        prompts = [mod.prompt(s, m) for m in mod.DIRECTIONS]
        for m, p in zip(mod.DIRECTIONS, prompts):
            assert m in p.split() and s.objects[0].color in p and s.objects[0].shape in p
        assert len({p.replace(m, "WORD") for m, p in zip(mod.DIRECTIONS, prompts)}) == 1  # only the word differs


def test_the_worlds_start_follows_the_word():
    mod = _module()
    specs = mod.scenes(30, seed=1, width=64, height=64)
    starts = {m: np.array([mod._with_motion_start(s, m) for s in specs]) for m in mod.DIRECTIONS}
    assert starts["left"][:, 0].mean() > starts["right"][:, 0].mean() + 0.2  # "moves left" starts right
    assert starts["up"][:, 1].mean() > starts["down"][:, 1].mean() + 0.2  # "moves up" starts low


def test_probe_prints_both_axes_for_a_model():
    from kinema.models.dit import DiTConfig
    from kinema.models.text import TextEncoder
    from kinema.models.vae import VAEConfig
    from kinema.pipeline import Pipeline

    mod = _module()
    pipe = Pipeline.from_configs(VAEConfig(base_channels=8), DiTConfig(hidden_size=32, depth=2, num_heads=2),
                                 text_encoder=TextEncoder.from_pretrained(), seed=0, steps=2, fps=8.0, seconds=1.0)
    specs = mod.scenes(2, seed=0, width=64, height=64)
    assert all(isinstance(s, SceneSpec) for s in specs)
    lines = mod.probe_model(pipe, specs, guidance=None)
    text = "\n".join(lines)
    assert text.count("videos:") == 2 and "left/right 4 videos" in text and "up/down    4 videos" in text
    assert "'left' vs 'right', same seed:" in text and "'up' vs 'down', same seed:" in text


def test_text_probe_reports_both_axes():
    lines = _module().text_separation(120, seed=2)
    assert len(lines) == 4
    assert [line.split()[0] for line in lines] == ["left/right", "up/down"] * 2
    for line in lines[:2]:
        assert "apart" in line and "(C 0.01)" in line and "(C 1)" in line
    for line in lines[2:]:
        assert "at the word, 30 scenes" in line and "spread within a word (ratio" in line


def test_text_probe_reads_the_word_token():
    from kinema.models.text import TextEncoder

    mod = _module()
    te = TextEncoder.from_pretrained()
    specs = mod.scenes(6, seed=1, width=128, height=128)
    between, within = mod.word_token_separation(te, specs, "left", "right")
    assert between > within > 0  # the encoder's states at "left" and "right" differ more than across scenes
    same, spread = mod.word_token_separation(te, specs[:3] + specs[:3], "up", "down")
    assert same > 0 and spread > 0


def test_paths_probe_swaps_only_the_pooled_summary():
    from kinema.models.dit import DiTConfig
    from kinema.models.text import TextEncoder
    from kinema.models.vae import VAEConfig
    from kinema.pipeline import Pipeline

    mod = _module()
    pipe = Pipeline.from_configs(VAEConfig(base_channels=8), DiTConfig(hidden_size=32, depth=2, num_heads=2),
                                 text_encoder=TextEncoder.from_pretrained(), seed=0, steps=2, fps=8.0, seconds=1.0)
    seen = []
    pipe.transformer.text_pool.register_forward_hook(lambda m, args, out: seen.append(args[0].clone()))
    specs = mod.scenes(2, seed=0, width=64, height=64)
    lines = mod.probe_paths(pipe, specs, guidance=None)
    assert len(lines) == 4 and lines[0].startswith("  tokens 'left', summary 'right': 2 videos")

    def summary(text):
        states, mask = pipe.text_encoder.encode([text])
        return states[0][mask[0]].mean(0)

    # the first generation asked for "left" in its tokens: its summaries were those of "right"
    first = seen[0]
    for i, spec in enumerate(specs):
        assert torch.allclose(first[i], summary(mod.prompt(spec, "right")), atol=1e-5)
        assert not torch.allclose(first[i], summary(mod.prompt(spec, "left")), atol=1e-3)
    # the hook is gone afterwards: a plain generation sees its own summaries
    seen.clear()
    pipe.generate_batch([mod.prompt(specs[0], "left")], seeds=[0], size="64x64")
    assert torch.allclose(seen[0][0], summary(mod.prompt(specs[0], "left")), atol=1e-5)


def test_word_uses_count_relation_phrases_apart():
    lines = _module().word_uses(300, seed=4)
    assert [line.split()[0] for line in lines] == ["'left'", "'right'", "'up'", "'down'"]
    counts = {line.split()[0].strip("'"): (int(line.split()[1]), int(line.split()[6])) for line in lines}
    assert all(total > 0 for total, _ in counts.values())
    assert counts["left"][1] > 0 and counts["right"][1] > 0  # "left of" / "right of" occur
    assert counts["up"][1] == 0 and counts["down"][1] == 0  # vertical relations use other words


def test_word_token_finds_the_word_in_the_padded_ids():
    from kinema.models.text import TextEncoder

    mod = _module()
    te = TextEncoder.from_pretrained()
    text = "a small red circle moves left on a navy background"
    k = mod.word_token(te, text, "left")
    ids = te.tokenizer([text], padding="max_length", truncation=True, max_length=te.max_length)["input_ids"][0]
    assert k == 6 and ids[k] == te.tokenizer(["left"], padding="max_length", truncation=True, max_length=4)["input_ids"][0][1]


def test_velocity_probe_reads_the_words_effect_off_one_forward_pass():
    from kinema.models.dit import DiTConfig
    from kinema.models.text import TextEncoder
    from kinema.models.vae import VAEConfig
    from kinema.pipeline import Pipeline

    mod = _module()
    pipe = Pipeline.from_configs(VAEConfig(base_channels=8), DiTConfig(hidden_size=32, depth=2, num_heads=2),
                                 text_encoder=TextEncoder.from_pretrained(), seed=0, steps=2, fps=8.0, seconds=1.0)
    for p in pipe.transformer.parameters():  # adaLN-Zero starts every block shut: open them
        torch.nn.init.normal_(p, std=0.05)
    specs = mod.scenes(2, seed=0, width=64, height=64)
    lines = mod.probe_velocity(pipe, specs, [0.9, 0.5])
    assert [line.split(":")[0] for line in lines] == ["  t = 0.9", "  t = 0.5"]
    for line in lines:
        for part in line.split(": ", 1)[1].split("; "):
            share, diff = float(part.split()[5].rstrip(",")), float(part.split()[-1])
            assert 0 < share < 1 and diff > 0
    # a transformer that cannot read the text makes no difference between the words
    for block in pipe.transformer.blocks:
        torch.nn.init.zeros_(block.cross.proj.weight)
        torch.nn.init.zeros_(block.cross.proj.bias)
    torch.nn.init.zeros_(pipe.transformer.text_pool[2].weight)  # nor its pooled summary
    torch.nn.init.zeros_(pipe.transformer.text_pool[2].bias)
    for line in mod.probe_velocity(pipe, specs, [0.9]):
        assert line.count("velocity difference 0.0000") == 2


def test_cache_means_compare_the_mean_clip_of_each_words_captions(tmp_path):
    from kinema.data import latent_cache as lc

    mod = _module()
    z = torch.zeros(4, 2, 1, 2, 2)
    z[0, 0, 0, 0, 0] = 4.0  # "left": one cell set; its mirror word's clip is all zero
    z[2, 1, 0, 1, 1] = 2.0  # "rises" counts as up
    captions = ["a red circle moves left", "a red circle slides to the right", "a red circle rises",
                "a red circle moves down and a blue square moves left"]  # two words: left out
    items = iter([{"video": z, "caption": captions}])
    shards = lc.build_shards(tmp_path, 0, 1, 1, items, lambda v: v)
    lc.write_manifest(tmp_path, {"test": True}, shards, 1)
    lines = mod.cache_means(str(tmp_path))
    assert lines[0] == "  left/right: 1 and 1 clips; RMS of the difference of their mean latent clips 1.4142"  # sqrt(4² / 8)
    assert lines[1] == "  up/down: no clips of both words"
