"""``assd unlearn`` / ``assd evaluate`` with ``--model-factory``: any architecture, no pickle.

The options are added to the table commands of :mod:`assd.cli.tables` on
import; when ``--model-factory`` is given, these functions run instead of the
table path.
"""

from __future__ import annotations

import json

import click

from ..importance.distributed import is_main_process
from ..store.checkpoints import check_finite
from ..store.files import check_output

__all__ = ["add_own_model_options", "evaluate_own", "unlearn_own"]


def _own_options() -> list[click.Option]:
    """Fresh option objects for one command."""
    factory_help = (
        "With --model-factory: package.module:function returning the training Dataset, or "
        "a dict {'train': ..., 'test': ..., 'collate_fn': ...}; --forget then lists row "
        "positions."
    )
    return [
        click.Option(
            ["--model-factory"],
            default=None,
            help="Your own model: package.module:function that builds it.",
        ),
        click.Option(
            ["--weights"],
            default=None,
            type=click.Path(),
            help="With --model-factory: its .safetensors weights (or a folder).",
        ),
        click.Option(["--data-factory"], default=None, help=factory_help),
        click.Option(
            ["--batch-size", "own_batch_size"],
            default=64,
            show_default=True,
            help="With --model-factory: rows per batch.",
        ),
    ]


OWN_KEYS = ("model_factory", "weights", "data_factory", "own_batch_size")


def add_own_model_options(command: click.Command, run_own) -> None:
    """Give a table command (``unlearn``, ``evaluate``) the own-model options.

    ``--model`` and ``--data`` become optional; with ``--model-factory`` the
    command runs ``run_own(own_options, other_options)`` instead of the table path.
    """
    table_callback = command.callback
    for param in command.params:
        if param.name in ("model_dir", "data_path"):
            param.required = False
    command.params.extend(_own_options())

    def callback(**options):
        own = {key: options.pop(key) for key in OWN_KEYS}
        if own["model_factory"]:
            return run_own(own, options)
        if not options.get("model_dir") or not options.get("data_path"):
            raise click.UsageError(
                "pass --model and --data (a table model from `assd train`), or "
                "--model-factory, --weights and --data-factory (your own model)."
            )
        return table_callback(**options)

    command.callback = callback
    command.help = (command.help or "") + (
        "\n\nYour own model: --model-factory, --weights and --data-factory instead of "
        '--model and --data (README, "Your own model").'
    )


def _require(given: dict, flags: str) -> None:
    missing = [f"--{k.replace('_', '-')}" for k, v in given.items() if not v]
    if missing:
        raise click.UsageError(f"{', '.join(missing)} missing: {flags}")


def unlearn_own(own: dict, options: dict) -> None:
    """Forget rows of a data set of yours, with a model of yours; write an atomic folder."""
    from ..data.table import read_forget_ids
    from ..experiments.errors import parse_method
    from ..methods import SSD, get_method
    from ..own_model import load_data_factory, load_model_factory, unlearn_by_ids
    from ..tabular.report import unlearn_markdown

    model_factory, weights, data_factory, batch_size = (own[k] for k in OWN_KEYS)
    forget_path, out, overwrite = options["forget_path"], options["out"], options["overwrite"]
    method = options["method"]
    opts = parse_method("x:" + ",".join(options["options"]))[1]
    picked = (("reference", options["reference"]), ("estimator", options["estimator"]))
    opts.update({k: v for k, v in picked if v})
    guard = None if options.get("no_guard") else options.get("guard")
    if issubclass(type(get_method(method)), SSD):
        opts.setdefault("guard", guard)  # the retain guard, as for tables; None: none at all
    _require(
        {"weights": weights, "data_factory": data_factory},
        "--model-factory needs --weights (safetensors) and --data-factory (the training rows).",
    )
    check_output(out, inputs=[weights, forget_path], overwrite=overwrite)
    model = load_model_factory(model_factory, weights)
    train, others, collate = load_data_factory(data_factory)
    ids = _positions(read_forget_ids(forget_path), forget_path)
    result, report = unlearn_by_ids(model, train, ids, method=method, options=opts,
                                    eval_sets=others, batch_size=batch_size,
                                    collate_fn=collate)  # fmt: skip
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


def _positions(ids: list[str], path) -> list[int]:
    try:
        return [int(i) for i in ids]
    except ValueError:
        bad = next(i for i in ids if not i.lstrip("-").isdigit())
        raise ValueError(
            f"{path} names {bad!r}; with --data-factory, forget ids are row positions "
            "(0, 1, 2, ...) in the training data set."
        ) from None


def evaluate_own(own: dict, options: dict) -> None:
    """Accuracy and per-class figures of a model of yours on each of its data sets."""
    from torch.utils.data import DataLoader

    from ..metrics import classification_summary
    from ..metrics.accuracy import predict
    from ..own_model import load_data_factory, load_model_factory
    from ..store.files import write_atomic

    model_factory, weights, data_factory, batch_size = (own[k] for k in OWN_KEYS)
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
        pred, y = predict(model, DataLoader(rows, batch_size=batch_size, collate_fn=collate))
        report[name] = classification_summary(y.numpy(), pred.numpy())
    if not is_main_process():
        return
    for name, summary in report.items():
        click.echo(f"{name}: {summary['n']} rows, accuracy {summary['accuracy']:.4f}, "
                   f"balanced accuracy {summary['balanced_accuracy']:.4f}")  # fmt: skip
    if json_path:
        write_atomic(json_path, json.dumps(report, indent=2, default=float))
        click.echo(f"wrote {json_path}")


def _attach() -> None:
    from .tables import evaluate, unlearn

    add_own_model_options(unlearn, unlearn_own)
    add_own_model_options(evaluate, evaluate_own)


_attach()
