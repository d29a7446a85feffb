"""Advice in the words of the ``--model-factory`` command line, not of the Python API.

The library's messages say what to pass to a Python call (``batch_fn=``,
``output_fn=``, ``loss_fn=``, ``estimator='batch'``). A user of the command
line cannot pass those; :func:`in_factory_words` rewrites such a message into
what that user can change: the data factory's ``collate_fn``, the model
factory, or a command-line option.

Example:
    >>> print(rewrite("check the labels, or pass batch_fn=lambda batch: (inputs, targets)."))
    check the labels, or give your data factory a collate_fn that returns (inputs, targets) batches.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

__all__ = ["in_factory_words", "rewrite"]

_RULES = [
    (r"pass batch_fn=lambda batch: \(inputs, targets\)",
     "give your data factory a collate_fn that returns (inputs, targets) batches"),
    (r"pass batch_fn= \(what goes in\) and output_fn= \(which output is the logits\)",
     "give your data factory a collate_fn (what goes in) and make your model factory's "
     "model return the logits"),
    (r"\(batch_fn=, output_fn=, loss_fn= adapt others\)",
     "(a collate_fn in your data factory, or a model factory whose model returns the "
     "logits, adapts others)"),
    (r"or pass batch_fn= that returns one float input tensor",
     "or give your data factory a collate_fn that returns one float input tensor"),
    (r"or pass loss_fn= for other targets",
     "the command line scores with cross-entropy on class indices (other targets need the "
     "Python API's loss_fn=)"),
    (r"or pass loss_fn\b", "or convert the targets to class indices in your data factory"),
    (r"use estimator='batch'", "use --estimator batch"),
    (r"batch_fn= to say where the target is",
     "a collate_fn in your data factory that returns (inputs, targets)"),
]  # fmt: skip


def rewrite(message: str) -> str:
    """``message`` with Python-API advice replaced by command-line advice."""
    for pattern, words in _RULES:
        message = re.sub(pattern, words, message)
    return message


@contextlib.contextmanager
def in_factory_words() -> Iterator[None]:
    """Re-raise a ValueError whose advice names Python arguments, in command-line words."""
    try:
        yield
    except ValueError as error:
        text = str(error)
        better = rewrite(text)
        if better == text:
            raise
        raise ValueError(better) from error
