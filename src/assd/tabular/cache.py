"""A cache of training-data importances beside the model (or in a cache folder).

The expensive part of an unlearning request is the pass over the whole
training set. Its importance depends only on the weights, the data and the
importance settings, so it is stored once under a key made of all three and
reused by every later request. Each entry carries its key and a SHA-256 of
its own tensors; an entry that is unreadable, damaged (even with valid
framing), foreign (another key or model) or stale is warned about by file
name, ignored, recomputed and rewritten. If the cache cannot be written (a
read-only folder, a full disk), a warning is logged and the request goes on
without caching. Entries are written ``0666`` less the umask, like every
other output.

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
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..importance.compute import compute_importance
from ..importance.core import Importance
from ..importance.distributed import is_main_process
from ..store.files import atomic_path, read_safetensors
from ..store.fingerprint import fingerprint, tensor_digest

__all__ = ["cache_entry", "cached_importance", "content_digest", "data_key"]

log = logging.getLogger("assd")

KEY_OPTIONS = ("objective", "estimator", "train_mode")
_FORMAT = "assd-importance-cache/2"  # /2: the checksum covers the key and the description
_INFO = {"objective": (str,), "estimator": (str,), "n_samples": (int,), "n_batches": (int,),
         "batch_size": (int,), "train_mode": (bool,), "fingerprint": (str, type(None)),
         "loss": (str, type(None)), "reference": (str, type(None)),
         "paths": (dict, type(None))}  # fmt: skip


def data_key(x: torch.Tensor, y: torch.Tensor) -> str:
    """SHA-256 tree of the encoded training rows (features and labels), hashed in parallel."""
    items = [(f"{t.dtype}|{tuple(t.shape)}|".encode(), t) for t in (x, y)]
    return tensor_digest(items)


def cached_importance(
    model: nn.Module,
    data,
    *,
    options: dict,
    data_key: str | Callable[[], str],
    folder: str | os.PathLike | None,
    memo: dict | None = None,
    progress: bool = False,
) -> tuple[Importance, dict]:
    """The importance of ``model`` on ``data``: from the cache if there, else computed and saved.

    Args:
        model: the model (its weights are part of the key).
        data: batches of the training data.
        options: keyword options of :func:`assd.compute_importance`.
        data_key: identifies the data (see :func:`data_key`), or a function giving it
            (called only if there is a cache to look in: hashing the data costs time).
        folder: where the cache files live; None disables caching on disk.
        memo: a dict that keeps importances in memory too (key -> Importance).
        progress: show a progress bar while computing.

    Returns:
        ``(importance, info)``; info has ``path``, ``hit`` and ``saved``.
    """
    if folder is None and memo is None:  # no cache: no key to hash, no fingerprint to store
        imp = compute_importance(model, data, fingerprint=False, progress=progress, **options)
        return imp, {"path": None, "hit": False, "saved": False}
    key = _key(model, data, options, data_key() if callable(data_key) else data_key)
    path = None if folder is None else Path(folder) / _entry_name(key)
    info = {"path": None if path is None else str(path), "hit": False, "saved": False}
    if memo is not None and key in memo:
        return memo[key], {**info, "hit": True}
    if path is not None and path.is_file():
        try:
            imp = _read_entry(path, key)
            imp.check_fits(model)
            info["hit"] = True
            if memo is not None:
                memo[key] = imp
            return imp, info
        except ValueError as error:
            log.warning("ignoring the cached importance %s (%s); recomputing and rewriting it",
                        path, error)  # fmt: skip
    imp = compute_importance(model, data, fingerprint=True, progress=progress, **options)
    if memo is not None:
        memo[key] = imp
    if path is not None and is_main_process():  # under torchrun, one writer
        try:
            _write_entry(imp, path, key)
            info["saved"] = True
        except Exception as error:  # OSError, and safetensors' own error on a full disk
            log.warning("cannot cache the importance at %s (%s); going on without", path, error)
    return imp, info


def cache_entry(imp: Importance, key: str) -> tuple[str, Callable]:
    """``(file name, writer(path))`` of the cache entry for ``key`` (a key of ``memo``):
    for a folder written at once with others (:meth:`assd.tabular.TabularModel.save`)."""
    return _entry_name(key), lambda path: _write_entry(imp, Path(path), key)


def _entry_name(key: str) -> str:
    return f"importance-{key[:24]}.safetensors"


def content_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of named tensors (names, dtypes, shapes and bytes, in name order)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def _write_entry(imp: Importance, path: Path, key: str) -> None:
    from safetensors.torch import save_file

    tensors = {n: t.detach().cpu().contiguous() for n, t in imp.tensors.items()}
    info = {k: v for k, v in imp.__dict__.items() if k != "tensors"}
    text = json.dumps(info, sort_keys=True)
    metadata = {"format": _FORMAT, "key": key, "info": text,
                "sha256": _entry_digest(tensors, key, text)}  # fmt: skip
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def _read_entry(path: Path, key: str) -> Importance:
    """Read a cache entry; ValueError if it is unreadable, foreign or damaged."""
    metadata, tensors = read_safetensors(path)
    if metadata.get("format") != _FORMAT or metadata.get("key") != key:
        raise ValueError("not an assd cache entry for this model, data and settings")
    if metadata.get("sha256") != _entry_digest(tensors, key, metadata.get("info", "")):
        raise ValueError("its contents or its description (sample count, reference, batch "
                         "size, ...) do not match its checksum: the file is damaged or edited")
    return Importance(tensors=tensors, **_checked_info(metadata.get("info", "")))


def _entry_digest(tensors: dict, key: str, info: str) -> str:
    """SHA-256 over the tensors, the key and the description: an edit to any is seen."""
    text = json.dumps([content_digest(tensors), key, info])
    return hashlib.sha256(text.encode()).hexdigest()


def _checked_info(text: str) -> dict:
    """The entry's description, every field of the type :class:`Importance` has."""
    try:
        info = json.loads(text)
    except ValueError as error:
        raise ValueError(f"malformed description ({error})") from None
    if not isinstance(info, dict) or set(info) - set(_INFO):
        raise ValueError(f"malformed description ({str(info)[:80]})")
    for name, kinds in _INFO.items():
        value = info.get(name)
        required = name in ("objective", "estimator", "n_samples", "n_batches", "batch_size")
        if (name in info or required) and (not isinstance(value, kinds) or (
                bool not in kinds and isinstance(value, bool))):  # fmt: skip
            raise ValueError(f"malformed description: field {name!r} is {value!r}")
    if info["n_samples"] < 1 or info["n_batches"] < 1 or info["batch_size"] < 1:
        raise ValueError("malformed description: counts must be at least 1")
    return info


def _key(model: nn.Module, data, options: dict, key: str) -> str:
    settings = {k: options.get(k) for k in KEY_OPTIONS}
    if options.get("estimator", "batch") == "batch":
        settings["batch_size"] = getattr(data, "batch_size", None)
    text = json.dumps({"weights": fingerprint(model), "data": key, **settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
