"""manifest.json: what a build folder holds, per tier: artifact, hash, target, I/O, codecs, versions.

Loading checks every artifact path stays inside the build folder and every hash matches, so a
tampered or moved artifact is refused before anything runs it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from edgepart import __version__, checks, names, schema
from edgepart.compress.codecs import CODECS
from edgepart.errors import BadInputError
from edgepart.graph import LoadedModel
from edgepart.plan.plan_file import AdaptivePlans, Crossing, Plan, PlannedLink

SCHEMA_VERSION = 1
FILE = "manifest.json"
SAMPLE_INPUTS = "sample_inputs.npz"  # one calibration sample, verify's default inputs
BACKENDS = ("tvm", "onnxruntime")  # what compile builds
RUNTIME_DEVICES = ("cpu", "cuda", "opencl", "metal", "webgpu")
VERIFICATIONS = ("run", "emulate", "check", "generate")
DTYPES = ("float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class TensorSpec:
    """A tier's input or output: name, shape, dtype, and for an input the codec per link it crossed."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    codecs: dict[str, str]


@dataclass(frozen=True)
class BuiltTier:
    """One tier of a build, as the manifest records it and verify, run and the price check read it."""

    name: str
    index: int
    device: str  # the device profile the plan priced
    backend: str
    runtime_device: str  # cpu, cuda, ...
    elf_machine: str | None
    preset: str  # the target preset
    verification: str
    threads: int
    priced_s: float | None
    precisions: dict[str, int]  # layers per precision
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    artifact: str  # paths inside the build, with their sha256
    artifact_sha256: str
    submodel: str
    submodel_sha256: str
    raw: dict[str, Any]  # the entry as written (run hands it to its tier processes)

    @classmethod
    def of(cls, entry: Any, where: str) -> BuiltTier:
        """The entry checked field by field; BadInputError names `where` and the field."""
        if not isinstance(entry, dict):
            raise BadInputError(f"{where}: expected a tier entry")
        names.checked(entry.get("name"), f"{where}.name")
        text = {key: entry.get(key) for key in ("device", "backend", "runtime_device", "verification", "artifact",
                                                "artifact_sha256", "submodel", "submodel_sha256")}
        odd = [key for key, value in text.items() if not isinstance(value, str)]
        target = entry.get("target")
        if odd or not isinstance(target, dict) or not isinstance(target.get("preset"), str):
            raise BadInputError(f"{where}.{odd[0] if odd else 'target.preset'}: missing or not text; "
                                "is this an edgepart build folder?")
        for key, known in (("backend", BACKENDS), ("runtime_device", RUNTIME_DEVICES), ("verification", VERIFICATIONS)):
            if text[key] not in known:
                raise BadInputError(f"{where}.{key}: unknown {text[key]!r}; known: {', '.join(known)}")
        priced = checks.optional_number(entry.get("priced_s"), f"{where}.priced_s", least=0)
        elf_machine = entry.get("elf_machine")
        if elf_machine is not None:
            checks.text(elf_machine, f"{where}.elf_machine")
        precisions = {precision: checks.whole(count, f"{where}.precisions.{precision}")
                      for precision, count in checks.table(entry.get("precisions", {}), f"{where}.precisions").items()}
        return cls(entry["name"], checks.whole(entry.get("index", 0), f"{where}.index"), text["device"],
                   text["backend"], text["runtime_device"], elf_machine, target["preset"], text["verification"],
                   checks.whole(entry.get("threads", 1), f"{where}.threads", 1, 1024), priced, precisions,
                   _specs(entry.get("inputs"), f"{where}.inputs"),
                   _specs(entry.get("outputs"), f"{where}.outputs"), text["artifact"], text["artifact_sha256"],
                   text["submodel"], text["submodel_sha256"], entry)

    @property
    def choices(self) -> list[str]:
        """The precisions of its layers and the codecs of its inputs: what sets verify's tolerance."""
        return [*self.precisions, *(codec for spec in self.inputs for codec in spec.codecs.values())]


