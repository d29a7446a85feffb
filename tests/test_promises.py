"""What the README promises, each checked against an independent computation."""

import copy
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import assd
from assd import ALFSSD, LFSSD, TensorData
from assd.cli import main
from assd.tabular.cache import cached_importance


def _setup(n=60, k=6):
    g = torch.Generator().manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    return model, torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g), k


def _dampened(model, forget_imp, data_imp, alpha):
    """SSD's rule with λ = 1 in NumPy float64: w · min(I_D / I_Df, 1) where I_Df > α I_D."""
    out = {}
    for name, p in model.named_parameters():
        f, d = forget_imp[name].double().numpy(), data_imp[name].double().numpy()
        selected = f > alpha * d
        factor = np.minimum(d / np.where(selected, f, 1.0), 1.0)
        out[name] = np.where(selected, p.detach().double().numpy() * factor, p.detach().numpy())
    return out


@pytest.mark.parametrize("method", ["lfssd", "alfssd"])
def test_label_free_methods_match_the_independent_reference_loop(method, reference_loop):
    model, x, y, k = _setup()
    forget, data = TensorData(x[:k], y[:k], batch_size=6), TensorData(x, y, batch_size=6)
    algorithm = LFSSD.paper(alpha=2.0) if method == "lfssd" else ALFSSD.paper()
    result = algorithm.unlearn(model, forget=forget, data=data)
    f = reference_loop(model, x[:k], y[:k], 6, loss_free=True)
    d = reference_loop(model, x, y, 6, loss_free=True)
    if method == "lfssd":
        assert result.alpha == 2.0
    else:
        ratios = np.concatenate([(f[n] / d[n]).numpy().ravel() for n in f])
        p = 100 - math.log(1 + 100 * k / len(x))
        assert result.percentile == pytest.approx(p, abs=1e-12)
        assert result.alpha == pytest.approx(np.percentile(ratios[np.isfinite(ratios)], p), 1e-5)
    expected = _dampened(model, f, d, result.alpha)
    assert result.n_dampened == sum(int((f[n] > result.alpha * d[n]).sum()) for n in f) > 0
    for name, p_new in result.model.named_parameters():
        np.testing.assert_allclose(p_new.detach().numpy(), expected[name], rtol=1e-5, atol=1e-7)


def test_half_precision_importance_equals_a_float64_sum_of_its_gradients():
    """512 one-row batches: a bfloat16 running sum drifts (8 bits of mantissa), float32 not."""
    g, n = torch.Generator().manual_seed(3), 512
    model = nn.Linear(6, 3).to(torch.bfloat16)
    x, y = torch.randn(n, 6, generator=g).to(torch.bfloat16), torch.randint(0, 3, (n,), generator=g)
    imp = assd.compute_importance(model, TensorData(x, y, batch_size=1), estimator="batch")
    total = {k: torch.zeros_like(p, dtype=torch.float64) for k, p in model.named_parameters()}
    drift = {k: torch.zeros_like(p) for k, p in model.named_parameters()}  # bfloat16 sums
    for i in range(n):  # the same bfloat16 gradients, summed in float64 (and in bfloat16)
        model.zero_grad()
        nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        for k, p in model.named_parameters():
            total[k] += p.grad.double().pow(2)
            drift[k] += p.grad.pow(2)
    for k, t in total.items():
        assert imp.tensors[k].dtype == torch.float32
        torch.testing.assert_close(imp.tensors[k].double(), t / n, rtol=1e-5, atol=1e-12)
        assert not torch.allclose(drift[k].double() / n, t / n, rtol=1e-3)  # the test can tell


@pytest.mark.parametrize("change", ["data", "labels", "estimator", "objective", "weights"])
def test_the_importance_cache_misses_when_data_settings_or_weights_change(change, tmp_path):
    model, x, y, _ = _setup()
    original = copy.deepcopy(model)
    options = {"objective": "loss", "estimator": "sample", "train_mode": False}
    data, key = TensorData(x, y, batch_size=8), assd.tabular.cache.data_key(x, y)
    first, info = cached_importance(model, data, options=options, data_key=key, folder=tmp_path)
    assert info["saved"] and not info["hit"]
    other_x, other_y, other_options = x, y, dict(options)
    if change == "data":
        other_x = x.clone()
        other_x[0, 0] += 1e-3
    elif change == "labels":
        other_y = (y + 1) % 3
    elif change == "estimator":
        other_options["estimator"] = "batch"
    elif change == "objective":
        other_options["objective"] = "output_norm"
    else:
        with torch.no_grad():
            model[0].weight[0, 0] += 1e-3
    again, info2 = cached_importance(
        model, TensorData(other_x, other_y, batch_size=8), options=other_options,
        data_key=assd.tabular.cache.data_key(other_x, other_y), folder=tmp_path,
    )  # fmt: skip
    assert not info2["hit"] and info2["path"] != info["path"]
    assert len(list(tmp_path.glob("importance-*.safetensors"))) == 2
    fresh = assd.compute_importance(model, TensorData(other_x, other_y, batch_size=8),
                                    **other_options)  # fmt: skip
    for n in fresh.tensors:  # the miss computed the new importance, not the old one
        torch.testing.assert_close(again.tensors[n], fresh.tensors[n])
        assert not torch.equal(again.tensors[n], first.tensors[n]) or change == "weights"
    # and the unchanged request still hits
    _, info3 = cached_importance(original, data, options=options, data_key=key, folder=tmp_path)
    assert info3["hit"] and info3["path"] == info["path"]


