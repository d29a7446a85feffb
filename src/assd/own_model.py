"""Your own model and data set, named by import paths: the ``--model-factory`` path.

No pickle anywhere: the architecture comes from a function of yours that
builds the model (``package.module:function``), the weights from a
safetensors file, the data from a function that returns a data set.

- model factory: ``make() -> nn.Module`` (weights are then loaded into it);
- data factory: ``load() -> Dataset`` (the training rows; forget ids are row
  positions in it), or a dict ``{"train": Dataset, "test": Dataset, ...,
  "collate_fn": fn}``: every other data set is measured before and after,
  ``collate_fn`` (optional) makes batches from rows.

A data set is anything with ``__getitem__`` by position and ``__len__``
(torch ``Dataset``, Hugging Face ``datasets.Dataset`` with ``set_format("torch")``).

Example:
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> x, y = torch.randn(40, 4), torch.randint(0, 3, (40,))
    >>> _ = torch.manual_seed(0)
    >>> result, report = unlearn_by_ids(torch.nn.Linear(4, 3), TensorDataset(x, y), [0, 1, 2])
    >>> report["n_forget"], report["n_train"], sorted(report["accuracy"])
    (3, 40, ['forget', 'retain'])
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import DataLoader

from . import methods as registry
from .factories import call_factory, import_factory
from .metrics import accuracy
from .verify.membership import forget_retain_loaders

__all__ = ["import_factory", "load_data_factory", "load_model_factory", "unlearn_by_ids"]

log = logging.getLogger("assd")


def load_model_factory(factory: str, weights: str | os.PathLike) -> nn.Module:
    """Build the model with ``factory()`` and load ``weights`` (safetensors) into it, in eval mode.

    ``weights`` may be a ``.safetensors`` file or a folder holding ``model.safetensors``.
    """
    from safetensors.torch import load_model

    model = call_factory(factory, what="--model-factory")
    if not isinstance(model, nn.Module):
        raise ValueError(f"{factory} returned {type(model).__name__}, not a torch.nn.Module.")
    path = Path(weights)
    path = path / "model.safetensors" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}; pass a .safetensors file.")
    if path.suffix != ".safetensors":
        raise ValueError(
            f"{path} is not a .safetensors file; assd reads no pickle. Save the weights with "
            "safetensors.torch.save_model(model, 'model.safetensors')."
        )
    try:
        load_model(model, str(path))  # strict: every tensor must fit; tied weights handled
    except Exception as error:  # safetensors raises its own error types
        raise ValueError(
            f"cannot load {path} into the model {factory} builds ({error}); the weights "
            "belong to another architecture or the file is damaged."
        ) from error
    return model.eval()


def load_data_factory(factory: str) -> tuple[Any, dict[str, Any], Any]:
    """``(train set, {name: other set}, collate_fn or None)`` from a data factory."""
    made = call_factory(factory, what="--data-factory")
    if not isinstance(made, dict):
        made = {"train": made}
    if "train" not in made:
        raise ValueError(f"{factory} returned a dict without 'train'; name the training rows.")
    collate = made.get("collate_fn")
    sets = {k: v for k, v in made.items() if k not in ("train", "collate_fn")}
    for name, rows in {"train": made["train"], **sets}.items():
        if not (hasattr(rows, "__getitem__") and hasattr(rows, "__len__")):
            raise ValueError(
                f"{factory} gave {type(rows).__name__} as {name!r}; a data set needs "
                "__getitem__ by row position and __len__ (a torch Dataset)."
            )
    return made["train"], sets, collate


def unlearn_by_ids(
    model: nn.Module,
    dataset: Any,
    forget_ids,
    *,
    method: str = "assd",
    options: dict | None = None,
    eval_sets: dict[str, Any] | None = None,
    batch_size: int = 64,
    collate_fn=None,
) -> tuple[Any, dict]:
    """Forget the rows of ``dataset`` at ``forget_ids``; the model itself is not changed.

    Args:
        model: the trained model.
        dataset: the training rows (map-style data set).
        forget_ids: row positions to forget.
        method: any of ``assd.available_methods()``.
        options: the method's options (e.g. ``{"estimator": "sample"}``).
        eval_sets: more labelled data sets to measure before and after: ``{name: rows}``.
        batch_size, collate_fn: how rows become batches.

    Returns:
        ``(UnlearnResult, report)``; the report has the fields of the table path's
        (``assd.tabular.unlearn_rows``) and renders with the same markdown.
    """
    start = time.perf_counter()
    loader = dict(batch_size=batch_size, collate_fn=collate_fn)
    forget, retain = forget_retain_loaders(dataset, forget_ids, **loader)
    algorithm = registry.get_method(method, **(options or {}))
    sets = {"forget": forget, "retain": retain}
    sets |= {name: DataLoader(rows, **loader) for name, rows in (eval_sets or {}).items()}
    if isinstance(algorithm, registry.SSD):
        data = DataLoader(dataset, **loader)
        verified = algorithm.guard is not None or algorithm.needs_evaluation
        evaluate = {"forget": forget, "retain": retain} if verified else None
        result = algorithm.unlearn(model, forget=forget, data=data, retain=retain,
                                   evaluate=evaluate)  # fmt: skip
    else:
        result = algorithm.unlearn(model, forget=forget, retain=retain)
    scores = {
        name: {"before": accuracy(model, s), "after": accuracy(result.model, s), "n": _rows(s)}
        for name, s in sets.items()
    }
    report = {
        "method": {"name": method, "options": _jsonable(options or {})},
        "n_forget": _rows(forget),
        "n_train": len(dataset),
        "result": result.summary(),
        "importance_cache": None,
        "accuracy": scores,
        "seconds": round(time.perf_counter() - start, 3),
    }
    return result, report


def _rows(loader: DataLoader) -> int:
    return len(loader.dataset)


def _jsonable(options: dict) -> dict:
    simple = (int, float, str, bool, type(None))
    return {k: v if isinstance(v, simple) else repr(v) for k, v in options.items()}
