"""ONNX model -> LayerGraph, and the facts about a model file every later stage records."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx

from edgepart.errors import BadInputError
from edgepart.graph.layergraph import GRAPH_INPUT, GRAPH_OUTPUT, LayerGraph, Node, Tensor, build
from edgepart.graph.load import (
    fix_input_shapes,
    graph_input_names,
    infer_tensor_types,
    model_sha256,
    read_model,
)
from edgepart.graph.shape_values import shape_values

__all__ = [
    "GRAPH_INPUT", "GRAPH_OUTPUT", "LayerGraph", "LoadedModel", "Node", "Tensor",
    "from_model", "graph_input_names", "load", "parse_input_shapes",
]


@dataclass(frozen=True)
class LoadedModel:
    """A model file with static shapes: its LayerGraph, the fixed ModelProto, and its identity."""

    path: Path
    sha256: str
    model: onnx.ModelProto
    graph: LayerGraph

    def describe(self) -> dict:
        """The `model` block shared by every JSON output: path, sha256, opset, inputs, outputs."""
        def io(names: tuple[str, ...]) -> list[dict]:
            return [
                {"name": n, "shape": list(self.graph.tensors[n].shape), "dtype": self.graph.tensors[n].dtype}
                for n in names
            ]

        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "opset": self.graph.opset,
            "inputs": io(self.graph.inputs),
            "outputs": io(self.graph.outputs),
        }


def load(path: str | Path, input_shapes: dict[str, tuple[int, ...]] | None = None) -> LoadedModel:
    """Read, check and shape an ONNX file; `input_shapes` fixes dynamic input dimensions."""
    path = Path(path)
    model = read_model(path)
    fixed = fix_input_shapes(model, input_shapes or {}, str(path))
    types = infer_tensor_types(fixed, str(path), path.parent)
    return LoadedModel(path, model_sha256(path, model), fixed, build(fixed, types, _shape_values(fixed, types)))


def from_model(model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]] | None = None) -> LayerGraph:
    """LayerGraph of an in-memory model (tests, generated models)."""
    source = model.graph.name or "<model>"
    fixed = fix_input_shapes(model, input_shapes or {}, source)
    types = infer_tensor_types(fixed, source)
    return build(fixed, types, _shape_values(fixed, types))


def _shape_values(model: onnx.ModelProto, types: dict) -> dict:
    return shape_values(model, {name: t.shape for name, t in types.items()})


def parse_input_shapes(specs: tuple[str, ...] | list[str]) -> dict[str, tuple[int, ...]]:
    """Parse `NAME=1x3x224x224` options into {name: shape}."""
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in specs:
        name, sep, dims = spec.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            shape = ()
        if not sep or not name or not shape or min(shape) <= 0:
            raise BadInputError(f"--input-shape '{spec}': expected NAME=DxDx..., e.g. input=1x3x224x224")
        if shapes.get(name, shape) != shape:
            raise BadInputError(f"--input-shape '{spec}': input '{name}' was given another shape before")
        shapes[name] = shape
    return shapes



