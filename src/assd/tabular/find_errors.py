"""Which training rows of a table model look wrongly labelled: the ``assd find-errors`` path.

The model folder's recipe (``task.json`` and the training settings that
``assd train`` stores) trains K fresh models, each without one fold of the
training rows; cleanlab's confident learning then flags rows whose label
disagrees with the held-out predictions, and the group rule of
:mod:`assd.tabular.label_issues` decides which rows to write. The ids file is
what ``assd unlearn --forget`` reads.

With a group column, the folds hold whole values of that column out, and the
fold models do not see the column's own features (a value held out would
meet untrained weights); other columns that give the group away are still
used but the group's rows are never seen.

Example:
    >>> import numpy as np, pandas as pd
    >>> from assd.tabular import TrainConfig, train_table
    >>> rng = np.random.default_rng(0)
    >>> frame = pd.DataFrame({"x": rng.random(400), "shop": rng.choice(list("abcdefgh"), 400)})
    >>> frame["label"] = np.where(frame.x > 0.5, "high", "low")
    >>> frame.loc[frame.shop == "c", "label"] = "high"   # shop c entered everything as high
    >>> model = train_table(frame, target="label", split="none", config=TrainConfig(epochs=20,
    ...                     batch_size=32))
    >>> found = find_label_errors(model, frame, group_column="shop")
    >>> found.groups, len(found.ids) == int((frame.shop == "c").sum())
    (['c'], True)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from ..reports import markdown_table
from .label_issues import Discovery, discover
from .model import TabularModel, train_mlp
from .task import ids_digest

__all__ = ["FoundErrors", "find_label_errors"]

log = logging.getLogger("assd")


@dataclass
class FoundErrors:
    """Suspected label errors of a table model's training rows.

    Attributes:
        ids: ids of the rows to forget (after the group rule), in table order.
        scores: one row per training row (pandas): id, given label, cleanlab's
            label quality (low = suspect), flagged, fold, group, written.
        groups: the groups judged wrong as a whole (empty without a group column).
        discovery: the raw search (:class:`assd.tabular.label_issues.Discovery`).
        settings: folds, seed, group column, rows and classes.
    """

    ids: list[str]
    scores: object
    groups: list[str]
    discovery: Discovery
    settings: dict

    def summary(self, top: int = 10) -> dict:
        """JSON-ready: counts, the group rule's verdict and the groups with most flags."""
        d = self.discovery
        out = {**self.settings, "n_flagged": int(d.flagged.sum()), "n_written": len(self.ids),
               "guilty_groups": self.groups, "seconds": round(d.seconds, 3)}  # fmt: skip
        if d.verdict is not None:
            out["flag_rate"] = d.verdict.rate
            out["top_groups"] = d.verdict.summary(top)
        return out

    def markdown(self, top: int = 10) -> str:
        """A short report: what was searched, what was found, where the flags fall."""
        s = self.summary(top)
        lines = [
            "# Suspected label errors", "",
            f"- searched {s['n_rows']} training rows with {s['folds']} out-of-fold models "
            f"(seed {s['seed']}, {s['seconds']:.1f} s)"
            + (f", folds holding whole values of `{s['group_column']}` out" if s["group_column"]
               else ""),
            f"- cleanlab flagged {s['n_flagged']} rows "
            f"({100 * s['n_flagged'] / s['n_rows']:.2f} %)",
            f"- written: {s['n_written']} row ids ({_written_why(s)})",
        ]  # fmt: skip
        if "top_groups" in s:
            lines += ["", f"## Values of `{s['group_column']}` holding most flags", ""]
            table = [[g["group"], g["rows"], g["flags"], f"{g['share']:.3f}",
                      f"{g['p_adjusted']:.2g}", "yes" if g["guilty"] else ""]
                     for g in s["top_groups"]]  # fmt: skip
            lines.append(markdown_table(
                ["group", "rows", "flags", "share flagged", "adjusted p", "judged wrong"], table))
            lines += ["", f"Chance level: {s['flag_rate']:.3f} of rows flagged. A group is judged "
                      "wrong when its flag count is far above chance: binomial tail p-value "
                      "(Benjamini-Hochberg adjusted) ≤ 0.05, and more than half of its rows "
                      "are flagged."]
        lines += ["", "Forget them with `assd unlearn --forget <ids file>` (add `--method "
                  "assd-auto --option target=mislabelled` to search the strength until the "
                  "wrong labels are no longer predicted); `scores` holds cleanlab's label "
                  "quality per row (low = suspect)."]  # fmt: skip
        return "\n".join(lines) + "\n"


