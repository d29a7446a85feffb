"""Plots as PNG files (matplotlib, imported only here, headless)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from ..store.files import atomic_path

__all__ = ["box_plot"]


def box_plot(
    groups: Mapping[str, Sequence[float]],
    path: str | os.PathLike,
    *,
    title: str,
    ylabel: str,
    reference: float | None = None,
    reference_label: str = "reference",
) -> None:
    """Box plot with one box per group (points overlaid), written atomically to ``path``.

    Args:
        groups: label -> values (e.g. method -> test accuracy over seeds).
        path: PNG file to write.
        title, ylabel: text of the plot.
        reference: draw a dashed horizontal line here (e.g. the original model).
        reference_label: what that line is, for the legend.

    The legend names every mark: box (middle half of the values), orange line
    (median), green triangle (mean), whiskers, dots (one per run, e.g. seed).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(groups)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(labels) + 1.5), 3.6))
    ax.boxplot([list(groups[k]) for k in labels], tick_labels=labels, showmeans=True)
    for i, label in enumerate(labels, 1):
        values = list(groups[label])
        ax.scatter([i] * len(values), values, s=10, alpha=0.6, color="black", zorder=3)
    if reference is not None:
        ax.axhline(reference, linestyle="--", color="grey", linewidth=1)
    ax.legend(handles=_legend_handles(reference, reference_label), fontsize=7,
              loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)  # fmt: skip
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def _legend_handles(reference: float | None, reference_label: str) -> list:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor="none", edgecolor="black", label="middle half (box)"),
        Line2D([], [], color="tab:orange", label="median"),
        Line2D([], [], marker="^", color="tab:green", linestyle="none", label="mean"),
        Line2D([], [], color="black", label="whiskers: values within 1.5 box heights"),
        Line2D([], [], marker="o", color="black", alpha=0.6, linestyle="none", markersize=3,
               label="one run (seed)"),
    ]  # fmt: skip
    if reference is not None:
        handles.append(Line2D([], [], color="grey", linestyle="--", label=reference_label))
    return handles
