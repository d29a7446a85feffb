"""The data-entry error experiment: train on wrong labels, unlearn the wrong rows.

For every architecture x error kind x error rate x seed: draw ``n_train``
training rows (seeded), relabel ``rate`` of them wrongly (uniform, pair or
group errors, see :mod:`assd.data.label_errors`), train the *mistake model*
on the noisy labels, then let every method forget the relabelled rows
(their correct labels stay unknown to it). Each method is one cell of
:func:`assd.experiments.run_cells`, so a re-run skips what is done; the
mistake model of a cell group is trained once per process and, being seeded,
identically on a re-run.

Methods are named by spec strings ``NAME[:key=value,...]``, e.g. ``assd``,
``assd:reference=full``, ``ssd:alpha=10``, ``finetune:epochs=1``; ``mistake``
is the mistake model itself. A spec prefixed ``found:`` (``found:assd``,
``found:retrain``, ``found:`` + any registered method) forgets the rows that
:func:`assd.tabular.label_issues.discover` finds instead of the injected ones:
out-of-fold models (folds holding whole groups out when the table has a group
column), cleanlab, and the group rule. Those records carry the discovery's
precision and recall against the injected rows and its time.

The table is the flights task by default, or any table with a target column
(``ErrorsConfig.target``), split at random or by a time column; group errors
are drawn on the values of ``group_column``.

Example:
    >>> parse_method("assd:reference=full,train_mode=true")
    ('assd', {'reference': 'full', 'train_mode': True})
    >>> parse_method("found:retrain")
    ('found:retrain', {})
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..data.label_errors import inject_label_errors
from ..data.preprocess import DEFAULT_MAX_LEVELS
from ..methods import get_method
from ..methods.options import parse_spec
from ..methods.ssd import SSD
from ..tabular.dampen import dampen_rows, evaluation_batches
from ..tabular.guarded import DEFAULT_REASON, watched_rows
from ..tabular.model import TrainConfig, train_mlp
from ..tabular.task import Rows
from ..tabular.unlearn import table_defaults
from .errors_steps import _discovery, _loader, _measure
from .everywhere import guard_figures, inject_everywhere

__all__ = [
    "ErrorsConfig",
    "ErrorsData",
    "load_errors_data",
    "make_cells",
    "parse_method",
    "run_one",
]

log = logging.getLogger("assd")

DEFAULT_METHODS = ["mistake", "assd", "assd-auto", "ssd", "lfssd", "alfssd", "finetune", "retrain"]
FOUND = "found:"  # method prefix: forget the rows discovery finds, not the injected ones


@dataclass
class ErrorsConfig:
    """Everything that decides the experiment's numbers (stored with every record)."""

    rates: list[float] = field(default_factory=lambda: [0.005, 0.01, 0.025, 0.05, 0.075, 0.1])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    models: list[str] = field(default_factory=lambda: ["mlp"])
    kinds: list[str] = field(default_factory=lambda: ["uniform", "group"])
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    n_train: int = 20000
    data: str | None = None  # a table file; None: the flights table that ships
    target: str | None = None  # label column; None: the flights task (delay_class)
    split: str | None = None  # "random", "time:COLUMN"; None: flights' time split
    id_column: str | None = None
    group_column: str | None = "dest"  # group errors are drawn on its values
    folds: int = 5  # out-of-fold models of the found: methods
    max_levels: int = DEFAULT_MAX_LEVELS  # one-hot levels kept per categorical (all 104 dests)
    with_dep_delay: bool = True
    # errors in the held-out rows too (the guard sees them; scores use the clean labels)
    everywhere: bool = False
    training: dict = field(default_factory=dict)  # TrainConfig fields; model and seed per cell

    def task_spec(self) -> dict:
        """Target, id column and split of the table (the flights task's when no target)."""
        if self.target is None:
            from ..data.flights import TARGET, TIME_COLUMN

            return {"target": TARGET, "id_column": "id", "split": f"time:{TIME_COLUMN}"}
        return {"target": self.target, "id_column": self.id_column,
                "split": self.split or "random"}  # fmt: skip

    def train_config(self, model: str, seed: int) -> TrainConfig:
        return TrainConfig(**{**self.training, "model": model, "seed": seed})

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ErrorsData:
    """The encoded task: all training rows, the test rows, and a group key per row."""

    train: Rows
    test: Rows
    train_groups: np.ndarray | None
    test_groups: np.ndarray | None
    class_names: list[str]
    feature_names: list[str] = field(default_factory=list)
    majority: int = 0  # most common class of the training rows (the baseline's answer)


