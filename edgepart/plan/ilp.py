"""Integer linear program (PuLP; CBC bundled, HiGHS when installed): K tiers x precisions per node,
a codec per (tensor, link), memory, latency, energy and accuracy budgets, pins, and the throughput
objective, which no min-cut can express. Warm-started from the min-cut; a time limit; the gap is
reported. The constraint families are named in the code as in docs/solvers.md.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pulp

from edgepart.cost.model import CostModel, Objective
from edgepart.errors import CheckFailedError, ToolError
from edgepart.plan import mincut
from edgepart.plan.solution import Solution, pin_conflict


@dataclass(frozen=True)
class IlpOptions:
    time_limit_s: float = 60.0
    backend: str = "auto"  # auto | cbc | highs
    warm_start: bool = True


def solve(model: CostModel, objective: Objective, options: IlpOptions | None = None) -> Solution:
    options = options or IlpOptions()
    started = time.perf_counter()
    program = _Program(model, objective)
    start = _warm_start(model, objective) if options.warm_start else None
    if start is not None:
        program.set_initial(start)
    status, gap = program.solve(options, warm=start is not None)
    if status == "infeasible":
        raise CheckFailedError(pin_conflict(model) or infeasible_message(model))
    solution = program.solution()
    solution.status, solution.gap = status, gap
    solution.seconds = time.perf_counter() - started
    return solution


class _Program:
    """The ILP, built from the cost model's arrays."""

    def __init__(self, model: CostModel, objective: Objective) -> None:
        self.model, self.objective = model, objective
        n, k, p, t, c = model.shape
        self.links = len(model.links)
        self.problem = pulp.LpProblem("edgepart", pulp.LpMinimize)
        allowed = np.isfinite(model.node_latency) & np.isfinite(model.node_energy)
        for node, tier in model.pinned.items():
            allowed[node, np.arange(k) != tier, :] = False
        # Choice: one (tier, precision) per node.
        self.y = {(v, tier, q): pulp.LpVariable(f"y_{v}_{tier}_{q}", cat="Binary")
                  for v, tier, q in zip(*np.nonzero(allowed))}
        for v in range(n):
            choices = [var for (u, _, _), var in self.y.items() if u == v]
            if not choices:
                raise CheckFailedError(f"node '{model.nodes[v]}' has no allowed tier and precision")
            self.problem += pulp.lpSum(choices) == 1, f"one_choice_{v}"
        self.on_tier = {(v, tier): pulp.lpSum(var for (u, s, _), var in self.y.items() if u == v and s == tier)
                        for v in range(n) for tier in range(k)}
        self.at_or_above = {(v, level): pulp.lpSum(self.on_tier[v, s] for s in range(level, k))
                            for v in range(n) for level in range(1, k)}
        # Flow up: a consumer never runs below its producer.
        for u, v in model.ordered_edges():
            for level in range(1, k):
                self.problem += self.at_or_above[u, level] <= self.at_or_above[v, level], f"flow_up_{u}_{v}_{level}"
        # Crossing: tensor t goes up link l (in one codec) when a consumer runs above it and its producer not.
        # A codec with an infinite cost (a lossy one no measurement covers) gets no variable.
        kind = "Binary" if c > 1 else "Continuous"
        sendable = np.isfinite(model.transfer_latency) & np.isfinite(model.transfer_energy)
        self.cross = {(ti, link, codec): pulp.LpVariable(f"x_{ti}_{link}_{codec}", 0, 1, cat=kind)
                      for ti, link, codec in zip(*np.nonzero(sendable))}
        for ti, tensor in enumerate(model.tensors):
            for link in range(self.links):
                sent = pulp.lpSum(self.cross[ti, link, codec] for codec in range(c) if (ti, link, codec) in self.cross)
                for consumer in tensor.consumers:
                    self.problem += (sent >= self.at_or_above[consumer, link + 1]
                                     - self.at_or_above[tensor.producer, link + 1]), f"cross_{ti}_{link}_{consumer}"
        # Link use: a link is used when anything runs above it.
        self.used = {link: pulp.LpVariable(f"used_{link}", 0, 1) for link in range(self.links)}
        for link in range(self.links):
            for v in range(n):
                self.problem += self.used[link] >= self.at_or_above[v, link + 1], f"used_{link}_{v}"
        self.latency = self._total(model.node_latency, model.transfer_latency, model.return_latency,
                                   model.link_latency)
        self.energy = self._total(model.node_energy, model.transfer_energy, model.return_energy, model.link_energy)
        self._budgets()
        self._objective()

    def _total(self, node, transfer, back, link_cost) -> pulp.LpAffineExpression:
        model = self.model
        terms = [node[v, tier, q] * var for (v, tier, q), var in self.y.items() if node[v, tier, q]]
        terms += [transfer[ti, link, codec] * var for (ti, link, codec), var in self.cross.items()
                  if transfer[ti, link, codec]]
        for ti, tensor in enumerate(model.tensors):
            if tensor.is_output:  # results come down from the producer's tier to the output tier
                terms += [back[ti, link] * self.at_or_above[tensor.producer, link + 1]
                          for link in range(model.output_tier, self.links) if back[ti, link]]
        terms += [link_cost[link] * self.used[link] for link in range(self.links) if link_cost[link]]
        return pulp.lpSum(terms)

    def _budgets(self) -> None:
        model = self.model
        if model.latency_budget is not None:
            self.problem += self.latency <= model.latency_budget, "budget_latency"
        if model.energy_budget is not None:
            self.problem += self.energy <= model.energy_budget, "budget_energy"
        if model.accuracy_budget is not None:
            drop = [model.accuracy_drop[v, q] * var for (v, _, q), var in self.y.items() if model.accuracy_drop[v, q]]
            drop += [model.codec_accuracy_drop[ti, codec] * var for (ti, _, codec), var in self.cross.items()
                     if model.codec_accuracy_drop[ti, codec]]
            self.problem += pulp.lpSum(drop) <= model.accuracy_budget, "budget_accuracy"
        for tier, budget in enumerate(model.memory_budget):
            if budget is None:
                continue
            peak = pulp.LpVariable(f"peak_activation_{tier}", 0)
            for v in range(len(model.nodes)):
                if model.activation_bytes[v]:
                    self.problem += peak >= model.activation_bytes[v] * self.on_tier[v, tier], f"peak_{tier}_{v}"
            weights = pulp.lpSum(model.weight_bytes[v, q] * var for (v, s, q), var in self.y.items() if s == tier)
            self.problem += weights + peak <= budget, f"budget_memory_{tier}"

    def _objective(self) -> None:
        if self.objective.kind == "throughput":
            slowest = pulp.LpVariable("slowest_stage", 0)
            model = self.model
            for tier in range(len(model.tiers)):
                self.problem += slowest >= pulp.lpSum(
                    model.node_latency[v, s, q] * var for (v, s, q), var in self.y.items() if s == tier
                ), f"stage_tier_{tier}"
            for link in range(self.links):
                up = [model.transfer_latency[ti, link, codec] * var
                      for (ti, li, codec), var in self.cross.items() if li == link]
                down = [model.return_latency[ti, link] * self.at_or_above[tensor.producer, link + 1]
                        for ti, tensor in enumerate(model.tensors) if tensor.is_output and link >= model.output_tier]
                self.problem += slowest >= pulp.lpSum(up + down), f"stage_link_{link}"
            self.problem += slowest
        else:
            a, b = self.objective.coefficients
            self.problem += a * self.latency + b * self.energy

    def set_initial(self, start: Solution) -> None:
        for (v, tier, q), var in self.y.items():
            var.setInitialValue(int(start.tiers[v] == tier and start.precisions[v] == q))
        metrics_tiers = start.tiers
        for (ti, link, codec), var in self.cross.items():
            tensor = self.model.tensors[ti]
            reach = max((metrics_tiers[c] for c in tensor.consumers), default=-1)
            crossing = metrics_tiers[tensor.producer] <= link < reach
            var.setInitialValue(int(crossing and start.codecs[ti, link] == codec))
        for link, var in self.used.items():
            var.setInitialValue(int(metrics_tiers.max() > link))

    def solve(self, options: IlpOptions, warm: bool) -> tuple[str, float | None]:
        backend = options.backend
        if backend == "auto":
            backend = "highs" if "HiGHS" in pulp.listSolvers(onlyAvailable=True) else "cbc"
        with tempfile.TemporaryDirectory() as tmp:
            log = Path(tmp) / "solver.log"
            if backend == "highs":
                solver = pulp.HiGHS(msg=False, timeLimit=options.time_limit_s, warmStart=warm)
            else:
                solver = pulp.PULP_CBC_CMD(msg=False, timeLimit=options.time_limit_s, warmStart=warm,
                                           logPath=str(log), threads=1)
            try:
                with _stdout_silenced():  # HiGHS prints a banner on stdout, where --json output goes
                    self.problem.solve(solver)
            except pulp.PulpSolverError as exc:
                raise ToolError(f"the ILP solver ({backend}) failed: {exc}") from None
            text = log.read_text() if log.exists() else ""
        if backend == "highs" and getattr(self.problem, "solverModel", None) is not None:
            text = f"Gap: {self.problem.solverModel.getInfo().mip_gap}"
        status = pulp.LpStatus[self.problem.status]
        if status == "Infeasible":
            return "infeasible", None
        solved = (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible)
        if status != "Optimal" or self.problem.sol_status not in solved:
            if "infeasible" in text.lower() and "Stopped on time" not in text:
                return "infeasible", None
            raise ToolError(f"the ILP solver ({backend}) returned status {status} without a solution")
        gap = _gap_from_log(text)
        if self.problem.sol_status == pulp.LpSolutionIntegerFeasible or (gap is not None and gap > 1e-9):
            return "feasible", gap
        return "optimal", 0.0

    def solution(self) -> Solution:
        n = len(self.model.nodes)
        tiers, precisions = np.zeros(n, dtype=int), np.zeros(n, dtype=int)
        for (v, tier, q), var in self.y.items():
            if (var.value() or 0) > 0.5:
                tiers[v], precisions[v] = tier, q
        codecs = np.zeros((len(self.model.tensors), self.links), dtype=int)
        for (ti, link, codec), var in self.cross.items():
            if (var.value() or 0) > 0.5:
                codecs[ti, link] = codec
        return Solution(tiers, precisions, codecs, "ilp")


