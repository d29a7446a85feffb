"""Training a tabular MLP and keeping it in a model folder beside its preprocessing.

The folder is an ordinary :mod:`assd.store.checkpoints` model folder plus
``task.json`` (target, ids, split, classes and the fitted preprocessing, as
JSON); training settings, split sizes and metrics go into ``model.json``'s
``extra``.

Example:
    >>> import torch
    >>> x, y = torch.rand(64, 3), torch.randint(0, 2, (64,))
    >>> model = train_mlp(x, y, n_classes=2, config=TrainConfig(model="mlp-small", epochs=1))
    >>> model(x).shape
    torch.Size([64, 2])
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..batches import TensorData
from ..models import build_model
from ..store.checkpoints import load_model, save_model
from ..store.ledger import LEDGER_FILE, Ledger
from ..store.manifest import check_json
from ..train import fit
from .task import TableTask

__all__ = ["TASK_FILE", "TabularModel", "TrainConfig", "train_mlp"]

TASK_FILE = "task.json"


@dataclass
class TrainConfig:
    """How the MLP is trained (defaults: the ASSD paper's SGD, batch 1024, StepLR 0.95).

    Attributes:
        model: ``"mlp"`` (3 x 100, the paper's), ``"mlp-small"`` or ``"mlp-large"``.
        epochs, lr, momentum, weight_decay, lr_gamma: as in :func:`assd.train.fit`.
        batch_size: rows per step.
            :func:`assd.tabular.train_table` fits ``epochs=None`` and
            ``batch_size=None`` to the table (:mod:`assd.tabular.defaults`).
        seed: seeds the initialisation and the shuffling.
    """

    model: str = "mlp"
    epochs: int | None = 25
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_gamma: float = 0.95
    batch_size: int | None = 1024
    seed: int = 0

    def loader(self, x: torch.Tensor, y: torch.Tensor, *, seed: int | None = None) -> TensorData:
        """Shuffled training batches of ``(x, y)``; a last batch of one row is skipped
        (BatchNorm cannot train on one row; each pass skips a different random row)."""
        seed = self.seed if seed is None else seed
        return TrainingBatches(x, y, batch_size=self.batch_size, shuffle=True, seed=seed)

    def fit_options(self) -> dict:
        """Keyword options of :func:`assd.train.fit` (and of the training baselines)."""
        keys = ("epochs", "lr", "momentum", "weight_decay", "lr_gamma")
        return {k: getattr(self, k) for k in keys}


class TrainingBatches(TensorData):
    """Training batches that leave out a last batch of a single row (for BatchNorm).

    Example:
        >>> data = TrainingBatches(torch.zeros(5, 2), torch.zeros(5), batch_size=2)
        >>> [len(x) for x, _ in data]
        [2, 2]
    """

    def __iter__(self):
        for x, y in super().__iter__():
            if len(x) == 1 and self.n_samples > 1:
                continue
            yield x, y


def train_mlp(
    x: torch.Tensor, y: torch.Tensor, *, n_classes: int, config: TrainConfig, progress=False
) -> nn.Module:
    """A fresh MLP (seeded by ``config.seed``) trained on ``(x, y)``; returned in eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model(config.model, n_features=x.shape[1], n_classes=n_classes)
    loader = config.loader(x, y)
    return fit(model, loader, optimizer="sgd", progress=progress, **config.fit_options())


@dataclass
class TabularModel:
    """A model with the task that feeds it; save it as one folder."""

    model: nn.Module
    task: TableTask
    architecture: str
    extra: dict = field(default_factory=dict)
    ledger: Ledger | None = None  # what it was made to forget (assd.store.ledger)
    # more files for the folder, written by save(): {name: writer(path)} (the importance
    # cache entry that assd train makes, assd.tabular.precompute); not read back by load()
    files: dict = field(default_factory=dict, repr=False, compare=False)

    def save(
        self, folder: str | os.PathLike, *, overwrite: bool = False, files: dict | None = None
    ) -> None:
        """Write the model folder atomically (refuses an existing one unless ``overwrite``).

        ``files`` adds more files to the folder: ``{name: writer(path)}``.
        """
        task_json = json.dumps(self.task.to_dict(), indent=1, sort_keys=True)
        kwargs = {
            "n_features": len(self.task.preprocessor.feature_names),
            "n_classes": len(self.task.class_names),
        }
        extra, files = self.extra, {**self.files, **(files or {})}
        if self.ledger is not None:  # written with the folder, its head kept in model.json
            head = {"head": self.ledger.head, "entries": len(self.ledger.entries)}
            extra = {**extra, "ledger": head}
            files[LEDGER_FILE] = self.ledger.write
        save_model(
            folder,
            self.model,
            architecture=self.architecture,
            kwargs=kwargs,
            extra=extra,
            overwrite=overwrite,
            files={
                TASK_FILE: lambda path: path.write_text(task_json, encoding="utf-8"),
                **files,
            },
        )

    @classmethod
    def load(cls, folder: str | os.PathLike) -> TabularModel:
        """Read a folder written by :meth:`save` (``assd train``)."""
        model, spec = load_model(folder)
        path = Path(folder) / TASK_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{folder} has no {TASK_FILE}: it was not made by `assd train`, so the "
                "table preprocessing is unknown. Train it with `assd train`."
            )
        data = path.read_bytes()
        check_json(folder, TASK_FILE, data)  # edited since assd wrote it: refused, fields named
        try:
            task = TableTask.from_dict(json.loads(data.decode("utf-8")))
            _check_fits(task, spec)
        except (ValueError, KeyError, TypeError) as error:  # JSONDecodeError is a ValueError
            raise ValueError(
                f"{path} is corrupt or was edited wrongly ({error}); restore it as `assd train` "
                "wrote it, or re-create the model."
            ) from error
        return cls(model, task, spec["architecture"], spec.get("extra", {}), Ledger.read(folder))

    def config(self) -> TrainConfig:
        """The training settings stored with the model (defaults where absent).

        Raises:
            ValueError: if ``model.json``'s ``extra.training`` was edited into
                unknown fields or values of the wrong type.
        """
        stored = self.extra.get("training", {})
        fields = TrainConfig.__dataclass_fields__
        problems = sorted(set(stored) - set(fields)) if isinstance(stored, dict) else ["training"]
        for key, value in stored.items() if not problems else ():
            default = fields[key].default
            number = isinstance(default, (int, float)) and not isinstance(default, bool)
            if number and (isinstance(value, bool) or not isinstance(value, (int, float))):
                problems.append(f"{key}={value!r}")
        if problems:
            raise ValueError(
                f"model.json's extra.training holds unknown or malformed settings {problems}; "
                f"it knows {sorted(fields)}. Restore the file as `assd train` wrote it, or "
                "train again."
            )
        return TrainConfig(**stored)


def _check_fits(task: TableTask, spec: dict) -> None:
    """task.json's features and classes are those model.json's network was built for."""
    kwargs = spec.get("kwargs", {})
    sizes = (("n_features", len(task.preprocessor.feature_names), "preprocessor"),
             ("n_classes", len(task.class_names), "class_names"))  # fmt: skip
    for key, have, field_name in sizes:
        if key in kwargs and kwargs[key] != have:
            raise ValueError(
                f"field {field_name!r} gives {have} {key[2:]} but model.json's kwargs.{key} is "
                f"{kwargs[key]}"
            )


def config_dict(config: TrainConfig) -> dict:
    """JSON-ready training settings."""
    return asdict(config)
