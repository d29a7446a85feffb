"""The training baselines: each one's update checked against a hand computation."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from assd import TensorData
from assd.methods import (
    SCRUB,
    UNSIR,
    Amnesiac,
    BadTeacher,
    GradientAscent,
    RandomLabels,
    gather,
    reinitialize_,
)
from assd.methods.random_labels import random_other_labels

SGD = {"optimizer": "sgd", "momentum": 0.0, "lr": 0.1}


def setup(n=24, n_forget=6, classes=3):
    g = torch.Generator().manual_seed(4)
    model = nn.Linear(5, classes)
    x, y = torch.randn(n, 5, generator=g), torch.randint(0, classes, (n,), generator=g)
    forget = TensorData(x[:n_forget], y[:n_forget], batch_size=n)
    retain = TensorData(x[n_forget:], y[n_forget:], batch_size=n)
    return model, x, y, forget, retain


def sgd_step(model, loss_fn, lr=0.1):
    """One plain SGD step on a copy, by hand."""
    target = copy.deepcopy(model)
    loss = loss_fn(target)
    grads = torch.autograd.grad(loss, list(target.parameters()))
    with torch.no_grad():
        for p, g in zip(target.parameters(), grads, strict=True):
            p -= lr * g
    return target


def assert_same_weights(a, b):
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_random_other_labels_never_keep_the_label_and_cover_the_others():
    y = torch.zeros(6000, dtype=torch.long)
    new = random_other_labels(y, 4, generator=torch.Generator().manual_seed(0))
    assert (new != 0).all()
    counts = torch.bincount(new, minlength=4)[1:].double()
    assert (counts / 6000 - 1 / 3).abs().max() < 0.03  # uniform over the 3 other classes


def test_gradient_ascent_is_one_step_up_the_forget_loss():
    model, x, y, forget, _ = setup()
    out = GradientAscent(epochs=1, **SGD).unlearn(model, forget=forget).model
    expected = sgd_step(model, lambda m: -F.cross_entropy(m(x[:6]), y[:6]))
    assert_same_weights(out, expected)


def test_random_labels_train_on_wrong_labels_only():
    model, x, y, forget, retain = setup()
    method = RandomLabels(epochs=1, batch_size=100, **SGD)
    xs, labels = method.relabelled_forget(model, forget)
    assert torch.equal(xs, x[:6]) and (labels != y[:6]).all()
    out = method.unlearn(model, forget=forget, retain=retain).model
    assert_same_weights(out, sgd_step(model, lambda m: F.cross_entropy(m(x[:6]), labels)))


def test_amnesiac_mixes_the_whole_retain_set_with_relabelled_forget_rows():
    model, x, y, forget, retain = setup()
    method = Amnesiac(batch_size=100)
    data = method.training_data(model, forget=forget, retain=retain)
    xs, ys = gather(data)
    assert len(xs) == len(x)
    order = [int(torch.nonzero((x == row).all(1))[0]) for row in xs]
    assert sorted(order) == list(range(len(x)))  # every row exactly once
    for row, label in zip(order, ys.tolist(), strict=True):
        assert (label != y[row]) if row < 6 else (label == y[row])


def test_bad_teacher_distils_the_right_teacher_per_row():
    model, x, _y, forget, retain = setup()
    out = BadTeacher(retain_share=1.0, batch_size=100, **SGD).unlearn(
        model, forget=forget, retain=retain
    )
    bad = reinitialize_(copy.deepcopy(model), seed=0)
    with torch.no_grad():
        target = torch.cat([F.softmax(bad(x[:6]), 1), F.softmax(model(x[6:]), 1)])

    def loss(m):
        return F.kl_div(F.log_softmax(m(x), 1), target, reduction="batchmean")

    assert_same_weights(out.model, sgd_step(model, loss))


def test_bad_teacher_uses_a_share_of_the_retain_set():
    _model, _, _, forget, retain = setup(n=106)
    data = BadTeacher(retain_share=0.3)._mixed(forget, retain)
    _, is_forget = gather(data)
    assert int(is_forget.sum()) == 6 and int((~is_forget).sum()) == 30


def test_unsir_noise_raises_the_loss_and_the_retain_sample_is_capped():
    model, x, y, _forget, _retain = setup()
    method = UNSIR(noise_steps=30, noise_batch=8, per_class=2)
    noise, labels = method._noise(model, x[:6], y[:6])
    start = torch.randn(8, 5, generator=torch.Generator().manual_seed(0))
    assert set(labels.tolist()) <= set(y[:6].tolist())
    before = F.cross_entropy(model(start), labels)
    assert F.cross_entropy(model(noise), labels) > before + 1.0
    _xs, ys = method._retain_sample(x[6:], y[6:])
    assert torch.bincount(ys).max() <= 2 and set(ys.tolist()) == set(y[6:].tolist())


def test_scrub_min_step_is_weighted_cross_entropy_plus_distillation():
    model, x, y, forget, retain = setup()
    method = SCRUB(epochs=1, max_epochs=0, weight_decay=0.0, alpha=0.5, gamma=0.7, **SGD)
    out = method.unlearn(model, forget=forget, retain=retain).model

    def loss(m):
        logits = m(x[6:])
        with torch.no_grad():
            teacher = F.softmax(model(x[6:]) / 4, 1)
        kl = F.kl_div(F.log_softmax(logits / 4, 1), teacher, reduction="batchmean") * 16
        return 0.7 * F.cross_entropy(logits, y[6:]) + 0.5 * kl

    assert_same_weights(out, sgd_step(model, loss))


def test_scrub_max_step_moves_away_from_the_teacher_once_it_differs():
    model, x, _y, forget, retain = setup()
    method = SCRUB(epochs=2, max_epochs=2, weight_decay=0.0, alpha=0.0, gamma=1.0, **SGD)
    out = method.unlearn(model, forget=forget, retain=retain).model
    no_max = SCRUB(epochs=2, max_epochs=0, weight_decay=0.0, alpha=0.0, gamma=1.0, **SGD)
    plain = no_max.unlearn(model, forget=forget, retain=retain).model

    @torch.no_grad()
    def kl(m):
        return F.kl_div(F.log_softmax(m(x[:6]), 1), F.softmax(model(x[:6]), 1), reduction="sum")

    assert float(kl(out)) > float(kl(plain))


@pytest.mark.parametrize("cls", [Amnesiac, BadTeacher, UNSIR, SCRUB])
def test_methods_that_need_both_sets_say_so(cls):
    model, _, _, forget, _ = setup()
    with pytest.raises(ValueError, match="retain="):
        cls().unlearn(model, forget=forget)
