"""Model folders: weights in safetensors, architecture in JSON, no pickle.

A model folder holds ``model.safetensors`` (the state dict) and
``model.json`` (``{"architecture": name, "kwargs": {...}, "extra": {...}}``),
so :func:`load_model` can rebuild it with :func:`assd.models.build_model`.
Folders are written atomically: into a hidden sibling, then published in one
step by :mod:`assd.store.publish` (never over a folder assd did not write).

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "m1"
    >>> model = build_model("mlp-small", n_features=4, n_classes=3)
    >>> spec = {"n_features": 4, "n_classes": 3}
    >>> save_model(folder, model, architecture="mlp-small", kwargs=spec)
    >>> loaded, spec = load_model(folder)
    >>> spec["architecture"], sorted(p.name for p in folder.iterdir())
    ('mlp-small', ['.assd-output', 'model.json', 'model.safetensors'])
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

from .._version import __version__
from ..models import build_model
from .files import not_writable, refuse_existing
from .publish import clean_stale, new_temporary, publish_folder, refuse_foreign

__all__ = ["check_finite", "load_model", "load_state_dict", "save_model", "write_folder"]

WEIGHTS, SPEC = "model.safetensors", "model.json"


@contextlib.contextmanager
def write_folder(
    folder: str | os.PathLike, *, overwrite: bool = False, flag: str = "--out"
) -> Iterator[Path]:
    """Yield a hidden temporary folder; on success it becomes ``folder`` in one atomic step.

    Refuses an existing ``folder`` unless ``overwrite``, and even then one that
    assd did not write. Publishing (:func:`assd.store.publish.publish_folder`)
    re-checks both under a lock, so of two runs writing one new path only one
    wins. A full disk or another write error leaves ``folder`` as it was and
    nothing behind. Stable API: the own-model CLI path writes through it.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "run"
        >>> with write_folder(out) as tmp:
        ...     _ = (tmp / "notes.txt").write_text("hello")
        >>> (out / "notes.txt").read_text()
        'hello'
    """
    final = Path(folder)
    if refuse_existing(final, overwrite=overwrite, flag=flag):
        refuse_foreign(final, flag=flag)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(final)
        tmp = new_temporary(final)
    except OSError as error:
        raise not_writable(final, error) from None
    try:
        yield tmp
        publish_folder(tmp, final, overwrite=overwrite, flag=flag)
    except OSError as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if error.errno in _DISK_ERRORS:
            raise OSError(
                error.errno,
                f"cannot write {final}: {error.strerror}; nothing was written and any "
                "earlier folder there is unchanged. Free some space or choose another output",
            ) from error
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS)


def check_finite(model: nn.Module, *, what: str = "the model") -> None:
    """Raise ValueError if a floating-point weight or buffer of ``model`` holds NaN or inf.

    Called before every model folder is written, so a diverged result is never published.

    Example:
        >>> net = torch.nn.Linear(2, 1)
        >>> _ = net.bias.data.fill_(float("nan"))
        >>> check_finite(net, what="the trained model")
        Traceback (most recent call last):
        ...
        ValueError: the trained model has NaN or infinite values in 'bias'...
    """
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ValueError(
                f"{what} has NaN or infinite values in {name!r}: training or unlearning "
                "diverged. Nothing was written. Lower the learning rate (--lr, or --option "
                "lr=... for a baseline) or the epochs, check the data for extreme values, "
                "and run again."
            )


def save_model(
    folder: str | os.PathLike,
    model: nn.Module,
    *,
    architecture: str,
    kwargs: dict,
    extra: dict | None = None,
    overwrite: bool = False,
    files: dict[str, Callable[[Path], None]] | None = None,
) -> None:
    """Write a model folder atomically.

    Args:
        folder: the folder to create.
        model: the model whose state dict is saved.
        architecture: a name known to :func:`assd.models.build_model`.
        kwargs: keyword arguments that rebuild it.
        extra: anything JSON-ready to keep beside it (training config, metrics, ...).
        overwrite: replace an existing folder.
        files: more files to write into the folder: ``{name: writer(path)}``.

    Raises:
        ValueError: if a weight is NaN or infinite (nothing is written).
        FileExistsError: see :func:`write_folder`.
    """
    from safetensors.torch import save_model as save_weights

    check_finite(model, what=f"the model for {folder}")

    spec = {
        "architecture": architecture,
        "kwargs": kwargs,
        "extra": extra or {},
        "assd_version": __version__,
    }
    with write_folder(folder, overwrite=overwrite) as tmp:
        try:
            save_weights(model, str(tmp / WEIGHTS))
        except OSError:
            raise
        except Exception as error:  # safetensors' own error (e.g. a full disk) is no OSError
            raise OSError(errno.EIO, f"{error}") from error
        (tmp / SPEC).write_text(json.dumps(spec, indent=2, sort_keys=True), encoding="utf-8")
        for name, writer in (files or {}).items():
            writer(tmp / name)


def load_model(folder: str | os.PathLike) -> tuple[nn.Module, dict]:
    """Rebuild the model saved in ``folder``; returns ``(model, spec)`` (model in eval mode)."""
    folder = Path(folder)
    spec_path = folder / SPEC
    if not spec_path.is_file():
        raise FileNotFoundError(
            f"{folder} is not a model folder (no {SPEC}); pass a folder written by "
            "`assd train` or assd.store.checkpoints.save_model."
        )
    try:
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
        model = build_model(spec["architecture"], **spec["kwargs"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(
            f"{spec_path} is corrupt ({error}); re-create the model folder."
        ) from error
    _load_weights_into(model, folder / WEIGHTS)
    return model.eval(), spec


def _load_weights_into(model: nn.Module, path: Path) -> None:
    from safetensors.torch import load_model as load_weights

    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}; the model folder is incomplete.")
    try:
        load_weights(model, str(path))  # handles tied (shared) parameters
    except Exception as error:  # safetensors raises its own error types
        raise ValueError(
            f"cannot load {path} ({error}); the file is truncated, corrupt, or belongs to "
            "another architecture."
        ) from error


def load_state_dict(path: str | os.PathLike, *, allow_pickle: bool = False) -> dict:
    """Read weights from safetensors, or (opt-in) from a PyTorch pickle with ``weights_only``.

    Pickle files can run code when loaded; they are refused unless
    ``allow_pickle=True``, and even then only tensors are unpickled.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}.")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except Exception as error:  # safetensors raises its own error types
            raise ValueError(
                f"cannot read {path} ({error}); the file is truncated or corrupt."
            ) from error
    if not allow_pickle:
        raise ValueError(
            f"{path} is not a .safetensors file; pickle checkpoints can run arbitrary code "
            "when loaded. Convert it to safetensors, or opt in with allow_pickle=True "
            "(--allow-pickle), which loads tensors only (weights_only=True)."
        )
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(
            f"cannot read {path} as a weights-only PyTorch checkpoint: {error}"
        ) from error
    return state.get("state_dict", state) if isinstance(state, dict) else state
