"""Runs the forgetting matrix's units of work: one (cell, seed, method) at a time.

Each cell family runs on the standard forget runner (:class:`ForgetRun`):
digits through it as it is, the table and the transformer through
:class:`TaskRun`, which only swaps in their scenario and model. Originals are
trained once per seed and family and saved under ``OUT/work/``; every record
carries the runner's metrics, the method's own verdict (``assd-auto``) and the
per-example membership share of the forget rows.

The membership share needs :func:`assd.verify.per_example.member_share`. When
that function is not installed the share is None ("n/a" in the tables) and no
reference model is built. Otherwise it scores the result against reference
models trained like retraining on the cell's retained rows with seeds no
matrix run uses (``REFERENCE_SEED + j``), with every model's confidences
calibrated on the held-out rows as assd-auto's verdict does (the retained
classes' test rows and the forget rows' look-alikes,
:func:`assd.verify.evidence.held_out_rows`); they are saved under
``OUT/references/`` and shared by every seed of a cell whose forget rows do
not depend on the seed (for random rows, one set per seed).
"""

from __future__ import annotations

import copy
import json
import logging
import time
from pathlib import Path

import torch

from ..batches import TensorData
from ..store.files import write_atomic
from ..train import fit
from ..verify.evidence import held_out_rows
from .forget import ForgetConfig, ForgetRun
from .forget_setup import device_of
from .matrix_cells import Cell, method_spec

__all__ = ["RECIPES", "REFERENCE_SEED", "MatrixRun", "TaskRun", "claimed_forgotten", "claimed_met"]

log = logging.getLogger("assd")

REFERENCE_SEED = 10_000
RECIPES = {  # training of the original (and of retraining and the references), per family
    "digits": {"epochs": 30, "lr": 1e-3, "optimizer": "adam", "momentum": 0.9,
               "weight_decay": 0.0, "lr_gamma": 1.0},
    "table": {"epochs": 20, "lr": 1e-3, "optimizer": "adam", "momentum": 0.9,
              "weight_decay": 0.0, "lr_gamma": 1.0},
    "transformer": {"epochs": 30, "lr": 1e-3, "optimizer": "adam", "momentum": 0.9,
                    "weight_decay": 0.0, "lr_gamma": 1.0},
}  # fmt: skip
BATCH = {"digits": 64, "table": 64, "transformer": 32}


def claimed_met(result) -> bool | None:
    """Whether a verified result's verdict says the forget target is met for the model it
    returns (after a repair: the repaired model's figure); None without a target."""
    outcome = getattr(result, "outcome", None)
    target = getattr(outcome, "target", None)
    if not isinstance(target, dict) or "met" not in target:
        return None
    final = target.get("after_repair", target)
    return bool(final.get("met"))


def claimed_forgotten(result) -> bool | None:
    """Whether the verdict says "forgotten" (the target and the per-example test) for the
    model returned; None without a per-example test."""
    target = getattr(getattr(result, "outcome", None), "target", None)
    if not isinstance(target, dict) or "forgotten" not in target:
        return None
    return bool(target.get("after_repair", target)["forgotten"])


class _Recording:
    """Mixin for the forget runner: remember the result each method returns."""

    last_result = None

    def _method(self, name, options, seed):
        method = super()._method(name, options, seed)
        unlearn = method.unlearn

        def recorded(*args, **kwargs):
            self.last_result = unlearn(*args, **kwargs)
            return self.last_result

        method.unlearn = recorded
        return method

    def run_spec(self, seed: int, spec: str) -> tuple[dict, torch.nn.Module]:
        """Metrics of one method spec on one seed, and the model it produced."""
        self.last_result = None
        record = self.run_one({"seed": seed, "method": spec})
        model = self.original if self.last_result is None else self.last_result.model
        return record, model


class DigitsRun(_Recording, ForgetRun):
    """The forget runner as it is, for digits cells."""


