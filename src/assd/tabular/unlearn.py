"""Unlearn named rows of a table model: the ``assd unlearn`` path, callable from Python.

Example:
    >>> import numpy as np, pandas as pd
    >>> from assd.tabular import TrainConfig, train_table
    >>> rng = np.random.default_rng(0)
    >>> frame = pd.DataFrame({"x": rng.random(300), "c": rng.choice(["a", "b"], 300)})
    >>> frame["label"] = np.where(frame.x > 0.5, "high", "low")
    >>> trained = train_table(frame, target="label", config=TrainConfig(epochs=2))
    >>> forget = [str(i) for i in trained_ids(trained, frame)[:10]]
    >>> new, report = unlearn_rows(trained, frame, forget, method="assd")
    >>> report["n_forget"], report["method"]["name"], sorted(report["accuracy"])
    (10, 'assd', ['forget', 'retain', 'test'])
"""

from __future__ import annotations

import copy
import logging
import os
import time

import numpy as np

from .. import methods as registry
from ..methods.ssd import SSD
from ..store.checkpoints import check_finite
from ..store.fingerprint import fingerprint
from ..verify.guard import DEFAULT_MAX_DROP
from .dampen import _batches, dampen_rows, evaluation_batches
from .guarded import DEFAULT_REASON, check_reason, watched_rows
from .model import TabularModel
from .options import DEFAULT_OPTIONS, ERRORS_TARGET, REFERENCE_OPTIONS, table_defaults
from .pipeline import data_changes, train_set_digest, training_rows
from .report import SET_ASIDE
from .scoring import before_after
from .task import Rows, ids_digest

__all__ = [
    "DEFAULT_OPTIONS",
    "ERRORS_TARGET",
    "REFERENCE_OPTIONS",
    "dampen_rows",
    "evaluation_batches",
    "table_defaults",
    "trained_ids",
    "unlearn_rows",
]

log = logging.getLogger("assd")

