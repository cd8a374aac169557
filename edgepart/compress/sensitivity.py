"""Accuracy sensitivity per layer and per cut-tensor codec, measured on calibration data.

Each choice is measured alone on the whole model (a layer in fp16 or int8, or a tensor sent through
a codec), scored against labels (accuracy) or against the fp32 outputs (top-1 agreement, or cosine
similarity), in one onnxruntime session for all choices (edgepart.compress.injection). The
planner adds the drops up under the accuracy budget; `verify --validate-accuracy` then measures
the composed plan for real. For every tensor the codecs' wire bytes and encode/decode times are
measured on these activations too. Results are cached per model, data and metric (MeasuredBefore),
so a rerun, or a run after one cut short by `max_seconds`, measures only what is missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnx

from edgepart import __version__, checks, schema
from edgepart.cache import cache_dir
from edgepart.compress import codecs, composed, estimate, injection
from edgepart.compress import precision as precisions
from edgepart.compress import quantize as quantize_module
from edgepart.compress.data import Dataset, run
from edgepart.compress.scoring import METRICS, WORST_SCORE, scorer
from edgepart.errors import BadInputError
from edgepart.graph import LoadedModel
from edgepart.graph.sessions import named_model
from edgepart.machine import host_description

SCHEMA_VERSION = 1
LOSSY_CODECS = ("fp16", "int8")
TIMING_SAMPLES = 8
EXACT_SECONDS = 120.0  # without --max-seconds: every choice is run when that takes at most this long


def measure(loaded: LoadedModel, dataset: Dataset, metric: str | None = None,
            which: tuple[str, ...] = ("fp16", "int8"), memory_bandwidth_bps: float | None = None,
            progress: Callable[[int], None] = lambda n: None, max_seconds: float | None = None,
            exact: bool = False, confirm: frozenset[tuple[str, str]] = frozenset(),
            composition: composed.Composition | None = None, check: Dataset | None = None) -> dict:
    """The sensitivity document of `loaded` on `dataset` for the precisions in `which`;
    `memory_bandwidth_bps`: this host's (its device profile `local`), recorded so the planner can
    scale the codecs' measured times to other devices (None: they are not scaled but modelled).
    Every choice is run on the whole model when that fits the time (`max_seconds`, default
    EXACT_SECONDS) or `exact`; otherwise probes (edgepart.compress.estimate): the choices at evenly
    spread tensors are run, and every other choice's drop is estimated from the size of the change it
    makes and the probes' gains, marked `estimated`. With `max_seconds` and `exact`, measuring stops
    then (the layers nearest the input first) and `coverage` says how many of how many.
    `confirm`: choices a plan picked ((layer, precision) or ("tensor:<name>", codec)): run on the
    whole model even where an estimate would do or was cached; `confirmed` lists each with its
    earlier estimate, so the estimate's error on the plan's own choices is on record.
    `composition`: that plan's choices together (edgepart.compress.composed), run once they are all
    measured: their cost together beside the sum of their costs alone joins `composed` (with the
    records of earlier plans on this model and data, the planner's correction of its sum), on `check`
    (default `dataset`): one run a sample, so it may take more samples than the choices alone."""
    metric = metric or ("accuracy" if dataset.labels is not None else "cosine")
    if metric == "accuracy" and dataset.labels is None:
        raise BadInputError(f"{dataset.source}: metric 'accuracy' needs an array named 'labels'")
    start = time.perf_counter()
    model = named_model(loaded)
    reference = run(model, dataset)
    score = scorer(metric, reference, dataset.labels, dataset.source)
    baseline = score(reference)
    if metric == "cosine" and baseline < 0.5:  # cosine(x, x) is 1 unless x is zero
        raise BadInputError(f"{dataset.source}: the model's outputs are zero for {100 * (1 - baseline):.0f}% of the "
                            "samples, where cosine similarity measures nothing (a zero-initialised classifier "
                            "head?); give inputs and a model whose outputs respond, or --metric agreement")
    graph = loaded.graph
    coded = _float_tensors(loaded)
    layer_outputs = {n.name: [t for t in n.outputs if graph.tensors.get(t) and graph.tensors[t].dtype == "float32"]
                     for n in graph.layers}
    injectable = injection.Injectable(model, {t: graph.tensors[t].shape
                                              for t in {*coded, *(t for ts in layer_outputs.values() for t in ts)}})
    position = {t: i for i, layer in enumerate(graph.layers) for t in layer.outputs}
    producer = {t: layer.name for layer in graph.layers for t in layer.outputs}
    gains = estimate.Gains()

    def where(perturbation: dict[str, np.ndarray]) -> tuple[int, str]:
        """The position in the model's order and the role of the layer where a change enters."""
        first = min(perturbation, key=lambda name: position.get(name, 0))  # graph inputs come first
        return position.get(first, 0), estimate.role(graph, producer.get(first))

    def exact_drop(kind: str, perturbation: dict[str, np.ndarray], values: dict[str, np.ndarray]) -> float:
        if not any(delta.any() for delta in perturbation.values()):
            return 0.0  # nothing changes: nothing to run
        found = float(baseline - score(injectable.run(dataset, perturbation)))
        at, role = where(perturbation)
        gains.add(kind, at, found, estimate.relative_energy(perturbation, values), role)
        return found

    def estimated_drop(kind: str, perturbation: dict[str, np.ndarray], values: dict[str, np.ndarray]) -> float:
        if not all(np.isfinite(delta).all() for delta in perturbation.values()):
            return exact_drop(kind, perturbation, values)  # NaN or inf is no small change: run it
        at, role = where(perturbation)
        guess = gains.drop(kind, at, estimate.relative_energy(perturbation, values), role)
        return min(guess, baseline - WORST_SCORE[metric])

    estimated_drop.estimated = True  # its entries say so

    nodes = {node.name: node for node in model.graph.node}
    weights = {init.name: init for init in model.graph.initializer}
    cache = MeasuredBefore(loaded, dataset, metric, keep_estimates=not exact)
    layers, tensors = cache.layers, cache.tensors
    earlier = _forget_estimates(layers, tensors, confirm)
    # Groups in the model's order: the graph inputs a codec may carry, then each layer with the
    # tensors its measurement reads; those measured before are not captured or run again.
    todo: list[tuple[str | None, list[str], list[str]]] = []  # (layer or None, tensors to capture, coded ones)
    first = [t for t in coded if graph.tensors[t].producer not in layer_outputs and t not in tensors]
    if first:
        todo.append((None, first, first))
    for layer in graph.layers:
        fresh = [t for t in layer_outputs[layer.name] if t in coded and t not in tensors]
        if all(p in layers.get(layer.name, {}) for p in which) and not fresh:
            continue
        inputs = [t for t in nodes[layer.name].input if t and t not in weights]
        todo.append((layer.name, [*dict.fromkeys([*inputs, *layer_outputs[layer.name]])], fresh))
    done = _already(layers, tensors, graph, coded, which)
    progress(done)
    budget = max_seconds if max_seconds is not None else EXACT_SECONDS
    choices = steps(loaded, which) - done
    probe_every = 1
    if todo and not exact:  # one run of the injectable model, timed, sizes the probes
        timed = time.perf_counter()
        injectable.run(dataset)
        run_s = time.perf_counter() - timed
        probe_every = estimate.probe_spacing(choices, len(todo), run_s, budget - (time.perf_counter() - start))
    nbytes = {t: graph.tensors[t].nbytes if t in graph.tensors else 0 for _, group, _ in todo for t in group}

    def measure_groups(groups: list[tuple[str | None, list[str], list[str]]], drop) -> None:
        nonlocal done
        captures = injection.captured(model, dataset, [group for _, group, _ in groups], nbytes)
        for (owner, _, fresh), (_, values) in zip(groups, captures):
            if exact and max_seconds is not None and time.perf_counter() - start > max_seconds:
                break
            if owner is not None:
                entry = layers.setdefault(owner, {})
                missing = tuple(p for p in which if p not in entry)
                _layer_choices(model, nodes[owner], weights, values, layer_outputs[owner], missing, drop, entry)
                done += len(missing)
                progress(len(missing))
            for name in fresh:
                tensors[name] = _tensor_choices(name, values, graph.tensors[name].nbytes, drop)
                done += len(LOSSY_CODECS)
                progress(len(LOSSY_CODECS))
            cache.save_now_and_then()

    def run_in_full(i: int, group: tuple[str | None, list[str], list[str]]) -> bool:
        owner, _, fresh = group
        return i % probe_every == 0 or any((owner, p) in confirm for p in which) or any(
            (f"tensor:{t}", c) in confirm for t in fresh for c in LOSSY_CODECS)

    try:  # the probes and confirmed choices first (every choice of their groups run), then the rest
        measure_groups([g for i, g in enumerate(todo) if run_in_full(i, g)], exact_drop)
        if probe_every > 1:
            measure_groups([g for i, g in enumerate(todo) if not run_in_full(i, g)], estimated_drop)
        if composition is not None:
            alone = sum(_drop_of(layers, tensors, key, choice) or 0.0 for key, choice in composition.choices)
            cache.add_composed(composed.cost(model, composition, check or dataset, metric, alone,
                                             reference if check is None else None),
                               composition.choices)
    finally:
        cache.save()
    total = steps(loaded, which)
    return schema.document("sensitivity", SCHEMA_VERSION, {
        "model": {"path": str(loaded.path), "sha256": loaded.sha256},
        "data": dataset.describe(),
        "metric": {"name": metric, "description": METRICS[metric], "fp32": float(baseline)},
        "method": "each choice alone on the whole model, as a perturbation added to one tensor in one onnxruntime "
                  "session (edgepart.compress.injection); int8: the layer alone through onnxruntime static QDQ "
                  "(uint8 activations, int8 weights, min-max ranges of its inputs); fp16: the layer alone through "
                  "onnxruntime's float16 converter; codecs: the runtime's encode/decode on the fp32 values"
                  + (f"; run for every {probe_every}th group of choices, the others estimated as gain x relative "
                     "energy of their change (edgepart.compress.estimate)" if probe_every > 1 else ""),
        "coverage": {"measured": done, "choices": total, "complete": done >= total,
                     "estimated": probe_every > 1, **({"probe_every": probe_every} if probe_every > 1 else {}),
                     **({"max_seconds": max_seconds} if max_seconds is not None else {})},
        "host": {**host_description(), "memory_bandwidth_bps": memory_bandwidth_bps},
        "versions": {"edgepart": __version__},
        "seconds": time.perf_counter() - start,
        **({"confirmed": [{"layer" if not key.startswith("tensor:") else "tensor": key.removeprefix("tensor:"),
                            "choice": choice, "estimate": estimate_was,
                            "run": _drop_of(layers, tensors, key, choice)}
                           for (key, choice), estimate_was in sorted(earlier.items())]} if confirm else {}),
        **({"composed": cache.composed} if cache.composed else {}),
        "layers": {name: {p: entry[p] for p in which if p in entry} for name, entry in layers.items()
                   if any(p in entry for p in which)},
        "tensors": {name: entry for name, entry in tensors.items() if name in coded},
    })


def _forget_estimates(layers: dict, tensors: dict, confirm: frozenset) -> dict[tuple[str, str], float | None]:
    """Drop the cached estimates of the choices to confirm (so they are run); each choice's earlier
    estimate, None where there was none."""
    earlier: dict[tuple[str, str], float | None] = {}
    for key, choice in confirm:
        if key.startswith("tensor:"):
            entry = tensors.get(key.removeprefix("tensor:"), {}).get("codecs", {}).get(choice, {})
            if entry.get("estimated"):
                del tensors[key.removeprefix("tensor:")]
        else:
            entry = layers.get(key, {}).get(choice, {})
            if entry.get("estimated"):
                del layers[key][choice]
        earlier[(key, choice)] = entry.get("drop") if entry.get("estimated") else None
    return earlier


def _drop_of(layers: dict, tensors: dict, key: str, choice: str) -> float | None:
    entry = (tensors.get(key.removeprefix("tensor:"), {}).get("codecs", {}) if key.startswith("tensor:")
             else layers.get(key, {})).get(choice, {})
    return entry.get("drop")


def _already(layers: dict, tensors: dict, graph, coded: list[str], which: tuple[str, ...]) -> int:
    """Choices measured before (from the cache), counted as `steps` counts them."""
    return (sum(1 for layer in graph.layers for p in which if p in layers.get(layer.name, {}))
            + len(LOSSY_CODECS) * sum(1 for t in coded if t in tensors))


class MeasuredBefore:
    """Choices measured before on this model, data and metric, kept in EDGEPART_CACHE/sensitivity/:
    a rerun, or one after a run cut short by --max-seconds, measures only what is missing. Keyed by
    the model's and the data's sha256, the metric, and the source of the code that measures (a
    changed method never reads an old result)."""

    SAVE_EVERY_S = 10.0

    def __init__(self, loaded: LoadedModel, dataset: Dataset, metric: str, keep_estimates: bool = True) -> None:
        """`keep_estimates`: False for an exact run, which measures what was only estimated before."""
        digest = hashlib.sha256()
        for name in sorted(dataset.inputs):
            array = np.ascontiguousarray(dataset.inputs[name])
            digest.update(f"{name}:{array.dtype}:{array.shape}".encode())
            digest.update(array.tobytes())
        if dataset.labels is not None:
            digest.update(np.ascontiguousarray(dataset.labels).tobytes())
        method = hashlib.sha256(b"".join(Path(module.__file__).read_bytes()
                                         for module in (sys.modules[__name__], injection, codecs, quantize_module,
                                                        precisions, composed))).hexdigest()
        key = hashlib.sha256(json.dumps([loaded.sha256, digest.hexdigest(), metric, method]).encode())
        self.path = cache_dir() / "sensitivity" / f"{key.hexdigest()[:32]}.json"
        found = {}
        try:
            found = json.loads(self.path.read_text())
        except (OSError, ValueError):
            pass  # nothing measured before, or a file cut short: measure again
        self.layers: dict[str, dict] = found.get("layers", {}) if isinstance(found, dict) else {}
        self.tensors: dict[str, dict] = found.get("tensors", {}) if isinstance(found, dict) else {}
        self.composed: list[dict] = found.get("composed", []) if isinstance(found, dict) else []
        if not keep_estimates:
            self.layers = {name: {p: r for p, r in entry.items() if not r.get("estimated")}
                           for name, entry in self.layers.items()}
            self.tensors = {name: entry for name, entry in self.tensors.items()
                            if not any(r.get("estimated") for r in entry["codecs"].values())}
        self._saved = time.monotonic()

    def save_now_and_then(self) -> None:
        if time.monotonic() - self._saved > self.SAVE_EVERY_S:
            self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        schema.write_atomic(str(self.path), json.dumps({"layers": self.layers, "tensors": self.tensors,
                                                        "composed": self.composed}))
        self._saved = time.monotonic()

    def add_composed(self, record: dict, choices: frozenset[tuple[str, str]]) -> None:
        """A plan's choices run together, replacing an earlier run of the same choices."""
        key = hashlib.sha256(json.dumps(sorted(choices)).encode()).hexdigest()[:16]
        self.composed = [r for r in self.composed if r.get("key") != key] + [{"key": key, **record}]


def _layer_choices(model: onnx.ModelProto, node: onnx.NodeProto, weights: dict[str, onnx.TensorProto],
                   values: dict[str, np.ndarray], outputs: list[str], which: tuple[str, ...], drop: Callable,
                   entry: dict) -> None:
    """One layer's precisions measured into `entry`."""
    subgraphs = any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)
    if subgraphs or not outputs or not which:
        return  # nothing left to measure, or nothing to lower (subgraphs, no float output): not a choice
    alone = injection.LayerAlone(model, node, weights, {t: values[t] for t in node.input if t in values},
                                 {t: values[t] for t in outputs})
    for precision in which:
        delta, applies = alone.delta(precision)
        entry[precision] = {"drop": drop(f"layer {precision}", delta, values) if applies else 0.0}
        if precision == "int8":
            entry[precision]["applies"] = applies
        if applies and getattr(drop, "estimated", False):
            entry[precision]["estimated"] = True


