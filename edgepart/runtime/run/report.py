"""What a run measured, against what the plan predicted; and every result against onnxruntime."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgepart import schema
from edgepart.compile.manifest import Manifest, Network
from edgepart.errors import CheckFailedError
from edgepart.graph import sessions
from edgepart.runtime.price import STRICT_RATIO, judged, over_price, stand_in
from edgepart.runtime.reports import SCHEMA_VERSION

if TYPE_CHECKING:
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
           rate: float | None, mode: str, runners: dict[str, dict]) -> dict[str, Any]:
    """The run's report (docs/file-formats.md, edgepart.run). `runners`: tier -> {ran_with, native}."""
    done = [r for r in requests if r.done_at is not None and not r.error]
    latencies = [r.done_at - r.sent_at for r in done]
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
    measured_latency = _median(latencies)
    predicted_latency = network.latency_s
    return schema.document("run", SCHEMA_VERSION, {
        "model": built.model_path, "links": mode,
        "shaping": {"netns": "veth pairs in network namespaces with tc netem (delay RTT/2, rate)",
                    "netns-tbf": "veth pairs in network namespaces, rate by tc tbf in the kernel; one-way delay "
                                 "(RTT/2) held by the receiver (this kernel has no netem)",
                    "pacing": "paced in the sender: bandwidth queue and one-way delay (RTT/2) per direction",
                    "ideal": "no shaping (Unix sockets)"}[mode],
        "mode": "closed loop" if rate is None else "open loop", "rate_per_s": rate,
        "requests": len(requests), "completed": len(done),
        "failed": [r.id for r in requests if r.error and r.sent_at],
        "not_sent": sum(1 for r in requests if r.error and not r.sent_at),
        "latency_s": {"p50": _percentile(latencies, 50), "p90": _percentile(latencies, 90),
                      "p99": _percentile(latencies, 99)},
        "throughput_per_s": len(done) / wall_s if wall_s > 0 else None,
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
    report["checked"] = {"against": "onnxruntime on the original model", "worst_relative_error": worst,
                         "tolerance": limit, "tolerance_basis": allowed["basis"],
                         "measured_cost": allowed["measured_cost"], "in_order": arrival == sorted(arrival)}
    if arrival != sorted(arrival):
        raise CheckFailedError("results came back out of order", report)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def ids_text(ids: list[int]) -> str:
    shown = ", ".join(map(str, ids[:10]))
    return shown + (f", ... ({len(ids)} in all)" if len(ids) > 10 else "")
