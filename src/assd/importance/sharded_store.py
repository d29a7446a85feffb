"""Saving and loading a sharded importance: one safetensors file per rank and an index.

``save_sharded_importance(importance, folder)`` (every rank calls it) writes
``rank-00000-of-00002.safetensors`` ... with each rank's rows of every
importance, and ``index.json`` (written last, by rank 0) with the settings,
the weights' fingerprint, every tensor's global shape and which rows each
file holds. ``load_sharded_importance(folder, model)`` reads back the rows this rank
owns *at its current world size*: a model sharded over 4 ranks can use an
importance saved by 2, and a single process (unsharded model, no process
group) gets whole tensors, an ordinary :class:`~assd.Importance`. Rows are
read with safetensors' slices, so no rank reads more than it keeps.

Example (one process):
    >>> import tempfile, torch
    >>> from assd import TensorData, compute_importance
    >>> model = torch.nn.Linear(3, 2)
    >>> imp = compute_importance(model, TensorData(torch.randn(6, 3), torch.tensor([0, 1] * 3)))
    >>> folder = tempfile.mkdtemp()
    >>> save_sharded_importance(imp, folder)
    >>> torch.equal(load_sharded_importance(folder, model).tensors["weight"], imp.tensors["weight"])
    True
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from ..rule.sharded_dampening import is_sharded
from ..store.files import atomic_path
from ..store.sharded_fingerprint import PREFIX, sharded_fingerprint
from .core import Importance
from .sharded import row_range, wrap_like

__all__ = ["load_sharded_importance", "save_sharded_importance"]

_FORMAT = "assd-sharded-importance"
_INDEX = "index.json"


def save_sharded_importance(
    importance: Importance, folder: str | os.PathLike, *, model: nn.Module | None = None
) -> None:
    """Write this rank's rows of ``importance`` (DTensors or whole tensors) under ``folder``.

    Collective: every rank of the group calls it. Files are written atomically;
    the index appears only once every rank's file is in place.

    Args:
        importance: computed on a sharded model (it carries a world-size-free
            ``s1:`` fingerprint), or a single process's.
        folder: created if needed.
        model: the weights it was computed on. A single process's importance
            carries a fingerprint that only whole weights can check; given the
            model, it is checked and replaced by the ``s1:`` stamp any world
            size can check.
    """
    world, rank = _world()
    stamp = importance.fingerprint
    if model is not None:
        if stamp is not None and not stamp.startswith(PREFIX):
            importance.check_fits(model)  # stale weights are refused before re-stamping
        stamp = sharded_fingerprint(model)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows, local = {}, {}
    for name, t in importance.tensors.items():
        whole = t.shape[0] if t.dim() else 1
        start, stop = row_range(whole, rank, world) if is_sharded(t) else (0, whole)
        rows[name] = [start, stop]
        local[name] = (t.to_local() if is_sharded(t) else t).detach().cpu().contiguous()
    _write_rank(folder / _file(rank, world), local, rows)
    if world > 1:
        dist.barrier()
    if rank == 0:
        meta = {k: v for k, v in importance.__dict__.items() if k != "tensors"}
        meta["fingerprint"] = stamp
        shapes = {n: list(t.shape) for n, t in importance.tensors.items()}
        files = [_file(r, world) for r in range(world)]
        index = {"format": _FORMAT, "version": 1, "world_size": world, "files": files,
                 "shapes": shapes, "info": meta}  # fmt: skip
        with atomic_path(folder / _INDEX) as tmp:
            Path(tmp).write_text(json.dumps(index, indent=1))
    if world > 1:
        dist.barrier()


def load_sharded_importance(folder: str | os.PathLike, model: nn.Module) -> Importance:
    """Read the rows of a saved importance that this rank's shards of ``model`` need.

    Args:
        folder: written by :func:`save_sharded_importance`, at any world size.
        model: the model it will be used with: sharded parameters (DTensors)
            get DTensor importances laid out like them; plain ones whole tensors.

    Raises:
        ValueError: a missing or foreign index, a missing rank file, names or
            shapes that differ from the model's, or stale weights (fingerprint).
    """
    folder = Path(folder)
    index = _read_index(folder)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if set(params) != set(index["shapes"]):
        raise ValueError(f"the importance under {folder} was computed for another model: its "
                         "parameter names differ from the model's. Recompute it.")  # fmt: skip
    world, rank = _world()
    spans = _spans(folder, index)
    tensors = {}
    for name, p in params.items():
        shape = tuple(index["shapes"][name])
        if shape != tuple(p.shape):
            raise ValueError(f"the saved importance of {name!r} has shape {shape}, the model's "
                             f"parameter {tuple(p.shape)}; recompute it.")  # fmt: skip
        whole = shape[0] if shape else 1
        start, stop = row_range(whole, rank, world) if is_sharded(p) else (0, whole)
        local = _read_rows(folder, name, spans[name], start, stop, shape)
        tensors[name] = wrap_like(local.to(p.device), p) if is_sharded(p) else local
    stamp = index["info"].get("fingerprint")
    if stamp is not None and not stamp.startswith(PREFIX) and any(map(is_sharded, params.values())):
        raise ValueError(
            f"the importance under {folder} carries a fingerprint that needs the whole weights; "
            "a sharded model cannot check it. Save it with save_sharded_importance(importance, "
            "folder, model=model) from the process that computed it."
        )
    known = {f for f in Importance.__dataclass_fields__ if f != "tensors"}
    loaded = Importance(tensors=tensors, **{k: v for k, v in index["info"].items() if k in known})
    loaded.check_fits(model)
    return loaded


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def _file(rank: int, world: int) -> str:
    return f"rank-{rank:05d}-of-{world:05d}.safetensors"


def _write_rank(path: Path, tensors: dict, rows: dict) -> None:
    from safetensors.torch import save_file

    metadata = {"format": _FORMAT, "rows": json.dumps(rows)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def _read_index(folder: Path) -> dict:
    path = folder / _INDEX
    if not path.is_file():
        raise ValueError(f"no sharded importance under {folder} ({_INDEX} is missing); save one "
                         "with save_sharded_importance, on every rank, first.")  # fmt: skip
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read {path} ({error}); save the importance again.") from error
    if not isinstance(index, dict) or index.get("format") != _FORMAT:
        raise ValueError(f"{path} is not an assd sharded-importance index.")
    return index


def _spans(folder: Path, index: dict) -> dict[str, list[tuple[str, int, int]]]:
    """For every tensor, ``(file, start, stop)`` of the rows each file holds."""
    from safetensors import safe_open

    spans: dict[str, list] = {name: [] for name in index["shapes"]}
    for file in index["files"]:
        if not (folder / file).is_file():
            raise ValueError(f"{folder / file} is missing: the sharded importance is "
                             "incomplete. Save it again.")  # fmt: skip
        with safe_open(str(folder / file), framework="pt") as handle:
            rows = json.loads((handle.metadata() or {}).get("rows", "{}"))
        for name, (start, stop) in rows.items():
            spans[name].append((file, start, stop))
    return spans


def _read_rows(folder: Path, name: str, spans: list, start: int, stop: int, shape: tuple):
    """Rows ``[start, stop)`` of one tensor, read from the files that hold them."""
    from safetensors import safe_open

    parts = []
    for file, a, b in sorted(spans, key=lambda s: s[1]):
        lo, hi = max(a, start), min(b, stop)
        if lo < hi:
            with safe_open(str(folder / file), framework="pt") as handle:
                whole = handle.get_tensor(name) if not shape else None
                parts.append(
                    whole if whole is not None else handle.get_slice(name)[lo - a : hi - a]
                )
    if sum(p.shape[0] if p.dim() else 1 for p in parts) != stop - start:
        raise ValueError(
            f"the files under {folder} do not hold rows {start}..{stop} of {name!r}: the "
            "sharded importance is damaged. Save it again."
        )
    if not shape:
        return parts[0]
    return torch.cat(parts) if parts else torch.zeros((0, *shape[1:]))
