"""ZRF (zero retrain forgetting) score: how close the model is to a random one on Df.

``ZRF = 1 - mean_x JS(p_model(x), p_random(x))`` over the forget rows, with
JS the Jensen-Shannon divergence (natural log, so 0 <= JS <= ln 2 and
1 - ln 2 ~ 0.307 <= ZRF <= 1) and ``p_random`` the softmax of a randomly
initialised ("incompetent") model of the same architecture (Chundawat et al.,
AAAI 2023). **Higher means the model behaves more like a random model on Df.**
It is not "higher is better" without limit: the target is retrain's score,
which for class forgetting is well below 1 (a retrained model is confidently
wrong, not random, on a forgotten class). The SSD reference code computes a
different quantity (``F.kl_div`` averaged over every element, with the
arguments in the order KL(m || p)), so its ZRF values are not comparable.

Example:
    >>> p = torch.tensor([[1.0, 0.0]]); q = torch.tensor([[0.0, 1.0]])
    >>> round(float(js_divergence(p, q)[0]), 6)  # ln 2
    0.693147
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .mia import logits_of

__all__ = ["js_divergence", "zrf", "zrf_from_logits"]


def js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence (nats) between the rows of two probability matrices."""
    p, q = p.double(), q.double()
    m = (p + q) / 2
    return (_kl(p, m) + _kl(q, m)) / 2


def _kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    ratio = torch.where(p > 0, p / q.clamp_min(1e-300), torch.ones_like(p))
    return (p * ratio.log()).sum(dim=1)


def zrf_from_logits(logits: torch.Tensor, random_logits: torch.Tensor) -> float:
    """1 - mean JS divergence between the two models' softmaxes."""
    if len(logits) == 0:
        raise ValueError("ZRF needs at least one forget row.")
    js = js_divergence(F.softmax(logits.double(), 1), F.softmax(random_logits.double(), 1))
    return float(1 - js.mean())


def zrf(model: nn.Module, incompetent: nn.Module, data, *, batch_fn=None) -> float:
    """The ZRF score of ``model`` on ``data`` (the forget rows) against ``incompetent``."""
    return zrf_from_logits(
        logits_of(model, data, batch_fn=batch_fn)[0],
        logits_of(incompetent, data, batch_fn=batch_fn)[0],
    )
