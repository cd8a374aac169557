"""Options that only mean something with another: given without it they are refused, not ignored."""

from __future__ import annotations

import click
from click.core import ParameterSource

from edgepart.errors import BadInputError


def given(name: str) -> bool:
    """Whether the user gave option `name` (the function parameter's name), not its default."""
    source = click.get_current_context().get_parameter_source(name)
    return source not in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


def needs(option: str, name: str, condition: bool, what: str) -> None:
    """Refuse `option` (parameter `name`) when given while `condition` does not hold; `what` says
    which other option or setting it is for."""
    if given(name) and not condition:
        raise BadInputError(f"{option} means something only {what}; drop it or add that")
