"""Peak extra memory of a request, as a multiple of the model's parameter bytes.

Each measurement runs in a fresh Python process (PyTorch's allocations are
invisible to tracemalloc, and a process that ran before keeps freed memory).
The child builds the model and data, reads its resident set size (RSS), runs
one thing, and reports the peak RSS (``VmHWM``) minus that baseline:

- ``plain``: one plain forward+backward pass over D and one over Df (the
  gradients and activations any training step needs);
- ``uncached``: ``ASSD().unlearn(model, forget=Df, data=D)``;
- ``cached``: load I_D from its file, then the request with ``importance=``.

    python benchmarks/memory.py [--models cnn mlp resnet18 vit-b] [--quick]
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from common import arguments, cases, header, n_params, plain_pass

import assd
from assd.reports import markdown_table

KINDS = ("plain", "uncached", "cached")
TARGET = 4.0


def _rss_kib(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+) kB", status).group(1))


def child(model_name: str, kind: str, scale: str, folder: str) -> dict:
    """Run one measurement in this (fresh) process; returns bytes."""
    case = cases(scale)[model_name]
    model = case.model()
    full, forget = case.loaders()
    path = Path(folder) / f"{model_name}.safetensors"
    _warm_up(folder)
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
    before = _rss_kib("VmRSS")
    if kind == "plain":
        plain_pass(model, full)
        plain_pass(model, forget)
    elif kind == "uncached":
        assd.ASSD().unlearn(model, forget=forget, data=full)
    else:
        imp = assd.Importance.load(path)
        assd.ASSD().unlearn(model, forget=forget, importance=imp, n_data=case.n_data)
    peak = _rss_kib("VmHWM")
    return {"extra": (peak - before) * 1024, "param_bytes": 4 * n_params(model)}


def _warm_up(folder: str) -> None:
    """One request on a tiny model: one-time set-up (thread pools, lazy imports, autograd
    and NumPy machinery) is then not counted against the model measured."""
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    tiny, data = torch.nn.Linear(4, 2), assd.TensorData(x, y, batch_size=16)
    plain_pass(tiny, data)
    assd.compute_importance(tiny, data, estimator="batch").save(Path(folder) / "tiny.safetensors")
    imp = assd.Importance.load(Path(folder) / "tiny.safetensors")
    assd.ASSD().unlearn(tiny, forget=assd.TensorData(x[:4], y[:4]), importance=imp, n_data=64)
    assd.ASSD().unlearn(tiny, forget=assd.TensorData(x[:4], y[:4]), data=data)


def measure(model_name: str, scale: str, folder: str) -> dict:
    case = cases(scale)[model_name]
    model = case.model()
    assd.compute_importance(model, case.loaders()[0], estimator="batch").save(
        Path(folder) / f"{model_name}.safetensors"
    )
    out = {}
    for kind in KINDS:
        done = subprocess.run(
            [sys.executable, __file__, "--child", model_name, kind, scale, folder],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        out[kind] = json.loads(done.stdout.strip().splitlines()[-1])
    return {"case": case, **out}


def table(results: list[dict]) -> str:
    rows = []
    for r in results:
        p = r["plain"]["param_bytes"]
        mib = {k: r[k]["extra"] / 2**20 for k in KINDS}
        times = {k: r[k]["extra"] / p for k in KINDS}
        own = (r["uncached"]["extra"] - r["plain"]["extra"]) / p
        verdict = "met" if times["uncached"] <= TARGET else "MISSED"
        rows.append(
            [
                r["case"].name,
                f"{p / 2**20:.1f}",
                r["case"].batch_size,
                f"{mib['plain']:.0f} ({times['plain']:.2f}x)",
                f"{mib['uncached']:.0f} ({times['uncached']:.2f}x) {verdict}",
                f"{own:.2f}x",
                f"{mib['cached']:.0f} ({times['cached']:.2f}x)",
            ]
        )
    return markdown_table(
        [
            "model",
            "param MiB",
            "batch",
            "plain passes MiB",
            "uncached MiB (≤ 4x)",
            "uncached beyond plain",
            "cached MiB",
        ],
        rows,
    )


def run(*, models: list[str], scale: str) -> str:
    with tempfile.TemporaryDirectory() as folder:
        results = [measure(m, scale, folder) for m in models]
    return "\n".join([header("Peak extra memory (RSS) of a request"), table(results), ""])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(*sys.argv[2:6])))
        return
    args = arguments(__doc__, rounds=False)
    print(run(models=args.models, scale=args.scale))


if __name__ == "__main__":
    main()
