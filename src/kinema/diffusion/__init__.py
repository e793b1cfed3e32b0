"""Kinema diffusion: rectified flow (`flow`) and its samplers (`sampling`)."""

from .flow import (add_noise, flow_matching_loss, frame_timesteps, num_tokens_for, random_condition_mask,
                   sample_timesteps, shift_for_tokens, time_shift)
from .sampling import SAMPLERS, edit_schedule, sample, timestep_schedule

__all__ = [
    "add_noise", "flow_matching_loss", "frame_timesteps", "num_tokens_for", "random_condition_mask",
    "sample_timesteps", "shift_for_tokens", "time_shift",
    "SAMPLERS", "edit_schedule", "sample", "timestep_schedule",
]