def _specs(value: Any, where: str) -> tuple[TensorSpec, ...]:
    if not isinstance(value, list):
        raise BadInputError(f"{where}: expected a list of tensors")
    specs = []
    for i, spec in enumerate(value):
        shape = spec.get("shape") if isinstance(spec, dict) else None
        if (not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not isinstance(shape, list)
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
                or spec.get("dtype") not in DTYPES):
            raise BadInputError(f"{where}[{i}]: expected name, shape (whole numbers) and dtype (one of "
                                f"{', '.join(DTYPES)})")
        codecs = checks.table(spec.get("codecs", {}), f"{where}[{i}].codecs")
        for link, codec in codecs.items():
            _codec(codec, f"{where}[{i}].codecs.{link}")
        specs.append(TensorSpec(spec["name"], tuple(shape), spec["dtype"], dict(codecs)))
    return tuple(specs)


@dataclass(frozen=True)
class Network:
    """What run lays the tiers and links out by, and holds the run to: every deployment tier in
    order, each link with the tensors crossing it, and the plan's predictions."""

    tiers: tuple[str, ...]
    links: tuple[PlannedLink, ...]
    latency_s: float | None
    throughput_s: float | None
    compute_s: dict[str, float]  # per tier
    transfer_s: dict[str, float]  # per link

    @classmethod
    def of(cls, doc: Any, where: str) -> Network:
        if not isinstance(doc, dict):
            raise BadInputError(f"{where}: expected tiers, links and predicted")
        tiers = doc.get("tiers")
        if not isinstance(tiers, list) or not tiers:
            raise BadInputError(f"{where}.tiers: expected the deployment's tier names")
        for i, name in enumerate(tiers):
            names.checked(name, f"{where}.tiers[{i}]")
        links = doc.get("links")
        if not isinstance(links, list) or len(links) != len(tiers) - 1:
            raise BadInputError(f"{where}.links: expected one link between each two tiers ({len(tiers) - 1})")
        predicted = doc.get("predicted")
        if not isinstance(predicted, dict):
            raise BadInputError(f"{where}.predicted: expected the plan's predictions")
        return cls(tuple(tiers), tuple(_link(link, f"{where}.links[{i}]") for i, link in enumerate(links)),
                   checks.optional_number(predicted.get("latency_s"), f"{where}.predicted.latency_s", least=0),
                   checks.optional_number(predicted.get("throughput_s"), f"{where}.predicted.throughput_s", least=0),
                   _per_name(predicted.get("compute_s"), f"{where}.predicted.compute_s"),
                   _per_name(predicted.get("transfer_s"), f"{where}.predicted.transfer_s"))

    def as_json(self) -> dict[str, Any]:
        return {"tiers": list(self.tiers),
                "links": [{"uplink_bps": link.uplink_bps, "downlink_bps": link.downlink_bps, "rtt_s": link.rtt_s,
                           "name": link.name,
                           "up": [{"tensor": u.tensor, "codec": u.codec, "bytes": u.bytes} for u in link.up],
                           "down": [{"tensor": d.tensor, "bytes": d.bytes} for d in link.down]} for link in self.links],
                "predicted": {"latency_s": self.latency_s, "throughput_s": self.throughput_s,
                              "compute_s": self.compute_s, "transfer_s": self.transfer_s}}


def _link(doc: Any, where: str) -> PlannedLink:
    if not isinstance(doc, dict):
        raise BadInputError(f"{where}: expected a link entry")
    name = names.checked(doc.get("name"), f"{where}.name")
    rates = [checks.number(doc.get(key), f"{where}.{key}", above=0) for key in ("uplink_bps", "downlink_bps")]
    rtt = checks.number(doc.get("rtt_s"), f"{where}.rtt_s", least=0)
    crossings = {}
    for key in ("up", "down"):
        entries = doc.get(key)
        if not isinstance(entries, list):
            raise BadInputError(f"{where}.{key}: expected a list of tensors")
        crossings[key] = tuple(_crossing(entry, key == "up", f"{where}.{key}[{i}]") for i, entry in enumerate(entries))
    return PlannedLink(name, rates[0], rates[1], float(rtt), crossings["up"], crossings["down"])


