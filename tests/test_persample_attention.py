"""The per-sample rules for attention and for parameters broadcast over the batch.

As in ``test_persample.py``, the independent computation is the definition:
the batch estimator run on batches of one sample (one ordinary backward per
sample). Each case also checks the path the engine recorded, so a test cannot
pass by silently falling back to ``torch.func``.
"""

import pytest
import torch
from torch import nn

from assd import TensorData, compute_importance
from assd.importance.persample.attention import visible_attention
from assd.importance.persample.engine import SampleEngine
from assd.models.vit import ViT


def _check(model, x, y=None, *, batch_size=7, **options):
    """Sample estimator over batches equals the definition; returns the paths taken
    (the same check as in test_persample.py, which this import mode cannot import)."""
    data = TensorData(x, y, batch_size=batch_size)
    got = compute_importance(model, data, estimator="sample", fingerprint=False, **options)
    ones = [tuple(t[i : i + 1] for t in b) for b in data for i in range(len(b[0]))]
    ones = [b if y is not None else b[:1] for b in ones]
    want = compute_importance(model, ones, estimator="batch", fingerprint=False, **options)
    _assert_equal(got, want)
    return got.paths


def _assert_equal(got, want):
    assert set(got.tensors) == set(want.tensors)
    scale = max(float(t.max()) for t in want.tensors.values())
    for name, t in want.tensors.items():
        torch.testing.assert_close(got.tensors[name], t, rtol=2e-5, atol=1e-7 * scale)


def _owners(layer):
    weight = layer.in_proj_weight if layer._qkv_same_embed_dim else layer.q_proj_weight
    return {id(weight): layer}


FORWARDS = [  # (batch_first, kdim, which inputs differ, need_weights, average, mask, padding)
    (True, None, "self", False, True, None, None),
    (True, None, "self", True, False, "causal", "bool"),
    (False, None, "self", True, True, "float", None),
    (False, None, "kv", False, True, "heads", "bool"),
    (True, None, "all", True, True, None, "float"),
    (True, 6, "kv", False, True, "causal", None),
    (False, 6, "all", True, False, None, "bool"),
    (True, None, "self", False, True, "is_causal", None),
]


@pytest.mark.parametrize(("batch_first", "kdim", "inputs", "weights", "average", "mask", "pad"),
                         FORWARDS)  # fmt: skip
def test_visible_attention_equals_the_layer(batch_first, kdim, inputs, weights, average, mask,
                                            pad):  # fmt: skip
    torch.manual_seed(0)
    batch, length, source, heads = 3, 5, 5 if inputs == "self" else 4, 2
    layer = nn.MultiheadAttention(8, heads, batch_first=batch_first, kdim=kdim, vdim=kdim).eval()
    q = torch.randn(batch, length, 8)
    k = q if inputs == "self" else torch.randn(batch, source, kdim or 8)
    v = k if inputs != "all" else torch.randn(batch, source, kdim or 8)
    if not batch_first:
        q, k, v = (t.transpose(0, 1) for t in (q, k, v))
        k = q if inputs == "self" else k
        v = k if inputs != "all" else v
    options = {"need_weights": weights, "average_attn_weights": average}
    if mask in ("causal", "is_causal"):
        options["attn_mask"] = torch.ones(length, source, dtype=torch.bool).triu(1)
        options["is_causal"] = mask == "is_causal"
    elif mask == "float":
        options["attn_mask"] = torch.randn(length, source)
    elif mask == "heads":
        options["attn_mask"] = torch.rand(batch * heads, length, source) < 0.3
    if pad is not None:
        padding = torch.zeros(batch, source, dtype=torch.bool)
        padding[0, -2:] = True
        options["key_padding_mask"] = padding if pad == "bool" else torch.randn(batch, source)
    want = layer(q, k, v, **options)
    records = []
    with visible_attention(_owners(layer), records):
        got = layer(q, k, v, **options)
    torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-6)
    assert (got[1] is None) == (want[1] is None)
    if weights:
        torch.testing.assert_close(got[1], want[1], rtol=1e-5, atol=1e-6)
    expected = {"self": 1, "kv": 2, "all": 3}[inputs] if kdim is None else 3
    assert len(records) == expected and all(r.valid(batch) for r in records)


class AttentionNet(nn.Module):
    """Self- or cross-attention with data-dependent padding, a causal mask and weights used."""

    def __init__(self, *, batch_first=True, kdim=None, cross=False):
        super().__init__()
        self.embed, self.memory = nn.Linear(4, 8), nn.Linear(4, kdim or 8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=batch_first, kdim=kdim, vdim=kdim)
        self.head, self.cross, self.batch_first = nn.Linear(8 + 5, 3), cross, batch_first

    def forward(self, x):  # (B, T, 4)
        h = self.embed(x)
        kv = self.memory(x.flip(1)) if self.cross else h
        pad = x[..., 0] > 1.0  # per sample, from the sample itself
        pad[:, 0] = False
        causal = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool).triu(1)
        if not self.batch_first:
            h, kv = h.transpose(0, 1), kv.transpose(0, 1)
        out, weights = self.attn(h, kv, kv, key_padding_mask=pad, attn_mask=causal)
        out = out if self.batch_first else out.transpose(0, 1)
        return self.head(torch.cat([out.mean(1), weights[:, -1]], dim=1))


