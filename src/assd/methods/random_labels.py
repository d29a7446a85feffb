"""Random labels on the forget set: fine-tune on Df relabelled with wrong classes."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_map

from ..batches import forward, to_device
from ..parameters import model_device, set_mode
from .registry import register
from .training import TrainingMethod, _cat, collect, gather, remix, tensor_rows

__all__ = ["RandomLabels", "n_outputs", "random_other_labels"]


def random_other_labels(
    targets: torch.Tensor, n_classes: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Replace every label by one drawn uniformly from the *other* classes.

    Example:
        >>> y = torch.tensor([0, 1, 2, 2])
        >>> bool((random_other_labels(y, 3) != y).all())
        True
    """
    if n_classes < 2:
        raise ValueError(f"relabelling needs at least 2 classes, got {n_classes}.")
    shift = torch.randint(1, n_classes, tuple(targets.shape), generator=generator)
    return (targets.cpu() + shift).remainder(n_classes).to(targets.device)


@torch.no_grad()
def n_outputs(model: nn.Module, inputs: Any, *, output_fn=None) -> int:
    """Number of classes the model predicts: the width of its logits on one input."""
    first = tree_map(lambda t: t[:1] if isinstance(t, torch.Tensor) and t.dim() else t, inputs)
    with set_mode(model, train=False):
        logits = forward(model, to_device(first, model_device(model)), output_fn=output_fn)
    return logits.shape[-1]


@register("random-labels")
class RandomLabels(TrainingMethod):
    """Fine-tune on the forget set only, each row relabelled with a random wrong class.

    Every forget row gets one wrong label, drawn once (seeded) uniformly from
    the other classes. The SSD paper gives no reference setting; the defaults are
    ours and match :class:`GradientAscent`: 5 epochs, Adam, lr 1e-4, batch 128.

    Args:
        batch_size: rows per batch of the relabelled forget set.
        epochs, lr, optimizer, ...: as in :class:`assd.methods.TrainingMethod`.
    """

    data_source = "forget"

    def __init__(
        self,
        *,
        epochs: int = 5,
        lr: float = 1e-4,
        optimizer: str = "adam",
        batch_size: int = 128,
        **options,
    ):
        super().__init__(epochs=epochs, lr=lr, optimizer=optimizer, **options)
        self.batch_size = batch_size

    def relabelled_forget(self, model: nn.Module, forget) -> tuple[torch.Tensor, torch.Tensor]:
        """The forget set's inputs (one tensor) with seeded random wrong labels."""
        x, y = gather(forget, batch_fn=self.fit_options["batch_fn"], what="forget")
        return x, self._relabel(model, [(x, y)])[0][1]

    def relabelled_batches(self, model: nn.Module, forget) -> list[tuple[Any, torch.Tensor]]:
        """The forget set's batches with seeded random wrong labels (any batches)."""
        batches = collect(forget, batch_fn=self.fit_options["batch_fn"], what="forget")
        return self._relabel(model, [_cat(batches)] if tensor_rows(batches) else batches)

    def _relabel(self, model: nn.Module, batches: list) -> list[tuple[Any, torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.seed)
        width = n_outputs(model, batches[0][0], output_fn=self.fit_options["output_fn"])
        return [(x, random_other_labels(y, width, generator=generator)) for x, y in batches]

    def training_data(self, model: nn.Module, *, forget, retain):
        if forget is None:
            raise ValueError(f"{self.name} trains on the forget set; pass forget=.")
        parts = [self.relabelled_batches(model, forget)]
        return remix(parts, batch_size=self.batch_size, seed=self.seed)
