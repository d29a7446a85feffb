"""Markdown of the forgetting matrix's summary (:func:`assd.experiments.matrix.summarize`)."""

from __future__ import annotations

from ..reports import markdown_table

__all__ = ["LEGEND", "grid", "render"]

LEGEND = """\
How to read it: a run is one method on one cell and seed. It **meets** the cell's
criterion when its Df accuracy is within 5 points of retraining's on the same seed
(15 for sub-class and the table's group) and its Dr accuracy (retain test split) is at
most 1.5 points below the original's (2 for sub-class and the table's group). Df gap:
|Df − retraining's Df| in points; Dr drop: original's Dr − the method's Dr in points
(negative: it rose). Member share: the share of forget (training) rows a per-example
(LiRA-style) test still calls members at 5 % false positives, against retrain-like
reference models never trained on them, every model's confidences ranked among its own
held-out rows (retained classes' test rows and the forget rows' held-out look-alikes):
the test of assd-auto's verdict; a model that never saw the rows reads about 0.05
(n/a: this installation has no `assd.verify.per_example`). MIA: the SSD
protocol's population attack (share of Df called "member"; median over seeds), a weaker
test shown beside it; compare it with retraining's row. Time: the method's
wall time, training-set importance included; × retrain: its ratio to retraining's time
on the same seed (median over seeds). Retraining's own Df gap is 0 by definition; its Dr
drop shows how much Dr moves between two trainings. assd-auto's verdict says "met" when
its forget-row accuracy lies within a margin of its reference models' estimate (5 points,
15 for a sub-class or a group: the criteria above), and its held-out look-alikes' within
theirs; "undetermined" when beyond the margin but within chance; "forgotten" only when
its per-example test agrees too (no more rows flagged as members than chance allows)."""


def render(summary: dict, *, title: str = "Forgetting matrix") -> str:
    parts = [f"## {title}", "", "### Runs that meet the retraining criterion", "",
             _counts(summary["counts"], summary.get("cost", {}))]  # fmt: skip
    if summary["verdicts"]:
        parts += ["", "### assd-auto's verdict against the retraining check", "",
                  _verdicts(summary["verdicts"])]  # fmt: skip
    parts += ["", "### Met per cell (runs met, mean Df gap in points)", "",
              grid(summary["cells"])]  # fmt: skip
    misses = summary.get("misses") or []
    if misses:
        parts += ["", "### assd-auto's missed runs", "", _misses(misses)]
    parts += ["", "### Per cell (mean over seeds)", "", _cells(summary["cells"]), "", LEGEND, ""]
    return "\n".join(parts)


def _counts(counts: dict, cost: dict) -> str:
    groups = list(next(iter(counts.values()), {}))
    rows = [[m, *[_ratio(c[g]) for g in groups], _optional(cost.get(m), "{:.2f}")]
            for m, c in counts.items()]  # fmt: skip
    return markdown_table(["method", *groups, "time × retrain (median run)"], rows)


def grid(cells: list[dict]) -> str:
    """One row per cell, one column per method: runs met and the mean Df gap."""
    methods = list(dict.fromkeys(c["method"] for c in cells))
    ids = list(dict.fromkeys(c["cell"] for c in cells))
    at = {(c["cell"], c["method"]): c for c in cells}
    rows = []
    for cell in ids:
        retrain = at.get((cell, "retrain"))
        row = [cell, "" if retrain is None else f"{retrain['df_acc']:.1f}"]
        for m in methods:
            c = at.get((cell, m))
            row.append("" if c is None else f"{_ratio(c)} · {c['df_gap']:.1f}")
        rows.append(row)
    return markdown_table(["cell", "retrain Df (%)", *methods], rows)


def _misses(misses: list[dict]) -> str:
    header = ["cell", "seed", "Df (%)", "retrain Df (%)", "Df gap (pp)", "Dr drop (pp)",
              "its verdict"]  # fmt: skip
    said = {True: "met", False: "missed", None: "none"}
    rows = [[m["cell"], m["seed"], f"{100 * m['df_acc']:.1f}", f"{100 * m['retrain_df_acc']:.1f}",
             f"{m['df_gap']:.1f} (≤ {m['df_limit']:g})",
             f"{m['dr_drop']:+.1f} (≤ {m['dr_limit']:g})", said[m["claimed_met"]]]
            for m in misses]  # fmt: skip
    return markdown_table(header, rows)


def _ratio(count: dict) -> str:
    return f"{count['met']} / {count['runs']}"


def _verdicts(verdicts: dict) -> str:
    header = ["cells", "runs", "with a verdict", "verdict agrees", "says met, check missed",
              "says missed, check met", "says met, Df gap > 2× criterion",
              "says forgotten (per-example test too)"]  # fmt: skip
    rows = [[g, v["runs"], v["with_verdict"], _share(v["agree"], v["with_verdict"]),
             v["said_met_missed"], v["said_missed_met"], v["met_far"],
             _share(v.get("forgotten", 0), v.get("with_forgotten", 0))]
            for g, v in verdicts.items()]  # fmt: skip
    return markdown_table(header, rows)


def _share(part: int, whole: int) -> str:
    return f"{part} / {whole}" + (f" ({100 * part / whole:.0f} %)" if whole else "")


def _cells(cells: list[dict]) -> str:
    header = ["cell", "method", "met", "Df (%)", "retrain Df (%)", "Df gap (pp), mean / worst",
              "Dr drop (pp)", "member share", "MIA (%)", "time (s)", "× retrain"]  # fmt: skip
    rows = [[c["cell"], c["method"], _ratio(c), f"{c['df_acc']:.1f}",
             f"{c['retrain_df_acc']:.1f}", f"{c['df_gap']:.1f} / {c['df_gap_max']:.1f}",
             f"{c['dr_drop']:+.1f}", _optional(c["member_share"], "{:.2f}"),
             _optional(c.get("mia"), "{:.1f}"),
             f"{c['seconds']:.2f}", _optional(c["cost_ratio"], "{:.2f}")]
            for c in cells]  # fmt: skip
    return markdown_table(header, rows)


def _optional(value, form: str) -> str:
    return "n/a" if value is None else form.format(value)