def _tensor_choices(name: str, values: dict[str, np.ndarray], nbytes: int, drop: Callable) -> dict:
    """One tensor's codecs: wire bytes and times on this host, and each lossy codec's drop."""
    entry = {codec: _wire(values[name][:TIMING_SAMPLES], codec) for codec in codecs.CODECS}
    for codec in LOSSY_CODECS:
        lossy = drop(f"codec {codec}", {name: injection.codec_delta(values[name], codec)}, values)
        for full in codecs.CODECS:
            if codecs.base(full) == codec:
                entry[full]["drop"] = lossy
                if getattr(drop, "estimated", False):
                    entry[full]["estimated"] = True
    return {"bytes": nbytes, "codecs": entry}


def steps(loaded: LoadedModel, which: tuple[str, ...]) -> int:
    """How many variants `measure` runs (for a progress bar)."""
    return len(loaded.graph.layers) * len(which) + len(_float_tensors(loaded)) * len(LOSSY_CODECS)


@dataclass(frozen=True)
class Sensitivity(schema.Document):
    """A sensitivity document, checked field by field (_check), and what the planner asks of it."""

    KIND: ClassVar[str] = "sensitivity"
    VERSION: ClassVar[int] = SCHEMA_VERSION

    @classmethod
    def load(cls, path: str | os.PathLike, loaded: LoadedModel | None = None) -> Sensitivity:
        """The file at `path`; with `loaded`, refused when measured on another model (both hashes named)."""
        found = super().load(path)
        return found.of_model(loaded) if loaded is not None else found

    @classmethod
    def check(cls, doc: Any, source: str) -> None:
        _check(doc, source)

    def of_model(self, loaded: LoadedModel) -> Sensitivity:
        if self.doc["model"]["sha256"] != loaded.sha256:
            raise BadInputError(f"{self.source}: sensitivity of model sha256 {self.doc['model']['sha256'][:12]}, but "
                                f"{loaded.path} has sha256 {loaded.sha256[:12]}; measure this model")
        for key, known in (("layers", {n.name for n in loaded.graph.layers}), ("tensors", set(loaded.graph.tensors))):
            ghost = sorted(set(self.doc[key]) - known)
            if ghost:
                raise BadInputError(f"{self.source}: {key}.{ghost[0]}: not a {key[:-1]} of {loaded.path}")
        return self

    def dump(self, path: str | os.PathLike) -> None:
        schema.write_json(str(path), self.doc)

    @property
    def metric(self) -> dict:
        return self.doc["metric"]

    @property
    def data(self) -> dict:
        return self.doc["data"]

    @property
    def host_memory_bandwidth(self) -> float | None:
        return self.doc["host"].get("memory_bandwidth_bps")

    def layer_choices(self) -> Iterator[tuple[str, str, float, bool]]:
        """(layer, precision, accuracy drop, whether onnxruntime quantises the layer at all)."""
        for name, entry in self.doc["layers"].items():
            for precision, result in entry.items():
                yield name, precision, float(result["drop"]), bool(result.get("applies", True))

    def interaction(self) -> tuple[float, dict | None]:
        """How much more the choices of a plan cost together than alone, at worst (>= 1: the upper
        95% bound of the composed drop over the sum of the drops alone, over every composed run on
        record), and the record it comes from (None: no run, or none costing more than its sum)."""
        worst, basis = 1.0, None
        for record in self.doc.get("composed", []):
            if record["alone"] > 0 and record["bound"] / record["alone"] > worst:
                worst, basis = record["bound"] / record["alone"], record
        return worst, basis

    def codec_choices(self) -> Iterator[tuple[str, str, dict]]:
        """(tensor, codec, measurement: bytes, encode_s, decode_s and, for a lossy codec, drop)."""
        for name, entry in self.doc["tensors"].items():
            for codec, result in entry["codecs"].items():
                yield name, codec, result


