"""The `edgepart` command line: thin commands that load, call a stage, and write or print.

Commands are imported when used, so `edgepart verify` runs where only the runtime pieces are
installed (a device, a GPU box) and `--help` does not load the solvers or onnxruntime.
"""

from __future__ import annotations

import importlib
import signal
import sys
import traceback
import warnings

import click

from edgepart import __version__
from edgepart.cli.output import OutputOptions
from edgepart.errors import EdgepartError, ExitCode

COMMANDS = {
    "inspect": "edgepart.cli.inspect_cmd:inspect_command",
    "profile": "edgepart.cli.profile_cmd:profile_command",
    "sensitivity": "edgepart.cli.sensitivity_cmd:sensitivity_command",
    "plan": "edgepart.cli.plan_cmd:plan_command",
    "sweep": "edgepart.cli.sweep_cmd:sweep_command",
    "compile": "edgepart.cli.compile_cmd:compile_command",
    "verify": "edgepart.cli.compile_cmd:verify_command",
    "run": "edgepart.cli.run_cmd:run_command",
    "batch": "edgepart.cli.batch_cmd:batch_command",
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *super().list_commands(ctx)})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS:
            module, attribute = COMMANDS[name].split(":")
            return getattr(importlib.import_module(module), attribute)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON on stdout.")
@click.option("-v", "--verbose", count=True, help="More log output on stderr; tracebacks on errors.")
@click.option("-q", "--quiet", is_flag=True, help="No progress or log output on stderr.")
@click.version_option(__version__, prog_name="edgepart")
@click.pass_context
def cli(ctx: click.Context, as_json: bool, verbose: int, quiet: bool) -> None:
    """Split a neural network across device, edge and cloud, and build what each tier runs.

    Exit codes: 0 success; 1 a budget or check not met; 2 bad usage or input;
    3 a tool or backend failed; 130 interrupted.
    """
    ctx.obj = OutputOptions(json=as_json, verbose=verbose, quiet=quiet)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def one_line(message: str) -> str:
    """An error is one line, whatever text from a file it quotes: line breaks are shown as \\n."""
    return message.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn every failure into one stderr line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGTERM, _interrupt)  # clean up (temporary build folders) as on Ctrl-C
    verbose = any(a == "--verbose" or (a.startswith("-v") and set(a[1:]) == {"v"}) for a in args)
    if not verbose:  # numpy's and onnxruntime's overflow and NaN warnings are noise beside edgepart's messages
        warnings.simplefilter("ignore", RuntimeWarning)
    try:
        code = cli.main(args=args, prog_name="edgepart", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("edgepart: interrupted", err=True)
        code = ExitCode.INTERRUPTED
    except click.exceptions.NoArgsIsHelpError as exc:  # `edgepart` alone: what it can do, as --help says it
        click.echo(exc.ctx.get_help())
        code = 0
    except click.ClickException as exc:  # usage: one line as for every bad input (--help shows the usage)
        click.echo(one_line(f"edgepart: error: {exc.format_message()}"
                            + (f" (see edgepart {exc.ctx.info_name} --help)" if getattr(exc, "ctx", None) else "")),
                   err=True)
        code = ExitCode.BAD_INPUT
    except EdgepartError as exc:
        if verbose:
            traceback.print_exc()
        click.echo(one_line(f"edgepart: error: {exc}"), err=True)
        code = exc.exit_code
    except Exception as exc:  # a bug or an unexpected backend failure: still one line by default
        if verbose:
            traceback.print_exc()
        click.echo(one_line(f"edgepart: internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)"),
                   err=True)
        code = ExitCode.TOOL_FAILED
    sys.exit(int(code or 0))
