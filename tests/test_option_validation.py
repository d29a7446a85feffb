"""One parser and one validation of method options and flags, on every command and path.

Each case here failed before the parser and the checks were unified: an own-model
``--option`` typo ended in "unexpected TypeError", repeats were silently merged,
``loss_fn=mod:fn`` stayed a string, a flag's default overrode ``--option guard=``,
``--lr 0`` trained nothing, a factory that raised or exited was not named, ...
"""

import contextlib
import io
import json
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_model, save_model

from assd.cli import main
from assd.cli.options import guard_setting, parse_seeds
from assd.methods.options import check_options, check_spec, key_values, merge_flags, parse_spec

USER = '''
import sys

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

SIZE = 3


def make():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


def rows():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(90, 4, generator=g)
    return TensorDataset(x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long())


def smooth_loss(outputs, labels):
    return F.cross_entropy(outputs, labels, label_smoothing=0.5)


def needs(width):
    return torch.nn.Linear(4, width)


def boom():
    raise RuntimeError("the weights server is down")


def leave():
    sys.exit(0)
'''


@pytest.fixture
def user(tmp_path, monkeypatch):
    (tmp_path / "usermod.py").write_text(textwrap.dedent(USER))
    (tmp_path / "broken.py").write_text("raise KeyError('config')\ndef make():\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    import usermod

    save_model(usermod.make(), "w.safetensors")
    (tmp_path / "ids.txt").write_text("0\n1\n2\n3\n4\n5\n")
    yield usermod
    for name in ("usermod", "broken"):
        sys.modules.pop(name, None)


def run(args):
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


OWN = ["unlearn", "--model-factory", "usermod:make", "--weights", "w.safetensors",
       "--data-factory", "usermod:rows", "--forget", "ids.txt", "--out", "o"]  # fmt: skip


# --- the parser -------------------------------------------------------------------------


def test_key_values_reads_json_and_refuses_repeats_and_missing_equals():
    assert key_values(["alpha=5", "on_guard=refuse", "train_mode=true", "guard=null"]) == {
        "alpha": 5, "on_guard": "refuse", "train_mode": True, "guard": None}  # fmt: skip
    with pytest.raises(ValueError, match="alpha is given twice"):
        key_values(["alpha=5", "alpha=50"])
    with pytest.raises(ValueError, match="must look like key=value"):
        key_values(["alpha"])
    assert parse_spec("SSD:alpha=5 , dampening=0.5") == ("ssd", {"alpha": 5, "dampening": 0.5})
    with pytest.raises(ValueError, match="alpha is given twice"):
        parse_spec("ssd:alpha=5,alpha=6")


def test_check_options_lists_the_valid_keys_and_resolves_callables(user):
    with pytest.raises(ValueError, match=r"alpah: method 'ssd' has no such option; it takes "
                                         r"alpha, batch_fn, dampening, estimator"):
        check_options("ssd", {"alpah": 5})
    with pytest.raises(ValueError, match=r"'ssd' expects float for alpha"):
        check_options("ssd", {"alpha": "lots"})
    got = check_options("ssd", {"loss_fn": "usermod:smooth_loss", "alpha": 5})
    assert got["loss_fn"] is user.smooth_loss and got["alpha"] == 5
    with pytest.raises(ValueError, match=r"loss_fn=usermod:SIZE is a int, not a function"):
        check_options("ssd", {"loss_fn": "usermod:SIZE"})
    with pytest.raises(ValueError, match=r"loss_fn=3: loss_fn is a function"):
        check_options("ssd", {"loss_fn": 3})
    assert check_spec("found:assd", own=("mistake",), prefix="found:") == ("found:assd", {})
    with pytest.raises(ValueError, match="mistake takes no options"):
        check_spec("mistake:alpha=3", own=("mistake",))


def test_flags_merge_with_options_unless_they_contradict():
    assert merge_flags({"estimator": "batch"}, {"estimator": "batch"}) == {"estimator": "batch"}
    with pytest.raises(ValueError, match=r'--option estimator="batch" contradicts --estimator'):
        merge_flags({"estimator": "batch"}, {"estimator": "sample"})
    assert guard_setting({}, None, False) == ({}, 0.01)  # the default, from nowhere else
    assert guard_setting({"guard": 0.05}, None, False) == ({}, 0.05)  # not the flag's default
    assert guard_setting({"guard": None}, None, True) == ({}, None)  # they agree
    assert guard_setting({}, 0.2, False) == ({}, 0.2)
    for opts, guard, off in (({}, 0.05, True), ({"guard": 0.05}, 0.02, False),
                             ({"guard": 0.05}, None, True)):  # fmt: skip
        with pytest.raises(ValueError, match="contradicts"):
            guard_setting(opts, guard, off)


def test_seed_lists_are_counts_or_distinct_seeds_in_range():
    import click

    assert parse_seeds("4") == [0, 1, 2, 3] and parse_seeds("7,0") == [7, 0]
    for bad, why in (("0", "runs no seed"), ("-2", "runs no seed"), ("1,1", "listed twice"),
                     ("3,-1", "out of range"), (f"0,{2**40}", "out of range"),
                     (str(10**12), "more than any run can finish"),
                     ("many", "not a count")):  # fmt: skip
        with pytest.raises(click.BadParameter, match=why):
            parse_seeds(bad)


# --- the own-model path ------------------------------------------------------------------


@pytest.mark.parametrize("extra, expect", [
    (["--option", "alpah=5"], r"--option alpah: method 'assd' has no such option; it takes "),
    (["--method", "ssd", "--option", "alpha=5", "--option", "alpha=50"], "alpha is given twice"),
    (["--method", "ssd", "--option", "alpha=lots"], r"'ssd' expects float for alpha"),
    (["--option", "estimator=batch", "--estimator", "sample"], r"contradicts --estimator sample"),
    (["--guard", "0.05", "--no-guard"], r"--guard 0\.05 contradicts --no-guard"),
    (["--model", "m1"], r"--model with --model-factory"),
    (["--option", "loss_fn=usermod:nope"], r"loss_fn=usermod:nope: usermod has no 'nope'"),
])  # fmt: skip
def test_own_model_options_are_checked_like_the_table_path(user, tmp_path, extra, expect):
    code, _, err = run([*OWN, *extra])
    assert code == 2, err
    assert __import__("re").search(expect, err), err
    assert "unexpected" not in err and not (tmp_path / "o").exists()


def test_own_model_loss_fn_by_import_path_is_the_loss_used(user, tmp_path):
    from torch.utils.data import DataLoader

    import assd
    from assd.verify.membership import forget_retain_loaders

    code, _, err = run([*OWN, "--method", "ssd", "--option", "alpha=2", "--no-guard",
                        "--option", "loss_fn=usermod:smooth_loss"])  # fmt: skip
    assert code == 0, err
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["result"]["importance_settings"]["loss"] == "usermod.smooth_loss"
    # the same request through the Python API, with the function itself
    model = user.make()
    load_model(model, "w.safetensors")
    data = user.rows()
    forget, _ = forget_retain_loaders(data, [0, 1, 2, 3, 4, 5], batch_size=64)
    by_hand = assd.SSD(alpha=2, loss_fn=user.smooth_loss).unlearn(
        model.eval(), forget=forget, data=DataLoader(data, batch_size=64))
    assert report["result"]["n_dampened"] == by_hand.n_dampened > 0
    written = user.make()
    load_model(written, str(tmp_path / "o" / "model.safetensors"))
    for a, b in zip(written.parameters(), by_hand.model.parameters(), strict=True):
        assert torch.equal(a, b)
    plain = assd.SSD(alpha=2).unlearn(model.eval(), forget=forget,
                                      data=DataLoader(data, batch_size=64))  # fmt: skip
    changed = [not torch.equal(a, b) for a, b in zip(plain.model.parameters(),
                                                     by_hand.model.parameters(), strict=True)]
    assert any(changed)  # the loss did change the dampening


@pytest.mark.parametrize("flag, factory, expect", [
    ("--model-factory", "usermod:SIZE", "usermod:SIZE is a int, not a function"),
    ("--model-factory", "usermod:needs", "usermod:needs needs arguments"),
    ("--model-factory", "usermod:boom", "usermod:boom failed: it raised RuntimeError: the "
                                        "weights server is down"),
    ("--model-factory", "usermod:leave", r"usermod:leave failed: it raised SystemExit \(it "
                                         r"called sys.exit\(0\)\)"),
    ("--model-factory", "broken:make", "broken:make: importing 'broken' failed with KeyError"),
    ("--model-factory", "nomodule:make", "nomodule:make: cannot import 'nomodule'"),
    ("--data-factory", "usermod:leave", r"usermod:leave failed: it raised SystemExit"),
    ("--data-factory", "usermod:boom", r"usermod:boom failed: it raised RuntimeError"),
])  # fmt: skip
def test_a_failing_factory_is_named_with_exit_code_2(user, tmp_path, flag, factory, expect):
    args = list(OWN)
    args[args.index(flag) + 1] = factory
    for command in (args, ["evaluate", *args[1:7]]):
        code, _, err = run(command)
        assert code == 2, err
        assert __import__("re").search(f"{flag} {expect}", err), err
        assert "unexpected" not in err and "report it" not in err
    assert not (tmp_path / "o").exists()


# --- ranges of every command --------------------------------------------------------------


def _table(tmp_path) -> list[str]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.random(160), "c": rng.choice(["a", "b"], 160)})
    frame["label"] = np.where(frame.x > 0.5, "high", "low")
    frame.to_csv(tmp_path / "t.csv", index=False)
    return ["train", "--data", str(tmp_path / "t.csv"), "--target", "label"]


