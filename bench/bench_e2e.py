"""End to end: predicted against measured (`python -m bench.bench_e2e [REQUESTS [SHAPING]]`), issue #7.

Every example model on two tiers of this host (onnxruntime, one thread each, costs from this
host's measured profile of the model), joined by a 3G-, LTE- and WiFi-like link. The first third of
the layers is pinned to the device and a layer two thirds in to the edge, so tensors cross the link
both ways; the planner places the rest. Each plan is compiled and run (`edgepart run`, closed loop,
links shaped as the host allows), and its predicted latency is held against the measured median.
SHAPING: auto (network namespaces where the host allows, the default), pacing, or netns.
Writes bench/results/e2e[_SHAPING].json, .md and .png; prints the table.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

from edgepart import graph, schema
from edgepart.compile.build import compile_plan
from edgepart.hardware import deploy
from edgepart.hardware.devices import load_device
from edgepart.machine import host_description
from edgepart.plan import planner
from edgepart.plan.plan_file import Plan
from edgepart.profile import document
from edgepart.profile.document import Profile
from edgepart.profile.measure import measure
from edgepart.profile.ort_profiler import RunOptions
from edgepart.runtime.run import client

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
LINKS = ("3g", "lte", "wifi")
DEPLOY = """
[deploy]
output_tier = "device"
[[tier]]
name = "device"
device = "local"
target = "x86-64"
backend = "onnxruntime"
[[tier]]
name = "edge"
device = "local"
target = "x86-64"
backend = "onnxruntime"
[[link]]
from = "device"
to = "edge"
preset = "{link}"
[pins]
first_layers = {first}
nodes = {{ "{edge_layer}" = "edge" }}
"""


def cell(loaded: graph.LoadedModel, profile: dict, link: str, tmp: Path, requests: int, shaping: str) -> dict:
    layers = loaded.graph.layers
    path = tmp / f"{loaded.path.stem}-{link}.toml"
    path.write_text(DEPLOY.format(link=link, first=max(1, len(layers) // 3),
                                  edge_layer=layers[2 * len(layers) // 3].name))
    request = planner.PlanRequest(profiles=(Profile.of(profile),), reproducible=True)
    plan = planner.plan(loaded, deploy.load(str(path)), request)
    plan_path = tmp / f"{loaded.path.stem}-{link}.plan.json"
    schema.write_json(plan_path, plan)
    build = tmp / f"{loaded.path.stem}-{link}"
    compile_plan(loaded, Plan.load(plan_path), build)
    report = client.run(build, client.RunOptions(requests=requests, shaping=shaping)).doc
    return {"model": loaded.path.stem, "link": link, "links": report["links"],
            "predicted_s": report["predicted"]["latency_s"], "measured_p50_s": report["latency_s"]["p50"],
            "measured_p90_s": report["latency_s"]["p90"], "error": report["error"],
            "tiers": report["tiers"], "per_link": report["per_link"], "checked": report.get("checked")}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(5, 5))
    for link in LINKS:
        points = [(r["predicted_s"] * 1e3, r["measured_p50_s"] * 1e3) for r in rows if r["link"] == link]
        ax.scatter(*zip(*points), label=link)
    top = max(max(r["predicted_s"], r["measured_p50_s"]) for r in rows) * 1e3 * 1.1
    ax.plot([0, top], [0, top], color="grey", linewidth=0.8)
    ax.set(xlabel="predicted latency (ms)", ylabel="measured median latency (ms)", xlim=(0, top), ylim=(0, top),
           title="edgepart run: predicted vs measured")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    shaping = sys.argv[2] if len(sys.argv) > 2 else "auto"  # auto: network namespaces where allowed
    device, options = load_device("local"), RunOptions(threads=1, warmup=10, repeat=50)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in sorted((ROOT / "models").glob("*.onnx")):
            loaded = graph.load(path)
            profile = document.measured_document(loaded, device, options, measure(loaded, options))
            for link in LINKS:
                rows.append(cell(loaded, profile, link, Path(tmp), requests, shaping))
                r = rows[-1]
                print(f"{r['model']:22s} {link:5s} predicted {r['predicted_s'] * 1e3:8.2f} ms  measured "
                      f"{r['measured_p50_s'] * 1e3:8.2f} ms  {r['error'] * 100:+6.1f}%", flush=True)
    errors = [abs(r["error"]) for r in rows]
    summary = {"median_abs_error": statistics.median(errors), "max_abs_error": max(errors), "cells": len(rows),
               "goal": 0.10, "requests_per_cell": requests}
    stem = "e2e" if shaping == "auto" else f"e2e_{shaping}"
    (RESULTS / f"{stem}.json").write_text(json.dumps({"host": host_description(), "summary": summary, "rows": rows},
                                                 indent=1) + "\n")
    lines = ["# edgepart run: predicted vs measured (bench/bench_e2e.py)", "",
             f"Links shaped by: {rows[0]['links']}. Closed loop, {requests} requests per cell after 5 warm-ups; "
             "two tiers of this host, onnxruntime, one thread each.", "",
             "| model | link | predicted | measured p50 | measured p90 | error |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['link']} | {r['predicted_s'] * 1e3:.2f} ms | "
                     f"{r['measured_p50_s'] * 1e3:.2f} ms | {r['measured_p90_s'] * 1e3:.2f} ms | "
                     f"{r['error'] * 100:+.1f}% |")
    lines += ["", f"median |error| {summary['median_abs_error'] * 100:.1f}% (goal 10%, stretch 5%), "
                  f"max {summary['max_abs_error'] * 100:.1f}%", ""]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines))
    plot(rows, RESULTS / f"{stem}.png")
    print("\n".join(lines[-2:]))


if __name__ == "__main__":
    main()
