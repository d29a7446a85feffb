"""ASSD on a model sharded with FSDP2 over 2 gloo processes equals ASSD in one process.

Two separate Pythons run the script below (the models are built the same way
here); they shard the model with ``fully_shard``, run ASSD and write what
they got (gathered with ``full_tensor`` by the test script only; the
library never gathers). The test compares against its own single-process
run, and the distributed percentile against NumPy.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import assd
from assd import TensorData, compute_importance
from assd.importance.sharded import row_range
from assd.importance.sharded_store import load_sharded_importance, save_sharded_importance
from assd.models.cnn import DigitsCNN
from assd.models.vit import ViT
from assd.rule.percentile import ratio_percentile

HERE = Path(__file__).parent


def cnn():
    torch.manual_seed(0)
    return DigitsCNN(width=4)


def trained_cnn():
    """The digits CNN fitted to the random rows (it memorises them: there is something to
    forget), the same bits in every process with one thread."""
    from assd.train import fit

    model = cnn()
    x, y = rows()
    fit(model, TensorData(x, y, batch_size=8), epochs=15, lr=1e-2, optimizer="adam")
    return model


def evaluation_sets():
    x, y = rows()
    g = torch.Generator().manual_seed(2)  # held-out rows, never trained on
    held_x, held_y = torch.randn(12, 1, 8, 8, generator=g), torch.randint(0, 5, (12,), generator=g)
    return {"forget": TensorData(x[:5], y[:5], batch_size=6),
            "retain": TensorData(x[5:], y[5:], batch_size=6),
            "test": TensorData(held_x, held_y, batch_size=6)}  # fmt: skip


def vit():  # a small transformer: patch embedding, 2 pre-norm encoder layers, head
    torch.manual_seed(0)
    return ViT(5, image_size=8, patch_size=4, channels=1, dim=12, depth=2, heads=2)


class Reused(nn.Module):
    """A weight also used outside its layer: the per-sample hooks cannot take it."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.layer = nn.Linear(64, 5)

    def forward(self, x):
        x = x.flatten(1)
        return self.layer(x) + 0.5 * nn.functional.linear(x, self.layer.weight)


def rows():
    g = torch.Generator().manual_seed(1)
    return torch.randn(37, 1, 8, 8, generator=g), torch.randint(0, 5, (37,), generator=g)


def percentile_cases():
    """``(values, cut, q)``: rank 0 holds ``values[:cut]``, rank 1 the rest."""
    g = torch.Generator().manual_seed(3)
    cases = []
    for dtype in (torch.float32, torch.float64):
        v = torch.randn(1000, generator=g, dtype=dtype).abs()
        v[::7] = float("inf")
        v[::11] = float("nan")
        v[3::13] = 0.5  # ties
        cases += [(v, 600, 99.31), (v, 0, 50.0), (v, 1000, 2.5), (v, 17, 100.0)]
    ties = torch.tensor([2.0] * 9 + [float("inf")] * 3 + [1.0])
    cases += [(ties, 5, q) for q in (0.0, 33.3, 91.0)]
    cases += [(torch.tensor([-3.0, -0.0, 0.0, 7.5, -float("inf"), 1e-30]), 2, 60.0)]
    return cases


