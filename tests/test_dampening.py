"""Selection and dampening: a hand-worked example and properties."""

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import assd
from assd import adaptive_alpha, dampen_, dampen_parameters_, select


def test_hand_worked_two_layer_example():
    # layer "a": weights 2, -4, 6 ; layer "b": weights 1, 3
    params = {"a": torch.tensor([2.0, -4.0, 6.0]), "b": torch.tensor([1.0, 3.0])}
    forget = {"a": torch.tensor([9.0, 1.0, 5.0]), "b": torch.tensor([0.0, 2.0])}
    data = {"a": torch.tensor([1.0, 1.0, 2.0]), "b": torch.tensor([1.0, 0.0])}
    # alpha = 2: a0: 9 > 2 -> selected, factor 1*1/9; a1: 1 > 2 no; a2: 5 > 4 -> factor 2/5;
    # b0: 0 > 2 no; b1: 2 > 0 -> selected, factor 0/2 = 0 (zeroed).
    counts = dampen_parameters_(params, forget, data, alpha=2.0, dampening=1.0)
    assert counts == {"a": (2, 3), "b": (1, 2)}
    torch.testing.assert_close(params["a"], torch.tensor([2.0 / 9.0, -4.0, 6.0 * 0.4]))
    assert params["a"][1].item() == -4.0  # not selected: bit-identical
    assert params["b"].tolist() == [1.0, 0.0]


def test_dampening_constant_above_ratio_leaves_selected_weight_alone():
    p = torch.tensor([5.0])
    # selected (3 > 1 * 1) but lambda * I_D / I_Df = 4 * 1 / 3 >= 1 -> factor 1
    assert dampen_(p, torch.tensor([3.0]), torch.tensor([1.0]), alpha=1.0, dampening=4.0) == 1
    assert p.item() == 5.0


def test_adaptive_alpha_is_numpy_percentile_of_pooled_ratios():
    rng = np.random.default_rng(0)
    forget = {
        n: torch.from_numpy(rng.exponential(size=s).astype(np.float32))
        for n, s in [("w", (30, 20)), ("b", (20,))]
    }
    data = {
        n: torch.from_numpy(rng.exponential(size=t.shape).astype(np.float32))
        for n, t in forget.items()
    }
    data["w"][0, :5] = 0.0  # 0/0 -> NaN and x/0 -> inf, both dropped
    forget["w"][0, :2] = 0.0
    ratios = np.concatenate([(forget[n] / data[n]).numpy().ravel() for n in ("w", "b")])
    p = 100 - math.log(1 + 100 * 50 / 1000)
    alpha, got_p = adaptive_alpha(forget, data, n_forget=50, n_data=1000)
    assert got_p == p
    assert alpha == float(np.percentile(ratios[np.isfinite(ratios)], p))


importances = arrays(np.float32, 64, elements=st.floats(0, 1e4, width=32))
weights = arrays(np.float32, 64, elements=st.floats(-1e3, 1e3, width=32))


@settings(max_examples=150, deadline=None)
@given(weights, importances, importances, st.floats(0, 100), st.floats(0, 10))
def test_dampening_properties(w, f, d, alpha, lam):
    param = torch.from_numpy(w.copy())
    forget, data = torch.from_numpy(f), torch.from_numpy(d)
    mask = select(forget, data, alpha).numpy()
    n = dampen_(param, forget, data, alpha=alpha, dampening=lam)
    new = param.numpy()
    assert n == mask.sum()
    assert np.all(np.abs(new) <= np.abs(w))  # never grows
    assert np.array_equal(new[~mask], w[~mask])  # only selected elements change
    keep = mask & (lam * d.astype(np.float64) >= f.astype(np.float64) * (1 + 1e-6))
    assert np.array_equal(new[keep], w[keep])  # lambda * I_D / I_Df >= 1 -> unchanged
    with np.errstate(over="ignore"):
        expected = np.where(mask, w * np.minimum(lam * d / np.where(f > 0, f, 1), 1), w)
    np.testing.assert_array_equal(new, expected.astype(np.float32))  # bit-exact, as promised


@settings(max_examples=50, deadline=None)
@given(weights, importances, importances)
def test_infinite_alpha_selects_nothing(w, f, d):
    param = torch.from_numpy(w.copy())
    assert dampen_(param, torch.from_numpy(f), torch.from_numpy(d), alpha=math.inf) == 0
    assert np.array_equal(param.numpy(), w)


def test_bad_hyperparameters_are_refused():
    p = torch.ones(2)
    for kwargs in ({"alpha": -1.0}, {"alpha": math.nan}, {"alpha": 1.0, "dampening": -2.0}):
        try:
            dampen_(p, torch.ones(2), torch.ones(2), **kwargs)
        except ValueError as error:
            assert "must" in str(error)
        else:
            raise AssertionError(f"{kwargs} was accepted")
    assert assd.dampening_factor(torch.tensor([0.0]), torch.tensor([1.0])).item() == 1.0
