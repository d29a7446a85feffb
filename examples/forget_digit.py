"""Forget one digit class from a small CNN trained on scikit-learn's digits.

Run:  python examples/forget_digit.py [--forget 3] [--seed 0]

Trains the CNN (a few seconds on a CPU), then lets assd-auto, one-shot ASSD,
SSD and LFSSD (alpha=10, their papers' batch estimator) and ALFSSD forget every
training image of one class. Every request measures itself on the forget rows
and the retained rows (``evaluate=``); the table shows accuracy on the test
images of the forgotten class and of the other classes, and assd-auto's
verdict (what changed, its forget target, the retain guard) is printed below.
"""

from __future__ import annotations

import argparse

import torch

import assd
from assd.data import load_digits_split
from assd.metrics import accuracy
from assd.models import DigitsCNN
from assd.train import fit, seed_everything


def main(forget_class: int = 3, seed: int = 0) -> dict[str, dict]:
    seed_everything(seed)
    split = load_digits_split(seed=seed)
    model = DigitsCNN()
    train = assd.TensorData(split.x_train, split.y_train, batch_size=64, shuffle=True, seed=seed)
    fit(model, train, epochs=30, lr=1e-3, optimizer="adam")

    def subset(x, y, keep):
        return assd.TensorData(x[keep], y[keep], batch_size=64)

    forget_rows = split.y_train == forget_class
    data = assd.TensorData(split.x_train, split.y_train, batch_size=64)
    forget = subset(split.x_train, split.y_train, forget_rows)
    kept = subset(split.x_train, split.y_train, ~forget_rows)
    test_forget = subset(split.x_test, split.y_test, split.y_test == forget_class)
    test_retain = subset(split.x_test, split.y_test, split.y_test != forget_class)

    def scores(m):
        return {
            "forget_test": accuracy(m, test_forget),
            "retain_test": accuracy(m, test_retain),
            "forget_train": accuracy(m, forget),
        }

    rows = {"original": scores(model)}
    importance = assd.compute_importance(model, data, estimator="sample")  # shared below
    methods = {
        "assd-auto": assd.get_method("assd-auto"),
        "assd": assd.ASSD(),
        "ssd a=10": assd.SSD.paper(alpha=10.0),
        "lfssd a=10": assd.LFSSD.paper(alpha=10.0),
        "alfssd": assd.ALFSSD(),
    }
    for name, method in methods.items():
        shared = method.objective == importance.objective and (
            method.importance_options["estimator"] == importance.estimator
        )
        result = method.unlearn(
            model, forget=forget, data=data, importance=importance if shared else None,
            evaluate={"retain": kept},
        )  # fmt: skip
        rows[name] = {**scores(result.model), "alpha": result.alpha,
                      "dampened": result.share_dampened, "verdict": result.verdict}  # fmt: skip
    print(f"forget digit {forget_class} (seed {seed}); accuracies on the test split")
    print(f"{'model':<12}{'forget':>9}{'retain':>9}{'Df train':>10}{'alpha':>11}{'dampened':>10}")
    for name, r in rows.items():
        alpha = f"{r['alpha']:.4g}" if r.get("alpha") is not None else "-"
        share = f"{100 * r['dampened']:.3f}%" if "dampened" in r else "-"
        print(
            f"{name:<12}{r['forget_test']:>9.3f}{r['retain_test']:>9.3f}"
            f"{r['forget_train']:>10.3f}{alpha:>11}{share:>10}"
        )
    print(f"\nassd-auto: {rows['assd-auto']['verdict']}")
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forget", type=int, default=3, help="digit class to forget (0-9)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    main(args.forget, args.seed)
