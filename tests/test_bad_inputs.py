"""The bad-input matrix: every class of bad input, over the CLI and the API.

Each case states what the user does and what must happen: at the CLI a
one-paragraph error and a non-zero exit code (no traceback), or a documented
way the input is handled. Every CLI case also checks that no input file
changed. ``docs/reliability.md`` is generated from these cases:

    ASSD_WRITE_DOCS=1 python -m pytest tests/test_bad_inputs.py

and a test fails when the committed file is out of date.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import assd
from assd.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"


@dataclass
class Case:
    id: str
    title: str  # what the user did
    interface: str  # "CLI" or "API"
    run: object  # CLI: ws -> args (exit code must be != 0); API: ws -> None (must raise)
    expect: str  # regex the message must match
    error: type = ValueError  # API: the exception type


CASES: list[Case] = []
HANDLED: list[tuple[str, str, str, object]] = []  # (id, title, how it is handled, check)


def cli(id_, title, expect):
    def add(fn):
        CASES.append(Case(id_, title, "CLI", fn, expect))
        return fn

    return add


def api(id_, title, expect, error=ValueError):
    def add(fn):
        CASES.append(Case(id_, title, "API", fn, expect, error))
        return fn

    return add


def handled(id_, title, how):
    def add(fn):
        HANDLED.append((id_, title, how, fn))
        return fn

    return add


# ----------------------------------------------------------------------------- workspace


class Workspace:
    """A folder with a table, two trained models and helpers to write more files."""

    def __init__(self, root: Path):
        self.root = root
        rng = np.random.default_rng(0)
        n = 300
        frame = pd.DataFrame(
            {
                "id": [f"r{i}" for i in range(n)],
                "x1": rng.normal(size=n).round(4),
                "x2": rng.normal(size=n).round(4),
                "city": rng.choice(["Zürich", "Genève", "Bern"], n),
            }
        )
        frame["label"] = np.where(frame.x1 + 0.8 * (frame.city == "Bern") > 0.2, "late", "ok")
        self.frame = frame
        frame.to_csv(root / "t.csv", index=False)
        common = ["--data", "t.csv", "--target", "label", "--epochs", "2", "--batch-size", "64"]
        assert main(["train", *common, "--id-column", "id", "--out", "m1"]) == 0
        assert main(["train", *common, "--out", "m0"]) == 0
        self.write("f.txt", "r1\nr2\nr3\n")
        self.train_ids = [i for i in frame.id if i in set(self._train_ids())]

    def _train_ids(self):
        from assd.tabular import TabularModel, trained_ids

        return trained_ids(TabularModel.load(self.root / "m1"), self.frame)

    def write(self, name: str, content: str | bytes) -> str:
        path = self.root / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return name

    def table(self, name: str, frame: pd.DataFrame, **kwargs) -> str:
        frame.to_csv(self.root / name, index=False, **kwargs)
        return name

    def copy_model(self, name: str) -> Path:
        import shutil

        shutil.copytree(self.root / "m1", self.root / name, dirs_exist_ok=True)
        for cached in (self.root / name).glob("importance-*"):
            cached.unlink()
        return self.root / name

    def hashes(self) -> dict[str, str]:
        out = {}
        for path in self.root.rglob("*"):
            if path.is_file() and not path.name.startswith(("importance-", ".")):
                out[str(path.relative_to(self.root))] = hashlib.sha256(
                    path.read_bytes()
                ).hexdigest()
        return out


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-inputs")
    with contextlib.chdir(root):
        yield Workspace(root)


def run_cli(args: list[str]) -> tuple[int, str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(args)
    return code, err.getvalue()


@contextlib.contextmanager
def warnings_of(name: str):
    """Collect the messages a logger emits inside the block."""
    import logging

    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logging.getLogger(name).addHandler(handler)
    try:
        yield seen
    finally:
        logging.getLogger(name).removeHandler(handler)


UNLEARN = ["unlearn", "--model", "m1", "--data", "t.csv", "--forget", "f.txt"]


def unlearn(out: str, **changes) -> list[str]:
    args = list(UNLEARN)
    for flag, value in changes.items():
        if f"--{flag}" in args:
            args[args.index(f"--{flag}") + 1] = value
        else:
            args += [f"--{flag}", value]
    return [*args, "--out", out]


# ----------------------------------------------------------------------------- CLI cases


@cli("empty-forget", "forget file with no ids", r"names no rows")
def _(ws):
    return unlearn("o", forget=ws.write("empty.txt", "\n# nothing\n"))


@cli("duplicate-ids", "forget file naming a row twice", r"more than once, e\.g\. \['r1'\]")
def _(ws):
    return unlearn("o", forget=ws.write("dup.txt", "r1\nr2\nr1\n"))


@cli("unknown-ids", "ids that are not rows of the table", r"not rows of the data, e\.g\. \['zz9'\]")
def _(ws):
    return unlearn("o", forget=ws.write("unknown.txt", "r1\nzz9\n"))


@cli("row-out-of-range", "row number beyond the table (model without id column)", r"\['5000'\]")
def _(ws):
    return [*unlearn("o", forget=ws.write("range.txt", "3\n5000\n")), "--model", "m0"]


@cli("forget-everything", "forget every training row", r"cover every training row")
def _(ws):
    return unlearn("o", forget=ws.write("all.txt", "\n".join(ws.train_ids)))


@cli("junk-forget-file", "forget file that is binary junk", r"not a UTF-8 text file")
def _(ws):
    return unlearn("o", forget=ws.write("junk.txt", bytes(range(128, 256)) * 4))


@cli("missing-target", "table without the target column", r"no target column 'label'")
def _(ws):
    return unlearn("o", data=ws.table("nolabel.csv", ws.frame.drop(columns="label")))


@cli("unseen-class", "training row with a class the model never saw", r"not trained on")
def _(ws):
    frame = ws.frame.copy()
    frame.loc[frame.id == ws.train_ids[0], "label"] = "very-late"
    return unlearn("o", data=ws.table("unseen.csv", frame))


@cli("missing-column", "table lacking a feature column", r"lacks column\(s\) \['x2'\]")
def _(ws):
    return unlearn("o", data=ws.table("nocol.csv", ws.frame.drop(columns="x2")))


@cli("infinite-feature", "infinite value in a feature", r"'x1' holds 1 infinite value")
def _(ws):
    frame = ws.frame.copy()
    frame.loc[4, "x1"] = np.inf
    return unlearn("o", data=ws.table("inf.csv", frame))


@cli("text-in-number", "text in a numeric column", r"'x2' holds a non-number \('n/a-ish'\)")
def _(ws):
    frame = ws.frame.astype({"x2": object})
    frame.loc[7, "x2"] = "n/a-ish"
    return unlearn("o", data=ws.table("text.csv", frame))


@cli("unreadable-table", "data file that is not a table", r"cannot read .* as a table")
def _(ws):
    return unlearn(
        "o",
        data=ws.write(
            "garbage.csv", bytes(np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8))
        ),
    )


@cli("nan-weights", "model whose weights hold NaN", r"'net\.0\.weight' holds NaN")
def _(ws):
    from safetensors.torch import load_file, save_file

    folder = ws.copy_model("m-nan")
    # clone: safetensors maps the file, and rewriting a mapped file in place crashes (SIGBUS)
    state = {k: v.clone() for k, v in load_file(folder / "model.safetensors").items()}
    state["net.0.weight"][0, 0] = float("nan")
    save_file(state, folder / "model.safetensors")
    return unlearn("o", model="m-nan")


@cli("truncated-checkpoint", "truncated model file", r"truncated, corrupt")
def _(ws):
    folder = ws.copy_model("m-cut")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:300])
    return unlearn("o", model="m-cut")


@cli("pickle-as-checkpoint", "a torch.save pickle where safetensors belongs", r"corrupt")
def _(ws):
    from safetensors.torch import load_file

    folder = ws.copy_model("m-pickle")
    state = {k: v.clone() for k, v in load_file(folder / "model.safetensors").items()}
    torch.save(state, folder / "model.safetensors")
    return unlearn("o", model="m-pickle")


@cli("pickle-weights", "pickle weights for an experiment", r"allow_pickle=True \(--allow-pickle\)")
def _(ws):
    torch.save(assd.models.build_model("cnn").state_dict(), ws.root / "w.pt")
    return ["experiment", "forget", "--out", "ef", "--weights", "w.pt", "--seeds", "1",
            "--methods", "assd", "--no-progress"]  # fmt: skip


@cli("not-a-model", "model path that is not a model folder", r"not a model folder")
def _(ws):
    return unlearn("o", model=".")


@cli("missing-data", "data file that does not exist", r"no data file at nope\.csv")
def _(ws):
    return unlearn("o", data="nope.csv")


@cli("missing-forget", "forget file that does not exist", r"no forget file at nope\.txt")
def _(ws):
    return unlearn("o", forget="nope.txt")


@cli("out-is-input", "--out equal to the input model folder (even with --overwrite)", r"destroy")
def _(ws):
    return [*unlearn("m1"), "--overwrite"]


@cli("out-holds-input", "--out a folder that holds the input data", r"destroy the input")
def _(ws):
    return ["train", "--data", "t.csv", "--target", "label", "--out", ".", "--overwrite"]


@cli("out-exists", "--out that already exists", r"already exists; choose a new --out")
def _(ws):
    (ws.root / "taken").mkdir(exist_ok=True)
    return unlearn("taken")


@cli("read-only-out", "--out in a read-only location", r"cannot write .*not writable")
def _(ws):
    if os.geteuid() == 0:  # root ignores file modes; sysfs refuses new files even to root
        return unlearn("/sys/assd-out")
    locked = ws.root / "locked"
    locked.mkdir(exist_ok=True)
    locked.chmod(0o555)
    return unlearn("locked/out")


@cli("unknown-method", "unknown method name", r"known methods: alfssd, amnesiac, assd")
def _(ws):
    return unlearn("o", method="forget-harder")


@cli("unknown-dataset", "unknown data set name", r"'nope' is not one of 'digits', 'cifar10'")
def _(ws):
    return ["experiment", "forget", "--dataset", "nope", "--out", "ex"]


@cli("unknown-architecture", "unknown model name", r"'big' is not one of 'mlp'")
def _(ws):
    return ["train", "--data", "t.csv", "--target", "label", "--out", "mb", "--model", "big"]


def nan_model(ws, name: str) -> str:
    from safetensors.torch import load_file, save_file

    folder = ws.copy_model(name)
    # clone: safetensors maps the file, and rewriting a mapped file in place crashes (SIGBUS)
    state = {k: v.clone() for k, v in load_file(folder / "model.safetensors").items()}
    state["net.0.weight"][0, 0] = float("nan")
    save_file(state, folder / "model.safetensors")
    return name


def edited_model(ws, name: str, file: str, change) -> str:
    import json

    folder = ws.copy_model(name)
    state = json.loads((folder / file).read_text())
    change(state)
    (folder / file).write_text(json.dumps(state))
    return name


TRAIN = ["train", "--data", "t.csv", "--target", "label", "--epochs", "1", "--batch-size", "64"]


@cli("out-inside-input", "--out inside the input model folder (onto its weights), --overwrite",
     r"lies inside the input m1")  # fmt: skip
def _(ws):
    return [*unlearn("m1/model.safetensors"), "--overwrite"]


@cli("json-into-model", "evaluate --json onto the model's own model.json, --overwrite",
     r"--json m1/model\.json lies inside the input m1")  # fmt: skip
def _(ws):
    return ["evaluate", "--model", "m1", "--data", "t.csv", "--json", "m1/model.json",
            "--overwrite"]  # fmt: skip


@cli("overwrite-foreign-folder", "--out --overwrite onto a folder of the user's own files",
     r"a folder assd did not write")  # fmt: skip
def _(ws):
    (ws.root / "project").mkdir(exist_ok=True)
    ws.write("project/notes.md", "my notes")
    return [*unlearn("project"), "--overwrite"]


@cli("overwrite-foreign-file", "--out --overwrite onto a single file of the user's",
     r"is a file; --overwrite only replaces output folders")  # fmt: skip
def _(ws):
    return [*unlearn(ws.write("notes.txt", "mine")), "--overwrite"]


@cli("diverged-training", "training that diverges (NaN weights)", r"diverged\. Nothing was written")
def _(ws):
    return [*TRAIN, "--out", "m-diverged", "--lr", "1e30"]


@cli("diverged-baseline", "an unlearning baseline that diverges (NaN weights)",
     r"unlearned with 'gradient-ascent' has NaN or infinite values")  # fmt: skip
def _(ws):
    return [*unlearn("o-ga"), "--method", "gradient-ascent", "--option", "lr=1e30"]


@cli("nan-model-evaluate", "evaluate a model whose weights hold NaN",
     r"NaN or infinite values in 'net\.0\.weight'")  # fmt: skip
def _(ws):
    return ["evaluate", "--model", nan_model(ws, "m-nan-eval"), "--data", "t.csv"]


@cli("unknown-option", "--option key the method does not take",
     r"--option alpah: method 'assd' has no such option; it takes batch_fn, ")  # fmt: skip
def _(ws):
    return [*unlearn("o"), "--option", "alpah=5"]


@cli("bad-option-value", "--option value of the wrong kind", r"'ssd' expects float for alpha")
def _(ws):
    return [*unlearn("o"), "--method", "ssd", "--option", "alpha=lots"]


@cli("option-not-for-method", "--option another method of the family takes (ASSD's alpha)",
     r"ASSD chooses alpha itself")  # fmt: skip
def _(ws):
    return [*unlearn("o"), "--option", "alpha=5"]


@cli("feature-typo", "--features naming a column that is not there", r"did you mean 'city'\?")
def _(ws):
    return [*TRAIN, "--out", "m-typo", "--features", "x1,cty"]


@cli("categorical-typo", "--categorical naming a column that is not there",
     r"--categorical names column\(s\) \['x3'\]")  # fmt: skip
def _(ws):
    return [*TRAIN, "--out", "m-typo", "--categorical", "x3"]


@cli("target-as-feature", "--features including the target", r"includes the target 'label'")
def _(ws):
    return [*TRAIN, "--out", "m-leak", "--features", "x1,label"]


@cli("id-as-feature", "--features including the id column", r"includes the id column 'id'")
def _(ws):
    return [*TRAIN, "--out", "m-leak", "--id-column", "id", "--features", "x1,id"]


@cli("one-hot-collision", "a column named like another column's one-hot feature",
     r"share the name\(s\) \['city=Bern'\]")  # fmt: skip
def _(ws):
    frame = ws.frame.assign(**{"city=Bern": np.arange(len(ws.frame)) % 7})
    return ["train", "--data", ws.table("collide.csv", frame), "--target", "label", "--out",
            "m-collide", "--id-column", "id", "--epochs", "1"]  # fmt: skip


@cli("edited-task-json", "task.json edited into a malformed field", r"not a valid test_share")
def _(ws):
    model = edited_model(ws, "m-task", "task.json", lambda t: t.update(test_share="a lot"))
    return unlearn("o", model=model)


@cli("edited-model-json", "model.json's training settings edited wrongly",
     r"malformed settings \[\"epochs='many'\"\]")  # fmt: skip
def _(ws):
    model = edited_model(ws, "m-spec", "model.json",
                         lambda m: m["extra"]["training"].update(epochs="many"))  # fmt: skip
    return unlearn("o", model=model)


@cli("eval-data-twice", "the same --eval-data table twice", r"--eval-data t\.csv is given twice")
def _(ws):
    return [*unlearn("o"), "--eval-data", "t.csv", "--eval-data", "t.csv"]


@cli("bad-device", "--device that is not a device", r"--device 'gpu7' is not a device")
def _(ws):
    return ["experiment", "forget", "--out", "ex-dev", "--device", "gpu7", "--seeds", "1"]


@cli("bad-model-option", "--model-option the model does not take",
     r"--model-option widht: model 'cnn' has no such keyword")  # fmt: skip
def _(ws):
    return ["experiment", "forget", "--out", "ex-opt", "--model-option", "widht=3"]


# ----------------------------------------------------------------------------- API cases


def tiny(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)
    return model, x, y


@api("api-empty-forget", "empty forget set", r"empty")
def _(ws):
    model, x, y = tiny()
    assd.ASSD().unlearn(model, forget=[], data=assd.TensorData(x, y))


@api("api-forget-all", "forget set as large as the data", r"as large as the training set")
def _(ws):
    model, x, y = tiny()
    assd.ASSD().unlearn(model, forget=assd.TensorData(x, y), data=assd.TensorData(x, y))


@api("api-nan-inputs", "NaN in input tensors", r"batch 0 contains NaN or infinite input")
def _(ws):
    model, x, y = tiny()
    x[2, 1] = float("nan")
    assd.compute_importance(model, [(x, y)])


@api("api-all-frozen", "every parameter frozen", r"no trainable parameters")
def _(ws):
    model, x, y = tiny()
    assd.ASSD().unlearn(model.requires_grad_(False), forget=[(x[:4], y[:4])], data=[(x, y)])


@api("api-stale-importance", "saved importance of other weights (stale)", r"stale")
def _(ws):
    model, x, y = tiny()
    imp = assd.compute_importance(model, [(x, y)], estimator="batch")
    with torch.no_grad():
        model[0].weight[0, 0] += 1e-4
    assd.ASSD.paper().unlearn(model, forget=[(x[:4], y[:4])], importance=imp)


@api("api-foreign-importance", "importance of another model", r"does not belong to this model")
def _(ws):
    model, x, y = tiny()
    imp = assd.compute_importance(nn.Linear(4, 3), [(x, y)], estimator="batch")
    assd.ASSD.paper().unlearn(model, forget=[(x[:4], y[:4])], importance=imp)


@api("api-damaged-importance", "importance holding NaN", r"holds NaN, infinite or negative")
def _(ws):
    model, x, y = tiny()
    imp = assd.compute_importance(model, [(x, y)], estimator="batch")
    imp.tensors["0.bias"][0] = float("nan")
    assd.ASSD.paper().unlearn(model, forget=[(x[:4], y[:4])], importance=imp)


@api("api-pickle", "loading a pickle checkpoint", r"allow_pickle=True", ValueError)
def _(ws):
    torch.save({"w": torch.ones(2)}, ws.root / "api.pt")
    assd.store.checkpoints.load_state_dict(ws.root / "api.pt")


@api("api-corrupt-importance", "truncated importance file", r"truncated or corrupt")
def _(ws):
    model, x, y = tiny()
    assd.compute_importance(model, [(x, y)]).save(ws.root / "imp.safetensors")
    data = (ws.root / "imp.safetensors").read_bytes()
    (ws.root / "imp.safetensors").write_bytes(data[: len(data) // 2])
    assd.Importance.load(ws.root / "imp.safetensors")


# ----------------------------------------------------------------------------- handled inputs


@handled(
    "nan-feature",
    "empty / NaN feature cells",
    "treated as missing: filled with the training median of that column",
)
def _(ws):
    frame = ws.frame.copy()
    frame.loc[frame.id == "r1", "x1"] = np.nan
    code, _ = run_cli(unlearn("o-nan", data=ws.table("nan.csv", frame)))
    assert code == 0


@handled(
    "other-encoding",
    "CSV in cp1252 with ';' delimiters",
    "encoding and delimiter are sniffed; the result equals the UTF-8 comma file's",
)
def _(ws):
    ws.table("semi.csv", ws.frame, sep=";", encoding="cp1252")
    assert run_cli(unlearn("o-a"))[0] == 0 and run_cli(unlearn("o-b", data="semi.csv"))[0] == 0
    a, b = (ws.root / "o-a" / "model.safetensors"), (ws.root / "o-b" / "model.safetensors")
    assert a.read_bytes() == b.read_bytes()


@handled(
    "stale-cache",
    "damaged importance cache file beside the model",
    "warned about, ignored and recomputed; the result equals an uncached run",
)
def _(ws):
    ws.copy_model("m-cache")
    assert run_cli(unlearn("o-c1", model="m-cache"))[0] == 0
    (cached,) = (ws.root / "m-cache").glob("importance-*")
    cached.write_bytes(cached.read_bytes()[:200])
    with warnings_of("assd") as seen:
        code, _ = run_cli(unlearn("o-c2", model="m-cache"))
    assert code == 0 and any("ignoring the cached importance" in m for m in seen)
    first, second = (ws.root / f"o-c{i}" / "model.safetensors" for i in (1, 2))
    assert first.read_bytes() == second.read_bytes()


@handled(
    "frozen",
    "some parameters frozen (requires_grad=False)",
    "only trainable parameters are scored and dampened; frozen ones keep their bits",
)
def _(ws):
    model, x, y = tiny()
    model[0].requires_grad_(False)
    result = assd.SSD(alpha=0.5).unlearn(model, forget=[(x[:6], y[:6])], data=[(x, y)])
    assert torch.equal(result.model[0].weight, model[0].weight) and result.n_dampened > 0
    assert "0.weight" not in result.per_layer


@handled(
    "half-precision",
    "bf16 / fp16 model",
    "gradients are accumulated in float32; the model keeps its dtype",
)
def _(ws):
    for dtype in (torch.bfloat16, torch.float16):
        model, x, y = tiny()
        model = model.to(dtype)
        imp = assd.compute_importance(model, [(x.to(dtype), y)], estimator="batch")
        assert all(
            t.dtype == torch.float32 and torch.isfinite(t).all() for t in imp.tensors.values()
        )
        result = assd.SSD.paper(alpha=1.0).unlearn(
            model, forget=[(x[:6].to(dtype), y[:6])], importance=imp
        )
        assert result.model[0].weight.dtype == dtype and result.n_dampened > 0


@handled(
    "tied",
    "shared (tied) parameters",
    "scored once under their first name; the tie survives unlearning and saving",
)
def _(ws):
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)
            self.b.weight = self.a.weight
            self.head = nn.Linear(4, 3)

        def forward(self, x):
            return self.head(torch.relu(self.b(torch.relu(self.a(x)))))

    _, x, y = tiny()
    result = assd.SSD(alpha=0.5).unlearn(Tied(), forget=[(x[:6], y[:6])], data=[(x, y)])
    assert "b.weight" not in result.per_layer and result.model.a.weight is result.model.b.weight
    from safetensors.torch import load_model, save_model

    save_model(result.model, str(ws.root / "tied.safetensors"))
    back = Tied()
    load_model(back, str(ws.root / "tied.safetensors"))
    assert back.a.weight is back.b.weight and torch.equal(back.a.weight, result.model.a.weight)


@handled(
    "train-mode-bn",
    "model in train mode with BatchNorm",
    "importance may use batch statistics (train_mode=True) but running statistics, "
    "modes and .grad are restored exactly",
)
def _(ws):
    model, x, y = tiny()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assd.ASSD.paper(train_mode=True).unlearn(model, forget=[(x[:6], y[:6])], data=[(x, y)])
    assert model.training and all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def report_of(ws, folder: str) -> dict:
    import json

    return json.loads((ws.root / folder / "report.json").read_text())


@handled(
    "ids-as-written",
    "row ids with leading zeros and spaces, commas, '#', 'NA', '1e3', ints beside strings",
    "read exactly as written (as text, nothing parsed or taken for missing); a forget file "
    "line that is a row id is taken whole; exactly those rows are forgotten",
)
def _(ws):
    import json

    from assd.tabular.task import ids_digest

    special = ["007", " 7", "a,b", "x#1", "NA", "1e3", "7", "0x1F"]
    frame = ws.frame.assign(id=special + [f"{i:04d}" for i in range(len(ws.frame) - 8)])
    table = ws.table("ids.csv", frame)
    assert run_cli([*TRAIN, "--data", table, "--out", "m-ids", "--id-column", "id",
                    "--split", "none"])[0] == 0  # fmt: skip
    forget = ws.write("forget-ids.txt", "\n".join(special[:6]) + "\n")
    assert run_cli(unlearn("o-ids", model="m-ids", data=table, forget=forget))[0] == 0
    assert report_of(ws, "o-ids")["n_forget"] == 6
    spec = json.loads((ws.root / "o-ids" / "model.json").read_text())
    assert spec["extra"]["unlearned"][-1]["forget_ids_sha256"] == ids_digest(sorted(special[:6]))


@handled(
    "eval-data-names",
    "--eval-data files named test.csv (two of them, in different folders)",
    "each keeps its own row, named by its path; the model's own test figure stays",
)
def _(ws):
    for folder, rows in (("s0", slice(0, 100)), ("s1", slice(100, 160))):
        (ws.root / folder).mkdir(exist_ok=True)
        ws.table(f"{folder}/test.csv", ws.frame.iloc[rows])
    args = [*unlearn("o-evals"), "--eval-data", "s0/test.csv", "--eval-data", "s1/test.csv"]
    assert run_cli(args)[0] == 0
    accuracy = report_of(ws, "o-evals")["accuracy"]
    n_test = len(ws.frame) - len(ws.train_ids)
    assert accuracy["test"]["n"] == n_test
    assert (accuracy["s0/test.csv"]["n"], accuracy["s1/test.csv"]["n"]) == (100, 60)


@handled(
    "resorted-or-grown-table",
    "the training table re-sorted, or grown by new rows, after training",
    "held-out rows are the ids stored in task.json, not positions: a re-sorted table gives "
    "the same test figure silently; a changed table is warned about",
)
def _(ws):
    import json

    shuffled = ws.table("shuffled.csv", ws.frame.sample(frac=1.0, random_state=3))
    grown = ws.frame.copy()
    grown = pd.concat([grown, grown.iloc[:20].assign(id=[f"new{i}" for i in range(20)])])
    reports = {}
    for name in ("t.csv", shuffled, ws.table("grown.csv", grown)):
        out = f"eval-{name}.json"
        with warnings_of("assd") as seen:
            code, _ = run_cli(["evaluate", "--model", "m1", "--data", name, "--rows", "test",
                               "--json", out, "--overwrite"])  # fmt: skip
        assert code == 0
        reports[name] = (json.loads((ws.root / out).read_text()), seen)
    same, moved = reports["t.csv"][0], reports[shuffled][0]
    assert (moved["n"], moved["accuracy"], moved["confusion"]) == (
        same["n"], same["accuracy"], same["confusion"])  # fmt: skip
    assert not any("not the" in m for m in reports[shuffled][1])
    assert any("are not the" in m for m in reports["grown.csv"][1])


@handled(
    "batch-of-one",
    "a last training batch of one row with BatchNorm (1025 training rows, batch 1024)",
    "the one-row batch is skipped (a different random row each epoch); training succeeds",
)
def _(ws):
    from assd.tabular import TrainConfig, train_mlp

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(1025, 3, generator=g), torch.randint(0, 2, (1025,), generator=g)
    config = TrainConfig(model="mlp", epochs=1, batch_size=1024)
    model = train_mlp(x, y, n_classes=2, config=config)  # before: BatchNorm's ValueError
    assert any(isinstance(m, nn.BatchNorm1d) for m in model.modules())
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert [len(b) for b, _ in config.loader(x, y)] == [1024]


@handled(
    "cache-full-disk",
    "the importance cache cannot be written (a full disk: safetensors' own error type)",
    "warned about; the request goes on without caching and gives the uncached result",
)
def _(ws):
    import safetensors
    import safetensors.torch

    ws.copy_model("m-full")
    original = safetensors.torch.save_file

    def full(tensors, filename, *args, **kwargs):
        if ".importance-" not in str(filename):  # the model folder still gets written
            return original(tensors, filename, *args, **kwargs)
        raise safetensors.SafetensorError("I/O error: No space left on device (os error 28)")

    safetensors.torch.save_file = full
    try:
        with warnings_of("assd") as seen:
            code, _ = run_cli(unlearn("o-full", model="m-full"))
    finally:
        safetensors.torch.save_file = original
    assert code == 0 and any("cannot cache the importance" in m for m in seen)
    assert not list((ws.root / "m-full").glob("importance-*"))


@handled(
    "cache-damaged-framing-ok",
    "a cache entry with valid framing but changed contents, or another model's entry",
    "its checksum (or key) does not match: warned about by file name, ignored, recomputed "
    "and rewritten; the result equals an uncached run",
)
def _(ws):
    from safetensors import safe_open
    from safetensors.torch import save_file

    ws.copy_model("m-damaged")
    assert run_cli(unlearn("o-d1", model="m-damaged"))[0] == 0
    (cached,) = (ws.root / "m-damaged").glob("importance-*")
    with safe_open(str(cached), "pt") as handle:
        meta = handle.metadata()
        tensors = {k: handle.get_tensor(k).clone() for k in handle.keys()}  # noqa: SIM118
    first = sorted(tensors)[0]
    tensors[first] = tensors[first] * 1.5  # plausible values, valid file: only a checksum tells
    save_file(tensors, str(cached), metadata=meta)
    with warnings_of("assd") as seen:
        assert run_cli(unlearn("o-d2", model="m-damaged"))[0] == 0
    assert any(cached.name in m and "checksum" in m for m in seen)
    first, second = (ws.root / f"o-d{i}" / "model.safetensors" for i in (1, 2))
    assert first.read_bytes() == second.read_bytes()
    with warnings_of("assd") as seen:  # rewritten: the third run reuses it without a word
        assert run_cli(unlearn("o-d3", model="m-damaged"))[0] == 0
    assert not seen and report_of(ws, "o-d3")["importance_cache"]["hit"]


@handled(
    "misread-columns",
    "numbers with decimal commas, a numeric column with a stray word, a saved index column",
    "read as text or used as given, with a warning naming the column and what to do",
)
def _(ws):
    frame = ws.frame.assign(x3=[f"{v:.2f}".replace(".", ",") for v in ws.frame.x1])
    frame["x4"] = frame.x2.astype(object)
    frame.loc[3, "x4"] = "n/a-ish"
    frame.to_csv(ws.root / "dialect.csv", sep=";", index=True)  # pandas' index: "Unnamed: 0"
    with warnings_of("assd") as seen:
        code, _ = run_cli([*TRAIN, "--data", "dialect.csv", "--out", "m-dialect",
                           "--features", "x1,x3,Unnamed: 0"])  # fmt: skip
    assert code == 0
    text = " ".join(seen)
    assert "'x3' looks numeric with decimal commas" in text
    assert "'x4' is mostly numbers" in text and "'Unnamed: 0' looks like a row index" in text


@handled(
    "file-modes",
    "outputs read by another user",
    "every output file (weights, cache entries, reports) is 0666 less the umask, like the rest",
)
def _(ws):
    mask = os.umask(0o022)
    try:
        ws.copy_model("m-modes")
        assert run_cli(unlearn("o-modes", model="m-modes"))[0] == 0
    finally:
        os.umask(mask)
    files = [*(ws.root / "o-modes").iterdir(), *(ws.root / "m-modes").glob("importance-*")]
    assert files and {oct(p.stat().st_mode & 0o777) for p in files} == {"0o644"}
    assert oct((ws.root / "o-modes").stat().st_mode & 0o777) == "0o755"


# ----------------------------------------------------------------------------- the tests

RESULTS: dict[str, str] = {}


def normalise(text: str, ws) -> str:
    text = " ".join(text.replace(str(ws.root) + "/", "").replace(str(ws.root), ".").split())
    for read_only in ("/sys/assd-out", "locked/out"):  # root and non-root runs read alike
        text = text.replace(read_only, "<read-only>/out")
    text = text.replace("(/sys is not", "(<read-only> is not").replace(
        "(locked is not", "(<read-only> is not"
    )
    return text.removeprefix("Error: ").strip()


def run_case(case: Case, ws) -> str:
    if case.interface == "API":
        with pytest.raises(case.error) as caught:
            case.run(ws)
        return normalise(str(caught.value), ws)
    args = case.run(ws)
    before = ws.hashes()
    code, err = run_cli(args)
    assert code == 2, f"{case.id}: exit code {code} (the contract: 2 for every refused input)"
    assert "Traceback" not in err
    message = [line for line in err.splitlines() if line.startswith(("error:", "Error:"))]
    assert len(message) == 1, err
    after = ws.hashes()
    changed = [p for p, h in before.items() if after.get(p) != h]
    assert not changed, f"{case.id} modified inputs: {changed}"
    return normalise(message[0], ws)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_a_clear_error(case, ws):
    message = run_case(case, ws)
    assert re.search(case.expect, message), message
    RESULTS[case.id] = message


@pytest.mark.parametrize("entry", HANDLED, ids=[h[0] for h in HANDLED])
def test_unusual_input_is_handled_as_documented(entry, ws):
    entry[3](ws)


def test_debug_shows_the_traceback_and_a_subprocess_shows_none(ws, tmp_path):
    import subprocess
    import sys

    args = [sys.executable, "-m", "assd", *unlearn("o-sub", forget="nope.txt")]
    plain = subprocess.run(args, cwd=ws.root, capture_output=True, text=True)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert plain.stderr.strip().startswith("error: no forget file")
    debug = subprocess.run([*args[:3], "--debug", *args[3:]], cwd=ws.root, capture_output=True,
                           text=True)  # fmt: skip
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def load_faults() -> list[tuple[str, str, str]]:
    """The fault-injection entries of tests/test_faults.py (loaded by path)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_faults", Path(__file__).with_name(
        "test_faults.py"))  # fmt: skip
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FAULTS


