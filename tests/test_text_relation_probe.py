"""benchmarks/text_relation_probe.py: its captions, the states it reads and the classifiers."""

import torch
from conftest import load_script

from kinema.world.captions import RELATION_PHRASES


def _module():
    return load_script("benchmarks/text_relation_probe.py")


def test_captions_name_the_relation_and_the_sides_follow_it():
    mod = _module()
    rows = mod.relation_captions(40, seed=1)
    assert len(rows) == 40
    for text, (ca, cb), (sa, sb) in rows:
        assert ca != cb and ca in text and cb in text
        assert text.index(ca) < text.index(cb)  # the subject is named first
        assert any(p in text for phrases in RELATION_PHRASES.values() for p in phrases)
        assert {sa, sb} in ({"left", "right"}, {"up", "down"}) and sa != sb


def test_states_are_read_at_the_colour_word():
    mod = _module()

    class Tokenizer:  # one token per word, ids from a fixed vocabulary
        vocab = {w: i + 1 for i, w in enumerate("a red blue star square above below".split())}

        def __call__(self, texts, padding, truncation, max_length, return_tensors):
            ids = [[self.vocab.get(w, 99) for w in t.split()][:max_length] for t in texts]
            return {"input_ids": torch.tensor([row + [0] * (max_length - len(row)) for row in ids])}

        def convert_tokens_to_ids(self, word):
            return self.vocab.get(word)

    class Encoder:
        tokenizer, max_length = Tokenizer(), 8

        def encode(self, texts):  # each token's state is its position, so the read position shows
            return torch.arange(8.0).repeat(len(texts), 1)[..., None].expand(-1, -1, 3), None

    rows = [("a red star above a blue square", ("red", "blue"), ("up", "down")),
            ("a blue star below a red red square", ("blue", "red"), ("down", "up"))]
    x, y, which = mod.colour_token_states(Encoder(), rows)
    # red at 1 and blue at 5 in the first; the second's red is twice there, so only blue is read
    assert x[:, 0].tolist() == [1.0, 5.0, 1.0] and y.tolist() == [2, 3, 3] and which.tolist() == [0, 0, 1]


def test_the_mlp_reads_a_side_the_linear_probe_cannot():
    mod = _module()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3000, 8, generator=g)
    axis = (x[:, 0] > 0).long()
    role = ((x[:, 1] > 0) ^ (x[:, 2] > 0)).long()  # an exclusive-or: no line separates it
    y = 2 * axis + role
    lin = mod.probe(x[:2400], y[:2400], x[2400:], y[2400:], hidden=0)
    mlp = mod.probe(x[:2400], y[:2400], x[2400:], y[2400:], hidden=64)
    assert lin["axis"] > 0.95 and mlp["axis"] > 0.95
    assert lin["side"] < 0.65 and mlp["side"] > 0.85
