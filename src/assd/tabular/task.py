"""A table as a classification task: which columns, which rows, which classes.

:class:`TableTask` holds the choices that turn a table into tensors (target,
id column, split, feature columns) plus the fitted preprocessing and the class
names, and re-applies them identically to any later copy of the table.

Example:
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": ["a", "b", "a", "b"]})
    >>> task = TableTask.fit(frame, target="y", split="none")
    >>> task.class_names, task.preprocessor.feature_names
    (['a', 'b'], ['x'])
    >>> rows = task.encode(frame)
    >>> tuple(rows.x.shape), rows.y.tolist(), rows.ids.tolist()
    ((4, 1), [0, 1, 0, 1], ['0', '1', '2', '3'])
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..data.preprocess import DEFAULT_MAX_LEVELS, Preprocessor, split_columns
from ..data.table import row_ids, split_rows

__all__ = ["Rows", "TableTask"]

log = logging.getLogger("assd")


@dataclass
class Rows:
    """Encoded rows: features ``x`` (N, F) float32, labels ``y`` (N,) int64 (-1 if
    unknown), string ``ids``, and ``test``, True for held-out rows."""

    x: torch.Tensor
    y: torch.Tensor
    ids: np.ndarray
    test: np.ndarray

    def subset(self, mask: np.ndarray) -> Rows:
        """The rows where ``mask`` (boolean or positions) selects."""
        mask = np.asarray(mask)
        index = np.flatnonzero(mask) if mask.dtype == bool else mask.astype(np.int64)
        rows = torch.from_numpy(index)  # numpy arrays take numpy indices (a tensor index is slow)
        return Rows(self.x[rows], self.y[rows], self.ids[index], self.test[index])

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class TableTask:
    """How a table becomes a task; JSON-ready through :meth:`to_dict`.

    Attributes:
        target: the label column.
        id_column: column of unique row ids, or None for row numbers.
        split: ``"time:COLUMN"``, ``"random"`` or ``"none"``.
        test_share: share of rows held out by the split.
        seed: seed of a random split.
        class_names: labels in class-index order (sorted training labels).
        preprocessor: fitted on the training rows only.
        test_ids: ids of the held-out rows at training time (sorted); later
            copies of the table are split by these ids, not by position. None
            in models saved before it existed (then the split is recomputed).
    """

    target: str
    id_column: str | None
    split: str
    test_share: float
    seed: int
    class_names: list[str]
    preprocessor: Preprocessor
    test_ids: list[str] | None = None

    @classmethod
    def fit(
        cls,
        frame,
        *,
        target: str,
        id_column: str | None = None,
        split: str = "random",
        test_share: float = 0.2,
        seed: int = 0,
        features: list[str] | None = None,
        categorical: list[str] | None = None,
        max_levels: int = DEFAULT_MAX_LEVELS,
    ) -> TableTask:
        """Choose the columns, split the rows and fit the preprocessing on the training rows.

        Args:
            frame: the whole table.
            target, id_column, split, test_share, seed: see the class attributes.
            features: input columns (default: all but target, id and split time).
            categorical: columns to one-hot even if numeric (default: by dtype).
            max_levels: most frequent levels kept per categorical column.
        """
        if target not in frame.columns:
            raise ValueError(f"no target column {target!r}; columns: {list(frame.columns)[:20]}.")
        _check_chosen_columns(frame, target, id_column, features, categorical)
        test = split_rows(frame, split, test_share=test_share, seed=seed)
        ids = row_ids(frame, id_column)  # validate the ids early
        labelled = frame[target].notna().to_numpy()
        train = frame[~test & labelled]
        classes = sorted(train[target].astype("string").unique())
        if len(classes) < 2:
            raise ValueError(f"target {target!r} has fewer than 2 classes in the training rows.")
        columns = features or _default_features(frame, target, id_column, split)
        _warn_index_like(frame, columns)
        numeric, cats = split_columns(frame, columns)
        forced = [c for c in categorical or [] if c in numeric]
        numeric, cats = [c for c in numeric if c not in forced], cats + forced
        prep = Preprocessor.fit(train, numeric=numeric, categorical=cats, max_levels=max_levels)
        test_ids = sorted(ids[test].tolist())
        return cls(target, id_column, split, test_share, seed, classes, prep, test_ids)

    def encode(self, frame, *, require_labels: bool = False) -> Rows:
        """Encode every row of ``frame`` exactly as at training time."""
        x = torch.from_numpy(self.preprocessor.transform(frame))
        y = self.labels(frame)
        if require_labels and (y < 0).any():
            raise ValueError(f"{int((y < 0).sum())} rows have a missing or unknown label.")
        ids = row_ids(frame, self.id_column)
        test = self.held_out(frame, ids)
        self._check_classes(frame, y, test)
        return Rows(x, y, ids, test)

    def held_out(self, frame, ids: np.ndarray) -> np.ndarray:
        """Mask of the held-out rows: by the stored test ids (or, for old models, the split)."""
        if self.test_ids is None:
            return split_rows(frame, self.split, test_share=self.test_share, seed=self.seed)
        import pandas as pd

        test = np.asarray(pd.Index(ids, dtype=object).isin(self.test_ids), dtype=bool)
        missing = len(self.test_ids) - int(test.sum())
        if missing:
            log.warning(
                "%d of the %d held-out rows the model was trained without are not in this "
                "table (rows removed or ids changed); held-out rows are matched by id",
                missing, len(self.test_ids),
            )  # fmt: skip
        return test

    def labels(self, frame) -> torch.Tensor:
        """Class indices of the target column; -1 where missing or not a known class."""
        if self.target not in frame.columns:
            raise ValueError(
                f"the data has no target column {self.target!r}; pass the table the model was "
                "trained on (with its labels)."
            )
        import pandas as pd

        text = frame[self.target].astype("string")  # missing stays missing -> code -1
        codes = pd.Index(self.class_names).get_indexer(text)
        return torch.from_numpy(codes.astype(np.int64))

    def _check_classes(self, frame, y: torch.Tensor, test: np.ndarray) -> None:
        """Refuse training rows whose class the model never saw; warn for held-out ones."""
        unseen = (y < 0).numpy() & frame[self.target].notna().to_numpy()
        if (unseen & ~test).any():
            examples = sorted(set(frame[self.target][unseen & ~test].astype(str)))[:5]
            raise ValueError(
                f"the target column {self.target!r} has {int((unseen & ~test).sum())} row(s) "
                f"with classes the model was not trained on, e.g. {examples}; it knows "
                f"{self.class_names}. Fix those labels, or leave them empty to mean unknown."
            )
        if unseen.any():
            log.warning(
                "%d held-out row(s) have classes the model never saw; they are left out of "
                "accuracy",
                int(unseen.sum()),
            )

    def to_dict(self) -> dict:
        out = asdict(self)
        out["preprocessor"] = self.preprocessor.to_dict()
        return out

    @classmethod
    def from_dict(cls, state: dict) -> TableTask:
        """Rebuild from :meth:`to_dict`; a field of the wrong type raises ValueError."""
        state = dict(state)
        for name, kinds in _FIELD_TYPES.items():
            value = state.get(name)
            wrong = not isinstance(value, kinds) or isinstance(value, bool)
            if name in state and wrong:
                raise ValueError(f"field {name!r} is {value!r}, which is not a valid {name}")
        if not all(isinstance(c, str) for c in state.get("class_names", [])):
            raise ValueError("field 'class_names' must be a list of strings")
        state["preprocessor"] = Preprocessor.from_dict(state["preprocessor"])
        return cls(**state)


_FIELD_TYPES = {
    "target": (str,), "id_column": (str, type(None)), "split": (str,),
    "test_share": (int, float), "seed": (int,), "class_names": (list,),
    "preprocessor": (dict,), "test_ids": (list, type(None)),
}  # fmt: skip


def ids_digest(ids) -> str:
    """SHA-256 of a sequence of row ids (order matters): to tell whether data changed."""
    digest = hashlib.sha256()
    for i in ids:
        digest.update(str(i).encode() + b"\0")
    return digest.hexdigest()


def _check_chosen_columns(frame, target, id_column, features, categorical) -> None:
    """Refuse misspelt feature names and the target or the id column used as a feature."""
    columns = [str(c) for c in frame.columns]
    for flag, names in (("--features", features), ("--categorical", categorical)):
        unknown = [n for n in names or [] if n not in frame.columns]
        if unknown:
            import difflib

            hints = {n: difflib.get_close_matches(str(n), columns, n=1) for n in unknown}
            near = "; ".join(f"{n!r}: did you mean {h[0]!r}?" for n, h in hints.items() if h)
            raise ValueError(
                f"{flag} names column(s) {unknown} that the table does not have"
                f"{' (' + near + ')' if near else ''}; its columns are {columns[:30]}."
            )
    if categorical and features:
        outside = [c for c in categorical if c not in features]
        if outside:
            raise ValueError(f"--categorical {outside} are not among --features; add them there.")
    for role, name in (("target", target), ("id column", id_column)):
        if name is not None and name in (features or []):
            raise ValueError(
                f"--features includes the {role} {name!r}; a model that sees its {role} "
                "learns nothing useful (or memorises rows). Remove it from --features."
            )


def _warn_index_like(frame, columns: list[str]) -> None:
    """Warn about features that look like a saved row index (0, 1, 2, ... or 'Unnamed: 0')."""
    n = len(frame)
    for col in columns:
        values = frame[col]
        counting = (
            n > 2 and values.dtype.kind in "iu" and values.is_unique
            and (values.is_monotonic_increasing or values.is_monotonic_decreasing)
            and int(values.max()) - int(values.min()) == n - 1
        )  # fmt: skip
        if counting or str(col).startswith("Unnamed: ") or str(col).lower() == "index":
            log.warning(
                "feature column %r looks like a row index (it counts the rows); a model can "
                "memorise rows by it. Drop it, name it with --id-column, or choose --features",
                col,
            )


def _default_features(frame, target: str, id_column: str | None, split: str) -> list[str]:
    skip = {target, id_column, split[5:] if split.startswith("time:") else None}
    columns = [c for c in frame.columns if c not in skip]
    if not columns:
        raise ValueError("the table has no feature columns besides the target and the ids.")
    return columns
