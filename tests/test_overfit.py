"""A tiny transformer overfits one clip's latents: training drives the flow-matching loss down,
and sampling from noise with that caption then lands near the clip, far nearer than chance."""

import torch

from kinema.diffusion.flow import flow_matching_loss
from kinema.diffusion.sampling import sample
from kinema.models.dit import DiTConfig, VideoDiT


def test_tiny_dit_overfits_one_clip():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    target = torch.randn(1, 4, 3, 4, 4, generator=g)  # one clip's latents [B, C, t, h, w]
    states = torch.randn(1, 6, 16, generator=g)
    mask = torch.ones(1, 6, dtype=torch.bool)
    model = VideoDiT(DiTConfig(in_channels=4, hidden_size=64, depth=2, num_heads=2, text_dim=16))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    batch = 16
    losses = []
    for step in range(300):
        loss = flow_matching_loss(model, target.expand(batch, -1, -1, -1, -1), states.expand(batch, -1, -1),
                                  mask.expand(batch, -1), generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    assert last < 0.35 * first, (first, last)

    model.eval()
    noise = torch.randn(4, 4, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    out = sample(model, noise, states, mask, steps=20, guidance=1.0)
    err = ((out - target) ** 2).mean().item()
    chance = ((noise - target) ** 2).mean().item()  # ~2: two unit-variance fields apart
    assert err < 0.15 * chance, (err, chance)
