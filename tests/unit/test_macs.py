"""MAC counts: published figures for standard architectures, and each counting rule."""

import pytest
from onnx import helper

from edgepart import graph
from tests import zoo
from tests.conftest import make_model, vi, weight


@pytest.mark.parametrize("build, published", [
    (zoo.resnet50, 4.09e9), (zoo.mobilenet_v2, 0.30e9), (zoo.vgg16, 15.5e9),
])
def test_published_mac_counts_within_2_percent(build, published):
    macs = graph.from_model(build()).totals()["macs"]
    assert abs(macs - published) / published < 0.02, macs


def _macs(node, inputs, outputs, initializers=()) -> int:
    return graph.from_model(make_model([node], inputs, outputs, initializers)).layers[0].macs


def test_depthwise_and_grouped_conv():
    node = helper.make_node("Conv", ["x", "w"], ["y"], group=8, pads=[1, 1, 1, 1])
    assert _macs(node, [vi("x", [1, 8, 10, 10])], [vi("y", [1, 8, 10, 10])], [weight("w", (8, 1, 3, 3))]) == 8 * 100 * 9
    node = helper.make_node("Conv", ["x", "w"], ["y"], group=2)
    assert _macs(node, [vi("x", [1, 8, 5, 5])], [vi("y", [1, 6, 5, 5])], [weight("w", (6, 4, 1, 1))]) == 6 * 25 * 4


def test_conv_transpose():
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2])
    macs = _macs(node, [vi("x", [1, 4, 5, 5])], [vi("y", [1, 2, 10, 10])], [weight("w", (4, 2, 2, 2))])
    assert macs == 4 * 25 * 2 * 2 * 2


def test_batched_matmul_and_gemm_transposed():
    node = helper.make_node("MatMul", ["a", "b"], ["y"])
    macs = _macs(node, [vi("a", [2, 4, 8, 16]), vi("b", [2, 4, 16, 32])], [vi("y", [2, 4, 8, 32])])
    assert macs == 2 * 4 * 8 * 32 * 16
    node = helper.make_node("MatMul", ["a", "b"], ["y"])  # broadcast weight
    assert _macs(node, [vi("a", [3, 8, 16])], [vi("y", [3, 8, 4])], [weight("b", (16, 4))]) == 3 * 8 * 4 * 16
    node = helper.make_node("Gemm", ["a", "b"], ["y"], transA=1)
    assert _macs(node, [vi("a", [16, 8])], [vi("y", [8, 4])], [weight("b", (16, 4))]) == 8 * 4 * 16


def test_einsum_and_lstm():
    node = helper.make_node("Einsum", ["a", "b"], ["y"], equation="...ij,...jk->...ik")
    assert _macs(node, [vi("a", [2, 3, 4]), vi("b", [2, 4, 5])], [vi("y", [2, 3, 5])]) == 2 * 3 * 4 * 5
    node = helper.make_node("LSTM", ["x", "w", "r"], ["y"], hidden_size=8)
    weights = [weight("w", (1, 32, 4)), weight("r", (1, 32, 8))]
    macs = _macs(node, [vi("x", [5, 1, 4])], [vi("y", [5, 1, 1, 8])], weights)
    assert macs == 5 * 32 * (4 + 8)


def test_data_movement_is_free_and_elementwise_counts_elements(fanout_model):
    g = graph.from_model(fanout_model)
    assert g.node("left").macs == 0 and g.node("left").flops == 4 * 6
