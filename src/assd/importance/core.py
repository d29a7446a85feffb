"""The diagonal-Fisher importance of every trainable parameter, and how it is stored.

:func:`assd.importance.compute.compute_importance` makes one pass over the data
and returns an :class:`Importance`: float32 tensors keyed by parameter name, plus how and on
how many samples they were computed, plus a fingerprint of the weights. Save
it once (safetensors) and later unlearning requests for the same weights only
need a pass over the forget set.

Example:
    >>> import torch
    >>> from assd.batches import TensorData
    >>> model = torch.nn.Linear(3, 2)
    >>> data = TensorData(torch.randn(8, 3), torch.randint(0, 2, (8,)), batch_size=4)
    >>> from assd.importance.compute import compute_importance
    >>> imp = compute_importance(model, data)
    >>> imp.n_samples, imp.n_batches, sorted(imp.tensors)
    (8, 2, ['bias', 'weight'])
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..store.files import atomic_path
from ..store.fingerprint import matches as fingerprint_matches

__all__ = ["Importance"]

_FORMAT = "assd-importance"
_FORMAT_VERSION = 1


@dataclass
class Importance:
    """Per-parameter importances and how they were computed.

    Attributes:
        tensors: float32 importance per trainable parameter name.
        objective: ``"loss"`` (squared gradients of the loss) or
            ``"output_norm"`` (absolute gradients of the output's squared norm).
        estimator: ``"batch"`` (mean over batches of the squared batch-mean
            gradient) or ``"sample"`` (mean over samples of the squared
            per-sample gradient).
        n_samples: samples seen.
        n_batches: batches seen.
        batch_size: size of the first batch (the ``batch`` estimator depends on it).
        train_mode: whether the model ran in train mode (batch statistics).
        fingerprint: hash of the weights it was computed on, or None.
        loss: the loss differentiated (``"cross_entropy"``, or the module-qualified
            name of ``loss_fn``); None for ``output_norm`` or files written before it
            was recorded.
        reference: which data it was computed on, if said: ``"full"`` (the whole
            training set) or ``"retain"`` (without the forget rows); None: not said.
        paths: ``estimator="sample"`` only: how each parameter's per-sample
            gradients were taken (``factorised``, ``hooks``, ``torch.func``,
            ``loop`` or ``unused``; see :mod:`assd.importance.persample`), else None.

    A method given a precomputed importance refuses one whose ``estimator``,
    ``objective``, ``train_mode``, ``loss`` or ``reference`` differs from its own
    settings (None counts as unknown and is accepted).
    """

    tensors: dict[str, torch.Tensor]
    objective: str
    estimator: str
    n_samples: int
    n_batches: int
    batch_size: int
    train_mode: bool = False
    fingerprint: str | None = field(default=None)
    loss: str | None = None
    reference: str | None = None
    paths: dict[str, str] | None = field(default=None)

    def settings(self) -> dict:
        """How it was computed, JSON-ready (what :class:`~assd.UnlearnResult` records)."""
        keys = ("estimator", "objective", "loss", "reference", "train_mode", "n_samples")
        return {k: getattr(self, k) for k in keys} | {"batch_size": self.batch_size}

    def path_counts(self) -> dict[str, int]:
        """Parameter elements per per-sample path, e.g. ``{"factorised": 30000, "hooks": 603}``.

        Empty for the batch estimator (or an importance saved before paths were recorded).
        """
        counts: dict[str, int] = {}
        for name, path in (self.paths or {}).items():
            counts[path] = counts.get(path, 0) + self.tensors[name].numel()
        return counts

    @property
    def numel(self) -> int:
        return sum(t.numel() for t in self.tensors.values())

    def to(self, device: torch.device | str) -> Importance:
        """A copy with every tensor on ``device``."""
        moved = {n: t.to(device) for n, t in self.tensors.items()}
        return Importance(**{**self.__dict__, "tensors": moved})

    def without(self, part: Importance) -> Importance:
        """The importance of the other samples: this set minus ``part`` (a subset of it).

        Importance is a mean over samples, so for the ``sample`` estimator
        ``(n * I_all - k * I_part) / (n - k)`` is exactly what a pass over the
        remaining samples would give (up to rounding; tiny negatives are
        clipped to 0). It turns a cached full-data importance plus a pass over
        the forget set into the retain-set importance without another pass.

        Raises:
            ValueError: for the ``batch`` estimator (batch means do not
                subtract), mismatched settings, or a part as large as the whole.
        """
        if self.estimator != "sample" or part.estimator != "sample":
            raise ValueError(
                "only estimator='sample' importances can be subtracted exactly; the batch "
                "estimator averages batch-mean gradients, which do not decompose by sample. "
                "Compute the retain-set importance directly instead."
            )
        if (part.objective, part.train_mode) != (self.objective, self.train_mode):
            raise ValueError("both importances must use the same objective and mode.")
        if set(part.tensors) != set(self.tensors):
            raise ValueError("the two importances cover different parameters.")
        rest = self.n_samples - part.n_samples
        if rest <= 0:
            raise ValueError(
                f"cannot remove {part.n_samples} samples from an importance of {self.n_samples}."
            )
        tensors = {name: _rest_of(t, part.tensors[name], self.n_samples, part.n_samples, rest)
                   for name, t in self.tensors.items()}  # fmt: skip
        return Importance(
            tensors=tensors,
            objective=self.objective,
            estimator=self.estimator,
            n_samples=rest,
            n_batches=max(self.n_batches - part.n_batches, 1),
            batch_size=self.batch_size,
            train_mode=self.train_mode,
            fingerprint=self.fingerprint,
            loss=self.loss,
            reference="retain" if self.reference == "full" else None,
            paths=self.paths,
        )

    def check_settings(self, **requested) -> None:
        """Refuse an importance computed with other settings than ``requested``.

        Args:
            requested: any of ``estimator``, ``objective``, ``loss``, ``reference``,
                ``train_mode``; a None on either side means "not known" and passes.

        Example:
            >>> imp = Importance({}, "loss", "batch", 1, 1, 1)
            >>> imp.check_settings(estimator="sample")
            Traceback (most recent call last):
            ...
            ValueError: this importance was computed with estimator='batch' but the request...
        """
        for key, wanted in requested.items():
            have = getattr(self, key)
            if have is not None and wanted is not None and have != wanted:
                raise ValueError(
                    f"this importance was computed with {key}={have!r} but the request uses "
                    f"{key}={wanted!r}; reusing it would mix two different measures. Recompute "
                    f"it with the request's settings, or set the method's {key} to {have!r}."
                )

    def check_fits(self, model: nn.Module, *, check_fingerprint: bool = True) -> None:
        """Refuse an importance that was computed on another model or other weights."""
        # names and shapes only: the weights' own NaN/inf check (a pass over every
        # weight) is the importance pass's, and NaN weights cannot match a fingerprint
        params = {name: p for name, p in model.named_parameters() if p.requires_grad}
        if set(params) != set(self.tensors):
            missing = sorted(set(params) - set(self.tensors))[:3]
            extra = sorted(set(self.tensors) - set(params))[:3]
            raise ValueError(
                "this importance does not belong to this model: parameter names differ "
                f"(missing {missing}, unexpected {extra}). Recompute it with "
                "compute_importance(model, data)."
            )
        for name, p in params.items():
            if not _finite_non_negative(self.tensors[name]):
                raise ValueError(
                    f"the importance of {name!r} holds NaN, infinite or negative values; the "
                    "file is damaged or was not written by assd. Recompute it."
                )
            if tuple(p.shape) != tuple(self.tensors[name].shape):
                raise ValueError(
                    f"importance of {name!r} has shape {tuple(self.tensors[name].shape)} but the "
                    f"model's parameter has {tuple(p.shape)}; recompute the importance."
                )
        stamp = self.fingerprint
        if check_fingerprint and stamp is not None and not fingerprint_matches(model, stamp):
            raise ValueError(
                "this importance was computed on different weights (fingerprint "
                "mismatch): it is stale. Recompute it with compute_importance(model, data) "
                "for the current weights."
            )

    def save(self, path: str | os.PathLike) -> None:
        """Write to a safetensors file atomically (temporary file, then rename)."""
        from safetensors.torch import save_file

        if any(callable(getattr(t, "to_local", None)) for t in self.tensors.values()):
            raise ValueError("this importance is sharded (FSDP2): save it with "
                             "assd.save_sharded_importance(importance, folder) on every rank.")
        meta = {k: v for k, v in self.__dict__.items() if k != "tensors"}
        metadata = {"format": _FORMAT, "version": str(_FORMAT_VERSION), "info": json.dumps(meta)}
        tensors = {n: t.detach().cpu().contiguous() for n, t in self.tensors.items()}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str | torch.device = "cpu") -> Importance:
        """Read a file written by :meth:`save`."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no importance file at {path}; compute and save one first.")
        try:
            with safe_open(str(path), framework="pt", device=str(device)) as handle:
                metadata = handle.metadata() or {}
                if metadata.get("format") != _FORMAT:
                    raise ValueError(f"{path} is a safetensors file but not an assd importance.")
                tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
            info = json.loads(metadata["info"])
        except ValueError:
            raise
        except Exception as error:  # safetensors raises its own error types
            raise ValueError(
                f"cannot read importance file {path} ({error}); it is truncated or corrupt. "
                "Delete it and compute the importance again."
            ) from error
        known = {f for f in cls.__dataclass_fields__ if f != "tensors"}
        return cls(tensors=tensors, **{k: v for k, v in info.items() if k in known})


def _finite_non_negative(t: torch.Tensor) -> bool:
    """Whether every element is finite and >= 0: one reduction, no temporaries.

    ``aminmax`` propagates NaN, so NaN fails both comparisons; ~8x faster than
    ``isfinite(t).all()`` plus ``(t < 0).any()`` on ViT-B's 86M values.
    """
    if not t.numel():
        return True
    if not t.is_floating_point():
        return bool((t >= 0).all())
    low, high = torch.aminmax(t.detach())
    return bool(low >= 0) and bool(high < torch.inf)


def _rest_of(whole: torch.Tensor, part: torch.Tensor, n: int, k: int, rest: int) -> torch.Tensor:
    """``((n * whole - k * part) / rest).clamp(min=0)``, bit for bit, with one new tensor.

    The same float32 operations in the same order as the expression, done in
    place on the result (the expression allocates three temporaries).
    """
    out = torch.mul(whole, n)
    out.sub_(torch.mul(part, k))
    return out.div_(rest).clamp_(min=0)
