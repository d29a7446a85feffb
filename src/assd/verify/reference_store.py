"""Reference models on disk: one safetensors file per reference set, checked on read.

A :class:`assd.verify.references.ReferenceCache` with a folder keeps every set
it trains as ``references-<key>.safetensors`` there, so a later command (a new
process) takes them from the file instead of training them again. The file
holds each reference's state dict (``ref<j>/<name>``) and the half split
(``split``, references x rows); its metadata holds the set's key (the rows'
digest, the recipe's name, the pairs and the seed, hashed), a description
(rows, pairs, seed, training seconds, the recipe's name for people) and a
SHA-256 over the tensors, the key and the description.

Reading needs the references' architecture: the recipe's ``blank()``, an
untrained model whose state dict the file fills. A file that is unreadable,
damaged, written for another key, or whose tensors do not fit ``blank()`` is
refused with :class:`ValueError` (the cache then warns, trains the set again
and rewrites the file). Files are written atomically
(:func:`assd.store.files.atomic_path`).

Example:
    >>> import tempfile, pathlib, torch
    >>> blank = lambda: torch.nn.Linear(3, 2)
    >>> models, masks = [blank(), blank()], torch.tensor([[True, False], [False, True]])
    >>> path = pathlib.Path(tempfile.mkdtemp()) / entry_name("k" * 64)
    >>> write_entry(path, "k" * 64, models, masks, {"pairs": 1, "seed": 0, "seconds": 0.5})
    >>> loaded, split, info = read_entry(path, "k" * 64, blank)
    >>> torch.equal(loaded[1].weight, models[1].weight), split.tolist(), info["seconds"]
    (True, [[True, False], [False, True]], 0.5)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..store.files import atomic_path, read_safetensors
from ..store.fingerprint import tensor_digest

__all__ = ["FORMAT", "entry_name", "is_reference_file", "read_entry", "write_entry"]

FORMAT = "assd-reference-cache/1"


def entry_name(key: str) -> str:
    """The file name of the set with this key (a hex digest)."""
    return f"references-{key[:24]}.safetensors"


def is_reference_file(path: Path) -> bool:
    """Whether ``path`` is a reference set's file (by its own metadata, not its name)."""
    from safetensors import safe_open

    if path.is_symlink() or not path.is_file():
        return False
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            return (handle.metadata() or {}).get("format") == FORMAT
    except Exception:  # unreadable: not ours to remove
        return False


def write_entry(path: Path, key: str, models: list[nn.Module], masks: torch.Tensor,
                info: dict) -> None:  # fmt: skip
    """Write the references' weights and split to ``path`` atomically."""
    from safetensors.torch import save_file

    tensors = {"split": masks.to(torch.uint8).contiguous()}
    for j, model in enumerate(models):
        for name, t in model.state_dict().items():
            tensors[f"ref{j}/{name}"] = t.detach().cpu().clone().contiguous()
    text = json.dumps({**info, "models": len(models)}, sort_keys=True)
    metadata = {"format": FORMAT, "key": key, "info": text,
                "sha256": _digest(tensors, key, text)}  # fmt: skip
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def read_entry(path: Path, key: str, blank: Callable[[], nn.Module],
               ) -> tuple[list[nn.Module], torch.Tensor, dict]:  # fmt: skip
    """``(models in eval mode, split masks, description)`` from ``path``; ValueError if the
    file is unreadable, damaged, for another key, or does not fit ``blank()``."""
    metadata, tensors = read_safetensors(path)
    if metadata.get("format") != FORMAT or metadata.get("key") != key:
        raise ValueError("not an assd reference set for these rows, recipe and seed")
    text = metadata.get("info", "")
    if metadata.get("sha256") != _digest(tensors, key, text):
        raise ValueError("its contents or its description do not match its checksum: "
                         "the file is damaged or edited")  # fmt: skip
    info = json.loads(text)
    if not isinstance(info, dict):
        raise ValueError(f"malformed description ({text[:80]})")
    count, masks = info.get("models"), tensors.pop("split", None)
    if not isinstance(count, int) or masks is None or masks.dim() != 2 or len(masks) != count:
        raise ValueError("malformed: its split does not match its count of models")
    models = []
    for j in range(count):
        prefix = f"ref{j}/"
        state = {n[len(prefix):]: t for n, t in tensors.items() if n.startswith(prefix)}
        with torch.random.fork_rng(devices=[]):  # building a blank model draws no global numbers
            model = blank()
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            first = str(error).splitlines()[0]
            raise ValueError(f"its weights do not fit the recipe's model ({first})") from None
        models.append(model.eval())
    return models, masks.bool(), info


def _digest(tensors: dict[str, torch.Tensor], key: str, info: str) -> str:
    """SHA-256 over the named tensors, the key and the description."""
    items = [(f"{n}|{t.dtype}|{tuple(t.shape)}|".encode(), t) for n, t in sorted(tensors.items())]
    text = json.dumps([tensor_digest(items), key, info])
    return hashlib.sha256(text.encode()).hexdigest()
