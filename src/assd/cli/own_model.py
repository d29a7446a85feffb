"""``assd unlearn`` / ``assd evaluate`` with ``--model-factory``: any architecture, no pickle.

The table commands of :mod:`assd.cli.tables` declare these options with the
:func:`own_model_options` decorator; when ``--model-factory`` is given, these
functions run instead of the table path.
"""

from __future__ import annotations

import functools
import json
import logging

import click

from ..importance.distributed import is_main_process
from ..store.checkpoints import check_finite
from ..store.files import check_output
from ..tasks import TASKS

__all__ = ["evaluate_own", "own_model_options", "unlearn_own"]

log = logging.getLogger("assd")


def own_model_options(run_own):
    """Declare the own-model options on a table command (``unlearn``, ``evaluate``).

    Used as a decorator under the command's own options: it adds
    ``--model-factory``, ``--weights``, ``--data-factory`` and ``--batch-size``;
    with ``--model-factory`` the command runs ``run_own(own_options, other_options)``
    instead of its table path, which needs ``--model`` and ``--data``.
    """
    factory_help = (
        "With --model-factory: package.module:function returning the training Dataset, or "
        "a dict {'train': ..., 'test': ..., 'collate_fn': ...}; --forget then lists row "
        "positions."
    )
    options = [
        click.option("--model-factory", default=None,
                     help="Your own model: package.module:function that builds it."),
        click.option("--weights", default=None, type=click.Path(),
                     help="With --model-factory: its .safetensors weights (or a folder)."),
        click.option("--data-factory", default=None, help=factory_help),
        click.option("--batch-size", "own_batch_size", default=None, type=click.IntRange(min=1),
                     help="With --model-factory: rows per batch (default 64)."),
        click.option("--task", default=None, type=click.Choice(TASKS),
                     help="With --model-factory: what the outputs mean; needed for sequence "
                     "outputs (token-classification, causal-lm). It fixes the loss and the "
                     "scores."),
        click.option("--loss-fn", default=None,
                     help="With --model-factory: package.module:function, loss_fn(logits, "
                     "targets) -> mean loss, for the importances (SSD family)."),
        click.option("--train-fn", default=None,
                     help="With --model-factory and --method assd-auto: package.module:function,"
                     " train(x, y, seed) -> a new model trained on those rows; assd-auto then "
                     "judges against reference models trained with it (kept in --cache-dir)."),
    ]  # fmt: skip

    def decorate(table_callback):
        @functools.wraps(table_callback)
        def callback(*args, **given):
            own = {key: given.pop(key) for key in OWN_KEYS}
            _check_paths(own, given)
            if own["model_factory"]:
                own["own_batch_size"] = own["own_batch_size"] or DEFAULT_BATCH_SIZE
                return run_own(own, given)
            return table_callback(*args, **given)

        callback.__doc__ = (table_callback.__doc__ or "") + OWN_HELP
        for option in reversed(options):
            callback = option(callback)
        return callback

    return decorate


OWN_KEYS = ("model_factory", "weights", "data_factory", "own_batch_size", "task", "loss_fn",
            "train_fn")  # fmt: skip
DEFAULT_BATCH_SIZE = 64
OWN_HELP = (
    "\n\nYour own model: --model-factory, --weights and --data-factory instead of "
    '--model and --data (README, "Your own model").'
)


def _check_paths(own: dict, given: dict) -> None:
    """The table path (--model, --data) or the own-model path (--model-factory ...), not both."""
    table = [f for f, k in (("--model", "model_dir"), ("--data", "data_path")) if given.get(k)]
    mine = [f"--{k.replace('_', '-')}" for k in (*OWN_KEYS[1:3], *OWN_KEYS[4:]) if own[k]]
    mine += ["--batch-size"] if own["own_batch_size"] is not None else []
    if own["model_factory"] and table:
        raise click.UsageError(
            f"{' and '.join(table)} with --model-factory: --model and --data name a table "
            "model, --model-factory your own; give one of the two."
        )
    if not own["model_factory"] and mine:
        raise click.UsageError(f"{', '.join(mine)} only apply with --model-factory.")
    if not own["model_factory"] and len(table) < 2:
        raise click.UsageError(
            "pass --model and --data (a table model from `assd train`), or "
            "--model-factory, --weights and --data-factory (your own model)."
        )


def _require(given: dict, flags: str) -> None:
    missing = [f"--{k.replace('_', '-')}" for k, v in given.items() if not v]
    if missing:
        raise click.UsageError(f"{', '.join(missing)} missing: {flags}")


