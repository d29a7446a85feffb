"""The repair's first step, against Adam's definition (assd.methods.repair)."""

import torch
import torch.nn.functional as F

from assd.batches import TensorData
from assd.methods.repair import PLATEAU_FACTOR, REPAIR_LR, repair_


def test_first_repair_step_moves_each_weight_by_the_learning_rate_against_the_retain_loss():
    # Adam's first step is lr * m / (sqrt(v) + eps) with m = g, v = g^2 after bias correction:
    # -lr * sign(g) wherever |g| >> eps. At that step the forget rows' outputs are exactly the
    # kept ones, so the keep term's gradient is zero and g is the retained rows' loss alone.
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    forget = TensorData(torch.randn(5, 4), torch.zeros(5, dtype=torch.long), batch_size=5)
    before = [p.detach().clone() for p in model.parameters()]
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    grads = [p.grad.detach().clone() for p in model.parameters()]
    model.zero_grad()

    epochs = repair_(model, retain=TensorData(x, y, batch_size=6), forget=forget,
                     done=lambda: True, epochs=5)  # fmt: skip

    assert epochs == 1  # done() held after the first epoch
    for p, p0, g in zip(model.parameters(), before, grads, strict=True):
        moved = g.abs() > 1e-6
        assert moved.any()
        expected = p0 - REPAIR_LR * torch.sign(g)
        assert torch.allclose(p.detach()[moved], expected[moved], atol=1e-6)


def test_a_plateau_cuts_the_step_size_once_and_a_second_one_stops(monkeypatch):
    made = []

    class Recorded(torch.optim.Adam):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(torch.optim, "Adam", Recorded)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    rows = TensorData(torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2]), batch_size=6)
    said = iter([False, "plateau", False, False, "plateau", False])
    lrs = []

    def done():
        state = next(said)
        lrs.append(made[0].param_groups[0]["lr"])  # the rate of the epoch just run
        return state

    assert repair_(model, retain=rows, forget=rows, done=done, epochs=10) == 5
    assert lrs == [REPAIR_LR, REPAIR_LR] + [REPAIR_LR * PLATEAU_FACTOR] * 3
    # a plateau followed by the guard holding stops on the guard
    made.clear()
    said = iter(["plateau", True])
    assert repair_(model, retain=rows, forget=rows, done=lambda: next(said), epochs=10) == 2


def _first_step(model, loss):
    """Adam's first step by hand (-lr * sign(g)) for the gradient of ``loss(model)``."""
    model.zero_grad()
    loss(model).backward()
    step = [(p.detach().clone(), p.grad.detach().clone()) for p in model.parameters()]
    model.zero_grad()
    return step


def test_a_forget_goal_pushes_the_forget_loss_up_to_the_goal_and_no_further():
    # forget_goal replaces the keep term by max(0, goal - forget loss): below the goal the
    # first step follows the retained loss minus the forget loss; above it, the retained
    # loss alone.
    torch.manual_seed(0)
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    fx, fy = torch.randn(5, 4), torch.tensor([0, 0, 1, 2, 0])
    forget = TensorData(fx, fy, batch_size=5)
    for goal, sign in ((50.0, -1.0), (0.0, 0.0)):
        model = torch.nn.Linear(4, 3)
        with torch.no_grad():
            forget_loss = float(F.cross_entropy(model(fx), fy))
        assert (goal > forget_loss) == (sign != 0)  # the hinge is on for 50, off for 0
        expected = _first_step(model, lambda m, s=sign: F.cross_entropy(m(x), y)
                               + s * F.cross_entropy(m(fx), fy))  # fmt: skip
        repair_(model, retain=TensorData(x, y, batch_size=6), forget=forget,
                done=lambda: True, epochs=3, forget_goal=goal)  # fmt: skip
        for p, (p0, g) in zip(model.parameters(), expected, strict=True):
            moved = g.abs() > 1e-6
            assert moved.any()
            assert torch.allclose(p.detach()[moved], (p0 - REPAIR_LR * torch.sign(g))[moved],
                                  atol=1e-6)  # fmt: skip


def test_a_forget_ceiling_pulls_the_forget_loss_back_down_and_leaves_the_band_alone():
    # with forget_ceiling the term is max(0, goal - L) + max(0, L - ceiling): above the
    # ceiling the first step follows the retained loss plus the forget loss (pulled down),
    # inside [goal, ceiling] the retained loss alone, below the goal as without a ceiling
    torch.manual_seed(1)
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    fx, fy = torch.randn(5, 4), torch.tensor([0, 0, 1, 2, 0])
    forget = TensorData(fx, fy, batch_size=5)
    torch.manual_seed(2)
    start = torch.nn.Linear(4, 3).state_dict()
    model = torch.nn.Linear(4, 3)
    model.load_state_dict(start)
    with torch.no_grad():
        forget_loss = float(F.cross_entropy(model(fx), fy))
    for goal, ceiling, sign in ((0.0, forget_loss / 2, 1.0),  # above the ceiling: pulled down
                                (0.0, forget_loss * 2, 0.0),  # inside the band: left alone
                                (forget_loss * 2, forget_loss * 2, -1.0)):  # below: pushed up
        model.load_state_dict(start)
        expected = _first_step(model, lambda m, s=sign: F.cross_entropy(m(x), y)
                               + s * F.cross_entropy(m(fx), fy))  # fmt: skip
        repair_(model, retain=TensorData(x, y, batch_size=6), forget=forget,
                done=lambda: True, epochs=3, forget_goal=goal,
                forget_ceiling=ceiling)  # fmt: skip
        for p, (p0, g) in zip(model.parameters(), expected, strict=True):
            moved = g.abs() > 1e-6
            assert moved.any()
            assert torch.allclose(p.detach()[moved], (p0 - REPAIR_LR * torch.sign(g))[moved],
                                  atol=1e-6)  # fmt: skip
