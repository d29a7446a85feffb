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
    imp = assd.compute_importance(model, [(x, y)])
    with torch.no_grad():
        model[0].weight[0, 0] += 1e-4
    assd.ASSD().unlearn(model, forget=[(x[:4], y[:4])], importance=imp)


@api("api-foreign-importance", "importance of another model", r"does not belong to this model")
def _(ws):
    model, x, y = tiny()
    imp = assd.compute_importance(nn.Linear(4, 3), [(x, y)])
    assd.ASSD().unlearn(model, forget=[(x[:4], y[:4])], importance=imp)


@api("api-damaged-importance", "importance holding NaN", r"holds NaN, infinite or negative")
def _(ws):
    model, x, y = tiny()
    imp = assd.compute_importance(model, [(x, y)])
    imp.tensors["0.bias"][0] = float("nan")
    assd.ASSD().unlearn(model, forget=[(x[:4], y[:4])], importance=imp)


@api("api-pickle", "loading a pickle checkpoint", r"allow_pickle=True", ValueError)
def _(ws):
    torch.save({"w": torch.ones(2)}, ws.root / "api.pt")
    assd.checkpoints.load_state_dict(ws.root / "api.pt")


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
        imp = assd.compute_importance(model, [(x.to(dtype), y)])
        assert all(
            t.dtype == torch.float32 and torch.isfinite(t).all() for t in imp.tensors.values()
        )
        result = assd.SSD(alpha=1.0).unlearn(
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
    assd.ASSD(train_mode=True).unlearn(model, forget=[(x[:6], y[:6])], data=[(x, y)])
    assert model.training and all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


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
    assert code != 0, f"{case.id}: exit code {code}"
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


def render(results: dict[str, str]) -> str:
    lines = [
        "# Reliability: bad input and how assd answers it",
        "",
        "Generated by `tests/test_bad_inputs.py` (`ASSD_WRITE_DOCS=1 python -m pytest",
        "tests/test_bad_inputs.py`); a test fails when this file is out of date. Every",
        "CLI case exits with a non-zero code and one paragraph on stderr (a traceback",
        "only with `assd --debug`), and the test checks that no input file changed.",
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
    lines += [
        "",
        "## Files",
        "",
        "- Inputs (model folders, tables, forget lists) are only read. `--out` may not be an",
        "  input or a folder holding one, even with `--overwrite`.",
        "- Every output (model folder, importance, report, results line, plot) is written to",
        "  a hidden temporary file or folder beside its final name, flushed, and renamed;",
        "  `tests/test_safe_files.py` kills a writer mid-write and finds the old output",
        "  intact. An existing output is replaced only with `--overwrite`.",
        "- Experiment results are appended one fsynced JSON line at a time; an interrupted",
        "  run resumes without redoing or duplicating finished cells",
        "  (`tests/test_resume.py`).",
        "- Same inputs and seed give bitwise-identical weights and reports on CPU across",
        "  processes (`tests/test_determinism.py`); reports keep wall times in `seconds`",
        "  and `timings` fields, the only fields that differ between runs.",
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
