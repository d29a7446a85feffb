"""``assd train``, ``assd unlearn``, ``assd evaluate`` and ``assd data``: tables in, models out."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from ..data.preprocess import DEFAULT_MAX_LEVELS
from ..importance.distributed import is_main_process
from ..store.files import check_output
from .ledger import ledger_options
from .options import COUNT, RATE, SEED
from .own_model import evaluate_own, own_model_options, unlearn_own

log = logging.getLogger("assd")

SPLIT_HELP = "held-out rows: 'random', 'time:COLUMN' (latest rows by that column) or 'none'"


def show_progress(ctx: click.Context) -> bool:
    """Progress bars (on stderr) unless ``assd --no-progress`` or stderr is not a terminal."""
    import sys

    return not (ctx.obj or {}).get("no_progress") and sys.stderr.isatty()


def train_summary(trained, out) -> str:
    """What ``assd train`` prints: sizes, settings, metrics, what they mean, the files."""
    from ..tabular.evaluate import LEGEND, format_metrics_line

    info, metrics, config = trained.extra["data"], trained.extra["metrics"], trained.config()
    lines = [
        f"trained {trained.architecture} on {info['n_train']} rows "
        f"({len(trained.task.preprocessor.feature_names)} features, classes "
        f"{', '.join(trained.task.class_names)}); held out {info['n_test']} rows",
        f"batch size {config.batch_size}, {config.epochs} epochs",
    ]
    lines += [f"{name}: {format_metrics_line(report)}" for name, report in metrics.items()]
    cache = (", importance-*.safetensors (the pass over the training rows that `assd "
             f"unlearn` reads, {trained.extra['importance_seconds']:.1f} s)"
             if trained.files else "")  # fmt: skip
    lines += ["", LEGEND, f"wrote {out}: model.safetensors (weights), model.json (settings, "
              f"metrics), task.json (columns, classes, preprocessing){cache}"]  # fmt: skip
    return "\n".join(lines)


def _names(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


@click.command()
@click.option("--data", "data_path", required=True, type=click.Path(), help="CSV or Parquet table.")
@click.option("--target", required=True, help="The label column.")
@click.option("--out", required=True, type=click.Path(), help="Model folder to write.")
@click.option("--model", default="mlp", type=click.Choice(["mlp", "mlp-small", "mlp-large"]))
@click.option("--id-column", default=None, help="Column of unique row ids (default: row numbers).")
@click.option("--split", default="random", show_default=True, help=SPLIT_HELP)
@click.option("--test-share", default=0.2, show_default=True, type=float)
@click.option("--date-format", default=None,
              help="How --split time: dates are written, e.g. %d/%m/%Y (default: detected; "
              "dates that read both day-first and month-first are refused).")  # fmt: skip
@click.option("--features", default=None, help="Comma-separated input columns (default: all).")
@click.option("--categorical", default=None, help="Columns to one-hot even if numeric.")
@click.option("--max-levels", default=DEFAULT_MAX_LEVELS, show_default=True, type=COUNT,
              help="Most frequent levels kept per category; the rest share 'other'.")  # fmt: skip
@click.option("--epochs", default=None, type=COUNT,
              help="Default: 25, more on small tables (at least 500 steps, at most 200 epochs).")
@click.option("--lr", default=0.05, show_default=True, type=RATE)
@click.option("--lr-gamma", default=0.95, show_default=True, type=RATE,
              help="StepLR factor per epoch.")
@click.option("--batch-size", default=None, type=COUNT,
              help="Default: 1024, halved while an epoch has under 20 batches (not below 32). "
              "The paper's setup: --batch-size 1024 --epochs 25.")  # fmt: skip
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option("--overwrite", is_flag=True, help="Replace an existing --out folder.")
@click.option("--no-importance", is_flag=True,
              help="Skip the pass over the training rows that the first `assd unlearn` needs "
                   "(by default made now and cached in the folder).")
@click.pass_context
def train(ctx, data_path, target, out, model, id_column, split, test_share, date_format,
          features, categorical, max_levels, epochs, lr, lr_gamma, batch_size, seed,
          overwrite, no_importance) -> None:  # fmt: skip
    """Train a tabular MLP; the preprocessing is saved with it (JSON, no pickle)."""
    from ..data.table import read_table
    from ..tabular import TrainConfig, train_table

    check_output(out, inputs=[data_path], overwrite=overwrite)
    frame = read_table(data_path, text_columns=[id_column])
    config = TrainConfig(
        model=model, epochs=epochs, lr=lr, lr_gamma=lr_gamma, batch_size=batch_size, seed=seed
    )
    trained = train_table(
        frame, target=target, id_column=id_column, split=split, test_share=test_share,
        features=_names(features), categorical=_names(categorical), max_levels=max_levels,
        date_format=date_format, config=config, source=Path(data_path).name,
        progress=show_progress(ctx), importance=not no_importance,
    )  # fmt: skip
    if not is_main_process():
        return
    trained.save(out, overwrite=overwrite)
    click.echo(train_summary(trained, out))


@click.command()
@click.option("--model", "model_dir", type=click.Path(), help="Model folder.")
@click.option("--data", "data_path", type=click.Path(), help="The training table.")
@click.option("--forget", "forget_path", type=click.Path(),
              help="Text file of row ids to forget, one per line.")  # fmt: skip
@click.option("--out", type=click.Path(), help="New model folder to write.")
@click.option("--method", default="assd", show_default=True, help="Any of `assd methods`.")
@click.option("--reference", type=click.Choice(["full", "retain"]), default=None,
              help="SSD family: I_D on all training rows or on the rows kept.")  # fmt: skip
@click.option("--estimator", type=click.Choice(["sample", "batch"]), default=None)
@click.option("--option", "options", multiple=True, help="More method options: KEY=VALUE.")
@click.option("--eval-data", multiple=True, type=click.Path(),
              help="Labelled table(s) to measure before/after (repeatable).")  # fmt: skip
@click.option("--cache-dir", default=None, type=click.Path(),
              help="Folder for the importance cache (default: the model folder).")  # fmt: skip
@click.option("--no-cache", is_flag=True, help="Do not read or write the importance cache.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out folder.")
@click.option("--guard", type=click.FloatRange(min=0), default=None,
              help="SSD family: most retained / held-out accuracy the request may cost (default "
                   "0.01 = 1 point); a request that would cost more backs off to a weaker "
                   "dampening.")
@click.option("--no-guard", is_flag=True,
              help="No retain guard, for every method (assd-auto's included): dampen as asked.")
@click.option("--reason", type=click.Choice(["errors", "privacy"]), default="errors",
              show_default=True,
              help="errors: the rows are wrongly labelled, so held-out rows likely to carry the "
                   "same error (their group, or named in --forget) are not counted as damage; "
                   "privacy: the rows are right, the guard watches every held-out row.")
@click.pass_context
@ledger_options
@own_model_options(unlearn_own)
def unlearn(ctx, model_dir, data_path, forget_path, out, method, reference, estimator, options,
            eval_data, cache_dir, no_cache, overwrite, guard, no_guard,
            reason, ledger=None) -> None:  # fmt: skip
    """Forget the rows named in --forget; writes a new model folder with report.json/.md."""
    from ..data.table import read_forget_ids, read_table, row_ids
    from ..tabular import TabularModel
    from ..tabular.report import unlearn_markdown
    from ..tabular.stream import unlearn_request
    from .history import ledger_section
    from .options import unlearn_options

    tabular = TabularModel.load(model_dir)  # first: is it a model folder at all?
    tabular.config()  # an edited model.json fails here, in one paragraph
    inputs = [model_dir, data_path, forget_path, cache_dir, *eval_data]
    check_output(out, inputs=inputs, overwrite=overwrite)
    opts, guard = unlearn_options(dict(method=method, options=options, reference=reference,
                                       estimator=estimator, guard=guard, no_guard=no_guard))
    id_column = tabular.task.id_column
    frame = read_table(data_path, text_columns=[id_column])
    ids = read_forget_ids(forget_path, known=row_ids(frame, id_column)) if forget_path else []
    evals = _eval_tables(eval_data, id_column)
    cache = None if no_cache else (cache_dir or model_dir)
    if cache_dir and not no_cache:
        try:
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            log.warning("cannot create the cache folder %s (%s); not caching", cache_dir, error)
    new, report = unlearn_request(  # the model's ledger: assd.cli.ledger, assd.tabular.stream
        tabular, frame, ids, method=method, options=opts, eval_frames=evals, cache_folder=cache,
        progress=show_progress(ctx), guard=guard, reason=reason, **(ledger or {}),
    )  # fmt: skip
    if not is_main_process():
        return
    report["model"], report["data"], report["forget_file"] = model_dir, data_path, forget_path
    text, markdown = json.dumps(report, indent=2), unlearn_markdown(report) + ledger_section(report)
    files = {
        "report.json": lambda p: p.write_text(text, encoding="utf-8"),
        "report.md": lambda p: p.write_text(markdown, encoding="utf-8"),
    }
    new.save(out, overwrite=overwrite, files=files)  # one atomic folder with its reports
    click.echo(markdown)
    click.echo(
        f"wrote {out}: model.safetensors, model.json, task.json (the new model; "
        f"`assd evaluate --model {out}` scores it), report.md (this report), report.json "
        "(the same figures as JSON), ledger.jsonl (what the model was made to forget; "
        f"`assd history --model {out}`)"
    )


@click.command()
@click.option("--model", "model_dir", type=click.Path(), help="Model folder.")
@click.option("--data", "data_path", type=click.Path(), help="Labelled table.")
@click.option("--rows", type=click.Choice(["all", "test", "train"]), default="all",
              show_default=True, help="All rows, or the model's test / train split.")  # fmt: skip
@click.option("--json", "json_path", default=None, type=click.Path(), help="Also write JSON.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --json file.")
@own_model_options(evaluate_own)
def evaluate(model_dir, data_path, rows, json_path, overwrite) -> None:
    """Accuracy, balanced accuracy, macro-F1, recall per class, the majority-class baseline
    and the confusion matrix of a model on a table."""
    from ..data.table import read_table
    from ..store.checkpoints import check_finite
    from ..store.files import write_atomic
    from ..tabular import TabularModel, classify, format_classification
    from ..tabular.evaluate import LEGEND, training_majority
    from ..tabular.pipeline import data_changes

    tabular = TabularModel.load(model_dir)
    if json_path:
        check_output(json_path, inputs=[model_dir, data_path], overwrite=overwrite, flag="--json",
                     kind="file")  # fmt: skip
    check_finite(tabular.model, what=f"the model {model_dir}")
    encoded = tabular.task.encode(read_table(data_path, text_columns=[tabular.task.id_column]))
    change = data_changes(tabular, encoded) if rows != "all" else None
    if change:
        log.warning("%s; the %s rows are taken by the ids stored with the model", change, rows)
    if rows != "all":
        encoded = encoded.subset(encoded.test if rows == "test" else ~encoded.test)
    if len(encoded) == 0:
        split = tabular.task.split
        raise ValueError(f"no {rows} rows in {data_path}; the model's split is {split!r}.")
    report = classify(tabular.model, encoded.x, encoded.y, class_names=tabular.task.class_names,
                      majority_class=training_majority(tabular))  # fmt: skip
    if not is_main_process():
        return
    click.echo(format_classification(report, title=f"{model_dir} on {data_path} ({rows} rows)"))
    click.echo("\n" + LEGEND)
    if json_path:
        write_atomic(json_path, json.dumps(report, indent=2), overwrite=overwrite)
        click.echo(f"wrote {json_path} (these figures as JSON)")
    else:
        click.echo("no files written (--json FILE writes these figures as JSON)")


@click.group()
def data() -> None:
    """Prepare the tables that ship (flights) or that you have (DataCo)."""


@data.command("flights")
@click.option("--out", required=True, type=click.Path(), help="CSV or Parquet file to write.")
@click.option("--no-dep-delay", is_flag=True, help="Leave out the departure delay (harder task).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file.")
def data_flights(out, no_dep_delay, overwrite) -> None:
    """Write the NYC 2013 flights delay-class table (target: delay_class, ids: id)."""
    from ..data.flights import load_flights

    check_output(out, inputs=[], overwrite=overwrite, kind="file")
    _write_frame(load_flights(with_dep_delay=not no_dep_delay), out, overwrite=overwrite)


@data.command("dataco")
@click.option("--data", "data_path", required=True, type=click.Path(),
              help="DataCoSupplyChainDataset.csv")  # fmt: skip
@click.option("--out", required=True, type=click.Path(), help="CSV or Parquet file to write.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file.")
def data_dataco(data_path, out, overwrite) -> None:
    """Write the DataCo delay-class table with the ASSD paper's preprocessing."""
    from ..data.dataco import load_dataco

    check_output(out, inputs=[data_path], overwrite=overwrite, kind="file")
    _write_frame(load_dataco(data_path), out, overwrite=overwrite)


def _eval_tables(paths, id_column) -> dict:
    """``--eval-data`` tables keyed by file name without suffix (``affected.csv``:
    ``affected``), or by the path as given where names would clash (two ``test.csv``,
    or a name of the report's own rows)."""
    from ..data.table import read_table

    if len(set(paths)) != len(paths):
        twice = next(p for p in paths if paths.count(p) > 1)
        raise ValueError(f"--eval-data {twice} is given twice; give each table once.")
    stems = [Path(p).stem for p in paths]
    taken = {"forget", "retain", "test"}
    return {
        (stem if stems.count(stem) == 1 and stem not in taken else path): read_table(
            path, text_columns=[id_column]
        )
        for stem, path in zip(stems, paths, strict=True)
    }


def _write_frame(frame, out: str, *, overwrite: bool = False) -> None:
    from ..store.files import atomic_path

    if not is_main_process():
        return
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, overwrite=overwrite) as tmp:
        if out.endswith((".parquet", ".pq")):
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
    click.echo(f"wrote {out}: {len(frame)} rows, columns {', '.join(frame.columns)}")
