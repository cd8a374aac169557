"""Solvers by name, and `auto`: the exact min-cut when it meets every budget, else the ILP."""

from __future__ import annotations

from edgepart.cost.model import CostModel, Objective
from edgepart.errors import BadInputError, CheckFailedError
from edgepart.plan import chain, ilp, mincut
from edgepart.plan.solution import Solution

SOLVERS = ("auto", "mincut", "chain", "ilp")


def has_budgets(model: CostModel) -> bool:
    return (model.latency_budget is not None or model.energy_budget is not None
            or model.accuracy_budget is not None or any(b is not None for b in model.memory_budget))


def solve(model: CostModel, objective: Objective, solver: str = "auto",
          ilp_options: ilp.IlpOptions | None = None) -> Solution:
    ilp_options = ilp_options or ilp.IlpOptions()
    if solver not in SOLVERS:
        raise BadInputError(f"--solver: unknown solver '{solver}'; known: {', '.join(SOLVERS)}")
    if solver == "ilp":
        return ilp.solve(model, objective, ilp_options)
    if solver in ("mincut", "chain"):
        if objective.kind == "throughput":
            raise BadInputError(f"--solver {solver} cannot optimise throughput (a min-max); use ilp or auto")
        solution = (mincut if solver == "mincut" else chain).solve(model, objective)
        if not bool(solution.metrics(model).feasible(model)[0]):
            raise CheckFailedError(f"the {solver} plan breaks a budget and {solver} cannot take budgets into "
                                   f"account: {ilp.infeasible_message(model)}; or use --solver ilp")
        return solution
    if objective.kind != "throughput":
        solution = mincut.solve(model, objective)
        if bool(solution.metrics(model).feasible(model)[0]):
            solution.notes.append("auto: the min-cut optimum meets every budget, so it is optimal")
            return solution
    solution = ilp.solve(model, objective, ilp_options)
    solution.notes.append("auto: budgets or the throughput objective need the ILP")
    return solution
