"""onnxruntime sessions as edgepart runs them, and the model copy that names each node as the
LayerGraph does (so a profiler's kernels and a cut's nodes trace back to layers)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import onnx

from edgepart.errors import BadInputError

if TYPE_CHECKING:
    import onnxruntime as ort


class Loaded(Protocol):
    """What named_model needs of a loaded model (edgepart.graph.LoadedModel)."""

    model: onnx.ModelProto
    graph: Any

CPU = ["CPUExecutionProvider"]
QUIET = 4  # onnxruntime log severity: fatal only; edgepart reports its errors itself


def named_model(loaded: Loaded) -> onnx.ModelProto:
    """A copy whose ONNX nodes carry their LayerGraph names, so kernels can be traced back, with
    weights stored beside the model read in (a model handed over as bytes has no folder to find them)."""
    model = onnx.ModelProto()
    model.CopyFrom(loaded.model)
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        from onnx import external_data_helper  # noqa: PLC0415

        try:
            external_data_helper.load_external_data_for_model(model, str(Path(loaded.path).parent))
        except (ValueError, OSError) as exc:  # an offset or length past the end of the weights file
            raise BadInputError(f"{loaded.path}: its external weights cannot be read ({exc})") from None
    for node in loaded.graph.layers:
        model.graph.node[node.onnx_index].name = node.name
    return model


def ort_options() -> ort.SessionOptions:
    """onnxruntime as the tiers use it: one intra-op thread, sequential, all graph optimisations."""
    import onnxruntime as ort  # noqa: PLC0415

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    options.log_severity_level = QUIET
    return options


def session(model: onnx.ModelProto | str | os.PathLike, options: ort.SessionOptions | None = None
            ) -> ort.InferenceSession:
    """A CPU session of a model (a ModelProto or a path): every session edgepart opens comes from here.
    `options`: onnxruntime's defaults where None (a reference run of the original model)."""
    import onnxruntime as ort  # noqa: PLC0415

    # onnxruntime's own log lines (a load error, say) would precede edgepart's one-line message
    ort.set_default_logger_severity(QUIET)
    if options is None:
        options = ort.SessionOptions()
        options.log_severity_level = QUIET
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(source, options, providers=CPU)


def tier_session(model: onnx.ModelProto | str | os.PathLike) -> ort.InferenceSession:
    """A session of a model as a tier runs it (ort_options)."""
    return session(model, ort_options())
