"""Read an ONNX model from disk, fix its input shapes and infer every tensor's static shape.

Weights are never needed for shapes: inference runs on a skeleton copy whose large initializers
keep their dims but drop their data, which keeps it fast and lets models stored with external
data (over 2 GB) load without reading the weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import external_data_helper

from edgepart.errors import BadInputError, first_line
from edgepart.graph import feeds as seeded_feeds
from edgepart.graph import sessions

FLOAT_TYPES = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.FLOAT16: np.float16,
               onnx.TensorProto.DOUBLE: np.float64}

# Initializers at most this large keep their data in the skeleton: shape tensors for Reshape,
# Slice starts and the like, which shape inference needs to propagate values.
_SMALL_INITIALIZER_BYTES = 4096

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TensorType:
    """Static shape and numpy dtype name of one tensor."""

    shape: tuple[int, ...]
    dtype: str
    # read off a run and changing with the input values (a size or axes given as an input): the shape
    # seen with integer inputs of zeros, for costs; sub-models leave it to the runtime
    value_dependent: bool = False


def read_model(path: str | Path) -> onnx.ModelProto:
    """Load `path` as an ONNX model (external data stays on disk) and check its structure."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: no such file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeWarning, ValueError) as exc:
        raise BadInputError(f"{path}: not a readable ONNX model ({first_line(exc)})") from None
    if model.ir_version == 0 or not model.HasField("graph") or not model.graph.node:
        raise BadInputError(f"{path}: not an ONNX model (no graph found; truncated or another format?)")
    if model.graph.sparse_initializer:
        raise BadInputError(f"{path}: sparse initializer '{model.graph.sparse_initializer[0].values.name}': sparse "
                            "weights are not supported; store them dense")
    if not graph_input_names(model):
        raise BadInputError(f"{path}: the model has no inputs (every graph input is an initializer): its outputs are "
                            "constants, there is nothing to run or split")
    _check_weights_are_numbers(model, path)
    try:
        _check_external_data(model, path.parent)
    except ValueError as exc:  # onnx's reading of a malformed location, offset or length
        raise BadInputError(f"{path}: invalid external data reference ({first_line(exc)})") from None
    newest = onnx.defs.onnx_opset_version()
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version > newest:
            raise BadInputError(f"{path}: opset {opset.version} of the default domain; this onnx {onnx.__version__} "
                                f"knows opsets up to {newest}")
    try:
        # in memory unless weights live beside the model, which only the checker's path form finds
        onnx.checker.check_model(str(path) if _external_locations(model) else model)
    except onnx.checker.ValidationError as exc:
        raise BadInputError(f"{path}: invalid ONNX model: {first_line(exc)}") from None
    return model


def model_sha256(path: str | Path, model: onnx.ModelProto | None = None) -> str:
    """sha256 over the model file and, in name order, the external data files it references
    (`model`: the file already loaded without external data, to save reading it again)."""
    path = Path(path)
    digest = hashlib.sha256()
    _hash_file(path, digest)
    model = model if model is not None else onnx.load(str(path), load_external_data=False)
    for location in sorted(_external_locations(model)):
        _hash_file(path.parent / location, digest)
    return digest.hexdigest()


def graph_input_names(model: onnx.ModelProto) -> list[str]:
    """Real inputs: graph inputs that are not initializers (old exporters list weights as inputs)."""
    weights = {init.name for init in model.graph.initializer}
    return [vi.name for vi in model.graph.input if vi.name not in weights]


