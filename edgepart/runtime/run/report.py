"""What a run measured, against what the plan predicted; and every result against onnxruntime."""

from __future__ import annotations

import collections
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgepart import schema
from edgepart.compile.manifest import Manifest, Network
from edgepart.errors import CheckFailedError
from edgepart.graph import sessions
from edgepart.plan.adaptive import Line
from edgepart.runtime.price import STRICT_RATIO, judged, over_price, stand_in
from edgepart.runtime.reports import SCHEMA_VERSION

if TYPE_CHECKING:
    from edgepart.runtime.run.adapt import Adapter
    from edgepart.runtime.run.faults import Injector
    from edgepart.runtime.run.processes import Layout
    from edgepart.runtime.run.transport import Request


def slowest_stage_rate(warmup: list[Request], layout: Layout, mode: str) -> float:
    """Requests per second the slowest stage sustains: a tier's busy time per request (compute,
    coding, sending) or a link's serialisation time (bytes / bandwidth, both directions)."""
    done = [r for r in warmup if r.timings]
    stages = [statistics.median([r.timings.get(f"busy:{t}", 0.0) for r in done]) for t in layout.tiers]
    if mode != "ideal":
        for link in layout.links:
            stages.append(statistics.median([8 * r.timings.get(f"bytes:{link.name}:up", 0) / link.uplink_bps
                                             + 8 * r.timings.get(f"bytes:{link.name}:down", 0)
                                             / link.downlink_bps for r in done]))
    return 1.0 / max(max(stages), 1e-6)


def report(built: Manifest, network: Network, layout: Layout, requests: list[Request], wall_s: float,
           rate: float | None, mode: str, runners: dict[str, dict],
           on_plan: list[Request] | None = None) -> dict[str, Any]:
    """The run's report (docs/file-formats.md, edgepart.run). `runners`: tier -> {ran_with, native}.
    `on_plan`: the requests that ran `built`'s plan (an adaptive run's start plan), whose tier and link
    times are reported (default: all)."""
    latencies = [r.done_at - r.sent_at for r in requests if r.done_at is not None and not r.error]
    done = [r for r in (requests if on_plan is None else on_plan) if r.done_at is not None and not r.error]
    tiers = {}
    for name in layout.tiers:
        samples = [r.timings.get(f"tier:{name}") for r in done if r.timings.get(f"tier:{name}") is not None]
        runner = runners.get(name, {})
        measured, planned = _median(samples), network.compute_s.get(name)
        why = stand_in(layout.entries.get(name), runner)
        held = judged(measured, planned, why)
        tiers[name] = {"ran_with": runner.get("ran_with"), "measured_s": measured, "predicted_s": planned,
                       "priced_s": planned,
                       "stand_in": why, "ratio": held["ratio"], "over": held["over"], "load_s": runner.get("load_s"),
                       "error": None if why or not measured or not planned else measured / planned - 1}
    stand_ins = [name for name, tier in tiers.items() if tier["stand_in"]]
    links = {}
    for link in layout.links:
        name = link.name
        up = [r.timings.get(f"link:{name}:up", 0.0) + r.timings.get(f"link:{name}:down", 0.0) for r in done
              if f"link:{name}:up" in r.timings]
        bytes_up = [r.timings.get(f"bytes:{name}:up", 0) for r in done]
        bytes_down = [r.timings.get(f"bytes:{name}:down", 0) for r in done]
        used = bool(up)
        links[name] = {"measured_s": _median(up), "used": used,
                       "predicted_s": (network.transfer_s.get(name, 0.0) + link.rtt_s) if used else 0.0,
                       "bytes_up": int(sum(bytes_up)), "bytes_down": int(sum(bytes_down)),
                       "bandwidth": {"up_bps": link.uplink_bps, "down_bps": link.downlink_bps,
                                     "rtt_s": link.rtt_s}}
    measured_latency = _median([r.done_at - r.sent_at for r in done])
    predicted_latency = network.latency_s
    return schema.document("run", SCHEMA_VERSION, {
        "model": built.model_path, "links": mode,
        "shaping": {"netns": "veth pairs in network namespaces with tc netem (delay RTT/2, rate)",
                    "netns-tbf": "veth pairs in network namespaces, rate by tc tbf in the kernel; one-way delay "
                                 "(RTT/2) held by the receiver (this kernel has no netem)",
                    "pacing": "paced in the sender: bandwidth queue and one-way delay (RTT/2) per direction",
                    "ideal": "no shaping (Unix sockets)"}[mode],
        "mode": "closed loop" if rate is None else "open loop", "rate_per_s": rate,
        "requests": len(requests), "completed": len(latencies),
        "failed": [r.id for r in requests if r.error and r.sent_at],
        "not_sent": sum(1 for r in requests if r.error and not r.sent_at),
        "latency_s": {"p50": _percentile(latencies, 50), "p90": _percentile(latencies, 90),
                      "p99": _percentile(latencies, 99)},
        "throughput_per_s": len(latencies) / wall_s if wall_s > 0 else None,
        "predicted": {"latency_s": predicted_latency, "throughput_s": network.throughput_s},
        "error": (measured_latency / predicted_latency - 1)
        if measured_latency and predicted_latency and not stand_ins else None,
        "stand_in_tiers": stand_ins,
        "held_to_price": {"limit": STRICT_RATIO, "over": over_price(tiers)},
        "tiers": tiers,
        "per_link": links,
    })


