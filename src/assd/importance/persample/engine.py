"""Per-sample squared gradients at about the cost of a batch pass, on any model.

The sample estimator needs, for every trainable weight, the sum over samples
of its squared per-sample gradient (loss-free: of its absolute value). Each
parameter takes one of these paths, chosen on the first chunk of data and
recorded in :attr:`SampleEngine.paths` (and so in the saved ``Importance``):

``factorised``  a ``Linear`` weight on ``(B, in)`` inputs under a squared
                objective: ``(delta**2)^T (a**2)`` from forward/backward hooks
                on a summed loss; no per-sample gradient is ever formed.
``hooks``       other layers with a rule in :mod:`assd.importance.persample.layers`
                (convolutions, sequence ``Linear``, eval ``BatchNorm``,
                ``LayerNorm``, ``Embedding``): per-sample gradients formed one
                layer at a time, in chunks of samples that fit the memory budget
                (sequence ``Linear``: in cache-sized blocks,
                :mod:`assd.importance.persample.direct`); ``nn.MultiheadAttention``'s
                projections (:mod:`assd.importance.persample.attention`); parameters of
                modules without a rule that are broadcast over the batch
                (``cls.expand(B, ...)``, ``x + pos``), and layers run once for
                the whole batch whose output is (BERT's position embedding):
                :mod:`assd.importance.persample.broadcast`.
``torch.func``  everything else: ``vmap(grad(...))`` over chunks of samples.
``loop``        models ``vmap`` cannot trace (e.g. Hugging Face attention-mask
                code): one backward per sample.
``unused``      never reached by the objective on the first chunk: exactly zero.

The hooks are exact only when the batch objective is a sum of independent
per-sample objectives. So: BatchNorm must use running statistics (eval mode);
the default cross-entropy on ``(B, C)`` logits is summed directly; any other
loss is checked on the first chunk to equal the mean (or sum) of its per-row
values, else every parameter takes ``torch.func``; ``output_norm`` takes
``|g|``, which does not factorise, so its layers form per-sample gradients. A
parameter used by several layers or several times (tied weights) has its
per-sample gradients summed before squaring. A parameter also used outside its
layer (e.g. ``F.linear(x, layer.weight)`` elsewhere), or a watched parameter
used other than by a broadcast (``x * scale``), is caught on the first chunk,
where the hooks' sum over samples must equal autograd's batch gradient, and
moves to ``torch.func``.

Why not opacus (its grad samplers do the per-layer einsums): it forms and
stores per-sample gradients for every layer (in ``.grad_sample`` on the user's
parameters), including the ``Linear`` layers where the factorisation needs
none, and it brings scipy and opt-einsum; the rules needed here are a page.

Example:
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    >>> engine = SampleEngine(model, dict(model.named_parameters()), objective="loss")
    >>> acc = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    >>> engine.step(acc, torch.randn(5, 3), torch.tensor([0, 1, 0, 1, 1]))
    >>> engine.paths["0.weight"], engine.paths["0.bias"]
    ('factorised', 'hooks')
"""

from __future__ import annotations

import logging
import math
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from ...batches import batch_size_of, forward
from ..objectives import objective_value
from .accumulate import add_hooked
from .broadcast import Watch
from .fallback import loop_sums, rows_per_chunk, slice_batch, vmap_sums
from .plan import plan
from .records import loss_reduction, recorder, same_total

__all__ = ["PATHS", "SampleEngine", "rows_per_chunk"]

log = logging.getLogger("assd")

PATHS = ("factorised", "hooks", "torch.func", "loop", "unused")
DEFAULT_BUDGET = 512 * 2**20
# The first chunk, which decides the paths and checks the hooks against autograd's batch
# gradient (an extra backward with weight gradients), is this many rows at most; the rest of
# the first batch takes the ordinary path. Any row that reaches a parameter through a use
# outside its layer shows the mismatch, and on small tensors the check's extra operations
# run single-threaded (the pass over the MLP's 1,000 forget rows was 2.8x a plain pass with
# the check on the whole batch: docs/performance.md, section 1).
CHECK_ROWS = 64


