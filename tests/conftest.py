"""Tiny models built in code (never downloaded), shared by the tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
EXAMPLE_MODELS = sorted(MODELS.glob("*.onnx"))


def make_model(nodes, inputs, outputs, initializers=(), opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "test", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def vi(name: str, shape, elem_type=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem_type, shape)


def weight(name: str, shape, seed: int = 0) -> onnx.TensorProto:
    return numpy_helper.from_array(np.random.default_rng(seed).standard_normal(shape).astype(np.float32), name)


@pytest.fixture
def chain_model() -> onnx.ModelProto:
    """x -> Conv -> Relu -> GlobalAveragePool -> y"""
    return make_model(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"], name="relu"),
            helper.make_node("GlobalAveragePool", ["r"], ["y"], name="gap"),
        ],
        [vi("x", [1, 3, 8, 8])], [vi("y", [1, 4, 1, 1])], [weight("w", (4, 3, 3, 3))],
    )


@pytest.fixture
def diamond_model() -> onnx.ModelProto:
    """x -> a -> (b, c) -> d: tensor `a` has two consumers. Nodes are unnamed on purpose."""
    return make_model(
        [
            helper.make_node("Relu", ["x"], ["a"]),
            helper.make_node("Sigmoid", ["a"], ["b"]),
            helper.make_node("Tanh", ["a"], ["c"]),
            helper.make_node("Add", ["b", "c"], ["d"]),
        ],
        [vi("x", [2, 16])], [vi("d", [2, 16])],
    )


@pytest.fixture
def fanout_model() -> onnx.ModelProto:
    """One tensor read by three nodes, which a Sum joins."""
    return make_model(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"], name="proj"),
            helper.make_node("Relu", ["h"], ["r1"], name="left"),
            helper.make_node("Neg", ["h"], ["r2"], name="middle"),
            helper.make_node("Abs", ["h"], ["r3"], name="right"),
            helper.make_node("Sum", ["r1", "r2", "r3"], ["y"], name="join"),
        ],
        [vi("x", [4, 8])], [vi("y", [4, 6])], [weight("w", (8, 6))],
    )


@pytest.fixture
def dynamic_batch_model(chain_model) -> onnx.ModelProto:
    model = onnx.ModelProto()
    model.CopyFrom(chain_model)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    return model


def deployment(device: str = "local", target: str = "x86-64", backends=("onnxruntime",), edge: bool = True,
               link: str = 'preset = "wifi"', codecs=None, extra: str = "") -> str:
    """A deployment file's text: a `device` tier and, with `edge`, this host as the onnxruntime edge
    over `link` (the [[link]] table's settings); `codecs` the tensors may cross in; `extra`
    appended ([pins], budgets)."""
    text = '[deploy]\noutput_tier = "device"\n' + (f"codecs = {json.dumps(list(codecs))}\n" if codecs else "")
    text += (f'[[tier]]\nname = "device"\ndevice = "{device}"\ntarget = "{target}"\n'
             f"backends = {json.dumps(list(backends))}\n")
    if edge:
        text += ('[[tier]]\nname = "edge"\ndevice = "local"\ntarget = "x86-64"\nbackends = ["onnxruntime"]\n'
                 f'[[link]]\nfrom = "device"\nto = "edge"\n{link}\n')
    return text + extra
