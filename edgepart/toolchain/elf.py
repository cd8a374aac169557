"""What machine an ELF shared library is for, read from its header (no external tool needed)."""

from __future__ import annotations

import platform
import struct
from pathlib import Path

MACHINES = {3: "x86", 40: "ARM", 62: "x86-64", 183: "AArch64", 243: "RISC-V"}
# This host's CPU, named as ELF headers name it: a library of this machine runs here natively.
HOST_MACHINE = {"x86_64": "x86-64", "aarch64": "AArch64", "arm64": "AArch64"}.get(platform.machine())


def machine(path: str | Path) -> str | None:
    """'x86-64', 'AArch64', 'ARM', ... or None when the file is not ELF."""
    header = Path(path).read_bytes()[:20]
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    endian = "<" if header[5] == 1 else ">"
    (code,) = struct.unpack(endian + "H", header[18:20])
    return MACHINES.get(code, f"machine {code}")
