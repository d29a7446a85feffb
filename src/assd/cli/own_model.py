"""``assd unlearn`` / ``assd evaluate`` with ``--model-factory``: any architecture, no pickle.

The options are added to the table commands of :mod:`assd.cli.tables`; when
``--model-factory`` is given, these functions run instead of the table path.
"""

from __future__ import annotations

import json

import click

from ..distributed import is_main_process
from ..files import check_output

__all__ = ["evaluate_own", "own_model_options", "unlearn_own"]


def own_model_options(command):
    """Add ``--model-factory``, ``--weights``, ``--data-factory`` and ``--batch-size``."""
    options = [
        click.option("--model-factory", default=None,
                     help="Your own model: package.module:function that builds it."),
        click.option("--weights", default=None, type=click.Path(),
                     help="With --model-factory: its .safetensors weights (or a folder)."),
        click.option("--data-factory", default=None,
                     help="With --model-factory: package.module:function returning the "
                          "training Dataset, or a dict {'train': ..., 'test': ..., "
                          "'collate_fn': ...}; --forget then lists row positions."),
        click.option("--batch-size", "own_batch_size", default=64, show_default=True,
                     help="With --model-factory: rows per batch."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


def _require(given: dict, flags: str) -> None:
    missing = [f"--{k.replace('_', '-')}" for k, v in given.items() if not v]
    if missing:
        raise click.UsageError(f"{', '.join(missing)} missing: {flags}")


def unlearn_own(*, model_factory, weights, data_factory, own_batch_size, forget_path, out,
                method, opts, overwrite) -> None:  # fmt: skip
    """Forget rows of a data set of yours, with a model of yours; write an atomic folder."""
    from ..data.table import read_forget_ids
    from ..own_model import load_data_factory, load_model_factory, unlearn_by_ids
    from ..tabular.report import unlearn_markdown

    _require(
        {"weights": weights, "data_factory": data_factory},
        "--model-factory needs --weights (safetensors) and --data-factory (the training rows).",
    )
    check_output(out, inputs=[weights, forget_path], overwrite=overwrite)
    model = load_model_factory(model_factory, weights)
    train, others, collate = load_data_factory(data_factory)
    ids = _positions(read_forget_ids(forget_path), forget_path)
    result, report = unlearn_by_ids(model, train, ids, method=method, options=opts,
                                    eval_sets=others, batch_size=own_batch_size,
                                    collate_fn=collate)  # fmt: skip
    if not is_main_process():
        return
    report |= {"model_factory": model_factory, "weights": str(weights),
               "data_factory": data_factory, "forget_file": forget_path}  # fmt: skip
    spec = {"model_factory": model_factory, "data_factory": data_factory,
            "unlearned": {"method": method, "n_forget": report["n_forget"]}}  # fmt: skip
    markdown = unlearn_markdown(report)
    _write(out, result.model, spec, report, markdown, overwrite)
    click.echo(markdown)
    click.echo(f"wrote {out} (model.safetensors, model.json, report.json, report.md)")


def _write(out, model, spec: dict, report: dict, markdown: str, overwrite: bool) -> None:
    from safetensors.torch import save_model

    from ..checkpoints import write_folder

    with write_folder(out, overwrite=overwrite) as tmp:  # atomic: all files or none
        save_model(model, str(tmp / "model.safetensors"))
        (tmp / "model.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")
        (tmp / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        (tmp / "report.md").write_text(markdown, encoding="utf-8")


def _positions(ids: list[str], path) -> list[int]:
    try:
        return [int(i) for i in ids]
    except ValueError:
        bad = next(i for i in ids if not i.lstrip("-").isdigit())
        raise ValueError(
            f"{path} names {bad!r}; with --data-factory, forget ids are row positions "
            "(0, 1, 2, ...) in the training data set."
        ) from None


def evaluate_own(*, model_factory, weights, data_factory, own_batch_size, json_path,
                 overwrite) -> None:  # fmt: skip
    """Accuracy and per-class figures of a model of yours on each of its data sets."""
    from torch.utils.data import DataLoader

    from ..files import write_atomic
    from ..metrics import classification_summary
    from ..metrics.accuracy import predict
    from ..own_model import load_data_factory, load_model_factory

    _require(
        {"weights": weights, "data_factory": data_factory},
        "--model-factory needs --weights (a .safetensors file or an `assd unlearn` folder) "
        "and --data-factory.",
    )
    if json_path:
        check_output(json_path, inputs=[weights], overwrite=overwrite, flag="--json")
    model = load_model_factory(model_factory, weights)
    train, others, collate = load_data_factory(data_factory)
    report = {}
    for name, rows in {"train": train, **others}.items():
        pred, y = predict(model, DataLoader(rows, batch_size=own_batch_size, collate_fn=collate))
        report[name] = classification_summary(y.numpy(), pred.numpy())
    if not is_main_process():
        return
    for name, summary in report.items():
        click.echo(f"{name}: {summary['n']} rows, accuracy {summary['accuracy']:.4f}, "
                   f"balanced accuracy {summary['balanced_accuracy']:.4f}")  # fmt: skip
    if json_path:
        write_atomic(json_path, json.dumps(report, indent=2, default=float))
        click.echo(f"wrote {json_path}")

