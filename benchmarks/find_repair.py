"""Discovered rows repaired by ASSD (I_D cached) against retraining without them.

The setting of `assd experiment errors --discover` on flights: 20,000
training rows, group errors (whole destinations) at 5 %, the mistake model,
discovery with folds holding destinations out (cleanlab + the group rule),
then the two repairs of the discovered rows, alternating round by round:
ASSD with the full-data importance already computed (the cached case), and
retraining from scratch on the rows kept. Prints the median seconds of
each and their ratio, per seed.

    python benchmarks/find_repair.py [--rounds 3] [--seeds 0 1]
"""

from __future__ import annotations

import argparse

from common import alternate, load_average, median

from assd.experiments.errors import (
    ErrorsConfig,
    _apply,
    _Context,
    _discovery,
    load_errors_data,
)


def measure(data, config, seed: int, rounds: int) -> dict:
    cell = {"model": "mlp", "kind": "group", "rate": 0.05, "seed": seed}
    ctx = _Context(data, config, cell)
    found = _discovery(ctx, data, config, seed)
    mask = ctx.found.written
    _apply("assd", {}, ctx, mask)  # computes I_D once; later requests reuse it (cached)
    times = alternate(
        {
            "assd, I_D cached": lambda: _apply("assd", {}, ctx, mask),
            "retrain": lambda: _apply("retrain", {}, ctx, mask),
        },
        rounds=rounds,
    )
    cached, retrain = median(times["assd, I_D cached"]), median(times["retrain"])
    return {"seed": seed, "rows": int(mask.sum()), "precision": found["found_precision"],
            "cached": cached, "retrain": retrain, "ratio": cached / retrain}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    config = ErrorsConfig(rates=[0.05], kinds=["group"])
    data = load_errors_data(config)
    print(f"load average at start: {load_average()}")
    print("seed | rows forgotten | precision | ASSD, I_D cached (s) | retrain (s) | ratio")
    for seed in args.seeds:
        r = measure(data, config, seed, args.rounds)
        print(f"{r['seed']} | {r['rows']} | {r['precision']:.2f} | {r['cached']:.2f} | "
              f"{r['retrain']:.2f} | {r['ratio']:.3f}")  # fmt: skip
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
