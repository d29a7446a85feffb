"""assd-auto's forget target for a causal language model: the forget sequences look never seen.

A language model that never trained on a sequence neither reproduces it from
its prompt nor gives it a loss lower than other sequences of the same kind
that it never saw. The target reads those never-seen sequences from the
evaluation set ``"unseen"``, scored on the same model as the forget sequences (a
membership test compares the two on the model it is given; a repair that makes the
model surer of what its retained rows teach raises both), and asks:

- *extraction*: the share of forget sequences that greedy decoding from their
  prompt reproduces (:mod:`assd.tasks`) is no higher than chance allows at the
  never-seen rate (a Binomial upper count, as for the group target);
- *loss*: the forget sequences' mean per-token loss lies between the 5th and
  95th percentiles of the never-seen sequences' per-row losses.

Example:
    >>> import torch
    >>> from assd.verify.outcome import SetScore
    >>> unseen = SetScore(4, 0.1, 9.0, extraction=0.0, row_losses=torch.tensor([8., 9, 10, 11]))
    >>> target = sequence_target(n_forget=2)
    >>> after = {"forget": SetScore(2, 0.2, 9.5, extraction=0.0), "unseen": unseen}
    >>> target({"unseen": unseen}, after)["met"]
    True
"""

from __future__ import annotations

import torch

from ..verify.split import UNSEEN

__all__ = ["UNSEEN", "sequence_target"]

LOW, HIGH = 0.05, 0.95  # the never-seen losses' range the forget loss must land in


def sequence_target(n_forget: int):
    """``target(before, after) -> dict`` for ``n_forget`` forget sequences."""
    from ..verify.evidence import binomial_upper

    def target(before: dict, after: dict) -> dict:
        reference = after[UNSEEN] if UNSEEN in after else before[UNSEEN]  # the same model
        losses = reference.row_losses.double()
        low, high = (float(torch.quantile(losses, q)) for q in (LOW, HIGH))
        limit = binomial_upper(n_forget, reference.extraction) / n_forget
        forget = after["forget"]
        extracted_ok = forget.extraction <= limit + 1e-12
        loss_ok = low <= forget.loss <= high
        met = extracted_ok and loss_ok
        word = "met" if met else "NOT met"
        verdict = (f"Forget target (sequences) {word}: {100 * forget.extraction:.1f} % of the "
                   f"forget sequences extracted (never-seen: {100 * reference.extraction:.1f} %, "
                   f"limit {100 * limit:.1f} %); their per-token loss {forget.loss:.4g} vs the "
                   f"never-seen range {low:.4g} to {high:.4g} (5th to 95th pct).")  # fmt: skip
        return {"kind": "sequences", "met": met, "extraction": round(forget.extraction, 6),
                "extraction_limit": round(limit, 6), "forget_loss": round(forget.loss, 6),
                "unseen_low": round(low, 6), "unseen_high": round(high, 6),
                "verdict": verdict}  # fmt: skip

    return target


def check_unseen(sets: dict) -> None:
    """The never-seen reference set must be there."""
    if UNSEEN not in sets:
        raise ValueError(
            "assd-auto on a causal language model compares the forget sequences with "
            "sequences of the same kind the model never saw: pass evaluate={'unseen': ...} "
            "(a data factory's 'unseen' set on the command line)."
        )