WORKER = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, sys.argv[3])
    import torch
    from test_sharded import (cnn, vit, rows, percentile_cases, trained_cnn,
                              evaluation_sets, methods, Reused)
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard
    import assd
    from assd import TensorData, compute_importance
    from assd.importance.sharded_store import load_sharded_importance, save_sharded_importance
    from assd.rule.distributed_percentile import (
        sharded_percentile_of_chunks, sharded_ratio_percentile)

    def sharded(model):
        units = model.encoder.layers if hasattr(model, "encoder") else [model.features,
                                                                        model.head]
        for unit in units:
            fully_shard(unit)
        return fully_shard(model)

    def full(tensors):
        return {n: t.full_tensor() for n, t in tensors.items()}

    def run(rank, folder):
        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank,
                                world_size=2)
        x, y = rows()
        out = {}
        for make in (cnn, vit):
            for estimator in ("batch", "sample"):
                model = sharded(make())
                data = TensorData(x, y, batch_size=6)  # 7 batches: ranks 4 and 3
                forget = TensorData(x[:5], y[:5], batch_size=6)  # one batch: rank 1 idles
                result = assd.ASSD(estimator=estimator, reference="full").unlearn(
                    model, forget=forget, data=data, inplace=True)
                weights = {n: p.full_tensor() for n, p in model.named_parameters()}
                out[make.__name__, estimator] = (result.alpha, weights, result.n_dampened)
        for make in (cnn, vit):
            imp = compute_importance(sharded(make()), TensorData(x, y, batch_size=6),
                                     estimator="sample")
            out["sample_importance", make.__name__] = (full(imp.tensors), imp.paths)
        imp = compute_importance(fully_shard(Reused()), TensorData(x, y, batch_size=6),
                                 estimator="sample")
        out["sample_reused"] = (full(imp.tensors), imp.paths)
        long_x, long_y = torch.cat([x] * 6), torch.cat([y] * 6)  # batches of several chunks
        imp = compute_importance(sharded(cnn()), TensorData(long_x, long_y, batch_size=90),
                                 estimator="sample")
        out["sample_long"] = full(imp.tensors)
        model = sharded(cnn())
        imp = compute_importance(model, TensorData(x, y, batch_size=6), estimator="batch")
        out["importance"] = full(imp.tensors)
        loss_free = compute_importance(model, TensorData(x, y, batch_size=6), estimator="batch",
                                       objective="output_norm")
        out["loss_free"] = full(loss_free.tensors)
        mine = [(x[0:6], y[0:6]), (x[12:18], y[12:18])] if rank == 0 else [(x[6:12], y[6:12])]
        out["own"] = full(compute_importance(model, mine, estimator="batch").tensors)
        save_sharded_importance(imp, f"{folder}/saved2")
        try:
            imp.save(f"{folder}/whole.safetensors")
        except ValueError as error:
            out["refusals_save"] = str(error)
        loaded = load_sharded_importance(f"{folder}/saved1", model)  # written by one process
        out["loaded"] = full(loaded.tensors)
        out["local_rows"] = {n: t.to_local().shape[0] for n, t in loaded.tensors.items()}
        fimp = compute_importance(model, TensorData(x[:9], y[:9], batch_size=2),
                                  estimator="batch")
        out["same_alpha_same_importance"] = (
            sharded_ratio_percentile(fimp.tensors, imp.tensors, 98.0), full(fimp.tensors))
        out["ssd"] = assd.SSD(alpha=2.0, estimator="batch").unlearn(
            model, forget=TensorData(x[:5], y[:5], batch_size=6),
            data=TensorData(x, y, batch_size=6), inplace=True).per_layer
        try:
            assd.ASSD(estimator="batch").unlearn(model, forget=forget, data=data)
        except ValueError as error:
            out["refusal"] = str(error)
        out["evaluated"] = {}
        for key, method in methods().items():
            model = sharded(trained_cnn())
            r = method.unlearn(model, forget=forget, data=data, inplace=True,
                               evaluate=evaluation_sets())
            weights = {n: p.full_tensor() for n, p in model.named_parameters()}
            out["evaluated"][key] = (r.alpha, r.n_dampened, r.outcome.verdict(), weights)
        from assd.verify.outcome import score_sets
        model = sharded(trained_cnn())
        calls = [0]
        model.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
        sets = {**evaluation_sets(), "all": TensorData(x, y, batch_size=6),  # 7 batches
                "loader": torch.utils.data.DataLoader(  # the same rows on every rank
                    torch.utils.data.TensorDataset(x, y), batch_size=6)}
        per_row = {}
        scores = score_sets(model, sets, rows=per_row, keep=("all",))
        out["scores"] = ({k: (v.n, v.accuracy, v.loss, v.row_losses, v.confusion)
                          for k, v in scores.items()}, calls[0], list(per_row.values()))
        out["percentiles"] = []
        for values, cut, q in percentile_cases():
            mine = values[:cut] if rank == 0 else values[cut:]
            pieces = [mine[:3], mine[3:]]
            out["percentiles"].append(sharded_percentile_of_chunks(lambda: iter(pieces), q))
        bad = x.clone()
        bad[7] = float("nan")  # in batch 1: only rank 1 holds it
        try:
            compute_importance(sharded(cnn()), TensorData(bad, y, batch_size=6),
                               estimator="batch")
            out["error"] = None
        except Exception as error:
            out["error"] = type(error).__name__
        torch.save(out, f"{folder}/rank{rank}.pt")
        dist.barrier()

    if __name__ == "__main__":
        run(int(sys.argv[1]), sys.argv[2])
        # Models sharded or replicated over the group keep it alive: free them first, then
        # end the group, so no gloo thread outlives the interpreter (an exit could abort).
        import gc
        gc.collect()
        dist.destroy_process_group()
    """
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The ranks run one thread each; matrix products split over several threads add in
    another order, so bit-for-bit comparisons need the same here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fsdp")
    save_sharded_importance(
        single_importance(), folder / "saved1", model=cnn()
    )  # world size 1: read by 2 below
    script = folder / "worker.py"
    script.write_text(WORKER)
    env = {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), str(r), str(folder), str(HERE)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
        )
        for r in (0, 1)
    ]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
    found = [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    return found, folder


def single_importance():
    x, y = rows()
    return compute_importance(cnn(), TensorData(x, y, batch_size=6), estimator="batch")


@pytest.mark.parametrize("make", ["cnn", "vit"])
@pytest.mark.parametrize("estimator", ["batch", "sample"])
def test_sharded_assd_equals_one_process(ranks, make, estimator):
    (r0, r1), _ = ranks
    x, y = rows()
    model = {"cnn": cnn, "vit": vit}[make]()
    single = assd.ASSD(estimator=estimator, reference="full").unlearn(
        model, forget=TensorData(x[:5], y[:5], batch_size=6), data=TensorData(x, y, batch_size=6)
    )
    alpha, weights, n_dampened = r0[make, estimator]
    assert r1[make, estimator][0] == alpha  # every rank has the same alpha
    assert n_dampened > 0
    # batch: the same batches, the same arithmetic; sample: the per-sample engine's layer
    # hooks on the unsharded layers, each layer's squares added in one process's order
    assert (alpha, n_dampened) == (single.alpha, single.n_dampened)
    assert all(torch.equal(weights[n], p) for n, p in single.model.named_parameters())


def test_sharded_sample_importance_takes_the_layer_hooks_bit_for_bit(ranks):
    (r0, _r1), _ = ranks
    x, y = rows()
    for make in (cnn, vit):
        single = compute_importance(make(), TensorData(x, y, batch_size=6), estimator="sample")
        tensors, paths = r0["sample_importance", make.__name__]
        assert paths == single.paths and "loop" not in paths.values()
        assert set(paths.values()) >= {"hooks", "factorised"}
        for name, t in single.tensors.items():
            assert torch.equal(tensors[name], t), name


def test_a_parameter_the_hooks_cannot_take_sends_all_to_the_per_sample_loop(ranks):
    (r0, _r1), _ = ranks
    x, y = rows()
    single = compute_importance(Reused(), TensorData(x, y, batch_size=6), estimator="sample")
    assert single.paths["layer.weight"] == "torch.func"
    tensors, paths = r0["sample_reused"]
    assert set(paths.values()) == {"loop"}  # the definition, one backward per sample
    for name, t in single.tensors.items():
        torch.testing.assert_close(tensors[name], t, rtol=1e-5, atol=0)


def test_batches_of_several_chunks_stay_in_lockstep(ranks):
    """Batch 0 (90 rows) is checked on 64 rows, whose squares are kept as one process
    keeps its first chunk's, then 26; batch 1 (rank 1's) is one chunk, added after them:
    one process's chunks in its order, bit for bit."""
    (r0, _r1), _ = ranks
    x, y = rows()
    data = TensorData(torch.cat([x] * 6), torch.cat([y] * 6), batch_size=90)
    single = compute_importance(cnn(), data, estimator="sample")
    for name, t in single.tensors.items():
        assert torch.equal(r0["sample_long"][name], t), name


