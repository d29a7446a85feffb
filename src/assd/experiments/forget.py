"""The standard unlearning benchmark: scenario x method x seed (``assd experiment forget``).

Per seed: build the scenario (:mod:`assd.data.scenarios`), train the original
model on the whole training set (or load it from ``OUT/originals/seed-N``,
where the first run saved it), then let every method forget Df and measure
the result (:func:`measure`). SSD-family methods share one training-set
importance per seed (and objective), passed as ``importance=``; its time is
reported separately. Methods are spec strings ``NAME[:key=value,...]``
(:func:`assd.experiments.errors.parse_method`); ``original`` is the model
before unlearning.

Example:
    >>> split_methods("assd,ssd:alpha=5,dampening=0.5,retrain")
    ['assd', 'ssd:alpha=5,dampening=0.5', 'retrain']
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..batches import TensorData
from ..methods import ASSD, SSD, TrainingMethod, get_method, reinitialize_
from ..methods.options import split_methods
from .forget_setup import build_original, device_of, load_original

__all__ = [
    "DEFAULT_METHODS",
    "ForgetConfig",
    "ForgetRun",
    "make_cells",
    "reference_alpha",
    "split_methods",
]

log = logging.getLogger("assd")

DEFAULT_METHODS = [
    "assd", "assd-auto", "ssd", "lfssd", "alfssd", "retrain", "finetune", "gradient-ascent",
    "random-labels", "bad-teacher", "amnesiac", "unsir", "scrub",
]  # fmt: skip
VIT_ALPHA = {"full-class": 5.0, "sub-class": 25.0, "random": 10.0}
KEY_FIELDS = ("scenario", "dataset", "model", "forget")


def reference_alpha(model: str, scenario: str) -> float:
    """SSD's reference alpha: 10 for ResNet18 (and our other CNNs); for ViT
    5 (full-class), 25 (sub-class) and 10 (random forgetting)."""
    return VIT_ALPHA[scenario] if model.startswith("vit") else 10.0


@dataclass
class ForgetConfig:
    """Everything that decides the benchmark's numbers (stored with every record).

    ``training`` holds the original model's recipe (``assd.train.fit``
    options); retraining uses the same recipe unless its spec overrides it.
    """

    scenario: str = "full-class"
    dataset: str = "digits"
    forget: str = "3"
    model: str = "cnn"
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    model_options: dict = field(default_factory=dict)
    training: dict = field(
        default_factory=lambda: {"epochs": 30, "lr": 1e-3, "optimizer": "adam",
                                 "momentum": 0.9, "weight_decay": 0.0, "lr_gamma": 1.0}
    )  # fmt: skip
    batch_size: int = 64
    augment: bool = False
    image_size: int | None = None
    estimator: str | None = None  # None: each method's default; "batch": the papers' setup
    weights: str | None = None
    init: str | None = None
    allow_pickle: bool = False  # accept PyTorch pickles for weights/init (tensors only)
    data_dir: str | None = None
    device: str = "cpu"

    def settings(self) -> dict:
        """The fields a trained original depends on (a re-run must match them).

        Not ``forget``: the original learns the whole training set, so runs that
        forget different classes (or samples) can share one output folder and
        its originals. Nor the estimator: it only changes the SSD family's importances."""
        skip = ("forget", "methods", "seeds", "data_dir", "device", "estimator")
        return {k: v for k, v in asdict(self).items() if k not in skip}

    def to_dict(self) -> dict:
        return asdict(self)


def make_cells(config: ForgetConfig) -> list[dict]:
    """One cell per (seed, method), ``original`` first; seed-major so a seed's
    original model and importances are built once."""
    base = {k: getattr(config, k) for k in KEY_FIELDS}
    methods = ["original", *[m for m in config.methods if m != "original"]]
    return [{**base, "seed": s, "method": m} for s in config.seeds for m in methods]


