"""A shape critic for the autoencoder's decoder: a small classifier of world object crops.

The shape of a small moving object is in the autoencoder's latents (a probe names it 94% of the
time, `benchmarks/latent_shape_probe.py --moving`), yet the decoder draws it as a blob: pixel
losses average an uncertain outline into its mean, and a star's points cost few pixels. The
critic is trained once, on crops of rendered world frames (ground truth, train split), to name
circle / square / triangle / star, and a fifth class, "blurred": the same crops under a Gaussian
blur (a classifier of sharp crops alone reads a decoder's rounded star as a star, where the world's
analyzer, which measures the outline, does not). Frozen, it then charges the decoder's
reconstruction for every crop it does not read as the sharp shape (`shape_loss_weight`): a
perceptual loss that asks for the outline itself. Crops come from each scene's spec (where every object is in every frame), so it needs the
world as the data source.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.world_stream import scene_and_window_start
from ..world.spec import BACKGROUNDS, SHAPES

CROP = 24          # pixels a side the crop is resampled to
MARGIN = 1.3       # crop half-side / object half-extent: the outline and a rim of background
BLURRED = len(SHAPES)          # the critic's fifth class
BLUR_SIGMAS = (1.5, 2.0, 2.5)  # the BLURRED class, in crop pixels
SOFT_SIGMAS = (0.4, 0.7)       # still the shape: a decoder's output is never quite as crisp as the render
NOISE = 0.03                   # pixel noise on every training crop, so no exact render pattern is a cue  # crop pixels; a small object's crop is about its native size


class ShapeCritic(nn.Module):
    """[N, 3, CROP, CROP] crops (background colour subtracted, in [-2, 2]) -> logits over SHAPES
    and BLURRED."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.GELU(),
            nn.Flatten(), nn.Linear(2 * width * (CROP // 4) ** 2, 128), nn.GELU(), nn.Linear(128, len(SHAPES) + 1))

    def forward(self, crops: Tensor) -> Tensor:
        return self.net(crops)


def object_boxes(specs: Sequence[dict], num_frames: int, width: int, height: int) -> Tensor:
    """One row per (clip, frame, object): clip, frame, centre x and y and crop half-side in pixels,
    shape index, and background colour in [-1, 1]; float [N, 9]. A spec with "window_start" (a
    window of a longer scene, `WorldStream(window_of_frames=...)`) places its objects at frame
    window_start + f of that scene."""
    rows = []
    for b, d in enumerate(specs):
        spec, start = scene_and_window_start(d)
        bg = [c / 127.5 - 1.0 for c in BACKGROUNDS[spec.background]]
        for obj in spec.objects:
            hx, hy = spec.half_extent(obj)
            half = MARGIN * max(hx * spec.width, hy * spec.height) * width / spec.width
            for f in range(num_frames):
                cx, cy = spec.center(obj, start + f)
                rows.append([b, f, cx * width, cy * height, half, SHAPES.index(obj.shape), *bg])
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 9)


def crop_objects(video: Tensor, boxes: Tensor) -> Tensor:
    """Crops [N, 3, CROP, CROP] of `video` [B, 3, T, H, W] at `boxes` (rows of `object_boxes`),
    background colour subtracted; differentiable with respect to `video`."""
    _, _, _, h, w = video.shape
    frames = video.permute(0, 2, 1, 3, 4)[boxes[:, 0].long(), boxes[:, 1].long()]   # [N, 3, H, W]
    theta = torch.zeros(len(boxes), 2, 3, dtype=video.dtype, device=video.device)
    boxes = boxes.to(video.device, video.dtype)
    theta[:, 0, 0] = 2 * boxes[:, 4] / w
    theta[:, 0, 2] = 2 * boxes[:, 2] / w - 1
    theta[:, 1, 1] = 2 * boxes[:, 4] / h
    theta[:, 1, 2] = 2 * boxes[:, 3] / h - 1
    grid = F.affine_grid(theta, [len(boxes), 3, CROP, CROP], align_corners=False)
    crops = F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return crops - boxes[:, 6:9, None, None]


def shape_loss(critic: ShapeCritic, video: Tensor, boxes: Tensor) -> Tensor:
    """Mean cross-entropy of the critic's reading of `video`'s objects against their shapes."""
    labels = boxes[:, 5].long().to(video.device)
    return F.cross_entropy(critic(crop_objects(video, boxes)).float(), labels)


def blurred(crops: Tensor, sigma: float) -> Tensor:
    """`crops` under a separable Gaussian blur of `sigma` pixels (edges replicated)."""
    radius = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-radius, radius + 1, dtype=crops.dtype, device=crops.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = crops.shape[1]
    x = F.pad(crops, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _with_blurred(crops: Tensor, labels: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """The crops (a third slightly softened), and a blurred copy of a random half of them labelled
    BLURRED; all with a little pixel noise."""
    def pick_sigma(options):
        return options[int(torch.randint(len(options), (1,), generator=generator))]

    n = len(crops)
    soft = torch.randperm(n, generator=generator)[: n // 3]
    crops = crops.clone()
    if len(soft):
        crops[soft] = blurred(crops[soft], pick_sigma(SOFT_SIGMAS))
    pick = torch.randperm(n, generator=generator)[: max(1, n // 2)]
    negatives = blurred(crops[pick], pick_sigma(BLUR_SIGMAS))
    out = torch.cat([crops, negatives])
    out = out + NOISE * torch.randn(out.shape, generator=generator)
    return out, torch.cat([labels, torch.full((len(pick),), BLURRED, dtype=labels.dtype)])


def train_critic(batches: Callable[[int], tuple[Tensor, Tensor]], steps: int = 400, seed: int = 0,
                 lr: float = 2e-3, log: Callable[[str], None] | None = None) -> tuple[ShapeCritic, float]:
    """Train a critic on `batches(i)` -> (video [B, 3, T, H, W] in [-1, 1], boxes) of ground-truth
    frames; returns it frozen, in eval mode, with its accuracy on 4 batches it never trained on
    (each crop sharp, and a blurred copy of half of them, which it must call BLURRED)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    critic = ShapeCritic()
    opt = torch.optim.AdamW(critic.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    for i in range(steps):
        video, boxes = batches(i)
        crops, labels = _with_blurred(crop_objects(video, boxes), boxes[:, 5].long(), generator)
        loss = F.cross_entropy(critic(crops), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log and (i + 1) % 100 == 0:
            log(f"kinema train: shape critic step {i + 1}/{steps}, loss {loss.item():.4f}")
    critic.eval().requires_grad_(False)
    right = total = 0
    with torch.no_grad():
        for i in range(steps, steps + 4):
            video, boxes = batches(i)
            crops, labels = _with_blurred(crop_objects(video, boxes), boxes[:, 5].long(), generator)
            right += int((critic(crops).argmax(-1) == labels).sum())
            total += len(labels)
    return critic, right / max(total, 1)


def world_batches(seed: int, buckets: Sequence[tuple[int, ...]], max_crops: int = 512,
                  window_of_frames: int | None = None, shape_weights: Sequence[float] | None = None,
                  size_weights: Sequence[float] | None = None) -> Callable[[int], tuple[Tensor, Tensor]]:
    """batches(i) for `train_critic`: batch i of the world's train split, with at most `max_crops`
    of its object boxes (drawn at random)."""
    from ..data.world_stream import WorldStream

    stream = WorldStream(split="train", seed=seed, buckets=buckets, uint8=True, window_of_frames=window_of_frames,
                         shape_weights=shape_weights, size_weights=size_weights)

    def batches(i: int) -> tuple[Tensor, Tensor]:
        item = stream.item(i)
        video, specs = item["video"], item["spec"]
        if video.dim() == 4:
            video, specs = video[None], [specs]
        video = video.float() / 127.5 - 1.0
        boxes = object_boxes(specs, video.shape[2], video.shape[4], video.shape[3])
        if len(boxes) > max_crops:
            keep = np.random.default_rng([seed, i]).choice(len(boxes), max_crops, replace=False)
            boxes = boxes[torch.from_numpy(np.sort(keep))]
        return video, boxes

    return batches
