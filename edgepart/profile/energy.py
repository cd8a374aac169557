"""Energy meters. Every figure says how it was obtained: measured (NVML's total-energy counter on an
NVIDIA GPU, RAPL package counters where /sys/class/powercap exposes them) or modelled from the
device profile. Counters are read around a window of at least a second of back-to-back runs,
because both update at only a few to tens of hertz."""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MIN_WINDOW_S = 1.0
POWERCAP = Path("/sys/class/powercap")


@dataclass(frozen=True)
class EnergyReading:
    joules_per_run: float
    method: str  # how it was measured, for the profile's provenance
    window_s: float
    runs: int


class NvmlMeter:
    """GPU board energy from NVML (nvmlDeviceGetTotalEnergyConsumption, millijoules since load)."""

    def __init__(self, index: int = 0) -> None:
        self.nvml = ctypes.CDLL("libnvidia-ml.so.1")
        if self.nvml.nvmlInit_v2() != 0:
            raise OSError("nvmlInit failed")
        self.handle = ctypes.c_void_p()
        if self.nvml.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(self.handle)) != 0:
            raise OSError(f"no NVIDIA GPU {index}")
        name = ctypes.create_string_buffer(96)
        self.nvml.nvmlDeviceGetName(self.handle, name, 96)
        self.description = f"NVML total energy counter of {name.value.decode()}"
        self.read_j()  # fails early on GPUs without the counter (pre-Volta)

    def read_j(self) -> float:
        millijoules = ctypes.c_ulonglong()
        if self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle, ctypes.byref(millijoules)) != 0:
            raise OSError("nvmlDeviceGetTotalEnergyConsumption is not supported")
        return millijoules.value / 1e3


class RaplMeter:
    """CPU package energy from RAPL (energy_uj of each top-level powercap zone, wrap-around handled)."""

    def __init__(self, root: Path = POWERCAP) -> None:
        self.zones = sorted(z for z in root.glob("intel-rapl:*") if z.name.count(":") == 1)
        if not self.zones:
            raise OSError(f"no RAPL zones under {root}")
        names = ", ".join((z / "name").read_text().strip() for z in self.zones)
        self.description = f"RAPL package energy ({names})"
        self._last = [self._raw(z) for z in self.zones]
        self._total = 0.0

    @staticmethod
    def _raw(zone: Path) -> int:
        return int((zone / "energy_uj").read_text())

    def read_j(self) -> float:
        for i, zone in enumerate(self.zones):
            value = self._raw(zone)
            delta = value - self._last[i]
            if delta < 0:  # the counter wrapped
                delta += int((zone / "max_energy_range_uj").read_text())
            self._total += delta / 1e6
            self._last[i] = value
        return self._total


def meter(device: str) -> NvmlMeter | RaplMeter | None:
    """The meter for a runtime device ('cuda' or 'cpu') on this host, or None (energy is modelled)."""
    try:
        return NvmlMeter() if device == "cuda" else RaplMeter()
    except (OSError, AttributeError):
        return None


def measure(run_once: Callable[[], None], energy_meter: NvmlMeter | RaplMeter,
            sync: Callable[[], None] = lambda: None, min_window_s: float = MIN_WINDOW_S) -> EnergyReading:
    """Joules per run over a window of back-to-back runs of at least `min_window_s`."""
    sync()
    start_j, start = energy_meter.read_j(), time.perf_counter()
    runs = 0
    while time.perf_counter() - start < min_window_s:
        run_once()
        runs += 1
    sync()
    window = time.perf_counter() - start
    joules = (energy_meter.read_j() - start_j) / runs
    return EnergyReading(joules, f"measured: {energy_meter.description}", window, runs)
