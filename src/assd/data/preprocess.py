"""Table preprocessing fitted on training rows and stored as JSON (no pickle).

Numeric columns: missing values filled with the training median (infinite
values are refused as data errors), then min-max scaled with the training
minimum and maximum. Categorical columns: one-hot over the ``max_levels``
most frequent training levels; rarer and unseen levels go to ``"other"``,
missing values to ``"<missing>"``. Finally every feature whose training
variance is at most ``min_variance`` (constant columns, by default) is
dropped.

Example:
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"x": [0.0, 5.0, 10.0], "c": ["a", "b", "a"]})
    >>> prep = Preprocessor.fit(frame, numeric=["x"], categorical=["c"])
    >>> prep.feature_names
    ['x', 'c=a', 'c=b']
    >>> prep.transform(frame).tolist()
    [[0.0, 1.0, 0.0], [0.5, 0.0, 1.0], [1.0, 1.0, 0.0]]
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

import numpy as np

from ..store.files import write_atomic
from .preprocess_schema import check_preprocessor_state
from .values import canonical_text, column_kind, integer_codes

__all__ = ["DEFAULT_MAX_LEVELS", "MISSING", "OTHER", "Preprocessor", "split_columns"]

OTHER, MISSING = "other", "<missing>"
_FORMAT = "assd-preprocessing/1"


# One-hot levels kept per categorical column (rarer levels share "other"), the one default of
# Preprocessor.fit, TableTask.fit, train_table, `assd train` and `assd experiment errors`:
# 200 keeps every level of the flights table's categoricals (104 destinations), so errors
# in one destination are learnable (docs/errors.md), and bounds the width of wider tables.
DEFAULT_MAX_LEVELS = 200

@dataclass
class Preprocessor:
    """A fitted preprocessing pipeline; build it with :meth:`fit`, store it with :meth:`save`.

    Attributes:
        numeric: numeric input columns, in order.
        categorical: categorical input columns, in order.
        fill: training median per numeric column (used for missing values).
        low, high: training minimum and maximum per numeric column.
        levels: kept levels per categorical column (most frequent first).
        keep: names of the features kept after the variance threshold.
        max_levels, min_variance: the settings it was fitted with.
        kinds: how each categorical column was typed at training (``"integer"``,
            ``"number"``, ``"bool"``, ``"text"``, see :mod:`assd.data.values`); later
            tables are read that way. Empty in models saved before it existed.
    """

    numeric: list[str]
    categorical: list[str]
    fill: dict[str, float] = field(default_factory=dict)
    low: dict[str, float] = field(default_factory=dict)
    high: dict[str, float] = field(default_factory=dict)
    levels: dict[str, list[str]] = field(default_factory=dict)
    keep: list[str] = field(default_factory=list)
    max_levels: int = DEFAULT_MAX_LEVELS
    min_variance: float = 0.0
    kinds: dict[str, str] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        frame,
        *,
        numeric: list[str],
        categorical: list[str],
        max_levels: int = DEFAULT_MAX_LEVELS,
        min_variance: float = 0.0,
    ) -> Preprocessor:
        """Fit on ``frame`` (the training rows only) and return the fitted pipeline."""
        if max_levels < 1:
            raise ValueError(f"max_levels must be at least 1, got {max_levels}.")
        _check_columns(frame, [*numeric, *categorical])
        prep = cls(list(numeric), list(categorical), max_levels=max_levels)
        prep.min_variance = float(min_variance)
        for col in numeric:
            values = _numbers(frame, col)
            finite = values[np.isfinite(values)]
            if finite.size == 0:
                raise ValueError(f"numeric column {col!r} has no values in the training rows.")
            prep.fill[col] = _median(finite)
            prep.low[col], prep.high[col] = float(finite.min()), float(finite.max())
        prep.kinds = {col: column_kind(frame[col]) for col in categorical}
        for col in categorical:
            counts = prep.categories(frame, col).value_counts()
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            prep.levels[col] = [level for level, _ in ranked[:max_levels]]
        prep.keep = prep.all_features()
        _refuse_collisions(prep.keep)
        variances = prep.transform(frame).var(axis=0)
        prep.keep = [n for n, v in zip(prep.keep, variances, strict=True) if v > min_variance]
        if not prep.keep:
            raise ValueError("every feature is constant on the training rows; nothing to learn.")
        return prep

    @property
    def feature_names(self) -> list[str]:
        """Names of the model's input features, in order."""
        return list(self.keep)

    def all_features(self) -> list[str]:
        """Every feature before the variance threshold."""
        names = list(self.numeric)
        for col in self.categorical:
            names += [f"{col}={level}" for level in self.levels[col]] + [f"{col}={OTHER}"]
        return names

    def transform(self, frame) -> np.ndarray:
        """Features of ``frame`` as float32 ``(rows, features)``, exactly as fitted."""
        _check_columns(frame, [*self.numeric, *self.categorical])
        index = {name: i for i, name in enumerate(self.keep)}
        out = np.zeros((len(frame), len(index)), dtype=np.float32)  # written in place, once
        for col in self.numeric:
            values = _numbers(frame, col)
            _refuse_infinite(values, col)
            if col in index:
                values = np.where(np.isfinite(values), values, self.fill[col])
                out[:, index[col]] = self._scaled(values, col)
        for col in self.categorical:
            codes = _column_codes(self.categories(frame, col), self.levels[col])
            names = [f"{col}={level}" for level in self.levels[col]] + [f"{col}={OTHER}"]
            where = np.array([index.get(name, -1) for name in names])[codes]  # -1: dropped
            kept = where >= 0
            out[np.flatnonzero(kept), where[kept]] = 1.0
        return out

    def _scaled(self, values: np.ndarray, col: str) -> np.ndarray:
        """Min-max scaled float32: ``(v - low) / (high - low)`` wherever that is finite, else
        from halves, so a range of +-1e308 does not overflow."""
        low, high = self.low[col], self.high[col]
        half_span = high / 2 - low / 2
        span = high - low
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            halves = (values / 2 - low / 2) / (half_span if half_span > 0 else 0.5)
            if np.isfinite(span) and span > 0:  # the plain form where it is finite: halving
                plain = (values - low) / span  # loses subnormal ranges, it loses nothing
                scaled = np.where(np.isfinite(plain), plain, halves)
            else:
                scaled = halves
            scaled32 = scaled.astype(np.float32)
        bad = np.flatnonzero(~np.isfinite(scaled32))
        if bad.size:
            row = int(bad[0])
            raise ValueError(
                f"numeric column {col!r} at row {row} holds {values[row]:.6g}, which the "
                f"training range [{low:.6g}, {high:.6g}] scales to {scaled[row]:.3g}, beyond "
                f"what float32 holds ({bad.size} such row(s)); it is almost surely a data "
                "error. Fix or empty those cells (an empty cell means missing)."
            )
        return scaled32

    def categories(self, frame, col: str):
        """The values of the categorical ``col`` as text, read as typed at training."""
        kind = self.kinds.get(col)
        if kind is None:  # a model saved before kinds were recorded: as it was read then
            return _strings(frame, col)
        column = frame[col]
        text = integer_codes(column, col) if kind == "integer" else canonical_text(column)
        return text.fillna(MISSING).astype(str)

    def to_dict(self) -> dict:
        """JSON-ready state."""
        return {"format": _FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, state: dict) -> Preprocessor:
        """Rebuild from :meth:`to_dict`'s output."""
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise ValueError("not an assd preprocessing file (missing or unknown 'format').")
        check_preprocessor_state(state)  # a damaged or edited field: refused, named
        return cls(**{k: v for k, v in state.items() if k != "format"})

    def save(self, path: str | os.PathLike) -> None:
        """Write as JSON, atomically."""
        write_atomic(path, json.dumps(self.to_dict(), indent=1, sort_keys=True))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Preprocessor:
        """Read a file written by :meth:`save`."""
        with open(path, encoding="utf-8") as handle:
            try:
                return cls.from_dict(json.load(handle))
            except (json.JSONDecodeError, TypeError) as error:
                raise ValueError(f"{path} is corrupt ({error}); re-create the model.") from error


