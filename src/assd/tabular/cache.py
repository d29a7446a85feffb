"""A cache of training-data importances beside the model (or in a cache folder).

The expensive part of an unlearning request is the pass over the whole
training set. Its importance depends only on the weights, the data and the
importance settings, so it is stored once under a key made of all three and
reused by every later request. A cached file whose weights fingerprint does
not match is refused (:meth:`assd.Importance.check_fits`) and recomputed.
If the cache location cannot be written, a warning is logged and the request
goes on without caching.

Example:
    >>> import tempfile, torch
    >>> from assd.batches import TensorData
    >>> model, folder = torch.nn.Linear(3, 2), tempfile.mkdtemp()
    >>> data = TensorData(torch.randn(8, 3), torch.randint(0, 2, (8,)))
    >>> options = {"objective": "loss", "estimator": "sample", "train_mode": False}
    >>> _, first = cached_importance(model, data, options=options, data_key="d1", folder=folder)
    >>> _, again = cached_importance(model, data, options=options, data_key="d1", folder=folder)
    >>> first["hit"], again["hit"]
    (False, True)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch
from torch import nn

from ..distributed import is_main_process
from ..fingerprint import fingerprint
from ..importance import Importance, compute_importance

__all__ = ["cached_importance", "data_key"]

log = logging.getLogger("assd")

KEY_OPTIONS = ("objective", "estimator", "train_mode")


def data_key(x: torch.Tensor, y: torch.Tensor) -> str:
    """SHA-256 of the encoded training rows (features and labels)."""
    digest = hashlib.sha256()
    for t in (x, y):
        t = t.detach().cpu().contiguous()
        digest.update(f"{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def cached_importance(
    model: nn.Module,
    data,
    *,
    options: dict,
    data_key: str,
    folder: str | os.PathLike | None,
    memo: dict | None = None,
    progress: bool = False,
) -> tuple[Importance, dict]:
    """The importance of ``model`` on ``data``: from the cache if there, else computed and saved.

    Args:
        model: the model (its weights are part of the key).
        data: batches of the training data.
        options: keyword options of :func:`assd.compute_importance`.
        data_key: identifies the data (see :func:`data_key`).
        folder: where the cache files live; None disables caching on disk.
        memo: a dict that keeps importances in memory too (key -> Importance).
        progress: show a progress bar while computing.

    Returns:
        ``(importance, info)``; info has ``path``, ``hit`` and ``saved``.
    """
    key = _key(model, data, options, data_key)
    path = None if folder is None else Path(folder) / f"importance-{key[:24]}.safetensors"
    info = {"path": None if path is None else str(path), "hit": False, "saved": False}
    if memo is not None and key in memo:
        return memo[key], {**info, "hit": True}
    if path is not None and path.is_file():
        try:
            imp = Importance.load(path)
            imp.check_fits(model)
            info["hit"] = True
            if memo is not None:
                memo[key] = imp
            return imp, info
        except ValueError as error:
            log.warning("ignoring cached importance %s (%s); recomputing it", path, error)
    imp = compute_importance(model, data, fingerprint=True, progress=progress, **options)
    if memo is not None:
        memo[key] = imp
    if path is not None and is_main_process():  # under torchrun, one writer
        try:
            imp.save(path)
            info["saved"] = True
        except OSError as error:  # includes PermissionError and a missing folder
            log.warning("cannot cache the importance at %s (%s); going on without", path, error)
    return imp, info


def _key(model: nn.Module, data, options: dict, key: str) -> str:
    settings = {k: options.get(k) for k in KEY_OPTIONS}
    if options.get("estimator", "batch") == "batch":
        settings["batch_size"] = getattr(data, "batch_size", None)
    text = json.dumps({"weights": fingerprint(model), "data": key, **settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
