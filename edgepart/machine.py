"""What machine this is: the facts every measurement records beside its numbers."""

from __future__ import annotations

import platform


def host_description() -> dict:
    return {"machine": platform.machine(), "processor": platform.processor() or _cpu_model(),
            "system": platform.system(), "python": platform.python_version()}


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"
