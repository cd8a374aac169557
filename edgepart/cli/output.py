"""Output options shared by every command, and the one way commands print their results.

Results go to stdout: JSON with --json (stable keys, deterministic bytes), else a readable table.
Progress and logs go to stderr, silenced by -q and widened by -v.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
import time
from collections.abc import Callable, Iterator
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

    @property
    def log_progress(self) -> bool:
        """Elsewhere (a pipeline, a CI log), a line now and then once a run proves long (LOG_AFTER_S)."""
        return not self.quiet and not self.show_progress


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


ETA_AFTER_FRACTION = 0.1  # of the steps done before the rate is trusted
ETA_AFTER_S = 2.0  # seconds of steps measured before the rate is trusted
LOG_AFTER_S = 30.0  # without a terminal: the first progress line, then one per this many seconds


@contextlib.contextmanager
def progress_bar(out: OutputOptions, length: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (on a terminal, without -q or --json); yields its `update(steps)`.
    Its ETA is shown only once it means something (eta_text), from the rate since the first step."""
    first: list[tuple[float, int]] = []  # (time, steps done) at the first step: start-up is over
    next_line = [time.monotonic() + LOG_AFTER_S]

    def update(steps: int) -> None:
        if not first:
            first.append((time.monotonic(), bar.pos + steps))
        bar.update(steps)
        if out.log_progress and time.monotonic() >= next_line[0]:
            next_line[0] = time.monotonic() + LOG_AFTER_S
            click.echo(progress_line(label, bar.pos, length, eta(None)), err=True)

    def eta(_item: object) -> str | None:
        if not first:
            return None
        since, done_then = first[0]
        return eta_text(time.monotonic() - since, bar.pos - done_then, length - done_then) or None

    bar = click.progressbar(length=length, label=label, file=sys.stderr,
                            hidden=not out.show_progress, show_eta=False, item_show_func=eta)
    with bar:
        yield update


def progress_line(label: str, done: int, total: int, eta: str | None) -> str:
    """One line of progress for a log: 'edgepart: profiling: 120/600 (20%), ETA 00:01:10'."""
    share = f" ({100 * done // total}%)" if total > 0 else ""
    return f"edgepart: {label}: {done}/{total}{share}" + (f", {eta}" if eta else "")


def eta_text(elapsed_s: float, done: int, total: int) -> str:
    """'ETA hh:mm:ss' for `total - done` more steps at the rate of the `done` steps of the last
    `elapsed_s` seconds, or '' while that rate means little: before a tenth of the steps and 2 s of
    them. (click's own ETA, first taken one second in, charged the start-up second, with no step
    done yet, to every step: 8.5 min for a 12 s profile.)"""
    if total <= 0 or not 0 < done < total or done < ETA_AFTER_FRACTION * total or elapsed_s < ETA_AFTER_S:
        return ""
    left = round(elapsed_s / done * (total - done))
    return f"ETA {left // 3600:02d}:{left // 60 % 60:02d}:{left % 60:02d}"


def emit(out: OutputOptions, doc: dict[str, Any], render: Callable[[dict[str, Any]], str]) -> None:
    """Print `doc` as JSON or through `render` as text, on stdout."""
    click.echo(schema.dumps(doc) if out.json else render(doc), nl=not out.json)
