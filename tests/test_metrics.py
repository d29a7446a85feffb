"""Unlearning metrics against independent computations on tiny inputs."""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from torch import nn

from assd import TensorData
from assd.metrics import (
    auc,
    entropy_mia,
    js_divergence,
    loss_mia_auc,
    mia_share,
    softmax_entropy,
    zrf,
    zrf_from_logits,
)


def np_softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_softmax_entropy_matches_numpy():
    logits = torch.randn(7, 4) * 3
    p = np_softmax(logits.double().numpy())
    expected = -(p * np.log(p)).sum(1)
    np.testing.assert_allclose(softmax_entropy(logits).numpy(), expected, rtol=1e-10)
    assert softmax_entropy(torch.zeros(1, 4)).item() == pytest.approx(math.log(4))


def balanced_logistic_threshold(members, nonmembers):
    """Fit sklearn's objective by hand: 0.5 w^2 + C * sum_i weight_i * log(1 + exp(-s_i z_i)),
    C = 1, weights n / (2 n_class), intercept unpenalised; return the decision function."""
    x = np.concatenate([members, nonmembers])
    s = np.concatenate([np.ones(len(members)), -np.ones(len(nonmembers))])
    weight = np.where(s > 0, len(x) / (2 * len(members)), len(x) / (2 * len(nonmembers)))

    def loss(params):
        w, b = params
        return 0.5 * w * w + np.sum(weight * np.logaddexp(0, -s * (w * x + b)))

    w, b = minimize(loss, [0.0, 0.0], method="BFGS", options={"gtol": 1e-10}).x
    return lambda v: w * v + b


def test_entropy_mia_matches_a_hand_fitted_balanced_logistic_regression():
    rng = np.random.default_rng(0)
    retain = rng.normal(0.3, 0.3, 90)  # members: low entropy, three times as many
    test = rng.normal(1.2, 0.4, 30)
    forget = np.array([0.0, 0.2, 0.5, 0.9, 1.1, 1.4, 2.0])
    decide = balanced_logistic_threshold(retain, test)
    assert np.abs(decide(forget)).min() > 1e-3  # no forget point sits on the boundary
    expected = float((decide(forget) > 0).mean())
    got = entropy_mia(*(torch.tensor(v) for v in (retain, test, forget)))
    assert got == pytest.approx(expected) and 0 < got < 1


def test_mia_share_on_a_model_whose_confidence_we_choose():
    """Inputs with a large first feature give confident outputs (member-like)."""
    model = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[5.0, 0.0], [0.0, 0.0], [0.0, 0.0]]))
    confident = torch.tensor([[3.0, 0.0]]).repeat(20, 1) + 0.1 * torch.rand(20, 2)
    unsure = 0.1 * torch.rand(20, 2)
    y = torch.zeros(20, dtype=torch.long)
    retain, test = TensorData(confident, y), TensorData(unsure, y)
    assert mia_share(model, retain=retain, test=test, forget=TensorData(confident[:5], y[:5])) == 1
    assert mia_share(model, retain=retain, test=test, forget=TensorData(unsure[:5], y[:5])) == 0


def brute_force_auc(a, b):
    pairs = [(x > y) + 0.5 * (x == y) for x, y in itertools.product(a, b)]
    return sum(pairs) / len(pairs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_equals_the_pairwise_definition_with_ties(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 5, 9).astype(float), rng.integers(0, 5, 6).astype(float)  # many ties
    assert auc(torch.tensor(a), torch.tensor(b)) == pytest.approx(brute_force_auc(a, b))


def test_loss_mia_auc_scores_low_loss_as_member():
    model = nn.Linear(3, 4)
    x = torch.randn(12, 3)
    y = torch.randint(0, 4, (12,))
    z = model(x).detach().double().numpy()
    loss = -np.log(np_softmax(z)[np.arange(12), y.numpy()])
    expected = brute_force_auc(-loss[:5], -loss[5:])
    got = loss_mia_auc(model, members=TensorData(x[:5], y[:5]), nonmembers=TensorData(x[5:], y[5:]))
    assert got == pytest.approx(expected)


def test_js_divergence_matches_numpy_and_its_bounds():
    p = np_softmax(np.random.default_rng(1).normal(size=(5, 3)))
    q = np_softmax(np.random.default_rng(2).normal(size=(5, 3)))
    m = (p + q) / 2
    expected = 0.5 * (p * np.log(p / m)).sum(1) + 0.5 * (q * np.log(q / m)).sum(1)
    got = js_divergence(torch.tensor(p), torch.tensor(q)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    np.testing.assert_allclose(js_divergence(torch.tensor(q), torch.tensor(p)).numpy(), got)
    one_hot = torch.eye(3)
    np.testing.assert_allclose(js_divergence(one_hot, one_hot).numpy(), 0.0, atol=1e-12)
    disjoint = js_divergence(one_hot, one_hot.roll(1, dims=1)).numpy()
    np.testing.assert_allclose(disjoint, math.log(2), rtol=1e-12)


def test_zrf_is_one_minus_the_mean_js_divergence():
    torch.manual_seed(3)
    model, random_model = nn.Linear(4, 3), nn.Linear(4, 3)
    x = torch.randn(9, 4)
    data = TensorData(x, torch.zeros(9, dtype=torch.long), batch_size=4)
    p, q = (np_softmax(m(x).detach().double().numpy()) for m in (model, random_model))
    m = (p + q) / 2
    js = 0.5 * (p * np.log(p / m)).sum(1) + 0.5 * (q * np.log(q / m)).sum(1)
    assert zrf(model, random_model, data) == pytest.approx(1 - js.mean(), rel=1e-6)
    assert zrf(model, model, data) == pytest.approx(1.0)
    assert zrf_from_logits(torch.tensor([[50.0, 0.0]]), torch.tensor([[0.0, 50.0]])) == (
        pytest.approx(1 - math.log(2))
    )
