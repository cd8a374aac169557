"""Where the plan picture puts boxes and how it routes the lines between them (px throughout).

One lane per tier, left to right; boxes top to bottom in drawing order, each in its tier's lane,
and under a box one row per tensor it sends over a link (its wire runs along that row, so wire
labels never meet a box or each other). Within a lane, data to the next box of the lane is a
straight line; data that skips boxes runs down a track in the lane's left margin, one track per
source (a tensor read by several later boxes is one rail with a branch into each), shorter spans on
the inner tracks so nested skips do not cross.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace

from edgepart.plan import svg
from edgepart.plan.drawing_boxes import Box

MARGIN, CHANNEL, BOX_W, GAP = 20, 60, 250, 72  # lane = CHANNEL (skip tracks) + BOX_W + GAP
HEIGHT = {"layer": 18, "io": 18, "block": 34}  # box height by kind
ROW_GAP, WIRE_ROW, TRACK = 8, 22, 7  # space between rows, a wire's row, between skip tracks
FLOW, WIRE = "#8c8c8c", "#c81e1e"


@dataclass(frozen=True)
class Transfer:
    """A tensor crossing one or more links: drawn once from its producer's box to the boxes that
    read it on other tiers. `wire` says what travels: shape, bytes on the wire and codec per link."""

    tensor: str
    source: int
    targets: tuple[int, ...]
    wire: str
    tooltip: str


@dataclass(frozen=True)
class Side:
    """A route down lane `lane`'s left margin from (x0, y0) into the left middle of each box at ys;
    `track` 0 is nearest the boxes; `key` names what it carries (a source box, or a wire)."""

    key: tuple
    lane: int
    x0: float
    y0: float
    ys: tuple[float, ...]
    track: int = 0

    @property
    def x(self) -> float:
        return lane_x(self.lane) + CHANNEL - 8 - min(self.track, (CHANNEL - 14) // TRACK) * TRACK


@dataclass
class Layout:
    """Top-left corner of each box (by index), y of each wire (by tensor), the height used."""

    corner: dict[int, tuple[float, float]]
    wire_y: dict[str, float]
    height: float

    def clear(self, drawn: list[Box], lane: int, y1: float, y2: float) -> bool:
        """No box of `lane` starts strictly between y1 and y2."""
        return not any(b.tier == lane and y1 < self.corner[b.index][1] < y2 for b in drawn)

    def middle(self, box: Box) -> float:
        return self.corner[box.index][1] + HEIGHT[box.kind] / 2


def lane_x(tier: int) -> float:
    return MARGIN + tier * (CHANNEL + BOX_W + GAP)


def place(drawn: list[Box], transfers: list[Transfer], top: float) -> Layout:
    """Rows from `top` down: each box, then a row for each tensor it sends over a link."""
    layout, y = Layout({}, {}, 0.0), top
    leaving = defaultdict(list)
    for t in transfers:
        leaving[t.source].append(t)
    for box in drawn:
        layout.corner[box.index] = (lane_x(box.tier) + CHANNEL, y)
        y += HEIGHT[box.kind]
        for t in leaving[box.index]:
            y += WIRE_ROW
            layout.wire_y[t.tensor] = y  # the label sits above the wire
        y += ROW_GAP
    layout.height = y
    return layout


def sides(drawn: list[Box], pairs: set[tuple[int, int]], transfers: list[Transfer], layout: Layout) -> dict:
    """Every route that must skip boxes, with its track: key -> Side."""
    routes, skipped = [], defaultdict(list)
    for a, b in sorted(pairs):
        if not layout.clear(drawn, drawn[a].tier, layout.corner[a][1], layout.corner[b][1]):
            skipped[a].append(layout.middle(drawn[b]))
    for a, ys in skipped.items():
        routes.append(Side(("box", a), drawn[a].tier, layout.corner[a][0], layout.middle(drawn[a]), tuple(ys)))
    for t in transfers:
        y, by_lane = layout.wire_y[t.tensor], defaultdict(list)
        for r in t.targets:
            if not layout.clear(drawn, drawn[r].tier, y, layout.corner[r][1]):
                by_lane[drawn[r].tier].append(layout.middle(drawn[r]))
        routes += [Side(("wire", t.tensor, lane), lane, 0.0, y, tuple(ys)) for lane, ys in sorted(by_lane.items())]
    return {side.key: side for side in _tracks(routes)}


def _tracks(routes: list[Side]) -> list[Side]:
    """Tracks for the routes: shortest spans first, each on the innermost track free over its span."""
    placed: list[Side] = []
    for side in sorted(routes, key=lambda s: (max(s.ys) - s.y0, s.y0, s.key)):
        track = 0
        while any(p.lane == side.lane and p.track == track and p.y0 - 3 <= max(side.ys) and side.y0 <= max(p.ys) + 3
                  for p in placed):
            track += 1
        placed.append(replace(side, track=track))
    return placed


def side_paths(side: Side, colour: str, dash: str = "", arrow: str = "flow") -> list[str]:
    """A rail down the track, with a rounded turn into the last box and a branch into each other."""
    x, last, r = side.x, max(side.ys), 4
    box_left = lane_x(side.lane) + CHANNEL
    start = (f"M{svg.n(side.x0)} {svg.n(side.y0)} L{svg.n(x + r)} {svg.n(side.y0)} "
             f"Q{svg.n(x)} {svg.n(side.y0)} {svg.n(x)} {svg.n(side.y0 + r)}" if side.x0 > x + r
             else f"M{svg.n(x)} {svg.n(side.y0)}")
    rail = (f"{start} L{svg.n(x)} {svg.n(last - r)} Q{svg.n(x)} {svg.n(last)} {svg.n(x + r)} {svg.n(last)} "
            f"L{svg.n(box_left)} {svg.n(last)}")
    out = [svg.path(rail, stroke=colour, dash=dash, arrow=arrow)]
    out += [svg.path(svg.line(x, y, box_left, y), stroke=colour, dash=dash, arrow=arrow) for y in sorted(side.ys)[:-1]]
    return out


def edge(drawn: list[Box], a: int, b: int, layout: Layout) -> list[str]:
    """Data from box a straight down to box b, the next box of their lane (nothing when it skips)."""
    (xa, ya), (xb, yb) = layout.corner[a], layout.corner[b]
    bottom = ya + HEIGHT[drawn[a].kind]
    if not layout.clear(drawn, drawn[a].tier, ya, yb):
        return []
    return [svg.path(svg.line(xa + BOX_W / 2, bottom, xb + BOX_W / 2, yb), stroke=FLOW, arrow="flow")]


def transfer_paths(drawn: list[Box], t: Transfer, layout: Layout, routes: dict) -> tuple[list[str], float, float]:
    """A wire: down from its producer, along its row, and into each reader (straight down when no
    box is in the way, else by a route). Returns the paths and the wire's x span from the producer
    towards its farthest reader (x where it leaves, x where it ends)."""
    y, (x0, top) = layout.wire_y[t.tensor], layout.corner[t.source]
    cx = x0 + BOX_W / 2
    out, ends = [svg.path(svg.line(cx, top + HEIGHT[drawn[t.source].kind], cx, y), stroke=WIRE, dash="5,3")], [cx]
    for r in t.targets:
        xr, yr = layout.corner[r]
        if layout.clear(drawn, drawn[r].tier, y, yr):
            out.append(svg.path(svg.line(xr + BOX_W / 2, y, xr + BOX_W / 2, yr), stroke=WIRE, dash="5,3",
                                arrow="wire"))
            ends.append(xr + BOX_W / 2)
    for lane in sorted({drawn[r].tier for r in t.targets}):
        side = routes.get(("wire", t.tensor, lane))
        if side is not None:
            out += side_paths(side, WIRE, "5,3", "wire")
            ends.append(side.x)
    out.insert(1, svg.path(svg.line(min(ends), y, max(ends), y), stroke=WIRE, dash="5,3", width=1.6))
    far = max(ends) if max(ends) > cx else min(ends)
    return out, cx, far
