"""Adaptive builds end to end: plan --sweep, compile (artifacts shared between plans), verify every
plan, run --adapt through a bandwidth step, a dead link and a killed tier (exactly one checked
result per request), and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_cli import assert_one_line_error, edgepart
from tests.conftest import MODELS, deployment

MODEL = str(MODELS / "residual_cnn.onnx")
# A Raspberry Pi 4 (priced from its datasheet; `run --device-speed priced` holds its tier to that
# price here) and this host as the edge, over 50 Mbit/s; tensors may cross in fp16 or int8.
DEPLOY = deployment("rpi4", codecs=("raw", "fp16", "int8"), link='bandwidth = "50 Mbit/s"\nrtt = "2 ms"')
RUN = ("--links", "pacing", "--device-speed", "priced", "--requests", "100000", "--json", "-q")


@pytest.fixture(scope="module")
def adaptive(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("adapt")
    (folder / "deploy.toml").write_text(DEPLOY)
    result = edgepart("plan", MODEL, "--deploy", str(folder / "deploy.toml"), "--sweep", "5Mbit/s..10Gbit/s",
                      "--allow-lossy", "-o", str(folder / "plan.json"))
    assert result.returncode == 0, result.stderr
    result = edgepart("compile", MODEL, "--plan", str(folder / "plan.json"), "-o", str(folder / "build"), "-q")
    assert result.returncode == 0, result.stderr
    return folder


def test_the_plan_holds_every_plan_of_the_sweep_and_the_device_only_fallback(adaptive):
    plan = json.loads((adaptive / "plan.json").read_text())
    section = plan["adaptive"]
    assert len(section["plans"]) >= 3 and section["link"] == "device-edge"
    fallback = section["plans"][section["fallback"]]
    assert set(fallback["assignment"].values()) == {"device"}
    rows = section["breakpoints"]
    assert rows[0]["from_bps"] == 5e6 and rows[-1]["to_bps"] == 10e9
    assert all(a["to_bps"] == b["from_bps"] and a["plan"] != b["plan"] for a, b in zip(rows, rows[1:]))
    start = section["plans"][section["start"]]
    assert start["assignment"] == plan["assignment"] and start["cuts"] == plan["cuts"]


def build_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and path.suffix != ".json")


def test_plans_share_artifacts_so_one_build_is_smaller_than_a_build_per_plan(adaptive, tmp_path):
    manifest = json.loads((adaptive / "build" / "manifest.json").read_text())
    plans = manifest["adaptive"]["plans"]
    artifacts = [tier["artifact"] for entry in plans.values() for tier in entry["tiers"]]
    assert len(set(artifacts)) < len(artifacts)  # plans differing only in codecs ship one artifact per tier
    assert {t["artifact"] for t in manifest["tiers"]} <= set(artifacts)  # the start plan is one of them
    separate = 0
    for plan_id, doc in json.loads((adaptive / "plan.json").read_text())["adaptive"]["plans"].items():
        (tmp_path / f"{plan_id}.json").write_text(json.dumps(doc))
        result = edgepart("compile", MODEL, "--plan", str(tmp_path / f"{plan_id}.json"), "-o",
                          str(tmp_path / plan_id), "-q")
        assert result.returncode == 0, result.stderr
        separate += build_bytes(tmp_path / plan_id)
    assert build_bytes(adaptive / "build") < separate


def test_verify_runs_every_plan(adaptive):
    result = edgepart("verify", str(adaptive / "build"), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] and set(report["plans"]) == set(json.loads(
        (adaptive / "plan.json").read_text())["adaptive"]["plans"])
    assert all(plan["passed"] for plan in report["plans"].values())


def assert_exactly_once(report: dict) -> None:
    rows = report["adaptive"]["requests"]
    ids = [row["id"] for row in rows]
    assert ids == list(range(len(ids))) and report["completed"] == report["requests"] == len(ids)
    assert report["failed"] == [] and report["checked"]["requests"] == len(ids)


def test_a_bandwidth_step_switches_plans_and_back(adaptive):
    result = edgepart("run", str(adaptive / "build"), "--adapt", "--duration", "6", "--event", "2s:device-edge=2Mbit/s",
                      "--event", "4s:device-edge=50Mbit/s", *RUN)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert_exactly_once(report)
    section = report["adaptive"]
    phases = section["phases"]
    assert [p["uplink_bps"] for p in phases] == pytest.approx([50e6, 2e6, 50e6])
    fallback = section["fallback"]
    assert max(phases[1]["plans"], key=phases[1]["plans"].get) == fallback  # the device alone at 2 Mbit/s ...
    assert max(phases[2]["plans"], key=phases[2]["plans"].get) != fallback  # ... and splitting again after
    assert [s["to"] for s in section["switches"]][:1] == [fallback] and len(section["switches"]) >= 2


def test_a_dead_link_re_runs_on_the_device_and_comes_back(adaptive):
    result = edgepart("run", str(adaptive / "build"), "--adapt", "--duration", "5", "--event", "1.5s:device-edge=down",
                      "--event", "3s:device-edge=up", *RUN)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert_exactly_once(report)
    section = report["adaptive"]
    assert section["reruns"] >= 1 and section["phases"][1]["plans"] == {section["fallback"]: section["phases"][1][
        "requests"]}
    assert set(section["phases"][2]["plans"]) - {section["fallback"]}  # the link is used again once it is back


def test_a_killed_edge_loses_nothing_with_adapt_and_fails_the_run_without(adaptive):
    build = str(adaptive / "build")
    result = edgepart("run", build, "--adapt", "--duration", "4", "--event", "1.5s:kill=edge", *RUN)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert_exactly_once(report)
    assert report["adaptive"]["reruns"] >= 1 and report["adaptive"]["phases"][1]["plans"] == {
        report["adaptive"]["fallback"]: report["adaptive"]["phases"][1]["requests"]}
    result = edgepart("run", build, "--duration", "4", "--event", "1.5s:kill=edge", *RUN)
    assert_one_line_error(result, 1, "tier 'edge' stopped")
    assert "sent requests failed (ids" in result.stderr


@pytest.mark.parametrize(("args", "named"), [
    (("--plan", "p9"), "--plan p9: not a plan of"),
    (("--adapt", "--plan", "p0"), "choose one"),
    (("--adapt", "--event", "1s:kill=device"), "kill a tier above it"),
    (("--adapt", "--event", "1s:wifi=down"), "no such link"),
    (("--adapt", "--event", "1s:device-edge=fast"), "--event '1s:device-edge=fast'"),
])
def test_bad_run_options_name_what_is_wrong(adaptive, args, named):
    assert_one_line_error(edgepart("run", str(adaptive / "build"), *args, "--requests", "3"), 2, named)


def test_adapt_needs_an_adaptive_build(adaptive, tmp_path):
    (tmp_path / "plan.json").write_text(json.dumps({k: v for k, v in json.loads(
        (adaptive / "plan.json").read_text()).items() if k != "adaptive"}))
    assert edgepart("compile", MODEL, "--plan", str(tmp_path / "plan.json"), "-o", str(tmp_path / "b"),
                    "-q").returncode == 0
    assert_one_line_error(edgepart("run", str(tmp_path / "b"), "--adapt"), 2, "needs an adaptive build")


def test_plan_sweep_refusals_name_the_option(adaptive):
    deploy = str(adaptive / "deploy.toml")
    assert_one_line_error(edgepart("plan", MODEL, "--deploy", deploy, "--sweep", "9..1Mbit/s"), 2, "--sweep")
    assert_one_line_error(edgepart("plan", MODEL, "--deploy", deploy, "--sweep", "1Mbit/s..9Mbit/s", "--sweep-link",
                                   "wifi"), 2, "--sweep-link: unknown link 'wifi'")
    assert_one_line_error(edgepart("plan", MODEL, "--deploy", deploy, "--sweep", "1Mbit/s..9Mbit/s", "--objective",
                                   "energy"), 2, "--objective latency")
    assert_one_line_error(edgepart("plan", MODEL, "--deploy", deploy, "--sweep-link", "device-edge"), 2, "--sweep")
