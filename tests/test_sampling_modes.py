"""Every generation mode end to end on a tiny random pipeline: frame counts, and the given latent
frames kept exactly."""

import numpy as np
import pytest
import torch

from kinema import Video
from kinema.models.dit import DiTConfig
from kinema.models.text import TextEncoder
from kinema.models.vae import VAEConfig
from kinema.pipeline import Pipeline

SIZE = "32x32"
PROMPT = "a large red circle moves right on a navy background"


def wake(model, seed=1):
    """Give the zero-initialised (adaLN-Zero) weights small random values, so the untrained
    transformer's output depends on its input, timesteps and text."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


@pytest.fixture(scope="module")
def pipe():
    te = TextEncoder.from_pretrained()
    p = Pipeline.from_configs(VAEConfig(base_channels=8), DiTConfig(hidden_size=32, depth=2, num_heads=2),
                              text_encoder=te, seed=0, max_latent_frames=6, context_latent_frames=2,
                              steps=2, model_name="tiny-test")
    wake(p.transformer)
    return p


def clip(n, seed=0, size=32):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (1, size, size, 3))
    drift = np.arange(n)[:, None, None, None] * 3
    return Video(((base + drift) % 256).astype(np.uint8), fps=12)


def encode(pipe, frames_u8):
    x = torch.from_numpy(frames_u8).permute(3, 0, 1, 2).float() / 127.5 - 1.0
    with torch.no_grad():
        return pipe.vae.encode(x[None])


def given_kept(windows):
    """Assert given latents are kept exactly; return the masks of the windows."""
    masks = []
    for w in windows:
        m = w["cond_mask"]
        assert torch.equal(w["latents"][:, :, m], w["cond_latents"][:, :, m])
        assert torch.isfinite(w["latents"]).all()
        masks.append(m.tolist())
    return masks


def test_text_to_video(pipe):
    video, windows = pipe.generate(PROMPT, num_frames=9, size=SIZE, progress=False, return_latents=True)
    assert video.frames.shape == (9, 32, 32, 3) and video.metadata["mode"] == "t2v"
    assert given_kept(windows) == [[False] * 3]
    assert pipe.last_latents is windows[-1]["latents"]


def test_still_image(pipe):
    video, windows = pipe.generate(PROMPT, num_frames=1, size=SIZE, progress=False, return_latents=True)
    assert video.num_frames == 1 and video.metadata["mode"] == "image"
    assert windows[0]["latents"].shape[2] == 1


def test_image_to_video_gives_the_image_as_latent_frame_0(pipe):
    image = clip(1, seed=3).frames[0]
    video, windows = pipe.generate(PROMPT, image=image, num_frames=10, size=SIZE, progress=False,
                                   return_latents=True)
    assert video.num_frames == 10 and video.metadata["mode"] == "i2v"
    assert np.array_equal(video.frames[0], image)  # frame 0 is the image
    masks = given_kept(windows)
    assert masks[0] == [True, False, False, False]
    torch.testing.assert_close(windows[0]["cond_latents"][:, :, :1], encode(pipe, image[None]), rtol=0, atol=1e-6)


def test_extend_forward_keeps_the_clip_and_continues_it(pipe):
    src = clip(9, seed=1)
    video, windows = pipe.generate(PROMPT, video=src, mode="extend", num_frames=8, size=SIZE, progress=False,
                                   return_latents=True)
    assert video.num_frames == 9 + 8 and video.metadata["mode"] == "extend"
    assert np.array_equal(video.frames[:9], src.frames)
    masks = given_kept(windows)
    assert masks[0] == [True, True, False, False]
    # the context is the clip's last 1+4 frames re-encoded as a clip of their own (causal VAE)
    torch.testing.assert_close(windows[0]["cond_latents"][:, :, :2], encode(pipe, src.frames[-5:]), rtol=0, atol=1e-6)


def test_extend_backward_puts_new_frames_before_the_clip(pipe):
    src = clip(9, seed=2)
    video, windows = pipe.generate(PROMPT, video=src, mode="extend_backward", num_frames=7, size=SIZE,
                                   progress=False, return_latents=True)
    assert video.num_frames == 7 + 9 and video.metadata["mode"] == "extend_backward"
    assert np.array_equal(video.frames[7:], src.frames)
    masks = given_kept(windows)
    assert masks[0][-2:] == [True, True] and not any(masks[0][:-2])


@pytest.mark.parametrize("bridge", [6, 8])
def test_connect_two_clips(pipe, bridge):
    a, b = clip(9, seed=4), clip(5, seed=5)
    video, windows = pipe.generate(PROMPT, video=a, end_video=b, num_frames=bridge, size=SIZE, progress=False,
                                   return_latents=True)
    assert video.num_frames == 9 + bridge + 5 and video.metadata["mode"] == "connect"
    assert np.array_equal(video.frames[:9], a.frames) and np.array_equal(video.frames[-5:], b.frames)
    masks = given_kept(windows)
    assert masks[-1][:2] == [True, True] and masks[-1][-1] and not any(masks[-1][2:-1])


def test_long_connect_bridge_spans_several_windows(pipe):
    a, b = clip(9, seed=6), clip(9, seed=7)
    video, windows = pipe.generate(PROMPT, video=a, end_video=b, num_frames=21, size=SIZE, progress=False,
                                   return_latents=True)
    assert video.num_frames == 9 + 21 + 9
    masks = given_kept(windows)
    assert len(masks) >= 2 and masks[-1][0] and masks[-1][-1]


def test_loop(pipe):
    video, windows = pipe.generate(PROMPT, loop=True, num_frames=13, size=SIZE, progress=False, return_latents=True)
    assert video.num_frames == 13 and video.metadata["mode"] == "loop" and video.metadata["loop"] is True
    masks = given_kept(windows)
    # the closing window is given the end of the clip first and the start of the clip last
    assert masks[-1][0] and masks[-1][-1] and not all(masks[-1])


def test_loop_from_an_image(pipe):
    image = clip(1, seed=8).frames[0]
    video, windows = pipe.generate(PROMPT, image=image, loop=True, num_frames=12, size=SIZE, progress=False,
                                   return_latents=True)
    assert video.num_frames == 12 and np.array_equal(video.frames[0], image)
    masks = given_kept(windows)
    assert masks[0][0] and masks[-1][0] and masks[-1][-1]


def test_edit(pipe):
    src = clip(9, seed=9)
    steps = []
    video, windows = pipe.generate("a blue square", video=src, mode="edit", strength=0.5, steps=8, size=SIZE,
                                   progress=lambda i, n: steps.append((i, n)), return_latents=True)
    assert video.num_frames == 9 and video.metadata["mode"] == "edit" and video.metadata["strength"] == 0.5
    assert windows[0]["start_t"] == 0.5 and not windows[0]["cond_mask"].any()
    assert 1 <= len(steps) < 8 and steps[-1][0] == steps[-1][1] == len(steps)
    weaker, _ = pipe.generate("a blue square", video=src, mode="edit", strength=0.2, steps=8, size=SIZE,
                              progress=False, return_latents=True)
    assert not np.array_equal(weaker.frames, video.frames)


def test_long_edit_uses_windows_with_context(pipe):
    src = clip(30, seed=10)
    video, windows = pipe.generate("a blue square", video=src, mode="edit", size=SIZE, progress=False,
                                   return_latents=True)
    assert video.num_frames == 30
    masks = given_kept(windows)
    assert len(masks) >= 2 and masks[1][:2] == [True, True]


@pytest.mark.parametrize("count", [30, 26])
def test_long_clip_by_repeated_extension(pipe, count):
    video, windows = pipe.generate(PROMPT, num_frames=count, size=SIZE, progress=False, return_latents=True)
    assert video.num_frames == count
    masks = given_kept(windows)
    assert len(masks) >= 2 and all(len(m) <= 6 for m in masks)
    assert not any(masks[0]) and all(m[:2] == [True, True] for m in masks[1:])


def test_long_backward_extension(pipe):
    src = clip(5, seed=11)
    video, windows = pipe.generate(PROMPT, video=src, mode="extend_backward", num_frames=30, size=SIZE,
                                   progress=False, return_latents=True)
    assert video.num_frames == 35 and np.array_equal(video.frames[30:], src.frames)
    assert len(given_kept(windows)) >= 2


@pytest.mark.parametrize("sampler", ["heun", "multistep", "stochastic"])
def test_second_order_samplers(pipe, sampler):
    euler = pipe.generate(PROMPT, num_frames=5, size=SIZE, progress=False)
    other = pipe.generate(PROMPT, num_frames=5, size=SIZE, sampler=sampler, progress=False)
    assert other.num_frames == 5 and other.metadata["sampler"] == sampler
    assert not np.array_equal(euler.frames, other.frames)
