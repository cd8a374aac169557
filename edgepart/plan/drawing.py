"""The plan as an SVG picture that reads at a glance.

Top: the model, the deployment and the predicted cost; a legend of tiers, links and line styles.
Below, one lane per tier (left to right in deployment order) headed by its totals, and the layers
top to bottom in topological order, each in its tier's lane: one box per layer for a small model,
blocks of layers by name prefix for a large one (see drawing_boxes); a precision other than fp32
is written on its box. Data flow within a lane is a straight line to the next box, or a track in
the lane's left margin when it skips boxes (see drawing_layout). A tensor
that crosses a link is drawn once, however many layers read it: a dashed wire in a row of its own
right under its producer, labelled with its name, shape, bytes on the wire and codec. Every box has
a tooltip with full names and numbers. Same inputs, same bytes.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from edgepart.graph import LayerGraph, Tensor
from edgepart.plan import svg
from edgepart.plan.drawing_boxes import Box, boxes, op_mix, short_name, shorten
from edgepart.plan.drawing_layout import (
    BOX_W,
    CHANNEL,
    FLOW,
    GAP,
    HEIGHT,
    MARGIN,
    WIRE,
    Layout,
    Transfer,
    edge,
    lane_x,
    place,
    side_paths,
    sides,
    transfer_paths,
)
from edgepart.plan.plan_file import Crossing, Plan, PlannedLink, PlannedTier

COLOURS = ["#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2"]
LANE_HEAD = 54  # px: a lane's name and totals


def plan_svg(graph: LayerGraph, plan: Plan) -> str:
    """The picture of `plan` (made for `graph`) as SVG text."""
    tiers = [t.name for t in plan.tiers]
    drawn = boxes(graph, {node: tiers.index(tier) for node, tier in plan.assignment.items()})
    pairs, transfers = _flows(graph, drawn, plan)
    width = math.ceil(max(len(tiers) * (CHANNEL + BOX_W + GAP) - GAP, _title_width(plan)) + 2 * MARGIN)
    head, top = _heading(plan, drawn, width)
    layout = place(drawn, transfers, top + LANE_HEAD)
    routes = sides(drawn, pairs, transfers, layout)
    body = head + _lanes(plan, top, layout.height)
    body += [p for a, b in sorted(pairs) for p in edge(drawn, a, b, layout)]
    body += [p for side in routes.values() if side.key[0] == "box" for p in side_paths(side, FLOW)]
    body += [_transfer(drawn, t, layout, routes) for t in transfers]
    body += [_box(graph, plan, box, layout.corner[box.index]) for box in drawn]
    defs = [svg.arrow_marker("flow", FLOW), svg.arrow_marker("wire", WIRE)]
    return svg.document(width, layout.height + MARGIN, body, defs)


def _flows(graph: LayerGraph, drawn: list[Box], plan: Plan) -> tuple[set[tuple[int, int]], list[Transfer]]:
    """Box pairs joined by data within a lane, and one Transfer per tensor that crosses a link."""
    box_of = {node.name: box for box in drawn for node in box.nodes}
    sent = defaultdict(list)  # tensor -> (link, crossing) for each link it crosses, up or down
    for link in plan.links:
        for crossing in link.up + link.down:
            sent[crossing.tensor].append((link.name, crossing))
    pairs, transfers = set(), []
    for tensor in graph.tensors.values():
        source = box_of[tensor.producer]
        readers = sorted({box_of[c].index for c in tensor.consumers} - {source.index})
        pairs.update((source.index, r) for r in readers if drawn[r].tier == source.tier)
        away = tuple(r for r in readers if drawn[r].tier != source.tier)
        if away:
            transfers.append(_transfer_of(tensor, source.index, away, sent[tensor.name]))
    return pairs, sorted(transfers, key=lambda t: (t.source, t.targets, t.tensor))


def _transfer_of(tensor: Tensor, source: int, away: tuple[int, ...], sent: list[tuple[str, Crossing]]) -> Transfer:
    """What the wire of `tensor` says (shape, then bytes and codec on each link it crosses) and its tooltip."""
    shape = "×".join(map(str, tensor.shape)) or "scalar"
    wire = ", ".join(dict.fromkeys(f"{_size(c.bytes)} {c.codec}" for _, c in sent))
    tip = [f"{tensor.name}: {shape} {tensor.dtype}"]
    tip += [f"{link}: {_size(c.bytes)} as {c.codec}, {_ms(c.seconds or 0.0)}" for link, c in sent]
    return Transfer(tensor.name, source, away, f"{shape} · {wire or _size(tensor.nbytes)}", "\n".join(tip))


def _title_width(plan: Plan) -> float:
    return max(svg.text_width(_title(plan), 16, bold=True), svg.text_width(_summary(plan), 12))


def _title(plan: Plan) -> str:
    return f"{Path(plan.model_path).name} on {Path(plan.deployment_path or 'the deployment').name}"


def _summary(plan: Plan) -> str:
    p = plan.predicted
    energy = "-" if p.energy_j is None else f"{p.energy_j * 1e3:.2f} mJ"
    latency = "-" if p.latency_s is None else f"{p.latency_s * 1e3:.3f} ms"
    return (f"predicted latency {latency} · device energy {energy} · "
            f"{plan.solver} ({plan.solver_status}), objective {plan.objective}")


def _heading(plan: Plan, drawn: list[Box], width: float) -> tuple[list[str], float]:
    """Title, cost summary and legend; returns their elements and the y below them (px)."""
    y = MARGIN + 16
    out = [svg.text(MARGIN, y, _title(plan), 16, bold=True), svg.text(MARGIN, y + 19, _summary(plan), 12)]
    y += 19
    unmet = plan.unmet_budgets
    if plan.budgets:
        y += 17
        status = f"budgets NOT MET: {', '.join(unmet)}" if unmet else f"budgets met: {', '.join(plan.budgets)}"
        out.append(svg.text(MARGIN, y, shorten(status, svg.chars_within(width - 2 * MARGIN, 11)), 11,
                            fill=WIRE if unmet else "#2a7a2a"))
    entries = [_tier_key(k, t) for k, t in enumerate(plan.tiers)]
    entries += [_line_key(svg.line(0, 0, 28, 0), "data flow"),
                _line_key("M28 -6 L6 -6 Q2 -6 2 -2 L2 2 Q2 6 6 6 L28 6", "skip connection"),
                _line_key(svg.line(0, 0, 28, 0), "tensor sent over a link (shape · bytes codec)", WIRE, "5,3")]
    entries += [_text_key(_link_text(plan, link)) for link in plan.links]
    entries.append(_text_key(_mode_note(drawn)))
    keys, y = _flow_keys(entries, y + 24, width - 2 * MARGIN)
    return out + keys, y + 6


def _tier_key(k: int, tier: PlannedTier) -> tuple[float, list[str], str]:
    label = f"{tier.name}: {tier.device} ({tier.target}, {tier.backend})"
    return 18, [svg.rect(0, -6, 12, 12, fill=_colour(k), radius=2)], label


def _line_key(d: str, label: str, colour: str = FLOW, dash: str = "") -> tuple[float, list[str], str]:
    return 34, [svg.path(d, stroke=colour, dash=dash, width=1.5)], label


def _text_key(label: str) -> tuple[float, list[str], str]:
    return 0, [], label


def _flow_keys(entries: list[tuple[float, list[str], str]], y: float, width: float) -> tuple[list[str], float]:
    """Legend entries (symbol width, symbol drawn at 0,0, label) left to right, wrapping at `width`
    px; returns their elements and the last line's y."""
    out, x = [], 0.0
    for indent, symbol, label in entries:
        entry_width = indent + svg.text_width(label, 11)
        if x and x + entry_width > width:
            x, y = 0.0, y + 18
        if symbol:
            out.append(f'<g transform="translate({svg.n(MARGIN + x)} {svg.n(y)})">' + "".join(symbol) + "</g>")
        out.append(svg.text(MARGIN + x + indent, y + 4, label, 11, fill="#222" if symbol else "#555"))
        x += entry_width + 22
    return out, y


