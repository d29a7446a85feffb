"""Every registered method keeps the contract: a new model of the same architecture,
the caller's model untouched (weights, buffers and mode), sane result fields."""

import copy
import json
import math

import pytest
import torch
from torch import nn

import assd
from assd import TensorData


def small_net():
    """Convolution + BatchNorm (buffers) + linear head, for 8x8 one-channel images."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
        nn.Linear(4 * 8 * 8, 3),
    )  # fmt: skip


def data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(48, 1, 8, 8, generator=g)
    y = torch.arange(48) % 3
    is_forget = y == 0
    make = lambda m, shuffle=False: TensorData(x[m], y[m], batch_size=16, shuffle=shuffle)  # noqa: E731
    everything = torch.ones(48, dtype=torch.bool)
    return x, make(is_forget), make(~is_forget, True), make(everything)


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", assd.available_methods())
def test_method_conformance(name):
    model = small_net()
    model.train()  # an unusual mode the method must leave as it found it
    before = snapshot(model)
    x, forget, retain, everything = data()
    method = assd.get_method(name)
    verified = {"evaluate": {"retain": retain}} if getattr(method, "needs_evaluation", 0) else {}
    result = method.unlearn(model, forget=forget, retain=retain, data=everything, **verified)

    assert result.model is not model and type(result.model) is type(model)
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), f"{name} changed the input model's {key}"
    new_state = result.model.state_dict()
    assert {k: v.shape for k, v in new_state.items()} == {k: v.shape for k, v in before.items()}
    changed = any(not torch.equal(new_state[k], before[k]) for k in before)
    if result.per_layer:  # SSD family: reports what it dampened (possibly nothing)
        assert result.n_params == sum(p.numel() for p in model.parameters())
        assert changed == (result.n_dampened > 0) and 0 <= result.share_dampened <= 1
    else:
        assert changed, f"{name} did nothing"
    assert result.method == name
    assert math.isfinite(result.seconds) and result.seconds >= 0
    with torch.no_grad():
        assert torch.isfinite(result.model.eval()(x)).all()
    json.dumps(result.summary())


@pytest.mark.parametrize("name", ["assd", "finetune", "bad-teacher"])
def test_inplace_edits_the_model_itself(name):
    model = small_net().eval()
    before = copy.deepcopy(model)
    _, forget, retain, everything = data()
    result = assd.get_method(name).unlearn(
        model, forget=forget, retain=retain, data=everything, inplace=True
    )
    assert result.model is model
    pairs = zip(model.parameters(), before.parameters(), strict=True)
    assert any(not torch.equal(a, b) for a, b in pairs)
