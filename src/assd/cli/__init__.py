"""The ``assd`` command-line tool (``assd --help``)."""

from .app import cli, main

__all__ = ["cli", "main"]
