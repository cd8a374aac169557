"""Values read from files, checked where they are read: each helper returns the value in its type or
raises BadInputError naming `where` (the file and field) and what was expected. Numbers are finite
and never booleans (JSON's true is not 1 second); text is one line, since it ends up in messages."""

from __future__ import annotations

import math
import stat
from pathlib import Path
from typing import Any

from edgepart.errors import BadInputError


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number(value: Any, where: str, least: float | None = None, above: float | None = None,
           most: float | None = None) -> float:
    """A finite number, >= `least`, > `above`, <= `most` (those given)."""
    bounds = [f">= {least:g}" if least is not None else "", f"> {above:g}" if above is not None else "",
              f"<= {most:g}" if most is not None else ""]
    if (not is_number(value) or (least is not None and value < least) or (above is not None and value <= above)
            or (most is not None and value > most)):
        wanted = " and ".join(b for b in bounds if b)
        raise BadInputError(f"{where}: expected a number{' ' + wanted if wanted else ''}, got {value!r}")
    return float(value)


def optional_number(value: Any, where: str, **bounds: float) -> float | None:
    return None if value is None else number(value, where, **bounds)


def whole(value: Any, where: str, least: int = 0, most: int | None = None) -> int:
    """A whole number from `least` to `most`."""
    if (not isinstance(value, int) or isinstance(value, bool) or value < least
            or (most is not None and value > most)):
        span = f"from {least} to {most}" if most is not None else f">= {least}"
        raise BadInputError(f"{where}: expected a whole number {span}, got {value!r}")
    return value


def text(value: Any, where: str, empty: bool = False) -> str:
    """One line of text, not empty unless `empty`."""
    if not isinstance(value, str) or (not value and not empty) or "\n" in value or "\r" in value:
        raise BadInputError(f"{where}: expected one line of text, got {value!r}")
    return value


def texts(value: Any, where: str, empty: bool = False) -> list[str]:
    """A list of one-line texts (not empty unless `empty`)."""
    if not isinstance(value, list) or (not value and not empty):
        raise BadInputError(f"{where}: expected a {'' if empty else 'non-empty '}list of names, got {value!r}")
    return [text(item, f"{where}[{i}]") for i, item in enumerate(value)]


def table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadInputError(f"{where}: expected a table (name -> value), got {type(value).__name__}")
    return value


def readable_file(path: str | Path, where: str = "") -> Path:
    """`path` when it is a regular file that can be opened (a folder, a FIFO or a device would hang
    or mislead a reader); else BadInputError naming it."""
    path = Path(path)
    prefix = f"{where} " if where else ""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise BadInputError(f"{prefix}{path}: no such file") from None
    except OSError as exc:
        raise BadInputError(f"{prefix}{path}: cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(mode):
        raise BadInputError(f"{prefix}{path}: not a regular file")
    return path


def read_bytes(path: str | Path, where: str = "") -> bytes:
    path = readable_file(path, where)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadInputError(f"{where + ' ' if where else ''}{path}: cannot be read ({exc.strerror})") from None


def host_port(address: str) -> tuple[str, int] | None:
    """HOST:PORT as (host, port), or None when it is not one (no host, or a port outside 1-65535)."""
    host, _, port = address.rpartition(":")
    return (host, int(port)) if host and port.isdigit() and 0 < int(port) < 65536 else None
