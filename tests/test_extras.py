"""A missing optional package names the extra that installs it, from every command."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from assd.extras import EXTRAS, missing_extra_message

ROOT = Path(__file__).resolve().parents[1]

# every command that needs an extra, with arguments that reach the import
COMMANDS = {
    "train": ["train", "--data", "t.csv", "--target", "y", "--out", "m"],
    "unlearn": ["unlearn", "--model", "m0", "--data", "t.csv", "--forget", "f.txt", "--out", "m2"],
    "evaluate": ["evaluate", "--model", "m0", "--data", "t.csv"],
    "data flights": ["data", "flights", "--out", "f.csv"],
    "data dataco": ["data", "dataco", "--data", "t.csv", "--out", "d.csv"],
    "experiment errors": ["experiment", "errors", "--out", "r1", "--seeds", "1"],
    "experiment forget": ["experiment", "forget", "--out", "r2", "--seeds", "1"],
}
# the commands that need each blocked module; the others do not reach it
NEEDS = {
    "pandas": list(COMMANDS),
    "matplotlib": ["experiment errors", "experiment forget"],
}

SCRIPT = textwrap.dedent(
    """
    import contextlib, io, json, sys
    import torch
    from assd.tabular import TabularModel, TrainConfig, train_mlp  # before the block
    from assd.tabular.task import TableTask
    blocked, commands = sys.argv[1], json.loads(sys.argv[2])
    open("t.csv", "w").write("a,y\\n1,x\\n2,z\\n")
    open("f.txt", "w").write("0\\n")
    sys.modules[blocked] = None  # `import blocked` now raises ModuleNotFoundError
    from assd.cli import main
    out = {}
    for name, args in commands.items():
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(args)
        out[name] = [code, err.getvalue()]
    print(json.dumps(out))
    """
)


@pytest.mark.parametrize("blocked", sorted(NEEDS))
def test_every_command_names_the_extra_of_a_missing_module(blocked, tmp_path):
    import pandas as pd

    from assd.tabular import TrainConfig, train_table

    frame = pd.DataFrame({"a": range(40), "y": ["x", "z"] * 20})
    frame.to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "f.txt").write_text("0\n")
    train_table(frame, target="y", config=TrainConfig(epochs=1)).save(tmp_path / "m0")
    commands = {name: COMMANDS[name] for name in NEEDS[blocked]}
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, blocked, json.dumps(commands)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout.strip().splitlines()[-1])
    extra = EXTRAS[blocked]
    for name, (code, err) in results.items():
        assert code == 2, (name, err)
        assert f"'{blocked}'" in err and f'pip install "assd[{extra}]"' in err, (name, err)
        assert "unexpected" not in err and "Traceback" not in err, (name, err)


def test_the_message_follows_the_pyproject_extras():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    pip_name = {"sklearn": "scikit-learn"}
    for module, extra in EXTRAS.items():
        listed = [d.split(">")[0].split("=")[0].strip().lower() for d in extras[extra]]
        assert pip_name.get(module, module) in listed, (module, extra)
    pyarrow = ImportError("Unable to find a usable engine; tried using: 'pyarrow', 'fastparquet'.")
    assert "assd[tables]" in missing_extra_message(pyarrow)
    assert missing_extra_message(ModuleNotFoundError("x", name="numpyy")) is None


def test_an_import_error_no_extra_provides_stays_a_one_paragraph_report(monkeypatch, capsys):
    from assd.cli import app, main

    def broken(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'frobnicate'", name="frobnicate")

    monkeypatch.setattr(app.cli, "main", broken)
    assert main(["methods"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unexpected ModuleNotFoundError") and "report it" in err


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = [b.split("```")[0].strip() for b in readme.split("```bash\n")[1:]]
    test_command = next(b for b in blocks if b.endswith("python -m pytest"))
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command in ci.splitlines()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in test_command