def check(built: Manifest, model: Path, requests: list[Request], report: dict) -> None:
    """Every result against onnxruntime on the original model, and in the order sent."""
    if not requests:  # a plan of an adaptive build that no request used
        return

    from edgepart.graph.compare import output_errors  # noqa: PLC0415
    from edgepart.runtime.verify import tolerance  # noqa: PLC0415

    session = sessions.session(model)
    names = [o.name for o in session.get_outputs()]
    expected = [dict(zip(names, session.run(None, request.inputs))) for request in requests]
    allowed = tolerance(built, [request.inputs for request in requests], expected)
    limit = allowed["relative_error"]
    worst = 0.0
    for request, wanted in zip(requests, expected):
        for name, error in output_errors(built.outputs, [wanted], [request.outputs]).items():
            if error["relative_error"] is None:
                raise CheckFailedError(f"request {request.id}: output '{name}' differs from onnxruntime "
                                       f"({error['problem']})", report)
            worst = max(worst, error["relative_error"])
            if error["relative_error"] > limit:
                raise CheckFailedError(f"request {request.id}: output '{name}' differs from onnxruntime "
                                       f"(relative error {error['relative_error']:.3g} > {limit:g}: "
                                       f"{allowed['basis']})", report)
    arrival = [r.id for r in sorted(requests, key=lambda r: r.done_at)]
    earlier = report.get("checked")  # an adaptive run checks each plan's requests in turn
    if earlier:
        worst, limit = max(worst, earlier["worst_relative_error"]), max(limit, earlier["tolerance"])
    report["checked"] = {"against": "onnxruntime on the original model", "worst_relative_error": worst,
                         "tolerance": limit, "tolerance_basis": allowed["basis"],
                         "measured_cost": allowed["measured_cost"], "in_order": arrival == sorted(arrival)}
    if arrival != sorted(arrival):
        raise CheckFailedError("results came back out of order", report)


def adaptive(built: Manifest, plans: dict[str, Manifest], requests: list[Request], started: float,
             adapter: Adapter | None, injector: Injector, wall_s: float) -> dict[str, Any]:
    """What an adaptive run (or one plan of an adaptive build, run fixed) did: per request its plan,
    re-runs and the link estimate it was sent at; per phase (between injected events) the median
    latency against what the plans used predict at the bandwidth the link was set to, and against
    the best plan of the build there; the switches, the re-runs and the probes."""
    build = built.adaptive
    lines = {plan: Line(*line) for plan, line in build.lines.items()}
    nominal = next(link.uplink_bps for link in built.network.links if link.name == build.link)
    done = [r for r in requests if r.done_at is not None and not r.error]
    rows = [{"id": r.id, "plan": r.plan, "reruns": r.attempt, "sent_at_s": r.sent_at - started,
             "latency_s": r.done_at - r.sent_at, "estimate_bps": r.estimate_bps} for r in done]
    edges = [(0.0, nominal)] + [(e["applied_at_s"], e["uplink_bps"][build.link]) for e in injector.applied]
    phases = []
    for (begin, bps), (end, _) in zip(edges, [*edges[1:], (wall_s + 1.0, 0.0)]):
        members = [row for row in rows if begin <= row["sent_at_s"] < end]
        latencies = [row["latency_s"] for row in members]
        used = collections.Counter(row["plan"] for row in members)
        phases.append({
            "from_s": begin, "to_s": min(end, wall_s), "uplink_bps": bps, "requests": len(members),
            "plans": dict(used), "reruns": sum(row["reruns"] for row in members),
            "median_s": _median(latencies),
            "predicted_s": _median([lines[row["plan"]].at(bps) for row in members]) if bps and members else None,
            "best_plan": min(lines, key=lambda p: lines[p].at(bps)) if bps else build.fallback,
            "best_predicted_s": min(line.at(bps) for line in lines.values()) if bps else lines[build.fallback].at(1.0),
        })
    return {"adaptive": {
        "link": build.link, "plans_available": list(plans), "fallback": build.fallback,
        "breakpoints": list(build.breakpoints), "hysteresis": adapter.hysteresis if adapter else None,
        "events": injector.applied, "phases": phases,
        "switches": adapter.switches if adapter else [], "probes": adapter.probes if adapter else 0,
        "reruns": sum(r.attempt for r in requests), "requests": rows,
    }}


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def ids_text(ids: list[int]) -> str:
    shown = ", ".join(map(str, ids[:10]))
    return shown + (f", ... ({len(ids)} in all)" if len(ids) > 10 else "")