def _written_why(s: dict) -> str:
    if not s["group_column"]:
        return "every flagged row"
    if s["guilty_groups"]:
        groups = s["guilty_groups"]
        shown = ", ".join(groups[:10]) + (" ..." if len(groups) > 10 else "")
        what = "every row" if s["whole_groups"] else "the flagged rows"
        return f"{what} of the {len(s['guilty_groups'])} group(s) judged wrong: {shown}"
    return "no group holds far more flags than chance, so every flagged row"


def find_label_errors(tabular: TabularModel, frame, *, group_column: str | None = None,
                      folds: int = 5, seed: int | None = None, whole_groups: bool = True,
                      progress: bool = False) -> FoundErrors:  # fmt: skip
    """Find training rows of ``frame`` whose label looks wrong to models that never saw them.

    Args:
        tabular: a model folder made by ``assd train`` (``TabularModel.load``):
            its task and training settings are the recipe the fold models follow.
        frame: the training table (the one the model was trained on).
        group_column: a column whose values may be wrong together (e.g. a
            destination, a batch of entries): folds hold its values out whole,
            and the group rule decides which rows to write.
        folds: number of out-of-fold models K.
        seed: seeds the folds (default: the model's training seed).
        whole_groups: write every row of a group judged wrong (else only its
            flagged rows).
        progress: show a progress bar per fold model.

    Returns:
        A :class:`FoundErrors`.
    """
    import pandas as pd

    config = _recipe(tabular)
    seed = config.seed if seed is None else seed
    rows = tabular.task.encode(frame)
    in_train = ~rows.test & (rows.y >= 0).numpy()
    train = rows.subset(in_train)
    if tabular.extra.get("data", {}).get("train_ids_sha256") not in (None, ids_digest(train.ids)):
        log.warning("the training rows of this data differ from those the model was trained on")
    x, groups = train.x, None
    if group_column is not None:
        groups = _group_keys(frame, group_column)[in_train]
        x = x[:, _features_without(tabular, group_column)]
    n_classes = len(tabular.task.class_names)
    found = discover(
        x, train.y, n_classes=n_classes, groups=groups, folds=folds, seed=seed,
        whole_groups=whole_groups,
        train=lambda a, b: train_mlp(a, b, n_classes=n_classes, config=config,
                                     progress=progress),
    )  # fmt: skip
    names = np.asarray(tabular.task.class_names)
    scores = pd.DataFrame({"id": train.ids, "label": names[train.y.numpy()],
                           "label_quality": found.quality, "flagged": found.flagged,
                           "fold": found.fold, "written": found.written})  # fmt: skip
    if groups is not None:
        scores.insert(2, group_column, groups)
    settings = {"n_rows": len(train), "folds": folds, "seed": seed, "group_column": group_column,
                "whole_groups": whole_groups, "classes": list(names)}  # fmt: skip
    guilty = [] if found.verdict is None else [str(g) for g in found.verdict.groups]
    return FoundErrors(train.ids[found.written].tolist(), scores, guilty, found, settings)


def _recipe(tabular: TabularModel):
    if "training" not in tabular.extra:
        raise ValueError(
            "this model folder has no training recipe (model.json lacks the training settings "
            "that `assd train` stores), so it cannot be retrained on folds of the data. Train "
            "it with `assd train`, or compute out-of-fold probabilities with your own training "
            "code and call cleanlab.filter.find_label_issues on them."
        )
    return tabular.config()


def _group_keys(frame, column: str) -> np.ndarray:
    if column not in frame.columns:
        raise ValueError(f"no group column {column!r} in the data; columns: "
                         f"{list(frame.columns)[:20]}.")  # fmt: skip
    values = frame[column]
    return values.astype(object).where(values.notna(), "<missing>").astype(str).to_numpy()


def _features_without(tabular: TabularModel, column: str) -> torch.Tensor:
    names = tabular.task.preprocessor.feature_names
    keep = [i for i, n in enumerate(names) if n != column and not n.startswith(f"{column}=")]
    if not keep:
        raise ValueError(f"{column!r} is the model's only input; the fold models would have "
                         "nothing else to judge the labels by.")  # fmt: skip
    return torch.tensor(keep, dtype=torch.long)
