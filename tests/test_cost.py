"""What assd-auto's cost cuts keep exact: a strength tried once is not tried again, and the
repair's one forward pass over both batches gives the gradients of two passes."""

import torch
import torch.nn.functional as F

import assd
from assd.methods.repair import KEEP_WEIGHT, _both, _keep_loss
from assd.methods.search import Trials, search
from assd.rule.dampening import dampen_parameters_


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x, y = torch.randn(90, 5), torch.arange(90) % 3
    imp = assd.compute_importance(model, assd.TensorData(x, y, batch_size=30), estimator="sample")
    forget = assd.compute_importance(model, assd.TensorData(x[:15], y[:15], batch_size=15),
                                     estimator="sample")  # fmt: skip
    sets = {"forget": assd.TensorData(x[:15], y[:15], batch_size=15)}
    return model, forget.tensors, imp.tensors, sets


def test_a_strength_tried_before_is_not_dampened_or_scored_again():
    model, forget, reference, sets = _setup()
    calls = []
    trials = Trials(model, forget, reference, alpha0=2.0, lam0=1.0, sets=sets, guard=None,
                    target=lambda before, after: calls.append(1) or {"met": False})  # fmt: skip
    first = trials.apply(1.5)
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    trials.apply(0.5)
    again = trials.apply(1.5)
    assert again is first and len(trials.tries) == 2 and len(calls) == 2
    # put the model back at 1.5 without scoring it again: the weights of the first try
    assert trials.apply(1.5, record=False) is first and len(calls) == 2
    assert all(torch.equal(p, weights[n]) for n, p in model.named_parameters())
    # and those are the dampening itself, computed on an untouched copy
    fresh, _, _, _ = _setup()
    params = dict(fresh.named_parameters())
    alpha, lam = trials.hyperparameters(1.5)
    dampen_parameters_({n: params[n] for n in reference}, forget, reference,
                       alpha=alpha, dampening=lam)  # fmt: skip
    assert all(torch.equal(p, params[n]) for n, p in model.named_parameters())


def test_search_without_the_guard_reuses_the_tries_of_the_search_with_it():
    model, forget, reference, sets = _setup()
    # target met from strength 1.0 on; the guard breaks from 0.5 on
    guard = type("Guard", (), {"check": lambda self, before, after: {"ok": trials.current < 0.5}})()
    trials = Trials(model, forget, reference, alpha0=2.0, lam0=1.0, sets=sets, guard=guard,
                    target=lambda before, after: {"met": trials.current >= 1.0})  # fmt: skip
    within = search(trials)
    n = len(trials.tries)
    strengths = [t["strength"] for t in trials.tries]
    reach = search(trials, first=trials.tries[0], use_guard=False)
    assert within["strength"] < 0.5 <= 1.0 <= reach["strength"] < 1.1
    new = [t["strength"] for t in trials.tries[n:]]
    assert not set(new) & set(strengths) and len(new) < n  # nothing tried twice
    assert trials.current == reach["strength"]


def test_one_forward_pass_over_both_batches_gives_the_gradients_of_two():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                                torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Dropout(0.5),
                                torch.nn.Linear(4 * 36, 3)).eval()  # fmt: skip
    model[1].running_mean.uniform_(-1, 1)
    x, y, fx = torch.randn(7, 1, 6, 6), torch.tensor([0, 1, 2, 0, 1, 2, 0]), torch.randn(4, 1, 6, 6)
    target = torch.randn(4, 3)

    def grads(out, forget_out):
        model.zero_grad()
        (F.cross_entropy(out, y) + KEEP_WEIGHT * _keep_loss(forget_out, target)).backward()
        return [p.grad.clone() for p in model.parameters()]

    one = grads(*_both(model, x, fx))
    two = grads(model(x), model(fx))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(one, two, strict=True))
    # rows of another shape (or not tensors) go through two passes
    seen = []
    out, _ = _both(lambda a: seen.append(a.shape) or a.sum(1), x, torch.randn(2, 2, 6, 6))
    assert seen == [(7, 1, 6, 6), (2, 2, 6, 6)] and out.shape == (7, 6, 6)
