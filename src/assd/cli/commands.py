"""Every ``assd`` command, listed once: :mod:`assd.cli.app` builds the group from these lists.

A new command is a plain ``click.command`` in its own module, added here.
"""

from __future__ import annotations

import click

from ..methods.registry import available_methods
from .experiment_errors import errors
from .experiment_forget import forget
from .find_errors import find_errors
from .tables import data, evaluate, train, unlearn

__all__ = ["COMMANDS", "EXPERIMENTS"]


@click.command()
def methods() -> None:
    """List the registered unlearning methods."""
    for name in available_methods():
        click.echo(name)


# ``assd NAME`` for each of these, in this order in ``assd --help``
COMMANDS = (train, unlearn, evaluate, find_errors, data, methods)
# ``assd experiment NAME``
EXPERIMENTS = (errors, forget)
