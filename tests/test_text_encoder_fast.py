"""The plain-PyTorch BERT path of the default text encoder equals `transformers`' BertModel."""

import os

import pytest
import torch

from kinema.models.bert import BertEncoder
from kinema.models.text import TextEncoder

PROMPTS = ["a large red circle moves right on a navy background", "",
           "two small purple squares stay still, a big white star rises " * 6,  # truncated
           "Bob moves LEFT!", "a yellow star"]


@pytest.fixture(scope="module")
def both():
    fast = TextEncoder.from_pretrained()
    os.environ["KINEMA_TEXT_TRANSFORMERS"] = "1"
    try:
        ref = TextEncoder.from_pretrained()
    finally:
        del os.environ["KINEMA_TEXT_TRANSFORMERS"]
    return fast, ref


def test_default_uses_the_plain_bert(both):
    fast, ref = both
    assert isinstance(fast.model, BertEncoder)
    assert not isinstance(ref.model, BertEncoder)


def test_same_tokens_and_states_as_transformers(both):
    fast, ref = both
    a = fast.tokenizer(PROMPTS, padding="max_length", truncation=True, max_length=32, return_tensors="pt")
    b = ref.tokenizer(PROMPTS, padding="max_length", truncation=True, max_length=32, return_tensors="pt")
    assert torch.equal(a["input_ids"], b["input_ids"])
    assert torch.equal(a["attention_mask"], b["attention_mask"])
    s1, m1 = fast.encode(PROMPTS)
    s2, m2 = ref.encode(PROMPTS)
    assert torch.equal(m1, m2)
    assert (s1 - s2).abs().max().item() < 1e-4
    assert s1.shape == (len(PROMPTS), 32, 384)


def test_same_token_offsets_as_transformers(both):
    """The grounding loss finds a word's tokens by these character offsets."""
    fast, ref = both
    offsets = fast.token_offsets(PROMPTS)
    assert offsets == ref.token_offsets(PROMPTS)
    first = offsets[0]
    assert len(first) == 32 and first[0] == (0, 0)  # [CLS]
    words = [PROMPTS[0][a:b] for a, b in first if b > a]
    assert words == PROMPTS[0].split()
    assert all(o == (0, 0) for o in offsets[1])  # the empty prompt: special and padding tokens only
    assert len(offsets[2]) == 32 and offsets[2][-1] == (0, 0)  # cut at max_length, [SEP] last
