"""Per-sample squared gradients at about the cost of a batch pass, on any model.

The sample estimator needs, for every trainable weight, the sum over samples
of its squared per-sample gradient (loss-free: of its absolute value). Each
parameter takes one of these paths, chosen on the first chunk of data and
recorded in :attr:`SampleEngine.paths` (and so in the saved ``Importance``):

``factorised``  a ``Linear`` weight on ``(B, in)`` inputs under a squared
                objective: ``(delta**2)^T (a**2)`` from forward/backward hooks
                on a summed loss; no per-sample gradient is ever formed.
``hooks``       other layers with a rule in :mod:`assd.persample_layers`
                (convolutions, sequence ``Linear``, eval ``BatchNorm``,
                ``LayerNorm``, ``Embedding``): per-sample gradients formed one
                layer at a time, in chunks of samples that fit the memory budget.
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
layer (e.g. ``F.linear(x, layer.weight)`` elsewhere) is caught on the first
chunk, where the hooks' sum over samples must equal autograd's batch
gradient, and moves to ``torch.func``.

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
from collections import defaultdict

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.utils._pytree import tree_map

from .batches import batch_size_of, forward
from .objectives import add_, objective_value
from .persample_layers import embedding_rows, per_sample, unsupported_reason

__all__ = ["PATHS", "SampleEngine", "rows_per_chunk"]

log = logging.getLogger("assd")

PATHS = ("factorised", "hooks", "torch.func", "loop", "unused")
DEFAULT_BUDGET = 512 * 2**20


def rows_per_chunk(bytes_per_sample: int, budget: int) -> int:
    """How many samples' gradients fit in ``budget`` bytes (at least one).

    Example:
        >>> rows_per_chunk(4000, 40_000), rows_per_chunk(4000, 1)
        (10, 1)
    """
    return max(1, int(budget // max(bytes_per_sample, 1)))


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

    def step(self, acc: dict[str, torch.Tensor], inputs, targets) -> None:
        """Add the batch's per-sample squared (or absolute) gradients to ``acc`` (by name)."""
        if self.owned is None:
            self._plan()
        size = batch_size_of(inputs)
        start = 0
        while self.owned and start < size:
            rows = self._hook_rows()
            self._hook_pass(acc, *_slice(inputs, targets, start, rows), first=not self.paths)
            start += rows
        if not self.paths:  # nothing on the hooks: every parameter takes the fallback
            self._settle({})
        if self.rest:
            self._fallback(acc, inputs, targets)

    # -- planning -------------------------------------------------------------------------

    def _plan(self) -> None:
        """Which layer owns each parameter; parameters of layers without a rule go to ``rest``."""
        names = {id(p): n for n, p in self.params.items()}
        owners, blocked = defaultdict(list), {}
        for module in self.model.modules():
            direct = [(k, names[id(p)]) for k, p in module._parameters.items()
                      if p is not None and id(p) in names]  # fmt: skip
            reason = unsupported_reason(module) if direct else None
            for key, name in direct:
                if reason:
                    blocked.setdefault(name, reason)
                else:
                    owners[module].append((key, name))
        self.owned = {m: [(k, n) for k, n in kn if n not in blocked] for m, kn in owners.items()}
        self.owned = {m: kn for m, kn in self.owned.items() if kn}
        self.rest = [n for n in self.params if n in blocked]
        self.reasons.update(blocked)

    def _hook_rows(self) -> int:
        largest = max(self.params[n].numel() for kn in self.owned.values() for _, n in kn)
        return rows_per_chunk(3 * 4 * largest, self.budget)

    def _reject(self, name: str, reason: str) -> None:
        for module, kn in list(self.owned.items()):
            self.owned[module] = [(k, n) for k, n in kn if n != name]
            if not self.owned[module]:
                del self.owned[module]
        self.rest.append(name)
        self.reasons[name] = reason

    # -- the hook pass ----------------------------------------------------------------------

    def _hook_pass(self, acc, inputs, targets, *, first: bool) -> None:
        records = []
        handles = [m.register_forward_hook(_recorder(records)) for m in self.owned]
        try:
            logits = forward(self.model, inputs)
        finally:
            for handle in handles:
                handle.remove()
        value = self._summed(logits, targets)
        if value is None:  # the loss is not a sum of per-sample losses: no hooks at all
            for name in [n for kn in self.owned.values() for _, n in kn]:
                self._reject(name, "loss_fn is not the mean or sum of per-sample losses")
            return
        rows = batch_size_of(inputs)
        if first:  # autograd's batch gradients, to check the hooks against
            hooked = [n for kn in self.owned.values() for _, n in kn]
            totals = [None] * len(hooked)
            if value.requires_grad:
                wanted = [self.params[n] for n in hooked]
                totals = torch.autograd.grad(value, wanted, allow_unused=True)
            self._validate(records, dict(zip(hooked, totals, strict=True)), rows)
        elif value.requires_grad:
            torch.autograd.grad(value, self._stops(records), allow_unused=True)
        self._accumulate(acc, [r for r in records if r.module in self.owned], rows)

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
            self._reduction = _reduction(self.loss_fn or F.cross_entropy, logits, targets)
        if self._reduction == "neither":
            return None
        value = (self.loss_fn or F.cross_entropy)(logits, targets)
        if self._reduction == "undecided":  # one row: mean and sum agree; decide on more rows
            self._reduction = None
        return value * len(logits) if self._reduction == "mean" else value

    def _validate(self, records, totals: dict, rows: int) -> None:
        """On the first chunk: every hooked parameter's summed hook gradients equal autograd's."""
        sums, bad, kinds = {}, {}, {}
        for record in records:
            for key, name in self.owned.get(record.module, []):
                if not record.valid(rows):
                    bad[name] = "its layer was called in a way the hooks cannot read"
                elif record.delta is not None:
                    g = _total(record, key)
                    once = name not in sums and _factorises(record, key, self.objective)
                    kinds[name] = "factorised" if once else "hooks"
                    sums[name] = g if name not in sums else sums[name] + g
        for name, total in totals.items():
            mine = sums.get(name)
            if name not in bad and not _same(mine, total):
                bad[name] = "also used outside its layer"
        for name, reason in bad.items():
            self._reject(name, reason)
        self._settle({n: kinds.get(n, "unused") for n in totals if n not in bad})

    def _settle(self, kinds: dict) -> None:
        """Record the path of every parameter once the first chunk has decided them."""
        self.paths.update(kinds)
        for name in self.rest:
            self.paths[name] = "torch.func" if self._vmap_works is not False else "loop"
        for name in self.rest:
            self.paths[name] = "torch.func" if self._vmap_works is not False else "loop"

    def _accumulate(self, acc, records, rows: int) -> None:
        uses = defaultdict(int)
        for record in records:
            for _, name in self.owned[record.module]:
                uses[name] += record.delta is not None
        dense = {}
        for record in records:
            if record.delta is None or not record.valid(rows):
                continue
            owned = self.owned[record.module]
            single = [(k, n) for k, n in owned if uses[n] == 1]
            done = self._add_direct(acc, record, single)
            others = [(k, n) for k, n in owned if n not in done]
            if others:
                grads = per_sample(record.module, _float(record.a), record.delta.float())
                fresh = isinstance(record.module, (nn.Linear, nn.Conv1d, nn.Conv2d))
                for key, name in others:
                    if uses[name] == 1:  # bmm outputs are new tensors: square them in place
                        self._add_squares(acc[name], grads[key], fresh=fresh and key == "weight")
                    else:
                        dense[name] = grads[key] if name not in dense else dense[name] + grads[key]
        for name, g in dense.items():
            self._add_squares(acc[name], g, fresh=True)

    def _add_direct(self, acc, record, single) -> set[str]:
        """Parameters used once whose sums need no dense per-sample gradients."""
        module, done = record.module, set()
        if isinstance(module, nn.Linear) and record.a.dim() == 2 and self.objective == "loss":
            a, delta = _float(record.a), record.delta.float()
            squares = delta.square() if single else None
            for key, name in single:
                if key == "weight":
                    acc[name].addmm_(squares.T, a.square())  # = linear_squares(a, delta)
                else:
                    acc[name].add_(squares.sum(0))
                done.add(name)
        elif isinstance(module, nn.Embedding) and single:
            keys, sums, _ = embedding_rows(module, record.a, record.delta.float())
            values = sums.square_() if self.objective == "loss" else sums.abs_()
            acc[single[0][1]].index_add_(0, keys % module.num_embeddings, values)
            done.add(single[0][1])
        return done

    def _add_squares(self, total: torch.Tensor, g: torch.Tensor, *, fresh: bool = False) -> None:
        """``total += sum_i g_i**2`` (or ``|g_i|``); in place on ``g`` only if nothing else
        can see it (autograd may return one tensor, or views of one, for several inputs)."""
        if self.objective == "loss":
            g = g.square_() if fresh else g.square()
        else:
            g = g.abs_() if fresh else g.abs()
        total.add_(g.sum(0))

    # -- fallbacks ------------------------------------------------------------------------------

    def _fallback(self, acc, inputs, targets) -> None:
        if self._vmap_works is not False:
            partial = {n: torch.zeros_like(acc[n]) for n in self.rest}
            try:
                self._vmap(partial, inputs, targets)
            except Exception as error:  # vmap cannot trace this model: one sample at a time
                if self._vmap_works:
                    raise
                self._vmap_works = False
                for name in self.rest:
                    self.paths[name] = "loop"
                    self.reasons.setdefault(name, "")
                    self.reasons[name] += f"; vmap failed: {str(error).splitlines()[0][:200]}"
                log.info("per-sample gradients: vmap failed (%s); looping over samples", error)
            else:
                self._vmap_works = True
                for name, t in partial.items():
                    acc[name].add_(t)
                return
        self._loop(acc, inputs, targets)

    def _vmap(self, acc, inputs, targets) -> None:
        rest = {n: self.params[n].detach() for n in self.rest}
        fixed = {n: p.detach() for n, p in self.params.items() if n not in rest}
        model, objective, loss_fn = self.model, self.objective, self.loss_fn

        def one(p, x, y):
            x1 = tree_map(lambda t: t.unsqueeze(0), x)
            y1 = None if y is None else y.unsqueeze(0)
            call = lambda *a, **k: functional_call(model, {**fixed, **p}, a, k)  # noqa: E731
            return objective_value(objective, forward(call, x1), y1, loss_fn)

        per_sample_grads = vmap(grad(one), in_dims=(None, 0, None if targets is None else 0))
        itemsize = max(p.element_size() for p in rest.values())
        numel = sum(p.numel() for p in rest.values())
        rows = rows_per_chunk(numel * (itemsize + (4 if itemsize != 4 else 0)), self.budget)
        for start in range(0, batch_size_of(inputs), rows):
            grads = per_sample_grads(rest, *_slice(inputs, targets, start, rows))
            for name, g in grads.items():
                self._add_squares(acc[name], g if g.dtype == torch.float32 else g.float())

    def _loop(self, acc, inputs, targets) -> None:
        names = list(self.rest)
        for i in range(batch_size_of(inputs)):
            x, y = _slice(inputs, targets, i, 1)
            value = objective_value(self.objective, forward(self.model, x), y, self.loss_fn)
            grads = torch.autograd.grad(value, [self.params[n] for n in names], allow_unused=True)
            pairs = [(acc[n], g) for n, g in zip(names, grads, strict=True) if g is not None]
            if pairs:
                add_([a for a, _ in pairs], [g for _, g in pairs], self.objective)


