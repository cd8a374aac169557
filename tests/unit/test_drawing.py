"""The plan picture (`edgepart plan --svg`): what it must show, that its labels never collide, and
that it stays a readable size on a large model. Models are built in code or taken from models/."""

from __future__ import annotations

import dataclasses
import html
import itertools
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from onnx import helper

from edgepart import graph
from edgepart.graph import LoadedModel
from edgepart.graph.builder import GraphBuilder
from edgepart.hardware import deploy
from edgepart.plan import planner
from edgepart.plan.drawing import plan_svg
from edgepart.plan.drawing_boxes import MAX_BLOCKS, shorten
from edgepart.plan.plan_file import Plan
from tests.conftest import MODELS, REPO, make_model, vi

THREE_TIERS = """
[deploy]
output_tier = "device"
codecs = ["raw", "fp16"]
[[tier]]
name = "device"
device = "snapdragon-8-gen2"
target = "aarch64"
[[tier]]
name = "edge"
device = "xeon-edge-server"
target = "x86-64-v4"
[[tier]]
name = "cloud"
device = "h100"
target = "cuda-sm90"
[[link]]
from = "device"
to = "edge"
bandwidth = "1 Gbit/s"
rtt = "0.2 ms"
[[link]]
from = "edge"
to = "cloud"
bandwidth = "10 Gbit/s"
rtt = "0.2 ms"
[pins]
"""
CHAR_EM, BOLD_EM = 0.64, 0.7  # assumed glyph width in em; the drawing must fit labels under it
TEXT = re.compile(r'<text x="([-\d.]+)" y="([-\d.]+)" font-size="([\d.]+)"([^>]*)>([^<]*)</text>')
BOX = re.compile(r'<rect x="([-\d.]+)" y="([-\d.]+)" width="([\d.]+)" height="([\d.]+)"[^>]*class="box"')


def planned(model, pins: str = "", path: str = "generated.onnx", tiers: str = THREE_TIERS, allow_lossy: bool = False):
    """(LayerGraph, plan document) of an in-memory model on the three-tier deployment with `pins`."""
    layers = graph.from_model(model)
    loaded = LoadedModel(Path(path), "0" * 64, model, layers)
    deployment = dataclasses.replace(deploy.parse(tomllib.loads(tiers + pins), "three.toml"), path="three.toml")
    return layers, planner.plan(loaded, deployment, planner.PlanRequest(reproducible=True, allow_lossy=allow_lossy))


def labels(picture: str) -> list[tuple[float, float, float, float, str, str]]:
    """(left, top, right, bottom, text, attributes) of every text, its width estimated from its length."""
    out = []
    for x, y, size, attrs, content in TEXT.findall(picture):
        x, y, size, content = float(x), float(y), float(size), html.unescape(content)
        width = len(content) * size * (BOLD_EM if "bold" in attrs else CHAR_EM)
        left = x - width if 'anchor="end"' in attrs else x - width / 2 if 'anchor="middle"' in attrs else x
        out.append((left, y - 0.8 * size, left + width, y + 0.2 * size, content, attrs))
    return out


def overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def fanout_model():
    """proj -> h, read by three layers (left, middle, right) that a Sum joins."""
    return make_model(
        [helper.make_node("Relu", ["x"], ["h"], name="proj"),
         helper.make_node("Relu", ["h"], ["r1"], name="left"),
         helper.make_node("Neg", ["h"], ["r2"], name="middle"),
         helper.make_node("Abs", ["h"], ["r3"], name="right"),
         helper.make_node("Sum", ["r1", "r2", "r3"], ["y"], name="join")],
        [vi("x", [1, 64, 32, 32])], [vi("y", [1, 64, 32, 32])],
    )


def scoped_model(stages: int = 10, blocks: int = 5, scoped: bool = True):
    """A residual CNN of stages x blocks x 6 layers (300) named like torch exports ("/stage2/block3/conv1/Conv");
    with scoped=False the names have no scopes at all."""
    b = GraphBuilder("scoped")
    x = b.input("x", (1, 8, 16, 16))
    for s, k in itertools.product(range(stages), range(blocks)):
        def name(part: str, op: str, s: int = s, k: int = k) -> str:
            return f"/stage{s}/block{k}/{part}/{op}" if scoped else f"{op.lower()}_{s}_{k}_{part}"
        h = b.op("Relu", [b.conv(x, 8, 3, relu=False, name=name("conv1", "Conv"))], (1, 8, 16, 16),
                 name=name("act1", "Relu"))
        h = b.conv(h, 8, 3, relu=False, name=name("conv2", "Conv"))
        h = b.op("Add", [b.op("Relu", [h], (1, 8, 16, 16), name=name("act2", "Relu")), x], (1, 8, 16, 16),
                 name=name("add", "Add"))
        x = b.op("Sigmoid", [h], (1, 8, 16, 16), name=name("gate", "Sigmoid"))
    b.output(x)
    return b.build()