def load_errors_data(config: ErrorsConfig, frame=None) -> ErrorsData:
    """Encode the table (default: the flights task) and split it into training and test rows.

    The group column, when there is one, is one-hot encoded (its values get
    their own inputs, so errors in a group are learnable and unlearnable).
    """
    from ..tabular.pipeline import training_rows
    from ..tabular.task import TableTask

    if frame is None:
        from ..data.flights import load_flights

        frame = load_flights(with_dep_delay=config.with_dep_delay)
    spec = config.task_spec()
    group = config.group_column
    if group is not None and group not in frame.columns:
        raise ValueError(f"no group column {group!r} in the table; name one with "
                         "--group-column, or run only uniform and pair errors.")  # fmt: skip
    if group is None and "group" in config.kinds:
        raise ValueError("group errors need a group column: pass --group-column COLUMN "
                         "(the values that may be mislabelled together), or --kinds uniform.")
    task = TableTask.fit(frame, **spec, max_levels=config.max_levels,
                         categorical=[group] if group else None)  # fmt: skip
    rows = task.encode(frame)
    labelled = (rows.y >= 0).numpy()
    train_mask, test_mask = ~rows.test & labelled, rows.test & labelled
    if not test_mask.any():
        raise ValueError(f"the split {spec['split']!r} leaves no test rows; use --split random "
                         "or --split-column COLUMN.")  # fmt: skip
    train = training_rows(rows)
    groups = None if group is None else frame[group].astype(str).to_numpy()
    majority = int(np.bincount(train.y.numpy()).argmax())
    return ErrorsData(
        train, rows.subset(test_mask), None if groups is None else groups[train_mask],
        None if groups is None else groups[test_mask], task.class_names,
        task.preprocessor.feature_names, majority,
    )  # fmt: skip


def make_cells(config: ErrorsConfig) -> list[dict]:
    """Every cell; the method varies fastest so a mistake model is trained once per group."""
    return [
        {"model": m, "kind": k, "rate": r, "seed": s, "method": method}
        for m in config.models
        for k in config.kinds
        for r in config.rates
        for s in config.seeds
        for method in config.methods
    ]


def parse_method(spec: str) -> tuple[str, dict]:
    """``"name:key=value,..."`` -> ``(name, options)``; values read as JSON when they can be."""
    if spec.strip().lower().startswith(FOUND):
        name, options = parse_method(spec.strip()[len(FOUND):])
        return FOUND + name, options
    return parse_spec(spec)  # the one parser of method options


class _Context:
    """The mistake model of one (model, kind, rate, seed) group, kept between its cells."""

    def __init__(self, data: ErrorsData, config: ErrorsConfig, cell: dict):
        rng = np.random.default_rng(cell["seed"])
        self.held_out = data.test  # assd-auto compares the forget rows with held-out rows
        self.held_out_wrong = None  # which held-out labels are wrong (errors everywhere)
        n = min(config.n_train, len(data.train))
        picked = np.sort(rng.choice(len(data.train), size=n, replace=False))
        self.clean = data.train.subset(picked)
        self.groups = None if data.train_groups is None else data.train_groups[picked]
        if config.everywhere:
            both = None if self.groups is None else (self.groups, data.test_groups)
            errors, noisy_test = inject_everywhere(
                self.clean.y.numpy(), data.test.y.numpy(), rate=cell["rate"], kind=cell["kind"],
                seed=cell["seed"], n_classes=len(data.class_names), groups=both,
            )  # fmt: skip
            self.held_out = Rows(data.test.x, torch.from_numpy(noisy_test), data.test.ids,
                                 data.test.test)  # fmt: skip
            self.held_out_wrong = noisy_test != data.test.y.numpy()
        else:
            errors = inject_label_errors(
                self.clean.y.numpy(), rate=cell["rate"], kind=cell["kind"], seed=cell["seed"],
                n_classes=len(data.class_names), groups=self.groups,
            )  # fmt: skip
        self.errors = errors
        noisy_y = torch.from_numpy(errors.labels)
        self.noisy = Rows(self.clean.x, noisy_y, self.clean.ids, self.clean.test)
        is_forget = np.zeros(n, dtype=bool)
        is_forget[errors.rows] = True
        self.forget, self.retain = self.noisy.subset(is_forget), self.noisy.subset(~is_forget)
        self.is_forget = is_forget
        self.train_config = config.train_config(cell["model"], cell["seed"])
        self.n_classes = len(data.class_names)
        tick = time.perf_counter()
        self.model = train_mlp(
            self.noisy.x, self.noisy.y, n_classes=len(data.class_names), config=self.train_config
        )
        self.train_seconds = time.perf_counter() - tick
        self.memo: dict = {}
        self.importance_seconds = 0.0  # the pass over D for I_D, once per mistake model
        self.found = None  # the discovery, made on first use by a found: method
        self.affected_test = None
        if data.test_groups is not None:
            affected = np.isin(data.test_groups, [str(g) for g in errors.groups or []])
            self.affected_test = data.test.subset(affected) if affected.any() else None


