"""What the plan picture draws as boxes, and short readable names for them.

A small model gets one box per layer. A large one gets blocks: consecutive layers (in topological
order) on one tier whose names share a prefix ("/features/features.2/features.2.0/..." -> block
"features.2.0"); the prefix depth is the shallowest that gives MIN_BLOCKS boxes or more (else the
deepest that stays within MAX_BLOCKS), so blocks are big enough to read and numerous enough to show
where the cut falls. A
block split across tiers becomes one box per (prefix, tier) run, numbered "part k/n". Names without
prefixes fall back to runs of a fixed number of consecutive layers.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from edgepart.graph import LayerGraph, Node

LAYER_BOXES_UP_TO = 60  # layers; a larger model is drawn as blocks
MIN_BLOCKS, MAX_BLOCKS = 12, 36  # boxes a block picture aims for (a few more where blocks are split)


@dataclass(frozen=True)
class Box:
    """One drawn box: `kind` is "layer", "block" or "io" (a graph input or output); `name` is the
    full layer name or block prefix, `label` its short form; `part` = (k, n) for the k-th of the n
    boxes of one block split across tiers."""

    index: int
    tier: int
    kind: str
    nodes: tuple[Node, ...]
    name: str
    label: str
    part: tuple[int, int] = (1, 1)

    @property
    def layers(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if not n.is_pseudo)


def boxes(graph: LayerGraph, tier_of: dict[str, int]) -> list[Box]:
    """The boxes in drawing order (topological order of their first layer); `tier_of` maps a node to
    its tier index."""
    if len(graph.layers) <= LAYER_BOXES_UP_TO:
        runs = _runs(graph.nodes, tier_of, lambda node: node.name)
        return [_box(i, run, tier_of, "layer", run[0].name, short_name(run[0].name, run[0].op_type))
                for i, run in enumerate(runs)]
    runs, key = _block_runs(graph.nodes, tier_of)
    named = [None if run[0].is_pseudo or not key(run[0]) else key(run[0]) for run in runs]  # None: not a block
    totals, seen, result = Counter(named), Counter(), []
    for i, (run, block) in enumerate(zip(runs, named)):
        seen[block] += 1
        name, label = _block_name(run, key(run[0]), graph.layers)
        part = (seen[block], totals[block]) if block is not None else (1, 1)
        result.append(_box(i, run, tier_of, "block", name, label, part))
    return result


def _box(index: int, run: Sequence[Node], tier_of: dict[str, int], kind: str, name: str, label: str,
         part: tuple[int, int] = (1, 1)) -> Box:
    if run[0].is_pseudo:
        kind, part = "io", (1, 1)
    return Box(index, tier_of[run[0].name], kind, tuple(run), name, label, part)


def _runs(nodes: Sequence[Node], tier_of: dict[str, int], key: Callable[[Node], Hashable]) -> list[list[Node]]:
    """Maximal stretches of consecutive nodes with one key on one tier; inputs and outputs alone."""
    runs: list[list[Node]] = []
    for node in nodes:
        last = runs[-1][-1] if runs else None
        if (last is None or node.is_pseudo or last.is_pseudo or tier_of[node.name] != tier_of[last.name]
                or key(node) != key(last)):
            runs.append([node])
        else:
            runs[-1].append(node)
    return runs


def _block_runs(nodes: Sequence[Node], tier_of: dict[str, int]) -> tuple[list[list[Node]], Callable]:
    """Runs at the shallowest prefix depth giving MIN_BLOCKS to MAX_BLOCKS boxes, else the deepest
    within MAX_BLOCKS; fixed-size chunks when even depth 1 gives too many."""
    paths = {node.name: prefix(node.name) for node in nodes}
    best: tuple[list[list[Node]], Callable] | None = None
    for depth in range(1, max(len(p) for p in paths.values()) + 1):
        key = _depth_key(paths, depth)
        runs = _runs(nodes, tier_of, key)
        if len(runs) > MAX_BLOCKS:
            break  # a deeper prefix only splits runs further
        if best is None or len(runs) > len(best[0]):
            best = runs, key
        if len(runs) >= MIN_BLOCKS:
            break
    if best is not None:
        return best
    position = {node.name: i for i, node in enumerate(n for n in nodes if not n.is_pseudo)}
    size = math.ceil(len(position) / ((MIN_BLOCKS + MAX_BLOCKS) // 2))

    def chunk(node: Node) -> tuple[str, int]:
        return "#chunk", position.get(node.name, -1) // size

    return _runs(nodes, tier_of, chunk), chunk


def _depth_key(paths: dict[str, tuple[str, ...]], depth: int) -> Callable[[Node], tuple[str, ...]]:
    return lambda node: paths[node.name][:depth]


def _block_name(run: Sequence[Node], key: Hashable, layers: Sequence[Node]) -> tuple[str, str]:
    """(full name, short label) of a block run."""
    first = run[0]
    if first.is_pseudo:
        return first.name, first.name.split(":", 1)[0]
    if isinstance(key, tuple) and key and key[0] == "#chunk":
        index = {node.name: i + 1 for i, node in enumerate(layers)}
        label = f"layers {index[first.name]}-{index[run[-1].name]}"
        return label, label
    if not key:  # layers without a prefix: name them by their op types
        ops = list(dict.fromkeys(node.op_type for node in run))
        return "+".join(ops), "+".join(ops[:2]) + ("+…" if len(ops) > 2 else "")
    return "/" + "/".join(key), "/".join(_without_repeats(list(key)))


def prefix(name: str) -> tuple[str, ...]:
    """The scope path of a layer name, its last part (the op) dropped:
    "/features/features.2/Conv" -> ("features", "features.2"); "stage1.block0.conv1" -> ("stage1", "block0")."""
    parts = [p for p in name.split("/") if p] if "/" in name else name.split(".")
    return tuple(parts[:-1])


def _without_repeats(parts: list[str]) -> list[str]:
    """Drop scopes that the next scope repeats (torch names "features/features.2" -> "features.2")."""
    return [p for p, after in zip(parts, parts[1:] + [""]) if not after.startswith(p + ".")]


def short_name(name: str, op_type: str = "") -> str:
    """A layer or tensor name without repeated scopes, and without a last part that only names the op
    ("/features/features.2/features.2.0/block/block.0/block.0.0/Conv" -> "features.2.0/block.0.0")."""
    parts = [p for p in name.split("/") if p]
    if len(parts) > 1 and op_type and re.fullmatch(re.escape(op_type) + r"(_\d+)?", parts[-1]):
        parts = parts[:-1]
    return "/".join(_without_repeats(parts)) or name


def shorten(text: str, max_chars: int, outer: bool = True) -> str:
    """`text` cut to at most `max_chars` characters where it reads best: whole "/" scopes around an
    ellipsis (with `outer`, the first scope kept when it fits; the last always), else the head and
    the tail around one."""
    if len(text) <= max_chars:
        return text
    parts = text.split("/")
    heads = [f"{parts[0]}/…/"] * (outer and len(parts) > 2) + ["…/"]
    for head in heads:  # keep the outermost scope if possible, and the fewest scopes left out
        for start in range(2 if head != "…/" else 1, len(parts)):
            if len(head + "/".join(parts[start:])) <= max_chars:
                return head + "/".join(parts[start:])
    head = max(1, (max_chars - 1) * 2 // 5)
    return text[:head] + "…" + text[len(text) - (max_chars - 1 - head):] if max_chars > 2 else text[:max_chars]


def op_mix(nodes: Sequence[Node]) -> list[tuple[str, int]]:
    """(op type, count): ops that do arithmetic (MACs) first, then the most frequent, ties by name."""
    counts = Counter(node.op_type for node in nodes)
    computes = {node.op_type for node in nodes if node.macs}
    return sorted(counts.items(), key=lambda item: (item[0] not in computes, -item[1], item[0]))
