"""Importance over 2 gloo processes on CPU equals the single-process importance.

The two processes are separate Pythons running a script written to tmp_path;
they meet through a ``file://`` store, save what they computed, and this test
compares it against a single-process computation of its own.
"""

import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

import assd
from assd import TensorData, compute_importance
from assd.importance.distributed import shard

WORKER = textwrap.dedent(
    """
    import os, sys
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    import torch
    import torch.distributed as dist
    from torch import nn
    import assd
    from assd import TensorData, compute_importance

    def model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 3))

    def run(rank, folder):
        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank,
                                world_size=2)
        g = torch.Generator().manual_seed(1)
        x, y = torch.randn(30, 5, generator=g), torch.randint(0, 3, (30,), generator=g)
        net, out = model(), {}
        data = TensorData(x, y, batch_size=7)  # 5 batches: ranks take 0, 2, 4 and 1, 3
        for key, options in {
            "sample": dict(estimator="sample"),
            "batch": dict(estimator="batch"),
            "batch_train": dict(estimator="batch", train_mode=True),
            "lf_sample": dict(estimator="sample", objective="output_norm"),
        }.items():
            imp = compute_importance(net, data, **{"estimator": "batch", **options})
            out[key] = (imp.tensors, imp.n_samples, imp.n_batches, imp.batch_size)
        own = [(x[i : i + 4], y[i : i + 4]) for i in range(rank * 4, 30, 8)]  # user-made shards
        out["own_shards"] = compute_importance(net, own, estimator="sample").tensors
        local = compute_importance(net, data, estimator="sample", distributed=False)
        out["local_n"] = local.n_samples
        result = assd.ASSD(estimator="sample").unlearn(
            net, forget=TensorData(x[:6], y[:6], batch_size=4), data=data)
        out["assd"] = (result.alpha, result.model.state_dict())
        bad = x.clone()
        bad[8] = float("nan")  # in batch 1: only process 1 sees it
        try:
            compute_importance(net, TensorData(bad, y, batch_size=7), estimator="batch")
            out["error"] = None
        except Exception as error:
            out["error"] = type(error).__name__
        torch.save(out, f"{folder}/rank{rank}.pt")

    if __name__ == "__main__":
        run(int(sys.argv[1]), sys.argv[2])
        # Models sharded or replicated over the group keep it alive: free them first, then
        # end the group, so no gloo thread outlives the interpreter (an exit could abort).
        import gc
        gc.collect()
        dist.destroy_process_group()
    """
)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dist")
    script = folder / "worker.py"
    script.write_text(WORKER)
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), str(r), str(folder)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in (0, 1)
    ]
    for process in processes:
        _, err = process.communicate(timeout=180)
        assert process.returncode == 0, err[-3000:]
    return [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in (0, 1)]


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 3))


def toy():
    g = torch.Generator().manual_seed(1)
    return torch.randn(30, 5, generator=g), torch.randint(0, 3, (30,), generator=g)


def assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize(
    ("key", "options"),
    [
        ("sample", {"estimator": "sample"}),
        ("batch", {"estimator": "batch"}),  # the same batches, so the same batch estimate
        ("batch_train", {"estimator": "batch", "train_mode": True}),
        ("lf_sample", {"estimator": "sample", "objective": "output_norm"}),
    ],
)
def test_two_processes_equal_one(ranks, key, options):
    x, y = toy()
    single = compute_importance(model(), TensorData(x, y, batch_size=7),
                                **{"estimator": "batch", **options})
    for r in ranks:
        tensors, n_samples, n_batches, batch_size = r[key]
        assert (n_samples, n_batches, batch_size) == (30, 5, 7)
        assert_same(tensors, single.tensors)
    for name in ranks[0][key][0]:  # all-reduced: every process holds the very same bits
        assert torch.equal(ranks[0][key][0][name], ranks[1][key][0][name])


def test_user_made_shards_are_summed_not_resharded(ranks):
    x, y = toy()
    single = compute_importance(model(), TensorData(x, y, batch_size=4), estimator="sample")
    assert_same(ranks[0]["own_shards"], single.tensors)
    assert ranks[0]["local_n"] == 30  # distributed=False: this process alone, all 30 rows


def test_assd_under_two_processes_matches_one_and_ranks_agree(ranks):
    x, y = toy()
    single = assd.ASSD(estimator="sample").unlearn(
        model(), forget=TensorData(x[:6], y[:6], batch_size=4), data=TensorData(x, y, batch_size=7)
    )
    (alpha0, weights0), (alpha1, weights1) = ranks[0]["assd"], ranks[1]["assd"]
    assert alpha0 == alpha1 and alpha0 == pytest.approx(single.alpha, rel=1e-4)
    for name, value in single.model.state_dict().items():
        assert torch.equal(weights0[name], weights1[name])
        torch.testing.assert_close(weights0[name], value, rtol=1e-4, atol=1e-6)


def test_a_bad_batch_on_one_process_fails_both_instead_of_hanging(ranks):
    assert ranks[1]["error"] == "ValueError"  # its own batch held the NaN
    assert ranks[0]["error"] == "RuntimeError"  # told that another process failed


def test_shard_splits_tensordata_by_whole_batches_round_robin():
    def data():  # each process holds its own copy, shuffled the same way
        return TensorData(torch.arange(10.0), torch.arange(10), batch_size=3, shuffle=True, seed=4)

    order = [x.tolist() for x, _ in data()]
    parts = [[x.tolist() for x, _ in shard(data(), process=p, processes=2)] for p in (0, 1)]
    assert parts == [[order[0], order[2]], [order[1], order[3]]]
    assert len(shard(data(), process=1, processes=2)) == 2
    plain = [(torch.zeros(2), torch.zeros(2))]
    assert shard(plain, process=1, processes=2) is plain  # not ours to split


def test_distributed_true_without_a_group_is_refused():
    x, y = toy()
    with pytest.raises(ValueError, match="torchrun"):
        compute_importance(model(), TensorData(x, y), distributed=True, estimator="batch")
