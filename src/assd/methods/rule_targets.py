"""assd-auto's targets where no reference models can be built: rules, not evidence.

The forget target says what a model that never trained on the forget rows
would do with them; nothing in it is tuned per data set. The two targets on
a rate (``"group"``, ``"mislabelled"``) allow for sampling noise: with ``n``
forget rows and an expected rate ``p``, they accept up to the count that a
Binomial(n, p) reaches with probability at least 5 % (:func:`binomial_upper`;
137 rows at 11 %: up to 15.3 %), so a small forget set is not pushed below
what a model that never saw it would show by chance.

- ``"group"`` (a class or a sub-class: rows that share something the rest of
  the data lacks): the forget rows are predicted with their own label no more
  often than that label occurs among the retained rows (at least 1 %, or one
  row of the forget set): what
  is left of them is no more than the label's base rate, not knowledge of
  the group. For a whole class the share is 0 (retraining: 0 %); for a
  sub-class retraining lands somewhat above it (resemblance to the retained
  rows of the same label), which the repair may bring back.
- ``"rows"`` (rows drawn like the rest): the forget rows are fitted no better
  than held-out rows: their mean loss is at least the mean loss on the
  held-out set ``evaluate["test"]``, so a loss-threshold membership test
  cannot tell them apart on average. Rows with wrong labels: the loss is
  taken on the labels as given, so it is met once the model no longer fits
  those labels better than it fits unseen rows' labels.
- ``"mislabelled"`` (rows whose labels are known to be wrong, e.g. found by
  ``assd find-errors``): the forget rows are predicted with their given label
  no more often than a model that never saw them would predict it by mistake.
  That rate is read off the held-out rows ``evaluate["test"]`` before any
  dampening: for each label, the share of held-out rows of *other* labels that
  the model predicts as it (the label's false-positive rate), averaged over the
  forget rows' labels. The "rows" target stops too early here: wrong labels
  stop being fitted better than held-out rows long before the model stops
  predicting them.
- ``"auto"`` (default): ``"group"`` when no retained row carries any of the
  forget rows' labels (whole classes), else ``"rows"``. A sub-class shares
  its label with retained rows, so say ``target="group"`` for one.

A row-level request is met when the forget rows' mean loss reaches the held-out
rows'; a group when at most the label's chance share of its rows (a one-sided
binomial limit) keeps the label; a mislabelled set when its given labels are
predicted no more often than a model's false-positive rate for them. Each
verdict says it is a rule (:data:`RULE`); :mod:`assd.verify.evidence` gives the
targets judged against models that never saw the rows.
"""

from __future__ import annotations

import torch

from ..batches import split_batch
from ..verify.evidence import binomial_upper

__all__ = ["RULE", "chance_of_wrong_label"]


def _rows_target(before: dict, after: dict) -> dict:
    forget, held = after["forget"].loss, after["test"].loss
    met = forget >= held
    word = "met" if met else "NOT met"
    return {"kind": "rows", "met": met, "forget_loss": round(forget, 6),
            "held_out_loss": round(held, 6), "basis": "rule",
            "verdict": f"Forget target (rows) {word}: mean loss on the forget rows {forget:.4g} "
                       f"vs {held:.4g} on held-out rows.{RULE}"}  # fmt: skip


RULE = (" The target is a rule, not evidence: no reference models (give recipe= or "
        "references= to judge against models that never saw the rows).")


def _group_target(base_rate: float, n: int):
    limit = binomial_upper(n, base_rate) / n

    def target(before: dict, after: dict) -> dict:
        acc = after["forget"].accuracy
        met = acc <= limit + 1e-12
        word = "met" if met else "NOT met"
        verdict = (f"Forget target (group) {word}: forget-row accuracy {100 * acc:.1f} % vs "
                   f"the label's base rate {100 * base_rate:.1f} % among retained rows (limit "
                   f"{100 * limit:.1f} % for {n} rows).{RULE}")  # fmt: skip
        return {"kind": "group", "met": met, "basis": "rule", "forget_accuracy": round(acc, 6),
                "base_rate": round(base_rate, 6), "limit": round(limit, 6), "verdict": verdict}

    return target


def _mislabelled_target(forget_labels: torch.Tensor):
    n = len(forget_labels)
    known: list = [None, 0.0, 0.0]  # (held-out scores, rate, limit): the same on every try

    def target(before: dict, after: dict) -> dict:
        if known[0] is not before["test"]:
            rate = chance_of_wrong_label(before["test"].confusion, forget_labels)
            known[:] = before["test"], rate, binomial_upper(n, rate) / n
        _, rate, limit = known
        acc = after["forget"].accuracy
        met = acc <= limit + 1e-12
        word = "met" if met else "NOT met"
        verdict = (f"Forget target (mislabelled) {word}: the forget rows' given labels are "
                   f"predicted for {100 * acc:.1f} % of them vs {100 * rate:.1f} % expected by "
                   f"mistake (held-out false-positive rate of those labels; limit "
                   f"{100 * limit:.1f} % for {n} rows).{RULE}")  # fmt: skip
        return {"kind": "mislabelled", "met": met, "basis": "rule",
                "forget_accuracy": round(acc, 6), "mistake_rate": round(rate, 6),
                "limit": round(limit, 6), "verdict": verdict}  # fmt: skip

    return target


def chance_of_wrong_label(confusion: torch.Tensor | None, labels: torch.Tensor) -> float:
    """How often a model predicts each of ``labels`` for a row whose true label differs,
    averaged over ``labels``: from a held-out ``(true, predicted)`` count matrix.

    Example:
        >>> counts = torch.tensor([[8, 2], [4, 6]])  # 2 of 10 zeros called 1, 4 of 10 ones called 0
        >>> chance_of_wrong_label(counts, torch.tensor([1, 1, 0]))  # (0.2 + 0.2 + 0.4) / 3
        0.26666666666666666
    """
    if confusion is None:
        raise ValueError("target='mislabelled' needs class predictions on the held-out rows "
                         "(evaluate['test'] with one integer label per row).")  # fmt: skip
    confusion = confusion.double()
    predicted = confusion.sum(0) - confusion.diagonal()  # rows of other labels predicted as c
    others = confusion.sum() - confusion.sum(1)  # held-out rows whose label is not c
    if int(labels.max()) >= len(others):
        raise ValueError("a forget row's label is outside the model's classes.")
    rate = predicted / others.clamp(min=1)
    return float(rate[labels.long()].mean())


def _figure(target: dict) -> str:
    if "forget_accuracy" in target:
        return f"forget-row accuracy {100 * target['forget_accuracy']:.1f} %"
    if target["kind"] == "sequences":
        return (f"{100 * target['extraction']:.1f} % extracted, per-token loss "
                f"{target['forget_loss']:.4g}")  # fmt: skip
    return (
        f"forget-row mean loss {target['forget_loss']:.4g} (held-out {target['held_out_loss']:.4g})"
    )


def _labels(data, batch_fn) -> torch.Tensor:
    parts = []
    for batch in data:
        _, y = split_batch(batch, batch_fn)
        if y is None:
            raise ValueError("assd-auto's evaluation sets need targets (labels).")
        parts.append(y.detach().cpu().reshape(len(y), -1).squeeze(1))
    if not parts:
        raise ValueError("an evaluation set is empty; give at least one row.")
    return torch.cat(parts)
