"""The relearning check: does a little training on retained rows bring the forget rows back?

Dampening that only hides what the model knew (small weights that a few
gradient steps restore) passes a check of the outputs but fails this one
(Hayes et al., arXiv 2403.01218, and the relearning attacks they cite).
:func:`relearn_check` fine-tunes a copy of the unlearned model for ``steps``
batches of the *retained* rows (cross-entropy, Adam) and scores the forget
rows again. The same fine-tune applied to reference models (never trained on
the forget rows) says how far retained rows alone move a model that never knew
them; the check fails when the unlearned model comes back further than every
reference does.

Example:
    >>> import torch
    >>> from assd.batches import TensorData
    >>> rows = TensorData(torch.randn(8, 3), torch.randint(0, 2, (8,)), batch_size=4)
    >>> out = relearn_check(torch.nn.Linear(3, 2), retain=rows, forget=rows, steps=2,
    ...                     original=(1.0, 0.1))
    >>> sorted(out)[:3]
    ['came_back', 'forget_accuracy', 'original_accuracy']
"""

from __future__ import annotations

import copy
import itertools

import torch
import torch.nn.functional as F

from ..batches import forward, split_batch, to_device
from .outcome import score_sets

__all__ = ["RELEARN_LR", "RELEARN_STEPS", "relearn_check"]

RELEARN_STEPS = 20  # batches of retained rows: a few, against an original's thousands
RELEARN_LR = 1e-3


def relearned(model, retain, *, steps: int = RELEARN_STEPS, lr: float = RELEARN_LR,
              batch_fn=None, output_fn=None, seed: int = 0):  # fmt: skip
    """A copy of ``model`` fine-tuned for ``steps`` batches of ``retain`` (eval mode kept)."""
    if steps < 1:
        raise ValueError(f"the relearning check needs at least one step, got {steps}.")
    copy_ = copy.deepcopy(model).eval()
    device = next(copy_.parameters()).device
    params = [p for p in copy_.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    torch.manual_seed(seed)
    for batch in itertools.islice(itertools.cycle(retain), steps):
        inputs, y = split_batch(batch, batch_fn)
        out = forward(copy_, to_device(inputs, device), output_fn=output_fn).float()
        loss = F.cross_entropy(out, y.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return copy_


def relearn_check(model, *, retain, forget, original: tuple[float, float], references=(),
                  steps: int = RELEARN_STEPS, lr: float = RELEARN_LR, batch_fn=None,
                  output_fn=None) -> dict:  # fmt: skip
    """Fine-tune ``model`` briefly on ``retain`` and report what comes back on ``forget``.

    Args:
        model: the unlearned model (not changed).
        retain, forget: batches of retained and forget rows with labels.
        original: the original model's ``(accuracy, loss)`` on the forget rows.
        references: models never trained on the forget rows, relearned the same way
            as the yardstick; without them the figures carry no verdict.
        steps, lr: the fine-tune.

    Returns:
        A JSON-ready dict: forget accuracy before/after relearning, the share of the
        accuracy forgotten that came back (``recovered``), the references' relearned
        accuracies and ``came_back`` (True/False, or None without references).
    """
    options = {"batch_fn": batch_fn, "output_fn": output_fn}
    score = lambda m: score_sets(m, {"forget": forget}, **options)["forget"]  # noqa: E731
    now = score(model)
    again = score(relearned(model, retain, steps=steps, lr=lr, **options))
    gap = original[0] - now.accuracy
    yardstick = [score(relearned(r, retain, steps=steps, lr=lr, **options)).accuracy
                 for r in references]  # fmt: skip
    came_back = None if not yardstick else again.accuracy > max(yardstick) + 1e-12
    out = {
        "steps": steps, "original_accuracy": round(original[0], 6),
        "forget_accuracy": round(now.accuracy, 6), "relearned_accuracy": round(again.accuracy, 6),
        "relearned_loss": round(again.loss, 6), "original_loss": round(original[1], 6),
        "recovered": round((again.accuracy - now.accuracy) / gap, 6) if gap > 0 else None,
        "references_relearned": [round(a, 6) for a in yardstick], "came_back": came_back,
    }  # fmt: skip
    out["verdict"] = _sentence(out)
    return out


def _sentence(out: dict) -> str:
    text = (f"Relearning check ({out['steps']} steps on retained rows): forget accuracy "
            f"{100 * out['forget_accuracy']:.1f} % -> {100 * out['relearned_accuracy']:.1f} % "
            f"(original {100 * out['original_accuracy']:.1f} %")  # fmt: skip
    if out["references_relearned"]:
        text += f"; references relearned: up to {100 * max(out['references_relearned']):.1f} %"
    text += ")."
    if out["came_back"]:
        return text + " The forget rows came back: the dampening hid them, not removed them."
    if out["came_back"] is False:
        return text + " They came back no further than in models that never saw them."
    return text + " (No reference models: no verdict.)"
