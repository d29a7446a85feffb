"""The ``assd`` command-line tool (``assd --help``)."""

from . import own_model as _own_model  # noqa: F401  (--model-factory on assd unlearn/evaluate)
from .app import cli, main

__all__ = ["cli", "main"]
