"""UNSIR: impair the model with error-maximising noise, then repair it on retain rows."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..batches import TensorData, forward, using_output_fn
from ..parameters import set_mode
from ..train import fit
from .registry import register
from .training import TrainingMethod, _cat, collect, require_both, tensor_rows

__all__ = ["UNSIR"]


@register("unsir")
class UNSIR(TrainingMethod):
    """UNSIR (Tarun et al., IEEE TNNLS 2023) as the SSD benchmarks run it.

    1. Noise: a batch of ``noise_batch`` inputs labelled with the forget set's
       label(s), optimised (Adam, ``noise_lr``, ``noise_steps`` steps, model in
       eval mode) to *maximise* the model's cross-entropy, with an L2 penalty
       ``0.1 * mean ||noise||^2``.
    2. Impair: one epoch (Adam, lr 1e-4, batch 32) on ``noise_batches`` copies
       of the noise mixed with a sample of the retain set (up to
       ``per_class`` seeded rows of each retained label).
    3. Repair: one epoch (batch 128) on that retain sample alone.

    Reference setting: noise batch 32, 80 copies, 25 noise steps (250 for
    sub-class), noise lr 0.1, 500 retain rows per class, Adam at lr 1e-4. For
    random forgetting (not in the reference) the noise labels are drawn from
    the forget rows' labels.
    """

    def __init__(
        self,
        *,
        epochs: int = 1,
        lr: float = 1e-4,
        optimizer: str = "adam",
        noise_steps: int = 25,
        noise_lr: float = 0.1,
        noise_batch: int = 32,
        noise_batches: int = 80,
        per_class: int = 500,
        impair_batch: int = 32,
        repair_batch: int = 128,
        **options,
    ):
        super().__init__(epochs=epochs, lr=lr, optimizer=optimizer, **options)
        self.noise_steps, self.noise_lr, self.per_class = noise_steps, noise_lr, per_class
        self.noise_batch, self.noise_batches = noise_batch, noise_batches
        self.impair_batch, self.repair_batch = impair_batch, repair_batch

    def train_(self, model: nn.Module, *, forget, retain) -> None:
        require_both(self, forget, retain)
        batch_fn = self.fit_options["batch_fn"]
        xf, yf = _float_rows(collect(forget, batch_fn=batch_fn, what="forget"))
        retained = _float_rows(collect(retain, batch_fn=batch_fn, what="retain"))
        xr, yr = self._retain_sample(*retained)
        with using_output_fn(self.fit_options["output_fn"]):
            noise, labels = self._noise(model, xf, yf)
        x_impair = torch.cat([noise.repeat(self.noise_batches, *[1] * (noise.dim() - 1)), xr])
        y_impair = torch.cat([labels.repeat(self.noise_batches), yr])
        impair = TensorData(x_impair, y_impair, batch_size=self.impair_batch, shuffle=True,
                            seed=self.seed)  # fmt: skip
        fit(model, impair, label="the noise and retain rows (impair)", **self.fit_options)
        repair = TensorData(xr, yr, batch_size=self.repair_batch, shuffle=True, seed=self.seed + 1)
        fit(model, repair, label="the retain rows (repair)", **self.fit_options)

    def _retain_sample(self, x: torch.Tensor, y: torch.Tensor):
        generator = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(len(y), generator=generator).to(y.device)
        keep = torch.cat([order[y[order] == c][: self.per_class] for c in torch.unique(y)])
        return x[keep], y[keep]

    def _noise(self, model: nn.Module, xf: torch.Tensor, yf: torch.Tensor):
        device = next(model.parameters()).device
        generator = torch.Generator().manual_seed(self.seed)
        pick = torch.randint(len(yf), (self.noise_batch,), generator=generator)
        labels = yf.cpu()[pick].to(device)
        start = torch.randn(self.noise_batch, *xf.shape[1:], generator=generator)
        noise = start.to(device=device, dtype=xf.dtype).requires_grad_(True)
        optimizer = torch.optim.Adam([noise], lr=self.noise_lr)
        with set_mode(model, train=False):
            for _ in range(self.noise_steps):
                penalty = 0.1 * noise.pow(2).flatten(1).sum(1).mean()
                loss = -F.cross_entropy(forward(model, noise), labels) + penalty
                (grad,) = torch.autograd.grad(loss, [noise])
                noise.grad = grad
                optimizer.step()
        return noise.detach().to(xf.device), labels.to(xf.device)


def _float_rows(batches: list) -> tuple[torch.Tensor, torch.Tensor]:
    """The batches as one float input tensor and targets; UNSIR needs nothing else."""
    first = batches[0][0]
    if not tensor_rows(batches) or not first.is_floating_point():
        kind = type(first).__name__ if not isinstance(first, torch.Tensor) else str(first.dtype)
        raise ValueError(
            f"UNSIR optimises noise in the model's input space, so it needs one floating-"
            f"point input tensor per batch; these batches carry {kind} inputs (token ids, "
            "several inputs, ...). Use another baseline (e.g. bad-teacher, amnesiac, scrub), "
            "or pass batch_fn= that returns one float input tensor."
        )
    return _cat(batches)
