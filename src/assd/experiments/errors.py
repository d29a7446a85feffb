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
is the mistake model itself.

Example:
    >>> parse_method("assd:reference=full,train_mode=true")
    ('assd', {'reference': 'full', 'train_mode': True})
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..data.label_errors import inject_label_errors
from ..methods import get_method
from ..methods.ssd import SSD
from ..metrics import accuracy
from ..tabular.model import TrainConfig, train_mlp
from ..tabular.task import Rows
from ..tabular.unlearn import dampen_rows, method_options

__all__ = [
    "ErrorsConfig",
    "ErrorsData",
    "load_errors_data",
    "make_cells",
    "parse_method",
    "run_one",
]

log = logging.getLogger("assd")

DEFAULT_METHODS = ["mistake", "assd", "ssd", "lfssd", "alfssd", "finetune", "retrain"]


@dataclass
class ErrorsConfig:
    """Everything that decides the experiment's numbers (stored with every record)."""

    rates: list[float] = field(default_factory=lambda: [0.005, 0.01, 0.025, 0.05, 0.075, 0.1])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    models: list[str] = field(default_factory=lambda: ["mlp"])
    kinds: list[str] = field(default_factory=lambda: ["uniform", "group"])
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    n_train: int = 20000
    data: str | None = None  # a table in the flights task's format; None: the shipped one
    group_column: str = "dest"
    # one-hot levels kept per categorical: 120 keeps all 104 destinations apart, so
    # errors in a destination are learnable (docs/errors.md); rarer levels go to "other"
    max_levels: int = 120
    with_dep_delay: bool = True
    training: dict = field(default_factory=dict)  # TrainConfig fields; model and seed per cell

    def train_config(self, model: str, seed: int) -> TrainConfig:
        return TrainConfig(**{**self.training, "model": model, "seed": seed})

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ErrorsData:
    """The encoded task: all training rows, the test rows, and a group key per row."""

    train: Rows
    test: Rows
    train_groups: np.ndarray
    test_groups: np.ndarray
    class_names: list[str]


def load_errors_data(config: ErrorsConfig, frame=None) -> ErrorsData:
    """Encode the flights task (or ``frame``, a table in the same columns); time split."""
    from ..data.flights import TARGET, TIME_COLUMN, load_flights
    from ..tabular.pipeline import training_rows
    from ..tabular.task import TableTask

    if frame is None:
        frame = load_flights(with_dep_delay=config.with_dep_delay)
    task = TableTask.fit(
        frame,
        target=TARGET,
        id_column="id",
        split=f"time:{TIME_COLUMN}",
        max_levels=config.max_levels,
    )
    rows = task.encode(frame)
    groups = frame[config.group_column].astype(str).to_numpy()
    train_mask = ~rows.test & (rows.y >= 0).numpy()
    test_mask = rows.test & (rows.y >= 0).numpy()
    train = training_rows(rows)
    return ErrorsData(
        train, rows.subset(test_mask), groups[train_mask], groups[test_mask], task.class_names
    )


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
    name, _, rest = spec.partition(":")
    options = {}
    for part in filter(None, rest.split(",")):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"method option {part!r} in {spec!r} must look like key=value.")
        try:
            options[key.strip()] = json.loads(value.strip())
        except json.JSONDecodeError:
            options[key.strip()] = value.strip()
    return name.strip().lower(), options


class _Context:
    """The mistake model of one (model, kind, rate, seed) group, kept between its cells."""

    def __init__(self, data: ErrorsData, config: ErrorsConfig, cell: dict):
        rng = np.random.default_rng(cell["seed"])
        n = min(config.n_train, len(data.train))
        picked = np.sort(rng.choice(len(data.train), size=n, replace=False))
        self.clean = data.train.subset(picked)
        self.groups = data.train_groups[picked]
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
        self.train_config = config.train_config(cell["model"], cell["seed"])
        tick = time.perf_counter()
        self.model = train_mlp(
            self.noisy.x, self.noisy.y, n_classes=len(data.class_names), config=self.train_config
        )
        self.train_seconds = time.perf_counter() - tick
        self.memo: dict = {}
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
    tick = time.perf_counter()
    model, summary = _apply(name, options, ctx)
    seconds = time.perf_counter() - tick
    if name == "mistake":
        seconds = ctx.train_seconds
    return {
        **_measure(model, ctx, data),
        **summary,
        "seconds": seconds,
        "n_train": len(ctx.clean),
        "n_forget": len(ctx.forget),
        "n_test": len(data.test),
        "groups": None if ctx.errors.groups is None else [str(g) for g in ctx.errors.groups],
    }


def _apply(name: str, options: dict, ctx: _Context):
    if name == "mistake":
        return ctx.model, {}
    options = method_options(name, options, ctx.train_config)
    algorithm = get_method(name, **options)
    cfg = ctx.train_config
    forget = _loader(ctx.forget, cfg)
    if isinstance(algorithm, SSD):
        result, _ = dampen_rows(
            algorithm, ctx.model, ctx.noisy, ctx.forget, ctx.retain, cfg, memo=ctx.memo
        )
        keys = ("alpha", "percentile", "n_dampened", "share_dampened")
        return result.model, {k: result.summary()[k] for k in keys}
    retain = cfg.loader(ctx.retain.x, ctx.retain.y)
    result = algorithm.unlearn(ctx.model, forget=forget, retain=retain)
    return result.model, {}


def _measure(model, ctx: _Context, data: ErrorsData) -> dict:
    def acc(rows: Rows | None) -> float | None:
        return None if rows is None else accuracy(model, _loader(rows, ctx.train_config, 8192))

    forget_true = ctx.clean.subset(ctx.errors.rows)
    return {
        "test": acc(data.test),
        "train_clean": acc(ctx.clean),
        "retain": acc(ctx.retain),
        "forget_noisy": acc(ctx.forget),
        "forget_true": acc(forget_true),
        "affected_test": acc(ctx.affected_test),
    }


def _loader(rows: Rows, config: TrainConfig, batch_size: int | None = None):
    from ..batches import TensorData

    return TensorData(rows.x, rows.y, batch_size=batch_size or config.batch_size)
