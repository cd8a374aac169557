"""deploy.toml: ordered tiers, the links between adjacent tiers, budgets and pins.

Every key is checked: an unknown key, a wrong unit or an unknown name is an error that names it.
The file format is documented in docs/deploy.md.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgepart import checks
from edgepart.compress.codecs import CODECS, PRECISIONS
from edgepart.errors import BadInputError
from edgepart.hardware import backends as backend_kinds
from edgepart.hardware import units
from edgepart.hardware.devices import DeviceProfile, load_device
from edgepart.hardware.links import Link, link_presets, preset_link, radio_from_preset
from edgepart.names import checked as checked_name
from edgepart.toolchain import targets

MAX_THREADS = 1024


@dataclass(frozen=True)
class Tier:
    name: str
    device: DeviceProfile
    target: str | dict[str, Any]
    backends: tuple[str, ...] = ("tvm",)  # candidates; the plan chooses one (docs/deploy.md)
    precisions: tuple[str, ...] = ("fp32",)
    memory_budget: float | None = None  # bytes
    threads: int = 1


@dataclass(frozen=True)
class Budgets:
    """Limits a plan must meet; None means unconstrained. Units: seconds, joules, fraction."""

    latency_s: float | None = None
    device_energy_j: float | None = None
    accuracy_drop: float | None = None


@dataclass(frozen=True)
class Pins:
    input_stays_on_device: bool = False  # the raw input may not leave the first tier
    first_layers: int = 0  # the first k layers (topological order) stay on the first tier
    nodes: dict[str, str] = field(default_factory=dict)  # node name -> tier name


@dataclass(frozen=True)
class Deployment:
    tiers: tuple[Tier, ...]
    links: tuple[Link, ...]  # links[i] joins tiers[i] and tiers[i + 1]
    budgets: Budgets
    pins: Pins
    output_tier: int = 0  # where the model's outputs are consumed
    codecs: tuple[str, ...] = ("raw",)
    sha256: str = ""
    path: str = ""

    def tier_index(self, name: str, where: str) -> int:
        return _tier_index([t.name for t in self.tiers], name, where)


def _tier_index(names: list[str], name: str, where: str) -> int:
    if name not in names:
        raise BadInputError(f"{where}: unknown tier '{name}'; tiers: {', '.join(names)}")
    return names.index(name)


def load(path: str | Path) -> Deployment:
    path = Path(path)
    raw = checks.read_bytes(path)
    try:
        doc = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{path}: not valid TOML ({exc})") from None
    except RecursionError:
        raise BadInputError(f"{path}: nested too deeply to be a deployment file") from None
    deployment = parse(doc, str(path))
    return Deployment(**{**deployment.__dict__, "sha256": hashlib.sha256(raw).hexdigest(), "path": str(path)})


def parse(doc: dict[str, Any], source: str = "deploy.toml") -> Deployment:
    _keys(doc, {"deploy", "tier", "link", "budgets", "pins"}, source)
    tiers = tuple(_tier(t, f"{source}: tier[{i}]") for i, t in enumerate(_list(doc, "tier", source)))
    if not tiers:
        raise BadInputError(f"{source}: needs at least one [[tier]]")
    names = [t.name for t in tiers]
    if len(set(names)) != len(names):
        raise BadInputError(f"{source}: tier names must be unique, got {', '.join(names)}")
    links = _links(_list(doc, "link", source), names, source)
    head = doc.get("deploy", {})
    _keys(head, {"name", "output_tier", "codecs"}, f"{source}: [deploy]")
    output_tier = _tier_index(names, head.get("output_tier", names[0]), f"{source}: deploy.output_tier")
    codecs = tuple(checks.texts(head.get("codecs", ["raw"]), f"{source}: deploy.codecs"))
    for codec in codecs:
        if codec not in CODECS:
            raise BadInputError(f"{source}: deploy.codecs: unknown codec '{codec}'; known: {', '.join(CODECS)}")
    pins = _pins(doc.get("pins", {}), names, source)
    return Deployment(tiers, links, _budgets(doc.get("budgets", {}), source), pins, output_tier, codecs)


def _tier(doc: dict[str, Any], where: str) -> Tier:
    _keys(doc, {"name", "device", "target", "backend", "backends", "precisions", "memory", "threads"}, where)
    for key in ("name", "device", "target"):
        if key not in doc:
            raise BadInputError(f"{where}: missing key '{key}'")
        checks.text(doc[key], f"{where}.{key}")
    device = load_device(doc["device"], f"{where}.device")
    backends = _backends(doc, targets.resolve(doc["target"], f"{where}.target"), where)
    precisions = tuple(checks.texts(doc.get("precisions", ["fp32"]), f"{where}.precisions"))
    for precision in precisions:
        if precision not in PRECISIONS:
            raise BadInputError(f"{where}.precisions: unknown precision '{precision}'; known: {', '.join(PRECISIONS)}")
        if not device.supports(precision):
            raise BadInputError(f"{where}.precisions: device '{device.name}' has no {precision} support "
                                f"(it has {', '.join(device.peak_ops)})")
    memory = doc.get("memory")
    threads = checks.whole(doc.get("threads", 1), f"{where}.threads", 1, MAX_THREADS)
    return Tier(
        name=checked_name(doc["name"], f"{where}.name"), device=device, target=doc["target"], backends=backends,
        precisions=precisions,
        memory_budget=units.parse(memory, "size", f"{where}.memory") if memory is not None else None,
        threads=threads,
    )


def _backends(doc: dict[str, Any], preset: targets.TargetPreset, where: str) -> tuple[str, ...]:
    """`backends = [...]` (candidates the plan chooses from), `backend = "X"` (one), or by default
    every backend the target can be built for. `auto` (a race at compile time) is gone: the plan prices it."""
    if "backend" in doc and "backends" in doc:
        raise BadInputError(f"{where}: give 'backend' or 'backends', not both")
    if doc.get("backend") == "auto":
        raise BadInputError(f'{where}.backend: "auto" is gone; list the candidates, backends = ["tvm", '
                            '"onnxruntime"], and the plan chooses the cheaper (docs/deploy.md)')
    if "backend" in doc:
        chosen, key = [checks.text(doc["backend"], f"{where}.backend")], f"{where}.backend"
    elif "backends" in doc:
        chosen, key = doc["backends"], f"{where}.backends"
        if len(set(checks.texts(chosen, key))) != len(chosen):
            raise BadInputError(f"{key}: expected a non-empty list of distinct backends, got {chosen!r}")
    else:
        return backend_kinds.supported(preset)
    buildable = backend_kinds.supported(preset)
    for backend in chosen:
        if backend not in backend_kinds.KNOWN:
            raise BadInputError(f"{key}: unknown backend {backend!r}; known: {', '.join(backend_kinds.KNOWN)}")
        if backend in backend_kinds.BUILT and backend not in buildable:
            raise BadInputError(f"{key}: {backend} has no build for target '{preset.name}' (it has: "
                                f"{', '.join(buildable)})")
    return tuple(chosen)


def _links(docs: list[dict[str, Any]], names: list[str], source: str) -> tuple[Link, ...]:
    by_pair: dict[tuple[int, int], Link] = {}
    presets = link_presets()
    for i, doc in enumerate(docs):
        where = f"{source}: link[{i}]"
        _keys(doc, {"name", "from", "to", "preset", "bandwidth", "downlink", "rtt", "radio"}, where)
        ends = []
        for key in ("from", "to"):
            if doc.get(key) not in names:
                raise BadInputError(f"{where}.{key}: unknown tier {doc.get(key)!r}; tiers: {', '.join(names)}")
            ends.append(names.index(doc[key]))
        if ends[1] != ends[0] + 1:
            raise BadInputError(f"{where}: links join adjacent tiers, lower first ('{doc['from']}' -> "
                                f"'{names[ends[0] + 1] if ends[0] + 1 < len(names) else '?'}')")
        name = checked_name(doc.get("name", f"{doc['from']}-{doc['to']}"), f"{where}.name")
        preset = doc.get("preset")
        if preset is not None and checks.text(preset, f"{where}.preset") not in presets:
            raise BadInputError(f"{where}.preset: unknown link preset '{preset}'; known: {', '.join(presets)}")
        base = preset_link(name, preset) if preset else None
        if base is None and ("bandwidth" not in doc or "rtt" not in doc):
            raise BadInputError(f"{where}: needs 'preset' or both 'bandwidth' and 'rtt'")
        uplink = (units.parse(doc["bandwidth"], "bandwidth", f"{where}.bandwidth") if "bandwidth" in doc
                  else base.uplink_bps)
        downlink = (units.parse(doc["downlink"], "bandwidth", f"{where}.downlink") if "downlink" in doc
                    else (base.downlink_bps if base and "bandwidth" not in doc else uplink))
        rtt = units.parse(doc["rtt"], "time", f"{where}.rtt") if "rtt" in doc else base.rtt_s
        radio = base.radio if base else None
        if "radio" in doc:
            checks.text(doc["radio"], f"{where}.radio")
            if doc["radio"] == "none":
                radio = None
            elif doc["radio"] in presets and presets[doc["radio"]].get("radio"):
                radio = radio_from_preset(presets[doc["radio"]]["radio"])
            else:
                known = [k for k, v in presets.items() if v.get("radio")]
                raise BadInputError(f"{where}.radio: unknown radio '{doc['radio']}'; known: none, {', '.join(known)}")
        if tuple(ends) in by_pair:
            raise BadInputError(f"{where}: a second link between '{doc['from']}' and '{doc['to']}'; give one")
        by_pair[tuple(ends)] = Link(name, uplink, downlink, rtt, radio)
    links = []
    for i in range(len(names) - 1):
        if (i, i + 1) not in by_pair:
            raise BadInputError(f"{source}: no [[link]] between tiers '{names[i]}' and '{names[i + 1]}'")
        links.append(by_pair[(i, i + 1)])
    return tuple(links)


def _budgets(doc: dict[str, Any], source: str) -> Budgets:
    where = f"{source}: [budgets]"
    _keys(doc, {"latency", "device_energy", "accuracy_drop"}, where)
    accuracy = doc.get("accuracy_drop")
    if accuracy is not None:
        accuracy = _fraction(accuracy, f"{where}.accuracy_drop")
    return Budgets(
        latency_s=units.parse(doc["latency"], "time", f"{where}.latency") if "latency" in doc else None,
        device_energy_j=(units.parse(doc["device_energy"], "energy", f"{where}.device_energy")
                         if "device_energy" in doc else None),
        accuracy_drop=accuracy,
    )


def _pins(doc: dict[str, Any], names: list[str], source: str) -> Pins:
    where = f"{source}: [pins]"
    _keys(doc, {"input_stays_on_device", "first_layers", "nodes"}, where)
    nodes = checks.table(doc.get("nodes", {}), f"{where}.nodes")
    for node, tier in nodes.items():
        _tier_index(names, checks.text(tier, f"{where}.nodes.{node}"), f"{where}.nodes.{node}")
    first = checks.whole(doc.get("first_layers", 0), f"{where}.first_layers")
    stays = doc.get("input_stays_on_device", False)
    if not isinstance(stays, bool):
        raise BadInputError(f"{where}.input_stays_on_device: expected true or false, got {stays!r}")
    return Pins(stays, first, dict(nodes))


def _fraction(value: Any, where: str) -> float:
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            fraction = float(value.strip()[:-1]) / 100
        except ValueError:
            fraction = None
        if fraction is not None and 0 <= fraction <= 1:
            return fraction
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    raise BadInputError(f"{where}: expected a percentage from 0% to 100% (e.g. \"1%\") or a fraction in [0, 1], "
                        f"got {value!r}")


def _keys(doc: Any, allowed: set[str], where: str) -> None:
    if not isinstance(doc, dict):
        raise BadInputError(f"{where}: expected a table")
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise BadInputError(f"{where}: unknown key '{unknown[0]}'; known: {', '.join(sorted(allowed))}")


def _list(doc: dict[str, Any], key: str, source: str) -> list[dict[str, Any]]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise BadInputError(f"{source}: '{key}' must be an array of tables ([[{key}]])")
    return value
