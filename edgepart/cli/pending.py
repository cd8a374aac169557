"""Commands whose capability has not landed yet: they exist so scripts see the full CLI, and say so."""

from __future__ import annotations

import click

from edgepart.errors import NotAvailableError

_PENDING = {
    "run": ("the tiers as processes over shaped links", 7),
}


def _pending_command(name: str, summary: str, issue: int) -> click.Command:
    @click.command(name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
                   help=f"{summary[0].upper()}{summary[1:]} (not available yet).", add_help_option=True)
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(args: tuple[str, ...]) -> None:
        raise NotAvailableError(f"'edgepart {name}' is not available in this version yet (issue #{issue})")

    return command


def pending_commands(available: set[str]) -> list[click.Command]:
    """Placeholders for the commands not in `available`."""
    return [_pending_command(n, s, i) for n, (s, i) in _PENDING.items() if n not in available]