@pytest.mark.parametrize("extra, flag", [
    (["--lr", "0"], "--lr"), (["--lr", "-0.1"], "--lr"), (["--epochs", "0"], "--epochs"),
    (["--epochs", "-1"], "--epochs"), (["--batch-size", "0"], "--batch-size"),
    (["--seed", "-1"], "--seed"), (["--seed", str(10**30)], "--seed"),
    (["--max-levels", "0"], "--max-levels"), (["--lr", "fast"], "--lr"),
])  # fmt: skip
def test_train_refuses_values_that_make_the_work_meaningless(tmp_path, extra, flag):
    code, _, err = run([*_table(tmp_path), "--out", str(tmp_path / "m"), *extra])
    assert code == 2 and f"Invalid value for '{flag}'" in err, err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("extra, expect", [
    (["--seeds", "0"], "--seeds: 0 runs no seed"),
    (["--seeds", "1,1"], "a seed is listed twice"),
    (["--n-train", "0"], "'--n-train': 0 is not in the range"),
    (["--n-train", "150"], "150 rows are too few: at least 200"),
    (["--lr", "0"], "'--lr': 0.0 is not in the range"),
    (["--epochs", "0"], "'--epochs': 0 is not in the range"),
    (["--batch-size", "0"], "'--batch-size': 0 is not in the range"),
    (["--rates", "0,5"], "--rates: 0.0 is out of range"),
    (["--methods", "assd:alpah=5"], "method 'assd:alpah=5': option alpah: method 'assd' has "
                                    "no such option; it takes"),
    (["--methods", "found:ssd:alpha=x"], "'ssd' expects float for alpha"),
])  # fmt: skip
def test_experiment_errors_checks_its_settings_before_any_work(tmp_path, extra, expect):
    out = tmp_path / "e"
    code, _, err = run(["experiment", "errors", "--out", str(out), "--data", "nowhere.csv",
                        "--target", "label", *extra])  # fmt: skip
    assert code == 2 and expect in " ".join(err.split()), err
    assert not out.exists()


