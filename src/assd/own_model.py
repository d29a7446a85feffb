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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from . import methods as registry
from .factories import call_factory, import_factory
from .factory_advice import in_factory_words
from .metrics import accuracy
from .store.files import check_readable
from .verify.membership import forget_retain_loaders
from .verify.outcome import score_sets

__all__ = [
    "import_factory",
    "load_data_factory",
    "load_model_factory",
    "train_recipe",
    "unlearn_by_ids",
]

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
    check_readable(path)  # a permission problem is not "damaged"
    try:
        load_model(model, str(path))  # strict: every tensor must fit; tied weights handled
    except Exception as error:  # safetensors raises its own error types
        raise ValueError(
            f"cannot load {path} into the model {factory} builds ({error}); the weights "
            "belong to another architecture or the file is damaged."
        ) from error
    return model.eval()


def train_recipe(train_fn: str, model_factory: str):
    """``assd-auto``'s reference recipe from your training function (``--train-fn``).

    ``train_fn`` names ``train(x, y, seed) -> nn.Module``: a new model of yours
    trained on the rows ``(x, y)`` with that seed, at the budget you choose (``x`` a
    tensor, or a mapping of tensors when the batches are dicts). ``model_factory``
    builds a blank model, so a folder cache can load the references back. The recipe's
    name holds the import path and a SHA-256 of the function's source file: editing
    that file trains the references again.
    """
    import hashlib
    import inspect
    import json

    from .factories import FactoryError, import_callable
    from .verify.references import Recipe

    train = import_callable(train_fn, what="--train-fn")
    try:
        source = Path(inspect.getsourcefile(train) or "").read_bytes()
    except (OSError, TypeError):  # no file to read (a builtin, a REPL function)
        source = repr(getattr(train, "__code__", train)).encode()
    name = json.dumps({"train_fn": train_fn, "source_sha256": hashlib.sha256(source).hexdigest()})

    def checked(x: torch.Tensor, y: torch.Tensor, seed: int) -> nn.Module:
        try:
            model = train(x, y, seed)
        except (Exception, SystemExit) as error:
            raise FactoryError(f"--train-fn {train_fn} failed on {len(y)} rows with seed {seed}:"
                               f" {type(error).__name__}: {error}") from None  # fmt: skip
        if not isinstance(model, nn.Module):
            raise FactoryError(f"--train-fn {train_fn} returned {type(model).__name__}; it "
                               "must return the nn.Module it trained on the rows it was given.")
        return model

    return Recipe(name=name, train=checked,
                  blank=lambda: call_factory(model_factory, what="--model-factory"))  # fmt: skip


def load_data_factory(factory: str) -> tuple[Any, dict[str, Any], Any]:
    """``(train set, {name: other set}, collate_fn or None)`` from a data factory."""
    made = call_factory(factory, what="--data-factory")
    if isinstance(made, tuple):  # (train, test): two data sets, never two rows
        if len(made) != 2 or any(isinstance(m, (Mapping, torch.Tensor)) for m in made):
            raise ValueError(
                f"{factory} returned a tuple of {len(made)} item(s); a data factory returns "
                "a data set, a pair (train, test) of data sets, or a dict "
                "{'train': ..., 'test': ..., 'collate_fn': ...}."
            )
        made = {"train": made[0], "test": made[1]}
    if not isinstance(made, dict):
        made = {"train": made}
    if "train" not in made:
        raise ValueError(f"{factory} returned a dict without 'train'; name the training rows.")
    collate = made.get("collate_fn")
    if collate is not None and not callable(collate):
        raise ValueError(
            f"{factory} gave {type(collate).__name__} as 'collate_fn'; it must be a function "
            "that makes one batch from a list of rows (e.g. returning (inputs, targets)), or "
            "be left out for the default batching."
        )
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
    task: str | None = None,
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
        task: what the outputs mean (:mod:`assd.tasks`): the scores follow it (token
            accuracy, a causal LM's perplexity and extraction); pass it in ``options`` too.

    Returns:
        ``(UnlearnResult, report)``; the report has the fields of the table path's
        (``assd.tabular.unlearn_rows``) and renders with the same markdown. Advice in
        errors speaks of factories and options (:mod:`assd.factory_advice`).
    """
    with in_factory_words():  # a factory user can change a collate_fn, not pass batch_fn=
        return _unlearn_by_ids(model, dataset, forget_ids, method=method, options=options,
                               eval_sets=eval_sets, batch_size=batch_size,
                               collate_fn=collate_fn, task=task)  # fmt: skip


def _unlearn_by_ids(model, dataset, forget_ids, *, method, options, eval_sets, batch_size,
                    collate_fn, task) -> tuple[Any, dict]:  # fmt: skip
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
        if verified:  # held-out sets too (assd-auto's "rows" target reads "test")
            evaluate |= {n: s for n, s in sets.items() if n not in evaluate}
        result = algorithm.unlearn(model, forget=forget, data=data, retain=retain,
                                   evaluate=evaluate)  # fmt: skip
    else:  # a baseline: scored on the same sets, so that its result carries a verdict too
        result = algorithm.unlearn(model, forget=forget, retain=retain, evaluate=sets)
    scores = {name: _before_after(model, result.model, s, task) for name, s in sets.items()}
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


def task_scores(model: nn.Module, loader, task: str | None) -> dict:
    """``{"n", "accuracy", "loss", ...}`` of ``model`` on ``loader`` under ``task``."""
    score = score_sets(model, {"rows": loader}, task=task)["rows"]
    return {k: v for k, v in score.to_dict().items() if v is not None}


def _before_after(model, unlearned, loader, task) -> dict:
    if task in (None, "classification"):  # the classifier's figures, as before
        return {"before": accuracy(model, loader), "after": accuracy(unlearned, loader),
                "n": _rows(loader)}  # fmt: skip
    before, after = task_scores(model, loader, task), task_scores(unlearned, loader, task)
    figures = {"before": before.get("accuracy"), "after": after.get("accuracy"),
               "n": _rows(loader)}  # fmt: skip
    for key in ("perplexity", "extraction", "loss"):
        if key in before:
            figures[key] = {"before": before[key], "after": after[key]}
    return figures


def _rows(loader: DataLoader) -> int:
    return len(loader.dataset)


def _jsonable(options: dict) -> dict:
    simple = (int, float, str, bool, type(None))
    return {k: v if isinstance(v, simple) else repr(v) for k, v in options.items()}
