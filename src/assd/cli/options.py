"""Checking command-line options up front, with one-paragraph errors.

``--option KEY=VALUE`` (method options, parsed by :mod:`assd.methods.options`),
``--device`` and ``--model-option`` are checked before any data is read, so a
typo fails in a second with a message naming the known keys, not minutes later
with a raw ``TypeError``.

Example:
    >>> method_options("ssd", ["alpha=5", "reference=retain"])
    {'alpha': 5, 'reference': 'retain'}
    >>> method_options("ssd", ["alpah=5"])
    Traceback (most recent call last):
    ...
    ValueError: --option alpah: method 'ssd' has no such option...
"""

from __future__ import annotations

import json
import math
import re

import click

from ..methods.options import (
    check_value,
    key_values,
    keyword_parameters,
    merge_flags,
    method_options,
)

__all__ = [
    "COUNT",
    "RATE",
    "SEED",
    "check_device",
    "guard_setting",
    "key_values",
    "method_options",
    "model_options",
    "parse_numbers",
    "parse_seeds",
    "unlearn_options",
]

# The ranges every command checks its numbers against (click refuses others with exit code 2).
SEED_MAX = 2**32 - 1  # what NumPy's generators take (torch takes more)
SEED = click.IntRange(0, SEED_MAX)
MAX_SEED_COUNT = 10_000  # --seeds N: a grid of N seeds per cell
COUNT = click.IntRange(min=1)  # epochs, batch sizes, levels: at least one
RATE = click.FloatRange(min=0, min_open=True)  # learning rates and factors: above zero

DEFAULT_GUARD = 0.01  # the retain guard of `assd unlearn`: one accuracy point

_DEVICE = re.compile(r"^(cpu|auto|mps|cuda(:\d+)?)$")


def unlearn_options(given: dict) -> tuple[dict, float | None]:
    """The method options of ``assd unlearn`` (both paths) and its retain guard's limit.

    ``--option`` items are checked against the method (:func:`method_options`);
    ``--reference`` / ``--estimator`` join them unless they contradict an option;
    the guard comes from :func:`guard_setting`.
    """
    opts = method_options(given["method"], given["options"])  # before any data is read
    flags = {"reference": given.get("reference"), "estimator": given.get("estimator")}
    opts = merge_flags(opts, flags)
    return guard_setting(opts, given.get("guard"), bool(given.get("no_guard")))


def guard_setting(opts: dict, guard: float | None, no_guard: bool) -> tuple[dict, float | None]:
    """``(options without "guard", the guard's limit or None)``: from ``--guard``,
    ``--no-guard`` or ``--option guard=``, refusing any two that disagree
    (``--guard`` left out means :data:`DEFAULT_GUARD`).

    Example:
        >>> guard_setting({"alpha": 5}, None, False)
        ({'alpha': 5}, 0.01)
        >>> guard_setting({"guard": 0.05}, None, False)
        ({}, 0.05)
    """
    opts = dict(opts)
    sources = [(f"--guard {guard}", guard)] if guard is not None else []
    if "guard" in opts:
        value = opts.pop("guard")
        sources.append((f"--option guard={json.dumps(value)}", value))
    if no_guard:
        sources.append(("--no-guard", None))
    clash = next((text for text, value in sources if value != sources[0][1]), None)
    if clash:
        raise ValueError(f"{sources[0][0]} contradicts {clash}; give one of them.")
    return opts, sources[0][1] if sources else DEFAULT_GUARD


def parse_seeds(text: str, *, flag: str = "--seeds") -> list[int]:
    """``"5"`` -> seeds 0..4 (a count); ``"0,3,7"`` -> those seeds (each once).

    Example:
        >>> parse_seeds("3"), parse_seeds("0, 7")
        ([0, 1, 2], [0, 7])
    """
    try:
        parts = [int(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        parts = []
    if not parts:
        raise click.BadParameter(f"{text!r} is not a count or a list of seeds such as 0,3,7.",
                                 param_hint=flag)  # fmt: skip
    if len(parts) == 1:
        if parts[0] < 1:
            raise click.BadParameter(f"{parts[0]} runs no seed; give a count of at least 1 "
                                     "(or a list of seeds such as 0,3,7).", param_hint=flag)
        if parts[0] > MAX_SEED_COUNT:
            raise click.BadParameter(f"{parts[0]} seeds are more than any run can finish; give "
                                     f"at most {MAX_SEED_COUNT:,}.", param_hint=flag)
        return list(range(parts[0]))
    bad = [p for p in parts if not 0 <= p <= SEED_MAX]
    if bad:
        raise click.BadParameter(f"seed {bad[0]} is out of range; seeds lie in 0..{SEED_MAX}.",
                                 param_hint=flag)  # fmt: skip
    if len(set(parts)) != len(parts):
        raise click.BadParameter("a seed is listed twice; list each seed once.", param_hint=flag)
    return parts


def parse_numbers(text: str, *, flag: str, low: float, high: float) -> list[float]:
    """``"0.5,1,2"`` -> floats, each strictly between ``low`` and ``high``.

    Example:
        >>> parse_numbers("0.5, 10", flag="--rates", low=0, high=100)
        [0.5, 10.0]
    """
    try:
        values = [float(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        values = []
    if not values:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of numbers.",
                                 param_hint=flag)  # fmt: skip
    bad = [v for v in values if not (math.isfinite(v) and low < v < high)]
    if bad:
        raise click.BadParameter(f"{bad[0]} is out of range; each value lies above {low:g} "
                                 f"and below {high:g}.", param_hint=flag)  # fmt: skip
    return values


def model_options(architecture: str, items) -> dict:
    """Parse and check ``--model-option`` items against the keywords of ``architecture``."""
    from ..models import ARCHITECTURES

    options = key_values(items, flag="--model-option")
    if architecture not in ARCHITECTURES:
        return options  # build_model gives the error naming the known models
    params = keyword_parameters(ARCHITECTURES[architecture][0], probe=False)
    for key, value in options.items():
        if key not in params:
            raise ValueError(
                f"--model-option {key}: model {architecture!r} has no such keyword; it takes "
                f"{', '.join(sorted(params)) or 'none'}."
            )
        check_value(key, value, params[key], architecture, flag="--model-option")
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            raise ValueError(
                f"--model-option {key}={value}: sizes of model {architecture!r} are counts; "
                "give 1 or more."
            )
    return options


def check_device(text: str) -> str:
    """``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``; a clear error otherwise."""
    value = str(text).strip().lower()
    if not _DEVICE.match(value):
        raise ValueError(
            f"--device {text!r} is not a device; use cpu, cuda, cuda:N (a GPU number), mps "
            "or auto."
        )
    if value.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"--device {text}: no CUDA GPU is available here; use cpu or auto.")
        index = int(value.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"--device {text}: there are only {torch.cuda.device_count()} GPU(s) "
                "(numbered from 0)."
            )
    return value
