"""Names read from files (tiers, links) are data, and they become file and folder names in a build
and a run: each is checked where it is read, and a path made from one must stay in its folder."""

from __future__ import annotations

import re
from pathlib import Path

from edgepart.errors import BadInputError

SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}")
RULE = "letters, digits and _ . + -, starting with a letter, digit or _, at most 64 characters"


def checked(value: object, where: str) -> str:
    """`value` when it is a safe name; else BadInputError naming `where` (file and field)."""
    if not isinstance(value, str) or not SAFE.fullmatch(value):
        raise BadInputError(f"{where}: {value!r} is not a usable name ({RULE}; it names files)")
    return value


def inside(folder: str | Path, relative: str | Path, where: str) -> Path:
    """folder / relative, resolved (symbolic links followed), refused when it leaves `folder`."""
    try:
        root = Path(folder).resolve()
        path = (root / relative).resolve()
    except (RuntimeError, OSError):  # a symbolic-link loop
        raise BadInputError(f"{where}: '{relative}' cannot be resolved (a loop of symbolic links?)") from None
    if not path.is_relative_to(root):
        raise BadInputError(f"{where}: '{relative}' resolves to {path}, outside {Path(folder)}: it escapes the folder")
    return path