class _Record:
    """One call of a hooked layer: its input, and the gradient of its output once known."""

    __slots__ = ("a", "delta", "module", "rows", "source", "version")

    def __init__(self, module, a, rows):
        self.module, self.rows, self.delta = module, rows, None
        self.source = a if a is not None and a.requires_grad else None  # to differentiate
        self.a = None if a is None else a.detach()
        self.version = None if a is None else a._version

    def valid(self, rows: int) -> bool:
        return self.a is not None and self.rows == rows and self.a._version == self.version


def _recorder(records: list):
    def hook(module, args, output):
        a = args[0] if args and isinstance(args[0], torch.Tensor) else None
        ok = a is not None and isinstance(output, torch.Tensor) and output.dim() >= 1
        ok = ok and a.dim() >= 1 and output.shape[0] == a.shape[0]
        record = _Record(module, a if ok else None, a.shape[0] if ok else -1)
        records.append(record)
        if ok and output.requires_grad:
            output.register_hook(lambda g: setattr(record, "delta", g))

    return hook


def _total(record: _Record, key: str) -> torch.Tensor:
    """The layer's batch gradient from the hook's tensors (sum over samples)."""
    module, a, delta = record.module, _float(record.a), record.delta.float()
    if isinstance(module, nn.Linear):
        d2 = delta.reshape(-1, delta.shape[-1])
        return d2.T @ a.reshape(-1, a.shape[-1]) if key == "weight" else d2.sum(0)
    if isinstance(module, nn.Embedding):
        keys, sums, _ = embedding_rows(module, record.a, delta)
        total = sums.new_zeros(module.weight.shape)
        return total.index_add_(0, keys % module.num_embeddings, sums)
    return per_sample(module, a, delta)[key].sum(0)