def unlearn_rows(
    tabular: TabularModel,
    frame,
    forget_ids,
    *,
    method: str = "assd",
    options: dict | None = None,
    eval_frames: dict | None = None,
    cache_folder: str | os.PathLike | None = None,
    progress: bool = False,
    guard: float | None = DEFAULT_MAX_DROP,
    reason: str = DEFAULT_REASON,
    exclude=None,
    encoded: Rows | None = None,
) -> tuple[TabularModel, dict]:
    """Forget the training rows named by ``forget_ids``; the input model is not changed.

    Args:
        tabular: the trained model and its task (``TabularModel.load(folder)``).
        frame: the training table (the same file the model was trained on).
        forget_ids: ids of the rows to forget (see :func:`assd.data.row_ids`).
        method: a registered method name (``assd.available_methods()``).
        options: method options. ASSD defaults to :data:`DEFAULT_OPTIONS`
            (sample estimator, I_D on the rows kept); SSD, LFSSD and ALFSSD to
            the sample estimator with I_D on all rows; ``retrain``/``finetune``
            to the model's training settings (fine-tune: 1 epoch).
        eval_frames: more labelled tables to measure before and after: ``{name: frame}``.
        cache_folder: where the training-data importance is cached (None: no cache).
        progress: show progress bars.
        guard: SSD family: the retain guard's limit (0.01 = one accuracy point on
            the retained and held-out rows); a request that would break it backs
            off to the strongest dampening that respects it. None: no guard, for
            every method (``assd-auto`` included). An option ``guard`` wins.
        reason: ``"errors"`` (the forget rows are wrongly labelled: rows likely to carry
            the same error, held-out ones included, are not counted as damage by the
            guard; see :mod:`assd.tabular.guarded`) or ``"privacy"`` (the rows are
            right, only to be removed: the guard watches every retained and held-out row).
        exclude: ids of training rows to leave out of every set (rows that earlier
            requests forgot: :func:`assd.tabular.stream.unlearn_request` passes them).
        encoded: ``frame`` as ``tabular.task.encode(frame)`` made it, when the caller
            has it already (the request stream does): not encoded twice.

    Returns:
        ``(new TabularModel, report)``: the report is JSON-ready (method and
        options, alpha, percentile, per-layer counts, seconds, importance
        cache use, and accuracy before/after on every evaluation set; under
        ``metrics`` the balanced accuracy, macro-F1, recall per class and the
        majority-class baseline of the training rows, before and after).
    """
    start = time.perf_counter()
    rows = tabular.task.encode(frame) if encoded is None else encoded
    train = training_rows(rows)
    if exclude is not None and len(exclude):
        train = train.subset(~_member(train.ids, np.asarray(list(exclude), dtype=object)))
    digest = _check_same_data(tabular, rows, train)
    is_forget = _forget_mask(train, rows, forget_ids)
    forget, retain = train.subset(is_forget), train.subset(~is_forget)
    timings = {"encode": time.perf_counter() - start}
    check_reason(reason)
    options = table_defaults(method, options, tabular.config(), reason=reason)
    if issubclass(type(registry.get_method(method)), SSD):
        options = {"guard": guard, **options}  # None: no guard for assd-auto either
    held_out = rows.subset(rows.test & (rows.y >= 0).numpy())
    watch = _watched(method, options, forget, retain, held_out, forget_ids, reason, tabular)
    result, cache_info = _run(
        tabular, method, options, train, forget, retain, cache_folder, held_out,
        progress=progress, digest=digest, watch=watch,
    )
    timings["unlearn"] = time.perf_counter() - start - timings["encode"]
    check_finite(result.model, what=f"the model unlearned with {method!r}")
    tick = time.perf_counter()
    sets = _evaluation_sets(tabular, held_out, retain, forget, eval_frames)
    sets.update(_set_aside(watch, retain, held_out))
    names = tabular.task.class_names
    majority = int(train.y.bincount(minlength=len(names)).argmax())  # the baseline's answer
    accuracy, metrics = before_after(tabular.model, result.model, sets, names, majority)
    timings["evaluate"] = time.perf_counter() - tick
    new = TabularModel(result.model, tabular.task, tabular.architecture, _extra(tabular, forget))
    new.extra["unlearned"][-1].update(method=method, options=_jsonable(options))
    report = {
        "method": {"name": method, "options": _jsonable(options)},
        "n_forget": len(forget),
        "n_train": len(train),
        "result": result.summary(),
        "importance_cache": cache_info,
        "guard": None if watch is None else {"limit": options.get("guard"), **watch[2]},
        "accuracy": accuracy,
        "metrics": metrics,
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "seconds": round(time.perf_counter() - start, 3),
    }
    return new, report


def _watched(method, options, forget, retain, held_out, forget_ids, reason, tabular):
    """The rows the guard / outcome of an SSD-family request watch (None: not verified)."""
    kind = type(registry.get_method(method))
    if not issubclass(kind, SSD) or (options.get("guard") is None and not kind.needs_evaluation):
        return None
    declared = _member(held_out.ids, np.asarray([str(i) for i in forget_ids], dtype=object))
    prep = tabular.task.preprocessor
    return watched_rows(forget, retain, held_out, reason=reason, declared=declared,
                        names=prep.feature_names, numeric=prep.numeric)  # fmt: skip


def _run(tabular: TabularModel, method: str, options: dict, train, forget, retain, folder,
         held_out, *, progress: bool = False, digest: str | None = None,
         watch=None):  # fmt: skip
    """Run the method; SSD-family methods take the training importance from the cache.
    ``watch``: the retained and held-out rows the guard watches (:func:`_watched`)."""
    config = tabular.config()
    algorithm = registry.get_method(method, **options)
    if getattr(algorithm, "recipe", False) is None and getattr(algorithm, "references", 1) is None:
        from ..verify.references import ReferenceCache
        from .references import table_recipe  # assd-auto: judged against reference models

        algorithm.recipe = table_recipe(config, n_classes=len(tabular.task.class_names),
                                        n_features=train.x.shape[1])  # fmt: skip
        if folder is not None and "reference_cache" not in options:  # beside the importance
            algorithm.reference_cache = ReferenceCache.at(folder)
    if isinstance(algorithm, SSD):
        evaluate = None
        if watch is not None:
            evaluate = evaluation_batches(forget, watch[0], watch[1], config)
        return dampen_rows(algorithm, tabular.model, train, forget, retain, config,
                           folder=folder, progress=progress, evaluate=evaluate,
                           digest=digest)  # fmt: skip
    loader = config.loader(retain.x, retain.y)
    result = algorithm.unlearn(tabular.model, forget=_batches(forget, config), retain=loader)
    return result, None