def _orders(n=400, seed=0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "order_id": [f"o{i:04d}" for i in range(n)],
        "qty": rng.integers(1, 50, n),
        "region": rng.choice(["north", "south", "east", "isles"], n),
    })  # fmt: skip
    frame["status"] = np.where(frame.qty / 50 + (frame.region == "isles") > 0.6, "late", "ok")
    return frame


@pytest.fixture
def model_folder(tmp_path):
    csv, m1 = tmp_path / "orders.csv", tmp_path / "m1"
    _orders().to_csv(csv, index=False)
    args = ["train", "--data", str(csv), "--target", "status", "--id-column", "order_id",
            "--out", str(m1), "--epochs", "6", "--batch-size", "32"]  # fmt: skip
    assert main(args) == 0
    return csv, m1


def test_cli_unlearn_equals_the_python_api_on_the_same_rows(model_folder, tmp_path):
    import pandas as pd

    from assd.data import read_forget_ids
    from assd.metrics import accuracy
    from assd.tabular import TabularModel, trained_ids, unlearn_rows

    csv, m1 = model_folder
    frame = pd.read_csv(csv)
    ids = trained_ids(TabularModel.load(m1), frame)[::9]
    forget_file = tmp_path / "forget.txt"
    forget_file.write_text("\n".join(ids))
    affected = frame[frame.region == "isles"]
    affected.to_csv(tmp_path / "isles.csv", index=False)
    m2 = tmp_path / "m2"
    assert main(["unlearn", "--model", str(m1), "--data", str(csv), "--forget", str(forget_file),
                 "--out", str(m2), "--eval-data", str(tmp_path / "isles.csv")]) == 0  # fmt: skip
    report = json.loads((m2 / "report.json").read_text())
    original = TabularModel.load(m1)
    api, api_report = unlearn_rows(original, frame, read_forget_ids(forget_file),
                                   eval_frames={"isles": affected})  # fmt: skip
    assert report["result"]["alpha"] == api_report["result"]["alpha"] > 0
    assert report["result"]["percentile"] == api_report["result"]["percentile"]
    cli = TabularModel.load(m2)
    for (name, a), (_, b) in zip(cli.model.state_dict().items(),
                                 api.model.state_dict().items(), strict=True):  # fmt: skip
        assert torch.equal(a, b), name
    # every accuracy row of the report is accuracy() on those rows, before and after
    rows = original.task.encode(frame)
    train = ~rows.test
    is_forget = np.isin(rows.ids, ids)
    sets = {"forget": train & is_forget, "retain": train & ~is_forget, "test": rows.test}
    encoded = {name: rows.subset(mask) for name, mask in sets.items()}
    encoded["isles"] = original.task.encode(affected)
    assert set(report["accuracy"]) == set(encoded)
    for name, r in encoded.items():
        data = TensorData(r.x, r.y)
        assert report["accuracy"][name]["n"] == len(r)
        assert report["accuracy"][name]["before"] == accuracy(original.model, data), name
        assert report["accuracy"][name]["after"] == accuracy(cli.model, data), name
    assert report["accuracy"]["isles"]["n"] == len(affected) > 0


def test_torchrun_unlearn_writes_one_cache_and_one_output_equal_to_one_process(
    model_folder, tmp_path
):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from assd.tabular import TabularModel

    csv, m1 = model_folder
    (tmp_path / "forget.txt").write_text("\n".join(f"o{i:04d}" for i in range(0, 300, 7)))
    common = ["--data", str(csv), "--forget", str(tmp_path / "forget.txt")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(assd.__file__).parents[1])}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "assd", "unlearn", "--model", str(m1), *common, "--out", str(tmp_path / "two")],
        env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("# Unlearning report") == 1  # only rank 0 prints
    assert len(list(m1.glob("importance-*.safetensors"))) == 1  # one cache file
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(("two", ".two"))] == ["two"]
    assert main(["unlearn", "--model", str(m1), *common, "--out", str(tmp_path / "one"),
                 "--no-cache"]) == 0  # fmt: skip
    two = json.loads((tmp_path / "two" / "report.json").read_text())
    one = json.loads((tmp_path / "one" / "report.json").read_text())
    assert two["result"]["alpha"] == pytest.approx(one["result"]["alpha"], rel=1e-5)
    # The sums are all-reduced before dividing, so the importances agree to float32
    # rounding; I_retain = (n I_D - k I_Df) / (n - k) cancels for weights only the forget
    # rows use, so a few ratios next to alpha fall on the other side of it and a few
    # dampening factors min(I_D / I_Df, 1) of those weights differ.
    n_one, n_two = one["result"]["n_dampened"], two["result"]["n_dampened"]
    assert n_one > 0 and abs(n_two - n_one) <= max(2, n_one // 50)
    a, b = TabularModel.load(tmp_path / "two").model, TabularModel.load(tmp_path / "one").model
    differ = sum(int((~torch.isclose(x, y, rtol=1e-5, atol=1e-7)).sum())
                 for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert differ <= max(5, n_one // 20)  # measured: 4 of 479 dampened weights
    for name, v in one["accuracy"].items():
        assert two["accuracy"][name]["n"] == v["n"]
        assert abs(two["accuracy"][name]["after"] - v["after"]) <= 2 / v["n"], name
