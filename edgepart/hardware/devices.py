"""Device profiles: what a piece of hardware can do, for predicting layer costs where it is absent.

A profile is a versioned JSON file (`edgepart.device`) with peak compute per precision, memory
bandwidth and capacity, per-op-class efficiency (the fraction of peak a class of layers reaches),
a fixed overhead per layer, idle and active power, and the sources its numbers come from.
Shipped profiles are package data (edgepart/profiles/devices/); a path to a file works wherever a name does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from edgepart import schema
from edgepart.errors import BadInputError

SCHEMA_VERSION = 1
OP_CLASSES = ("conv", "depthwise", "matmul", "elementwise", "pool", "normalization", "data_movement", "other")


@dataclass(frozen=True)
class DeviceProfile:
    """Units: operations per second, bytes per second, bytes, seconds, watts."""

    name: str
    description: str
    peak_ops: dict[str, float]  # precision -> operations/s (a MAC counts as 2)
    memory_bandwidth: float
    memory_capacity: float
    efficiency: dict[str, float]  # op class -> fraction of peak compute reached
    layer_overhead_s: float
    idle_power_w: float
    active_power_w: float
    kind: str = "cpu"  # cpu | gpu | accelerator
    energy_per_mac_j: dict[str, float] = field(default_factory=dict)  # accelerators: per precision
    energy_per_byte_j: float = 0.0
    sources: tuple[str, ...] = ()
    provenance: str = "datasheet"
    cores: int = 1  # CPUs: the cores peak_ops counts

    def supports(self, precision: str) -> bool:
        return precision in self.peak_ops

    def peak(self, precision: str, threads: int | None = None) -> float:
        """Operations/s reachable in `precision`: a CPU running `threads` threads gets min(threads,
        cores)/cores of peak_ops (None: every core); GPUs and accelerators their whole peak."""
        if threads is None or self.kind != "cpu":
            return self.peak_ops[precision]
        return self.peak_ops[precision] * min(threads, self.cores) / self.cores


def profiles_dir() -> Path:
    """Shipped profiles: $EDGEPART_PROFILES, else the package's own data (a wheel carries them)."""
    if os.environ.get("EDGEPART_PROFILES"):
        return Path(os.environ["EDGEPART_PROFILES"])
    # Wheels install unzipped, so the package's data is a real folder.
    return Path(str(resources.files("edgepart") / "profiles"))


def shipped_devices() -> list[str]:
    return sorted(p.stem for p in (profiles_dir() / "devices").glob("*.json"))


def load_device(name_or_path: str, where: str = "device") -> DeviceProfile:
    """A shipped profile by name, or a profile file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = profiles_dir() / "devices" / f"{name_or_path}.json"
        if not path.is_file():
            raise BadInputError(f"{where}: unknown device '{name_or_path}'; known: {', '.join(shipped_devices())}")
    doc = schema.load_json(path, "device", SCHEMA_VERSION)
    try:
        efficiency = {c: float(doc["efficiency"].get(c, doc["efficiency"].get("other", 0.5))) for c in OP_CLASSES}
        return DeviceProfile(
            name=doc["name"],
            description=doc.get("description", ""),
            peak_ops={k: float(v) for k, v in doc["peak_ops"].items()},
            memory_bandwidth=float(doc["memory_bandwidth"]),
            memory_capacity=float(doc["memory_capacity"]),
            efficiency=efficiency,
            layer_overhead_s=float(doc["layer_overhead_s"]),
            idle_power_w=float(doc["power"]["idle_w"]),
            active_power_w=float(doc["power"]["active_w"]),
            kind=doc.get("device_kind", "cpu"),
            energy_per_mac_j={k: float(v) for k, v in doc.get("energy_per_mac_j", {}).items()},
            energy_per_byte_j=float(doc.get("energy_per_byte_j", 0.0)),
            sources=tuple(doc.get("sources", ())),
            provenance=doc.get("provenance", "datasheet"),
            cores=_cores(doc.get("cores", 1), path),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadInputError(f"{path}: invalid device profile ({type(exc).__name__}: {exc})") from None


def _cores(value, path: Path) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadInputError(f"{path}: cores: expected a positive integer, got {value!r}")
    return value
