"""The options of a method on a table model: the defaults of ``assd unlearn`` by method.

Example:
    >>> from assd.tabular.model import TrainConfig
    >>> table_defaults("assd", None, TrainConfig())
    {'estimator': 'sample', 'reference': 'retain'}
    >>> table_defaults("assd-auto", None, TrainConfig()), table_defaults(
    ...     "assd-auto", None, TrainConfig(), reason="privacy")
    ({'target': 'mislabelled'}, {})
"""

from __future__ import annotations

from .guarded import DEFAULT_REASON
from .model import TrainConfig

__all__ = ["DEFAULT_OPTIONS", "ERRORS_TARGET", "REFERENCE_OPTIONS", "table_defaults"]

# Defaults of the SSD family on tables, chosen from the measurements in docs/errors.md:
# the per-sample estimator (eval mode) beat the batch estimator; I_D on the rows kept
# ("retain", derived exactly from the cached full-data importance) repaired group errors
# that I_D on all rows missed: weights that only the forgotten rows use have
# I_Df / I_D = n / k on all rows, which ties at the percentile and escapes selection.
DEFAULT_OPTIONS = {"estimator": "sample", "reference": "retain"}
# SSD's fixed alpha belongs to its reference setup (I_D on all rows); the other SSD-family
# methods were measured that way, so they keep it.
REFERENCE_OPTIONS = {"estimator": "sample", "reference": "full"}
# assd-auto's target when the rows are declared wrong: the forget rows' given labels fall to
# the rate of models that never saw them. The "rows" target's references train on halves of
# all rows and see half a mislabelled group, so they call the rows "already forgotten".
ERRORS_TARGET = "mislabelled"


def table_defaults(method: str, options: dict | None, config: TrainConfig, *,
                   reason: str = DEFAULT_REASON) -> dict:  # fmt: skip
    """Options of ``method`` on a table model: defaults for its kind, then ``options``
    (parsed and checked by :mod:`assd.methods.options`). ``assd-auto`` correcting errors
    (``reason="errors"``) targets the wrong labels (:data:`ERRORS_TARGET`)."""
    name = method.strip().lower()
    if name == "retrain":
        defaults = {**config.fit_options(), "seed": config.seed}
    elif name == "finetune":
        defaults = {"epochs": 1, "lr": config.lr, "momentum": config.momentum}
    elif name == "assd":
        defaults = dict(DEFAULT_OPTIONS)
    elif name in ("ssd", "lfssd", "alfssd"):
        defaults = dict(REFERENCE_OPTIONS)
    elif name == "assd-auto" and reason == "errors":
        defaults = {"target": ERRORS_TARGET}
    else:
        defaults = {}
    return {**defaults, **(options or {})}
