"""Bad teaching: distil a competent teacher on retain rows, an incompetent one on forget rows."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..batches import batch_size_of, forward
from ..train import fit
from .registry import register
from .training import (
    TrainingMethod,
    _cat,
    collect,
    reinitialize_,
    remix,
    require_both,
    tensor_rows,
)

__all__ = ["BadTeacher"]


@register("bad-teacher")
class BadTeacher(TrainingMethod):
    """Bad teaching (Chundawat et al., AAAI 2023) as the SSD benchmarks run it.

    The student (a copy of the model) is trained to match, by KL divergence at
    temperature ``temperature``, the *competent* teacher (the original model)
    on retain rows and the *incompetent* teacher (a randomly initialised copy,
    seeded) on forget rows. It sees the whole forget set and a seeded random
    ``retain_share`` of the retain set, shuffled together. Reference setting:
    1 epoch, Adam, lr 1e-4, batch 256, 30 % of Dr, temperature 1. (The
    reference averages the KL over every element; this uses the per-sample
    mean, ``batchmean``, which only rescales the loss.)

    Args:
        batch_size: rows per batch of the mixed set.
        retain_share: share of the retain set used.
        temperature: distillation temperature.
        epochs, lr, optimizer, ...: as in :class:`assd.methods.TrainingMethod`.
    """

    def __init__(
        self,
        *,
        epochs: int = 1,
        lr: float = 1e-4,
        optimizer: str = "adam",
        batch_size: int = 256,
        retain_share: float = 0.3,
        temperature: float = 1.0,
        **options,
    ):
        if not 0.0 < retain_share <= 1.0 or temperature <= 0:
            raise ValueError(
                f"retain_share must lie in (0, 1] and temperature be > 0, got {retain_share} "
                f"and {temperature}."
            )
        super().__init__(epochs=epochs, lr=lr, optimizer=optimizer, **options)
        self.batch_size, self.retain_share, self.temperature = batch_size, retain_share, temperature

    def train_(self, model: nn.Module, *, forget, retain) -> None:
        require_both(self, forget, retain)
        competent = copy.deepcopy(model).eval()
        incompetent = reinitialize_(copy.deepcopy(model), seed=self.seed).eval()
        data = self._mixed(forget, retain)
        label = "the mixed forget and retain sets"

        def objective(student: nn.Module, inputs, is_forget) -> torch.Tensor:
            t = self.temperature
            with torch.no_grad():
                good = F.softmax(forward(competent, inputs) / t, dim=1)
                bad = F.softmax(forward(incompetent, inputs) / t, dim=1)
                target = torch.where(is_forget[:, None], bad, good)
            log_student = F.log_softmax(forward(student, inputs) / t, dim=1)
            return F.kl_div(log_student, target, reduction="batchmean")

        fit(model, data, objective=objective, label=label, **self.fit_options)

    def _mixed(self, forget, retain):
        """Forget rows flagged True, a seeded share of retain rows flagged False, shuffled
        (row by row for tensor inputs, whole batches otherwise)."""
        batch_fn = self.fit_options["batch_fn"]
        xf = collect(forget, batch_fn=batch_fn, what="forget")
        xr = collect(retain, batch_fn=batch_fn, what="retain")
        generator = torch.Generator().manual_seed(self.seed)
        if tensor_rows(xf + xr):
            xf, xr = [_cat(xf)], [_cat(xr)]
            rows = xr[0][0]
            keep = torch.randperm(len(rows), generator=generator)[
                : max(1, round(self.retain_share * len(rows)))
            ]
            xr = [(rows[keep.to(rows.device)], None)]
        else:
            keep = torch.randperm(len(xr), generator=generator)
            xr = [xr[i] for i in keep[: max(1, round(self.retain_share * len(xr)))].tolist()]
        parts = [
            [(x, torch.full((batch_size_of(x),), flag)) for x, _ in batches]
            for batches, flag in ((xf, True), (xr, False))
        ]
        return remix(parts, batch_size=self.batch_size, seed=self.seed)