def _crossing(doc: Any, coded: bool, where: str) -> Crossing:
    checks.table(doc, where)
    codec = _codec(doc.get("codec"), f"{where}.codec") if coded else "raw"
    return Crossing(checks.text(doc.get("tensor"), f"{where}.tensor"), codec,
                    checks.whole(doc.get("bytes"), f"{where}.bytes"))


def _codec(value: Any, where: str) -> str:
    if checks.text(value, where) not in CODECS:
        raise BadInputError(f"{where}: unknown codec '{value}'; known: {', '.join(CODECS)}")
    return value


def _per_name(value: Any, where: str) -> dict[str, float]:
    """name -> seconds (>= 0, or null)."""
    return {name: checks.optional_number(seconds, f"{where}.{name}", least=0)
            for name, seconds in checks.table(value, where).items()}


@dataclass(frozen=True)
class BuildAccuracy:
    """What the plan predicted for accuracy, as compile recorded it for verify --validate-accuracy."""

    predicted_drop: float | None
    budget: float | None
    metric: str | None  # of the sensitivity measurement the plan used; None without one

    @classmethod
    def of(cls, doc: Any, where: str) -> BuildAccuracy:
        doc = doc or {}
        if not isinstance(doc, dict):
            raise BadInputError(f"{where}: expected predicted_drop, budget, sensitivity")
        values = [checks.optional_number(doc.get("predicted_drop"), f"{where}.predicted_drop"),
                  checks.optional_number(doc.get("budget"), f"{where}.budget", least=0, most=1)]
        sensitivity = doc.get("sensitivity") or {}
        metric = sensitivity.get("metric", {}).get("name") if isinstance(sensitivity, dict) else None
        if sensitivity and not isinstance(metric, str):
            raise BadInputError(f"{where}.sensitivity.metric.name: expected a metric name")
        return cls(values[0], values[1], metric)


@dataclass(frozen=True)
class Manifest:
    """A build folder's manifest.json, checked on load; verify and run read builds only through it."""

    build_dir: Path
    doc: dict[str, Any]
    tiers: tuple[BuiltTier, ...]

    @classmethod
    def load(cls, build_dir: str | Path) -> Manifest:
        build_dir = Path(build_dir)
        path = build_dir / FILE
        if not path.is_file():
            raise BadInputError(f"{build_dir}: no {FILE}; is this an edgepart build folder?")
        doc = schema.load_json(path, "manifest", SCHEMA_VERSION)
        model = doc.get("model")
        if not isinstance(model, dict) or not all(isinstance(model.get(k), str) for k in ("path", "sha256")):
            raise BadInputError(f"{path}: model: expected its path and sha256; is this an edgepart build folder?")
        outputs = doc.get("outputs")
        if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
            raise BadInputError(f"{path}: outputs: expected the model's output names")
        loaded = cls(build_dir, doc, _tiers(doc, outputs, f"{path}: "))
        _ = loaded.network, loaded.accuracy, loaded.adaptive  # checked now, whichever command reads them
        return loaded

    @property
    def model_path(self) -> str:
        return self.doc["model"]["path"]

    @property
    def model_sha256(self) -> str:
        return self.doc["model"]["sha256"]

    @property
    def outputs(self) -> list[str]:
        return list(self.doc["outputs"])

    @property
    def output_tier(self) -> str:
        return self.doc["output_tier"]

    @cached_property
    def network(self) -> Network | None:
        """What run lays the tiers and links out by; None for a build made before it was recorded."""
        doc = self.doc.get("network")
        return None if doc is None else Network.of(doc, f"{self.build_dir / FILE}: network")

    @cached_property
    def adaptive(self) -> AdaptiveBuild | None:
        """The plans of an adaptive build (`plan --sweep`), or None."""
        doc = self.doc.get("adaptive")
        return None if doc is None else AdaptiveBuild.of(self, doc, f"{self.build_dir / FILE}: adaptive")

    @cached_property
    def accuracy(self) -> BuildAccuracy:
        return BuildAccuracy.of(self.doc.get("accuracy"), f"{self.build_dir / FILE}: accuracy")

    def check_inputs(self, model_inputs: list[str], model: str | Path) -> None:
        """Each tier input no tier makes must be an input of the model (verify and run feed those)."""
        made = {spec.name for tier in self.tiers for spec in tier.outputs}
        for tier in self.tiers:
            stray = [spec.name for spec in tier.inputs if spec.name not in made and spec.name not in model_inputs]
            if stray:
                raise BadInputError(f"{self.build_dir / FILE}: tier '{tier.name}' input '{stray[0]}' is made by no "
                                    f"tier and is not an input of {model} ({', '.join(model_inputs)})")

    def tier(self, name: str) -> BuiltTier:
        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise BadInputError(f"{self.build_dir}: no tier '{name}'; tiers: {', '.join(t.name for t in self.tiers)}")


