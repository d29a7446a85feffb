"""The per-sample engine against the definition, layer type by layer type.

The definition of the sample estimator is the mean over samples of each
sample's own squared gradient (absolute, loss-free); the independent
computation here is the batch estimator run on batches of one sample (one
ordinary ``autograd`` backward per sample). Every case also checks which path
the engine took, so a test cannot pass by silently falling back.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from assd import Importance, TensorData, compute_importance
from assd.importance.persample.layers import linear_squares, per_sample


def _definition(model, batches, **options):
    ones = [tuple(t[i : i + 1] for t in b) for b in batches for i in range(len(b[0]))]
    return compute_importance(model, ones, estimator="batch", fingerprint=False, **options)


def _check(model, x, y=None, *, batch_size=7, **options):
    """Sample estimator over batches of ``batch_size`` equals the per-sample definition."""
    data = TensorData(x, y, batch_size=batch_size)
    got = compute_importance(model, data, estimator="sample", fingerprint=False, **options)
    want = _definition(model, [b if y is not None else (b[0],) for b in data], **options)
    assert set(got.tensors) == set(want.tensors)
    _assert_equal(got, want)
    return got.paths


def _assert_equal(got, want):
    """Equal within float32 rounding, relative to the largest importance of the model
    (some exact zeros, e.g. attention key biases, come out as 1e-26 noise either way)."""
    scale = max(float(t.max()) for t in want.tensors.values())
    for name, t in want.tensors.items():
        torch.testing.assert_close(got.tensors[name], t, rtol=2e-5, atol=1e-7 * scale)


def _eval_bn(bn):
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2.0)
    return bn


class SequenceNet(nn.Module):
    """Linear on (B, T, d) and on (B, d), LayerNorm on sequences and on vectors, BatchNorm1d."""

    def __init__(self):
        super().__init__()
        self.seq, self.ln_seq = nn.Linear(5, 6), nn.LayerNorm(6)
        self.bn, self.ln, self.head = _eval_bn(nn.BatchNorm1d(6)), nn.LayerNorm(6), nn.Linear(6, 3)

    def forward(self, x):
        h = self.ln_seq(torch.relu(self.seq(x))).mean(1)
        return self.head(self.ln(self.bn(h)))


def test_linear_layernorm_batchnorm_equal_the_definition():
    paths = _check(SequenceNet().eval(), torch.randn(20, 4, 5), torch.randint(0, 3, (20,)))
    assert paths["head.weight"] == "factorised"  # (B, d) input: no per-sample gradients
    assert paths["seq.weight"] == paths["ln_seq.weight"] == paths["bn.weight"] == "hooks"


class ConvNet(nn.Module):
    """Conv1d and Conv2d with groups, stride, dilation, padding; eval BatchNorm2d, in-place ReLU."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2)
        self.c2 = nn.Conv2d(6, 4, (3, 2), stride=(2, 1), padding=(1, 2), groups=2)
        self.bn, self.head = _eval_bn(nn.BatchNorm2d(4)), nn.Linear(4, 3)

    def forward(self, x):
        h = torch.relu(self.c1(x)).unsqueeze(-1).expand(-1, -1, -1, 3)
        h = F.relu_(self.bn(self.c2(h)))  # in place on the BatchNorm's output
        return self.head(h.mean((2, 3)))


@pytest.mark.parametrize("objective", ["loss", "output_norm"])
def test_convolutions_equal_the_definition(objective):
    y = torch.randint(0, 3, (20,)) if objective == "loss" else None
    paths = _check(ConvNet().eval(), torch.randn(20, 4, 11), y, objective=objective)
    assert paths["c1.weight"] == paths["c2.weight"] == "hooks"
    # |g| does not factorise: loss-free importance forms per-sample gradients everywhere
    assert paths["head.weight"] == ("factorised" if objective == "loss" else "hooks")


