"""One runner for every experiment: a grid of cells, each run once, logged as it goes."""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable, Iterable

from .results import ResultLog, key_of

__all__ = ["environment", "run_cells"]

log = logging.getLogger("assd")


def environment() -> dict:
    """Versions that decide whether a result can be reproduced."""
    import numpy
    import torch

    from .._version import __version__

    return {
        "assd": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def run_cells(
    cells: Iterable[dict],
    run_one: Callable[[dict], dict | list[dict]],
    results: ResultLog,
    *,
    config: dict | None = None,
    progress: bool = True,
) -> list[dict]:
    """Run ``run_one(cell)`` for every cell whose key is not yet in ``results``.

    Args:
        cells: dicts that identify one unit of work (e.g. method, seed, rate);
            each becomes the ``key`` of its record.
        run_one: returns the metrics of a cell (a dict), or several records
            (a list of dicts, each with its own ``key``) when one unit of work
            yields several results.
        results: where records are appended as soon as they exist.
        config: the whole experiment configuration, stored in every record.
        progress: show a progress bar.

    Returns:
        All records in ``results`` after the run (old and new).
    """
    cells = list(cells)
    done = results.done()
    todo = [c for c in cells if key_of(c) not in done]
    if len(todo) < len(cells):
        log.info("resuming: %d of %d cells already done", len(cells) - len(todo), len(cells))
    env = environment()
    for cell in _progress(todo, progress):
        start = time.perf_counter()
        outcome = run_one(cell)
        seconds = time.perf_counter() - start
        records = outcome if isinstance(outcome, list) else [{"key": cell, **outcome}]
        for record in records:
            record.setdefault("cell_seconds", seconds)
            record.setdefault("config", config or {})
            record.setdefault("environment", env)
            results.append(record)
    return results.records()


def _progress(items: list, enabled: bool):
    if not enabled or not items:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc="experiment", unit="cell", disable=None)  # None: off unless a TTY
