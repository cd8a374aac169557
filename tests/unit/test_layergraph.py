import numpy as np
import onnx
import pytest
from onnx import helper

from edgepart import graph
from edgepart.errors import BadInputError
from tests.conftest import EXAMPLE_MODELS, make_model, vi, weight


def test_chain_has_pseudo_nodes_and_costs(chain_model):
    g = graph.from_model(chain_model)
    assert [n.name for n in g.nodes] == ["input:x", "conv", "relu", "gap", "output:y"]
    conv = g.node("conv")
    assert conv.macs == 4 * 8 * 8 * 3 * 3 * 3
    assert conv.params == 4 * 3 * 3 * 3 and conv.param_bytes == 4 * conv.params
    assert conv.output_bytes == 4 * 8 * 8 * 4
    assert g.predecessors("relu") == ["conv"] and g.successors("relu") == ["gap"]
    assert g.totals() == {"nodes": 3, "macs": conv.macs, "flops": g.totals()["flops"],
                          "params": conv.params, "param_bytes": conv.param_bytes}


def test_diamond_tensor_is_one_edge_with_two_consumers(diamond_model):
    g = graph.from_model(diamond_model)
    # Unnamed nodes take the name of their first output.
    assert [n.name for n in g.layers] == ["a", "b", "c", "d"]
    assert g.tensors["a"].consumers == ("b", "c")
    assert g.tensors["a"].producer == "a"
    assert sorted(g.predecessors("d")) == ["b", "c"]


def test_tensor_with_three_consumers_is_sent_once(fanout_model):
    g = graph.from_model(fanout_model)
    h = g.tensors["h"]
    assert h.consumers == ("left", "middle", "right")
    assert sum(1 for t in g.tensors.values() if t.producer == "proj") == 1
    assert g.node("proj").macs == 4 * 6 * 8
    assert h.bytes_at("fp32") == 96 and h.bytes_at("fp16") == 48 and h.bytes_at("int8") == 24


def test_constant_nodes_fold_into_parameters():
    shape = helper.make_node("Constant", [], ["s"], value=onnx.numpy_helper.from_array(np.array([2, 8], np.int64)))
    model = make_model(
        [shape, helper.make_node("Reshape", ["x", "s"], ["y"], name="reshape")],
        [vi("x", [4, 4])], [vi("y", [2, 8])],
    )
    g = graph.from_model(model)
    assert [n.name for n in g.layers] == ["reshape"]
    assert g.node("reshape").inputs == ("x",) and g.node("reshape").params == 2


def test_duplicate_node_names_are_made_unique():
    model = make_model(
        [helper.make_node("Relu", ["x"], ["a"], name="same"), helper.make_node("Relu", ["a"], ["b"], name="same")],
        [vi("x", [3])], [vi("b", [3])],
    )
    assert [n.name for n in graph.from_model(model).layers] == ["same", "same#2"]


def test_shared_weight_counts_once_in_totals():
    model = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["a"], name="m1"),
         helper.make_node("MatMul", ["a", "w"], ["b"], name="m2")],
        [vi("x", [1, 5])], [vi("b", [1, 5])], [weight("w", (5, 5))],
    )
    g = graph.from_model(model)
    assert g.node("m1").params == g.node("m2").params == 25
    assert g.totals()["params"] == 25


def test_dynamic_batch_needs_input_shape(dynamic_batch_model):
    with pytest.raises(BadInputError, match=r"input 'x' has dynamic dimension 'batch'.*--input-shape x=1x3x8x8"):
        graph.from_model(dynamic_batch_model)
    g = graph.from_model(dynamic_batch_model, {"x": (2, 3, 8, 8)})
    assert g.tensors["y"].shape == (2, 4, 1, 1)


def test_input_shape_errors_name_the_problem(chain_model):
    with pytest.raises(BadInputError, match="the model's inputs are x"):
        graph.from_model(chain_model, {"nope": (1,)})
    with pytest.raises(BadInputError, match="rank 2"):
        graph.from_model(chain_model, {"x": (1, 3)})
    with pytest.raises(BadInputError, match="expected NAME=DxDx"):
        graph.parse_input_shapes(["x=1xax3"])
    assert graph.parse_input_shapes(["x=1x3x224x224"]) == {"x": (1, 3, 224, 224)}