@pytest.mark.parametrize("options", [{}, {"batch_first": False, "cross": True},
                                     {"kdim": 6, "cross": True}])  # fmt: skip
def test_attention_projections_equal_the_definition(options):
    torch.manual_seed(0)
    model = AttentionNet(**options).eval()
    paths = _check(model, torch.randn(10, 5, 4), torch.randint(0, 3, (10,)), batch_size=4)
    weight = "attn.in_proj_weight" if "kdim" not in options else "attn.k_proj_weight"
    assert paths[weight] == paths["attn.in_proj_bias"] == paths["attn.out_proj.weight"] == "hooks"


def test_frozen_input_projection_leaves_out_proj_on_the_hooks():
    torch.manual_seed(0)
    model = AttentionNet().eval()
    model.attn.in_proj_weight.requires_grad_(False)
    model.attn.in_proj_bias.requires_grad_(False)
    paths = _check(model, torch.randn(8, 5, 4), torch.randint(0, 3, (8,)), batch_size=4)
    assert "attn.in_proj_weight" not in paths and paths["attn.out_proj.weight"] == "hooks"


def test_vit_is_wholly_on_the_hooks_and_equals_the_definition():
    torch.manual_seed(0)
    model = ViT(n_classes=3, image_size=8, patch_size=4, dim=8, depth=2, heads=2).eval()
    paths = _check(model, torch.randn(9, 3, 8, 8), torch.randint(0, 3, (9,)), batch_size=4)
    assert set(paths.values()) == {"hooks", "factorised"}
    assert paths["cls"] == paths["pos"] == paths["encoder.layers.1.self_attn.in_proj_weight"]
    assert paths["cls"] == "hooks"


class Broadcasts(nn.Module):
    """Plain parameters broadcast over the batch: expand, add, sub (either side), lower rank."""

    def __init__(self):
        super().__init__()
        self.token = nn.Parameter(torch.randn(1, 1, 4))
        self.pos = nn.Parameter(torch.randn(1, 6, 4))
        self.shift = nn.Parameter(torch.randn(4))  # fewer dimensions than the activations
        self.offset = nn.Parameter(torch.randn(1, 1, 1))  # broadcast over positions and width
        self.head = nn.Linear(4, 3)

    def forward(self, x):  # (B, 5, 4)
        h = torch.cat([self.token.expand(len(x), -1, -1), x], dim=1) + self.pos
        h = torch.tanh(torch.sub(self.shift, h)) - self.offset
        return self.head(torch.tanh(h).mean(1))


class Scaled(Broadcasts):
    """``offset`` also multiplies: a use the hooks cannot see."""

    def forward(self, x):
        return super().forward(x * self.offset)


def test_broadcast_parameters_equal_the_definition():
    torch.manual_seed(0)
    paths = _check(Broadcasts().eval(), torch.randn(10, 5, 4), torch.randint(0, 3, (10,)))
    assert {paths[n] for n in ("token", "pos", "shift", "offset")} == {"hooks"}


def test_parameter_used_otherwise_falls_back_and_stays_exact():
    torch.manual_seed(0)
    model, x, y = Scaled().eval(), torch.randn(10, 5, 4), torch.randint(0, 3, (10,))
    paths = _check(model, x, y)
    assert paths["offset"] == "torch.func" and paths["pos"] == paths["token"] == "hooks"
    engine = SampleEngine(model, dict(model.named_parameters()), objective="loss")
    engine.step({n: torch.zeros_like(p) for n, p in model.named_parameters()}, x, y)
    assert "expand/add/sub" in engine.reasons["offset"] and "pos" not in engine.reasons


class SharedLookup(nn.Module):
    """Position embedding looked up once for the batch, ids (1, T), then added (BERT-style)."""

    def __init__(self):
        super().__init__()
        self.words, self.positions = nn.Embedding(10, 4), nn.Embedding(6, 4)
        self.head = nn.Linear(4, 3)

    def forward(self, tokens):
        ids = torch.arange(tokens.shape[1]).unsqueeze(0)
        return self.head(torch.tanh(self.words(tokens) + self.positions(ids)).mean(1))


def test_shared_lookup_added_to_the_batch_is_split_per_sample():
    torch.manual_seed(0)
    paths = _check(SharedLookup().eval(), torch.randint(0, 10, (10, 6)), torch.randint(0, 3, (10,)))
    assert paths["positions.weight"] == paths["words.weight"] == "hooks"


@pytest.mark.parametrize("options", [{"bias": True, "add_bias_kv": True},
                                     {"add_zero_attn": True}])  # fmt: skip
