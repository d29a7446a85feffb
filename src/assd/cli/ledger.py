"""The model ledger on the command line: ``assd history``, ``assd retrain`` and the
ledger options of ``assd unlearn`` (``--hash-ids``, ``--again``, ``--reforget``,
``--drift-budget``, ``--over-budget``, ``--queue``, ``--apply-queue``)."""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import click

from ..importance.distributed import is_main_process
from ..store.files import check_output

__all__ = ["history", "ledger_options", "retrain"]

QUEUE_FORMAT = "assd-queue/1"
DEFAULTS = {"hash_ids": False, "again": False, "reforget": False, "drift_budget": 2.0,
            "over_budget": "stop", "queue": None, "apply_queue": None}  # fmt: skip
LEDGER_KEYS = tuple(DEFAULTS)


def _options() -> list:
    return [
        click.option("--hash-ids", is_flag=True,
                     help="Keep salted hashes of the forgotten ids in the ledger, not the ids."),
        click.option("--again", is_flag=True,
                     help="Forget ids that an earlier request forgot already (else refused)."),
        click.option("--reforget", is_flag=True,
                     help="Rows of earlier requests that came back are forgotten again now."),
        click.option("--drift-budget", type=float, default=2.0, show_default=True,
                     help="Points of retained / held-out accuracy all requests since the last "
                          "full training may cost."),
        click.option("--over-budget", type=click.Choice(["stop", "apply", "queue"]),
                     default="stop", show_default=True,
                     help="A request past the drift budget: stop (write nothing), apply (mark "
                          "the model 'retrain due') or queue it in --queue FILE."),
        click.option("--queue", type=click.Path(), default=None,
                     help="Queue this request in FILE instead of applying it (with --over-budget "
                          "queue: only if it is over the budget)."),
        click.option("--apply-queue", type=click.Path(), default=None,
                     help="Apply every request queued in FILE, with --forget's ids if given, as "
                          "one request."),
    ]  # fmt: skip


def ledger_options(table_callback):
    """Declare the ledger options on ``assd unlearn`` (used as a decorator above its
    own-model options); the table path then runs with them."""

    @functools.wraps(table_callback)
    def callback(*args, **options):
        opts = {key: options.pop(key) for key in LEDGER_KEYS}
        if options.get("model_factory"):
            given = [f"--{k.replace('_', '-')}" for k, v in opts.items() if v != DEFAULTS[k]]
            if given:
                raise click.UsageError(f"{', '.join(given)}: the ledger options are for table "
                                       "models; with your own model, keep a ledger with "
                                       "assd.Ledger in Python (docs/ledger.md).")  # fmt: skip
            _check_request(options, opts, None, None)  # --forget and --out are needed here too
            return table_callback(*args, **options)
        queue, apply_queue = opts.pop("queue"), opts.pop("apply_queue")
        if queue and opts["over_budget"] != "queue":
            return _queue_only(queue, options)
        _check_request(options, opts, queue, apply_queue)
        queued = read_queue(apply_queue)["requests"] if apply_queue else None
        return _apply(functools.partial(table_callback, *args), options, opts, queue, queued)

    for option in reversed(_options()):
        callback = option(callback)
    return callback


def _check_request(options: dict, opts: dict, queue, apply_queue) -> None:
    if opts["over_budget"] == "queue" and not queue:
        raise click.UsageError("--over-budget queue needs --queue FILE (where to queue it).")
    if not options.get("forget_path") and not apply_queue:
        raise click.UsageError("pass --forget FILE (the row ids to forget) or --apply-queue FILE.")
    if not options.get("out"):
        raise click.UsageError("pass --out FOLDER (the new model folder to write).")


def _apply(inner, options: dict, opts: dict, queue, queued) -> None:
    from ..tabular.stream import OverBudget

    try:
        inner(**options, ledger={**opts, "queued": queued})
    except OverBudget as error:
        if opts["over_budget"] != "queue":
            raise
        add_to_queue(queue, error.ids, source=options.get("forget_path"),
                     model=options["model_dir"])  # fmt: skip
        click.echo(f"{error}".split(" Apply it anyway")[0].replace("Nothing was written.", ""))
        click.echo(f"queued in {queue} ({len(error.ids)} ids); nothing else was written. "
                   f"Apply the queue after retraining: assd unlearn --apply-queue {queue} ...")
        return


