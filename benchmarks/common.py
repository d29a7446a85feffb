"""Shared pieces of the benchmarks: cases, the plain-pass yardstick, alternating timing.

Every figure is a ratio of two timings taken in the same process, alternating
the two conditions round by round (the machine's speed drifts by tens of
percent within minutes; a ratio from one alternating run does not).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from assd import TensorData
from assd.models import build_model

THREADS = int(os.environ.get("ASSD_BENCH_THREADS", "2"))
torch.set_num_threads(THREADS)


@dataclass
class Case:
    """A model and random data of a realistic shape for it."""

    name: str
    architecture: str
    kwargs: dict
    input_shape: tuple[int, ...]
    n_classes: int
    n_data: int
    n_forget: int
    batch_size: int

    def model(self, seed: int = 0) -> torch.nn.Module:
        torch.manual_seed(seed)
        return build_model(self.architecture, **self.kwargs).eval()

    def data(self, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(self.n_data, *self.input_shape, generator=g)
        y = torch.randint(0, self.n_classes, (self.n_data,), generator=g)
        return x, y

    def loaders(self, seed: int = 0) -> tuple[TensorData, TensorData]:
        """``(D, Df)``: the whole training set and its first ``n_forget`` rows."""
        x, y = self.data(seed)
        full = TensorData(x, y, batch_size=self.batch_size)
        forget = TensorData(x[: self.n_forget], y[: self.n_forget], batch_size=self.batch_size)
        return full, forget


def cases(scale: str = "full") -> dict[str, Case]:
    """The four models of the performance targets (``scale="quick"`` shrinks the data)."""
    quick = scale == "quick"
    table = {
        "cnn": Case("digits CNN", "cnn", {}, (1, 8, 8), 10, 1437, 144, 64),
        "mlp": Case(
            "tabular MLP", "mlp", {"n_features": 64, "n_classes": 3}, (64,), 3, 20000, 1000, 1024
        ),
        "resnet18": Case("ResNet18", "resnet18", {}, (3, 32, 32), 10, 256, 32, 32),
        "vit-b": Case(
            "ViT-B/16 (64 px)",
            "vit-b",
            {"n_classes": 10, "image_size": 64},
            (3, 64, 64),
            10,
            96,
            24,
            8,
        ),
    }
    if quick:
        for case in table.values():
            case.n_data = max(case.n_data // 8, 2 * case.batch_size)
            case.n_forget = max(case.n_forget // 8, 2)
    return table


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def plain_pass(model: torch.nn.Module, data) -> None:
    """The yardstick: one plain forward + backward pass (eval mode, as importance runs)."""
    model.eval()
    for x, y in data:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)


def alternate(
    conditions: dict[str, Callable[[], object]], *, rounds: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Run every condition once per round, reversing the order every other round.

    Returns:
        ``{name: [seconds per round]}`` (warm-up rounds excluded).
    """
    names = list(conditions)
    times: dict[str, list[float]] = {n: [] for n in names}
    for index in range(warmup + rounds):
        order = names if index % 2 == 0 else names[::-1]
        for name in order:
            start = time.perf_counter()
            conditions[name]()
            elapsed = time.perf_counter() - start
            if index >= warmup:
                times[name].append(elapsed)
    return times


class Ratio(float):
    """The median over rounds of a per-round ratio, remembering the lowest and highest."""

    low: float
    high: float

    def show(self, spec: str = ".2f", *, scale: float = 1.0, unit: str = "") -> str:
        """``median (lowest–highest)``, so the reader sees how much the rounds varied."""
        m, lo, hi = (f"{scale * v:{spec}}" for v in (self, self.low, self.high))
        return f"{m}{unit} ({lo}–{hi})"


def ratio(times: dict[str, list[float]], top: str, bottom: str) -> Ratio:
    """Median over rounds of the per-round ratio ``top / bottom``, with its range."""
    per_round = [a / b for a, b in zip(times[top], times[bottom], strict=True)]
    result = Ratio(statistics.median(per_round))
    result.low, result.high = min(per_round), max(per_round)
    return result


def judged(r: Ratio, target: float, *, at_most: bool, spec: str = ".2f", **show) -> str:
    """A table cell: the ratio with its range and whether it meets ``target``."""
    return f"{r.show(spec, **show)} {verdict(r, target, at_most=at_most)}"


def median(values: list[float]) -> float:
    return statistics.median(values)


def verdict(value: float, target: float, *, at_most: bool) -> str:
    met = value <= target if at_most else value >= target
    return "met" if met else "MISSED"


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def header(title: str) -> str:
    return (
        f"## {title}\n\ntorch {torch.__version__}, {THREADS} threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
        f"load average {load_average()} (1/5/15 min) at start\n"
    )


MODELS = ["cnn", "mlp", "resnet18", "vit-b"]


def arguments(
    doc: str, *, models: bool = True, rounds: bool = True, extra: Callable | None = None
) -> argparse.Namespace:
    """The options every benchmark script shares; ``scale`` is derived from ``--quick``.

    ``extra(parser)`` adds a script's own options.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    if models:
        parser.add_argument("--models", nargs="+", default=MODELS)
    if extra is not None:
        extra(parser)
    if rounds:
        parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="Smaller data (a smoke run).")
    args = parser.parse_args()
    args.scale = "quick" if args.quick else "full"
    return args
