"""Per-sample squared convolution gradients, layer by layer: which formulation is fastest.

For every convolution of a model (one batch, the benchmark case's batch
size), times the ways ``assd.importance.persample.conv.conv_sums`` can form
``sum_i g_i**2`` from the layer's input and output gradient, alternating
round by round: ``unfold`` (all samples' gradients by one batched product,
then squared and summed), ``grouped`` (one convolution backward with one group
per sample), ``loop`` (one product per sample, squared into the sum while in
cache) and ``auto`` (what ``conv_method`` picks); on layers with at most 16
output positions also ``pairs``, which never forms a per-sample gradient
(squares expanded over pairs of positions; its total covers those layers
only). ``batch wgrad`` is the
layer's ordinary batch weight gradient, the work the batch estimator does
instead. Also prints each formulation's largest relative deviation from
``unfold``.

    python benchmarks/persample_conv.py [--models resnet18 cnn] [--rounds 5]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from common import alternate, arguments, cases, header, median
from torch import nn

from assd.importance.persample.conv import conv_method, conv_sums
from assd.reports import markdown_table

METHODS = ["unfold", "grouped", "loop", "auto"]
PAIRS_POSITIONS = 16  # the pairs formulation only where P**2 stays small


def batch_wgrad(layer: nn.Conv2d, a: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """The ordinary batch weight gradient (one convolution backward)."""
    return torch.nn.grad.conv2d_weight(a, layer.weight.shape, d, stride=layer.stride,
                                       padding=layer.padding, dilation=layer.dilation,
                                       groups=layer.groups)  # fmt: skip


def layer_inputs(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[tuple]:
    """``(name, layer, input, output gradient)`` of every convolution, from one batch."""
    found = []

    def hook(module, args, output):
        entry = [module, args[0].detach(), None]
        found.append(entry)
        output.register_hook(lambda g: entry.__setitem__(2, g))

    names = {m: n for n, m in model.named_modules()}
    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv1d, nn.Conv2d))]  # fmt: skip
    F.cross_entropy(model(x), y, reduction="sum").backward()
    for handle in handles:
        handle.remove()
    model.zero_grad(set_to_none=True)
    return [(names[m], m, a, d) for m, a, d in found]


def pairs(layer: nn.Conv2d, a: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """``sum_i g_i**2`` without per-sample gradients, for ``groups=1``:
    ``sum_i (sum_p d_ip u_ip)**2 = sum_{i,p,q} (d_ip d_iq)(u_ip u_iq)``, one product
    with ``B * P**2`` terms (``P`` output positions)."""
    u = F.unfold(a, layer.kernel_size, dilation=layer.dilation, padding=layer.padding,
                 stride=layer.stride)  # (B, in * k, P)  # fmt: skip
    d = d.flatten(2)  # (B, out, P)
    dd = (d.unsqueeze(3) * d.unsqueeze(2)).flatten(2)  # (B, out, P * P)
    uu = (u.unsqueeze(3) * u.unsqueeze(2)).flatten(2)  # (B, in * k, P * P)
    return torch.einsum("bok,bck->oc", dd, uu).reshape(layer.weight.shape)


def measure(layer, a, d, *, rounds: int) -> dict:
    runs = {m: (lambda m=m: conv_sums(layer, a, d, method=None if m == "auto" else m))
            for m in METHODS}  # fmt: skip
    if d[0, 0].numel() <= PAIRS_POSITIONS and layer.groups == 1:
        runs["pairs"] = lambda: {"weight": pairs(layer, a, d)}
    runs["batch wgrad"] = lambda: batch_wgrad(layer, a, d)
    times = {k: median(v) for k, v in alternate(runs, rounds=rounds).items()}
    want = conv_sums(layer, a, d, method="unfold")["weight"]
    formed = [conv_sums(layer, a, d, method=m)["weight"] for m in METHODS[:-1]]
    formed += [runs["pairs"]()["weight"]] if "pairs" in runs else []
    error = max(float((f - want).abs().max() / want.abs().max()) for f in formed)
    return {"times": times, "error": error, "choice": conv_method(layer, d)}


def run(models: list[str], rounds: int) -> str:
    out = [header("Per-sample squared convolution gradients, per layer (ms)")]
    for name in models:
        case = cases()[name]
        case.n_data = case.batch_size
        x, y = case.data()
        model = case.model()
        rows, totals = [], dict.fromkeys([*METHODS, "pairs", "batch wgrad"], 0.0)
        for layer_name, layer, a, d in layer_inputs(model, x, y):
            r = measure(layer, a, d, rounds=rounds)
            for k, v in r["times"].items():
                totals[k] += v
            rows.append([layer_name, "x".join(map(str, a.shape[1:])),
                         "x".join(map(str, layer.weight.shape)), d[0, 0].numel(),
                         *(f"{1000 * r['times'][k]:.1f}" if k in r["times"] else "—"
                           for k in totals),
                         r["choice"], f"{r['error']:.0e}"])  # fmt: skip
        rows.append(["total", "", "", "", *(f"{1000 * v:.1f}" for v in totals.values()), "", ""])
        head = ["layer", "input", "weight", "positions", *totals, "auto picks", "max rel. dev."]
        out += [f"### {case.name}, batch {case.batch_size}\n", markdown_table(head, rows), ""]
    return "\n".join(out)


def main() -> None:
    args = arguments(__doc__)
    models = args.models if args.models != ["cnn", "mlp", "resnet18", "vit-b"] else ["resnet18"]
    print(run(models, args.rounds))


if __name__ == "__main__":
    main()