@pytest.mark.parametrize("extra, expect", [
    (["--seeds", "0"], "--seeds: 0 runs no seed"),
    (["--model-option", "width=-3"], "--model-option width=-3: sizes of model 'cnn' are counts"),
    (["--epochs", "0"], "'--epochs': 0 is not in the range"),
    (["--methods", "ssd:alpah=1"], "has no such option"),
    (["--methods", "original:alpha=1"], "original takes no options"),
])  # fmt: skip
def test_experiment_forget_checks_its_settings_before_any_work(tmp_path, extra, expect):
    out = tmp_path / "f"
    code, _, err = run(["experiment", "forget", "--out", str(out), *extra])
    assert code == 2 and expect in " ".join(err.split()), err
    assert not out.exists()


def test_table_option_guard_is_not_overridden_by_the_flag_default(tmp_path):
    assert run([*_table(tmp_path), "--out", "m", "--epochs", "2"][:0] or
               [*_table(tmp_path), "--out", str(tmp_path / "m"), "--epochs", "2"])[0] == 0
    (tmp_path / "ids.txt").write_text("0\n1\n2\n")
    base = ["unlearn", "--model", str(tmp_path / "m"), "--data", str(tmp_path / "t.csv"),
            "--forget", str(tmp_path / "ids.txt"), "--no-cache"]  # fmt: skip
    code, _, err = run([*base, "--out", str(tmp_path / "o"), "--option", "guard=0.05"])
    assert code == 0, err
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["method"]["options"]["guard"] == 0.05
    code, _, err = run([*base, "--out", str(tmp_path / "o2"), "--option", "guard=0.05",
                        "--guard", "0.02"])  # fmt: skip
    assert code == 2 and "--guard 0.02 contradicts --option guard=0.05" in err
    code, _, err = run([*base, "--out", str(tmp_path / "o2"), "--data-factory", "x:y"])
    assert code == 2 and "--data-factory only apply with --model-factory" in err