@dataclass(frozen=True)
class AdaptiveBuild:
    """An adaptive build's plans, each a Manifest of its own (its tiers, output tier and network,
    the build's artifacts), its latency line over the swept link, and the breakpoint table."""

    link: str
    range_bps: tuple[float, float]
    start: str
    fallback: str
    breakpoints: tuple[dict[str, Any], ...]
    plans: dict[str, Manifest]
    lines: dict[str, tuple[float, float]]  # plan -> (fixed_s, bits): latency = fixed_s + bits / bps

    @classmethod
    def of(cls, built: Manifest, doc: Any, where: str) -> AdaptiveBuild:
        checks.table(doc, where)
        plans, lines = {}, {}
        for plan_id, entry in checks.table(doc.get("plans"), f"{where}.plans").items():
            at = f"{where}.plans.{names.checked(plan_id, f'{where}.plans')}"
            checks.table(entry, at)
            variant = {**built.doc, **{key: entry.get(key) for key in ("tiers", "output_tier", "network")}}
            variant.pop("adaptive")
            plans[plan_id] = Manifest(built.build_dir, variant, _tiers(variant, built.outputs, f"{at}."))
            _ = plans[plan_id].network
            line = checks.table(entry.get("line"), f"{at}.line")
            lines[plan_id] = (checks.number(line.get("fixed_s"), f"{at}.line.fixed_s"),
                              checks.number(line.get("bits"), f"{at}.line.bits", least=0))
        for key in ("start", "fallback"):
            if doc.get(key) not in plans:
                raise BadInputError(f"{where}.{key}: {doc.get(key)!r} is not one of its plans ({', '.join(plans)})")
        fallback = plans[doc["fallback"]]
        if len(fallback.tiers) != 1 or fallback.tiers[0].index != 0:
            raise BadInputError(f"{where}.fallback: plan '{doc['fallback']}' does not run on the device tier alone")
        low, high = (checks.number(v, f"{where}.range_bps", above=0) for v in (doc.get("range_bps") or [0, 0])[:2])
        table = doc.get("breakpoints")
        if not isinstance(table, list) or not all(isinstance(r, dict) and r.get("plan") in plans for r in table):
            raise BadInputError(f"{where}.breakpoints: expected rows of from_bps, to_bps and one of its plans")
        return cls(checks.text(doc.get("link"), f"{where}.link"), (low, high), doc["start"], doc["fallback"],
                   tuple(table), plans, lines)


