"""The plan as an SVG picture: one column per tier, layers in topological order, cut tensors marked."""

from __future__ import annotations

from html import escape
from typing import Any

from edgepart.graph import LayerGraph

COLOURS = ["#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756"]
ROW, COLUMN, BOX_W, BOX_H, MARGIN = 26, 260, 200, 20, 40


def plan_svg(graph: LayerGraph, plan: dict[str, Any]) -> str:
    tiers = [t["name"] for t in plan["deployment"]["tiers"]]
    where = plan["assignment"]
    position = {}
    for row, node in enumerate(graph.nodes):
        position[node.name] = (MARGIN + tiers.index(where[node.name]) * COLUMN, MARGIN + 30 + row * ROW)
    width = MARGIN * 2 + COLUMN * (len(tiers) - 1) + BOX_W
    height = MARGIN * 2 + 30 + ROW * len(graph.nodes)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11">',
             f'<rect width="{width}" height="{height}" fill="white"/>']
    for k, tier in enumerate(tiers):
        parts.append(f'<text x="{MARGIN + k * COLUMN}" y="{MARGIN}" font-size="14" font-weight="bold" '
                     f'fill="{COLOURS[k % len(COLOURS)]}">{escape(tier)}</text>')
    for producer, consumer, tensor in graph.edges():
        (x1, y1), (x2, y2) = position[producer], position[consumer]
        cut = where[producer] != where[consumer]
        style = 'stroke="#d62728" stroke-width="2" stroke-dasharray="5,3"' if cut else 'stroke="#999"'
        parts.append(f'<line x1="{x1 + BOX_W / 2}" y1="{y1 + BOX_H}" x2="{x2 + BOX_W / 2}" y2="{y2}" {style}/>')
        if cut:
            size = graph.tensors[tensor].nbytes
            parts.append(f'<text x="{(x1 + x2) / 2 + BOX_W / 2 + 4}" y="{(y1 + y2) / 2 + BOX_H / 2}" '
                         f'fill="#d62728">{escape(tensor[:24])} {_size(size)}</text>')
    for node in graph.nodes:
        x, y = position[node.name]
        colour = COLOURS[tiers.index(where[node.name]) % len(COLOURS)]
        label = f"{node.name[:26]}  {node.op_type}"
        parts.append(f'<g><title>{escape(node.name)} ({escape(node.op_type)}), {node.macs} MACs</title>'
                     f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="4" fill="{colour}" '
                     f'fill-opacity="0.2" stroke="{colour}"/>'
                     f'<text x="{x + 5}" y="{y + 14}">{escape(label)}</text></g>')
    parts.append("</svg>\n")
    return "\n".join(parts)


def _size(nbytes: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} B"