MAX_DROP = 2.0  # a metric's drop: accuracy falls by at most 1, cosine similarity by at most 2
MAX_BYTES = 2**50
MAX_CODEC_S = 3600.0


def _check(doc: dict, path: str) -> None:
    """Every field the planner reads, named with the file when it is missing, not a number or out of range."""
    def table(value, where: str) -> dict:
        if not isinstance(value, dict):
            raise BadInputError(f"{path}: {where}: expected a table; write the file with edgepart sensitivity -o")
        return value

    table(doc.get("model"), "model")
    if not isinstance(doc["model"].get("sha256"), str):
        raise BadInputError(f"{path}: model.sha256: missing; write the file with edgepart sensitivity -o")
    checks.text(doc["model"]["sha256"], f"{path}: model.sha256")
    metric = table(doc.get("metric"), "metric")
    if not isinstance(metric.get("name"), str) or metric["name"] not in METRICS:
        raise BadInputError(f"{path}: metric.name: unknown {metric.get('name')!r}; known: {', '.join(METRICS)}")
    for key in ("fp32",):
        if key in metric:
            checks.number(metric[key], f"{path}: metric.{key}")
    table(doc.get("data"), "data")
    bandwidth = table(doc.get("host"), "host").get("memory_bandwidth_bps")
    checks.optional_number(bandwidth, f"{path}: host.memory_bandwidth_bps", above=0)
    for name, entry in table(doc.get("layers"), "layers").items():
        for precision, result in table(entry, f"layers.{name}").items():
            if precision not in ("fp16", "int8"):
                raise BadInputError(f"{path}: layers.{name}: unknown precision '{precision}'; known: fp16, int8")
            if not isinstance(table(result, f"layers.{name}.{precision}").get("applies", True), bool):
                raise BadInputError(f"{path}: layers.{name}.{precision}.applies: expected true or false")
            checks.number(table(result, f"layers.{name}.{precision}").get("drop"), f"{path}: layers.{name}.{precision}"
                          ".drop", least=-MAX_DROP, most=MAX_DROP)
    _check_composed(doc.get("composed", []), path)
    for name, entry in table(doc.get("tensors"), "tensors").items():
        for codec, result in table(table(entry, f"tensors.{name}").get("codecs"), f"tensors.{name}.codecs").items():
            where = f"{path}: tensors.{name}.codecs.{codec}"
            if codec not in codecs.CODECS:
                raise BadInputError(f"{where}: unknown codec; known: {', '.join(codecs.CODECS)}")
            table(result, f"tensors.{name}.codecs.{codec}")
            checks.number(result.get("bytes"), f"{where}.bytes", least=0, most=MAX_BYTES)
            for key in ("encode_s", "decode_s"):
                checks.number(result.get(key), f"{where}.{key}", least=0, most=MAX_CODEC_S)
            if "drop" in result:
                checks.number(result["drop"], f"{where}.drop", least=-MAX_DROP, most=MAX_DROP)


