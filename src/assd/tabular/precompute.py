"""The default request's pass over the training rows, made by ``assd train``.

The first ``assd unlearn`` on a model pays one pass over every training row
for ``I_D``, the per-sample importance of the training data; later requests
read it from the cache beside the model (:mod:`assd.tabular.cache`). On the
README's flights table that pass was 2.4 s of the first request's 7.3 s
(docs/errors.md, "Speed"). ``assd train`` makes it once, right after
training, and writes it into the model folder under the key the default
request (``assd``, sample estimator) looks up: the first request then costs
what a repeated one does, and training carries the pass (its seconds are in
``model.json``: ``extra.importance_seconds``). ``assd train --no-importance``
leaves it to the first request.

Example:
    >>> import torch
    >>> from assd.tabular.model import TrainConfig, train_mlp
    >>> from assd.tabular.task import Rows
    >>> x, y = torch.randn(64, 3), torch.randint(0, 2, (64,))
    >>> config = TrainConfig(epochs=1, batch_size=16)
    >>> model = train_mlp(x, y, n_classes=2, config=config)
    >>> rows = Rows(x, y, torch.arange(64).numpy().astype(str), torch.zeros(64).bool().numpy())
    >>> files, seconds = request_importance(model, rows, config, digest="d")
    >>> [name.startswith("importance-") for name in files]
    [True]
"""

from __future__ import annotations

import time

from ..methods.registry import get_method
from .cache import cache_entry, cached_importance
from .dampen import _batches, _rows_key
from .model import TrainConfig
from .options import table_defaults
from .task import Rows

__all__ = ["request_importance"]


def request_importance(
    model, train: Rows, config: TrainConfig, *, digest: str | None, method: str = "assd",
    progress: bool = False,
) -> tuple[dict, float]:
    """The importance a default ``method`` request on ``model`` reads, computed now.

    Args:
        model: the trained model.
        train: the rows it was trained on.
        config: its training settings (the batches of the pass).
        digest: the order-free digest of ``train``
            (:func:`assd.tabular.pipeline.train_set_digest`), as the request keys it.

    Returns:
        ``({file name: writer(path)}, seconds)``: the cache entry for
        :meth:`assd.tabular.TabularModel.save`'s ``files``, and the pass's time.
    """
    tick = time.perf_counter()
    algorithm = get_method(method, **table_defaults(method, None, config))
    options = {k: v for k, v in algorithm.importance_options.items() if k != "progress"}
    memo: dict = {}
    cached_importance(model, _batches(train, config), options=options, folder=None, memo=memo,
                      data_key=lambda: _rows_key(train, options, digest),
                      progress=progress)  # fmt: skip
    ((key, imp),) = memo.items()
    name, writer = cache_entry(imp, key)
    return {name: writer}, time.perf_counter() - tick
