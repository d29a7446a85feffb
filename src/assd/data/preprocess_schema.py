"""What a stored preprocessing (``task.json``'s ``preprocessor``) must hold.

Checked when it is read, so that a damaged or hand-edited file is refused
naming the field, instead of failing later with a KeyError or, worse,
silently scaling features wrongly (NaN bounds, features that do not exist).

Example:
    >>> state = {"format": "assd-preprocessing/1", "numeric": ["x"], "categorical": [],
    ...          "fill": {"x": 1.0}, "low": {"x": 0.0}, "high": {"x": float("nan")},
    ...          "levels": {}, "keep": ["x"], "max_levels": 20, "min_variance": 0.0}
    >>> check_preprocessor_state(state)
    Traceback (most recent call last):
    ...
    ValueError: field 'preprocessor.high' ... is nan, not a finite number...
"""

from __future__ import annotations

import math

__all__ = ["KINDS", "check_preprocessor_state"]

KINDS = ("integer", "number", "bool", "text")
_FIELDS = {"format", "numeric", "categorical", "fill", "low", "high", "levels", "keep",
           "max_levels", "min_variance", "kinds"}  # fmt: skip


def check_preprocessor_state(state: dict) -> None:
    """Raise ValueError naming the first malformed field of a stored preprocessing."""
    unknown = sorted(set(state) - _FIELDS)
    if unknown:
        _refuse("", f"holds unknown field(s) {unknown}")
    numeric = _names(state, "numeric")
    categorical = _names(state, "categorical")
    if set(numeric) & set(categorical):
        _refuse("categorical", "names a column that is also numeric")
    for part in ("fill", "low", "high"):
        values = _mapping(state, part, numeric)
        for col in numeric:
            if not _finite(values[col]):
                _refuse(part, f"for column {col!r} is {values[col]!r}, not a finite number")
    for col in numeric:
        if not state["low"][col] <= state["high"][col]:
            _refuse("low", f"for column {col!r} is above 'high'")
    levels = _mapping(state, "levels", categorical)
    for col in categorical:
        if not _unique_texts(levels[col]):
            _refuse("levels", f"for column {col!r} is not a list of distinct texts")
    features = set(numeric) | {f"{c}={v}" for c in categorical for v in [*levels[c], "other"]}
    keep = state.get("keep")
    if not _unique_texts(keep) or not keep:
        _refuse("keep", "is not a non-empty list of distinct feature names")
    strangers = [name for name in keep if name not in features]
    if strangers:
        _refuse("keep", f"names feature(s) {strangers[:5]} that no column makes")
    _check_settings(state, categorical)


def _check_settings(state: dict, categorical: list[str]) -> None:
    max_levels = state.get("max_levels", 20)
    if isinstance(max_levels, bool) or not isinstance(max_levels, int) or max_levels < 1:
        _refuse("max_levels", f"is {max_levels!r}, not a whole number of at least 1")
    variance = state.get("min_variance", 0.0)
    if not _finite(variance) or variance < 0:
        _refuse("min_variance", f"is {variance!r}, not a finite number of at least 0")
    kinds = state.get("kinds", {})
    if not isinstance(kinds, dict) or set(kinds) - set(categorical):
        _refuse("kinds", "is not a mapping of the categorical columns")
    wrong = {c: k for c, k in kinds.items() if k not in KINDS}
    if wrong:
        _refuse("kinds", f"holds {wrong}; known kinds are {list(KINDS)}")


def _names(state: dict, part: str) -> list[str]:
    value = state.get(part)
    if not _unique_texts(value):
        _refuse(part, "is not a list of distinct column names")
    return value


def _mapping(state: dict, part: str, columns: list[str]) -> dict:
    value = state.get(part, {})
    if not isinstance(value, dict) or set(columns) - set(value):
        _refuse(part, f"does not hold a value for every column of {columns[:5]}")
    return value


def _unique_texts(value) -> bool:
    return (isinstance(value, list) and all(isinstance(v, str) for v in value)
            and len(set(value)) == len(value))  # fmt: skip


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _refuse(part: str, problem: str) -> None:
    field = f"preprocessor.{part}" if part else "preprocessor"
    raise ValueError(f"field {field!r} {problem}")