def _queue_only(queue: str, options: dict) -> None:
    from ..data.table import read_forget_ids, read_table, row_ids
    from ..tabular import TabularModel

    if not options.get("forget_path") or not options.get("data_path"):
        raise click.UsageError("--queue needs --forget FILE (the row ids of the request) and "
                               "--data TABLE (so that ids are read exactly as the table has them).")
    tabular = TabularModel.load(options["model_dir"])
    id_column = tabular.task.id_column
    known = row_ids(read_table(options["data_path"], text_columns=[id_column]), id_column)
    ids = read_forget_ids(options["forget_path"], known=known)
    n = add_to_queue(queue, ids, source=options["forget_path"], model=options["model_dir"])
    click.echo(f"queued {len(ids)} ids in {queue} ({n} request(s) waiting); no model was "
               f"written. Apply them together: assd unlearn --model M --data T --apply-queue "
               f"{queue} --out NEW")  # fmt: skip


def read_queue(path: str | Path) -> dict:
    """A queue file written by ``assd unlearn --queue`` (refuses anything else)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no queue file at {path}; `assd unlearn --queue FILE` makes one.")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not a queue file written by assd ({error}).") from None
    if not isinstance(state, dict) or state.get("format") != QUEUE_FORMAT:
        raise ValueError(f"{path} is not a queue file written by assd (no {QUEUE_FORMAT!r}); "
                         "choose another --queue path: assd never overwrites other files.")
    return state


def add_to_queue(path, ids, *, source, model) -> int:
    """Append a request to the queue file (written atomically); returns the number queued."""
    from ..store.files import write_atomic

    path = Path(path)
    state = read_queue(path) if path.exists() else {"format": QUEUE_FORMAT, "requests": []}
    state["requests"].append({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "source": None if source is None else str(source),
                              "model": str(model), "ids": [str(i) for i in ids]})  # fmt: skip
    write_atomic(path, json.dumps(state, indent=1, ensure_ascii=False))
    return len(state["requests"])


@click.command()
@click.option("--model", "model_dir", required=True, type=click.Path(), help="Model folder.")
@click.option("--json", "json_path", default=None, type=click.Path(),
              help="Also write the verified ledger as JSON.")  # fmt: skip
@click.option("--overwrite", is_flag=True, help="Replace an existing --json file.")
def history(model_dir, json_path, overwrite) -> None:
    """Print a model's ledger (what it was made to forget) after verifying its chain."""
    from ..store.checkpoints import load_model
    from ..store.files import write_atomic
    from ..store.ledger import Ledger
    from .history import format_history

    model, spec = load_model(model_dir)
    ledger = Ledger.read(model_dir)
    if ledger is None:
        click.echo(f"{model_dir} has no ledger: no `assd unlearn` request made it.")
        return
    if json_path:
        check_output(json_path, inputs=[model_dir], overwrite=overwrite, flag="--json",
                     kind="file")  # fmt: skip
    ledger.verify(model, head=spec.get("extra", {}).get("ledger", {}).get("head"))
    click.echo(format_history(ledger))
    click.echo(f"chain verified: {len(ledger.entries)} entries, head {ledger.head}, ending at "
               "the weights in the folder")  # fmt: skip
    if json_path:
        write_atomic(json_path, json.dumps(ledger.entries, indent=1), overwrite=overwrite)
        click.echo(f"wrote {json_path} (the ledger entries as JSON)")


@click.command()
@click.option("--model", "model_dir", required=True, type=click.Path(), help="Model folder.")
@click.option("--data", "data_path", required=True, type=click.Path(), help="The training table.")
@click.option("--out", required=True, type=click.Path(), help="New model folder to write.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out folder.")
def retrain(model_dir, data_path, out, overwrite) -> None:
    """Retrain from the recorded recipe without every row the ledger forgot; starts a fresh
    drift baseline (its ledger entry links the old model and the new)."""
    from ..data.table import read_table
    from ..tabular import TabularModel
    from ..tabular.retrain import retrain_model

    tabular = TabularModel.load(model_dir)
    check_output(out, inputs=[model_dir, data_path], overwrite=overwrite)
    frame = read_table(data_path, text_columns=[tabular.task.id_column])
    new, report = retrain_model(tabular, frame)
    if not is_main_process():
        return
    text = json.dumps(report, indent=2)
    new.save(out, overwrite=overwrite,
             files={"report.json": lambda p: p.write_text(text, encoding="utf-8")})  # fmt: skip
    acc = report["accuracy"]
    click.echo(f"retrained on {report['n_train']} rows, without the {report['n_excluded']} "
               "rows the ledger forgot; accuracy " + ", ".join(
                   f"{k} {v['before']:.4f} -> {v['after']:.4f}" for k, v in acc.items()))
    click.echo(f"wrote {out}: the new model, report.json, ledger.jsonl (entry "
               f"{report['ledger']['index']}: retrain; drift baseline reset)")
