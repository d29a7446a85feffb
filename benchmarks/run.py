"""Every performance figure of docs/performance.md, in one run.

Each section is a ratio measured inside one process, alternating the
conditions round by round, with its yardstick beside it:

1. uncached and cached requests against plain forward+backward passes;
2. the post-stage against a straightforward implementation and a pass over D;
3. peak extra memory against the parameter bytes (fresh process each);
4. the tabular-MLP request against retraining;
5. the sample estimator against the batch estimator (with its per-sample paths);
6. the table request on the real flights table (``table_request.py``) is separate:
   it trains a model on 262k rows first (run it on its own).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/run.py [--quick] [--rounds 3] [--out FILE]

About 15 minutes on 2 shared cores (``--quick``: about 2).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import memory
import post_stage
import request
import retrain
import sample_estimator
from common import MODELS, load_average

from assd.store.files import write_atomic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Smaller data (a smoke run).")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=None, help="Also write the report to this file.")
    args = parser.parse_args()
    scale = "quick" if args.quick else "full"
    start = time.perf_counter()
    sections = []
    for name, make in [
        ("requests", lambda: request.run(models=MODELS, rounds=args.rounds, scale=scale)),
        ("post-stage", lambda: post_stage.run(models=MODELS, rounds=args.rounds, scale=scale)),
        ("memory", lambda: memory.run(models=MODELS, scale=scale)),
        ("retraining", lambda: retrain.run(rounds=args.rounds, scale=scale)),
        ("sample estimator", lambda: sample_estimator.run(
            models=sample_estimator.MODELS, rounds=args.rounds, scale=scale)),
    ]:  # fmt: skip
        text = make()
        print(text, flush=True)
        sections.append(text)
        print(f"({name}: done at {time.perf_counter() - start:.0f} s)\n", flush=True)
    footer = (
        f"Whole run: {time.perf_counter() - start:.0f} s, load average at the end "
        f"{load_average()}, {os.cpu_count()} CPUs."
    )
    print(footer)
    if args.out:
        write_atomic(Path(args.out), "\n".join([*sections, footer, ""]))


if __name__ == "__main__":
    main()
