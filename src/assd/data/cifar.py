"""CIFAR-10, CIFAR-100 and CIFAR-20 from the standard python-pickle archives, offline.

Looks in a folder you name for ``cifar-10-batches-py/`` (``data_batch_1`` ...
``data_batch_5``, ``test_batch``, ``batches.meta``) or ``cifar-100-python/``
(``train``, ``test``, ``meta`` with ``fine_labels`` and ``coarse_labels``), or
for the ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` archives that
hold them. Nothing is downloaded.

The files are pickles. A pickle can run code when loaded, so they are read
with a restricted unpickler that only builds plain containers and NumPy arrays
(the handful of NumPy and ``_codecs`` functions array pickles need); any other
object in the file is refused.

Images become float32 tensors (N, 3, 32, 32) scaled to [0, 1] and normalised
with the CIFAR-100 channel mean and standard deviation the SSD benchmarks use.

Example:
    >>> import io, pickle
    >>> blob = pickle.dumps({"labels": [1, 2]}, protocol=2)
    >>> read_pickle(io.BytesIO(blob))
    {'labels': [1, 2]}
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch

from .images import ImageData

__all__ = ["CIFAR_MEAN", "CIFAR_STD", "load_cifar", "read_pickle"]

CIFAR_MEAN = (0.5070751592371323, 0.48654887331495095, 0.4409178433670343)
CIFAR_STD = (0.2673342858792401, 0.2564384629170883, 0.27615047132568404)

FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
ARCHIVES = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}

_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # how Python 3 writes bytes into protocol-2 pickles
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR archive only holds dicts, lists "
                "and NumPy arrays."
            )
        return super().find_class(module, name)


def read_pickle(stream) -> dict:
    """Read one CIFAR pickle (a dict) with the restricted unpickler; keys become str."""
    try:
        obj = _ArraysOnly(stream, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise ValueError(f"not a readable CIFAR pickle ({error}).") from error
    if not isinstance(obj, dict):
        raise ValueError(f"a CIFAR pickle holds a dict, this one a {type(obj).__name__}.")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def load_cifar(name: str, data_dir: str | os.PathLike) -> ImageData:
    """Load ``cifar10``, ``cifar100`` (fine labels) or ``cifar20`` (coarse labels).

    CIFAR-100 and CIFAR-20 carry both label sets, so either can be used for
    sub-class forgetting.
    """
    if name not in ("cifar10", "cifar20", "cifar100"):
        raise ValueError(f"unknown CIFAR data set {name!r}; choose cifar10, cifar20 or cifar100.")
    source = _Source("cifar10" if name == "cifar10" else "cifar100", Path(data_dir))
    if name == "cifar10":
        train = [source.read(f"data_batch_{i}") for i in range(1, 6)]
        test, meta = source.read("test_batch"), source.read("batches.meta")
        x_train, y_train = _stack(train, "labels")
        x_test, y_test = _stack([test], "labels")
        return ImageData(x_train, y_train, x_test, y_test, _names(meta, "label_names"), name=name)
    train, test, meta = source.read("train"), source.read("test"), source.read("meta")
    x_train, y_train = _stack([train], "fine_labels")
    x_test, y_test = _stack([test], "fine_labels")
    coarse_of = _coarse_map(train, test)
    return ImageData(
        x_train, y_train, x_test, y_test, _names(meta, "fine_label_names"), coarse_of=coarse_of,
        coarse_names=_names(meta, "coarse_label_names"),
        level="coarse" if name == "cifar20" else "fine", name=name,
    )  # fmt: skip


class _Source:
    """The extracted folder if present, else the .tar.gz archive beside it."""

    def __init__(self, kind: str, data_dir: Path):
        self.folder_name = FOLDERS[kind]
        candidates = [data_dir / self.folder_name, data_dir]
        self.folder = next((c for c in candidates if (c / _probe(kind)).is_file()), None)
        self.archive = data_dir / ARCHIVES[kind]
        if self.folder is None and not self.archive.is_file():
            raise FileNotFoundError(
                f"no {kind} data in {data_dir}: expected {data_dir / self.folder_name}/ or "
                f"{self.archive} (the python version from the official CIFAR page; "
                "assd never downloads)."
            )

    def read(self, member: str) -> dict:
        if self.folder is not None:
            path = self.folder / member
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing; the CIFAR folder is incomplete.")
            with open(path, "rb") as handle:
                return _checked(read_pickle(handle), path)
        with tarfile.open(self.archive, "r:gz") as tar:
            try:
                handle = tar.extractfile(f"{self.folder_name}/{member}")
            except KeyError:
                handle = None
            if handle is None:
                raise FileNotFoundError(f"{self.archive} lacks {self.folder_name}/{member}.")
            return _checked(read_pickle(io.BytesIO(handle.read())), self.archive)


def _probe(kind: str) -> str:
    return "batches.meta" if kind == "cifar10" else "meta"


def _checked(obj: dict, where) -> dict:
    obj["_source"] = str(where)
    return obj


def _stack(parts: list[dict], label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for part in parts:
        if "data" not in part or label_key not in part:
            raise ValueError(f"{part['_source']} lacks 'data' or {label_key!r}; not a CIFAR file.")
        data = np.asarray(part["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(part[label_key]) != len(data):
            raise ValueError(
                f"{part['_source']} holds {data.shape} images and {len(part[label_key])} labels; "
                "expected (N, 3072) images and N labels. The file is corrupt."
            )
        images.append(data)
        labels.append(np.asarray(part[label_key], dtype=np.int64))
    return _normalise(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))


def _normalise(data: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(data).reshape(-1, 3, 32, 32).float().div_(255.0)
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std)


def _names(meta: dict, key: str) -> list[str]:
    if key not in meta:
        raise ValueError(f"{meta['_source']} lacks {key!r}; not a CIFAR meta file.")
    return [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in meta[key]]


def _coarse_map(*parts: dict) -> torch.Tensor:
    """fine -> coarse class, read off the (fine, coarse) label pairs of the files."""
    fine = np.concatenate([np.asarray(p["fine_labels"], dtype=np.int64) for p in parts])
    if "coarse_labels" not in parts[0]:
        raise ValueError(f"{parts[0]['_source']} lacks 'coarse_labels'; not a CIFAR-100 file.")
    coarse = np.concatenate([np.asarray(p["coarse_labels"], dtype=np.int64) for p in parts])
    mapping = np.full(fine.max() + 1, -1, dtype=np.int64)
    mapping[fine] = coarse
    if (mapping[fine] != coarse).any() or (mapping < 0).any():
        raise ValueError("a fine class maps to several coarse classes; the files are corrupt.")
    return torch.from_numpy(mapping)
