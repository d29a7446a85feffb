"""Membership inference attacks (MIA) used as unlearning metrics.

Two attacks, both on the model's outputs only:

- :func:`mia_share` (the SSD benchmark protocol): a logistic regression with
  balanced class weights learns, from the softmax entropy alone, to tell
  retain-train rows ("member") from test rows ("non-member"); the score is the
  share of forget rows it calls "member". **Lower means Df looks less like
  training data.** The target is what retraining without Df scores, not 0: a
  retrained model still gives unseen rows of a retained class confident,
  member-like outputs (random forgetting), while for a whole forgotten class
  retrain typically scores near 0.
- :func:`loss_mia_auc`: the ROC AUC of "member" scored as minus the
  per-sample cross-entropy, members = Df, non-members = comparable rows never
  trained on (the forget-class test split, or test rows for random
  forgetting). **0.5 means Df is indistinguishable from unseen data** (what
  retraining scores up to noise); above 0.5, Df still has a lower loss than
  unseen data (remembered); below 0.5, Df has a higher loss than unseen data,
  which itself gives the forgetting away (the "Streisand effect").

Example:
    >>> auc(torch.tensor([3.0, 4.0]), torch.tensor([1.0, 3.0]))
    0.875
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..batches import forward, split_batch, to_device
from ..contract import model_errors
from ..parameters import model_device, set_mode

__all__ = [
    "auc",
    "entropy_mia",
    "logits_of",
    "loss_mia_auc",
    "mia_share",
    "per_sample_loss",
    "softmax_entropy",
]


@torch.no_grad()
def logits_of(model: nn.Module, data, *, batch_fn=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (float32, CPU) and targets of every batch, model in eval mode."""
    device = model_device(model)
    logits, targets = [], []
    with set_mode(model, train=False):
        for index, batch in enumerate(data):
            inputs, y = split_batch(batch, batch_fn)
            with model_errors("evaluation (membership inference)", index):
                logits.append(forward(model, to_device(inputs, device)).float().cpu())
            targets.append(y.cpu())
    if not logits:
        raise ValueError("cannot measure a model on an empty data set.")
    return torch.cat(logits), torch.cat(targets)


def softmax_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of each row's softmax: ``-sum p log p``, with 0 log 0 = 0."""
    log_p = F.log_softmax(logits.double(), dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


def per_sample_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each row."""
    return F.cross_entropy(logits.double(), targets, reduction="none")


def entropy_mia(
    retain_entropy: torch.Tensor, test_entropy: torch.Tensor, forget_entropy: torch.Tensor
) -> float:
    """Share of forget rows a balanced logistic regression on entropy calls "member".

    The regression (scikit-learn, L2 with C=1, lbfgs) is fitted on retain rows
    (label 1) against test rows (label 0), each class weighted by the inverse
    of its frequency.
    """
    from sklearn.linear_model import LogisticRegression

    x = torch.cat([retain_entropy, test_entropy]).double().numpy().reshape(-1, 1)
    y = np.concatenate([np.ones(len(retain_entropy)), np.zeros(len(test_entropy))])
    if len(forget_entropy) == 0 or y.min() == y.max():
        raise ValueError("the MIA needs retain rows, test rows and forget rows.")
    attack = LogisticRegression(class_weight="balanced", solver="lbfgs")
    attack.fit(x, y)
    return float(attack.predict(forget_entropy.double().numpy().reshape(-1, 1)).mean())


def mia_share(model: nn.Module, *, retain, test, forget, batch_fn=None) -> float:
    """The SSD-protocol MIA on ``model``: see :func:`entropy_mia` and the module notes."""
    entropies = [softmax_entropy(logits_of(model, d, batch_fn=batch_fn)[0])
                 for d in (retain, test, forget)]  # fmt: skip
    return entropy_mia(*entropies)


def auc(members: torch.Tensor, nonmembers: torch.Tensor) -> float:
    """P(score of a random member > score of a random non-member), ties counted half.

    The Mann-Whitney U statistic over ``len(members) * len(nonmembers)``, from ranks.
    """
    from scipy.stats import rankdata

    a, b = members.double().numpy().ravel(), nonmembers.double().numpy().ravel()
    if a.size == 0 or b.size == 0:
        raise ValueError("an AUC needs at least one member and one non-member.")
    ranks = rankdata(np.concatenate([a, b]))
    u = ranks[: a.size].sum() - a.size * (a.size + 1) / 2
    return float(u / (a.size * b.size))


def loss_mia_auc(model: nn.Module, *, members, nonmembers, batch_fn=None) -> float:
    """AUC of the loss attack: members (Df) should have the *lower* loss if remembered.

    0.5 = indistinguishable (retrain's value); > 0.5 = Df still remembered.
    """
    scores = [-per_sample_loss(*logits_of(model, d, batch_fn=batch_fn))
              for d in (members, nonmembers)]  # fmt: skip
    return auc(*scores)
