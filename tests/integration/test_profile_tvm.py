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


@pytest.fixture(scope="module")
def rpc_server():
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_server", "--host", "127.0.0.1", "--port", str(port),
                               "--port-end", str(port + 1)],
                              env={**os.environ, "TVM_USE_RUNTIME_LIB": "1"}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline and server.poll() is None, "the TVM RPC server did not start"
            time.sleep(0.2)
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


def test_tvm_profile_on_this_host(tmp_path):
    out = tmp_path / "p.json"
    result = edgepart("profile", DIGITS, "--backend", "tvm", "--repeat", "20", "-o", str(out), "-q")
    assert result.returncode == 0, result.stderr
    check(json.loads(out.read_text()), "this host")


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
