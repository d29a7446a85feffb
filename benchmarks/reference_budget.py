"""How much training the reference models need: their target beside retraining's, and cost.

For each case (scenario, forget class, seed) this trains the digits CNN
original and its retraining (30 epochs, the benchmark recipe), then reference
models at several budgets (a share of the 30 epochs, each on half of the rows:
one pair on the retained rows for class scenarios, two pairs on all rows for
random rows; every model's confidences calibrated on the retained classes' test
rows, as assd-auto does when it has held-out rows). Printed per budget: the
references' expected forget-row accuracy and band beside retraining's forget-
row accuracy, whether retraining falls inside the band, the per-example member
share of retraining (should stay within chance) and of the original (should
not), and the references' training time as a ratio of retraining's, measured in
this run.

    python benchmarks/reference_budget.py [--cases sub-class:3:0 full-class:3:0 random:0.05:0]
        [--budgets 0.1 0.2 0.33]
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import THREADS  # noqa: F401  (sets the thread count and OMP policy)

import assd
from assd.data.scenarios import load_dataset, make_scenario
from assd.experiments.forget import ForgetConfig
from assd.experiments.forget_references import benchmark_recipe
from assd.reports import markdown_table
from assd.verify.evidence import Evidence
from assd.verify.references import build_references

DESIGN = ["sub-class:3:0", "sub-class:3:1", "full-class:3:0", "random:0.05:0", "random:0.01:1"]


def case_rows(case: str, budgets: list[float]) -> list[list]:
    scenario_name, forget, seed = case.split(":")
    seed = int(seed)
    config = ForgetConfig(scenario=scenario_name, forget=forget)
    scenario = make_scenario(scenario_name, load_dataset("digits"), forget, seed=seed)
    full = benchmark_recipe(config, scenario, "cpu", budget=1.0)
    original = full.train(scenario.x_train, scenario.y_train, seed)
    tick = time.perf_counter()
    retrain = full.train(*scenario.retain_train(), seed)
    retrain_seconds = time.perf_counter() - tick
    forget = assd.TensorData(*scenario.forget_train(), batch_size=512)
    group = scenario_name != "random"
    rows = []
    for budget in budgets:
        recipe = benchmark_recipe(config, scenario, "cpu", budget=budget)
        x, y = scenario.retain_train() if group else (scenario.x_train, scenario.y_train)
        refs = build_references(x, y, recipe, pairs=1 if group else 2, seed=seed, cache=None)
        held_out = assd.TensorData(*scenario.retain_test_set(), batch_size=512)
        evidence = Evidence(refs.profile(forget, held_out=held_out), n_references=len(refs.models),
                            kind="group" if group else "rows", held_out=held_out)  # fmt: skip
        r, o = evidence.judge(retrain, forget), evidence.judge(original, forget)
        low, high = evidence.band
        inside = low - 1e-9 <= r["forget_accuracy"] <= high + 1e-9
        rows.append([case, budget, f"{100 * evidence.expected:.1f}",
                     f"{100 * low:.1f}-{100 * high:.1f}", f"{100 * r['forget_accuracy']:.1f}",
                     "yes" if inside else "no", f"{100 * r['member_share']:.1f}",
                     f"{100 * evidence.share_limit:.1f}", f"{100 * o['member_share']:.1f}",
                     f"{refs.seconds / retrain_seconds:.2f}"])  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=DESIGN)
    parser.add_argument("--budgets", nargs="+", type=float, default=[0.1, 0.2, 0.33])
    args = parser.parse_args()
    rows = [row for case in args.cases for row in case_rows(case, args.budgets)]
    columns = ["case", "budget", "refs Df (%)", "band (%)", "retrain Df (%)", "retrain in band",
               "retrain members (%)", "chance (%)", "original members (%)",
               "refs cost / retrain"]  # fmt: skip
    print(markdown_table(columns, rows))
    for budget in args.budgets:
        mine = [r for r in rows if r[1] == budget]
        print(f"budget {budget}: retrain in band {sum(r[5] == 'yes' for r in mine)}/{len(mine)}, "
              f"median cost {statistics.median(float(r[9]) for r in mine):.2f}x retraining")


if __name__ == "__main__":
    main()
