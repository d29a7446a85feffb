"""The default check of a one-shot request: did the forget rows move at all?

Without ``evaluate=`` a one-shot SSD/ASSD request used to return no verdict,
so a request that dampened weights but left every forget row predicted as
before looked like a success. A forward pass over the forget set before and
after is cheap (the request itself makes two passes over it for its
importance), so :func:`forget_scores` and :func:`one_shot_outcome` do it by
default: the result's verdict then says whether the forget rows moved. Rows
without labels (label-free methods) are not scored; the result then has no
outcome, as before.

Example:
    >>> import torch
    >>> from assd.batches import TensorData
    >>> model = torch.nn.Linear(2, 2)
    >>> rows = TensorData(torch.randn(4, 2), torch.tensor([0, 1, 0, 1]))
    >>> before = before_request(model, rows, names=["weight"])
    >>> out = one_shot_outcome(before, model, rows, original=model, counts={"weight": (0, 4)})
    >>> out.verdict().split(".")[0]
    'No weight changed: the request did nothing'
"""

from __future__ import annotations

import logging

from ..batches import split_batch
from .outcome import LayerChange, Outcome, SetScore, layer_changes, score_sets

__all__ = ["before_request", "forget_scores", "one_shot_outcome"]

log = logging.getLogger("assd")


def forget_scores(model, forget, *, loss_fn=None, batch_fn=None, output_fn=None,
                  ) -> SetScore | None:  # fmt: skip
    """``model``'s score on the forget rows, or None when they carry no labels (or outputs
    that :func:`assd.verify.outcome.score_sets` cannot score, e.g. per-token targets)."""
    first = next(iter(forget), None)
    if first is None or split_batch(first, batch_fn)[1] is None:
        return None
    try:
        return score_sets(model, {"forget": forget}, loss_fn=loss_fn, batch_fn=batch_fn,
                          output_fn=output_fn)["forget"]  # fmt: skip
    except (RuntimeError, ValueError, TypeError, IndexError) as error:
        log.info("the forget rows were not scored before/after (%s); no outcome", error)
        return None


def before_request(model, forget, *, names, **score_options) -> dict:
    """What :func:`one_shot_outcome` needs from before the request: the forget rows'
    score and the norms of the parameters ``names`` (scalars: no copy of the weights)."""
    own = dict(model.named_parameters())
    norms = {n: float(own[n].detach().double().norm()) for n in names if n in own}
    return {"score": forget_scores(model, forget, **score_options), "norms": norms}


def one_shot_outcome(before: dict, model, forget, *, original=None, counts: dict,
                     **score_options) -> Outcome | None:  # fmt: skip
    """The outcome of a one-shot request from :func:`before_request` and the model now.

    Args:
        before: :func:`before_request` (its score None: no outcome).
        model: the model after the request.
        original: the untouched model, to count the weights that changed value;
            None (an in-place request) counts the weights selected for dampening.
        counts: ``{name: (selected, elements)}`` from the dampening.
    """
    if before["score"] is None:
        return None
    after = forget_scores(model, forget, **score_options)
    if after is None:
        return None
    if original is not None:
        own = dict(original.named_parameters())
        layers = layer_changes({n: own[n].detach() for n in counts}, model)
    else:
        now = dict(model.named_parameters())
        layers = {n: LayerChange(changed=s, elements=e, norm_before=before["norms"][n],
                                 norm_after=float(now[n].detach().double().norm()))
                  for n, (s, e) in counts.items()}  # fmt: skip
    return Outcome(before={"forget": before["score"]}, after={"forget": after}, layers=layers)
