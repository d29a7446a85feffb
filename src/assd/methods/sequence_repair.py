"""``assd-auto``'s path for a causal LM whose forget sequences stay recognisable after dampening.

On the tiny GPT-2 of ``examples/hf_tiny.py`` no dampening strength brings memorised
"secret" sequences to the loss of never-seen sequences of the same kind while the
retained perplexity holds (docs/benchmarks.md, "Transformers"): dampening shrinks the
weights towards a uniform prediction (ln V nats per token), while a model that never saw a
random sequence predicts what its training taught, confidently and wrongly (8-15 nats
there). Retraining reaches that level because the retained rows teach it.

:func:`repair_towards_unseen` therefore starts from ASSD's own dampening (the search's first
try, strength 0, whatever the guard said of it) and runs the bounded repair
(:func:`assd.methods.repair.repair_`) on the retained rows with the forget rows' term
``max(0, goal - their loss)``, ``goal`` the median per-row loss of the never-seen sequences
``"unseen"`` on the model before the request. After every epoch it checks the sequence
target (:mod:`assd.methods.sequence_target`, on the repaired model) and the retain guard,
and stops once both hold; when the guard's pace cannot make it hold by the
bound (:func:`assd.methods.repair.out_of_pace`), the step size is cut once, and a second
stall stops it. A repair that leaves the guard broken is undone (the dampening within the
guard is kept, and the verdict says the target was missed). The repair moves nearly every
trainable weight; ``result.n_changed`` reports it.

With no force above the goal, the push can overshoot: on tiny Qwen2 and GPT-NeoX models
(``benchmarks/lm_architectures.py``) the forget loss ran past the never-seen 95th
percentile and stayed there, the guard holding and the target missed. When the repair ends
that way, a second bounded repair goes on from its weights with the term
``|goal - their loss|`` (pulled to the median from either side: a loss far above every
never-seen sequence's marks the rows as much as one far below) until the target and the
guard hold. It runs only then, so a repair that met the target (the GPT-2 runs of
``hf_forget.py``) is unchanged. Pulling both ways from the start was measured worse: on the
tiny GPT-NeoX the guard no longer closed within the bound, the two terms competing.
"""

from __future__ import annotations

from ..verify.split import UNSEEN
from .auto_repair import kept_or_fallback, repair_to_goal
from .search import Trials

__all__ = ["repair_towards_unseen"]


def repair_towards_unseen(trials: Trials, fallback: dict, retain, *, epochs: int,
                          options: dict) -> dict:  # fmt: skip
    """ASSD's own dampening (the first try), repaired on the retained rows (``retain``, else
    the evaluation's) until the forget sequences look never seen and the guard holds; the
    search's choice ``fallback`` (dampened within the guard) if the guard still breaks.
    ``options``: the method's ``batch_fn``, ``output_fn`` and ``loss_fn``."""
    goal = float(trials.before[UNSEEN].row_losses.double().median())
    start = trials.tries[0]  # ASSD's own dampening (strength 0), the request as asked
    said = (f"After the dampening at alpha {start['alpha']:.4g} and {{}} repair epoch(s) on the "
            f"retained rows, pushing the forget sequences' loss up to the never-seen median "
            f"{goal:.4g}")  # fmt: skip
    entry = repair_to_goal(trials, start, retain, goal=goal, epochs=epochs, options=options,
                           how=lambda ran: said.format(ran) + ".")  # fmt: skip
    target = entry["target"]
    if entry["guard"]["ok"] and not target["met"] and target["forget_loss"] > target["unseen_high"]:
        first = entry["repair_epochs"]  # overshot: pull the loss back to the median, both ways
        entry = repair_to_goal(trials, start, retain, goal=goal, ceiling=goal, epochs=epochs,
                               options=options, restore=False, epochs_before=first,
                               how=lambda ran: said.format(first) + f", then {ran} more pulling "
                               f"it back towards that median from {target['forget_loss']:.4g}, "
                               f"above the never-seen 95th percentile "
                               f"{target['unseen_high']:.4g}.")  # fmt: skip
    return kept_or_fallback(trials, entry, fallback)