def unlearn_own(own: dict, options: dict) -> None:
    """Forget rows of a data set of yours, with a model of yours; write an atomic folder."""
    from ..data.table import read_forget_positions
    from ..methods import SSD, get_method
    from ..own_model import load_data_factory, load_model_factory, unlearn_by_ids
    from ..tabular.report import unlearn_markdown
    from .options import unlearn_options

    model_factory, weights, data_factory, batch_size, task, loss_fn, train_fn = (
        own[k] for k in OWN_KEYS)  # fmt: skip
    forget_path, out, overwrite = options["forget_path"], options["out"], options["overwrite"]
    method = options["method"]
    opts, guard = unlearn_options(options)  # the same checks as the table path
    if issubclass(type(get_method(method)), SSD):
        opts["guard"] = guard  # the retain guard, as for tables; None (--no-guard): none at all
    extra = _task_options(method, task, loss_fn)
    for key in sorted(set(extra) & set(opts)):
        raise click.UsageError(f"--{key.replace('_', '-')} and --option {key}=... both given; "
                               "give one of the two.")  # fmt: skip
    opts |= extra
    if train_fn:
        opts |= _references(method, opts, train_fn, model_factory, options)
    _require(
        {"weights": weights, "data_factory": data_factory},
        "--model-factory needs --weights (safetensors) and --data-factory (the training rows).",
    )
    check_output(out, inputs=[weights, forget_path], overwrite=overwrite)
    model = load_model_factory(model_factory, weights)
    train, others, collate = load_data_factory(data_factory)
    ids = read_forget_positions(forget_path)  # digits only, refused by line number
    result, report = unlearn_by_ids(model, train, ids, method=method, options=opts,
                                    eval_sets=others, batch_size=batch_size,
                                    collate_fn=collate, task=task)  # fmt: skip
    if not is_main_process():
        return
    report |= {"model_factory": model_factory, "weights": str(weights),
               "data_factory": data_factory, "forget_file": forget_path}  # fmt: skip
    spec = {"model_factory": model_factory, "data_factory": data_factory,
            "unlearned": {"method": method, "n_forget": report["n_forget"]}}  # fmt: skip
    check_finite(result.model, what="the unlearned model")  # a diverged result is never written
    markdown = unlearn_markdown(report)
    _write(out, result.model, spec, report, markdown, overwrite)
    click.echo(markdown)
    click.echo(f"wrote {out} (model.safetensors, model.json, report.json, report.md)")


def _write(out, model, spec: dict, report: dict, markdown: str, overwrite: bool) -> None:
    from safetensors.torch import save_model

    from ..store.checkpoints import write_folder

    with write_folder(out, overwrite=overwrite) as tmp:  # atomic: all files or none
        save_model(model, str(tmp / "model.safetensors"))
        (tmp / "model.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")
        (tmp / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        (tmp / "report.md").write_text(markdown, encoding="utf-8")


def _references(method: str, opts: dict, train_fn: str, model_factory: str, options) -> dict:
    """``recipe`` (and, with ``--cache-dir``, ``reference_cache``) from ``--train-fn``."""
    from ..methods import get_method
    from ..own_model import train_recipe
    from ..verify.references import ReferenceCache

    if not hasattr(get_method(method), "recipe"):
        raise click.UsageError(f"--train-fn trains the reference models assd-auto judges "
                               f"against; {method!r} uses none (use --method assd-auto).")
    if "references" in opts:
        raise click.UsageError("--train-fn and --option references=... both given; give one.")
    out = {"recipe": train_recipe(train_fn, model_factory)}
    folder = options.get("cache_dir")
    if folder and not options.get("no_cache"):
        from pathlib import Path

        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
            out["reference_cache"] = ReferenceCache.at(folder)
        except OSError as error:
            log.warning("cannot create the cache folder %s (%s); not caching", folder, error)
    return out


def _task_options(method: str, task, loss_fn) -> dict:
    """``task`` (any method) and ``loss_fn`` (imported; the SSD family) as method options."""
    from ..methods import SSD, get_method
    from ..own_model import import_factory

    opts = {"task": task} if task else {}
    if loss_fn:
        if not issubclass(type(get_method(method)), SSD):
            raise click.UsageError(f"--loss-fn sets the importances' loss of the SSD family; "
                                   f"{method!r} takes its loss from --task.")  # fmt: skip
        opts["loss_fn"] = import_factory(loss_fn)
        if not callable(opts["loss_fn"]):
            raise click.UsageError(f"--loss-fn {loss_fn} is not a function.")
    return opts



def evaluate_own(own: dict, options: dict) -> None:
    """Accuracy and per-class figures of a model of yours on each of its data sets."""
    from torch.utils.data import DataLoader

    from ..metrics import classification_summary
    from ..metrics.accuracy import predict
    from ..own_model import load_data_factory, load_model_factory, task_scores
    from ..store.files import write_atomic

    model_factory, weights, data_factory, batch_size, task, _, train_fn = (
        own[k] for k in OWN_KEYS)  # fmt: skip
    if train_fn:
        raise click.UsageError("--train-fn trains assd-auto's reference models; it applies to "
                               "assd unlearn only.")  # fmt: skip
    json_path, overwrite = options["json_path"], options["overwrite"]
    _require(
        {"weights": weights, "data_factory": data_factory},
        "--model-factory needs --weights (a .safetensors file or an `assd unlearn` folder) "
        "and --data-factory.",
    )
    if json_path:
        check_output(json_path, inputs=[weights], overwrite=overwrite, flag="--json", kind="file")
    model = load_model_factory(model_factory, weights)
    check_finite(model, what=f"the model {weights}")
    train, others, collate = load_data_factory(data_factory)
    report = {}
    for name, rows in {"train": train, **others}.items():
        loader = DataLoader(rows, batch_size=batch_size, collate_fn=collate)
        if task not in (None, "classification"):  # sequences, regression: the task's figures
            report[name] = task_scores(model, loader, task)
            continue
        pred, y = predict(model, loader)
        report[name] = classification_summary(y.numpy(), pred.numpy())
    if not is_main_process():
        return
    for name, summary in report.items():
        if "balanced_accuracy" not in summary:
            click.echo(f"{name}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else
                                               f"{k} {v}" for k, v in summary.items()))
            continue
        click.echo(f"{name}: {summary['n']} rows, accuracy {summary['accuracy']:.4f}, "
                   f"balanced accuracy {summary['balanced_accuracy']:.4f}")  # fmt: skip
    if json_path:
        write_atomic(json_path, json.dumps(report, indent=2, default=float))
        click.echo(f"wrote {json_path}")