def fix_input_shapes(
    model: onnx.ModelProto, overrides: dict[str, tuple[int, ...]], source: str
) -> onnx.ModelProto:
    """Return a copy whose real inputs all have static shapes, applying `overrides` by input name.

    Raises BadInputError naming the input and dimension that stays dynamic.
    """
    names = graph_input_names(model)
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise BadInputError(
            f"{source}: --input-shape names {', '.join(unknown)}, but the model's inputs are "
            f"{', '.join(names)}"
        )
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for vi in fixed.graph.input:
        if vi.name not in names:
            continue
        dims = vi.type.tensor_type.shape.dim
        if vi.name in overrides:
            new_shape = overrides[vi.name]
            if dims and len(dims) != len(new_shape):
                raise BadInputError(
                    f"{source}: --input-shape {vi.name} has rank {len(new_shape)}, "
                    f"the model's input has rank {len(dims)}"
                )
            for axis, (dim, size) in enumerate(zip(dims, new_shape)):
                if dim.HasField("dim_value") and dim.dim_value > 0 and dim.dim_value != size:
                    raise BadInputError(f"{source}: --input-shape {vi.name}: axis {axis} is {dim.dim_value} in the "
                                        f"model, not {size}; only dynamic dimensions can be fixed")
            vi.type.tensor_type.shape.ClearField("dim")
            for size in new_shape:
                vi.type.tensor_type.shape.dim.add().dim_value = size
            continue
        if not vi.type.tensor_type.HasField("shape"):
            raise BadInputError(
                f"{source}: input '{vi.name}' has no shape; give one with --input-shape {vi.name}=1x3x224x224"
            )
        for axis, dim in enumerate(dims):
            if not dim.HasField("dim_value") or dim.dim_value < 0:  # 0 is an empty tensor, not unknown
                label = dim.dim_param or "?"
                shape = "x".join(str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in dims)
                raise BadInputError(
                    f"{source}: input '{vi.name}' has dynamic dimension '{label}' at axis {axis} "
                    f"(shape {shape}); fix it with --input-shape {vi.name}=" + "x".join(
                        str(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else "1" for d in dims
                    )
                )
    return fixed


def infer_tensor_types(model: onnx.ModelProto, source: str, base_dir: Path | None = None) -> dict[str, TensorType]:
    """Static shape and dtype of every tensor in the main graph, initializers included.

    ONNX shape inference first; tensors it leaves unknown (operators it does not know, such as
    onnxruntime's contrib ops) are read off one onnxruntime run on seeded inputs. Raises
    BadInputError when neither gives a static shape.
    """
    skeleton = _skeleton(model)
    strict_failure = None
    try:
        inferred = onnx.shape_inference.infer_shapes(skeleton, strict_mode=True, data_prop=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as exc:
        # ONNX's own inference fails on some valid models (the function body of MeanVarianceNormalization
        # in onnx 1.23): what it can infer, and onnxruntime's run for the rest, decide
        strict_failure = f"{source}: shape inference failed: {first_line(exc)}"
        try:
            inferred = onnx.shape_inference.infer_shapes(skeleton, strict_mode=False, data_prop=True)
        except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError):
            raise BadInputError(strict_failure) from None
    types: dict[str, TensorType] = {}
    for init in model.graph.initializer:
        types[init.name] = TensorType(tuple(init.dims), _dtype_name(init.data_type))
    graph = inferred.graph
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        tensor_type = _static_type(vi)
        if tensor_type is not None:
            types.setdefault(vi.name, tensor_type)
    missing = _missing(model, types)
    if missing:
        probed = _probe_with_onnxruntime(model, missing, base_dir)
        varying = _value_dependent(model, [*probed, *(o.name for o in model.graph.output)], base_dir, source)
        types.update(probed)
        for name in varying:
            types[name] = dataclasses.replace(types[name], value_dependent=True)
    if strict_failure and _missing(model, types):
        raise BadInputError(strict_failure)
    _require_all_static(model, types, source)
    return types


def _missing(model: onnx.ModelProto, types: dict[str, TensorType]) -> list[str]:
    return [name for node in model.graph.node for name in node.output if name and name not in types]


def _value_dependent(model: onnx.ModelProto, names: list[str], base_dir: Path | None, source: str) -> list[str]:
    """The tensors among `names` whose shapes the input values set: a shape read off a run is the
    model's only if they do not (a model whose integer inputs are sizes or axes, CenterCropPad's
    `shape` or a reduction's `axes`, gets other shapes from other values). They are run with integer
    inputs of zeros and of ones; the ones whose shapes differ are returned, with a warning."""
    if not names or not any(vi.type.tensor_type.elem_type in INTEGER_TYPES for vi in model.graph.input):
        return []
    zeros = _probe_with_onnxruntime(model, names, base_dir)
    ones = _probe_with_onnxruntime(model, names, base_dir, integers=1, seed=1)
    changed = [n for n in names if n in zeros and n in ones and zeros[n].shape != ones[n].shape]
    if changed:
        log.warning("%s: the shape of tensor '%s' changes with the input values (%s with integer inputs of zeros, %s "
                    "with ones)%s; costs are for the shapes seen with zeros, and tiers compute them when they run",
                    source, changed[0], list(zeros[changed[0]].shape), list(ones[changed[0]].shape),
                    f", and {len(changed) - 1} more" if len(changed) > 1 else "")
    return changed


def _probe_with_onnxruntime(model: onnx.ModelProto, names: list[str], base_dir: Path | None,
                            integers: int = 0, seed: int = 0) -> dict[str, TensorType]:
    """Shapes and dtypes of `names` from running the model once (seeded floats, integer inputs all
    `integers`); {} when onnxruntime cannot run it."""

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    if base_dir is not None:
        external_data_helper.load_external_data_for_model(probe, str(base_dir))
    known = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names if n not in known)
    try:
        session = sessions.session(probe)
        feeds = {name: np.full_like(value, integers) if value.dtype.kind in "iu" else value
                 for name, value in seeded_feeds.for_session(session, seed).items()}
        values = session.run(names, feeds)
    except Exception:  # noqa: BLE001 - any onnxruntime failure means: no probe, report the missing shape
        return {}
    return {n: TensorType(tuple(v.shape), np.asarray(v).dtype.name) for n, v in zip(names, values)}