def _float(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.is_floating_point() and t.dtype != torch.float32 else t


def _factorises(record: _Record, key: str, objective: str) -> bool:
    linear = isinstance(record.module, nn.Linear) and record.a.dim() == 2
    return linear and key == "weight" and objective == "loss"


def _reduction(loss_fn, logits: torch.Tensor, targets) -> str:
    """Whether ``loss_fn`` is the mean or the sum of its per-row values (cheap check)."""
    rows = min(len(logits), 8)
    if rows < 2:
        return "undecided"
    with torch.no_grad():
        logits, targets = logits[:rows].detach(), targets[:rows]
        whole = loss_fn(logits, targets)
        if whole.dim() != 0:
            return "neither"
        parts = torch.stack([loss_fn(logits[i : i + 1], targets[i : i + 1]) for i in range(rows)])
    for name, value in (("mean", parts.mean()), ("sum", parts.sum())):
        if torch.isclose(whole, value, rtol=1e-4, atol=1e-6):
            return name
    return "neither"


def _same(mine, total) -> bool:
    if total is None or mine is None:
        return (mine is None or not mine.any()) and (total is None or not total.any())
    scale = max(float(total.abs().max()), float(mine.abs().max()), 1e-30)
    return bool(torch.allclose(mine.float(), total.float(), rtol=1e-3, atol=1e-4 * scale))


def _slice(inputs, targets, start: int, rows: int):
    part = slice(start, start + rows)
    x = tree_map(lambda t: t[part] if isinstance(t, torch.Tensor) else t, inputs)
    return x, None if targets is None else targets[part]
