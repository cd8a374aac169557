"""The `edgepart` command line: thin commands that load, call a stage, and write or print."""

from __future__ import annotations

import sys
import traceback

import click

from edgepart import __version__
from edgepart.cli.compile_cmd import compile_command, verify_command
from edgepart.cli.inspect_cmd import inspect_command
from edgepart.cli.output import OutputOptions
from edgepart.cli.pending import pending_commands
from edgepart.cli.plan_cmd import plan_command
from edgepart.cli.profile_cmd import profile_command
from edgepart.cli.sweep_cmd import sweep_command
from edgepart.errors import EdgepartError, ExitCode

COMMANDS = [inspect_command, profile_command, plan_command, sweep_command, compile_command, verify_command]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


for _command in COMMANDS + pending_commands({c.name for c in COMMANDS}):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn every failure into one stderr line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    verbose = any(a == "--verbose" or (a.startswith("-v") and set(a[1:]) == {"v"}) for a in args)
    try:
        code = cli.main(args=args, prog_name="edgepart", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("edgepart: interrupted", err=True)
        code = ExitCode.INTERRUPTED
    except KeyboardInterrupt:
        click.echo("edgepart: interrupted", err=True)
        code = ExitCode.INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        code = ExitCode.BAD_INPUT
    except EdgepartError as exc:
        if verbose:
            traceback.print_exc()
        click.echo(f"edgepart: error: {exc}", err=True)
        code = exc.exit_code
    except Exception as exc:  # a bug or an unexpected backend failure: still one line by default
        if verbose:
            traceback.print_exc()
        click.echo(f"edgepart: internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)",
                   err=True)
        code = ExitCode.TOOL_FAILED
    sys.exit(int(code or 0))
