"""Profiling TVM artifacts: on this host, and on a 'remote board' that is a real TVM RPC server on
127.0.0.1 (runtime-only, as a device would run it)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.cli.test_cli import assert_one_line_error, edgepart
from tests.conftest import MODELS

pytestmark = pytest.mark.tvm
DIGITS = str(MODELS / "digits_cnn.onnx")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen) -> None:
    """Until `process` (a TVM RPC server or tracker) listens on `port`."""
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline and process.poll() is None, "the TVM RPC process did not start"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def rpc_server():
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_server", "--host", "127.0.0.1", "--port", str(port),
                               "--port-end", str(port + 1)],
                              env={**os.environ, "TVM_USE_RUNTIME_LIB": "1"}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for_port(port, server)
    yield f"127.0.0.1:{port}"
    os.killpg(server.pid, signal.SIGTERM)  # the server forks a worker per session: stop them all
    server.wait(timeout=10)


def check(doc: dict, where: str) -> None:
    p = doc["provenance"]
    assert doc["kind"] == "edgepart.profile" and not doc["predicted"] and p["backend"] == "tvm"
    assert p["where"] == where and p["target"] == "x86-64"
    layers = doc["precisions"]["fp32"]["layers"]
    total = sum(layer["calibrated_s"] for layer in layers.values())
    assert total == pytest.approx(p["end_to_end"]["median_s"], rel=1e-6)
    assert layers["conv3"]["calibrated_s"] > layers["relu_1"]["calibrated_s"]  # split by real unfused weights


def test_tvm_profile_on_this_host_reports_the_rounds_it_plans():
    """(The command over RPC below runs the same profiler.)"""
    from edgepart import api, graph  # noqa: PLC0415
    from tests.integration.test_cpu_kernels import full_tvm_first  # noqa: PLC0415

    full_tvm_first()  # the profiler runs the artifact in this process
    loaded, steps = graph.load(DIGITS), []
    profiler = api.profiler(backend="tvm", repeat=20)
    check(profiler.profile(loaded, steps.append).doc, "this host")
    assert sum(steps) == profiler.rounds(loaded)


def test_tvm_profile_over_rpc_and_plan_uses_it(tmp_path, rpc_server):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    out = profiles / "local.json"
    result = edgepart("profile", DIGITS, "--rpc", rpc_server, "--target", "x86-64", "--repeat", "20", "-o", str(out),
                      "-q")
    assert result.returncode == 0, result.stderr
    check(json.loads(out.read_text()), f"rpc://{rpc_server}")
    deploy = tmp_path / "deploy.toml"
    deploy.write_text('[[tier]]\nname = "board"\ndevice = "local"\ntarget = "x86-64"\nbackend = "tvm"\n')
    result = edgepart("plan", DIGITS, "--deploy", str(deploy), "--profiles", str(profiles), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["costs"]["source"]["board"].startswith("tvm: profile of 'local'")


def test_unreachable_rpc_server_is_a_quick_clear_error():
    start = time.monotonic()
    result = edgepart("profile", DIGITS, "--rpc", f"127.0.0.1:{free_port()}", "--target", "x86-64")
    assert_one_line_error(result, 3, "--rpc", "no TVM RPC server reachable")
    assert time.monotonic() - start < 30


def test_rpc_needs_a_target():
    assert_one_line_error(edgepart("profile", DIGITS, "--rpc", "127.0.0.1:9"), 2, "--target")


def test_every_transformer_layer_gets_its_own_tvm_kernel_time(tmp_path):
    """Kernels are mapped to ONNX nodes, multi-output LayerNormalization included; only Reshape
    (a view in the VM, no kernel) costs nothing."""
    out = tmp_path / "t.json"
    result = edgepart("profile", str(MODELS / "transformer_encoder.onnx"), "--backend", "tvm", "--repeat", "5",
                      "-o", str(out), "-q")
    assert result.returncode == 0, result.stderr
    doc = json.loads(out.read_text())
    zero = {name for name, layer in doc["precisions"]["fp32"]["layers"].items() if layer["calibrated_s"] == 0}
    assert zero and all(name.startswith("reshape") for name in zero)
    assert "instrument" in doc["provenance"]["per_layer"]


def test_kernel_library_calls_are_timed_and_attributed_as_the_artifact_runs_them(tmp_path):
    """A CPU tier's convolutions run in edgepart's kernel library; the per-layer timing calls it too,
    splits each call over the ONNX nodes it computes (a Conv and the Relu fused after it) and says
    so. With TVM's own (untuned, ~20-50x slower) convolutions the elementwise tail's share came out
    ~50x too small against the deployed artifact's slices; now it is within a factor of 3."""
    import statistics  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415
    import onnx  # noqa: PLC0415
    from onnx import helper  # noqa: PLC0415

    from edgepart import graph  # noqa: PLC0415
    from edgepart.graph import extract  # noqa: PLC0415
    from edgepart.toolchain import compilers, elf, kernel_library, targets  # noqa: PLC0415
    from tests.conftest import make_model, vi, weight  # noqa: PLC0415

    library, reason = kernel_library.find(elf.HOST_MACHINE)
    if library is None:
        pytest.skip(reason)
    shape = [1, 16, 48, 48]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("Add", ["c2", "x"], ["a"], name="add"),
             helper.make_node("Relu", ["a"], ["y"], name="relu2")]
    weights = [weight("w1", [16, 16, 3, 3], 1), weight("b1", [16], 2), weight("w2", [16, 16, 3, 3], 3),
               weight("b2", [16], 4)]
    path = tmp_path / "block.onnx"
    onnx.save(make_model(nodes, [vi("x", shape)], [vi("y", shape)], weights), path)
    out = tmp_path / "p.json"
    result = edgepart("profile", str(path), "--backend", "tvm", "--repeat", "20", "-o", str(out), "-q")
    assert result.returncode == 0, result.stderr
    doc = json.loads(out.read_text())
    provenance, layers = doc["provenance"], doc["precisions"]["fp32"]["layers"]
    assert provenance["build"]["kernels"]["offloaded_calls"] == 2
    assert provenance["per_layer_kernels"] == provenance["build"]["kernels"]
    assert "kernel library" in provenance["per_layer"]
    seconds = {name: layer["median_s"] for name, layer in layers.items()}
    # conv1 + relu1 are one library call, split by work: the ReLU gets its element count's share
    assert 0 < seconds["relu1"] < seconds["conv1"] / 20 and seconds["conv2"] > 0

    # The deployed artifact's slices: the two convolutions, and the elementwise tail after them.
    import tvm.relax  # noqa: F401, PLC0415 - the whole of TVM before TvmTier (see test_cpu_kernels)

    from edgepart.toolchain.tvm_tier import TvmTier  # noqa: PLC0415

    loaded = graph.load(path)
    rng = np.random.default_rng(0)

    def measured(members: list[str]) -> float:
        inputs, outputs = extract.boundary(loaded.graph, members)
        folder = tmp_path / members[0]
        folder.mkdir()
        onnx.save(extract.extract(loaded.model, loaded.graph, inputs, outputs), folder / "slice.onnx")
        artifact = compilers.TvmCompiler().compile(folder / "slice.onnx", targets.resolve("x86-64"), folder, "slice")
        tier = TvmTier(artifact.path, "cpu")
        feeds = [rng.standard_normal(shape).astype(np.float32) for _ in inputs]
        tier.time(feeds, number=20, repeat=3)
        return statistics.median(tier.time(feeds, number=50, repeat=15))

    head, tail = ["conv1", "relu1", "conv2"], ["add", "relu2"]
    head_s, tail_s = measured(head), measured(tail)
    measured_share = tail_s / (head_s + tail_s)
    profiled_share = sum(seconds[n] for n in tail) / sum(seconds[n] for n in head + tail)
    assert 1 / 3 < profiled_share / measured_share < 3, (profiled_share, measured_share)
