"""Hostile input (issue #18, first cases): names read from files never become paths outside the
folders the user named. Each case: exit 2, one line naming the file and field, nothing written
outside the case's own folder."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from tests.cli.test_cli import assert_one_line_error, edgepart
from tests.conftest import MODELS

DIGITS = str(MODELS / "digits_cnn.onnx")
TWO_TIERS = """[[tier]]
name = "{first}"
device = "local"
target = "x86-64"
backend = "onnxruntime"

[[tier]]
name = "edge"
device = "local"
target = "x86-64"
backend = "onnxruntime"

[[link]]
from = "{first}"
to = "edge"
preset = "ethernet"
{link_name}
[pins]
first_layers = 2
"""


def _files_under(folder) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A two-tier build of the digits CNN (onnxruntime tiers: quick), its plan and deployment."""
    folder = tmp_path_factory.mktemp("built")
    (folder / "deploy.toml").write_text(TWO_TIERS.format(first="device", link_name=""))
    assert edgepart("plan", DIGITS, "--deploy", str(folder / "deploy.toml"), "-o", str(folder / "plan.json")
                    ).returncode == 0
    result = edgepart("compile", DIGITS, "--plan", str(folder / "plan.json"), "-o", str(folder / "build"), "-q")
    assert result.returncode == 0, result.stderr
    return folder


@pytest.mark.parametrize("first, link_name, field", [
    ("../X", "", "tier[0].name"),
    ("/tmp/X", "", "tier[0].name"),
    ("a b", "", "tier[0].name"),
    ("device", 'name = "../up"', "link[0].name"),
    ("device", 'name = "a/b"', "link[0].name"),
])
def test_a_deployment_name_that_is_not_a_file_name_is_refused(tmp_path, first, link_name, field):
    deploy = tmp_path / "case" / "deploy.toml"
    deploy.parent.mkdir()
    deploy.write_text(TWO_TIERS.format(first=first, link_name=link_name))
    before = _files_under(tmp_path)
    result = edgepart("plan", DIGITS, "--deploy", str(deploy), "-o", str(tmp_path / "case" / "plan.json"))
    assert_one_line_error(result, 2, str(deploy), field, "is not a usable name")
    assert _files_under(tmp_path) == before


@pytest.mark.parametrize("name", ["../X", "/tmp/edgepart-escape-X", "..", ""])
def test_a_plan_whose_tier_name_is_a_path_is_refused_by_compile(built, tmp_path, name):
    plan = json.loads((built / "plan.json").read_text())
    plan["deployment"]["tiers"][0]["name"] = name
    plan["assignment"] = {node: (name if tier == "device" else tier) for node, tier in plan["assignment"].items()}
    case = tmp_path / "case"
    case.mkdir()
    (case / "plan.json").write_text(json.dumps(plan))
    before = _files_under(tmp_path)
    result = edgepart("compile", DIGITS, "--plan", str(case / "plan.json"), "-o", str(case / "build"))
    assert_one_line_error(result, 2, str(case / "plan.json"), "deployment.tiers[0].name", "is not a usable name")
    assert _files_under(tmp_path) == before and not os.path.exists("/tmp/edgepart-escape-X")


@pytest.mark.parametrize("command", ["verify", "run"])
def test_a_manifest_whose_tier_name_is_a_path_is_refused(built, tmp_path, command):
    build = tmp_path / "case" / "build"
    shutil.copytree(built / "build", build)
    manifest = json.loads((build / "manifest.json").read_text())
    manifest["tiers"][0]["name"] = "../X"
    (build / "manifest.json").write_text(json.dumps(manifest))
    before = _files_under(tmp_path)
    result = edgepart(command, str(build), *(["--requests", "2"] if command == "run" else []))
    assert_one_line_error(result, 2, str(build / "manifest.json"), "tiers[0].name", "is not a usable name")
    assert _files_under(tmp_path) == before


def test_sample_inputs_linked_from_outside_the_build_are_refused(built, tmp_path):
    build = tmp_path / "case" / "build"
    shutil.copytree(built / "build", build)
    outside = tmp_path / "elsewhere.npz"
    np.savez(outside, input=np.zeros((1, 1, 28, 28), np.float32))
    (build / "sample_inputs.npz").symlink_to(outside)
    result = edgepart("verify", str(build))
    assert_one_line_error(result, 2, "sample_inputs.npz", "outside")


def test_sample_inputs_that_are_not_numbers_are_refused(built, tmp_path):
    build = tmp_path / "case" / "build"
    shutil.copytree(built / "build", build)
    np.savez(build / "sample_inputs.npz", input=np.array(["a", "b"]))
    result = edgepart("verify", str(build))
    assert_one_line_error(result, 2, "sample_inputs.npz", "array 'input'", "not numbers")