def _link_text(plan: Plan, link: PlannedLink) -> str:
    moved = sum(c.bytes for c in link.up)
    seconds = plan.predicted.transfer_s.get(link.name, 0.0)
    down = f", {len(link.down)} down" if link.down else ""
    return (f"link {link.name}: {len(link.up)} up ({_size(moved)}){down}, {_ms(seconds)}" if link.used
            else f"link {link.name}: unused")


def _mode_note(drawn: list[Box]) -> str:
    if any(b.kind == "block" for b in drawn):
        return "boxes: blocks of layers by name prefix; ≈ time = tier compute × share of MACs; hover for layers"
    return "one box per layer; hover a box for its numbers"


def _lanes(plan: Plan, top: float, bottom: float) -> list[str]:
    """Per tier: a tinted band behind its boxes, its name, and its totals (layers, compute, memory)."""
    out = []
    for k, tier in enumerate(plan.tiers):
        x, totals = lane_x(k) + CHANNEL, plan.totals(tier.name)
        out.append(svg.rect(x - 6, top, BOX_W + 12, bottom - top, fill=_colour(k), opacity=0.07, radius=6))
        lines = [f"{_layers(totals.layers)} · {_ms(totals.compute_s)} compute",
                 f"{_count(totals.macs)}MACs · {_size(totals.memory_bytes)} memory"]
        out.append(svg.text(x, top + 17, tier.name, 13, bold=True, fill=_colour(k)))
        out += [svg.text(x, top + 32 + 13 * i, line, 11, fill="#333") for i, line in enumerate(lines)]
    return out