def run_one(cell: dict, data: ErrorsData, config: ErrorsConfig, cache: dict) -> dict:
    """Run one cell (one method on one mistake model) and return its metrics."""
    group = (cell["model"], cell["kind"], cell["rate"], cell["seed"])
    if cache.get("group") != group:
        cache.clear()
        cache["group"], cache["context"] = group, _Context(data, config, cell)
    ctx: _Context = cache["context"]
    name, options = parse_method(cell["method"])
    summary, is_forget = {}, ctx.is_forget
    if name.startswith(FOUND):
        summary = _discovery(ctx, data, config, cell["seed"])
        name, is_forget = name[len(FOUND):], ctx.found.written
    tick = time.perf_counter()
    model, more = _apply(name, options, ctx, is_forget)
    seconds = time.perf_counter() - tick
    if name == "mistake":
        seconds = ctx.train_seconds
    return {
        **_measure(model, ctx, data),
        **summary,
        **more,
        "seconds": seconds,
        "n_train": len(ctx.clean),
        "n_forget": len(ctx.forget),
        "n_test": len(data.test),
        "groups": None if ctx.errors.groups is None else [str(g) for g in ctx.errors.groups],
    }


def _apply(name: str, options: dict, ctx: _Context, is_forget: np.ndarray):
    if name == "mistake":
        return ctx.model, {}
    if not is_forget.any():  # discovery found nothing: nothing to forget
        return ctx.model, {"note": "nothing to forget"}
    forget_rows, retain_rows = ctx.noisy.subset(is_forget), ctx.noisy.subset(~is_forget)
    reason = options.pop("reason", DEFAULT_REASON)
    options = table_defaults(name, options, ctx.train_config, reason=reason)  # as assd unlearn
    algorithm = get_method(name, **options)
    cfg = ctx.train_config
    if getattr(algorithm, "recipe", False) is None and getattr(algorithm, "references", 1) is None:
        from ..tabular.references import table_recipe  # assd-auto: references, as on a table

        algorithm.recipe = table_recipe(cfg, n_classes=ctx.n_classes)
    forget = _loader(forget_rows, cfg)
    if isinstance(algorithm, SSD):
        evaluate, watch = None, None
        if algorithm.needs_evaluation or algorithm.guard is not None:  # assd-auto, a guard
            # the guard watches what it would in `assd unlearn --reason REASON`
            kept, held, watch = watched_rows(forget_rows, retain_rows, ctx.held_out,
                                             reason=reason)  # fmt: skip
            evaluate = evaluation_batches(forget_rows, kept, held, cfg)
        result, info = dampen_rows(algorithm, ctx.model, ctx.noisy, forget_rows, retain_rows, cfg,
                                   memo=ctx.memo, evaluate=evaluate)  # fmt: skip
        now = info["seconds"] if "seconds" in info and not info.get("hit") else 0.0
        ctx.importance_seconds = ctx.importance_seconds or now
        keys = ("alpha", "percentile", "n_dampened", "share_dampened")
        # importance_seconds: the pass over D made in this call (0 when reused);
        # pass_seconds: what that pass costs for this model, made here or before
        return result.model, {**{k: result.summary()[k] for k in keys},
                              "n_changed": result.n_changed, "verdict": result.verdict,
                              "importance_seconds": now,
                              "pass_seconds": ctx.importance_seconds,
                              **guard_figures(result, watch, ctx.held_out, ctx.held_out_wrong,
                                              forget_rows, retain_rows)}  # fmt: skip
    retain = cfg.loader(retain_rows.x, retain_rows.y)
    result = algorithm.unlearn(ctx.model, forget=forget, retain=retain)
    return result.model, {}
