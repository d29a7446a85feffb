"""Importance of a model sharded with FSDP2: memory per rank and time, on CPU with gloo.

Three kinds of run, each in fresh processes (one per rank, meeting through a
``file://`` store), all computing the importance (batch estimator, or
``--estimator sample``) of the same 50.4M-parameter model (6 blocks of Linear(1024, 4096), GELU,
Linear(4096, 1024), and a head) over the same batches:

- ``ws1``: one process, the whole model (the single-process path);
- ``dp2``: two processes, each with the whole model, the data split and the
  sums all-reduced (the data-parallel path);
- ``fsdp2``: two processes, each block and the root wrapped by ``fully_shard``
  (built on the meta device, so no rank ever holds all the weights).

Per rank it reports the time of ``compute_importance`` (the slower rank),
the peak resident memory the call adds (its *importance memory*: accumulators,
gradients, workspace) and the peak resident memory over the process's
baseline after ``import torch`` (its *total*: weights included). ``dp2`` and
``fsdp2`` alternate for ``--rounds`` rounds; medians are reported.

    python benchmarks/sharded.py [--rounds 2] [--estimator sample] [--rows 1024] [--quick]
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

DIM, HIDDEN, BLOCKS, CLASSES = 1024, 4096, 6, 10
TARGETS = {"importance": 0.6, "total": 0.7, "time": 1.5}


def _rss_kib(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+) kB", status).group(1))


def build(device: str = "cpu"):
    import torch
    from torch import nn

    def block():
        return nn.Sequential(nn.Linear(DIM, HIDDEN), nn.GELU(), nn.Linear(HIDDEN, DIM))

    with torch.device(device):
        torch.manual_seed(0)
        return nn.Sequential(*[block() for _ in range(BLOCKS)], nn.Linear(DIM, CLASSES))


def child(kind: str, rank: int, world: int, folder: str, rows: int, batch: int,
          estimator: str = "batch") -> None:
    import torch
    import torch.distributed as dist

    from assd import TensorData, compute_importance

    torch.set_num_threads(1)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank,
                                world_size=world)  # fmt: skip
    baseline = _rss_kib("VmRSS")
    if kind.startswith("fsdp2"):
        from torch.distributed.fsdp import fully_shard

        model = build("meta")
        for unit in model[:-1]:
            fully_shard(unit)
        fully_shard(model)
        model.to_empty(device="cpu")
        with torch.no_grad():
            for p in model.parameters():
                p.to_local().normal_(0.0, 0.02)
    else:
        model = build()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(rows, DIM, generator=g), torch.randint(0, CLASSES, (rows,), generator=g)
    data = TensorData(x, y, batch_size=batch)
    if world > 1:
        dist.barrier()
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
    before = _rss_kib("VmRSS")
    start = time.perf_counter()
    if kind == "fsdp2-plain":  # the user's own training pass: FSDP reduces the gradients
        for index, (inputs, targets) in enumerate(data):
            if index % world == rank:
                torch.nn.functional.cross_entropy(model(inputs), targets).backward()
                model.zero_grad(set_to_none=True)
    else:
        compute_importance(model, data, estimator=estimator, fingerprint=False)
    seconds = time.perf_counter() - start
    peak = _rss_kib("VmHWM")
    n_params = sum(p.numel() for p in model.parameters())
    result = {"seconds": seconds, "importance": (peak - before) * 1024,
              "total": (peak - baseline) * 1024, "params": n_params}  # fmt: skip
    Path(folder, f"{kind}-{rank}.json").write_text(json.dumps(result))
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


def launch(kind: str, rows: int, batch: int, *, live: bool = False,
           estimator: str = "batch") -> dict:
    """One run in fresh processes; ``live``: glibc returns every freed buffer of 1 MiB or
    more to the system, so resident memory follows live memory (as a GPU's
    ``max_memory_allocated`` does); otherwise its default, whose dynamic threshold keeps
    freed buffers of up to 32 MiB in the heap."""
    world = 1 if kind == "ws1" else 2
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        if live:
            env["MALLOC_MMAP_THRESHOLD_"] = str(2**20)
        command = [sys.executable, __file__, "--child", kind]
        processes = [subprocess.Popen([*command, str(r), str(world), folder, str(rows),
                                       str(batch), estimator], env=env)
                     for r in range(world)]  # fmt: skip
        for process in processes:
            if process.wait(timeout=1800):
                raise SystemExit(f"{kind}: a rank failed (exit {process.returncode})")
        found = [json.loads(Path(folder, f"{kind}-{r}.json").read_text()) for r in range(world)]
    return {key: max(f[key] for f in found) for key in found[0]}


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="fewer batches (a smoke run)")
    parser.add_argument("--estimator", choices=("batch", "sample"), default="batch",
                        help="the importance estimator (the library's default is 'sample')")
    parser.add_argument("--rows", type=int, default=256,
                        help="rows in the pass, in batches of 64 (the one-time costs of the "
                             "sample estimator's first batch weigh less over more rows)")
    args = parser.parse_args()
    est = args.estimator
    rows, batch = (32, 8) if args.quick else (args.rows, 64)
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"## Sharded importance (FSDP2, gloo, CPU)\n\nload average {load} (1/5/15 min) at "
          f"start; {rows} rows in batches of {batch}; {est} estimator; "
          "one thread per rank\n")  # fmt: skip
    memory = {kind: launch(kind, rows, batch, live=True, estimator=est)
              for kind in ("ws1", "fsdp2")}
    runs = {"ws1": [], "dp2": [], "fsdp2": [], "fsdp2-plain": []}
    for _ in range(args.rounds):
        for kind in runs:
            runs[kind].append(launch(kind, rows, batch, estimator=est))
    mid = {k: {key: median([r[key] for r in v]) for key in v[0]} for k, v in runs.items()}
    print(f"model: {mid['ws1']['params'] / 1e6:.1f}M parameters "
          f"({mid['ws1']['params'] * 4 / 2**20:.0f} MiB of float32 weights)\n")  # fmt: skip
    print("| run | malloc | seconds | importance MiB/rank | total MiB/rank |")
    print("|---|---|---|---|---|")
    for kind, m in memory.items():
        print(f"| {kind} | live | {m['seconds']:.2f} | {m['importance'] / 2**20:.0f} | "
              f"{m['total'] / 2**20:.0f} |")  # fmt: skip
    for kind, m in mid.items():
        print(f"| {kind} | default | {m['seconds']:.2f} | {m['importance'] / 2**20:.0f} | "
              f"{m['total'] / 2**20:.0f} |")  # fmt: skip
    ratios = {
        "importance": memory["fsdp2"]["importance"] / memory["ws1"]["importance"],
        "total": memory["fsdp2"]["total"] / memory["ws1"]["total"],
        "time": mid["fsdp2"]["seconds"] / mid["dp2"]["seconds"],
    }
    labels = {"importance": "importance memory per rank, fsdp2 / ws1 (live)",
              "total": "total memory per rank, fsdp2 / ws1 (live)",
              "time": "importance time, fsdp2 / dp2"}  # fmt: skip
    print()
    for key, value in ratios.items():
        verdict = "met" if value <= TARGETS[key] else "MISSED"
        print(f"- {labels[key]}: {value:.2f} (target <= {TARGETS[key]}: {verdict})")
    default = mid["fsdp2"]["importance"] / mid["ws1"]["importance"]
    print(f"- importance memory per rank, fsdp2 / ws1, default malloc: {default:.2f}")
    plain = mid["fsdp2"]["seconds"] / mid["fsdp2-plain"]["seconds"]
    print(f"- importance time / FSDP2's own forward+backward over the same batches: {plain:.2f}")
    print(f"- load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, rank, world, folder, rows, batch, estimator = sys.argv[2:9]
        child(kind, int(rank), int(world), folder, int(rows), int(batch), estimator)
    else:
        main()