def _warm_start(model: CostModel, objective: Objective) -> Solution | None:
    """The min-cut plan, when it is feasible under the budgets (otherwise no start is given)."""
    try:
        start = mincut.solve(model, Objective("latency") if objective.kind == "throughput" else objective)
    except CheckFailedError:
        return None
    return start if bool(start.metrics(model).feasible(model)[0]) else None


@contextlib.contextmanager
def _stdout_silenced():
    """Send what native code writes to file descriptor 1 to /dev/null for the duration."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _gap_from_log(text: str) -> float | None:
    match = re.search(r"Gap:\s*([-+0-9.eE]+)", text)
    return float(match.group(1)) if match else None


def unmet_budgets(model: CostModel) -> dict[str, dict[str, float]]:
    """Each budget that cannot be met even alone, by its name in the plan file's `budgets`
    (latency_s, device_energy_j, memory_bytes.<tier>) -> {limit, best_reachable}. For a memory budget
    `best_reachable` is a lower bound: the weights pinned to the tier, each at its smallest precision."""
    unmet: dict[str, dict[str, float]] = {}
    if model.latency_budget is not None:
        best = _best_alone(model, Objective("latency"))
        if best > model.latency_budget:
            unmet["latency_s"] = {"limit": model.latency_budget, "best_reachable": best}
    if model.energy_budget is not None:
        best = _best_alone(model, Objective("energy"))
        if best > model.energy_budget:
            unmet["device_energy_j"] = {"limit": model.energy_budget, "best_reachable": best}
    for tier, budget in enumerate(model.memory_budget):
        if budget is not None:
            smallest = model.weight_bytes[[v for v, s in model.pinned.items() if s == tier]].min(axis=1).sum() \
                if model.pinned else 0.0
            if smallest > budget:
                unmet[f"memory_bytes.{model.tiers[tier]}"] = {"limit": budget, "best_reachable": float(smallest)}
    return unmet


def infeasible_message(model: CostModel) -> str:
    """Name each budget that cannot be met even alone, with the best value reachable."""
    problems = []
    for name, entry in unmet_budgets(model).items():
        limit, best = entry["limit"], entry["best_reachable"]
        if name == "latency_s":
            problems.append(f"latency budget {limit * 1e3:.3g} ms cannot be met (best reachable {best * 1e3:.3g} ms)")
        elif name == "device_energy_j":
            problems.append(f"device energy budget {limit * 1e3:.3g} mJ cannot be met "
                            f"(best reachable {best * 1e3:.3g} mJ)")
        else:
            tier = name.split(".", 1)[1]
            problems.append(f"memory budget of tier '{tier}' ({limit / 2**20:.3g} MiB) is below "
                            f"the weights pinned to it ({best / 2**20:.3g} MiB)")
    if problems:
        return "; ".join(problems)
    return "the budgets cannot be met together (each alone is reachable); relax one of them"


def _best_alone(model: CostModel, objective: Objective) -> float:
    try:
        solution = mincut.solve(model, objective)
    except CheckFailedError:
        return np.inf
    metrics = solution.metrics(model)
    return float(metrics.latency_s[0] if objective.kind == "latency" else metrics.energy_j[0])