def test_loss_free_importance_bit_for_bit(ranks):
    (r0, _r1), _ = ranks
    x, y = rows()
    single = compute_importance(
        cnn(), TensorData(x, y, batch_size=6), estimator="batch", objective="output_norm"
    )
    for name, t in single.tensors.items():
        assert torch.equal(r0["loss_free"][name], t)


def test_user_made_uneven_shards_bit_for_bit(ranks):
    (r0, _r1), _ = ranks
    x, y = rows()
    batches = [(x[a : a + 6], y[a : a + 6]) for a in (0, 6, 12)]  # rank 0, rank 1, rank 0
    single = compute_importance(cnn(), batches, estimator="batch")
    for name, t in single.tensors.items():
        assert torch.equal(r0["own"][name], t)


def test_alpha_is_bit_identical_on_the_same_importances(ranks):
    (r0, r1), _ = ranks
    alpha, tensors = r0["same_alpha_same_importance"]
    reference = single_importance().tensors
    expected = ratio_percentile(tensors, reference, 98.0)
    assert alpha == expected == r1["same_alpha_same_importance"][0]


def test_distributed_percentile_matches_numpy_on_uneven_shards(ranks):
    (r0, r1), _ = ranks
    for (values, _cut, q), got0, got1 in zip(
        percentile_cases(), r0["percentiles"], r1["percentiles"], strict=True
    ):
        v = values.numpy()
        expected = np.percentile(v[np.isfinite(v)], q)
        assert got0 == got1 == expected, (q, got0, expected)