def _tiers(doc: dict[str, Any], outputs: list[str], where: str) -> tuple[BuiltTier, ...]:
    """The build's (or an adaptive build's plan's) tiers, checked: entries, order, names, flow."""
    tiers = doc.get("tiers")
    if not isinstance(tiers, list) or not tiers:
        raise BadInputError(f"{where}tiers: expected a list of tiers; is this an edgepart build folder?")
    built = tuple(BuiltTier.of(tier, f"{where}tiers[{i}]") for i, tier in enumerate(tiers))
    for i in range(1, len(built)):  # the deployment's tier numbers, in order (tiers without layers left out)
        if built[i].index <= built[i - 1].index:
            raise BadInputError(f"{where}tiers[{i}].index: {built[i].index}, not after tiers[{i - 1}]'s "
                                f"({built[i - 1].index})")
    if len({t.name for t in built}) != len(built):
        raise BadInputError(f"{where}tiers: a tier name appears twice")
    if not isinstance(doc.get("output_tier"), str):
        raise BadInputError(f"{where}output_tier: expected a tier name")
    _check_flow(built, outputs, where.rstrip(": "))
    return built


def _check_flow(tiers: tuple[BuiltTier, ...], outputs: list[str], where: str) -> None:
    """The tiers chain: no tier reads what only a later tier makes, and every output of the model is
    made by some tier (a tier waiting for a tensor nobody sends would hang a run)."""
    made_by = {spec.name: i for i, tier in enumerate(tiers) for spec in tier.outputs}
    for i, tier in enumerate(tiers):
        late = [spec.name for spec in tier.inputs if made_by.get(spec.name, -1) >= i]
        if late:
            raise BadInputError(f"{where}: tiers[{i}].inputs: '{late[0]}' is made by tier "
                                f"'{tiers[made_by[late[0]]].name}', not by one before it")
    if not outputs:
        raise BadInputError(f"{where}: outputs: expected the model's output names")
    unmade = [name for name in outputs if name not in made_by]
    if unmade:
        raise BadInputError(f"{where}: outputs: '{unmade[0]}' is made by none of the tiers")


def new_document(loaded: LoadedModel, plan: Plan, tiers: list[dict[str, Any]],
                 calibration: dict | None) -> dict[str, Any]:
    """The manifest of a build of `loaded` by `plan` with these tier entries (compile's _build_tier);
    `calibration`: the description of the calibration data used, if any."""
    return schema.document("manifest", SCHEMA_VERSION, {
        "model": {"path": str(loaded.path), "sha256": loaded.sha256},
        "plan": {"path": plan.source, "sha256": _plan_sha256(plan)},
        "tools": _versions(),
        "tiers": tiers,
        "outputs": list(loaded.graph.outputs),
        "output_tier": plan.output_tier,
        "accuracy": _accuracy(plan, calibration),
        "network": _network(plan),
    })


def adaptive_document(adaptive: AdaptivePlans, built: dict[str, tuple[Plan, list[dict[str, Any]]]]) -> dict[str, Any]:
    """The manifest's `adaptive` section: per plan of the sweep its tier entries (artifacts shared
    between plans by content, edgepart.compile.build.tier_key), output tier, network and latency line
    over the swept link; the breakpoint table of those lines; the start and fallback plans."""
    from edgepart.plan.adaptive import breakpoints, line_of  # noqa: PLC0415

    lines = {plan_id: line_of(plan, adaptive.link) for plan_id, (plan, _) in built.items()}
    return {
        "link": adaptive.link, "range_bps": list(adaptive.range_bps), "start": adaptive.start,
        "fallback": adaptive.fallback, "breakpoints": breakpoints(lines, *adaptive.range_bps),
        "plans": {plan_id: {"tiers": entries, "output_tier": plan.output_tier, "network": _network(plan),
                            "line": lines[plan_id].as_json()} for plan_id, (plan, entries) in built.items()},
    }


def _network(plan: Plan) -> dict[str, Any]:
    """What `edgepart run` needs to lay out the tiers and links and to hold the run against the plan."""
    predicted = plan.predicted
    return Network(tuple(t.name for t in plan.tiers), plan.links, predicted.latency_s, predicted.throughput_s,
                   predicted.compute_s, predicted.transfer_s).as_json()


def _accuracy(plan: Plan, calibration: dict | None) -> dict[str, Any]:
    """What the plan predicted for accuracy, for verify --validate-accuracy to hold it against."""
    return {"predicted_drop": plan.predicted.accuracy_drop, "budget": plan.accuracy_budget,
            "sensitivity": plan.sensitivity, "calibration": calibration}


