import copy
import dataclasses

import pytest

from edgepart import graph
from edgepart.errors import BadInputError, CheckFailedError
from edgepart.hardware import deploy
from edgepart.plan import planner
from edgepart.plan.plan_file import Plan
from edgepart.plan.validate import validate
from tests.conftest import MODELS, REPO


@pytest.fixture(scope="module")
def planned():
    loaded = graph.load(MODELS / "residual_cnn.onnx")
    deployment = deploy.load(REPO / "examples" / "phone-edge-cloud.toml")
    return loaded, deployment, planner.plan(loaded, deployment)


def test_a_fresh_plan_validates(planned):
    loaded, deployment, plan = planned
    validate(Plan.of(plan), loaded, deployment)


def test_plan_for_another_model_is_refused(planned):
    loaded, deployment, plan = planned
    other = graph.load(MODELS / "chain_cnn.onnx")
    with pytest.raises(BadInputError, match=f"made for model sha256 {loaded.sha256[:12]}.*{other.sha256[:12]}"):
        validate(Plan.of(plan), other, deployment)


@pytest.mark.parametrize("edit, message", [
    (lambda p: p["assignment"].pop("stem"), "node 'stem' is not placed"),
    (lambda p: p["assignment"].__setitem__("stem", "moon"), "unknown tier 'moon'"),
    (lambda p: (p["assignment"].__setitem__("stem", "cloud"), p["precision"].__setitem__("stem", "fp32")),
     "reads 'stem' from tier 'cloud': data may only flow up"),
    (lambda p: p["precision"].__setitem__("stem", "int8"), "runs in int8 on tier 'device'"),
    (lambda p: p["assignment"].__setitem__("ghost", "device"), "assigns 'ghost'"),
])
def test_tampered_plans_name_the_node(planned, edit, message):
    loaded, deployment, plan = planned
    broken = copy.deepcopy(plan)
    edit(broken)
    with pytest.raises(BadInputError, match=message):
        validate(Plan.of(broken), loaded, deployment)


def test_a_changed_deployment_file_is_refused_naming_both_hashes(planned, tmp_path):
    loaded, deployment, plan = planned
    changed = tmp_path / "deploy.toml"
    changed.write_text((REPO / "examples" / "phone-edge-cloud.toml").read_text() + "\n# edited\n")
    with pytest.raises(BadInputError, match=f"deployment sha256 {deployment.sha256[:12]}.*{changed}.*sha256"):
        validate(Plan.of(plan), loaded, deploy.load(changed))


def test_budgets_are_held_to_without_changing_the_solution(planned):
    """The memory budget is recomputed from the placement; latency is the plan's own prediction held
    to the deployment's limit. The solution validate returns is the placement, untouched."""
    loaded, deployment, plan = planned
    solution = validate(Plan.of(plan), loaded, deployment)
    assert not solution.precisions.any() and not solution.codecs.any()  # validate's own: fp32, first codec
    tight = dataclasses.replace(deployment, budgets=dataclasses.replace(
        deployment.budgets, latency_s=plan["predicted"]["latency_s"] / 2))
    with pytest.raises(CheckFailedError, match="budget latency_s of .*phone-edge-cloud.toml: predicted .* ms, limit"):
        validate(Plan.of(plan), loaded, tight)
    phone = [t for t in deployment.tiers if t.name == "device"][0]
    squeezed = dataclasses.replace(deployment, tiers=tuple(
        dataclasses.replace(t, memory_budget=1000.0) if t is phone else t for t in deployment.tiers))
    with pytest.raises(CheckFailedError, match="budget memory_bytes.device .* bytes, limit 1000 bytes"):
        validate(Plan.of(plan), loaded, squeezed)


def test_a_plan_whose_cuts_disagree_with_its_assignment_is_refused(planned):
    """A layer moved across a cut while the cuts stay: compile would build tiers that wait for data
    nobody sends (run hung 52 s)."""
    loaded, deployment, plan = planned
    graph = loaded.graph
    layers = [n for n in graph.layers if plan["assignment"][n.name] == "device"]
    moved = next(n for n in reversed(layers)
                 if all(plan["assignment"][c] != "device" for t in n.outputs for c in graph.tensors[t].consumers))
    broken = copy.deepcopy(plan)
    broken["assignment"][moved.name] = "edge"
    broken["precision"][moved.name] = "fp32"  # what the edge tier allows
    with pytest.raises(BadInputError, match=r"cuts\[0\]\.up: tensor '.*' is (not listed, yet it crosses|listed but)"):
        validate(Plan.of(broken), loaded, deployment)
