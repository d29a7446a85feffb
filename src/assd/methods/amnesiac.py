"""Amnesiac unlearning: train on the retain set plus the forget set with wrong labels."""

from __future__ import annotations

from torch import nn

from .random_labels import RandomLabels
from .registry import register
from .training import collect, remix, require_both

__all__ = ["Amnesiac"]


@register("amnesiac")
class Amnesiac(RandomLabels):
    """Amnesiac unlearning (Graves et al., 2021) as the SSD benchmarks run it.

    The forget rows get random wrong labels (once, seeded) and are shuffled in
    with the whole retain set; the model trains on the mix for 3 epochs with
    Adam at lr 1e-4, batches of 128 (the reference setting).

    Args:
        batch_size: rows per batch of the mixed set.
        epochs, lr, optimizer, ...: as in :class:`assd.methods.TrainingMethod`.
    """

    def __init__(self, *, epochs: int = 3, lr: float = 1e-4, batch_size: int = 128, **options):
        super().__init__(epochs=epochs, lr=lr, batch_size=batch_size, **options)

    def training_data(self, model: nn.Module, *, forget, retain):
        require_both(self, forget, retain)
        forget_part = self.relabelled_batches(model, forget)
        retain_part = collect(retain, batch_fn=self.fit_options["batch_fn"], what="retain")
        return remix([forget_part, retain_part], batch_size=self.batch_size, seed=self.seed)
