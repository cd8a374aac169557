"""Running libraries for other CPUs under qemu-user: found when the emulation bundle is built
(`make arm-runtime`); an empty mapping otherwise."""

from __future__ import annotations


def available() -> dict:
    return {}
