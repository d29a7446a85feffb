"""``assd experiment forget``: the standard unlearning benchmark (scenario x method x seed)."""

from __future__ import annotations

from pathlib import Path

import click

from ..data.scenarios import DATASETS, SCENARIOS
from ..importance.distributed import is_main_process
from ..methods.options import check_spec
from ..store.files import check_writable
from .experiment_report import write_experiment_report
from .options import COUNT, RATE, parse_seeds

MODELS = ("cnn", "resnet18", "vit", "vit-b")
KEY = ("scenario", "dataset", "model", "forget", "seed", "method")
METHOD_HELP = (
    "Method specs NAME[:key=value,...], comma-separated; 'original' (the model before "
    "unlearning) is always included. Default: every registered benchmark method."
)


def _options(pairs: tuple[str, ...], model: str = "") -> dict:
    from .options import model_options

    return model_options(model, pairs)


@click.command("forget")
@click.option(
    "--out", required=True, type=click.Path(), help="Folder for models, results, table, plots."
)
@click.option(
    "--scenario", type=click.Choice(list(SCENARIOS)), default="full-class", show_default=True
)
@click.option("--dataset", type=click.Choice(DATASETS), default="digits", show_default=True)
@click.option(
    "--data-dir",
    type=click.Path(),
    default=None,
    help="Folder holding cifar-10-batches-py/ or cifar-100-python/ (or their .tar.gz).",
)
@click.option("--model", type=click.Choice(MODELS), default="cnn", show_default=True)
@click.option("--model-option", multiple=True, help="Model keyword KEY=VALUE, e.g. width=32.")
@click.option("--forget", default="3", show_default=True,
              help="Class index or name (full-class), fine class (sub-class), or a count, share "
                   "or percentage of the training rows (random), e.g. 100, 0.01, 5%.")  # fmt: skip
@click.option("--methods", default=None, help=METHOD_HELP)
@click.option("--seeds", default="3", show_default=True, help="A count, or a list like 0,3,7.")
@click.option("--epochs", default=30, show_default=True, type=COUNT,
              help="Training epochs of the original.")
@click.option("--lr", default=1e-3, show_default=True, type=RATE)
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default="adam", show_default=True)
@click.option("--momentum", default=0.9, show_default=True, type=click.FloatRange(0, 1))
@click.option("--weight-decay", default=0.0, show_default=True, type=click.FloatRange(min=0))
@click.option("--lr-gamma", default=1.0, show_default=True, type=RATE,
              help="Learning-rate factor per epoch.")
@click.option("--batch-size", default=64, show_default=True, type=COUNT,
              help="Training batches, and the batches of every importance pass.")  # fmt: skip
@click.option("--augment", is_flag=True, help="Random crops and flips when training the original.")
@click.option("--image-size", type=COUNT, default=None, help="Resize images to this side first.")
@click.option("--estimator", type=click.Choice(["batch", "sample"]), default=None,
              help="Importance estimator of the SSD family (default: each method's own, "
                   "'sample'; 'batch' is the SSD/ASSD papers' setup).")  # fmt: skip
@click.option(
    "--weights",
    type=click.Path(),
    default=None,
    help="Safetensors weights of an already trained original (skips training).",
)
@click.option(
    "--init",
    type=click.Path(),
    default=None,
    help="Safetensors weights to start training from (tensors that fit are loaded).",
)
@click.option(
    "--allow-pickle",
    is_flag=True,
    help="Accept PyTorch pickle files for --weights/--init (loaded with weights_only=True).",
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1 or auto.")
@click.option("--no-progress", is_flag=True)
def forget(out, scenario, dataset, data_dir, model, model_option, forget, methods, seeds,
           epochs, lr, optimizer, momentum, weight_decay, lr_gamma, batch_size, augment,
           image_size, estimator, weights, init, allow_pickle, device,
           no_progress) -> None:  # fmt: skip
    """Train (or reuse) an original per seed, let each method forget, measure, tabulate.

    Writes OUT/originals/seed-N/ (model folders, reused by a re-run),
    OUT/results.jsonl (one line per method and seed; finished lines are
    skipped on a re-run), OUT/table.md, OUT/summary.json and OUT/figures/*.png
    over every result in OUT. Runs forgetting other classes may share OUT
    (and its originals); other training settings need another OUT.
    """
    from ..extras import require_extra

    require_extra("experiments")  # fail now, not after the run, without matplotlib
    from ..experiments import ResultLog, run_cells
    from ..experiments.forget import ForgetConfig, ForgetRun, make_cells, split_methods
    from .options import check_device

    device = check_device(device)
    training = {"epochs": epochs, "lr": lr, "optimizer": optimizer, "momentum": momentum,
                "weight_decay": weight_decay, "lr_gamma": lr_gamma}  # fmt: skip
    config = ForgetConfig(
        scenario=scenario, dataset=dataset, forget=forget, model=model, seeds=parse_seeds(seeds),
        model_options=_options(model_option, model), training=training, batch_size=batch_size,
        augment=augment, image_size=image_size, estimator=estimator, weights=weights, init=init,
        data_dir=data_dir, device=device, allow_pickle=allow_pickle,
    )  # fmt: skip
    if methods:
        config.methods = split_methods(methods)
        for spec in config.methods:  # fail now, naming the spec, not after training
            check_spec(spec, own=("original",))
    folder = Path(out)
    check_writable(folder / "results.jsonl")  # fail now, not after the first cell
    progress = not no_progress and is_main_process()
    runner = ForgetRun(config, folder, progress=progress)
    cells = make_cells(config)
    records = run_cells(cells, runner.run_one, ResultLog(folder / "results.jsonl"),
                        config=config.to_dict(), progress=progress)  # fmt: skip
    if is_main_process():
        _report(records, folder)


def _report(records: list[dict], folder: Path) -> None:
    """Tables and plots of everything in the folder (e.g. several forget classes)."""
    from ..experiments.forget_report import forget_markdown, forget_plots, summarize
    from ..experiments.legends import FORGET_LEGEND

    mine = [r for r in records if set(KEY) <= set(r.get("key", {}))]
    rows = summarize(mine)
    write_experiment_report(
        folder, rows, forget_markdown(rows), lambda figures: forget_plots(mine, figures),
        legend=FORGET_LEGEND,
    )
