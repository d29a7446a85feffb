"""Tables and plots of the data-entry error experiment (``assd experiment errors``).

Per architecture, error kind, rate and method, over seeds: test and
clean-train accuracy (mean ± sd), the gain over the mistake model in
percentage points, the paper's "additional correct classifications"
``n_test * (acc - acc_mistake) / acc_mistake``, the share of the
mistake-to-retrain gap closed (only where retraining beats the mistake model
by at least ``MIN_GAP``, 0.5 points: below that the ratio divides by noise),
and a paired two-sided t-test (same seed, same data) of the method's test
accuracy against the mistake model's.

Example:
    >>> records = [
    ...     {"key": {"model": "mlp", "kind": "uniform", "rate": 0.05, "seed": s, "method": m},
    ...      "test": t, "train_clean": t, "n_test": 100, "affected_test": None}
    ...     for s, (a, b) in enumerate([(0.50, 0.52), (0.52, 0.55)])
    ...     for m, t in (("mistake", a), ("assd", b))]
    >>> row = summarize(records)[1]
    >>> row["method"], round(row["gain_pp"], 2), round(row["additional_correct"], 2)
    ('assd', 2.5, 4.88)
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..reports import box_plot, fmt_mean_sd, markdown_table
from .stats import additional_correct, gap_closed, mean_sd, t_test

__all__ = ["errors_markdown", "errors_plots", "summarize"]

GROUP_KEYS = ("model", "kind", "rate")
MIN_GAP = 0.005  # retrain - mistake test accuracy below which "gap closed" is not shown


def _by_cell(records: list[dict]) -> dict:
    """{(model, kind, rate): {method: {seed: record}}}."""
    cells: dict = defaultdict(lambda: defaultdict(dict))
    for r in records:
        k = r["key"]
        cells[tuple(k[g] for g in GROUP_KEYS)][k["method"]][k["seed"]] = r
    return cells


def summarize(records: list[dict], *, baseline: str = "mistake", target: str = "retrain"):
    """One row per (model, kind, rate, method): rates ascending within each model and kind,
    methods in the order they first appear."""
    rows = []
    cells = _by_cell(records)
    first = {key: i for i, key in enumerate(dict.fromkeys(g[:2] for g in cells))}
    for group in sorted(cells, key=lambda g: (first[g[:2]], g[2])):
        methods = cells[group]
        base = methods.get(baseline, {})
        goal = methods.get(target, {})
        for method, by_seed in methods.items():
            keys = dict(zip(GROUP_KEYS, group, strict=True))
            rows.append(_row(keys, method, by_seed, base, goal))
    return rows


def _row(group: dict, method: str, by_seed: dict, base: dict, goal: dict) -> dict:
    seeds = sorted(by_seed)
    paired = [s for s in seeds if s in base]
    test = [by_seed[s]["test"] for s in seeds]
    clean = [by_seed[s]["train_clean"] for s in seeds]
    affected = [by_seed[s].get("affected_test") for s in seeds]
    gains = [by_seed[s]["test"] - base[s]["test"] for s in paired]
    gains_clean = [by_seed[s]["train_clean"] - base[s]["train_clean"] for s in paired]
    extra = [
        additional_correct(by_seed[s]["test"], base[s]["test"], by_seed[s]["n_test"])
        for s in paired
    ]
    base_test = mean_sd([base[s]["test"] for s in paired])[0]
    goal_test = mean_sd([goal[s]["test"] for s in paired if s in goal])[0]
    _, p = t_test([by_seed[s]["test"] for s in paired], [base[s]["test"] for s in paired],
                  paired=True)  # fmt: skip
    return {
        **group,
        "method": method,
        "n_seeds": len(seeds),
        "test": mean_sd(test)[:2],
        "train_clean": mean_sd(clean)[:2],
        "affected_test": mean_sd([a for a in affected if a is not None])[:2],
        "gain_pp": 100 * mean_sd(gains)[0],
        "gain_clean_pp": 100 * mean_sd(gains_clean)[0],
        "additional_correct": mean_sd(extra)[0],
        "gap_closed": gap_closed(mean_sd(test)[0], base_test, goal_test)
        if goal_test - base_test >= MIN_GAP  # False for NaN too
        else math.nan,
        "p_value": p,
    }


def errors_markdown(rows: list[dict], *, baseline: str = "mistake") -> str:
    """A markdown table per (model, kind), like the ASSD paper's error-unlearning table."""
    out = []
    for (model, kind), part in _split(rows, ("model", "kind")).items():
        has_groups = any(r["affected_test"][0] == r["affected_test"][0] for r in part)
        header = ["rate", "method", "test acc", "clean-train acc", "Δ test (pp)",
                  "Δ clean (pp)", "add. correct", "gap closed", "p vs " + baseline]  # fmt: skip
        if has_groups:
            header.append("affected-group test acc")
        table = []
        for r in part:
            line = [
                f"{100 * r['rate']:g} %", r["method"], fmt_mean_sd(*r["test"]),
                fmt_mean_sd(*r["train_clean"]), _num(r["gain_pp"], 2, sign=True),
                _num(r["gain_clean_pp"], 2, sign=True), _num(r["additional_correct"], 0, sign=True),
                _num(r["gap_closed"], 2), _num(r["p_value"], 3),
            ]  # fmt: skip
            if has_groups:
                line.append(fmt_mean_sd(*r["affected_test"]))
            table.append(line)
        out.append(f"### {model}, {kind} errors\n\n" + markdown_table(header, table))
    return "\n\n".join(out) + "\n"


def errors_plots(records: list[dict], folder: str | os.PathLike, *, baseline: str = "mistake"):
    """Box plots (PNG) of the test-accuracy gain over the mistake model, one per
    (model, kind, rate); returns the paths written."""
    paths = []
    for (model, kind, rate), methods in _by_cell(records).items():
        base = methods.get(baseline, {})
        groups = {
            method: [100 * (r["test"] - base[s]["test"]) for s, r in by_seed.items() if s in base]
            for method, by_seed in methods.items()
            if method != baseline
        }
        if not any(groups.values()):
            continue
        path = Path(folder) / f"errors-{model}-{kind}-{100 * rate:g}pct.png"
        title = f"{model}, {kind} errors at {100 * rate:g} %: test accuracy vs mistake model"
        box_plot(groups, path, title=title, ylabel="gain (percentage points)", reference=0.0,
                 reference_label="no gain (the mistake model)")  # fmt: skip
        paths.append(path)
    return paths


def _split(rows: list[dict], keys: tuple) -> dict:
    out: dict = defaultdict(list)
    for r in rows:
        out[tuple(r[k] for k in keys)].append(r)
    return out


def _num(value: float, digits: int, *, sign: bool = False) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"