class TokenNet(nn.Module):
    """Embedding with padding_idx over tokens, an unused and a frozen layer."""

    def __init__(self):
        super().__init__()
        self.embed, self.head = nn.Embedding(10, 4, padding_idx=0), nn.Linear(4, 10)
        self.unused, self.frozen = nn.Linear(2, 2), nn.Linear(4, 4)
        self.frozen.requires_grad_(False)

    def forward(self, tokens):
        return self.head(self.frozen(self.embed(tokens)).mean(1))


def _tokens(n=20):
    tokens = torch.randint(1, 10, (n, 6))
    tokens[:, -2:] = 0  # padding
    tokens[:, 1] = tokens[:, 2]  # a token repeated within a sample: its gradients add first
    return tokens


def test_embedding_padding_unused_and_frozen_parameters():
    model = TokenNet().eval()
    paths = _check(model, _tokens(), torch.randint(0, 10, (20,)))
    assert paths["embed.weight"] == "hooks" and "frozen.weight" not in paths
    assert paths["unused.weight"] == paths["unused.bias"] == "unused"
    imp = compute_importance(model, TensorData(_tokens(), torch.randint(0, 10, (20,))),
                             estimator="sample")  # fmt: skip
    assert not imp.tensors["unused.weight"].any() and not imp.tensors["embed.weight"][0].any()


class TiedNet(nn.Module):
    """An output layer tied to the embedding, and a Linear called twice."""

    def __init__(self):
        super().__init__()
        self.embed, self.mix = nn.Embedding(10, 4, padding_idx=0), nn.Linear(4, 4)
        self.out = nn.Linear(4, 10, bias=False)
        self.out.weight = self.embed.weight

    def forward(self, tokens):
        return self.out(self.mix(self.mix(self.embed(tokens))).mean(1))


def test_tied_and_reused_weights_sum_per_sample_before_squaring():
    paths = _check(TiedNet().eval(), _tokens(), torch.randint(0, 10, (20,)))
    assert paths["embed.weight"] == paths["mix.weight"] == "hooks"


