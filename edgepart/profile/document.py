"""The profile file (`edgepart.profile`): per-layer latency of one model on one device, measured or
predicted, with its provenance. Documented in docs/file-formats.md."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import onnxruntime as ort

from edgepart import __version__, checks, schema
from edgepart.compress.codecs import PRECISIONS
from edgepart.errors import BadInputError
from edgepart.graph import LoadedModel
from edgepart.hardware.backends import BUILT
from edgepart.hardware.devices import DeviceProfile
from edgepart.machine import host_description
from edgepart.profile import idle, predict
from edgepart.profile.energy import EnergyReading
from edgepart.profile.measure import Measurement
from edgepart.profile.ort_profiler import RunOptions

if TYPE_CHECKING:
    from edgepart.profile.tvm_profiler import TvmMeasurement

SCHEMA_VERSION = 1


def measured_document(loaded: LoadedModel, device: DeviceProfile, options: RunOptions,
                      measurement: Measurement, converted: dict[str, Measurement] | None = None,
                      reading: EnergyReading | None = None) -> dict[str, Any]:
    """A measured profile: fp32, plus each precision in `converted` (the model converted to it).
    Energy: `reading` (a meter, per run, split by time) for fp32, else modelled from the device
    profile (active power x time)."""
    precisions = {"fp32": {"layers": _measured_layers(loaded, device, "fp32", measurement, reading)}}
    for precision, result in (converted or {}).items():
        precisions[precision] = {
            "layers": _measured_layers(loaded, device, precision, result),
            "end_to_end": result.end_to_end.as_dict(),
            "sum_error": result.sum_error,
            "calibration_factor": result.calibration,
            "conversion": CONVERSIONS[precision],
        }
    errors = [abs(s["error"]) for s in measurement.segments]
    provenance = {
        "method": "measured",
        "backend": "onnxruntime",
        "versions": {"edgepart": __version__, "onnxruntime": ort.__version__},
        "host": host_description(),
        "threads": options.threads,
        "graph_optimization": options.optimization,
        "warmup": options.warmup,
        "repeat": options.repeat,
        "clock": ("wall clock: time.perf_counter per cut of the model (prefix differences)"
                  if measurement.mapping.get("method") == "prefix differences"
                  else "wall clock: onnxruntime's profiler per kernel") + ", time.perf_counter end to end"
                 + ("; thread CPU time also recorded" if measurement.end_to_end_cpu else ""),
        "date": _date(),
        "end_to_end": measurement.end_to_end.as_dict(),
        "end_to_end_cpu": measurement.end_to_end_cpu.as_dict() if measurement.end_to_end_cpu else None,
        "sum_of_layer_medians_s": measurement.sum_of_medians,
        "run_overhead_s": measurement.overheads.run_s,
        "profiler_overhead_per_kernel_s": measurement.overheads.profiler_per_kernel_s,
        "reorder_s_per_byte": measurement.overheads.reorder_s_per_byte,
        "cut_calibration": measurement.cut_calibration,
        "output_s_per_byte": measurement.overheads.output_s_per_byte,
        "idle": measurement.idle,
        "sum_error": measurement.sum_error,
        "calibration_factor": measurement.calibration,
        "mapping": measurement.mapping,
        "segments": measurement.segments,
        "segment_median_abs_error": float(np.median(errors)) if errors else None,
        "energy": (_energy_provenance(reading) if reading else
                   f"modelled: active power x time from device profile '{device.name}'"),
    }
    return schema.document("profile", SCHEMA_VERSION, {
        "model": {"path": str(loaded.path), "sha256": loaded.sha256},
        "device": device.name,
        "predicted": False,
        "provenance": provenance,
        "precisions": precisions,
    })


CONVERSIONS = {
    "fp16": "whole model through onnxruntime's float16 converter; inserted Casts folded into their layers",
    "int8": "whole model through onnxruntime static QDQ quantisation; Q/DQ nodes folded into their layers",
}


def _measured_layers(loaded: LoadedModel, device: DeviceProfile, precision: str, measurement,
                     reading: EnergyReading | None = None, calibration: float | None = None) -> dict[str, dict]:
    factor = measurement.calibration if calibration is None else calibration
    total = sum(measurement.layers[n.name].median for n in loaded.graph.layers) * factor or 1.0
    layers = {}
    for node in loaded.graph.layers:
        stats = measurement.layers[node.name]
        seconds = stats.median * factor
        joules = (reading.joules_per_run * seconds / total if reading else
                  predict.node_energy(loaded.graph, node, device, precision, seconds))
        layers[node.name] = {**stats.as_dict(), "calibrated_s": seconds, "energy_j": joules}
    return layers


def _energy_provenance(reading: EnergyReading) -> dict[str, Any]:
    return {"method": reading.method, "joules_per_run": reading.joules_per_run, "window_s": reading.window_s,
            "runs": reading.runs, "per_layer": "split in proportion to the layers' times"}


def tvm_document(loaded: LoadedModel, device: DeviceProfile, options: RunOptions,
                 measurement: TvmMeasurement) -> dict[str, Any]:
    """A measured profile of the TVM artifact (edgepart.profile.tvm_profiler)."""
    reading = measurement.energy
    layers = _measured_layers(loaded, device, "fp32", measurement, reading, calibration=1.0)
    return schema.document("profile", SCHEMA_VERSION, {
        "model": {"path": str(loaded.path), "sha256": loaded.sha256},
        "device": device.name,
        "predicted": False,
        "provenance": {
            "method": "measured",
            "backend": "tvm",
            "target": measurement.target,
            "where": measurement.where,
            "versions": {"edgepart": __version__, **_tvm_versions()},
            "host": host_description() if measurement.where == "this host" else None,
            "threads": 1,
            "warmup": options.warmup,
            "repeat": options.repeat,
            "clock": "TVM time_evaluator on the device (invoke_stateful): each repeat the mean of back-to-back runs",
            "date": _date(),
            "end_to_end": measurement.end_to_end.as_dict(),
            "idle": measurement.idle,
            "per_layer": ("TVM's unfused kernels timed per call on this host's CPU (VM instrument), mapped to "
                          "their ONNX nodes and scaled to the measured end-to-end time"
                          + ("; convolutions and matrix products as calls into the kernel library, as the "
                             "artifact runs them, each call's time split over the nodes it computes"
                             if (measurement.layer_kernels or {}).get("library") else "")
                          + ("" if measurement.where == "this host" and measurement.target.startswith("x86")
                             else "; proportions from this host's CPU, total from the device")),
            # the kernel library of the per-layer timing, in build.kernels' form (None: TVM's kernels only)
            "per_layer_kernels": measurement.layer_kernels,
            "kernel_scale": measurement.scale,
            "unattributed_share": measurement.unattributed_share,
            # The tuning state of what was timed: compile without --tune builds the same (no database used).
            "tuning": {"trials": 0, "database": None,
                       "state": "untuned, as edgepart compile builds without --tune"},
            "build": measurement.build or {},
            "calibration_factor": 1.0,
            "sum_error": 0.0,
            "segments": [],
            "segment_median_abs_error": None,
            "energy": (_energy_provenance(reading) if reading else
                       f"modelled: active power x time from device profile '{device.name}'"),
        },
        "precisions": {"fp32": {"layers": layers}},
    })


def _tvm_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return {"apache-tvm": version("apache-tvm")}
    except PackageNotFoundError:
        return {}


def predicted_document(loaded: LoadedModel, device: DeviceProfile, precisions: list[str],
                       threads: int = 1) -> dict[str, Any]:
    """Per-layer seconds predicted from the device profile (roofline) for a run on `threads` threads
    (a CPU's peak scaled by min(threads, cores) / cores), in the same format."""
    graph = loaded.graph
    body = {}
    for precision in precisions:
        if not device.supports(precision):
            raise BadInputError(f"--precision: device '{device.name}' has no {precision} support")
        layers = {}
        for node in graph.layers:
            seconds = predict.node_seconds(graph, node, device, precision, threads)
            layers[node.name] = {"calibrated_s": seconds,
                                 "energy_j": predict.node_energy(graph, node, device, precision, seconds)}
        body[precision] = {"layers": layers}
    return schema.document("profile", SCHEMA_VERSION, {
        "model": {"path": str(loaded.path), "sha256": loaded.sha256},
        "device": device.name,
        "predicted": True,
        "provenance": {"method": f"predicted: roofline with per-op-class efficiency from device profile "
                                 f"'{device.name}' ({device.provenance})",
                       "versions": {"edgepart": __version__}, "date": _date(), "threads": threads,
                       "energy": "modelled from the device profile"},
        "precisions": body,
    })


@dataclass(frozen=True)
class Profile(schema.Document):
    """A profile document, checked field by field, and what later stages ask of it: the planner
    reads profiles only through this (docs/architecture.md)."""

    KIND: ClassVar[str] = "profile"
    VERSION: ClassVar[int] = SCHEMA_VERSION

    @classmethod
    def load(cls, path: str | os.PathLike, loaded: LoadedModel | None = None) -> Profile:
        """The profile file at `path`; with `loaded`, refused when made for another model (both
        hashes named)."""
        profile = super().load(path)
        return profile.of_model(loaded) if loaded is not None else profile

    def of_model(self, loaded: LoadedModel) -> Profile:
        """This profile, refused when it was made for another model than `loaded` (both hashes named)."""
        if self.model_sha256 != loaded.sha256:
            raise BadInputError(f"{self.source}: profile of model sha256 {self.model_sha256[:12]}, but "
                                f"{loaded.path} has sha256 {loaded.sha256[:12]}; profile this model")
        return self

    @classmethod
    def check(cls, doc: Any, source: str) -> None:
        _check(doc, source)

    @property
    def device(self) -> str:
        return self.doc["device"]

    @property
    def backend(self) -> str:
        """The backend it prices: the one it measured; a prediction from a device profile stands
        for onnxruntime, as device profiles do (edgepart/profiles/backends.json)."""
        return self.doc["provenance"].get("backend") or "onnxruntime"

    @property
    def predicted(self) -> bool:
        return self.doc["predicted"]

    @property
    def model_path(self) -> str:
        return self.doc["model"]["path"]

    @property
    def farm(self) -> dict | None:
        """Measured on a farm board (edgepart.profile.farm): tracker, key, board, lost_on, board_speeds,
        flagged; None otherwise."""
        return self.doc["provenance"].get("farm")

    @property
    def end_to_end_s(self) -> float | None:
        """The measured end-to-end median (None for a prediction)."""
        return (self.doc["provenance"].get("end_to_end") or {}).get("median_s")

    def on_farm(self, record: dict) -> Profile:
        """The same profile, recording the farm board that measured it (`provenance.farm`)."""
        doc = {**self.doc, "provenance": {**self.doc["provenance"], "farm": record}}
        return Profile.of(doc, self.source)

    @property
    def model_sha256(self) -> str:
        return self.doc["model"]["sha256"]

    @property
    def method(self) -> str:
        return str(self.doc["provenance"].get("method", "measured" if not self.doc["predicted"] else "predicted"))

    @property
    def precisions(self) -> tuple[str, ...]:
        return tuple(self.doc["precisions"])

    def layer_times(self, precision: str) -> dict[str, float]:
        """Every layer's calibrated seconds in `precision` (none where it was not profiled)."""
        layers = self.doc["precisions"].get(precision, {}).get("layers", {})
        return {name: float(entry["calibrated_s"]) for name, entry in layers.items()}

    def layer_seconds(self, precision: str, layer: str) -> float | None:
        """The layer's calibrated seconds as the profile measured them (hot), or None."""
        entry = self.doc["precisions"].get(precision, {}).get("layers", {}).get(layer)
        return None if entry is None else float(entry["calibrated_s"])

    @property
    def idle_factor(self) -> float:
        """After-idle over hot (edgepart.profile.idle); 1 where it was not measured."""
        return idle.factor(self.doc)

    @property
    def idle_gap_s(self) -> float | None:
        measured = self.doc["provenance"].get("idle")
        return float(measured["gap_s"]) if measured else None


MAX_LAYER_S = 3600.0  # a layer's seconds: an hour is a typo, not a measurement
MAX_LAYER_J = 1e6
MAX_IDLE_FACTOR = 100.0


def _check(doc: Any, source: str) -> None:
    """Every field later stages read, named with the source when missing or out of range."""
    if not isinstance(doc, dict):
        raise BadInputError(f"{source}: not a profile document")
    model = doc.get("model")
    if not isinstance(model, dict) or not all(isinstance(model.get(k), str) for k in ("path", "sha256")):
        raise BadInputError(f"{source}: model: expected its path and sha256; write the profile with "
                            "edgepart profile -o")
    checks.text(model["sha256"], f"{source}: model.sha256")
    if not isinstance(doc.get("device"), str):
        raise BadInputError(f"{source}: device: expected a device profile name, got {doc.get('device')!r}")
    checks.text(doc["device"], f"{source}: device")
    if not isinstance(doc.get("predicted"), bool) or not isinstance(doc.get("provenance"), dict):
        raise BadInputError(f"{source}: predicted and provenance: missing; write the profile with edgepart profile -o")
    for key in ("backend", "method"):
        if doc["provenance"].get(key) is not None:
            checks.text(doc["provenance"][key], f"{source}: provenance.{key}")
    if doc["provenance"].get("backend", "onnxruntime") not in BUILT:
        raise BadInputError(f"{source}: provenance.backend: unknown {doc['provenance']['backend']!r}; known: "
                            f"{', '.join(BUILT)}")
    precisions = doc.get("precisions")
    if not isinstance(precisions, dict) or not precisions:
        raise BadInputError(f"{source}: precisions: expected a table of precisions with their layers")
    for precision, body in precisions.items():
        if precision not in PRECISIONS:
            raise BadInputError(f"{source}: precisions: unknown precision '{precision}'; known: "
                                f"{', '.join(PRECISIONS)}")
        layers = body.get("layers") if isinstance(body, dict) else None
        if not isinstance(layers, dict):
            raise BadInputError(f"{source}: precisions.{precision}.layers: expected a table of layers")
        for name, layer in layers.items():
            where = f"{source}: precisions.{precision}.layers.{name}"
            checks.table(layer, where)
            checks.number(layer.get("calibrated_s"), f"{where}.calibrated_s", least=0, most=MAX_LAYER_S)
            checks.optional_number(layer.get("energy_j"), f"{where}.energy_j", least=0, most=MAX_LAYER_J)
    idle_record = doc["provenance"].get("idle")
    if idle_record is not None:
        checks.table(idle_record, f"{source}: provenance.idle")
        checks.number(idle_record.get("factor"), f"{source}: provenance.idle.factor", least=1, most=MAX_IDLE_FACTOR)
        checks.number(idle_record.get("gap_s"), f"{source}: provenance.idle.gap_s", least=0, most=60)


def _date() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:  # reproducible-builds.org: seconds since 1970 as a whole number, not before it
        moment = datetime.datetime.fromtimestamp(int(epoch), datetime.UTC)
        if int(epoch) < 0:
            raise ValueError(epoch)
    except (ValueError, OverflowError, OSError):
        raise BadInputError(f"SOURCE_DATE_EPOCH {epoch!r}: expected whole seconds since 1970") from None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