def _check_composed(records: Any, path: str) -> None:
    if not isinstance(records, list):
        raise BadInputError(f"{path}: composed: expected a list; write the file with edgepart sensitivity -o")
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise BadInputError(f"{path}: composed[{i}]: expected a table")
        for key in ("alone", "together", "bound"):
            checks.number(record.get(key), f"{path}: composed[{i}].{key}", least=-MAX_DROP, most=2 * MAX_DROP)


def _float_tensors(loaded: LoadedModel) -> list[str]:
    """Tensors that may cross a link (consumed by a layer) and that a lossy codec changes."""
    return [t.name for t in loaded.graph.tensors.values()
            if t.dtype == "float32" and any(not c.startswith("output:") for c in t.consumers)]


def _wire(samples: np.ndarray, codec: str) -> dict:
    """Mean bytes on the wire and median encode/decode seconds over the samples, on this host."""
    sizes, encode, decode = [], [], []
    for value in samples:
        t0 = time.perf_counter()
        payload, meta = codecs.encode(value, codec)
        t1 = time.perf_counter()
        codecs.decode(payload, meta)
        decode.append(time.perf_counter() - t1)
        encode.append(t1 - t0)
        sizes.append(len(payload) + codecs.HEADER_BYTES[meta["codec"]])
    return {"bytes": float(np.mean(sizes)), "encode_s": statistics.median(encode),
            "decode_s": statistics.median(decode)}
