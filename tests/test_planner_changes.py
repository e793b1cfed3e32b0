"""benchmarks/planner_changes.py: the benchmark prompts two scene planners read differently, and
why equal plans mean equal benchmark videos."""

import copy
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from conftest import load_script
from kinema.layout import LAYOUT_CHANNELS
from kinema.layout.planner import PlannerConfig, ScenePlanner
from kinema.models.dit import DiTConfig
from kinema.models.text import TextEncoder
from kinema.models.vae import VAEConfig
from kinema.pipeline import Pipeline

changes = load_script("benchmarks/planner_changes.py")
SHIPPED = "src/kinema/weights/kinema-tiny"


@pytest.fixture(scope="module")
def te():
    return TextEncoder.from_pretrained()


def test_a_planner_against_itself_changes_nothing_and_a_noisy_one_is_listed(tmp_path, monkeypatch, capsys):
    shipped = changes.load_planner(SHIPPED)
    noisy = copy.deepcopy(shipped)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in noisy.attributes["color"].parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g))
    folder = tmp_path / "noisy"
    folder.mkdir()
    (folder / "config.json").write_text(open(f"{SHIPPED}/planner/config.json").read())
    save_file({k: v.contiguous() for k, v in noisy.state_dict().items()}, str(folder / "model.safetensors"))

    out = tmp_path / "same.md"
    monkeypatch.setattr(sys, "argv", ["planner_changes.py", SHIPPED, f"{SHIPPED}/planner", "--n", "2", "-o", str(out)])
    changes.main()
    assert "**0 planned differently**" in out.read_text()
    monkeypatch.setattr(sys, "argv", ["planner_changes.py", SHIPPED, str(folder), "--n", "2", "-o", str(out)])
    changes.main()
    text = out.read_text()
    listed = [line for line in text.splitlines() if line.startswith("- ")]
    assert listed and f"**{len(listed)} planned differently**" in text
    assert all("; B " in line for line in listed)
    capsys.readouterr()


def _pinned_planner(seed: int, colour: int):
    """A planner that plans three small objects of colour index `colour` for every prompt, whatever
    its other weights (`seed`)."""
    torch.manual_seed(seed)
    planner = ScenePlanner(PlannerConfig(width=16, depth=1, num_heads=2, min_confidence=0.0))
    with torch.no_grad():
        heads = [planner.present, planner.relation, *planner.attributes.values(), planner.background]
        for head in heads:
            head.weight.zero_()
            head.bias.zero_()
        planner.present.bias.fill_(10.0)  # one head for every slot: three objects
        planner.relation.bias[0] = 10.0
        planner.attributes["color"].bias[colour] = 10.0
        for name in ("shape", "size", "motion"):
            planner.attributes[name].bias[0] = 10.0
        planner.background.bias[0] = 10.0
    return planner.eval()


def test_planners_that_plan_alike_draw_the_same_video_and_others_do_not(te):
    pipe = Pipeline.from_configs(VAEConfig(base_channels=8),
                                 DiTConfig(hidden_size=32, depth=2, num_heads=2, layout_channels=LAYOUT_CHANNELS),
                                 text_encoder=te, seed=0, steps=2, size="32x32", fps=8.0)
    torch.manual_seed(0)
    torch.nn.init.normal_(pipe.transformer.layout_embedder.weight, std=0.2)
    torch.nn.init.normal_(pipe.transformer.final_layer.linear.weight, std=0.05)
    videos = []
    for seed, colour in ((1, 0), (2, 0), (1, 3)):
        pipe.planner = _pinned_planner(seed, colour)
        videos.append(pipe.generate("a large red circle moves right", num_frames=5, seed=4, progress=False))
    assert videos[0].metadata["plan"] == videos[1].metadata["plan"] != videos[2].metadata["plan"]
    assert any((a != b).any() for a, b in zip(pipe.planner.state_dict().values(),
                                               _pinned_planner(2, 0).state_dict().values()))
    assert np.array_equal(videos[0].frames, videos[1].frames)  # other weights, the same plan: the same video
    assert not np.array_equal(videos[0].frames, videos[2].frames)
