"""Which path each parameter of a model can take in the per-sample engine, before any data.

:func:`plan` walks the model's modules once. A parameter is owned by the layer
that holds it when that layer has a rule (:mod:`assd.importance.persample.layers`,
:mod:`assd.importance.persample.attention`) and meets it; a parameter of a layer with a
rule it does not meet (BatchNorm in train mode, attention with ``bias_k``) goes
straight to the fallback, with the reason; a plain parameter of a module with
no rule at all (a ViT's class token) is watched for broadcasts over the batch
(:mod:`assd.importance.persample.broadcast`) under a :class:`Shared` owner. The first chunk
of data then checks every owned parameter (:mod:`assd.importance.persample.engine`).

Example:
    >>> import torch
    >>> from assd.models.vit import ViT
    >>> model = ViT(3, image_size=8, patch_size=4, dim=8, depth=1, heads=2).eval()
    >>> found = plan(model, dict(model.named_parameters()))
    >>> sorted(str(o) for o in found.owned if isinstance(o, Shared)), found.rest
    (["Shared('cls')", "Shared('pos')"], [])
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from torch import nn

from .attention import attention_reason
from .broadcast import KEY, Shared
from .layers import unsupported_reason

__all__ = ["Plan", "plan"]


@dataclass
class Plan:
    """The owners of the hooked parameters and what the watch and the fallback need.

    Attributes:
        owned: layer (or :class:`Shared` owner) -> ``[(key, parameter name)]``.
        rest: names that take the fallback from the start; ``reasons`` says why.
        watched: ``id(parameter) -> (parameter, Shared owner)``.
        unwatched: the reason a watched parameter gets if the first chunk rejects it.
        attention: ``id(projection weight) -> nn.MultiheadAttention`` with visible projections.
    """

    owned: dict = field(default_factory=dict)
    rest: list = field(default_factory=list)
    reasons: dict = field(default_factory=dict)
    watched: dict = field(default_factory=dict)
    unwatched: dict = field(default_factory=dict)
    attention: dict = field(default_factory=dict)


def plan(model: nn.Module, params: dict) -> Plan:
    """Owners for the trainable ``params`` (by name) of ``model``."""
    found, names = Plan(), {id(p): n for n, p in params.items()}
    owners, blocked = defaultdict(list), {}
    for module in model.modules():
        direct = [(k, names[id(p)]) for k, p in module._parameters.items()
                  if p is not None and id(p) in names]  # fmt: skip
        attention = isinstance(module, nn.MultiheadAttention)
        reason, watch = _rule_reason(module) if direct or attention else (None, False)
        for key, name in direct:
            if watch:
                owner = Shared(name)
                owners[owner].append((KEY, name))
                found.watched[id(params[name])] = (params[name], owner)
                found.unwatched[name] = (
                    f"{reason}, and used other than by expand/add/sub over the batch")
            elif reason:
                blocked.setdefault(name, reason)
            else:
                owners[module].append((key, name))
        if attention:  # its out_proj too, even when its own weights are frozen
            _own_attention(found, module, reason, names, blocked)
    found.owned = {m: [(k, n) for k, n in kn if n not in blocked] for m, kn in owners.items()}
    found.owned = {m: kn for m, kn in found.owned.items() if kn}
    found.rest = [n for n in params if n in blocked]
    found.reasons = dict(blocked)
    return found


def _own_attention(found: Plan, module, reason, names: dict, blocked: dict) -> None:
    """An attention layer's projections are hooked together with its ``out_proj``."""
    if reason:
        for p in module.out_proj.parameters():
            if id(p) in names:
                blocked.setdefault(names[id(p)], reason)
    else:
        weight = module.in_proj_weight if module._qkv_same_embed_dim else module.q_proj_weight
        found.attention[id(weight)] = module


def _rule_reason(module: nn.Module) -> tuple[str | None, bool]:
    """Why the hooks cannot take ``module``'s parameters (None: they can), and whether
    they are plain parameters of a module with no rule at all (to watch for broadcasts)."""
    if isinstance(module, nn.MultiheadAttention):
        return attention_reason(module), False
    reason = unsupported_reason(module)
    return reason, reason is not None and reason.startswith("no per-sample rule")
