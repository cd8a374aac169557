"""Calibration and held-out data: one .npz file, an array per model input named after it (samples
along the first axis, each reshaped to the input's shape, or one sample at exactly the input's shape)
and optionally `labels` (one class index per sample). Without a file, seeded inputs stand in (no labels)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort

from edgepart.errors import BadInputError, ToolError
from edgepart.graph import LoadedModel, sessions
from edgepart.graph import feeds as seeded_feeds

LABELS = "labels"


@dataclass(frozen=True)
class Dataset:
    source: str
    inputs: dict[str, np.ndarray]  # name -> [N, *input shape]
    labels: np.ndarray | None

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    def samples(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(len(self)):
            yield {name: np.asarray(array[i]) for name, array in self.inputs.items()}

    def head(self, n: int | None) -> Dataset:
        if n is None or n >= len(self):
            return self
        return Dataset(self.source, {k: v[:n] for k, v in self.inputs.items()},
                       None if self.labels is None else self.labels[:n])

    def describe(self) -> dict:
        return {"source": self.source, "samples": len(self), "labels": self.labels is not None}


def load(path: str, loaded: LoadedModel, option: str = "--data") -> Dataset:
    """Read `path` and check it against the model's inputs; errors name the file and the array."""
    return load_for(path, seeded_feeds.graph_specs(loaded.graph), option)


def load_for(path: str, specs: Sequence[tuple[str, Sequence[int], str]], option: str,
             nan_allowed: bool = False) -> Dataset:
    """Read `path` for inputs (name, shape, numpy dtype name), as edgepart.graph.feeds lists them for
    a model or an onnxruntime session: the one reader of every file of samples."""
    arrays = seeded_feeds.read_npz(path, option, nan_allowed)
    names = [name for name, _, _ in specs]
    inputs = {}
    for name, shape, dtype in specs:
        if name not in arrays:
            raise BadInputError(f"{option} {path}: no array named '{name}' (the model's inputs are "
                                f"{', '.join(names)}; arrays: {', '.join(sorted(arrays)) or 'none'})")
        if not all(isinstance(d, int) for d in shape):
            raise BadInputError(f"{option} {path}: input '{name}' has a dynamic shape {list(shape)}; give the "
                                "model static input shapes")
        shape, dtype = tuple(shape), np.dtype(dtype)
        samples = seeded_feeds.as_samples(arrays[name], shape)
        if samples is None:
            dims = ", ".join(map(str, shape))
            raise BadInputError(f"{option} {path}: '{name}' has shape {list(arrays[name].shape)}; expected [{dims}] "
                                f"(one sample) or [N, {dims}] (N samples along the first axis)")
        inputs[name] = seeded_feeds.as_dtype(samples, dtype, f"{option} {path}: '{name}'")
    counts = {len(a) for a in inputs.values()}
    labels = arrays.get(LABELS)
    if labels is not None:
        labels = labels.reshape(-1)
        counts.add(len(labels))
        if labels.dtype.kind == "f" and not np.array_equal(labels, np.round(labels)):
            raise BadInputError(f"{option} {path}: '{LABELS}' holds fractions; labels are class indices")
        labels = labels.astype(np.int64)
    if len(counts) != 1 or 0 in counts:
        raise BadInputError(f"{option} {path}: arrays hold different numbers of samples ({sorted(counts)})")
    return Dataset(path, inputs, labels)


def seeded(loaded: LoadedModel, samples: int, seed: int = 0) -> Dataset:
    """`samples` seeded inputs (edgepart.graph.feeds), no labels."""
    feeds = [seeded_feeds.for_graph(loaded.graph, seed + i) for i in range(samples)]
    return Dataset(f"seeded inputs (seed {seed})", {n: np.stack([f[n] for f in feeds]) for n in loaded.graph.inputs},
                   None)


def run(model: onnx.ModelProto, dataset: Dataset, outputs: list[str] | None = None) -> dict[str, np.ndarray]:
    """Run every sample through `model` with onnxruntime (one thread); {output: [N, ...]}.
    `outputs` may name any tensor of the model: it is exposed as an extra graph output."""
    if outputs is not None:
        model = expose(model, outputs)
    session = session_of(model)
    names = outputs or [o.name for o in session.get_outputs()]
    results: dict[str, list[np.ndarray]] = {n: [] for n in names}
    wanted = {i.name for i in session.get_inputs()}
    try:
        for sample in dataset.samples():
            for name, value in zip(names, session.run(names, {k: v for k, v in sample.items() if k in wanted})):
                results[name].append(value)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ToolError(f"onnxruntime failed on {dataset.source}: {str(exc).splitlines()[0]}") from None
    return {n: np.stack(v) for n, v in results.items()}


def expose(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy with `names` added to the graph outputs (types left to onnxruntime)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    present = {o.name for o in copy.graph.output}
    for name in names:
        if name not in present:
            copy.graph.output.append(onnx.ValueInfoProto(name=name))
    return copy


def session_of(model: onnx.ModelProto) -> ort.InferenceSession:
    """An onnxruntime session as the tiers run it (edgepart.graph.sessions.tier_session)."""
    try:
        return sessions.tier_session(model)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise BadInputError(f"onnxruntime cannot load the model: {(str(exc).splitlines() or [''])[0]}") from None
