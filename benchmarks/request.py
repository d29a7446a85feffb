"""Uncached and cached ASSD requests against the passes they cannot avoid.

Uncached: ``ASSD().unlearn(model, forget=Df, data=D)`` (I_D and I_Df, alpha,
dampening, a new model) against one plain forward+backward pass over D plus
one over Df. Cached: load I_D from its file, check its fingerprint, then the
same request with ``importance=`` against one plain pass over Df.

``--estimator sample`` (default) runs ``ASSD()`` as shipped (per-sample
estimator, I_retain derived from the saved I_D); ``--estimator batch`` runs
``ASSD(estimator="batch", reference="full")``, whose importance pass costs a
plain pass, so the ratio shows the request's own fixed costs.

    python benchmarks/request.py [--models cnn mlp resnet18 vit-b] [--rounds 3] [--quick]
                                 [--cached-only] [--estimator sample|batch]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from common import alternate, arguments, cases, header, judged, median, n_params, plain_pass, ratio

import assd
from assd.reports import markdown_table

UNCACHED_TARGET = 1.15
CACHED_TARGET = 1.3


def method(estimator: str) -> assd.ASSD:
    """``ASSD()`` as shipped, or with the batch estimator on the whole training set."""
    return assd.ASSD() if estimator == "sample" else assd.ASSD(estimator="batch", reference="full")


def measure(case, *, rounds: int, folder: Path, cached_only: bool = False,
            estimator: str = "sample") -> dict:  # fmt: skip
    """Time the four conditions of one case, alternating; return its figures."""
    model = case.model()
    full, forget = case.loaders()
    path = folder / f"{case.architecture}.safetensors"
    assd.compute_importance(model, full, estimator=estimator, reference="full").save(path)
    last = {}

    def uncached():
        last["uncached"] = method(estimator).unlearn(model, forget=forget, data=full).timings

    def cached():
        imp = assd.Importance.load(path)
        result = method(estimator).unlearn(model, forget=forget, importance=imp,
                                           n_data=case.n_data)  # fmt: skip
        last["cached"] = result.timings

    conditions = {
        "uncached": uncached,
        "plain D + Df": lambda: (plain_pass(model, full), plain_pass(model, forget)),
        "cached": cached,
        "plain Df": lambda: plain_pass(model, forget),
    }
    if cached_only:
        conditions = {k: v for k, v in conditions.items() if k in ("cached", "plain Df")}
    times = alternate(conditions, rounds=rounds)
    nan = ratio({"a": [float("nan")], "b": [1.0]}, "a", "b")
    return {
        "case": case,
        "params": n_params(model),
        "times": {k: median(v) for k, v in times.items()},
        "uncached_ratio": nan if cached_only else ratio(times, "uncached", "plain D + Df"),
        "cached_ratio": ratio(times, "cached", "plain Df"),
        "timings": last,
    }


def table(results: list[dict]) -> str:
    header_row = ["model", "params", "n(D)", "n(Df)", "batch", "plain D+Df s", "uncached s",
                  "ratio (≤ 1.15)", "plain Df s", "cached s", "ratio (≤ 1.3)"]  # fmt: skip
    rows = []
    for r in results:
        c, t = r["case"], r["times"]
        uncached, cached = r["uncached_ratio"], r["cached_ratio"]
        rows.append(
            [c.name, f"{r['params']:,}", c.n_data, c.n_forget, c.batch_size,
             f"{t.get('plain D + Df', float('nan')):.3f}", f"{t.get('uncached', float('nan')):.3f}",
             judged(uncached, UNCACHED_TARGET, at_most=True),
             f"{t['plain Df']:.4f}", f"{t['cached']:.4f}",
             judged(cached, CACHED_TARGET, at_most=True)]
        )  # fmt: skip
    return markdown_table(header_row, rows)


def stages(results: list[dict]) -> str:
    """Where the time of the last request of each kind went (seconds per stage)."""
    rows = []
    for r in results:
        for kind, timings in r["timings"].items():
            rows.append([r["case"].name, kind, *(f"{timings.get(k, 0.0):.4f}" for k in STAGES)])
    return markdown_table(["model", "request", *STAGES], rows)


STAGES = ("importance_data", "importance_forget", "alpha", "copy", "dampen")


def run(*, models: list[str], rounds: int, scale: str, cached_only: bool = False,
        estimator: str = "sample") -> str:  # fmt: skip
    known = cases(scale)
    with tempfile.TemporaryDirectory() as folder:
        results = [measure(known[m], rounds=rounds, folder=Path(folder), cached_only=cached_only,
                           estimator=estimator) for m in models]  # fmt: skip
    title = f"Uncached and cached requests ({estimator} estimator)"
    return "\n".join([header(title), table(results), "", stages(results), ""])


def main() -> None:
    def extra(parser):
        parser.add_argument(
            "--cached-only", action="store_true", help="Only the cached request and plain Df."
        )
        parser.add_argument("--estimator", choices=["sample", "batch"], default="sample")

    args = arguments(__doc__, extra=extra)
    print(run(models=args.models, rounds=args.rounds, scale=args.scale,
              cached_only=args.cached_only, estimator=args.estimator))  # fmt: skip


if __name__ == "__main__":
    main()
