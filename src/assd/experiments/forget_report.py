"""Tables and plots of the forgetting benchmark (``assd experiment forget``).

One markdown table per (scenario, data set, model, forget target): a row per
method with the mean ± sd over seeds of every metric, and box plots of Df
accuracy, Dr accuracy and MIA with retrain's mean as the dashed reference.

Example:
    >>> recs = [{"key": {"scenario": "random", "dataset": "digits", "model": "cnn",
    ...                  "forget": "5%", "seed": s, "method": "assd"},
    ...          "retain_test_acc": a, "df_acc": a, "mia": 0.5, "loss_auc": 0.5, "zrf": 0.9,
    ...          "seconds": 1.0, "seconds_total": 2.0} for s, a in enumerate([0.9, 1.0])]
    >>> row = summarize(recs)[0]
    >>> row["method"], row["retain_test_acc"][:2]
    ('assd', (0.95, 0.07071067811865474))
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from ..reports import box_plot, fmt_mean_sd, markdown_table
from .grouping import group_records
from .stats import mean_sd

__all__ = ["COLUMNS", "forget_markdown", "forget_plots", "summarize"]

GROUP = ("scenario", "dataset", "model", "forget")
# (record field, column title, scale, digits)
COLUMNS = [
    ("retain_test_acc", "Dr acc (%)", 100, 1),
    ("df_acc", "Df acc (%)", 100, 1),
    ("mia", "MIA (%)", 100, 1),
    ("loss_auc", "loss-MIA AUC", 1, 3),
    ("zrf", "ZRF", 1, 3),
    ("seconds_total", "time (s)", 1, 2),
    ("seconds", "time, I_D cached (s)", 1, 2),
]
PLOTS = [("df_acc", "Df accuracy (%)"), ("retain_test_acc", "Dr accuracy (%)"), ("mia", "MIA (%)")]


def _groups(records: list[dict]) -> dict:
    """{group tuple: {method: [record per seed]}}, methods in order of appearance."""
    grouped = group_records(records, GROUP)
    return {g: {m: list(s.values()) for m, s in ms.items()} for g, ms in grouped.items()}


def summarize(records: list[dict]) -> list[dict]:
    """One row per (group, method): ``{field: (mean, sd, n)}`` for every column."""
    rows = []
    for group, methods in _groups(records).items():
        for method, recs in methods.items():
            row = {**dict(zip(GROUP, group, strict=True)), "method": method, "n_seeds": len(recs)}
            row["forgotten"] = recs[0].get("forgotten", "")
            for name, *_ in COLUMNS:
                values = [r.get(name, r.get("seconds")) for r in recs]
                row[name] = mean_sd([v for v in values if v is not None])
            rows.append(row)
    return rows


def forget_markdown(rows: list[dict]) -> str:
    """Markdown: a heading and a table per group."""
    parts = []
    for group, part in _split(rows).items():
        scenario, dataset, model, forget = group
        title = f"### {scenario}, {dataset}, {model}: forget {part[0]['forgotten'] or forget}"
        seeds = max(r["n_seeds"] for r in part)
        header = ["method", *[title_ for _, title_, *_ in COLUMNS]]
        table = [
            [r["method"], *[fmt_mean_sd(r[f][0], r[f][1], d, scale=s) for f, _, s, d in COLUMNS]]
            for r in part
        ]
        parts.append(f"{title} (mean ± sd over {seeds} seeds)\n\n{markdown_table(header, table)}")
    return "\n\n".join(parts) + "\n"


def forget_plots(records: list[dict], folder: str | os.PathLike) -> list[Path]:
    """Box plots (PNG) per group and metric; returns the paths written."""
    paths = []
    for group, methods in _groups(records).items():
        retrain = methods.get("retrain", [])
        for field, label in PLOTS:
            values = {m: [100 * r[field] for r in recs if r.get(field) is not None]
                      for m, recs in methods.items()}  # fmt: skip
            reference = mean_sd([100 * r[field] for r in retrain])[0] if retrain else None
            name = "forget-" + "-".join(str(g).replace("%", "pct") for g in group)
            path = Path(folder) / f"{name}-{field}.png"
            box_plot(values, path, title=f"{' / '.join(map(str, group))}: {label}",
                     ylabel=label, reference=reference,
                     reference_label="retrain's mean")  # fmt: skip
            paths.append(path)
    return paths


def _split(rows: list[dict]) -> dict:
    out: dict = defaultdict(list)
    for r in rows:
        out[tuple(r[g] for g in GROUP)].append(r)
    return out
