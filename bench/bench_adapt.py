"""Adaptive runtime (`python -m bench.bench_adapt [--repeats 3] [--phase 6] [--links pacing]`), issue #21.

For each bundled CNN that splits (residual_cnn, inception_cnn): a Raspberry Pi 4 (priced from its
datasheet profile, run here at that price: `run --device-speed priced`) and this host as the edge
server, joined by a 50 Mbit/s link (2 ms round trip) that may carry tensors in fp16 (the plan is
made with --allow-lossy; run checks every result against onnxruntime within the measured cost).
`plan --sweep 1Mbit/s..100Mbit/s` builds every plan of the sweep into one build; then the link steps
50 -> 2 -> 50 Mbit/s (`--event`, PHASE seconds each) while requests stream closed loop:
  - `run --adapt`, switching plans as it measures the link;
  - each plan of the build run fixed (`run --plan ID`), on the same steps.
Per phase: the median latency of each run (the median over --repeats runs of each run's median); the
adaptive run against the best fixed plan of that phase (goal: within 10%) and against the worse of
the two plans each best in a phase (goal: at least 2x faster in the phase that plan does not suit).
Then a fault: the edge tier killed mid-run, with --adapt (every request answered and checked, the
re-runs counted, exit 0) and without it (exit 1 naming the failed requests).
Writes bench/results/adapt.json, adapt.md and adapt.png (latency over time, the bandwidth estimate,
the plan each request used); prints the table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from edgepart import api
from edgepart.compile.manifest import Manifest
from edgepart.errors import CheckFailedError
from edgepart.machine import host_description

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
MODELS = ("residual_cnn", "inception_cnn")
LINK = "device-edge"
HIGH, LOW = "50Mbit/s", "2Mbit/s"
DEPLOY = """
[deploy]
output_tier = "device"
codecs = ["raw", "fp16"]
[[tier]]
name = "device"
device = "rpi4"
target = "x86-64"
backends = ["onnxruntime"]
[[tier]]
name = "edge"
device = "local"
target = "x86-64"
backends = ["onnxruntime"]
[[link]]
from = "device"
to = "edge"
bandwidth = "50 Mbit/s"
rtt = "2 ms"
"""


def build(model: str, tmp: Path) -> Path:
    tmp.mkdir(parents=True)
    deploy = tmp / "deploy.toml"
    deploy.write_text(DEPLOY)
    loaded = api.load_model(ROOT / "models" / f"{model}.onnx")
    plan = api.plan(loaded, deploy, allow_lossy=True, sweep=(1e6, 100e6), reproducible=True,
                    output=tmp / f"{model}.plan.json")
    out = tmp / model
    api.compile(loaded, plan, out)
    return out


def stepped_run(build_dir: Path, phase_s: float, links: str, **how) -> dict:
    events = [f"{phase_s:g}s:{LINK}={LOW}", f"{2 * phase_s:g}s:{LINK}={HIGH}"]
    return api.run(build_dir, requests=100_000, links=links, device_speed="priced", events=events,
                   duration_s=3 * phase_s, **how).doc


def phase_medians(report: dict) -> list[float | None]:
    return [phase["median_s"] for phase in report["adaptive"]["phases"]]


def fault(build_dir: Path, links: str, adapt: bool) -> dict:
    """The edge tier killed 2 s into a 5 s run."""
    try:
        report = api.run(build_dir, requests=100_000, links=links, device_speed="priced", adapt=adapt,
                         events=["2s:kill=edge"], duration_s=5).doc
        return {"exit": 0, "completed": report["completed"], "requests": report["requests"],
                "reruns": report["adaptive"]["reruns"], "checked": report["checked"]["requests"],
                "worst_relative_error": report["checked"]["worst_relative_error"]}
    except CheckFailedError as exc:
        return {"exit": 1, "message": str(exc)}


def model_cell(model: str, tmp: Path, repeats: int, phase_s: float, links: str) -> dict:
    build_dir = build(model, tmp)
    plans = sorted(Manifest.load(build_dir).adaptive.plans)
    runs: dict[str, list[dict]] = {"adapt": [], **{plan: [] for plan in plans}}
    for _ in range(repeats):
        runs["adapt"].append(stepped_run(build_dir, phase_s, links, adapt=True))
        for plan in plans:
            runs[plan].append(stepped_run(build_dir, phase_s, links, plan=plan))
    medians = {name: [statistics.median(m) if (m := [x for x in column if x is not None]) else None
                      for column in zip(*(phase_medians(r) for r in reports))] for name, reports in runs.items()}
    phases = []
    best_in = [min(plans, key=lambda p: medians[p][k] or float("inf")) for k in range(3)]
    suited = sorted(set(best_in))  # the plans that are best in some phase
    for k, bandwidth in enumerate((HIGH, LOW, HIGH)):
        best = best_in[k]
        worse = max(suited, key=lambda p: medians[p][k] or 0.0)
        adaptive = medians["adapt"][k]
        phases.append({"bandwidth": bandwidth, "adaptive_s": adaptive, "best_fixed": best,
                       "best_fixed_s": medians[best][k], "worse_fixed": worse, "worse_fixed_s": medians[worse][k],
                       "vs_best": adaptive / medians[best][k] - 1, "speedup_vs_worse": medians[worse][k] / adaptive,
                       "fixed_s": {p: medians[p][k] for p in plans}})
    last = runs["adapt"][-1]
    return {"model": model, "plans": plans, "breakpoints": last["adaptive"]["breakpoints"], "phases": phases,
            "within_10pct": all(p["vs_best"] <= 0.10 for p in phases),
            "at_least_2x": all(p["speedup_vs_worse"] >= 2.0 for p in phases),
            "switches": last["adaptive"]["switches"], "probes": last["adaptive"]["probes"],
            "checked": last["checked"], "trace": last["adaptive"]["requests"], "events": last["adaptive"]["events"],
            "fault": {"adapt": fault(build_dir, links, True), "fixed": fault(build_dir, links, False)}}


def table(cells: list[dict]) -> str:
    lines = ["| model | phase | adaptive | best fixed | worse fixed | adaptive vs best | worse / adaptive |",
             "|---|---|---|---|---|---|---|"]
    for c in cells:
        for p in c["phases"]:
            lines.append(f"| {c['model']} | {p['bandwidth']} | {p['adaptive_s'] * 1e3:.1f} ms | {p['best_fixed']} "
                         f"{p['best_fixed_s'] * 1e3:.1f} ms | {p['worse_fixed']} {p['worse_fixed_s'] * 1e3:.1f} ms | "
                         f"{p['vs_best'] * 100:+.1f}% | {p['speedup_vs_worse']:.2f}x |")
    lines += ["", "| model | fault | exit | requests | re-runs | checked |", "|---|---|---|---|---|---|"]
    for c in cells:
        for mode, f in c["fault"].items():
            lines.append(f"| {c['model']} | edge killed, {'--adapt' if mode == 'adapt' else 'fixed plan'} | "
                         f"{f['exit']} | {f.get('completed', '-')} | {f.get('reruns', '-')} | "
                         f"{f.get('checked', f.get('message', '-'))} |")
    return "\n".join(lines)


def plot(cells: list[dict], path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, axes = plt.subplots(len(cells), 1, figsize=(10, 3.6 * len(cells)), squeeze=False)
    for ax, cell in zip(axes[:, 0], cells):
        trace = cell["trace"]
        for plan in sorted({row["plan"] for row in trace}):
            rows = [row for row in trace if row["plan"] == plan]
            ax.scatter([r["sent_at_s"] for r in rows], [r["latency_s"] * 1e3 for r in rows], s=6, label=f"plan {plan}")
        for event in cell["events"]:
            ax.axvline(event["applied_at_s"], color="grey", linestyle=":", linewidth=1)
        ax.set_yscale("log")
        ax.set_ylabel("latency (ms)")
        ax.set_title(f"{cell['model']}: run --adapt, link {HIGH} -> {LOW} -> {HIGH}")
        estimate = ax.twinx()
        estimate.plot([r["sent_at_s"] for r in trace], [(r["estimate_bps"] or 0) / 1e6 for r in trace],
                      color="black", linewidth=1, label="bandwidth estimate")
        estimate.set_yscale("log")
        estimate.set_ylabel("estimate (Mbit/s)")
        ax.legend(loc="upper left", fontsize=8)
        estimate.legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("seconds since the first measured request")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--phase", type=float, default=6.0, help="seconds per bandwidth step")
    parser.add_argument("--links", default="pacing", choices=("pacing", "netns", "shaped"))
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args(sys.argv[1:] if __name__ == "__main__" else [])
    cells = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            cells.append(model_cell(model, Path(tmp) / model, args.repeats, args.phase, args.links))
            print(f"{model}: done", file=sys.stderr, flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or None
    RESULTS.mkdir(exist_ok=True)
    doc = {"host": host_description(), "commit": commit, "repeats": args.repeats, "phase_s": args.phase,
           "links": args.links, "cells": cells}
    (RESULTS / "adapt.json").write_text(json.dumps(doc, indent=1) + "\n")
    (RESULTS / "adapt.md").write_text(table(cells) + "\n")
    plot(cells, RESULTS / "adapt.png")
    print(table(cells))


if __name__ == "__main__":
    main()
