"""Why ASSD's selection is weak on the tiny transformers of ``examples/hf_tiny.py``.

For one seed of each model (trained as in ``benchmarks/hf_forget.py``): ASSD's
alpha, how many selected weights changed value (alpha < 1 leaves factor 1),
the spread of I_Df / I_D per parameter tensor (median and 99th percentile,
selections), and the trade-off along the strength axis (the quantile of the
ratios used as alpha) for the global percentile against ratios normalised by
their tensor's median.

    python benchmarks/hf_selection.py [--models bert gpt2] [--seed 0]
"""

from __future__ import annotations

import argparse
import copy
import math

import torch
from hf_forget import setup

import assd
from assd.reports import markdown_table
from assd.verify.outcome import score_sets

QUANTILES = [0.99, 0.97, 0.95, 0.9, 0.8, 0.7, 0.5]


def ratios(case: dict) -> dict:
    task, model = case["task"], case["model"]
    f = assd.compute_importance(model, case["forget"], estimator="sample", task=task).tensors
    r = assd.compute_importance(model, case["retain"], estimator="sample", task=task).tensors
    return {n: (f[n] / r[n]) for n in f}


def finite(t: torch.Tensor) -> torch.Tensor:
    return t[torch.isfinite(t)].double().flatten()


def per_tensor(case: dict, ratio: dict) -> tuple[float, list]:
    n, k = len(case["train"]), len(case["forget"].dataset)
    alpha = float(torch.quantile(torch.cat([finite(r) for r in ratio.values()]),
                                 (100 - math.log(1 + 100 * k / n)) / 100))  # fmt: skip
    rows = []
    for name, r in ratio.items():
        selected = r > alpha
        changed = selected & (1 / r < 1)  # min(I_D / I_Df, 1) < 1
        fin = finite(r)
        rows.append([name, r.numel(), int(selected.sum()), int(changed.sum()),
                     f"{float(fin.median()):.3g}", f"{float(torch.quantile(fin, 0.99)):.3g}"])
    return alpha, rows


def dampened(case: dict, ratio: dict, q: float, per_layer: bool) -> list:
    if per_layer:
        ratio = {n: r / finite(r[r > 0]).median().float() for n, r in ratio.items()}
    alpha = float(torch.quantile(torch.cat([finite(r) for r in ratio.values()]), q))
    model = copy.deepcopy(case["model"])
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = ratio[name]
            p[r > alpha] *= torch.clamp(1 / r, max=1.0)[r > alpha]
    s = score_sets(model, {"f": case["forget"], "r": case["retain"]}, task=case["task"])
    if case["task"] == "causal-lm":
        return [f"{s['f'].extraction:.3g}", f"{s['f'].loss:.3g}", f"{s['r'].perplexity:.4g}"]
    return [f"{s['f'].accuracy:.3g}", f"{s['r'].accuracy:.4g}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["bert", "gpt2"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in args.models:
        case = setup(name, args.seed)
        ratio = ratios(case)
        alpha, rows = per_tensor(case, ratio)
        print(f"## {name}, seed {args.seed}: ASSD alpha {alpha:.4g}, selected "
              f"{sum(r[2] for r in rows)}, changed {sum(r[3] for r in rows)}\n")
        print(markdown_table(["parameter", "elements", "selected", "changed", "median ratio",
                              "99th pct ratio"], rows))  # fmt: skip
        cols = (["extracted", "secret loss", "retain ppl"] if case["task"] == "causal-lm"
                else ["forget acc", "retain acc"])  # fmt: skip
        table = [[q, *dampened(case, ratio, q, False), *dampened(case, ratio, q, True)]
                 for q in QUANTILES]  # fmt: skip
        print("\nStrength axis (alpha = this quantile of the ratios): global | per tensor\n")
        print(markdown_table(["quantile", *cols, *(c + " (per tensor)" for c in cols)], table))
        print()


if __name__ == "__main__":
    main()