def test_unsupported_attention_falls_back_with_a_reason(options):
    torch.manual_seed(0)
    model = AttentionNet().eval()
    model.attn = nn.MultiheadAttention(8, 2, batch_first=True, **options).eval()
    model.head = nn.Linear(8 + 6, 3)  # one more key: the bias or the zero attention
    x, y = torch.randn(8, 5, 4), torch.randint(0, 3, (8,))
    paths = _check(model, x, y, batch_size=4)
    assert paths["attn.in_proj_weight"] == paths["attn.out_proj.weight"] == "torch.func"
    assert paths["embed.weight"] == "hooks"
    engine = SampleEngine(model, dict(model.named_parameters()), objective="loss")
    engine.step({n: torch.zeros_like(p) for n, p in model.named_parameters()}, x, y)
    assert "bias_k/bias_v or add_zero_attn" in engine.reasons["attn.out_proj.weight"]


class Unbatched(nn.Module):
    """Attention called sample by sample on unbatched (T, E) inputs: the rule cannot read it."""

    def __init__(self):
        super().__init__()
        self.attn, self.head = nn.MultiheadAttention(4, 2), nn.Linear(4, 3)

    def forward(self, x):
        return self.head(torch.stack([self.attn(s, s, s)[0].mean(0) for s in x]))


def test_unreadable_attention_call_falls_back():
    torch.manual_seed(0)
    paths = _check(Unbatched().eval(), torch.randn(6, 3, 4), torch.randint(0, 3, (6,)))
    assert paths["attn.in_proj_weight"] == paths["attn.out_proj.weight"] == "torch.func"


class Failing(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn, self.cls = nn.MultiheadAttention(4, 2, batch_first=True), nn.Parameter(
            torch.zeros(1, 1, 4))  # fmt: skip

    def forward(self, x):
        h = self.attn(x, x, x)[0] + self.cls
        raise RuntimeError(f"boom {h.shape[0]}")


def test_nothing_is_left_behind_on_error():
    model = Failing().eval()
    forward = model.attn.forward
    with pytest.raises(ValueError, match="boom 2"):
        compute_importance(model, TensorData(torch.randn(2, 3, 4), batch_size=2),
                           estimator="sample", objective="output_norm")  # fmt: skip
    assert not torch.overrides._get_current_function_mode_stack()
    assert model.attn.forward == forward and "forward" not in vars(model.attn)
    assert not model.attn._forward_hooks and not model.attn.out_proj._forward_hooks


def test_loss_free_objective_on_attention_and_broadcasts():
    torch.manual_seed(0)
    model = ViT(n_classes=3, image_size=8, patch_size=4, dim=8, depth=1, heads=2).eval()
    x = torch.randn(6, 3, 8, 8)
    data = TensorData(x, batch_size=4)
    got = compute_importance(model, data, estimator="sample", objective="output_norm",
                             fingerprint=False)  # fmt: skip
    want = compute_importance(model, [(x[i : i + 1],) for i in range(6)], estimator="batch",
                              objective="output_norm", fingerprint=False)  # fmt: skip
    _assert_equal(got, want)
    assert got.paths["pos"] == got.paths["encoder.layers.0.self_attn.in_proj_weight"] == "hooks"


def test_first_chunk_keeps_what_the_accumulator_held():
    """A rejected parameter's hook squares never reach a non-zero accumulator."""
    torch.manual_seed(0)
    model, x, y = Scaled().eval(), torch.randn(6, 5, 4), torch.randint(0, 3, (6,))
    params = dict(model.named_parameters())
    fresh = {n: torch.zeros_like(p) for n, p in params.items()}
    SampleEngine(model, params, objective="loss").step(fresh, x, y)
    held = {n: torch.full_like(p, 2.0) for n, p in params.items()}
    SampleEngine(model, params, objective="loss").step(held, x, y)
    for name in params:  # "offset" is rejected on the first chunk, the rest accepted
        torch.testing.assert_close(held[name], fresh[name] + 2.0)


@pytest.mark.parametrize(("batch", "objective"), [(3, "loss"), (3, "output_norm"), (20, "loss")])
def test_blocked_sequence_squares_equal_per_sample_gradients(batch, objective):
    """Blocks of 2 rows (the last shorter), fused multiply-add or square-and-sum."""
    from assd.importance.persample.direct import shared_linear_squares

    torch.manual_seed(0)
    layer, a = nn.Linear(7, 5, bias=False), torch.randn(batch, 6, 7)
    delta = torch.randn(batch, 6, 5)
    want = torch.zeros(5, 7)
    for i in range(batch):  # autograd, one sample at a time
        (g,) = torch.autograd.grad(layer(a[i]), layer.weight, delta[i])
        want += g.square() if objective == "loss" else g.abs()
    got = torch.zeros(5, 7)
    shared_linear_squares(a, delta, got, objective=objective, block=2 * 4 * batch * 7)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
