"""Category and label values as text, the same however pandas typed the column.

pandas reads a column of integer codes as ``int64``, but as ``float64`` as soon
as one cell is blank: ``3`` becomes ``3.0``. Categories and labels are
compared as text, so :func:`canonical_text` writes a whole number the same
way in both (``"3"``), and :func:`integer_codes` refuses a column that was
integer codes at training but now holds something else, naming it.

Example:
    >>> import pandas as pd
    >>> canonical_text(pd.Series([1.0, None, 2.0])).tolist()
    ['1', <NA>, '2']
    >>> canonical_text(pd.Series([1, 2])).tolist()
    ['1', '2']
"""

from __future__ import annotations

import numpy as np

__all__ = ["canonical_name", "canonical_text", "column_kind", "integer_codes"]


def column_kind(column) -> str:
    """``"integer"`` (whole numbers, blanks allowed), ``"number"``, ``"bool"`` or ``"text"``."""
    import pandas as pd

    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if not pd.api.types.is_numeric_dtype(dtype):
        return "text"
    values = column.dropna().to_numpy(dtype=float)
    whole = np.isfinite(values).all() and (values == np.round(values)).all()
    return "integer" if whole else "number"


def canonical_text(column):
    """``column`` as a pandas string Series: whole numbers without ``.0``; missing stays missing."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(column.dtype) or not pd.api.types.is_numeric_dtype(column.dtype):
        return column.astype("string")
    values = column.to_numpy(dtype=float, na_value=np.nan)
    whole = np.isfinite(values) & (values == np.round(values)) & (np.abs(values) < 2**63)
    text = column.astype("string")
    if whole.any():
        text[whole] = pd.Series(values[whole].astype(np.int64), dtype="string").to_numpy()
    return text


def canonical_name(name: str) -> str:
    """A stored class or level name written the way :func:`canonical_text` writes numbers."""
    try:
        value = float(name)
    except ValueError:
        return name
    if np.isfinite(value) and value == round(value) and abs(value) < 2**63:
        return str(int(value))
    return name


def integer_codes(column, name: str):
    """A column that was integer codes at training, as canonical text; refused if it is not.

    Text that reads as whole numbers (``"3"``, ``"03"``) is taken as those numbers.
    """
    import pandas as pd

    numbers = pd.to_numeric(column, errors="coerce")
    present = column.notna().to_numpy()
    values = numbers.to_numpy(dtype=float, na_value=np.nan)
    bad = present & ~(np.isfinite(values) & (values == np.round(values)))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"categorical column {name!r} held whole-number codes at training, but row {row} "
            f"holds {column.iloc[row]!r}; it cannot be read as it was trained. Fix that cell "
            "(or leave it empty to mean missing), or train again with this column as it is now."
        )
    return canonical_text(pd.Series(values, index=column.index))
