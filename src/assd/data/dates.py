"""Reading a column of dates by one format: given, or detected; ambiguous ones refused.

``03/04/2024`` is 3 April day-first and 4 March month-first. A column is read
with ``date_format`` when given; otherwise as ISO 8601, or by the one numeric
day/month layout that reads every value. When both day-first and month-first
read every value (every day is 12 or less) and disagree, the column is
refused until ``--date-format`` says which; a column that day-first alone can
read (a day above 12) is read day-first.

Example:
    >>> import pandas as pd
    >>> when = pd.Series(["13/01/2024", "02/01/2024"])
    >>> [str(t.date()) for t in read_dates(when, "when")]
    ['2024-01-13', '2024-01-02']
    >>> read_dates(pd.Series(["03/04/2024", "05/04/2024"]), "when")
    Traceback (most recent call last):
    ...
    ValueError: split column 'when' holds dates that read both day-first ...
"""

from __future__ import annotations

import re

__all__ = ["read_dates"]

_LAYOUTS = [
    f"{a}{s}{b}{s}{y}{t}"
    for s in "/.-"
    for a, b in (("%d", "%m"), ("%m", "%d"))
    for y in ("%Y", "%y")
    for t in ("", " %H:%M", " %H:%M:%S")
]
_NUMERIC_DATE = re.compile(r"^\s*\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}")


def read_dates(column, name: str, date_format: str | None = None):
    """``column`` as UTC timestamps (a pandas Series); ValueError naming the column and a row
    where a value cannot be read, or where day and month are ambiguous."""
    import pandas as pd

    if date_format:
        return _all_read(column, name, pd.to_datetime(column, format=date_format,
                                                      errors="coerce", utc=True),
                         f"with --date-format {date_format!r}")  # fmt: skip
    if not (pd.api.types.is_object_dtype(column.dtype) or pd.api.types.is_string_dtype(column)):
        return _all_read(column, name, pd.to_datetime(column, errors="coerce", utc=True), "")
    text = column.astype("string").str.strip()
    iso = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
    if iso.notna().all():
        return iso
    if text.str.match(_NUMERIC_DATE).fillna(False).all():
        return _by_layout(text, name)
    mixed = pd.to_datetime(text, format="mixed", errors="coerce", utc=True)
    return _all_read(column, name, mixed, "")


def _by_layout(text, name: str):
    import pandas as pd

    sample = text.drop_duplicates().head(200)
    fits, best = {}, (-1, None)
    for layout in _LAYOUTS:
        read = int(pd.to_datetime(sample, format=layout, errors="coerce").notna().sum())
        best = max(best, (read, layout))
        if read < len(sample):
            continue
        parsed = pd.to_datetime(text, format=layout, errors="coerce", utc=True)
        if parsed.notna().all():
            fits[layout] = parsed
    readings = {}
    for layout, parsed in fits.items():
        readings.setdefault(tuple(parsed.astype("int64")), layout)
    if len(readings) == 1:
        return next(iter(fits.values()))
    if not readings:  # no one layout reads them all: say which value the closest one cannot
        return _all_read(text, name, pd.to_datetime(text, format=best[1], errors="coerce",
                                                    utc=True), "")  # fmt: skip
    layouts = sorted(readings.values())
    raise ValueError(
        f"split column {name!r} holds dates that read both day-first and month-first (e.g. "
        f"{text.iloc[0]!r}, and every day is 12 or less), so the order of rows in time is "
        f"ambiguous; pass --date-format with one of {layouts} (e.g. --date-format "
        f"'{layouts[0]}')."
    )


def _all_read(column, name: str, parsed, how: str):
    import numpy as np

    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        hint = ("; pass --date-format (e.g. '%d/%m/%Y' or '%Y-%m-%d') to say how the dates are "
                "written") if not how else ""  # fmt: skip
        raise ValueError(
            f"split column {name!r} has values that are not dates or times {how}".rstrip()
            + f" (row {row}: {column.iloc[row]!r}){hint}."
        )
    return parsed
