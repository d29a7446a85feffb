"""The README's code blocks run as written (on small stand-ins for the big data)."""

import re
import shlex
from pathlib import Path

import pandas as pd
import pytest
import torch

import assd
import assd.data
from assd.cli import main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_the_python_quick_start_runs(monkeypatch, tmp_path, capsys):
    (code,) = [b for b in blocks("python") if "load_digits_split" in b]
    assert "epochs=30" in code
    monkeypatch.chdir(tmp_path)
    env: dict = {}
    exec(compile(code.replace("epochs=30", "epochs=1"), "README quick start", "exec"), env)
    lines = capsys.readouterr().out.splitlines()
    result, model, split = env["result"], env["model"], env["split"]
    assert lines[0].startswith(f"alpha={result.alpha:.3g} after {len(result.outcome.tries)} tries")
    assert lines[1] == result.verdict
    changed = sum(int((a != b).sum()) for a, b in zip(model.parameters(),
                                                     result.model.parameters(), strict=True))
    assert result.n_changed == changed  # the verdict's count, by hand
    said = f"{changed} of {result.n_params} weights changed value" if changed else "No weight"
    assert result.verdict.startswith(said)
    threes = split.x_test[split.y_test == 3]
    with torch.no_grad():  # the held-out 3s, scored by hand
        before, after = ((m(threes).argmax(1) == 3).float().mean().item()
                         for m in (model, result.model))  # fmt: skip
    assert lines[2] == f"accuracy on held-out 3s: {before} -> {after}"


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


def test_the_own_model_block_prints_what_it_says(capsys):
    (code,) = [b for b in blocks("python") if "forget_retain_loaders" in b]
    env: dict = {}
    exec(compile(code, "README own model", "exec"), env)
    lines = capsys.readouterr().out.splitlines()
    result, model, x, gate, y = (env[k] for k in ("result", "model", "x", "gate", "y"))
    assert lines[0] == (f"alpha={result.alpha:.3g}, {result.n_dampened} of {result.n_params} "
                        "weights dampened")  # fmt: skip
    with torch.no_grad():  # accuracy on the forgotten class and the kept rows, by hand
        scores = {name: ((m(x, gate).argmax(1) == y)[mask].float().mean().item())
                  for name, m in (("before", model), ("after", result.model))
                  for mask in [y == 3]}  # fmt: skip
        kept = {name: ((m(x, gate).argmax(1) == y)[y != 3].float().mean().item())
                for name, m in (("before", model), ("after", result.model))}  # fmt: skip
    assert lines[1] == f"forgotten class: {scores['before']:.2f} -> {scores['after']:.2f}"
    assert lines[2] == f"kept rows:       {kept['before']:.2f} -> {kept['after']:.2f}"
    said = re.search(r"prints `forgotten class: ([0-9.]+) -> ([0-9.]+)` and `kept rows: "
                     r"([0-9.]+) -> ([0-9.]+)`", README.replace("\n", " "))  # README says
    assert said and said.groups() == (f"{scores['before']:.2f}", f"{scores['after']:.2f}",
                                      f"{kept['before']:.2f}", f"{kept['after']:.2f}")


def test_the_hugging_face_block_runs_and_its_loss_is_next_token(capsys, numpy_alpha,
                                                                 retain_importance):
    pytest.importorskip("transformers")
    (code,) = [b for b in blocks("python") if "BertConfig" in b]
    env: dict = {}
    exec(compile(code, "README Hugging Face", "exec"), env)
    result, model, data = env["result"], env["model"], env["data"]
    assert capsys.readouterr().out.splitlines()[0] == (
        f"alpha={result.alpha:.3g}, {result.n_dampened} weights dampened")
    f, whole = (assd.compute_importance(model, rows, fingerprint=False).tensors
                for rows in (data[:1], data))  # fmt: skip
    alpha = numpy_alpha(f, retain_importance(whole, f, 128, 16), 16, 128)
    assert result.alpha == pytest.approx(alpha, rel=1e-5) and result.n_dampened > 0
    logits, labels = torch.randn(2, 4, 5), torch.tensor([[1, 2, 3, -100], [4, 0, -100, -100]])
    by_hand = torch.nn.functional.cross_entropy(  # positions 0..2 predict the next label
        logits[:, :3].reshape(6, 5), torch.tensor([2, 3, -100, 0, -100, -100]), ignore_index=-100)
    # the README's "for a GPT-2, assd.ASSD(task='causal-lm')": that task's loss is next-token,
    # each row's mean over its counted positions, then the mean over rows
    per_token = torch.nn.functional.cross_entropy(
        logits[:, :3].reshape(6, 5), torch.tensor([2, 3, -100, 0, -100, -100]), ignore_index=-100,
        reduction="none").reshape(2, 3)  # fmt: skip
    by_row = (per_token[0, :2].mean() + per_token[1, 0]) / 2
    loss = assd.ASSD(task="causal-lm", estimator="batch").importance_options["loss_fn"]
    assert torch.allclose(loss(logits, labels), by_row, atol=1e-6)
    assert not torch.allclose(by_row, by_hand)  # not the mean over all tokens


@pytest.mark.parametrize("block", blocks("py") + blocks("python"))
def test_every_block_is_covered_above(block):
    covered = ("load_digits_split", "inject_label_errors", "unlearn_rows(TabularModel.load")
    covered += ("forget_retain_loaders", "BertConfig")
    assert any(name in block for name in covered)
