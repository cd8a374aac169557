"""The shipped deployments (examples/*.toml) do what the comments at their tops say.

Each example names the bundled models its default plan splits in a line `# splits: a, b` (or
`# splits: none`, when its comment explains why every model stays on one tier); an example that
teaches `edgepart sweep` names a model and a bandwidth range in `# sweep: model LOW..HIGH`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cli.test_cli import edgepart
from tests.conftest import EXAMPLE_MODELS, MODELS, REPO

EXAMPLES = sorted((REPO / "examples").glob("*.toml"))


def header(example: Path, key: str) -> str | None:
    """The value of a `# key: value` line in the comment block at the top of `example`."""
    for line in example.read_text().splitlines():
        if not line.startswith("#"):
            return None
        found = re.fullmatch(rf"#\s*{key}:\s*(.+?)\s*", line)
        if found:
            return found.group(1)
    return None


def layers_per_tier(model: str, example: Path) -> dict[str, int]:
    """Layers on each tier that runs any, in the default plan (predicted from the device profiles)."""
    result = edgepart("plan", str(MODELS / f"{model}.onnx"), "--deploy", str(example), "--json", "-q")
    assert result.returncode == 0, result.stderr
    per_tier = json.loads(result.stdout)["predicted"]["per_tier"]
    return {tier: info["layers"] for tier, info in per_tier.items() if info["layers"]}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_an_example_splits_the_models_its_comment_names(example):
    named = header(example, "splits")
    assert named, f"{example.name}: no '# splits: model, ...' line at its top"
    if named == "none":
        for model in EXAMPLE_MODELS:
            used = layers_per_tier(model.stem, example)
            assert len(used) == 1, f"{example.name} says nothing splits, but {model.stem} runs {used}"
        return
    for model in (name.strip() for name in named.split(",")):
        assert (MODELS / f"{model}.onnx").exists(), f"{example.name}: '{model}' is not a bundled model"
        used = layers_per_tier(model, example)
        assert len(used) >= 2, f"{example.name}: {model} runs {used}"


def test_the_sweep_example_changes_plan_and_trades_latency_for_energy():
    sweeps = {example: header(example, "sweep") for example in EXAMPLES if header(example, "sweep")}
    assert sweeps, "no example has a '# sweep: model LOW..HIGH' line"
    for example, spec in sweeps.items():
        model, bandwidth = spec.split(maxsplit=1)
        result = edgepart("sweep", str(MODELS / f"{model}.onnx"), "--deploy", str(example),
                          "--bandwidth", bandwidth, "--json", "-q")
        assert result.returncode == 0, result.stderr
        doc = json.loads(result.stdout)
        breakpoints = [segment["from_bps"] for segment in doc["segments"][1:]]
        assert len(breakpoints) >= 2, f"{example.name}: {model} has breakpoints {breakpoints}"
        assert len(doc["pareto"]) > 1, f"{example.name}: {model}'s Pareto front is {doc['pareto']}"


def test_the_readmes_plan_picture_is_what_plan_draws_today(tmp_path):
    """README.md shows docs/plan-board-server.svg; it must not drift from what `plan --svg` draws."""
    picture = tmp_path / "plan.svg"
    result = edgepart("plan", "models/residual_cnn.onnx", "--deploy", "examples/board-server.toml",
                      "--svg", str(picture), "--reproducible", "-q")
    assert result.returncode == 0, result.stderr
    shipped = REPO / "docs" / "plan-board-server.svg"
    assert picture.read_text() == shipped.read_text(), (
        "docs/plan-board-server.svg is stale: regenerate it with `edgepart plan models/residual_cnn.onnx "
        "--deploy examples/board-server.toml --svg docs/plan-board-server.svg --reproducible`")
    assert "docs/plan-board-server.svg" in (REPO / "README.md").read_text()
