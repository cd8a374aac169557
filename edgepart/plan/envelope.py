"""Exact plan tables over a parameter: a link's bandwidth, or the latency-energy trade-off.

Every cost is affine in beta = 1 / bandwidth of the swept link (transfer time 8 s / beta, and the
radio model's energy), so each fixed plan's objective is a line in beta and the optimum is their
lower envelope: concave and piecewise linear. The envelope's breakpoints are found exactly with one
solve per breakpoint (Eisner and Severance, 1976): solve at both ends; if the plans differ, solve
where their lines cross; a cheaper plan there splits the interval, otherwise the crossing is a
breakpoint. The same search over lambda in latency + lambda x energy gives the supported points
of the latency-energy Pareto front.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgepart.cost.model import CostModel, Objective
from edgepart.plan.solution import Solution

_ARRAYS = ("node_latency", "node_energy", "transfer_latency", "transfer_energy", "return_latency",
           "return_energy", "link_latency", "link_energy")


@dataclass(frozen=True)
class Segment:
    """`solution` is optimal for every parameter value in [start, end]."""

    start: float
    end: float
    solution: Solution


class AffineFamily:
    """Cost models affine in a parameter, from two models built at two parameter values."""

    def __init__(self, at_a: CostModel, a: float, at_b: CostModel, b: float) -> None:
        self.base, self.a, self.b = at_a, a, b
        self.slopes = {name: _slope(getattr(at_a, name), getattr(at_b, name), b - a) for name in _ARRAYS}

    def at(self, value: float) -> CostModel:
        changed = {name: getattr(self.base, name) + self.slopes[name] * (value - self.a) for name in _ARRAYS}
        return dataclasses.replace(self.base, **changed)


def _slope(first: np.ndarray, second: np.ndarray, step: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        slope = (second - first) / step
    return np.where(np.isfinite(first) & np.isfinite(second), slope, 0.0)


def same_plan(x: Solution, y: Solution) -> bool:
    return (np.array_equal(x.tiers, y.tiers) and np.array_equal(x.precisions, y.precisions)
            and np.array_equal(x.codecs, y.codecs))


def envelope(solve_at: Callable[[float], Solution], line: Callable[[Solution], tuple[float, float]],
             start: float, end: float, tolerance: float = 1e-9) -> list[Segment]:
    """Segments of the optimal plan over [start, end]; `line(s)` = (intercept, slope) of plan s."""
    segments: list[Segment] = []

    def split(lo: float, plan_lo: Solution, hi: float, plan_hi: Solution, depth: int = 0) -> None:
        if same_plan(plan_lo, plan_hi) or depth > 60:
            segments.append(Segment(lo, hi, plan_lo))
            return
        (c_lo, s_lo), (c_hi, s_hi) = line(plan_lo), line(plan_hi)
        if abs(s_lo - s_hi) <= tolerance * max(abs(s_lo), abs(s_hi), 1e-30):
            segments.append(Segment(lo, hi, plan_lo if c_lo <= c_hi else plan_hi))
            return
        cross = min(max((c_hi - c_lo) / (s_lo - s_hi), lo), hi)
        middle = solve_at(cross)
        c_mid, s_mid = line(middle)
        value_mid, value_lines = c_mid + s_mid * cross, c_lo + s_lo * cross
        if value_mid >= value_lines - tolerance * max(abs(value_lines), 1e-30) or cross in (lo, hi):
            segments.append(Segment(lo, cross, plan_lo))
            segments.append(Segment(cross, hi, plan_hi))
            return
        split(lo, plan_lo, cross, middle, depth + 1)
        split(cross, middle, hi, plan_hi, depth + 1)

    split(start, solve_at(start), end, solve_at(end))
    return _merge(segments)


def _merge(segments: list[Segment]) -> list[Segment]:
    merged: list[Segment] = []
    for segment in segments:
        if segment.end <= segment.start and merged:
            continue
        if merged and same_plan(merged[-1].solution, segment.solution):
            merged[-1] = Segment(merged[-1].start, segment.end, merged[-1].solution)
        else:
            merged.append(segment)
    return merged


def bandwidth_sweep(family: AffineFamily, objective: Objective, solve: Callable[[CostModel, Objective], Solution],
                    low_bps: float, high_bps: float) -> list[Segment]:
    """Segments over bandwidth, in increasing bandwidth: the family's parameter is beta = 1 / bandwidth."""

    def line(solution: Solution) -> tuple[float, float]:
        at_a = solution.objective(family.at(family.a), objective)
        at_b = solution.objective(family.at(family.b), objective)
        slope = (at_b - at_a) / (family.b - family.a)
        return at_a - slope * family.a, slope

    segments = envelope(lambda beta: solve(family.at(beta), objective), line, 1 / high_bps, 1 / low_bps)
    return [Segment(1 / s.end, 1 / s.start, s.solution) for s in reversed(segments)]


def pareto_front(model: CostModel, solve: Callable[[CostModel, Objective], Solution],
                 max_weight: float = 1e6) -> list[Segment]:
    """Supported latency-energy Pareto plans: segments over lambda in latency + lambda x energy (s/J)."""

    def line(solution: Solution) -> tuple[float, float]:
        metrics = solution.metrics(model)
        return float(metrics.latency_s[0]), float(metrics.energy_j[0])

    return envelope(lambda weight: solve(model, Objective("weighted", weight)), line, 0.0, max_weight)
