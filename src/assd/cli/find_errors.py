"""``assd find-errors``: which training rows of a table model look wrongly labelled."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..importance.distributed import is_main_process
from ..store.files import check_output
from .options import SEED


def side_paths(out: str) -> tuple[Path, Path, Path]:
    """Where the scores, the markdown report and the JSON summary go, beside ``out``.

    Example:
        >>> [p.name for p in side_paths("runs/bad.txt")]
        ['bad.scores.csv', 'bad.report.md', 'bad.report.json']
    """
    path = Path(out)
    stem = path.with_suffix("") if path.suffix else path
    return tuple(stem.with_name(stem.name + s) for s in (".scores.csv", ".report.md",
                                                          ".report.json"))  # fmt: skip


@click.command("find-errors")
@click.option("--model", "model_dir", required=True, type=click.Path(),
              help="Model folder made by `assd train` (its recipe trains the fold models).")
@click.option("--data", "data_path", required=True, type=click.Path(), help="The training table.")
@click.option("--out", required=True, type=click.Path(),
              help="Ids file to write, one id per line (what `assd unlearn --forget` reads); "
                   "OUT's stem + .scores.csv, .report.md and .report.json go beside it.")
@click.option("--group-column", default=None,
              help="Column whose values may be wrong together (e.g. a destination): folds hold "
                   "its values out whole, and groups with far more flags than chance are "
                   "written whole.")
@click.option("--folds", default=5, show_default=True, type=click.IntRange(min=2),
              help="Out-of-fold models K.")
@click.option("--seed", default=None, type=SEED, help="Seed of the folds (default: the model's).")
@click.option("--flagged-only", is_flag=True,
              help="In a group judged wrong, write only the rows cleanlab flagged.")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
def find_errors(model_dir, data_path, out, group_column, folds, seed, flagged_only,
                overwrite) -> None:  # fmt: skip
    """Find rows whose label looks wrong to models that never saw them (cleanlab).

    Trains --folds fresh models from the model's recipe, each without one
    fold of the training rows, and flags rows whose given label disagrees
    with the held-out predictions (cleanlab's find_label_issues). Writes the
    ids to forget (--out), a score per row, and a short report.
    """
    from ..data.table import read_table
    from ..store.files import write_atomic
    from ..tabular import TabularModel
    from ..tabular.find_errors import find_label_errors

    outputs = [Path(out), *side_paths(out)]
    for path in outputs:
        check_output(path, inputs=[model_dir, data_path], overwrite=overwrite)
    try:
        tabular = TabularModel.load(model_dir)
    except FileNotFoundError as error:
        raise ValueError(
            f"{error} find-errors retrains the model on folds of the data, so it needs the "
            "recipe `assd train` writes (task.json and the training settings)."
        ) from None
    click.echo(f"training {folds} fold models with the recipe of {model_dir} ...", err=True)
    found = find_label_errors(tabular, read_table(data_path), group_column=group_column,
                              folds=folds, seed=seed, whole_groups=not flagged_only,
                              progress=True)  # fmt: skip
    if not is_main_process():
        return
    scores, report, summary = outputs[1:]
    header = (f"# {len(found.ids)} row ids suspected of wrong labels, by assd find-errors "
              f"({Path(data_path).name}); scores in {scores.name}\n")  # fmt: skip
    write_atomic(out, header + "".join(f"{i}\n" for i in found.ids))
    write_atomic(scores, lambda p: found.scores.to_csv(p, index=False))
    markdown = found.markdown()
    write_atomic(report, markdown)
    write_atomic(summary, json.dumps(found.summary(), indent=1))
    click.echo(markdown)
    if not found.ids:
        click.echo("no row looks wrongly labelled; the ids file names none (nothing to forget).")
    click.echo(f"wrote {out} ({len(found.ids)} ids), {scores.name} (label_quality per row: "
               f"low = suspect), {report.name}, {summary.name}")  # fmt: skip
