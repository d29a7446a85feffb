"""The convolution rules of the per-sample engine against the definition.

Every way of forming ``sum_i g_i**2`` (``grouped``, ``loop``, ``unfold``) is
checked against each sample's own gradient from ``autograd`` (one backward per
sample), on Conv1d and Conv2d with groups, stride, dilation, padding and bias,
and inside the engine against the batch estimator on batches of one sample.
"""

import pytest
import torch
from torch import nn

import assd.importance.persample.conv as persample_conv
from assd import TensorData, compute_importance
from assd.importance.persample.conv import METHODS, conv_method, conv_sums

LAYERS = {
    "conv1d": (lambda: nn.Conv1d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2), (5, 4, 11)),
    "conv2d": (
        lambda: nn.Conv2d(6, 4, (3, 2), stride=(2, 1), padding=(1, 2), groups=2),
        (5, 6, 7, 6),
    ),
    "dilated": (lambda: nn.Conv2d(3, 5, 3, dilation=2, padding=2, bias=False), (4, 3, 8, 8)),
    "pointwise": (lambda: nn.Conv2d(3, 4, 1, stride=2), (4, 3, 5, 5)),
}


def _autograd_per_sample(layer, x, delta):
    """Each sample's parameter gradients, one autograd backward per sample."""
    params = [p for p in (layer.weight, layer.bias) if p is not None]
    return [torch.autograd.grad(layer(x[i : i + 1]), params, delta[i : i + 1])
            for i in range(len(x))]  # fmt: skip


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("absolute", [False, True])
def test_conv_sums_equal_the_definition(method, name, absolute):
    torch.manual_seed(0)
    make, shape = LAYERS[name]
    layer, x = make(), torch.randn(shape)
    delta = torch.randn_like(layer(x))
    per_sample = _autograd_per_sample(layer, x, delta)
    totals = {}
    got = conv_sums(layer, x, delta, absolute=absolute, method=method, totals=totals)
    for k, key in enumerate(["weight", "bias"][: len(per_sample[0])]):
        grads = torch.stack([g[k] for g in per_sample])
        want = grads.abs().sum(0) if absolute else grads.square().sum(0)
        torch.testing.assert_close(got[key], want, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(totals[key], grads.sum(0), rtol=1e-5, atol=1e-6)
    assert set(got) == set(totals) == ({"weight", "bias"} if layer.bias is not None else {"weight"})


def test_conv_method_by_shape_and_bad_input():
    wide = torch.zeros(32, 64, 16, 16)  # 256 output positions
    assert conv_method(nn.Conv2d(64, 64, 3), wide) == "grouped"
    assert conv_method(nn.Conv2d(512, 512, 3), torch.zeros(32, 512, 4, 4)) == "loop"
    assert conv_method(nn.Conv2d(16, 32, 3), torch.zeros(64, 32, 8, 8)) == "grouped"
    layer = nn.Conv2d(2, 3, 3)
    with pytest.raises(ValueError, match="method must be one of"):
        conv_sums(layer, torch.zeros(2, 2, 5, 5), torch.zeros(2, 3, 3, 3), method="fast")
    with pytest.raises(ValueError, match="batched"):
        conv_sums(layer, torch.zeros(2, 5, 5), torch.zeros(3, 3, 3))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2)
        self.c2 = nn.Conv2d(6, 4, (3, 2), stride=(2, 1), padding=(1, 2), groups=2)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        h = torch.relu(self.c1(x)).unsqueeze(-1).expand(-1, -1, -1, 3)
        return self.head(torch.relu(self.c2(h)).mean((2, 3)))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("objective", ["loss", "output_norm"])
def test_engine_equals_the_definition_with_each_method(monkeypatch, method, objective):
    chosen = []
    monkeypatch.setattr(persample_conv, "conv_method", lambda *_: chosen.append(method) or method)
    torch.manual_seed(0)
    model, x = Net().eval(), torch.randn(12, 4, 11)
    y = torch.randint(0, 3, (12,)) if objective == "loss" else None
    data = TensorData(x, y, batch_size=5)
    got = compute_importance(model, data, estimator="sample", objective=objective,
                             fingerprint=False)  # fmt: skip
    ones = [tuple(t[i : i + 1] for t in (b if y is not None else b[:1]))
            for b in data for i in range(len(b[0]))]  # fmt: skip
    want = compute_importance(model, ones, estimator="batch", objective=objective,
                              fingerprint=False)  # fmt: skip
    assert got.paths["c1.weight"] == got.paths["c2.bias"] == "hooks"
    assert len(chosen) == 2 * len(data)  # both layers, every batch
    scale = max(float(t.max()) for t in want.tensors.values())
    for name, t in want.tensors.items():
        torch.testing.assert_close(got.tensors[name], t, rtol=2e-5, atol=1e-7 * scale)
