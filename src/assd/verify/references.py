"""Reference models: models that never trained on the forget rows, from a known recipe.

What "forgotten" means for a forget set is how a model that never saw those
rows treats them. A :class:`Recipe` trains a model from rows (``train(x, y,
seed) -> model``, usually the original's training at a reduced budget);
:func:`build_references` trains ``2 * pairs`` models on complementary random
halves of the rows (LiRA's offline trick, Carlini et al. arXiv 2112.03570):

- row-level requests: halves of *all* training rows. Each row sits outside
  exactly ``pairs`` references, so one set of references, trained once per data
  set, serves every later request (:class:`ReferenceCache`, keyed by the rows'
  digest, the recipe and the seed; in memory, and with a folder on disk too,
  for later commands: :mod:`assd.verify.reference_store`);
- group requests (a class, a sub-class): halves of the *retained* rows, one
  set per request; no reference saw any forget row.

The halves are drawn on the rows' canonical order (sorted by a hash of each
row), so the same rows given in another order get the same references, and
a forget row is found by its content (:meth:`ReferenceSet.outside`).

Example:
    >>> split = HalfSplit.draw(6, pairs=2, seed=0)
    >>> split.masks.sum(1).tolist()  # every reference trains on half the rows
    [3, 3, 3, 3]
    >>> split.masks.sum(0).tolist()  # every row is in exactly one model of each pair
    [2, 2, 2, 2, 2, 2]
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..batches import TensorData, take_rows
from .per_example import (
    ReferenceProfile,
    calibrate,
    reference_profile,
    row_confidences,
    row_outputs,
)

__all__ = [
    "KEEP_SETS",
    "REFERENCE_BUDGET",
    "HalfSplit",
    "Recipe",
    "ReferenceCache",
    "ReferenceSet",
    "build_references",
    "for_request",
    "row_keys",
]

log = logging.getLogger("assd")

# The share of the original's training budget (epochs) each half-data reference gets by
# default: a pair costs about a third of a retraining. Chosen in docs/evidence.md (band
# table: benchmarks/reference_budget.py; met counts on the matrix, seeds 0 and 1: 0.25
# lost sub-class cells, 0.33 kept them; 0.5 cost half a retraining per pair).
REFERENCE_BUDGET = 0.33

# How many reference sets a cache folder keeps (least recently used removed first): a
# row-level set serves every request on the same rows, a group set only its own request.
KEEP_SETS = 8


@dataclass(frozen=True)
class Recipe:
    """How to train a model from rows.

    Args:
        name: what identifies the recipe in the cache (architecture, epochs, ...).
        train: ``train(x, y, seed) -> nn.Module``, a new model trained on those rows
            (``x`` a tensor, or a mapping of tensors when the batches' inputs are one).
        blank: ``blank() -> nn.Module``, an untrained model of the references'
            architecture (on the device they run on), into which a folder cache loads
            their weights; None: the references are cached in memory only.
    """

    name: str
    train: Callable[[torch.Tensor, torch.Tensor, int], nn.Module]
    blank: Callable[[], nn.Module] | None = None

    def __repr__(self) -> str:  # as reports show it: the name says what it trains
        return f"Recipe({self.name})"


def row_keys(x, y: torch.Tensor) -> list[bytes]:
    """A digest of each row's input and label (equal rows give equal keys); ``x`` a tensor
    or a mapping of tensors (each row's entries in key order)."""
    parts = [x[k] for k in sorted(x)] if isinstance(x, Mapping) else [x]
    flat = [t.detach().cpu().reshape(len(y), -1).contiguous().numpy() for t in (*parts, y)]
    return [hashlib.blake2b(b"".join(row.tobytes() for row in rows), digest_size=16).digest()
            for rows in zip(*flat, strict=True)]  # fmt: skip


@dataclass
class HalfSplit:
    """Which reference trained on which row: ``masks[j, i]`` (references x rows).

    References come in complementary pairs: ``2p`` trains on a random half,
    ``2p + 1`` on the other half, so each row is outside exactly one of each pair.
    """

    masks: torch.Tensor

    @classmethod
    def draw(cls, n: int, *, pairs: int, seed: int) -> HalfSplit:
        if pairs < 1 or n < 2:
            raise ValueError(f"a half split needs pairs >= 1 and >= 2 rows, got {pairs}, {n}.")
        generator = torch.Generator().manual_seed(seed)
        masks = torch.zeros(2 * pairs, n, dtype=torch.bool)
        for p in range(pairs):
            half = torch.randperm(n, generator=generator)[: n // 2]
            masks[2 * p, half] = True
            masks[2 * p + 1] = ~masks[2 * p]
        return cls(masks)

    def outside(self, rows: torch.Tensor) -> torch.Tensor:
        """(k, len(rows)): True where reference ``j`` never trained on row ``rows[i]``
        (``rows``: canonical indices; -1 for a row not among these rows at all)."""
        if self.masks.shape[1] == 0:  # references trained on other rows only
            return torch.ones(len(self.masks), len(rows), dtype=torch.bool)
        inside = self.masks[:, rows.clamp(min=0)]
        inside[:, rows < 0] = False
        return ~inside


@dataclass
class ReferenceSet:
    """Reference models and the rows they were trained on (their half split)."""

    models: list[nn.Module]
    split: HalfSplit
    keys: dict[bytes, int]  # row content -> canonical index
    seconds: float  # time spent training them
    key: tuple = ()
    cached: bool = field(default=False, compare=False)

    @classmethod
    def never_saw(cls, models: list[nn.Module]) -> ReferenceSet:
        """Given models, none of which trained on any row that will be judged."""
        if len(models) < 2:
            raise ValueError(f"give at least two reference models, got {len(models)}.")
        split = HalfSplit(torch.zeros(len(models), 0, dtype=torch.bool))
        return cls(models=list(models), split=split, keys={}, seconds=0.0)

    def outside(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(k, n): whether each reference never trained on each of these rows."""
        rows = torch.tensor([self.keys.get(k, -1) for k in row_keys(x, y)], dtype=torch.long)
        return self.split.outside(rows)

    def profile(self, forget, *, held_out=None, batch_fn=None, output_fn=None,
                ) -> ReferenceProfile:  # fmt: skip
        """The reference distribution of every row of ``forget`` (batches of ``(x, y)``);
        with ``held_out`` rows, of each confidence calibrated by the model's own confidences
        on them (:func:`assd.verify.per_example.calibrate`)."""
        x, y = _rows(forget, batch_fn)
        data = TensorData(x, y, batch_size=512)
        outputs = [row_outputs(m, data, output_fn=output_fn) for m in self.models]
        scores = torch.stack([c for c, _ in outputs]).double()
        if held_out is not None:
            scores = torch.stack([
                calibrate(s, row_confidences(m, held_out, batch_fn=batch_fn, output_fn=output_fn))
                for s, m in zip(scores, self.models, strict=True)])  # fmt: skip
        hits = torch.stack([h for _, h in outputs])
        out = self.outside(x, y)
        return reference_profile(torch.where(out, scores, torch.nan), hits & out)


class ReferenceCache:
    """References kept by (rows' digest, recipe name, pairs, seed): in memory, and with
    ``folder`` also on disk, one file per set, for later processes (read back through the
    recipe's ``blank``; :mod:`assd.verify.reference_store`). A file that cannot be read or
    written is warned about and the request goes on (training the set again, or not
    keeping it)."""

    def __init__(self, folder: str | os.PathLike | None = None, *, keep: int = KEEP_SETS):
        if keep < 1:
            raise ValueError(f"keep is how many reference sets a folder holds (>= 1), got {keep}.")
        self.folder, self.keep = (None if folder is None else Path(folder)), keep
        self._sets: dict[tuple, ReferenceSet] = {}

    @classmethod
    def at(cls, folder: str | os.PathLike) -> ReferenceCache:
        """This process's cache for ``folder`` (one per folder, so its memory is shared)."""
        path = Path(folder).resolve()
        if path not in _FOLDERS:
            _FOLDERS[path] = cls(path)
        return _FOLDERS[path]

    def get(self, key: tuple, recipe: Recipe | None = None) -> ReferenceSet | None:
        """The set with this key, from memory or from the folder (None if neither has it)."""
        hit = self._sets.get(key)
        path = self._path(key, recipe)
        if hit is not None or path is None or not path.is_file():
            return hit
        from .reference_store import read_entry

        try:
            models, masks, info = read_entry(path, _file_key(key), recipe.blank)
        except ValueError as error:
            log.warning("ignoring the cached references %s (%s); training them again",
                        path, error)  # fmt: skip
            return None
        refs = ReferenceSet(models=models, split=HalfSplit(masks), keys={}, key=key,
                            seconds=float(info.get("seconds", 0.0)))  # fmt: skip
        self._sets[key] = refs
        with contextlib.suppress(OSError):  # marks it used: the last one pruned
            os.utime(path)
        log.info("took %d reference models from %s", len(models), path)
        return refs

    def put(self, refs: ReferenceSet, recipe: Recipe | None = None) -> None:
        """Keep ``refs``; with a folder and a recipe that has ``blank``, write them there."""
        self._sets[refs.key] = refs
        path = self._path(refs.key, recipe)
        if path is None:
            return
        from ..importance.distributed import is_main_process
        from .reference_store import write_entry

        if not is_main_process():  # under torchrun, one writer
            return
        digest, _, pairs, seed = refs.key
        info = {"rows": int(refs.split.masks.shape[1]), "pairs": pairs, "seed": seed,
                "seconds": round(refs.seconds, 3), "recipe": recipe.name, "rows_sha256": digest}
        try:
            write_entry(path, _file_key(refs.key), refs.models, refs.split.masks, info)
        except Exception as error:  # OSError, and safetensors' own error on a full disk
            log.warning("cannot cache the references at %s (%s); going on without", path, error)
            return
        self._prune(keep=path)

    def _prune(self, keep: Path) -> None:
        """Remove the least recently used reference files beyond :attr:`keep` (only files
        that read as reference sets: :func:`assd.verify.reference_store.is_reference_file`)."""
        from .reference_store import is_reference_file

        found = [p for p in self.folder.glob("references-*.safetensors")
                 if p != keep and is_reference_file(p)]  # fmt: skip
        for old in sorted(found, key=_last_used)[: len(found) + 1 - self.keep]:
            with contextlib.suppress(OSError):
                old.unlink()
                log.info("removed the least recently used reference set %s", old)

    def _path(self, key: tuple, recipe: Recipe | None) -> Path | None:
        if self.folder is None or recipe is None or recipe.blank is None:
            return None
        from .reference_store import entry_name

        return self.folder / entry_name(_file_key(key))

    def __len__(self) -> int:
        return len(self._sets)

    def __repr__(self) -> str:
        return f"ReferenceCache({'memory' if self.folder is None else str(self.folder)})"


_FOLDERS: dict[Path, ReferenceCache] = {}
SHARED = ReferenceCache()  # the process's cache, used when none is given


def _last_used(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return math.inf  # gone meanwhile: not removed again


def _file_key(key: tuple) -> str:
    return hashlib.sha256(json.dumps(list(key)).encode()).hexdigest()


def build_references(x: torch.Tensor, y: torch.Tensor, recipe: Recipe, *, pairs: int = 1,
                     seed: int = 0, cache: ReferenceCache | None = SHARED) -> ReferenceSet:
    """Train ``2 * pairs`` references on complementary random halves of the rows ``(x, y)``
    (or take them from ``cache``). Seeds: ``seed`` draws the halves, ``seed + j`` trains
    reference ``j``."""
    keys = row_keys(x, y)
    order = sorted(range(len(keys)), key=keys.__getitem__)
    digest = hashlib.sha256(b"".join(keys[i] for i in order)).hexdigest()
    key = (digest, recipe.name, pairs, seed)
    index = {keys[i]: c for c, i in enumerate(order)}
    if cache is not None and (hit := cache.get(key, recipe)) is not None:
        if tuple(hit.split.masks.shape) == (2 * pairs, len(keys)):
            hit.keys = hit.keys or index
            hit.cached = True
            return hit
        log.warning("the cached references' split does not cover these rows; training them again")
    split = HalfSplit.draw(len(keys), pairs=pairs, seed=seed)
    canonical = torch.tensor(order, dtype=torch.long)
    tick = time.perf_counter()
    models = []
    for j, mask in enumerate(split.masks):
        rows = canonical[mask]
        models.append(recipe.train(take_rows(x, rows), y[rows], seed + j).eval())
    seconds = time.perf_counter() - tick
    log.info("trained %d reference models (%s) in %.2fs", len(models), recipe.name, seconds)
    refs = ReferenceSet(models=models, split=split, seconds=seconds, key=key, keys=index)
    if cache is not None:
        cache.put(refs, recipe)
    return refs


def for_request(kind: str, sets: dict, recipe: Recipe, *, pairs: int = 1, seed: int = 0,
                batch_fn=None, cache: ReferenceCache | None = SHARED) -> ReferenceSet:  # fmt: skip
    """References for one request from its evaluation sets (``forget``, ``retain``).

    A group request (``kind="group"``: a class, a sub-class) and an error correction
    (``kind="mislabelled"``: wrong labels, often a whole group of them, which half of
    them would teach a reference) get references on halves of the retained rows; a
    row-level request gets references on halves
    of all rows (forget and retained together, with ``"retain (forgotten part)"``:
    retained rows equal in content to forget rows), shared through ``cache`` with
    every later request on the same rows when ``retain`` holds all retained rows.
    """
    rx, ry = _rows(sets["retain"], batch_fn)
    if kind not in ("group", "mislabelled"):  # wrong labels: references never see any
        from .split import FORGOTTEN_PART

        # every training row: the forget rows, the retained ones, and retained rows equal in
        # content to forget rows (split off "retain" to be scored apart), so that every
        # request on the same data gets the same references
        parts = [sets["forget"], sets.get("retain" + FORGOTTEN_PART)]
        more = [_rows(part, batch_fn) for part in parts if part is not None]
        rx, ry = _cat([x for x, _ in more] + [rx]), torch.cat([y for _, y in more] + [ry])
    return build_references(rx, ry, recipe, pairs=pairs, seed=seed, cache=cache)


def _rows(data, batch_fn=None) -> tuple:
    """All rows of batches, as ``(x, y)`` on the CPU: ``x`` a tensor, or a mapping of tensors
    (a tokenizer's ``input_ids``, ``attention_mask``, ...) when the batches' inputs are."""
    from ..batches import split_batch

    if isinstance(data, TensorData) and data.targets is not None and not data.shuffle:
        return _cpu(data.inputs), data.targets.cpu()
    xs, ys = [], []
    for batch in data:
        x, y = split_batch(batch, batch_fn)
        tensors = x.values() if isinstance(x, Mapping) else [x]
        if y is None or not all(isinstance(t, torch.Tensor) for t in tensors):
            raise ValueError("reference models need labelled rows of tensors: (x, y), or a "
                             "mapping of tensors with a label entry.")  # fmt: skip
        xs.append(_cpu(x))
        ys.append(y.detach().cpu())
    if not xs:
        raise ValueError("no rows given; give at least one labelled row.")
    return _cat(xs), torch.cat(ys)


def _cpu(x):
    if isinstance(x, Mapping):
        return {k: v.detach().cpu() for k, v in x.items()}
    return x.detach().cpu()


def _cat(parts: list):
    """Rows of several batches in one tensor (or one per key of a mapping)."""
    if not isinstance(parts[0], Mapping):
        return torch.cat(parts)
    if any(set(p) != set(parts[0]) for p in parts):
        raise ValueError("the batches' inputs have different keys; give every batch the same.")
    try:
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    except RuntimeError:
        raise ValueError(
            "the batches' inputs have different lengths (padded per batch): reference models "
            "need rows of one shape. Pad every row to one length (a tokenizer's "
            "padding='max_length'), or give references=."
        ) from None