def trained_ids(tabular: TabularModel, frame) -> np.ndarray:
    """Ids of the rows of ``frame`` that ``tabular`` was trained on."""
    return training_rows(tabular.task.encode(frame)).ids


def _forget_mask(train: Rows, rows: Rows, forget_ids) -> np.ndarray:
    wanted = np.asarray([str(i) for i in forget_ids], dtype=object)
    unknown = wanted[~_member(wanted, rows.ids)]
    if unknown.size:
        raise ValueError(
            f"{unknown.size} forget id(s) are not rows of the data, e.g. {unknown[:5].tolist()}; "
            "use the id column the model was trained with (or row numbers if it had none)."
        )
    mask = _member(train.ids, wanted)
    skipped = wanted.size - int(mask.sum())
    if skipped:
        log.warning("%d forget id(s) are held-out or unlabelled rows: not forgotten (with "
                    "reason 'errors' the retain guard does not count them as damage)", skipped)
    if not mask.any():
        raise ValueError("none of the forget ids is a training row; there is nothing to forget.")
    if mask.all():
        raise ValueError("the forget ids cover every training row; retrain from scratch instead.")
    return mask


def _member(values: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """``values[i] in candidates`` by hashing (``np.isin`` compares strings pairwise)."""
    import pandas as pd

    return np.asarray(pd.Index(values, dtype=object).isin(candidates), dtype=bool)


def _check_same_data(tabular: TabularModel, rows: Rows, train: Rows) -> str | None:
    """Warn if the training rows of ``rows`` are not the model's; their order-free digest
    if it matches the one stored at training time, else None."""
    stored = tabular.extra.get("data", {}).get("train_set_sha256")
    if stored is not None:
        digest = train_set_digest(train)
        if digest == stored:
            return digest
    change = data_changes(tabular, rows)
    if change:
        log.warning(
            "%s; pass the same data file the model was trained on, or the unlearned model "
            "and its figures will not be what you expect",
            change,
        )
    return None


def _evaluation_sets(tabular, held_out: Rows, retain: Rows, forget: Rows, eval_frames) -> dict:
    sets = {"forget": forget, "retain": retain}
    if len(held_out):
        sets["test"] = held_out
    for name, other in (eval_frames or {}).items():
        if name in sets:
            raise ValueError(
                f"an evaluation table is named {name!r}, like the report's own {name!r} rows; "
                "give it another name (the CLI names them by their path)."
            )
        sets[name] = tabular.task.encode(other, require_labels=False)
    return sets


def _set_aside(watch, retain: Rows, held_out: Rows) -> dict:
    """The rows the retain guard did not count (``reason="errors"``: likely carrying the
    forget rows' error), as sets of their own: the verdict judges the retained and held-out
    rows it watched, the report's ``retain`` and ``test`` all of them; these rows are the
    difference."""
    if watch is None:
        return {}
    parts = {}
    for name, rows, watched in (("retain", retain, watch[0]), ("test", held_out, watch[1])):
        if rows is None or not len(rows):
            continue
        seen = np.zeros(0, dtype=object) if watched is None else watched.ids
        aside = ~_member(rows.ids, np.asarray(seen, dtype=object))
        if aside.any():  # (none where the guard watched them all)
            parts[f"{name} {SET_ASIDE}"] = rows.subset(aside)
    return parts


def _extra(tabular: TabularModel, forget: Rows) -> dict:
    extra = copy.deepcopy(tabular.extra)
    history = extra.setdefault("unlearned", [])
    history.append(
        {
            "n_forget": len(forget),
            "forget_ids_sha256": ids_digest(sorted(forget.ids)),
            "from_weights": fingerprint(tabular.model),
        }
    )
    return extra


def _jsonable(options: dict) -> dict:
    return {k: v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)
            for k, v in options.items()}  # fmt: skip
