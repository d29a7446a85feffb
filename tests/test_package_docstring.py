"""The package docstring's examples run as written, with its defaults."""

import re

import torch

import assd


def _blocks() -> list[str]:
    """The indented code blocks after ``::`` in ``assd.__doc__``."""
    found = re.findall(r"::\n\n((?:    .*\n|\n)+)", assd.__doc__)
    return [re.sub(r"^    ", "", block, flags=re.M) for block in found]


def test_compute_save_then_unlearn_with_the_saved_importance(tmp_path, monkeypatch):
    unlearn_block, reuse_block = _blocks()
    assert "compute_importance(model, train_loader)" in reuse_block  # no estimator= given
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    x = torch.randn(60, 5)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    model = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    env = {"model": model, "train_loader": assd.TensorData(x, y, batch_size=16),
           "forget_loader": assd.TensorData(x[y == 2], y[y == 2], batch_size=16)}  # fmt: skip
    exec(compile(unlearn_block, "assd docstring 1", "exec"), env)
    direct = env["result"]
    reuse = reuse_block.replace("assd.ASSD().unlearn", "result = assd.ASSD().unlearn")
    exec(compile(reuse, "assd docstring 2", "exec"), env)
    saved = assd.Importance.load(tmp_path / "train.importance.safetensors")
    assert saved.estimator == "sample" == direct.importance_settings["estimator"]
    # the importance computed once and reused gives the very same unlearned model
    assert env["result"].alpha == direct.alpha and env["result"].n_dampened == direct.n_dampened
    for a, b in zip(env["result"].model.parameters(), direct.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert direct.n_dampened > 0