INTEGER_TYPES = {onnx.TensorProto.INT64, onnx.TensorProto.INT32, onnx.TensorProto.INT16, onnx.TensorProto.INT8,
                 onnx.TensorProto.UINT8}


def _static_type(vi: onnx.ValueInfoProto) -> TensorType | None:
    tt = vi.type.tensor_type
    if not vi.type.HasField("tensor_type") or not tt.HasField("shape"):
        return None
    dims = []
    for dim in tt.shape.dim:
        if not dim.HasField("dim_value") or dim.dim_value < 0:
            return None
        dims.append(dim.dim_value)
    return TensorType(tuple(dims), _dtype_name(tt.elem_type))


def _require_all_static(model: onnx.ModelProto, types: dict[str, TensorType], source: str) -> None:
    for node in model.graph.node:
        for name in node.output:
            if name and name not in types:
                raise BadInputError(
                    f"{source}: cannot infer a static shape for tensor '{name}' "
                    f"(output of {node.op_type} node '{node.name or name}'); "
                    "the model may need --input-shape or contain data-dependent shapes"
                )


def _dtype_name(elem_type: int) -> str:
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).name
    except (KeyError, TypeError, ValueError):
        return onnx.TensorProto.DataType.Name(elem_type).lower()


def _skeleton(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy without the data of large initializers (dims and dtype are kept)."""
    skeleton = onnx.ModelProto()
    skeleton.CopyFrom(model)
    for init in skeleton.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL or init.ByteSize() > _SMALL_INITIALIZER_BYTES:
            dims, data_type, name = list(init.dims), init.data_type, init.name
            init.Clear()
            init.name, init.data_type = name, data_type
            init.dims.extend(dims)
    return skeleton


def _external_locations(model: onnx.ModelProto) -> set[str]:
    locations = set()
    for tensor in external_data_helper._get_all_tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            info = external_data_helper.ExternalDataInfo(tensor)
            locations.add(info.location)
    return locations


def _check_weights_are_numbers(model: onnx.ModelProto, path: Path) -> None:
    """Float weights stored in the file are numbers: a NaN weight makes every output NaN, and the int8
    calibration and the accuracy checks after it meaningless. (Infinities stay: attention masks use them.)"""
    for init in model.graph.initializer:
        if init.data_type in FLOAT_TYPES and init.data_location != onnx.TensorProto.EXTERNAL:
            values = (np.frombuffer(init.raw_data, FLOAT_TYPES[init.data_type]) if init.raw_data
                      else np.asarray(init.float_data or init.double_data))
            if values.size and np.isnan(values).any():
                raise BadInputError(f"{path}: weight '{init.name}' holds NaN values")


def _check_external_data(model: onnx.ModelProto, folder: Path) -> None:
    for location in sorted(_external_locations(model)):
        if not os.path.isfile(os.path.realpath(folder / location)):
            raise BadInputError(f"{folder / location}: external data file of the model is missing")


def _hash_file(path: Path, digest: hashlib._Hash) -> None:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)


