"""Output options shared by every command, and the one way commands print their results.

Results go to stdout: JSON with --json (stable keys, deterministic bytes), else a readable table.
Progress and logs go to stderr, silenced by -q and widened by -v.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from edgepart import schema


@dataclass
class OutputOptions:
    json: bool = False
    verbose: int = 0
    quiet: bool = False

    @property
    def show_progress(self) -> bool:
        """Progress bars only on a terminal: in a log they are noise, and stderr stays one line on error."""
        return not self.quiet and not self.json and sys.stderr.isatty()


def output_options(command: Callable) -> Callable:
    """Add --json, -v/--verbose and -q/--quiet to a command (they also work before the command)."""

    @click.option("--json", "as_json", is_flag=True, default=None, help="Print the result as JSON on stdout.")
    @click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug); tracebacks.")
    @click.option("-q", "--quiet", is_flag=True, default=None, help="No progress or log output on stderr.")
    @click.pass_context
    @functools.wraps(command)
    def wrapper(ctx: click.Context, as_json: bool | None, verbose: int, quiet: bool | None, **kwargs: Any):
        group = ctx.find_object(OutputOptions) or OutputOptions()
        options = OutputOptions(
            json=bool(as_json or group.json),
            verbose=max(verbose, group.verbose),
            quiet=bool(quiet or group.quiet),
        )
        configure_logging(options)
        return ctx.invoke(command, out=options, **kwargs)

    return wrapper


def configure_logging(options: OutputOptions) -> None:
    level = logging.ERROR if options.quiet else (logging.DEBUG if options.verbose > 1 else
                                                  logging.INFO if options.verbose else logging.WARNING)
    logging.basicConfig(level=level, format="edgepart: %(levelname)s: %(message)s", force=True)


def emit(out: OutputOptions, doc: dict[str, Any], render: Callable[[dict[str, Any]], str]) -> None:
    """Print `doc` as JSON or through `render` as text, on stdout."""
    click.echo(schema.dumps(doc) if out.json else render(doc), nl=not out.json)
