"""Per-seed check of assd-auto's digits targets against retraining (from experiment results).

Reads ``OUT/results.jsonl`` of ``assd experiment forget`` runs and prints, for
each seed, Df and Dr accuracy of a method beside retraining and the original,
and whether the target holds: full-class and random Df within 5 points of
retrain's with Dr within 1.5 points of the original; sub-class Df within 15
points with Dr within 2 points.

    python benchmarks/forget_targets.py runs/digits-full-class runs/digits-sub-class ... \
        [--method assd-auto]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from assd.reports import markdown_table

TARGETS = {"full-class": (5.0, 1.5), "sub-class": (15.0, 2.0), "random": (5.0, 1.5)}


def rows_of(folder: Path, method: str) -> list[list]:
    records = [json.loads(line) for line in (folder / "results.jsonl").open()]
    by = {(r["key"]["method"], r["key"]["seed"]): r for r in records}
    scenario = records[0]["key"]["scenario"]
    df_limit, dr_limit = TARGETS[scenario]
    rows = []
    for seed in sorted({s for m, s in by if m == method}):
        got, retrain, original = by[(method, seed)], by[("retrain", seed)], by[("original", seed)]
        df_gap = 100 * abs(got["df_acc"] - retrain["df_acc"])
        dr_drop = 100 * (original["retain_test_acc"] - got["retain_test_acc"])
        met = df_gap <= df_limit and dr_drop <= dr_limit
        rows.append([scenario, seed, f"{100 * got['df_acc']:.1f}", f"{100 * retrain['df_acc']:.1f}",
                     f"{df_gap:.1f} (≤ {df_limit:g})", f"{dr_drop:+.1f} (≤ {dr_limit:g})",
                     "met" if met else "MISSED"])  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--method", default="assd-auto")
    args = parser.parse_args()
    rows = [row for folder in args.folders for row in rows_of(folder, args.method)]
    columns = ["scenario", "seed", "Df (%)", "retrain Df (%)", "Df gap to retrain (pp)",
               "Dr drop vs original (pp)", "target"]  # fmt: skip
    print(f"{args.method}\n")
    print(markdown_table(columns, rows))


if __name__ == "__main__":
    main()
