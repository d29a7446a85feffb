"""Tables and plots of the data-entry error experiment (``assd experiment errors``).

Per architecture, error kind, rate and method, over seeds: test and
clean-train accuracy (mean ± sd), the gain over the mistake model in
percentage points, the paper's "additional correct classifications"
``n_test * (acc - acc_mistake) / acc_mistake``, the share of the
mistake-to-retrain gap closed (only where retraining beats the mistake model
by at least ``MIN_GAP``, 0.5 points: below that the ratio divides by noise),
a paired two-sided t-test (same seed, same data) of the method's test
accuracy against the mistake model's, balanced accuracy and macro-F1 on test,
and the majority-class baseline. Methods that forget *discovered* rows
(``found:...``) get a second table: discovery precision and recall against
the injected rows, and the time of each path.

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
from .grouping import group_records
from .stats import additional_correct, gap_closed, mean_sd, t_test

__all__ = ["discovery_markdown", "errors_markdown", "errors_plots", "summarize"]

GROUP_KEYS = ("model", "kind", "rate")
MIN_GAP = 0.005  # retrain - mistake test accuracy below which "gap closed" is not shown


def summarize(records: list[dict], *, baseline: str = "mistake", target: str = "retrain"):
    """One row per (model, kind, rate, method): rates ascending within each model and kind,
    methods in the order they first appear."""
    rows = []
    cells = group_records(records, GROUP_KEYS)
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
        "balanced": mean_sd(_present(by_seed, seeds, "test_balanced"))[:2],
        "macro_f1": mean_sd(_present(by_seed, seeds, "test_macro_f1"))[:2],
        "majority": mean_sd(_present(by_seed, seeds, "majority_baseline"))[0],
        "seconds": mean_sd(_present(by_seed, seeds, "seconds"))[0],
        # SSD family: the request as if I_D were not cached (this model's pass over D added)
        "seconds_uncached": mean_sd([t for t in map(_uncached, by_seed.values()) if t == t])[0],
        "seconds_cached": mean_sd([by_seed[s]["seconds"] - by_seed[s]["importance_seconds"]
                                   for s in seeds if "importance_seconds" in by_seed[s]])[0],
        "found_precision": mean_sd(_present(by_seed, seeds, "found_precision"))[:2],
        "found_recall": mean_sd(_present(by_seed, seeds, "found_recall"))[:2],
        "n_found": mean_sd(_present(by_seed, seeds, "n_found"))[0],
        "n_forget": mean_sd(_present(by_seed, seeds, "n_forget"))[0],
        "discover_seconds": mean_sd(_present(by_seed, seeds, "discover_seconds"))[0],
    }


def _uncached(record: dict) -> float:
    seconds = record.get("seconds", math.nan)
    if "pass_seconds" not in record:
        return seconds
    return seconds - record["importance_seconds"] + record["pass_seconds"]


def _present(by_seed: dict, seeds: list, key: str) -> list[float]:
    """The values of ``key`` over seeds, where recorded and a number."""
    values = [by_seed[s].get(key) for s in seeds]
    return [v for v in values if isinstance(v, (int, float)) and v == v]


def errors_markdown(rows: list[dict], *, baseline: str = "mistake") -> str:
    """A markdown table per (model, kind), like the ASSD paper's error-unlearning table."""
    out = []
    for (model, kind), part in _split(rows, ("model", "kind")).items():
        has_groups = any(r["affected_test"][0] == r["affected_test"][0] for r in part)
        has_more = any(r["balanced"][0] == r["balanced"][0] for r in part)  # newer records
        header = ["rate", "method", "test acc", "clean-train acc", "Δ test (pp)",
                  "Δ clean (pp)", "add. correct", "gap closed", "p vs " + baseline]  # fmt: skip
        if has_more:
            header[3:3] = ["bal. acc", "macro-F1"]
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
            if has_more:
                line[3:3] = [fmt_mean_sd(*r["balanced"]), fmt_mean_sd(*r["macro_f1"])]
            if has_groups:
                line.append(fmt_mean_sd(*r["affected_test"]))
            table.append(line)
        text = f"### {model}, {kind} errors\n\n" + markdown_table(header, table)
        majority = [r["majority"] for r in part if r["majority"] == r["majority"]]
        if majority:
            text += (f"\n\nMajority-class baseline (always the training rows' most common "
                     f"class): test accuracy {np.mean(majority):.3f}.")  # fmt: skip
        out.append(text)
    found = discovery_markdown(rows, baseline=baseline)
    return "\n\n".join(out) + "\n" + ("\n" + found if found else "")


def discovery_markdown(rows: list[dict], *, baseline: str = "mistake") -> str:
    """Per (model, kind): discovery precision/recall and every path's accuracy and time.

    Empty when no ``found:`` method ran. Paths: the mistake model; discovered rows
    forgotten by each ``found:`` method; the injected (true) rows forgotten by
    the same methods.
    """
    found = [r for r in rows if r["method"].startswith("found:")]
    if not found:
        return ""
    names = {r["method"][len("found:"):] for r in found}
    out = []
    for (model, kind), part in _split(rows, ("model", "kind")).items():
        keep = [r for r in part if r["method"] in names | {baseline}
                or r["method"].startswith("found:")]
        table = []
        for r in keep:
            path = r["method"]
            is_found = path.startswith("found:")
            table.append([
                f"{100 * r['rate']:g} %",
                "mistake" if path == baseline else
                f"discovered → {path[6:]}" if is_found else f"true ids → {path}",
                fmt_mean_sd(*r["found_precision"]) if is_found else "",
                fmt_mean_sd(*r["found_recall"]) if is_found else "",
                _num(r["n_found"] if is_found else r["n_forget"], 0) if path != baseline else "",
                fmt_mean_sd(*r["test"]), _num(r["gain_pp"], 2, sign=True),
                fmt_mean_sd(*r["balanced"]), fmt_mean_sd(*r["affected_test"]),
                "" if path == baseline else _num(r["seconds_uncached"], 2),
                _num(r["seconds_cached"], 2), _num(r["discover_seconds"], 1) if is_found else "",
            ])  # fmt: skip
        header = ["rate", "path", "precision", "recall", "rows forgotten", "test acc",
                  "Δ test (pp)", "bal. acc", "affected-group test acc", "repair s",
                  "repair s, I_D cached", "discovery s"]  # fmt: skip
        trained = [r["seconds"] for r in keep if r["method"] == baseline]
        note = (f"\n\nTraining the mistake model took {np.mean(trained):.2f} s; discovery trains "
                "one such model per fold." if trained else "")  # fmt: skip
        out.append(f"### {model}, {kind} errors: find, then repair\n\n"
                   + markdown_table(header, table) + note)  # fmt: skip
    return "\n\n".join(out) + "\n"


def errors_plots(records: list[dict], folder: str | os.PathLike, *, baseline: str = "mistake"):
    """Box plots (PNG) of the test-accuracy gain over the mistake model, one per
    (model, kind, rate); returns the paths written."""
    paths = []
    for (model, kind, rate), methods in group_records(records, GROUP_KEYS).items():
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