class ForgetRun:
    """Runs cells of one benchmark configuration, keeping one seed's state at a time."""

    def __init__(self, config: ForgetConfig, folder: str | Path, *, progress: bool = False):
        from ..data.scenarios import load_dataset

        self.config, self.folder, self.progress = config, Path(folder), progress
        self.device = device_of(config.device)
        self.data = load_dataset(config.dataset, data_dir=config.data_dir)
        self._seed: int | None = None

    def run_one(self, cell: dict) -> dict:
        """Apply one method for one seed and return its metrics."""
        if self._seed != cell["seed"]:
            self._prepare(cell["seed"])
        from .errors import parse_method

        name, options = parse_method(cell["method"])
        if name == "original":
            return {**self.measure(self.original), "seconds": self.train_seconds}
        method = self._method(name, options, cell["seed"])
        importance_seconds, kwargs = 0.0, {}
        if isinstance(method, SSD) and self._retain_pass(method):
            kwargs["retain"] = self._loader("retain")  # batch means do not subtract
        elif isinstance(method, SSD):
            kwargs["importance"], importance_seconds = self._importance(method)
            kwargs["n_data"] = len(self.scenario.y_train)
        else:
            kwargs["retain"] = self._loader("retain", shuffle=True)
        forget = self._loader("forget", shuffle=not isinstance(method, SSD))
        if getattr(method, "needs_evaluation", False) or getattr(method, "guard", None):
            kwargs["evaluate"] = self._evaluation_sets(
                held_out=getattr(method, "recipe", None) is not None)
        result = method.unlearn(self.original, forget=forget, **kwargs)
        summary = result.summary()
        extra = {k: summary[k] for k in ("alpha", "percentile", "n_dampened", "share_dampened")}
        if result.outcome is not None:
            extra.update(n_changed=result.n_changed, tries=len(result.outcome.tries) or 1,
                         verdict=result.verdict)  # fmt: skip
            extra.update(_target_figures(result.outcome.target))
        return {
            **self.measure(result.model), **extra, "seconds": result.seconds,
            "importance_seconds": importance_seconds,
            "seconds_total": result.seconds + importance_seconds,
        }  # fmt: skip

    def _prepare(self, seed: int) -> None:
        scenario = self._scenario(seed)
        for name in ("x_train", "y_train", "x_test", "y_test"):
            setattr(scenario, name, getattr(scenario, name).to(self.device))
        self.scenario, self._seed = scenario, seed
        self.sets = {
            "forget": scenario.forget_train(), "retain": scenario.retain_train(),
            "forget_test": scenario.forget_test_set(), "retain_test": scenario.retain_test_set(),
        }  # fmt: skip
        self.original, self.train_seconds = self._original(seed)
        self.importances: dict = {}
        incompetent = reinitialize_(copy.deepcopy(self.original), seed=seed)
        self.incompetent_logits = self._logits(incompetent, self._df_set())

    def _scenario(self, seed: int):
        from ..data.scenarios import make_scenario
        return make_scenario(self.config.scenario, self.data, self.config.forget, seed=seed)

    def _original(self, seed: int):
        """``(model, training seconds)``: the seed's original, loaded or trained and saved."""
        folder = self.folder / "originals" / f"seed-{seed}"
        return load_original(folder, self.config, self.device) or build_original(
            folder, self.config, self.scenario, seed, self.device, progress=self.progress)

    def _evaluation_sets(self, *, held_out: bool = False) -> dict:
        """What a verified request (assd-auto, a guard) scores: Df, the retained training
        rows and, for random forgetting (or ``held_out``: assd-auto judged against
        references, which calibrate every model's confidences on them), the retained
        classes' test rows as held-out rows (the rule targets judge class scenarios
        without test rows)."""
        sets = {"forget": self._loader("forget"), "retain": self._loader("retain")}
        if self.config.scenario == "random" or held_out:
            sets["test"] = self._loader("retain_test")
        if held_out and self.sets["forget_test"] is not None:  # look-alikes of the forget rows
            from ..verify.evidence import LOOK_ALIKES

            sets[LOOK_ALIKES] = self._loader("forget_test")
        return sets

    def _method(self, name: str, options: dict, seed: int):
        cls = type(get_method(name))
        if name == "assd-auto" and self.config.scenario in ("full-class", "sub-class"):
            options.setdefault("target", "group")  # the request forgets a class / sub-class
        if name == "assd-auto":
            options = self._evidence_options(options, seed)
        if issubclass(cls, TrainingMethod):
            # ``seed_offset``: train with another seed than the cell's (a second retraining)
            options.setdefault("seed", seed + int(options.pop("seed_offset", 0)))
        if name == "retrain":
            options = {**self.config.training, **options}
        if issubclass(cls, SSD):
            if self.config.estimator:
                options.setdefault("estimator", self.config.estimator)
            options.setdefault("progress", self.progress)
            if not issubclass(cls, ASSD):
                options.setdefault(
                    "alpha", reference_alpha(self.config.model, self.config.scenario)
                )
        return get_method(name, **options)

    def _evidence_options(self, options: dict, seed: int) -> dict:
        """assd-auto judged against reference models trained with the original's recipe at
        ``reference_budget`` (0: the rule targets), with the relearning check on."""
        from ..verify.relearn import RELEARN_STEPS
        from .forget_references import REFERENCE_BUDGET, benchmark_recipe

        options = dict(options)
        budget = options.pop("reference_budget", REFERENCE_BUDGET)
        if budget:
            options.setdefault("recipe", benchmark_recipe(self.config, self.scenario,
                                                          self.device, budget=budget))  # fmt: skip
            options.setdefault("reference_pairs", 2 if self.config.scenario == "random" else 1)
            options.setdefault("reference_seed", seed)
        options.setdefault("relearn_steps", RELEARN_STEPS)
        return options

    @staticmethod
    def _retain_pass(method: SSD) -> bool:
        return method.reference == "retain" and method.importance_options["estimator"] == "batch"

    def _importance(self, method: SSD):
        """The training set's importance, shared by every SSD-family method of the seed
        (with ``reference="retain"`` the method derives the retain set's from it)."""
        opts = method.importance_options
        key = (method.objective, opts["estimator"], opts["train_mode"])
        if key not in self.importances:
            from ..importance.compute import compute_importance

            source = self._loader("train")
            tick = time.perf_counter()
            imp = compute_importance(self.original, source, **method.importance_options)
            self.importances[key] = (imp, time.perf_counter() - tick)
        return self.importances[key]

    def _loader(self, split: str, *, shuffle: bool = False) -> TensorData:
        x, y = (
            (self.scenario.x_train, self.scenario.y_train) if split == "train" else self.sets[split]
        )
        return TensorData(x, y, batch_size=self.config.batch_size, shuffle=shuffle, seed=self._seed)

    def _df_set(self) -> str:
        """The protocol's Df for accuracy and ZRF: the forget test split, else Df itself."""
        return "forget" if self.sets["forget_test"] is None else "forget_test"

    @torch.no_grad()
    def _logits(self, model: nn.Module, split: str) -> torch.Tensor:
        from ..metrics import logits_of

        return logits_of(model, TensorData(*self.sets[split], batch_size=512))[0]

    def measure(self, model: nn.Module) -> dict:
        """Accuracies, the two MIAs and ZRF of ``model`` on this seed's scenario."""
        from ..metrics.mia import auc, entropy_mia, per_sample_loss, softmax_entropy
        from ..metrics.zrf import zrf_from_logits

        splits = [s for s, v in self.sets.items() if v is not None]
        logits = {s: self._logits(model, s) for s in splits}
        labels = {s: self.sets[s][1].cpu() for s in splits}
        acc = {s: float((logits[s].argmax(1) == labels[s]).double().mean()) for s in splits}
        test = [s for s in ("retain_test", "forget_test") if s in logits]
        test_logits, test_labels = (torch.cat([d[s] for s in test]) for d in (logits, labels))
        unseen = "forget_test" if "forget_test" in logits else "retain_test"
        df = self._df_set()
        return {
            "retain_test_acc": acc["retain_test"],
            "forget_test_acc": acc.get("forget_test"),
            "forget_acc": acc["forget"],
            "retain_acc": acc["retain"],
            "df_acc": acc[df],
            "test_acc": float((test_logits.argmax(1) == test_labels).double().mean()),
            "mia": entropy_mia(softmax_entropy(logits["retain"]), softmax_entropy(test_logits),
                               softmax_entropy(logits["forget"])),
            "loss_auc": auc(-per_sample_loss(logits["forget"], labels["forget"]),
                            -per_sample_loss(logits[unseen], labels[unseen])),
            "zrf": zrf_from_logits(logits[df], self.incompetent_logits),
            "forgotten": self.scenario.description,
            "n_forget": len(labels["forget"]),
            "n_retain": len(labels["retain"]),
        }  # fmt: skip


def _target_figures(target: dict | None) -> dict:
    """What a verified request's target said: met, its basis, the per-example share."""
    if not target:
        return {}
    keys = ("met", "basis", "member_share", "overshoot", "expected", "band", "raw_expected",
            "strength", "look_accuracy", "look_expected", "look_window", "in_band", "close",
            "undetermined", "window", "margin", "references_agree")
    out = {f"target_{k}": target[k] for k in keys if k in target}
    relearn = target.get("relearn")
    if relearn:
        out["relearn_came_back"] = relearn["came_back"]
        out["relearned_acc"] = relearn["relearned_accuracy"]
    return out