def assert_readable(picture: str) -> None:
    """No two texts overlap; no text outside a box overlaps a box."""
    texts = labels(picture)
    for a, b in itertools.combinations(texts, 2):
        assert not overlaps(a, b), f"{a[4]!r} overlaps {b[4]!r}"
    boxes = [(float(x), float(y), float(x) + float(w), float(y) + float(h)) for x, y, w, h in BOX.findall(picture)]
    for label in (t for t in texts if "wire-label" in t[5]):
        assert not any(overlaps(label, box) for box in boxes), f"wire label {label[4]!r} overprints a box"


def test_a_tensor_read_by_three_layers_on_another_tier_is_one_transfer():
    pins = 'nodes = { proj = "device", left = "edge", middle = "edge", right = "edge" }'
    layers, plan = planned(fanout_model(), pins)
    picture = plan_svg(layers, Plan.of(plan))
    sent = {t["tensor"] for cut in plan["cuts"] for t in cut["up"] + cut["down"]}
    assert "h" in sent
    assert picture.count('class="transfer"') == len(sent)
    wire_labels = [t[4] for t in labels(picture) if "wire-label" in t[5]]
    assert [label.split(" · ")[0] for label in wire_labels].count("h") == 1
    assert any("1×64×32×32" in label for label in wire_labels)
    assert_readable(picture)


def test_title_legend_and_tier_totals():
    layers, plan = planned(fanout_model(), 'nodes = { proj = "device", join = "cloud" }')
    picture = plan_svg(layers, Plan.of(plan))
    texts = [t[4] for t in labels(picture)]
    assert "generated.onnx on three.toml" in texts
    summary = next(t for t in texts if t.startswith("predicted latency"))
    assert f"{plan['predicted']['latency_s'] * 1e3:.3f} ms" in summary and plan["solver"]["name"] in summary
    assert f"device energy {plan['predicted']['energy_j'] * 1e3:.2f} mJ" in summary
    for tier in plan["deployment"]["tiers"]:
        assert any(t.startswith(f"{tier['name']}: {tier['device']} ") for t in texts), tier["name"]
        layers_there = plan["predicted"]["per_tier"][tier["name"]]["layers"]
        assert any(re.match(f"{layers_there} layers? · ", t) and "compute" in t for t in texts)


def test_skip_connections_are_not_hidden_under_the_chain():
    """With everything on one tier, left -> join skips middle and right: it must not be a straight line."""
    layers, plan = planned(fanout_model(), 'nodes = { proj = "device", join = "device" }')
    picture = plan_svg(layers, Plan.of(plan))
    boxes = [(float(x), float(y), float(w), float(h)) for x, y, w, h in BOX.findall(picture)]
    for x1, y1, x2, y2 in re.findall(r'<path d="M([\d.]+) ([\d.]+) L([\d.]+) ([\d.]+)"', picture):
        x1, y1, x2, y2 = map(float, (x1, y1, x2, y2))
        if x1 == x2:  # a vertical line must not run through a box
            assert not any(bx < x1 < bx + bw and y1 < by and by + bh < y2 for bx, by, bw, bh in boxes)
    assert picture.count(" Q") >= 2  # the side routes, with their rounded turns
    assert_readable(picture)


