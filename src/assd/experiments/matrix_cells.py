"""The forgetting matrix's cells and methods, and the criterion each cell is judged by.

A cell is one forget request on one data set: digits full-class (each of the
10 classes), digits sub-class (each of the 10 fine classes, learnt as five
pairs), digits random rows (1, 5 and 10 %), a table (a group of rows sharing
a feature value, and random rows) and a small transformer classifier (one
class). Every cell is run for every seed.

A method meets a cell's criterion against retraining when its Df accuracy
lies within ``df`` points of retraining's and its Dr (retain test) accuracy
is at most ``dr`` points below the original's.

Example:
    >>> [c.id for c in select_cells("digits-random-*")]
    ['digits-random-1', 'digits-random-5', 'digits-random-10']
    >>> select_cells("digits-sub-class-3")[0].criterion
    'sub-class'
    >>> method_spec("assd-paper")
    'assd:estimator=batch,reference=full'
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

__all__ = [
    "CELLS",
    "LIMITS",
    "METHODS",
    "VARIANTS",
    "Cell",
    "method_spec",
    "select_cells",
    "select_methods",
]

# criterion -> (Df gap limit, Dr drop limit), in accuracy points
LIMITS = {"full-class": (5.0, 1.5), "sub-class": (15.0, 2.0), "random": (5.0, 1.5)}

# the matrix's method names -> method specs of the forget runner
METHODS = {
    "assd-auto": "assd-auto",
    "assd": "assd",
    "assd-paper": "assd:estimator=batch,reference=full",  # ASSD.paper()
    "ssd": "ssd",
    "scrub": "scrub",
    "finetune": "finetune",
    "retrain": "retrain",
}
# one-shot ASSD with one of the paper's two settings each, to tell which default matters;
# run only when named in --methods
VARIANTS = {
    "assd-batch": "assd:estimator=batch",  # the paper's estimator, I_D on the retained rows
    "assd-full": "assd:reference=full",  # the per-sample estimator, I_D on all rows (paper)
    # retraining again with another seed: how often retraining meets its own criterion (the
    # ceiling of every method: the criterion's noise on the cell's rows)
    "retrain-again": "retrain:seed_offset=1000",
}


@dataclass(frozen=True)
class Cell:
    """One forget request of the matrix.

    Attributes:
        id: its name in ``--cells`` and in the tables.
        family: ``digits``, ``table`` or ``transformer`` (which data and model).
        scenario: ``full-class``, ``sub-class`` or ``random``; for the table,
            ``group`` (rows sharing a feature value) or ``random``.
        forget: what is forgotten (class, fine class, share of rows).
        criterion: which of :data:`LIMITS` judges it.
        group: the summary row it counts towards.
    """

    id: str
    family: str
    scenario: str
    forget: str
    criterion: str
    group: str

    @property
    def rows_depend_on_seed(self) -> bool:
        """Random rows are drawn per seed; every other cell forgets the same rows each seed."""
        return self.scenario == "random"


def _digits() -> list[Cell]:
    cells = [Cell(f"digits-full-class-{c}", "digits", "full-class", str(c), "full-class",
                  "digits full-class") for c in range(10)]  # fmt: skip
    cells += [Cell(f"digits-sub-class-{c}", "digits", "sub-class", str(c), "sub-class",
                   "digits sub-class") for c in range(10)]  # fmt: skip
    cells += [Cell(f"digits-random-{p}", "digits", "random", f"{p}%", "random", "digits random")
              for p in (1, 5, 10)]  # fmt: skip
    return cells


CELLS: list[Cell] = [
    *_digits(),
    Cell("table-group", "table", "group", "carrier", "sub-class", "table"),
    Cell("table-random", "table", "random", "5%", "random", "table"),
    Cell("transformer-class", "transformer", "full-class", "0", "full-class", "transformer"),
]


def select_cells(text: str | None) -> list[Cell]:
    """Cells named in ``text`` (comma-separated ids or shell patterns such as
    ``digits-sub-class-*``), in matrix order; every cell when ``text`` is empty."""
    if not text:
        return list(CELLS)
    patterns = [p.strip() for p in text.split(",") if p.strip()]
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(c.id, pattern) for c in CELLS):
            raise ValueError(
                f"--cells: {pattern!r} names no cell; cells are {', '.join(c.id for c in CELLS)} "
                "(patterns such as digits-full-class-* work)."
            )
    return [c for c in CELLS if any(fnmatch.fnmatchcase(c.id, p) for p in patterns)]


def select_methods(text: str | None) -> list[str]:
    """Method names from ``text`` (comma-separated), in matrix order; ``retrain`` is always
    included (every other method is judged against it). Default: :data:`METHODS`; the
    :data:`VARIANTS` run only when named."""
    if not text:
        return list(METHODS)
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    known = {**METHODS, **VARIANTS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(
            f"--methods: unknown {', '.join(unknown)}; the matrix's methods are "
            f"{', '.join(known)}."
        )
    return [m for m in known if m in names or m == "retrain"]


def method_spec(name: str) -> str:
    """The forget runner's spec of a matrix method (``assd-paper`` is ``ASSD.paper()``;
    ``original`` is the model before unlearning)."""
    return "original" if name == "original" else {**METHODS, **VARIANTS}[name]
