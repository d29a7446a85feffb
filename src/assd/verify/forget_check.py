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
    >>> before = forget_scores(model, rows)
    >>> out = one_shot_outcome(before, model, rows, original=model, names=["weight"])
    >>> out.verdict().split(".")[0]
    'No weight changed: the request did nothing'
"""

from __future__ import annotations

from ..batches import split_batch
from .outcome import LayerChange, Outcome, SetScore, layer_changes, score_sets

__all__ = ["forget_scores", "one_shot_outcome"]


def forget_scores(model, forget, *, loss_fn=None, batch_fn=None, output_fn=None,
                  ) -> SetScore | None:  # fmt: skip
    """``model``'s score on the forget rows, or None when they carry no labels."""
    first = next(iter(forget), None)
    if first is None or split_batch(first, batch_fn)[1] is None:
        return None
    return score_sets(model, {"forget": forget}, loss_fn=loss_fn, batch_fn=batch_fn,
                      output_fn=output_fn)["forget"]  # fmt: skip


def one_shot_outcome(before: SetScore | None, model, forget, *, original=None, names,
                     counts: dict | None = None, **score_options) -> Outcome | None:  # fmt: skip
    """The outcome of a one-shot request from the forget rows' scores before and now.

    Args:
        before: :func:`forget_scores` before the request (None: no outcome).
        model: the model after the request.
        original: the untouched model, to count the weights that changed value;
            None (an in-place request) counts the weights selected for dampening.
        names: the parameters the request may have changed.
        counts: ``{name: (selected, elements)}`` from the dampening, used when
            ``original`` is None.
    """
    if before is None:
        return None
    after = forget_scores(model, forget, **score_options)
    if original is not None:
        own = dict(original.named_parameters())
        layers = layer_changes({n: own[n].detach() for n in names}, model)
    else:
        now = dict(model.named_parameters())
        layers = {n: LayerChange(changed=s, elements=e, norm_before=float("nan"),
                                 norm_after=float(now[n].detach().double().norm()))
                  for n, (s, e) in (counts or {}).items()}  # fmt: skip
    return Outcome(before={"forget": before}, after={"forget": after}, layers=layers)
