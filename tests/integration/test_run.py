"""edgepart run: tier processes over shaped links, measured against the plan; faults and load."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import psutil
import pytest

from edgepart.runtime.run import shaping
from tests.cli.test_cli import assert_one_line_error, edgepart
from tests.conftest import MODELS, REPO

DIGITS = str(MODELS / "digits_cnn.onnx")
TIERS = ("device", "edge", "cloud")


def deploy_text(tiers: int, link: str, output_tier: str = "device", codecs=("raw",)) -> str:
    text = f'[deploy]\noutput_tier = "{output_tier}"\ncodecs = {json.dumps(list(codecs))}\n'
    for name in TIERS[:tiers]:
        text += f'[[tier]]\nname = "{name}"\ndevice = "local"\ntarget = "x86-64"\nbackend = "onnxruntime"\n'
    for below, above in zip(TIERS[: tiers - 1], TIERS[1:tiers]):
        text += f'[[link]]\nfrom = "{below}"\nto = "{above}"\npreset = "{link}"\n'
    pins = {"conv3": "edge", "fc2": "cloud"} if tiers == 3 else {"fc1": "edge"}
    nodes = ", ".join(f'"{k}" = "{v}"' for k, v in pins.items())
    return text + f"[pins]\nfirst_layers = 2\nnodes = {{ {nodes} }}\n"


def build(tmp_path, tiers: int = 2, link: str = "wifi", **kwargs):
    deploy = tmp_path / "deploy.toml"
    deploy.write_text(deploy_text(tiers, link, **kwargs))
    plan = tmp_path / "plan.json"
    result = edgepart("plan", DIGITS, "--deploy", str(deploy), "-o", str(plan))
    assert result.returncode == 0, result.stderr
    out = tmp_path / "build"
    result = edgepart("compile", DIGITS, "--plan", str(plan), "-o", str(out), "-q")
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def two_tiers(tmp_path_factory):
    return build(tmp_path_factory.mktemp("run2"))


@pytest.mark.parametrize("links", ["shaped", "pacing", "ideal"])
def test_run_streams_checks_and_reports(two_tiers, links):
    result = edgepart("run", str(two_tiers), "--requests", "20", "--links", links, "--json", "-q")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["kind"] == "edgepart.run" and report["completed"] == 20 and report["failed"] == []
    assert report["checked"]["in_order"] and report["checked"]["worst_relative_error"] <= 1e-4
    link = report["per_link"]["device-edge"]
    assert link["used"] and link["bytes_up"] > 0 and link["bytes_down"] > 0
    if links == "ideal":
        assert report["links"] == "ideal"
    else:  # shaped: a wifi round trip (20 ms) is in every request
        assert report["latency_s"]["p50"] > 0.02
        assert link["measured_s"] == pytest.approx(link["predicted_s"], rel=0.25)
    if links == "shaped":
        assert report["links"] in (("netns", "netns-tbf") if shaping.netns_available() else ("pacing",))


def test_three_tiers_with_results_consumed_in_the_middle(tmp_path):
    """Outputs made on the cloud come down to the edge, which consumes them; the device is acknowledged."""
    out = build(tmp_path, tiers=3, link="ethernet", output_tier="edge", codecs=("raw", "fp16"))
    result = edgepart("run", str(out), "--requests", "10", "--json", "-q")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["completed"] == 10 and set(report["tiers"]) == set(TIERS)
    assert all(link["used"] for link in report["per_link"].values())


def test_load_at_the_slowest_stage_rate_loses_and_reorders_nothing(two_tiers):
    result = edgepart("run", str(two_tiers), "--requests", "1000", "--rate", "max", "--json", "-q")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["completed"] == 1000 and report["checked"]["in_order"] and report["rate_per_s"] > 0


def command_line(process: psutil.Process) -> str:
    """'' for a process that has just ended (the run also starts short-lived ip and tc commands)."""
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_killing_a_tier_fails_the_run_names_requests_and_leaves_nothing(two_tiers):
    run = subprocess.Popen([sys.executable, "-m", "edgepart", "run", str(two_tiers), "--requests", "100000",
                            "--rate", "50", "--timeout", "5"], cwd=REPO, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    parent = psutil.Process(run.pid)
    deadline = time.monotonic() + 60
    workers = []
    while time.monotonic() < deadline and len(workers) < 2:
        workers = [p for p in parent.children(recursive=True) if "edgepart.runtime.run.worker" in command_line(p)]
        time.sleep(0.2)
    assert len(workers) == 2
    time.sleep(5)  # started, warmed up, requests flowing (one every 20 ms, each over 20 ms: always in flight)
    edge = next(p for p in workers if "edge.json" in command_line(p))
    edge.kill()
    _, stderr = run.communicate(timeout=30)
    assert run.returncode == 1, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "tier 'edge' stopped" in lines[0] and "requests failed (ids" in lines[0], stderr
    time.sleep(0.5)
    assert not [p for p in workers if alive(p)]
    netns = shaping.netns_available()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout if netns else ""
    assert f"ep-{run.pid}-" not in listed


@pytest.mark.skipif(not shaping.netns_available(), reason="needs root and iproute2 for network namespaces")
def test_a_dropped_link_times_requests_out_and_stops_the_run(two_tiers):
    run = subprocess.Popen([sys.executable, "-m", "edgepart", "run", str(two_tiers), "--requests", "100000",
                            "--rate", "50", "--timeout", "2"], cwd=REPO, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    namespace, device = f"ep-{run.pid}-1", f"ep{run.pid}u1"
    deadline = time.monotonic() + 60
    while namespace not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout:
        assert time.monotonic() < deadline and run.poll() is None
        time.sleep(0.2)
    time.sleep(5)  # warmed up, requests flowing
    subprocess.run(["ip", "netns", "exec", namespace, "ip", "link", "set", device, "down"], check=True)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 1, stderr
    line = stderr.strip().splitlines()[-1]
    assert "no result within 2 s" in line and "requests failed (ids" in line and "not sent" in line
    assert namespace not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_bad_rate_is_one_line(two_tiers):
    assert_one_line_error(edgepart("run", str(two_tiers), "--rate", "fast"), 2, "--rate 'fast'")
