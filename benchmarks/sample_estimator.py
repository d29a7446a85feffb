"""The ``sample`` estimator (per-sample gradients, ``torch.func``) against the ``batch`` one.

Both make one pass over the same data; the ratio is what batch-size
invariance and exact subtraction (``Importance.without``) cost. A second
table sweeps the memory budget, which sets how many samples ``vmap`` handles
at once, to show how the speed depends on it.

    python benchmarks/sample_estimator.py [--models cnn mlp resnet18 vit-b] [--rounds 3] [--quick]
"""

from __future__ import annotations

from common import alternate, arguments, cases, header, median, n_params, ratio

import assd
from assd.estimators import sample_chunk
from assd.reports import markdown_table

SAMPLES = {"cnn": 1437, "mlp": 20000, "resnet18": 64, "vit-b": 16}  # rows per pass
BUDGETS = [2**23, 2**26, 2**29]  # bytes of per-sample gradients per vmap call


def measure(case, *, rounds: int, rows: int) -> dict:
    model = case.model()
    case.n_data = rows
    full, _ = case.loaders()
    times = alternate(
        {
            "batch": lambda: assd.compute_importance(model, full, fingerprint=False),
            "sample": lambda: assd.compute_importance(
                model, full, estimator="sample", fingerprint=False
            ),
        },
        rounds=rounds,
    )
    return {
        "case": case,
        "params": n_params(model),
        "times": {k: median(v) for k, v in times.items()},
        "ratio": ratio(times, "sample", "batch"),
        "chunk": min(case.batch_size, sample_chunk(n_params(model))),
    }


def sweep(case, *, rows: int, rounds: int) -> list[list]:
    """Seconds per pass of the sample estimator for several memory budgets (bytes of
    per-sample gradients per vmap call, which set the chunk), alternating."""
    model = case.model()
    case.n_data = rows
    full, _ = case.loaders()

    def with_budget(budget):
        return lambda: assd.compute_importance(
            model, full, estimator="sample", max_memory=budget, fingerprint=False
        )

    times = alternate({f"{b >> 20} MiB": with_budget(b) for b in BUDGETS}, rounds=rounds)
    return [
        [
            case.name,
            f"{b >> 20} MiB",
            min(case.batch_size, sample_chunk(n_params(model), b)),
            f"{median(t):.3f}",
        ]
        for b, t in zip(BUDGETS, times.values(), strict=True)
    ]


def run(*, models: list[str], rounds: int, scale: str, sweep_models: list[str]) -> str:
    known = cases(scale)
    shrink = 8 if scale == "quick" else 1
    results = [measure(known[m], rounds=rounds, rows=SAMPLES[m] // shrink) for m in models]
    rows = [
        [r["case"].name, f"{r['params']:,}", r["case"].n_data, r["case"].batch_size, r["chunk"],
         f"{r['times']['batch']:.3f}", f"{r['times']['sample']:.3f}",
         r["ratio"].show(".2f", unit="x")]
        for r in results
    ]  # fmt: skip
    lines = [
        header("Sample estimator against batch estimator"),
        markdown_table(
            [
                "model",
                "params",
                "rows",
                "batch",
                "vmap chunk",
                "batch s",
                "sample s",
                "sample / batch",
            ],
            rows,
        ),
        "",
    ]
    swept = [
        row
        for m in sweep_models
        for row in sweep(known[m], rows=SAMPLES[m] // shrink, rounds=rounds)
    ]
    if swept:
        lines += [
            "Memory budget (max_memory, bytes of per-sample gradients) against speed:",
            "",
            markdown_table(["model", "max_memory", "vmap chunk", "sample s"], swept),
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    args = arguments(
        __doc__, extra=lambda p: p.add_argument("--sweep", nargs="*", default=["mlp", "resnet18"])
    )
    print(run(models=args.models, rounds=args.rounds, scale=args.scale, sweep_models=args.sweep))


if __name__ == "__main__":
    main()