@pytest.mark.parametrize("scoped", [True, False])
def test_a_300_layer_model_collapses_into_blocks_of_bounded_height(scoped):
    layers, plan = planned(scoped_model(scoped=scoped), 'nodes = { "/stage2/block4/add/Add" = "edge" }' if scoped
                           else 'nodes = { "add_2_4_add" = "edge" }')
    picture = plan_svg(layers, Plan.of(plan))
    blocks = re.findall(r'<g class="block"><title>[^<]*</title>', picture)
    assert 6 <= len(blocks) <= MAX_BLOCKS + 2 * len(plan["deployment"]["tiers"])
    counts = [int(m) for m in re.findall(r">(\d+) layers?</text>", picture)]
    assert sum(counts) == len(layers.layers) == 300
    height = float(re.search(r'height="([\d.]+)"', picture).group(1))
    assert height < 2000, f"{height} px tall"
    if scoped:
        assert any(t[4].startswith("stage2") for t in labels(picture))
    assert_readable(picture)


def test_a_block_split_across_tiers_shows_its_parts():
    """The first 100 layers stay on the device: stage3 (layers 91-120) is cut in two."""
    layers, plan = planned(scoped_model(), "first_layers = 100")
    picture = plan_svg(layers, Plan.of(plan))
    parts = sorted(t for t in labels(picture) if " · part " in t[4])
    assert [t[4] for t in parts] == ["stage3 · part 1/2", "stage3 · part 2/2"]
    assert parts[0][0] < parts[1][0]  # in two lanes: device, then a tier to its right
    assert "part 1 of 2: the block is split across tiers" in html.unescape(picture)


@pytest.mark.parametrize("model, pins", [
    ("residual_cnn", ""),
    ("inception_cnn", 'first_layers = 8\nnodes = { "mixed1.b5c" = "edge", "mixed3.b1" = "cloud" }'),
])
def test_bundled_models_draw_readably(model, pins):
    loaded = graph.load(MODELS / f"{model}.onnx")
    layers, plan = planned(loaded.model, pins, f"{model}.onnx")
    picture = plan_svg(layers, Plan.of(plan))
    assert picture.count('<g class="layer">') == len(layers.layers)  # small: one box per layer
    assert picture.count('class="transfer"') == len({t["tensor"] for c in plan["cuts"] for t in c["up"] + c["down"]})
    assert_readable(picture)


def test_names_are_shortened_by_scope_and_kept_whole_in_tooltips():
    name = "features.2.0/block.3.0/Conv_output_0"
    assert shorten(name, 30) == "features.2.0/…/Conv_output_0"
    assert shorten(name, 20) == "…/Conv_output_0"
    assert len(shorten("globalaveragepool_21", 12)) == 12
    layers, plan = planned(scoped_model(), "")
    picture = plan_svg(layers, Plan.of(plan))
    assert "/stage3/block2/conv1/Conv (Conv)" in html.unescape(picture)  # a block's tooltip lists its layers


def test_the_same_plan_draws_the_same_bytes_in_every_process(tmp_path):
    deployment = tmp_path / "three.toml"
    deployment.write_text(THREE_TIERS + 'nodes = { "mixed2.b1" = "edge", "mixed3.b1" = "cloud" }\n')
    script = ("import sys; from edgepart import graph; from edgepart.hardware import deploy; "
              "from edgepart.plan import planner; from edgepart.plan.drawing import plan_svg; "
              "from edgepart.plan.plan_file import Plan; m = graph.load(sys.argv[1]); d = deploy.load(sys.argv[2]); "
              "plan = Plan.of(planner.plan(m, d, planner.PlanRequest(reproducible=True))); "
              "sys.stdout.write(plan_svg(m.graph, plan))")
    args = [sys.executable, "-c", script, "models/inception_cnn.onnx", str(deployment)]
    runs = [subprocess.run(args, cwd=REPO, capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")]
    assert runs[0] == runs[1] and runs[0].startswith("<svg") and 'class="transfer"' in runs[0]


def test_a_precision_other_than_fp32_is_written_on_its_box():
    """The edge may run int8, which --allow-lossy takes as free without a sensitivity file."""
    int8_edge = THREE_TIERS.replace('target = "x86-64-v4"', 'target = "x86-64-v4"\nprecisions = ["fp32", "int8"]')
    layers, plan = planned(graph.load(MODELS / "residual_cnn.onnx").model, tiers=int8_edge, allow_lossy=True)
    picture = plan_svg(layers, Plan.of(plan))
    lowered = [name for name, precision in plan["precision"].items() if precision != "fp32"]
    assert lowered
    tags = [t[4] for t in labels(picture) if 'anchor="end"' in t[5] and t[4].split(" ")[-1] == "int8"]
    assert len(tags) == len(lowered)
    assert_readable(picture)
