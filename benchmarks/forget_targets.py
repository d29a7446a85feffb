"""Per-seed check of assd-auto's digits targets against retraining (from experiment results).

Reads ``OUT/results.jsonl`` of ``assd experiment forget`` runs and prints, for
each seed, Df and Dr accuracy of a method beside retraining and the original,
and whether the target holds: full-class and random Df within 5 points of
retrain's with Dr within 1.5 points of the original; sub-class Df within 15
points with Dr within 2 points. Beside it: the method's own verdict (when it
gives one), whether that verdict agrees with the retraining check, the
per-example member share and the relearning check. Folders may hold several
forget classes (one original per seed).

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
    by = {(r["key"]["method"], str(r["key"]["forget"]), r["key"]["seed"]): r for r in records}
    scenario = records[0]["key"]["scenario"]
    df_limit, dr_limit = TARGETS[scenario]
    rows = []
    for forget, seed in sorted({(f, s) for m, f, s in by if m == method}):
        if ("retrain", forget, seed) not in by:  # a run still under way
            continue
        got, retrain, original = (by[(m, forget, seed)] for m in (method, "retrain", "original"))
        df_gap = 100 * abs(got["df_acc"] - retrain["df_acc"])
        dr_drop = 100 * (original["retain_test_acc"] - got["retain_test_acc"])
        met = df_gap <= df_limit and dr_drop <= dr_limit
        said = got.get("target_met")
        verdict = "-" if said is None else ("met" if said else "not met")
        agrees = "-" if said is None else ("yes" if said == met else "NO")
        share = got.get("target_member_share")
        band = got.get("target_band")  # the references' accuracy band alone, without the
        in_band = None if band is None else got["forget_acc"] <= band[1] + 1e-9  # per-row test
        band_agrees = "-" if in_band is None else ("yes" if in_band == met else "NO")
        rows.append([scenario, forget, seed, f"{100 * got['df_acc']:.1f}",
                     f"{100 * retrain['df_acc']:.1f}", f"{df_gap:.1f} (≤ {df_limit:g})",
                     f"{dr_drop:+.1f} (≤ {dr_limit:g})", "met" if met else "MISSED", verdict,
                     agrees, "-" if share is None else f"{100 * share:.1f}",
                     _relearn(got), band_agrees, bool(said and df_gap > 2 * df_limit)])  # fmt: skip
    return rows


def _relearn(record: dict) -> str:
    came_back = record.get("relearn_came_back")
    return "-" if came_back is None else ("came back" if came_back else "held")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--method", default="assd-auto")
    args = parser.parse_args()
    rows = [row for folder in args.folders for row in rows_of(folder, args.method)]
    columns = ["scenario", "forget", "seed", "Df (%)", "retrain Df (%)", "Df gap to retrain (pp)",
               "Dr drop vs original (pp)", "target", "verdict", "agrees", "members (%)",
               "relearning", "band alone agrees"]  # fmt: skip
    print(f"{args.method}\n")
    print(markdown_table(columns, [r[:-1] for r in rows]))
    for scenario in dict.fromkeys(r[0] for r in rows):
        mine = [r for r in rows if r[0] == scenario]
        judged = [r for r in mine if r[9] != "-"]
        banded = [r for r in mine if r[12] != "-"]
        print(f"\n{scenario}: criteria met in {sum(r[7] == 'met' for r in mine)}/{len(mine)}; "
              f"verdict agrees in {sum(r[9] == 'yes' for r in judged)}/{len(judged)}; "
              f"the accuracy band alone agrees in {sum(r[12] == 'yes' for r in banded)}/"
              f"{len(banded)}; 'met' with a Df gap over twice the criterion: "
              f"{sum(r[-1] for r in mine)}")


if __name__ == "__main__":
    main()