def test_external_data_model_loads_without_reading_weights(tmp_path, chain_model):
    path = tmp_path / "ext.onnx"
    onnx.save(chain_model, path, save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.onnx.data", size_threshold=0)
    loaded = graph.load(path)
    assert loaded.graph.node("conv").params == 108
    sha_before = loaded.sha256
    data = tmp_path / "ext.onnx.data"
    data.write_bytes(data.read_bytes()[:-4] + b"\0\0\0\1")
    assert graph.load(path).sha256 != sha_before  # the weights are part of the model's identity
    data.unlink()
    with pytest.raises(BadInputError, match="external data file of the model is missing"):
        graph.load(path)


@pytest.mark.parametrize("path", EXAMPLE_MODELS, ids=lambda p: p.stem)
def test_example_models_load(path):
    loaded = graph.load(path)
    assert loaded.graph.totals()["macs"] > 0
    assert all(t.consumers or t.name in loaded.graph.outputs for t in loaded.graph.tensors.values())


def _if_reading_outer_scope(tmp_path):
    """r = Relu(x); y = If(c) with branches that read r without naming it as an input."""
    then_branch = helper.make_graph([helper.make_node("Identity", ["r"], ["t"])], "then", [], [vi("t", [4])])
    else_branch = helper.make_graph([helper.make_node("Neg", ["r"], ["e"])], "else", [], [vi("e", [4])])
    model = make_model([helper.make_node("Relu", ["x"], ["r"], name="relu"),
                        helper.make_node("If", ["c"], ["y"], name="if", then_branch=then_branch,
                                         else_branch=else_branch)],
                       [vi("x", [4]), vi("c", [], onnx.TensorProto.BOOL)], [vi("y", [4])])
    path = tmp_path / "if.onnx"
    onnx.save(model, path)
    return graph.load(str(path))


def test_what_a_subgraph_reads_from_outside_is_an_input_of_its_node(tmp_path):
    """A tier holding the If alone receives r: cut there, the sub-model passes the checker and runs."""
    from edgepart.graph.extract import boundary, extract
    from edgepart.graph.sessions import session

    loaded = _if_reading_outer_scope(tmp_path)
    assert loaded.graph.node("if").inputs == ("c", "r")
    inputs, outputs = boundary(loaded.graph, ["if"])
    assert inputs == ["c", "r"] and outputs == ["y"]
    sub = extract(loaded.model, loaded.graph, inputs, outputs)
    assert [n.op_type for n in sub.graph.node] == ["If"]
    r = np.array([0.0, 1.0, 2.0, 3.0], np.float32)
    assert np.array_equal(session(sub).run(None, {"c": np.array(False), "r": r})[0], -r)
    whole = extract(loaded.model, loaded.graph, ["c", "x"], ["y"])  # the producer of r comes first
    assert [n.op_type for n in whole.graph.node] == ["Relu", "If"]


def test_shape_arithmetic_is_folded_and_cut_sub_models_carry_its_values(tmp_path):
    """relu -> Shape -> Slice -> Concat(-1) -> Reshape, as TorchScript exports a flatten: only Relu
    and Reshape are layers, and the Reshape's tier gets its target shape as an initializer, not as
    a tensor from another tier (TVM refuses a run-time Reshape target)."""
    from onnx import numpy_helper

    from edgepart.graph.extract import boundary, extract
    from edgepart.graph.sessions import session

    constants = [numpy_helper.from_array(np.array([0], np.int64), "zero"),
                 numpy_helper.from_array(np.array([1], np.int64), "one"),
                 numpy_helper.from_array(np.array([-1], np.int64), "minus_one")]
    model = make_model([helper.make_node("Relu", ["x"], ["r"], name="relu"),
                        helper.make_node("Shape", ["r"], ["s"], name="shape"),
                        helper.make_node("Slice", ["s", "zero", "one"], ["batch"], name="slice"),
                        helper.make_node("Concat", ["batch", "minus_one"], ["target"], name="concat", axis=0),
                        helper.make_node("Reshape", ["r", "target"], ["y"], name="reshape")],
                       [vi("x", [2, 3, 4])], [vi("y", [2, 12])], constants)
    path = tmp_path / "flatten.onnx"
    onnx.save(model, path)
    loaded = graph.load(str(path))
    assert [n.name for n in loaded.graph.layers] == ["relu", "reshape"]
    assert loaded.graph.folded["target"].tolist() == [2, -1]
    inputs, outputs = boundary(loaded.graph, ["reshape"])
    assert inputs == ["r"] and outputs == ["y"]
    sub = extract(loaded.model, loaded.graph, inputs, outputs)
    assert [n.op_type for n in sub.graph.node] == ["Reshape"]
    r = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    assert session(sub).run(None, {"r": r})[0].shape == (2, 12)


def test_a_shape_set_by_an_input_value_is_left_to_the_runtime(tmp_path, caplog):
    """Expand to a shape given as an input: its output's shape depends on the input's values. A
    warning names the tensor, costs take the shape seen with zeros, and the cut sub-model leaves
    it to the runtime (it declared the zeros' shape before, and onnxruntime then computed the
    wrong shape: CenterCropPad's expanded form failed verify)."""
    from edgepart.graph.extract import extract
    from edgepart.graph.sessions import session

    model = make_model([helper.make_node("Expand", ["x", "shape"], ["e"]), helper.make_node("Relu", ["e"], ["y"])],
                       [vi("x", [1, 1]), vi("shape", [2], onnx.TensorProto.INT64)], [vi("y", [3, 4])])
    path = tmp_path / "expand.onnx"
    onnx.save(model, path)
    loaded = graph.load(str(path))
    assert "tensor 'e' changes with the input values" in caplog.text
    assert loaded.graph.tensors["e"].value_dependent and loaded.graph.tensors["e"].shape == (0, 0)
    sub = extract(loaded.model, loaded.graph, ["shape", "x"], ["y"])
    got = session(sub).run(None, {"x": np.ones((1, 1), np.float32), "shape": np.array([3, 4])})[0]
    assert got.shape == (3, 4)


def test_a_buffer_expanded_to_an_input_shape_folds(tmp_path):
    """BERT's exports compute token-type ids from a constant buffer expanded to Shape(input_ids):
    folded, with its values computed by onnxruntime (onnx's reference evaluator raised on MiniLM's
    GatherElements of them, and nothing of the model was folded)."""
    from onnx import numpy_helper

    buffer = numpy_helper.from_array(np.zeros((1, 8), np.int64), "buffer")
    model = make_model([helper.make_node("Shape", ["x"], ["s"]),
                        helper.make_node("Expand", ["buffer", "s"], ["e"]),
                        helper.make_node("Cast", ["e"], ["f"], to=onnx.TensorProto.FLOAT),
                        helper.make_node("Add", ["x", "f"], ["y"])],
                       [vi("x", [1, 8])], [vi("y", [1, 8])], [buffer])
    path = tmp_path / "buffer.onnx"
    onnx.save(model, path)
    loaded = graph.load(str(path))
    assert [n.op_type for n in loaded.graph.layers] == ["Add"] and loaded.graph.folded["f"].shape == (1, 8)
