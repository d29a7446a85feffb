"""An ASSD request on the tabular MLP against retraining it from scratch.

Retraining follows the ASSD paper's MLP protocol on the same rows: a fresh
3 x 100 MLP, SGD, batch 1024, 25 epochs, StepLR gamma 0.95, on the retained
rows. The request forgets the same rows uncached (passes over D and Df) and
cached (I_D loaded from its file and checked against the weights).

    python benchmarks/retrain.py [--rounds 3] [--quick]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from common import alternate, arguments, cases, header, judged, median, ratio

import assd
from assd import TensorData
from assd.reports import markdown_table

UNCACHED_TARGET, CACHED_TARGET = 20.0, 200.0


def measure(case, *, rounds: int, folder: Path) -> dict:
    model = case.model()
    x, y = case.data()
    full, forget = case.loaders()
    retain = TensorData(x[case.n_forget :], y[case.n_forget :], batch_size=1024, shuffle=True)
    path = folder / "mlp.safetensors"
    assd.compute_importance(model, full, estimator="batch").save(path)
    retrain = assd.Retrain(epochs=25, lr=0.05, lr_gamma=0.95)

    def cached():
        imp = assd.Importance.load(path)
        assd.ASSD().unlearn(model, forget=forget, importance=imp, n_data=case.n_data)

    times = alternate(
        {
            "retrain": lambda: retrain.unlearn(model, forget=forget, retain=retain),
            "uncached": lambda: assd.ASSD().unlearn(model, forget=forget, data=full),
            "cached": cached,
        },
        rounds=rounds,
    )
    return {
        "times": {k: median(v) for k, v in times.items()},
        "uncached": ratio(times, "retrain", "uncached"),
        "cached": ratio(times, "retrain", "cached"),
    }


def run(*, rounds: int, scale: str) -> str:
    case = cases(scale)["mlp"]
    with tempfile.TemporaryDirectory() as folder:
        r = measure(case, rounds=rounds, folder=Path(folder))
    t = r["times"]
    rows = [
        ["uncached request", f"{t['uncached']:.4f}", f"{t['retrain']:.3f}",
         judged(r["uncached"], UNCACHED_TARGET, at_most=False, spec=".0f", unit="x"), "≥ 20x"],
        ["cached request", f"{t['cached']:.4f}", f"{t['retrain']:.3f}",
         judged(r["cached"], CACHED_TARGET, at_most=False, spec=".0f", unit="x"), "≥ 200x"],
    ]  # fmt: skip
    note = (
        f"{case.name}: {case.n_data} rows x {case.input_shape[0]} features, forget "
        f"{case.n_forget} rows; retraining: 25 epochs, SGD, batch 1024 on the other rows."
    )
    return "\n".join(
        [
            header("ASSD request against retraining (tabular MLP)"),
            note,
            "",
            markdown_table(["request", "request s", "retrain s", "speed-up", "target"], rows),
            "",
        ]
    )


def main() -> None:
    args = arguments(__doc__, models=False)
    print(run(rounds=args.rounds, scale=args.scale))


if __name__ == "__main__":
    main()
