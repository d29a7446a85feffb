"""Where the time of a sharded importance pass goes (FSDP2, gloo, CPU).

Runs the ``fsdp2`` kind of ``benchmarks/sharded.py`` (same model, rows and
batches) in two fresh processes, with a wall-clock timer around FSDP2's
unshard (all-gather issue, and its wait), ``assd``'s per-parameter exchange
(all-to-all, and adding the received rows squared) and the whole backward.
Timers nest (the backward includes the exchanges and the backward's
unshards), so the parts do not add up to the total. Prints each rank's
seconds per part. With ``--estimator sample``: the per-sample engine's check on
the first chunk, its chunks (forward, backward and squares) and the rank-to-rank
chain that adds each layer group's squares.

    python benchmarks/sharded_profile.py [--estimator sample] [--rows 1024] [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).parent))


def timed(owner, name: str, key: str, totals: dict) -> None:
    f = getattr(owner, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return f(*args, **kwargs)
        finally:
            totals[key] = totals.get(key, 0.0) + time.perf_counter() - start

    setattr(owner, name, wrapper)


def child(rank: int, folder: str, rows: int, batch: int, estimator: str) -> None:
    import sharded
    import torch
    import torch.distributed as dist
    import torch.distributed.fsdp._fully_shard._fsdp_param_group as group

    from assd.importance import sharded as assd_sharded
    from assd.importance import sharded_chain, sharded_sample

    totals: dict[str, float] = {}
    timed(group.FSDPParamGroup, "unshard", "FSDP2 unshard (all-gather issued)", totals)
    timed(group.FSDPParamGroup, "wait_for_unshard", "FSDP2 wait for the all-gather", totals)
    timed(dist, "all_to_all_single", "exchange: all-to-all", totals)
    timed(assd_sharded._Exchange, "add", "exchange: all-to-all + squares added", totals)
    timed(torch.Tensor, "backward", "backward (all of it)", totals)
    engine = sharded_sample.ShardedSampleEngine
    timed(engine, "probe", "sample: first chunk's check (forward + backward)", totals)
    timed(engine, "chunk", "sample: chunks (forward, backward, squares, chain)", totals)
    timed(sharded_chain.Chain, "run", "sample: chain (gather, squares in turn, scatter)", totals)
    sharded.child("fsdp2", rank, 2, folder, rows, batch, estimator)
    found = json.loads(Path(folder, f"fsdp2-{rank}.json").read_text())
    totals["total (compute_importance)"] = found["seconds"]
    Path(folder, f"profile-{rank}.json").write_text(json.dumps(totals))


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--estimator", choices=("batch", "sample"), default="batch")
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rows, batch = (32, 8) if args.quick else (args.rows, 64)
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        command = [sys.executable, __file__, "--child"]
        processes = [subprocess.Popen([*command, str(r), folder, str(rows), str(batch),
                                       args.estimator], env=env) for r in (0, 1)]  # fmt: skip
        for process in processes:
            if process.wait(timeout=1800):
                raise SystemExit(f"a rank failed (exit {process.returncode})")
        found = [json.loads(Path(folder, f"profile-{r}.json").read_text()) for r in (0, 1)]
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {rows} rows in "
          f"batches of {batch}; {args.estimator} estimator\n\n| part | rank 0 s | rank 1 s |\n"
          "|---|---|---|")  # fmt: skip
    for key in found[0]:
        if found[0][key] or found[1].get(key):
            print(f"| {key} | {found[0][key]:.2f} | {found[1].get(key, 0.0):.2f} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
    else:
        main()
