"""The --model-factory path: its messages speak of factories and options, never of
Python arguments a command-line user cannot pass; a wrong collate_fn is named."""

from __future__ import annotations

import contextlib
import io
import textwrap

import pytest
import torch
from safetensors.torch import save_model

from assd.cli import main

MODULE = '''
import torch
from torch.utils.data import TensorDataset

g = torch.Generator().manual_seed(0)
X, Y = torch.randn(60, 4, generator=g), torch.randint(0, 3, (60,), generator=g)


def make():
    return torch.nn.Linear(4, 3)


def rows():
    return {"train": TensorDataset(X, Y)}


def bad_collate():
    return {"train": TensorDataset(X, Y), "collate_fn": "default"}


def listed_collate():
    return {"train": TensorDataset(X, Y), "collate_fn": [1, 2]}


def with_ids():  # batches of (inputs, row id, label): the model gets two inputs
    return {"train": TensorDataset(X, torch.arange(60), Y)}


def too_many_classes():
    return {"train": TensorDataset(X, Y + 3)}
'''


@pytest.fixture
def user(tmp_path, monkeypatch):
    (tmp_path / "mine.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    save_model(torch.nn.Linear(4, 3), "w.safetensors")
    (tmp_path / "ids.txt").write_text("0\n1\n2\n")
    yield tmp_path
    import sys

    sys.modules.pop("mine", None)


def run(data_factory: str) -> tuple[int, str]:
    err = io.StringIO()
    args = ["unlearn", "--model-factory", "mine:make", "--weights", "w.safetensors",
            "--data-factory", data_factory, "--forget", "ids.txt", "--out", "o"]  # fmt: skip
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(args)
    return code, err.getvalue()


@pytest.mark.parametrize(("factory", "kind"), [("mine:bad_collate", "str"),
                                               ("mine:listed_collate", "list")])  # fmt: skip
def test_a_collate_fn_that_is_no_function_is_named(user, factory, kind):
    code, err = run(factory)
    assert code == 2 and f"gave {kind} as 'collate_fn'" in err and "unexpected" not in err
    assert not (user / "o").exists()


@pytest.mark.parametrize("factory", ["mine:with_ids", "mine:too_many_classes"])
def test_advice_names_the_data_factory_not_python_arguments(user, factory):
    code, err = run(factory)
    assert code == 2 and "collate_fn" in err, err
    assert "batch_fn=" not in err and "output_fn=" not in err


def test_the_rewrite_covers_every_python_argument_in_the_library_messages():
    from assd.factory_advice import rewrite

    samples = [
        "or pass batch_fn=lambda batch: (inputs, targets).",
        "pass batch_fn= (what goes in) and output_fn= (which output is the logits).",
        "assd accepts (batch_fn=, output_fn=, loss_fn= adapt others).",
        "or pass batch_fn= that returns one float input tensor.",
        "or pass loss_fn= for other targets.",
        "convert them, or pass loss_fn.",
        "use estimator='batch'.",
        "or batch_fn= to say where the target is.",
    ]
    for text in samples:
        better = rewrite(text)
        assert better != text and "batch_fn=" not in better and "output_fn=" not in better
