"""Adaptive plans (`plan --sweep LOW..HIGH`): every distinct plan of a bandwidth sweep of one link,
and the fallback that runs everything on the device tier, in one plan file that compile builds
together and `run --adapt` switches between.

The sweep's exact segments (edgepart.plan.sweep) say where the optimal split changes; each segment
is planned in full (backends, precisions, codecs) at its geometric middle. Each plan's latency is a
line in 1 / bandwidth of the swept link, `fixed_s + bits / bps` (bits: what it sends up that link,
edgepart.plan.envelope), so the breakpoint table of the plans built is the lower envelope of their
lines: it holds exactly for what ships, whatever the planner chose inside a segment.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

from edgepart.errors import BadInputError
from edgepart.graph import LoadedModel
from edgepart.hardware.deploy import Budgets, Deployment
from edgepart.plan.plan_file import Plan

FALLBACK = "fallback"  # the id of the everything-on-the-device plan when no sweep plan is that already


@dataclass(frozen=True)
class Line:
    """A plan's predicted latency over the swept link's uplink bandwidth: fixed_s + bits / bps."""

    fixed_s: float
    bits: float

    def at(self, bps: float) -> float:
        return self.fixed_s + self.bits / bps

    def as_json(self) -> dict[str, float]:
        return {"fixed_s": self.fixed_s, "bits": self.bits}


def line_of(plan: Plan, link: str) -> Line:
    """The plan's latency line over `link`'s bandwidth, from its prediction at the bandwidth it was made for."""
    planned = next(each for each in plan.links if each.name == link)
    bits = 8.0 * sum(crossing.bytes for crossing in planned.up)
    latency = plan.predicted.latency_s or 0.0
    return Line(latency - bits / planned.uplink_bps, bits)


def breakpoints(lines: dict[str, Line], low_bps: float, high_bps: float) -> list[dict[str, Any]]:
    """The cheapest plan over [low_bps, high_bps] in increasing bandwidth: [{from_bps, to_bps, plan}].
    Candidate breakpoints are where two lines cross; between neighbours one plan is cheapest."""
    cuts = {low_bps, high_bps}
    ids = sorted(lines)
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            slope = lines[a].bits - lines[b].bits
            if slope:
                beta = (lines[b].fixed_s - lines[a].fixed_s) / slope  # 1 / bps where they cross
                if beta > 0 and low_bps < 1 / beta < high_bps:
                    cuts.add(1 / beta)
    edges = sorted(cuts)
    table: list[dict[str, Any]] = []
    for start, end in zip(edges, edges[1:]):
        middle = math.sqrt(start * end)
        best = min(ids, key=lambda k: (lines[k].at(middle), k))
        if table and table[-1]["plan"] == best:
            table[-1]["to_bps"] = end
        else:
            table.append({"from_bps": start, "to_bps": end, "plan": best})
    return table


def device_only(deployment: Deployment, layers: int) -> Deployment:
    """The deployment with every layer pinned to its first tier and the results consumed there: the
    fallback when a link or a tier above fails. No budgets: it is what remains, not a choice."""
    pins = dataclasses.replace(deployment.pins, first_layers=layers)
    return dataclasses.replace(deployment, pins=pins, output_tier=0, budgets=Budgets())


def swept(deployment: Deployment) -> Deployment:
    """The deployment the sweep's plans are made on: latency and energy budgets dropped (a plan at a
    low bandwidth may miss them and still be the best there is), accuracy kept."""
    return dataclasses.replace(deployment, budgets=Budgets(accuracy_drop=deployment.budgets.accuracy_drop))


def section(loaded: LoadedModel, deployment: Deployment, nominal: Plan, link: int, low_bps: float, high_bps: float,
            plan_at: Any, segment_bandwidths: list[tuple[float, float]]) -> dict[str, Any]:
    """The plan file's `adaptive` section. `plan_at(deployment) -> plan document` is the planner
    with the user's profiles and options; `segment_bandwidths`: the sweep's segments (from, to)."""
    from edgepart.plan.sweep import at_bandwidth  # noqa: PLC0415 - the sweep imports the cost model

    name = deployment.links[link].name
    chosen = {identity(nominal): nominal}  # the nominal plan stands for its identity: its predictions are
    for start, end in segment_bandwidths:  # at the deployment's own bandwidth
        middle = math.sqrt(start * end)
        each = Plan.of(plan_at(at_bandwidth(swept(deployment), link, middle)), f"the plan at {middle:.4g} bit/s")
        chosen.setdefault(identity(each), each)
    fallback = Plan.of(plan_at(device_only(deployment, len(loaded.graph.layers))), "the device-only plan")
    if any(tier != fallback.tiers[0].name for tier in fallback.assignment.values()):
        raise BadInputError(f"{deployment.path}: --sweep needs a fallback that runs every layer on tier "
                            f"'{deployment.tiers[0].name}', and the planner could not place them all there")
    plans = {f"p{k}": each for k, each in enumerate(sorted(chosen.values(), key=lambda p: _uplink(p, name)))}
    keys = {identity(each): plan_id for plan_id, each in plans.items()}
    if identity(fallback) not in keys:
        plans[FALLBACK] = fallback
        keys[identity(fallback)] = FALLBACK
    lines = {plan_id: line_of(each, name) for plan_id, each in plans.items()}
    return {
        "link": name, "range_bps": [low_bps, high_bps],
        "start": keys[identity(nominal)], "fallback": keys[identity(fallback)],
        "breakpoints": breakpoints(lines, low_bps, high_bps),
        "lines": {plan_id: line.as_json() for plan_id, line in lines.items()},
        # copies: the nominal plan's document is the one this section goes into
        "plans": {plan_id: {k: v for k, v in each.doc.items() if k != "adaptive"} for plan_id, each in plans.items()},
    }


def identity(plan: Plan) -> str:
    """What makes two plans the same build: placement, precisions, codecs, backends, output tier."""
    crossings = [[(u.tensor, u.codec) for u in link.up] for link in plan.links]
    return json.dumps([plan.assignment, plan.precisions, crossings, [t.backend for t in plan.tiers], plan.output_tier],
                      sort_keys=True)


def _uplink(plan: Plan, link: str) -> float:
    return next(each.uplink_bps for each in plan.links if each.name == link) or 0.0
