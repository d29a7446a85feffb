"""ASSD on a model sharded with FSDP2: every rank holds and dampens its own rows only.

Run:  torchrun --nproc-per-node 2 examples/sharded_forget_digit.py [--out folder]

(CPU and gloo here; on GPUs, torchrun picks NCCL and each rank its own device.)
Trains the digits CNN in every process with the same seed (in practice:
load your trained checkpoint), shards it with ``fully_shard``, computes the
training set's importance once and saves it sharded (any world size can load
it), then forgets every training image of digit 3 with ASSD in place. Rank 0
prints alpha, how many weights were dampened, and the accuracy on the test
images of the forgotten digit and of the others, evaluated data-parallel.
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile

import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard

import assd
from assd.data import load_digits_split
from assd.importance.distributed import init_from_env
from assd.models import DigitsCNN
from assd.train import fit, seed_everything


def correct(model, x, y) -> torch.Tensor:
    """``[right, seen]`` on this rank's share of the rows, all-reduced over the ranks."""
    rank, world = dist.get_rank(), dist.get_world_size()
    with torch.no_grad():
        logits = model(x[rank::world])
    counts = torch.tensor([(logits.argmax(1) == y[rank::world]).sum().item(), len(logits)])
    dist.all_reduce(counts)
    return counts


def main(out: str) -> None:
    init_from_env("gloo")  # torchrun's environment; a no-op outside torchrun
    seed_everything(0)
    split = load_digits_split(seed=0)
    model = DigitsCNN()
    fit(model, assd.TensorData(split.x_train, split.y_train, batch_size=64, shuffle=True,
                               seed=0), epochs=10, lr=1e-3, optimizer="adam")  # fmt: skip
    fully_shard(model.features)  # the FSDP units: each holds 1/world of its weights
    fully_shard(model.head)
    fully_shard(model)

    data = assd.TensorData(split.x_train, split.y_train, batch_size=64)  # split by batches
    importance = assd.compute_importance(model, data, estimator="batch", reference="full")
    assd.save_sharded_importance(importance, out)  # one file per rank + index.json
    importance = assd.load_sharded_importance(out, model)  # checks names, shapes, weights

    three = split.y_train == 3
    forget = assd.TensorData(split.x_train[three], split.y_train[three], batch_size=64)
    test3 = split.y_test == 3
    before = [correct(model, split.x_test[m], split.y_test[m]) for m in (test3, ~test3)]
    result = assd.ASSD.paper().unlearn(model, forget=forget, importance=importance,
                                       inplace=True)  # fmt: skip
    after = [correct(model, split.x_test[m], split.y_test[m]) for m in (test3, ~test3)]
    if dist.get_rank() == 0:
        print(f"alpha={result.alpha:.4g}, dampened {result.n_dampened} of {result.n_params}")
        for name, b, a in zip(("digit 3", "other digits"), before, after, strict=True):
            print(f"test accuracy on {name}: {b[0] / b[1]:.3f} -> {a[0] / a[1]:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "digits-sharded"))
    main(parser.parse_args().out)
    # The sharded model's device mesh holds the process group: free it first, then end the
    # group, so no gloo worker thread outlives the interpreter (it aborted 1 exit in 10).
    gc.collect()
    dist.destroy_process_group()
