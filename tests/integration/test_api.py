"""docs/api.md's example runs as it stands: profile -> plan -> compile -> verify from Python."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.tvm


def test_the_api_example_runs(tmp_path):
    example = re.search(r"```python\n(.*?)```", (REPO / "docs" / "api.md").read_text(), re.S).group(1)
    for folder in ("models", "examples"):
        (tmp_path / folder).symlink_to(REPO / folder)
    result = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    passed = result.stdout.strip().splitlines()[-1]
    assert passed.startswith("True {"), result.stdout
    assert (tmp_path / "build" / "api-example" / "manifest.json").is_file()


def test_api_documents_are_checked_against_the_model(tmp_path):
    """A profile document of another model is refused, naming both hashes, as --profiles does."""
    from edgepart import api
    from edgepart.errors import BadInputError

    other = api.profile(REPO / "models" / "digits_cnn.onnx", predict=True, device="rpi4")
    with pytest.raises(BadInputError, match="profile of model sha256"):
        api.plan(REPO / "models" / "chain_cnn.onnx", REPO / "examples" / "board-server.toml", profiles=[other])


def test_sensitivity_and_sweep_from_python(tmp_path):
    from edgepart import api
    from edgepart.compress.sensitivity import Sensitivity

    found = api.sensitivity(REPO / "models" / "digits_cnn.onnx", samples=4, precisions=["int8"],
                            output=tmp_path / "s.json")
    assert isinstance(found, Sensitivity) and Sensitivity.load(tmp_path / "s.json").metric["name"] == "cosine"
    plan = api.plan(REPO / "models" / "digits_cnn.onnx", REPO / "examples" / "compressed.toml", sensitivity=found)
    assert plan.doc["accuracy"]["sensitivity"]["metric"]["name"] == "cosine"
    sweep = api.sweep(REPO / "models" / "residual_cnn.onnx", REPO / "examples" / "board-server.toml", 1e6, 1e9)
    assert sweep["kind"] == "edgepart.sweep" and sweep["segments"]