def split_columns(frame, columns: list[str]) -> tuple[list[str], list[str]]:
    """Split ``columns`` into numeric and categorical by dtype (bools are categorical)."""
    import pandas as pd

    numeric, categorical = [], []
    for col in columns:
        dtype = frame[col].dtype
        is_number = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
        (numeric if is_number else categorical).append(col)
    return numeric, categorical


def _refuse_collisions(names: list[str]) -> None:
    """Refuse two features with one name (a column ``c=a`` beside column ``c``'s level ``a``)."""
    seen, twice = set(), []
    for name in names:
        if name in seen and name not in twice:
            twice.append(name)
        seen.add(name)
    if twice:
        raise ValueError(
            f"two features would share the name(s) {twice[:5]}: a column is named like the "
            "one-hot feature of another column's level (COLUMN=LEVEL). Rename that column, "
            "or leave one of them out of --features."
        )


def _check_columns(frame, columns: list[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"the data lacks column(s) {missing}; it must have the columns the model was "
            "trained on."
        )


def _numbers(frame, col: str) -> np.ndarray:
    import pandas as pd

    values = pd.to_numeric(frame[col], errors="coerce")
    bad = values.isna() & frame[col].notna()
    if bad.any():
        example = frame[col][bad].iloc[0]
        raise ValueError(
            f"numeric column {col!r} holds a non-number ({example!r}); clean it or declare "
            "the column categorical."
        )
    return values.to_numpy(dtype=float, na_value=np.nan)


def _refuse_infinite(values: np.ndarray, col: str) -> None:
    infinite = np.flatnonzero(np.isinf(values))
    if infinite.size:
        raise ValueError(
            f"numeric column {col!r} holds {infinite.size} infinite value(s) (first at row "
            f"{int(infinite[0])}); an infinity is almost always a data error. Replace it, or "
            "leave the cell empty to mean missing (filled with the training median)."
        )


def _strings(frame, col: str):
    column = frame[col]
    return column.astype(object).where(column.notna(), MISSING).astype(str)


def _median(values: np.ndarray) -> float:
    """The median; of halves where the mean of the two middle values would overflow."""
    with np.errstate(over="ignore"):
        middle = float(np.median(values))
    return middle if np.isfinite(middle) else float(np.median(values / 2) * 2)


def _column_codes(text, levels: list[str]) -> np.ndarray:
    """``_level_codes`` of a column's text values, converting each distinct value once."""
    import pandas as pd

    codes, uniques = pd.factorize(text)  # no missing values: categories() filled them
    return _level_codes(np.asarray(uniques, dtype=object).astype(str), levels)[codes]


def _level_codes(values: np.ndarray, levels: list[str]) -> np.ndarray:
    import pandas as pd

    codes = pd.Index(levels).get_indexer(values).astype(np.int64)
    return np.where(codes < 0, len(levels), codes)  # rare and unseen levels -> "other"
