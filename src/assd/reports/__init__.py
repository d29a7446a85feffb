"""Reports: markdown tables and PNG plots (matplotlib is imported lazily)."""

from .markdown import fmt_mean_sd, markdown_table

__all__ = ["box_plot", "fmt_mean_sd", "markdown_table"]


def box_plot(*args, **kwargs):
    """See :func:`assd.reports.plots.box_plot` (imports matplotlib on first use)."""
    from .plots import box_plot as draw

    return draw(*args, **kwargs)