class SampleEngine:
    """Sums of squared (or absolute) per-sample gradients for one model, batch by batch.

    Args:
        model: the model, already in eval mode.
        params: the trainable parameters by name.
        objective: ``"loss"`` or ``"output_norm"``.
        loss_fn: ``loss_fn(logits, targets)``; cross-entropy if None.
        budget: bytes of per-sample gradients held at once.
    """

    def __init__(self, model: nn.Module, params: dict, *, objective: str, loss_fn=None,
                 budget: int = DEFAULT_BUDGET):  # fmt: skip
        self.model, self.params, self.budget = model, params, budget
        self.objective, self.loss_fn = objective, loss_fn
        self.paths: dict[str, str] = {}
        self.reasons: dict[str, str] = {}  # why a parameter is not on the hooks
        self.owned: dict[nn.Module, list[tuple[str, str]]] | None = None
        self.rest: list[str] = []
        self._reduction: str | None = None  # how the batch loss relates to per-sample losses
        self._vmap_works: bool | None = None
        self._watched: dict = {}  # see persample_plan.Plan
        self._unwatched: dict[str, str] = {}
        self._attention: dict = {}
        self._watching = True  # run the hook pass's forward under a Watch (see _hook_pass)

    def step(self, acc: dict[str, torch.Tensor], inputs, targets) -> None:
        """Add the batch's per-sample squared (or absolute) gradients to ``acc`` (by name)."""
        if self.owned is None:
            self._plan()
        size = batch_size_of(inputs)
        start = 0
        while self.owned and start < size:
            first = not self.paths  # checked on a small slice: see CHECK_ROWS
            rows = self.first_rows() if first else self._hook_rows()
            self._hook_pass(acc, *slice_batch(inputs, targets, start, rows), first=first)
            start += rows
        if not self.paths:  # nothing on the hooks: every parameter takes the fallback
            self._settle({})
        if self.rest:
            self._fallback(acc, inputs, targets)

    # -- planning -------------------------------------------------------------------------

    def _plan(self) -> None:
        """Owners of the parameters (:mod:`assd.importance.persample.plan`); the rest fall back."""
        found = plan(self.model, self.params)
        self.owned, self.rest = found.owned, found.rest
        self.reasons.update(found.reasons)
        self._watched, self._unwatched, self._attention = (
            found.watched, found.unwatched, found.attention)  # fmt: skip

    def _hook_rows(self) -> int:
        """Rows per chunk: as many as the budget holds of the costliest hooked parameter's
        per-sample gradients (twice). Once the first chunk has decided the paths, a
        factorised weight costs only its rows of squared inputs and output gradients:
        it never forms per-sample gradients (a batch of an MLP is then one chunk, which
        under FSDP2 means one all-gather of each unit per batch instead of several)."""
        largest = max(self._row_floats(n) for kn in self.owned.values() for _, n in kn)
        return rows_per_chunk(2 * 4 * largest, self.budget)

    def _row_floats(self, name: str) -> int:
        shape = self.params[name].shape
        if self.paths.get(name) == "factorised":
            return sum(shape)  # one row of a**2 and of delta**2
        return 0 if self.paths.get(name) == "unused" else math.prod(shape)

    def first_rows(self) -> int:
        """The first chunk's rows (before any path is known): see ``CHECK_ROWS``."""
        largest = max(self.params[n].numel() for kn in self.owned.values() for _, n in kn)
        return min(rows_per_chunk(2 * 4 * largest, self.budget), CHECK_ROWS)

    def _reject(self, name: str, reason: str) -> None:
        for module, kn in list(self.owned.items()):
            self.owned[module] = [(k, n) for k, n in kn if n != name]
            if not self.owned[module]:
                del self.owned[module]
        if name not in self.rest:
            self.rest.append(name)
        self.reasons[name] = reason

    # -- the hook pass ----------------------------------------------------------------------

    def _record(self, inputs, targets, *, first: bool):
        """The hook pass's forward: the records of every hooked layer and the summed
        objective (None: the loss is not a sum of per-sample losses)."""
        records, outputs = [], {}
        layers = [m for m in self.owned if isinstance(m, nn.Module)  # not Shared owners
                  and not isinstance(m, nn.MultiheadAttention)]  # (seen by the Watch)  # fmt: skip
        handles = [m.register_forward_hook(recorder(records, outputs)) for m in layers]
        watch = None
        if self._watching:  # off after a first chunk where it saw nothing
            watch = Watch(records, params=self._watched, outputs=outputs, attention=self._attention)
        try:
            with watch or nullcontext():
                logits = forward(self.model, inputs)
        finally:
            for handle in handles:
                handle.remove()
        self._watching = self._watching and (not first or watch.seen)
        return records, self._summed(logits, targets)

    def _hook_pass(self, acc, inputs, targets, *, first: bool) -> None:
        records, value = self._record(inputs, targets, first=first)
        if value is None:  # the loss is not a sum of per-sample losses: no hooks at all
            for name in [n for kn in self.owned.values() for _, n in kn]:
                self._reject(name, "loss_fn is not the mean or sum of per-sample losses")
            return
        rows = batch_size_of(inputs)
        records = [r for r in records if r.module in self.owned]
        if not first:
            if value.requires_grad:
                torch.autograd.grad(value, self._stops(records), allow_unused=True)
            self._accumulate(acc, records, rows)
            return
        hooked = list(dict.fromkeys(n for kn in self.owned.values() for _, n in kn))
        totals = [None] * len(hooked)
        if value.requires_grad:  # autograd's batch gradients, to check the hooks against
            wanted = [self.params[n] for n in hooked]
            totals = torch.autograd.grad(value, wanted, allow_unused=True)
        # kept apart until the check below accepts them; a zero accumulator is its own stage
        staged = {n: acc[n] if _is_zero(acc[n]) else torch.zeros_like(acc[n]) for n in hooked}
        sums, kinds = {}, {}
        self._accumulate(staged, records, rows, sums=sums, kinds=kinds)
        self._validate(records, dict(zip(hooked, totals, strict=True)), sums, kinds, rows)
        for name in hooked:
            if staged[name] is acc[name]:
                if name in self.rest:
                    acc[name].zero_()
            elif name not in self.rest:
                acc[name].add_(staged[name])

    def _stops(self, records) -> list[torch.Tensor]:
        """What to differentiate so that backward reaches every hooked layer's output but
        skips the weight gradients (the hooks replace them): each layer's input, or, where
        the input needs no gradient (the first layers), its smallest parameter."""
        wanted, seen = [], set()
        for record in records:
            if record.module not in self.owned:
                continue
            if record.source is not None:
                tensor = record.source
            else:
                small = min(self.owned[record.module], key=lambda kn: self.params[kn[1]].numel())
                tensor = self.params[small[1]]
            if id(tensor) not in seen:
                seen.add(id(tensor))
                wanted.append(tensor)
        return wanted

    def _summed(self, logits: torch.Tensor, targets):
        """The sum over samples of the per-sample objective, or None if the loss is not one."""
        if self.objective == "output_norm":
            return logits.flatten(1).pow(2).sum()
        if targets is None:
            return objective_value("loss", logits, None, None)  # raises the targets error
        if self.loss_fn is None and targets.dim() == 1 and logits.dim() == 2:
            return F.cross_entropy(logits, targets, reduction="sum")
        if self._reduction is None:
            self._reduction = loss_reduction(self.loss_fn or F.cross_entropy, logits, targets)
        if self._reduction == "neither":
            return None
        value = (self.loss_fn or F.cross_entropy)(logits, targets)
        if self._reduction == "undecided":  # one row: mean and sum agree; decide on more rows
            self._reduction = None
        return value * len(logits) if self._reduction == "mean" else value

    def _validate(self, records, totals: dict, sums: dict, kinds: dict, rows: int) -> None:
        """First chunk: each hooked parameter's summed hook gradients must equal autograd's."""
        bad = {}
        for record in records:
            if not record.valid(rows):
                for _, name in self.owned[record.module]:
                    bad[name] = "its layer was called in a way the hooks cannot read"
        for name, total in totals.items():
            if name not in bad and not same_total(sums.get(name), total):
                bad[name] = self._unwatched.get(name, "also used outside its layer")
        for name, reason in bad.items():
            self._reject(name, reason)
        self._settle({n: kinds.get(n, "unused") for n in totals if n not in bad})

    def _settle(self, kinds: dict) -> None:
        """Record the path of every parameter once the first chunk has decided them."""
        self.paths.update(kinds)
        for name in self.rest:
            self.paths[name] = "torch.func" if self._vmap_works is not False else "loop"

    def _accumulate(self, acc, records, rows: int, *, sums=None, kinds=None) -> None:
        """Add every hooked parameter's per-sample squares of this chunk to ``acc``
        (:func:`~assd.importance.persample.accumulate.add_hooked`)."""
        add_hooked(acc, records, self.owned, self.objective, rows, sums=sums, kinds=kinds)

    def _fallback(self, acc, inputs, targets) -> None:
        options = {"objective": self.objective, "loss_fn": self.loss_fn}
        if self._vmap_works is not False:
            partial = {n: torch.zeros_like(acc[n]) for n in self.rest}
            try:
                vmap_sums(self.model, self.params, self.rest, partial, inputs, targets,
                          budget=self.budget, **options)  # fmt: skip
            except Exception as error:  # vmap cannot trace this model: one sample at a time
                if self._vmap_works:
                    raise
                self._no_vmap(error)
            else:
                self._vmap_works = True
                for name, t in partial.items():
                    acc[name].add_(t)
                return
        loop_sums(self.model, self.params, self.rest, acc, inputs, targets, **options)

    def _no_vmap(self, error: Exception) -> None:
        self._vmap_works = False
        for name in self.rest:
            self.paths[name] = "loop"
            why = f"vmap failed: {str(error).splitlines()[0][:200] if str(error) else error!r}"
            self.reasons[name] = f"{self.reasons[name]}; {why}" if name in self.reasons else why
        log.info("per-sample gradients: vmap failed (%s); looping over samples", error)


def _is_zero(t: torch.Tensor) -> bool:
    """All zeros (one ``aminmax`` pass: twice as fast as ``any`` on CPU)."""
    if t.numel() == 0:
        return True
    low, high = torch.aminmax(t)
    return not (low or high)
