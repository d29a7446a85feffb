"""``assd experiment matrix``: every method on every forget cell and seed, against retraining."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from .options import parse_seeds

CELLS_HELP = ("Cells to run: comma-separated ids or patterns, e.g. 'digits-full-class-*,"
              "table-*' (default: all; the ids are listed in docs/benchmarks.md).")  # fmt: skip
METHODS_HELP = ("Methods, comma-separated, of assd-auto, assd, assd-paper (ASSD.paper()), ssd, "
                "scrub, finetune, retrain (always run; default: these seven), and the one-shot "
                "variants assd-batch (batch estimator) and assd-full (I_D on all rows), and "
                "retrain-again (retraining with another seed: the criterion's own noise)."
                )  # fmt: skip


@click.command("matrix")
@click.option("--out", required=True, type=click.Path(),
              help="Matrix folder (new, or one to resume).")
@click.option("--cells", default=None, help=CELLS_HELP)
@click.option("--methods", default=None, help=METHODS_HELP)
@click.option("--seeds", default="5", show_default=True, help="A count, or a list like 0,3,7.")
@click.option("--epochs", type=click.IntRange(1), default=None,
              help="Training epochs of every original, retraining and reference model "
                   "(default: each family's recipe: 30 digits, 20 table, 30 transformer).")
@click.option("--references", type=click.IntRange(0), default=4, show_default=True,
              help="Reference models per cell for the per-example membership share "
                   "(built only where assd.verify.per_example exists).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or auto.")
@click.option("--no-progress", is_flag=True)
def matrix(out, cells, methods, seeds, epochs, references, device, no_progress) -> None:
    """Run the forgetting matrix and write OUT/matrix.md and OUT/matrix.json.

    Cells: digits full-class (10 classes), sub-class (10 fine classes), random
    1/5/10 %; the flights table (one carrier's rows, 5 % random rows); a tiny
    BERT on a synthetic token task (one class). Each method's result is judged
    against retraining on the same seed. Finished runs are kept in
    OUT/runs.jsonl, so an interrupted run resumes; a re-run with more cells or
    seeds adds to it, and the tables cover every run in OUT.
    """
    from ..experiments import ResultLog, key_of, run_cells
    from ..experiments.matrix import make_keys, prepare_folder, write_matrix
    from ..experiments.matrix_cells import select_cells, select_methods
    from ..experiments.matrix_run import MatrixRun
    from ..store.files import check_writable
    from .options import check_device

    chosen = select_cells(cells)
    names = select_methods(methods)
    _require({c.family for c in chosen})
    run = MatrixRun(out, chosen, epochs=epochs, references=references,
                    device=check_device(device), progress=not no_progress)  # fmt: skip
    folder = Path(out)
    prepare_folder(folder, run.settings())
    check_writable(folder / "runs.jsonl")
    results = ResultLog(folder / "runs.jsonl")
    keys = make_keys(chosen, parse_seeds(seeds), names)
    records = run_cells(keys, run.run_one, results, config=run.settings(),
                        progress=not no_progress)  # fmt: skip
    wanted = {key_of(k) for k in keys}
    mine = [r for r in records if key_of(r) in wanted]
    command = _command(out=out, cells=cells, methods=methods, seeds=seeds, epochs=epochs,
                       references=references)  # fmt: skip
    written = write_matrix(folder, mine, command=command)
    click.echo(written["markdown"])
    click.echo(f"wrote {folder}/: runs.jsonl (one line per run; a re-run resumes from it), "
               "matrix.md (these tables) and matrix.json (the summary and every judged run)")


def _command(**options) -> str:
    """The command line that asks for this table (options left at their defaults omitted)."""
    words = ["assd", "experiment", "matrix"]
    for name, value in options.items():
        if value is not None and not (name == "references" and value == 4):
            words += [f"--{name}", shlex.quote(str(value))]
    return " ".join(words)


def _require(families: set[str]) -> None:
    """Fail before the first run, not after an hour, when a chosen cell lacks a package."""
    import importlib.util

    from ..extras import require_extra

    require_extra("tables")  # digits come with scikit-learn; the table cells need pandas too
    if "transformer" in families and importlib.util.find_spec("transformers") is None:
        raise ValueError(
            "the transformer-class cell needs the 'transformers' package (pip install "
            "transformers); install it, or leave the cell out with --cells."
        )