def render(results: dict[str, str]) -> str:
    faults = load_faults()
    lines = [
        "# Reliability: bad input and how assd answers it",
        "",
        "Generated by `tests/test_bad_inputs.py` and `tests/test_faults.py`",
        "(`ASSD_WRITE_DOCS=1 python -m pytest tests/test_bad_inputs.py`); a test fails when",
        "this file is out of date. Every CLI case exits with a non-zero code and one",
        "paragraph on stderr (a traceback only with `assd --debug`), and the test checks",
        "that no input file changed. `tests/test_fuzz_tables.py` runs generated tables",
        "(names, dtypes, dialects, ids) through train, unlearn and evaluate and checks the",
        "same for each.",
        "",
        f"In all: **{len(CASES)} classes of bad input refused** with a message, "
        f"**{len(HANDLED)} unusual inputs handled** as described, and **{len(faults)} faults "
        "injected** into publishing (crashes at each step, concurrent writers, a full disk).",
        "",
        "## Refused, with this message",
        "",
        "| case | interface | what the user did | message |",
        "|---|---|---|---|",
    ]
    for case in CASES:
        message = results[case.id].replace("|", "\\|")
        lines.append(f"| `{case.id}` | {case.interface} | {case.title} | {message} |")
    lines += [
        "",
        "## Accepted, handled this way",
        "",
        "| case | input | handling |",
        "|---|---|---|",
    ]
    lines += [f"| `{i}` | {title} | {how} |" for i, title, how, _ in HANDLED]
    lines += ["", "## Faults injected into publishing", "", "| fault | what is done | what holds |",
              "|---|---|---|"]  # fmt: skip
    lines += [f"| `{i}` | {what} | {holds} |" for i, what, holds in faults]
    lines += [
        "",
        "## Files",
        "",
        "- Inputs (model folders, tables, forget lists, the cache folder, evaluation tables)",
        "  are only read. An output may not be an input, lie inside one (e.g. `--out",
        "  m1/model.safetensors`, `--json m1/model.json`) or be a folder holding one, even",
        "  with `--overwrite`.",
        "- `--overwrite` replaces only a folder assd wrote: every output folder holds a",
        "  `.assd-output` marker (model folders of earlier versions are recognised by the",
        "  `assd_version` in their `model.json`). A folder of other files, a single file or",
        "  a link in its place is refused.",
        "- Every output is built in a hidden temporary beside its final name",
        "  (`.NAME.PID.XXXX.tmp`), flushed, and published in one step that re-checks these",
        "  rules under a lock on the parent folder: a new path is created exclusively",
        "  (`renameat2(RENAME_NOREPLACE)` on Linux), so of two runs without `--overwrite` one",
        "  wins and the other says where its result was kept; an existing assd folder is",
        "  swapped in one `renameat2(RENAME_EXCHANGE)`. Temporaries of dead processes are",
        "  removed by the next write beside them.",
        "- Nothing is published whose weights hold NaN or infinities (training, unlearning",
        "  and every baseline), and `evaluate` refuses such a model.",
        "- Output files get mode 0666 less the umask (0644 usually), weights and cache",
        "  entries included.",
        "- Row ids are read as text exactly as written; the held-out rows are the ids stored",
        "  in `task.json`, so a re-sorted table is the same table and a changed one is",
        "  warned about (also without an id column, by a digest of the training rows).",
        "- Experiment results are appended one fsynced JSON line at a time; an interrupted",
        "  run resumes without redoing or duplicating finished cells",
        "  (`tests/test_resume.py`).",
        "- Same inputs and seed give bitwise-identical weights and reports on CPU across",
        "  processes (`tests/test_determinism.py`); reports keep wall times in `seconds`",
        "  and `timings` fields, the only fields that differ between runs.",
        "",
        "## What still cannot be made safe, and why",
        "",
        "- **Without `renameat2`** (macOS, Windows, some network file systems) replacing a",
        "  folder takes two renames (old to a hidden backup, new into place). A crash",
        "  between them leaves no folder at the path for that moment; the backup is",
        "  restored by the next run (`crash-fallback-backed-up`). There is no portable",
        "  atomic exchange of two folders.",
        "- **Without `flock`** (Windows) the final re-check and the rename are not under one",
        "  lock; a new path is still created exclusively where the system offers it.",
        "- **A single file output** (`--json`, `assd data --out`) named with `--overwrite`",
        "  is replaced (atomically): a file carries no marker, so assd cannot tell its own",
        "  file from the user's. It refuses folders, links and files inside assd folders.",
        "- **Other programs** that write into the same path while assd publishes are not",
        "  bound by assd's lock; an empty folder they create is refused like any other.",
        "- **Stale temporaries are recognised by process id**: on a shared file system seen",
        "  by several machines (or PID namespaces) a live run elsewhere could look dead, so",
        "  do not point two machines at the same output folder.",
        "- **A table without an id column** has only row numbers as ids: rows can be",
        "  matched only by position. A re-sorted or grown copy is detected (a digest of",
        "  the training rows) and warned about, but its rows cannot be put back in order.",
        "",
    ]
    return "\n".join(lines)


def test_reliability_doc_is_current(ws):
    for case in CASES:
        if case.id not in RESULTS:
            RESULTS[case.id] = run_case(case, ws)
    text = render(RESULTS)
    if os.environ.get("ASSD_WRITE_DOCS"):
        DOC.write_text(text, encoding="utf-8")
    assert DOC.is_file() and DOC.read_text(encoding="utf-8") == text, (
        "docs/reliability.md is out of date; regenerate it with "
        "ASSD_WRITE_DOCS=1 python -m pytest tests/test_bad_inputs.py"
    )
