"""Summarise `assd experiment errors --errors-everywhere` runs: what the retain guard did.

For each run folder, kind and rate: the test-accuracy gain over the mistake
model (clean test labels, pp, mean over seeds) of ASSD without a guard, with
the guard watching every held-out row (``reason=privacy``, the old
behaviour), with the default guard (``reason=errors``), with a 0.5-point
guard, of assd-auto (its defaults with --reason errors) and of retraining;
the default's share of retraining's gain and its worst seed (assd-auto's
too), how often the guard changed the request, and the precision / recall of
the held-out rows it set aside against the held-out rows whose labels are
wrong. Methods a run lacks are left out.

    python examples/errors_everywhere_summary.py RUN_FOLDER [RUN_FOLDER ...]
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

METHODS = {"assd": "no guard", "assd:guard=0.01,reason=privacy": "guard, privacy",
           "assd:guard=0.01": "guard, errors (default)", "assd:guard=0.005": "guard 0.5 pp, errors",
           "assd-auto": "assd-auto (errors)", "retrain": "retrain"}  # fmt: skip
DEFAULT = "assd:guard=0.01"


def cells(folder: Path) -> dict:
    """``{(kind, rate): {method: [record per seed, in seed order]}}``."""
    out: dict = defaultdict(lambda: defaultdict(dict))
    for line in (folder / "results.jsonl").read_text().splitlines():
        record = json.loads(line)
        key = record["key"]
        out[(key["kind"], key["rate"])][key["method"]][key["seed"]] = record
    return out


def row(kind: str, rate: float, methods: dict) -> list[str]:
    seeds = sorted(methods["mistake"])
    base = np.array([methods["mistake"][s]["test"] for s in seeds])

    def gain(m):
        return 100 * (np.array([methods[m][s]["test"] for s in seeds]) - base)

    gains = {m: gain(m) for m in METHODS if m in methods}
    default, goal = gains[DEFAULT], gains["retrain"].mean()
    share = f"{default.mean() / goal:.2f}" if goal >= 0.5 else "–"
    records = [methods[DEFAULT][s] for s in seeds]
    changed = sum(bool(r.get("guard_changed")) for r in records)
    precision = [r["set_aside_precision"] for r in records
                 if r.get("set_aside_precision") is not None]  # fmt: skip
    recall = [r["set_aside_recall"] for r in records if r.get("set_aside_recall") is not None]
    aside = (f"{min(precision):.2f}–{max(precision):.2f} / {min(recall):.2f}–{max(recall):.2f}"
             if precision else "none set aside")  # fmt: skip
    auto = []
    if "assd-auto" in gains:  # its share of retraining's gain, and its worst seed
        mean = gains["assd-auto"].mean()
        auto = [f"{mean / goal:.2f}" if goal >= 0.5 else "–", f"{gains['assd-auto'].min():+.2f}"]
    return [kind, f"{100 * rate:g} %", *(f"{gains[m].mean():+.2f}" for m in gains), share,
            f"{default.min():+.2f}", *auto, f"{changed} of {len(seeds)}", aside]  # fmt: skip


def main() -> None:
    for name in sys.argv[1:]:
        found = cells(Path(name))
        ran = {m for methods in found.values() for m in methods}
        head = ["errors", "rate", *(v for m, v in METHODS.items() if m in ran),
                "default / retrain", "default worst seed",
                *(["assd-auto / retrain", "assd-auto worst seed"] if "assd-auto" in ran else []),
                "guard changed it", "set aside: precision / recall"]  # fmt: skip
        print(f"\n{Path(name).name}\n")
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for (kind, rate), methods in sorted(found.items()):
            print("| " + " | ".join(row(kind, rate, methods)) + " |")


if __name__ == "__main__":
    main()
