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
from torch import nn

from .scoring import score_rows
from .split import batch_row_keys, separate_forgotten

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
    # the task's own figures (assd.verify.scoring): None where they do not apply
    task: str | None = None
    perplexity: float | None = None
    extraction: float | None = None
    metric: float | None = None
    row_losses: torch.Tensor | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        acc = None if self.accuracy is None else round(self.accuracy, 6)
        extra = {k: round(v, 6) for k in ("perplexity", "extraction", "metric")
                 if (v := getattr(self, k)) is not None}  # fmt: skip
        return {"n": self.n, "accuracy": acc, "loss": round(self.loss, 6), **extra}


@torch.no_grad()
def score_sets(
    model: nn.Module, sets: dict, *, loss_fn=None, batch_fn=None, output_fn=None, task=None,
    metric_fn=None, rows: dict | None = None, keep=(),
) -> dict[str, SetScore]:
    """Score ``model`` (in eval mode, restored afterwards) on every named set of batches.

    Args:
        model: the model.
        sets: ``{name: batches}``; each batch holds inputs and targets.
        loss_fn: ``loss_fn(outputs, targets)`` returning per-row losses; default
            cross-entropy for integer targets, squared error for float targets.
        batch_fn: how to split a batch into ``(inputs, targets)``.
        output_fn: how to pick the logits from the model's output (:func:`assd.batches.forward`).
        task, metric_fn: what the outputs mean (:mod:`assd.tasks`; inferred from the shapes
            where only one task fits) and an extra ``metric_fn(logits, targets)`` per row.
        rows, keep: for the sets named in ``keep``, ``rows[id(set)]`` receives each row's
            ``(confidence, correct)`` (:func:`assd.verify.per_example.outputs_of`) from the
            same pass, for classification sets.
    """
    was_training = model.training
    model.eval()
    try:
        scores = {}
        for name, data in sets.items():
            record = [] if rows is not None and name in keep else None
            scores[name] = SetScore(**score_rows(
                model, data, name, loss_fn=loss_fn, batch_fn=batch_fn, output_fn=output_fn,
                task=task, metric_fn=metric_fn, record=record))  # fmt: skip
            if record:
                from .per_example import outputs_of  # only when rows are asked for

                rows[id(data)] = outputs_of(record)
        return scores
    finally:
        model.train(was_training)


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
        """What happened, in plain words (one or more sentences). When the retain guard
        changed the request, that comes first, with its figures."""
        change = (self.guard or {}).get("changed")
        parts = [change["headline"]] if change else []
        if not (change and change["changed_nothing"]):
            parts.append(_change_sentence(self))
        for name in self.before:
            parts.append(_set_sentence(name, self.before[name], self.after[name]))
        if self.target is not None:
            parts.append(self.target.get("verdict", ""))
        elif self.n_changed and _forget_unmoved(self):
            parts.append("The forget rows are predicted as before: nothing measurable was "
                         "forgotten (assd-auto searches for a strength that does forget).")
        if self.guard is not None and not (change and change["changed_nothing"]):
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
    if before.extraction is not None:  # a causal LM: extraction counts too
        moved = abs(outcome.after["forget"].extraction - before.extraction)
        if moved >= NEGLIGIBLE_POINTS:
            return False
    return abs(outcome.moved("forget")) < NEGLIGIBLE_POINTS


def _set_sentence(name: str, before: SetScore, after: SetScore) -> str:
    rows = f"{name} ({before.n} row{'' if before.n == 1 else 's'})"  # says which rows were judged
    if before.perplexity is not None:  # a causal LM: perplexity and extraction
        rel = after.perplexity / before.perplexity - 1 if before.perplexity else math.inf
        return (f"{rows}: perplexity {before.perplexity:.4g} -> {after.perplexity:.4g} "
                f"({100 * rel:+.1f} %), sequences extracted {100 * before.extraction:.1f} % "
                f"-> {100 * after.extraction:.1f} %.")  # fmt: skip
    if before.accuracy is None:
        rel = (after.loss - before.loss) / before.loss if before.loss else math.inf
        return f"{rows}: loss {before.loss:.4g} -> {after.loss:.4g} ({100 * rel:+.1f} %)."
    points = 100 * (after.accuracy - before.accuracy)
    text = f"{rows}: accuracy {100 * before.accuracy:.1f} % -> {100 * after.accuracy:.1f} %"
    if abs(points) < 100 * NEGLIGIBLE_POINTS:
        return text + " (unchanged)."
    word = "fell" if points < 0 else "rose"
    return text + f" ({word} by {abs(points):.1f} pp)."


def evaluation_sets(evaluate: dict | None, forget, *, batch_fn=None) -> dict:
    """Check ``evaluate`` and return the sets to score, with ``forget`` added if absent.

    Rows of a retained / held-out set that are forget rows (same input and target) or
    belong to a class forgotten whole are scored apart, as ``"<name> (forgotten part)"``,
    which the guard does not watch (:mod:`assd.verify.split`).

    Raises:
        ValueError: a name that is not a string, or forgotten rows in a set read by a
            ``batch_fn`` (which cannot be split).
    """
    given = dict(evaluate or {})
    bad = [k for k in given if not isinstance(k, str)]
    if bad:
        raise ValueError(f"evaluation set names must be strings, got {bad}.")
    sets = {"forget": given.pop("forget", forget), **given}  # forget first in every report
    return separate_forgotten(sets, batch_fn=batch_fn,
                              row_keys=lambda batch: batch_row_keys(batch, batch_fn))  # fmt: skip