class OutsideUse(nn.Module):
    """A layer's weight also used functionally elsewhere: the hooks cannot see that use."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 3)

    def forward(self, x):
        h = torch.tanh(self.a(x))
        return self.b(h + F.linear(h, self.a.weight))


@pytest.mark.parametrize("rows, batch_size", [(20, 7), (300, 300)])  # 300: past the check slice
def test_weight_used_outside_its_layer_moves_to_torch_func(rows, batch_size):
    paths = _check(OutsideUse().eval(), torch.randn(rows, 4), torch.randint(0, 3, (rows,)),
                   batch_size=batch_size)  # fmt: skip
    assert paths["a.weight"] == "torch.func" and paths["b.weight"] == "factorised"


def test_loss_fn_checked_for_per_sample_semantics():
    x, y, model = torch.randn(20, 4), torch.randint(0, 3, (20,)), OutsideUse().eval()
    smooth = lambda logits, t: F.cross_entropy(logits, t, label_smoothing=0.1)  # noqa: E731
    assert _check(model, x, y, loss_fn=smooth)["b.weight"] == "factorised"
    summed = lambda logits, t: F.cross_entropy(logits, t, reduction="sum")  # noqa: E731
    assert _check(model, x, y, loss_fn=summed)["b.weight"] == "factorised"
    # mixes samples (batch-level centring): not a sum of per-sample losses
    mixed = lambda logits, t: F.cross_entropy(logits - logits.mean(0), t)  # noqa: E731
    assert set(_check(model, x, y, loss_fn=mixed).values()) == {"torch.func"}


def test_tiny_bert_with_padded_dict_batches_equals_the_definition():
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=24, max_position_embeddings=12, num_labels=3,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config).eval()
    ids, mask = torch.randint(1, 40, (9, 8)), torch.ones(9, 8, dtype=torch.long)
    for i, length in enumerate([3, 8, 5, 4, 8, 6, 2, 7, 5]):
        ids[i, length:], mask[i, length:] = 0, 0
    labels = torch.randint(0, 3, (9,))
    rows = [slice(0, 4), slice(4, 8), slice(8, 9)]
    batches = [{"input_ids": ids[r], "attention_mask": mask[r], "labels": labels[r]} for r in rows]
    got = compute_importance(model, batches, estimator="sample", fingerprint=False)
    ones = [
        {k: v[i : i + 1] for k, v in b.items()} for b in batches for i in range(len(b["labels"]))
    ]
    want = compute_importance(model, ones, estimator="batch", fingerprint=False)
    _assert_equal(got, want)
    # position ids (1, T) are shared by the batch: the lookup's hook sees the batch's sum,
    # the add that broadcasts it gives each sample's part; the key biases' gradients are
    # exactly zero (softmax shift invariance), rounding noise either way: no loop is left
    assert got.paths["bert.embeddings.position_embeddings.weight"] == "hooks"
    assert got.paths["bert.encoder.layer.0.attention.self.key.bias"] == "hooks"
    assert got.paths["bert.embeddings.word_embeddings.weight"] == "hooks"
    assert got.paths["classifier.weight"] == "factorised"
    assert set(got.paths.values()) == {"hooks", "factorised"}


def test_paths_are_saved_with_the_importance(tmp_path):
    model = SequenceNet().eval()
    imp = compute_importance(model, TensorData(torch.randn(8, 4, 5), torch.randint(0, 3, (8,))),
                             estimator="sample")  # fmt: skip
    imp.save(tmp_path / "imp.safetensors")
    loaded = Importance.load(tmp_path / "imp.safetensors")
    assert loaded.paths == imp.paths and loaded.path_counts()["factorised"] == 18
    assert compute_importance(model, [(torch.randn(2, 4, 5), torch.tensor([0, 1]))],
                              estimator="batch").paths is None


def test_layer_rules_against_autograd_per_sample():
    """The layer rules alone: each sample's gradient from a hand-made batch, by autograd."""
    torch.manual_seed(1)
    layer = nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=1, groups=2)
    x = torch.randn(3, 4, 7, 7)
    out = layer(x)
    delta = torch.randn_like(out)
    grads = per_sample(layer, x, delta)
    for i in range(3):
        w, b = torch.autograd.grad(
            layer(x[i : i + 1]), [layer.weight, layer.bias], delta[i : i + 1]
        )
        torch.testing.assert_close(grads["weight"][i], w)
        torch.testing.assert_close(grads["bias"][i], b)
    a, d = torch.randn(5, 3), torch.randn(5, 2)
    expected = sum(torch.outer(d[i], a[i]) ** 2 for i in range(5))
    torch.testing.assert_close(linear_squares(a, d), expected)


def test_factorised_weights_do_not_shrink_the_chunks():
    """A budget that holds 4 rows of the largest weight's per-sample gradients: the first
    chunk (which decides the paths) is 4 rows, and since every weight of this MLP is
    factorised (no per-sample gradients formed), the rest of the batches run whole. The
    sums still equal the definition."""
    from assd.importance.persample.engine import SampleEngine

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 40), nn.ReLU(), nn.Linear(40, 3)).eval()
    x, y = torch.randn(50, 12), torch.randint(0, 3, (50,))
    params = dict(model.named_parameters())
    largest = max(p.numel() for p in params.values())  # 480 floats
    engine = SampleEngine(model, params, objective="loss", budget=4 * 2 * 4 * largest)
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    acc = {n: torch.zeros_like(p) for n, p in params.items()}
    with torch.enable_grad():
        for start in range(0, 50, 25):
            engine.step(acc, x[start : start + 25], y[start : start + 25])
    assert engine.paths["0.weight"] == engine.paths["2.weight"] == "factorised"
    assert engine.first_rows() == 4
    # batch 1: 4 rows (the check) + 21; batch 2: one chunk of 25 (it was 4+4+...: 7 chunks)
    assert len(calls) == 3
    want = _definition(model, [(x[:25], y[:25]), (x[25:], y[25:])])
    for name, t in want.tensors.items():
        torch.testing.assert_close(acc[name] / 50, t, rtol=2e-5, atol=1e-9)
