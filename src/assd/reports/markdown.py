"""Markdown tables."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["fmt_mean_sd", "markdown_table"]


def fmt_mean_sd(mean: float, sd: float, digits: int = 3, *, scale: float = 1.0) -> str:
    """``"0.912 ± 0.004"``; ``"–"`` for NaN, just the mean when sd is NaN.

    Example:
        >>> fmt_mean_sd(0.91234, 0.00421)
        '0.912 ± 0.004'
    """
    if mean is None or math.isnan(mean):
        return "–"
    if sd is None or math.isnan(sd):
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {sd * scale:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table; numbers right-aligned.

    Example:
        >>> print(markdown_table(["method", "acc"], [["assd", "0.91"]]))
        | method | acc |
        |---|---:|
        | assd | 0.91 |
    """
    numeric = [
        all(_looks_numeric(row[i]) for row in rows) if rows else False for i in range(len(header))
    ]
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _looks_numeric(cell: object) -> bool:
    text = str(cell).replace("±", "").replace("+", "").replace("−", "-").replace("–", "")
    try:
        [float(part) for part in text.split()]
    except ValueError:
        return False
    return bool(text.split())
