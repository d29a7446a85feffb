"""``assd experiment forget`` end to end on digits, and its building blocks."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from assd import LFSSD, TensorData
from assd.cli.app import main
from assd.data.scenarios import load_dataset, make_scenario
from assd.experiments import ResultLog
from assd.experiments.forget import ForgetConfig, ForgetRun, reference_alpha, split_methods
from assd.experiments.forget_setup import load_original, load_weights_, random_crop_flip
from assd.metrics import accuracy, mia_share
from assd.store.checkpoints import load_model


def test_split_methods_keeps_options_with_their_method():
    text = "assd, ssd:alpha=5,dampening=0.5;finetune:epochs=1 retrain"
    assert split_methods(text) == ["assd", "ssd:alpha=5,dampening=0.5", "finetune:epochs=1",
                                   "retrain"]  # fmt: skip


@pytest.mark.parametrize(
    ("model", "scenario", "alpha"),
    [("resnet18", "full-class", 10), ("resnet18", "random", 10), ("vit", "full-class", 5),
     ("vit-b", "sub-class", 25), ("vit", "random", 10), ("cnn", "sub-class", 10)],
)  # fmt: skip
def test_reference_alpha_lookup(model, scenario, alpha):
    assert reference_alpha(model, scenario) == alpha


def test_the_benchmark_runs_measures_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["experiment", "forget", "--out", str(out), "--scenario", "sub-class", "--forget",
            "3", "--seeds", "1", "--epochs", "3", "--no-progress", "--methods",
            "assd,ssd:alpha=5,finetune:epochs=1,bad-teacher"]  # fmt: skip
    assert main(args) == 0
    records = ResultLog(out / "results.jsonl").records()
    methods = [r["key"]["method"] for r in records]
    assert methods == ["original", "assd", "ssd:alpha=5", "finetune:epochs=1", "bad-teacher"]

    # the original's numbers, recomputed independently from the saved model folder
    model, spec = load_model(out / "originals" / "seed-0")
    s = make_scenario("sub-class", load_dataset("digits"), "3", seed=0)
    xf, yf = s.forget_train()
    original = records[0]
    assert original["retain_test_acc"] == pytest.approx(
        accuracy(model, TensorData(*s.retain_test_set()))
    )
    assert original["df_acc"] == pytest.approx(accuracy(model, TensorData(*s.forget_test_set())))
    test = TensorData(s.x_test, s.y_test)
    mia = mia_share(model, retain=TensorData(*s.retain_train()), test=test,
                    forget=TensorData(xf, yf))  # fmt: skip
    assert original["mia"] == pytest.approx(mia)
    assert spec["kwargs"] == {"n_classes": 5, "channels": 1}

    assd_record, ssd_record = records[1], records[2]
    share = len(yf) / len(s.y_train)
    assert assd_record["percentile"] == pytest.approx(100 - math.log(1 + 100 * share))
    assert ssd_record["alpha"] == 5 and assd_record["importance_seconds"] > 0
    assert assd_record["seconds_total"] == pytest.approx(
        assd_record["seconds"] + assd_record["importance_seconds"]
    )
    table = (out / "table.md").read_text()
    assert "| bad-teacher |" in table and "sub-class '3' of '2-3'" in table
    assert len(list((out / "figures").glob("forget-*.png"))) == 3

    weights = out / "originals" / "seed-0" / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert main(args) == 0  # re-run: nothing to redo
    assert len(ResultLog(out / "results.jsonl").records()) == 5
    assert weights.stat().st_mtime_ns == stamp

    capsys.readouterr()
    assert main([*args[:-2], "--epochs", "4", "--methods", "retrain"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_random_forgetting_measures_df_on_the_forget_set(tmp_path):
    config = ForgetConfig(scenario="random", forget="2%", methods=["lfssd"], seeds=[1],
                          training={"epochs": 1, "lr": 1e-3, "optimizer": "adam"})  # fmt: skip
    run = ForgetRun(config, tmp_path)
    cell = {"scenario": "random", "dataset": "digits", "model": "cnn", "forget": "2%", "seed": 1}
    original = run.run_one({**cell, "method": "original"})
    lfssd = run.run_one({**cell, "method": "lfssd"})
    assert original["n_forget"] == round(0.02 * 1347) and original["forget_test_acc"] is None
    assert original["df_acc"] == original["forget_acc"]
    assert lfssd["alpha"] == 10
    # ZRF by its definition, on the LFSSD model rebuilt from the run's shared importance
    (imp, _), = run.importances.values()
    again = LFSSD(alpha=10).unlearn(run.original, forget=run._loader("forget"), importance=imp,
                                    n_data=len(run.scenario.y_train))  # fmt: skip
    x_forget = run.sets["forget"][0]
    assert lfssd["zrf"] == pytest.approx(numpy_zrf(again.model, x_forget,
                                                   run.incompetent_logits), abs=1e-9)
    assert original["zrf"] == pytest.approx(numpy_zrf(run.original, x_forget,
                                                      run.incompetent_logits), abs=1e-9)
    run.run_one({**cell, "method": "lfssd:estimator=batch"})
    estimators = sorted(imp.estimator for imp, _ in run.importances.values())
    assert estimators == ["batch", "sample"]  # one shared importance per estimator
    other = ForgetConfig(**{**config.to_dict(), "forget": "3%"})  # same original
    reused = load_original(tmp_path / "originals" / "seed-1", other, "cpu")
    for a, b in zip(reused[0].parameters(), run.original.parameters(), strict=True):
        assert torch.equal(a, b)


def numpy_zrf(model, x, random_logits) -> float:
    """1 - mean Jensen-Shannon divergence (nats) of the two softmaxes, in NumPy."""
    def softmax(z):
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    with torch.no_grad():
        p = softmax(model(x).double().numpy())
    q = softmax(random_logits.double().numpy())
    m = (p + q) / 2
    kl = lambda a, b: np.where(a > 0, a * np.log(np.where(a > 0, a, 1) / b), 0).sum(1)  # noqa: E731
    return float(1 - ((kl(p, m) + kl(q, m)) / 2).mean())


def test_random_crop_flip_matches_a_per_image_loop():
    x = torch.arange(3 * 2 * 5 * 5, dtype=torch.float32).reshape(3, 2, 5, 5)
    got = random_crop_flip(x, pad=2, generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)  # the same draws, in the same order
    oy, ox = torch.randint(0, 5, (3,), generator=g), torch.randint(0, 5, (3,), generator=g)
    flip = torch.rand(3, generator=g) < 0.5
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (2, 2), (2, 2)))
    for i in range(3):
        crop = padded[i, :, oy[i] : oy[i] + 5, ox[i] : ox[i] + 5]
        np.testing.assert_array_equal(got[i].numpy(), crop[:, :, ::-1] if flip[i] else crop)


def test_load_weights_strict_and_partial(tmp_path):
    from safetensors.torch import save_file

    source = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    target = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 5))  # another head
    with pytest.raises(ValueError, match="does not fit"):
        load_weights_(target, path)
    assert load_weights_(target, path, strict=False) == 2
    assert torch.equal(target[0].weight, source[0].weight)
    pickled = tmp_path / "w.pt"
    torch.save(source.state_dict(), pickled)
    with pytest.raises(ValueError, match="pickle"):
        load_weights_(target, pickled)
    assert load_weights_(target, pickled, strict=False, allow_pickle=True) == 2


def test_a_resized_vit_is_trained_saved_and_reloaded(tmp_path):
    """The ViT path of the CIFAR commands, small: images resized 8 -> 16 px before the ViT."""
    config = ForgetConfig(model="vit", image_size=16, methods=["ssd"], seeds=[0],
                          model_options={"dim": 16, "depth": 1, "heads": 2, "patch_size": 4},
                          training={"epochs": 1, "lr": 1e-3, "optimizer": "adam"})  # fmt: skip
    cell = {"scenario": "full-class", "dataset": "digits", "model": "vit", "forget": "3", "seed": 0}
    first = ForgetRun(config, tmp_path)
    original = first.run_one({**cell, "method": "original"})
    assert first.run_one({**cell, "method": "ssd"})["alpha"] == 5  # ViT full-class
    _, spec = load_model(tmp_path / "originals" / "seed-0")
    assert spec["kwargs"]["image_size"] == 16 and spec["kwargs"]["dim"] == 16
    again = ForgetRun(config, tmp_path).run_one({**cell, "method": "original"})
    assert again["retain_test_acc"] == original["retain_test_acc"]  # reloaded, not retrained
