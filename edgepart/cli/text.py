"""Readable numbers and aligned tables for the human output of commands."""

from __future__ import annotations

from collections.abc import Sequence


def count(value: float) -> str:
    """1234567 -> '1.23 M'."""
    for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g} {suffix}"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def size(nbytes: float) -> str:
    """Bytes in binary units: 1536 -> '1.5 KiB'."""
    for limit, suffix in ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if abs(nbytes) >= limit:
            return f"{nbytes / limit:.1f} {suffix}"
    return f"{int(nbytes)} B"


def shape(dims: Sequence[int]) -> str:
    return "x".join(str(d) for d in dims) if dims else "scalar"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[int] = ()) -> str:
    """Columns padded to their widest cell; column indices in `right` are right-aligned."""
    cells = [list(map(str, headers))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(parts).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
