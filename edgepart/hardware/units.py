"""Quantities with units in strings ("20 Mbit/s", "10 ms", "512 MiB"), parsed to SI base units.

Results are floats in bits per second, seconds, bytes, watts, joules. A bare number is refused:
the unit is part of the value, so a typo cannot silently mean something else.
"""

from __future__ import annotations

import math
import re

from edgepart.errors import BadInputError
from edgepart.wording import with_article

_BANDWIDTH = {
    "bit/s": 1.0, "kbit/s": 1e3, "mbit/s": 1e6, "gbit/s": 1e9,
    "bps": 1.0, "kbps": 1e3, "mbps": 1e6, "gbps": 1e9,
    "b/s": 8.0, "kb/s": 8e3, "mb/s": 8e6, "gb/s": 8e9,  # bytes per second, SI prefixes
}
_TIME = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0}
_SIZE = {
    "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}
_POWER = {"mw": 1e-3, "w": 1.0, "kw": 1e3}
_ENERGY = {"uj": 1e-6, "µj": 1e-6, "mj": 1e-3, "j": 1.0, "kj": 1e3}
_KINDS = {"bandwidth": _BANDWIDTH, "time": _TIME, "size": _SIZE, "power": _POWER, "energy": _ENERGY}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-zA-Zµ/]+)\s*$")

EXAMPLES = {"bandwidth": "20 Mbit/s", "time": "10 ms", "size": "512 MiB", "power": "5 W", "energy": "2 mJ"}


def parse(value: object, kind: str, where: str) -> float:
    """Parse `value` as a quantity of `kind`; `where` names the key in errors (e.g. 'links.wan.bandwidth')."""
    units = _KINDS[kind]
    if isinstance(value, bool) or not isinstance(value, str):
        raise BadInputError(f"{where}: expected {with_article(kind)} with a unit, e.g. \"{EXAMPLES[kind]}\", "
                            f"got {value!r}")
    match = _PATTERN.match(value)
    if not match:
        raise BadInputError(f"{where}: cannot read {value!r} as {with_article(kind)}; e.g. \"{EXAMPLES[kind]}\"")
    number, unit = float(match.group(1)), match.group(2)
    factor = units.get(unit.lower())
    if factor is None:
        raise BadInputError(f"{where}: unknown {kind} unit '{unit}' in {value!r}; use one of {', '.join(units)}")
    result = number * factor
    if not math.isfinite(result):
        raise BadInputError(f"{where}: {value!r} is too large to be {with_article(kind)}")
    if kind == "bandwidth" and result <= 0:
        raise BadInputError(f"{where}: {value!r}: a link needs a bandwidth above zero")
    return result
