"""Solver time against DAG size, and on the example models (`python -m bench.bench_solvers`).

Goals (issue #4): two-tier min-cut < 1 s at 5,000 nodes; ILP with 3 tiers x 3 precisions on a
400-node DAG solved to optimality < 10 s. Times are medians of repeated runs in one process.
Writes bench/results/solvers.json and prints a table.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import statistics
import time
from pathlib import Path

from edgepart import graph
from edgepart.cost import build as cost_build
from edgepart.cost.model import Objective
from edgepart.hardware import deploy
from edgepart.plan import chain, ilp, mincut
from tests.synthetic_costs import random_model

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "solvers.json"
LATENCY = Objective("latency")


def timed(function, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def synthetic_rows() -> list[dict]:
    rows = []
    for nodes in (100, 200, 500, 1000, 2000, 5000):
        for tiers in (2, 3):
            model = random_model(nodes, tiers=tiers, seed=nodes)
            for name, solver in (("mincut", mincut.solve), ("chain", chain.solve)):
                seconds, solution = timed(lambda s=solver, m=model: s(m, LATENCY), 3)
                rows.append({"case": f"random DAG {nodes} nodes", "tiers": tiers, "precisions": 1, "solver": name,
                             "seconds": seconds, "objective": solution.objective(model, LATENCY), "status": "optimal"})
    for nodes in (100, 200, 400):
        model = random_model(nodes, tiers=3, precisions=3, seed=nodes)
        fast = mincut.solve(model, LATENCY).metrics(model)
        model = dataclasses.replace(model, accuracy_budget=float(fast.accuracy_drop[0]) / 2)
        seconds, solution = timed(lambda m=model: ilp.solve(m, LATENCY, ilp.IlpOptions(time_limit_s=60)), 1)
        rows.append({"case": f"random DAG {nodes} nodes, accuracy budget", "tiers": 3, "precisions": 3,
                     "solver": "ilp", "seconds": seconds, "objective": solution.objective(model, LATENCY),
                     "status": solution.status, "gap": solution.gap})
    return rows


def example_rows() -> list[dict]:
    rows = []
    deployment = deploy.load(ROOT / "examples" / "phone-edge-cloud.toml")
    for path in sorted((ROOT / "models").glob("*.onnx")):
        loaded = graph.load(path)
        build_s, cost = timed(lambda g=loaded.graph: cost_build.build(g, deployment), 3)
        for name, solve in (("mincut", lambda c=cost: mincut.solve(c, LATENCY)),
                            ("ilp", lambda c=cost: ilp.solve(c, Objective("throughput")))):
            seconds, solution = timed(solve, 3 if name == "mincut" else 1)
            rows.append({"case": path.stem, "tiers": 3, "precisions": len(cost.precisions), "solver": name,
                         "seconds": seconds, "cost_model_seconds": build_s, "status": solution.status,
                         "nodes": len(cost.nodes)})
    return rows


def main() -> None:
    rows = synthetic_rows() + example_rows()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    host = {"machine": platform.machine(), "python": platform.python_version()}
    RESULTS.write_text(json.dumps({"host": host, "rows": rows}, indent=1) + "\n")
    print(f"{'case':45s} {'tiers':>5s} {'prec':>4s} {'solver':>7s} {'seconds':>9s}  status")
    for r in rows:
        print(f"{r['case']:45s} {r['tiers']:5d} {r['precisions']:4d} {r['solver']:>7s} "
              f"{r['seconds']:9.4f}  {r['status']}")
    print(f"-> {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