def _transfer(drawn: list[Box], t: Transfer, layout: Layout, routes: dict) -> str:
    """One tensor over one or more links, labelled once above its wire, on the side of its readers."""
    paths, cx, far = transfer_paths(drawn, t, layout, routes)
    right = far > cx
    label = _wire_label(t, svg.chars_within(abs(far - cx) - 16, 10))
    paths.append(svg.text(cx + 8 if right else cx - 8, layout.wire_y[t.tensor] - 4, label, 10,
                          anchor="start" if right else "end", fill=WIRE, halo=True, css="wire-label"))
    return svg.group(paths, t.tooltip, "transfer")


def _wire_label(t: Transfer, chars: int) -> str:
    """Name, shape, bytes and codec, as much as fits in `chars`: the name shortened before the facts."""
    name = short_name(t.tensor)
    for facts in (t.wire, t.wire.split(" · ", 1)[-1]):
        if chars - len(facts) - 3 >= min(len(name), 10):
            return f"{shorten(name, chars - len(facts) - 3, outer=False)} · {facts}"
    return shorten(t.wire.split(" · ", 1)[-1], chars)


def _box(graph: LayerGraph, plan: Plan, box: Box, corner: tuple[float, float]) -> str:
    x, y = corner
    colour, h = _colour(box.tier), HEIGHT[box.kind]
    tier = plan.tiers[box.tier].name
    if box.kind == "io":
        node = box.nodes[0]
        tensor = graph.tensors[node.outputs[0] if node.outputs else node.inputs[0]]
        kind = "input" if node.outputs else "output"
        label = f"{kind}{'' if tensor.name == kind else ' ' + tensor.name} {'×'.join(map(str, tensor.shape))}"
        return svg.group([svg.rect(x, y, BOX_W, h, fill="white", stroke=colour, radius=h / 2, dash="3,2", css="box"),
                          svg.text(x + BOX_W / 2, y + 13, shorten(label, svg.chars_within(BOX_W - 16, 11)), 11,
                                   anchor="middle")], f"{box.name} on {tier}", "io")
    frame = svg.rect(x, y, BOX_W, h, fill=colour, stroke=colour, radius=4, opacity=0.2, css="box")
    seconds = _seconds(plan, box, tier)
    precision = _precisions(plan, box)
    if box.kind == "layer":
        node = box.nodes[0]
        named = node.op_type.lower() in box.label.lower()  # "relu_3" needs no "Relu" beside it
        tag = " ".join(t for t in ("" if named else node.op_type, precision) if t)
        op = svg.text(x + BOX_W - 6, y + 13, tag, 10, anchor="end", fill="#555") if tag else ""
        room = svg.chars_within(BOX_W - 24 - (svg.text_width(tag, 10) if tag else 0), 11)
        tip = (f"{node.name} ({node.op_type}) on {tier}, {plan.precision_of(node.name)}\n"
               f"{_count(node.macs)}MACs, output {_size(node.output_bytes)}, "
               f"≈{_ms(seconds)} (the tier's compute time × this layer's share of its MACs)")
        return svg.group([frame, svg.text(x + 6, y + 13, shorten(box.label, room), 11), op], tip, "layer")
    tip = _block_tip(box, tier, seconds, precision)
    return svg.group([frame, *_block_text(box, x, y, seconds, precision)], tip, "block")


