"""What every ``assd experiment`` command writes at the end: table, summary, plots."""

from __future__ import annotations

import click

__all__ = ["write_experiment_report"]


def write_experiment_report(
    folder, rows: list[dict], table: str, draw, *, legend: str = ""
) -> None:
    """Write ``table.md`` (the table and its ``legend``), ``summary.json`` and ``figures/``
    (``draw(figures_folder)`` returns the plot paths) into an experiment folder; print the
    table, the legend and what was written where."""
    import json
    from pathlib import Path

    from ..store.files import write_atomic

    folder = Path(folder)
    if legend:
        table = f"{table.rstrip()}\n\n{legend}\n"
    write_atomic(folder / "table.md", table)
    write_atomic(folder / "summary.json", json.dumps(rows, indent=1, allow_nan=True))
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    plots = draw(folder / "figures")
    click.echo(table)
    click.echo(
        f"wrote {folder}/: results.jsonl (one line per run; a re-run resumes from it), "
        f"table.md (this table), summary.json (its rows) and {len(plots)} box plots in "
        "figures/ (one box per method over seeds)"
    )
