"""What an evidence-judged assd-auto request costs against retraining, references included.

Per case (digits CNN, the benchmark recipe: 30 epochs of Adam): train the
original, then time, alternating round by round in one process,

- ``retrain``: the recipe on the retained rows;
- ``auto``: ``assd-auto`` with ``data=`` (both importance passes inside) and a
  recipe, its reference models trained inside the request (an empty cache);
- ``auto cached``: the same request with the references already in the cache
  (a row-level request: references trained for an *earlier* request on other
  rows of the same data; a group request: the same request again).

Prints each case's ratios to retraining, where the built request's time went
(its references' training, as a ratio to retraining; its search tries; its
repair epochs) and the median over cases.

    python benchmarks/evidence_cost.py [--cases sub-class:5:10 full-class:1:12 random:0.05:13]
        [--rounds 1] [--budget 0.25] [--relearn-steps 0]
"""

from __future__ import annotations

import argparse
import statistics

from common import alternate, ratio

import assd
from assd.data.scenarios import load_dataset, make_scenario, random_samples
from assd.experiments.forget import ForgetConfig
from assd.experiments.forget_references import REFERENCE_BUDGET, benchmark_recipe
from assd.reports import markdown_table
from assd.verify.references import ReferenceCache

CASES = ["sub-class:5:10", "sub-class:9:11", "full-class:1:12", "random:0.05:13", "random:0.01:14"]


def measure(case: str, rounds: int, budget: float, relearn_steps: int = 0) -> list:
    name, forget, seed = case.split(":")
    seed = int(seed)
    data = load_dataset("digits")
    scenario = make_scenario(name, data, forget, seed=seed)
    config = ForgetConfig(scenario=name, forget=forget)
    full = benchmark_recipe(config, scenario, "cpu", budget=1.0)
    model = full.train(scenario.x_train, scenario.y_train, seed)
    recipe = benchmark_recipe(config, scenario, "cpu", budget=budget)
    loader = lambda x, y: assd.TensorData(x, y, batch_size=64)  # noqa: E731
    sets = {"retain": loader(*scenario.retain_train()), "test": loader(*scenario.retain_test_set())}
    options = {"target": "rows" if name == "random" else "group", "recipe": recipe,
               "reference_pairs": 2 if name == "random" else 1, "reference_seed": seed,
               "relearn_steps": relearn_steps}  # fmt: skip
    full_rows = loader(scenario.x_train, scenario.y_train)
    forget_rows = loader(*scenario.forget_train())
    warm = ReferenceCache()
    if name == "random":  # an earlier request on other rows of the same data fills the cache
        other = random_samples(data, forget, seed=seed + 100)
        _request(model, options, warm, loader(*other.forget_train()), full_rows,
                 {**sets, "retain": loader(*other.retain_train())})  # fmt: skip
    else:
        _request(model, options, warm, forget_rows, full_rows, sets)
    last = {}

    references = []  # seconds the built request spent training its references, per round

    def auto(cache):
        last["result"] = _request(model, options, cache, forget_rows, full_rows, sets)
        if cache is not warm:
            references.append(sum(refs.seconds for refs in cache._sets.values()))

    times = alternate({
        "retrain": lambda: full.train(*scenario.retain_train(), seed),
        "auto": lambda: auto(ReferenceCache()),
        "auto cached": lambda: auto(warm),
    }, rounds=rounds, warmup=0)  # fmt: skip
    outcome = last["result"].outcome
    target = outcome.target
    times["references"] = references
    repair = [t["repair_epochs"] for t in outcome.tries if "repair_epochs" in t]
    return [case, f"{statistics.median(times['retrain']):.2f}",
            f"{statistics.median(times['auto']):.2f}", ratio(times, "auto", "retrain").show(),
            ratio(times, "references", "retrain").show(), len(outcome.tries),
            repair[0] if repair else 0, f"{statistics.median(times['auto cached']):.2f}",
            ratio(times, "auto cached", "retrain").show(),
            "met" if target["met"] else "not met",
            ratio(times, "auto", "retrain"), ratio(times, "auto cached", "retrain")]  # fmt: skip


def _request(model, options, cache, forget, data, sets):
    from assd.methods.auto import AutoASSD

    method = AutoASSD(**options, reference_cache=cache)
    return method.unlearn(model, forget=forget, data=data, evaluate=sets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=CASES)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--budget", type=float, default=REFERENCE_BUDGET)
    parser.add_argument("--relearn-steps", type=int, default=0)
    args = parser.parse_args()
    rows = [measure(case, args.rounds, args.budget, args.relearn_steps) for case in args.cases]
    columns = ["case", "retrain (s)", "assd-auto (s)", "ratio", "of which references",
               "tries", "repair epochs", "assd-auto, references cached (s)", "ratio, cached",
               "verdict"]  # fmt: skip
    print(f"digits CNN, reference budget {args.budget}, relearning check "
          f"{args.relearn_steps} steps, {args.rounds} round(s)\n")
    print(markdown_table(columns, [r[:10] for r in rows]))
    print(f"\nmedian over cases: {statistics.median(r[10] for r in rows):.2f}x retraining, "
          f"{statistics.median(r[11] for r in rows):.2f}x with references cached")


if __name__ == "__main__":
    main()