class TaskRun(_Recording, ForgetRun):
    """The forget runner on a table or transformer scenario (:mod:`.matrix_tasks`)."""

    def __init__(self, config: ForgetConfig, folder, cell: Cell, *, progress: bool = False):
        self.config, self.folder, self.progress = config, Path(folder), progress
        self.device = device_of(config.device)
        self.cell, self._seed = cell, None

    def _scenario(self, seed: int):
        from .matrix_tasks import table_scenario, token_scenario

        if self.cell.family == "table":
            return table_scenario(self.cell.scenario, seed=seed, forget=self.cell.forget)
        return token_scenario(seed=seed, forget=self.cell.forget)

    def _evidence_options(self, options: dict, seed: int) -> dict:
        """assd-auto's references for a table or transformer cell: the cell's own model and
        training at the reference budget (the digits recipe builds image models)."""
        from ..verify.references import Recipe
        from ..verify.relearn import RELEARN_STEPS
        from .forget_references import REFERENCE_BUDGET
        from .matrix_tasks import build_task_model

        options = dict(options)
        if self.cell.scenario == "group":  # one carrier's rows: a group, judged as a sub-class
            options.setdefault("target", "group")
        budget = options.pop("reference_budget", REFERENCE_BUDGET)
        if budget:
            training = {**self.config.training,
                        "epochs": max(1, round(self.config.training["epochs"] * budget))}

            def train(x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.nn.Module:
                model = build_task_model(self.cell.family, self.scenario, seed).to(self.device)
                fit(model, TensorData(x, y, batch_size=self.config.batch_size, shuffle=True,
                                      seed=seed), **training)  # fmt: skip
                return model.eval()

            name = json.dumps({"family": self.cell.family, "training": training,
                               "batch_size": self.config.batch_size}, sort_keys=True)
            options.setdefault("recipe", Recipe(name=name, train=train))
            options.setdefault("reference_seed", seed)
        options.setdefault("relearn_steps", RELEARN_STEPS)
        return options

    def _original(self, seed: int):
        from .matrix_tasks import build_task_model

        folder = self.folder / "originals" / f"seed-{seed}"
        settings = {"family": self.cell.family, "training": self.config.training,
                    "batch_size": self.config.batch_size}  # fmt: skip
        model = build_task_model(self.cell.family, self.scenario, seed).to(self.device)
        stored = load_weights(folder, model, settings)
        if stored is not None:
            return model.eval(), stored
        data = TensorData(self.scenario.x_train, self.scenario.y_train,
                          batch_size=self.config.batch_size, shuffle=True, seed=seed)  # fmt: skip
        tick = time.perf_counter()
        fit(model, data, **self.config.training, progress=self.progress)
        seconds = time.perf_counter() - tick
        save_weights(folder, model, {"settings": settings, "train_seconds": seconds})
        return model.eval(), seconds


def save_weights(folder: Path, model: torch.nn.Module, meta: dict) -> None:
    """``weights.safetensors`` and ``meta.json`` in ``folder``, each written atomically."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / "weights.safetensors", lambda tmp: save_file(state, str(tmp)))
    write_atomic(folder / "meta.json", json.dumps(meta, sort_keys=True))


def load_weights(folder: Path, model: torch.nn.Module, settings: dict) -> float | None:
    """Load weights saved by :func:`save_weights` with these ``settings`` into ``model``;
    returns their training seconds, or None when there are none."""
    from safetensors.torch import load_file

    if not (folder / "meta.json").is_file() or not (folder / "weights.safetensors").is_file():
        return None
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    if meta.get("settings") != json.loads(json.dumps(settings)):
        raise ValueError(f"{folder} holds a model trained with other settings "
                         f"({meta.get('settings')}); choose another --out.")  # fmt: skip
    model.load_state_dict(load_file(str(folder / "weights.safetensors")))
    return float(meta.get("train_seconds", 0.0))


class MatrixRun:
    """The matrix's ``run_one`` for :func:`assd.experiments.run_cells`: key -> record."""

    def __init__(self, folder, cells: list[Cell], *, epochs: int | None = None,
                 references: int = 4, device: str = "cpu", progress: bool = False):  # fmt: skip
        self.folder, self.cells = Path(folder), {c.id: c for c in cells}
        self.epochs, self.n_references = epochs, references
        self.device, self.progress = device, progress
        self._runner: tuple[str, ForgetRun] | None = None
        self._share_fn = _member_share_function()

    def settings(self) -> dict:
        """Everything the numbers depend on besides the cell, seed and method."""
        return {"recipes": {f: self._recipe(f) for f in RECIPES}, "batch": BATCH,
                "references": self.n_references, "reference_seed": REFERENCE_SEED}  # fmt: skip

    def _recipe(self, family: str) -> dict:
        recipe = dict(RECIPES[family])
        if self.epochs is not None:
            recipe["epochs"] = self.epochs
        return recipe

    def runner(self, cell: Cell) -> ForgetRun:
        if self._runner is None or self._runner[0] != cell.id:
            self._runner = (cell.id, self._new_runner(cell))
        return self._runner[1]

    def _new_runner(self, cell: Cell) -> ForgetRun:
        scenario = "random" if cell.family == "table" else cell.scenario  # table sets as random
        config = ForgetConfig(scenario=scenario, dataset="digits", forget=cell.forget,
                              model="cnn", methods=[], seeds=[],
                              training=self._recipe(cell.family),
                              batch_size=BATCH[cell.family], device=self.device)  # fmt: skip
        if cell.family == "digits":
            return DigitsRun(config, self.folder / "work" / f"digits-{cell.scenario}",
                             progress=self.progress)  # fmt: skip
        return TaskRun(config, self.folder / "work" / cell.family, cell, progress=self.progress)

    def run_one(self, key: dict) -> dict:
        cell = self.cells[key["cell"]]
        runner = self.runner(cell)
        record, model = runner.run_spec(key["seed"], method_spec(key["method"]))
        record["claimed_met"] = claimed_met(runner.last_result)
        record["claimed_forgotten"] = claimed_forgotten(runner.last_result)
        record["member_share"] = self._member_share(runner, cell, key["seed"], model)
        return record

    def _member_share(self, runner: ForgetRun, cell: Cell, seed: int, model) -> float | None:
        if self._share_fn is None or self.n_references < 1:
            return None
        references = self._references(runner, cell, seed)
        held_out = held_out_rows(runner._evaluation_sets(held_out=True))
        return float(self._share_fn(model, runner._loader("forget"), references, fpr=0.05,
                                    held_out=held_out))  # fmt: skip

    def _references(self, runner: ForgetRun, cell: Cell, seed: int) -> list:
        """Models trained like retraining on the cell's retained rows (never on Df), built
        once and saved; see the module's docstring."""
        folder = self.folder / "references" / cell.id
        if cell.rows_depend_on_seed:
            folder = folder / f"seed-{seed}"
        settings = {"training": runner.config.training, "batch_size": runner.config.batch_size}
        models = []
        for j in range(self.n_references):
            model = copy.deepcopy(runner.original)
            where = folder / f"ref-{j}"
            if load_weights(where, model, settings) is None:
                method = runner._method("retrain", {"seed": REFERENCE_SEED + j}, seed)
                tick = time.perf_counter()
                model = method.unlearn(runner.original, forget=runner._loader("forget"),
                                       retain=runner._loader("retain", shuffle=True)).model
                save_weights(where, model, {"settings": settings,
                                            "train_seconds": time.perf_counter() - tick})
            models.append(model.eval())
        return models


def _member_share_function():
    """The per-example membership share, or None where this installation lacks it."""
    try:
        from ..verify.per_example import member_share
    except ImportError as error:
        log.info("no per-example membership share (%s): the tables show n/a", error)
        return None
    return member_share
