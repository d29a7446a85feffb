"""What an unlearning request did: scores before/after on evaluation sets, weights changed.

:func:`score_sets` measures a model on named evaluation sets (``forget``,
``retain``, ``test``, ...) with forward passes only: accuracy and mean loss
for classification (integer targets), mean loss for regression (float
targets). :func:`layer_changes` compares the weights with a snapshot taken
before the request: how many elements *actually* changed value, and the L2
norm of each parameter before and after. :class:`Outcome` holds both and
says in plain words what happened (:meth:`Outcome.verdict`).

Example:
    >>> import torch
    >>> from assd.batches import TensorData
    >>> model = torch.nn.Linear(2, 2, bias=False)
    >>> _ = model.weight.data.copy_(torch.eye(2))
    >>> data = TensorData(torch.tensor([[1., 0.], [0., 1.]]), torch.tensor([0, 0]))
    >>> score_sets(model, {"retain": data})["retain"].accuracy
    0.5
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..batches import forward, split_batch, to_device
from .rows import row_keys

__all__ = [
    "LayerChange",
    "Outcome",
    "SetScore",
    "evaluation_sets",
    "layer_changes",
    "score_sets",
    "snapshot",
]

log = logging.getLogger("assd")

# below this share of changed weights, or this accuracy move, a request "changed almost nothing"
NEGLIGIBLE_SHARE = 1e-4
NEGLIGIBLE_POINTS = 0.005


@dataclass
class SetScore:
    """One model on one evaluation set: rows, accuracy (None for regression), mean loss,
    and for classification the counts of (true label, predicted label) pairs."""

    n: int
    accuracy: float | None
    loss: float
    confusion: torch.Tensor | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        acc = None if self.accuracy is None else round(self.accuracy, 6)
        return {"n": self.n, "accuracy": acc, "loss": round(self.loss, 6)}


@torch.no_grad()
def score_sets(
    model: nn.Module, sets: dict, *, loss_fn=None, batch_fn=None, output_fn=None
) -> dict[str, SetScore]:
    """Score ``model`` (in eval mode, restored afterwards) on every named set of batches.

    Args:
        model: the model.
        sets: ``{name: batches}``; each batch holds inputs and targets.
        loss_fn: ``loss_fn(outputs, targets)`` returning per-row losses; default
            cross-entropy for integer targets, squared error for float targets.
        batch_fn: how to split a batch into ``(inputs, targets)``.
        output_fn: how to pick the logits from the model's output (:func:`assd.batches.forward`).
    """
    was_training = model.training
    model.eval()
    try:
        return {
            name: _score(model, data, name, loss_fn, batch_fn, output_fn)
            for name, data in sets.items()
        }
    finally:
        model.train(was_training)


def _score(model, data, name: str, loss_fn, batch_fn, output_fn) -> SetScore:
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    n, correct, total, regression, confusion = 0, 0, 0.0, False, None
    for batch in data:
        inputs, y = split_batch(batch, batch_fn)
        if y is None:
            raise ValueError(f"evaluation set {name!r} has no targets; give labelled rows.")
        out = forward(model, to_device(inputs, device), output_fn=output_fn).float()
        y = y.to(device)
        regression = y.is_floating_point()
        losses = _losses(out, y, loss_fn, regression)
        n, total = n + len(y), total + float(losses.double().sum())
        if not regression:
            pred = out.argmax(1)
            correct += int((pred == y).sum())
            confusion = _count_pairs(confusion, y, pred, out.shape[1])
    if n == 0:
        raise ValueError(
            f"evaluation set {name!r} is empty; give at least one row or leave it out."
        )
    accuracy = None if regression else correct / n
    return SetScore(n=n, accuracy=accuracy, loss=total / n, confusion=confusion)


def _count_pairs(counts, y: torch.Tensor, pred: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Add this batch's (true, predicted) pairs to a ``(C, C)`` count matrix."""
    if y.dim() != 1 or pred.shape != y.shape:  # e.g. per-token targets: no confusion matrix
        return counts
    keep = y >= 0  # ignored rows (e.g. -100 under a user's loss)
    y, pred = y[keep], pred[keep]
    size = max(n_classes, int(y.max()) + 1 if len(y) else 0)
    pairs = torch.bincount((y * size + pred).cpu(), minlength=size * size).reshape(size, size)
    if counts is None:
        return pairs
    if counts.shape != pairs.shape:
        return None
    return counts + pairs