def test_sharded_importance_saved_by_two_read_by_one_and_back(ranks):
    (r0, _r1), folder = ranks
    single = single_importance()
    for name, t in single.tensors.items():
        assert torch.equal(r0["importance"][name], t)  # batch estimator: bit for bit
        assert torch.equal(r0["loaded"][name], t)  # saved by 1 process, read by 2
    for name, rows_held in r0["local_rows"].items():
        start, stop = row_range(single.tensors[name].shape[0], 0, 2)
        assert rows_held == stop - start  # rank 0 read only its own rows
    loaded = load_sharded_importance(folder / "saved2", cnn())  # saved by 2, read by 1
    assert loaded.fingerprint.startswith("s1:") and loaded.n_samples == 37
    for name, t in single.tensors.items():
        assert torch.equal(loaded.tensors[name], t)
    changed = cnn()
    with torch.no_grad():
        changed.head[3].bias[0] += 1e-3
    with pytest.raises(ValueError, match="stale"):
        load_sharded_importance(folder / "saved2", changed)


def test_fixed_alpha_ssd_counts_are_global(ranks):
    (r0, r1), _ = ranks
    x, y = rows()
    model = cnn()
    single = assd.SSD(alpha=2.0, estimator="batch").unlearn(
        model, forget=TensorData(x[:5], y[:5], batch_size=6), data=TensorData(x, y, batch_size=6)
    )
    assert r0["ssd"] == r1["ssd"] == single.per_layer


def test_copies_and_whole_file_saves_are_refused_with_the_reason(ranks):
    (r0, r1), _ = ranks
    assert "cannot be copied; pass inplace=True" in r0["refusal"] == r1["refusal"]
    assert "save_sharded_importance" in r0["refusals_save"]


def methods():
    return {"guard": assd.ASSD(estimator="batch", reference="full", guard=0.0),
            "auto": assd.AutoASSD(estimator="batch", reference="full")}  # fmt: skip


@pytest.mark.parametrize("key", ["guard", "auto"])
def test_retain_guard_and_assd_auto_on_a_sharded_model_equal_one_process(ranks, key):
    (r0, r1), _ = ranks
    x, y = rows()
    model = trained_cnn()
    single = methods()[key].unlearn(model, forget=TensorData(x[:5], y[:5], batch_size=6),
                                    data=TensorData(x, y, batch_size=6),
                                    evaluate=evaluation_sets())  # fmt: skip
    alpha, n_dampened, verdict, weights = r0["evaluated"][key]
    assert (alpha, n_dampened, verdict) == (single.alpha, single.n_dampened,
                                            single.outcome.verdict())  # fmt: skip
    assert r1["evaluated"][key][:3] == (alpha, n_dampened, verdict)
    assert all(torch.equal(weights[n], p) for n, p in single.model.named_parameters())
    if key == "auto":
        assert len(single.outcome.tries) > 1  # it searched: several tries, reusing importances


def test_a_bad_batch_on_one_rank_fails_both(ranks):
    (r0, r1), _ = ranks
    assert r1["error"] == "ValueError" and r0["error"] == "RuntimeError"


def test_single_process_is_untouched_by_the_sharded_path():
    model = nn.Linear(3, 2)
    from assd.importance.sharded import is_sharded_model

    assert not is_sharded_model(model)
    x, y = torch.randn(10, 3), torch.randint(0, 2, (10,))
    imp = compute_importance(model, TensorData(x, y))
    assert imp.fingerprint.startswith("t1:")  # the ordinary stamp, not the sharded one


def test_evaluation_is_data_parallel_and_equals_one_process(ranks):
    """Each rank scores its own batches of a TensorData (9 forwards per rank where one
    process runs 16: forget 1 batch, retain 6, test 2, all 7, dealt round robin, a rank out
    of batches repeating one uncounted), and the merged figures equal one process's bit for
    bit. A DataLoader (the same rows on every rank) is scored whole on each: 7 more, and
    its rows are counted once."""
    from assd.verify.outcome import score_sets

    (r0, r1), _ = ranks
    x, y = rows()
    sets = {**evaluation_sets(), "all": TensorData(x, y, batch_size=6),
            "loader": torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y),
                                                  batch_size=6)}  # fmt: skip
    per_row = {}
    single = score_sets(trained_cnn(), sets, rows=per_row, keep=("all",))
    for got, forwards, got_rows in (r0["scores"], r1["scores"]):
        assert forwards == 1 + 3 + 1 + 4 + 7
        for name, score in single.items():
            n, accuracy, loss, row_losses, confusion = got[name]
            assert (n, accuracy, loss) == (score.n, score.accuracy, score.loss), name
            assert torch.equal(row_losses, score.row_losses), name
            assert torch.equal(confusion, score.confusion), name
        (want_rows,) = per_row.values()
        (mine,) = got_rows
        assert all(torch.equal(a, b) for a, b in zip(mine, want_rows, strict=True))
