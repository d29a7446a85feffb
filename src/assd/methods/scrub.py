"""SCRUB: a student that moves away from its teacher on Df and stays close on Dr."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..batches import forward
from ..train import fit
from .registry import register
from .training import TrainingMethod, require_both

__all__ = ["SCRUB", "distill_kl"]


def distill_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, t: float
) -> torch.Tensor:
    """KL(teacher || student) of the softmaxes at temperature ``t``, times ``t**2``,
    averaged over the batch (the usual distillation loss)."""
    log_student = F.log_softmax(student_logits / t, dim=1)
    teacher = F.softmax(teacher_logits / t, dim=1)
    return F.kl_div(log_student, teacher, reduction="batchmean") * t * t


@register("scrub")
class SCRUB(TrainingMethod):
    """SCRUB (Kurmanji et al., NeurIPS 2023).

    The student starts as a copy of the model; the teacher is the original.
    Each epoch first (in the first ``max_epochs`` epochs) makes a *max-step*
    pass over the forget loader, maximising the distillation KL to the
    teacher, then a *min-step* pass over the retain loader minimising
    ``gamma * cross-entropy + alpha * KL``. Defaults follow the SCRUB code's
    small-scale CIFAR setting: 3 epochs, max-steps in the first 2, SGD with
    lr 5e-4, momentum 0.9, weight decay 5e-4, temperature 4, alpha 0.001,
    gamma 0.99. (Here each pass starts a fresh optimizer, so momentum is not
    carried across passes.)

    Args:
        max_epochs: epochs that include a max-step pass.
        temperature, alpha, gamma: the loss's temperature and weights.
        epochs, lr, optimizer, ...: as in :class:`assd.methods.TrainingMethod`.
    """

    def __init__(
        self,
        *,
        epochs: int = 3,
        max_epochs: int = 2,
        lr: float = 5e-4,
        weight_decay: float = 5e-4,
        temperature: float = 4.0,
        alpha: float = 0.001,
        gamma: float = 0.99,
        **options,
    ):
        super().__init__(epochs=epochs, lr=lr, weight_decay=weight_decay, **options)
        self.max_epochs, self.temperature = max_epochs, temperature
        self.alpha, self.gamma = alpha, gamma

    def train_(self, model: nn.Module, *, forget, retain) -> None:
        require_both(self, forget, retain)
        teacher = copy.deepcopy(model).eval()
        t = self.temperature

        def teacher_logits(inputs):
            with torch.no_grad():
                return forward(teacher, inputs)

        def max_step(student, inputs, targets):
            return -distill_kl(forward(student, inputs), teacher_logits(inputs), t)

        def min_step(student, inputs, targets):
            logits = forward(student, inputs)
            kl = distill_kl(logits, teacher_logits(inputs), t)
            return self.gamma * F.cross_entropy(logits, targets) + self.alpha * kl

        once = {**self.fit_options, "epochs": 1}
        for epoch in range(self.fit_options["epochs"]):
            if epoch < self.max_epochs:
                fit(model, forget, objective=max_step, **once)
            fit(model, retain, objective=min_step, **once)