def _losses(out: torch.Tensor, y: torch.Tensor, loss_fn, regression: bool) -> torch.Tensor:
    if loss_fn is not None:
        losses = loss_fn(out, y)
        return losses if losses.dim() else losses.expand(len(y))
    if regression:
        return (out.reshape(y.shape) - y).pow(2).reshape(len(y), -1).mean(1)
    return F.cross_entropy(out, y, reduction="none")


def snapshot(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached copies of the given parameters (to restore or compare against later)."""
    return {name: p.detach().clone() for name, p in params.items()}


@dataclass
class LayerChange:
    """One parameter: elements whose value changed, elements, L2 norm before and after."""

    changed: int
    elements: int
    norm_before: float
    norm_after: float

    def to_dict(self) -> dict:
        norms = {"norm_before": round(self.norm_before, 6), "norm_after": round(self.norm_after, 6)}
        return {"changed": self.changed, "elements": self.elements, **norms}


@torch.no_grad()
def layer_changes(before: dict[str, torch.Tensor], model: nn.Module) -> dict[str, LayerChange]:
    """Compare ``model``'s parameters with ``before`` (a :func:`snapshot`), value by value."""
    now = dict(model.named_parameters())
    changes = {}
    for name, old in before.items():
        new = now[name].detach()
        changes[name] = LayerChange(
            changed=int(_whole((new != old).sum())),
            elements=old.numel(),
            norm_before=float(_whole(old.double().norm())),
            norm_after=float(_whole(new.double().norm())),
        )
    return changes


def _whole(scalar: torch.Tensor) -> torch.Tensor:
    """A reduction over an FSDP2-sharded parameter (a DTensor) summed over its ranks."""
    return scalar.full_tensor() if callable(getattr(scalar, "full_tensor", None)) else scalar


@dataclass
class Outcome:
    """Before/after scores, weights changed, and (if asked) the guard's and search's story.

    Attributes:
        before, after: ``{set name: SetScore}``.
        layers: ``{parameter name: LayerChange}``.
        guard: the retain guard's verdict (a dict), or None without a guard.
        tries: the search path (assd-auto, or a guard's back-off): one dict per try.
        target: what the forget target was and whether it was met (assd-auto), or None.
    """

    before: dict[str, SetScore]
    after: dict[str, SetScore]
    layers: dict[str, LayerChange]
    guard: dict | None = None
    tries: list[dict] = field(default_factory=list)
    target: dict | None = None

    @property
    def n_changed(self) -> int:
        return sum(c.changed for c in self.layers.values())

    @property
    def n_elements(self) -> int:
        return sum(c.elements for c in self.layers.values())

    def moved(self, name: str) -> float | None:
        """After minus before on set ``name``: accuracy points (as a share), or the loss."""
        b, a = self.before.get(name), self.after.get(name)
        if b is None or a is None:
            return None
        return a.accuracy - b.accuracy if b.accuracy is not None else a.loss - b.loss

    def verdict(self) -> str:
        """What happened, in plain words (one or more sentences)."""
        parts = [_change_sentence(self)]
        for name in self.before:
            parts.append(_set_sentence(name, self.before[name], self.after[name]))
        if self.target is not None:
            parts.append(self.target.get("verdict", ""))
        elif self.n_changed and _forget_unmoved(self):
            parts.append("The forget rows are predicted as before: nothing measurable was "
                         "forgotten (assd-auto searches for a strength that does forget).")
        if self.guard is not None:
            parts.append(self.guard.get("verdict", ""))
        return " ".join(p for p in parts if p)

    def summary(self) -> dict:
        """JSON-ready figures and the verdict."""
        return {
            "before": {k: v.to_dict() for k, v in self.before.items()},
            "after": {k: v.to_dict() for k, v in self.after.items()},
            "n_changed": self.n_changed,
            "n_elements": self.n_elements,
            "layers": {k: v.to_dict() for k, v in self.layers.items()},
            "guard": self.guard,
            "target": self.target,
            "tries": self.tries,
            "verdict": self.verdict(),
        }


def _change_sentence(outcome: Outcome) -> str:
    n, total = outcome.n_changed, outcome.n_elements
    if n == 0:
        return "No weight changed: the request did nothing."
    share = n / total if total else 0.0
    prefix = "Changed almost nothing: " if share < NEGLIGIBLE_SHARE else ""
    return f"{prefix}{n} of {total} weights changed value ({100 * share:.3g} %)."


def _forget_unmoved(outcome: Outcome) -> bool:
    """Forget-set accuracy (classification) moved by less than the negligible amount."""
    before = outcome.before.get("forget")
    if before is None or before.accuracy is None:
        return False
    return abs(outcome.moved("forget")) < NEGLIGIBLE_POINTS


def _set_sentence(name: str, before: SetScore, after: SetScore) -> str:
    if before.accuracy is None:
        rel = (after.loss - before.loss) / before.loss if before.loss else math.inf
        return f"{name}: loss {before.loss:.4g} -> {after.loss:.4g} ({100 * rel:+.1f} %)."
    points = 100 * (after.accuracy - before.accuracy)
    text = f"{name}: accuracy {100 * before.accuracy:.1f} % -> {100 * after.accuracy:.1f} %"
    if abs(points) < 100 * NEGLIGIBLE_POINTS:
        return text + " (unchanged)."
    word = "fell" if points < 0 else "rose"
    return text + f" ({word} by {abs(points):.1f} pp)."


def evaluation_sets(evaluate: dict | None, forget, *, batch_fn=None) -> dict:
    """Check ``evaluate`` and return the sets to score, with ``forget`` added if absent.

    Raises:
        ValueError: a name that is not a string, or a retained / held-out set
            that holds every forget row (same input and target); some shared
            rows (duplicates in the data) only draw a warning.
    """
    given = dict(evaluate or {})
    bad = [k for k in given if not isinstance(k, str)]
    if bad:
        raise ValueError(f"evaluation set names must be strings, got {bad}.")
    sets = {"forget": given.pop("forget", forget), **given}  # forget first in every report
    forget_rows = _row_keys(sets["forget"], batch_fn)
    for name, data in sets.items():
        if name == "forget" or not forget_rows:
            continue
        shared = len(forget_rows & _row_keys(data, batch_fn))
        if shared == len(forget_rows):  # every forget row: the set holds them, not duplicates
            raise ValueError(
                f"evaluation set {name!r} holds {shared} of the {len(forget_rows)} forget rows; "
                f"retained and held-out sets must not contain what is being forgotten "
                f"(drop the forget rows from {name!r})."
            )
        if shared:  # a warning once they are enough to move the figures (>= 5 % of Df)
            level = logging.WARNING if 20 * shared >= len(forget_rows) else logging.INFO
            log.log(level, "evaluation set %r has %d row(s) identical to forget rows (duplicates "
                    "in the data?); they blur its before/after figures", name, shared)  # fmt: skip
    return sets


def _row_keys(data, batch_fn) -> set:
    """Keys of each row's input and target (:func:`~assd.verify.rows.row_keys`), for tensor
    batches (other inputs: empty set)."""
    keys: set = set()
    for batch in data:
        inputs, y = split_batch(batch, batch_fn)
        if not isinstance(inputs, torch.Tensor):
            return set()
        keys.update(row_keys(inputs, y if isinstance(y, torch.Tensor) else None).tolist())
    return keys
