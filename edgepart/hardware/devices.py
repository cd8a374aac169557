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

from edgepart import checks, schema
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
    return _profile(doc, str(path))


KINDS = ("cpu", "gpu", "accelerator")
# Bounds on a profile's numbers: generous, but a typo of a few orders of magnitude (or 1e308) is refused.
MAX_OPS = 1e18  # operations per second
MAX_BYTES = 1e15  # bytes, and bytes per second
MAX_WATTS = 1e5
MAX_CORES = 4096


def _profile(doc: dict, where: str) -> DeviceProfile:
    """The device profile `doc`, every field checked (BadInputError names `where` and the field)."""
    peak_ops = {checks.text(k, f"{where}: peak_ops"): checks.number(v, f"{where}: peak_ops.{k}", above=0, most=MAX_OPS)
                for k, v in checks.table(doc.get("peak_ops"), f"{where}: peak_ops").items()}
    if not peak_ops:
        raise BadInputError(f"{where}: peak_ops: expected operations per second for at least one precision")
    given = checks.table(doc.get("efficiency"), f"{where}: efficiency")
    efficiency = {c: checks.number(given.get(c, given.get("other", 0.5)), f"{where}: efficiency.{c}", above=0, most=1)
                  for c in OP_CLASSES}
    power = checks.table(doc.get("power"), f"{where}: power")
    per_mac = checks.table(doc.get("energy_per_mac_j", {}), f"{where}: energy_per_mac_j")
    description, provenance = doc.get("description", ""), doc.get("provenance", "datasheet")
    if not isinstance(description, str) or not isinstance(provenance, str):
        raise BadInputError(f"{where}: description and provenance: expected text")
    return DeviceProfile(
        name=checks.text(doc.get("name"), f"{where}: name"),
        description=description,
        peak_ops=peak_ops,
        memory_bandwidth=checks.number(doc.get("memory_bandwidth"), f"{where}: memory_bandwidth", above=0,
                                       most=MAX_BYTES),
        memory_capacity=checks.number(doc.get("memory_capacity"), f"{where}: memory_capacity", above=0, most=MAX_BYTES),
        efficiency=efficiency,
        layer_overhead_s=checks.number(doc.get("layer_overhead_s"), f"{where}: layer_overhead_s", least=0, most=1),
        idle_power_w=checks.number(power.get("idle_w"), f"{where}: power.idle_w", least=0, most=MAX_WATTS),
        active_power_w=checks.number(power.get("active_w"), f"{where}: power.active_w", least=0, most=MAX_WATTS),
        kind=_kind(doc.get("device_kind", "cpu"), f"{where}: device_kind"),
        energy_per_mac_j={k: checks.number(v, f"{where}: energy_per_mac_j.{k}", least=0, most=1e-6)
                          for k, v in per_mac.items()},
        energy_per_byte_j=checks.number(doc.get("energy_per_byte_j", 0.0), f"{where}: energy_per_byte_j", least=0,
                                        most=1e-6),
        sources=tuple(checks.texts(doc.get("sources", []), f"{where}: sources", empty=True)),
        provenance=provenance,
        cores=checks.whole(doc.get("cores", 1), f"{where}: cores", 1, MAX_CORES),
    )


def _kind(value: object, where: str) -> str:
    if value not in KINDS:
        raise BadInputError(f"{where}: expected one of {', '.join(KINDS)}, got {value!r}")
    return str(value)
