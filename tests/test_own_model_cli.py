"""Your own architecture: trained elsewhere -> `assd unlearn --model-factory` -> `assd evaluate`,
no pickle anywhere; figures checked against the models run by hand."""

import contextlib
import hashlib
import io
import json
import textwrap

import pytest
import torch
from safetensors.torch import save_model

import assd
from assd.cli import main

USER_MODULE = '''
import torch
from torch import nn
from torch.utils.data import TensorDataset


class TwoTower(nn.Module):
    """An architecture assd has never seen."""

    def __init__(self):
        super().__init__()
        self.left, self.right = nn.Linear(3, 8), nn.Linear(3, 8)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(torch.cat([self.left(x[:, :3]).relu(), self.right(x[:, 3:]).relu()], 1))


def make():
    return TwoTower()


def rows():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 6, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 4] > 0.5).long()
    return {"train": TensorDataset(x[:320], y[:320]), "test": TensorDataset(x[320:], y[320:])}
'''


@pytest.fixture
def user(tmp_path, monkeypatch):
    """A user's package on the path, trained with their own loop, weights in safetensors."""
    (tmp_path / "towers.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    import towers

    torch.manual_seed(0)
    model, train = towers.make(), towers.rows()["train"]
    x, y = train.tensors
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    save_model(model, "trained.safetensors")
    forget = torch.nonzero(y == 2).flatten()[:25]
    (tmp_path / "ids.txt").write_text("\n".join(str(i) for i in forget.tolist()) + "\n")
    yield towers, model.eval(), x, y, forget
    import sys

    sys.modules.pop("towers", None)


def run(args):
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


def acc(model, x, y):
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def test_own_model_unlearn_then_evaluate_without_pickle(user, tmp_path, numpy_alpha,
                                                        retain_importance):
    towers, trained, x, y, forget = user
    before = hashlib.sha256((tmp_path / "trained.safetensors").read_bytes()).hexdigest()
    own = ["--model-factory", "towers:make", "--data-factory", "towers:rows"]
    # --no-guard: the test rows' guard (1 row of 80 = 1.25 pp) would back alpha off; the
    # figures below check ASSD's own alpha against its definition
    code, out, err = run(["unlearn", *own, "--weights", "trained.safetensors",
                          "--forget", "ids.txt", "--out", "clean", "--no-guard"])  # fmt: skip
    assert code == 0, err
    files = (tmp_path / "clean").iterdir()
    assert sorted(p.name for p in files if not p.name.startswith(".")) == [
        "model.json", "model.safetensors", "report.json", "report.md"]  # fmt: skip
    assert hashlib.sha256((tmp_path / "trained.safetensors").read_bytes()).hexdigest() == before
    report = json.loads((tmp_path / "clean" / "report.json").read_text())
    assert report["n_forget"] == 25 and report["n_train"] == 320
    f = assd.compute_importance(trained, [(x[forget], y[forget])], fingerprint=False).tensors
    whole = assd.compute_importance(trained, [(x, y)], fingerprint=False).tensors
    d = retain_importance(whole, f, 320, 25)
    alpha = numpy_alpha(f, d, 25, 320)
    assert report["result"]["alpha"] == pytest.approx(alpha, rel=1e-5)
    selected = sum(int((f[n] > report["result"]["alpha"] * d[n]).sum()) for n in f)
    assert report["result"]["n_dampened"] == selected > 0
    assert report["result"]["importance_settings"]["estimator"] == "sample"  # the default
    clean = towers.make()
    from safetensors.torch import load_model

    load_model(clean, str(tmp_path / "clean" / "model.safetensors"))
    keep = torch.ones(320, dtype=torch.bool)
    keep[forget] = False
    x_test, y_test = towers.rows()["test"].tensors
    for name, (xs, ys) in {"forget": (x[forget], y[forget]), "retain": (x[keep], y[keep]),
                           "test": (x_test, y_test)}.items():  # fmt: skip
        assert report["accuracy"][name]["before"] == pytest.approx(acc(trained, xs, ys))
        assert report["accuracy"][name]["after"] == pytest.approx(acc(clean, xs, ys))
    assert "| forget | 25 |" in out and "alpha" in out
    code, out, err = run(["evaluate", *own, "--weights", "clean", "--json", "eval.json"])
    assert code == 0, err
    scores = json.loads((tmp_path / "eval.json").read_text())
    assert scores["test"]["accuracy"] == pytest.approx(acc(clean, x_test, y_test))
    assert scores["train"]["n"] == 320 and "test: 80 rows, accuracy" in out


def test_own_model_bad_inputs_get_one_paragraph(user, tmp_path):
    own = ["unlearn", "--model-factory", "towers:make", "--forget", "ids.txt", "--out", "o"]
    code, _, err = run(own)
    assert code == 2 and "--weights, --data-factory missing" in err
    torch.save(user[1].state_dict(), tmp_path / "w.pt")
    code, _, err = run([*own, "--weights", "w.pt", "--data-factory", "towers:rows"])
    assert code == 2 and "not a .safetensors file; assd reads no pickle" in err
    code, _, err = run([*own, "--weights", "trained.safetensors", "--data-factory", "towers:nope"])
    assert code == 2 and "towers has no 'nope'" in err
    (tmp_path / "names.txt").write_text("r1\n")
    args = [*own[:-4], "--forget", "names.txt", "--out", "o", "--weights", "trained.safetensors",
            "--data-factory", "towers:rows"]  # fmt: skip
    code, _, err = run(args)
    assert code == 2 and "forget ids are row positions" in err
    assert not (tmp_path / "o").exists()
    code, _, err = run(["unlearn", "--forget", "ids.txt", "--out", "o"])
    assert code == 2 and "pass --model and --data" in err


def test_own_model_with_nan_weights_is_refused(user, tmp_path):
    trained = user[1]
    with torch.no_grad():
        trained.head.bias[0] = float("nan")
    save_model(trained, "nan.safetensors")
    own = ["--model-factory", "towers:make", "--data-factory", "towers:rows"]
    code, _, err = run(["evaluate", *own, "--weights", "nan.safetensors"])
    assert code == 2 and "NaN or infinite values in 'head.bias'" in err


RECIPES = '''
import torch
import towers

CALLS = []


def train(x, y, seed):
    CALLS.append((len(y), seed))
    torch.manual_seed(seed)
    model = towers.make()
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(40):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model


def not_a_model(x, y, seed):
    return "done"
'''


def test_own_model_train_fn_gives_assd_auto_references_kept_in_the_cache_dir(user, tmp_path):
    (tmp_path / "recipes.py").write_text(textwrap.dedent(RECIPES))
    import recipes

    own = ["unlearn", "--model-factory", "towers:make", "--data-factory", "towers:rows",
           "--weights", "trained.safetensors", "--forget", "ids.txt", "--method", "assd-auto",
           "--train-fn", "recipes:train", "--cache-dir", "refs"]  # fmt: skip
    code, out, err = run([*own, "--out", "a"])
    assert code == 0, err
    target = json.loads((tmp_path / "a" / "report.json").read_text())["result"]["outcome"]["target"]
    assert target["basis"] == "references" and target["references_from"] == "training"
    n = target["n_references"]
    assert len(recipes.CALLS) == n >= 2
    rows = 320 if n == 4 else 295  # row-level: halves of all rows; a group: of the rest
    assert all(count in (rows // 2, rows - rows // 2) for count, _ in recipes.CALLS)
    assert len(list((tmp_path / "refs").glob("references-*.safetensors"))) == 1
    assert f"reference models: {n}, trained for this request" in out
    code, out, err = run([*own, "--out", "b"])  # a later command: read from refs/
    assert code == 0, err
    again = json.loads((tmp_path / "b" / "report.json").read_text())["result"]["outcome"]
    assert again["target"]["references_from"] == "cache" and len(recipes.CALLS) == n
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == \
        (tmp_path / "b" / "model.safetensors").read_bytes()
    code, _, err = run([*own[:-4], "--out", "c"])  # no --train-fn: the rule, said so
    assert code == 0, err
    rule = json.loads((tmp_path / "c" / "report.json").read_text())["result"]["outcome"]
    assert rule["target"].get("basis") != "references" and "rule" in rule["verdict"]
    import sys

    sys.modules.pop("recipes", None)


def test_own_model_train_fn_mistakes_are_named(user, tmp_path):
    (tmp_path / "recipes.py").write_text(textwrap.dedent(RECIPES))
    own = ["unlearn", "--model-factory", "towers:make", "--data-factory", "towers:rows",
           "--weights", "trained.safetensors", "--forget", "ids.txt"]  # fmt: skip
    code, _, err = run([*own, "--train-fn", "recipes:train", "--out", "o"])  # default: assd
    assert code == 2 and "'assd' uses none (use --method assd-auto)" in err
    code, _, err = run([*own, "--method", "assd-auto", "--train-fn", "recipes:not_a_model",
                        "--out", "o"])  # fmt: skip
    assert code == 2 and "recipes:not_a_model returned str" in err
    assert not (tmp_path / "o").exists()
    code, _, err = run(["evaluate", "--model-factory", "towers:make", "--data-factory",
                        "towers:rows", "--weights", "trained.safetensors",
                        "--train-fn", "recipes:train"])  # fmt: skip
    assert code == 2 and "applies to assd unlearn only" in err
    import sys

    sys.modules.pop("recipes", None)


def test_own_model_baseline_report_carries_its_verdict(user, tmp_path):
    # a baseline through the own-model CLI is scored as the SSD family is: its report's
    # outcome matches the accuracies measured here on the model it wrote
    towers, trained, x, y, forget = user
    own = ["--model-factory", "towers:make", "--data-factory", "towers:rows"]
    code, out, err = run(["unlearn", *own, "--weights", "trained.safetensors", "--forget",
                          "ids.txt", "--method", "finetune", "--out", "ft"])  # fmt: skip
    assert code == 0, err
    report = json.loads((tmp_path / "ft" / "report.json").read_text())
    clean = towers.make()
    from safetensors.torch import load_model

    load_model(clean, str(tmp_path / "ft" / "model.safetensors"))
    outcome = report["result"]["outcome"]
    assert outcome["before"]["forget"]["accuracy"] == pytest.approx(
        acc(trained, x[forget], y[forget]))
    assert outcome["after"]["forget"]["accuracy"] == pytest.approx(acc(clean, x[forget], y[forget]))
    changed = sum(int((a != b).sum()) for a, b in zip(trained.parameters(), clean.parameters(),
                                                     strict=True))  # fmt: skip
    assert outcome["n_changed"] == changed > 0
    assert outcome["verdict"].startswith(f"{changed} of ") and "- verdict:" in out
    assert "(set aside by the guard)" not in out  # no such rows: no such legend line
