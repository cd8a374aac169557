"""int8 layers through onnxruntime's static quantisation in QDQ form (QuantizeLinear/DequantizeLinear
pairs around the chosen nodes), with activation ranges from calibration data. QDQ rather than
QOperator because TVM imports QDQ (it runs them as fake quantisation, docs/compression.md) and
onnxruntime fuses it into int8 kernels."""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path

import onnx

from edgepart.compress.data import Dataset
from edgepart.errors import ToolError


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a Dataset."""

    def __init__(self, dataset: Dataset, names: list[str]) -> None:
        self._samples = ({k: v for k, v in s.items() if k in names} for s in dataset.samples())

    def get_next(self) -> dict | None:
        return next(self._samples, None)

    def __iter__(self):
        return iter(self.get_next, None)


class Quantizer:
    """Quantise chosen nodes of one model to int8; ranges are calibrated once and reused (a cache
    file in a private temporary folder), so quantising layer after layer costs one calibration."""

    def __init__(self, model: onnx.ModelProto, calibration: Dataset) -> None:
        self.model = model
        self.calibration = calibration
        self._folder = tempfile.TemporaryDirectory(prefix="edgepart-quant-")
        self._cache = Path(self._folder.name) / "ranges.json"
        # a path, not the ModelProto: given a proto, quantize_static loses its weights on a second call
        self._source = Path(self._folder.name) / "model.onnx"
        onnx.save(model, self._source)

    def __enter__(self) -> Quantizer:
        return self

    def __exit__(self, *exc) -> None:
        self._folder.cleanup()

    def quantize(self, nodes: list[str]) -> onnx.ModelProto:
        """The model with `nodes` in int8 (QDQ); nodes onnxruntime cannot quantise stay fp32."""
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static  # noqa: PLC0415 - heavy

        out = Path(self._folder.name) / "quantized.onnx"
        reader = None if self._cache.exists() else _Reader(self.calibration, [i.name for i in self.model.graph.input])
        try:
            with _quiet():
                quantize_static(self._source, out, reader, quant_format=QuantFormat.QDQ,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                nodes_to_quantize=list(nodes), calibration_cache_path=self._cache)
        except Exception as exc:  # onnxruntime.quantization raises many types
            raise ToolError(f"int8 quantisation failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                            ) from None
        return fp32_for_the_others(onnx.load(out), set(nodes))


def fp32_for_the_others(model: onnx.ModelProto, chosen: set[str]) -> onnx.ModelProto:
    """onnxruntime quantises a tensor for every reader: a transformer's residual stream feeds the
    query, key and value products and the residual add, so putting the query product alone in int8
    would round what all of them read (on all-MiniLM-L6-v2, 47x the drop of the product alone).
    Here a reader that is not in int8 reads the fp32 value again; a chosen layer's own output stays
    quantised for every reader (an int8 layer produces 8-bit values). So a layer in int8 changes what
    that layer computes, the quantity sensitivity measures with the layer alone."""
    nodes = list(model.graph.node)
    producer = {out: node for node in nodes for out in node.output}
    original: dict[str, str] = {}  # DequantizeLinear output -> the tensor its QuantizeLinear read
    for node in nodes:
        quantise = producer.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if quantise is not None and quantise.op_type == "QuantizeLinear":
            source = producer.get(quantise.input[0])
            if source is None or source.name not in chosen:
                original[node.output[0]] = quantise.input[0]
    for node in nodes:
        if node.name not in chosen and node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            for i, name in enumerate(node.input):
                node.input[i] = original.get(name, name)
    return model


def quantized_nodes(model: onnx.ModelProto) -> set[str]:
    """The nodes of a QDQ model that compute in int8: every input dequantized, the output quantised."""
    dequantized = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    quantised = {i for n in model.graph.node if n.op_type == "QuantizeLinear" for i in n.input}
    return {n.name for n in model.graph.node
            if n.op_type not in ("QuantizeLinear", "DequantizeLinear")
            and all(i in dequantized for i in n.input if i) and any(o in quantised for o in n.output)}


@contextlib.contextmanager
def _quiet():
    """onnxruntime.quantization logs advice (pre-processing) at WARNING on every call."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