def _plan_sha256(plan: Plan) -> str:
    """The plan file's sha256; for a plan that is no file (the Python API), its JSON's."""
    if Path(plan.source).is_file():
        return sha256(Path(plan.source))
    return hashlib.sha256(json.dumps(plan.doc, sort_keys=True).encode()).hexdigest()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    import onnx  # noqa: PLC0415 - the readers of a manifest need neither
    import onnxruntime as ort  # noqa: PLC0415

    tools = {"edgepart": __version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__}
    for package in ("apache-tvm", "apache-tvm-ffi"):
        try:
            tools[package] = version(package)
        except PackageNotFoundError:
            tools[package] = "not installed"
    return tools


def sample_inputs_path(build_dir: str | Path) -> Path | None:
    """The calibration sample compile stored in the build (verify's and run's default inputs; read
    with edgepart.compress.data.load_for), or None; refused when it resolves outside the build."""
    where = Path(build_dir) / SAMPLE_INPUTS
    if not where.is_file():
        return None
    return names.inside(build_dir, SAMPLE_INPUTS, str(where))


def artifact_path(build_dir: str | Path, tier: BuiltTier, key: str = "artifact") -> Path:
    """The tier's file, refused when its path leaves the build folder or its sha256 differs."""
    relative, expected = (tier.artifact, tier.artifact_sha256) if key == "artifact" else \
        (tier.submodel, tier.submodel_sha256)
    path = names.inside(build_dir, relative, f"{Path(build_dir) / FILE}: tier '{tier.name}' {key}")
    try:
        present = path.is_file()
        actual = sha256(path) if present else ""
    except OSError as exc:
        raise BadInputError(f"{path}: {key} of tier '{tier.name}' cannot be read ({exc.strerror})") from None
    if not present:
        raise BadInputError(f"{path}: {key} of tier '{tier.name}' is missing")
    if actual != expected:
        raise BadInputError(f"{path}: sha256 {actual[:12]} does not match the manifest ({expected[:12]}); "
                            "the artifact was changed after compile")
    return path


def checked_submodel(build_dir: str | Path, tier: BuiltTier) -> Path:
    """The tier's sub-model (hash checked), refused when the manifest's inputs and outputs for the
    tier (names, shapes, dtypes) are not the sub-model's: the chain feeds and reads a tier by them.
    An onnxruntime tier's artifact, a model too, is held to the same."""
    path = artifact_path(build_dir, tier, "submodel")
    _check_interface(build_dir, tier, path)
    if tier.backend == "onnxruntime":
        _check_interface(build_dir, tier, artifact_path(build_dir, tier))
    return path


def _check_interface(build_dir: str | Path, tier: BuiltTier, path: Path) -> None:
    import onnx  # noqa: PLC0415 - only the graph's interface is read
    from google.protobuf.message import DecodeError  # noqa: PLC0415

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except (DecodeError, ValueError, OSError):
        raise BadInputError(f"{path}: tier '{tier.name}' file is not an ONNX model") from None
    weights = {init.name for init in graph.initializer}

    def described(value: onnx.ValueInfoProto) -> tuple[str, tuple, str]:
        tensor = value.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name if tensor.elem_type else "?"
        return value.name, tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim), dtype

    actual = {"inputs": sorted(described(i) for i in graph.input if i.name not in weights),
              "outputs": sorted(described(o) for o in graph.output)}
    for key, specs in (("inputs", tier.inputs), ("outputs", tier.outputs)):
        listed = sorted((spec.name, spec.shape, spec.dtype) for spec in specs)
        if listed != actual[key]:
            odd = next((x for x in listed if x not in actual[key]), listed[0] if listed else None)
            raise BadInputError(f"{Path(build_dir) / FILE}: tier '{tier.name}' {key}: {odd} is not those of "
                                f"{path.name} ({', '.join(f'{n} {list(sh)} {dt}' for n, sh, dt in actual[key])})")
