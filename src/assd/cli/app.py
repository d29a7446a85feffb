"""The ``assd`` command group and its error handling.

The commands are listed in :mod:`assd.cli.commands` (one explicit list); this
module builds the group from that list. Command modules never import this one.
"""

from __future__ import annotations

import logging
import sys

import click

from .._version import __version__
from .commands import COMMANDS, EXPERIMENTS

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="assd")
@click.option("--debug", is_flag=True, help="Show full tracebacks and debug logs.")
@click.option("-v", "--verbose", is_flag=True, help="Log progress.")
@click.option("--no-progress", is_flag=True,
              help="No progress bars (they go to stderr, and only when it is a terminal).")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: bool, no_progress: bool) -> None:
    """Make a trained PyTorch model forget part of its training data (ASSD/SSD)."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    ctx.obj["no_progress"] = no_progress
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@cli.group()
def experiment() -> None:
    """Run an experiment grid (method x seed x ...) and write results, tables and plots."""


for _command in COMMANDS:  # the one list of commands: cli/commands.py
    cli.add_command(_command)
for _command in EXPERIMENTS:
    experiment.add_command(_command)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning known errors into one-paragraph messages."""
    from ..importance.distributed import init_from_env

    init_from_env()  # under torchrun (WORLD_SIZE > 1): join the group; importance then splits
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="assd", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted.", err=True)
        return 130
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except ImportError as error:  # an optional dependency is missing: name its extra
        from ..extras import missing_extra_message

        message = missing_extra_message(error)
        if debug:
            raise
        if message is None:
            return _unexpected(error)
        click.echo(f"error: {message}", err=True)
        return 2
    except (ValueError, FileNotFoundError, FileExistsError, PermissionError, OSError) as error:
        if debug:
            raise
        click.echo(f"error: {error}", err=True)
        return 2
    except Exception as error:  # anything unforeseen: still one paragraph, no traceback
        if debug:
            raise
        return _unexpected(error)
    return 0


def _unexpected(error: Exception) -> int:
    click.echo(
        f"error: unexpected {type(error).__name__}: {error}. This input is not handled "
        "yet; run again with --debug for the traceback and report it.",
        err=True,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