def _precisions(plan: Plan, box: Box) -> str:
    """The box's precisions other than fp32 ("int8", "fp16/int8"), or "" when all are fp32."""
    return "/".join(sorted({plan.precision_of(node.name) for node in box.layers} - {"fp32"}))


def _block_text(box: Box, x: float, y: float, seconds: float, precision: str) -> list[str]:
    """Two lines: name (and part) with the layer count (and precision); op mix with the estimated time."""
    count, time = _layers(len(box.layers)) + (f" · {precision}" if precision else ""), f"≈{_ms(seconds)}"
    part = f" · part {box.part[0]}/{box.part[1]}" if box.part[1] > 1 else ""
    room = svg.chars_within(BOX_W - 24 - svg.text_width(count, 10), 11, bold=True) - len(part)
    mix, kept = op_mix(box.layers), ""
    for k in range(len(mix), 0, -1):
        kept = " ".join(f"{op}×{c}" for op, c in mix[:k]) + (f" +{len(mix) - k}" if k < len(mix) else "")
        if len(kept) <= svg.chars_within(BOX_W - 24 - svg.text_width(time, 10), 10):
            break
    return [svg.text(x + 6, y + 14, shorten(box.label, max(room, 4)) + part, 11, bold=True),
            svg.text(x + BOX_W - 6, y + 14, count, 10, anchor="end", fill="#555"),
            svg.text(x + 6, y + 28, kept, 10, fill="#333"),
            svg.text(x + BOX_W - 6, y + 28, time, 10, anchor="end", fill="#333")]


def _block_tip(box: Box, tier: str, seconds: float, precision: str) -> str:
    split = f" (part {box.part[0]} of {box.part[1]}: the block is split across tiers)" if box.part[1] > 1 else ""
    macs = sum(node.macs for node in box.layers)
    lines = [box.name, f"{_layers(len(box.layers))} on {tier}{split}, in {precision or 'fp32'}",
             f"{_count(macs)}MACs, ≈{_ms(seconds)} (the tier's compute time × this block's share of its MACs)",
             ", ".join(f"{op}×{c}" for op, c in op_mix(box.layers))]
    more = [f"  … and {len(box.layers) - 40} more"] if len(box.layers) > 40 else []
    return "\n".join(lines + [f"  {node.name} ({node.op_type})" for node in box.layers[:40]] + more)


def _seconds(plan: Plan, box: Box, tier: str) -> float:
    """Estimated compute seconds of a box: its tier's compute time x the box's share of the tier's MACs."""
    totals = plan.totals(tier)
    macs = sum(node.macs for node in box.layers)
    return totals.compute_s * macs / totals.macs if totals.macs else 0.0


def _layers(count: int) -> str:
    return f"{count} layer{'' if count == 1 else 's'}"


def _colour(tier: int) -> str:
    return COLOURS[tier % len(COLOURS)]


def _size(nbytes: float) -> str:
    """Bytes in binary units: 1536 -> '1.5 KiB'."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{int(nbytes)} B"


def _count(value: float) -> str:
    """A count with its unit prefix and a trailing space, to stand before a unit: 1234567 -> '1.23 M '."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.3g} {suffix} "
    return f"{int(value)} "


def _ms(seconds: float) -> str:
    """Seconds as milliseconds with three significant digits: 0.000476 -> '0.476 ms'."""
    ms = seconds * 1e3
    return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.3g} ms" if ms >= 0.01 else f"{ms:.2g} ms"
