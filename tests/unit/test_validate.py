import copy

import pytest

from edgepart import graph
from edgepart.errors import BadInputError
from edgepart.hardware import deploy
from edgepart.plan import planner
from edgepart.plan.validate import validate
from tests.conftest import MODELS, REPO


@pytest.fixture(scope="module")
def planned():
    loaded = graph.load(MODELS / "residual_cnn.onnx")
    deployment = deploy.load(REPO / "examples" / "phone-edge-cloud.toml")
    return loaded, deployment, planner.plan(loaded, deployment)


def test_a_fresh_plan_validates(planned):
    loaded, deployment, plan = planned
    validate(plan, loaded, deployment)


def test_plan_for_another_model_is_refused(planned):
    loaded, deployment, plan = planned
    other = graph.load(MODELS / "chain_cnn.onnx")
    with pytest.raises(BadInputError, match=f"made for model sha256 {loaded.sha256[:12]}.*{other.sha256[:12]}"):
        validate(plan, other, deployment)


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
        validate(broken, loaded, deployment)
