"""benchmarks/color_words.py: its scenes and its count of videos that draw the asked colour."""

from collections import Counter

from conftest import load_script


def _module():
    return load_script("benchmarks/color_words.py")


def test_scenes_ask_for_one_colour_in_the_train_split():
    mod = _module()
    specs = mod.scenes(20, "purple", seed=1, width=64, height=64)
    assert specs == mod.scenes(20, "purple", seed=1, width=64, height=64)
    assert len(specs) == 20 and all(len(s.objects) == 1 for s in specs)
    assert {s.objects[0].color for s in specs} == {"purple"}
    assert not any(s.objects[0].is_heldout() for s in specs)  # purple never moves right here
    assert len({(s.objects[0].shape, s.objects[0].motion, s.objects[0].start) for s in specs}) > 10


def test_probe_counts_videos_with_the_colour(monkeypatch):
    from kinema.models.dit import DiTConfig
    from kinema.models.text import TextEncoder
    from kinema.models.vae import VAEConfig
    from kinema.pipeline import Pipeline
    from kinema.world import analyze

    mod = _module()
    pipe = Pipeline.from_configs(VAEConfig(base_channels=8), DiTConfig(hidden_size=32, depth=2, num_heads=2),
                                 text_encoder=TextEncoder.from_pretrained(), seed=0, steps=2, fps=8.0, seconds=1.0)
    specs = mod.scenes(3, "red", seed=0, width=64, height=64)
    prompts = []
    generate = pipe.generate_batch
    monkeypatch.setattr(pipe, "generate_batch", lambda texts, **kw: prompts.extend(texts) or generate(texts, **kw))
    readings = iter([[{"color": "red"}], [{"color": "blue"}, {"color": "pink"}], []])
    monkeypatch.setattr(analyze, "analyze_video", lambda video: {"objects": next(readings)})
    hits, others = mod.probe(pipe, specs, {"red": "table"}, guidance=None)
    assert hits == 1 and others == Counter({"blue": 1, "pink": 1, "nothing": 1})
    assert len(prompts) == 3 and all("table" in p and "red" not in p.split() for p in prompts)
