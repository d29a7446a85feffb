"""Per-sample squares of a Linear in disguise (Hugging Face's Conv1D) against autograd,
one sample at a time."""

import pytest
import torch
from torch import nn

import assd
from assd.importance.persample.disguised import layout

transformers = pytest.importorskip("transformers")
Conv1D = transformers.pytorch_utils.Conv1D


def by_autograd(model, batches, loss_fn):
    """Sum over samples of each parameter's squared gradient, one backward per sample."""
    params = dict(model.named_parameters())
    sums = {n: torch.zeros_like(p) for n, p in params.items()}
    n = 0
    for inputs, targets in batches:
        for i in range(len(targets)):
            out = model(inputs[i : i + 1])
            loss = loss_fn(getattr(out, "logits", out), targets[i : i + 1])
            grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            for (name, _), g in zip(params.items(), grads, strict=True):
                if g is not None:
                    sums[name] += g.square()
            n += 1
    return {name: s / n for name, s in sums.items()}


def test_conv1d_on_rows_is_factorised_and_exact():
    torch.manual_seed(0)
    model = nn.Sequential(Conv1D(6, 4), nn.Tanh(), Conv1D(3, 6)).eval()
    x, y = torch.randn(10, 4), torch.randint(0, 3, (10,))
    imp = assd.compute_importance(model, [(x, y)], estimator="sample")
    assert imp.paths == {"0.weight": "factorised", "0.bias": "hooks",
                         "2.weight": "factorised", "2.bias": "hooks"}  # fmt: skip
    want = by_autograd(model, [(x, y)], nn.functional.cross_entropy)
    for name, t in want.items():
        torch.testing.assert_close(imp.tensors[name], t, rtol=1e-4, atol=1e-9)
    assert layout(model[0]) == "transposed" and layout(nn.Linear(2, 2)) is None


def test_gpt2_every_weight_on_the_hooks_and_exact():
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=30, n_positions=12, n_embd=16, n_layer=2, n_head=2,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)  # fmt: skip
    model = transformers.GPT2LMHeadModel(config).eval()
    ids = torch.randint(0, 30, (6, 9), generator=torch.Generator().manual_seed(1))
    batches = [(ids[:4], ids[:4]), (ids[4:], ids[4:])]
    imp = assd.compute_importance(model, batches, estimator="sample", task="causal-lm")
    conv = [n for n, m in model.named_modules() if isinstance(m, Conv1D)]
    assert conv and all(imp.paths[f"{n}.weight"] == "hooks" for n in conv)
    assert set(imp.paths.values()) <= {"hooks", "factorised"}  # no per-sample loop left
    want = by_autograd(model, batches, assd.tasks.causal_lm_loss)
    for name, t in want.items():
        torch.testing.assert_close(imp.tensors[name], t, rtol=1e-3, atol=1e-10)
