"""A BERT encoder forward pass in plain PyTorch, for the default text encoder (all-MiniLM-L6-v2).

Importing the model classes of `transformers` costs about 1.7 s per process, more than the
whole denoising of a default clip; this module reads the same `config.json`, `tokenizer.json`
(with the `tokenizers` library) and `model.safetensors` and computes the same token states
(`tests/test_text_encoder_fast.py` checks it against `transformers`). Other encoders go through
`transformers`.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .loading import skip_weight_init


def supports(folder: Path) -> bool:
    """True when `folder` holds a plain BERT this module can run."""
    try:
        cfg = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return (cfg.get("model_type") == "bert" and cfg.get("hidden_act") == "gelu"
            and cfg.get("position_embedding_type", "absolute") == "absolute"
            and (folder / "tokenizer.json").is_file() and (folder / "model.safetensors").is_file())


class _Layer(nn.Module):
    def __init__(self, dim: int, heads: int, inner: int, eps: float):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.attn_out = nn.Linear(dim, dim)
        self.attn_norm = nn.LayerNorm(dim, eps=eps)
        self.inner = nn.Linear(dim, inner)
        self.out = nn.Linear(inner, dim)
        self.out_norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        b, n, d = x.shape
        split = lambda t: t.view(b, n, self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        a = F.scaled_dot_product_attention(split(self.query(x)), split(self.key(x)), split(self.value(x)),
                                           attn_mask=bias)
        x = self.attn_norm(x + self.attn_out(a.transpose(1, 2).reshape(b, n, d)))
        return self.out_norm(x + self.out(F.gelu(self.inner(x))))


class BertEncoder(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        dim, eps = int(cfg["hidden_size"]), float(cfg.get("layer_norm_eps", 1e-12))
        self.config = SimpleNamespace(hidden_size=dim)
        self.word = nn.Embedding(int(cfg["vocab_size"]), dim)
        self.position = nn.Embedding(int(cfg["max_position_embeddings"]), dim)
        self.token_type = nn.Embedding(int(cfg.get("type_vocab_size", 2)), dim)
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.layers = nn.ModuleList(
            _Layer(dim, int(cfg["num_attention_heads"]), int(cfg["intermediate_size"]), eps)
            for _ in range(int(cfg["num_hidden_layers"])))

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None):
        n = input_ids.shape[1]
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        pos = torch.arange(n, device=input_ids.device)[None]
        x = self.norm(self.word(input_ids) + self.position(pos) + self.token_type(token_type_ids))
        # padded keys get a large negative bias, as BERT does (not -inf: an all-pad row stays finite)
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.layers:
            x = layer(x, bias)
        return SimpleNamespace(last_hidden_state=x)

    def load_hf_state(self, state: dict[str, Tensor]) -> None:
        """Load a Hugging Face BertModel state dict (its pooler, if any, is not used)."""
        names = {"word.weight": "embeddings.word_embeddings.weight",
                 "position.weight": "embeddings.position_embeddings.weight",
                 "token_type.weight": "embeddings.token_type_embeddings.weight",
                 "norm.weight": "embeddings.LayerNorm.weight", "norm.bias": "embeddings.LayerNorm.bias"}
        parts = {"query": "attention.self.query", "key": "attention.self.key", "value": "attention.self.value",
                 "attn_out": "attention.output.dense", "attn_norm": "attention.output.LayerNorm",
                 "inner": "intermediate.dense", "out": "output.dense", "out_norm": "output.LayerNorm"}
        for i in range(len(self.layers)):
            for ours, theirs in parts.items():
                for p in ("weight", "bias"):
                    names[f"layers.{i}.{ours}.{p}"] = f"encoder.layer.{i}.{theirs}.{p}"
        strip = "bert." if any(k.startswith("bert.") for k in state) else ""
        missing = [v for v in names.values() if strip + v not in state]
        if missing:
            raise KeyError(f"weights lack {missing[0]} ({len(missing)} missing)")
        self.load_state_dict({k: state[strip + v].float() for k, v in names.items()}, strict=True, assign=True)


class FastTokenizer:
    """`tokenizers` with the call shape the text encoder uses (padding to max_length, truncation)."""

    def __init__(self, folder: Path):
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        pad = self.tok.token_to_id("[PAD]")
        self.pad_id = 0 if pad is None else pad

    def __call__(self, prompts: list[str], padding: str, truncation: bool, max_length: int,
                 return_tensors: str | None = None, return_offsets_mapping: bool = False) -> dict:
        self.tok.enable_truncation(max_length)
        self.tok.enable_padding(length=max_length, pad_id=self.pad_id, pad_token="[PAD]")
        enc = self.tok.encode_batch(prompts)
        if return_offsets_mapping:  # what Hugging Face tokenizers give: (start, end), (0, 0) for special tokens
            return {"offset_mapping": [[(s, e) if t == 0 and m else (0, 0) for (s, e), t, m
                                        in zip(x.offsets, x.special_tokens_mask, x.attention_mask)] for x in enc]}
        return {"input_ids": torch.tensor([e.ids for e in enc]),
                "attention_mask": torch.tensor([e.attention_mask for e in enc]),
                "token_type_ids": torch.tensor([e.type_ids for e in enc])}


def load(folder: Path) -> tuple[BertEncoder, FastTokenizer]:
    from safetensors.torch import load_file

    config = json.loads((folder / "config.json").read_text())
    with skip_weight_init():  # the file replaces every weight
        model = BertEncoder(config)
    model.load_hf_state(load_file(str(folder / "model.safetensors")))
    return model.eval(), FastTokenizer(folder)


