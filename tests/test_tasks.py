"""Task-aware scoring (assd.tasks, assd.verify.scoring) against hand-computed values,
including the trap where a sequence's length equals the number of classes."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import assd
from assd.batches import TensorData
from assd.metrics import accuracy
from assd.tasks import causal_lm_loss, infer_task, token_classification_loss
from assd.verify.guard import RetainGuard
from assd.verify.outcome import SetScore, score_sets


class Table(nn.Module):
    """Returns fixed logits for row ids: any output shape, exactly the numbers we choose."""

    def __init__(self, logits):
        super().__init__()
        self.table = nn.Parameter(torch.as_tensor(logits, dtype=torch.float32).clone())

    def forward(self, ids):
        return self.table[ids]


def rows(targets, batch_size=8):
    targets = torch.as_tensor(targets)
    return TensorData(torch.arange(len(targets)), targets, batch_size=batch_size)


def nll(logits_row, target):
    """-log softmax(logits_row)[target], in float64 NumPy."""
    z = np.asarray(logits_row, dtype=np.float64)
    return float(np.log(np.exp(z - z.max()).sum()) + z.max() - z[target])


def test_classification_by_hand():
    logits = [[2.0, 0.0], [0.0, 1.0], [3.0, -1.0]]
    score = score_sets(Table(logits), {"s": rows([0, 0, 0])})["s"]
    assert score.accuracy == pytest.approx(2 / 3)
    expected = np.mean([nll(logits[i], 0) for i in range(3)])
    assert score.loss == pytest.approx(expected, rel=1e-6)
    assert score.confusion.tolist() == [[2, 1], [0, 0]]


def trap_logits():
    """(2 rows, length 3, 3 classes): every position predicts class 1."""
    logits = np.zeros((2, 3, 3))
    logits[:, :, 1] = 1.0
    return logits


def test_token_classification_length_equals_classes():
    targets = [[1, 1, -100], [1, 0, 2]]
    logits = trap_logits()
    data = {"s": rows(targets)}
    with pytest.raises(ValueError, match=r"token-classification.*causal-lm"):
        score_sets(Table(logits), data)  # two tasks fit the shapes: never guessed
    score = score_sets(Table(logits), data, task="token-classification")["s"]
    counted = [(r, t) for r in range(2) for t in range(3) if targets[r][t] != -100]
    hits = [targets[r][t] == 1 for r, t in counted]
    assert score.accuracy == pytest.approx(sum(hits) / len(counted))  # 3 of 5
    assert score.accuracy == pytest.approx(0.6)
    per_token = [nll(logits[r, t], targets[r][t]) for r, t in counted]
    assert score.loss == pytest.approx(np.mean(per_token), rel=1e-6)  # 0.9514
    # the old reading (argmax over axis 1, cross-entropy over axis 1) gives other numbers
    wrong = F.cross_entropy(torch.tensor(logits), torch.tensor(targets).clamp(min=0))
    assert abs(float(wrong) - score.loss) > 0.05
    assert accuracy(Table(logits), rows(targets), task="token-classification") == pytest.approx(0.6)
    with pytest.raises(ValueError, match="name the task"):
        accuracy(Table(logits), rows(targets))


def test_causal_lm_by_hand():
    # 2 rows of length 4 over 3 tokens; position t predicts the target at t + 1
    targets = [[0, 1, 2, -100], [2, 2, 0, 1]]
    logits = np.zeros((2, 4, 3))
    logits[0, 0, 1], logits[0, 1, 2] = 2.0, 2.0  # row 0: predicts 1 then 2: extracted
    logits[1, 0, 2], logits[1, 1, 1], logits[1, 2, 1] = 2.0, 2.0, 2.0  # row 1: 2 right, 0 wrong
    score = score_sets(Table(logits), {"s": rows(targets)}, task="causal-lm")["s"]
    pairs = [(r, t) for r in range(2) for t in range(3) if targets[r][t + 1] != -100]
    right = [int(np.argmax(logits[r, t])) == targets[r][t + 1] for r, t in pairs]
    assert score.accuracy == pytest.approx(sum(right) / len(pairs))  # 4 of 5
    losses = [nll(logits[r, t], targets[r][t + 1]) for r, t in pairs]
    assert score.loss == pytest.approx(np.mean(losses), rel=1e-6)
    assert score.perplexity == pytest.approx(math.exp(np.mean(losses)), rel=1e-6)
    assert score.extraction == pytest.approx(0.5)  # row 0 only
    row1 = np.mean([nll(logits[1, t], targets[1][t + 1]) for t in range(3)])
    assert float(score.row_losses[1]) == pytest.approx(row1, rel=1e-6)
    # the loss the task fixes for importances: the mean of each row's own mean loss
    row0 = np.mean([nll(logits[0, t], targets[0][t + 1]) for t in range(2)])
    value = causal_lm_loss(torch.tensor(logits, dtype=torch.float32), torch.tensor(targets))
    assert float(value) == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_regression_and_metric_fn():
    outputs, targets = [[1.5], [2.0]], [1.0, 3.0]
    metric = lambda out, y: -(out.squeeze(-1) - y).abs()  # noqa: E731
    score = score_sets(Table(outputs), {"s": rows(torch.tensor(targets))}, metric_fn=metric)["s"]
    assert score.accuracy is None
    assert score.loss == pytest.approx((0.25 + 1.0) / 2)
    assert score.metric == pytest.approx(-(0.5 + 1.0) / 2)
    with pytest.raises(ValueError, match="classification"):
        score_sets(Table(outputs), {"s": rows(torch.tensor(targets))}, task="classification")


def test_inference_is_only_where_one_task_fits():
    assert infer_task(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long)) == "classification"
    assert infer_task(torch.zeros(4, 1), torch.zeros(4)) == "regression"
    with pytest.raises(ValueError, match="name the task"):
        infer_task(torch.zeros(4, 5, 5), torch.zeros(4, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="fit no task"):
        infer_task(torch.zeros(4, 5, 5), torch.zeros(4, dtype=torch.long))


def test_guard_watches_perplexity_and_metric():
    before = score_sets(Table(trap_logits()), {"r": rows([[1, 1, 1], [1, 0, 1]])},
                        task="causal-lm")["r"]  # fmt: skip
    worse = trap_logits()
    worse[:, :, 1] = 0.9
    after = score_sets(Table(worse), {"r": rows([[1, 1, 1], [1, 0, 1]])}, task="causal-lm")["r"]
    guard = RetainGuard(max_drop=0.02)
    check = guard.check({"r": before}, {"r": after})
    assert check["worst"]["kind"] == "relative perplexity"
    assert check["worst"]["drop"] == pytest.approx(after.perplexity / before.perplexity - 1,
                                                   abs=1e-6)  # fmt: skip
    # never-seen reference sequences are what the forget rows should look like, not data to
    # keep: a request that makes them less likely is not a retained loss
    scores = {"forget": after, "r": before, "unseen": after}
    assert guard.watched(scores) == ["r"]
    assert guard.check({**scores, "unseen": before}, scores)["ok"]
    assert RetainGuard(sets=("r", "unseen")).watched(scores) == ["r", "unseen"]  # if asked
    plain = SetScore(10, 0.9, 0.3)  # a classifier's set that happens to be called "unseen"
    assert guard.watched({"r": before, "unseen": plain}) == ["r", "unseen"]


def test_default_loss_refuses_sequence_logits_and_task_fixes_it():
    logits = torch.randn(3, 4, 4)  # length 4 == classes 4: cross-entropy would run on axis 1
    targets = torch.tensor([[0, 1, 2, -100], [3, 3, 0, 1], [2, -100, -100, -100]])
    with pytest.raises(ValueError, match="name the task"):
        assd.compute_importance(Table(logits), rows(targets))
    model = Table(logits)
    method = assd.SSD(task="token-classification", estimator="batch")
    loss = method.importance_options["loss_fn"]
    imp = assd.compute_importance(model, rows(targets), loss_fn=loss, estimator="batch")
    same = assd.compute_importance(model, rows(targets), task="token-classification",
                                   estimator="batch")
    torch.testing.assert_close(same.tensors["table"], imp.tensors["table"])
    keep = targets != -100
    per_token = F.cross_entropy(model.table.reshape(-1, 4), targets.reshape(-1), reduction="none",
                                ignore_index=-100).reshape(3, 4)  # fmt: skip
    by_row = (per_token * keep).sum(1) / keep.sum(1)
    (grad,) = torch.autograd.grad(by_row.mean(), [model.table])
    torch.testing.assert_close(imp.tensors["table"], grad.square())
    assert float(token_classification_loss(model.table.detach(), targets)) == pytest.approx(
        float(by_row.detach().mean()))


def test_lm_verdict_counts_extraction_as_forgetting():
    from assd.verify.outcome import LayerChange, Outcome, SetScore

    def lm(extraction):
        return SetScore(8, 0.9, 0.2, task="causal-lm", perplexity=math.exp(0.2),
                        extraction=extraction)  # fmt: skip

    layers = {"w": LayerChange(changed=3, elements=10, norm_before=1.0, norm_after=0.9)}
    moved = Outcome(before={"forget": lm(0.875)}, after={"forget": lm(0.25)}, layers=layers)
    still = Outcome(before={"forget": lm(0.875)}, after={"forget": lm(0.875)}, layers=layers)
    assert "predicted as before" not in moved.verdict()
    assert "sequences extracted 87.5 % -> 25.0 %" in moved.verdict()
    assert "predicted as before" in still.verdict()
