"""Latents as the transformer draws them, for training a decoder on what it will be asked to decode.

A decoder learns from the encoder's latents of real clips, yet in use it decodes the transformer's.
The two differ where it matters most: a small moving star that the decoder draws from exact
latents half the time, and that a probe still finds in three in four of the transformer's own
latents, comes out of the transformer's latents as a star only a quarter of the time
(docs/quality_investigations.md). Those latents have no true frames to learn from, so here each
training clip's latents are noised to a random time t and denoised back to 0 by a trained
pipeline's frozen transformer, with the clip's caption, its scene's layout where the model takes one,
and the pipeline's own sampling (steps, guidance, sampler, shift), as a video->video edit of
strength t would: what comes back is the transformer's drawing of that clip, and the clip's frames
are the decoder's target.
"""

from __future__ import annotations

import torch

from ..errors import KinemaError
from .components import latent_space_difference


class Regenerator:
    """`pipeline`'s frozen transformer remaking a batch's latents (see the module docstring).

    `times` (lo, hi): each batch starts from one time drawn uniformly in [lo, hi] (1 = pure noise);
    `share`: the chance that a clip is remade, the others keep their posterior sample."""

    def __init__(self, pipeline: str, vae, times: tuple[float, float], share: float, device: torch.device):
        from ..pipeline import Pipeline

        try:
            self.pipe = Pipeline.from_pretrained(pipeline, device=device)
        except KinemaError as exc:
            raise KinemaError(f"regenerate_from: {exc}") from None
        problem = latent_space_difference(vae, self.pipe.vae)
        if problem:
            raise KinemaError(f"regenerate_from: {pipeline}: {problem} from the trained autoencoder's, so its "
                              "transformer draws in another latent space; use the pipeline whose autoencoder "
                              "`init` is (or leave regenerate_from empty to use `init`)")
        self.pipe.transformer.eval().requires_grad_(False)
        self.times = (float(times[0]), float(times[1]))
        self.share = float(share)
        self.device = device
        self.settings = self.pipe.resolve_sampling()
        self.guidance_interval = self.pipe._guidance_interval(None)
        with torch.no_grad():
            states, mask = self.pipe.encode_text([""])
        self.uncond = (states, mask)

    @property
    def description(self) -> str:
        s = self.settings
        return (f"t from {self.times[0]:g} to {self.times[1]:g}, {self.share:.0%} of the clips; "
                f"{s['sampler']}, guidance {s['guidance']:g}, {s['steps']} steps over the whole schedule")

    def _layout(self, specs: list[dict] | None, shape) -> torch.Tensor | None:
        """The clips' scene layouts [B, K, t, h, w] for a layout transformer (a window of a longer
        scene gets the layout from its first frame on); a clip without a spec gets none (zeros)."""
        channels = int(getattr(self.pipe.transformer.config, "layout_channels", 0) or 0)
        if not channels or specs is None:
            return None
        from ..data.world_stream import scene_and_window_start
        from ..layout import layout_batch, outline_side

        _, _, t, h, w = shape
        rows = []
        for d in specs:
            scene, start = scene_and_window_start(d) if d else (None, 0)
            rows.append(layout_batch([scene], t, h, w, self.pipe.vae.config.temporal_downsample,
                                     start_frame=start, outline=outline_side(channels)))
        return torch.cat(rows).to(self.device)

    @torch.no_grad()
    def __call__(self, batch: dict, mean: torch.Tensor, logvar: torch.Tensor,
                 generator: torch.Generator) -> torch.Tensor:
        """Raw latents to decode for this batch: the remade clips' from the transformer, the others a
        sample of their posterior (mean, logvar: the encoder's, raw)."""
        from ..diffusion.sampling import sample

        b = mean.shape[0]
        eps = torch.randn(mean.shape, generator=generator).to(mean.device, mean.dtype)
        out = mean + eps * torch.exp(0.5 * logvar)
        chosen = (torch.rand(b, generator=generator) < self.share).nonzero().flatten().tolist()
        if not chosen:
            return out
        lo, hi = self.times
        start = lo + (hi - lo) * float(torch.rand((), generator=generator))
        vae = self.pipe.vae
        init = vae.normalize(mean[chosen].float())
        noise = torch.randn(init.shape, generator=generator).to(init.device)
        captions = [batch["caption"][i] for i in chosen]
        states, mask = self.pipe.encode_text(captions)
        specs = batch.get("spec")
        layout = self._layout([specs[i] for i in chosen] if specs is not None else None, init.shape)
        s = self.settings
        _, _, t, h, w = init.shape
        with self.pipe.denoise_precision_context():
            z = sample(self.pipe.transformer, noise, states, mask, uncond_states=self.uncond[0],
                       uncond_mask=self.uncond[1], guidance=s["guidance"], steps=s["steps"],
                       shift=self.pipe._shift(t, h, w, s["shift"]), start_t=start, init_latents=init,
                       sampler=s["sampler"], layout=layout, guidance_interval=self.guidance_interval)
        out[chosen] = vae.denormalize(z.float()).to(out.dtype)
        return out
