"""The README's code blocks run as written (on small stand-ins for the big data)."""

import re
import shlex
from pathlib import Path

import pandas as pd
import pytest

import assd.data
from assd.cli import main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_the_python_quick_start_runs(monkeypatch, tmp_path, capsys):
    (code,) = [b for b in blocks("python") if "load_digits_split" in b]
    assert "epochs=30" in code
    monkeypatch.chdir(tmp_path)
    exec(compile(code.replace("epochs=30", "epochs=1"), "README quick start", "exec"), {})
    out = capsys.readouterr().out
    assert re.search(r"alpha=\S+ after \d+ tries, [0-9.]+s", out)
    changed = r"(\d+ of \d+ weights changed value|No weight changed)"
    assert re.search(changed + r".*Retain guard (holds|BROKEN)", out)
    assert re.search(r"accuracy on held-out 3s: [0-9.]+ -> [0-9.]+", out)


def test_the_table_walkthrough_runs_python_then_cli_then_python(
    monkeypatch, tmp_path, capsys, flights_like
):
    """The flights blocks, in README order, on a 1,500-row table in the flights format."""
    simulate, python_path = blocks("py")
    flights_like(tmp_path / "small-flights.csv", n=1500)
    small = pd.read_csv(tmp_path / "small-flights.csv")
    monkeypatch.setattr(assd.data, "load_flights", lambda: small.copy())
    monkeypatch.chdir(tmp_path)
    exec(compile(simulate, "README simulation", "exec"), {})
    out = capsys.readouterr().out
    assert re.search(r"mislabelled \d+ rows: flights to \w", out)
    assert {"flights-noisy.csv", "bad_rows.txt", "affected.csv"} <= {
        p.name for p in tmp_path.iterdir()
    }
    (cli_block,) = [b for b in blocks("bash") if "assd train" in b and "torchrun" not in b]
    commands = [line for line in cli_block.splitlines() if line.startswith("assd ")]
    assert [c.split()[1] for c in commands] == ["train", "unlearn", "evaluate"]
    for command in commands:
        assert main(shlex.split(command)[1:]) == 0, command
    assert (tmp_path / "models" / "m1-clean" / "report.md").is_file()
    (find_block,) = [b for b in blocks("bash") if "assd find-errors" in b]
    commands = [line for line in find_block.splitlines() if line.startswith("assd ")]
    assert [c.split()[1] for c in commands] == ["find-errors", "unlearn"]
    for command in commands:
        assert main(shlex.split(command)[1:]) == 0, command
    assert (tmp_path / "suspects.scores.csv").is_file()
    assert (tmp_path / "models" / "m1-found" / "report.md").is_file()
    code = python_path.replace("epochs=25", "epochs=3")
    exec(compile(code, "README Python path", "exec"), {})
    out = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"\{'before': [0-9.]+, 'after': [0-9.]+, 'n': \d+\}", out[-1])
    assert (tmp_path / "models" / "p1-clean" / "model.safetensors").is_file()


@pytest.mark.parametrize("block", blocks("py") + blocks("python"))
def test_every_block_is_covered_above(block):
    covered = ("load_digits_split", "inject_label_errors", "unlearn_rows(TabularModel.load")
    covered += ("forget_retain_loaders", "BertConfig")  # "Your own model": test_end_to_end
    assert any(name in block for name in covered)
