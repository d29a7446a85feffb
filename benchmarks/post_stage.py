"""The ASSD post-stage (ratios, exact percentile, selection, dampening) against two yardsticks.

1. A straightforward implementation: loop over the parameters in Python,
   concatenate all ratios into NumPy, drop the non-finite ones, call
   ``numpy.percentile``, then dampen the way the SSD reference code does.
2. One plain forward+backward pass over D (the post-stage should be noise next to it).

Both versions must give the same alpha and bit-identical weights; the script checks.

    python benchmarks/post_stage.py [--models cnn mlp resnet18 vit-b] [--rounds 3] [--quick]
"""

from __future__ import annotations

import math

import numpy as np
import torch
from common import alternate, arguments, cases, header, judged, median, n_params, plain_pass, ratio

import assd
from assd.parameters import trainable_parameters
from assd.reports import markdown_table

SPEEDUP_TARGET = 10.0
SHARE_TARGET = 0.05


def ours(params, forget, data, n_forget, n_data) -> float:
    alpha, _ = assd.adaptive_alpha(forget, data, n_forget=n_forget, n_data=n_data)
    assd.dampen_parameters_(params, forget, data, alpha=alpha, dampening=1.0)
    return alpha


def straightforward(params, forget, data, n_forget, n_data) -> float:
    """The yardstick: Python loop, one NumPy vector of every ratio, numpy.percentile."""
    ratios = [(forget[name] / data[name]).flatten().numpy() for name in forget]
    pooled = np.concatenate(ratios)
    pooled = pooled[np.isfinite(pooled)]
    alpha = float(np.percentile(pooled, 100 - math.log(1 + 100 * n_forget / n_data)))
    with torch.no_grad():
        for name, param in params.items():  # the SSD reference's dampening loop
            f, d = forget[name], data[name]
            locations = torch.where(f > alpha * d)
            factor = (1.0 * d / f)[locations]
            factor[factor > 1.0] = 1.0
            param[locations] = param[locations] * factor
    return alpha


def fresh_params(model, rounds: int) -> list[dict[str, torch.Tensor]]:
    """One detached copy of the weights per call, made outside the timed region."""
    base = {n: p.detach().clone() for n, p in trainable_parameters(model).items()}
    return [{n: t.clone() for n, t in base.items()} for _ in range(rounds)]


def measure(case, *, rounds: int) -> dict:
    model = case.model()
    full, forget = case.loaders()
    data_imp = assd.compute_importance(model, full, fingerprint=False, estimator="batch").tensors
    forget_imp = assd.compute_importance(model, forget, fingerprint=False,
                                         estimator="batch").tensors
    n = rounds + 1  # one warm-up round
    copies = {"ours": fresh_params(model, n), "straightforward": fresh_params(model, n)}
    alphas = {"ours": [], "straightforward": []}

    def run(kind, fn):
        def go():
            params = copies[kind].pop()
            alphas[kind].append(fn(params, forget_imp, data_imp, case.n_forget, case.n_data))
            copies[kind].insert(0, params)  # keep the result of the last round to compare

        return go

    times = alternate(
        {
            "ours": run("ours", ours),
            "straightforward": run("straightforward", straightforward),
            "plain D": lambda: plain_pass(model, full),
        },
        rounds=rounds,
    )
    if alphas["ours"][0] != alphas["straightforward"][0]:
        raise AssertionError(
            f"alpha differs: {alphas['ours'][0]} vs {alphas['straightforward'][0]}"
        )
    first_ours, first_plain = copies["ours"][0], copies["straightforward"][0]
    if not all(torch.equal(first_ours[k], first_plain[k]) for k in first_ours):
        raise AssertionError("the two post-stages dampened the weights differently")
    return {
        "case": case,
        "params": n_params(model),
        "times": {k: median(v) for k, v in times.items()},
        "speedup": ratio(times, "straightforward", "ours"),
        "share": ratio(times, "ours", "plain D"),
    }


def table(results: list[dict]) -> str:
    rows = []
    for r in results:
        t = r["times"]
        rows.append(
            [r["case"].name, f"{r['params']:,}", f"{t['straightforward']:.4f}", f"{t['ours']:.4f}",
             judged(r["speedup"], SPEEDUP_TARGET, at_most=False, spec=".1f", unit="x"),
             r["case"].n_data, f"{t['plain D']:.3f}",
             judged(r["share"], SHARE_TARGET, at_most=True, scale=100, unit=" %")]
        )  # fmt: skip
    return markdown_table(
        [
            "model",
            "params",
            "straightforward s",
            "ours s",
            "speed-up (≥ 10x)",
            "n(D)",
            "plain pass D s",
            "ours / pass D (≤ 5 %)",
        ],
        rows,
    )


def run(*, models: list[str], rounds: int, scale: str) -> str:
    known = cases(scale)
    results = [measure(known[m], rounds=rounds) for m in models]
    return "\n".join([header("Post-stage: alpha, selection, dampening"), table(results), ""])


def main() -> None:
    args = arguments(__doc__)
    print(run(models=args.models, rounds=args.rounds, scale=args.scale))


if __name__ == "__main__":
    main()
